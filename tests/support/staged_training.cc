#include "tests/support/staged_training.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>

namespace hippo::test_support {
namespace {

using stage_tree::Segment;
using workers::Step;

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

}  // namespace

workers::StageTask TaskFor(const TrainerTrial& trial, Step start, Step end) {
  workers::StageTask task;
  task.attempt_id = 1;
  task.stage_id = start + 1000;
  task.start_step = start;
  task.end_step = end;
  for (const auto& [name, segments] : trial.parameters) {
    task.parameters[name] = Clip(segments, start, end);
  }
  task.static_parameters = trial.static_parameters;
  task.trainer_kind = trial.kind;
  task.trainer_config_json = trial.config;
  task.seed = trial.seed;
  task.checkpoint_steps = {end};
  return task;
}

void TrainStage(workers::Trainer& trainer, const TrainerTrial& trial, Step start, Step end,
                workers::TrainingState& state, Curve& curve) {
  const workers::StageTask task = TaskFor(trial, start, end);
  workers::StageControl control;
  control.SetAssignedCheckpoints(task.checkpoint_steps);
  workers::TrainCallbacks callbacks;
  callbacks.progress = [&curve](Step step, const workers::Metrics& metrics) {
    curve.emplace_back(step, metrics);
  };
  absl::StatusOr<workers::StageOutcome> outcome = trainer.Train(task, state, control, callbacks);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_EQ(state.step(), end);
}

Curve TrainStraight(const TrainerFactory& make_trainer, const TrainerTrial& trial) {
  std::unique_ptr<workers::Trainer> trainer = make_trainer();
  absl::StatusOr<std::unique_ptr<workers::TrainingState>> state =
      trainer->NewState(TaskFor(trial, 0, trial.horizon));
  EXPECT_TRUE(state.ok()) << state.status();
  if (!state.ok()) return {};
  Curve curve;
  TrainStage(*trainer, trial, 0, trial.horizon, **state, curve);
  return curve;
}

Curve TrainInStages(const TrainerFactory& make_trainer, const TrainerTrial& trial,
                    const std::vector<Step>& cuts, Handover handover) {
  std::unique_ptr<workers::Trainer> trainer = make_trainer();
  absl::StatusOr<std::unique_ptr<workers::TrainingState>> initial =
      trainer->NewState(TaskFor(trial, 0, trial.horizon));
  EXPECT_TRUE(initial.ok()) << initial.status();
  if (!initial.ok()) return {};
  std::unique_ptr<workers::TrainingState> state = *std::move(initial);
  Curve curve;
  Step start = 0;
  std::vector<Step> ends = cuts;
  ends.push_back(trial.horizon);
  for (Step end : ends) {
    TrainStage(*trainer, trial, start, end, *state, curve);
    trainer = make_trainer();
    if (handover == Handover::kCheckpointBytes) {
      absl::StatusOr<std::string> bytes = state->Serialize();
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      if (!bytes.ok()) return curve;
      state.reset();  // nothing survives but the bytes
      auto restored = trainer->Deserialize(TaskFor(trial, end, trial.horizon), *bytes);
      EXPECT_TRUE(restored.ok()) << restored.status();
      if (!restored.ok()) return curve;
      state = *std::move(restored);
    } else {
      std::unique_ptr<workers::TrainingState> copy = state->Clone();
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

}  // namespace hippo::test_support
