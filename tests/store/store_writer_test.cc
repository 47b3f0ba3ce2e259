// The writer thread: group commit under concurrency, a failing batch failing alone, and
// durability (Commit() returning means committed, even if the process dies right after).
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "store/wal_vfs.h"
#include "store/writer.h"
#include "tests/store/store_test_util.h"

namespace hippo::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using testing_util::Exists;
using testing_util::OpenOrDie;
using testing_util::RawDatabase;

using StoreGroupCommit = testing_util::StoreDirectoryTest;
using StoreDurability = testing_util::StoreDirectoryTest;

// The store's writer on its own, on a database the store created (WAL, migrated), for the
// properties the public API cannot reach: queue order and the destructor's drain.
// `wal_path`: the log the writer syncs before acknowledging (the database's own by default).
std::unique_ptr<internal::GroupCommitWriter> WriterOn(const std::string& path,
                                                      std::string wal_path = "") {
  OpenOrDie(path);  // create and migrate, then close
  absl::StatusOr<std::unique_ptr<internal::Connection>> connection =
      internal::Connection::Open(path, SQLITE_OPEN_READWRITE, path);
  EXPECT_TRUE(connection.ok()) << connection.status();
  if (!connection.ok()) return nullptr;
  sqlite3_busy_timeout((*connection)->handle(), 5000);
  EXPECT_TRUE((*connection)->Exec("PRAGMA synchronous = NORMAL").ok());
  if (wal_path.empty()) wal_path = path + "-wal";
  return std::make_unique<internal::GroupCommitWriter>(std::move(*connection),
                                                       std::move(wal_path));
}

std::string StudyId(int thread) { return "s-" + std::to_string(thread); }

// Batch `index` of thread `thread`: one trial, one metric, one event.
WriteBatch ThreadBatch(int thread, int index) {
  WriteBatch batch;
  TrialRecord trial;
  trial.study_id = StudyId(thread);
  trial.trial_id = index;
  trial.family_id = thread;
  trial.target_step = int64_t{index} * 10;
  batch.trials = {trial};
  MetricRecord metric;
  metric.family_id = thread;
  metric.lineage = 1;
  metric.step = index;
  metric.name = "loss";
  metric.value = 1.0 / (index + 1);
  batch.metrics = {metric};
  EventRecord event;
  event.study_id = StudyId(thread);
  event.kind = "trial_created";
  event.time_ms = index;
  batch.events = {event};
  return batch;
}

TreeOp Op(int64_t family_id, int64_t sequence) {
  TreeOp op;
  op.family_id = family_id;
  op.sequence = sequence;
  op.kind = TreeOpKind::kRunning;
  op.a = sequence;
  return op;
}

// A batch that must fail: it appends a tree op whose sequence already exists, after writing a
// study, a trial and an event that must not survive it.
WriteBatch DuplicateTreeOpBatch(const std::string& study_id, int64_t existing_sequence) {
  WriteBatch batch;
  StudyRecord study;
  study.id = study_id;
  batch.studies = {study};
  TrialRecord trial;
  trial.study_id = study_id;
  batch.trials = {trial};
  batch.events = {EventRecord{0, study_id, "bad", "{}", 0}};
  batch.tree_ops = {Op(1, existing_sequence)};
  return batch;
}

