// The store's one writer: a thread that owns the read-write connection and commits batches in
// groups (group commit).
//
// Callers queue a batch and wait for its future. The thread takes everything queued, opens one
// transaction (BEGIN IMMEDIATE), applies each batch inside its own savepoint (a batch alone in
// the transaction needs none), commits, makes the
// log durable, and only then wakes the callers; one fsync covers every batch of the group. A
// batch that fails (a duplicate tree op, say) is rolled back to its savepoint and fails alone;
// the other batches of the group still commit.
//
// The connection runs with synchronous=NORMAL: COMMIT only writes the write-ahead log, and the
// writer then syncs the -wal file itself (fdatasync; the directory too, once per new file). A
// caller that pipelines (the engine's committer) may queue a batch as not durable: its future is
// ready right after COMMIT, and the caller calls SyncLog() before it acknowledges anything of it,
// while the writer goes on with the next group, so the fsync leaves the writer's serial path.
#ifndef HIPPO_STORE_WRITER_H_
#define HIPPO_STORE_WRITER_H_

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace hippo::store::internal {

class GroupCommitWriter {
 public:
  // Takes a read-write connection already in WAL mode (synchronous=NORMAL) and migrated, and the
  // path of its -wal file; starts the thread.
  GroupCommitWriter(std::unique_ptr<Connection> connection, std::string wal_path);
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;
  // Commits every batch already queued, then stops the thread and closes the connection.
  ~GroupCommitWriter();

  // Queues the batch before returning; the future becomes ready when the batch is committed
  // (OkStatus) or failed (its error; nothing of it stored). Batches are applied and committed
  // in the order they were queued; a failed batch does not stop those queued after it. An empty
  // batch gets a ready OkStatus.
  // `durable` false: the future is ready once COMMIT returned, before the log is synced; the
  // caller must SyncLog() before it acknowledges anything of the batch.
  std::future<absl::Status> CommitAsync(WriteBatch batch, bool durable = true);
  // CommitAsync(batch, durable).get().
  absl::Status Commit(WriteBatch batch, bool durable = true) {
    return CommitAsync(std::move(batch), durable).get();
  }
  // Makes everything committed so far durable: fdatasync of the -wal file (and of its directory
  // the first time a new file is seen). Any thread.
  absl::Status SyncLog();

  Store::WriterStats stats() const;

 private:
  // A queued batch. The writer owns it from the queue on, sets `status` while committing its
  // group, then fulfils `committed` with it.
  struct Pending {
    WriteBatch batch;
    bool durable = true;
    absl::Status status;
    std::promise<absl::Status> committed;
  };

  void Loop();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return !queue_.empty() || stopping_;
  }
  // Commits `group` in as few transactions as possible and sets every batch's status.
  void CommitGroup(const std::vector<Pending*>& group);
  // Applies one batch inside a savepoint of the open transaction; on error rolls the savepoint
  // back (or the whole transaction, if SQLite already did or the savepoint cannot be undone).
  absl::Status ApplyInSavepoint(const WriteBatch& batch);

  std::unique_ptr<Connection> connection_;  // used by the writer thread only
  const std::string wal_path_;
  absl::Mutex sync_mutex_;
  uint64_t synced_inode_ ABSL_GUARDED_BY(sync_mutex_) = 0;

  mutable absl::Mutex mutex_;
  std::vector<std::unique_ptr<Pending>> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;

  std::atomic<int64_t> batches_{0};
  std::atomic<int64_t> transactions_{0};

  std::thread thread_;  // last: starts after everything it uses exists
};

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_WRITER_H_
