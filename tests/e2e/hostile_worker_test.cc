// Hostile input from the worker side: a real `hippo server` and a worker stream driven by hand
// over loopback gRPC, sending what no well-behaved worker sends (docs/security.md, "Bounded
// inputs"). A hello out of bounds is refused before anything is stored; a report of no attempt
// of the worker's changes nothing (the database's SHA-256 is compared); a report out of bounds
// about the worker's own attempt stores nothing of itself and fails that attempt, naming the
// field; a message over the server's receive limit ends only its own stream.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/support/db_digest.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using test_support::DatabaseSha256;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string Bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

// Occurrences of `text` in `haystack`.
int Count(const std::string& haystack, const std::string& text) {
  int count = 0;
  for (size_t at = haystack.find(text); at != std::string::npos; at = haystack.find(text, at + 1)) {
    ++count;
  }
  return count;
}

// The metric values stored for the trials of a listing.
int StoredMetrics(const v1::ListTrialsResponse& trials) {
  int count = 0;
  for (const v1::TrialMetrics& trial : trials.metrics()) count += trial.metrics_size();
  return count;
}

v1::WorkerHello Hello(const std::string& worker_id) {
  v1::WorkerHello hello;
  hello.set_worker_id(worker_id);
  hello.set_host("localhost");
  hello.add_trainers("sim");
  return hello;
}

// One WorkerService stream, driven by hand: what a worker sends, written by the test.
class RawWorker {
 public:
  RawWorker(const std::string& address, const v1::WorkerHello& hello)
      : stub_(v1::WorkerService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    stream_ = stub_->Session(&context_);
    v1::WorkerMessage message;
    *message.mutable_hello() = hello;
    stream_->Write(message);
  }

  bool Send(const v1::WorkerMessage& message) { return stream_->Write(message); }

  // The next message of the coordinator of the wanted kind (others are skipped); nullopt when
  // the stream ended.
  std::optional<v1::CoordinatorMessage> Next(v1::CoordinatorMessage::MessageCase wanted) {
    v1::CoordinatorMessage message;
    while (stream_->Read(&message)) {
      if (message.message_case() == wanted) return message;
    }
    return std::nullopt;
  }

  // Reads until the coordinator ends the stream; its status.
  grpc::Status Finish() {
    v1::CoordinatorMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    return stream_->Finish();
  }

 private:
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>> stream_;
};

v1::WorkerMessage ProgressOf(int64_t attempt, int64_t step,
                             const std::map<std::string, double>& metrics) {
  v1::WorkerMessage message;
  message.mutable_progress()->set_attempt_id(attempt);
  message.mutable_progress()->set_step(step);
  for (const auto& [name, value] : metrics) {
    (*message.mutable_progress()->mutable_metrics())[name] = value;
  }
  return message;
}

v1::WorkerMessage CheckpointOf(const v1::Assign& assign) {
  v1::WorkerMessage message;
  v1::CheckpointWritten& checkpoint = *message.mutable_checkpoint();
  checkpoint.set_attempt_id(assign.attempt_id());
  checkpoint.set_stage_id(assign.stage_id());
  checkpoint.set_step(assign.end_step());
  checkpoint.set_uri("file:///checkpoints/state.ckpt");
  return message;
}

