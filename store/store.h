// Store: the coordinator's durable state in one SQLite file (docs/durability.md).
//
// WAL mode; every change goes through one writer thread that batches the WriteBatches it finds
// queued into one transaction (group commit). Commit() returns only after the transaction that
// holds the batch is committed, so a caller that acknowledges after Commit() never acknowledges
// anything a crash can lose. Reads use their own connection and see committed data only.
//
// The in-memory stage trees are not stored as such: the coordinator appends every tree
// operation (trial inserted, extended, stage started, done, failed, requeued, checkpoint kept)
// to a per-family log, and rebuilds each tree on start by replaying its log in order. The tree
// is deterministic, so node ids come back identical.
//
// Thread-safe. Plain structs cross this boundary; JSON strings carry protobuf messages.
#ifndef HIPPO_STORE_STORE_H_
#define HIPPO_STORE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hippo::store {

// The schema version this build writes. Files with a newer version are refused.
inline constexpr int kSchemaVersion = 6;

struct FamilyRecord {
  int64_t id = 0;   // assigned by the coordinator, dense from 1
  std::string key;  // the stage tree's root key
  std::vector<std::string> parameter_names;
  // A family whose root is another family's trained state (a morphism child): that family, the
  // lineage of the stage that reached the state, and its step (the root step of this family's
  // tree). All 0 for a family that starts from a fresh model.
  int64_t inherits_family = 0;
  int64_t inherits_lineage = 0;
  int64_t inherits_step = 0;
};

struct StudyRecord {
  std::string id;  // e.g. "s-000001"
  std::string name;
  std::string spec_json;  // hippo.v1.StudySpec as JSON
  int state = 0;          // hippo.v1.StudyState number
  int64_t created_ms = 0;
  int64_t finished_ms = 0;  // 0 while not finished
  bool no_merge = false;
  std::string message;
};

struct TrialRecord {
  std::string study_id;
  int64_t trial_id = 0;  // dense per study, from 0
  int64_t family_id = 0;
  int64_t tree_trial = 0;  // the trial's id in its family's stage tree
  std::string point_json;  // the search-space point, as the search plan wrote it
  int64_t target_step = 0;
  int state = 0;             // hippo.v1.TrialState number
  int64_t forked_from = -1;  // -1: not a fork
  int64_t forked_at_step = 0;
};

// One operation on a family's stage tree, in the order it was applied.
enum class TreeOpKind : int {
  kInsert = 1,   // a = tree trial id (checked on replay), b = target; payload: sequences JSON
  kExtend = 2,   // a = tree trial id, b = new target
  kRunning = 3,  // a = node id, b = the step it was cut at when handed out (0: not cut)
  kDone = 4,     // a = node id
  kFailed = 5,   // a = node id; payload: the worker's error
  // a = node id, b = the step it resumes from (0: none); payload "retry": its attempt budget
  // starts again (a new study, a restart or `hippo retry` needs a stage that used it up)
  kRequeue = 6,
  kCheckpoint = 7,  // a = node id, b = step
  kStateLost = 8,   // a = node id, b = step: the state kept there is gone (to be recomputed)
  kDropState = 9,   // a = node id, b = step: the state after it was released (collected)
};

struct TreeOp {
  int64_t family_id = 0;
  int64_t sequence = 0;  // per family, from 1; assigned by the caller, strictly increasing
  TreeOpKind kind = TreeOpKind::kInsert;
  int64_t a = 0;
  int64_t b = 0;
  std::string payload;
};

// A metric value of a stage at a step. `lineage` is the stage's id when it was first created
// (a split stage's lower part keeps its lineage), so rows never move when stages split.
struct MetricRecord {
  int64_t family_id = 0;
  int64_t lineage = 0;
  int64_t step = 0;
  std::string name;
  double value = 0;  // NaN round-trips (stored as NULL)
};

// A stage's latest known facts, for reads (CLI, dashboard) without rebuilding trees.
struct StageRecord {
  int64_t family_id = 0;
  int64_t node_id = 0;
  int64_t parent_id = 0;
  int64_t lineage = 0;
  int64_t start_step = 0;
  int64_t end_step = 0;
  int state = 0;  // hippo.v1.StageState number
  int64_t attempts = 0;
  std::string checkpoint_uri;
  std::string worker_id;
};

// AttemptRecord::state values.
inline constexpr int kAttemptRunning = 0;
inline constexpr int kAttemptDone = 1;
inline constexpr int kAttemptFailed = 2;
inline constexpr int kAttemptExpired = 3;
inline constexpr int kAttemptCancelled = 4;

