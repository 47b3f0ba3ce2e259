// The engine with a real SQLite store and in-test workers that answer its messages: dispatch of
// stages, reports, failures, leases, recovery from the store, forks and stopping a study.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

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

TEST(EngineTest, SharedPrefixIsTrainedOnceAndBothTrialsComplete) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->trials_total(), 2);
  EXPECT_EQ(study->steps().unique_steps(), 150);

  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  std::vector<v1::Assign> assigns;
  while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
    ASSERT_TRUE(message->has_assign());
    assigns.push_back(message->assign());
    Train(engine, "w", message->assign());
  }
  ASSERT_EQ(assigns.size(), 3u);  // [0,50), then the two branches
  EXPECT_EQ(assigns[0].start_step(), 0);
  EXPECT_EQ(assigns[0].end_step(), 50);
  EXPECT_EQ(assigns[1].parent_stage_id(), assigns[0].stage_id());
  EXPECT_EQ(assigns[1].parent_state_uri(),
            "file:///checkpoints/" + std::to_string(assigns[0].stage_id()));
  absl::StatusOr<v1::Study> done = engine.GetStudy(study->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(done->trials_completed(), 2);
  EXPECT_EQ(done->steps().executed_steps(), 150);
  EXPECT_EQ(done->steps().trial_steps(), 200);
  // Best: gamma 0.5 keeps the larger lr after step 50: score 99 + 0.05.
  EXPECT_DOUBLE_EQ(done->best_trial().objective_value(), 99 + 0.05);

  absl::StatusOr<v1::ListTrialsResponse> trials = engine.ListTrials(study->id(), true);
  ASSERT_TRUE(trials.ok()) << trials.status();
  for (const v1::TrialMetrics& metrics : trials->metrics()) {
    ASSERT_EQ(metrics.metrics_size(), 100);
    for (const v1::Metric& metric : metrics.metrics()) {
      EXPECT_GE(metric.values().at("score"), static_cast<double>(metric.step()));
    }
  }
  std::filesystem::remove(db);
}

// A fresh store and engine with SmallGrid created and one worker "w" connected.
struct SmallGridSetup {
  SmallGridSetup() {
    EXPECT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
    EXPECT_TRUE(study.ok()) << study.status();
    if (study.ok()) study_id = study->id();
    EXPECT_TRUE(engine.Connect(Hello("w"), channel).ok());
  }
  ~SmallGridSetup() { std::filesystem::remove(db); }

  static std::unique_ptr<store::Store> OpenStore(const std::string& path) {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(path);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  const std::string db = TempDb();
  const std::unique_ptr<store::Store> store = OpenStore(db);
  Engine engine{store.get(), EngineOptions{}};
  const std::shared_ptr<RecordingChannel> channel = std::make_shared<RecordingChannel>();
  std::string study_id;
};

// Runs SmallGrid to its end with one worker; returns every trial's metrics.
v1::ListTrialsResponse RunSmallGrid(bool packed) {
  SmallGridSetup setup;
  while (std::optional<v1::CoordinatorMessage> message = setup.channel->Next()) {
    Train(setup.engine, "w", message->assign(), packed);
  }
  EXPECT_EQ(setup.engine.GetStudy(setup.study_id)->state(), v1::STUDY_COMPLETED);
  absl::StatusOr<v1::ListTrialsResponse> trials = setup.engine.ListTrials(setup.study_id, true);
  EXPECT_TRUE(trials.ok()) << trials.status();
  return *trials;
}

TEST(EngineTest, AStageEndPackedAsReportsGivesTheSameStudyAsReportsOneByOne) {
  const v1::ListTrialsResponse one_by_one = RunSmallGrid(/*packed=*/false);
  const v1::ListTrialsResponse packed = RunSmallGrid(/*packed=*/true);
  ASSERT_EQ(packed.metrics_size(), 2);
  EXPECT_EQ(packed.SerializeAsString(), one_by_one.SerializeAsString());
}

TEST(EngineTest, ReportsWithAHelloInsideAreRefusedAndChangeNothing) {
  SmallGridSetup setup;
  Engine& engine = setup.engine;
  std::optional<v1::CoordinatorMessage> first = setup.channel->Next();
  ASSERT_TRUE(first && first->has_assign());

  v1::WorkerMessage bad;
  v1::StageFinished* finished = bad.mutable_reports()->add_messages()->mutable_finished();
  finished->set_attempt_id(first->assign().attempt_id());
  finished->set_ok(true);
  *bad.mutable_reports()->add_messages()->mutable_hello() = Hello("w");
  absl::Status status = engine.OnWorkerMessage("w", bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("hello"), std::string::npos) << status;
  // The finish before the hello was not taken: the stage is still this worker's to end.
  EXPECT_FALSE(setup.channel->Next().has_value());
  Train(engine, "w", first->assign());
  ASSERT_TRUE(setup.channel->Next().has_value());  // the next stage, once the first really ended
}

TEST(EngineTest, AStageThatFailsEveryAttemptFailsItsTrialsAndTheStudySaysWhy) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  EngineOptions options;
  options.max_attempts = 3;
  options.retry_backoff_seconds = 0;  // each attempt at once (engine_retry_test: the backoff)
  Engine engine(store->get(), options);
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
  ASSERT_TRUE(study.ok()) << study.status();
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  int attempts = 0;
  while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
    ASSERT_TRUE(message->has_assign());
    ++attempts;
    EXPECT_EQ(message->assign().start_step(), 0);  // the shared stage, again and again
    v1::WorkerMessage finished;
    finished.mutable_finished()->set_attempt_id(message->assign().attempt_id());
    finished.mutable_finished()->set_ok(false);
    finished.mutable_finished()->set_error("train.py exited with status 1: CUDA out of memory");
    ASSERT_TRUE(engine.OnWorkerMessage("w", finished).ok());
  }
  EXPECT_EQ(attempts, 3);
  absl::StatusOr<v1::Study> done = engine.GetStudy(study->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_FAILED);
  EXPECT_EQ(done->trials_completed(), 0);
  EXPECT_NE(done->message().find("failed after 3 attempts: train.py exited with status 1"),
            std::string::npos)
      << done->message();
  std::filesystem::remove(db);
}

