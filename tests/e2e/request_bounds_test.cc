// The fields of every StudyService request that name things are bounded (hippo/request_bounds.h;
// docs/security.md, "Bounded inputs"): each string field of each request, found by reflection so
// that a field added later is covered too, is refused one character over its bound with
// INVALID_ARGUMENT naming the field, as are lists over their length; the dashboard's HTTP API
// bounds the study ids of its URLs and a stop's reason the same way (400); and no refusal changes
// a byte of the database. A request at the bounds is not refused for them.
#include "hippo/request_bounds.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "tests/support/db_digest.h"
#include "tests/support/e2e_harness.h"
#include "tests/support/study_specs.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using test_support::DatabaseSha256;

// One unary call of `method` (a StudyService method's name) with `request`, through gRPC's
// generic stub: any request message, whatever its type.
grpc::Status Call(grpc::GenericStub& stub, const std::string& method, const Message& request) {
  const grpc::Slice slice(request.SerializeAsString());
  const grpc::ByteBuffer bytes(&slice, 1);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue queue;
  auto call = stub.PrepareUnaryCall(&context, "/hippo.v1.StudyService/" + method, bytes, &queue);
  call->StartCall();
  grpc::ByteBuffer answer;
  grpc::Status status;
  call->Finish(&answer, &status, nullptr);
  void* tag = nullptr;
  bool ok = false;
  queue.Next(&tag, &ok);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  return status;
}

// The bound of a string field, as request_bounds.h sets it.
size_t BoundOf(const FieldDescriptor& field) {
  if (field.name() == "page_token") return coordinator::kMaxPageTokenLength;
  if (field.name() == "reason") return coordinator::kMaxStopReasonBytes;
  return coordinator::kMaxIdLength;
}

// The most entries of a repeated field.
int EntriesOf(const FieldDescriptor& field) {
  return field.name() == "trial_ids" ? coordinator::kMaxRetriedTrialIds
                                     : coordinator::kMaxMetricNamesListed;
}

struct Refusal {
  std::string method;
  std::unique_ptr<Message> request;
  std::string expected;  // the start of the message
};

// For every unary method of StudyService and every field of its request that is not a message:
// a request with that field just over its bound.
std::vector<Refusal> OverBounds() {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "hippo.v1.StudyService");
  std::vector<Refusal> refusals;
  for (int m = 0; m < service->method_count(); ++m) {
    const google::protobuf::MethodDescriptor* method = service->method(m);
    if (method->server_streaming()) continue;  // WatchStudy: below
    const google::protobuf::Descriptor* input = method->input_type();
    for (int f = 0; f < input->field_count(); ++f) {
      const FieldDescriptor* field = input->field(f);
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) continue;
      std::unique_ptr<Message> request(
          google::protobuf::MessageFactory::generated_factory()->GetPrototype(input)->New());
      const google::protobuf::Reflection* reflection = request->GetReflection();
      std::string expected;
      if (field->is_repeated()) {
        for (int i = 0; i <= EntriesOf(*field); ++i) {
          if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
            reflection->AddString(request.get(), field, "m");
          } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
            reflection->AddInt64(request.get(), field, i);
          } else {
            ADD_FAILURE() << "a repeated field of another type: " << field->full_name();
          }
        }
        expected = field->name() + ": " + std::to_string(EntriesOf(*field) + 1) + " entries";
        refusals.push_back({method->name(), std::move(request), expected});
        // And one entry over its length, for a list of strings.
        if (field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) continue;
        request.reset(
            google::protobuf::MessageFactory::generated_factory()->GetPrototype(input)->New());
        request->GetReflection()->AddString(request.get(), field,
                                            std::string(BoundOf(*field) + 1, 'x'));
        refusals.push_back({method->name(), std::move(request), field->name() + "[0]: too long"});
        continue;
      }
      if (field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) continue;
      reflection->SetString(request.get(), field, std::string(BoundOf(*field) + 1, 'x'));
      refusals.push_back({method->name(), std::move(request), field->name() + ": too long"});
    }
  }
  return refusals;
}

