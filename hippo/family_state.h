// FamilyState: what the coordinator knows of one family beyond its stage tree.
//
// A family is the set of trials that share a trainer and structural parameters, merged into
// one stage tree. Around the tree the engine keeps, per family: the operation log that rebuilds
// the tree on recovery, the lineage of each node (the id a stage had before any split: states
// and metrics are named by it, so they keep their names when stages are cut), the metric values
// at the steps where a stage may end, the locations of kept states, the breakpoints where
// stages keep their state, the attempts made per node, the measured cost of a step and the
// scheduling priorities derived from it. Not thread-safe: the engine calls it under its lock.
#ifndef HIPPO_HIPPO_FAMILY_STATE_H_
#define HIPPO_HIPPO_FAMILY_STATE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "stage_tree/stage_tree.h"
#include "store/store.h"

namespace hippo::snapshot {
class FamilySnapshot;
}  // namespace hippo::snapshot

namespace hippo::coordinator {

// A stage's global id: its family in the high 32 bits, its node in the low 32.
inline int64_t GlobalStageId(int64_t family_id, stage_tree::NodeId node) {
  return (family_id << 32) | static_cast<int64_t>(node);
}

// The trained state a family starts from when it is not a fresh model: the state after `step`
// of the stage lineage `lineage` of family `family_id` (a morphism child's parent, whose
// architecture it extends). Its tree's root stands for that state, at `step`.
struct Inheritance {
  int64_t family_id = 0;  // 0: none
  int64_t lineage = 0;
  int64_t step = 0;

  bool inherits() const { return family_id != 0; }
  friend bool operator==(const Inheritance&, const Inheritance&) = default;
};

class FamilyState {
 public:
  // The family key of an ask/tell trial's family: one family per such trial, whose stages the
  // client trains (never dispatched). Followed by the study id and trial number.
  static constexpr char kClientTrainedPrefix[] = "external|";

  // Family `id` (numbered densely from 1) of `key`, with an empty tree over `parameter_names`
  // rooted at step 0, or at the inherited state's step.
  FamilyState(int64_t id, const std::string& key, const std::vector<std::string>& parameter_names,
              Inheritance inheritance = {});
  FamilyState(const FamilyState&) = delete;
  FamilyState& operator=(const FamilyState&) = delete;

  int64_t id() const { return id_; }
  const Inheritance& inheritance() const { return inheritance_; }
  // Where the inherited state was last found in the parent family's tree (the node of its
  // lineage that ends at its step; kNoNode: not looked for yet). A hint the engine checks before
  // use: a split of that node moves the state's end to the new lower part.
  stage_tree::NodeId inherited_node_hint() const { return inherited_node_hint_; }
  void set_inherited_node_hint(stage_tree::NodeId node) const { inherited_node_hint_ = node; }
  stage_tree::StageTree& tree() { return *tree_; }
  const stage_tree::StageTree& tree() const { return *tree_; }

  // Whether its one stage is trained by an ask/tell client (key kClientTrainedPrefix...).
  bool client_trained() const { return client_trained_; }
  // Whether it holds one trial of a study run trial by trial (no_merge, the baseline): scheduled
  // as a trial-based system would, each stage whole and by its known critical path only.
  bool trial_by_trial() const { return trial_by_trial_; }
  void set_trial_by_trial(bool trial_by_trial) { trial_by_trial_ = trial_by_trial; }

  // ---- The tree-operation log
  // Appends the next operation of the log to `batch`; the tree must already have applied it.
  void AppendOp(store::TreeOpKind kind, int64_t a, int64_t b, std::string payload,
                store::WriteBatch& batch);
  // Recovery: accepts stored operation `sequence` if it is the next one, DataLoss otherwise.
  absl::Status ExpectNextOp(int64_t sequence);
  // The sequence number the next operation gets.
  int64_t next_op() const { return next_op_; }
  // Snapshots for a compacted log (family_snapshot.cc): the tree and what the operations built
  // around it (lineages, breakpoints, attempts, failures), through the last operation appended.
  void SaveSnapshot(hippo::snapshot::FamilySnapshot& out) const;
  // Recovery, before any operation is replayed: the state of a snapshot SaveSnapshot wrote;
  // the next operation expected is the one after it. DataLoss for one that does not fit.
  absl::Status RestoreSnapshot(const hippo::snapshot::FamilySnapshot& snapshot);

