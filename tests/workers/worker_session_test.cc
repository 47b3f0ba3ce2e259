// Worker sessions against an in-test fake coordinator that serves WorkerService on a real
// loopback port: hello first, per-step progress, checkpoints, fork-cache reuse, CheckpointAt,
// Cancel, Drain, reconnection after the coordinator restarts (the hello listing the attempts
// held), the trainer kinds served, and the cleaning of orphan temporary checkpoints at start.
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "tests/support/temp_dir.h"
#include "workers/checkpoint_store.h"
#include "workers/crc32c.h"
#include "workers/sim_trainer.h"
#include "workers/worker.h"

namespace hippo::workers {
namespace {

namespace fs = std::filesystem;
using hippo::v1::CoordinatorMessage;
using hippo::v1::WorkerMessage;

constexpr absl::Duration kWait = absl::Seconds(8);

// Records everything workers send; sends what the test tells it to on the latest session.
class FakeCoordinator final : public hippo::v1::WorkerService::Service {
 public:
  explicit FakeCoordinator(std::string required_token = "")
      : required_token_(std::move(required_token)) {}

  grpc::Status Session(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<CoordinatorMessage, WorkerMessage>* stream) override {
    std::string token;
    auto it = context->client_metadata().find("x-hippo-token");
    if (it != context->client_metadata().end()) token.assign(it->second.data(), it->second.size());
    {
      absl::MutexLock lock(&mu_);
      tokens_.push_back(token);
    }
    if (!required_token_.empty() && token != required_token_) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
    }
    {
      absl::MutexLock lock(&stream_mu_);
      stream_ = stream;
    }
    WorkerMessage message;
    while (stream->Read(&message)) {
      absl::MutexLock lock(&mu_);
      // Packed reports are kept one by one, in order, as the coordinator handles them.
      if (message.has_reports()) {
        packs_.push_back(message.reports());
        for (const WorkerMessage& report : message.reports().messages()) {
          received_.push_back(report);
        }
      } else {
        received_.push_back(message);
      }
    }
    absl::MutexLock lock(&stream_mu_);
    stream_ = nullptr;
    return grpc::Status::OK;
  }

  bool Send(const CoordinatorMessage& message) {
    absl::MutexLock lock(&stream_mu_);
    return stream_ != nullptr && stream_->Write(message);
  }

  // Waits until `done(received)` holds; false on timeout.
  bool WaitFor(const std::function<bool(const std::vector<WorkerMessage>&)>& done,
               absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto condition = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done(received_); };
    return mu_.AwaitWithTimeout(absl::Condition(&condition), timeout);
  }

  std::vector<WorkerMessage> Received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

  // The Reports messages received, as sent.
  std::vector<hippo::v1::Reports> Packs() {
    absl::MutexLock lock(&mu_);
    return packs_;
  }

  std::vector<std::string> Tokens() {
    absl::MutexLock lock(&mu_);
    return tokens_;
  }

 private:
  const std::string required_token_;
  absl::Mutex mu_;
  std::vector<WorkerMessage> received_ ABSL_GUARDED_BY(mu_);
  std::vector<hippo::v1::Reports> packs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> tokens_ ABSL_GUARDED_BY(mu_);
  absl::Mutex stream_mu_;
  grpc::ServerReaderWriter<CoordinatorMessage, WorkerMessage>* stream_ ABSL_GUARDED_BY(stream_mu_) =
      nullptr;
};

// A fake coordinator served on 127.0.0.1; port 0 picks a free port.
class FakeServer {
 public:
  FakeServer(int port, std::string required_token = "") : coordinator_(std::move(required_token)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&coordinator_);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { Shutdown(); }

  void Shutdown() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now());  // cancels open sessions at once
    server_->Wait();
    server_.reset();
  }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  FakeCoordinator& coordinator() { return coordinator_; }

 private:
  FakeCoordinator coordinator_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Message predicates and selections.
