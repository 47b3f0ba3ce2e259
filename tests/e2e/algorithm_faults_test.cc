// Every search algorithm through `hippo server` + `hippo worker`, with the coordinator
// SIGKILLed twice mid-study and restarted: the study ends exactly as an uninterrupted run does
// (same trials with the same parameters, states and objectives, same curves, same best trial).
//
// One worker, and a sim trainer whose stages take wall time but report a virtual cost, so that
// the schedule — and with it the order of the events every algorithm sees — does not depend on
// timing: an uninterrupted run and an interrupted one must then agree exactly.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <thread>

#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using std::chrono::milliseconds;

constexpr char kConfig[] =
    "{model: resnet20, batch_size: 128, cost_per_step: 1.0, virtual_time: true, "
    "wall_seconds_per_step: 0.0015}";

struct Case {
  const char* algorithm;
  const char* workload;
  // Replacements applied to the workload's text, to keep each study to a few seconds.
  std::vector<std::pair<std::string, std::string>> edits;
};

std::string SpecText(const Case& c) {
  std::string text = WorkloadWithConfig(c.workload, kConfig);
  for (const auto& [from, to] : c.edits) {
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << c.workload << ": no '" << from << "'";
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  return text;
}

struct Outcome {
  v1::Study study;
  std::vector<std::string> trials;  // per trial: id, state, objective, parameters
  TrialCurves curves;
};

// Runs the study on one worker; kills the coordinator when the executed steps pass each of
// `kill_at` (fractions of `total_steps`), restarting it on the same database.
Outcome RunStudy(const Case& c, const std::vector<double>& kill_at, int64_t total_steps) {
  TempDir dir;
  const std::string spec_path = dir.File("spec.yaml");
  std::ofstream(spec_path) << SpecText(c);
  Cluster cluster(dir, /*workers=*/1, {"--lease-seconds", "5"});
  const std::string study_id = cluster.Submit(spec_path);

  for (double fraction : kill_at) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool mid_study = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (absl::StatusOr<v1::Study> study = GetStudy(cluster.address(), study_id); study.ok()) {
        if (study->state() != v1::STUDY_RUNNING) break;
        if (study->steps().executed_steps() >= fraction * total_steps) {
          mid_study = true;
          break;
        }
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_TRUE(mid_study) << c.algorithm << ": the kill at " << fraction << " came too late";
    cluster.KillAndRestartServer();
  }
  Outcome outcome;
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(300));
  EXPECT_TRUE(ended.ok()) << ended.status();
  if (!ended.ok()) return outcome;
  outcome.study = ended->study;
  for (const v1::Trial& trial : ended->trials.trials()) {
    v1::Trial key = trial;
    key.clear_path();  // stage ids depend on when splits happened; the rest must not
    key.clear_reached_step();
    outcome.trials.push_back(key.ShortDebugString());
  }
  outcome.curves = ended->curves;
  return outcome;
}

class AlgorithmFaultsTest : public testing::TestWithParam<Case> {};

TEST_P(AlgorithmFaultsTest, CoordinatorKilledTwiceEndsLikeAnUninterruptedRun) {
  const Case& c = GetParam();
  const Outcome reference = RunStudy(c, {}, 0);
  ASSERT_EQ(reference.study.state(), v1::STUDY_COMPLETED) << reference.study.message();
  ASSERT_TRUE(reference.study.has_best_trial());
  const int64_t steps = reference.study.steps().executed_steps();
  const Outcome interrupted = RunStudy(c, {0.3, 0.65}, steps);
  ASSERT_EQ(interrupted.study.state(), v1::STUDY_COMPLETED) << interrupted.study.message();
  EXPECT_EQ(interrupted.study.trials_total(), reference.study.trials_total());
  EXPECT_EQ(interrupted.study.best_trial().id(), reference.study.best_trial().id());
  EXPECT_EQ(interrupted.study.best_trial().objective_value(),
            reference.study.best_trial().objective_value());
  EXPECT_EQ(interrupted.study.steps().unique_steps(), reference.study.steps().unique_steps());
  ASSERT_EQ(interrupted.trials.size(), reference.trials.size());
  for (size_t i = 0; i < reference.trials.size(); ++i) {
    EXPECT_EQ(interrupted.trials[i], reference.trials[i]) << "trial " << i;
  }
  EXPECT_EQ(interrupted.curves, reference.curves);
}

// W1-sized spaces with fewer trials or smaller budgets, so each run takes a few seconds.
INSTANTIATE_TEST_SUITE_P(
    EveryAlgorithm, AlgorithmFaultsTest,
    testing::Values(
        Case{"random",
             "w1.yaml",
             {{"algorithm: {name: grid, seed: 0}", "algorithm: {name: random, seed: 3}"},
              {"budget: {max_steps: 120}", "budget: {max_steps: 120, max_trials: 16}"}}},
        Case{"tpe",
             "w1.yaml",
             {{"algorithm: {name: grid, seed: 0}",
               "algorithm: {name: tpe, seed: 3, tpe: {n_startup_trials: 5}}"},
              {"budget: {max_steps: 120}",
               "budget: {max_steps: 120, max_trials: 16, max_parallel_trials: 2}"}}},
        Case{"median",
             "w1.yaml",
             {{"algorithm: {name: grid, seed: 0}",
               "algorithm: {name: median, seed: 3, median: {n_startup_trials: 3, "
               "interval_steps: 10}}"},
              {"budget: {max_steps: 120}", "budget: {max_steps: 120, max_trials: 16}"}}},
        Case{"asha", "w2.yaml", {{"max_trials: 256", "max_trials: 64"}}},
        Case{"hyperband", "w3.yaml", {}}, Case{"pbt", "w4.yaml", {}},
        Case{"evolution", "w6.yaml", {{"children: 64", "children: 24"}}}),
    [](const testing::TestParamInfo<Case>& info) { return std::string(info.param.algorithm); });

}  // namespace
}  // namespace hippo::e2e
