// CpuBudget (hippo/cpu_budget.h): the token bucket it shares with ByteBudget on a clock the test
// moves; a thread's CPU time measured, not its wall time; and on a real coordinator over loopback
// gRPC, calls charged the CPU time they took, so that a burst of calls on a tiny budget is slowed
// to the budget's rate or refused with RESOURCE_EXHAUSTED naming the flag, while the same burst
// on the default budget is not slowed at all. Budgets that cannot work are refused at start.
#include "hippo/cpu_budget.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "hippo/server.h"
#include "hippo/token_bucket.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "tests/support/loopback_coordinator.h"
#include "tests/support/study_specs.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using Clock = TokenBucket::Clock;

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

TEST(TokenBucketTest, AChargeWaitsOutTheDebtBeforeItAndTheBucketRefillsUpToItsBurst) {
  TokenBucket bucket(/*rate=*/0.1, /*burst=*/0.25, /*max_wait_seconds=*/10);
  const Clock::time_point start = Clock::now();
  EXPECT_EQ(bucket.Charge(0.25, start), Clock::duration::zero());  // the burst
  // 0.05 s of CPU beyond it: half a second at 0.1 of a core.
  EXPECT_NEAR(Seconds(*bucket.Charge(0.05, start)), 0.5, 1e-6);
  // A charge of nothing waits out the debt all the same.
  EXPECT_NEAR(Seconds(*bucket.Charge(0, start)), 0.5, 1e-6);
  EXPECT_NEAR(Seconds(*bucket.Charge(0, start + std::chrono::milliseconds(500))), 0, 1e-6);
  // Refunds and refills never fill it past the burst.
  bucket.Refund(10);
  EXPECT_EQ(bucket.Charge(0.25, start + std::chrono::hours(1)), Clock::duration::zero());
  EXPECT_NEAR(Seconds(*bucket.Charge(0.01, start + std::chrono::hours(1))), 0.1, 1e-6);
}

TEST(TokenBucketTest, AChargeWhoseWaitWouldPassTheLongestIsRefusedUnchargedUnlessItMustPass) {
  TokenBucket bucket(/*rate=*/0.1, /*burst=*/0.25, /*max_wait_seconds=*/1);
  const Clock::time_point start = Clock::now();
  EXPECT_NEAR(Seconds(*bucket.Charge(0.35, start)), 1.0, 1e-6);
  EXPECT_FALSE(bucket.Charge(0.01, start).has_value());  // would wait 1.1 s
  EXPECT_NEAR(Seconds(*bucket.Charge(0.01, start, /*refusable=*/false)), 1.1, 1e-6);
}

// What the clock measures: the thread's own CPU time, not the time it slept.
TEST(CpuBudgetTest, ThreadCpuSecondsCountsWorkNotSleep) {
  const double before_sleep = ThreadCpuSeconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(ThreadCpuSeconds() - before_sleep, 0.05);
  const double before_work = ThreadCpuSeconds();
  volatile double sink = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  while (std::chrono::steady_clock::now() < until) sink = sink + 1;
  EXPECT_GT(ThreadCpuSeconds() - before_work, 0.02);
}

// A coordinator in this process on a loopback port with the clients' CPU budget `cpu`; the byte
// budgets are its defaults.
struct CpuBudgetedServer : test_support::LoopbackCoordinator {
  explicit CpuBudgetedServer(CpuBudgetOptions cpu) : LoopbackCoordinator(Options(cpu)) {}

  static ServerOptions Options(CpuBudgetOptions cpu) {
    ServerOptions options;
    options.client_cpu = cpu;
    return options;
  }
};

v1::StudySpec ExternalStudy() { return test_support::AskTellSpec(1'000'000); }

grpc::Status Ask(v1::StudyService::Stub& stub, const std::string& study_id, int count) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::AskRequest request;
  request.set_study_id(study_id);
  request.set_count(count);
  v1::AskResponse asked;
  return stub.Ask(&context, request, &asked);
}

