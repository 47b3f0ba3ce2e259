#include "stage_tree/stage_tree.h"

#include <algorithm>
#include <bit>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hippo::stage_tree {
namespace {

constexpr TrialId kNoTrial = UINT32_MAX;
constexpr uint32_t kNoPiece = UINT32_MAX;
constexpr Step kMaxStoredStep = INT32_MAX;

absl::Status NodeError(NodeId node, const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat("stage ", node, ": ", what));
}

}  // namespace

const char* StageStateName(StageState state) {
  switch (state) {
    case StageState::kPending:
      return "pending";
    case StageState::kReady:
      return "ready";
    case StageState::kRunning:
      return "running";
    case StageState::kDone:
      return "done";
    case StageState::kFailed:
      return "failed";
  }
  return "unknown";
}

StageTree::StageTree(std::string family_key, std::vector<std::string> parameter_names,
                     Step root_step)
    : family_key_(std::move(family_key)), parameter_names_(std::move(parameter_names)) {
  std::sort(parameter_names_.begin(), parameter_names_.end());
  parameter_names_.erase(std::unique(parameter_names_.begin(), parameter_names_.end()),
                         parameter_names_.end());
  const auto root = static_cast<StoredStep>(std::clamp<Step>(root_step, 0, kMaxStoredStep - 1));
  nodes_.push_back(
      Node{root, root, kNoNode, kNoNode, kNoNode, 0, kNoTrial, 0, StageState::kDone, false});
}

StageTree::FunctionId StageTree::InternFunction(const SegmentFunction& function) {
  auto [it, inserted] = function_ids_.try_emplace(function, functions_.size());
  if (inserted) functions_.push_back(function);
  return it->second;
}

StageTree::FunctionSetId StageTree::InternFunctionSet(const FunctionSetKey& key) {
  const FunctionSetId next = function_set_ids_.size();
  auto [it, inserted] = function_set_ids_.try_emplace(key, next);
  if (inserted) function_set_members_.insert(function_set_members_.end(), key.begin(), key.end());
  return it->second;
}

absl::Status StageTree::BuildPieces(const TrialSequences& sequences, Step* horizon) {
  if (sequences.size() != parameter_names_.size() ||
      !std::equal(parameter_names_.begin(), parameter_names_.end(), sequences.begin(),
                  [](const std::string& name, const auto& entry) { return name == entry.first; })) {
    std::vector<std::string> given;
    for (const auto& [name, sequence] : sequences) given.push_back(name);
    return absl::InvalidArgumentError(absl::StrCat(
        "a trial of family '", family_key_, "' needs sequences for exactly [",
        absl::StrJoin(parameter_names_, ", "), "]; got [", absl::StrJoin(given, ", "), "]"));
  }
  // A family whose hyper-parameters are all structural has no sequences to bound its trials:
  // they may reach any step that can be stored.
  *horizon = sequences.empty() ? kMaxStoredStep : sequences.begin()->second.Horizon();
  for (const auto& [name, sequence] : sequences) {
    if (sequence.Horizon() != *horizon || *horizon <= 0 || *horizon > kMaxStoredStep) {
      return absl::InvalidArgumentError(absl::StrCat(
          "every sequence of a trial must cover the same number of steps, in [1, ", kMaxStoredStep,
          "]; '", name, "' covers ", sequence.Horizon(), ", expected ", *horizon));
    }
  }
  scratch_.clear();
  std::vector<size_t> segment_index(sequences.size(), 0);
  FunctionSetKey key(sequences.size());
  Step position = 0;
  while (position < *horizon) {
    Step next = *horizon;
    size_t parameter = 0;
    for (const auto& [name, sequence] : sequences) {
      const Segment& segment = sequence.segments()[segment_index[parameter]];
      key[parameter] = InternFunction(segment.function);
      next = std::min(next, segment.end);
      ++parameter;
    }
    const FunctionSetId set = InternFunctionSet(key);
    if (!scratch_.empty() && scratch_.back().functions == set) {
      scratch_.back().end = static_cast<StoredStep>(next);
    } else {
      scratch_.push_back({static_cast<StoredStep>(next), set});
    }
    parameter = 0;
    for (const auto& [name, sequence] : sequences) {
      if (sequence.segments()[segment_index[parameter]].end == next) ++segment_index[parameter];
      ++parameter;
    }
    position = next;
  }
  return absl::OkStatus();
}

