#include "store/reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace hippo::store::internal {
namespace {

// parameter_names is a JSON array; json_each unpacks it in the same statement. A family with
// no names gives one row whose name columns are NULL.
constexpr absl::string_view kSelectFamilies = R"sql(
SELECT f.id, f.key, names.value, names.type, f.inherits_family, f.inherits_lineage,
  f.inherits_step
FROM families AS f LEFT JOIN json_each(f.parameter_names) AS names
ORDER BY f.id, names.key)sql";

constexpr absl::string_view kStudyColumns =
    "SELECT id, name, spec_json, state, created_ms, finished_ms, no_merge, message FROM studies";
constexpr absl::string_view kTrialColumns =
    "SELECT study_id, trial_id, family_id, tree_trial, point_json, target_step, state, "
    "forked_from, forked_at_step FROM trials";
constexpr absl::string_view kSelectTreeSnapshots =
    "SELECT family_id, through_sequence, snapshot FROM tree_snapshots ORDER BY family_id";
constexpr absl::string_view kSelectTreeOps =
    "SELECT family_id, sequence, kind, a, b, payload FROM tree_ops ORDER BY family_id, sequence";
constexpr absl::string_view kSelectRunningAttempts =
    "SELECT attempt_id, family_id, node_id, worker_id, lease_expires_ms, state FROM attempts "
    "WHERE state = 0 ORDER BY attempt_id";
// The highest attempt id ever given, in any state (0: none): ids are never given twice.
constexpr absl::string_view kSelectLastAttemptId =
    "SELECT COALESCE(MAX(attempt_id), 0) FROM attempts";
constexpr absl::string_view kSelectCheckpoints =
    "SELECT family_id, node_id, step, uri, size_bytes, checksum FROM checkpoints "
    "ORDER BY family_id, node_id, step";
constexpr absl::string_view kSelectAlgorithmStates =
    "SELECT study_id, state FROM algorithm_states ORDER BY study_id";
constexpr absl::string_view kSelectAlgorithmJournal =
    "SELECT study_id, sequence, delta FROM algorithm_journal ORDER BY study_id, sequence";
constexpr absl::string_view kSelectGarbage =
    "SELECT uri, directory, size_bytes, stage_id, step FROM checkpoint_garbage ORDER BY uri";
constexpr absl::string_view kSelectSettings = "SELECT key, value FROM settings ORDER BY key";
constexpr absl::string_view kSelectStages =
    "SELECT family_id, node_id, parent_id, lineage, start_step, end_step, state, attempts, "
    "checkpoint_uri, worker_id FROM stages WHERE family_id = ? ORDER BY node_id";
constexpr absl::string_view kSelectMetricsOfLineage =
    "SELECT family_id, lineage, step, name, value FROM metrics "
    "WHERE family_id = ? AND lineage = ? AND step >= ? AND step < ? ORDER BY step, name";
constexpr absl::string_view kSelectMetricsOfFamily =
    "SELECT family_id, lineage, step, name, value FROM metrics "
    "WHERE family_id = ? AND step >= ? AND step < ? ORDER BY lineage, step, name";
constexpr absl::string_view kSelectWorkers =
    "SELECT worker_id, host, hello_json, last_seen_ms, connected FROM workers "
    "ORDER BY worker_id";
constexpr absl::string_view kSelectWorkerHealth =
    "SELECT worker_id, consecutive_failures, drains, drained_until_ms, last_error "
    "FROM worker_health ORDER BY worker_id";
constexpr absl::string_view kSelectEvents =
    "SELECT sequence, study_id, kind, payload_json, time_ms FROM events "
    "WHERE sequence > ? ORDER BY sequence LIMIT ?";

StudyRecord ReadStudy(const Query& q) {
  StudyRecord r;
  r.id = q.Text(0);
  r.name = q.Text(1);
  r.spec_json = q.Text(2);
  r.state = static_cast<int>(q.Int(3));
  r.created_ms = q.Int(4);
  r.finished_ms = q.Int(5);
  r.no_merge = q.Bool(6);
  r.message = q.Text(7);
  return r;
}