TEST(EngineTest, ReportsOfAnotherWorkersAttemptAreIgnored) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  ASSERT_TRUE(engine.CreateStudy(SmallGrid(), false).ok());
  auto owner = std::make_shared<RecordingChannel>();
  auto intruder = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("owner"), owner).ok());
  ASSERT_TRUE(engine.Connect(Hello("intruder"), intruder).ok());
  std::optional<v1::CoordinatorMessage> assign = owner->Next();
  ASSERT_TRUE(assign && assign->has_assign());
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_attempt_id(assign->assign().attempt_id());
  finished.mutable_finished()->set_ok(true);
  ASSERT_TRUE(engine.OnWorkerMessage("intruder", finished).ok());
  EXPECT_EQ(engine.stats().stale_reports_ignored, 1);
  // The stage is still the owner's: nothing else was dispatched.
  EXPECT_FALSE(intruder->Next());
  std::filesystem::remove(db);
}

TEST(EngineTest, ExpiredLeaseRequeuesTheStageForAnotherWorker) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  EngineOptions options;
  options.lease_seconds = 0.05;
  Engine engine(store->get(), options);
  ASSERT_TRUE(engine.Recover().ok());
  ASSERT_TRUE(engine.CreateStudy(SmallGrid(), false).ok());
  auto silent = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("silent"), silent).ok());
  std::optional<v1::CoordinatorMessage> first = silent->Next();
  ASSERT_TRUE(first && first->has_assign());
  engine.Disconnect("silent", 1);
  auto healthy = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("healthy"), healthy).ok());
  EXPECT_FALSE(healthy->Next());  // the stage is leased to the silent worker
  engine.ExpireLeases(Clock::now() + std::chrono::seconds(1));
  std::optional<v1::CoordinatorMessage> again = healthy->Next();
  ASSERT_TRUE(again && again->has_assign());
  EXPECT_EQ(again->assign().stage_id(), first->assign().stage_id());
  EXPECT_NE(again->assign().attempt_id(), first->assign().attempt_id());
  EXPECT_EQ(engine.stats().leases_expired, 1);
  std::filesystem::remove(db);
}

TEST(EngineTest, RecoveryRebuildsTheSameStudyFromTheStore) {
  const std::string db = TempDb();
  std::string study_id;
  v1::Study before;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), false);
    ASSERT_TRUE(study.ok());
    study_id = study->id();
    auto channel = std::make_shared<RecordingChannel>();
    ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
    std::optional<v1::CoordinatorMessage> assign = channel->Next();
    ASSERT_TRUE(assign);
    Train(engine, "w", assign->assign());  // the shared stage only
    before = *engine.GetStudy(study_id);
  }
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  // The branch the first engine had handed out has no worker any more: its lease runs out.
  recovered.ExpireLeases(Clock::now() + std::chrono::minutes(1));
  absl::StatusOr<v1::Study> after = recovered.GetStudy(study_id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->steps().executed_steps(), before.steps().executed_steps());
  EXPECT_EQ(after->steps().unique_steps(), before.steps().unique_steps());
  EXPECT_EQ(after->trials_total(), 2);
  // The two branches are ready again and get dispatched; the study then finishes.
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(recovered.Connect(Hello("w2"), channel).ok());
  int assigns = 0;
  while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
    if (!message->has_assign()) continue;
    ++assigns;
    EXPECT_EQ(message->assign().start_step(), 50);
    Train(recovered, "w2", message->assign());
  }
  EXPECT_EQ(assigns, 2);
  EXPECT_EQ(recovered.GetStudy(study_id)->state(), v1::STUDY_COMPLETED);
  std::filesystem::remove(db);
}