bool IsFinished(const WorkerMessage& m, int64_t attempt) {
  return m.has_finished() && m.finished().attempt_id() == attempt;
}
bool HasFinished(const std::vector<WorkerMessage>& messages, int64_t attempt) {
  return std::any_of(messages.begin(), messages.end(),
                     [attempt](const WorkerMessage& m) { return IsFinished(m, attempt); });
}
int CountHellos(const std::vector<WorkerMessage>& messages) {
  return static_cast<int>(std::count_if(messages.begin(), messages.end(),
                                        [](const WorkerMessage& m) { return m.has_hello(); }));
}
std::vector<WorkerMessage> ForAttempt(const std::vector<WorkerMessage>& messages, int64_t attempt) {
  std::vector<WorkerMessage> selected;
  for (const WorkerMessage& m : messages) {
    if ((m.has_progress() && m.progress().attempt_id() == attempt) ||
        (m.has_checkpoint() && m.checkpoint().attempt_id() == attempt) || IsFinished(m, attempt)) {
      selected.push_back(m);
    }
  }
  return selected;
}
// The attempt's StageFinished (a copy), or std::nullopt.
std::optional<hippo::v1::StageFinished> FinishedOf(const std::vector<WorkerMessage>& messages,
                                                   int64_t attempt) {
  for (const WorkerMessage& m : messages) {
    if (IsFinished(m, attempt)) return m.finished();
  }
  return std::nullopt;
}

hippo::v1::Segment ConstantSegment(int64_t start, int64_t end, double value) {
  hippo::v1::Segment segment;
  segment.set_start(start);
  segment.set_end(end);
  segment.set_constant(value);
  return segment;
}

// An Assign of a sim stage whose lr is 0.1 until step 50 and 0.01 after, momentum 0.9.
CoordinatorMessage AssignMessage(int64_t attempt, int64_t stage, int64_t start, int64_t end,
                                 const std::string& config = "{}") {
  CoordinatorMessage message;
  hippo::v1::Assign* assign = message.mutable_assign();
  assign->set_attempt_id(attempt);
  assign->set_stage_id(stage);
  assign->set_start_step(start);
  assign->set_end_step(end);
  hippo::v1::ParameterSegments* lr = assign->add_parameters();
  lr->set_name("lr");
  if (start < 50) *lr->add_segments() = ConstantSegment(start, std::min<int64_t>(end, 50), 0.1);
  if (end > 50) *lr->add_segments() = ConstantSegment(std::max<int64_t>(start, 50), end, 0.01);
  (*assign->mutable_static_parameters())["momentum"].set_number_value(0.9);
  assign->mutable_trainer()->set_kind("sim");
  assign->mutable_trainer()->set_seed(3);
  if (config != "{}") {
    // Only numbers appear in the test configs: {"cost_per_step": x}.
    const double cost = std::stod(config.substr(config.find(':') + 1));
    (*assign->mutable_trainer()->mutable_config()->mutable_fields())["cost_per_step"]
        .set_number_value(cost);
  }
  assign->add_checkpoint_steps(end);
  return message;
}

CoordinatorMessage ChildAssign(int64_t attempt, int64_t stage, int64_t parent_stage,
                               const std::string& parent_uri, int64_t start, int64_t end) {
  CoordinatorMessage message = AssignMessage(attempt, stage, start, end);
  message.mutable_assign()->set_parent_stage_id(parent_stage);
  message.mutable_assign()->set_parent_state_uri(parent_uri);
  message.mutable_assign()->set_parent_state_step(start);
  return message;
}

class WorkerSessionTest : public ::testing::Test {
 protected:
  void TearDown() override { StopWorker(); }

  WorkerOptions Options(const std::string& address) {
    WorkerOptions options;
    options.coordinator = address;
    options.worker_id = "test-worker";
    options.checkpoint_dir = dir_.string();
    options.cache_bytes = 1 << 20;
    options.heartbeat_ms = 100;
    options.backoff_initial_ms = 20;
    options.backoff_max_ms = 200;
    options.log = [](std::string_view) {};
    return options;
  }

  void StartWorker(WorkerOptions options) {
    worker_ = std::make_unique<Worker>(std::move(options));
    thread_ = std::thread([this] {
      absl::Status status = worker_->Run();
      absl::MutexLock lock(&mu_);
      run_status_ = status;
    });
  }

