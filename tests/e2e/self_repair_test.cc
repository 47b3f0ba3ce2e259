// Self-repair with real processes: a worker whose checkpoints cannot be written is drained and
// the study finishes on the healthy one; corrupt and missing checkpoints of a finished family
// are recomputed, and the trials below them end as an uninterrupted run does.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
namespace fs = std::filesystem;

std::vector<v1::WorkerInfo> Workers(const std::string& address) {
  auto stub = Connect(address);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListWorkersResponse response;
  EXPECT_TRUE(stub->ListWorkers(&context, v1::ListWorkersRequest(), &response).ok());
  return {response.workers().begin(), response.workers().end()};
}

v1::StageTree TreeOf(const std::string& address, const std::string& study_id) {
  auto stub = Connect(address);
  grpc::ClientContext context;
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  v1::StageTree tree;
  EXPECT_TRUE(stub->GetStageTree(&context, request, &tree).ok());
  return tree;
}

TEST(SelfRepairTest, AWorkerThatCannotWriteCheckpointsIsDrainedAndTheStudyEndsOnTheOther) {
  TempDir dir;
  std::string spec = WorkloadWithConfig("w1.yaml",
                                        "{model: resnet20, batch_size: 128, "
                                        "cost_per_step: 0.002}");
  const size_t at = spec.find("budget: {max_steps: 120}");
  ASSERT_NE(at, std::string::npos);
  spec.replace(at, 24, "budget: {max_steps: 120, max_trials: 8}");
  std::ofstream(dir.File("w1.yaml")) << spec;
  // A stage that starts from a state goes only to a worker that can read it, and the full
  // worker's directory never holds one, so it is offered only the stages that start fresh (one
  // per distinct start of the grid's first trials): two failures in a row drain it.
  Cluster cluster(dir, /*workers=*/0, {"--retry-backoff-seconds", "0.1", "--unhealthy-after", "2"});
  // "a-full" comes first in the coordinator's order of workers, so it is offered stages first.
  cluster.AddWorker("a-full", dir.File("full"), dir.File("full.log"));
  cluster.AddWorker("b-healthy", dir.File("healthy"), dir.File("healthy.log"));
  ASSERT_TRUE(cluster.WaitForWorkers(2, std::chrono::seconds(20)));
  // Its disk "fails": the checkpoint directory is replaced by a file, so every write fails.
  fs::remove_all(dir.File("full"));
  std::ofstream(dir.File("full")) << "not a directory";

  const std::string study_id = cluster.Submit(dir.File("w1.yaml"));
  absl::StatusOr<v1::Study> study =
      WaitForStudy(cluster.address(), study_id, std::chrono::seconds(180));
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED) << study->message();
  EXPECT_EQ(study->trials_completed(), 8);
  EXPECT_EQ(study->steps().executed_steps(), study->steps().unique_steps());

  int64_t retried = 0;
  const v1::StageTree tree = TreeOf(cluster.address(), study_id);
  for (const v1::Stage& stage : tree.stages()) {
    // A stage that failed on the full worker went to the healthy one next.
    EXPECT_LE(stage.attempts(), 2) << "stage " << stage.id();
    retried += stage.attempts() == 2;
  }
  EXPECT_GE(retried, 2);
  for (const v1::WorkerInfo& worker : Workers(cluster.address())) {
    if (worker.worker_id() == "a-full") {
      EXPECT_FALSE(worker.healthy());
      EXPECT_GE(worker.consecutive_failures(), 2);
      EXPECT_NE(worker.health_message().find("checkpoint"), std::string::npos)
          << worker.health_message();
    } else {
      EXPECT_TRUE(worker.healthy()) << worker.worker_id() << ": " << worker.health_message();
    }
  }
  const CommandResult listed = RunHippo({"workers", "--coordinator", cluster.address()});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("UNHEALTHY"), std::string::npos) << listed.output;
}

// One trial whose learning rate is `last` after step 80: [0, 40) and [40, 80) are shared.
std::string PiecewiseSpec(const std::string& name, const std::string& last) {
  return "name: " + name +
         "\n"
         "objective: {metric: val_accuracy, direction: MAXIMIZE}\n"
         "trainer:\n"
         "  kind: sim\n"
         "  seed: 0\n"
         "  config: {model: resnet20, batch_size: 128, cost_per_step: 0.001}\n"
         "search_space:\n"
         "  parameters:\n"
         "    - name: lr\n"
         "      sequence: {piecewise: {boundaries: [40, 80], values: [0.1, 0.01, " +
         last +
         "]}}\n"
         "    - name: momentum\n"
         "      fixed: 0.9\n"
         "algorithm: {name: grid, seed: 0}\n"
         "budget: {max_steps: 120}\n";
}

// The checkpoint files in `directory` of the states at `step`.
std::vector<fs::path> StatesAt(const fs::path& directory, int step) {
  std::vector<fs::path> files;
  const std::string suffix = "-step-" + std::to_string(step) + ".ckpt";
  for (const fs::directory_entry& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("stage-") && name.ends_with(suffix)) files.push_back(entry.path());
  }
  return files;
}

