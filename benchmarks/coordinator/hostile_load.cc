#include "benchmarks/coordinator/hostile_load.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
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
  spec.mutable_trainer()->set_kind("external");  // required: without it the spec is refused
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

// A message serialized once, to be sent as many times as asked without serializing it again.
grpc::ByteBuffer Serialized(const google::protobuf::Message& message) {
  const grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

// Waits for the one operation in flight on `queue`; whether it succeeded.
bool Await(grpc::CompletionQueue& queue) {
  void* tag = nullptr;
  bool ok = false;
  return queue.Next(&tag, &ok) && ok;
}

// Shuts `queue` down and takes its last events: gRPC requires it before the queue is destroyed.
void Drain(grpc::CompletionQueue& queue) {
  queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
  }
}

}  // namespace

HostileLoad::HostileLoad(std::string address)
    : address_(std::move(address)),
      client_([this] { ClientLoop(); }),
      worker_([this] { WorkerLoop(); }) {}

HostileLoad::~HostileLoad() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(calls_mutex_);
    if (client_call_ != nullptr) client_call_->TryCancel();
    if (worker_call_ != nullptr) worker_call_->TryCancel();
  }
  client_.join();
  worker_.join();
}

void HostileLoad::InFlight(grpc::ClientContext** slot, grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(calls_mutex_);
  *slot = context;
  // Stopped between the loop's check and here: the destructor will not see this call.
  if (context != nullptr && stop_.load()) context->TryCancel();
}

void HostileLoad::ClientLoop() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  grpc::GenericStub stub(
      grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), arguments));
  grpc::CompletionQueue queue;
  // One unary call, cancelled if the load stops meanwhile; counts its request.
  auto call = [&](const char* method, const grpc::ByteBuffer& request, grpc::ByteBuffer* response) {
    auto context = Deadline(60);
    InFlight(&client_call_, context.get());
    auto rpc = stub.PrepareUnaryCall(context.get(), method, request, &queue);
    rpc->StartCall();
    grpc::Status status;
    rpc->Finish(response, &status, nullptr);
    (void)Await(queue);  // Finish's event always comes; its outcome is in `status`
    InFlight(&client_call_, nullptr);
    ++client_requests_;
    client_bytes_ += static_cast<int64_t>(request.Length());
    return status;
  };
  // Each round's new study differs from the last by its name only (of the same length).
  v1::CreateStudyRequest create;
  *create.mutable_spec() = LargestSpec(0, kLargestBlob);
  // Over the limits: twice the spec size limit (refused by the spec checks), and a name
  // above the receive limit (refused by gRPC before it is parsed).
  v1::CreateStudyRequest twice;
  *twice.mutable_spec() = LargestSpec(0, 2 * proto::kMaxStudySpecBytes);
  const grpc::ByteBuffer twice_bytes = Serialized(twice);
  v1::CreateStudyRequest huge;
  *huge.mutable_spec() = LargestSpec(0, 0);
  huge.mutable_spec()->set_name(std::string(coordinator::kMaxReceiveMessageBytes + 1024, 'n'));
  const grpc::ByteBuffer huge_bytes = Serialized(huge);
  v1::ListStudiesRequest studies;
  studies.set_page_size(static_cast<int32_t>(coordinator::kMaxStudyPageSize));
  const grpc::ByteBuffer studies_bytes = Serialized(studies);
  grpc::ByteBuffer answer;
  for (int64_t round = 0; !stop_.load(); ++round) {
    const std::string suffix = std::to_string(round);
    create.mutable_spec()->mutable_name()->replace(proto::kMaxNameLength - suffix.size(),
                                                   suffix.size(), suffix);
    v1::Study study;
    if (call("/hippo.v1.StudyService/CreateStudy", Serialized(create), &answer).ok() &&
        !grpc::SerializationTraits<v1::Study>::Deserialize(&answer, &study).ok()) {
      study.Clear();  // asked about below as an unknown study: load all the same
    }
    // The new study's trials: they stay running, asked and never told. Answers are load
    // only: not checked.
    v1::AskRequest ask;
    ask.set_study_id(study.id());
    ask.set_count(kAskCount);
    (void)call("/hippo.v1.StudyService/Ask", Serialized(ask), &answer);
    v1::ListTrialsRequest trials;
    trials.set_study_id(study.id());
    trials.set_with_metrics(true);
    trials.set_page_size(static_cast<int32_t>(coordinator::kMaxTrialPageSize));
    (void)call("/hippo.v1.StudyService/ListTrials", Serialized(trials), &answer);
    (void)call("/hippo.v1.StudyService/ListStudies", studies_bytes, &answer);
    if (call("/hippo.v1.StudyService/CreateStudy", twice_bytes, &answer).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT) {
      ++client_refused_;
    }
    if (call("/hippo.v1.StudyService/CreateStudy", huge_bytes, &answer).error_code() ==
        grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++client_refused_;
    }
  }
  Drain(queue);
}

