// Which worker the engine gives what: only stages of a trainer kind the worker's hello lists
// (a study no connected worker can train says why it waits), and the attempts a worker's hello
// says it holds — kept when listed, taken back at once when not, also by a restarted engine.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "hippo/engine.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::SmallGrid;
using engine_test::TempDb;
using engine_test::Train;

v1::StudySpec CommandGrid() {
  v1::StudySpec spec = SmallGrid();
  spec.set_name("command-grid");
  spec.mutable_trainer()->set_kind("command");
  spec.mutable_trainer()->add_command("train.sh");
  return spec;
}

v1::WorkerHello HelloServing(const std::string& id, const std::vector<std::string>& kinds) {
  v1::WorkerHello hello;
  hello.set_worker_id(id);
  for (const std::string& kind : kinds) hello.add_trainers(kind);
  return hello;
}

// A hello that lists the attempts the worker holds (possibly none).
v1::WorkerHello HelloHolding(const std::string& id, const std::vector<int64_t>& attempts) {
  v1::WorkerHello hello = Hello(id);
  hello.mutable_held();  // present, even when empty
  for (int64_t attempt : attempts) hello.mutable_held()->add_attempt_ids(attempt);
  return hello;
}

std::vector<v1::CoordinatorMessage> Drain(RecordingChannel& channel) {
  std::vector<v1::CoordinatorMessage> messages;
  while (std::optional<v1::CoordinatorMessage> message = channel.Next()) {
    messages.push_back(*std::move(message));
  }
  return messages;
}

std::vector<v1::Assign> AssignsIn(const std::vector<v1::CoordinatorMessage>& messages) {
  std::vector<v1::Assign> assigns;
  for (const v1::CoordinatorMessage& message : messages) {
    if (message.has_assign()) assigns.push_back(message.assign());
  }
  return assigns;
}

class EngineWorkersTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    std::filesystem::remove(db_);
  }
  // (Re)opens the engine on the same database, as a restarted coordinator does.
  void Open() {
    engine_.reset();
    store_.reset();
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(db_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    EngineOptions options;
    options.lease_seconds = 600;  // nothing below may wait for a lease
    engine_ = std::make_unique<Engine>(store_.get(), options);
    ASSERT_TRUE(engine_->Recover().ok());
  }

  const std::string db_ = TempDb();
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineWorkersTest, CommandStagesNeverGoToASimOnlyWorkerAndTheStudySaysWhyItWaits) {
  absl::StatusOr<v1::Study> command = engine_->CreateStudy(CommandGrid(), false);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(engine_->GetStudy(command->id())->waiting(), "waiting for a worker: none is connected");

  // Named so that it comes first in the engine's walk over idle workers.
  auto sim_only = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloServing("a-sim", {"sim", "torch"}), sim_only).ok());
  EXPECT_TRUE(AssignsIn(Drain(*sim_only)).empty());
  const std::string waiting = engine_->GetStudy(command->id())->waiting();
  EXPECT_TRUE(absl::StrContains(waiting, "trainer kind 'command'")) << waiting;
  EXPECT_TRUE(absl::StrContains(waiting, "serve sim, torch")) << waiting;
  EXPECT_TRUE(absl::StrContains(waiting, "--trainers command --allow-dir")) << waiting;
  const std::vector<v1::WorkerInfo> workers = engine_->ListWorkers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(std::vector<std::string>(workers[0].trainers().begin(), workers[0].trainers().end()),
            (std::vector<std::string>{"sim", "torch"}));

  // A sim study alongside: the sim-only worker trains it, and only it.
  absl::StatusOr<v1::Study> sim = engine_->CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_EQ(sim->waiting(), "");
  for (int rounds = 0; rounds < 10; ++rounds) {
    const std::vector<v1::Assign> assigns = AssignsIn(Drain(*sim_only));
    if (assigns.empty()) break;
    for (const v1::Assign& assign : assigns) {
      EXPECT_EQ(assign.trainer().kind(), "sim");
      Train(*engine_, "a-sim", assign);
    }
  }
  EXPECT_EQ(engine_->GetStudy(sim->id())->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(engine_->GetStudy(command->id())->steps().executed_steps(), 0);

  // A worker serving command connects while the sim-only one is idle: it gets the stage.
  auto commander = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloServing("b-cmd", {"command"}), commander).ok());
  const std::vector<v1::Assign> assigns = AssignsIn(Drain(*commander));
  ASSERT_EQ(assigns.size(), 1u);
  EXPECT_EQ(assigns[0].trainer().kind(), "command");
  EXPECT_EQ(engine_->GetStudy(command->id())->waiting(), "");
  EXPECT_TRUE(AssignsIn(Drain(*sim_only)).empty());
}

TEST_F(EngineWorkersTest, AnAttemptTheHelloDoesNotListIsRequeuedAtOnce) {
  ASSERT_TRUE(engine_->CreateStudy(SmallGrid(), false).ok());
  auto before = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloHolding("w", {}), before).ok());
  const std::vector<v1::Assign> first = AssignsIn(Drain(*before));
  ASSERT_EQ(first.size(), 1u);
  engine_->Disconnect("w", 1);
  // The Assign never reached it (or the worker restarted): its hello holds nothing.
  auto after = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloHolding("w", {}), after).ok());
  const std::vector<v1::Assign> again = AssignsIn(Drain(*after));
  ASSERT_EQ(again.size(), 1u) << "the stage waited for its 600 s lease";
  EXPECT_EQ(again[0].stage_id(), first[0].stage_id());
  EXPECT_NE(again[0].attempt_id(), first[0].attempt_id());
  EXPECT_EQ(engine_->stats().attempts_not_held, 1);
  EXPECT_EQ(engine_->stats().leases_expired, 0);
}