// A coordinator with leases long enough that none expires during a test, and the study
// service to create studies with. It runs --insecure: these tests forge worker messages, and
// authentication has its own tests (auth_test.cc). Retries and health keep their defaults
// (engine_retry_test, self_repair_test) unless a fixture below says.
class HostileWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = "127.0.0.1:" + std::to_string(FreePort());
    server_ = std::make_unique<Process>(
        [this] {
          std::vector<std::string> args = {"server", "--listen",        address_, "--db",
                                           db(),     "--lease-seconds", "600",    "--insecure"};
          for (const std::string& flag : ServerFlags()) args.push_back(flag);
          return args;
        }(),
        log());
    ASSERT_TRUE(WaitForServer(address_));
    stub_ = Connect(address_);
  }

  // More flags of the server, for a fixture that needs them.
  virtual std::vector<std::string> ServerFlags() const { return {}; }

  std::string db() const { return dir_.File("hippo.db"); }
  std::string log() const { return dir_.File("server.log"); }

  // A study of one sim trial of 4 steps; its id.
  std::string CreateStudy(int seed) {
    v1::CreateStudyRequest request;
    v1::StudySpec& spec = *request.mutable_spec();
    spec.set_name("hostile-" + std::to_string(seed));
    spec.mutable_objective()->set_metric("val_loss");
    spec.mutable_objective()->set_direction(v1::MINIMIZE);
    spec.mutable_trainer()->set_kind("sim");
    v1::Parameter& lr = *spec.mutable_search_space()->add_parameters();
    lr.set_name("lr");
    lr.mutable_float_()->set_low(0.001);
    lr.mutable_float_()->set_high(0.1);
    spec.mutable_algorithm()->set_name("random");
    spec.mutable_algorithm()->set_seed(seed);
    spec.mutable_budget()->set_max_steps(4);
    spec.mutable_budget()->set_max_trials(1);
    grpc::ClientContext context;
    v1::Study study;
    const grpc::Status status = stub_->CreateStudy(&context, request, &study);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return study.id();
  }

  // Waits until the server's log holds `text` `times` times (a report the engine refused or
  // ignored is logged once it was handled, so this orders the test after it).
  void WaitForLog(const std::string& text, int times) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (Count(Bytes(log()), text) < times) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "the log never had \"" << text << "\" " << times << " times:\n"
          << Bytes(log());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  TempDir dir_;
  std::string address_;
  std::unique_ptr<Process> server_;
  std::unique_ptr<v1::StudyService::Stub> stub_;
};

