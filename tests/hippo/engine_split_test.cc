// The engine with a real SQLite store and in-test workers: stages cut at the algorithm's
// breakpoints, and stages split while they run or after they are done (late targets), each also
// across a coordinator restart.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "hippo/engine.h"
#include "search_algos/search_algorithm.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::SmallGrid;
using engine_test::TempDb;
using engine_test::Train;

// One trial to step 100 that the algorithm may branch at steps 25 and 75.
class BranchesAt25And75 : public search_algos::SearchAlgorithm {
 public:
  void OnMetric(search_algos::TrialNumber, search_algos::Step, double) override {}
  void OnTrialReachedTarget(search_algos::TrialNumber, search_algos::Step) override {}
  void OnTrialEnded(search_algos::TrialNumber, search_algos::TrialOutcome) override {}
  std::vector<search_algos::Request> Suggest(int64_t) override {
    if (proposed_) return {};
    proposed_ = true;
    return {{search_algos::Request::Kind::kNewTrial, {0.1}, 100, -1, 0}};
  }
  bool Finished() const override { return proposed_; }
  std::vector<search_algos::Step> BranchSteps() const override { return {25, 75}; }
  std::string SaveState() const override { return proposed_ ? "1" : "0"; }
  absl::Status LoadState(const std::string& state) override {
    proposed_ = state == "1";
    return absl::OkStatus();
  }

 private:
  bool proposed_ = false;
};

TEST(EngineTest, AStageGoesOutUpToItsNextBreakpointAndARecoveredEngineCutsItAlike) {
  (void)search_algos::AlgorithmRegistry::Global().Register(
      "branches_at_25_and_75",
      [](const search_algos::AlgorithmContext&)
          -> absl::StatusOr<std::unique_ptr<search_algos::SearchAlgorithm>> {
        return std::make_unique<BranchesAt25And75>();
      });
  v1::StudySpec spec = SmallGrid();
  spec.mutable_algorithm()->set_name("branches_at_25_and_75");
  v1::Parameter* lr = spec.mutable_search_space()->mutable_parameters(0);
  lr->mutable_sequence()->Clear();
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_low(0.01);
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_high(0.2);
  const std::string db = TempDb();
  std::string study_id;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(spec, false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    auto channel = std::make_shared<RecordingChannel>();
    ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
    std::optional<v1::CoordinatorMessage> first = channel->Next();
    ASSERT_TRUE(first && first->has_assign());
    EXPECT_EQ(first->assign().start_step(), 0);
    EXPECT_EQ(first->assign().end_step(), 25);
    Train(engine, "w", first->assign());
    std::optional<v1::CoordinatorMessage> second = channel->Next();
    ASSERT_TRUE(second && second->has_assign());
    EXPECT_EQ(second->assign().start_step(), 25);
    EXPECT_EQ(second->assign().end_step(), 75);
    // The coordinator stops here, with [25, 75) handed out.
  }
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  recovered.ExpireLeases(Clock::now() + std::chrono::minutes(1));
  EXPECT_EQ(recovered.GetStudy(study_id)->steps().executed_steps(), 25);
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(recovered.Connect(Hello("w2"), channel).ok());
  std::vector<std::pair<int64_t, int64_t>> assigned;
  while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
    if (!message->has_assign()) continue;
    assigned.emplace_back(message->assign().start_step(), message->assign().end_step());
    Train(recovered, "w2", message->assign());
  }
  EXPECT_EQ(assigned, (std::vector<std::pair<int64_t, int64_t>>{{25, 75}, {75, 100}}));
  absl::StatusOr<v1::Study> done = recovered.GetStudy(study_id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(done->steps().executed_steps(), 100);
  EXPECT_EQ(done->steps().unique_steps(), 100);
  std::filesystem::remove(db);
}

