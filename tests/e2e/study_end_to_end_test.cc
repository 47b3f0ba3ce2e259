// A study end to end over real processes: `hippo server`, four `hippo worker` processes and
// `hippo submit` of W1 with the sim trainer, on loopback.
#include <gtest/gtest.h>

#include <fstream>

#include "proto/spec_loader.h"
#include "search_algos/spec_checks.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;

TEST(StudyEndToEndTest, W1OverFourWorkerProcessesTrainsEachUniqueStepOnceWithStraightMetrics) {
  TempDir dir;
  const Cluster cluster(dir, /*workers=*/4);
  const std::string& address = cluster.address();
  const std::string spec_path = std::string(HIPPO_SOURCE_DIR) + "/examples/workloads/w1.yaml";
  const std::string study_id = cluster.Submit(spec_path);
  ASSERT_FALSE(study_id.empty());

  absl::StatusOr<v1::Study> study = WaitForStudy(address, study_id, std::chrono::seconds(240));
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(study->trials_total(), 96);
  EXPECT_EQ(study->trials_completed(), 96);
  EXPECT_EQ(study->steps().trial_steps(), 11520);
  EXPECT_EQ(study->steps().unique_steps(), 7438);
  EXPECT_EQ(study->steps().executed_steps(), study->steps().unique_steps());
  EXPECT_TRUE(study->has_best_trial());

  absl::StatusOr<v1::StudySpec> spec = search_algos::LoadStudySpecFile(spec_path);
  ASSERT_TRUE(spec.ok());
  absl::StatusOr<v1::ListTrialsResponse> trials = TrialsWithMetrics(address, study_id);
  ASSERT_TRUE(trials.ok()) << trials.status();
  const TrialCurves curves = CurvesOf(*trials);
  ASSERT_EQ(trials->trials_size(), 96);
  for (const v1::Trial& trial : trials->trials()) {
    absl::StatusOr<std::map<int64_t, std::map<std::string, double>>> straight =
        StraightRun(*spec, trial);
    ASSERT_TRUE(straight.ok()) << straight.status();
    ASSERT_EQ(straight->size(), 120u);
    ASSERT_TRUE(curves.contains(trial.id())) << "trial " << trial.id() << " has no metrics";
    EXPECT_EQ(curves.at(trial.id()), *straight) << "trial " << trial.id();
  }

  // The read commands answer with what the study holds.
  const CommandResult best = RunHippo({"best", study_id, "--coordinator", address, "--json"});
  EXPECT_EQ(best.exit_code, 0) << best.output;
  EXPECT_NE(best.output.find("\"objective_value\""), std::string::npos);
  const CommandResult tree = RunHippo({"tree", study_id, "--coordinator", address, "--dot"});
  EXPECT_EQ(tree.exit_code, 0);
  EXPECT_NE(tree.output.find("digraph"), std::string::npos);
  const CommandResult listed = RunHippo({"workers", "--coordinator", address, "--json"});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("worker-3"), std::string::npos);
}

// Every built-in algorithm runs to completion from a spec through `hippo run`.
TEST(StudyEndToEndTest, EveryAlgorithmCompletesThroughHippoRun) {
  TempDir dir;
  std::vector<std::string> specs;
  for (const char* workload : {"w1.yaml", "w2.yaml", "w3.yaml", "w4.yaml", "w6.yaml"}) {
    specs.push_back(std::string(HIPPO_SOURCE_DIR) + "/examples/workloads/" + workload);
  }
  for (const char* algorithm : {"random", "tpe", "median"}) {
    std::string yaml = WorkloadWithConfig("w1.yaml", "{virtual_time: true}");
    const std::string grid = "algorithm: {name: grid, seed: 0}";
    const std::string budget = "budget: {max_steps: 120}";
    ASSERT_NE(yaml.find(grid), std::string::npos);
    yaml.replace(yaml.find(grid), grid.size(),
                 std::string("algorithm: {name: ") + algorithm + ", seed: 3}");
    ASSERT_NE(yaml.find(budget), std::string::npos);
    yaml.replace(yaml.find(budget), budget.size(), "budget: {max_steps: 120, max_trials: 24}");
    specs.push_back(dir.File(std::string(algorithm) + ".yaml"));
    std::ofstream(specs.back()) << yaml;
  }
  for (const std::string& spec : specs) {
    const CommandResult result = RunHippo({"run", spec, "--workers", "4", "--json"});
    EXPECT_EQ(result.exit_code, 0) << spec << ": " << result.output;
    EXPECT_NE(result.output.find("\"status\": \"completed\""), std::string::npos)
        << spec << ": " << result.output;
  }
}

TEST(StudyEndToEndTest, PluginAlgorithmRunsThroughServerAndWorker) {
  TempDir dir;
  {
    std::ofstream spec(dir.File("halton.yaml"));
    spec << "name: halton-study\n"
            "objective: {metric: val_accuracy, direction: MAXIMIZE}\n"
            "trainer: {kind: sim, seed: 0, config: {virtual_time: true}}\n"
            "search_space:\n"
            "  parameters:\n"
            "    - {name: lr, sequence: {constant: {range: {low: 0.001, high: 0.2, log: true}}}}\n"
            "algorithm: {name: halton}\n"
            "budget: {max_steps: 20, max_trials: 6}\n";
  }
  const Cluster cluster(dir, /*workers=*/1, {"--plugin", HIPPO_EXAMPLE_PLUGIN});
  const std::string study_id = cluster.Submit(dir.File("halton.yaml"));
  ASSERT_FALSE(study_id.empty());
  absl::StatusOr<v1::Study> study =
      WaitForStudy(cluster.address(), study_id, std::chrono::seconds(60));
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(study->trials_completed(), 6);
}

TEST(StudyEndToEndTest, ClientCommandsExplainAnUnreachableCoordinator) {
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const CommandResult result = RunHippo({"studies", "--coordinator", address});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("cannot reach the coordinator at " + address), std::string::npos)
      << result.output;
}

}  // namespace
}  // namespace hippo::e2e
