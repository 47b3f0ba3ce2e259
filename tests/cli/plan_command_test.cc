// `hippo plan` against the engine: a plan's figures are what the engine builds for the same spec,
// and what a (simulated) run of it then trains.
#include "cli/plan_command.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "hippo/engine.h"
#include "search_algos/spec_checks.h"
#include "simulation/simulator.h"
#include "store/store.h"

namespace hippo::cli {
namespace {

namespace v1 = ::hippo::v1;

v1::StudySpec Workload(const std::string& name) {
  absl::StatusOr<v1::StudySpec> spec =
      search_algos::LoadStudySpecFile(std::string(HIPPO_SOURCE_DIR) + "/examples/" + name);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// W1 paced by max_parallel_trials and cut by max_trials: a run then creates its trials in waves.
v1::StudySpec PacedW1() {
  v1::StudySpec spec = Workload("workloads/w1.yaml");
  spec.mutable_budget()->set_max_parallel_trials(8);
  spec.mutable_budget()->set_max_trials(40);
  return spec;
}

TEST(PlanCommandTest, PlanFiguresEqualTheStageTreesTheEngineBuildsForTheSameSpec) {
  for (const char* name : {"workloads/w1.yaml", "sim_demo.yaml"}) {
    SCOPED_TRACE(name);
    const v1::StudySpec spec = Workload(name);
    absl::StatusOr<PlanFigures> figures = PlanStudy(spec, 8, "");
    ASSERT_TRUE(figures.ok()) << figures.status();

    const std::filesystem::path db = std::filesystem::temp_directory_path() /
                                     absl::StrCat("plan_command_test-", getpid(), ".db");
    std::filesystem::remove(db);
    {
      absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(db.string());
      ASSERT_TRUE(store.ok()) << store.status();
      coordinator::Engine engine(store->get(), coordinator::EngineOptions{});
      ASSERT_TRUE(engine.Recover().ok());
      absl::StatusOr<v1::Study> study = engine.CreateStudy(spec, /*no_merge=*/false);
      ASSERT_TRUE(study.ok()) << study.status();
      absl::StatusOr<v1::StageTree> tree = engine.GetStageTree(study->id(), false);
      ASSERT_TRUE(tree.ok()) << tree.status();
      std::set<std::string> families;
      for (const v1::Stage& stage : tree->stages()) families.insert(stage.family());

      EXPECT_EQ(figures->trials, study->trials_total());
      EXPECT_EQ(figures->families, static_cast<int64_t>(families.size()));
      EXPECT_EQ(figures->stages, tree->stages_size());
      EXPECT_EQ(figures->steps.trial_steps, study->steps().trial_steps());
      EXPECT_EQ(figures->steps.unique_steps, study->steps().unique_steps());
      EXPECT_LT(figures->steps.unique_steps, figures->steps.trial_steps);  // trials do share
    }
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
  }
}

TEST(PlanCommandTest, PlanFiguresEqualWhatASimulatedRunTrains) {
  for (const v1::StudySpec& spec : {Workload("workloads/w1.yaml"), PacedW1()}) {
    SCOPED_TRACE(spec.budget().DebugString());
    constexpr int kWorkers = 8;
    absl::StatusOr<PlanFigures> figures = PlanStudy(spec, kWorkers, "");
    ASSERT_TRUE(figures.ok()) << figures.status();
    simulation::SimulationOptions options;
    options.workers = kWorkers;
    absl::StatusOr<simulation::SimulationResult> run = simulation::Simulate(spec, options);
    ASSERT_TRUE(run.ok()) << run.status();

    EXPECT_EQ(run->study.state(), v1::STUDY_COMPLETED);
    EXPECT_EQ(figures->trials, run->study.trials_total());
    EXPECT_EQ(figures->steps.trial_steps, run->study.steps().trial_steps());
    EXPECT_EQ(figures->steps.unique_steps, run->study.steps().unique_steps());
    EXPECT_DOUBLE_EQ(figures->critical_path_steps, run->critical_path);
    EXPECT_DOUBLE_EQ(figures->makespan_bound, run->makespan_bound);
    EXPECT_GE(run->makespan, figures->makespan_bound);
  }
}

TEST(PlanCommandTest, NonGridStudyIsRefusedNamingTheAlgorithm) {
  v1::StudySpec spec = Workload("workloads/w1.yaml");
  spec.mutable_algorithm()->set_name("random");
  absl::StatusOr<PlanFigures> figures = PlanStudy(spec, 8, "");
  ASSERT_FALSE(figures.ok());
  EXPECT_EQ(figures.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(figures.status().message().find("algorithm.name"), std::string::npos);
}

}  // namespace
}  // namespace hippo::cli
