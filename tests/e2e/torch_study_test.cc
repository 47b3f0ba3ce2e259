// The torch trainer end to end: `hippo run` (the built binary) trains a tiny study of real
// LibTorch models on synthetic images with two local workers, merged and trial by trial.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

// Four lr schedules sharing their first three steps in pairs: the stage tree merges them.
constexpr char kSpec[] = R"(name: torch-e2e
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer:
  kind: torch
  step_unit: epoch
  seed: 3
  config: {model: mlp, width: 16, dataset: synthetic, image_size: 8, train_limit: 256,
           val_limit: 128, batch_size: 32}
search_space:
  parameters:
    - name: lr
      sequence:
        step_decay:
          initial: {choices: {values: [0.1, 0.03]}}
          milestones: {choices: [{steps: [3]}]}
          gamma: {choices: {values: [0.1, 0.5]}}
    - name: momentum
      fixed: 0.9
algorithm: {name: grid, seed: 0}
budget: {max_steps: 5}
)";

// The "best_trial" object of `hippo run --json` output, verbatim.
std::string BestTrialOf(const std::string& output) {
  const size_t begin = output.find("\"best_trial\": ");
  const size_t end = output.find(", \"trial_steps\"");
  if (begin == std::string::npos || end == std::string::npos) return "";
  return output.substr(begin, end - begin);
}

TEST(TorchStudyTest, HippoRunCompletesATorchStudyWithIdenticalResultsMergedOrNot) {
  TempDir dir;
  const std::string spec = dir.File("torch.yaml");
  std::ofstream(spec) << kSpec;

  const CommandResult merged = RunHippo({"run", spec, "--workers", "2", "--json"});
  ASSERT_EQ(merged.exit_code, 0) << merged.output;
  EXPECT_NE(merged.output.find("\"status\": \"completed\""), std::string::npos) << merged.output;
  EXPECT_NE(merged.output.find("\"trials_completed\": 4"), std::string::npos) << merged.output;
  // 4 trials x 5 steps; two shared prefixes of 3 steps: 20 - 2 * 3 = 14 unique steps.
  EXPECT_NE(merged.output.find("\"trial_steps\": 20, \"unique_steps\": 14"), std::string::npos)
      << merged.output;
  const std::string best = BestTrialOf(merged.output);
  ASSERT_FALSE(best.empty()) << merged.output;
  ASSERT_EQ(best.find("null"), std::string::npos) << merged.output;

  // Trial by trial, every stage from scratch: the same best trial with the same accuracy, bit
  // for bit (the value is printed with 17 digits).
  const CommandResult alone = RunHippo({"run", spec, "--workers", "2", "--json", "--no-merge"});
  ASSERT_EQ(alone.exit_code, 0) << alone.output;
  EXPECT_EQ(BestTrialOf(alone.output), best) << alone.output;

  // The human summary names the best trial's validation accuracy.
  const CommandResult human = RunHippo({"run", spec, "--workers", "2"});
  ASSERT_EQ(human.exit_code, 0) << human.output;
  EXPECT_NE(human.output.find("val_accuracy"), std::string::npos) << human.output;
}

TEST(TorchStudyTest, HippoRunRefusesAnUnknownDevice) {
  TempDir dir;
  const std::string spec = dir.File("torch.yaml");
  std::ofstream(spec) << kSpec;
  const CommandResult result = RunHippo({"run", spec, "--device", "gpu0"});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("--device"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace hippo::e2e
