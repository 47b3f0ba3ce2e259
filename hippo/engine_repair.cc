// Lost states: a stage whose starting state cannot be read (its checkpoint file is missing,
// corrupt, or was collected) is not failed. The state is marked lost in the tree, which makes
// the stage that ended there a recompute stage from its nearest kept state (a lost grandparent
// state is found the same way when that recomputation cannot read its own start), and the
// stage waits for it. The recomputed steps count in StepCounts.recomputed_steps.
//
// Across families: the state an inheriting family's first stages start from (engine_inherit.cc)
// is its parent family's. Its loss is marked in the parent family's tree, which recomputes it
// as it would for a stage of its own: the parent's stages on the path to it are needed while
// the inheriting family needs the state (NeededByInheritors), and the inheriting family's first
// stages wait until the state is kept again (WaitsForInheritedState). Both follow from the
// trees alone, which the stored operations rebuild, so the wait outlives a restart.
#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

bool EngineImpl::RepairLostState(const Attempt& attempt, store::WriteBatch& batch) {
  FamilyState& family = FamilyById(attempt.family_id);
  const stage_tree::NodeView assigned = family.tree().node(attempt.assigned);
  if (assigned.state != StageState::kRunning) return false;
  // The state the Assign named (AssignTo): a state kept inside the stage itself for a rerun
  // from there, else its parent's end.
  FamilyState* holder = &family;
  NodeId owner = assigned.parent;
  Step step = assigned.start;
  if (assigned.recompute && assigned.recompute_from > assigned.start) {
    owner = attempt.assigned;
    step = assigned.recompute_from;
  }
  if (owner == stage_tree::kRootNode) {
    // The root of a family that inherits nothing is a fresh state: nothing was read.
    if (!family.inheritance().inherits()) return false;
    // Another family's state: the node of that family's tree that ends there is lost.
    owner = InheritedNode(family);
    if (owner == stage_tree::kNoNode) return false;
    holder = &FamilyById(family.inheritance().family_id);
    step = family.inheritance().step;
  }
  // Workers that cannot read each other's checkpoint directories would hand a state back and
  // forth: past this many repairs for one stage, the loss counts as a failure of the attempt.
  if (++repairs_[GlobalStageId(family.id(), attempt.assigned)] > 2 * options_.max_attempts) {
    return false;
  }
  // A loss another attempt reported first is being repaired already; the tree refuses it again.
  if (holder->tree().LoseState(owner, step).ok()) {
    holder->AppendOp(store::TreeOpKind::kStateLost, owner, step, "", batch);
    holder->InvalidatePriorities();
    batch.stages.push_back(StageRecordOf(*holder, owner));
    batch.events.push_back(
        Event("", "state_lost",
              absl::StrCat("{\"stage\": ", GlobalStageId(holder->id(), owner), ", \"step\": ", step,
                           ", \"attempt\": ", attempt.id, "}")));
    ++stats_.states_lost;
  }
  return true;
}

bool EngineImpl::WaitsForInheritedState(const FamilyState& family,
                                        const stage_tree::NodeView& view) const {
  if (view.parent != stage_tree::kRootNode || !family.inheritance().inherits()) return false;
  // A rerun from a state kept inside the stage itself does not read the inherited one.
  if (view.recompute && view.recompute_from > view.start) return false;
  return !InheritedStateKept(family);
}

bool EngineImpl::InheritorNeedsState(const FamilyState& inheritor) const {
  const stage_tree::StageTree& tree = inheritor.tree();
  for (NodeId child : tree.Children(stage_tree::kRootNode)) {
    if (tree.node(child).state != StageState::kDone && Needed(inheritor, child)) return true;
  }
  return false;
}

bool EngineImpl::NeededByInheritors(const FamilyState& family, NodeId node,
                                    bool at_end_only) const {
  auto inheritors = inheritors_.find(family.id());
  if (inheritors == inheritors_.end()) return false;
  for (int64_t id : inheritors->second) {
    const FamilyState& inheritor = FamilyById(id);
    const NodeId inherited = InheritedNode(inheritor);
    if (inherited == stage_tree::kNoNode) continue;
    bool on_path = inherited == node;
    for (NodeId above = inherited; !at_end_only && !on_path && above != stage_tree::kRootNode;) {
      above = family.tree().node(above).parent;
      on_path = above == node;
    }
    if (on_path && InheritorNeedsState(inheritor)) return true;
  }
  return false;
}

void EngineImpl::InheritedStateDone(const FamilyState& family, NodeId node) {
  auto inheritors = inheritors_.find(family.id());
  if (inheritors == inheritors_.end()) return;
  for (int64_t id : inheritors->second) {
    FamilyState& inheritor = FamilyById(id);
    if (InheritedNode(inheritor) == node) inheritor.InvalidatePriorities();
  }
}

void EngineImpl::FailInheritorsWaitingOn(const FamilyState& family, NodeId node,
                                         const std::string& message, store::WriteBatch& batch,
                                         std::set<size_t>& touched_studies) {
  auto inheritors = inheritors_.find(family.id());
  if (inheritors == inheritors_.end()) return;
  for (int64_t id : inheritors->second) {
    const FamilyState& inheritor = FamilyById(id);
    const NodeId inherited = InheritedNode(inheritor);
    if (inherited == stage_tree::kNoNode || InheritedStateKept(inheritor)) continue;
    bool on_path = inherited == node;
    for (NodeId above = inherited; !on_path && above != stage_tree::kRootNode;) {
      above = family.tree().node(above).parent;
      on_path = above == node;
    }
    if (!on_path) continue;
    const stage_tree::StageTree& tree = inheritor.tree();
    for (NodeId child : tree.Children(stage_tree::kRootNode)) {
      if (tree.node(child).state == StageState::kDone) continue;
      for (stage_tree::TrialId trial : tree.TrialsThrough(child)) {
        const auto& [study_index, number] = inheritor.OwnerOf(trial);
        if (study_index == FamilyState::kNoStudy) continue;  // of a deleted study
        if (studies_[study_index]->trials[number].state != v1::TRIAL_RUNNING) continue;
        FailTrial(study_index, number,
                  absl::StrCat("the state it inherits cannot be recomputed: ", message), batch);
        touched_studies.insert(study_index);
      }
    }
  }
}

}  // namespace hippo::coordinator
