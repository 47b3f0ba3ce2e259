// The sim trainer: determinism across stage boundaries (checkpoint bytes and fork copies) and a
// learning curve that responds to the hyper-parameters.
#include "workers/sim_trainer.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/support/staged_training.h"

namespace hippo::workers {
namespace {

using stage_tree::Segment;
using stage_tree::SegmentFunction;

// A sim trial: the shared straight-versus-staged harness (tests/support) with the sim trainer.
struct Trial : test_support::TrainerTrial {
  Trial() { kind = "sim"; }
};

using test_support::Curve;
using test_support::ExpectBitIdentical;
using test_support::Handover;
using test_support::TaskFor;
using test_support::TrainStage;

std::unique_ptr<Trainer> MakeSim() { return std::make_unique<SimTrainer>(); }

Curve TrainStraight(const Trial& trial) { return test_support::TrainStraight(MakeSim, trial); }

Curve TrainInStages(const Trial& trial, const std::vector<Step>& cuts, Handover handover) {
  return test_support::TrainInStages(MakeSim, trial, cuts, handover);
}

// A positive function on [origin, origin + length).
SegmentFunction RandomFunction(std::mt19937_64& random, Step origin, Step length) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double high = 0.001 + 0.2 * unit(random);
  switch (random() % 4) {
    case 0:
      return SegmentFunction::Constant(high);
    case 1:
      return SegmentFunction::Linear(high, high * unit(random), origin,
                                     length + static_cast<Step>(random() % 50));
    case 2:
      return SegmentFunction::Exponential(high, 0.9 + 0.1 * unit(random), origin);
    default:
      return SegmentFunction::Cosine(high, high * unit(random), origin,
                                     10 + static_cast<Step>(random() % 100));
  }
}

std::vector<Segment> RandomSequence(std::mt19937_64& random, Step horizon) {
  std::vector<Segment> segments;
  Step start = 0;
  while (start < horizon) {
    const Step end = std::min(horizon, start + 1 + static_cast<Step>(random() % 40));
    segments.push_back({start, end, RandomFunction(random, start, end - start)});
    start = end;
  }
  return segments;
}

Trial RandomTrial(uint64_t seed) {
  std::mt19937_64 random(seed);
  Trial trial;
  trial.horizon = 40 + static_cast<Step>(random() % 80);
  trial.seed = random();
  trial.parameters["lr"] = RandomSequence(random, trial.horizon);
  trial.parameters["weight_decay"] = {
      {0, trial.horizon, SegmentFunction::Constant(1e-4 * (1 + random() % 5))}};
  trial.static_parameters["momentum"] = 0.8 + 0.01 * static_cast<double>(random() % 15);
  trial.static_parameters["depth"] = static_cast<double>(2 + random() % 5);
  trial.static_parameters["width"] = static_cast<double>(16 << (random() % 4));
  trial.config = R"({"state_bytes": 100})";
  return trial;
}

std::vector<Step> RandomCuts(std::mt19937_64& random, Step horizon, int count) {
  std::set<Step> cuts;
  while (static_cast<int>(cuts.size()) < count) cuts.insert(1 + random() % (horizon - 1));
  return {cuts.begin(), cuts.end()};
}

TEST(SimTrainerTest, StagedThroughCheckpointBytesIsBitIdenticalToStraight) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const Trial trial = RandomTrial(seed);
    std::mt19937_64 random(seed * 7919);
    const Curve straight = TrainStraight(trial);
    ASSERT_EQ(straight.size(), static_cast<size_t>(trial.horizon));
    for (int k = 1; k <= 4; ++k) {
      const std::vector<Step> cuts = RandomCuts(random, trial.horizon, k);
      ExpectBitIdentical(straight, TrainInStages(trial, cuts, Handover::kCheckpointBytes),
                         "trial set " + std::to_string(seed) + ", " + std::to_string(k + 1) +
                             " stages via checkpoint bytes");
    }
  }
}

