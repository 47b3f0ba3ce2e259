#include "hippo/configurations.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace hippo::coordinator {

std::string Configurations::KeyOf(const std::map<std::string, stage_tree::Value>& structural,
                                  const std::string& encoded_sequences) {
  return absl::StrCat(stage_tree::FamilyKey("", structural), "|", encoded_sequences);
}

int32_t Configurations::Add(std::string key, int64_t target) {
  const auto [it, inserted] =
      ids_.try_emplace(std::move(key), static_cast<int32_t>(furthest_.size()));
  if (inserted) furthest_.push_back(0);
  Raise(it->second, target);
  return it->second;
}

void Configurations::Raise(int32_t id, int64_t target) {
  if (id < 0 || static_cast<size_t>(id) >= furthest_.size()) return;
  int64_t& furthest = furthest_[static_cast<size_t>(id)];
  if (target <= furthest) return;
  steps_ += target - furthest;
  furthest = target;
}

int64_t Configurations::StepsOfUnion(const std::vector<const Configurations*>& sets) {
  absl::flat_hash_map<std::string_view, int64_t> furthest;
  for (const Configurations* set : sets) {
    for (const auto& [key, id] : set->ids_) {
      int64_t& at = furthest[key];
      at = std::max(at, set->furthest_[static_cast<size_t>(id)]);
    }
  }
  int64_t steps = 0;
  for (const auto& [key, at] : furthest) steps += at;
  return steps;
}

}  // namespace hippo::coordinator