  // Waits for Run() to return on its own.
  std::optional<absl::Status> WaitForRunToReturn(absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto returned = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return run_status_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&returned), timeout);
    return run_status_;
  }

  void StopWorker() {
    if (worker_ == nullptr) return;
    worker_->Stop();
    thread_.join();
    worker_.reset();
  }

  std::string PathOf(const std::string& uri) { return uri.substr(std::string("file://").size()); }

  const test_support::TempDir scratch_{"hippo-worker-test"};
  // The workers' checkpoint directory (they create it).
  const fs::path dir_ = scratch_.path() / "checkpoints";
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
  absl::Mutex mu_;
  std::optional<absl::Status> run_status_ ABSL_GUARDED_BY(mu_);
};

// The metrics of training [0, end) straight with the same schedule, computed locally.
std::vector<Metrics> LocalCurve(int64_t end) {
  hippo::v1::Assign assign = AssignMessage(0, 0, 0, end).assign();
  absl::StatusOr<Assignment> assignment = AssignmentFromProto(assign);
  EXPECT_TRUE(assignment.ok());
  SimTrainer trainer;
  auto state = trainer.NewState(assignment->task);
  std::vector<Metrics> curve;
  StageControl control;
  TrainCallbacks callbacks;
  callbacks.progress = [&curve](Step, const Metrics& metrics) { curve.push_back(metrics); };
  EXPECT_TRUE(trainer.Train(assignment->task, **state, control, callbacks).ok());
  return curve;
}

TEST_F(WorkerSessionTest, SaysHelloFirstThenStreamsEveryStepAndPacksTheStageEnd) {
  FakeServer server(0);
  WorkerOptions options = Options(server.address());
  options.token = "secret";
  StartWorker(options);
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return !m.empty(); }));

  const std::vector<WorkerMessage> first = coordinator.Received();
  ASSERT_TRUE(first.front().has_hello()) << first.front().DebugString();
  const hippo::v1::WorkerHello& hello = first.front().hello();
  EXPECT_EQ(hello.worker_id(), "test-worker");
  EXPECT_FALSE(hello.host().empty());
  ASSERT_EQ(hello.devices_size(), 1);
  EXPECT_EQ(hello.devices(0).name(), "cpu");
  EXPECT_GT(hello.memory_bytes(), 0);
  ASSERT_EQ(hello.trainers_size(), 1);
  EXPECT_EQ(hello.trainers(0), "sim");
  EXPECT_EQ(hello.cached_states_size(), 0);
  ASSERT_TRUE(hello.has_held()) << "a worker says which attempts it holds, none at first";
  EXPECT_EQ(hello.held().attempt_ids_size(), 0);
  EXPECT_EQ(coordinator.Tokens(), std::vector<std::string>{"secret"});

  ASSERT_TRUE(coordinator.Send(AssignMessage(1, 11, 0, 20)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 1); }));

  const std::vector<WorkerMessage> reports = ForAttempt(coordinator.Received(), 1);
  const std::vector<Metrics> expected = LocalCurve(20);
  ASSERT_EQ(reports.size(), 22u);  // 20 progress, 1 checkpoint, 1 finished
  for (int step = 0; step < 20; ++step) {
    ASSERT_TRUE(reports[step].has_progress()) << reports[step].DebugString();
    EXPECT_EQ(reports[step].progress().step(), step);
    for (const auto& [name, value] : expected[step]) {
      EXPECT_EQ(std::bit_cast<uint64_t>(reports[step].progress().metrics().at(name)),
                std::bit_cast<uint64_t>(value))
          << name << " at step " << step;
    }
  }
  ASSERT_TRUE(reports[20].has_checkpoint());
  const hippo::v1::CheckpointWritten& checkpoint = reports[20].checkpoint();
  EXPECT_EQ(checkpoint.stage_id(), 11);
  EXPECT_EQ(checkpoint.step(), 20);
  EXPECT_EQ(checkpoint.size_bytes(), static_cast<int64_t>(fs::file_size(PathOf(checkpoint.uri()))));
  auto store = CheckpointStore::Open(dir_.string());
  ASSERT_TRUE(store.ok());
  absl::StatusOr<std::string> bytes = store->Read(checkpoint.uri());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(checkpoint.checksum(), FormatChecksum(Crc32c(*bytes)));
  SimTrainer trainer;
  auto state = trainer.Deserialize(StageTask{}, *bytes);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)->step(), 20);

  ASSERT_TRUE(reports[21].has_finished());
  EXPECT_TRUE(reports[21].finished().ok()) << reports[21].finished().error();
  EXPECT_GE(reports[21].finished().seconds(), 0.0);

  // The stage's end came as one message: the last step's progress, the end checkpoint, done.
  const std::vector<hippo::v1::Reports> packs = coordinator.Packs();
  ASSERT_EQ(packs.size(), 1u);
  ASSERT_EQ(packs[0].messages_size(), 3);
  EXPECT_EQ(packs[0].messages(0).progress().step(), 19);
  EXPECT_EQ(packs[0].messages(1).checkpoint().step(), 20);
  EXPECT_TRUE(packs[0].messages(2).has_finished());

  // Heartbeats keep coming and list nothing once the stage is done.
  const size_t seen = coordinator.Received().size();
  ASSERT_TRUE(coordinator.WaitFor([seen](auto& m) {
    return m.size() > seen && m.back().has_heartbeat() &&
           m.back().heartbeat().attempt_ids().empty();
  }));
}