double StageTree::Evaluate(FunctionSetId set, size_t parameter, Step step) const {
  const FunctionId function = function_set_members_[set * parameter_names_.size() + parameter];
  return functions_[function].Evaluate(step);
}

bool StageTree::SameValues(FunctionSetId a, FunctionSetId b, Step step) const {
  if (a == b) return true;
  for (size_t parameter = 0; parameter < parameter_names_.size(); ++parameter) {
    const double left = Evaluate(a, parameter, step);
    const double right = Evaluate(b, parameter, step);
    if (std::bit_cast<uint64_t>(left) != std::bit_cast<uint64_t>(right) &&
        !(left == 0.0 && right == 0.0)) {
      return false;
    }
  }
  return true;
}

uint64_t StageTree::ValuesHash(FunctionSetId set, Step step) const {
  uint64_t hash = 0x9e3779b97f4a7c15ULL;
  for (size_t parameter = 0; parameter < parameter_names_.size(); ++parameter) {
    double value = Evaluate(set, parameter, step);
    if (value == 0.0) value = 0.0;  // -0.0 and 0.0 are the same value
    hash = absl::HashOf(hash, std::bit_cast<uint64_t>(value));
  }
  return hash;
}

uint32_t StageTree::PieceContaining(uint32_t piece, Step step) const {
  while (pieces_[piece].end <= step) ++piece;
  return piece;
}

void StageTree::Advance(TrialRun& run, Step step) const {
  while (RunPiece(run).end <= step) ++run.index;
}

uint32_t StageTree::Store(TrialRun& run) {
  if (run.stored) return run.index;
  const auto stored = static_cast<uint32_t>(pieces_.size());
  for (size_t piece = run.index; piece < scratch_.size(); ++piece)
    pieces_.push_back(scratch_[piece]);
  run = TrialRun{true, stored, stored};
  return stored;
}

Step StageTree::Divergence(const Node& node, TrialRun run, Step limit) const {
  uint32_t node_piece = node.piece;
  Step position = node.start;
  Advance(run, position);
  while (position < limit) {
    const Piece& ours = pieces_[node_piece];
    const Piece& theirs = RunPiece(run);
    const Step run_end = std::min<Step>({ours.end, theirs.end, limit});
    const bool same_piece = run.stored && run.index == node_piece;
    if (!same_piece && ours.functions != theirs.functions) {
      // Different functions may still agree on some steps; compare the values one by one.
      for (Step step = position; step < run_end; ++step) {
        if (!SameValues(ours.functions, theirs.functions, step)) return step;
      }
    }
    position = run_end;
    if (ours.end == position) ++node_piece;
    if (theirs.end == position) ++run.index;
  }
  return limit;
}

NodeId StageTree::FindChild(NodeId parent, FunctionSetId wanted, Step step) const {
  auto matches = [&](NodeId child) {
    return SameValues(pieces_[nodes_[child].piece].functions, wanted, step);
  };
  auto it = children_.find(ChildKey{parent, ValuesHash(wanted, step)});
  if (it != children_.end() && matches(it->second)) return it->second;
  if (parents_with_unmapped_children_.contains(parent)) {
    for (NodeId child = nodes_[parent].first_child; child != kNoNode;
         child = nodes_[child].next_sibling) {
      if (matches(child)) return child;
    }
  }
  return kNoNode;
}

void StageTree::LinkChild(NodeId parent, NodeId child) {
  nodes_[child].parent = parent;
  nodes_[child].next_sibling = nodes_[parent].first_child;
  nodes_[parent].first_child = child;
  const Node& node = nodes_[child];
  const ChildKey key{parent, ValuesHash(pieces_[node.piece].functions, node.start)};
  if (!children_.try_emplace(key, child).second) parents_with_unmapped_children_.insert(parent);
}