struct AttemptRecord {
  int64_t attempt_id = 0;  // global, dense from 1
  int64_t family_id = 0;
  int64_t node_id = 0;
  std::string worker_id;
  int64_t lease_expires_ms = 0;
  int state = 0;  // 0 running, 1 done, 2 failed, 3 expired, 4 cancelled
};

struct CheckpointRecord {
  int64_t family_id = 0;
  int64_t node_id = 0;
  int64_t step = 0;
  std::string uri;
  int64_t size_bytes = 0;
  std::string checksum;
};

struct WorkerRecord {
  std::string worker_id;
  std::string host;
  std::string hello_json;  // hippo.v1.WorkerHello as JSON
  int64_t last_seen_ms = 0;
  bool connected = false;
};

// A worker's health (schema 4), kept so that a restarted coordinator does not send stages
// straight back to a worker it drained: its failures in a row, its drains in a row (the drain
// doubles with each), until when it is drained (wall-clock ms since the epoch; 0: not drained)
// and its last error.
struct WorkerHealthRecord {
  std::string worker_id;
  int64_t consecutive_failures = 0;
  int64_t drains = 0;
  int64_t drained_until_ms = 0;
  std::string last_error;
};

struct EventRecord {
  int64_t sequence = 0;  // assigned by the store on commit
  std::string study_id;  // empty for events of no study
  std::string kind;      // e.g. "study_created", "trial_ended", "worker_lost"
  std::string payload_json;
  int64_t time_ms = 0;
};

// One entry of a study's algorithm journal.
struct AlgorithmDelta {
  std::string study_id;
  int64_t sequence = 0;  // increasing per study, never reused
  std::string delta;     // blob
};

// A family's tree snapshot, taken when the coordinator compacts the family's operation log: the
// bytes of a FamilySnapshot (proto/hippo/snapshot/tree_snapshot.proto; the store does not read
// them), holding everything operations 1..through_sequence built.
struct TreeSnapshotRecord {
  int64_t family_id = 0;
  int64_t through_sequence = 0;
  std::string snapshot;
};

// A checkpoint file released by the coordinator (no state it keeps is there any more) and not
// yet confirmed deleted by a worker of its directory (schema 3).
struct GarbageRecord {
  std::string uri;
  std::string directory;  // the canonical directory the file is in
  int64_t size_bytes = 0;
  int64_t stage_id = 0;  // the global stage id and step of the state it held
  int64_t step = 0;
};

// A set of changes committed together (all or nothing). Upserts replace the row with the
// same key; appends add rows. Metrics are insert-or-ignore: a metric already stored for
// (family, lineage, step, name) keeps its first value, so a replayed report is not counted
// twice.
struct WriteBatch {
  std::vector<FamilyRecord> families;         // upsert by id
  std::vector<StudyRecord> studies;           // upsert by id
  std::vector<TrialRecord> trials;            // upsert by (study_id, trial_id)
  std::vector<TreeOp> tree_ops;               // append; (family_id, sequence) must be new
  std::vector<StageRecord> stages;            // upsert by (family_id, node_id)
  std::vector<MetricRecord> metrics;          // insert or ignore
  std::vector<AttemptRecord> attempts;        // upsert by attempt_id
  std::vector<CheckpointRecord> checkpoints;  // upsert by (family_id, node_id, step)
  std::vector<WorkerRecord> workers;          // upsert by worker_id
  // upsert by worker_id
  std::vector<WorkerHealthRecord> worker_health;
  std::vector<std::pair<std::string, std::string>> algorithm_states;  // (study_id, blob) upsert
  // Appended to a study's algorithm journal: what changed in its algorithm's state since the
  // previous entry (SearchAlgorithm::TakeStateDelta). (study_id, sequence) must be new.
  std::vector<AlgorithmDelta> algorithm_deltas;
  // (study_id, sequence): the study's journal entries up to `sequence` are covered by an
  // algorithm state of this batch or an earlier one, and are deleted. Applied after the deltas
  // and the states, so a batch may hold entries that its own trim removes.
  std::vector<std::pair<std::string, int64_t>> algorithm_journal_trims;
  std::vector<EventRecord> events;                            // append
  std::vector<std::pair<std::string, std::string>> settings;  // (key, value) upsert

