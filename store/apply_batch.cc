#include "store/apply_batch.h"

#include <algorithm>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace hippo::store::internal {
namespace {

constexpr absl::string_view kUpsertFamily = R"sql(
INSERT INTO families (id, key, parameter_names, inherits_family, inherits_lineage, inherits_step)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET key = excluded.key, parameter_names = excluded.parameter_names,
  inherits_family = excluded.inherits_family, inherits_lineage = excluded.inherits_lineage,
  inherits_step = excluded.inherits_step)sql";

constexpr absl::string_view kUpsertStudy = R"sql(
INSERT INTO studies (id, name, spec_json, state, created_ms, finished_ms, no_merge, message)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, spec_json = excluded.spec_json,
  state = excluded.state, created_ms = excluded.created_ms, finished_ms = excluded.finished_ms,
  no_merge = excluded.no_merge, message = excluded.message)sql";

constexpr absl::string_view kUpsertTrial = R"sql(
INSERT INTO trials (study_id, trial_id, family_id, tree_trial, point_json, target_step, state,
                    forked_from, forked_at_step)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (study_id, trial_id) DO UPDATE SET family_id = excluded.family_id,
  tree_trial = excluded.tree_trial, point_json = excluded.point_json,
  target_step = excluded.target_step, state = excluded.state,
  forked_from = excluded.forked_from, forked_at_step = excluded.forked_at_step)sql";

// Append only: a second op with the same (family_id, sequence) violates the primary key and
// fails its batch. Replacing it would silently rewrite a tree's history.
constexpr absl::string_view kAppendTreeOp = R"sql(
INSERT INTO tree_ops (family_id, sequence, kind, a, b, payload) VALUES (?, ?, ?, ?, ?, ?))sql";

constexpr absl::string_view kUpsertStage = R"sql(
INSERT INTO stages (family_id, node_id, parent_id, lineage, start_step, end_step, state,
                    attempts, checkpoint_uri, worker_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (family_id, node_id) DO UPDATE SET parent_id = excluded.parent_id,
  lineage = excluded.lineage, start_step = excluded.start_step, end_step = excluded.end_step,
  state = excluded.state, attempts = excluded.attempts,
  checkpoint_uri = excluded.checkpoint_uri, worker_id = excluded.worker_id)sql";

// DO NOTHING on the key only, unlike INSERT OR IGNORE, which would also swallow other
// constraint failures.
constexpr absl::string_view kInsertMetric = R"sql(
INSERT INTO metrics (family_id, lineage, step, name, value) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (family_id, lineage, step, name) DO NOTHING)sql";

constexpr absl::string_view kUpsertAttempt = R"sql(
INSERT INTO attempts (attempt_id, family_id, node_id, worker_id, lease_expires_ms, state)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (attempt_id) DO UPDATE SET family_id = excluded.family_id,
  node_id = excluded.node_id, worker_id = excluded.worker_id,
  lease_expires_ms = excluded.lease_expires_ms, state = excluded.state)sql";

constexpr absl::string_view kUpsertCheckpoint = R"sql(
INSERT INTO checkpoints (family_id, node_id, step, uri, size_bytes, checksum)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (family_id, node_id, step) DO UPDATE SET uri = excluded.uri,
  size_bytes = excluded.size_bytes, checksum = excluded.checksum)sql";

constexpr absl::string_view kUpsertWorker = R"sql(
INSERT INTO workers (worker_id, host, hello_json, last_seen_ms, connected) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (worker_id) DO UPDATE SET host = excluded.host, hello_json = excluded.hello_json,
  last_seen_ms = excluded.last_seen_ms, connected = excluded.connected)sql";

constexpr absl::string_view kUpsertWorkerHealth = R"sql(
INSERT INTO worker_health (worker_id, consecutive_failures, drains, drained_until_ms, last_error)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (worker_id) DO UPDATE SET consecutive_failures = excluded.consecutive_failures,
  drains = excluded.drains, drained_until_ms = excluded.drained_until_ms,
  last_error = excluded.last_error)sql";

constexpr absl::string_view kUpsertAlgorithmState = R"sql(
INSERT INTO algorithm_states (study_id, state) VALUES (?, ?)
ON CONFLICT (study_id) DO UPDATE SET state = excluded.state)sql";

constexpr absl::string_view kAppendAlgorithmDelta = R"sql(
INSERT INTO algorithm_journal (study_id, sequence, delta) VALUES (?, ?, ?))sql";

constexpr absl::string_view kTrimAlgorithmJournal = R"sql(
DELETE FROM algorithm_journal WHERE study_id = ? AND sequence <= ?)sql";