TEST(RequestBoundsTest, EveryFieldOfEveryRequestOverItsBoundIsRefusedNamingItAndChangesNothing) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const int http_port = FreePort();
  const std::string db = dir.File("hippo.db");
  Process server({"server", "--listen", address, "--db", db, "--insecure", "--http",
                  "127.0.0.1:" + std::to_string(http_port)},
                 dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address));
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  // A study to stop and list: an id that exists, so that only the bound can refuse.
  auto typed = Connect(address);
  v1::Study study;
  {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = test_support::AskTellSpec(/*max_trials=*/10);
    ASSERT_TRUE(typed->CreateStudy(&context, request, &study).ok());
  }
  const std::string before = DatabaseSha256(db);

  const std::vector<Refusal> refusals = OverBounds();
  // study_id of ten requests, page_token of four, reason, metric_names, trial_ids at least.
  EXPECT_GE(refusals.size(), 17u);
  for (const Refusal& refusal : refusals) {
    // Ids that exist where the field is not the one over its bound.
    Message& request = *refusal.request;
    const FieldDescriptor* study_id = request.GetDescriptor()->FindFieldByName("study_id");
    if (study_id != nullptr && refusal.expected.rfind("study_id", 0) != 0) {
      request.GetReflection()->SetString(&request, study_id, study.id());
    }
    const grpc::Status status = Call(stub, refusal.method, request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << refusal.method << ": " << refusal.expected << ": " << status.error_message();
    EXPECT_EQ(status.error_message().rfind(refusal.expected, 0), 0u)
        << refusal.method << ": expected " << refusal.expected << "\ngot      "
        << status.error_message();
  }
  // WatchStudy, the one streaming method.
  {
    grpc::ClientContext context;
    v1::WatchStudyRequest request;
    request.set_study_id(std::string(coordinator::kMaxIdLength + 1, 's'));
    auto reader = typed->WatchStudy(&context, request);
    v1::StudyEvent event;
    while (reader->Read(&event)) {
    }
    const grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(status.error_message().rfind("study_id: too long", 0), 0u) << status.error_message();
  }
  // The dashboard's URLs: a study id over the bound, and a stop's reason.
  httplib::Client http("127.0.0.1", http_port);
  const std::string long_id(coordinator::kMaxIdLength + 1, 's');
  for (const std::string& path :
       {"/api/v1/studies/" + long_id, "/api/v1/studies/" + long_id + "/trials",
        "/api/v1/studies/" + long_id + "/tree"}) {
    const httplib::Result result = http.Get(path);
    ASSERT_TRUE(result) << path;
    EXPECT_EQ(result->status, 400) << path << ": " << result->body;
    EXPECT_NE(result->body.find("study_id: too long"), std::string::npos) << result->body;
  }
  const httplib::Headers dashboard = {{"X-Hippo-Dashboard", "1"}};
  const httplib::Result stop = http.Post(
      "/api/v1/studies/" + study.id() + "/stop", dashboard,
      httplib::Params{{"reason", std::string(coordinator::kMaxStopReasonBytes + 1, 'r')}});
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->status, 400) << stop->body;
  EXPECT_NE(stop->body.find("reason: too long"), std::string::npos) << stop->body;
  EXPECT_EQ(DatabaseSha256(db), before);

  // At the bounds nothing is refused for them: the study is stopped with the longest reason.
  {
    grpc::ClientContext context;
    v1::StopStudyRequest request;
    request.set_study_id(study.id());
    request.set_reason(std::string(coordinator::kMaxStopReasonBytes, 'r'));
    v1::Study stopped;
    const grpc::Status status = typed->StopStudy(&context, request, &stopped);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    v1::GetStudyRequest request;
    request.set_study_id(std::string(coordinator::kMaxIdLength, 's'));
    v1::Study unknown;
    EXPECT_EQ(typed->GetStudy(&context, request, &unknown).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

}  // namespace
}  // namespace hippo::e2e