TEST_F(WorkerSessionTest, ChildWhoseParentIsInTheForkCacheRunsWithoutReadingTheCheckpoint) {
  FakeServer server(0);
  StartWorker(Options(server.address()));
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return CountHellos(m) == 1; }));

  ASSERT_TRUE(coordinator.Send(AssignMessage(1, 11, 0, 30)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 1); }));
  std::string parent_uri;
  for (const WorkerMessage& m : ForAttempt(coordinator.Received(), 1)) {
    if (m.has_checkpoint()) parent_uri = m.checkpoint().uri();
  }
  ASSERT_FALSE(parent_uri.empty());
  ASSERT_TRUE(fs::remove(PathOf(parent_uri)));

  ASSERT_TRUE(coordinator.Send(ChildAssign(2, 12, 11, parent_uri, 30, 60)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 2); }));
  const std::vector<WorkerMessage> received = coordinator.Received();
  std::optional<hippo::v1::StageFinished> finished = FinishedOf(received, 2);
  ASSERT_TRUE(finished.has_value());
  EXPECT_TRUE(finished->ok()) << finished->error();
  EXPECT_EQ(worker_->stats().states_from_memory, 1);
  EXPECT_EQ(worker_->stats().states_from_checkpoint, 0);

  // Root then child through the fork cache = the same trial trained straight, bit for bit.
  std::vector<Metrics> staged;
  for (int64_t attempt : {1, 2}) {
    for (const WorkerMessage& m : ForAttempt(received, attempt)) {
      if (!m.has_progress()) continue;
      staged.emplace_back(m.progress().metrics().begin(), m.progress().metrics().end());
    }
  }
  const std::vector<Metrics> straight = LocalCurve(60);
  ASSERT_EQ(staged.size(), straight.size());
  for (size_t i = 0; i < staged.size(); ++i) {
    for (const auto& [name, value] : straight[i]) {
      EXPECT_EQ(std::bit_cast<uint64_t>(staged[i].at(name)), std::bit_cast<uint64_t>(value))
          << name << " at step " << i;
    }
  }
}