TEST(SimTrainerTest, StagedThroughForkCopiesIsBitIdenticalToStraight) {
  for (uint64_t seed = 101; seed <= 108; ++seed) {
    const Trial trial = RandomTrial(seed);
    std::mt19937_64 random(seed * 104729);
    const Curve straight = TrainStraight(trial);
    for (int k = 1; k <= 4; ++k) {
      const std::vector<Step> cuts = RandomCuts(random, trial.horizon, k);
      ExpectBitIdentical(straight, TrainInStages(trial, cuts, Handover::kForkCopy),
                         "trial set " + std::to_string(seed) + ", " + std::to_string(k + 1) +
                             " stages via fork copies");
    }
  }
}

TEST(SimTrainerTest, EveryStepHasLossValLossAndValAccuracyInUnitInterval) {
  const Curve curve = TrainStraight(RandomTrial(5));
  for (const auto& [step, metrics] : curve) {
    ASSERT_TRUE(metrics.contains("loss"));
    ASSERT_TRUE(metrics.contains("val_loss"));
    ASSERT_TRUE(metrics.contains("val_accuracy"));
    EXPECT_GE(metrics.at("val_accuracy"), 0.0);
    EXPECT_LE(metrics.at("val_accuracy"), 1.0);
    EXPECT_GT(metrics.at("loss"), 0.0);
  }
}

Trial StepDecayTrial(double initial, double weight_decay) {
  Trial trial;
  trial.horizon = 120;
  trial.parameters["lr"] = {{0, 60, SegmentFunction::Constant(initial)},
                            {60, 90, SegmentFunction::Constant(initial * 0.1)},
                            {90, 120, SegmentFunction::Constant(initial * 0.01)}};
  trial.parameters["weight_decay"] = {{0, 120, SegmentFunction::Constant(weight_decay)}};
  trial.static_parameters["momentum"] = 0.9;
  return trial;
}

double FinalAccuracy(const Trial& trial) {
  return TrainStraight(trial).back().second.at("val_accuracy");
}

TEST(SimTrainerTest, DifferentHyperParametersGiveDifferentCurves) {
  const Curve a = TrainStraight(StepDecayTrial(0.1, 5e-4));
  const Curve b = TrainStraight(StepDecayTrial(0.05, 5e-4));
  const Curve c = TrainStraight(StepDecayTrial(0.1, 1e-4));
  ASSERT_EQ(a.size(), b.size());
  int differing_ab = 0, differing_ac = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    differing_ab += a[i].second != b[i].second;
    differing_ac += a[i].second != c[i].second;
  }
  EXPECT_EQ(differing_ab, static_cast<int>(a.size()));
  EXPECT_GT(differing_ac, static_cast<int>(a.size()) / 2);
}

TEST(SimTrainerTest, GoodScheduleEndsWithHigherAccuracyThanTerribleOne) {
  const double good = FinalAccuracy(StepDecayTrial(0.1, 5e-4));
  const double terrible = FinalAccuracy(StepDecayTrial(1e-5, 5e-4));
  EXPECT_GT(good, 0.8);
  EXPECT_LT(terrible, 0.2);
  EXPECT_GT(good, terrible + 0.5);
}

TEST(SimTrainerTest, DecayingTheRateBeatsKeepingItHigh) {
  Trial constant;
  constant.horizon = 120;
  constant.parameters["lr"] = {{0, 120, SegmentFunction::Constant(0.1)}};
  constant.parameters["weight_decay"] = {{0, 120, SegmentFunction::Constant(5e-4)}};
  EXPECT_GT(FinalAccuracy(StepDecayTrial(0.1, 5e-4)), FinalAccuracy(constant) + 0.05);
}

TEST(SimTrainerTest, ModerateWeightDecayBeatsTooLittleAndTooMuch) {
  const double moderate = FinalAccuracy(StepDecayTrial(0.1, 5e-4));
  EXPECT_GT(moderate, FinalAccuracy(StepDecayTrial(0.1, 1e-5)));
  EXPECT_GT(moderate, FinalAccuracy(StepDecayTrial(0.1, 2e-2)));
}

