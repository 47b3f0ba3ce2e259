// What a worker's hello tells a coordinator restarted by SIGKILL, with real processes: the
// attempts the worker still holds continue where they are, and one it no longer holds (the
// worker was killed too) goes to a worker at once, not after its lease. Also: a study of a
// trainer kind no connected worker serves waits and says why, until a worker serving it comes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kLeaseSeconds = 30;

// One trial of 100 steps at 80 ms each: one stage of 8 s, long enough for a coordinator restart
// to land inside it on a loaded machine.
constexpr char kOneStage[] = R"(name: one-stage
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer:
  kind: sim
  config: {cost_per_step: 0.08}
search_space:
  parameters:
    - name: lr
      fixed: 0.1
algorithm: {name: grid, seed: 0}
budget: {max_steps: 100}
)";

std::string WriteSpec(const TempDir& dir, const std::string& yaml) {
  const std::string path = dir.File("spec.yaml");
  std::ofstream(path) << yaml;
  return path;
}

// The worker's entry in ListWorkers, once `accept` holds for it (within `timeout`).
std::optional<v1::WorkerInfo> WaitForWorker(
    const std::string& address, const std::string& id,
    const std::function<bool(const v1::WorkerInfo&)>& accept, std::chrono::seconds timeout) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    auto stub = Connect(address);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::ListWorkersResponse response;
    if (stub->ListWorkers(&context, v1::ListWorkersRequest(), &response).ok()) {
      for (const v1::WorkerInfo& worker : response.workers()) {
        if (worker.worker_id() == id && accept(worker)) return worker;
      }
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return std::nullopt;
}

bool Busy(const v1::WorkerInfo& worker) {
  return worker.connected() && worker.running_stage_id() != 0;
}

int64_t AttemptsOfTheStage(const std::string& address, const std::string& study_id) {
  auto stub = Connect(address);
  grpc::ClientContext context;
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  v1::StageTree tree;
  if (!stub->GetStageTree(&context, request, &tree).ok() || tree.stages_size() != 1) return -1;
  return tree.stages(0).attempts();
}

class WorkerHelloTest : public ::testing::Test {
 protected:
  void StartServer() {
    server_ = std::make_unique<Process>(
        std::vector<std::string>{"server", "--listen", address_, "--db", dir_.File("hippo.db"),
                                 "--lease-seconds", std::to_string(kLeaseSeconds)},
        dir_.File("server.log"));
    ASSERT_TRUE(WaitForServer(address_));
  }
  void KillServer() {
    server_->Kill(SIGKILL);
    EXPECT_EQ(server_->Wait(), 128 + SIGKILL);
  }
  std::unique_ptr<Process> StartWorker(const std::string& id,
                                       const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args = {
        "worker",           "--coordinator",         address_, "--id", id,
        "--checkpoint-dir", dir_.File("checkpoints")};
    args.insert(args.end(), flags.begin(), flags.end());
    return std::make_unique<Process>(args, dir_.File(id + ".log"));
  }

  TempDir dir_;
  const std::string address_ = "127.0.0.1:" + std::to_string(FreePort());
  std::unique_ptr<Process> server_;
};

TEST_F(WorkerHelloTest, AttemptTheWorkerStillHoldsContinuesAfterACoordinatorSigkill) {
  StartServer();
  std::unique_ptr<Process> worker = StartWorker("keeper");
  ASSERT_TRUE(WaitForWorker(
      address_, "keeper", [](auto& w) { return w.connected(); }, std::chrono::seconds(20)));
  const CommandResult submitted =
      RunHippo({"submit", WriteSpec(dir_, kOneStage), "--coordinator", address_});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  const std::string study_id = submitted.output.substr(0, submitted.output.find('\n'));
  ASSERT_TRUE(WaitForWorker(address_, "keeper", Busy, std::chrono::seconds(20)));
  std::this_thread::sleep_for(milliseconds(1000));  // mid-stage

  KillServer();
  StartServer();
  const auto restarted = Clock::now();
  absl::StatusOr<v1::Study> study = WaitForStudy(address_, study_id, std::chrono::seconds(60));
  ASSERT_TRUE(study.ok()) << study.status();
  const double seconds = std::chrono::duration<double>(Clock::now() - restarted).count();
  std::cout << "study completed " << seconds << " s after the restart (lease " << kLeaseSeconds
            << " s)" << std::endl;
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
  EXPECT_LT(seconds, kLeaseSeconds / 2);
  EXPECT_EQ(AttemptsOfTheStage(address_, study_id), 1) << "the stage ran once, not again";
  EXPECT_EQ(study->steps().executed_steps(), 100);
}

