// What merging saved, as `hippo study`, `run` and the dashboard show it, against the engine's
// real counts (a real SQLite store, an in-test worker): a study stopped a quarter of the way
// through compares the steps it trained with the trial-by-trial steps of the work done so far,
// not with every trial's full length; the counts survive a coordinator restart; a completed
// study is also set against distinct configurations.
#include <gtest/gtest.h>

#include <sstream>

#include "cli/output.h"
#include "hippo/engine.h"
#include "store/store.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::cli {
namespace {

namespace v1 = ::hippo::v1;
using coordinator::Engine;
using coordinator::EngineOptions;
using coordinator::engine_test::Hello;
using coordinator::engine_test::RecordingChannel;
using coordinator::engine_test::SmallGrid;
using coordinator::engine_test::TempDb;

std::string Savings(const v1::Study& study) {
  std::ostringstream out;
  PrintSavings(study, out);
  return out.str();
}

TEST(SavingsTest, AStudyStoppedAtAQuarterClaimsOnlyTheSavingOfTheWorkDone) {
  const std::string db = TempDb();
  std::string study_id;
  v1::StepCounts stopped_counts;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    // Two trials of 100 steps sharing [0, 50): 200 steps trial by trial, 150 merged.
    absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    auto channel = std::make_shared<RecordingChannel>();
    ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
    std::optional<v1::CoordinatorMessage> shared = channel->Next();
    ASSERT_TRUE(shared && shared->has_assign());
    ASSERT_EQ(shared->assign().end_step(), 50);
    coordinator::engine_test::Train(engine, "w", shared->assign());

    // A quarter of the trial-by-trial steps: 50 trained, which both trials reached.
    absl::StatusOr<v1::Study> stopped = engine.StopStudy(study_id, "enough");
    ASSERT_TRUE(stopped.ok()) << stopped.status();
    const v1::StepCounts& steps = stopped->steps();
    EXPECT_EQ(steps.trial_steps(), 200);
    EXPECT_EQ(steps.executed_steps(), 50);
    EXPECT_EQ(steps.reached_trial_steps(), 100) << "each trial counts the 50 steps it reached";
    EXPECT_EQ(steps.distinct_steps(), 200);
    EXPECT_EQ(steps.checkpoint_copy_steps(), 200) << "no forks";

    const std::string text = Savings(*stopped);
    EXPECT_NE(text.find("2.00x fewer steps than trial by trial on the work done so far"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("4.00x"), std::string::npos) << "the full-length ratio: " << text;
    EXPECT_EQ(text.find("distinct configurations"), std::string::npos)
        << "a full-length baseline for a study that did not finish: " << text;
    stopped_counts = steps;
  }
  // A restarted coordinator rebuilds the same counts from the store.
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> recovered = engine.GetStudy(study_id);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->steps().SerializeAsString(), stopped_counts.SerializeAsString())
      << recovered->steps().ShortDebugString() << " vs " << stopped_counts.ShortDebugString();
}

TEST(SavingsTest, ARunningStudyShowsTheSavingSoFarAndALabelledProjection) {
  auto store = store::Store::Open(TempDb());
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
  ASSERT_TRUE(study.ok()) << study.status();
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  std::optional<v1::CoordinatorMessage> shared = channel->Next();
  ASSERT_TRUE(shared && shared->has_assign());
  coordinator::engine_test::Train(engine, "w", shared->assign());
  absl::StatusOr<v1::Study> running = engine.GetStudy(study->id());
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->state(), v1::STUDY_RUNNING);
  const std::string text = Savings(*running);
  EXPECT_NE(text.find("2.00x fewer steps than trial by trial on the work done so far"),
            std::string::npos)
      << text;
  // 200 trial steps over the 150 unique steps of the tree known now.
  EXPECT_NE(text.find("projection      1.33x"), std::string::npos) << text;
}

TEST(SavingsTest, ACompletedStudyIsAlsoSetAgainstDistinctConfigurations) {
  auto store = store::Store::Open(TempDb());
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
  ASSERT_TRUE(study.ok()) << study.status();
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  // The shared stage, then each trial's own: one worker trains them one after the other.
  for (int stage = 0; stage < 3; ++stage) {
    std::optional<v1::CoordinatorMessage> next = channel->Next();
    while (next && !next->has_assign()) next = channel->Next();
    ASSERT_TRUE(next.has_value()) << stage;
    coordinator::engine_test::Train(engine, "w", next->assign());
  }
  absl::StatusOr<v1::Study> done = engine.GetStudy(study->id());
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(done->steps().reached_trial_steps(), 200);
  EXPECT_EQ(done->steps().executed_steps(), 150);
  const std::string text = Savings(*done);
  EXPECT_NE(text.find("1.33x fewer steps than trial by trial\n"), std::string::npos) << text;
  EXPECT_NE(text.find("1.33x fewer steps than distinct configurations"), std::string::npos) << text;
  EXPECT_EQ(text.find("projection"), std::string::npos) << text;
}

// The trial-by-trial (--no-merge) run of a PBT study executes more steps than a PBT that copies
// checkpoints: the line must say "more", with a ratio of at least 1, never "0.42x fewer".
TEST(SavingsTest, AComparisonWithMoreStepsThanItsBaselineSaysMore) {
  v1::Study study;
  study.set_state(v1::STUDY_COMPLETED);
  study.mutable_spec()->mutable_trainer()->set_step_unit("epoch");
  v1::StepCounts& steps = *study.mutable_steps();
  steps.set_trial_steps(4560);
  steps.set_distinct_steps(4560);
  steps.set_checkpoint_copy_steps(1920);
  steps.set_unique_steps(4560);
  steps.set_executed_steps(4560);
  steps.set_reached_trial_steps(4560);
  const std::string text = Savings(study);
  EXPECT_NE(text.find("merging saved   nothing: as many epochs as trial by trial\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("2.38x more epochs than checkpoint-copying PBT"), std::string::npos) << text;
  EXPECT_EQ(text.find("0.42x"), std::string::npos) << text;

  steps.set_executed_steps(1920);  // merged: what checkpoint-copying PBT trains, no fewer
  const std::string merged = Savings(study);
  EXPECT_NE(merged.find("merging saved   2640 epochs: 2.38x fewer epochs than trial by trial\n"),
            std::string::npos)
      << merged;
  EXPECT_NE(merged.find("as many epochs as checkpoint-copying PBT"), std::string::npos) << merged;
}

TEST(SavingsTest, ComparedStatesTheDirectionWithARatioOfAtLeastOne) {
  EXPECT_EQ(Compared(50, 100, "step", "trial by trial"), "2.00x fewer steps than trial by trial");
  EXPECT_EQ(Compared(100, 50, "step", "X"), "2.00x more steps than X");
  EXPECT_EQ(Compared(7, 7, "epoch", "X"), "as many epochs as X");
  EXPECT_EQ(Compared(0, 7, "epoch", "X"), "no epochs (X: 7)");
}

}  // namespace
}  // namespace hippo::cli
