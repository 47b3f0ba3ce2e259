// Checkpoint garbage collection and study deletion with real processes: a coordinator, workers
// writing real checkpoint files, `hippo gc` and `hippo delete` over gRPC.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::hippo::v1;

// W1 (96 trials to step 120 over a shared tree) with checkpoints of 16 KiB.
constexpr char kConfig[] =
    "{model: resnet20, batch_size: 128, cost_per_step: 1.0, virtual_time: true, "
    "state_bytes: 16384}";

// The bytes and files in a checkpoint directory (temporary files included).
std::pair<int64_t, int64_t> Usage(const std::string& directory) {
  int64_t bytes = 0;
  int64_t files = 0;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    std::error_code size_error;
    const uintmax_t size = entry.file_size(size_error);
    if (size_error) continue;  // deleted meanwhile
    bytes += static_cast<int64_t>(size);
    ++files;
  }
  return {bytes, files};
}

std::set<std::string> Files(const std::string& directory) {
  std::set<std::string> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory)) {
    files.insert("file://" + entry.path().string());
  }
  return files;
}

v1::CollectGarbageResponse CollectGarbage(const std::string& address) {
  v1::CollectGarbageResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status =
      Connect(address)->CollectGarbage(&context, v1::CollectGarbageRequest(), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

// Collects until the workers confirmed every deletion (or 20 s passed).
void WaitForDeletions(const std::string& address) {
  for (int i = 0; i < 200; ++i) {
    int64_t pending = 0;
    const v1::CollectGarbageResponse collected = CollectGarbage(address);
    for (const auto& usage : collected.directories()) {
      pending += usage.pending_deletions();
    }
    if (pending == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "the workers did not delete the released checkpoints within 20 s";
}

struct W1Run {
  EndedStudy ended;
  int64_t max_bytes = 0;    // the most the checkpoint directory held while the study ran
  int64_t samples = 0;      // how often it was measured
  std::string over_budget;  // the study's checkpoint_budget status, if it was ever set
  int64_t final_bytes = 0;
  int64_t checkpoint_bytes = 0;  // the size of one checkpoint file
};

// Runs the spec on three workers sharing one checkpoint directory, measuring the directory
// (temporary files included) while the study runs.
W1Run RunStudy(const std::string& spec, const std::vector<std::string>& server_flags,
               const std::vector<std::string>& worker_flags) {
  TempDir dir;
  const std::string spec_path = dir.File("study.yaml");
  std::ofstream(spec_path) << spec;
  Cluster cluster(dir, /*workers=*/3, server_flags, worker_flags);
  const std::string study_id = cluster.Submit(spec_path);
  const std::string checkpoints = dir.File("checkpoints");
  W1Run run;
  // The directory is measured every 5 ms; the study (an RPC, slow on a loaded machine) only
  // every 10th time, so that the directory is seen often also when the server answers slowly.
  for (int64_t poll = 0;; ++poll) {
    const auto [bytes, files] = Usage(checkpoints);
    run.max_bytes = std::max(run.max_bytes, bytes);
    ++run.samples;
    if (files > 0) run.checkpoint_bytes = std::max(run.checkpoint_bytes, bytes / files);
    if (poll % 10 == 0) {
      absl::StatusOr<v1::Study> study = GetStudy(cluster.address(), study_id);
      if (study.ok() && !study->checkpoint_budget().empty())
        run.over_budget = study->checkpoint_budget();
      if (study.ok() && study->state() != v1::STUDY_RUNNING) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(300));
  EXPECT_TRUE(ended.ok()) << ended.status();
  if (ended.ok()) run.ended = *std::move(ended);
  WaitForDeletions(cluster.address());
  run.final_bytes = Usage(checkpoints).first;
  return run;
}

W1Run RunW1(const std::vector<std::string>& server_flags,
            const std::vector<std::string>& worker_flags) {
  return RunStudy(WorkloadWithConfig("w1.yaml", kConfig), server_flags, worker_flags);
}

TEST(CheckpointGcTest, BudgetedStudyStaysUnderItsBudgetWithTheResultsOfARunWithoutCollection) {
  const W1Run kept_all = RunW1({"--no-checkpoint-gc"}, {});
  ASSERT_EQ(kept_all.ended.study.state(), v1::STUDY_COMPLETED);
  // Without collection every state the study kept stays while it runs: far more than the
  // budget below. (RunW1 then collects with `hippo gc`, which empties the directory.)
  constexpr int64_t kBudget = 1 << 20;  // 1 MiB: about 60 checkpoints of 16 KiB
  ASSERT_GT(kept_all.max_bytes, 4 * kBudget);

  // Collection is on by default; the run above turned it off.
  const W1Run collected = RunW1({}, {"--checkpoint-budget", "1MiB"});
  ASSERT_EQ(collected.ended.study.state(), v1::STUDY_COMPLETED);
  // The directory stayed under its budget at every sample, temporary files included, and the
  // states the study needed always fitted (no over-budget status).
  // Sampled often enough to see the directory between stages (under load a poll takes longer).
  EXPECT_GT(collected.samples, 50);
  RecordProperty("max_bytes", std::to_string(collected.max_bytes));
  RecordProperty("max_bytes_without_collection", std::to_string(kept_all.max_bytes));
  EXPECT_LE(collected.max_bytes, kBudget)
      << "one checkpoint: " << collected.checkpoint_bytes << " bytes";
  EXPECT_EQ(collected.over_budget, "");
  // Once it ended nothing is needed any more: everything was deleted.
  EXPECT_EQ(collected.final_bytes, 0);
  // Results identical to the run that kept everything: every trial's curve, the best trial.
  EXPECT_EQ(collected.ended.curves, kept_all.ended.curves);
  EXPECT_EQ(collected.ended.study.best_trial().id(), kept_all.ended.study.best_trial().id());
  EXPECT_EQ(collected.ended.study.best_trial().objective_value(),
            kept_all.ended.study.best_trial().objective_value());
  EXPECT_EQ(collected.ended.study.trials_completed(), 96);
}

// Two grid trials that share their first 60 steps (below), with a budget smaller than one
// checkpoint: the state at step 60 is needed until both branches are trained, so it cannot fit.
// The study says so while it runs, and still ends with the results of a run without a budget.
// Steps take 10 ms of wall time here, so that the over-budget stretch (the two branches of 20
// steps) lasts long enough to be seen by the 5 ms polls.
std::string SharedPrefixSpec(const std::string& name, double gamma,
                             const std::string& extra_config = "");

TEST(CheckpointGcTest, NeededStatesOverTheBudgetAreReportedAndTheResultsStayTheSame) {
  const std::string spec = SharedPrefixSpec("over", 0.1, ", wall_seconds_per_step: 0.01");
  const W1Run unbounded = RunStudy(spec, {"--no-checkpoint-gc"}, {});
  ASSERT_EQ(unbounded.ended.study.state(), v1::STUDY_COMPLETED);
  const W1Run tight = RunStudy(spec, {}, {"--checkpoint-budget", "1000"});
  ASSERT_EQ(tight.ended.study.state(), v1::STUDY_COMPLETED);
  EXPECT_NE(tight.over_budget.find("is over its budget of 1000 bytes"), std::string::npos)
      << tight.over_budget;
  EXPECT_EQ(unbounded.over_budget, "");
  EXPECT_EQ(tight.ended.curves, unbounded.ended.curves);
  EXPECT_EQ(tight.final_bytes, 0);
}

// Two grid studies of one family: the same learning rate up to step 40, then each its own
// (`extra_config` is added to the sim trainer's config).
std::string SharedPrefixSpec(const std::string& name, double gamma,
                             const std::string& extra_config) {
  return "name: " + name + R"(
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer:
  kind: sim
  seed: 0
  config: {model: resnet20, batch_size: 128, virtual_time: true, state_bytes: 4096)" +
         extra_config + R"(}
search_space:
  parameters:
    - name: lr
      sequence:
        step_decay:
          initial: {value: 0.1}
          milestones: {choices: [{steps: [40]}, {steps: [40, 60]}]}
          gamma: {value: )" +
         std::to_string(gamma) + R"(}
algorithm: {name: grid, seed: 0}
budget: {max_steps: 80}
)";
}

// The checkpoint uri of the final state of the study's best trial (its last stage's end).
std::string BestFinalState(const std::string& address, const v1::Study& study) {
  v1::GetStageTreeRequest request;
  request.set_study_id(study.id());
  v1::StageTree tree;
  grpc::ClientContext context;
  EXPECT_TRUE(Connect(address)->GetStageTree(&context, request, &tree).ok());
  for (const v1::Stage& stage : tree.stages()) {
    if (stage.end_step() != 80) continue;
    for (int64_t trial : stage.trial_ids()) {
      if (trial == study.best_trial().id()) return stage.checkpoint_uri();
    }
  }
  return "";
}

TEST(CheckpointGcTest, DeletedStudyTakesOnlyItsOwnCheckpointsAndCanBeRunAgain) {
  TempDir dir;
  const std::string a_path = dir.File("a.yaml");
  const std::string b_path = dir.File("b.yaml");
  std::ofstream(a_path) << SharedPrefixSpec("a", 0.1);
  std::ofstream(b_path) << SharedPrefixSpec("b", 0.5);
  // Collection is on by default (--checkpoint-gc, still accepted, changes nothing).
  Cluster cluster(dir, /*workers=*/2, {"--checkpoint-gc", "--keep-best-checkpoints", "1"});
  const std::string checkpoints = dir.File("checkpoints");

  const std::string a = cluster.Submit(a_path);
  const std::string b = cluster.Submit(b_path);
  absl::StatusOr<EndedStudy> a_ended =
      WaitForEndedStudy(cluster.address(), a, std::chrono::seconds(120));
  absl::StatusOr<EndedStudy> b_ended =
      WaitForEndedStudy(cluster.address(), b, std::chrono::seconds(120));
  ASSERT_TRUE(a_ended.ok() && b_ended.ok());
  ASSERT_EQ(a_ended->study.state(), v1::STUDY_COMPLETED);
  ASSERT_EQ(b_ended->study.state(), v1::STUDY_COMPLETED);
  // They shared their first 40 steps.
  EXPECT_LT(b_ended->study.steps().unique_steps(), 2 * b_ended->study.steps().trial_steps());

  // Ended, they keep only their best trials' final states (--keep-best-checkpoints 1).
  WaitForDeletions(cluster.address());
  const std::string a_best = BestFinalState(cluster.address(), a_ended->study);
  const std::string b_best = BestFinalState(cluster.address(), b_ended->study);
  ASSERT_FALSE(a_best.empty());
  ASSERT_FALSE(b_best.empty());
  EXPECT_EQ(Files(checkpoints), (std::set<std::string>{a_best, b_best}));

  const CommandResult deleted = RunHippo({"delete", a, "--coordinator", cluster.address()});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_NE(deleted.output.find("2 trials"), std::string::npos) << deleted.output;
  WaitForDeletions(cluster.address());
  // A's checkpoint is gone, B's stays; B's results are unchanged; A is unknown.
  EXPECT_EQ(Files(checkpoints), (std::set<std::string>{b_best}));
  absl::StatusOr<v1::ListTrialsResponse> b_trials = TrialsWithMetrics(cluster.address(), b);
  ASSERT_TRUE(b_trials.ok());
  EXPECT_EQ(CurvesOf(*b_trials), b_ended->curves);
  const CommandResult shown = RunHippo({"study", a, "--coordinator", cluster.address()});
  EXPECT_EQ(shown.exit_code, 2) << shown.output;

  // The same study again: its stages were A's alone, so they are trained again, with A's
  // results.
  const std::string again = cluster.Submit(a_path);
  EXPECT_NE(again, a);
  absl::StatusOr<EndedStudy> again_ended =
      WaitForEndedStudy(cluster.address(), again, std::chrono::seconds(120));
  ASSERT_TRUE(again_ended.ok());
  EXPECT_EQ(again_ended->study.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(again_ended->curves, a_ended->curves);
  EXPECT_EQ(again_ended->study.best_trial().objective_value(),
            a_ended->study.best_trial().objective_value());
}

}  // namespace
}  // namespace hippo::e2e