// Trials 0 (lr 0.1) and 1 (lr 0.2) to step 20; once trial 1 reached its target, trial 2 (lr 0.1)
// to step 13, which splits trial 0's stage at 13; once trial 2 reached its, trial 3 (lr 0.1) to
// step 7, which splits [0, 13) at 7. From trial 2 on, the algorithm may branch at step 7 (so a
// stage that runs over it afterwards keeps its state there). Without `then_step_seven`, it stops
// after trial 2 and never branches.
class LateTargets : public search_algos::SearchAlgorithm {
 public:
  explicit LateTargets(bool then_step_seven = true) : then_step_seven_(then_step_seven) {}
  void OnMetric(search_algos::TrialNumber, search_algos::Step, double) override {}
  void OnTrialReachedTarget(search_algos::TrialNumber trial, search_algos::Step) override {
    reached_ = std::max(reached_, static_cast<int>(trial));
  }
  void OnTrialEnded(search_algos::TrialNumber, search_algos::TrialOutcome) override {}
  std::vector<search_algos::Request> Suggest(int64_t) override {
    using Kind = search_algos::Request::Kind;
    if (proposed_ == 0) {
      proposed_ = 2;
      return {{Kind::kNewTrial, {0.1}, 20, -1, 0}, {Kind::kNewTrial, {0.2}, 20, -1, 0}};
    }
    if (proposed_ == 2 && reached_ >= 1) {
      proposed_ = 3;
      return {{Kind::kNewTrial, {0.1}, 13, -1, 0}};
    }
    if (then_step_seven_ && proposed_ == 3 && reached_ >= 2) {
      proposed_ = 4;
      return {{Kind::kNewTrial, {0.1}, 7, -1, 0}};
    }
    return {};
  }
  bool Finished() const override { return proposed_ == (then_step_seven_ ? 4 : 3); }
  std::vector<search_algos::Step> BranchSteps() const override {
    if (then_step_seven_ && proposed_ >= 3) return {7};
    return {};
  }
  std::string SaveState() const override { return absl::StrCat(proposed_, ",", reached_); }
  absl::Status LoadState(const std::string& state) override {
    const size_t comma = state.find(',');
    proposed_ = std::stoi(state.substr(0, comma));
    reached_ = std::stoi(state.substr(comma + 1));
    return absl::OkStatus();
  }

 private:
  const bool then_step_seven_;
  int proposed_ = 0;
  int reached_ = -1;
};

double LrOf(const v1::Assign& assign) { return assign.parameters(0).segments(0).constant(); }

void ReportStep(Engine& engine, const std::string& worker, const v1::Assign& assign, int64_t step) {
  v1::WorkerMessage progress;
  progress.mutable_progress()->set_attempt_id(assign.attempt_id());
  progress.mutable_progress()->set_step(step);
  (*progress.mutable_progress()->mutable_metrics())["score"] = step + LrOf(assign);
  ASSERT_TRUE(engine.OnWorkerMessage(worker, progress).ok());
}

void WriteCheckpoint(Engine& engine, const std::string& worker, const v1::Assign& assign,
                     int64_t step) {
  v1::WorkerMessage checkpoint;
  checkpoint.mutable_checkpoint()->set_attempt_id(assign.attempt_id());
  checkpoint.mutable_checkpoint()->set_stage_id(assign.stage_id());
  checkpoint.mutable_checkpoint()->set_step(step);
  checkpoint.mutable_checkpoint()->set_uri(
      absl::StrCat("file:///checkpoints/", assign.stage_id(), "-", step));
  ASSERT_TRUE(engine.OnWorkerMessage(worker, checkpoint).ok());
}

void FinishStage(Engine& engine, const std::string& worker, const v1::Assign& assign) {
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_attempt_id(assign.attempt_id());
  finished.mutable_finished()->set_ok(true);
  ASSERT_TRUE(engine.OnWorkerMessage(worker, finished).ok());
}

// As the real worker does: progress after each step, then the state after it if asked for
// (every checkpoint step of the Assign), then the finish.
void TrainWithCheckpoints(Engine& engine, const std::string& worker, const v1::Assign& assign) {
  const std::set<int64_t> keep(assign.checkpoint_steps().begin(), assign.checkpoint_steps().end());
  for (int64_t step = assign.start_step(); step < assign.end_step(); ++step) {
    ReportStep(engine, worker, assign, step);
    if (keep.contains(step + 1)) WriteCheckpoint(engine, worker, assign, step + 1);
  }
  FinishStage(engine, worker, assign);
}

struct LateSplitRun {
  std::string study_id;
  std::vector<v1::Assign> later_assigns;  // after the first two
};

