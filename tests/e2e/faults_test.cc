// Faults with real processes: the coordinator SIGKILLed and restarted during a study, a worker
// SIGKILLed in the middle of a stage.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "proto/spec_loader.h"
#include "tests/e2e/fault_scenarios.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using std::chrono::milliseconds;

// W1 with real time per step, so that kills land while stages run.
constexpr char kTimedConfig[] = "{model: resnet20, batch_size: 128, cost_per_step: 0.004}";

struct Outcome {
  v1::Study study;
  TrialCurves curves;
};

// Runs W1 (timed) with a coordinator that is SIGKILLed `kills` times, `interval` apart, and
// restarted on the same database each time.
Outcome RunW1(int kills, milliseconds interval) {
  TempDir dir;
  const std::string spec_path = dir.File("w1.yaml");
  {
    std::ofstream spec(spec_path);
    spec << WorkloadWithConfig("w1.yaml", kTimedConfig);
  }
  Cluster cluster(dir, /*workers=*/4, {"--lease-seconds", "2"});
  const std::string study_id = cluster.Submit(spec_path);

  for (int kill = 0; kill < kills; ++kill) {
    std::this_thread::sleep_for(interval);
    // The kill must land in the middle of the study.
    absl::StatusOr<v1::Study> study = GetStudy(cluster.address(), study_id);
    EXPECT_TRUE(study.ok()) << study.status();
    if (study.ok()) {
      EXPECT_EQ(study->state(), v1::STUDY_RUNNING) << "kill " << kill << " came too late";
      EXPECT_LT(study->steps().executed_steps(), study->steps().unique_steps());
    }
    cluster.KillAndRestartServer();
  }
  Outcome outcome;
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(300));
  EXPECT_TRUE(ended.ok()) << ended.status();
  if (!ended.ok()) return outcome;
  outcome.study = ended->study;
  outcome.curves = ended->curves;
  return outcome;
}

TEST(FaultsTest, CoordinatorKilledThreeTimesEndsLikeAnUninterruptedRun) {
  const Outcome reference = RunW1(/*kills=*/0, milliseconds(0));
  ASSERT_EQ(reference.study.state(), v1::STUDY_COMPLETED);
  const Outcome interrupted = RunW1(/*kills=*/3, milliseconds(1200));
  ASSERT_EQ(interrupted.study.state(), v1::STUDY_COMPLETED);

  EXPECT_EQ(interrupted.study.trials_completed(), 96);
  EXPECT_EQ(interrupted.study.best_trial().id(), reference.study.best_trial().id());
  EXPECT_EQ(interrupted.study.best_trial().objective_value(),
            reference.study.best_trial().objective_value());
  // Every trial has exactly one value per metric at each of its 120 steps, equal to the
  // uninterrupted run's: nothing lost, nothing counted twice.
  ASSERT_EQ(interrupted.curves.size(), 96u);
  for (const auto& [trial, steps] : interrupted.curves) {
    EXPECT_EQ(steps.size(), 120u) << "trial " << trial;
  }
  EXPECT_EQ(interrupted.curves, reference.curves);
  const v1::StepCounts& steps = interrupted.study.steps();
  EXPECT_EQ(steps.unique_steps(), 7438);
  EXPECT_GE(steps.executed_steps(), steps.unique_steps());
}

// The coordinator compacts its operation log at nearly every chance (--compact-ops 1: whenever
// a family has as many new operations as stages) and SIGKILLs itself inside the transaction of
// its first compaction (a test-only hook, store/apply_removals.cc): restarted, it finds the log
// as it was before, and the study ends like an uninterrupted run.
TEST(FaultsTest, CoordinatorKilledInsideALogCompactionEndsLikeAnUninterruptedRun) {
  const Outcome reference = RunW1(/*kills=*/0, milliseconds(0));
  ASSERT_EQ(reference.study.state(), v1::STUDY_COMPLETED);

  TempDir dir;
  const std::string spec_path = dir.File("w1.yaml");
  std::ofstream(spec_path) << WorkloadWithConfig("w1.yaml", kTimedConfig);
  ASSERT_EQ(setenv("HIPPO_TEST_SIGKILL_AT_COMPACTION", "1", 1), 0);
  Cluster cluster(dir, /*workers=*/4, {"--lease-seconds", "2", "--compact-ops", "1"});
  ASSERT_EQ(unsetenv("HIPPO_TEST_SIGKILL_AT_COMPACTION"), 0);  // the restart runs without it
  const std::string study_id = cluster.Submit(spec_path);
  bool died = false;
  for (int i = 0; i < 600 && !died; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    absl::StatusOr<v1::Study> study = GetStudy(cluster.address(), study_id);
    if (study.ok()) {
      ASSERT_EQ(study->state(), v1::STUDY_RUNNING) << "the study ended without a compaction";
    } else {
      died = true;
    }
  }
  ASSERT_TRUE(died) << "the coordinator did not kill itself at its first compaction";
  cluster.KillServer();  // reaps it: it died of its own SIGKILL
  cluster.StartServer(/*wait=*/true);
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(300));
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->study.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(ended->study.best_trial().id(), reference.study.best_trial().id());
  EXPECT_EQ(ended->study.best_trial().objective_value(),
            reference.study.best_trial().objective_value());
  EXPECT_EQ(ended->curves, reference.curves);
  EXPECT_EQ(ended->study.steps().unique_steps(), 7438);
}

TEST(FaultsTest, WorkerKilledMidStageHasItsStageReassignedAndTheStudyEndsAsUninterrupted) {
  TempDir dir;
  // Fewer trials keep the test short: the first 8 of the grid.
  const std::string spec_path = WriteW1(dir, /*seconds_per_step=*/0.01, /*max_trials=*/8);
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server(
      {"server", "--listen", address, "--db", dir.File("hippo.db"), "--lease-seconds", "1"},
      dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address));
  auto victim = std::make_unique<Process>(
      std::vector<std::string>{"worker", "--coordinator", address, "--id", "victim",
                               "--checkpoint-dir", dir.File("checkpoints")},
      dir.File("victim.log"));
  // The victim connects alone, so it gets the first stage.
  for (int i = 0; i < 100; ++i) {
    const CommandResult listed = RunHippo({"workers", "--coordinator", address, "--json"});
    if (listed.output.find("victim") != std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  const CommandResult submitted = RunHippo({"submit", spec_path, "--coordinator", address});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  const std::string study_id = submitted.output.substr(0, submitted.output.find('\n'));
  std::this_thread::sleep_for(milliseconds(300));  // mid-stage: a stage is >= 1 s of steps
  victim->Kill(SIGKILL);
  victim->Wait();
  Process survivor({"worker", "--coordinator", address, "--id", "survivor", "--checkpoint-dir",
                    dir.File("checkpoints")},
                   dir.File("survivor.log"));

  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(address, study_id, std::chrono::seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n"
                          << DescribeStudy(address, study_id, dir.File("server.log"));
  ExpectUninterruptedResults(*ended, spec_path, /*trials=*/8);
  const v1::Study* study = &ended->study;
  // The stage the victim held ran again elsewhere.
  auto stub = Connect(address);
  grpc::ClientContext context;
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  v1::StageTree tree;
  ASSERT_TRUE(stub->GetStageTree(&context, request, &tree).ok());
  int64_t reassigned = 0;
  for (const v1::Stage& stage : tree.stages()) reassigned += stage.attempts() > 1;
  EXPECT_GE(reassigned, 1);
  EXPECT_EQ(study->steps().executed_steps(), study->steps().unique_steps());
}

}  // namespace
}  // namespace hippo::e2e