TEST(SimTrainerTest, VirtualTimeReportsCostWithoutSleeping) {
  Trial trial = StepDecayTrial(0.1, 5e-4);
  trial.config = R"({"cost_per_step": 30.0, "virtual_time": true})";
  SimTrainer trainer;
  StageTask task = TaskFor(trial, 0, 120);
  auto state = trainer.NewState(task);
  ASSERT_TRUE(state.ok());
  StageControl control;
  const absl::Time before = absl::Now();
  absl::StatusOr<StageOutcome> outcome = trainer.Train(task, **state, control, {});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  ASSERT_TRUE(outcome->virtual_seconds.has_value());
  EXPECT_DOUBLE_EQ(*outcome->virtual_seconds, 3600.0);
}

TEST(SimTrainerTest, CheckpointCallbackGetsEveryRequestedStep) {
  const Trial trial = StepDecayTrial(0.1, 5e-4);
  SimTrainer trainer;
  StageTask task = TaskFor(trial, 10, 50);
  task.checkpoint_steps = {20, 50};
  // A fresh state at step 10 comes from training [0, 10) first.
  auto state = trainer.NewState(task);
  ASSERT_TRUE(state.ok());
  Curve ignored;
  TrainStage(trainer, trial, 0, 10, **state, ignored);
  StageControl control;
  control.SetAssignedCheckpoints(task.checkpoint_steps);
  EXPECT_TRUE(control.RequestCheckpoint(33));
  std::vector<Step> written;
  TrainCallbacks callbacks;
  callbacks.checkpoint = [&](Step step, const TrainingState& at) {
    EXPECT_EQ(at.step(), step);
    written.push_back(step);
    return absl::OkStatus();
  };
  ASSERT_TRUE(trainer.Train(task, **state, control, callbacks).ok());
  EXPECT_EQ(written, (std::vector<Step>{20, 33, 50}));
  EXPECT_FALSE(control.RequestCheckpoint(40)) << "step 40 is already behind the trainer";
}

TEST(SimTrainerTest, CancelStopsAtAStepBoundary) {
  const Trial trial = StepDecayTrial(0.1, 5e-4);
  SimTrainer trainer;
  StageTask task = TaskFor(trial, 0, 120);
  auto state = trainer.NewState(task);
  ASSERT_TRUE(state.ok());
  StageControl control;
  TrainCallbacks callbacks;
  callbacks.progress = [&control](Step step, const Metrics&) {
    if (step == 9) control.Cancel();
  };
  absl::StatusOr<StageOutcome> outcome = trainer.Train(task, **state, control, callbacks);
  EXPECT_TRUE(absl::IsCancelled(outcome.status())) << outcome.status();
  EXPECT_EQ((*state)->step(), 10);
}

TEST(SimTrainerTest, StateAtAnotherStepThanTheStageStartIsRefused) {
  const Trial trial = StepDecayTrial(0.1, 5e-4);
  SimTrainer trainer;
  auto state = trainer.NewState(TaskFor(trial, 0, 120));
  ASSERT_TRUE(state.ok());
  StageControl control;
  absl::StatusOr<StageOutcome> outcome =
      trainer.Train(TaskFor(trial, 30, 60), **state, control, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(outcome.status())) << outcome.status();
}

TEST(SimTrainerTest, GarbageBytesAreNotASimState) {
  SimTrainer trainer;
  StageTask task;
  EXPECT_TRUE(absl::IsDataLoss(trainer.Deserialize(task, "not a state").status()));
  auto state = trainer.NewState(task);
  ASSERT_TRUE(state.ok());
  std::string bytes = *(*state)->Serialize();
  bytes.pop_back();  // the padding length no longer matches... or the fixed part is short
  EXPECT_FALSE(trainer.Deserialize(task, bytes).ok());
}

TEST(SimTrainerTest, BadConfigAndOutOfRangeParametersFailTheStage) {
  Trial trial = StepDecayTrial(0.1, 5e-4);
  SimTrainer trainer;
  StageControl control;
  trial.config = R"({"cost_per_step": "fast"})";
  StageTask task = TaskFor(trial, 0, 10);
  EXPECT_TRUE(absl::IsInvalidArgument(trainer.NewState(task).status()));

  trial.config = "{}";
  trial.static_parameters["momentum"] = 1.5;
  task = TaskFor(trial, 0, 10);
  auto state = trainer.NewState(task);
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(trainer.Train(task, **state, control, {}).status()));
}

}  // namespace
}  // namespace hippo::workers
