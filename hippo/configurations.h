// The distinct configurations of a study and the furthest target of each: `distinct_steps` of
// docs/workloads.md, what a trial-based system trains if it never trains a configuration twice.
// A trial's configuration is what the stage tree trains: its structural values and its
// sequences over the whole horizon (a fork's: its parent's up to the fork step, its own after),
// so two points that differ only in a value their trial does not use are one configuration.
#ifndef HIPPO_HIPPO_CONFIGURATIONS_H_
#define HIPPO_HIPPO_CONFIGURATIONS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "stage_tree/search_space.h"

namespace hippo::coordinator {

class Configurations {
 public:
  // The key of a configuration: `encoded_sequences` is stage_tree::EncodeSequences of the
  // trial's (composed) sequences.
  static std::string KeyOf(const std::map<std::string, stage_tree::Value>& structural,
                           const std::string& encoded_sequences);

  // Counts a trial of configuration `key` trained to `target`; returns the configuration's id
  // (the same for every trial of one configuration).
  int32_t Add(std::string key, int64_t target);
  // A trial of configuration `id` now goes to `target` (an extension).
  void Raise(int32_t id, int64_t target);

  // The sum over configurations of their furthest target.
  int64_t steps() const { return steps_; }
  // The same over the union of several studies' configurations (studies of one family: a
  // configuration several of them train counts once, to its furthest target in any).
  static int64_t StepsOfUnion(const std::vector<const Configurations*>& sets);

 private:
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<int64_t> furthest_;  // by id
  int64_t steps_ = 0;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_CONFIGURATIONS_H_
