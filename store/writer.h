// The store's one writer: a thread that owns the read-write connection and commits batches in
// groups (group commit).
//
// Callers queue a batch and block. The thread takes everything queued, opens one transaction
// (BEGIN IMMEDIATE), applies each batch inside its own savepoint, commits, and only then wakes
// the callers. With synchronous=FULL the commit is on disk when it returns, so one fsync
// covers every batch of the group. A batch that fails (a duplicate tree op, say) is rolled
// back to its savepoint and fails alone; the other batches of the group still commit.
#ifndef HIPPO_STORE_WRITER_H_
#define HIPPO_STORE_WRITER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace hippo::store::internal {

class GroupCommitWriter {
 public:
  // Takes a read-write connection already in WAL mode and migrated; starts the thread.
  explicit GroupCommitWriter(std::unique_ptr<Connection> connection);
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;
  // Commits every batch already queued, then stops the thread and closes the connection.
  ~GroupCommitWriter();

  // Blocks until the batch is committed (OkStatus) or failed (its error; nothing of it stored).
  // An empty batch returns OkStatus at once.
  absl::Status Commit(WriteBatch batch);

  Store::WriterStats stats() const;

 private:
  // A queued batch. It lives on the caller's stack until `done`; the writer sets `status`
  // before `done` and never touches it after.
  struct Pending {
    WriteBatch batch;
    absl::Status status;
    bool done = false;
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

  mutable absl::Mutex mutex_;
  std::vector<Pending*> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;

  std::atomic<int64_t> batches_{0};
  std::atomic<int64_t> transactions_{0};

  std::thread thread_;  // last: starts after everything it uses exists
};

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_WRITER_H_
