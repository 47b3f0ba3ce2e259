// The virtual-time simulator on W1: every unique step once, makespan near its bound, the same
// best trial with merging on and off, and 1 024 workers finishing at the critical path.
#include "simulation/simulator.h"

#include <gtest/gtest.h>

#include "search_algos/spec_checks.h"

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
