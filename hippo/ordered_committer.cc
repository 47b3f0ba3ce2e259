#include "hippo/ordered_committer.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>

namespace hippo::coordinator {
namespace {

template <typename T>
void Move(std::vector<T>& into, std::vector<T>& from) {
  if (into.empty()) {
    into = std::move(from);
  } else {
    into.insert(into.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
  }
}

// Memory is ahead of the store and only a restart can reconcile them (see the header).
[[noreturn]] void Fatal(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "hippo: fatal: the store failed to %s: %s\n", what,
               std::string(status.message()).c_str());
  std::abort();
}

// Whether the batch removes rows (store.h: removals run after the batch's writes).
bool HasRemovals(const store::WriteBatch& batch) {
  return !batch.checkpoint_removals.empty() || !batch.garbage.empty() ||
         !batch.garbage_deleted.empty() || !batch.study_deletions.empty() ||
         !batch.metric_lineage_deletions.empty();
}

}  // namespace

void AppendBatch(store::WriteBatch& into, store::WriteBatch&& from) {
  Move(into.families, from.families);
  Move(into.studies, from.studies);
  Move(into.trials, from.trials);
  Move(into.tree_ops, from.tree_ops);
  Move(into.stages, from.stages);
  Move(into.metrics, from.metrics);
  Move(into.attempts, from.attempts);
  Move(into.checkpoints, from.checkpoints);
  Move(into.workers, from.workers);
  Move(into.worker_health, from.worker_health);
  Move(into.algorithm_states, from.algorithm_states);
  Move(into.algorithm_deltas, from.algorithm_deltas);
  Move(into.algorithm_journal_trims, from.algorithm_journal_trims);
  Move(into.events, from.events);
  Move(into.settings, from.settings);
  Move(into.checkpoint_removals, from.checkpoint_removals);
  Move(into.garbage, from.garbage);
  Move(into.garbage_deleted, from.garbage_deleted);
  Move(into.study_deletions, from.study_deletions);
  Move(into.metric_lineage_deletions, from.metric_lineage_deletions);
  Move(into.tree_snapshots, from.tree_snapshots);
}

OrderedCommitter::OrderedCommitter(store::Store* store) : store_(store) {
  // Named as `top -H` shows them.
  delivery_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hippo-delivery");
    DeliverLoop();
  });
  commit_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hippo-committer");
    CommitLoop();
  });
}

OrderedCommitter::~OrderedCommitter() {
  // Each stage drains what it holds into the next before that one is stopped.
  queued_.Stop();
  commit_thread_.join();
  committed_.Stop();
  delivery_thread_.join();
}

void OrderedCommitter::Handoff::Put(Pending pending) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(pending));
  }
  wake_.notify_one();
}

void OrderedCommitter::Handoff::PutAll(std::deque<Pending> pending) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pending_.empty()) {
      pending_ = std::move(pending);
    } else {
      for (Pending& one : pending) pending_.push_back(std::move(one));
    }
  }
  wake_.notify_one();
}

std::deque<OrderedCommitter::Pending> OrderedCommitter::Handoff::TakeAll() {
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
  std::deque<Pending> taken;
  taken.swap(pending_);
  return taken;
}

void OrderedCommitter::Handoff::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
}

std::future<absl::Status> OrderedCommitter::Enqueue(store::WriteBatch batch,
                                                    std::function<void()> then) {
  Pending pending{std::move(batch), std::move(then), {}};
  std::future<absl::Status> future = pending.done.get_future();
  queued_.Put(std::move(pending));
  return future;
}

void OrderedCommitter::CommitLoop() {
  while (true) {
    std::deque<Pending> group = queued_.TakeAll();
    if (group.empty()) return;  // stopping, nothing left
    // The group's batches are merged into as few transactions as their order allows: a batch's
    // removals run after its writes (store.h), so a batch that removes ends its merge, and what
    // later batches write (a checkpoint row of the same file, a garbage row) comes after them.
    store::WriteBatch merged;
    for (Pending& pending : group) {
      const bool removes = HasRemovals(pending.batch);
      AppendBatch(merged, std::move(pending.batch));
      if (!removes) continue;
      // Stopping here on a failure, before the next batch, is what keeps the log a prefix.
      const absl::Status status = store_->CommitUnsynced(std::move(merged));
      if (!status.ok()) Fatal("commit", status);
      merged = store::WriteBatch();
    }
    if (!merged.empty()) {
      const absl::Status status = store_->CommitUnsynced(std::move(merged));
      if (!status.ok()) Fatal("commit", status);
    }
    committed_.PutAll(std::move(group));
  }
}

void OrderedCommitter::DeliverLoop() {
  while (true) {
    std::deque<Pending> ready = committed_.TakeAll();
    if (ready.empty()) return;  // stopping, everything delivered
    // One fsync for everything committed before it; only then is any of it acknowledged.
    const absl::Status synced = store_->SyncLog();
    if (!synced.ok()) Fatal("sync its log", synced);
    for (Pending& pending : ready) {
      if (pending.then) pending.then();
      pending.done.set_value(absl::OkStatus());
    }
  }
}

}  // namespace hippo::coordinator
