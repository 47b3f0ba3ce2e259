// Inherited states: a kMorph request's trial starts from its parent's trained state instead of
// from scratch. Its family (its own structure, and the state it inherits, in its key) records
// the parent family, the lineage of the stage that reached the state and its step; the family's
// tree is rooted at that step, so its first stages start there, from that state, like any fork,
// and a crash mid-stage starts them from it again. That state stays its own family's: if it is
// lost or released, that family recomputes it and the first stages wait (engine_repair.cc).
#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;

absl::StatusOr<Inheritance> EngineImpl::InheritanceOf(const StudyState& study,
                                                      const search_algos::Request& request) const {
  const auto count = static_cast<int64_t>(study.trials.size());
  if (request.trial < 0 || request.trial >= count) {
    return absl::InvalidArgumentError(absl::StrCat("a morph of unknown trial ", request.trial));
  }
  const TrialState& parent = study.trials[request.trial];
  const FamilyState& family = FamilyById(parent.family_id);
  if (family.client_trained()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a morph of trial ", request.trial, ": its client trains it, so no state of it is kept"));
  }
  if (request.target <= request.fork_step) {
    return absl::InvalidArgumentError(absl::StrCat("a morph of trial ", request.trial, " at step ",
                                                   request.fork_step,
                                                   " must train beyond it; "
                                                   "its target is ",
                                                   request.target));
  }
  // The stage of the parent's path that ends at the step, done: its state there is kept.
  for (NodeId node : family.tree().Path(parent.tree_trial)) {
    const stage_tree::NodeView view = family.tree().node(node);
    if (view.end != request.fork_step) continue;
    if (view.state != StageState::kDone || view.recompute) break;
    return Inheritance{
        .family_id = family.id(), .lineage = family.lineage(node), .step = request.fork_step};
  }
  return absl::FailedPreconditionError(
      absl::StrCat("a morph of trial ", request.trial, " at step ", request.fork_step,
                   ": no done stage of its path ends there (a morph inherits a state the parent "
                   "has reached and kept: its target)"));
}

void EngineImpl::SetInheritedStart(const FamilyState& family, v1::Assign& assign) const {
  const Inheritance& from = family.inheritance();
  const FamilyState& parent = FamilyById(from.family_id);
  // A lineage is the id of the node that started it, which keeps that id when it is split.
  const auto lineage = static_cast<NodeId>(from.lineage);
  assign.set_parent_stage_id(parent.WorkerStageId(lineage));
  assign.set_parent_state_step(from.step);
  if (const std::string* uri = parent.StateUri(lineage, from.step)) {
    assign.set_parent_state_uri(*uri);
  }
  // The parent family's structural values (its architecture), from any trial through the stage.
  const stage_tree::TrialId any_trial = parent.tree().TrialsThrough(lineage).front();
  const auto& [study_index, number] = parent.OwnerOf(any_trial);
  v1::InheritedState& inherit = *assign.mutable_inherit();
  for (const auto& [name, value] : studies_[study_index]->trials[number].structural) {
    (*inherit.mutable_parent_static_parameters())[name] = engine_internal::ToProtoValue(value);
  }
}

int64_t EngineImpl::InheritedFromStage(const FamilyState& family) const {
  const Inheritance& from = family.inheritance();
  const NodeId node = InheritedNode(family);
  return GlobalStageId(from.family_id,
                       node != stage_tree::kNoNode ? node : static_cast<NodeId>(from.lineage));
}

NodeId EngineImpl::InheritedNode(const FamilyState& family) const {
  const Inheritance& from = family.inheritance();
  if (!from.inherits()) return stage_tree::kNoNode;
  const FamilyState& parent = FamilyById(from.family_id);
  // The part of the lineage that ends at the step: splits may have cut the lineage's node.
  auto ends_there = [&](NodeId node) {
    return node != stage_tree::kRootNode && node < parent.tree().node_count() &&
           parent.lineage(node) == from.lineage && parent.tree().node(node).end == from.step;
  };
  if (ends_there(family.inherited_node_hint())) return family.inherited_node_hint();
  for (NodeId node = 1; node < parent.tree().node_count(); ++node) {
    if (!ends_there(node)) continue;
    family.set_inherited_node_hint(node);
    return node;
  }
  return stage_tree::kNoNode;
}

bool EngineImpl::InheritedStateKept(const FamilyState& family) const {
  if (!family.inheritance().inherits()) return true;
  const NodeId node = InheritedNode(family);
  if (node == stage_tree::kNoNode) return false;
  const stage_tree::NodeView view = FamilyById(family.inheritance().family_id).tree().node(node);
  return view.state == StageState::kDone && !view.recompute;
}

}  // namespace hippo::coordinator
