// StageTree::Save and StageTree::Restore: the tree as columns of a TreeSnapshot
// (proto/hippo/snapshot/tree_snapshot.proto). Everything a later operation reads is stored as
// it is, the indexes that are a function of it (interned ids, the ready set) are rebuilt.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "hippo/snapshot/tree_snapshot.pb.h"
#include "stage_tree/stage_tree.h"

namespace hippo::stage_tree {

namespace {

absl::Status Corrupt(const std::string& what) {
  return absl::DataLossError(absl::StrCat("tree snapshot: ", what));
}

// Every field of a column group has `size` elements.
template <typename... Columns>
bool SameSize(int size, const Columns&... columns) {
  return ((columns.size() == size) && ...);
}

}  // namespace

void StageTree::Save(hippo::snapshot::TreeSnapshot& out) const {
  out.Clear();
  out.set_family_key(family_key_);
  for (const std::string& name : parameter_names_) out.add_parameter_names(name);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    out.add_node_start(node.start);
    out.add_node_end(node.end);
    out.add_node_parent(node.parent);
    out.add_node_first_child(node.first_child);
    out.add_node_next_sibling(node.next_sibling);
    out.add_node_piece(node.piece);
    out.add_node_first_trial(node.first_trial);
    out.add_node_state(static_cast<uint32_t>(node.state));
    out.add_node_recompute(node.recompute);
    out.add_node_trials_through(node.trials_through);
  }
  for (size_t i = 0; i < trials_.size(); ++i) {
    const Trial& trial = trials_[i];
    out.add_trial_target(trial.target);
    out.add_trial_horizon(trial.horizon);
    out.add_trial_leaf(trial.leaf);
    out.add_trial_pieces(trial.pieces);
    out.add_trial_next_at_leaf(trial.next_at_leaf);
    out.add_trial_previous_at_leaf(trial.previous_at_leaf);
  }
  for (size_t i = 0; i < pieces_.size(); ++i) {
    out.add_piece_end(pieces_[i].end);
    out.add_piece_functions(pieces_[i].functions);
  }
  for (const SegmentFunction& function : functions_) {
    out.add_function_kind(static_cast<uint32_t>(function.kind));
    out.add_function_first(function.first);
    out.add_function_second(function.second);
    out.add_function_origin(function.origin);
    out.add_function_span(function.span);
  }
  out.set_function_set_count(static_cast<uint32_t>(function_set_ids_.size()));
  for (FunctionId member : function_set_members_) out.add_function_set_members(member);
  for (const auto& [key, child] : children_) {
    out.add_child_parent(key.parent);
    out.add_child_hash(key.first_values_hash);
    out.add_child_node(child);
  }
  for (NodeId parent : parents_with_unmapped_children_) {
    out.add_parents_with_unmapped_children(parent);
  }
  for (const auto& [node, steps] : inner_checkpoints_) {
    for (Step step : steps) {
      out.add_inner_checkpoint_node(node);
      out.add_inner_checkpoint_step(step);
    }
  }
  for (const auto& [node, step] : recompute_from_) {
    out.add_recompute_from_node(node);
    out.add_recompute_from_step(step);
  }
  out.set_trial_steps(counts_.trial_steps);
  out.set_unique_steps(counts_.unique_steps);
  out.set_executed_steps(counts_.executed_steps);
  out.set_recomputed_steps(counts_.recomputed_steps);
  out.set_recompute_stages(counts_.recompute_stages);
  out.set_reached_trial_steps(counts_.reached_trial_steps);
}