// Trains trial 0 to step 50, then forks it there with another learning rate (PBT's exploit and
// explore) and extends trial 0 to the end.
class ForkOnce : public search_algos::SearchAlgorithm {
 public:
  explicit ForkOnce(const search_algos::AlgorithmContext& context) : context_(context) {}
  void OnMetric(search_algos::TrialNumber, search_algos::Step, double) override {}
  void OnTrialReachedTarget(search_algos::TrialNumber trial, search_algos::Step) override {
    if (trial == 0 && phase_ == 1) phase_ = 2;
  }
  void OnTrialEnded(search_algos::TrialNumber, search_algos::TrialOutcome) override {}
  std::vector<search_algos::Request> Suggest(int64_t) override {
    std::vector<search_algos::Request> requests;
    if (phase_ == 0) {
      requests.push_back({search_algos::Request::Kind::kNewTrial, {0.1}, 50, -1, 0});
      phase_ = 1;
    } else if (phase_ == 2) {
      requests.push_back({search_algos::Request::Kind::kFork, {0.05}, 100, 0, 50});
      requests.push_back({search_algos::Request::Kind::kExtend, {}, 100, 0, 0});
      phase_ = 3;
    }
    return requests;
  }
  bool Finished() const override { return phase_ == 3; }
  std::string SaveState() const override { return std::to_string(phase_); }
  absl::Status LoadState(const std::string& state) override {
    phase_ = std::stoi(state);
    return absl::OkStatus();
  }

 private:
  search_algos::AlgorithmContext context_;
  int phase_ = 0;
};

TEST(EngineTest, ForkSharesTheParentsStagesUpToTheForkStep) {
  (void)search_algos::AlgorithmRegistry::Global().Register(
      "fork_once",
      [](const search_algos::AlgorithmContext& context)
          -> absl::StatusOr<std::unique_ptr<search_algos::SearchAlgorithm>> {
        return std::make_unique<ForkOnce>(context);
      });
  v1::StudySpec spec = SmallGrid();
  spec.mutable_algorithm()->set_name("fork_once");
  v1::Parameter* lr = spec.mutable_search_space()->mutable_parameters(0);
  lr->mutable_sequence()->Clear();
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_low(0.01);
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_high(0.2);
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(spec, false);
  ASSERT_TRUE(study.ok()) << study.status();
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
    if (message->has_assign()) Train(engine, "w", message->assign());
  }
  absl::StatusOr<v1::Study> done = engine.GetStudy(study->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(done->trials_total(), 2);
  EXPECT_EQ(done->steps().executed_steps(), 150);  // [0,50) once, then two branches of 50
  absl::StatusOr<v1::ListTrialsResponse> trials = engine.ListTrials(study->id(), true);
  ASSERT_TRUE(trials.ok());
  const v1::Trial& parent = trials->trials(0);
  const v1::Trial& fork = trials->trials(1);
  EXPECT_EQ(fork.forked_from_trial(), 0);
  EXPECT_EQ(fork.forked_at_step(), 50);
  ASSERT_EQ(fork.path_size(), 2);
  EXPECT_EQ(fork.path(0), parent.path(0));
  EXPECT_NE(fork.path(1), parent.path(1));
  // Before the fork the two share their metrics; after it the fork's lr (0.05) shows.
  EXPECT_EQ(trials->metrics(1).metrics(49).values().at("score"),
            trials->metrics(0).metrics(49).values().at("score"));
  EXPECT_DOUBLE_EQ(trials->metrics(1).metrics(50).values().at("score"), 50 + 0.05);
  std::filesystem::remove(db);
}

TEST(EngineTest, StoppingTheStudyCancelsItsRunningStage) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(study.ok());
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  std::optional<v1::CoordinatorMessage> assign = channel->Next();
  ASSERT_TRUE(assign && assign->has_assign());
  ASSERT_TRUE(engine.StopStudy(study->id(), "enough").ok());
  std::optional<v1::CoordinatorMessage> cancel = channel->Next();
  ASSERT_TRUE(cancel && cancel->has_cancel());
  EXPECT_EQ(cancel->cancel().attempt_id(), assign->assign().attempt_id());
  EXPECT_EQ(engine.stats().attempts_cancelled, 1);
  EXPECT_FALSE(channel->Next());  // nothing else to run: no trial needs any stage
  // The worker's late report of the cancelled attempt is ignored.
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_attempt_id(assign->assign().attempt_id());
  ASSERT_TRUE(engine.OnWorkerMessage("w", finished).ok());
  EXPECT_EQ(engine.stats().stale_reports_ignored, 1);
  EXPECT_EQ(engine.GetStudy(study->id())->state(), v1::STUDY_STOPPED);
  std::filesystem::remove(db);
}

}  // namespace
}  // namespace hippo::coordinator
