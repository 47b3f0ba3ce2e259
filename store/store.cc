#include "store/store.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/admission.h"
#include "store/reader.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "store/wal_vfs.h"
#include "store/writer.h"

namespace hippo::store {

bool WriteBatch::empty() const {
  return families.empty() && studies.empty() && trials.empty() && tree_ops.empty() &&
         stages.empty() && metrics.empty() && attempts.empty() && checkpoints.empty() &&
         workers.empty() && worker_health.empty() && algorithm_states.empty() &&
         algorithm_deltas.empty() && algorithm_journal_trims.empty() && events.empty() &&
         settings.empty() && checkpoint_removals.empty() && garbage.empty() &&
         garbage_deleted.empty() && study_deletions.empty() && metric_lineage_deletions.empty() &&
         tree_snapshots.empty();
}

namespace {

using internal::Connection;

// How long a connection waits for a lock held by another connection before giving up. Our own
// connections never block each other in WAL mode; this covers a checkpoint or a tool holding
// the file briefly.
constexpr int kBusyTimeoutMs = 5000;

// After a checkpoint the log is truncated to at most this size, so a burst of writes does not
// leave a large -wal file behind for good.
constexpr int64_t kJournalSizeLimitBytes = 64 << 20;

// SQLite checkpoints the log into the database file inside the COMMIT that brings it to this
// many frames (pages), on the writer's serial path: a copy of every page changed since the last
// checkpoint and two fsyncs. Smaller than SQLite's 1 000, so that each such commit is shorter:
// p99 dispatch latency 8.56 vs 9.82 ms in five alternating coordinator benchmark rounds;
// larger intervals (4 000, 16 000) made it worse, and a background checkpointer cannot restart
// the log while commits keep coming.
constexpr int kCheckpointFrames = 300;

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader,
              std::string wal_path)
      : writer_(std::move(writer), std::move(wal_path)), reader_(std::move(reader)) {}

  absl::Status Commit(WriteBatch batch) override { return writer_.Commit(std::move(batch)); }
  absl::Status CommitUnsynced(WriteBatch batch) override {
    return writer_.Commit(std::move(batch), /*durable=*/false);
  }
  absl::Status SyncLog() override { return writer_.SyncLog(); }
  absl::StatusOr<Snapshot> LoadSnapshot() override { return reader_.LoadSnapshot(); }
  absl::StatusOr<std::vector<StudyRecord>> ListStudies() override { return reader_.ListStudies(); }
  absl::StatusOr<std::optional<StudyRecord>> GetStudy(const std::string& id) override {
    return reader_.GetStudy(id);
  }
  absl::StatusOr<std::vector<TrialRecord>> ListTrials(const std::string& study_id) override {
    return reader_.ListTrials(study_id);
  }
  absl::StatusOr<std::vector<StageRecord>> ListStages(int64_t family_id) override {
    return reader_.ListStages(family_id);
  }
  absl::StatusOr<std::vector<MetricRecord>> ListMetrics(int64_t family_id,
                                                        const std::vector<int64_t>& lineages,
                                                        int64_t from_step,
                                                        int64_t to_step) override {
    return reader_.ListMetrics(family_id, lineages, from_step, to_step);
  }
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override { return reader_.ListWorkers(); }
  absl::StatusOr<std::vector<EventRecord>> ListEvents(int64_t after_sequence,
                                                      int64_t limit) override {
    return reader_.ListEvents(after_sequence, limit);
  }
  WriterStats writer_stats() const override { return writer_.stats(); }

 private:
  // Declared in this order so the reader closes first: the writer's connection is then the
  // last one, and closing it checkpoints the log into the main file and removes -wal and -shm.
  internal::GroupCommitWriter writer_;
  internal::Reader reader_;
};

// Settings of the read-write connection. synchronous=FULL while the schema is migrated, so a
// migration is on disk when it returns; then NORMAL (store/writer.h): the writer syncs the log
// itself before anything of a group is acknowledged, so the durability
// rule (nothing acknowledged before it is committed) holds across power loss, not only across
// a crash of the process. temp_store=MEMORY: the journals of statements and savepoints stay in
// memory; on disk, SQLite created, wrote and unlinked a temporary file for nearly every group.
absl::Status ConfigureWriter(Connection& connection) {
  sqlite3_busy_timeout(connection.handle(), kBusyTimeoutMs);
  absl::StatusOr<std::string> mode = connection.QueryText("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("store ", connection.label(),
                     ": cannot switch to WAL mode (journal mode "
                     "stays '",
                     *mode,
                     "'); the store needs a local file system with shared "
                     "memory"));
  }
  return connection.Exec(absl::StrCat(
      "PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; "
      "PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = ",
      kCheckpointFrames, "; PRAGMA journal_size_limit = ", kJournalSizeLimitBytes, ";"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  // Nothing is written before the file is admitted (see admission.h).
  absl::StatusOr<internal::Admission> admission = internal::AdmitDatabaseFile(path);
  if (!admission.ok()) return admission.status();

  int flags = SQLITE_OPEN_READWRITE;
  if (*admission == internal::Admission::kCreate) flags |= SQLITE_OPEN_CREATE;
  // Its log frames reach the -wal file in one write per transaction (store/wal_vfs.h).
  absl::StatusOr<std::unique_ptr<Connection>> writer =
      Connection::Open(path, flags, path, internal::CoalescingWalVfs());
  if (!writer.ok()) return writer.status();
  // The file may have changed between the admission and this open, so read the markers again
  // before writing. Until they pass, closing this connection must not checkpoint a log another
  // program left into the main file.
  sqlite3_db_config((*writer)->handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  if (absl::Status markers = internal::CheckHippoMarkers(**writer); !markers.ok()) return markers;
  sqlite3_db_config((*writer)->handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  if (absl::Status configured = ConfigureWriter(**writer); !configured.ok()) return configured;
  if (absl::Status migrated = internal::Migrate(**writer); !migrated.ok()) return migrated;
  // From here COMMIT only writes the log; GroupCommitWriter syncs it before telling anyone.
  if (absl::Status normal = (*writer)->Exec("PRAGMA synchronous = NORMAL;"); !normal.ok()) {
    return normal;
  }

  absl::StatusOr<std::unique_ptr<Connection>> reader =
      Connection::Open(path, SQLITE_OPEN_READONLY, path);
  if (!reader.ok()) return reader.status();
  sqlite3_busy_timeout((*reader)->handle(), kBusyTimeoutMs);

  return std::make_unique<SqliteStore>(std::move(*writer), std::move(*reader), path + "-wal");
}

}  // namespace hippo::store
