// `hippo plan` against the engine: a plan's figures are what the engine builds for the same spec,
// and what a (simulated) run of it then trains.
#include "cli/plan_command.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "hippo/engine.h"
#include "nlohmann/json.hpp"
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

// Two small grid studies of one sim family (same trainer): lr decays at step 4 in both, to
// different values in each, so they share the first four steps of every trial.
constexpr char kSmallStudy[] = R"yaml(name: NAME
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer: {kind: sim, seed: SEED, config: {model: resnet20}}
search_space:
  parameters:
    - name: lr
      sequence:
        step_decay:
          initial: {value: 0.1}
          milestones: {choices: [{steps: [4]}]}
          gamma: {choices: {values: [GAMMAS]}}
algorithm: {name: grid}
budget: {max_steps: 10}
)yaml";

v1::StudySpec SmallStudy(const std::string& name, int seed, const std::string& gammas) {
  std::string text = kSmallStudy;
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"NAME", name}, {"SEED", std::to_string(seed)}, {"GAMMAS", gammas}}) {
    text.replace(text.find(from), from.size(), to);
  }
  absl::StatusOr<v1::StudySpec> spec = search_algos::ParseStudySpec(text, name + ".yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

TEST(PlanCommandTest, StudiesOfOneFamilyPlannedTogetherShareTheirTree) {
  const v1::StudySpec a = SmallStudy("a", 0, "0.1, 0.2");
  const v1::StudySpec b = SmallStudy("b", 0, "0.3, 0.5");
  absl::StatusOr<PlanFigures> together = PlanStudies({a, b}, 4, "");
  ASSERT_TRUE(together.ok()) << together.status();
  EXPECT_EQ(together->trials, 4);
  EXPECT_EQ(together->families, 1);
  EXPECT_EQ(together->steps.trial_steps, 4 * 10);
  // Steps 0-3 once, then 6 steps per distinct gamma.
  EXPECT_EQ(together->steps.unique_steps, 4 + 4 * 6);

  // Another seed is another family: nothing is shared between the two studies.
  absl::StatusOr<PlanFigures> apart = PlanStudies({a, SmallStudy("c", 1, "0.3, 0.5")}, 4, "");
  ASSERT_TRUE(apart.ok()) << apart.status();
  EXPECT_EQ(apart->families, 2);
  EXPECT_EQ(apart->steps.unique_steps, 2 * (4 + 2 * 6));
}

TEST(RunCommandTest, SeveralSpecsRunTogetherAndTrainTheirSharedTreeOnce) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("run_command_test-", getpid());
  std::filesystem::create_directories(dir);
  std::vector<std::string> paths;
  for (const auto& [name, gammas] :
       std::vector<std::pair<std::string, std::string>>{{"a", "0.1, 0.2"}, {"b", "0.3, 0.5"}}) {
    std::string text = kSmallStudy;
    text.replace(text.find("NAME"), 4, name);
    text.replace(text.find("SEED"), 4, "0");
    text.replace(text.find("GAMMAS"), 6, gammas);
    const std::filesystem::path path = dir / (name + ".yaml");
    std::ofstream(path) << text;
    paths.push_back(path.string());
  }
  RunOptions options;
  options.spec_paths = paths;
  options.workers = 2;
  options.json = true;
  testing::internal::CaptureStdout();
  const int exit_code = RunCommand(options);
  const std::string output = testing::internal::GetCapturedStdout();
  std::filesystem::remove_all(dir);
  ASSERT_EQ(exit_code, kExitOk) << output;
  const nlohmann::json result = nlohmann::json::parse(output);
  ASSERT_EQ(result["studies"].size(), 2u) << output;
  for (const nlohmann::json& study : result["studies"]) {
    EXPECT_EQ(study["status"], "completed") << output;
    // trial_steps counts the study's own trials; unique and executed steps are its family's:
    // the one tree both studies share, trained once.
    EXPECT_EQ(study["trial_steps"], 2 * 10) << output;
    EXPECT_EQ(study["unique_steps"], 4 + 4 * 6) << output;
    EXPECT_EQ(study["executed_steps"], 4 + 4 * 6) << output;
  }
}

}  // namespace
}  // namespace hippo::cli
