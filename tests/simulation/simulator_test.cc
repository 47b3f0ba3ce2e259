// The virtual-time simulator on W1: every unique step once, makespan near its bound, the same
// best trial with merging on and off, and 1 024 workers finishing at the critical path.
#include "simulation/simulator.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>

#include "search_algos/spec_checks.h"
#include "stage_tree/search_space.h"

namespace hippo::simulation {
namespace {

namespace v1 = ::hippo::v1;

v1::StudySpec Workload(const std::string& name) {
  absl::StatusOr<v1::StudySpec> spec = search_algos::LoadStudySpecFile(
      std::string(HIPPO_SOURCE_DIR) + "/examples/workloads/" + name);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

v1::StudySpec W1() { return Workload("w1.yaml"); }

v1::StudySpec MixedSchedules() {
  absl::StatusOr<v1::StudySpec> spec =
      search_algos::LoadStudySpecFile(std::string(HIPPO_SOURCE_DIR) + "/examples/schedules.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

uint64_t ValueBits(double value) { return value == 0.0 ? 0 : std::bit_cast<uint64_t>(value); }

// The unique steps of a grid study counted from the trials' values alone: two trials share
// step s when their structural values match and every hyper-parameter has the same value at
// every step up to s.
int64_t ValueBasedUniqueSteps(const v1::StudySpec& spec) {
  absl::StatusOr<stage_tree::SearchSpace> space =
      stage_tree::SearchSpaceFromProto(spec.search_space());
  EXPECT_TRUE(space.ok()) << space.status();
  absl::StatusOr<std::vector<stage_tree::Point>> points = stage_tree::GridPoints(*space);
  EXPECT_TRUE(points.ok()) << points.status();
  const int64_t steps = spec.budget().max_steps();
  std::vector<stage_tree::TrialPlan> trials;
  std::map<std::string, int64_t> families;
  std::vector<int64_t> prefix;
  for (const stage_tree::Point& point : *points) {
    absl::StatusOr<stage_tree::TrialPlan> plan = stage_tree::BuildTrial(*space, point, steps);
    EXPECT_TRUE(plan.ok()) << plan.status();
    const std::string family = stage_tree::FamilyKey("", plan->structural);
    prefix.push_back(families.try_emplace(family, families.size()).first->second);
    trials.push_back(*std::move(plan));
  }
  int64_t unique = 0;
  for (int64_t s = 0; s < steps; ++s) {
    std::map<std::pair<int64_t, std::vector<uint64_t>>, int64_t> ids;
    for (size_t t = 0; t < trials.size(); ++t) {
      std::vector<uint64_t> values;
      for (const auto& [name, sequence] : trials[t].sequences) {
        values.push_back(ValueBits(sequence.Evaluate(s)));
      }
      prefix[t] = ids.try_emplace({prefix[t], std::move(values)}, ids.size()).first->second;
    }
    unique += static_cast<int64_t>(ids.size());
  }
  return unique;
}

// examples/schedules.yaml (lr: step decay or cosine, with or without warm-up; momentum:
// constant or a linear ramp; dropout structural) through the engine: it trains exactly its
// value-based unique steps. The same space with the ramp written as 30 one-step piecewise
// values trains the same steps in as many stages: the pieces cut nothing.
TEST(SimulatorTest, MixedScheduleSpaceTrainsExactlyItsValueBasedUniqueSteps) {
  const v1::StudySpec linear = MixedSchedules();
  v1::StudySpec pieces = linear;
  v1::SequenceParameter* ramp =
      pieces.mutable_search_space()->mutable_parameters(1)->mutable_sequence()->mutable_one_of(1);
  ASSERT_TRUE(ramp->has_linear());
  const stage_tree::SegmentFunction line = stage_tree::SegmentFunction::Linear(0.85, 0.95, 0, 30);
  v1::PiecewiseSequence* piecewise = ramp->mutable_piecewise();
  for (int64_t s = 0; s < 30; ++s) {
    piecewise->add_boundaries(s + 1);
    piecewise->add_values(line.Evaluate(s));
  }
  piecewise->add_values(0.95);

  const int64_t expected = ValueBasedUniqueSteps(linear);
  EXPECT_EQ(ValueBasedUniqueSteps(pieces), expected);
  std::vector<int64_t> dispatches;
  for (const v1::StudySpec& spec : {linear, pieces}) {
    SimulationOptions options;
    options.workers = 4;
    absl::StatusOr<SimulationResult> result = Simulate(spec, options);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->study.state(), v1::STUDY_COMPLETED);
    EXPECT_EQ(result->study.trials_completed(), 48);
    EXPECT_EQ(result->study.steps().unique_steps(), expected);
    EXPECT_EQ(result->study.steps().executed_steps(), expected);
    EXPECT_EQ(result->study.steps().recomputed_steps(), 0);
    EXPECT_LT(expected, result->study.steps().trial_steps());
    dispatches.push_back(result->dispatches);
    RecordProperty(spec.search_space().parameters(1).sequence().one_of(1).has_linear()
                       ? "linear_dispatches"
                       : "pieces_dispatches",
                   static_cast<int>(result->dispatches));
    RecordProperty("trial_steps", static_cast<int>(result->study.steps().trial_steps()));
  }
  RecordProperty("unique_steps", static_cast<int>(expected));
  EXPECT_EQ(dispatches[0], dispatches[1]);
}

// Each algorithm's workload completes and wastes under 1% of its unique steps: stages keep
// their states where the algorithm pauses or branches trials (its BranchSteps), so almost
// nothing is recomputed.
TEST(SimulatorTest, EveryAlgorithmWorkloadCompletesWithWasteUnderOnePercent) {
  for (const char* name : {"w2.yaml", "w3.yaml", "w4.yaml", "w6.yaml"}) {
    SimulationOptions options;
    options.workers = 8;
    absl::StatusOr<SimulationResult> result = Simulate(Workload(name), options);
    ASSERT_TRUE(result.ok()) << name << ": " << result.status();
    EXPECT_EQ(result->study.state(), v1::STUDY_COMPLETED) << name;
    const v1::StepCounts& steps = result->study.steps();
    EXPECT_LT(steps.executed_steps(), 1.01 * steps.unique_steps()) << name;
    EXPECT_GE(result->makespan, result->makespan_bound) << name;
  }
}

TEST(SimulatorTest, W1WithEightWorkersTrainsUniqueStepsOnceNearTheMakespanBound) {
  SimulationOptions options;
  options.workers = 8;
  absl::StatusOr<SimulationResult> merged = Simulate(W1(), options);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->study.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(merged->study.steps().unique_steps(), 7438);
  EXPECT_EQ(merged->study.steps().executed_steps(), 7438);
  EXPECT_GE(merged->makespan, merged->makespan_bound);
  EXPECT_LE(merged->makespan, 1.10 * merged->makespan_bound);

  options.no_merge = true;
  absl::StatusOr<SimulationResult> baseline = Simulate(W1(), options);
  ASSERT_TRUE(baseline.ok()) << baseline.status();
  EXPECT_EQ(baseline->study.steps().executed_steps(), 11520);
  EXPECT_EQ(baseline->study.best_trial().id(), merged->study.best_trial().id());
  EXPECT_EQ(baseline->study.best_trial().objective_value(),
            merged->study.best_trial().objective_value());
  EXPECT_GT(baseline->makespan, merged->makespan);
}

// One worker: after each stage that has children it is given one of them, which it continues
// with the model in memory (EngineImpl::ContinuationsOf). A stage cannot follow its parent only
// after a leaf: in a grid each of the 96 trials ends at its own leaf, so at most all stages but
// 96 continue, and that is what one worker does (398 of W1's 494 stages). The results are those
// of the critical-path order on 8 workers.
TEST(SimulatorTest, OneWorkerGridContinuesFromMemoryForMostOfItsStages) {
  SimulationOptions options;
  options.workers = 1;
  absl::StatusOr<SimulationResult> one = Simulate(W1(), options);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->study.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(one->study.steps().executed_steps(), 7438);
  const int64_t trials = one->study.trials_total();
  ASSERT_EQ(trials, 96);
  EXPECT_EQ(one->continued, one->assigned - trials);
  EXPECT_GT(one->continued, 3 * one->assigned / 4);

  options.workers = 8;
  absl::StatusOr<SimulationResult> eight = Simulate(W1(), options);
  ASSERT_TRUE(eight.ok()) << eight.status();
  EXPECT_EQ(eight->study.best_trial().id(), one->study.best_trial().id());
  EXPECT_EQ(eight->study.best_trial().objective_value(), one->study.best_trial().objective_value());
}

TEST(SimulatorTest, ThousandWorkersFinishAtTheCriticalPath) {
  SimulationOptions options;
  options.workers = 1024;
  absl::StatusOr<SimulationResult> result = Simulate(W1(), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->critical_path, 120.0);
  EXPECT_EQ(result->makespan, result->critical_path);
}

TEST(SimulatorTest, NonSimTrainerIsRefusedNamingTheField) {
  v1::StudySpec spec = W1();
  spec.mutable_trainer()->set_kind("torch");
  absl::StatusOr<SimulationResult> result = Simulate(spec, SimulationOptions{});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("trainer.kind"), std::string::npos);
}

}  // namespace
}  // namespace hippo::simulation
