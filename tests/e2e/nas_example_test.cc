// The NAS example (examples/nas) end to end: its summary script runs a tiny version of the
// study (two initial networks, two children in ASHA rungs, a few hundred Fashion-MNIST images)
// with the built `hippo`, two local workers and the torch trainer, and prints the ranked
// architectures; each has one channels_<i> per layer it has, none for the others.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

const std::string kExample = std::string(HIPPO_SOURCE_DIR) + "/examples/nas/";

void Replace(std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "the example spec no longer contains: " << from;
  text.replace(at, from.size(), to);
}

// What `command` printed (stdout and stderr) and its exit status.
CommandResult RunShell(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t read = 0;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, read);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(NasExampleTest, TinyStudyRanksArchitecturesWithOneWidthPerLayer) {
  if (!std::ifstream("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").good() ||
      !std::ifstream("/usr/bin/python3").good()) {
    GTEST_SKIP() << "needs Fashion-MNIST and /usr/bin/python3";
  }
  std::ifstream example(kExample + "fashion_mnist_nas.yaml");
  std::stringstream buffer;
  buffer << example.rdbuf();
  std::string yaml = buffer.str();
  Replace(yaml, "train_limit: 3000", "train_limit: 256");
  Replace(yaml, "val_limit: 1000", "val_limit: 200");
  Replace(yaml, "batch_size: 64", "batch_size: 32");
  Replace(yaml, "population_size: 6", "population_size: 2");
  Replace(yaml, "sample_size: 3", "sample_size: 2");
  Replace(yaml, "children: 12", "children: 2");
  Replace(yaml, "asha: {min_resource: 2, reduction_factor: 3}",
          "asha: {min_resource: 1, reduction_factor: 2}");
  Replace(yaml, "budget: {max_steps: 6}", "budget: {max_steps: 2}");
  Replace(yaml, "milestones: {choices: [{steps: [4]}]}", "milestones: {choices: [{steps: [1]}]}");
  TempDir dir;
  std::ofstream(dir.File("tiny.yaml")) << yaml;

  const CommandResult result =
      RunShell("/usr/bin/python3 " + kExample + "nas_summary.py --hippo " HIPPO_BINARY " --spec " +
               dir.File("tiny.yaml") + " --db " + dir.File("nas.db") + " --workers 2 --top 4");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find(": completed, 4 trials"), std::string::npos) << result.output;
  // The epochs: those trained, trial by trial, and every trial to the full 2 epochs (4 trials);
  // the stage tree trains no more than trial by trial, and ASHA no more than the full budget.
  std::smatch epochs;
  ASSERT_TRUE(std::regex_search(
      result.output, epochs,
      std::regex(R"(epochs trained: (\d+); trial by trial: (\d+) \(the stage tree saved (\d+):)"
                 R"(.*every trial to 2 epochs: 8 \(the ASHA rungs stopped (\d+) trials early\))")))
      << result.output;
  const int executed = std::stoi(epochs[1]);
  const int trial_by_trial = std::stoi(epochs[2]);
  EXPECT_GT(executed, 0);
  EXPECT_LE(trial_by_trial, 8);
  EXPECT_EQ(trial_by_trial - executed, std::stoi(epochs[3]));
  EXPECT_GE(trial_by_trial - executed, 0);
  EXPECT_LE(std::stoi(epochs[4]), 2) << "only the 2 children go through the rungs";
  // Rows: "  <trial> <accuracy> <epochs> <layers> x conv <k>x<k>, channels <c0>-<c1>...",
  // best first.
  const std::regex row(
      R"(\n  (\d+) +(0\.\d+|1\.0+) +([12]) +(\d) x conv ([35])x[35], channels ([0-9-]+) )");
  int rows = 0;
  double previous = 1;
  for (std::sregex_iterator it(result.output.begin(), result.output.end(), row), end; it != end;
       ++it) {
    ++rows;
    const int layers = std::stoi((*it)[4]);
    const std::string channels = (*it)[6];
    EXPECT_EQ(std::count(channels.begin(), channels.end(), '-') + 1, layers)
        << "one channels_<i> per layer: " << it->str();
    const double accuracy = std::stod((*it)[2]);
    EXPECT_GT(accuracy, 0.1) << "better than chance: " << it->str();
    EXPECT_LE(accuracy, previous) << "ranked best first: " << it->str();
    previous = accuracy;
  }
  EXPECT_GE(rows, 2) << result.output;
}

}  // namespace
}  // namespace hippo::e2e
