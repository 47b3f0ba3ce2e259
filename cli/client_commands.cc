// Client commands: thin gRPC calls to StudyService with text or JSON output.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/token.h"
#include "google/protobuf/util/json_util.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "search_algos/spec_checks.h"

namespace hippo::cli {
namespace {

namespace v1 = ::hippo::v1;

std::string Coordinator(const ClientOptions& options) {
  if (!options.coordinator.empty()) return options.coordinator;
  if (const char* env = std::getenv("HIPPO_COORDINATOR"); env != nullptr && *env != '\0') {
    return env;
  }
  return "127.0.0.1:50051";
}

class Client {
 public:
  explicit Client(const ClientOptions& options) : address_(Coordinator(options)) {
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (!options.tls_ca.empty()) {
      absl::StatusOr<std::string> ca = ReadTlsCa(options.tls_ca);
      if (!ca.ok()) {
        std::cerr << "hippo: " << ca.status().message() << "\n";
        ok_ = false;
        return;
      }
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = *std::move(ca);
      credentials = grpc::SslCredentials(ssl);
    }
    stub_ = v1::StudyService::NewStub(grpc::CreateChannel(address_, credentials));
    absl::StatusOr<std::string> token = ClientToken(options.token_file);
    if (token.ok()) {
      token_ = *std::move(token);
    } else {
      std::cerr << "hippo: " << token.status().message() << "\n";
      ok_ = false;
    }
  }

  bool ok() const { return ok_; }

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!token_.empty()) context->AddMetadata("x-hippo-token", token_);
    return context;
  }

  // Prints the failure of a call and returns the exit code for it.
  int Fail(const grpc::Status& status) const {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      std::cerr << "hippo: cannot reach the coordinator at " << address_
                << " (start one with `hippo server`, or pass --coordinator ADDR): "
                << status.error_message() << "\n";
      return kExitFailure;
    }
    std::cerr << "hippo: " << status.error_message() << "\n";
    return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                   status.error_code() == grpc::StatusCode::NOT_FOUND
               ? kExitBadInput
               : kExitFailure;
  }

  v1::StudyService::Stub& stub() { return *stub_; }

 private:
  std::string address_;
  std::unique_ptr<v1::StudyService::Stub> stub_;
  std::string token_;
  bool ok_ = true;
};

// Calls `rpc` (a StudyService stub method) for every page of `request`, first to last, handing
// each page to `on_page`; the first failure ends it.
template <typename Request, typename Response, typename OnPage>
grpc::Status ForEachPage(Client& client, Request request,
                         grpc::Status (v1::StudyService::Stub::*rpc)(grpc::ClientContext*,
                                                                     const Request&, Response*),
                         OnPage on_page) {
  do {
    Response page;
    grpc::Status status = (client.stub().*rpc)(client.Context().get(), request, &page);
    if (!status.ok()) return status;
    request.set_page_token(page.next_page_token());
    on_page(page);
  } while (!request.page_token().empty());
  return grpc::Status::OK;
}

// The trials of `response` as JSON, each that starts from another trial's trained state (a
// `morphism` child) with "inherited": {"stage", "step", "trial"}: the stage whose state at step
// `step` it starts from (the Stage.inherited_from of its first stage in GetStageTree) and the
// lowest-numbered trial of the study whose path ends at that stage (the one that trained to
// that state; absent when none of this study did). Ids and steps are strings, as the proto
// JSON mapping writes int64.
grpc::Status TrialsJsonWithInheritance(Client& client, const std::string& study_id,
                                       const v1::ListTrialsResponse& response, std::string* out) {
  std::map<int64_t, const v1::Stage*> inheriting;  // first stage of a family that inherits
  v1::StageTree tree;
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  grpc::Status status =
      ForEachPage(client, request, &v1::StudyService::Stub::GetStageTree,
                  [&](v1::StageTree& page) { tree.mutable_stages()->MergeFrom(page.stages()); });
  if (!status.ok()) return status;
  for (const v1::Stage& stage : tree.stages()) {
    if (stage.inherited_from() != 0) inheriting[stage.id()] = &stage;
  }
  std::map<int64_t, int64_t> trained_by;  // stage -> lowest trial whose path ends there
  for (const v1::Trial& trial : response.trials()) {
    if (trial.path().empty()) continue;
    auto [at, inserted] = trained_by.emplace(trial.path(trial.path_size() - 1), trial.id());
    if (!inserted) at->second = std::min(at->second, trial.id());
  }
  nlohmann::json json = nlohmann::json::parse(ToJson(response));
  for (nlohmann::json& trial : json["trials"]) {
    const auto found = trial.find("path");
    if (found == trial.end() || found->empty()) continue;
    const auto stage = inheriting.find(std::stoll(found->front().get<std::string>()));
    if (stage == inheriting.end()) continue;
    nlohmann::json inherited = {{"stage", std::to_string(stage->second->inherited_from())},
                                {"step", std::to_string(stage->second->start_step())}};
    if (const auto parent = trained_by.find(stage->second->inherited_from());
        parent != trained_by.end()) {
      inherited["trial"] = std::to_string(parent->second);
    }
    trial["inherited"] = std::move(inherited);
  }
  *out = json.dump();
  return grpc::Status::OK;
}

}  // namespace