TEST(SelfRepairTest, CorruptAndMissingCheckpointsAreRecomputedAndTrialsBelowEndAsUninterrupted) {
  TempDir dir;
  std::ofstream(dir.File("a.yaml")) << PiecewiseSpec("first", "0.001");
  std::ofstream(dir.File("b.yaml")) << PiecewiseSpec("second", "0.005");
  // The first study's states stay on disk after it ends (collection would delete the ones no
  // other study needs), so that the test can damage them.
  Cluster cluster(dir, /*workers=*/0, {"--no-checkpoint-gc"});
  Process& first_worker =
      cluster.AddWorker("first", dir.File("checkpoints"), dir.File("first.log"));
  const std::string first = cluster.Submit(dir.File("a.yaml"));
  absl::StatusOr<v1::Study> done = WaitForStudy(cluster.address(), first, std::chrono::seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::STUDY_COMPLETED) << done->message();
  EXPECT_EQ(done->steps().executed_steps(), 120);
  // The worker that holds the states in memory goes; the state at 80 is deleted and the one at
  // 40 corrupted (a flipped payload byte: its checksum fails).
  first_worker.Kill(SIGKILL);
  first_worker.Wait();
  const fs::path checkpoints = dir.File("checkpoints");
  const std::vector<fs::path> at_80 = StatesAt(checkpoints, 80);
  const std::vector<fs::path> at_40 = StatesAt(checkpoints, 40);
  ASSERT_EQ(at_80.size(), 1u);
  ASSERT_EQ(at_40.size(), 1u);
  fs::remove(at_80[0]);
  {
    std::fstream file(at_40[0], std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(-1, std::ios::end);
    char last = 0;
    file.get(last);
    file.seekp(-1, std::ios::end);
    file.put(static_cast<char>(last ^ 0x5a));
  }

  cluster.AddWorker("second", dir.File("checkpoints"), dir.File("second.log"));
  const std::string second = cluster.Submit(dir.File("b.yaml"));
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), second, std::chrono::seconds(60));
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->study.state(), v1::STUDY_COMPLETED) << ended->study.message();
  ASSERT_EQ(ended->trials.trials_size(), 1);
  // Both lost states were recomputed: [40, 80) from the state at 40, which was lost too, so
  // [0, 40) from scratch first: 80 steps trained again, then the new branch's 40.
  EXPECT_EQ(ended->study.steps().recomputed_steps(), 80);
  EXPECT_EQ(ended->study.steps().executed_steps(), 120 + 80 + 40);
  // The trial's every metric at every step is what one uninterrupted run from step 0 gives.
  absl::StatusOr<std::map<int64_t, std::map<std::string, double>>> straight =
      StraightRun(ended->study.spec(), ended->trials.trials(0));
  ASSERT_TRUE(straight.ok()) << straight.status();
  ASSERT_EQ(ended->curves.at(0).size(), 120u);
  EXPECT_EQ(ended->curves.at(0), *straight);
  EXPECT_EQ(ended->study.best_trial().objective_value(), straight->at(119).at("val_accuracy"));
  // The first study's results are untouched.
  absl::StatusOr<v1::Study> again = GetStudy(cluster.address(), first);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->best_trial().objective_value(), done->best_trial().objective_value());
}

TEST(SelfRepairTest, AfterTheFaultIsGoneAnIdenticalStudyAndHippoRetryFinishWhatFailed) {
  TempDir dir;
  std::ofstream(dir.File("spec.yaml")) << PiecewiseSpec("flaky", "0.001");
  Cluster cluster(dir, /*workers=*/0,
                  {"--retry-backoff-seconds", "0.05", "--unhealthy-after", "0"});
  cluster.AddWorker("only", dir.File("checkpoints"), dir.File("worker.log"));
  ASSERT_TRUE(cluster.WaitForWorkers(1, std::chrono::seconds(20)));
  fs::remove_all(dir.File("checkpoints"));
  std::ofstream(dir.File("checkpoints")) << "not a directory";
  const std::string first = cluster.Submit(dir.File("spec.yaml"));
  absl::StatusOr<v1::Study> failed =
      WaitForStudy(cluster.address(), first, std::chrono::seconds(60));
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->state(), v1::STUDY_FAILED);
  const CommandResult trials = RunHippo({"trials", first, "--coordinator", cluster.address()});
  EXPECT_NE(trials.output.find("failed after 3 attempts"), std::string::npos) << trials.output;

  // The disk is back. An identical study trains the stage that used up its attempts again.
  fs::remove(dir.File("checkpoints"));
  fs::create_directory(dir.File("checkpoints"));
  const std::string second = cluster.Submit(dir.File("spec.yaml"));
  absl::StatusOr<v1::Study> done =
      WaitForStudy(cluster.address(), second, std::chrono::seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED) << done->message();
  EXPECT_EQ(done->trials_completed(), 1);

  // `hippo retry` revives the first study: its trial's stages are all trained by now.
  const CommandResult retried = RunHippo({"retry", first, "--coordinator", cluster.address()});
  EXPECT_EQ(retried.exit_code, 0) << retried.output;
  EXPECT_NE(retried.output.find("retrying 1 trial"), std::string::npos) << retried.output;
  absl::StatusOr<v1::Study> revived =
      WaitForStudy(cluster.address(), first, std::chrono::seconds(60));
  ASSERT_TRUE(revived.ok()) << revived.status();
  EXPECT_EQ(revived->state(), v1::STUDY_COMPLETED) << revived->message();
  EXPECT_EQ(revived->best_trial().objective_value(), done->best_trial().objective_value());
  // Nothing failed is left to retry: exit code 1 (FAILED_PRECONDITION), with the reason.
  const CommandResult again = RunHippo({"retry", first, "--coordinator", cluster.address()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("no failed trial"), std::string::npos) << again.output;
}

}  // namespace
}  // namespace hippo::e2e
