// The ready queue of the critical-path scheduler (docs/architecture.md).
//
// Ready stages are ordered by their remaining critical path (own cost plus the longest pending
// chain below them, with the steps a running trial's algorithm may still add below its target:
// Engine::Continuations), longest first, so the stages that gate the most work start first. Among
// stages of equal priority, one whose parent state the asking worker holds in memory wins
// (locality: it starts without loading a checkpoint).
#ifndef HIPPO_HIPPO_SCHEDULER_H_
#define HIPPO_HIPPO_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <tuple>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "stage_tree/stage_tree.h"

namespace hippo::coordinator {

struct QueuedStage {
  int64_t family_id = 0;
  stage_tree::NodeId node = 0;
  friend bool operator==(const QueuedStage&, const QueuedStage&) = default;
};

class ReadyQueue {
 public:
  // How many equal-priority entries Pop looks through for a local one.
  static constexpr int kLocalityWindow = 32;

  // Adds the stage, or moves it to `priority` if it is queued already.
  void Push(QueuedStage stage, double priority);
  void Clear();
  size_t size() const { return entries_.size(); }

  // Removes and returns the best stage that `still_ready` accepts; entries it rejects are
  // dropped on the way (they were started or cut since they were queued). Among the stages
  // tied with the best priority, the first that `is_local` accepts is preferred.
  std::optional<QueuedStage> Pop(const std::function<bool(const QueuedStage&)>& still_ready,
                                 const std::function<bool(const QueuedStage&)>& is_local);

 private:
  using Entry = std::tuple<double, int64_t, stage_tree::NodeId>;  // (-priority, family, node)
  void Erase(absl::btree_set<Entry>::iterator it);

  // A B-tree, not std::set: Pop walks up to kLocalityWindow neighbours, which here share a few
  // nodes instead of costing a cache miss each (a study of 100 000 ready stages).
  absl::btree_set<Entry> entries_;
  absl::flat_hash_map<int64_t, double> queued_priority_;  // by global stage id
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_SCHEDULER_H_