TEST_F(EngineWorkersTest, AnAttemptTheHelloListsStaysTheWorkersAndUnknownOnesAreCancelled) {
  absl::StatusOr<v1::Study> study = engine_->CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(study.ok());
  auto before = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloHolding("w", {}), before).ok());
  const std::vector<v1::Assign> first = AssignsIn(Drain(*before));
  ASSERT_EQ(first.size(), 1u);
  engine_->Disconnect("w", 1);
  auto after = std::make_shared<RecordingChannel>();
  constexpr int64_t kUnknown = 999;
  ASSERT_TRUE(engine_->Connect(HelloHolding("w", {first[0].attempt_id(), kUnknown}), after).ok());
  const std::vector<v1::CoordinatorMessage> messages = Drain(*after);
  EXPECT_TRUE(AssignsIn(messages).empty());
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].cancel().attempt_id(), kUnknown);
  EXPECT_EQ(engine_->stats().attempts_not_held, 0);
  // Its reports still count: the shared stage is done, the two branches follow.
  Train(*engine_, "w", first[0]);
  EXPECT_EQ(AssignsIn(Drain(*after)).size(), 1u);
  EXPECT_EQ(engine_->GetStudy(study->id())->steps().executed_steps(), 50);
}

TEST_F(EngineWorkersTest, AHelloThatDoesNotSayLeavesAttemptsToTheirLeases) {
  ASSERT_TRUE(engine_->CreateStudy(SmallGrid(), false).ok());
  auto before = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(Hello("w"), before).ok());
  ASSERT_EQ(AssignsIn(Drain(*before)).size(), 1u);
  engine_->Disconnect("w", 1);
  auto after = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(Hello("w"), after).ok());
  EXPECT_TRUE(Drain(*after).empty());
  engine_->ExpireLeases(Clock::now() + std::chrono::minutes(11));
  EXPECT_EQ(AssignsIn(Drain(*after)).size(), 1u);
  EXPECT_EQ(engine_->stats().leases_expired, 1);
}

TEST_F(EngineWorkersTest, ARestartedEngineSettlesRecoveredAttemptsByTheHellos) {
  absl::StatusOr<v1::Study> study = engine_->CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(study.ok());
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloHolding("keeps", {}), channel).ok());
  const std::vector<v1::Assign> shared = AssignsIn(Drain(*channel));
  ASSERT_EQ(shared.size(), 1u);
  Train(*engine_, "keeps", shared[0]);
  std::vector<v1::Assign> branches = AssignsIn(Drain(*channel));
  ASSERT_EQ(branches.size(), 1u);
  auto other = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloHolding("loses", {}), other).ok());
  const std::vector<v1::Assign> lost = AssignsIn(Drain(*other));
  ASSERT_EQ(lost.size(), 1u);

  Open();  // the coordinator restarts; both branches were running
  // "keeps" still trains its branch; "loses" restarted and holds nothing.
  auto keeps = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloHolding("keeps", {branches[0].attempt_id()}), keeps).ok());
  EXPECT_TRUE(Drain(*keeps).empty());
  auto loses = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(HelloHolding("loses", {}), loses).ok());
  const std::vector<v1::Assign> again = AssignsIn(Drain(*loses));
  ASSERT_EQ(again.size(), 1u) << "the restarted engine waited for the lost attempt's lease";
  EXPECT_EQ(again[0].stage_id(), lost[0].stage_id());
  EXPECT_EQ(engine_->stats().attempts_not_held, 1);
  Train(*engine_, "keeps", branches[0]);
  Train(*engine_, "loses", again[0]);
  EXPECT_EQ(engine_->GetStudy(study->id())->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(engine_->GetStudy(study->id())->steps().executed_steps(), 150);
}

TEST_F(EngineWorkersTest, TheWorkerViewListsItsForkCacheNewestFirstAndBounded) {
  // A hello with 100 cached states, then one evicted: the view counts 99 and lists the 64
  // highest stage ids (the most recent stages), highest first.
  v1::WorkerHello hello = Hello("cache");
  for (int64_t stage = 1; stage <= 100; ++stage) {
    v1::CachedState* state = hello.add_cached_states();
    state->set_stage_id(stage);
    state->set_step(stage * 10);
  }
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->Connect(hello, channel).ok());
  v1::WorkerMessage evicted;
  v1::CachedState* gone = evicted.mutable_evicted()->add_states();
  gone->set_stage_id(100);
  gone->set_step(1000);
  ASSERT_TRUE(engine_->OnWorkerMessage("cache", evicted).ok());
  const std::vector<v1::WorkerInfo> workers = engine_->ListWorkers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].cached_states(), 99);
  ASSERT_EQ(workers[0].fork_cache_size(), 64);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(workers[0].fork_cache(i).stage_id(), 99 - i);
    EXPECT_EQ(workers[0].fork_cache(i).step(), (99 - i) * 10);
  }
}

}  // namespace
}  // namespace hippo::coordinator