  // ---- Lineage
  // The lineage of `node`: its own id, or for the lower part of a split its upper part's.
  int64_t lineage(stage_tree::NodeId node) const { return lineage_[node]; }
  // Every node's lineage, by node id.
  const std::vector<int64_t>& lineages() const { return lineage_; }
  // Follows the tree's splits (the nodes they created start their own lineage, the lower part
  // of a split continues its upper's); the priorities are stale after it.
  void FollowSplits(const std::vector<stage_tree::SplitResult>& splits);
  // The id a stage is known by to workers: its lineage's global id (stable when stages split).
  int64_t WorkerStageId(stage_tree::NodeId node) const {
    return GlobalStageId(id_, static_cast<stage_tree::NodeId>(lineage_[node]));
  }

  // ---- Metric values at the steps where a stage may end
  // Values are kept at (lineage, step) as in the store, at the steps where a stage may end: a
  // step is kept when the state after it is or may be kept (the last step of a stage, the step
  // before a breakpoint, the step an attempt reported last when a split asks it for the state
  // after that step; after a restart, every step of a running attempt's parts, as its last
  // report is not known). A stage [start, end) finds its objective at (lineage, end - 1),
  // however and whenever it was split. The first report wins, as in the store: a recomputed
  // step does not replace it.
  void KeepMetric(const std::string& name, int64_t lineage, int64_t step, double value);
  // The value of metric `name` at the last step of `node`, nullptr if none was kept.
  const double* EndMetric(stage_tree::NodeId node, const std::string& name) const;
  // Forgets every value kept for `lineage` (its study was deleted, and its metrics with it).
  void ForgetMetrics(int64_t lineage);

  // ---- Kept states
  // Records where the state after `step` of `node`'s lineage is (a checkpoint's URI). A state is
  // named by the lineage of the stage that reached it, which splits do not change.
  void SetStateUri(stage_tree::NodeId node, int64_t step, std::string uri);
  // The URI of the state after `step` of `node`'s lineage, nullptr if none is known.
  const std::string* StateUri(stage_tree::NodeId node, int64_t step) const;
  // The state after `step` of `lineage` is no longer kept (checkpoint garbage collection).
  void ForgetStateUri(int64_t lineage, int64_t step) { state_uri_.erase({lineage, step}); }

  // ---- Breakpoints: steps where a trial ends or changes a hyper-parameter, where later trials
  // are likely to branch. Stages keep their state at these steps, so that a branch made after a
  // stage finished needs no recomputation.
  void AddBreakpoint(int64_t step) { breakpoints_.insert(step); }
  // A trial's breakpoints: its target and the starts of its sequences' segments.
  void AddBreakpoints(const stage_tree::TrialSequences& sequences, int64_t target);
  bool IsBreakpoint(int64_t step) const { return breakpoints_.contains(step); }
  // The breakpoints in (after, before), in order.
  std::vector<int64_t> BreakpointsBetween(int64_t after, int64_t before) const;

  // ---- Cutting at dispatch
  // A stage is dispatched up to the family's next breakpoint inside it at most (where its state
  // is kept anyway): the rest becomes a stage of its own, ready when this part is done, so the
  // scheduler chooses again there, as a preemptive scheduler would. CutStep returns that
  // breakpoint, 0 when the whole stage goes out (a recomputation, a trial-by-trial family).
  stage_tree::Step CutStep(stage_tree::NodeId node) const;
  // Splits ready `node` at `step`; the new lower part gets its priority without a walk of the
  // tree when the priorities were current.
  absl::Status Cut(stage_tree::NodeId node, stage_tree::Step step);