TEST_F(StoreGroupCommit, ConcurrentCommitsAllSucceedAndShareTransactions) {
  constexpr int kThreads = 32;
  constexpr int kBatchesPerThread = 50;
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &failures, t] {
      for (int i = 0; i < kBatchesPerThread; ++i) {
        if (!store->Commit(ThreadBatch(t, i)).ok()) failures++;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  for (int t = 0; t < kThreads; ++t) {
    absl::StatusOr<std::vector<TrialRecord>> trials = store->ListTrials(StudyId(t));
    ASSERT_TRUE(trials.ok()) << trials.status();
    ASSERT_THAT(*trials, SizeIs(kBatchesPerThread)) << "thread " << t;
    for (int i = 0; i < kBatchesPerThread; ++i) EXPECT_EQ((*trials)[i].target_step, i * 10);
    absl::StatusOr<std::vector<MetricRecord>> metrics = store->ListMetrics(t, {1}, 0, 1000);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_THAT(*metrics, SizeIs(kBatchesPerThread)) << "thread " << t;
  }
  absl::StatusOr<std::vector<EventRecord>> events = store->ListEvents(0, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_THAT(*events, SizeIs(kThreads * kBatchesPerThread));
  for (size_t i = 1; i < events->size(); ++i) {
    EXPECT_GT((*events)[i].sequence, (*events)[i - 1].sequence);
  }

  Store::WriterStats stats = store->writer_stats();
  EXPECT_EQ(stats.batches, kThreads * kBatchesPerThread);
  EXPECT_GE(stats.transactions, 1);
  EXPECT_LT(stats.transactions, stats.batches) << "no two batches shared a transaction";
}

// Deterministic version: an outside connection holds the write lock, so the writer is stuck
// in BEGIN IMMEDIATE with one good batch while the bad batch and the other good ones queue up
// behind it; they then form one group, in which the bad batch fails alone.
TEST_F(StoreGroupCommit, FailingBatchFailsAloneAndItsGroupStillCommits) {
  constexpr int kGoodThreads = 6;
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  WriteBatch first;
  first.tree_ops = {Op(1, 1)};
  ASSERT_TRUE(store->Commit(first).ok());
  const Store::WriterStats before = store->writer_stats();

  RawDatabase lock_holder(DatabasePath());
  ASSERT_EQ(lock_holder.Exec("BEGIN IMMEDIATE"), SQLITE_OK);

  std::vector<std::thread> threads;
  threads.reserve(kGoodThreads + 2);
  std::vector<absl::Status> good(kGoodThreads + 1);
  threads.emplace_back([&] { good[0] = store->Commit(ThreadBatch(0, 0)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the writer takes it and waits
  absl::Status bad;
  threads.emplace_back([&] { bad = store->Commit(DuplicateTreeOpBatch("s-bad", 1)); });
  for (int t = 1; t <= kGoodThreads; ++t) {
    threads.emplace_back([&, t] {
      WriteBatch batch = ThreadBatch(t, 0);
      batch.tree_ops = {Op(1, 1 + t)};  // new sequences: fine
      good[t] = store->Commit(std::move(batch));
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // all of them are queued
  ASSERT_EQ(lock_holder.Exec("ROLLBACK"), SQLITE_OK);
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(bad.code(), absl::StatusCode::kAlreadyExists) << bad;
  for (int t = 0; t <= kGoodThreads; ++t) EXPECT_TRUE(good[t].ok()) << t << ": " << good[t];

  const Store::WriterStats after = store->writer_stats();
  EXPECT_EQ(after.batches - before.batches, kGoodThreads + 1);
  EXPECT_EQ(after.transactions - before.transactions, 2)
      << "expected the first good batch alone, then every other batch in one transaction";

  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->tree_ops, SizeIs(1 + kGoodThreads));
  EXPECT_THAT(snapshot->studies, IsEmpty());
  absl::StatusOr<std::vector<TrialRecord>> bad_trials = store->ListTrials("s-bad");
  ASSERT_TRUE(bad_trials.ok());
  EXPECT_THAT(*bad_trials, IsEmpty());
  for (int t = 0; t <= kGoodThreads; ++t) {
    absl::StatusOr<std::vector<TrialRecord>> trials = store->ListTrials(StudyId(t));
    ASSERT_TRUE(trials.ok());
    EXPECT_THAT(*trials, SizeIs(1)) << t;
  }
  absl::StatusOr<std::vector<EventRecord>> events = store->ListEvents(0, 0);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(kGoodThreads + 1));
  for (const EventRecord& event : *events) EXPECT_NE(event.kind, "bad");
}

// The same property under free-running concurrency: bad batches mixed into a stream of good
// ones from many threads never take a good batch down with them.
TEST_F(StoreGroupCommit, FailingBatchesAmongConcurrentCommitsFailAlone) {
  constexpr int kGoodThreads = 8;
  constexpr int kBatchesPerThread = 40;
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  WriteBatch first;
  first.tree_ops = {Op(1, 1)};
  ASSERT_TRUE(store->Commit(first).ok());

  std::atomic<int> good_failures{0};
  std::atomic<int> bad_successes{0};
  std::vector<std::thread> threads;
  threads.reserve(kGoodThreads + 1);
  for (int t = 0; t < kGoodThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatchesPerThread; ++i) {
        if (!store->Commit(ThreadBatch(t, i)).ok()) good_failures++;
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < kBatchesPerThread; ++i) {
      if (store->Commit(DuplicateTreeOpBatch("s-bad-" + std::to_string(i), 1)).ok()) {
        bad_successes++;
      }
    }
  });
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(good_failures.load(), 0);
  EXPECT_EQ(bad_successes.load(), 0);
  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->studies, IsEmpty());
  EXPECT_THAT(snapshot->trials, SizeIs(kGoodThreads * kBatchesPerThread));
  EXPECT_EQ(store->writer_stats().batches, 1 + kGoodThreads * kBatchesPerThread);
}

// Commit() is CommitAsync().get(): the batch is queued before CommitAsync returns, batches are
// applied in queue order, and the future is ready only once the batch is committed.
TEST_F(StoreGroupCommit, WriterAppliesBatchesInQueueOrderAndResolvesOnlyAfterTheCommit) {
  constexpr int kBatches = 20;
  std::unique_ptr<internal::GroupCommitWriter> writer = WriterOn(DatabasePath());
  ASSERT_NE(writer, nullptr);
  RawDatabase lock_holder(DatabasePath());
  ASSERT_EQ(lock_holder.Exec("BEGIN IMMEDIATE"), SQLITE_OK);  // nothing can commit yet

  std::vector<std::future<absl::Status>> futures;
  for (int i = 1; i <= kBatches; ++i) {
    WriteBatch batch;
    batch.tree_ops = {Op(1, i)};
    batch.settings = {{"last", std::to_string(i)}};  // the last batch applied wins
    futures.push_back(writer->CommitAsync(std::move(batch)));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (std::future<absl::Status>& future : futures) {
    EXPECT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
        << "a batch was reported committed while the database was locked";
  }
  ASSERT_EQ(lock_holder.Exec("ROLLBACK"), SQLITE_OK);
  for (std::future<absl::Status>& future : futures) {
    absl::Status status = future.get();
    EXPECT_TRUE(status.ok()) << status;
  }
  writer.reset();

  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->settings,
              ElementsAre(std::pair<std::string, std::string>("last", std::to_string(kBatches))));
  ASSERT_THAT(snapshot->tree_ops, SizeIs(kBatches));
  for (int i = 0; i < kBatches; ++i) EXPECT_EQ(snapshot->tree_ops[i].sequence, i + 1);
}

// COMMIT runs with synchronous=NORMAL; the acknowledgement waits for the writer's fsync of the
// log. A log that cannot be synced (here: the writer is pointed at a path through a regular
// file) must turn a committed batch into an error, never an acknowledgement; a batch queued as
// not durable is acknowledged at COMMIT, and SyncLog reports the error.
TEST_F(StoreDurability, ABatchIsAcknowledgedOnlyOnceTheLogIsSynced) {
  {
    std::unique_ptr<internal::GroupCommitWriter> writer = WriterOn(DatabasePath());
    ASSERT_NE(writer, nullptr);
    EXPECT_TRUE(writer->Commit(ThreadBatch(0, 1)).ok());
  }
  const std::string unsyncable = DatabasePath() + "/not-the-log";
  std::unique_ptr<internal::GroupCommitWriter> writer = WriterOn(DatabasePath(), unsyncable);
  ASSERT_NE(writer, nullptr);
  absl::Status status = writer->Commit(ThreadBatch(0, 2));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find(unsyncable), std::string::npos) << status;
  EXPECT_TRUE(writer->Commit(ThreadBatch(0, 3), /*durable=*/false).ok());
  EXPECT_EQ(writer->SyncLog().code(), absl::StatusCode::kDataLoss);
}

TEST_F(StoreGroupCommit, WriterStatsCountCommittedBatchesAndTransactions) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store->Commit(ThreadBatch(0, i)).ok());
  EXPECT_EQ(store->writer_stats().batches, 3);
  EXPECT_EQ(store->writer_stats().transactions, 3);  // one at a time: nothing to group
  WriteBatch first;
  first.tree_ops = {Op(1, 1)};
  ASSERT_TRUE(store->Commit(first).ok());
  EXPECT_FALSE(store->Commit(DuplicateTreeOpBatch("s-bad", 1)).ok());
  EXPECT_EQ(store->writer_stats().batches, 4);  // a failed batch is not counted
  EXPECT_EQ(store->writer_stats().transactions, 4);
}

