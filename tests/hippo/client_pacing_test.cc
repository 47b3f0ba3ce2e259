// ClientPacing (hippo/client_pacing.h) on a real coordinator over loopback gRPC: every request
// of the study service is charged its size on arrival, whatever its size, so a client sending
// many requests is held to the clients' rate by its own bytes; and an answer is charged at its
// estimate before it is built, so an Ask of many trials waits for the budget before the engine
// makes a single trial. The waits asserted are lower bounds computed from the budget's
// arithmetic: a loaded machine only makes them longer.
#include "hippo/client_pacing.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "hippo/server.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "tests/support/loopback_coordinator.h"
#include "tests/support/study_specs.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using std::chrono::milliseconds;

// A coordinator in this process on a loopback port whose clients' budget is `bytes_per_second`
// with a 64 KiB burst, and an Ask's trials charged `ask_work_bytes_per_trial` each for their
// making (0: its answer alone); every other setting is the server's default (large_message_bytes
// included).
struct PacedServer : test_support::LoopbackCoordinator {
  explicit PacedServer(double bytes_per_second = 64 << 10, int64_t ask_work_bytes_per_trial = 0)
      : LoopbackCoordinator(Options(bytes_per_second, ask_work_bytes_per_trial)) {}

  static ServerOptions Options(double bytes_per_second, int64_t ask_work_bytes_per_trial) {
    ServerOptions options;
    options.ask_work_bytes_per_trial = ask_work_bytes_per_trial;
    options.client_large_messages.bytes_per_second = bytes_per_second;
    options.client_large_messages.burst_bytes = 64 << 10;
    options.client_large_messages.max_wait_seconds = 30;
    return options;
  }
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(ClientPacingTest, EveryRequestIsChargedOnArrivalSoManyRequestsAreSlowedByTheirOwnBytes) {
  PacedServer coordinator;
  // Requests of 16 KiB each (64 metric names of 250 characters: within their bounds), a quarter
  // of what the worker streams count as large: 20 of them are 320 KiB, of which the burst pays
  // 64 KiB; the rest takes 4 s at 64 KiB/s. Each is refused (no such study) only once it is
  // paid for.
  constexpr int kRequests = 20;
  v1::ListTrialsRequest request;
  request.set_study_id("s-999999");
  for (int i = 0; i < 64; ++i) request.add_metric_names(std::string(250, 'm'));
  const int64_t request_bytes = static_cast<int64_t>(request.ByteSizeLong());
  const ClientPacingStats before = coordinator.server->client_pacing_stats();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRequests; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::ListTrialsResponse trials;
    const grpc::Status status = coordinator.stub->ListTrials(&context, request, &trials);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  }
  const double seconds = SecondsSince(start);
  const ClientPacingStats after = coordinator.server->client_pacing_stats();
  EXPECT_EQ(after.calls - before.calls, kRequests);
  EXPECT_EQ(after.request_bytes - before.request_bytes, kRequests * request_bytes);
  const double least = (kRequests * request_bytes - (64 << 10)) / double{64 << 10};
  EXPECT_GE(seconds, least * 0.9) << "the requests were not paced by their own bytes";
  std::printf("%d requests of %lld bytes: %.2f s (at least %.2f s by the budget)\n", kRequests,
              static_cast<long long>(request_bytes), seconds, least);
}

