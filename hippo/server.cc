#include "hippo/server.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <condition_variable>

#include "absl/strings/str_cat.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "search_algos/plugin.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;

constexpr char kTokenHeader[] = "x-hippo-token";

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// Checks the shared secret of a call; OK when the server has none.
grpc::Status Authorize(const grpc::ServerContext* context, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kTokenHeader);
  if (it == metadata.end() || std::string(it->second.data(), it->second.size()) != token) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this coordinator needs a token: pass --token-file FILE (or set "
                        "HIPPO_TOKEN) with the server's shared secret");
  }
  return grpc::Status::OK;
}

class StudyServiceImpl final : public v1::StudyService::Service {
 public:
  StudyServiceImpl(Engine* engine, std::string token, const std::atomic<bool>* stopping)
      : engine_(engine), token_(std::move(token)), stopping_(stopping) {}

  grpc::Status CreateStudy(grpc::ServerContext* context, const v1::CreateStudyRequest* request,
                           v1::Study* response) override {
    return Answer(
        context, [&] { return engine_->CreateStudy(request->spec(), request->no_merge()); },
        response);
  }

  grpc::Status GetStudy(grpc::ServerContext* context, const v1::GetStudyRequest* request,
                        v1::Study* response) override {
    return Answer(
        context, [&] { return engine_->GetStudy(request->study_id()); }, response);
  }

  grpc::Status ListStudies(grpc::ServerContext* context, const v1::ListStudiesRequest*,
                           v1::ListStudiesResponse* response) override {
    if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
    for (v1::Study& study : engine_->ListStudies()) *response->add_studies() = std::move(study);
    return grpc::Status::OK;
  }

  grpc::Status StopStudy(grpc::ServerContext* context, const v1::StopStudyRequest* request,
                         v1::Study* response) override {
    return Answer(
        context, [&] { return engine_->StopStudy(request->study_id(), request->reason()); },
        response);
  }

  grpc::Status WatchStudy(grpc::ServerContext* context, const v1::WatchStudyRequest* request,
                          grpc::ServerWriter<v1::StudyEvent>* writer) override {
    if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
    std::string last;
    while (!context->IsCancelled() && !stopping_->load()) {
      absl::StatusOr<v1::Study> study = engine_->GetStudy(request->study_id());
      if (!study.ok()) return ToGrpc(study.status());
      const std::string now = study->SerializeAsString();
      if (now != last) {
        v1::StudyEvent event;
        *event.mutable_study() = *study;
        if (!writer->Write(event)) return grpc::Status::OK;
        last = now;
      }
      if (study->state() != v1::STUDY_RUNNING && study->state() != v1::STUDY_PENDING) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return grpc::Status::OK;
  }

  grpc::Status ListTrials(grpc::ServerContext* context, const v1::ListTrialsRequest* request,
                          v1::ListTrialsResponse* response) override {
    return Answer(
        context, [&] { return engine_->ListTrials(request->study_id(), request->with_metrics()); },
        response);
  }

  grpc::Status GetBestTrial(grpc::ServerContext* context, const v1::GetBestTrialRequest* request,
                            v1::Trial* response) override {
    return Answer(
        context, [&] { return engine_->GetBestTrial(request->study_id()); }, response);
  }

  grpc::Status GetStageTree(grpc::ServerContext* context, const v1::GetStageTreeRequest* request,
                            v1::StageTree* response) override {
    return Answer(
        context, [&] { return engine_->GetStageTree(request->study_id(), request->dot()); },
        response);
  }

  grpc::Status Ask(grpc::ServerContext* context, const v1::AskRequest* request,
                   v1::AskResponse* response) override {
    return Answer(
        context, [&] { return engine_->Ask(request->study_id(), request->count()); }, response);
  }

  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest*,
                           v1::ListWorkersResponse* response) override {
    if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
    for (v1::WorkerInfo& worker : engine_->ListWorkers()) {
      *response->add_workers() = std::move(worker);
    }
    return grpc::Status::OK;
  }

