// Lost states: a stage whose starting state cannot be read (its checkpoint file is missing,
// corrupt, or was collected) is not failed. The state is marked lost in the tree, which makes
// the stage that ended there a recompute stage from its nearest kept state (a lost grandparent
// state is found the same way when that recomputation cannot read its own start), and the
// stage waits for it. The recomputed steps count in StepCounts.recomputed_steps.
#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

bool EngineImpl::RepairLostState(const Attempt& attempt, store::WriteBatch& batch) {
  FamilyState& family = FamilyById(attempt.family_id);
  const stage_tree::NodeView assigned = family.tree().node(attempt.assigned);
  if (assigned.state != StageState::kRunning) return false;
  // The state the Assign named (AssignTo): a state kept inside the stage itself for a rerun
  // from there, else its parent's end.
  NodeId owner = assigned.parent;
  Step step = assigned.start;
  if (assigned.recompute && assigned.recompute_from > assigned.start) {
    owner = attempt.assigned;
    step = assigned.recompute_from;
  }
  // The root: a fresh state (nothing was read), or another family's state this family inherits,
  // which it cannot recompute: the loss fails the attempt.
  if (owner == stage_tree::kRootNode) return false;
  // Workers that cannot read each other's checkpoint directories would hand a state back and
  // forth: past this many repairs for one stage, the loss counts as a failure of the attempt.
  if (++repairs_[GlobalStageId(family.id(), attempt.assigned)] > 2 * options_.max_attempts) {
    return false;
  }
  // A loss another attempt reported first is being repaired already; the tree refuses it again.
  if (family.tree().LoseState(owner, step).ok()) {
    family.AppendOp(store::TreeOpKind::kStateLost, owner, step, "", batch);
    batch.stages.push_back(StageRecordOf(family, owner));
    batch.events.push_back(
        Event("", "state_lost",
              absl::StrCat("{\"stage\": ", GlobalStageId(family.id(), owner), ", \"step\": ", step,
                           ", \"attempt\": ", attempt.id, "}")));
    ++stats_.states_lost;
  }
  return true;
}

}  // namespace hippo::coordinator