TrialRecord ReadTrial(const Query& q) {
  TrialRecord r;
  r.study_id = q.Text(0);
  r.trial_id = q.Int(1);
  r.family_id = q.Int(2);
  r.tree_trial = q.Int(3);
  r.point_json = q.Text(4);
  r.target_step = q.Int(5);
  r.state = static_cast<int>(q.Int(6));
  r.forked_from = q.Int(7);
  r.forked_at_step = q.Int(8);
  return r;
}

TreeOp ReadTreeOp(const Query& q) {
  TreeOp r;
  r.family_id = q.Int(0);
  r.sequence = q.Int(1);
  r.kind = static_cast<TreeOpKind>(q.Int(2));
  r.a = q.Int(3);
  r.b = q.Int(4);
  r.payload = q.Blob(5);
  return r;
}

AttemptRecord ReadAttempt(const Query& q) {
  AttemptRecord r;
  r.attempt_id = q.Int(0);
  r.family_id = q.Int(1);
  r.node_id = q.Int(2);
  r.worker_id = q.Text(3);
  r.lease_expires_ms = q.Int(4);
  r.state = static_cast<int>(q.Int(5));
  return r;
}

CheckpointRecord ReadCheckpoint(const Query& q) {
  CheckpointRecord r;
  r.family_id = q.Int(0);
  r.node_id = q.Int(1);
  r.step = q.Int(2);
  r.uri = q.Text(3);
  r.size_bytes = q.Int(4);
  r.checksum = q.Text(5);
  return r;
}

StageRecord ReadStage(const Query& q) {
  StageRecord r;
  r.family_id = q.Int(0);
  r.node_id = q.Int(1);
  r.parent_id = q.Int(2);
  r.lineage = q.Int(3);
  r.start_step = q.Int(4);
  r.end_step = q.Int(5);
  r.state = static_cast<int>(q.Int(6));
  r.attempts = q.Int(7);
  r.checkpoint_uri = q.Text(8);
  r.worker_id = q.Text(9);
  return r;
}

MetricRecord ReadMetric(const Query& q) {
  MetricRecord r;
  r.family_id = q.Int(0);
  r.lineage = q.Int(1);
  r.step = q.Int(2);
  r.name = q.Text(3);
  r.value = q.Double(4);
  return r;
}

WorkerHealthRecord ReadWorkerHealth(const Query& q) {
  WorkerHealthRecord r;
  r.worker_id = q.Text(0);
  r.consecutive_failures = q.Int(1);
  r.drains = q.Int(2);
  r.drained_until_ms = q.Int(3);
  r.last_error = q.Text(4);
  return r;
}

WorkerRecord ReadWorker(const Query& q) {
  WorkerRecord r;
  r.worker_id = q.Text(0);
  r.host = q.Text(1);
  r.hello_json = q.Text(2);
  r.last_seen_ms = q.Int(3);
  r.connected = q.Bool(4);
  return r;
}

EventRecord ReadEvent(const Query& q) {
  EventRecord r;
  r.sequence = q.Int(0);
  r.study_id = q.Text(1);
  r.kind = q.Text(2);
  r.payload_json = q.Text(3);
  r.time_ms = q.Int(4);
  return r;
}

// Runs `sql`, with parameters filled by `bind`, and appends `read` of each row to `rows`.
template <typename Row, typename Bind, typename Read>
absl::Status SelectInto(Connection& connection, absl::string_view sql, Bind bind, Read read,
                        std::vector<Row>& rows) {
  absl::StatusOr<sqlite3_stmt*> statement = connection.Prepare(sql);
  if (!statement.ok()) return statement.status();
  Query query(connection, *statement);
  bind(query);
  while (true) {
    absl::StatusOr<bool> row = query.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    rows.push_back(read(query));
  }
}

template <typename Row, typename Read>
absl::Status SelectAll(Connection& connection, absl::string_view sql, Read read,
                       std::vector<Row>& rows) {
  return SelectInto(
      connection, sql, [](Query&) {}, read, rows);
}

