// ByteBudget (hippo/byte_budget.h) on a clock the test moves, and on a real coordinator: the
// large messages of worker streams are taken at the budget's rate while a small hello goes
// first; past the longest wait a stream is refused with RESOURCE_EXHAUSTED; large CreateStudy
// specs that come faster than the budget are refused and change nothing; budgets that cannot
// work are refused at start.
#include "hippo/byte_budget.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "hippo/server.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "tests/support/loopback_coordinator.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using Clock = ByteBudget::Clock;
using std::chrono::milliseconds;

ByteBudgetOptions Small(double max_wait_seconds) {
  ByteBudgetOptions options;
  options.large_message_bytes = 1024;
  options.bytes_per_second = 64 << 10;
  options.burst_bytes = 64 << 10;
  options.max_wait_seconds = max_wait_seconds;
  return options;
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

TEST(ByteBudgetTest, SmallMessagesAreFreeAndLargeOnesWaitForTheirShare) {
  ByteBudget budget(Small(10));
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(budget.Charge(1023, start), Clock::duration::zero());
  // The burst pays for the first 64 KiB; each next 32 KiB waits half a second more.
  EXPECT_EQ(budget.Charge(64 << 10, start), Clock::duration::zero());
  EXPECT_NEAR(Seconds(*budget.Charge(32 << 10, start)), 0.5, 1e-6);
  EXPECT_NEAR(Seconds(*budget.Charge(32 << 10, start)), 1.0, 1e-6);
  // A second later, a second's worth is paid back.
  EXPECT_NEAR(Seconds(*budget.Charge(32 << 10, start + std::chrono::seconds(1))), 0.5, 1e-6);
  // The bucket never holds more than the burst.
  EXPECT_EQ(budget.Charge(64 << 10, start + std::chrono::hours(1)), Clock::duration::zero());
  EXPECT_NEAR(Seconds(*budget.Charge(1 << 10, start + std::chrono::hours(1))), 1.0 / 64, 1e-6);
}

TEST(ByteBudgetTest, AMessageWhoseWaitWouldPassTheLongestIsRefusedUnchargedUnlessItMustPass) {
  ByteBudget budget(Small(1));
  const Clock::time_point start = Clock::now();
  EXPECT_EQ(budget.Charge(64 << 10, start), Clock::duration::zero());
  EXPECT_NEAR(Seconds(*budget.Charge(64 << 10, start)), 1.0, 1e-6);
  EXPECT_FALSE(budget.Charge(1 << 10, start).has_value());  // would wait 1 s + 1/64 s
  // Not charged: the debt is still one second.
  EXPECT_NEAR(Seconds(*budget.Charge(64 << 10, start, /*refusable=*/false)), 2.0, 1e-6);
}

// A coordinator in this process on a loopback port, with small budgets.
struct BudgetedServer : test_support::LoopbackCoordinator {
  explicit BudgetedServer(double max_wait_seconds)
      : LoopbackCoordinator(Options(max_wait_seconds)), address(LoopbackCoordinator::address()) {}

  static ServerOptions Options(double max_wait_seconds) {
    ServerOptions options;
    options.worker_large_messages = Small(max_wait_seconds);
    options.client_large_messages = Small(max_wait_seconds);
    return options;
  }

  const std::string address;
};

// One report about an attempt nobody holds (ignored by the engine, counted as stale), with
// 256 metrics of 256-character names: about 68 KiB.
v1::WorkerMessage LargeReport() {
  v1::WorkerMessage message;
  message.mutable_progress()->set_attempt_id(1'000'000);
  for (int m = 0; m < 256; ++m) {
    const std::string suffix = std::to_string(m);
    (*message.mutable_progress()
          ->mutable_metrics())[std::string(256 - suffix.size(), 'x') + suffix] = 0.5;
  }
  return message;
}

v1::WorkerMessage HelloOf(const std::string& id) {
  v1::WorkerMessage message;
  message.mutable_hello()->set_worker_id(id);
  message.mutable_hello()->add_trainers("sim");
  return message;
}

struct Stream {
  Stream(v1::WorkerService::Stub& stub, const std::string& id) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream = stub.Session(&context);
    EXPECT_TRUE(stream->Write(HelloOf(id)));
  }
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>> stream;
};

bool Connected(Server& server, const std::string& id) {
  for (const v1::WorkerInfo& worker : server.engine().ListWorkers()) {
    if (worker.worker_id() == id && worker.connected()) return true;
  }
  return false;
}

TEST(ByteBudgetTest, AWorkerStreamsLargeMessagesArePacedWhileASmallHelloGoesFirst) {
  BudgetedServer coordinator(/*max_wait_seconds=*/30);
  auto stub = v1::WorkerService::NewStub(
      grpc::CreateChannel(coordinator.address, grpc::InsecureChannelCredentials()));
  const v1::WorkerMessage large = LargeReport();
  ASSERT_GT(large.ByteSizeLong(), 64u << 10);
  Stream hostile(*stub, "hostile");
  // Five of them, about 67 KiB each: at 64 KiB/s after a 64 KiB burst.
  std::thread writer([&] {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(hostile.stream->Write(large));
  });
  const auto start = std::chrono::steady_clock::now();
  const int64_t stale_before = coordinator.server->engine().stats().stale_reports_ignored;
  auto handled = [&] {
    return coordinator.server->engine().stats().stale_reports_ignored - stale_before;
  };
  while (handled() < 1) std::this_thread::sleep_for(milliseconds(10));
  // Another worker's small hello is taken at once meanwhile.
  auto other_stub = v1::WorkerService::NewStub(
      grpc::CreateChannel(coordinator.address, grpc::InsecureChannelCredentials()));
  Stream quick(*other_stub, "quick");
  while (!Connected(*coordinator.server, "quick")) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_LT(handled(), 5) << "the large messages were not paced";
  while (handled() < 5) std::this_thread::sleep_for(milliseconds(10));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Four waits of about a second each before the fifth is read (without pacing: milliseconds).
  EXPECT_GE(seconds, 3.0);
  writer.join();
  hostile.context.TryCancel();
  quick.context.TryCancel();
}