TEST_F(WorkerSessionTest, ChildWithoutCachedParentReadsTheCheckpointAndRefusesACorruptOne) {
  FakeServer server(0);
  WorkerOptions options = Options(server.address());
  options.cache_bytes = 0;  // nothing stays in memory
  StartWorker(options);
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return CountHellos(m) == 1; }));

  ASSERT_TRUE(coordinator.Send(AssignMessage(1, 11, 0, 10)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 1); }));
  std::string parent_uri;
  for (const WorkerMessage& m : ForAttempt(coordinator.Received(), 1)) {
    if (m.has_checkpoint()) parent_uri = m.checkpoint().uri();
  }
  ASSERT_TRUE(coordinator.Send(ChildAssign(2, 12, 11, parent_uri, 10, 20)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 2); }));
  EXPECT_TRUE(FinishedOf(coordinator.Received(), 2)->ok());
  EXPECT_EQ(worker_->stats().states_from_checkpoint, 1);

  fs::resize_file(PathOf(parent_uri), fs::file_size(PathOf(parent_uri)) - 1);
  ASSERT_TRUE(coordinator.Send(ChildAssign(3, 13, 11, parent_uri, 10, 20)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 3); }));
  std::optional<hippo::v1::StageFinished> finished = FinishedOf(coordinator.Received(), 3);
  EXPECT_FALSE(finished->ok());
  EXPECT_TRUE(absl::StrContains(finished->error(), "DATA_LOSS")) << finished->error();

  // A parent uri outside the checkpoint directory is refused, and reported as a state this
  // worker cannot read (lost to it), so that the coordinator recomputes it where it can.
  ASSERT_TRUE(coordinator.Send(ChildAssign(4, 14, 11, "file:///etc/passwd", 10, 20)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 4); }));
  finished = FinishedOf(coordinator.Received(), 4);
  EXPECT_FALSE(finished->ok());
  EXPECT_TRUE(absl::StrContains(finished->error(), "PERMISSION_DENIED")) << finished->error();
  EXPECT_TRUE(finished->parent_state_lost());
}

TEST_F(WorkerSessionTest, CheckpointAtMidStageProducesThatCheckpoint) {
  FakeServer server(0);
  StartWorker(Options(server.address()));
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return CountHellos(m) == 1; }));

  ASSERT_TRUE(coordinator.Send(AssignMessage(1, 11, 0, 200, R"({"cost_per_step": 0.005})")));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) {
    return std::any_of(m.begin(), m.end(), [](const WorkerMessage& w) { return w.has_progress(); });
  }));
  int64_t latest = 0;
  for (const WorkerMessage& m : coordinator.Received()) {
    if (m.has_progress()) latest = std::max(latest, m.progress().step());
  }
  const int64_t split = latest + 40;
  ASSERT_LT(split, 200);
  CoordinatorMessage checkpoint_at;
  checkpoint_at.mutable_checkpoint_at()->set_attempt_id(1);
  checkpoint_at.mutable_checkpoint_at()->set_step(split);
  ASSERT_TRUE(coordinator.Send(checkpoint_at));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 1); }));

  std::vector<int64_t> checkpoint_steps;
  std::string split_uri;
  for (const WorkerMessage& m : ForAttempt(coordinator.Received(), 1)) {
    if (!m.has_checkpoint()) continue;
    checkpoint_steps.push_back(m.checkpoint().step());
    if (m.checkpoint().step() == split) split_uri = m.checkpoint().uri();
  }
  EXPECT_EQ(checkpoint_steps, (std::vector<int64_t>{split, 200}));
  auto store = CheckpointStore::Open(dir_.string());
  ASSERT_TRUE(store.ok());
  absl::StatusOr<CheckpointContents> contents = store->ReadCheckpoint(split_uri);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->step, split);
  SimTrainer trainer;
  EXPECT_EQ((*trainer.Deserialize(StageTask{}, contents->payload))->step(), split);
  EXPECT_TRUE(FinishedOf(coordinator.Received(), 1)->ok());

  // The split point stays in the fork cache: a sibling branching there starts from memory.
  ASSERT_TRUE(coordinator.Send(ChildAssign(2, 12, 11, split_uri, split, split + 5)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 2); }));
  EXPECT_TRUE(FinishedOf(coordinator.Received(), 2)->ok());
  EXPECT_EQ(worker_->stats().states_from_memory, 1);
}

