#include "hippo/scheduler.h"

#include <algorithm>
#include <cmath>

namespace hippo::coordinator {
namespace {

int64_t Key(int64_t family_id, stage_tree::NodeId node) {
  return (family_id << 32) | static_cast<int64_t>(node);
}

}  // namespace

int64_t ReadyQueue::GroupOf(int64_t family_id) const {
  auto it = group_of_family_.find(family_id);
  return it == group_of_family_.end() ? 0 : it->second;
}

ReadyQueue::Group& ReadyQueue::GroupAt(int64_t group) { return groups_[group]; }

void ReadyQueue::SetGroup(int64_t family_id, int64_t group) { group_of_family_[family_id] = group; }

void ReadyQueue::SetWeight(int64_t group, double weight) {
  GroupAt(group).weight = std::isfinite(weight) && weight > 0 ? weight : 1.0;
}

void ReadyQueue::Charge(int64_t family_id, double seconds) {
  const int64_t id = GroupOf(family_id);
  Group& group = GroupAt(id);
  const bool active = !group.entries.empty();
  if (active) active_.erase({group.charge, id});
  group.charge += seconds / group.weight;
  if (active) active_.insert({group.charge, id});
}

void ReadyQueue::Push(QueuedStage stage, double priority) {
  const int64_t key = Key(stage.family_id, stage.node);
  const int64_t id = GroupOf(stage.family_id);
  Group& group = GroupAt(id);
  auto [it, inserted] = queued_priority_.try_emplace(key, priority);
  if (!inserted) {
    group.entries.erase(Entry{-it->second, stage.family_id, stage.node});
    it->second = priority;
  } else if (group.entries.empty()) {
    // Joining the contention: no credit for the time it had nothing ready.
    if (!active_.empty()) group.charge = std::max(group.charge, active_.begin()->first);
    active_.insert({group.charge, id});
  }
  group.entries.insert(Entry{-priority, stage.family_id, stage.node});
}

void ReadyQueue::Clear() {
  for (auto& [id, group] : groups_) group.entries.clear();
  active_.clear();
  queued_priority_.clear();
}

void ReadyQueue::Erase(int64_t id, absl::btree_set<Entry>::iterator it) {
  Group& group = groups_.at(id);
  queued_priority_.erase(Key(std::get<1>(*it), std::get<2>(*it)));
  group.entries.erase(it);
  if (group.entries.empty()) active_.erase({group.charge, id});
}

void ReadyQueue::ForEach(
    const std::function<bool(int64_t group)>& serves_group, size_t limit,
    const std::function<void(const QueuedStage&, double priority)>& visit) const {
  for (const auto& [charge, id] : active_) {
    if (serves_group && !serves_group(id)) continue;
    size_t visited = 0;
    for (const Entry& entry : groups_.at(id).entries) {
      if (visited++ == limit) break;
      visit(QueuedStage{std::get<1>(entry), std::get<2>(entry)}, -std::get<0>(entry));
    }
  }
}

bool ReadyQueue::Remove(const QueuedStage& stage) {
  auto queued = queued_priority_.find(Key(stage.family_id, stage.node));
  if (queued == queued_priority_.end()) return false;
  const int64_t id = GroupOf(stage.family_id);
  Group& group = groups_.at(id);
  auto it = group.entries.find(Entry{-queued->second, stage.family_id, stage.node});
  if (it == group.entries.end()) return false;
  Erase(id, it);
  return true;
}

std::optional<QueuedStage> ReadyQueue::Pop(
    const std::function<bool(const QueuedStage&)>& still_ready,
    const std::function<bool(const QueuedStage&)>& is_local,
    const std::function<bool(int64_t group)>& serves_group, const Preference& prefer) {
  auto group_it = active_.begin();
  while (group_it != active_.end()) {
    const int64_t id = group_it->second;
    if (serves_group && !serves_group(id)) {
      ++group_it;
      continue;
    }
    absl::btree_set<Entry>& entries = groups_.at(id).entries;
    auto best = entries.begin();
    const QueuedStage top{std::get<1>(*best), std::get<2>(*best)};
    if (!still_ready(top)) {
      const std::pair<double, int64_t> key = *group_it;
      Erase(id, best);  // may take the group out of active_, which moves active_'s iterators
      group_it = active_.lower_bound(key);
      continue;
    }
    auto chosen = entries.end();
    if (prefer.window == 0) {
      // Anywhere in the group: the best preferred stage queued there.
      for (const QueuedStage& stage : prefer.stages) {
        if (GroupOf(stage.family_id) != id) continue;
        auto queued = queued_priority_.find(Key(stage.family_id, stage.node));
        if (queued == queued_priority_.end()) continue;
        auto it = entries.find(Entry{-queued->second, stage.family_id, stage.node});
        if (it == entries.end() || !still_ready(stage)) continue;
        if (chosen == entries.end() || *it < *chosen) chosen = it;
      }
    } else if (!prefer.stages.empty()) {
      size_t looked = 0;
      for (auto it = best; it != entries.end() && looked < prefer.window; ++it, ++looked) {
        const QueuedStage candidate{std::get<1>(*it), std::get<2>(*it)};
        if (std::find(prefer.stages.begin(), prefer.stages.end(), candidate) !=
                prefer.stages.end() &&
            (it == best || still_ready(candidate))) {
          chosen = it;
          break;
        }
      }
    }
    if (chosen == entries.end()) {
      chosen = best;
      int looked = 0;
      for (auto it = best; it != entries.end() && std::get<0>(*it) == std::get<0>(*best) &&
                           looked < kLocalityWindow;
           ++it, ++looked) {
        const QueuedStage candidate{std::get<1>(*it), std::get<2>(*it)};
        if (is_local(candidate) && still_ready(candidate)) {
          chosen = it;
          break;
        }
      }
    }
    const QueuedStage result{std::get<1>(*chosen), std::get<2>(*chosen)};
    Erase(id, chosen);
    return result;
  }
  return std::nullopt;
}

}  // namespace hippo::coordinator