void StageTree::UnlinkChild(NodeId parent, NodeId child) {
  const Node& node = nodes_[child];
  const ChildKey key{parent, ValuesHash(pieces_[node.piece].functions, node.start)};
  if (auto it = children_.find(key); it != children_.end() && it->second == child) {
    children_.erase(it);
  }
  NodeId* link = &nodes_[parent].first_child;
  while (*link != child) link = &nodes_[*link].next_sibling;
  *link = nodes_[child].next_sibling;
  nodes_[child].next_sibling = kNoNode;
}

NodeId StageTree::AddNode(NodeId parent, Step start, Step end, uint32_t piece) {
  const auto id = static_cast<NodeId>(nodes_.size());
  nodes_.push_back(Node{static_cast<StoredStep>(start), static_cast<StoredStep>(end), kNoNode,
                        kNoNode, kNoNode, piece, kNoTrial, 0, StageState::kPending, false});
  if (HasStateAtEnd(parent)) SetState(id, StageState::kReady);
  LinkChild(parent, id);
  counts_.unique_steps += end - start;
  return id;
}

NodeId StageTree::Descend(NodeId node, Step step, TrialRun& run, Step target,
                          std::vector<SplitResult>* splits) {
  while (step < target) {
    Advance(run, step);
    const NodeId child = FindChild(node, RunPiece(run).functions, step);
    if (child == kNoNode) return AddNode(node, step, target, Store(run));
    const Step child_end = nodes_[child].end;
    const Step divergence = Divergence(nodes_[child], run, std::min(child_end, target));
    if (divergence < child_end) {
      // Split cannot fail here: the child matched at its first step, so start < divergence.
      absl::StatusOr<SplitResult> split = Split(child, divergence);
      if (splits != nullptr && split.ok()) splits->push_back(*split);
    }
    node = child;
    step = divergence;
  }
  return node;
}

void StageTree::AttachTrial(TrialId trial, NodeId leaf) {
  Trial& record = trials_[trial];
  record.leaf = leaf;
  record.previous_at_leaf = kNoTrial;
  record.next_at_leaf = nodes_[leaf].first_trial;
  if (record.next_at_leaf != kNoTrial) trials_[record.next_at_leaf].previous_at_leaf = trial;
  nodes_[leaf].first_trial = trial;
}

void StageTree::CountTrialThrough(NodeId leaf, NodeId above) {
  for (NodeId node = leaf; node != above && node != kRootNode; node = nodes_[node].parent) {
    ++nodes_[node].trials_through;
    if (Trained(node)) counts_.reached_trial_steps += nodes_[node].end - nodes_[node].start;
  }
}

void StageTree::DetachTrial(TrialId trial) {
  Trial& record = trials_[trial];
  if (record.previous_at_leaf != kNoTrial) {
    trials_[record.previous_at_leaf].next_at_leaf = record.next_at_leaf;
  } else {
    nodes_[record.leaf].first_trial = record.next_at_leaf;
  }
  if (record.next_at_leaf != kNoTrial) {
    trials_[record.next_at_leaf].previous_at_leaf = record.previous_at_leaf;
  }
  record.next_at_leaf = record.previous_at_leaf = kNoTrial;
}

absl::StatusOr<TrialId> StageTree::Insert(const TrialSequences& sequences, Step target,
                                          std::vector<SplitResult>* splits) {
  Step horizon = 0;
  if (absl::Status status = BuildPieces(sequences, &horizon); !status.ok()) return status;
  const Step root = root_step();
  if (target <= root || target > horizon) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target step must be in [", root + 1, ", ", horizon,
        "] (after the family's root step, up to the sequences' horizon); got ", target));
  }
  const auto trial = static_cast<TrialId>(trials_.size());
  trials_.push_back(Trial{static_cast<StoredStep>(target), static_cast<StoredStep>(horizon),
                          kNoNode, kNoPiece, kNoTrial, kNoTrial});
  TrialRun run{false, 0};
  const NodeId leaf = Descend(kRootNode, root, run, target, splits);
  if (target < horizon) {
    // Keep what a later extension needs: the pieces from the target on.
    Advance(run, target);
    trials_[trial].pieces = Store(run);
  }
  AttachTrial(trial, leaf);
  CountTrialThrough(leaf, kRootNode);
  counts_.trial_steps += target - root;
  return trial;
}

