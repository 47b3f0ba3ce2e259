// StageTree: the trie of stages of one family (docs/concepts.md).
//
// A trial is a path from the root. A node (stage) covers steps [start, end) and its key is the
// values of every hyper-parameter on those steps; siblings always differ at their first step.
// Two trials share a node iff every hyper-parameter has the same value at every step of
// [0, node end). Values are compared exactly (bit for bit), so two schedules written differently
// but equal on some steps (a warm-up ramp that passes through another trial's constant) share
// those steps.
//
// The tree is not thread-safe; its owner serialises access. Node and trial ids are dense and
// stable: a node keeps its id when it is split (it keeps the upper part [start, split)).
#ifndef HIPPO_STAGE_TREE_STAGE_TREE_H_
#define HIPPO_STAGE_TREE_STAGE_TREE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "stage_tree/chunked_vector.h"
#include "stage_tree/sequence.h"

namespace hippo::snapshot {
class TreeSnapshot;
}  // namespace hippo::snapshot

namespace hippo::stage_tree {

using NodeId = uint32_t;
using TrialId = uint32_t;
inline constexpr NodeId kRootNode = 0;
inline constexpr NodeId kNoNode = UINT32_MAX;

// pending: its parent's state does not exist yet; ready: it can run now.
enum class StageState : uint8_t { kPending, kReady, kRunning, kDone, kFailed };
const char* StageStateName(StageState state);

// The figures of docs/workloads.md.
struct StepCounts {
  int64_t trial_steps = 0;       // sum over trials of their target step
  int64_t unique_steps = 0;      // size of the union of the trials' prefixes
  int64_t executed_steps = 0;    // steps marked done, recomputation included
  int64_t recomputed_steps = 0;  // steps trained again to recover a state at a split step
  int64_t recompute_stages = 0;  // how many recomputations were scheduled
  // Trial by trial, the work done so far: each trial's steps up to where its path has been
  // trained (a node once done stays trained when its state is later lost or dropped).
  int64_t reached_trial_steps = 0;

  friend bool operator==(const StepCounts&, const StepCounts&) = default;
};

// What splitting a node asks of the caller.
enum class SplitAction : uint8_t {
  kNone,                 // the node was pending, ready or failed: it was simply cut
  kCheckpointRequested,  // the node is running: ask its attempt for a checkpoint at the step
  kRecomputeScheduled,   // the node was done without a state at the step: it must run again
  // The node is running and its attempt already kept the state at the step: the upper part is
  // done at once (nothing is trained again) and the attempt goes on with the lower part.
  kUpperDone,
};

struct SplitResult {
  NodeId upper = kNoNode;  // [start, step): the id the node had
  NodeId lower = kNoNode;  // [step, end): a new node that took the children and trials
  SplitAction action = SplitAction::kNone;
  Step recompute_from = 0;  // for kRecomputeScheduled: the checkpoint the rerun starts from
};

// A read-only view of one node.
struct NodeView {
  NodeId id = kNoNode;
  NodeId parent = kNoNode;
  Step start = 0;
  Step end = 0;
  StageState state = StageState::kPending;
  bool recompute = false;  // rerun to recover the state at `end` (counted as recomputation)
  Step recompute_from = 0;
  // Its steps were trained once: it is done, or it was done and its end state was dropped or
  // lost since (a recompute stage, which keeps counting as trained while it waits or reruns).
  bool trained = false;
};

class StageTree {
 public:
  // `family_key` names the root (trainer, model, data, seed, structural hyper-parameters);
  // `parameter_names` are the hyper-parameters every trial of the family has a sequence for.
  // `root_step` is the step of the state the root stands for: 0 (a fresh model) or, for a
  // family that inherits another family's trained state (a morphism), the step of that state;
  // then every stage starts at or after it and a trial's target must lie beyond it.
  StageTree(std::string family_key, std::vector<std::string> parameter_names, Step root_step = 0);
  StageTree(const StageTree&) = delete;
  StageTree& operator=(const StageTree&) = delete;
  StageTree(StageTree&&) = default;
  StageTree& operator=(StageTree&&) = default;