int SubmitCommand(const ClientOptions& options, const std::string& spec_path, bool no_merge) {
  // The server knows its plugins: the algorithm name is left to it.
  absl::StatusOr<v1::StudySpec> spec =
      search_algos::LoadStudySpecFile(spec_path, search_algos::UnknownAlgorithms::kLeaveToServer);
  if (!spec.ok()) {
    std::cerr << "hippo submit: " << spec.status().message() << "\n";
    return kExitBadInput;
  }
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::CreateStudyRequest request;
  *request.mutable_spec() = *spec;
  request.set_no_merge(no_merge);
  v1::Study study;
  grpc::Status status = client.stub().CreateStudy(client.Context().get(), request, &study);
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(study) << "\n";
  } else {
    std::cout << study.id() << "\n";
  }
  return kExitOk;
}

int StudiesCommand(const ClientOptions& options) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  // Every page, gathered into one response (the JSON output is one object, as before paging).
  v1::ListStudiesResponse response;
  grpc::Status status =
      ForEachPage(client, v1::ListStudiesRequest(), &v1::StudyService::Stub::ListStudies,
                  [&](v1::ListStudiesResponse& page) {
                    for (v1::Study& study : *page.mutable_studies()) {
                      *response.add_studies() = std::move(study);
                    }
                  });
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(response) << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-10s %-24s %-10s %8s %12s\n", "ID", "NAME", "STATE", "TRIALS",
                               "BEST");
  for (const v1::Study& study : response.studies()) {
    std::cout << absl::StrFormat(
        "%-10s %-24s %-10s %8s %12s\n", study.id(), study.spec().name(),
        StudyStateName(study.state()),
        absl::StrFormat("%d/%d", study.trials_completed(), study.trials_total()),
        study.has_best_trial() ? absl::StrFormat("%.4f", study.best_trial().objective_value())
                               : "-");
  }
  return kExitOk;
}

int StudyCommand(const ClientOptions& options, const std::string& study_id) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::GetStudyRequest request;
  request.set_study_id(study_id);
  v1::Study study;
  grpc::Status status = client.stub().GetStudy(client.Context().get(), request, &study);
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(study) << "\n";
  } else {
    PrintStudySummary(study, std::cout);
  }
  return kExitOk;
}

int TrialsCommand(const ClientOptions& options, const std::string& study_id, bool with_metrics) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::ListTrialsRequest request;
  request.set_study_id(study_id);
  request.set_with_metrics(with_metrics);
  request.set_page_size(1000);
  if (options.json) {
    // Every page, gathered into one response (the output is one object, as before paging).
    v1::ListTrialsResponse response;
    grpc::Status status = ForEachPage(client, request, &v1::StudyService::Stub::ListTrials,
                                      [&](v1::ListTrialsResponse& page) {
                                        if (response.version() == 0) {
                                          response.set_version(page.version());
                                        }
                                        response.mutable_trials()->MergeFrom(page.trials());
                                        response.mutable_metrics()->MergeFrom(page.metrics());
                                      });
    if (!status.ok()) return client.Fail(status);
    std::string json;
    status = TrialsJsonWithInheritance(client, study_id, response, &json);
    if (!status.ok()) return client.Fail(status);
    std::cout << json << "\n";
    return kExitOk;
  }
  // The step column is headed by the study's unit (trainer.step_unit).
  v1::GetStudyRequest study_request;
  study_request.set_study_id(study_id);
  v1::Study study;
  grpc::Status status = client.stub().GetStudy(client.Context().get(), study_request, &study);
  if (!status.ok()) return client.Fail(status);
  std::cout << absl::StrFormat("%-6s %-10s %10s %12s  %s\n", "TRIAL", "STATE",
                               absl::AsciiStrToUpper(StepUnit(study.spec())), "OBJECTIVE",
                               "PARAMETERS");
  // Printed a page at a time: a study of any size lists in bounded memory.
  status = ForEachPage(
      client, request, &v1::StudyService::Stub::ListTrials, [&](v1::ListTrialsResponse& page) {
        for (const v1::Trial& trial : page.trials()) {
          std::cout << absl::StrFormat(
              "%-6d %-10s %10s %12s  %s\n", trial.id(), TrialStateName(trial.state()),
              absl::StrFormat("%d/%d", trial.reached_step(), trial.target_step()),
              trial.has_objective_value() ? absl::StrFormat("%.4f", trial.objective_value()) : "-",
              ParametersLine(trial));
          // Why a failed trial failed (`hippo retry` trains it again).
          if (!trial.message().empty()) std::cout << "       " << trial.message() << "\n";
        }
      });
  if (!status.ok()) return client.Fail(status);
  return kExitOk;
}