absl::Status StageTree::Extend(TrialId trial, Step new_target, std::vector<SplitResult>* splits) {
  if (trial >= trials_.size()) {
    return absl::NotFoundError(absl::StrCat("no trial ", trial, " in this stage tree"));
  }
  const Trial record = trials_[trial];
  if (new_target <= record.target || new_target > record.horizon) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial ", trial, " can only be extended to a step in (", record.target, ", ",
                     record.horizon, "]; got ", new_target));
  }
  DetachTrial(trial);
  TrialRun run{true, record.pieces};
  const NodeId leaf = Descend(record.leaf, record.target, run, new_target, splits);
  trials_[trial].target = static_cast<StoredStep>(new_target);
  trials_[trial].pieces = run.index;
  AttachTrial(trial, leaf);
  CountTrialThrough(leaf, record.leaf);
  counts_.trial_steps += new_target - record.target;
  return absl::OkStatus();
}

bool StageTree::HasStateAtEnd(NodeId node) const {
  return node == kRootNode || (nodes_[node].state == StageState::kDone && !nodes_[node].recompute);
}

Step StageTree::RecomputeFrom(NodeId node) const {
  auto it = recompute_from_.find(node);
  return it == recompute_from_.end() ? nodes_[node].start : it->second;
}

bool StageTree::CanStart(NodeId node) const {
  const Node& record = nodes_[node];
  if (record.recompute && RecomputeFrom(node) > record.start) return true;  // from a checkpoint
  return HasStateAtEnd(record.parent);
}

Step StageTree::LatestCheckpointBefore(NodeId node, Step before) const {
  Step latest = nodes_[node].start;
  if (auto it = inner_checkpoints_.find(node); it != inner_checkpoints_.end()) {
    for (Step step : it->second) {
      if (step < before) latest = std::max(latest, step);
    }
  }
  return latest;
}

