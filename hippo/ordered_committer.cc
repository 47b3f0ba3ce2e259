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
  Move(into.algorithm_states, from.algorithm_states);
  Move(into.events, from.events);
  Move(into.settings, from.settings);
}

OrderedCommitter::OrderedCommitter(store::Store* store) : store_(store) {
  delivery_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hippo-delivery");
    DeliverLoop();
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hippo-committer");  // as `top -H` shows it
    Loop();
  });
}

OrderedCommitter::~OrderedCommitter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();  // everything queued is committed and handed to delivery
  {
    std::lock_guard<std::mutex> lock(delivery_mutex_);
    delivery_stopping_ = true;
  }
  delivery_wake_.notify_one();
  delivery_thread_.join();
}

std::future<absl::Status> OrderedCommitter::Enqueue(store::WriteBatch batch,
                                                    std::function<void()> then) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.push_back(Pending{std::move(batch), std::move(then), {}});
  std::future<absl::Status> future = queue_.back().done.get_future();
  wake_.notify_one();
  return future;
}

void OrderedCommitter::Loop() {
  while (true) {
    std::deque<Pending> group;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      group.swap(queue_);
    }
    store::WriteBatch merged;
    for (Pending& pending : group) AppendBatch(merged, std::move(pending.batch));
    // Stopping here on a failure, before the next group, is what keeps the log a prefix.
    const absl::Status status = store_->CommitUnsynced(std::move(merged));
    if (!status.ok()) Fatal("commit", status);
    {
      std::lock_guard<std::mutex> lock(delivery_mutex_);
      for (Pending& pending : group) committed_.push_back(std::move(pending));
    }
    delivery_wake_.notify_one();
  }
}

void OrderedCommitter::DeliverLoop() {
  while (true) {
    std::deque<Pending> ready;
    {
      std::unique_lock<std::mutex> lock(delivery_mutex_);
      delivery_wake_.wait(lock, [this] { return delivery_stopping_ || !committed_.empty(); });
      if (committed_.empty()) return;  // stopping, everything delivered
      ready.swap(committed_);
    }
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