int BestCommand(const ClientOptions& options, const std::string& study_id) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::GetBestTrialRequest request;
  request.set_study_id(study_id);
  v1::Trial trial;
  grpc::Status status = client.stub().GetBestTrial(client.Context().get(), request, &trial);
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(trial) << "\n";
  } else {
    std::cout << absl::StrFormat("trial %d  objective %.6f\n  %s\n", trial.id(),
                                 trial.objective_value(), ParametersLine(trial));
  }
  return kExitOk;
}

int TreeCommand(const ClientOptions& options, const std::string& study_id, bool dot) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  request.set_dot(dot);
  // Every page, gathered (the tree's stages are at most a few per trial).
  v1::StageTree tree;
  grpc::Status status =
      ForEachPage(client, request, &v1::StudyService::Stub::GetStageTree, [&](v1::StageTree& page) {
        if (!page.dot().empty()) tree.set_dot(page.dot());
        *tree.mutable_steps() = page.steps();
        tree.mutable_stages()->MergeFrom(page.stages());
      });
  if (!status.ok()) return client.Fail(status);
  if (dot) {
    std::cout << tree.dot();
  } else if (options.json) {
    std::cout << ToJson(tree) << "\n";
  } else {
    std::cout << absl::StrFormat("%d stages  trial_steps %d  unique_steps %d  executed %d\n",
                                 tree.stages_size(), tree.steps().trial_steps(),
                                 tree.steps().unique_steps(), tree.steps().executed_steps());
    std::cout << absl::StrFormat("%-14s %-14s %-12s %-8s %-7s %s\n", "STAGE", "PARENT", "STEPS",
                                 "STATE", "TRIALS", "CHECKPOINT");
    for (const v1::Stage& stage : tree.stages()) {
      // A done stage without a checkpoint was trained, and its state was collected or lost
      // since (it is trained again if a stage below needs it).
      const std::string checkpoint = stage.state() != v1::STAGE_DONE  ? "-"
                                     : stage.checkpoint_uri().empty() ? "not kept"
                                                                      : stage.checkpoint_uri();
      std::cout << absl::StrFormat(
          "%-14d %-14d %-12s %-8s %-7d %s\n", stage.id(), stage.parent_id(),
          absl::StrFormat("[%d,%d)", stage.start_step(), stage.end_step()),
          StageStateName(stage.state()), stage.trial_ids_size(), checkpoint);
    }
  }
  return kExitOk;
}

int StopCommand(const ClientOptions& options, const std::string& study_id,
                const std::string& reason) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::StopStudyRequest request;
  request.set_study_id(study_id);
  request.set_reason(reason);
  v1::Study study;
  grpc::Status status = client.stub().StopStudy(client.Context().get(), request, &study);
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(study) << "\n";
  } else {
    std::cout << study.id() << " " << StudyStateName(study.state()) << "\n";
  }
  return kExitOk;
}

namespace {

// A worker's fork cache on one line, as the dashboard's Workers page shows it: the count, then
// the most recent states (the coordinator lists at most 64, newest first), each as
// FAMILY/NODE@STEP: its stage (a worker-facing stage id holds its family in the upper 32 bits)
// and the step after which the state was saved. `--json` lists every state the coordinator
// sends.
std::string ForkCacheLine(const v1::WorkerInfo& worker) {
  constexpr int kShown = 12;
  std::vector<std::string> states;
  for (int i = 0; i < worker.fork_cache_size() && i < kShown; ++i) {
    const v1::CachedState& state = worker.fork_cache(i);
    states.push_back(absl::StrCat(state.stage_id() >> 32, "/", state.stage_id() & 0xffffffff, "@",
                                  state.step()));
  }
  std::string line = absl::StrCat("fork cache: ", worker.cached_states(),
                                  worker.cached_states() == 1 ? " state" : " states");
  if (!states.empty()) absl::StrAppend(&line, ", newest first: ", absl::StrJoin(states, " "));
  const int64_t more = worker.cached_states() - static_cast<int64_t>(states.size());
  if (more > 0) absl::StrAppend(&line, " (+", more, " more)");
  return line;
}

}  // namespace

