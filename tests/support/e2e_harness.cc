#include "tests/support/e2e_harness.h"

#include <fcntl.h>
#include <grpcpp/support/client_interceptor.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "workers/assignment.h"
#include "workers/trainer.h"

namespace hippo::e2e {

namespace v1 = ::hippo::v1;

namespace {

std::mutex token_files_mutex;
std::map<std::string, std::string>& TokenFiles() {
  static auto* files = new std::map<std::string, std::string>();
  return *files;
}

// The value of `flag` in `args` ("--flag VALUE" or "--flag=VALUE"); `otherwise` when absent.
std::string FlagValue(const std::vector<std::string>& args, const std::string& flag,
                      const std::string& otherwise = "") {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind(flag + "=", 0) == 0) return args[i].substr(flag.size() + 1);
  }
  return otherwise;
}

bool HasFlag(const std::vector<std::string>& args, const std::string& flag) {
  for (const std::string& arg : args) {
    if (arg == flag || arg.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

// Remembers the token file of a `hippo server` about to start (see TokenFileOf), under its
// address and, for a wildcard address, under 127.0.0.1 too.
void RememberServer(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "server" || HasFlag(args, "--insecure")) return;
  const std::string listen = FlagValue(args, "--listen", "127.0.0.1:50051");
  const std::string file =
      FlagValue(args, "--token-file", FlagValue(args, "--db", "hippo.db") + ".token");
  std::lock_guard<std::mutex> lock(token_files_mutex);
  TokenFiles()[listen] = file;
  const size_t colon = listen.rfind(':');
  const std::string host = listen.substr(0, colon);
  if (host == "0.0.0.0" || host == "[::]") {
    TokenFiles()["127.0.0.1" + listen.substr(colon)] = file;
  }
}

// `args` with `--http off` added for a `hippo server` that does not name its dashboard's
// address: on the default one (127.0.0.1:8080) tests running at once would collide, or reach
// each other's dashboards.
std::vector<std::string> WithDashboardOff(const std::vector<std::string>& args) {
  std::vector<std::string> with = args;
  if (!args.empty() && args[0] == "server" && !HasFlag(args, "--http")) {
    with.insert(with.end(), {"--http", "off"});
  }
  return with;
}

// `env` with HIPPO_TOKEN_FILE added for a client of a remembered coordinator.
Env WithToken(const std::vector<std::string>& args, const Env& env) {
  Env with = env;
  if (args.empty() || args[0] == "server" || HasFlag(args, "--token-file")) return with;
  const std::string file = TokenFileOf(FlagValue(args, "--coordinator"));
  if (!file.empty()) with.emplace("HIPPO_TOKEN_FILE", file);  // env's own value wins
  return with;
}

// The token in `path`, whitespace trimmed; "" when it cannot be read (yet).
std::string ReadToken(const std::string& path) {
  std::ifstream file(path);
  std::string token;
  file >> token;
  return token;
}

// Adds the token of a coordinator's file to every call of a channel.
class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(std::string token) : token_(std::move(token)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!token_.empty() &&
        methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"x-hippo-token", token_});
    }
    methods->Proceed();
  }

 private:
  std::string token_;
};

class TokenInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::string token_file) : token_file_(std::move(token_file)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(ReadToken(token_file_));
  }

 private:
  std::string token_file_;
};

}  // namespace

std::string TokenFileOf(const std::string& address) {
  std::lock_guard<std::mutex> lock(token_files_mutex);
  auto it = TokenFiles().find(address);
  return it == TokenFiles().end() ? "" : it->second;
}

Process::Process(const std::vector<std::string>& args, const std::string& log_path, const Env& env,
                 ProcessLimits limits) {
  RememberServer(args);
  // The child's argv and environment are built here: after fork only async-signal-safe calls.
  std::vector<std::string> strings = {HIPPO_BINARY};
  for (std::string& arg : WithDashboardOff(args)) strings.push_back(std::move(arg));
  std::vector<std::string> environment;
  const Env added = WithToken(args, env);
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string variable(*entry);
    if (!added.contains(variable.substr(0, variable.find('=')))) environment.push_back(variable);
  }
  for (const auto& [name, value] : added) environment.push_back(name + "=" + value);
  std::vector<char*> argv, envp;
  for (std::string& arg : strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  for (std::string& variable : environment) envp.push_back(variable.data());
  envp.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    if (limits.address_space_bytes > 0) {
      const rlimit limit{limits.address_space_bytes, limits.address_space_bytes};
      if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(126);
    }
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
    }
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    Wait();
  }
}