// The sequence is left to SQLite (AUTOINCREMENT): it is assigned as the row is written.
constexpr absl::string_view kAppendEvent = R"sql(
INSERT INTO events (study_id, kind, payload_json, time_ms) VALUES (?, ?, ?, ?))sql";

constexpr absl::string_view kUpsertSetting = R"sql(
INSERT INTO settings (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value)sql";

// Rows per statement at most: `INSERT ... VALUES (row), (row), ...` runs one statement for many
// rows, which costs SQLite far less than a statement per row (cursors opened once).
constexpr size_t kRowsPerStatement = 16;

// `sql` (one VALUES tuple) with its tuple repeated `rows` times.
std::string WithRows(absl::string_view sql, size_t rows) {
  const size_t open = sql.find("VALUES (") + 7;
  const size_t close = sql.find(')', open) + 1;
  std::string expanded(sql.substr(0, close));
  for (size_t i = 1; i < rows; ++i)
    absl::StrAppend(&expanded, ", ", sql.substr(open, close - open));
  absl::StrAppend(&expanded, sql.substr(close));
  return expanded;
}

// Writes `rows` with `sql` (one VALUES tuple), up to kRowsPerStatement rows a statement, in
// order: a later row with the same key overrides an earlier one as it would one by one. `bind`
// fills one row's parameters; `describe` names the row in errors (a failed statement changes
// nothing, so its rows are then run one by one to name the one that fails).
template <typename Row, typename Bind, typename Describe>
absl::Status WriteRows(Connection& connection, absl::string_view sql, absl::string_view table,
                       const std::vector<Row>& rows, Bind bind, Describe describe) {
  auto run = [&](size_t from, size_t count) -> absl::Status {
    absl::StatusOr<sqlite3_stmt*> statement =
        connection.Prepare(count == 1 ? std::string(sql) : WithRows(sql, count));
    if (!statement.ok()) return statement.status();
    Query query(connection, *statement);
    for (size_t i = from; i < from + count; ++i) bind(query, rows[i]);
    return query.Run();
  };
  for (size_t from = 0; from < rows.size(); from += kRowsPerStatement) {
    const size_t count = std::min(kRowsPerStatement, rows.size() - from);
    if (run(from, count).ok()) continue;
    for (size_t i = from; i < from + count; ++i) {
      if (absl::Status status = run(i, 1); !status.ok()) {
        return absl::Status(
            status.code(),
            absl::StrCat("store ", connection.label(), ": cannot write ", table, " ",
                         describe(rows[i]), ": ", sqlite3_errmsg(connection.handle())));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeStringArray(const std::vector<std::string>& strings) {
  // Names come from a validated spec (UTF-8); any other byte becomes U+FFFD, never an error.
  return nlohmann::json(strings).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::Status ApplyWriteBatch(Connection& connection, const WriteBatch& batch) {
  absl::Status status = WriteRows(
      connection, kUpsertFamily, "family", batch.families,
      [](Query& q, const FamilyRecord& r) {
        q.Bind(r.id).Bind(r.key).Bind(EncodeStringArray(r.parameter_names));
        q.Bind(r.inherits_family).Bind(r.inherits_lineage).Bind(r.inherits_step);
      },
      [](const FamilyRecord& r) { return absl::StrCat(r.id); });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertStudy, "study", batch.studies,
      [](Query& q, const StudyRecord& r) {
        q.Bind(r.id).Bind(r.name).Bind(r.spec_json).Bind(r.state).Bind(r.created_ms);
        q.Bind(r.finished_ms).Bind(r.no_merge).Bind(r.message);
      },
      [](const StudyRecord& r) { return r.id; });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertTrial, "trial", batch.trials,
      [](Query& q, const TrialRecord& r) {
        q.Bind(r.study_id).Bind(r.trial_id).Bind(r.family_id).Bind(r.tree_trial);
        q.Bind(r.point_json).Bind(r.target_step).Bind(r.state).Bind(r.forked_from);
        q.Bind(r.forked_at_step);
      },
      [](const TrialRecord& r) { return absl::StrCat(r.study_id, "/", r.trial_id); });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kAppendTreeOp, "tree op", batch.tree_ops,
      [](Query& q, const TreeOp& r) {
        q.Bind(r.family_id).Bind(r.sequence).Bind(static_cast<int>(r.kind)).Bind(r.a).Bind(r.b);
        q.BindBlob(r.payload);
      },
      [](const TreeOp& r) {
        return absl::StrCat("(family ", r.family_id, ", sequence ", r.sequence, ")");
      });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertStage, "stage", batch.stages,
      [](Query& q, const StageRecord& r) {
        q.Bind(r.family_id).Bind(r.node_id).Bind(r.parent_id).Bind(r.lineage);
        q.Bind(r.start_step).Bind(r.end_step).Bind(r.state).Bind(r.attempts);
        q.Bind(r.checkpoint_uri).Bind(r.worker_id);
      },
      [](const StageRecord& r) {
        return absl::StrCat("(family ", r.family_id, ", node ", r.node_id, ")");
      });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kInsertMetric, "metric", batch.metrics,
      [](Query& q, const MetricRecord& r) {
        q.Bind(r.family_id).Bind(r.lineage).Bind(r.step).Bind(r.name).Bind(r.value);
      },
      [](const MetricRecord& r) {
        return absl::StrCat("(family ", r.family_id, ", lineage ", r.lineage, ", step ", r.step,
                            ", ", r.name, ")");
      });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertAttempt, "attempt", batch.attempts,
      [](Query& q, const AttemptRecord& r) {
        q.Bind(r.attempt_id).Bind(r.family_id).Bind(r.node_id).Bind(r.worker_id);
        q.Bind(r.lease_expires_ms).Bind(r.state);
      },
      [](const AttemptRecord& r) { return absl::StrCat(r.attempt_id); });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertCheckpoint, "checkpoint", batch.checkpoints,
      [](Query& q, const CheckpointRecord& r) {
        q.Bind(r.family_id).Bind(r.node_id).Bind(r.step).Bind(r.uri).Bind(r.size_bytes);
        q.Bind(r.checksum);
      },
      [](const CheckpointRecord& r) {
        return absl::StrCat("(family ", r.family_id, ", node ", r.node_id, ", step ", r.step, ")");
      });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertWorker, "worker", batch.workers,
      [](Query& q, const WorkerRecord& r) {
        q.Bind(r.worker_id).Bind(r.host).Bind(r.hello_json).Bind(r.last_seen_ms);
        q.Bind(r.connected);
      },
      [](const WorkerRecord& r) { return r.worker_id; });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertWorkerHealth, "worker health", batch.worker_health,
      [](Query& q, const WorkerHealthRecord& r) {
        q.Bind(r.worker_id).Bind(r.consecutive_failures).Bind(r.drains).Bind(r.drained_until_ms);
        q.Bind(r.last_error);
      },
      [](const WorkerHealthRecord& r) { return r.worker_id; });
  if (!status.ok()) return status;

  using Pair = std::pair<std::string, std::string>;
  status = WriteRows(
      connection, kUpsertAlgorithmState, "algorithm state", batch.algorithm_states,
      [](Query& q, const Pair& r) { q.Bind(r.first).BindBlob(r.second); },
      [](const Pair& r) { return absl::StrCat("of study ", r.first); });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kAppendAlgorithmDelta, "algorithm journal entry", batch.algorithm_deltas,
      [](Query& q, const AlgorithmDelta& r) {
        q.Bind(r.study_id).Bind(r.sequence).BindBlob(r.delta);
      },
      [](const AlgorithmDelta& r) { return absl::StrCat(r.sequence, " of study ", r.study_id); });
  if (!status.ok()) return status;

  // A DELETE has no VALUES tuple to repeat, so each trim is a statement of its own.
  for (const auto& [study_id, sequence] : batch.algorithm_journal_trims) {
    absl::StatusOr<sqlite3_stmt*> statement = connection.Prepare(kTrimAlgorithmJournal);
    if (!statement.ok()) return statement.status();
    Query query(connection, *statement);
    query.Bind(study_id).Bind(sequence);
    if (absl::Status trimmed = query.Run(); !trimmed.ok()) {
      return absl::Status(trimmed.code(),
                          absl::StrCat("store ", connection.label(),
                                       ": cannot trim the algorithm journal of study ", study_id,
                                       " up to ", sequence, ": ", trimmed.message()));
    }
  }

  status = WriteRows(
      connection, kAppendEvent, "event", batch.events,
      [](Query& q, const EventRecord& r) {
        q.Bind(r.study_id).Bind(r.kind).Bind(r.payload_json).Bind(r.time_ms);
      },
      [](const EventRecord& r) { return absl::StrCat(r.kind, " of study '", r.study_id, "'"); });
  if (!status.ok()) return status;

  status = WriteRows(
      connection, kUpsertSetting, "setting", batch.settings,
      [](Query& q, const Pair& r) { q.Bind(r.first).Bind(r.second); },
      [](const Pair& r) { return r.first; });
  if (!status.ok()) return status;
  return ApplyRemovals(connection, batch);
}

}  // namespace hippo::store::internal
