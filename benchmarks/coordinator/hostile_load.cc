#include "benchmarks/coordinator/hostile_load.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <utility>

#include "hippo/report_bounds.h"
#include "hippo/study_pages.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "proto/report_checks.h"
#include "proto/spec_validator.h"

namespace hippo::benchmarks {
namespace {

namespace v1 = ::hippo::v1;

constexpr int kAskCount = 1000;  // hippo/engine_ask_tell.cc's cap
constexpr int kReportsPerMessage = 100;

// An external (ask/tell) study whose encoding is just under kMaxStudySpecBytes, every name at
// its length limit; `blob_bytes` of trainer config (over the limit when asked to be).
v1::StudySpec LargestSpec(int64_t number, size_t blob_bytes) {
  v1::StudySpec spec;
  const std::string suffix = std::to_string(number);
  spec.set_name(std::string(proto::kMaxNameLength - suffix.size(), 'n') + suffix);
  spec.mutable_objective()->set_metric(std::string(proto::kMaxNameLength, 'm'));
  spec.mutable_objective()->set_direction(v1::MINIMIZE);
  v1::Parameter& lr = *spec.mutable_search_space()->add_parameters();
  lr.set_name(std::string(proto::kMaxNameLength, 'p'));
  lr.mutable_float_()->set_low(1e-4);
  lr.mutable_float_()->set_high(1e-1);
  (*spec.mutable_trainer()->mutable_config()->mutable_fields())["blob"].set_string_value(
      std::string(blob_bytes, 'b'));
  spec.mutable_algorithm()->set_name("external");
  spec.mutable_budget()->set_max_steps(10);
  spec.mutable_budget()->set_max_trials(10 * kAskCount);
  return spec;
}

constexpr size_t kLargestBlob = proto::kMaxStudySpecBytes - 4096;

std::unique_ptr<grpc::ClientContext> Deadline(int seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

}  // namespace

HostileLoad::HostileLoad(std::string address)
    : address_(std::move(address)),
      client_([this] { ClientLoop(); }),
      worker_([this] { WorkerLoop(); }) {}

HostileLoad::~HostileLoad() {
  stop_.store(true);
  client_.join();
  worker_.join();
}

void HostileLoad::ClientLoop() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  auto stub = v1::StudyService::NewStub(
      grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), arguments));
  std::string study_id;
  int64_t studies = 0;
  while (!stop_.load()) {
    if (study_id.empty()) {
      v1::CreateStudyRequest request;
      *request.mutable_spec() = LargestSpec(studies++, kLargestBlob);
      v1::Study study;
      if (stub->CreateStudy(Deadline(60).get(), request, &study).ok()) study_id = study.id();
      ++client_requests_;
    }
    v1::AskRequest ask;
    ask.set_study_id(study_id);
    ask.set_count(kAskCount);
    v1::AskResponse asked;
    // Its trials stay running: once max_trials are out, a new study takes over.
    if (!stub->Ask(Deadline(60).get(), ask, &asked).ok()) study_id.clear();
    ++client_requests_;

    v1::ListTrialsRequest trials;
    trials.set_study_id(study_id);
    trials.set_with_metrics(true);
    trials.set_page_size(static_cast<int32_t>(coordinator::kMaxTrialPageSize));
    v1::ListTrialsResponse listed;
    (void)stub->ListTrials(Deadline(60).get(), trials, &listed);  // load only: not checked
    v1::ListStudiesRequest studies_request;
    studies_request.set_page_size(static_cast<int32_t>(coordinator::kMaxStudyPageSize));
    v1::ListStudiesResponse studies_listed;
    (void)stub->ListStudies(Deadline(60).get(), studies_request, &studies_listed);  // as above
    client_requests_ += 2;

    // Over the limits: twice the spec size limit (refused by the spec checks), and a name
    // above the receive limit (refused by gRPC before it is parsed).
    v1::CreateStudyRequest twice;
    *twice.mutable_spec() = LargestSpec(0, 2 * proto::kMaxStudySpecBytes);
    v1::Study refused;
    if (stub->CreateStudy(Deadline(60).get(), twice, &refused).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT) {
      ++client_refused_;
    }
    v1::CreateStudyRequest huge;
    *huge.mutable_spec() = LargestSpec(0, 0);
    huge.mutable_spec()->set_name(std::string(coordinator::kMaxReceiveMessageBytes + 1024, 'n'));
    if (stub->CreateStudy(Deadline(60).get(), huge, &refused).error_code() ==
        grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++client_refused_;
    }
    client_requests_ += 2;
  }
}

void HostileLoad::WorkerLoop() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(64 << 20);
  auto stub = v1::WorkerService::NewStub(
      grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), arguments));
  // Reports of an attempt nobody holds, each with the most metrics a report may carry, names
  // at their length limit: just under the receive limit together.
  v1::WorkerMessage largest;
  for (int i = 0; i < kReportsPerMessage; ++i) {
    v1::Progress& progress = *largest.mutable_reports()->add_messages()->mutable_progress();
    progress.set_attempt_id(1'000'000'000 + i);
    progress.set_step(i);
    for (int m = 0; m < proto::kMaxMetricsPerReport; ++m) {
      const std::string suffix = std::to_string(m);
      (*progress
            .mutable_metrics())[std::string(proto::kMaxNameLength - suffix.size(), 'x') + suffix] =
          0.5;
    }
  }
  v1::WorkerMessage out_of_bounds;
  (*out_of_bounds.mutable_progress()
        ->mutable_metrics())[std::string(proto::kMaxNameLength + 1, 'x')] = 0.5;
  out_of_bounds.mutable_progress()->set_attempt_id(1'000'000'000);
  v1::WorkerMessage oversized;
  oversized.mutable_hello()->set_host(
      std::string(coordinator::kMaxReceiveMessageBytes + 1024, 'h'));
  const size_t largest_bytes = largest.ByteSizeLong();
  for (int64_t session = 0; !stop_.load(); ++session) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto stream = stub->Session(&context);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id("hostile-" + std::to_string(session));
    hello.mutable_hello()->add_trainers("no-study-uses-this-kind");
    if (!stream->Write(hello)) continue;
    for (int i = 0; i < 8 && !stop_.load(); ++i) {
      if (!stream->Write(largest)) break;
      ++worker_messages_;
      worker_bytes_ += static_cast<int64_t>(largest_bytes);
    }
    if (stream->Write(out_of_bounds)) ++worker_messages_;
    // Above the receive limit: the coordinator ends this stream.
    (void)stream->Write(oversized);  // the write may fail once the stream is ended
    ++worker_messages_;
    stream->WritesDone();
    v1::CoordinatorMessage ignored;
    while (stream->Read(&ignored)) {
    }
    (void)stream->Finish();  // RESOURCE_EXHAUSTED, as the limit says
  }
}

}  // namespace hippo::benchmarks
