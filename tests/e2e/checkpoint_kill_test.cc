// A worker SIGKILLed around a checkpoint write: right before the rename that publishes it (a
// synced temporary file is left behind) or right after it (a published checkpoint the
// coordinator never heard of). The worker kills itself at its n-th checkpoint write
// (HIPPO_TEST_SIGKILL_AT_CHECKPOINT, workers/fault_injection.h), so the kill lands exactly
// there; it is then started again under the same id and checkpoint directory, as a supervisor
// would. The study must end with the results of an uninterrupted run.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/e2e/fault_scenarios.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int kTrials = 8;  // the first 8 trials of W1: a few seconds of work

struct Case {
  std::string when;  // before-rename or after-rename
  int nth;           // which checkpoint write of the victim
};

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  std::string name = absl::StrCat(info.param.when, "_", info.param.nth);
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name;
}

// The files of `directory` whose names contain `part`.
int CountFiles(const std::string& directory, const std::string& part) {
  int count = 0;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    if (entry.path().filename().string().find(part) != std::string::npos) ++count;
  }
  return count;
}

class CheckpointKillTest : public testing::TestWithParam<Case> {};

TEST_P(CheckpointKillTest, WorkerKilledAroundACheckpointRenameLeavesTheResultsUnchanged) {
  TempDir dir;
  const std::string spec = WriteW1(dir, /*seconds_per_step=*/0.004, kTrials);
  const std::string checkpoints = dir.File("checkpoints");
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server(
      {"server", "--listen", address, "--db", dir.File("hippo.db"), "--lease-seconds", "1"},
      dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address));
  const std::vector<std::string> victim_args = {"worker", "--coordinator",    address,    "--id",
                                                "victim", "--checkpoint-dir", checkpoints};
  auto victim =
      std::make_unique<Process>(victim_args, dir.File("victim.log"),
                                Env{{"HIPPO_TEST_SIGKILL_AT_CHECKPOINT",
                                     absl::StrCat(GetParam().when, ":", GetParam().nth)}});
  // The victim connects first, so that it gets the first stage.
  for (int i = 0; i < 100; ++i) {
    const CommandResult listed = RunHippo({"workers", "--coordinator", address, "--json"});
    if (listed.output.find("victim") != std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  const CommandResult submitted = RunHippo({"submit", spec, "--coordinator", address});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  const std::string study_id = submitted.output.substr(0, submitted.output.find('\n'));
  Process survivor(
      {"worker", "--coordinator", address, "--id", "survivor", "--checkpoint-dir", checkpoints},
      dir.File("survivor.log"));

  // The victim dies at its n-th checkpoint write, which its share of the study reaches.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (victim->Alive() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_FALSE(victim->Alive()) << "the victim never reached checkpoint write " << GetParam().nth;
  ASSERT_EQ(victim->Wait(), 128 + SIGKILL) << "see " << dir.File("victim.log");
  if (GetParam().when == "before-rename") {
    // Its write was cut short: a temporary file, synced, never published.
    EXPECT_GE(CountFiles(checkpoints, ".ckpt.tmp"), 1);
  }
  // A supervisor starts it again: same id, same checkpoint directory.
  victim = std::make_unique<Process>(victim_args, dir.File("victim.log"));

  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(address, study_id, std::chrono::seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n"
                          << DescribeStudy(address, study_id, dir.File("server.log"));
  ExpectUninterruptedResults(*ended, spec, kTrials);
  // The stage it held was given again (to it after its restart, or to the survivor).
  auto stub = Connect(address);
  grpc::ClientContext context;
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  v1::StageTree tree;
  ASSERT_TRUE(stub->GetStageTree(&context, request, &tree).ok());
  int retried = 0;
  for (const v1::Stage& stage : tree.stages()) retried += stage.attempts() > 1;
  EXPECT_GE(retried, 1);
}

INSTANTIATE_TEST_SUITE_P(Moments, CheckpointKillTest,
                         testing::Values(Case{"before-rename", 1}, Case{"after-rename", 3}),
                         CaseName);

}  // namespace
}  // namespace hippo::e2e