  // Removals, applied after every write above (store/apply_removals.cc), in this order.
  // Checkpoint rows (family_id, uri) of states the coordinator released.
  std::vector<std::pair<int64_t, std::string>> checkpoint_removals;
  std::vector<GarbageRecord> garbage;        // upsert by uri
  std::vector<std::string> garbage_deleted;  // uris a worker deleted: their rows go
  // Studies removed with their trials, algorithm state and journal, and events.
  std::vector<std::string> study_deletions;
  std::vector<std::pair<int64_t, int64_t>> metric_lineage_deletions;  // (family_id, lineage)
  // Upsert by family_id, after the batch's operations; the family's operations up to the
  // snapshot's through_sequence are deleted with it (one transaction: a crash keeps both or
  // neither).
  std::vector<TreeSnapshotRecord> tree_snapshots;

  bool empty() const;
};

// Everything the coordinator needs to rebuild itself, read in one snapshot.
struct Snapshot {
  std::vector<FamilyRecord> families;              // by id
  std::vector<StudyRecord> studies;                // by created_ms, id
  std::vector<TrialRecord> trials;                 // by study_id, trial_id
  std::vector<TreeSnapshotRecord> tree_snapshots;  // by family_id, at most one per family
  std::vector<TreeOp> tree_ops;         // by family_id, sequence; after the family's snapshot
  std::vector<AttemptRecord> attempts;  // state 0 (running) only
  int64_t last_attempt_id = 0;          // the highest attempt id stored, in any state
  std::vector<CheckpointRecord> checkpoints;
  std::vector<std::pair<std::string, std::string>> algorithm_states;
  // Every study's journal entries not yet trimmed, by study_id, sequence: recovery loads the
  // study's state, then applies these in order.
  std::vector<AlgorithmDelta> algorithm_deltas;
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<GarbageRecord> garbage;             // by uri
  std::vector<WorkerHealthRecord> worker_health;  // by worker_id
};

class Store {
 public:
  // Opens `path`, creating a new Hippo database if the file does not exist or is empty, and
  // migrating an older schema forward (each migration in its own transaction). Refuses, with
  // FailedPrecondition naming the file and leaving it byte-for-byte untouched:
  //  - a file that is not SQLite, or is SQLite but not a Hippo database (another
  //    application_id, or tables but no Hippo marker);
  //  - a Hippo database whose schema version is newer than kSchemaVersion ("written by a newer
  //    Hippo; upgrade hippo").
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);

  virtual ~Store() = default;

  // Queues the batch for the writer thread and blocks until it is committed (OkStatus) or
  // failed (the error; nothing of the batch is stored). Batches queued by many threads at once
  // are committed in one transaction. An empty batch returns OkStatus at once.
  virtual absl::Status Commit(WriteBatch batch) = 0;
  // For a caller that pipelines its acknowledgements: Commit without waiting for the disk (the
  // transaction is committed, in order, but may be lost with the machine), then SyncLog, which
  // makes everything committed so far durable. Nothing of a batch may be acknowledged before a
  // SyncLog that started after its CommitUnsynced returned OK.
  virtual absl::Status CommitUnsynced(WriteBatch batch) = 0;
  virtual absl::Status SyncLog() = 0;

  virtual absl::StatusOr<Snapshot> LoadSnapshot() = 0;

  // Reads for the services.
  virtual absl::StatusOr<std::vector<StudyRecord>> ListStudies() = 0;
  virtual absl::StatusOr<std::optional<StudyRecord>> GetStudy(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<TrialRecord>> ListTrials(const std::string& study_id) = 0;
  virtual absl::StatusOr<std::vector<StageRecord>> ListStages(int64_t family_id) = 0;
  // Metrics of a family's lineages at steps in [from_step, to_step), ordered by lineage, step
  // (then name). An empty `lineages` means every lineage of the family.
  virtual absl::StatusOr<std::vector<MetricRecord>> ListMetrics(
      int64_t family_id, const std::vector<int64_t>& lineages, int64_t from_step,
      int64_t to_step) = 0;
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() = 0;
  // Events with sequence > after_sequence, oldest first, at most `limit` (all when limit <= 0).
  virtual absl::StatusOr<std::vector<EventRecord>> ListEvents(int64_t after_sequence,
                                                              int64_t limit) = 0;

  // Statistics of the writer, for benchmarks: batches and transactions committed so far.
  struct WriterStats {
    int64_t batches = 0;
    int64_t transactions = 0;
  };
  virtual WriterStats writer_stats() const = 0;
};

}  // namespace hippo::store

#endif  // HIPPO_STORE_STORE_H_
