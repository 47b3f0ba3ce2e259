#include "store/writer.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "store/apply_batch.h"

namespace hippo::store::internal {

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Connection> connection, std::string wal_path)
    : connection_(std::move(connection)), wal_path_(std::move(wal_path)), thread_([this] {
        pthread_setname_np(pthread_self(), "hippo-writer");  // as `top -H` shows it
        Loop();
      }) {}

GroupCommitWriter::~GroupCommitWriter() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

std::future<absl::Status> GroupCommitWriter::CommitAsync(WriteBatch batch, bool durable) {
  auto pending = std::make_unique<Pending>();
  pending->batch = std::move(batch);
  pending->durable = durable;
  std::future<absl::Status> committed = pending->committed.get_future();
  if (pending->batch.empty()) {
    pending->committed.set_value(absl::OkStatus());
    return committed;
  }
  absl::MutexLock lock(&mutex_);
  if (stopping_) {
    pending->committed.set_value(absl::FailedPreconditionError(
        absl::StrCat("store ", connection_->label(), ": closing, commit refused")));
    return committed;
  }
  queue_.push_back(std::move(pending));  // the writer's Await sees it when the lock is released
  return committed;
}

Store::WriterStats GroupCommitWriter::stats() const {
  Store::WriterStats stats;
  stats.batches = batches_.load(std::memory_order_relaxed);
  stats.transactions = transactions_.load(std::memory_order_relaxed);
  return stats;
}

void GroupCommitWriter::Loop() {
  while (true) {
    std::vector<std::unique_ptr<Pending>> group;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(this, &GroupCommitWriter::HasWorkOrStopping));
      if (queue_.empty()) return;  // stopping, and everything queued is committed
      group.swap(queue_);
    }
    std::vector<Pending*> batches;
    batches.reserve(group.size());
    for (const std::unique_ptr<Pending>& pending : group) batches.push_back(pending.get());
    CommitGroup(batches);
    // Only now, after COMMIT returned (and the stats count the group) and, for durable batches,
    // the log is on disk, are the callers told. A committed batch whose log cannot be synced
    // gets the sync's error: it must not be acknowledged.
    const bool sync = std::any_of(group.begin(), group.end(), [](const auto& pending) {
      return pending->durable && pending->status.ok();
    });
    const absl::Status synced = sync ? SyncLog() : absl::OkStatus();
    for (const std::unique_ptr<Pending>& pending : group) {
      if (pending->durable && pending->status.ok() && !synced.ok()) pending->status = synced;
      pending->committed.set_value(std::move(pending->status));
    }
  }
}

absl::Status GroupCommitWriter::SyncLog() {
  auto failure = [this](absl::string_view what, const std::string& path) {
    return absl::DataLossError(absl::StrCat("store ", connection_->label(), ": ", what, " ", path,
                                            ": ", std::strerror(errno),
                                            " (the last commits may not be on disk)"));
  };
  absl::MutexLock lock(&sync_mutex_);
  const int log = open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
  // No log: nothing was committed since the last connection checkpointed it and removed it.
  if (log < 0 && errno == ENOENT) return absl::OkStatus();
  if (log < 0) return failure("cannot open the log", wal_path_);
  struct stat file {};
  const bool synced = fstat(log, &file) == 0 && fdatasync(log) == 0;
  close(log);
  if (!synced) return failure("cannot sync the log", wal_path_);
  if (file.st_ino == synced_inode_) return absl::OkStatus();
  // A new log file: its name must be on disk too.
  std::string directory = std::filesystem::path(wal_path_).parent_path().string();
  if (directory.empty()) directory = ".";
  const int dir = open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool dir_synced = dir >= 0 && fsync(dir) == 0;
  if (dir >= 0) close(dir);
  if (!dir_synced) return failure("cannot sync the directory", directory);
  synced_inode_ = file.st_ino;
  return absl::OkStatus();
}

absl::Status GroupCommitWriter::ApplyInSavepoint(const WriteBatch& batch) {
  absl::Status status = connection_->Run("SAVEPOINT batch");
  if (status.ok()) status = ApplyWriteBatch(*connection_, batch);
  if (status.ok()) status = connection_->Run("RELEASE batch");
  if (status.ok()) return status;
  // Undo this batch's rows only; the batches before it in the transaction stay. Some errors
  // (disk full, I/O) make SQLite roll the whole transaction back by itself; if that happened or
  // the savepoint cannot be undone, end the transaction and let CommitGroup retry the others.
  if (connection_->InTransaction()) {
    bool undone =
        connection_->Run("ROLLBACK TO batch").ok() && connection_->Run("RELEASE batch").ok();
    if (!undone && connection_->InTransaction()) connection_->Run("ROLLBACK").IgnoreError();
  }
  return status;
}

void GroupCommitWriter::CommitGroup(const std::vector<Pending*>& group) {
  std::vector<Pending*> undecided = group;
  // Each round either commits or decides at least the batch that lost the transaction, so
  // this ends.
  while (!undecided.empty()) {
    if (absl::Status begun = connection_->Run("BEGIN IMMEDIATE"); !begun.ok()) {
      for (Pending* pending : undecided) pending->status = begun;
      return;
    }
    std::vector<Pending*> applied;
    std::vector<Pending*> retry;
    bool transaction_lost = false;
    for (Pending* pending : undecided) {
      if (transaction_lost) {
        retry.push_back(pending);
        continue;
      }
      // A batch alone in its transaction needs no savepoint: ROLLBACK undoes it. (The engine's
      // committer merges its batches into one, so this is the common case.)
      absl::Status status = undecided.size() == 1 ? ApplyWriteBatch(*connection_, pending->batch)
                                                  : ApplyInSavepoint(pending->batch);
      if (status.ok()) {
        applied.push_back(pending);
        continue;
      }
      pending->status = std::move(status);
      if (!connection_->InTransaction()) {
        // The batches applied so far went with the transaction: apply them again, in order.
        transaction_lost = true;
        retry = std::move(applied);
        applied.clear();
      }
    }
    if (transaction_lost) {
      undecided = std::move(retry);
      continue;
    }
    absl::Status committed =
        applied.empty() ? connection_->Run("ROLLBACK") : connection_->Run("COMMIT");
    if (!committed.ok()) {
      if (connection_->InTransaction()) connection_->Run("ROLLBACK").IgnoreError();
      for (Pending* pending : applied) pending->status = committed;
      return;
    }
    if (!applied.empty()) {
      transactions_.fetch_add(1, std::memory_order_relaxed);
      batches_.fetch_add(static_cast<int64_t>(applied.size()), std::memory_order_relaxed);
    }
    return;
  }
}

}  // namespace hippo::store::internal
