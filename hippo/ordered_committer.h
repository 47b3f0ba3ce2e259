// OrderedCommitter: commits the engine's write batches in the order they were decided.
//
// The engine decides under its mutex and must not hold the mutex while a commit reaches the
// disk. Batches are enqueued under the mutex (so queue order is decision order) and a committer
// thread merges everything queued into one store transaction (group commit), then wakes the
// waiters. A crash can therefore lose only a suffix of decisions, never one from the middle,
// which keeps each family's tree-operation log gap-free.
//
// The disk is pipelined: the committer thread commits a group without waiting for the fsync
// (Store::CommitUnsynced) and goes on with the next; a delivery thread makes the log durable
// (Store::SyncLog, one fsync for every group committed so far) and only then runs the groups'
// `then` callbacks and readies their futures, in commit order. The delivery thread also sends:
// the stages wait for the cores more than for the disk, so a thread of its own for the sends
// would not pay (benchmarks/README.md, "coordinator").
//
// A failed commit leaves memory ahead of the store, which only a restart (recovery from the
// store) can reconcile: the committer then stops the process rather than let anything
// uncommitted be acknowledged.
#ifndef HIPPO_HIPPO_ORDERED_COMMITTER_H_
#define HIPPO_HIPPO_ORDERED_COMMITTER_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace hippo::coordinator {

class OrderedCommitter {
 public:
  explicit OrderedCommitter(store::Store* store);
  ~OrderedCommitter();  // commits what is queued, then stops
  OrderedCommitter(const OrderedCommitter&) = delete;
  OrderedCommitter& operator=(const OrderedCommitter&) = delete;

  // Queues `batch` after every batch queued before; the future holds its commit's status.
  // `then`, if given, runs on the delivery thread once the batch is committed and on disk, in
  // queue order and before the future is ready; it must not block (the engine sends messages
  // from it).
  std::future<absl::Status> Enqueue(store::WriteBatch batch, std::function<void()> then = {});

  // Returns once everything queued so far is committed (read-your-writes for store reads).
  void Flush() { Enqueue(store::WriteBatch()).wait(); }

 private:
  struct Pending {
    store::WriteBatch batch;
    std::function<void()> then;
    std::promise<absl::Status> done;
  };
  // A hand-off between two of the threads: pending groups in order, taken all at once.
  class Handoff {
   public:
    void Put(Pending pending);
    void PutAll(std::deque<Pending> pending);
    // Waits for pending groups and takes them all; empty once stopped and drained.
    std::deque<Pending> TakeAll();
    void Stop();

   private:
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Pending> pending_;
    bool stopping_ = false;
  };
  void CommitLoop();
  void DeliverLoop();

  store::Store* store_;
  Handoff queued_;     // enqueued, for the committer thread
  Handoff committed_;  // committed, not yet known to be on disk: for the delivery thread
  std::thread delivery_thread_;
  std::thread commit_thread_;
};

// Appends every row of `from` to `into`, keeping order.
void AppendBatch(store::WriteBatch& into, store::WriteBatch&& from);

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_ORDERED_COMMITTER_H_