absl::Status StageTree::Restore(const hippo::snapshot::TreeSnapshot& in) {
  const int nodes = in.node_start_size();
  const int trials = in.trial_target_size();
  const int pieces = in.piece_end_size();
  const int functions = in.function_kind_size();
  const size_t parameters = static_cast<size_t>(in.parameter_names_size());
  if (nodes < 1 || !SameSize(nodes, in.node_end(), in.node_parent(), in.node_first_child(),
                             in.node_next_sibling(), in.node_piece(), in.node_first_trial(),
                             in.node_state(), in.node_recompute(), in.node_trials_through())) {
    return Corrupt("the node columns (node_*) must have one element per node, at least the root");
  }
  if (!SameSize(trials, in.trial_horizon(), in.trial_leaf(), in.trial_pieces(),
                in.trial_next_at_leaf(), in.trial_previous_at_leaf())) {
    return Corrupt("the trial columns (trial_*) differ in length");
  }
  if (!SameSize(pieces, in.piece_functions())) {
    return Corrupt("piece_end and piece_functions differ in length");
  }
  if (!SameSize(functions, in.function_first(), in.function_second(), in.function_origin(),
                in.function_span())) {
    return Corrupt("the function columns (function_*) differ in length");
  }
  if (in.function_set_members_size() !=
      static_cast<int64_t>(in.function_set_count()) * static_cast<int64_t>(parameters)) {
    return Corrupt("function_set_members must hold parameter_names_size() ids per set");
  }
  if (!SameSize(in.child_parent_size(), in.child_hash(), in.child_node()) ||
      !SameSize(in.inner_checkpoint_node_size(), in.inner_checkpoint_step()) ||
      !SameSize(in.recompute_from_node_size(), in.recompute_from_step())) {
    return Corrupt("the child, inner checkpoint or recompute columns differ in length");
  }
  auto valid_node = [nodes](uint32_t id) {
    return id == kNoNode || id < static_cast<uint32_t>(nodes);
  };
  for (int i = 0; i < nodes; ++i) {
    if (in.node_state(i) > static_cast<uint32_t>(StageState::kFailed) ||
        !valid_node(in.node_parent(i)) || !valid_node(in.node_first_child(i)) ||
        !valid_node(in.node_next_sibling(i))) {
      return Corrupt(absl::StrCat("node ", i, " has a state or a link out of range"));
    }
  }
  for (uint32_t kind : in.function_kind()) {
    if (kind > static_cast<uint32_t>(FunctionKind::kCosine)) {
      return Corrupt(absl::StrCat("function_kind ", kind, " is unknown"));
    }
  }

  family_key_ = in.family_key();
  parameter_names_.assign(in.parameter_names().begin(), in.parameter_names().end());
  nodes_ = ChunkedVector<Node>();
  for (int i = 0; i < nodes; ++i) {
    nodes_.push_back(Node{in.node_start(i), in.node_end(i), in.node_parent(i),
                          in.node_first_child(i), in.node_next_sibling(i), in.node_piece(i),
                          in.node_first_trial(i), in.node_trials_through(i),
                          static_cast<StageState>(in.node_state(i)), in.node_recompute(i)});
  }
  trials_ = ChunkedVector<Trial>();
  for (int i = 0; i < trials; ++i) {
    trials_.push_back(Trial{in.trial_target(i), in.trial_horizon(i), in.trial_leaf(i),
                            in.trial_pieces(i), in.trial_next_at_leaf(i),
                            in.trial_previous_at_leaf(i)});
  }
  pieces_ = ChunkedVector<Piece>();
  for (int i = 0; i < pieces; ++i) pieces_.push_back(Piece{in.piece_end(i), in.piece_functions(i)});
  scratch_.clear();
  functions_.clear();
  function_ids_.clear();
  for (int i = 0; i < functions; ++i) {
    SegmentFunction function;
    function.kind = static_cast<FunctionKind>(in.function_kind(i));
    function.first = in.function_first(i);
    function.second = in.function_second(i);
    function.origin = in.function_origin(i);
    function.span = in.function_span(i);
    function_ids_.try_emplace(function, static_cast<FunctionId>(functions_.size()));
    functions_.push_back(function);
  }
  function_set_members_.assign(in.function_set_members().begin(), in.function_set_members().end());
  function_set_ids_.clear();
  for (uint32_t set = 0; set < in.function_set_count(); ++set) {
    const auto first = function_set_members_.begin() + static_cast<ptrdiff_t>(set * parameters);
    function_set_ids_.try_emplace(FunctionSetKey(first, first + static_cast<ptrdiff_t>(parameters)),
                                  set);
  }
  children_.clear();
  for (int i = 0; i < in.child_parent_size(); ++i) {
    children_.try_emplace(ChildKey{in.child_parent(i), in.child_hash(i)}, in.child_node(i));
  }
  parents_with_unmapped_children_.clear();
  parents_with_unmapped_children_.insert(in.parents_with_unmapped_children().begin(),
                                         in.parents_with_unmapped_children().end());
  inner_checkpoints_.clear();
  for (int i = 0; i < in.inner_checkpoint_node_size(); ++i) {
    inner_checkpoints_[in.inner_checkpoint_node(i)].push_back(in.inner_checkpoint_step(i));
  }
  recompute_from_.clear();
  for (int i = 0; i < in.recompute_from_node_size(); ++i) {
    recompute_from_[in.recompute_from_node(i)] = in.recompute_from_step(i);
  }
  ready_.clear();
  for (int i = 0; i < nodes; ++i) {
    if (nodes_[i].state == StageState::kReady) ready_.insert(static_cast<NodeId>(i));
  }
  counts_.trial_steps = in.trial_steps();
  counts_.unique_steps = in.unique_steps();
  counts_.executed_steps = in.executed_steps();
  counts_.recomputed_steps = in.recomputed_steps();
  counts_.recompute_stages = in.recompute_stages();
  counts_.reached_trial_steps = in.reached_trial_steps();
  return absl::OkStatus();
}

}  // namespace hippo::stage_tree