absl::StatusOr<SplitResult> StageTree::Split(NodeId node, Step step) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  if (node == kRootNode || step <= nodes_[node].start || step >= nodes_[node].end) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage ", node, " covers [", nodes_[node].start, ", ", nodes_[node].end,
                     "); it can only be split strictly inside, not at ", step));
  }
  const auto lower = static_cast<NodeId>(nodes_.size());
  {
    const Node& upper = nodes_[node];
    nodes_.push_back(Node{static_cast<StoredStep>(step), upper.end, node, upper.first_child,
                          kNoNode, PieceContaining(upper.piece, step), upper.first_trial,
                          upper.trials_through, StageState::kPending, upper.recompute});
  }
  SetState(lower, nodes_[node].state);
  // The lower part takes over the children and the trials that end here.
  std::vector<NodeId> children = Children(node);
  for (NodeId child : children) UnlinkChild(node, child);
  nodes_[lower].first_child = kNoNode;
  for (NodeId child : children) LinkChild(lower, child);
  if (parents_with_unmapped_children_.contains(node)) parents_with_unmapped_children_.insert(lower);
  for (TrialId trial = nodes_[lower].first_trial; trial != kNoTrial;
       trial = trials_[trial].next_at_leaf) {
    trials_[trial].leaf = lower;
  }
  nodes_[node].first_trial = kNoTrial;
  nodes_[node].end = static_cast<StoredStep>(step);
  LinkChild(node, lower);

  // Checkpoints kept inside the node now belong to the part that contains them.
  bool state_kept_at_step = false;
  if (auto it = inner_checkpoints_.find(node); it != inner_checkpoints_.end()) {
    std::vector<Step> upper_steps;
    std::vector<Step> lower_steps;
    for (Step kept : it->second) {
      if (kept == step) {
        state_kept_at_step = true;
      } else {
        (kept < step ? upper_steps : lower_steps).push_back(kept);
      }
    }
    it->second = std::move(upper_steps);
    if (!lower_steps.empty()) inner_checkpoints_[lower] = std::move(lower_steps);
  }

  SplitResult result{node, lower, SplitAction::kNone, 0};
  Node& upper = nodes_[node];
  if (upper.state == StageState::kRunning && state_kept_at_step &&
      (!upper.recompute || RecomputeFrom(node) < step)) {
    // The attempt passed the step and kept its state there: the upper part's steps are trained
    // and its end state exists. A rerun's lower part reruns from that state only.
    if (upper.recompute) recompute_from_[lower] = step;
    (void)MarkDone(node);  // it is running (checked above), which MarkDone accepts
    result.action = SplitAction::kUpperDone;
    return result;
  }
  if (upper.recompute) {
    // A stage that is itself waiting to be recomputed: both parts are reruns.
    const Step from = RecomputeFrom(node);
    recompute_from_[lower] = std::max(from, step);
    if (from >= step) recompute_from_[node] = LatestCheckpointBefore(node, step);
    if (upper.state != StageState::kRunning) {
      SetState(lower, CanStart(lower) ? StageState::kReady : StageState::kPending);
    }
    ++counts_.recompute_stages;
    result.action = upper.state == StageState::kRunning ? SplitAction::kCheckpointRequested
                                                        : SplitAction::kRecomputeScheduled;
    result.recompute_from = RecomputeFrom(node);
    return result;
  }
  switch (upper.state) {
    case StageState::kPending:
    case StageState::kReady:
    case StageState::kFailed:
      SetState(lower, StageState::kPending);
      break;
    case StageState::kRunning:
      result.action = SplitAction::kCheckpointRequested;
      break;
    case StageState::kDone:
      if (!state_kept_at_step) {
        upper.recompute = true;
        result.recompute_from = LatestCheckpointBefore(node, step);
        recompute_from_[node] = result.recompute_from;
        SetState(node, CanStart(node) ? StageState::kReady : StageState::kPending);
        result.action = SplitAction::kRecomputeScheduled;
        ++counts_.recompute_stages;
      }
      break;
  }
  return result;
}

absl::Status StageTree::CheckNode(NodeId node) const {
  if (node >= nodes_.size()) {
    return absl::NotFoundError(absl::StrCat("no stage ", node, " in this stage tree"));
  }
  return absl::OkStatus();
}

absl::Status StageTree::MarkRunning(NodeId node) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  if (nodes_[node].state != StageState::kReady) {
    return NodeError(node, absl::StrCat("only a ready stage can start; it is ",
                                        StageStateName(nodes_[node].state)));
  }
  SetState(node, StageState::kRunning);
  return absl::OkStatus();
}

absl::Status StageTree::MarkDone(NodeId node) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  Node& record = nodes_[node];
  if (record.state != StageState::kRunning) {
    return NodeError(node, absl::StrCat("only a running stage can finish; it is ",
                                        StageStateName(record.state)));
  }
  if (record.recompute) {
    const Step rerun = record.end - RecomputeFrom(node);
    counts_.executed_steps += rerun;
    counts_.recomputed_steps += rerun;
    record.recompute = false;
    recompute_from_.erase(node);
  } else {
    counts_.executed_steps += record.end - record.start;
    counts_.reached_trial_steps +=
        static_cast<int64_t>(record.end - record.start) * record.trials_through;
  }
  SetState(node, StageState::kDone);
  for (NodeId child = record.first_child; child != kNoNode; child = nodes_[child].next_sibling) {
    if (nodes_[child].state == StageState::kPending) SetState(child, StageState::kReady);
  }
  return absl::OkStatus();
}

absl::Status StageTree::MarkDoneWithoutState(NodeId node) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  Node& record = nodes_[node];
  if (record.state != StageState::kRunning) {
    return NodeError(node, absl::StrCat("only a running stage can finish; it is ",
                                        StageStateName(record.state)));
  }
  const Step from = record.recompute ? RecomputeFrom(node) : record.start;
  counts_.executed_steps += record.end - from;
  if (record.recompute) {
    counts_.recomputed_steps += record.end - from;
  } else {
    counts_.reached_trial_steps +=
        static_cast<int64_t>(record.end - record.start) * record.trials_through;
  }
  record.recompute = true;
  recompute_from_[node] = LatestCheckpointBefore(node, record.end);
  ++counts_.recompute_stages;
  SetState(node, CanStart(node) ? StageState::kReady : StageState::kPending);
  return absl::OkStatus();
}