TEST(ByteBudgetTest, StreamsWhoseLargeMessagesQueuePastTheLongestWaitAreRefused) {
  BudgetedServer coordinator(/*max_wait_seconds=*/1);
  auto stub = v1::WorkerService::NewStub(
      grpc::CreateChannel(coordinator.address, grpc::InsecureChannelCredentials()));
  const v1::WorkerMessage large = LargeReport();
  std::vector<std::future<grpc::Status>> ends;
  for (int i = 0; i < 4; ++i) {
    ends.push_back(std::async(std::launch::async, [&, i] {
      Stream stream(*stub, "w" + std::to_string(i));
      for (int k = 0; k < 3; ++k) stream.stream->Write(large);  // may fail once refused
      stream.stream->WritesDone();
      v1::CoordinatorMessage ignored;
      while (stream.stream->Read(&ignored)) {
      }
      return stream.stream->Finish();
    }));
  }
  int refused = 0;
  for (auto& end : ends) {
    const grpc::Status status = end.get();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      EXPECT_NE(status.error_message().find("MiB/s from all workers together"), std::string::npos)
          << status.error_message();
    }
  }
  EXPECT_GE(refused, 1);
}

TEST(ByteBudgetTest, LargeSpecsFasterThanTheBudgetAreRefusedAndChangeNothing) {
  BudgetedServer coordinator(/*max_wait_seconds=*/1);
  auto stub = v1::StudyService::NewStub(
      grpc::CreateChannel(coordinator.address, grpc::InsecureChannelCredentials()));
  auto create = [&](int i) {
    v1::CreateStudyRequest request;
    v1::StudySpec& spec = *request.mutable_spec();
    spec.set_name("large-" + std::to_string(i));
    spec.mutable_objective()->set_metric("loss");
    spec.mutable_objective()->set_direction(v1::MINIMIZE);
    spec.mutable_trainer()->set_kind("sim");
    (*spec.mutable_trainer()->mutable_config()->mutable_fields())["blob"].set_string_value(
        std::string(100 << 10, 'b'));
    v1::Parameter& lr = *spec.mutable_search_space()->add_parameters();
    lr.set_name("lr");
    lr.mutable_float_()->set_low(0.01);
    lr.mutable_float_()->set_high(0.1);
    spec.mutable_algorithm()->set_name("random");
    spec.mutable_budget()->set_max_steps(1);
    spec.mutable_budget()->set_max_trials(1);
    grpc::ClientContext context;
    v1::Study study;
    return stub->CreateStudy(&context, request, &study);
  };
  std::vector<std::future<grpc::Status>> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(std::async(std::launch::async, create, i));
  int created = 0, refused = 0;
  for (auto& call : calls) {
    const grpc::Status status = call.get();
    if (status.ok()) ++created;
    EXPECT_TRUE(status.ok() || status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      EXPECT_NE(status.error_message().find("from all clients together"), std::string::npos)
          << status.error_message();
    }
  }
  EXPECT_GE(created, 1);
  EXPECT_GE(refused, 1);
  EXPECT_EQ(created + refused, 4);
  EXPECT_EQ(coordinator.server->engine().ListStudies().size(), static_cast<size_t>(created));
}

// Budgets that cannot work are refused at start, naming the setting (and the flag of a rate),
// before anything is opened: the database file is not even created.
TEST(ByteBudgetTest, TheServerRefusesBudgetsThatCannotWorkNamingTheSetting) {
  struct Case {
    std::function<void(ServerOptions&)> breaks;
    std::string expected;  // the start of the message
  };
  const std::vector<Case> cases = {
      {[](ServerOptions& o) { o.worker_large_messages.bytes_per_second = 0; },
       "worker_large_messages.bytes_per_second (--worker-bytes-per-second): must be a positive"},
      {[](ServerOptions& o) { o.client_large_messages.bytes_per_second = -1; },
       "client_large_messages.bytes_per_second (--client-bytes-per-second): must be a positive"},
      {[](ServerOptions& o) { o.worker_large_messages.burst_bytes = 1024; },
       "worker_large_messages.burst_bytes: must be at least large_message_bytes (65536"},
      {[](ServerOptions& o) { o.client_large_messages.max_wait_seconds = -1; },
       "client_large_messages.max_wait_seconds: must not be negative"},
  };
  const std::string db =
      ::testing::TempDir() + "hippo-refused-budget-" + std::to_string(getpid()) + ".db";
  for (const Case& bad : cases) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.db_path = db;
    options.insecure = true;
    bad.breaks(options);
    const absl::StatusOr<std::unique_ptr<Server>> started = Server::Start(options);
    ASSERT_FALSE(started.ok()) << bad.expected;
    EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(started.status().message().rfind(bad.expected, 0), 0u)
        << "expected " << bad.expected << "\ngot      " << started.status().message();
    EXPECT_FALSE(std::filesystem::exists(db));
  }
}

}  // namespace
}  // namespace hippo::coordinator