int WorkersCommand(const ClientOptions& options) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::ListWorkersResponse response;
  grpc::Status status =
      ForEachPage(client, v1::ListWorkersRequest(), &v1::StudyService::Stub::ListWorkers,
                  [&](v1::ListWorkersResponse& page) {
                    response.mutable_workers()->MergeFrom(page.workers());
                  });
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(response) << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-24s %-16s %-10s %-14s %-7s %-12s %s\n", "WORKER", "HOST", "STATE",
                               "STAGE", "CACHED", "TRAINERS", "HEALTH");
  for (const v1::WorkerInfo& worker : response.workers()) {
    std::cout << absl::StrFormat(
        "%-24s %-16s %-10s %-14s %-7d %-12s %s\n", worker.worker_id(), worker.host(),
        !worker.connected()              ? "gone"
        : worker.running_stage_id() != 0 ? "busy"
                                         : "idle",
        worker.running_stage_id() != 0 ? absl::StrCat(worker.running_stage_id()) : "-",
        worker.cached_states(), absl::StrJoin(worker.trainers(), ","),
        worker.healthy() ? std::string("healthy")
                         : absl::StrCat("UNHEALTHY: ", worker.health_message()));
    if (worker.cached_states() > 0) std::cout << "  " << ForkCacheLine(worker) << "\n";
    if (!worker.checkpoint_budget().empty()) {
      std::cout << "  " << absl::CHexEscape(worker.checkpoint_budget()) << "\n";
    }
  }
  return kExitOk;
}

int RetryCommand(const ClientOptions& options, const std::string& study_id,
                 const std::vector<int64_t>& trial_ids) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::RetryTrialsRequest request;
  request.set_study_id(study_id);
  for (int64_t id : trial_ids) request.add_trial_ids(id);
  v1::RetryTrialsResponse response;
  grpc::Status status = client.stub().RetryTrials(client.Context().get(), request, &response);
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(response) << "\n";
    return kExitOk;
  }
  std::cout << response.study().id() << " " << StudyStateName(response.study().state())
            << ": retrying " << response.retried_trial_ids_size() << " trial(s)\n";
  return kExitOk;
}

}  // namespace hippo::cli

namespace hippo::cli {

namespace {

std::string Bytes(int64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

}  // namespace

int GcCommand(const ClientOptions& options) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::CollectGarbageResponse response;
  grpc::Status status =
      client.stub().CollectGarbage(client.Context().get(), v1::CollectGarbageRequest(), &response);
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(response) << "\n";
    return kExitOk;
  }
  std::cout << "freed " << response.freed_checkpoints() << " checkpoints, "
            << Bytes(response.freed_bytes()) << "\n";
  for (const v1::CheckpointDirectoryUsage& usage : response.directories()) {
    // Directories are the workers' words: escaped, so that no escape code reaches the terminal.
    std::cout << "  " << absl::CHexEscape(usage.directory()) << ": freed "
              << usage.freed_checkpoints() << " (" << Bytes(usage.freed_bytes()) << "), kept "
              << usage.kept_checkpoints() << " (" << Bytes(usage.kept_bytes()) << ")";
    if (usage.budget_bytes() > 0) std::cout << ", budget " << Bytes(usage.budget_bytes());
    if (usage.pending_deletions() > 0) {
      std::cout << ", " << usage.pending_deletions() << " to be deleted by its workers";
    }
    std::cout << "\n";
    if (!usage.over_budget().empty()) {
      std::cout << "    " << absl::CHexEscape(usage.over_budget()) << "\n";
    }
  }
  return kExitOk;
}

int DeleteCommand(const ClientOptions& options, const std::string& study_id) {
  Client client(options);
  if (!client.ok()) return kExitBadInput;
  v1::DeleteStudyRequest request;
  request.set_study_id(study_id);
  v1::DeleteStudyResponse response;
  grpc::Status status = client.stub().DeleteStudy(client.Context().get(), request, &response);
  if (!status.ok()) return client.Fail(status);
  if (options.json) {
    std::cout << ToJson(response) << "\n";
    return kExitOk;
  }
  std::cout << "deleted " << absl::CHexEscape(response.study_id()) << ": "
            << response.trials_deleted() << " trials, " << response.freed_checkpoints()
            << " checkpoints (" << Bytes(response.freed_bytes()) << ") released\n";
  return kExitOk;
}

}  // namespace hippo::cli