// A long parameter name: each trial of an answer carries it (about 300 bytes a trial).
v1::StudySpec ExternalStudy() { return test_support::AskTellSpec(10'000, std::string(256, 'p')); }

grpc::Status AskFor(v1::StudyService::Stub& stub, const std::string& study_id, int64_t count,
                    v1::AskResponse* asked) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::AskRequest request;
  request.set_study_id(study_id);
  request.set_count(count);
  return stub.Ask(&context, request, asked);
}

int64_t TrialsMade(Server& server, const std::string& study_id) {
  absl::StatusOr<v1::Study> study = server.engine().GetStudy(study_id);
  return study.ok() ? study->trials_total() : -1;
}

TEST(ClientPacingTest, AnAskIsChargedForItsAnswerBeforeTheEngineMakesItsTrials) {
  PacedServer coordinator;
  v1::Study study;
  {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = ExternalStudy();
    ASSERT_TRUE(coordinator.stub->CreateStudy(&context, request, &study).ok());
  }
  // One trial: the answer's bytes per trial are measured.
  v1::AskResponse one;
  ASSERT_TRUE(AskFor(*coordinator.stub, study.id(), 1, &one).ok());
  ASSERT_EQ(one.trials_size(), 1);
  const int64_t trial_bytes = static_cast<int64_t>(one.ByteSizeLong());
  ASSERT_GT(trial_bytes, 256);
  ASSERT_EQ(TrialsMade(*coordinator.server, study.id()), 1);

  // 1000 trials answer about 1000 x trial_bytes (some 300 KB). Charged before any is made, they
  // wait for all but the burst's 64 KiB at 64 KiB/s; the engine makes the trials only then.
  const ClientPacingStats before = coordinator.server->client_pacing_stats();
  const auto start = std::chrono::steady_clock::now();
  std::atomic<bool> answered{false};
  v1::AskResponse asked;
  grpc::Status status;
  std::thread client([&] {
    status = AskFor(*coordinator.stub, study.id(), 1000, &asked);
    answered = true;
  });
  while (TrialsMade(*coordinator.server, study.id()) == 1 && !answered.load()) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  const double made_after = SecondsSince(start);
  client.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(asked.trials_size(), 1000);
  const double least = (1000.0 * trial_bytes - (64 << 10)) / double{64 << 10};
  EXPECT_GE(made_after, least * 0.9) << "the trials were made before the answer was paid for";
  const ClientPacingStats after = coordinator.server->client_pacing_stats();
  const int64_t answer_bytes = static_cast<int64_t>(asked.ByteSizeLong());
  EXPECT_GE(after.answer_bytes - before.answer_bytes, answer_bytes);
  EXPECT_GE(after.answer_bytes_reserved - before.answer_bytes_reserved, answer_bytes * 9 / 10);
  std::printf(
      "stats: calls %lld, requests %lld B, answers reserved %lld B, built %lld B, over %lld B\n",
      (long long)after.calls, (long long)after.request_bytes,
      (long long)after.answer_bytes_reserved, (long long)after.answer_bytes,
      (long long)after.answer_bytes_over_estimate);
  EXPECT_LE(after.answer_bytes_over_estimate - before.answer_bytes_over_estimate,
            answer_bytes / 10);
  std::printf("Ask(1000), %lld bytes: trials made after %.2f s (at least %.2f s by the budget)\n",
              static_cast<long long>(answer_bytes), made_after, least);
}

// The engine bounds an Ask's answer before it makes any trial: a study whose trials are large
// (here, parameters of long categorical values) is asked for fewer at a time, the message
// naming count and the most it may be.
TEST(ClientPacingTest, AnAskWhoseAnswerWouldPassTheReceiveLimitIsRefusedNamingCount) {
  PacedServer coordinator(/*bytes_per_second=*/1 << 20);
  v1::StudySpec spec = ExternalStudy();
  v1::Parameter& choice = *spec.mutable_search_space()->add_parameters();
  choice.set_name("choice");
  choice.mutable_categorical()->add_values()->set_string_value(std::string(5'000, 'a'));
  choice.mutable_categorical()->add_values()->set_string_value(std::string(5'000, 'b'));
  v1::Study study;
  {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = spec;
    const grpc::Status created = coordinator.stub->CreateStudy(&context, request, &study);
    ASSERT_TRUE(created.ok()) << created.error_message();
  }
  v1::AskResponse asked;
  const grpc::Status status = AskFor(*coordinator.stub, study.id(), 1000, &asked);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("count: 1000 trials of study '" + study.id() + "'", 0), 0u)
      << status.error_message();
  EXPECT_NE(status.error_message().find("ask for at most"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(TrialsMade(*coordinator.server, study.id()), 0);
  // Within the bound, it answers.
  ASSERT_TRUE(AskFor(*coordinator.stub, study.id(), 10, &asked).ok());
  EXPECT_EQ(asked.trials_size(), 10);
}

// An Ask is charged per trial for the work of making it, besides its answer's bytes, before the
// engine makes any: bytes alone let a client make thousands of trials a second for answers of a
// few hundred bytes each.
TEST(ClientPacingTest, AnAskIsChargedForTheWorkOfMakingItsTrials) {
  constexpr int64_t kWork = 2 << 10;
  PacedServer coordinator(/*bytes_per_second=*/64 << 10, kWork);
  v1::Study study;
  {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = ExternalStudy();
    ASSERT_TRUE(coordinator.stub->CreateStudy(&context, request, &study).ok());
  }
  constexpr int64_t kCount = 150;
  const ClientPacingStats before = coordinator.server->client_pacing_stats();
  const auto start = std::chrono::steady_clock::now();
  v1::AskResponse asked;
  const grpc::Status status = AskFor(*coordinator.stub, study.id(), kCount, &asked);
  const double seconds = SecondsSince(start);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(asked.trials_size(), kCount);
  const ClientPacingStats after = coordinator.server->client_pacing_stats();
  EXPECT_EQ(after.work_bytes - before.work_bytes, kCount * kWork);
  // 300 KiB of work alone, of which the 64 KiB burst pays at most all: at least 3.6 s at 64 KiB/s.
  const double least = static_cast<double>(kCount * kWork - (64 << 10)) / (64 << 10);
  EXPECT_GE(seconds, least * 0.9) << "the trials' making was not charged";
}

}  // namespace
}  // namespace hippo::coordinator