// Runs the study of LateTargets on two workers: worker "a" trains trial 0's stage [0, 20) and
// has reported steps [0, reported) when worker "c" finishes trial 1, so that trial 2 (target 13)
// splits the running stage at 13. `honour` says whether worker "a" then writes the state at 13
// (it can only if it has not trained step 13 yet: reported == 13).

// The study of LateTargets: constant learning rates, 20 steps at most.
v1::StudySpec LateTargetsSpec() {
  (void)search_algos::AlgorithmRegistry::Global().Register(
      "late_targets",
      [](const search_algos::AlgorithmContext&)
          -> absl::StatusOr<std::unique_ptr<search_algos::SearchAlgorithm>> {
        return std::make_unique<LateTargets>();
      });
  v1::StudySpec spec = SmallGrid();
  spec.mutable_algorithm()->set_name("late_targets");
  spec.mutable_budget()->set_max_steps(20);
  v1::Parameter* lr = spec.mutable_search_space()->mutable_parameters(0);
  lr->mutable_sequence()->Clear();
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_low(0.01);
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_high(0.3);
  return spec;
}

// Trains whatever is left (recomputations) on whichever worker is free, until nothing is.
void TrainWhatIsLeft(Engine& engine,
                     std::map<std::string, std::shared_ptr<RecordingChannel>>& channels,
                     LateSplitRun& run) {
  for (bool any = true; any;) {
    any = false;
    for (auto& [worker, channel] : channels) {
      while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
        if (!message->has_assign()) continue;
        any = true;
        run.later_assigns.push_back(message->assign());
        TrainWithCheckpoints(engine, worker, message->assign());
      }
    }
  }
}

// Workers "a" and "c" say hello (their channels go into `channels`); returns each one's first
// Assign by its lr (trial 0's is 0.1, trial 1's 0.2), with the worker that got it.
std::map<double, std::pair<std::string, v1::Assign>> ConnectTwoWorkers(
    Engine& engine, std::map<std::string, std::shared_ptr<RecordingChannel>>& channels) {
  std::map<double, std::pair<std::string, v1::Assign>> first;
  for (const std::string worker : {"a", "c"}) {
    channels[worker] = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine.Connect(Hello(worker), channels[worker]).ok());
  }
  for (auto& [worker, channel] : channels) {
    std::optional<v1::CoordinatorMessage> message = channel->Next();
    EXPECT_TRUE(message && message->has_assign());
    if (message && message->has_assign()) {
      first[LrOf(message->assign())] = {worker, message->assign()};
    }
  }
  return first;
}

void RunLateSplit(Engine& engine, int64_t reported, bool honour, LateSplitRun& run) {
  absl::StatusOr<v1::Study> study = engine.CreateStudy(LateTargetsSpec(), false);
  ASSERT_TRUE(study.ok()) << study.status();
  run.study_id = study->id();
  std::map<std::string, std::shared_ptr<RecordingChannel>> channels;
  const std::map<double, std::pair<std::string, v1::Assign>> first =
      ConnectTwoWorkers(engine, channels);
  ASSERT_EQ(first.size(), 2u);
  // Whichever worker got it, call the one with trial 0's stage "a" from here on.
  const auto& [worker_a, stage_a] = first.at(0.1);
  const auto& [worker_c, stage_c] = first.at(0.2);
  ASSERT_EQ(stage_a.start_step(), 0);
  ASSERT_EQ(stage_a.end_step(), 20);

  for (int64_t step = 0; step < reported; ++step) ReportStep(engine, worker_a, stage_a, step);
  Train(engine, worker_c, stage_c);  // trial 1 reaches its target: trial 2 arrives
  std::optional<v1::CoordinatorMessage> request = channels[worker_a]->Next();
  ASSERT_TRUE(request && request->has_checkpoint_at());
  EXPECT_EQ(request->checkpoint_at().step(), 13);
  if (honour) WriteCheckpoint(engine, worker_a, stage_a, 13);
  for (int64_t step = reported; step < 20; ++step) ReportStep(engine, worker_a, stage_a, step);
  WriteCheckpoint(engine, worker_a, stage_a, 20);
  FinishStage(engine, worker_a, stage_a);
  TrainWhatIsLeft(engine, channels, run);
}