TEST_F(StoreDurability, DataCommittedBeforeTheStoreIsDestroyedIsThereAfterReopening) {
  {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->Commit(ThreadBatch(0, i)).ok());
  }
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<TrialRecord>> trials = store->ListTrials(StudyId(0));
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_THAT(*trials, SizeIs(10));
}

TEST_F(StoreDurability, DestroyingTheWriterCommitsEverythingAlreadyQueued) {
  constexpr int kBatches = 50;
  std::vector<std::future<absl::Status>> futures;
  {
    std::unique_ptr<internal::GroupCommitWriter> writer = WriterOn(DatabasePath());
    ASSERT_NE(writer, nullptr);
    for (int i = 0; i < kBatches; ++i) futures.push_back(writer->CommitAsync(ThreadBatch(0, i)));
  }  // destroyed without waiting for any of them
  for (std::future<absl::Status>& future : futures) {
    absl::Status status = future.get();
    EXPECT_TRUE(status.ok()) << status;
  }
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<TrialRecord>> trials = store->ListTrials(StudyId(0));
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_THAT(*trials, SizeIs(kBatches));
}

// A child process commits and then dies without destroying the store (no final checkpoint, no
// clean close, its writer thread still running). Whatever Commit() acknowledged must be there.
// The writer's log frames reach the -wal file in one write per transaction (store/wal_vfs.h)
// and before Commit returns: another connection, reading the files as SQLite does, sees every
// row at once. 200 wide rows: a transaction of some 25 pages, 50 writes without the VFS.
TEST_F(StoreDurability, ATransactionsLogIsWrittenOnceAndVisibleWhenCommitReturns) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  RawDatabase other(DatabasePath(), SQLITE_OPEN_READONLY);
  constexpr int kRows = 200;
  for (int round = 1; round <= 3; ++round) {
    WriteBatch batch;
    for (int i = 0; i < kRows; ++i) {
      TrialRecord trial;
      trial.study_id = "wide";
      trial.trial_id = round * 1000 + i;
      trial.point_json = std::string(400, 'x');
      batch.trials.push_back(trial);
    }
    const int64_t writes_before = internal::CoalescedWalWrites();
    ASSERT_TRUE(store->Commit(std::move(batch)).ok());
    EXPECT_EQ(internal::CoalescedWalWrites() - writes_before, 1) << "round " << round;
    EXPECT_EQ(other.QueryInt("SELECT count(*) FROM trials WHERE study_id = 'wide'"),
              kRows * round);
  }
  // A transaction of some 250 pages is written 128 KiB at a time, and lands whole too.
  WriteBatch large;
  for (int i = 0; i < 10 * kRows; ++i) {
    TrialRecord trial;
    trial.study_id = "large";
    trial.trial_id = i;
    trial.point_json = std::string(400, 'y');
    large.trials.push_back(trial);
  }
  const int64_t writes_before = internal::CoalescedWalWrites();
  ASSERT_TRUE(store->Commit(std::move(large)).ok());
  EXPECT_GE(internal::CoalescedWalWrites() - writes_before, 8);
  EXPECT_LE(internal::CoalescedWalWrites() - writes_before, 12);
  EXPECT_EQ(other.QueryInt("SELECT count(*) FROM trials WHERE study_id = 'large'"), 10 * kRows);
}

TEST_F(StoreDurability, CommitReturnedMeansCommittedEvenIfTheProcessDiesRightAfter) {
  constexpr int kBatches = 20;
  const std::string path = DatabasePath();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // No gtest assertions here: only the exit code speaks.
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
    if (!store.ok()) _exit(2);
    for (int i = 0; i < kBatches; ++i) {
      if (!(*store)->Commit(ThreadBatch(0, i)).ok()) _exit(3);
    }
    _exit(0);  // runs no destructor: the store is never closed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child could not open or commit";
  EXPECT_TRUE(Exists(path + "-wal")) << "the child closed the store after all";

  std::unique_ptr<Store> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<TrialRecord>> trials = store->ListTrials(StudyId(0));
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_THAT(*trials, SizeIs(kBatches));
  absl::StatusOr<std::vector<EventRecord>> events = store->ListEvents(0, 0);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(kBatches));
}

}  // namespace
}  // namespace hippo::store