  // ---- Attempts per node (a stage's attempts, lost parts included)
  void CountAttempt(stage_tree::NodeId node) { ++attempts_of_node_[node]; }
  int64_t AttemptsOf(stage_tree::NodeId node) const;
  // The attempts that count against the stage's budget (EngineOptions::max_attempts): those
  // since its budget last started again (ResetAttemptBudget), less those that failed only
  // because their starting state was lost (ForgiveAttempt).
  int64_t BudgetedAttemptsOf(stage_tree::NodeId node) const;
  void ResetAttemptBudget(stage_tree::NodeId node) { budget_base_[node] = AttemptsOf(node); }
  void ForgiveAttempt(stage_tree::NodeId node) { ++budget_base_[node]; }
  // The last error of a failed attempt of `node`, kept until the node is done ("" if none).
  void SetFailure(stage_tree::NodeId node, std::string error) {
    failures_[node] = std::move(error);
  }
  void ClearFailure(stage_tree::NodeId node) { failures_.erase(node); }
  // Whether any node has a failure: every failed node has one, so none is failed otherwise.
  bool has_failures() const { return !failures_.empty(); }
  const std::string* FailureOf(stage_tree::NodeId node) const {
    auto it = failures_.find(node);
    return it == failures_.end() ? nullptr : &it->second;
  }

  // ---- Cost and scheduling priorities
  double seconds_per_step() const { return seconds_per_step_; }
  // Folds in a finished attempt's measured time for `steps` steps (a moving average).
  void MeasureStepTime(double seconds, int64_t steps);
  bool priorities_dirty() const { return priorities_dirty_; }
  // The priorities no longer hold (the tree or the continuations below it changed).
  void InvalidatePriorities() { priorities_dirty_ = true; }
  // The remaining critical path of every node in steps, by node id; the priorities are current
  // after it.
  void SetPriorities(std::vector<double> steps);
  // After the insertion of `trial` (whose continuation, the steps it may still be extended by,
  // is `continuation_steps`) made `splits`, with the priorities current before it: brings them
  // up to date without a walk of the whole tree and returns the nodes whose priority changed.
  // An insertion only adds work, so a value can only grow, and only along the new trial's
  // path; a split's lower part keeps what followed the node. Splits that rerun work (a done
  // node without the state at the split step) are left to a whole computation: the priorities
  // stay stale and nothing is returned.
  std::vector<stage_tree::NodeId> AddTrialPriorities(
      stage_tree::TrialId trial, const std::vector<stage_tree::SplitResult>& splits,
      double continuation_steps);
  // The priority of `node` in the ready queue: its remaining critical path in seconds (at the
  // current cost of a step), or one step's cost for a node newer than the last computation.
  double Priority(stage_tree::NodeId node) const;

  // ---- The trials of the tree: the study (index in the engine) and trial number of each.
  // A tree trial of a deleted study has no owner (kNoStudy): it stays in the tree, which its
  // operation log rebuilds, but nothing runs for it and no view shows it.
  static constexpr size_t kNoStudy = SIZE_MAX;
  struct Owner {
    size_t study_index = kNoStudy;
    int64_t trial = 0;
    bool deleted() const { return study_index == kNoStudy; }
  };
  void SetOwner(stage_tree::TrialId tree_trial, Owner owner);
  const Owner& OwnerOf(stage_tree::TrialId tree_trial) const { return owners_[tree_trial]; }
  // Tree trials with an owner record (deleted or not) are numbered [0, owned_trials()).
  size_t owned_trials() const { return owners_.size(); }

 private:
  const int64_t id_;
  const Inheritance inheritance_;
  mutable stage_tree::NodeId inherited_node_hint_ = stage_tree::kNoNode;
  std::unique_ptr<stage_tree::StageTree> tree_;
  const bool client_trained_;
  bool trial_by_trial_ = false;
  int64_t next_op_ = 1;
  std::vector<int64_t> lineage_;  // by node id
  std::vector<Owner> owners_;     // by tree trial id
  std::map<std::string, absl::flat_hash_map<std::pair<int64_t, int64_t>, double>> step_metrics_;
  absl::flat_hash_map<std::pair<int64_t, int64_t>, std::string> state_uri_;  // (lineage, step)
  absl::flat_hash_map<stage_tree::NodeId, int64_t> attempts_of_node_;
  absl::flat_hash_map<stage_tree::NodeId, int64_t> budget_base_;
  absl::flat_hash_map<stage_tree::NodeId, std::string> failures_;
  std::set<int64_t> breakpoints_;
  double seconds_per_step_ = 1.0;
  bool priorities_dirty_ = true;
  std::vector<double> priorities_;  // remaining critical path in steps, by node id
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_FAMILY_STATE_H_
