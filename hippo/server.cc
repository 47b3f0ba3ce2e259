#include "hippo/server.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "hippo/client_pacing.h"
#include "hippo/cpu_budget.h"
#include "hippo/grpc_calls.h"
#include "hippo/report_bounds.h"
#include "hippo/request_bounds.h"
#include "hippo/study_pages.h"
#include "hippo/study_watch.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "hippo/worker_service.h"
#include "proto/spec_validator.h"
#include "search_algos/plugin.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;

// The contents of a PEM file named by `flag`.
absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& flag) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  if (!file || text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": cannot read a PEM file there"));
  }
  return text.str();
}

// The server's credentials: TLS from the PEM files, else plaintext.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key: give both (the certificate chain and its private key) or "
        "neither");
  }
  if (options.tls_cert_file.empty()) {
    if (!IsLoopback(options.listen) && !options.insecure) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--listen ", options.listen,
          " is not a loopback address: serve TLS (--tls-cert FILE --tls-key FILE) so that the "
          "token and the studies do not cross the network in plaintext, or pass --insecure"));
    }
    return grpc::InsecureServerCredentials();
  }
  absl::StatusOr<std::string> cert = ReadPem(options.tls_cert_file, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(options.tls_key_file, "--tls-key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  return grpc::SslServerCredentials(ssl);
}

// First guesses of an answer's bytes per item, before one was measured, and the most an
// answer can hold (ClientPacing: estimates are learned from the answers, and capped by these).
constexpr int64_t kViewGuessBytes = 4 << 10;  // a study's view: its spec, usually small
constexpr int64_t kTrialGuessBytes = 512;
constexpr int64_t kStageGuessBytes = 256;
constexpr int64_t kWorkerGuessBytes = 256;
constexpr int64_t kSmallAnswerBytes = 1 << 10;
// A study's view holds its spec, and a few fields and its best trial besides.
constexpr int64_t kMaxViewBytes = static_cast<int64_t>(proto::kMaxStudySpecBytes) + (64 << 10);
constexpr int64_t kMaxStudiesPageBytes = static_cast<int64_t>(kMaxStudyPageBytes) + kMaxViewBytes;
// Other answers: the estimate is capped at what a client takes by default.
constexpr int64_t kMaxAnswerEstimateBytes = kMaxReceiveMessageBytes;

AnswerEstimate Estimate(const char* method, int64_t items, int64_t guess_bytes_per_item,
                        int64_t max_bytes) {
  return AnswerEstimate{.method = method,
                        .items = items,
                        .guess_bytes_per_item = guess_bytes_per_item,
                        .max_bytes = max_bytes};
}

// The items a page asks for: `fallback` for 0 (or a negative size, which is refused later), at
// most `max`.
int64_t PageItems(int32_t page_size, size_t fallback, size_t max) {
  if (page_size <= 0) return static_cast<int64_t>(fallback);
  return static_cast<int64_t>(std::min(static_cast<size_t>(page_size), max));
}

// The study service: synchronous, but for WatchStudy, whose streams are served on gRPC's
// callback API by one thread for them all (WatchStreams). Every call but WatchStudy is paced
// on the clients' budgets: the CPU time it takes (CpuBudget: the debt of earlier calls waited
// out on arrival, its own CPU time charged once done) and its bytes (ClientPacing: charged its
// request and its answer's estimate before any work, settled with its answer's size before that
// is sent); its fields are checked against their bounds (request_bounds.h) once it is admitted.
class StudyServiceImpl final
    : public v1::StudyService::WithCallbackMethod_WatchStudy<v1::StudyService::Service> {
 public:
  StudyServiceImpl(Engine* engine, std::string token, ByteBudget* budget, CpuBudget* cpu,
                   int64_t ask_work_bytes_per_trial)
      : engine_(engine),
        token_(std::move(token)),
        ask_work_bytes_per_trial_(ask_work_bytes_per_trial),
        pacing_(budget),
        cpu_(cpu),
        watchers_(engine, WatchStreams::Options()) {}

  // Ends the open WatchStudy streams; later ones are refused.
  void StopWatches() { watchers_.Stop(); }

  ClientPacingStats pacing_stats() const { return pacing_.stats(); }

  grpc::Status CreateStudy(grpc::ServerContext* context, const v1::CreateStudyRequest* request,
                           v1::Study* response) override {
    // A spec over the size limit is refused by the engine's first check, its size: only a spec
    // the engine will work on draws on the budget. The refusal is paced on a budget of its own
    // (at most a second's wait each), so that a client sending such specs in a loop is slowed
    // without making valid requests wait.
    const size_t bytes = request->spec().ByteSizeLong();
    if (bytes > proto::kMaxStudySpecBytes) {
      if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
      const absl::Status refused =
          engine_->CreateStudy(request->spec(), request->no_merge()).status();
      ClientPacing::Sleep(
          context, std::min<ByteBudget::Clock::duration>(
                       *oversized_.Charge(static_cast<int64_t>(bytes), ByteBudget::Clock::now(),
                                          /*refusable=*/false),
                       std::chrono::seconds(1)));
      return ToGrpc(refused);
    }
    // The view answered holds the spec: its size is known, not guessed.
    AnswerEstimate answer =
        Estimate("CreateStudy", 1, static_cast<int64_t>(bytes) + kSmallAnswerBytes, kMaxViewBytes);
    answer.learn = false;
    return Answer(
        context, *request, answer,
        [&] { return engine_->CreateStudy(request->spec(), request->no_merge()); }, response);
  }

  grpc::Status GetStudy(grpc::ServerContext* context, const v1::GetStudyRequest* request,
                        v1::Study* response) override {
    return Answer(
        context, *request, Estimate("GetStudy", 1, kViewGuessBytes, kMaxViewBytes),
        [&] { return engine_->GetStudy(request->study_id()); }, response);
  }

  grpc::Status ListStudies(grpc::ServerContext* context, const v1::ListStudiesRequest* request,
                           v1::ListStudiesResponse* response) override {
    const AnswerEstimate answer = Estimate(
        "ListStudies", PageItems(request->page_size(), kDefaultStudyPageSize, kMaxStudyPageSize),
        kViewGuessBytes, kMaxStudiesPageBytes);
    return Paced(context, *request, answer, *response, [&](int64_t* items) {
      absl::StatusOr<StudyPage> page = ParseStudyPage(*request);
      if (!page.ok()) return ToGrpc(page.status());
      size_t total = 0;
      std::vector<v1::Study> studies = engine_->ListStudies(page->offset, page->size, &total);
      if (page->offset > total) {
        return ToGrpc(absl::InvalidArgumentError(
            "page_token: points past the last study; pass the next_page_token of the previous "
            "page, or none for the first page"));
      }
      for (v1::Study& study : studies) *response->add_studies() = std::move(study);
      const size_t end = page->offset + studies.size();
      if (end < total) response->set_next_page_token(StudyPageToken(end));
      *items = response->studies_size();
      return grpc::Status::OK;
    });
  }

  grpc::Status StopStudy(grpc::ServerContext* context, const v1::StopStudyRequest* request,
                         v1::Study* response) override {
    return Answer(
        context, *request, Estimate("StopStudy", 1, kViewGuessBytes, kMaxViewBytes),
        [&] { return engine_->StopStudy(request->study_id(), request->reason()); }, response);
  }

  grpc::ServerWriteReactor<v1::StudyEvent>* WatchStudy(
      grpc::CallbackServerContext* context, const v1::WatchStudyRequest* request) override {
    grpc::Status admitted = Authorize(context, token_);
    if (admitted.ok()) admitted = ToGrpc(CheckRequestBounds(*request));
    return watchers_.Open(request->study_id(), std::move(admitted));
  }

  grpc::Status ListTrials(grpc::ServerContext* context, const v1::ListTrialsRequest* request,
                          v1::ListTrialsResponse* response) override {
    // Pages with metrics are learned apart: a trial's metrics may hold far more than its view.
    const AnswerEstimate answer =
        Estimate(request->with_metrics() ? "ListTrials.metrics" : "ListTrials",
                 PageItems(request->page_size(), kDefaultTrialPageSize, kMaxTrialPageSize),
                 kTrialGuessBytes, kMaxAnswerEstimateBytes);
    return Paced(context, *request, answer, *response, [&](int64_t* items) {
      absl::StatusOr<size_t> size =
          PageSizeOf(request->page_size(), kDefaultTrialPageSize, kMaxTrialPageSize, "trials");
      if (!size.ok()) return ToGrpc(size.status());
      if (request->changed_since() < 0) {
        return ToGrpc(absl::InvalidArgumentError(
            "changed_since: must not be negative; 0 lists every trial, else pass the version of "
            "the first page of an earlier listing"));
      }
      TrialQuery query;
      query.changed_since = request->changed_since();
      query.limit = *size;
      query.with_metrics = request->with_metrics();
      query.metric_names.assign(request->metric_names().begin(), request->metric_names().end());
      // The listing a token belongs to: the study and the filter (changed_since).
      const std::string list =
          absl::StrCat("trials.", request->study_id(), ".", request->changed_since());
      if (!request->page_token().empty()) {
        absl::StatusOr<std::vector<int64_t>> after =
            ParsePageToken(list, "ListTrials", request->page_token(), 2);
        if (!after.ok()) return ToGrpc(after.status());
        query.after_version = (*after)[0];
        query.after_trial = (*after)[1];
      }
      absl::StatusOr<TrialPage> page = engine_->ListTrialsPage(request->study_id(), query);
      if (!page.ok()) return ToGrpc(page.status());
      *response = std::move(page->response);
      if (page->more) {
        response->set_next_page_token(PageToken(list, {page->last_version, page->last_trial}));
      }
      *items = response->trials_size();
      return grpc::Status::OK;
    });
  }

  grpc::Status GetBestTrial(grpc::ServerContext* context, const v1::GetBestTrialRequest* request,
                            v1::Trial* response) override {
    return Answer(
        context, *request, Estimate("GetBestTrial", 1, kTrialGuessBytes, kMaxAnswerEstimateBytes),
        [&] { return engine_->GetBestTrial(request->study_id()); }, response);
  }

  grpc::Status GetStageTree(grpc::ServerContext* context, const v1::GetStageTreeRequest* request,
                            v1::StageTree* response) override {
    const AnswerEstimate answer =
        Estimate(request->dot() ? "GetStageTree.dot" : "GetStageTree",
                 PageItems(request->page_size(), kDefaultStagePageSize, kMaxStagePageSize),
                 kStageGuessBytes, kMaxAnswerEstimateBytes);
    return Paced(context, *request, answer, *response, [&](int64_t* items) {
      absl::StatusOr<size_t> size =
          PageSizeOf(request->page_size(), kDefaultStagePageSize, kMaxStagePageSize, "stages");
      if (!size.ok()) return ToGrpc(size.status());
      StageQuery query;
      query.dot = request->dot();
      query.limit = *size;
      const std::string list = absl::StrCat("stages.", request->study_id());
      if (!request->page_token().empty()) {
        absl::StatusOr<std::vector<int64_t>> after =
            ParsePageToken(list, "GetStageTree", request->page_token(), 1);
        if (!after.ok()) return ToGrpc(after.status());
        query.after_stage = (*after)[0];
      }
      absl::StatusOr<StagePage> page = engine_->GetStageTreePage(request->study_id(), query);
      if (!page.ok()) return ToGrpc(page.status());
      *response = std::move(page->tree);
      if (page->more) response->set_next_page_token(PageToken(list, {page->last_stage}));
      *items = response->stages_size();
      return grpc::Status::OK;
    });
  }

  grpc::Status Ask(grpc::ServerContext* context, const v1::AskRequest* request,
                   v1::AskResponse* response) override {
    // Charged for `count` trials before the engine makes any (the engine refuses a count whose
    // answer would pass kMaxReceiveMessageBytes, engine_ask_tell.cc).
    AnswerEstimate answer =
        Estimate("Ask", request->count(), kTrialGuessBytes, kMaxAnswerEstimateBytes);
    // A count the engine refuses makes no trial, so its refusal names `count` at once.
    if (request->count() >= 1 && request->count() <= kMaxAskCount) {
      answer.work_bytes_per_item = ask_work_bytes_per_trial_;
    }
    return Paced(context, *request, answer, *response, [&](int64_t* items) {
      absl::StatusOr<v1::AskResponse> asked = engine_->Ask(request->study_id(), request->count());
      if (!asked.ok()) return ToGrpc(asked.status());
      *response = *std::move(asked);
      *items = response->trials_size();
      return grpc::Status::OK;
    });
  }

  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override {
    const AnswerEstimate answer = Estimate(
        "ListWorkers", PageItems(request->page_size(), kDefaultWorkerPageSize, kMaxWorkerPageSize),
        kWorkerGuessBytes, kMaxAnswerEstimateBytes);
    return Paced(context, *request, answer, *response, [&](int64_t* items) {
      absl::StatusOr<size_t> size =
          PageSizeOf(request->page_size(), kDefaultWorkerPageSize, kMaxWorkerPageSize, "workers");
      if (!size.ok()) return ToGrpc(size.status());
      // Workers are listed by id: the token holds the last id of the previous page.
      std::string after;
      if (!request->page_token().empty()) {
        absl::StatusOr<std::string> key =
            ParsePageTokenAfterKey("workers.after", "ListWorkers", request->page_token());
        if (!key.ok()) return ToGrpc(key.status());
        after = *std::move(key);
      }
      std::vector<v1::WorkerInfo> workers = engine_->ListWorkers();  // sorted by id
      auto it = request->page_token().empty()
                    ? workers.begin()
                    : std::upper_bound(workers.begin(), workers.end(), after,
                                       [](const std::string& key, const v1::WorkerInfo& worker) {
                                         return key < worker.worker_id();
                                       });
      for (; it != workers.end() && static_cast<size_t>(response->workers_size()) < *size; ++it) {
        *response->add_workers() = std::move(*it);
      }
      if (it != workers.end()) {
        response->set_next_page_token(PageTokenAfterKey(
            "workers.after", response->workers(response->workers_size() - 1).worker_id()));
      }
      *items = response->workers_size();
      return grpc::Status::OK;
    });
  }

  grpc::Status CollectGarbage(grpc::ServerContext* context,
                              const v1::CollectGarbageRequest* request,
                              v1::CollectGarbageResponse* response) override {
    return Paced(context, *request,
                 Estimate("CollectGarbage", 1, kSmallAnswerBytes, kMaxAnswerEstimateBytes),
                 *response, [&](int64_t* items) {
                   *response = engine_->CollectGarbage();
                   *items = 1;
                   return grpc::Status::OK;
                 });
  }

  grpc::Status DeleteStudy(grpc::ServerContext* context, const v1::DeleteStudyRequest* request,
                           v1::DeleteStudyResponse* response) override {
    return Answer(
        context, *request, Estimate("DeleteStudy", 1, kSmallAnswerBytes, kMaxAnswerEstimateBytes),
        [&] { return engine_->DeleteStudy(request->study_id()); }, response);
  }

  grpc::Status RetryTrials(grpc::ServerContext* context, const v1::RetryTrialsRequest* request,
                           v1::RetryTrialsResponse* response) override {
    return Answer(
        context, *request, Estimate("RetryTrials", 1, kSmallAnswerBytes, kMaxAnswerEstimateBytes),
        [&] { return engine_->RetryTrials(*request); }, response);
  }

  grpc::Status Tell(grpc::ServerContext* context, const v1::TellRequest* request,
                    v1::TellResponse* response) override {
    AnswerEstimate answer = Estimate("Tell", 1, 0, 0);  // an empty answer
    answer.learn = false;
    return Paced(context, *request, answer, *response, [&](int64_t* items) {
      *items = 1;
      return ToGrpc(engine_->Tell(*request));
    });
  }

 private:
  // Admits the call (its token; the clients' CPU debt, CpuBudget; its request and the estimate
  // of its answer, ClientPacing), checks its fields' bounds, runs `build`, which fills
  // `response`, says how many items it holds and returns the call's status, settles the answer's
  // actual size before it is sent, and charges the CPU time all this took on this thread. A
  // refused call does nothing; a call that fails is settled as an empty answer.
  template <typename Build>
  grpc::Status Paced(grpc::ServerContext* context, const google::protobuf::Message& request,
                     const AnswerEstimate& answer, const google::protobuf::Message& response,
                     Build build) {
    if (grpc::Status status = Authorize(context, token_); !status.ok()) return status;
    CpuBudget::Ticket ticket;
    if (grpc::Status status = cpu_->Admit(context, answer.method, answer.items, &ticket);
        !status.ok()) {
      return status;
    }
    int64_t reserved = 0;
    if (grpc::Status status = pacing_.Admit(context, request, answer, &reserved); !status.ok()) {
      cpu_->Settle(ticket, 0);
      return status;
    }
    int64_t items = 0;
    grpc::Status status = ToGrpc(CheckRequestBounds(request));
    if (status.ok()) status = build(&items);
    pacing_.Settle(context, answer, reserved,
                   status.ok() ? static_cast<int64_t>(response.ByteSizeLong()) : 0,
                   status.ok() ? items : 0);
    cpu_->Settle(ticket, status.ok() ? items : 0);
    return status;
  }

  // Paced for an engine call that returns one view (`call` returns a StatusOr of it).
  template <typename Call, typename T>
  grpc::Status Answer(grpc::ServerContext* context, const google::protobuf::Message& request,
                      const AnswerEstimate& answer, Call call, T* response) {
    return Paced(context, request, answer, *response, [&](int64_t* items) {
      auto result = call();
      if (!result.ok()) return ToGrpc(result.status());
      *response = *std::move(result);
      *items = 1;
      return grpc::Status::OK;
    });
  }

  Engine* engine_;
  std::string token_;
  int64_t ask_work_bytes_per_trial_;
  ClientPacing pacing_;
  CpuBudget* cpu_;
  // Specs over the size limit, refused: the same rate as the clients' budget, apart from it.
  ByteBudget oversized_{ByteBudgetOptions()};
  WatchStreams watchers_;
};

// InvalidArgument naming the first setting of `budget` that cannot work: a rate or burst that is
// not positive, or a burst below a large message (which would then always wait).
absl::Status CheckBudget(const ByteBudgetOptions& budget, const std::string& name,
                         const std::string& rate_flag) {
  if (!(budget.bytes_per_second > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ".bytes_per_second (", rate_flag,
                                                   "): must be a positive number of bytes per "
                                                   "second, e.g. 1MiB (got ",
                                                   budget.bytes_per_second, ")"));
  }
  if (!(budget.burst_bytes >= static_cast<double>(budget.large_message_bytes)) ||
      budget.large_message_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ".burst_bytes: must be at least large_message_bytes (", budget.large_message_bytes,
        ", itself positive; got ", budget.burst_bytes, ")"));
  }
  if (!(budget.max_wait_seconds >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(name,
                                                   ".max_wait_seconds: must not be "
                                                   "negative (got ",
                                                   budget.max_wait_seconds, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLoopback(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

bool TokenMatches(std::string_view given, std::string_view expected) {
  // Every byte of `expected` is compared whatever `given` holds; volatile keeps the compiler
  // from ending the loop at the first difference.
  volatile unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char byte = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    difference = difference | (byte ^ static_cast<unsigned char>(expected[i]));
  }
  return difference == 0;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  if (absl::Status status = CheckBudget(options.worker_large_messages, "worker_large_messages",
                                        "--worker-bytes-per-second");
      !status.ok()) {
    return status;
  }
  if (absl::Status status = CheckBudget(options.client_large_messages, "client_large_messages",
                                        "--client-bytes-per-second");
      !status.ok()) {
    return status;
  }
  if (absl::Status status = CheckCpuBudget(options.client_cpu); !status.ok()) return status;
  if (options.ask_work_bytes_per_trial < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ask_work_bytes_per_trial: must not be negative (got ",
                     options.ask_work_bytes_per_trial, ")"));
  }
  if (options.token.empty() && !options.insecure) {
    return absl::FailedPreconditionError(
        "no token: give one (--token-file FILE or HIPPO_TOKEN; by default `hippo server` makes "
        "one beside its database), or pass --insecure to let every caller in");
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = Credentials(options);
  if (!credentials.ok()) return credentials.status();
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
  engine_options.collect_checkpoints = options.collect_checkpoints;
  engine_options.keep_best_states = options.keep_best_states;
  engine_options.compact_ops_after = options.compact_ops_after;
  engine_options.retry_backoff_seconds = options.retry_backoff_seconds;
  engine_options.unhealthy_after_failures = options.unhealthy_after_failures;
  engine_options.drain_seconds = options.drain_seconds;
  engine_options.send_from_committer = true;  // StreamChannel::Send only queues
  server->engine_ = std::make_unique<Engine>(server->store_.get(), engine_options);
  if (absl::Status status = server->engine_->Recover(); !status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(options.db_path, ": cannot recover: ", status.message()));
  }
  server->worker_budget_ = std::make_unique<ByteBudget>(options.worker_large_messages);
  server->client_budget_ = std::make_unique<ByteBudget>(options.client_large_messages);
  server->client_cpu_ = std::make_unique<CpuBudget>(options.client_cpu);
  server->study_service_ = std::make_unique<StudyServiceImpl>(
      server->engine_.get(), options.token, server->client_budget_.get(), server->client_cpu_.get(),
      options.ask_work_bytes_per_trial);
  server->worker_service_ =
      MakeWorkerService(server->engine_.get(), options.token, server->worker_budget_.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // Only the study service is synchronous (worker streams use the callback API): one
  // completion queue with few pollers is plenty for it.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  // Explicit, not gRPC's default: the bound every message is checked under (report_bounds.h).
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  builder.AddListeningPort(options.listen, *credentials, &server->port_);
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
  if (study_service_) static_cast<StudyServiceImpl*>(study_service_.get())->StopWatches();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  if (reaper_.joinable()) reaper_.join();
}

ClientPacingStats Server::client_pacing_stats() const {
  return static_cast<const StudyServiceImpl*>(study_service_.get())->pacing_stats();
}

CpuBudgetStats Server::client_cpu_stats() const { return client_cpu_->stats(); }

void Server::Wait() {
  if (server_) server_->Wait();
}

Server::~Server() { Shutdown(); }

}  // namespace hippo::coordinator
