// The sim trainer: determinism across stage boundaries (checkpoint bytes and fork copies) and a
// learning curve that responds to the hyper-parameters.
#include "workers/sim_trainer.h"

#include <bit>
#include <random>

#include "gtest/gtest.h"

namespace hippo::workers {
namespace {

using stage_tree::Segment;
using stage_tree::SegmentFunction;

// A trial: full-length segments per hyper-parameter over [0, horizon).
struct Trial {
  std::map<std::string, std::vector<Segment>> parameters;
  std::map<std::string, StaticValue> static_parameters;
  Step horizon = 0;
  uint64_t seed = 0;
  std::string config = "{}";
};

// Segments of `segments` restricted to [start, end); functions keep their absolute origins.
std::vector<Segment> Clip(const std::vector<Segment>& segments, Step start, Step end) {
  std::vector<Segment> clipped;
  for (Segment segment : segments) {
    if (segment.end <= start || segment.start >= end) continue;
    segment.start = std::max(segment.start, start);
    segment.end = std::min(segment.end, end);
    clipped.push_back(segment);
  }
  return clipped;
}

StageTask TaskFor(const Trial& trial, Step start, Step end) {
  StageTask task;
  task.attempt_id = 1;
  task.stage_id = start + 1000;  // different per stage: must not influence the curve
  task.start_step = start;
  task.end_step = end;
  for (const auto& [name, segments] : trial.parameters) {
    task.parameters[name] = Clip(segments, start, end);
  }
  task.static_parameters = trial.static_parameters;
  task.trainer_kind = "sim";
  task.trainer_config_json = trial.config;
  task.seed = trial.seed;
  task.checkpoint_steps = {end};
  return task;
}

// Metrics per step, in order, as the trainer reported them.
using Curve = std::vector<std::pair<Step, Metrics>>;

void TrainStage(SimTrainer& trainer, const Trial& trial, Step start, Step end, TrainingState& state,
                Curve& curve) {
  StageTask task = TaskFor(trial, start, end);
  StageControl control;
  control.SetAssignedCheckpoints(task.checkpoint_steps);
  TrainCallbacks callbacks;
  callbacks.progress = [&curve](Step step, const Metrics& metrics) {
    curve.emplace_back(step, metrics);
  };
  absl::StatusOr<StageOutcome> outcome = trainer.Train(task, state, control, callbacks);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_EQ(state.step(), end);
}

Curve TrainStraight(const Trial& trial) {
  SimTrainer trainer;
  auto state = trainer.NewState(TaskFor(trial, 0, trial.horizon));
  EXPECT_TRUE(state.ok());
  Curve curve;
  TrainStage(trainer, trial, 0, trial.horizon, **state, curve);
  return curve;
}

enum class Handover { kCheckpointBytes, kForkCopy };

Curve TrainInStages(const Trial& trial, const std::vector<Step>& cuts, Handover handover) {
  SimTrainer trainer;
  auto initial = trainer.NewState(TaskFor(trial, 0, trial.horizon));
  EXPECT_TRUE(initial.ok());
  std::unique_ptr<TrainingState> state = *std::move(initial);
  Curve curve;
  Step start = 0;
  std::vector<Step> ends = cuts;
  ends.push_back(trial.horizon);
  for (Step end : ends) {
    TrainStage(trainer, trial, start, end, *state, curve);
    if (handover == Handover::kCheckpointBytes) {
      absl::StatusOr<std::string> bytes = state->Serialize();
      EXPECT_TRUE(bytes.ok());
      state.reset();  // nothing survives but the bytes
      auto restored = trainer.Deserialize(TaskFor(trial, end, trial.horizon), *bytes);
      EXPECT_TRUE(restored.ok()) << restored.status();
      state = *std::move(restored);
    } else {
      std::unique_ptr<TrainingState> copy = state->Clone();
      state.reset();
      state = std::move(copy);
    }
    start = end;
  }
  return curve;
}

void ExpectBitIdentical(const Curve& expected, const Curve& actual, const std::string& what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(expected[i].first, actual[i].first) << what;
    ASSERT_EQ(expected[i].second.size(), actual[i].second.size()) << what;
    for (const auto& [name, value] : expected[i].second) {
      auto it = actual[i].second.find(name);
      ASSERT_NE(it, actual[i].second.end()) << what << " misses " << name;
      EXPECT_EQ(std::bit_cast<uint64_t>(value), std::bit_cast<uint64_t>(it->second))
          << what << ": " << name << " at step " << expected[i].first << ": " << value << " vs "
          << it->second;
    }
  }
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
