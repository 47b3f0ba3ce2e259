// The removals of a WriteBatch, the checkpoint garbage and the tree snapshots (store.h): each a
// statement of its own, run after the batch's writes, inside the caller's transaction.
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "store/apply_batch.h"

namespace hippo::store::internal {
namespace {

constexpr absl::string_view kRemoveCheckpoint =
    "DELETE FROM checkpoints WHERE family_id = ? AND uri = ?";
constexpr absl::string_view kUpsertGarbage = R"sql(
INSERT INTO checkpoint_garbage (uri, directory, size_bytes, stage_id, step) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (uri) DO UPDATE SET directory = excluded.directory,
  size_bytes = excluded.size_bytes, stage_id = excluded.stage_id, step = excluded.step)sql";
constexpr absl::string_view kDeleteGarbage = "DELETE FROM checkpoint_garbage WHERE uri = ?";
// A study and everything stored under its id.
constexpr absl::string_view kDeleteStudy[] = {
    "DELETE FROM studies WHERE id = ?",
    "DELETE FROM trials WHERE study_id = ?",
    "DELETE FROM algorithm_states WHERE study_id = ?",
    "DELETE FROM algorithm_journal WHERE study_id = ?",
    "DELETE FROM events WHERE study_id = ?",
};
constexpr absl::string_view kUpsertTreeSnapshot = R"sql(
INSERT INTO tree_snapshots (family_id, through_sequence, snapshot) VALUES (?, ?, ?)
ON CONFLICT (family_id) DO UPDATE SET through_sequence = excluded.through_sequence,
  snapshot = excluded.snapshot)sql";
constexpr absl::string_view kDeleteCompactedOps =
    "DELETE FROM tree_ops WHERE family_id = ? AND sequence <= ?";
constexpr absl::string_view kDeleteMetricsOfLineage =
    "DELETE FROM metrics WHERE family_id = ? AND lineage = ?";

// Runs `sql` once with parameters bound by `bind`; errors say `what`.
template <typename Bind>
absl::Status RunOne(Connection& connection, absl::string_view sql, Bind bind,
                    const std::string& what) {
  absl::StatusOr<sqlite3_stmt*> statement = connection.Prepare(sql);
  if (!statement.ok()) return statement.status();
  Query query(connection, *statement);
  bind(query);
  if (absl::Status status = query.Run(); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("store ", connection.label(), ": cannot ", what,
                                                    ": ", status.message()));
  }
  return absl::OkStatus();
}

// Test-only fault injection, never set in production: HIPPO_TEST_SIGKILL_AT_COMPACTION=N makes
// the process SIGKILL itself inside the transaction of its N-th tree snapshot, once the snapshot
// is written and the operations it covers are deleted, before the commit (the fault suite checks
// that recovery then finds the log as it was).
void MaybeKillInsideCompaction() {
  static const int64_t kill_at = [] {
    int64_t at = 0;
    const char* value = std::getenv("HIPPO_TEST_SIGKILL_AT_COMPACTION");
    return value != nullptr && absl::SimpleAtoi(value, &at) ? at : int64_t{0};
  }();
  static std::atomic<int64_t> compactions{0};
  if (kill_at > 0 && ++compactions == kill_at) std::raise(SIGKILL);
}

}  // namespace

absl::Status ApplyRemovals(Connection& connection, const WriteBatch& batch) {
  for (const auto& [family_id, uri] : batch.checkpoint_removals) {
    absl::Status status = RunOne(
        connection, kRemoveCheckpoint, [&](Query& q) { q.Bind(family_id).Bind(uri); },
        absl::StrCat("remove checkpoint ", uri, " of family ", family_id));
    if (!status.ok()) return status;
  }
  for (const GarbageRecord& record : batch.garbage) {
    absl::Status status = RunOne(
        connection, kUpsertGarbage,
        [&](Query& q) {
          q.Bind(record.uri).Bind(record.directory).Bind(record.size_bytes);
          q.Bind(record.stage_id).Bind(record.step);
        },
        absl::StrCat("write checkpoint garbage ", record.uri));
    if (!status.ok()) return status;
  }
  for (const std::string& uri : batch.garbage_deleted) {
    absl::Status status = RunOne(
        connection, kDeleteGarbage, [&](Query& q) { q.Bind(uri); },
        absl::StrCat("forget deleted checkpoint ", uri));
    if (!status.ok()) return status;
  }
  for (const std::string& study_id : batch.study_deletions) {
    for (absl::string_view sql : kDeleteStudy) {
      absl::Status status = RunOne(
          connection, sql, [&](Query& q) { q.Bind(study_id); },
          absl::StrCat("delete study ", study_id));
      if (!status.ok()) return status;
    }
  }
  for (const TreeSnapshotRecord& record : batch.tree_snapshots) {
    absl::Status status = RunOne(
        connection, kUpsertTreeSnapshot,
        [&](Query& q) {
          q.Bind(record.family_id).Bind(record.through_sequence).BindBlob(record.snapshot);
        },
        absl::StrCat("write the tree snapshot of family ", record.family_id));
    if (status.ok()) {
      status = RunOne(
          connection, kDeleteCompactedOps,
          [&](Query& q) { q.Bind(record.family_id).Bind(record.through_sequence); },
          absl::StrCat("delete the operations of family ", record.family_id, " up to ",
                       record.through_sequence));
    }
    if (!status.ok()) return status;
    MaybeKillInsideCompaction();
  }
  for (const auto& [family_id, lineage] : batch.metric_lineage_deletions) {
    absl::Status status = RunOne(
        connection, kDeleteMetricsOfLineage, [&](Query& q) { q.Bind(family_id).Bind(lineage); },
        absl::StrCat("delete the metrics of lineage ", lineage, " of family ", family_id));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace hippo::store::internal