  // Inserts a trial trained up to `target` (trial steps count from root_step()) and returns its
  // id. Walks the trie from the root,
  // reusing every node whose values match, splitting the first node that diverges (see Split)
  // and adding a leaf for the rest. InvalidArgument if the sequences do not name exactly the
  // family's parameters, do not share one horizon, or the target is outside (0, horizon]. A
  // family without parameters (all structural) has the largest horizon a step can be stored in.
  // The target must lie in (root_step(), horizon].
  // `splits` (optional) receives the splits the insertion made, for the caller to act on.
  absl::StatusOr<TrialId> Insert(const TrialSequences& sequences, Step target,
                                 std::vector<SplitResult>* splits = nullptr);

  // Raises a trial's target; its path grows by reused or new nodes below its current end.
  // InvalidArgument if the new target is not above the current one or beyond the horizon.
  absl::Status Extend(TrialId trial, Step new_target, std::vector<SplitResult>* splits = nullptr);

  // Cuts `node` at `step` (start < step < end). The node keeps [start, step); a new node
  // [step, end) takes its children and the trials that end in it. A pending or ready node is
  // simply cut; a running node stays running in both parts and the caller must request a
  // checkpoint at `step`, unless its state at `step` was kept already (AddCheckpoint): then the
  // upper part is done at once, as by MarkDone; a done node whose state at `step` was not kept
  // becomes a recompute stage from its nearest earlier checkpoint, and its steps count as
  // recomputation.
  absl::StatusOr<SplitResult> Split(NodeId node, Step step);

  // State changes reported by the scheduler.
  absl::Status MarkRunning(NodeId node);
  // The state at the node's end exists and its steps were trained. Children become ready.
  absl::Status MarkDone(NodeId node);
  // The steps were trained but the state at the end was lost (a requested checkpoint never
  // came): the steps count as executed and the stage becomes a recompute stage.
  absl::Status MarkDoneWithoutState(NodeId node);
  absl::Status MarkFailed(NodeId node);
  // A failed or running node (lost worker) goes back to pending/ready.
  absl::Status Requeue(NodeId node);
  // A state at `step` inside (start, end) of a running or done node was kept.
  absl::Status AddCheckpoint(NodeId node, Step step);
  // The state after `step` of `node` was deleted (checkpoint garbage collection). A step inside
  // (start, end) forgets that checkpoint; the end of a done node makes it a recompute stage from
  // its latest kept checkpoint (ready or pending as it can start), which the caller runs again
  // only if something needs it; its done children are unaffected, new ones wait for it.
  // FailedPrecondition for the end of a node that is not done (its state is not kept yet).
  absl::Status DropState(NodeId node, Step step);
  // The state kept at `step` of `node` is gone (its file is missing or corrupt). At the end of
  // a done node: the node becomes a recompute stage from its latest earlier kept state (its
  // steps count as recomputation when it is done again) and its children that needed the state
  // wait for it. Inside the node: that kept state is forgotten (a recompute stage starting there
  // starts from an earlier one). FailedPrecondition for a state the tree does not hold.
  absl::Status LoseState(NodeId node, Step step);
  // The last step inside the node whose state was kept (AddCheckpoint), or its start if none.
  Step LatestCheckpoint(NodeId node) const {
    return LatestCheckpointBefore(node, nodes_[node].end);
  }

  // Called with every node that becomes ready, as it does (the scheduler's queue follows it).
  void set_on_ready(std::function<void(NodeId)> on_ready) { on_ready_ = std::move(on_ready); }

