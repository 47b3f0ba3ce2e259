// The engine across restarts on the same SQLite file, with in-test workers that behave as the
// worker runtime does after a coordinator crash: they reconnect under the same id and send the
// reports of their last attempts again.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include "hippo/engine.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::SmallGrid;
using engine_test::TempDb;
using engine_test::Train;

std::optional<v1::Assign> NextAssign(RecordingChannel& channel) {
  while (std::optional<v1::CoordinatorMessage> message = channel.Next()) {
    if (message->has_assign()) return message->assign();
  }
  return std::nullopt;
}

// Attempt ids name attempts to workers across sessions: a worker that kept running through a
// restart, or re-sends an old attempt's reports, must never be taken for the holder of a new
// attempt of the same id. The last attempt given before the restart was no longer running (its
// lease expired), so the running attempts alone do not show how far ids went.
TEST(EngineRestartTest, AttemptIdsGivenBeforeARestartAreNeverGivenAgain) {
  const std::string db = TempDb();
  std::string study_id;
  v1::Assign root;
  v1::Assign lost;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), false);
    ASSERT_TRUE(study.ok());
    study_id = study->id();
    auto channel = std::make_shared<RecordingChannel>();
    ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
    std::optional<v1::Assign> first = NextAssign(*channel);
    ASSERT_TRUE(first);
    root = *first;
    Train(engine, "w", root);  // the shared stage [0, 50)
    std::optional<v1::Assign> second = NextAssign(*channel);
    ASSERT_TRUE(second);
    lost = *second;  // a branch, never trained: its lease expires
    engine.Disconnect("w", 1);
    engine.ExpireLeases(Clock::now() + std::chrono::minutes(1));
  }
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(recovered.Connect(Hello("w"), channel).ok());
  std::optional<v1::Assign> next = NextAssign(*channel);
  ASSERT_TRUE(next);
  EXPECT_GT(next->attempt_id(), lost.attempt_id());
  EXPECT_GT(next->attempt_id(), root.attempt_id());

  // The worker re-sends what it reported for its first attempt (it keeps its last two
  // attempts' reports for a reconnect): stale, it must not end the new attempt.
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_attempt_id(root.attempt_id());
  finished.mutable_finished()->set_ok(true);
  ASSERT_TRUE(recovered.OnWorkerMessage("w", finished).ok());
  v1::WorkerMessage checkpoint;
  checkpoint.mutable_checkpoint()->set_attempt_id(root.attempt_id());
  checkpoint.mutable_checkpoint()->set_stage_id(root.stage_id());
  checkpoint.mutable_checkpoint()->set_step(root.end_step());
  checkpoint.mutable_checkpoint()->set_uri("file:///checkpoints/stale");
  ASSERT_TRUE(recovered.OnWorkerMessage("w", checkpoint).ok());
  EXPECT_EQ(recovered.stats().stale_reports_ignored, 2);
  std::optional<v1::Assign> extra = NextAssign(*channel);
  EXPECT_FALSE(extra) << "the stale finish ended the new attempt and freed the worker";

  // The study then ends normally, each branch trained once, nothing recomputed.
  Train(recovered, "w", *next);
  if (extra) Train(recovered, "w", *extra);
  while (std::optional<v1::Assign> assign = NextAssign(*channel)) Train(recovered, "w", *assign);
  absl::StatusOr<v1::Study> study = recovered.GetStudy(study_id);
  ASSERT_TRUE(study.ok());
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(study->steps().recomputed_steps(), 0);
  std::filesystem::remove(db);
}

}  // namespace
}  // namespace hippo::coordinator
