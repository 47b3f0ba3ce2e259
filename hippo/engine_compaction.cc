// Compacting the tree-operation logs (docs/durability.md, "Compacting the operation log"): a
// family's snapshot (FamilyState::SaveSnapshot) is stored in the commit that makes its log due,
// and the store deletes the operations it covers in the same transaction, so a crash keeps
// either the old log or the snapshot and the operations after it. Recovery restores the
// snapshot and replays only what follows.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"
#include "hippo/snapshot/tree_snapshot.pb.h"

namespace hippo::coordinator {

void EngineImpl::CompactTreeLogs(store::WriteBatch& batch) {
  if (options_.compact_ops_after <= 0 || batch.tree_ops.empty()) return;
  std::set<int64_t> appended;
  for (const store::TreeOp& op : batch.tree_ops) appended.insert(op.family_id);
  for (int64_t family_id : appended) {
    const FamilyState& family = FamilyById(family_id);
    const int64_t last = family.next_op() - 1;
    int64_t& through = snapshot_through_[family_id];
    // At least as many operations as nodes: a snapshot's size grows with the tree, so its cost
    // stays a constant per operation.
    const int64_t due = std::max<int64_t>(options_.compact_ops_after,
                                          static_cast<int64_t>(family.tree().node_count()));
    if (last - through < due) continue;
    hippo::snapshot::FamilySnapshot snapshot;
    family.SaveSnapshot(snapshot);
    store::TreeSnapshotRecord record;
    record.family_id = family_id;
    record.through_sequence = last;
    // Serializing a message built in memory fails only past protobuf's 2 GiB limit: the log
    // then stays whole, as with compaction off.
    if (!snapshot.SerializeToString(&record.snapshot)) continue;
    batch.tree_snapshots.push_back(std::move(record));
    through = last;
  }
}

absl::Status EngineImpl::RestoreTreeSnapshots(
    const std::vector<store::TreeSnapshotRecord>& snapshots) {
  for (const store::TreeSnapshotRecord& record : snapshots) {
    if (record.family_id < 1 || record.family_id > static_cast<int64_t>(families_.size())) {
      return absl::DataLossError(
          absl::StrCat("tree snapshot of unknown family ", record.family_id));
    }
    hippo::snapshot::FamilySnapshot snapshot;
    if (!snapshot.ParseFromString(record.snapshot) ||
        snapshot.through_sequence() != record.through_sequence) {
      return absl::DataLossError(absl::StrCat("the tree snapshot of family ", record.family_id,
                                              " does not parse or names another operation"));
    }
    FamilyState& family = FamilyById(record.family_id);
    if (absl::Status status = family.RestoreSnapshot(snapshot); !status.ok()) return status;
    snapshot_through_[record.family_id] = record.through_sequence;
  }
  return absl::OkStatus();
}

}  // namespace hippo::coordinator