  // Reads.
  const std::string& family_key() const { return family_key_; }
  const std::vector<std::string>& parameter_names() const { return parameter_names_; }
  size_t node_count() const { return nodes_.size(); }  // the root included
  size_t trial_count() const { return trials_.size(); }
  NodeView node(NodeId id) const;
  std::vector<NodeId> Children(NodeId node) const;
  Step root_step() const { return nodes_[kRootNode].end; }
  // Root excluded, in order from the root; concatenated they cover [root_step(), target).
  std::vector<NodeId> Path(TrialId trial) const;
  Step Target(TrialId trial) const { return trials_[trial].target; }
  NodeId Leaf(TrialId trial) const { return trials_[trial].leaf; }
  // Every trial whose path contains `node` (the trials that end in its subtree).
  std::vector<TrialId> TrialsThrough(NodeId node) const;
  // The value of every parameter (in parameter_names() order) on `step` of `node`.
  std::vector<double> ValuesAt(NodeId node, Step step) const;
  // The node's segment functions over its steps, per parameter (in parameter_names() order).
  std::vector<std::vector<Segment>> SegmentsOf(NodeId node) const;
  std::vector<NodeId> ReadyNodes() const;  // sorted
  const absl::flat_hash_set<NodeId>& ready_set() const { return ready_; }
  const StepCounts& counts() const { return counts_; }
  // Approximate heap bytes held by the tree's own structures.
  size_t MemoryBytes() const;

  // Snapshots (stage_tree_snapshot.cc; proto/hippo/snapshot/tree_snapshot.proto), for a
  // compacted operation log: the whole tree, so that one restored from it has the same node and
  // trial ids and makes the same decisions on later operations as this one. Restore replaces
  // everything but the on_ready callback, which it does not call; DataLoss naming the field when
  // the snapshot's columns disagree or name ids out of range.
  void Save(hippo::snapshot::TreeSnapshot& out) const;
  absl::Status Restore(const hippo::snapshot::TreeSnapshot& snapshot);

 private:
  using FunctionId = uint32_t;
  using FunctionSetId = uint32_t;
  using FunctionSetKey = absl::InlinedVector<FunctionId, 4>;

  // A run of steps under one set of functions. Pieces of one trial are stored contiguously; a
  // piece's start is the previous piece's end. Steps are stored in 32 bits (horizons are
  // checked against that on insertion) to keep millions of records small.
  using StoredStep = int32_t;
  struct Piece {
    StoredStep end;
    FunctionSetId functions;
  };

  struct Node {
    StoredStep start;
    StoredStep end;
    NodeId parent;
    NodeId first_child;
    NodeId next_sibling;
    uint32_t piece;       // index in pieces_ of the piece that contains `start`
    TrialId first_trial;  // head of the list of trials that end at this node
    // How many trials' paths contain this node (trials end at a node's end, so each covers
    // it whole): what training it adds to reached_trial_steps.
    uint32_t trials_through;
    StageState state;
    bool recompute;
  };

  struct Trial {
    StoredStep target;
    StoredStep horizon;
    NodeId leaf;
    // The trial's pieces from one that contains a step at or before its target, up to its
    // horizon (what an extension needs); kNoPiece when target == horizon. The steps before
    // are already held by the nodes of its path, so they are not stored twice.
    uint32_t pieces;
    TrialId next_at_leaf;
    TrialId previous_at_leaf;
  };

  // The pieces of the trial being inserted or extended: in scratch_ (not yet stored) or in
  // pieces_ (stored by an earlier insertion).
  struct TrialRun {
    bool stored;
    uint32_t index;                     // of the current piece
    uint32_t stored_from = UINT32_MAX;  // where scratch_ was copied into pieces_, if it was
  };

  struct ChildKey {
    NodeId parent;
    uint64_t first_values_hash;
    friend bool operator==(const ChildKey&, const ChildKey&) = default;
    template <typename H>
    friend H AbslHashValue(H hash, const ChildKey& key) {
      return H::combine(std::move(hash), key.parent, key.first_values_hash);
    }
  };