// Asks of 200 trials, one after another for a second and a half, on `cpu` (a new study
// whenever one is full): how many were answered, refused, and the CPU time the budget charged.
struct Burst {
  int answered = 0;
  int refused = 0;
  std::string refusal;
  CpuBudgetStats stats;
};

Burst AskBurst(CpuBudgetOptions cpu) {
  CpuBudgetedServer coordinator(cpu);
  // A study takes a few thousand running trials: the next one is made when it is full.
  auto new_study = [&] {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = ExternalStudy();
    v1::Study study;
    EXPECT_TRUE(coordinator.stub->CreateStudy(&context, request, &study).ok());
    return study.id();
  };
  std::string study_id = new_study();
  Burst burst;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < until) {
    const grpc::Status status = Ask(*coordinator.stub, study_id, 200);
    if (status.ok()) {
      ++burst.answered;
    } else if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE) {
      study_id = new_study();
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << status.error_message();
      ++burst.refused;
      burst.refusal = status.error_message();
    }
  }
  burst.stats = coordinator.server->client_cpu_stats();
  return burst;
}

// The burst's CPU time is charged to the budget: on a budget of a thousandth of a core that
// holds 10 ms, the calls after the first few wait for the bucket (the longest wait is 0.5 s, so
// they are refused once more than half a millisecond of CPU is owed: a 2 s wait let a fast
// machine's cheaper calls wait their turn through the whole burst without a refusal), and far fewer
// are answered than on the default budget, which the same burst does not slow.
TEST(CpuBudgetTest, ABurstOfCallsOnATinyBudgetIsSlowedOrRefusedNamingTheFlag) {
  const Burst free = AskBurst(CpuBudgetOptions());
  const Burst tiny =
      AskBurst(CpuBudgetOptions{.cores = 0.001, .burst_seconds = 10, .max_wait_seconds = 0.5});
  std::printf("default budget: %d answered, %d refused, %.3f s of CPU charged\n", free.answered,
              free.refused, free.stats.charged_seconds);
  std::printf("tiny budget: %d answered, %d refused, %.3f s of CPU charged, %.2f s waited\n",
              tiny.answered, tiny.refused, tiny.stats.charged_seconds, tiny.stats.waited_seconds);
  EXPECT_EQ(free.refused, 0);
  EXPECT_GT(free.stats.charged_seconds, 0.0);
  // The default budget's burst (1.25 s of CPU) pays for all of such a burst's calls, unless each
  // took over 10 ms of CPU.
  ASSERT_GE(free.answered, 4);
  EXPECT_LE(tiny.answered * 2, free.answered);
  EXPECT_GE(tiny.refused, 1);
  EXPECT_NE(tiny.refusal.find("--client-cpu-cores"), std::string::npos) << tiny.refusal;
  EXPECT_NE(tiny.refusal.find("retry in"), std::string::npos) << tiny.refusal;
}

TEST(CpuBudgetTest, TheServerRefusesACpuBudgetThatCannotWorkNamingTheSetting) {
  struct Case {
    CpuBudgetOptions options;
    std::string expected;  // the start of the message
  };
  const std::vector<Case> cases = {
      {{.cores = 0}, "client_cpu.cores (--client-cpu-cores): must be a positive number"},
      {{.cores = -1}, "client_cpu.cores (--client-cpu-cores): must be a positive number"},
      {{.burst_seconds = 0}, "client_cpu.burst_seconds: must be a positive"},
      {{.max_wait_seconds = -1}, "client_cpu.max_wait_seconds: must not be negative"},
  };
  const std::string db =
      ::testing::TempDir() + "hippo-refused-cpu-" + std::to_string(getpid()) + ".db";
  for (const Case& bad : cases) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.db_path = db;
    options.insecure = true;
    options.client_cpu = bad.options;
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