TEST_F(WorkerSessionTest, CancelStopsTheStagePromptly) {
  FakeServer server(0);
  StartWorker(Options(server.address()));
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return CountHellos(m) == 1; }));

  // 10 000 steps of 10 ms: 100 s if nothing stopped it.
  ASSERT_TRUE(coordinator.Send(AssignMessage(1, 11, 0, 10000, R"({"cost_per_step": 0.01})")));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) {
    return std::any_of(m.begin(), m.end(), [](const WorkerMessage& w) {
      return w.has_heartbeat() && w.heartbeat().attempt_ids_size() == 1;
    });
  }));
  const absl::Time cancelled = absl::Now();
  CoordinatorMessage cancel;
  cancel.mutable_cancel()->set_attempt_id(1);
  ASSERT_TRUE(coordinator.Send(cancel));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 1); }, absl::Seconds(2)));
  EXPECT_LT(absl::Now() - cancelled, absl::Seconds(1));
  std::optional<hippo::v1::StageFinished> finished = FinishedOf(coordinator.Received(), 1);
  EXPECT_FALSE(finished->ok());
  EXPECT_TRUE(absl::StrContains(finished->error(), "cancelled"));

  // Nothing of the attempt after its StageFinished; the next heartbeats list no attempt.
  absl::SleepFor(absl::Milliseconds(250));
  const std::vector<WorkerMessage> reports = ForAttempt(coordinator.Received(), 1);
  EXPECT_TRUE(reports.back().has_finished());
  EXPECT_LT(reports.size(), 200u);
  const std::vector<WorkerMessage> all = coordinator.Received();
  ASSERT_TRUE(all.back().has_heartbeat());
  EXPECT_EQ(all.back().heartbeat().attempt_ids_size(), 0);

  // The worker is free again.
  ASSERT_TRUE(coordinator.Send(AssignMessage(2, 12, 0, 5)));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 2); }));
  EXPECT_TRUE(FinishedOf(coordinator.Received(), 2)->ok());
}

