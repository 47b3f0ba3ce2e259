// The ready queue of the critical-path scheduler (docs/architecture.md), shared by weight.
//
// Ready stages are ordered by their remaining critical path (own cost plus the longest pending
// chain below them, with the steps a running trial's algorithm may still add below its target:
// Engine::Continuations), longest first, so the stages that gate the most work start first. Among
// stages of equal priority, one whose parent state the asking worker holds in memory wins
// (locality: it starts without loading a checkpoint).
//
// Continuation (Preference): a worker that just finished a stage still holds its model, so a
// ready child of that stage starts without loading a state. Pop prefers such a child over the
// critical-path order from among the group's `window` best entries, or from anywhere in the
// group (window 0); the engine chooses the window so that the preference cannot lengthen the
// study (EngineImpl::ContinuationsOf).
//
// Studies share the workers by weight (StudySpec.resources.weight). Each family's stages are
// queued in a share group (the engine's: the study whose trial created the family) with a
// weight; Pop serves the group that has been charged the least worker time per unit of weight
// (start-time fair queueing: the engine charges a stage's estimated seconds when it hands it
// out), and the critical-path order above inside that group. A group that had nothing ready
// starts from the least charge among the groups that had, so waiting earns no credit: over any
// stretch where groups are contended, each gets worker time in proportion to its weight.
//
// A worker serves only some trainer kinds, and a group's stages all have one (a family's
// trainer is part of its identity, and a family is in the group of a study with that trainer):
// Pop skips, and keeps, the groups the asking worker cannot serve.
#ifndef HIPPO_HIPPO_SCHEDULER_H_
#define HIPPO_HIPPO_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "stage_tree/stage_tree.h"

namespace hippo::coordinator {

struct QueuedStage {
  int64_t family_id = 0;
  stage_tree::NodeId node = 0;
  friend bool operator==(const QueuedStage&, const QueuedStage&) = default;
};

// Stages Pop prefers over the critical-path order inside the group it serves: the first of
// `stages` queued among the group's `window` best entries, or anywhere in the group when
// `window` is 0.
struct Preference {
  std::vector<QueuedStage> stages;
  size_t window = 0;
};

class ReadyQueue {
 public:
  // How many equal-priority entries Pop looks through for a local one.
  static constexpr int kLocalityWindow = 32;

  // Puts a family's stages in share group `group`; call before its first Push. A family never
  // set is in group 0.
  void SetGroup(int64_t family_id, int64_t group);
  // The weight of `group` (> 0; anything else counts as 1). Groups default to 1.
  void SetWeight(int64_t group, double weight);
  // Counts `seconds` of worker time against the group of `family_id`.
  void Charge(int64_t family_id, double seconds);

  // Adds the stage, or moves it to `priority` if it is queued already.
  void Push(QueuedStage stage, double priority);
  // Empties the queue; groups, weights and charges stay.
  void Clear();
  size_t size() const { return queued_priority_.size(); }

  // Removes and returns the best stage that `still_ready` accepts, from the least-charged group
  // per weight that has one and that `serves_group` accepts (groups it rejects keep their
  // stages; none given: every group); entries `still_ready` rejects are dropped on the way (they
  // were started or cut since they were queued). Among the stages of that group tied with its best
  // priority, the first that `is_local` accepts is preferred; a stage of `prefer` that
  // `still_ready` accepts goes before both (Preference).
  std::optional<QueuedStage> Pop(const std::function<bool(const QueuedStage&)>& still_ready,
                                 const std::function<bool(const QueuedStage&)>& is_local,
                                 const std::function<bool(int64_t group)>& serves_group = nullptr,
                                 const Preference& prefer = {});

  // Calls `visit` with the queued stages and their priorities, best first within each group
  // that `serves_group` accepts (none given: every group), at most `limit` per group. For a
  // choice by another order than the queue's (the checkpoint budget's, engine_budget.cc).
  void ForEach(const std::function<bool(int64_t group)>& serves_group, size_t limit,
               const std::function<void(const QueuedStage&, double priority)>& visit) const;
  // Removes a queued stage; false if it is not queued.
  bool Remove(const QueuedStage& stage);

 private:
  using Entry = std::tuple<double, int64_t, stage_tree::NodeId>;  // (-priority, family, node)
  struct Group {
    // A B-tree, not std::set: Pop walks up to kLocalityWindow neighbours, which here share a few
    // nodes instead of costing a cache miss each (a study of 100 000 ready stages).
    absl::btree_set<Entry> entries;
    double weight = 1;
    double charge = 0;  // worker seconds per unit of weight
  };

  int64_t GroupOf(int64_t family_id) const;
  Group& GroupAt(int64_t group);
  // Removes an entry of `group`; the group leaves the active set when it empties.
  void Erase(int64_t group, absl::btree_set<Entry>::iterator it);

  absl::flat_hash_map<int64_t, Group> groups_;
  absl::flat_hash_map<int64_t, int64_t> group_of_family_;
  // The groups with queued stages, least charged first (ties: the lower group).
  absl::btree_set<std::pair<double, int64_t>> active_;
  absl::flat_hash_map<int64_t, double> queued_priority_;  // by global stage id
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_SCHEDULER_H_
