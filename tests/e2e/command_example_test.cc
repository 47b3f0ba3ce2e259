// The `command` trainer end to end with the real example program
// (examples/command/train_fashion_mnist.py, PyTorch on the CPU): a tiny version of its study
// through `hippo run`, and one stage trained straight vs split in two through checkpoint bytes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "tests/support/e2e_harness.h"
#include "workers/command_trainer.h"

namespace hippo::e2e {
namespace {

const std::string kScript =
    std::string(HIPPO_SOURCE_DIR) + "/examples/command/train_fashion_mnist.py";
constexpr char kTinyConfig[] =
    "{model: mlp, hidden: 16, train_size: 512, val_size: 256, batch_size: 128, threads: 1}";

bool TorchAvailable() {
  return std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0 &&
         std::ifstream("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").good();
}

void Replace(std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "the example spec no longer contains: " << from;
  text.replace(at, from.size(), to);
}

TEST(CommandExampleTest, TinyFashionMnistStudyCompletesThroughHippoRun) {
  if (!TorchAvailable()) GTEST_SKIP() << "needs /usr/bin/python3 with torch and Fashion-MNIST";
  std::ifstream example(std::string(HIPPO_SOURCE_DIR) +
                        "/examples/command/fashion_mnist_command.yaml");
  std::stringstream buffer;
  buffer << example.rdbuf();
  std::string yaml = buffer.str();
  // Two trials (gamma 0.1 or 0.3 from step 2) sharing their first two epochs.
  Replace(yaml, "examples/command/train_fashion_mnist.py", kScript);
  Replace(yaml,
          "config: {model: mlp, hidden: 64, train_size: 6000, val_size: 2000, batch_size: 128, "
          "threads: 1}",
          std::string("config: ") + kTinyConfig);
  Replace(yaml, "initial: {choices: {values: [0.1, 0.05]}}", "initial: {choices: {values: [0.1]}}");
  Replace(yaml, "              - steps: [4]\n              - steps: [6]\n",
          "              - steps: [2]\n");
  Replace(yaml, "budget: {max_steps: 8}", "budget: {max_steps: 4}");
  TempDir dir;
  {
    std::ofstream spec(dir.File("tiny.yaml"));
    spec << yaml;
  }
  const CommandResult result = RunHippo({"run", dir.File("tiny.yaml"), "--workers", "2", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // hippo run serves the command trainer for this spec, and says what it allows.
  EXPECT_TRUE(absl::StrContains(result.output, "--trainers command --allow-dir /usr/bin"))
      << result.output;
  EXPECT_TRUE(absl::StrContains(result.output, "\"status\": \"completed\"")) << result.output;
  EXPECT_TRUE(absl::StrContains(result.output, "\"trials_completed\": 2")) << result.output;
  EXPECT_TRUE(absl::StrContains(result.output, "\"trial_steps\": 8")) << result.output;
  EXPECT_TRUE(absl::StrContains(result.output, "\"unique_steps\": 6")) << result.output;
  EXPECT_TRUE(absl::StrContains(result.output, "\"executed_steps\": 6")) << result.output;
  // The best trial's val_accuracy, reported by the program: better than chance.
  const size_t value = result.output.find("\"value\": ");
  ASSERT_NE(value, std::string::npos) << result.output;
  const double accuracy = std::strtod(result.output.c_str() + value + 9, nullptr);
  EXPECT_GT(accuracy, 0.3) << result.output;
  EXPECT_LE(accuracy, 1.0) << result.output;
}

TEST(CommandExampleTest, StageTrainedStraightOrSplitGivesIdenticalMetrics) {
  if (!TorchAvailable()) GTEST_SKIP() << "needs /usr/bin/python3 with torch and Fashion-MNIST";
  using workers::Metrics;
  using workers::Step;
  auto task = [](Step start, Step end) {
    workers::StageTask task;
    task.stage_id = start + 1;  // differs between the runs, as it would
    task.start_step = start;
    task.end_step = end;
    task.parameters["lr"] = {
        {.start = 0, .end = 2, .function = stage_tree::SegmentFunction::Constant(0.1)},
        {.start = 2, .end = 4, .function = stage_tree::SegmentFunction::Linear(0.05, 0.01, 2, 2)}};
    task.static_parameters["momentum"] = 0.9;
    task.trainer_kind = "command";
    task.trainer_config_json =
        R"({"model": "mlp", "hidden": 16, "train_size": 512, "val_size": 256, "threads": 1})";
    task.command = {"/usr/bin/python3", kScript};
    task.seed = 3;
    task.checkpoint_steps = {end};
    return task;
  };
  // The script runs under /usr/bin/python3, so that is the directory this worker allows.
  absl::StatusOr<workers::AllowedPrograms> allowed = workers::AllowedPrograms::Create({"/usr/bin"});
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  workers::CommandTrainer trainer(*std::move(allowed));
  auto train = [&](const workers::StageTask& stage, workers::TrainingState& state,
                   std::map<Step, Metrics>& metrics, std::string* checkpoint) {
    workers::StageControl control;
    control.SetAssignedCheckpoints(stage.checkpoint_steps);
    workers::TrainCallbacks callbacks;
    callbacks.progress = [&](Step step, const Metrics& at) { metrics[step] = at; };
    callbacks.checkpoint = [&](Step, const workers::TrainingState& at) -> absl::Status {
      if (checkpoint != nullptr) *checkpoint = *at.Serialize();
      return absl::OkStatus();
    };
    return trainer.Train(stage, state, control, callbacks).status();
  };

  std::map<Step, Metrics> straight;
  auto fresh = *trainer.NewState(task(0, 4));
  ASSERT_TRUE(train(task(0, 4), *fresh, straight, nullptr).ok());

  std::map<Step, Metrics> split;
  std::string at2;
  auto first = *trainer.NewState(task(0, 2));
  absl::Status status = train(task(0, 2), *first, split, &at2);
  ASSERT_TRUE(status.ok()) << status;
  absl::StatusOr<std::unique_ptr<workers::TrainingState>> resumed =
      trainer.Deserialize(task(2, 4), at2);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  status = train(task(2, 4), **resumed, split, nullptr);
  ASSERT_TRUE(status.ok()) << status;

  ASSERT_EQ(straight.size(), 4u);
  EXPECT_EQ(split, straight);
  for (const auto& [step, metrics] : straight) {
    EXPECT_TRUE(metrics.contains("loss") && metrics.contains("val_loss")) << "step " << step;
    EXPECT_GT(metrics.at("val_accuracy"), 0.1) << "step " << step;
  }
}

}  // namespace
}  // namespace hippo::e2e