TEST_F(WorkerSessionTest, ReconnectsAndSaysHelloAgainAfterTheCoordinatorRestarts) {
  auto first = std::make_unique<FakeServer>(0);
  const int port = first->port();
  ASSERT_GT(port, 0);
  StartWorker(Options(first->address()));
  ASSERT_TRUE(first->coordinator().WaitFor([](auto& m) { return CountHellos(m) == 1; }));
  ASSERT_TRUE(first->coordinator().Send(AssignMessage(1, 11, 0, 5)));
  ASSERT_TRUE(first->coordinator().WaitFor([](auto& m) { return HasFinished(m, 1); }));

  first->Shutdown();
  absl::SleepFor(absl::Milliseconds(300));  // the worker retries against a closed port
  FakeServer second(port);
  ASSERT_EQ(second.port(), port);
  ASSERT_TRUE(second.coordinator().WaitFor([](auto& m) { return CountHellos(m) >= 1; }));

  const std::vector<WorkerMessage> received = second.coordinator().Received();
  ASSERT_TRUE(received.front().has_hello());
  const hippo::v1::WorkerHello& hello = received.front().hello();
  EXPECT_EQ(hello.worker_id(), "test-worker");
  ASSERT_EQ(hello.cached_states_size(), 1);
  EXPECT_EQ(hello.cached_states(0).stage_id(), 11);
  EXPECT_EQ(hello.cached_states(0).step(), 5);
  // Counted once the hello is written, which may be just after the server read it.
  const absl::Time deadline = absl::Now() + kWait;
  while (worker_->stats().sessions_opened < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(worker_->stats().sessions_opened, 2);

  // And it serves the new session.
  ASSERT_TRUE(second.coordinator().Send(AssignMessage(2, 12, 0, 5)));
  ASSERT_TRUE(second.coordinator().WaitFor([](auto& m) { return HasFinished(m, 2); }));
}

TEST_F(WorkerSessionTest, StageRunningAcrossADisconnectIsReportedAfterReconnecting) {
  auto first = std::make_unique<FakeServer>(0);
  const int port = first->port();
  StartWorker(Options(first->address()));
  ASSERT_TRUE(first->coordinator().WaitFor([](auto& m) { return CountHellos(m) == 1; }));
  ASSERT_TRUE(
      first->coordinator().Send(AssignMessage(1, 11, 0, 100, R"({"cost_per_step": 0.01})")));
  ASSERT_TRUE(first->coordinator().WaitFor([](auto& m) {
    return std::count_if(m.begin(), m.end(), [](auto& w) { return w.has_progress(); }) >= 5;
  }));
  first->Shutdown();
  absl::SleepFor(absl::Milliseconds(300));
  FakeServer second(port);
  ASSERT_TRUE(second.coordinator().WaitFor([](auto& m) { return HasFinished(m, 1); }));

  const std::vector<WorkerMessage> after = second.coordinator().Received();
  ASSERT_TRUE(after.front().has_hello());
  // The hello says the stage is still the worker's, so the coordinator need not wait for its
  // lease to know.
  ASSERT_EQ(after.front().hello().held().attempt_ids_size(), 1);
  EXPECT_EQ(after.front().hello().held().attempt_ids(0), 1);
  std::set<int64_t> steps;
  for (const WorkerMessage& m : first->coordinator().Received()) {
    if (m.has_progress()) steps.insert(m.progress().step());
  }
  int64_t previous = -1;
  for (const WorkerMessage& m : ForAttempt(after, 1)) {
    if (!m.has_progress()) continue;
    EXPECT_GT(m.progress().step(), previous) << "re-sent reports keep their order";
    previous = m.progress().step();
    steps.insert(previous);
  }
  EXPECT_EQ(steps.size(), 100u) << "every step reached one of the two sessions";
  EXPECT_TRUE(FinishedOf(after, 1)->ok());
}

TEST_F(WorkerSessionTest, DrainFinishesTheStageRefusesNewOnesAndEndsRun) {
  FakeServer server(0);
  StartWorker(Options(server.address()));
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return CountHellos(m) == 1; }));
  ASSERT_TRUE(coordinator.Send(AssignMessage(1, 11, 0, 40, R"({"cost_per_step": 0.005})")));
  CoordinatorMessage drain;
  drain.mutable_drain();
  ASSERT_TRUE(coordinator.Send(drain));
  ASSERT_TRUE(coordinator.Send(AssignMessage(2, 12, 0, 5)));

  std::optional<absl::Status> status = WaitForRunToReturn();
  ASSERT_TRUE(status.has_value()) << "Run() did not return after the drain";
  EXPECT_TRUE(status->ok()) << *status;
  const std::vector<WorkerMessage> received = coordinator.Received();
  ASSERT_TRUE(FinishedOf(received, 1).has_value());
  EXPECT_TRUE(FinishedOf(received, 1)->ok());
  ASSERT_TRUE(FinishedOf(received, 2).has_value());
  EXPECT_FALSE(FinishedOf(received, 2)->ok());
  EXPECT_TRUE(absl::StrContains(FinishedOf(received, 2)->error(), "draining"));
}

TEST_F(WorkerSessionTest, InvalidAssignAndUnknownTrainerFailWithoutTraining) {
  FakeServer server(0);
  StartWorker(Options(server.address()));
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return CountHellos(m) == 1; }));

  CoordinatorMessage torch = AssignMessage(1, 11, 0, 5);
  torch.mutable_assign()->mutable_trainer()->set_kind("torch");
  ASSERT_TRUE(coordinator.Send(torch));
  CoordinatorMessage gap = AssignMessage(2, 12, 0, 5);
  gap.mutable_assign()->mutable_parameters(0)->mutable_segments(0)->set_end(3);
  ASSERT_TRUE(coordinator.Send(gap));
  CoordinatorMessage orphan = AssignMessage(3, 13, 10, 15);
  ASSERT_TRUE(coordinator.Send(orphan));
  ASSERT_TRUE(coordinator.WaitFor(
      [](auto& m) { return HasFinished(m, 1) && HasFinished(m, 2) && HasFinished(m, 3); }));

  const std::vector<WorkerMessage> received = coordinator.Received();
  EXPECT_TRUE(absl::StrContains(FinishedOf(received, 1)->error(), "torch"));
  EXPECT_TRUE(absl::StrContains(FinishedOf(received, 2)->error(), "lr"));
  EXPECT_TRUE(absl::StrContains(FinishedOf(received, 3)->error(), "no parent state"));
  for (int64_t attempt : {1, 2, 3}) {
    EXPECT_FALSE(FinishedOf(received, attempt)->ok());
    EXPECT_EQ(ForAttempt(received, attempt).size(), 1u) << "no progress for attempt " << attempt;
  }
}