absl::Status SelectFamilies(Connection& connection, std::vector<FamilyRecord>& families) {
  absl::StatusOr<sqlite3_stmt*> statement = connection.Prepare(kSelectFamilies);
  if (!statement.ok()) return statement.status();
  Query query(connection, *statement);
  while (true) {
    absl::StatusOr<bool> row = query.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    int64_t id = query.Int(0);
    if (families.empty() || families.back().id != id) {
      FamilyRecord& family = families.emplace_back();
      family.id = id;
      family.key = query.Text(1);
      family.inherits_family = query.Int(4);
      family.inherits_lineage = query.Int(5);
      family.inherits_step = query.Int(6);
    }
    std::string type = query.Text(3);
    if (type.empty()) continue;  // no names
    if (type != "text") {
      return absl::DataLossError(absl::StrCat("store ", connection.label(), ": family ", id,
                                              " has a parameter name of JSON type ", type));
    }
    families.back().parameter_names.push_back(query.Text(2));
  }
}

}  // namespace

absl::StatusOr<Snapshot> Reader::LoadSnapshot() {
  absl::MutexLock lock(&mutex_);
  if (absl::Status begun = connection_->Run("BEGIN"); !begun.ok()) return begun;
  absl::StatusOr<Snapshot> snapshot = LoadSnapshotLocked();
  // A read transaction has nothing to keep: end it either way.
  absl::Status ended = connection_->Run(snapshot.ok() ? "COMMIT" : "ROLLBACK");
  if (snapshot.ok() && !ended.ok()) return ended;
  return snapshot;
}

absl::StatusOr<Snapshot> Reader::LoadSnapshotLocked() {
  Connection& c = *connection_;
  Snapshot s;
  absl::Status status = SelectFamilies(c, s.families);
  if (status.ok()) {
    absl::StatusOr<std::vector<StudyRecord>> studies = ListStudiesLocked();
    if (studies.ok()) s.studies = std::move(*studies);
    status = studies.status();
  }
  if (status.ok()) {
    absl::StatusOr<std::vector<TrialRecord>> trials = ListTrialsLocked(nullptr);
    if (trials.ok()) s.trials = std::move(*trials);
    status = trials.status();
  }
  if (status.ok()) {
    status = SelectAll(
        c, kSelectTreeSnapshots,
        [](const Query& q) {
          return TreeSnapshotRecord{q.Int(0), q.Int(1), q.Blob(2)};
        },
        s.tree_snapshots);
  }
  if (status.ok()) status = SelectAll(c, kSelectTreeOps, ReadTreeOp, s.tree_ops);
  if (status.ok()) status = SelectAll(c, kSelectRunningAttempts, ReadAttempt, s.attempts);
  if (status.ok()) {
    std::vector<int64_t> last;
    status = SelectAll(
        c, kSelectLastAttemptId, [](const Query& q) { return q.Int(0); }, last);
    if (status.ok() && !last.empty()) s.last_attempt_id = last.front();
  }
  if (status.ok()) status = SelectAll(c, kSelectCheckpoints, ReadCheckpoint, s.checkpoints);
  using Pair = std::pair<std::string, std::string>;
  if (status.ok()) {
    status = SelectAll(
        c, kSelectAlgorithmStates, [](const Query& q) { return Pair(q.Text(0), q.Blob(1)); },
        s.algorithm_states);
  }
  if (status.ok()) {
    status = SelectAll(
        c, kSelectAlgorithmJournal,
        [](const Query& q) {
          return AlgorithmDelta{q.Text(0), q.Int(1), q.Blob(2)};
        },
        s.algorithm_deltas);
  }
  if (status.ok()) {
    status = SelectAll(
        c, kSelectGarbage,
        [](const Query& q) {
          return GarbageRecord{q.Text(0), q.Text(1), q.Int(2), q.Int(3), q.Int(4)};
        },
        s.garbage);
  }
  if (status.ok()) {
    status = SelectAll(
        c, kSelectSettings, [](const Query& q) { return Pair(q.Text(0), q.Text(1)); }, s.settings);
  }
  if (status.ok()) status = SelectAll(c, kSelectWorkerHealth, ReadWorkerHealth, s.worker_health);
  if (!status.ok()) return status;
  return s;
}

absl::StatusOr<std::vector<StudyRecord>> Reader::ListStudies() {
  absl::MutexLock lock(&mutex_);
  return ListStudiesLocked();
}

absl::StatusOr<std::vector<StudyRecord>> Reader::ListStudiesLocked() {
  std::vector<StudyRecord> studies;
  absl::Status status = SelectAll(
      *connection_, absl::StrCat(kStudyColumns, " ORDER BY created_ms, id"), ReadStudy, studies);
  if (!status.ok()) return status;
  return studies;
}