  grpc::Status Tell(grpc::ServerContext* context, const v1::TellRequest* request,
                    v1::TellResponse*) override {
    if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
    return ToGrpc(engine_->Tell(*request));
  }

 private:
  // Runs `call` only for an authorized caller (a refused call must change nothing).
  template <typename Call, typename T>
  grpc::Status Answer(grpc::ServerContext* context, Call call, T* response) {
    if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
    auto result = call();
    if (!result.ok()) return ToGrpc(result.status());
    *response = *std::move(result);
    return grpc::Status::OK;
  }

  Engine* engine_;
  std::string token_;
  const std::atomic<bool>* stopping_;
};

// Sends to one worker's stream; safe to call from any thread until Close().
class StreamChannel final : public WorkerChannel {
 public:
  explicit StreamChannel(
      grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream)
      : stream_(stream) {}

  bool Send(const v1::CoordinatorMessage& message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stream_ != nullptr && stream_->Write(message);
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mutex_);
    stream_ = nullptr;
  }

 private:
  std::mutex mutex_;
  grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Engine* engine, std::string token)
      : engine_(engine), token_(std::move(token)) {}

  grpc::Status Session(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream) override {
    if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
    v1::WorkerMessage message;
    if (!stream->Read(&message)) return grpc::Status::OK;
    if (!message.has_hello()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "a worker's first message must be hello");
    }
    const std::string worker_id = message.hello().worker_id();
    auto channel = std::make_shared<StreamChannel>(stream);
    absl::StatusOr<int64_t> session = engine_->Connect(message.hello(), channel);
    if (!session.ok()) return ToGrpc(session.status());
    while (stream->Read(&message)) {
      if (absl::Status status = engine_->OnWorkerMessage(worker_id, message); !status.ok()) {
        break;
      }
    }
    channel->Close();
    engine_->Disconnect(worker_id, *session);
    return grpc::Status::OK;
  }

 private:
  Engine* engine_;
  std::string token_;
};

}  // namespace

bool IsLoopback(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  if (!IsLoopback(options.listen) && options.token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--listen ", options.listen,
        " is not a loopback address: give a token (--token-file FILE or HIPPO_TOKEN) so that "
        "only holders of it can submit studies and run workers"));
  }
  for (const std::string& plugin : options.plugins) {
    if (absl::Status status =
            search_algos::LoadPlugin(plugin, search_algos::AlgorithmRegistry::Global());
        !status.ok()) {
      return absl::FailedPreconditionError(status.message());
    }
  }
  std::unique_ptr<Server> server(new Server());
  absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options.db_path);
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);
  EngineOptions engine_options;
  engine_options.lease_seconds = options.lease_seconds;
  server->engine_ = std::make_unique<Engine>(server->store_.get(), engine_options);
  if (absl::Status status = server->engine_->Recover(); !status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(options.db_path, ": cannot recover: ", status.message()));
  }
  server->study_service_ =
      std::make_unique<StudyServiceImpl>(server->engine_.get(), options.token, &server->stopping_);
  server->worker_service_ =
      std::make_unique<WorkerServiceImpl>(server->engine_.get(), options.token);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // One completion queue with few pollers: with a thread per worker stream already, more
  // pollers only add thread switches on a small machine.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->study_service_.get());
  builder.RegisterService(server->worker_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use?)"));
  }
  server->reaper_ = std::thread([raw = server.get()] {
    while (!raw->stopping_.load()) {
      raw->engine_->ExpireLeases(Clock::now());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  return server;
}

void Server::Shutdown() {
  if (stopping_.exchange(true)) return;
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  if (reaper_.joinable()) reaper_.join();
}

void Server::Wait() {
  if (server_) server_->Wait();
}

Server::~Server() { Shutdown(); }

}  // namespace hippo::coordinator