// Every trial has the metric reported at its target's last step (score = step + lr) and the
// state its target gives it, and each step of its path is stored once.
void ExpectEveryTrialHasItsLastStepsMetric(Engine& engine, const std::string& study_id) {
  absl::StatusOr<v1::Study> done = engine.GetStudy(study_id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED);
  absl::StatusOr<v1::ListTrialsResponse> trials = engine.ListTrials(study_id, true);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->trials_size(), 4);
  const std::vector<std::pair<int64_t, double>> expected = {
      {20, 19.1}, {20, 19.2}, {13, 12.1}, {7, 6.1}};  // (target, objective) by trial
  for (int i = 0; i < 4; ++i) {
    const v1::Trial& trial = trials->trials(i);
    EXPECT_EQ(trial.target_step(), expected[i].first) << "trial " << i;
    EXPECT_EQ(trial.state(), trial.target_step() == 20 ? v1::TRIAL_COMPLETED : v1::TRIAL_PAUSED)
        << "trial " << i;
    ASSERT_TRUE(trial.has_objective_value()) << "trial " << i << " reached its target without it";
    EXPECT_DOUBLE_EQ(trial.objective_value(), expected[i].second) << "trial " << i;
    const v1::TrialMetrics& metrics = trials->metrics(i);
    ASSERT_EQ(metrics.metrics_size(), trial.target_step()) << "trial " << i;
    for (int64_t step = 0; step < trial.target_step(); ++step) {
      EXPECT_EQ(metrics.metrics(step).step(), step);
    }
  }
}

// The worker has reported step 12 (when it was not yet any stage's last step) and not yet
// trained step 13 when the split asks for the state at 13: it honours the request, the part
// [0, 13) is done at once, and trial 2's objective is that report of step 12.
TEST(EngineTest, ASplitRightAfterTheWorkerReportedTheStepBeforeItKeepsThatStepsMetric) {
  const std::string db = TempDb();
  std::string study_id;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    LateSplitRun run;
    RunLateSplit(engine, /*reported=*/13, /*honour=*/true, run);
    study_id = run.study_id;
    ExpectEveryTrialHasItsLastStepsMetric(engine, study_id);
    // Only trial 3's [0, 7) is trained again (the state at 7 was never kept), and once: the
    // attempt that trained [0, 13) before does not claim it when it finishes.
    ASSERT_EQ(run.later_assigns.size(), 1u);
    EXPECT_EQ(run.later_assigns[0].end_step(), 7);
    EXPECT_EQ(engine.GetStudy(study_id)->steps().recomputed_steps(), 7);
  }
  auto store = store::Store::Open(db);  // a restarted coordinator finds the same objectives
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  ExpectEveryTrialHasItsLastStepsMetric(recovered, study_id);
  std::filesystem::remove(db);
}

// As above, but the coordinator restarts (a new engine on the same store) after worker "a"
// reported step 12 and before the split at 13: the workers reconnect and go on with the same
// attempts, and the recovered engine knows the report of step 12 only from the store. Worker "a"
// honours the request for the state at 13, and trial 2's objective is still that report.
TEST(EngineTest, ASplitRightAfterARestartKeepsTheMetricOfTheStepReportedBeforeTheRestart) {
  const std::string db = TempDb();
  LateSplitRun run;
  std::map<double, std::pair<std::string, v1::Assign>> first;  // by lr
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(LateTargetsSpec(), false);
    ASSERT_TRUE(study.ok()) << study.status();
    run.study_id = study->id();
    std::map<std::string, std::shared_ptr<RecordingChannel>> channels;
    first = ConnectTwoWorkers(engine, channels);
    ASSERT_EQ(first.size(), 2u);
    const auto& [worker_a, stage_a] = first.at(0.1);
    ASSERT_EQ(stage_a.start_step(), 0);
    ASSERT_EQ(stage_a.end_step(), 20);
    for (int64_t step = 0; step < 13; ++step) ReportStep(engine, worker_a, stage_a, step);
  }
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    std::map<std::string, std::shared_ptr<RecordingChannel>> channels;
    for (const std::string worker : {"a", "c"}) {
      channels[worker] = std::make_shared<RecordingChannel>();
      ASSERT_TRUE(engine.Connect(Hello(worker), channels[worker]).ok());
    }
    const auto& [worker_a, stage_a] = first.at(0.1);
    const auto& [worker_c, stage_c] = first.at(0.2);
    Train(engine, worker_c, stage_c);  // trial 1 reaches its target: trial 2 arrives
    std::optional<v1::CoordinatorMessage> request = channels[worker_a]->Next();
    ASSERT_TRUE(request && request->has_checkpoint_at());
    EXPECT_EQ(request->checkpoint_at().attempt_id(), stage_a.attempt_id());
    EXPECT_EQ(request->checkpoint_at().step(), 13);
    WriteCheckpoint(engine, worker_a, stage_a, 13);
    for (int64_t step = 13; step < 20; ++step) ReportStep(engine, worker_a, stage_a, step);
    WriteCheckpoint(engine, worker_a, stage_a, 20);
    FinishStage(engine, worker_a, stage_a);
    TrainWhatIsLeft(engine, channels, run);
    ExpectEveryTrialHasItsLastStepsMetric(engine, run.study_id);
    // As without the restart: only trial 3's [0, 7) is trained again.
    ASSERT_EQ(run.later_assigns.size(), 1u);
    EXPECT_EQ(run.later_assigns[0].end_step(), 7);
    EXPECT_EQ(engine.GetStudy(run.study_id)->steps().recomputed_steps(), 7);
  }
  auto store = store::Store::Open(db);  // and once more, after the end
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  ExpectEveryTrialHasItsLastStepsMetric(recovered, run.study_id);
  std::filesystem::remove(db);
}

