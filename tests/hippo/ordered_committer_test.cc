// The ordered committer merges the batches queued while it commits into as few transactions as
// their order allows. Every kind of change a batch carries must reach the store, removals
// included, and a batch's removals (which the store runs after a batch's writes) must land
// after the writes of the batches queued before it and before those of the batches after it.
#include "hippo/ordered_committer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "store/store.h"
#include "tests/hippo/engine_test_support.h"
#include "tests/store/store_test_util.h"

namespace hippo::coordinator {
namespace {

using store::testing_util::RawDatabase;

store::CheckpointRecord Checkpoint(int64_t node, int64_t step, const std::string& uri,
                                   int64_t size_bytes) {
  return store::CheckpointRecord{1, node, step, uri, size_bytes, "crc32c:0"};
}

std::optional<store::CheckpointRecord> Find(const store::Snapshot& snapshot,
                                            const std::string& uri) {
  for (const store::CheckpointRecord& record : snapshot.checkpoints) {
    if (record.uri == uri) return record;
  }
  return std::nullopt;
}

TEST(OrderedCommitterTest, EveryChangeOfTheQueuedBatchesIsCommittedRemovalsIncluded) {
  const std::string db = engine_test::TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  {
    OrderedCommitter committer(store->get());
    store::WriteBatch created;
    created.studies.push_back(store::StudyRecord{"s-1", "kept", "{}", 1, 100, 0, false, ""});
    created.studies.push_back(store::StudyRecord{"s-2", "deleted", "{}", 1, 200, 0, false, ""});
    store::WriteBatch changed;
    changed.study_deletions.push_back("s-2");
    changed.worker_health.push_back(store::WorkerHealthRecord{"w", 3, 1, 123, "disk full"});
    std::future<absl::Status> first = committer.Enqueue(std::move(created));
    std::future<absl::Status> second = committer.Enqueue(std::move(changed));
    EXPECT_TRUE(first.get().ok());
    EXPECT_TRUE(second.get().ok());
  }
  absl::StatusOr<store::Snapshot> snapshot = (*store)->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->studies.size(), 1u);
  EXPECT_EQ(snapshot->studies[0].id, "s-1");
  ASSERT_EQ(snapshot->worker_health.size(), 1u);
  EXPECT_EQ(snapshot->worker_health[0].consecutive_failures, 3);
  store->reset();
  std::filesystem::remove(db);
}

// The engine's order: a state is written (its checkpoint row), released (the row removed, the
// file made garbage), then written again under the same name by a stage trained again. The three
// batches are queued while an outside connection holds the write lock, so the committer takes
// them as one group: the released state's row must be gone, the rewritten one's must stay.
TEST(OrderedCommitterTest, ABatchsRemovalsLandAfterEarlierWritesAndBeforeLaterOnesOfItsGroup) {
  const std::string db = engine_test::TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string released = "file:///checkpoints/1-2-10.ckpt";   // written, then released
  const std::string rewritten = "file:///checkpoints/1-3-20.ckpt";  // the same, then again
  const store::Store::WriterStats before = (*store)->writer_stats();
  {
    OrderedCommitter committer(store->get());
    RawDatabase lock_holder(db);
    ASSERT_EQ(lock_holder.Exec("BEGIN IMMEDIATE"), SQLITE_OK);
    // The committer takes this one and waits for the lock.
    store::WriteBatch unrelated;
    unrelated.settings.emplace_back("test", "first");
    std::future<absl::Status> first = committer.Enqueue(std::move(unrelated));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));

    store::WriteBatch written;
    written.checkpoints = {Checkpoint(2, 10, released, 100), Checkpoint(3, 20, rewritten, 100)};
    store::WriteBatch release;
    release.checkpoint_removals = {{1, released}, {1, rewritten}};
    release.garbage.push_back(store::GarbageRecord{released, "/checkpoints", 100, 2, 10});
    release.garbage.push_back(store::GarbageRecord{rewritten, "/checkpoints", 100, 3, 20});
    store::WriteBatch again;
    again.checkpoints = {Checkpoint(3, 20, rewritten, 200)};
    std::future<absl::Status> second = committer.Enqueue(std::move(written));
    std::future<absl::Status> third = committer.Enqueue(std::move(release));
    std::future<absl::Status> fourth = committer.Enqueue(std::move(again));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all queued behind the lock
    ASSERT_EQ(lock_holder.Exec("ROLLBACK"), SQLITE_OK);
    for (std::future<absl::Status>* done : {&first, &second, &third, &fourth}) {
      EXPECT_TRUE(done->get().ok());
    }
  }
  // The three batches were merged (fewer store batches than committer batches): otherwise this
  // test would not be testing a group.
  const store::Store::WriterStats after = (*store)->writer_stats();
  EXPECT_LT(after.batches - before.batches, 4)
      << "the committer did not merge the batches queued behind the lock";

  absl::StatusOr<store::Snapshot> snapshot = (*store)->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  // Removed after the earlier batch wrote it.
  EXPECT_FALSE(Find(*snapshot, released).has_value()) << "a released state's row survived";
  // Written again after the removal: the new row stays.
  const std::optional<store::CheckpointRecord> kept = Find(*snapshot, rewritten);
  ASSERT_TRUE(kept.has_value()) << "the removal of an earlier batch took a later batch's row";
  EXPECT_EQ(kept->size_bytes, 200);
  EXPECT_EQ(snapshot->garbage.size(), 2u);
  store->reset();
  std::filesystem::remove(db);
}

}  // namespace
}  // namespace hippo::coordinator