absl::Status StageTree::MarkFailed(NodeId node) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  if (nodes_[node].state != StageState::kRunning) {
    return NodeError(node, "only a running stage can fail");
  }
  SetState(node, StageState::kFailed);
  return absl::OkStatus();
}

absl::Status StageTree::Requeue(NodeId node) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  const StageState state = nodes_[node].state;
  if (state != StageState::kFailed && state != StageState::kRunning) {
    return NodeError(node, "only a failed or running stage can be requeued");
  }
  SetState(node, CanStart(node) ? StageState::kReady : StageState::kPending);
  return absl::OkStatus();
}

absl::Status StageTree::AddCheckpoint(NodeId node, Step step) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  const Node& record = nodes_[node];
  if (step <= record.start || step >= record.end) {
    return NodeError(node, absl::StrCat("a checkpoint inside the stage must lie in (", record.start,
                                        ", ", record.end, "); got ", step));
  }
  std::vector<Step>& kept = inner_checkpoints_[node];
  if (std::find(kept.begin(), kept.end(), step) == kept.end()) kept.push_back(step);
  return absl::OkStatus();
}

absl::Status StageTree::DropState(NodeId node, Step step) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  Node& record = nodes_[node];
  if (node == kRootNode || step <= record.start || step > record.end) {
    return NodeError(node, absl::StrCat("a dropped state must lie in (", record.start, ", ",
                                        record.end, "]; got ", step));
  }
  if (step < record.end) {
    if (auto it = inner_checkpoints_.find(node); it != inner_checkpoints_.end()) {
      std::erase(it->second, step);
      if (it->second.empty()) inner_checkpoints_.erase(it);
    }
    if (record.recompute && RecomputeFrom(node) == step) {
      recompute_from_[node] = LatestCheckpointBefore(node, step);
      if (record.state == StageState::kReady && !CanStart(node)) {
        SetState(node, StageState::kPending);
      }
    }
    return absl::OkStatus();
  }
  if (!HasStateAtEnd(node)) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", node, " holds no state at its end ", step, " to drop (it is ",
                     StageStateName(record.state), record.recompute ? ", to be recomputed)" : ")"));
  }
  record.recompute = true;
  recompute_from_[node] = LatestCheckpointBefore(node, record.end);
  SetState(node, CanStart(node) ? StageState::kReady : StageState::kPending);
  return absl::OkStatus();
}

absl::Status StageTree::LoseState(NodeId node, Step step) {
  if (absl::Status status = CheckNode(node); !status.ok()) return status;
  Node& record = nodes_[node];
  if (node == kRootNode) return NodeError(node, "the root's state is never lost");
  if (step == record.end) {
    if (!HasStateAtEnd(node)) {
      return NodeError(node, absl::StrCat("holds no state at its end step ", step));
    }
    record.recompute = true;
    recompute_from_[node] = LatestCheckpointBefore(node, record.end);
    ++counts_.recompute_stages;
    SetState(node, CanStart(node) ? StageState::kReady : StageState::kPending);
    for (NodeId child = record.first_child; child != kNoNode; child = nodes_[child].next_sibling) {
      if (nodes_[child].state == StageState::kReady && !CanStart(child)) {
        SetState(child, StageState::kPending);
      }
    }
    return absl::OkStatus();
  }
  auto kept = inner_checkpoints_.find(node);
  auto at = kept == inner_checkpoints_.end()
                ? std::vector<Step>::iterator()
                : std::find(kept->second.begin(), kept->second.end(), step);
  if (kept == inner_checkpoints_.end() || at == kept->second.end()) {
    return NodeError(node, absl::StrCat("keeps no state at step ", step));
  }
  kept->second.erase(at);
  if (record.recompute && RecomputeFrom(node) == step) {
    recompute_from_[node] = LatestCheckpointBefore(node, step);
    if (record.state == StageState::kReady && !CanStart(node)) {
      SetState(node, StageState::kPending);
    }
  }
  return absl::OkStatus();
}