// W3's case: the worker is past step 13 when the split asks for the state there, so [0, 13) is
// trained again; that rerun keeps its state at the branch step 7, and when trial 3 (target 7)
// splits the done stage there, [0, 7) is done at once, with no recomputation. Its objective is
// the metric of step 6, reported while 7 was not yet any stage's end.
TEST(EngineTest, ATrialEndingWhereADoneStageKeptItsStateGetsTheMetricOfThatStep) {
  const std::string db = TempDb();
  std::string study_id;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    LateSplitRun run;
    RunLateSplit(engine, /*reported=*/16, /*honour=*/false, run);
    study_id = run.study_id;
    ASSERT_EQ(run.later_assigns.size(), 1u);
    const v1::Assign& rerun = run.later_assigns[0];
    EXPECT_EQ(rerun.start_step(), 0);
    EXPECT_EQ(rerun.end_step(), 13);
    EXPECT_EQ(
        std::vector<int64_t>(rerun.checkpoint_steps().begin(), rerun.checkpoint_steps().end()),
        (std::vector<int64_t>{7, 13}));
    EXPECT_EQ(engine.GetStudy(study_id)->steps().recomputed_steps(), 13);
    ExpectEveryTrialHasItsLastStepsMetric(engine, study_id);
  }
  auto store = store::Store::Open(db);  // a restarted coordinator finds the same objectives
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  ExpectEveryTrialHasItsLastStepsMetric(recovered, study_id);
  std::filesystem::remove(db);
}

// Trial 2 reached step 13 with the metric of step 12 (score = step + lr); `done` says whether
// the others reached 20 too.
void ExpectTrialTwoEndsAtTheKeptState(Engine& engine, const std::string& study_id, bool done) {
  absl::StatusOr<v1::ListTrialsResponse> trials = engine.ListTrials(study_id, true);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->trials_size(), 3);
  const std::vector<std::pair<int64_t, double>> expected = {{20, 19.1}, {20, 19.2}, {13, 12.1}};
  for (int i = 0; i < 3; ++i) {
    const v1::Trial& trial = trials->trials(i);
    EXPECT_EQ(trial.target_step(), expected[i].first) << "trial " << i;
    if (i == 0 && !done) {
      EXPECT_EQ(trial.state(), v1::TRIAL_RUNNING);
      continue;
    }
    EXPECT_EQ(trial.state(), i == 2 ? v1::TRIAL_PAUSED : v1::TRIAL_COMPLETED) << "trial " << i;
    ASSERT_TRUE(trial.has_objective_value()) << "trial " << i << " reached its target without it";
    EXPECT_DOUBLE_EQ(trial.objective_value(), expected[i].second) << "trial " << i;
    ASSERT_EQ(trials->metrics(i).metrics_size(), trial.target_step()) << "trial " << i;
  }
  absl::StatusOr<v1::Study> study = engine.GetStudy(study_id);
  ASSERT_TRUE(study.ok());
  EXPECT_EQ(study->state(), done ? v1::STUDY_COMPLETED : v1::STUDY_RUNNING);
  EXPECT_EQ(study->steps().recomputed_steps(), 0);
  if (done) {
    EXPECT_EQ(study->steps().executed_steps(), study->steps().unique_steps());
  }
}