absl::StatusOr<std::optional<StudyRecord>> Reader::GetStudy(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  std::vector<StudyRecord> studies;
  absl::Status status = SelectInto(
      *connection_, absl::StrCat(kStudyColumns, " WHERE id = ?"), [&id](Query& q) { q.Bind(id); },
      ReadStudy, studies);
  if (!status.ok()) return status;
  if (studies.empty()) return std::nullopt;
  return std::move(studies.front());
}

absl::StatusOr<std::vector<TrialRecord>> Reader::ListTrials(const std::string& study_id) {
  absl::MutexLock lock(&mutex_);
  return ListTrialsLocked(&study_id);
}

absl::StatusOr<std::vector<TrialRecord>> Reader::ListTrialsLocked(const std::string* study_id) {
  std::vector<TrialRecord> trials;
  absl::Status status =
      study_id == nullptr
          ? SelectAll(*connection_, absl::StrCat(kTrialColumns, " ORDER BY study_id, trial_id"),
                      ReadTrial, trials)
          : SelectInto(
                *connection_, absl::StrCat(kTrialColumns, " WHERE study_id = ? ORDER BY trial_id"),
                [study_id](Query& q) { q.Bind(*study_id); }, ReadTrial, trials);
  if (!status.ok()) return status;
  return trials;
}

absl::StatusOr<std::vector<StageRecord>> Reader::ListStages(int64_t family_id) {
  absl::MutexLock lock(&mutex_);
  std::vector<StageRecord> stages;
  absl::Status status = SelectInto(
      *connection_, kSelectStages, [family_id](Query& q) { q.Bind(family_id); }, ReadStage, stages);
  if (!status.ok()) return status;
  return stages;
}

absl::StatusOr<std::vector<MetricRecord>> Reader::ListMetrics(int64_t family_id,
                                                              const std::vector<int64_t>& lineages,
                                                              int64_t from_step, int64_t to_step) {
  absl::MutexLock lock(&mutex_);
  std::vector<MetricRecord> metrics;
  if (lineages.empty()) {
    absl::Status status = SelectInto(
        *connection_, kSelectMetricsOfFamily,
        [&](Query& q) { q.Bind(family_id).Bind(from_step).Bind(to_step); }, ReadMetric, metrics);
    if (!status.ok()) return status;
    return metrics;
  }
  // One indexed range scan per lineage, in lineage order; the whole list is one read
  // transaction so it is consistent across lineages.
  std::vector<int64_t> sorted = lineages;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  if (absl::Status begun = connection_->Run("BEGIN"); !begun.ok()) return begun;
  absl::Status status;
  for (int64_t lineage : sorted) {
    status = SelectInto(
        *connection_, kSelectMetricsOfLineage,
        [&](Query& q) { q.Bind(family_id).Bind(lineage).Bind(from_step).Bind(to_step); },
        ReadMetric, metrics);
    if (!status.ok()) break;
  }
  absl::Status ended = connection_->Run(status.ok() ? "COMMIT" : "ROLLBACK");
  if (!status.ok()) return status;
  if (!ended.ok()) return ended;
  return metrics;
}

absl::StatusOr<std::vector<WorkerRecord>> Reader::ListWorkers() {
  absl::MutexLock lock(&mutex_);
  std::vector<WorkerRecord> workers;
  absl::Status status = SelectAll(*connection_, kSelectWorkers, ReadWorker, workers);
  if (!status.ok()) return status;
  return workers;
}

absl::StatusOr<std::vector<EventRecord>> Reader::ListEvents(int64_t after_sequence, int64_t limit) {
  absl::MutexLock lock(&mutex_);
  std::vector<EventRecord> events;
  // SQLite reads a negative LIMIT as "no limit".
  int64_t sql_limit = limit > 0 ? limit : -1;
  absl::Status status = SelectInto(
      *connection_, kSelectEvents, [&](Query& q) { q.Bind(after_sequence).Bind(sql_limit); },
      ReadEvent, events);
  if (!status.ok()) return status;
  return events;
}

}  // namespace hippo::store::internal