NodeView StageTree::node(NodeId id) const {
  const Node& record = nodes_[id];
  return NodeView{id,           record.parent,    record.start,      record.end,
                  record.state, record.recompute, RecomputeFrom(id), Trained(id)};
}

std::vector<NodeId> StageTree::Children(NodeId node) const {
  std::vector<NodeId> children;
  for (NodeId child = nodes_[node].first_child; child != kNoNode;
       child = nodes_[child].next_sibling) {
    children.push_back(child);
  }
  return children;
}

std::vector<NodeId> StageTree::Path(TrialId trial) const {
  std::vector<NodeId> path;
  for (NodeId node = trials_[trial].leaf; node != kRootNode; node = nodes_[node].parent) {
    path.push_back(node);
  }
  std::reverse(path.begin(), path.end());
  return path;
}

std::vector<TrialId> StageTree::TrialsThrough(NodeId node) const {
  std::vector<TrialId> trials;
  std::vector<NodeId> stack = {node};
  while (!stack.empty()) {
    const NodeId current = stack.back();
    stack.pop_back();
    for (TrialId trial = nodes_[current].first_trial; trial != kNoTrial;
         trial = trials_[trial].next_at_leaf) {
      trials.push_back(trial);
    }
    for (NodeId child = nodes_[current].first_child; child != kNoNode;
         child = nodes_[child].next_sibling) {
      stack.push_back(child);
    }
  }
  std::sort(trials.begin(), trials.end());
  return trials;
}

std::vector<double> StageTree::ValuesAt(NodeId node, Step step) const {
  const FunctionSetId set = pieces_[PieceContaining(nodes_[node].piece, step)].functions;
  std::vector<double> values;
  for (size_t parameter = 0; parameter < parameter_names_.size(); ++parameter) {
    values.push_back(Evaluate(set, parameter, step));
  }
  return values;
}

std::vector<std::vector<Segment>> StageTree::SegmentsOf(NodeId node) const {
  const Node& record = nodes_[node];
  std::vector<std::vector<Segment>> segments(parameter_names_.size());
  Step start = record.start;
  for (uint32_t piece = record.piece; start < record.end; ++piece) {
    const Step end = std::min(pieces_[piece].end, record.end);
    for (size_t parameter = 0; parameter < parameter_names_.size(); ++parameter) {
      const SegmentFunction& function =
          functions_[function_set_members_[pieces_[piece].functions * parameter_names_.size() +
                                           parameter]];
      std::vector<Segment>& list = segments[parameter];
      if (!list.empty() && list.back().function == function) {
        list.back().end = end;
      } else {
        list.push_back({start, end, function});
      }
    }
    start = end;
  }
  return segments;
}

std::vector<NodeId> StageTree::ReadyNodes() const {
  std::vector<NodeId> ready(ready_.begin(), ready_.end());
  std::sort(ready.begin(), ready.end());
  return ready;
}

void StageTree::SetState(NodeId node, StageState state) {
  StageState& current = nodes_[node].state;
  if (current == StageState::kReady && state != StageState::kReady) ready_.erase(node);
  current = state;
  if (state == StageState::kReady && ready_.insert(node).second && on_ready_) on_ready_(node);
}

size_t StageTree::MemoryBytes() const {
  auto map_bytes = [](const auto& map) {
    using Slot = typename std::decay_t<decltype(map)>::slot_type;
    return map.capacity() * (sizeof(Slot) + 1);
  };
  return nodes_.MemoryBytes() + trials_.MemoryBytes() + pieces_.MemoryBytes() +
         scratch_.capacity() * sizeof(Piece) + functions_.capacity() * sizeof(SegmentFunction) +
         function_set_members_.capacity() * sizeof(FunctionId) + map_bytes(children_) +
         map_bytes(function_ids_) + map_bytes(function_set_ids_);
}

}  // namespace hippo::stage_tree