void HostileLoad::WorkerLoop() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(64 << 20);
  grpc::GenericStub stub(
      grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), arguments));
  grpc::CompletionQueue queue;
  // Reports of an attempt nobody holds, each with the most metrics a report may carry, names
  // at their length limit: just under the receive limit together.
  v1::WorkerMessage largest;
  v1::WorkerMessage report;
  for (int m = 0; m < proto::kMaxMetricsPerReport; ++m) {
    const std::string suffix = std::to_string(m);
    (*report.mutable_progress()
          ->mutable_metrics())[std::string(proto::kMaxNameLength - suffix.size(), 'x') + suffix] =
        0.5;
  }
  const size_t report_bytes = report.ByteSizeLong() + 16;  // with its ids and framing
  for (int i = 0; largest.ByteSizeLong() + report_bytes <
                  static_cast<size_t>(coordinator::kMaxReceiveMessageBytes);
       ++i) {
    report.mutable_progress()->set_attempt_id(1'000'000'000 + i);
    report.mutable_progress()->set_step(i);
    *largest.mutable_reports()->add_messages() = report;
  }
  const grpc::ByteBuffer largest_bytes = Serialized(largest);
  v1::WorkerMessage out_of_bounds;
  (*out_of_bounds.mutable_progress()
        ->mutable_metrics())[std::string(proto::kMaxNameLength + 1, 'x')] = 0.5;
  out_of_bounds.mutable_progress()->set_attempt_id(1'000'000'000);
  const grpc::ByteBuffer out_of_bounds_bytes = Serialized(out_of_bounds);
  v1::WorkerMessage oversized;
  oversized.mutable_hello()->set_host(
      std::string(coordinator::kMaxReceiveMessageBytes + 1024, 'h'));
  const grpc::ByteBuffer oversized_bytes = Serialized(oversized);
  // Sends one message; whether the stream took it.
  auto send = [&](grpc::GenericClientAsyncReaderWriter& stream, const grpc::ByteBuffer& bytes) {
    stream.Write(bytes, nullptr);
    if (!Await(queue)) return false;
    ++worker_messages_;
    worker_bytes_ += static_cast<int64_t>(bytes.Length());
    return true;
  };
  for (int64_t session = 0; !stop_.load(); ++session) {
    grpc::ClientContext context;
    InFlight(&worker_call_, &context);
    auto stream = stub.PrepareCall(&context, "/hippo.v1.WorkerService/Session", &queue);
    stream->StartCall(nullptr);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id("hostile-" + std::to_string(session));
    hello.mutable_hello()->add_trainers("no-study-uses-this-kind");
    if (Await(queue) && send(*stream, Serialized(hello))) {
      bool open = true;
      for (int i = 0; i < 8 && open && !stop_.load(); ++i) open = send(*stream, largest_bytes);
      // Then a report out of bounds, and a message above the receive limit: the coordinator
      // ends the stream (these writes fail once it has).
      if (open) open = send(*stream, out_of_bounds_bytes);
      if (open) open = send(*stream, oversized_bytes);
      if (open) {
        stream->WritesDone(nullptr);
        (void)Await(queue);  // the stream's status says how it ended
      }
      grpc::ByteBuffer ignored;
      do {
        stream->Read(&ignored, nullptr);
      } while (Await(queue));
    }
    grpc::Status status;
    stream->Finish(&status, nullptr);  // RESOURCE_EXHAUSTED, as the limit says
    (void)Await(queue);                // Finish's event always comes; its outcome is in `status`
    InFlight(&worker_call_, nullptr);
  }
  Drain(queue);
}

}  // namespace hippo::benchmarks