void Process::Kill(int signal) {
  if (!reaped_) kill(pid_, signal);
}

int Process::Wait() {
  if (reaped_) return exit_code_;
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

bool Process::Alive() {
  if (reaped_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

CommandResult RunHippo(const std::vector<std::string>& args, const Env& env) {
  RememberServer(args);
  std::string command;
  for (const auto& [name, value] : WithToken(args, env)) command += name + "='" + value + "' ";
  command += std::string(HIPPO_BINARY);
  for (const std::string& arg : WithDashboardOff(args)) command += " '" + arg + "'";
  command += " 2>&1";
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer;
  size_t read = 0;
  while ((read = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), read);
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  close(fd);
  return port;
}

std::unique_ptr<v1::StudyService::Stub> Connect(const std::string& address) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<TokenInterceptorFactory>(TokenFileOf(address)));
  return v1::StudyService::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
      address, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(factories)));
}

std::chrono::seconds ServerStartTimeout() {
  const char* seconds = std::getenv("HIPPO_TEST_SERVER_START_SECONDS");
  if (seconds != nullptr && std::atoi(seconds) > 0) return std::chrono::seconds(std::atoi(seconds));
  return std::chrono::seconds(60);
}

bool WaitForServer(const std::string& address, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto stub = Connect(address);
    grpc::ClientContext context;
    // A coordinator that is not listening yet fails the call at once; one that is answers
    // within this even on a loaded machine.
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListStudiesResponse response;
    if (stub->ListStudies(&context, v1::ListStudiesRequest(), &response).ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

absl::StatusOr<v1::Study> GetStudy(const std::string& address, const std::string& study_id) {
  auto stub = Connect(address);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetStudyRequest request;
  request.set_study_id(study_id);
  v1::Study study;
  const grpc::Status status = stub->GetStudy(&context, request, &study);
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return study;
}

absl::StatusOr<v1::Study> WaitForStudy(const std::string& address, const std::string& study_id,
                                       std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    // A failed call is retried: the coordinator may be restarting.
    absl::StatusOr<v1::Study> study = GetStudy(address, study_id);
    if (study.ok() && study->state() != v1::STUDY_RUNNING) return study;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError("the study did not finish in time");
}

absl::StatusOr<EndedStudy> WaitForEndedStudy(const std::string& address,
                                             const std::string& study_id,
                                             std::chrono::seconds timeout) {
  absl::StatusOr<v1::Study> study = WaitForStudy(address, study_id, timeout);
  if (!study.ok()) return study.status();
  absl::StatusOr<v1::ListTrialsResponse> trials = TrialsWithMetrics(address, study_id);
  if (!trials.ok()) return trials.status();
  EndedStudy ended;
  ended.study = *std::move(study);
  ended.trials = *std::move(trials);
  ended.curves = CurvesOf(ended.trials);
  return ended;
}

absl::StatusOr<v1::ListTrialsResponse> TrialsWithMetrics(const std::string& address,
                                                         const std::string& study_id) {
  auto stub = Connect(address);
  v1::ListTrialsRequest request;
  request.set_study_id(study_id);
  request.set_with_metrics(true);
  request.set_page_size(1000);
  v1::ListTrialsResponse all;
  do {  // every page
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ListTrialsResponse page;
    grpc::Status status = stub->ListTrials(&context, request, &page);
    if (!status.ok()) return absl::UnavailableError(status.error_message());
    if (all.version() == 0) all.set_version(page.version());
    all.mutable_trials()->MergeFrom(page.trials());
    all.mutable_metrics()->MergeFrom(page.metrics());
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return all;
}

TrialCurves CurvesOf(const v1::ListTrialsResponse& trials) {
  TrialCurves curves;
  for (const v1::TrialMetrics& trial : trials.metrics()) {
    for (const v1::Metric& metric : trial.metrics()) {
      for (const auto& [name, value] : metric.values()) {
        curves[trial.trial_id()][metric.step()][name] = value;
      }
    }
  }
  return curves;
}

absl::StatusOr<std::map<int64_t, std::map<std::string, double>>> StraightRun(
    const v1::StudySpec& spec, const v1::Trial& trial) {
  // Build the Assign a coordinator would send for the whole trial as one root stage.
  v1::Assign assign;
  assign.set_attempt_id(1);
  assign.set_stage_id(1);
  assign.set_start_step(0);
  assign.set_end_step(trial.target_step());
  *assign.mutable_trainer() = spec.trainer();
  assign.add_checkpoint_steps(trial.target_step());
  for (const auto& [name, value] : trial.parameters()) {
    if (value.segments_size() > 0) {
      v1::ParameterSegments* parameter = assign.add_parameters();
      parameter->set_name(name);
      *parameter->mutable_segments() = value.segments();
    } else {
      (*assign.mutable_static_parameters())[name] = value.scalar();
    }
  }
  absl::StatusOr<workers::Assignment> assignment = workers::AssignmentFromProto(assign);
  if (!assignment.ok()) return assignment.status();
  absl::StatusOr<std::unique_ptr<workers::Trainer>> trainer =
      workers::MakeBuiltinTrainer(spec.trainer().kind());
  if (!trainer.ok()) return trainer.status();
  absl::StatusOr<std::unique_ptr<workers::TrainingState>> state =
      (*trainer)->NewState(assignment->task);
  if (!state.ok()) return state.status();
  std::map<int64_t, std::map<std::string, double>> curve;
  workers::StageControl control;
  workers::TrainCallbacks callbacks;
  callbacks.progress = [&](workers::Step step, const workers::Metrics& metrics) {
    for (const auto& [name, value] : metrics) curve[step][name] = value;
  };
  callbacks.checkpoint = [](workers::Step, const workers::TrainingState&) {
    return absl::OkStatus();
  };
  auto outcome = (*trainer)->Train(assignment->task, **state, control, callbacks);
  if (!outcome.ok()) return outcome.status();
  return curve;
}

std::string WorkloadWithConfig(const std::string& name, const std::string& config_yaml) {
  std::ifstream file(std::string(HIPPO_SOURCE_DIR) + "/examples/workloads/" + name);
  std::stringstream text;
  text << file.rdbuf();
  return std::regex_replace(text.str(), std::regex("config: \\{[^}]*\\}"),
                            "config: " + config_yaml);
}

Cluster::Cluster(const TempDir& dir, int workers, const std::vector<std::string>& server_flags,
                 const std::vector<std::string>& worker_flags)
    : address_("127.0.0.1:" + std::to_string(FreePort())), server_log_(dir.File("server.log")) {
  server_args_ = {"server", "--listen", address_, "--db", dir.File("hippo.db")};
  server_args_.insert(server_args_.end(), server_flags.begin(), server_flags.end());
  server_ = std::make_unique<Process>(server_args_, server_log_);
  EXPECT_TRUE(WaitForServer(address_)) << "see " << server_log_;
  for (int i = 0; i < workers; ++i) {
    std::vector<std::string> args = {
        "worker",           "--coordinator",        address_, "--id", "worker-" + std::to_string(i),
        "--checkpoint-dir", dir.File("checkpoints")};
    args.insert(args.end(), worker_flags.begin(), worker_flags.end());
    workers_.push_back(std::make_unique<Process>(args, dir.File("worker.log")));
  }
}

std::string Cluster::Submit(const std::string& spec_path) const {
  const CommandResult submitted = RunHippo({"submit", spec_path, "--coordinator", address_});
  EXPECT_EQ(submitted.exit_code, 0) << submitted.output;
  if (submitted.exit_code != 0) return "";
  return submitted.output.substr(0, submitted.output.find('\n'));
}

Process& Cluster::AddWorker(const std::string& id, const std::string& checkpoint_dir,
                            const std::string& log_path, const Env& env) {
  workers_.push_back(std::make_unique<Process>(
      std::vector<std::string>{"worker", "--coordinator", address_, "--id", id, "--checkpoint-dir",
                               checkpoint_dir},
      log_path, env));
  return *workers_.back();
}

bool Cluster::WaitForWorkers(size_t count, std::chrono::seconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto stub = Connect(address_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListWorkersResponse response;
    if (stub->ListWorkers(&context, v1::ListWorkersRequest(), &response).ok()) {
      size_t connected = 0;
      for (const v1::WorkerInfo& worker : response.workers()) connected += worker.connected();
      if (connected >= count) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void Cluster::KillAndRestartServer() {
  KillServer();
  StartServer(/*wait=*/true);
}

void Cluster::KillServer() {
  server_->Kill(SIGKILL);
  EXPECT_EQ(server_->Wait(), 128 + SIGKILL) << "the coordinator had exited; see " << server_log_;
}

void Cluster::StartServer(bool wait) {
  server_ = std::make_unique<Process>(server_args_, server_log_);
  if (wait) {
    EXPECT_TRUE(WaitForServer(address_)) << "see " << server_log_;
  }
}

}  // namespace hippo::e2e