// Worker "a" trains trial 0's [0, 20), keeps its state at 13 on its own and goes on to 16 before
// trial 2 (target 13) arrives: the split at 13 finds that state, so [0, 13) is done at once and
// trial 2 has its objective (the report of step 12) with nothing asked of any worker and nothing
// trained again. A restarted coordinator has the same, and lets worker "a" finish its attempt.
TEST(EngineTest, ASplitAtAStepWhoseStateTheRunningStageKeptCompletesItsTrialsAtOnce) {
  (void)search_algos::AlgorithmRegistry::Global().Register(
      "target_at_a_kept_state",
      [](const search_algos::AlgorithmContext&)
          -> absl::StatusOr<std::unique_ptr<search_algos::SearchAlgorithm>> {
        return std::make_unique<LateTargets>(/*then_step_seven=*/false);
      });
  v1::StudySpec spec = SmallGrid();
  spec.mutable_algorithm()->set_name("target_at_a_kept_state");
  spec.mutable_budget()->set_max_steps(20);
  v1::Parameter* lr = spec.mutable_search_space()->mutable_parameters(0);
  lr->mutable_sequence()->Clear();
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_low(0.01);
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_high(0.3);

  const std::string db = TempDb();
  std::string study_id;
  std::string worker_a;
  v1::Assign stage_a;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(spec, false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    std::map<std::string, std::shared_ptr<RecordingChannel>> channels;
    const std::map<double, std::pair<std::string, v1::Assign>> first =
        ConnectTwoWorkers(engine, channels);
    ASSERT_EQ(first.size(), 2u);
    worker_a = first.at(0.1).first;
    stage_a = first.at(0.1).second;
    const auto& [worker_c, stage_c] = first.at(0.2);
    ASSERT_EQ(stage_a.start_step(), 0);
    ASSERT_EQ(stage_a.end_step(), 20);

    for (int64_t step = 0; step < 13; ++step) ReportStep(engine, worker_a, stage_a, step);
    WriteCheckpoint(engine, worker_a, stage_a, 13);  // not asked for: the worker's own
    for (int64_t step = 13; step < 16; ++step) ReportStep(engine, worker_a, stage_a, step);
    Train(engine, worker_c, stage_c);  // trial 1 reaches its target: trial 2 arrives
    for (auto& [worker, channel] : channels) {
      std::optional<v1::CoordinatorMessage> message = channel->Next();
      EXPECT_FALSE(message.has_value()) << worker << " got " << message->DebugString();
    }
    ExpectTrialTwoEndsAtTheKeptState(engine, study_id, /*done=*/false);
  }
  {
    auto store = store::Store::Open(db);  // restarted while worker "a" still trains [13, 20)
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    ExpectTrialTwoEndsAtTheKeptState(engine, study_id, /*done=*/false);
    std::map<std::string, std::shared_ptr<RecordingChannel>> channels;
    for (const std::string worker : {"a", "c"}) {
      channels[worker] = std::make_shared<RecordingChannel>();
      ASSERT_TRUE(engine.Connect(Hello(worker), channels[worker]).ok());
    }
    for (int64_t step = 16; step < 20; ++step) ReportStep(engine, worker_a, stage_a, step);
    WriteCheckpoint(engine, worker_a, stage_a, 20);
    FinishStage(engine, worker_a, stage_a);
    for (auto& [worker, channel] : channels) {
      std::optional<v1::CoordinatorMessage> message = channel->Next();
      EXPECT_FALSE(message.has_value()) << worker << " got " << message->DebugString();
    }
    ExpectTrialTwoEndsAtTheKeptState(engine, study_id, /*done=*/true);
  }
  auto store = store::Store::Open(db);  // and once more, after the end
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  ExpectTrialTwoEndsAtTheKeptState(recovered, study_id, /*done=*/true);
  std::filesystem::remove(db);
}

}  // namespace
}  // namespace hippo::coordinator