TEST_F(WorkerSessionTest, ServesOnlyItsTrainerKindsAndCommandOnlyWithAllowedDirectories) {
  FakeServer server(0);
  StartWorker(Options(server.address()));  // sim only
  FakeCoordinator& coordinator = server.coordinator();
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return CountHellos(m) == 1; }));
  CoordinatorMessage command = AssignMessage(1, 11, 0, 5);
  command.mutable_assign()->mutable_trainer()->set_kind("command");
  command.mutable_assign()->mutable_trainer()->add_command("/bin/sh");
  ASSERT_TRUE(coordinator.Send(command));
  ASSERT_TRUE(coordinator.WaitFor([](auto& m) { return HasFinished(m, 1); }));
  const std::vector<WorkerMessage> received = coordinator.Received();
  EXPECT_FALSE(FinishedOf(received, 1)->ok());
  EXPECT_TRUE(absl::StrContains(FinishedOf(received, 1)->error(), "no trainer of kind 'command'"))
      << FinishedOf(received, 1)->error();
  StopWorker();

  // Serving command needs a directory to run programs from: refused before connecting.
  WorkerOptions options = Options(server.address());
  options.trainers = {"sim", "command"};
  Worker refused(options);
  const absl::Status status = refused.Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "--allow-dir")) << status;
  options.allow_dirs = {(scratch_.path() / "no-such-dir").string()};
  Worker missing(options);
  EXPECT_EQ(missing.Run().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerSessionTest, StartingRemovesTemporaryCheckpointsOfDeadWritersOnly) {
  absl::StatusOr<CheckpointStore> store = CheckpointStore::Open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<CheckpointInfo> finished = store->Write(3, 4, "a finished checkpoint");
  ASSERT_TRUE(finished.ok()) << finished.status();
  // A writer that died mid-write: a process of this host that no longer exists.
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  const fs::path orphan = dir_ / absl::StrCat(".stage-3-step-8.ckpt.tmp-", host, "-", dead, "-0");
  // A writer still alive (this test's parent), and one on another host: possibly mid-write.
  const fs::path live =
      dir_ / absl::StrCat(".stage-3-step-9.ckpt.tmp-", host, "-", getppid(), "-1");
  const fs::path elsewhere = dir_ / ".stage-3-step-9.ckpt.tmp-other-host.example-1-2";
  for (const fs::path& path : {orphan, live, elsewhere}) std::ofstream(path) << "partial";

  FakeServer server(0);
  StartWorker(Options(server.address()));
  ASSERT_TRUE(server.coordinator().WaitFor([](auto& m) { return CountHellos(m) == 1; }));
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(elsewhere));
  absl::StatusOr<std::string> kept = store->Read(finished->uri);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, "a finished checkpoint");
}

TEST_F(WorkerSessionTest, RejectedTokenEndsRunWithUnauthenticated) {
  FakeServer server(0, /*required_token=*/"right");
  WorkerOptions options = Options(server.address());
  options.token = "wrong";
  StartWorker(options);
  std::optional<absl::Status> status = WaitForRunToReturn();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(absl::IsUnauthenticated(*status)) << *status;
}

TEST_F(WorkerSessionTest, StopEndsRunWhileTheCoordinatorIsUnreachable) {
  FakeServer server(0);
  const std::string address = server.address();
  server.Shutdown();
  StartWorker(Options(address));
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time stopping = absl::Now();
  worker_->Stop();
  std::optional<absl::Status> status = WaitForRunToReturn(absl::Seconds(2));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->ok()) << *status;
  EXPECT_LT(absl::Now() - stopping, absl::Seconds(1));
}

}  // namespace
}  // namespace hippo::workers