TEST_F(HostileWorkerTest, HelloOutOfBoundsIsRefusedNamingTheFieldAndChangesNothing) {
  struct Case {
    std::string expected;  // the start of the message: the field, and what is wrong
    std::function<void(v1::WorkerHello&)> breaks;
  };
  const std::vector<Case> cases = {
      {"hello.worker_id: a worker must name itself",
       [](v1::WorkerHello& hello) { hello.clear_worker_id(); }},
      {"hello.worker_id: too long: 300 characters, at most 256",
       [](v1::WorkerHello& hello) { hello.set_worker_id(std::string(300, 'w')); }},
      {"hello.worker_id: holds a control character (code 27)",
       [](v1::WorkerHello& hello) { hello.set_worker_id("w\x1b[2J"); }},
      {"hello.host: too long: 100000 characters, at most 256",
       [](v1::WorkerHello& hello) { hello.set_host(std::string(100'000, 'h')); }},
      {"hello.devices: 65 devices, at most 64",
       [](v1::WorkerHello& hello) {
         for (int i = 0; i < 65; ++i) hello.add_devices()->set_name("cuda:" + std::to_string(i));
       }},
      {"hello.trainers: 17 trainer kinds, at most 16",
       [](v1::WorkerHello& hello) {
         for (int i = 0; i < 16; ++i) hello.add_trainers("t" + std::to_string(i));
       }},
      {"hello.cached_states: 10001 states, at most 10000",
       [](v1::WorkerHello& hello) {
         for (int i = 0; i < 10'001; ++i) {
           v1::CachedState& state = *hello.add_cached_states();
           state.set_stage_id(i + 1);
           state.set_step(1);
         }
       }},
  };
  const std::string before = DatabaseSha256(db());
  for (const Case& bad : cases) {
    v1::WorkerHello hello = Hello("w-hostile");
    bad.breaks(hello);
    RawWorker worker(address_, hello);
    const grpc::Status status = worker.Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.expected;
    EXPECT_EQ(status.error_message().rfind(bad.expected, 0), 0u)
        << "expected " << bad.expected << "\ngot      " << status.error_message();
  }
  // Above the server's receive limit: gRPC refuses the message before it is parsed.
  RawWorker huge(address_, [] {
    v1::WorkerHello hello = Hello("w-huge");
    hello.set_host(std::string(5 << 20, 'h'));
    return hello;
  }());
  EXPECT_EQ(huge.Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(DatabaseSha256(db()), before);
  grpc::ClientContext context;
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(stub_->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok());
  EXPECT_EQ(workers.workers_size(), 0);
}

TEST_F(HostileWorkerTest, ReportsOfNoAttemptOfTheWorkerChangeNothingStored) {
  const std::string study = CreateStudy(1);
  RawWorker holder(address_, Hello("w-holder"));
  const std::optional<v1::CoordinatorMessage> assign = holder.Next(v1::CoordinatorMessage::kAssign);
  ASSERT_TRUE(assign.has_value());
  const v1::Assign& held = assign->assign();
  RawWorker other(address_, Hello("w-other"));
  // A report out of bounds of an attempt nobody holds is ignored and logged: once the log has
  // it, every message the worker sent before it was handled.
  const v1::WorkerMessage marker = ProgressOf(999'999, 0, {{"", 1.0}});
  const std::string ignored = "report ignored: progress.metrics: a metric name is empty";
  int markers = 0;
  ASSERT_TRUE(other.Send(marker));
  WaitForLog(ignored, ++markers);
  const std::string before = DatabaseSha256(db());

  // Another worker reports on the holder's attempt: progress, its end state, its finish.
  const std::vector<v1::WorkerMessage> foreign = [&] {
    std::vector<v1::WorkerMessage> messages;
    messages.push_back(ProgressOf(held.attempt_id(), held.end_step() - 1, {{"val_loss", 0.5}}));
    messages.push_back(CheckpointOf(held));
    v1::WorkerMessage finished;
    finished.mutable_finished()->set_attempt_id(held.attempt_id());
    finished.mutable_finished()->set_ok(true);
    messages.push_back(finished);
    v1::WorkerMessage packed;
    for (const v1::WorkerMessage& message : messages) {
      *packed.mutable_reports()->add_messages() = message;
    }
    messages.push_back(packed);
    return messages;
  }();
  for (const v1::WorkerMessage& message : foreign) {
    ASSERT_TRUE(other.Send(message));
    ASSERT_TRUE(other.Send(marker));
    WaitForLog(ignored, ++markers);
  }
  // The holder reports on attempts that do not exist.
  ASSERT_TRUE(holder.Send(ProgressOf(held.attempt_id() + 1000, 0, {{"val_loss", 0.5}})));
  ASSERT_TRUE(holder.Send(marker));
  WaitForLog(ignored, ++markers);
  EXPECT_EQ(DatabaseSha256(db()), before);

  absl::StatusOr<v1::Study> view = GetStudy(address_, study);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->state(), v1::STUDY_RUNNING);
  absl::StatusOr<v1::ListTrialsResponse> trials = TrialsWithMetrics(address_, study);
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_EQ(StoredMetrics(*trials), 0) << trials->DebugString();

  // The holder's attempt is intact: its own reports end the study.
  v1::WorkerMessage end;
  for (int64_t step = held.start_step(); step < held.end_step(); ++step) {
    *end.mutable_reports()->add_messages() =
        ProgressOf(held.attempt_id(), step, {{"val_loss", 1.0 / static_cast<double>(step + 1)}});
  }
  *end.mutable_reports()->add_messages() = CheckpointOf(held);
  v1::WorkerMessage& finished = *end.mutable_reports()->add_messages();
  finished.mutable_finished()->set_attempt_id(held.attempt_id());
  finished.mutable_finished()->set_ok(true);
  ASSERT_TRUE(holder.Send(end));
  absl::StatusOr<v1::Study> ended = WaitForStudy(address_, study, std::chrono::seconds(20));
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::STUDY_COMPLETED) << ended->message();
}

// A server that retries a failed stage only after 10 minutes and never drains a worker: each
// case of a test fails an attempt of its one raw worker, which would otherwise be drained as
// unhealthy after three (health, and the exemption of diverged trials: engine_retry_test), and
// the assignments it receives are those of the studies it creates, in order.
class HostileWorkerReportsTest : public HostileWorkerTest {
 protected:
  std::vector<std::string> ServerFlags() const override {
    return {"--retry-backoff-seconds", "600", "--unhealthy-after", "1000"};
  }
};

TEST_F(HostileWorkerReportsTest, AReportOutOfBoundsFailsItsAttemptNamingTheFieldAndStoresNothing) {
  struct Case {
    std::string expected;  // in the log line of the refusal: the field, and what is wrong
    std::function<v1::WorkerMessage(const v1::Assign&)> report;
  };
  const auto progress = [](std::map<std::string, double> metrics) {
    return [metrics](const v1::Assign& assign) {
      return ProgressOf(assign.attempt_id(), assign.start_step(), metrics);
    };
  };
  std::map<std::string, double> too_many;
  for (int i = 0; i < 257; ++i) too_many["m" + std::to_string(i)] = i;
  const std::vector<Case> cases = {
      {"progress.metrics[\"val_loss\"]: must be a finite number (got nan)",
       progress({{"val_loss", kNaN}})},
      {"progress.metrics[\"accuracy\"]: must be a finite number (got -inf)",
       progress({{"val_loss", 0.5}, {"accuracy", -kInf}})},
      {"progress.metrics: a metric name is empty", progress({{"", 0.5}})},
      {"progress.metrics: a metric name too long: 100000 characters, at most 256",
       progress({{std::string(100'000, 'm'), 0.5}})},
      {"progress.metrics: a metric name holds a control character (code 27)",
       progress({{"loss\x1b[31m", 0.5}})},
      {"progress.metrics: has 257 metrics, at most 256", progress(too_many)},
      {"checkpoint.stage_id: 424242 is not the stage of attempt",
       [](const v1::Assign& assign) {
         v1::WorkerMessage message = CheckpointOf(assign);
         message.mutable_checkpoint()->set_stage_id(424242);
         return message;
       }},
      {"checkpoint.uri: too long: 5000 bytes, at most 4096",
       [](const v1::Assign& assign) {
         v1::WorkerMessage message = CheckpointOf(assign);
         message.mutable_checkpoint()->set_uri("file:///" + std::string(4992, 'c'));
         return message;
       }},
      {"finished.seconds: must be a finite number (got inf)",
       [](const v1::Assign& assign) {
         v1::WorkerMessage message;
         message.mutable_finished()->set_attempt_id(assign.attempt_id());
         message.mutable_finished()->set_ok(true);
         message.mutable_finished()->set_seconds(kInf);
         return message;
       }},
      // Packed: the good reports before the bad one are not handled either.
      {"progress.metrics[\"val_loss\"]: must be a finite number (got inf)",
       [](const v1::Assign& assign) {
         v1::WorkerMessage message;
         *message.mutable_reports()->add_messages() =
             ProgressOf(assign.attempt_id(), assign.start_step(), {{"val_loss", 0.25}});
         *message.mutable_reports()->add_messages() =
             ProgressOf(assign.attempt_id(), assign.start_step() + 1, {{"val_loss", kInf}});
         return message;
       }},
  };
  RawWorker worker(address_, Hello("w-bad"));
  std::vector<std::string> studies;
  for (size_t i = 0; i < cases.size(); ++i) {
    // A new study each time, so that there is an attempt to hand out whatever the retry policy.
    studies.push_back(CreateStudy(static_cast<int>(i) + 1));
    const std::optional<v1::CoordinatorMessage> assign =
        worker.Next(v1::CoordinatorMessage::kAssign);
    ASSERT_TRUE(assign.has_value()) << cases[i].expected;
    ASSERT_TRUE(worker.Send(cases[i].report(assign->assign())));
    // The attempt fails and the worker is told to stop it.
    const std::optional<v1::CoordinatorMessage> cancel =
        worker.Next(v1::CoordinatorMessage::kCancel);
    ASSERT_TRUE(cancel.has_value()) << cases[i].expected;
    EXPECT_EQ(cancel->cancel().attempt_id(), assign->assign().attempt_id());
    WaitForLog(
        absl::StrCat("attempt ", assign->assign().attempt_id(), " fails: ", cases[i].expected), 1);
  }
  // Nothing any of the refused reports carried was stored.
  for (const std::string& study : studies) {
    absl::StatusOr<v1::ListTrialsResponse> trials = TrialsWithMetrics(address_, study);
    ASSERT_TRUE(trials.ok()) << trials.status();
    EXPECT_EQ(StoredMetrics(*trials), 0) << trials->DebugString();
    for (const v1::Trial& trial : trials->trials()) EXPECT_FALSE(trial.has_objective_value());
  }
}

TEST_F(HostileWorkerTest, ATrialThatReportsNaNFailsWithTheReasonAndNeverShowsNaN) {
  const std::string study = CreateStudy(7);
  RawWorker worker(address_, Hello("w-nan"));
  // Every attempt diverges, until the trial has failed as often as the coordinator allows.
  for (int attempt = 0; attempt < 20; ++attempt) {
    absl::StatusOr<v1::Study> view = GetStudy(address_, study);
    ASSERT_TRUE(view.ok()) << view.status();
    if (view->state() != v1::STUDY_RUNNING) break;
    const std::optional<v1::CoordinatorMessage> assign =
        worker.Next(v1::CoordinatorMessage::kAssign);
    ASSERT_TRUE(assign.has_value());
    v1::WorkerMessage reports;
    *reports.mutable_reports()->add_messages() = ProgressOf(
        assign->assign().attempt_id(), assign->assign().start_step(), {{"val_loss", kNaN}});
    ASSERT_TRUE(worker.Send(reports));
    ASSERT_TRUE(worker.Next(v1::CoordinatorMessage::kCancel).has_value());
  }
  absl::StatusOr<EndedStudy> ended = WaitForEndedStudy(address_, study, std::chrono::seconds(20));
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_NE(ended->study.message().find(
                "progress.metrics[\"val_loss\"]: must be a finite number (got nan)"),
            std::string::npos)
      << ended->study.message();
  ASSERT_EQ(ended->trials.trials_size(), 1);
  EXPECT_EQ(ended->trials.trials(0).state(), v1::TRIAL_FAILED);
  EXPECT_FALSE(ended->trials.trials(0).has_objective_value());
  EXPECT_EQ(StoredMetrics(ended->trials), 0);
  const CommandResult shown = RunHippo({"trials", study, "--coordinator", address_});
  EXPECT_EQ(shown.exit_code, 0) << shown.output;
  // The trial's row (the table's second line) shows no objective; the failure reason below it
  // quotes the refused value.
  const std::string row = shown.output.substr(
      shown.output.find('\n') + 1,
      shown.output.find('\n', shown.output.find('\n') + 1) - shown.output.find('\n') - 1);
  EXPECT_EQ(row.find("nan"), std::string::npos) << shown.output;
}

TEST_F(HostileWorkerTest, AFailureReasonIsKeptToItsBoundedEnd) {
  const std::string study = CreateStudy(11);
  RawWorker worker(address_, Hello("w-verbose"));
  const std::string error = std::string(200'000, 'x') + " the real cause";
  for (int attempt = 0; attempt < 20; ++attempt) {
    absl::StatusOr<v1::Study> view = GetStudy(address_, study);
    ASSERT_TRUE(view.ok()) << view.status();
    if (view->state() != v1::STUDY_RUNNING) break;
    const std::optional<v1::CoordinatorMessage> assign =
        worker.Next(v1::CoordinatorMessage::kAssign);
    ASSERT_TRUE(assign.has_value());
    v1::WorkerMessage finished;
    finished.mutable_finished()->set_attempt_id(assign->assign().attempt_id());
    finished.mutable_finished()->set_error(error);
    ASSERT_TRUE(worker.Send(finished));
    // Ordered after the finish, logged once it was handled (see WaitForLog).
    ASSERT_TRUE(worker.Send(ProgressOf(999'999, 0, {{"", 1.0}})));
    WaitForLog("w-verbose: report ignored", attempt + 1);
  }
  absl::StatusOr<v1::Study> ended = WaitForStudy(address_, study, std::chrono::seconds(20));
  ASSERT_TRUE(ended.ok()) << ended.status();
  // The failed trial says why, with the end of the worker's error, bounded.
  absl::StatusOr<v1::ListTrialsResponse> trials = TrialsWithMetrics(address_, study);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->trials_size(), 1);
  const std::string& message = trials->trials(0).message();
  EXPECT_LT(message.size(), 4096u + 200u);
  EXPECT_NE(message.find("x the real cause"), std::string::npos) << message.substr(0, 300);
}

TEST_F(HostileWorkerTest, OversizedMessagesEndOnlyTheirOwnStream) {
  const std::string study = CreateStudy(3);
  RawWorker worker(address_, Hello("w-flood"));
  const std::optional<v1::CoordinatorMessage> assign = worker.Next(v1::CoordinatorMessage::kAssign);
  ASSERT_TRUE(assign.has_value());
  // More reports in one message than allowed: refused, the stream ends naming the field.
  v1::WorkerMessage many;
  for (int i = 0; i < 257; ++i) many.mutable_reports()->add_messages()->mutable_heartbeat();
  ASSERT_TRUE(worker.Send(many));
  const grpc::Status status = worker.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      status.error_message().rfind("reports.messages: 257 reports in one message, at most 256", 0),
      0u)
      << status.error_message();
  // Over the receive limit: gRPC ends the stream before the message is parsed.
  RawWorker flood(address_, Hello("w-flood-2"));
  // Whether the write reaches the server is what the stream's status says.
  (void)flood.Send(ProgressOf(1, 0, {{std::string(5 << 20, 'm'), 1.0}}));
  EXPECT_EQ(flood.Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The coordinator still answers.
  absl::StatusOr<v1::Study> view = GetStudy(address_, study);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->state(), v1::STUDY_RUNNING);
}

}  // namespace
}  // namespace hippo::e2e
