// FamilyState::SaveSnapshot and FamilyState::RestoreSnapshot (a compacted operation log,
// docs/durability.md): the tree and what replaying the operations before the snapshot built.
#include "absl/strings/str_cat.h"
#include "hippo/family_state.h"
#include "hippo/snapshot/tree_snapshot.pb.h"

namespace hippo::coordinator {

using stage_tree::NodeId;

void FamilyState::SaveSnapshot(hippo::snapshot::FamilySnapshot& out) const {
  out.Clear();
  tree_->Save(*out.mutable_tree());
  out.set_through_sequence(next_op_ - 1);
  for (int64_t lineage : lineage_) out.add_lineage(lineage);
  for (int64_t step : breakpoints_) out.add_breakpoints(step);
  for (const auto& [node, count] : attempts_of_node_)
    (*out.mutable_attempts_of_node())[node] = count;
  for (const auto& [node, base] : budget_base_) (*out.mutable_budget_base())[node] = base;
  for (const auto& [node, error] : failures_) (*out.mutable_failures())[node] = error;
}

absl::Status FamilyState::RestoreSnapshot(const hippo::snapshot::FamilySnapshot& snapshot) {
  if (next_op_ != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("family ", id_, ": a snapshot is restored before any operation"));
  }
  if (snapshot.through_sequence() < 1 ||
      snapshot.lineage_size() != snapshot.tree().node_start_size()) {
    return absl::DataLossError(absl::StrCat(
        "family ", id_, ": its tree snapshot has ", snapshot.lineage_size(), " lineages for ",
        snapshot.tree().node_start_size(), " nodes (or no operation before it)"));
  }
  if (absl::Status status = tree_->Restore(snapshot.tree()); !status.ok()) {
    return absl::DataLossError(absl::StrCat("family ", id_, ": ", status.message()));
  }
  lineage_.assign(snapshot.lineage().begin(), snapshot.lineage().end());
  breakpoints_.insert(snapshot.breakpoints().begin(), snapshot.breakpoints().end());
  for (const auto& [node, count] : snapshot.attempts_of_node()) attempts_of_node_[node] = count;
  for (const auto& [node, base] : snapshot.budget_base()) budget_base_[node] = base;
  for (const auto& [node, error] : snapshot.failures()) failures_[node] = error;
  next_op_ = snapshot.through_sequence() + 1;
  priorities_dirty_ = true;
  return absl::OkStatus();
}

}  // namespace hippo::coordinator