TEST_F(WorkerHelloTest, AttemptNoWorkerHoldsIsReassignedAtOnceNotAfterItsLease) {
  StartServer();
  std::unique_ptr<Process> worker = StartWorker("lost");
  ASSERT_TRUE(WaitForWorker(
      address_, "lost", [](auto& w) { return w.connected(); }, std::chrono::seconds(20)));
  const CommandResult submitted =
      RunHippo({"submit", WriteSpec(dir_, kOneStage), "--coordinator", address_});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  const std::string study_id = submitted.output.substr(0, submitted.output.find('\n'));
  ASSERT_TRUE(WaitForWorker(address_, "lost", Busy, std::chrono::seconds(20)));
  std::this_thread::sleep_for(milliseconds(1000));  // mid-stage

  // Both die; the worker comes back as a fresh process under the same id, holding nothing.
  KillServer();
  worker->Kill(SIGKILL);
  worker->Wait();
  StartServer();
  const auto started = Clock::now();
  worker = StartWorker("lost");
  // A second attempt of the stage: the new process trains it (the coordinator's view of the
  // worker alone would say busy from the hello on, held or not).
  while (AttemptsOfTheStage(address_, study_id) < 2 &&
         Clock::now() - started < std::chrono::seconds(kLeaseSeconds * 2)) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(AttemptsOfTheStage(address_, study_id), 2);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::cout << "stage reassigned " << seconds << " s after the worker restarted (lease "
            << kLeaseSeconds << " s)" << std::endl;
  EXPECT_LT(seconds, kLeaseSeconds / 3) << "the stage waited for its lease";
  absl::StatusOr<v1::Study> study = WaitForStudy(address_, study_id, std::chrono::seconds(60));
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(AttemptsOfTheStage(address_, study_id), 2);
}

TEST_F(WorkerHelloTest, StudyNoConnectedWorkerCanTrainWaitsAndSaysWhy) {
  TempDir programs;
  StartServer();
  std::unique_ptr<Process> sim_only = StartWorker("sim-only");
  ASSERT_TRUE(WaitForWorker(
      address_, "sim-only", [](auto& w) { return w.connected(); }, std::chrono::seconds(20)));
  std::string yaml = kOneStage;
  yaml.replace(yaml.find("  kind: sim\n  config: {cost_per_step: 0.08}\n"),
               std::string("  kind: sim\n  config: {cost_per_step: 0.08}\n").size(),
               "  kind: command\n  command: [train.sh]\n");
  const CommandResult submitted =
      RunHippo({"submit", WriteSpec(dir_, yaml), "--coordinator", address_});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  const std::string study_id = submitted.output.substr(0, submitted.output.find('\n'));
  std::this_thread::sleep_for(milliseconds(500));
  const CommandResult shown = RunHippo({"study", study_id, "--coordinator", address_});
  EXPECT_TRUE(absl::StrContains(shown.output,
                                "waiting for a worker that serves trainer kind "
                                "'command'"))
      << shown.output;
  const std::optional<v1::WorkerInfo> info = WaitForWorker(
      address_, "sim-only", [](auto& w) { return w.connected(); }, std::chrono::seconds(5));
  ASSERT_TRUE(info.has_value());
  const std::vector<std::string> kinds(info->trainers().begin(), info->trainers().end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "sim"), kinds.end());
  EXPECT_EQ(std::find(kinds.begin(), kinds.end(), "command"), kinds.end()) << "command is opt-in";
  const CommandResult listed = RunHippo({"workers", "--coordinator", address_});
  EXPECT_TRUE(absl::StrContains(listed.output, "TRAINERS")) << listed.output;
  EXPECT_EQ(AttemptsOfTheStage(address_, study_id), 0) << "the sim-only worker got the stage";

  // Refused without a directory to run programs from.
  const CommandResult refused =
      RunHippo({"worker", "--coordinator", address_, "--id", "no-dirs", "--trainers", "command"});
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_TRUE(absl::StrContains(refused.output, "--allow-dir")) << refused.output;

  // A worker that serves command, with the program's directory allowed, trains it.
  const std::string program = programs.File("train.sh");
  std::ofstream(program) << R"(#!/bin/sh
s=$HIPPO_START_STEP
while [ $s -lt $HIPPO_END_STEP ]; do
  echo "{\"step\": $s, \"val_accuracy\": 0.5}"
  s=$((s + 1))
done
echo state > "$HIPPO_CHECKPOINT_OUT"
)";
  std::filesystem::permissions(program, std::filesystem::perms::owner_all);
  std::unique_ptr<Process> commander =
      StartWorker("commander", {"--trainers", "command", "--allow-dir", programs.path().string()});
  absl::StatusOr<v1::Study> study = WaitForStudy(address_, study_id, std::chrono::seconds(60));
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED) << study->message();
  EXPECT_EQ(study->waiting(), "");
  EXPECT_EQ(AttemptsOfTheStage(address_, study_id), 1);
}

}  // namespace
}  // namespace hippo::e2e