  // Fills scratch_ with the trial's pieces; InvalidArgument if the sequences do not fit.
  absl::Status BuildPieces(const TrialSequences& sequences, Step* horizon);
  FunctionId InternFunction(const SegmentFunction& function);
  FunctionSetId InternFunctionSet(const FunctionSetKey& key);
  double Evaluate(FunctionSetId set, size_t parameter, Step step) const;
  bool SameValues(FunctionSetId a, FunctionSetId b, Step step) const;
  uint64_t ValuesHash(FunctionSetId set, Step step) const;
  const Piece& RunPiece(const TrialRun& run) const {
    return run.stored ? pieces_[run.index] : scratch_[run.index];
  }
  // Moves `run` forward to the piece that contains `step`.
  void Advance(TrialRun& run, Step step) const;
  // The stored piece at or after `piece` (of the same run) that contains `step`.
  uint32_t PieceContaining(uint32_t piece, Step step) const;
  // Copies scratch_ from the run's current piece into pieces_ (once) and returns the index
  // of the current piece there.
  uint32_t Store(TrialRun& run);
  // Where the trial's run first differs from `node`, searching [node start, limit); returns
  // limit if it never does.
  Step Divergence(const Node& node, TrialRun run, Step limit) const;
  NodeId FindChild(NodeId parent, FunctionSetId wanted, Step step) const;
  NodeId AddNode(NodeId parent, Step start, Step end, uint32_t piece);
  void LinkChild(NodeId parent, NodeId child);
  void UnlinkChild(NodeId parent, NodeId child);
  // Walks down from `node` at `step` along the trial's run until `target`; returns the leaf.
  NodeId Descend(NodeId node, Step step, TrialRun& run, Step target,
                 std::vector<SplitResult>* splits);
  void AttachTrial(TrialId trial, NodeId leaf);
  // A trial's path now also holds the nodes from `leaf` up to (not including) `above`.
  void CountTrialThrough(NodeId leaf, NodeId above);
  // Whether the node's steps were trained once (done, or done and then to be recomputed).
  bool Trained(NodeId node) const {
    return nodes_[node].state == StageState::kDone || nodes_[node].recompute;
  }
  void DetachTrial(TrialId trial);
  bool HasStateAtEnd(NodeId node) const;
  // Whether a pending node can start: its starting state exists.
  bool CanStart(NodeId node) const;
  Step RecomputeFrom(NodeId node) const;
  // The latest state kept inside (start, before) of a node, or its start.
  Step LatestCheckpointBefore(NodeId node, Step before) const;
  absl::Status CheckNode(NodeId node) const;
  // Every state change goes through here, so that ready_ stays exact.
  void SetState(NodeId node, StageState state);

  std::string family_key_;
  std::vector<std::string> parameter_names_;
  ChunkedVector<Node> nodes_;
  ChunkedVector<Trial> trials_;
  ChunkedVector<Piece> pieces_;
  std::vector<Piece> scratch_;
  std::vector<SegmentFunction> functions_;
  absl::flat_hash_map<SegmentFunction, FunctionId> function_ids_;
  std::vector<FunctionId> function_set_members_;  // parameter_names_.size() per set
  absl::flat_hash_map<FunctionSetKey, FunctionSetId> function_set_ids_;
  absl::flat_hash_map<ChildKey, NodeId> children_;
  // Parents with a child that children_ could not hold (a hash collision): scan their list.
  absl::flat_hash_set<NodeId> parents_with_unmapped_children_;
  // Checkpoints kept inside nodes (rare: only when asked for), by node.
  absl::flat_hash_map<NodeId, std::vector<Step>> inner_checkpoints_;
  absl::flat_hash_set<NodeId> ready_;
  std::function<void(NodeId)> on_ready_;
  // Where each pending recompute stage starts (rare), by node.
  absl::flat_hash_map<NodeId, Step> recompute_from_;
  StepCounts counts_;
};

}  // namespace hippo::stage_tree

#endif  // HIPPO_STAGE_TREE_STAGE_TREE_H_
