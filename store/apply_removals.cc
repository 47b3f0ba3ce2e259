// The removals of a WriteBatch and the checkpoint garbage (store.h): each a statement of its
// own, run after the batch's writes, inside the caller's transaction.
#include <string>

#include "absl/status/statusor.h"
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
  for (const auto& [family_id, lineage] : batch.metric_lineage_deletions) {
    absl::Status status = RunOne(
        connection, kDeleteMetricsOfLineage, [&](Query& q) { q.Bind(family_id).Bind(lineage); },
        absl::StrCat("delete the metrics of lineage ", lineage, " of family ", family_id));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace hippo::store::internal
