// `hippo server` and `hippo worker`: long-running processes stopped by SIGINT or SIGTERM.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/token.h"
#include "dashboard/server/http_server.h"
#include "hippo/server.h"
#include "workers/worker.h"

namespace hippo::cli {
namespace {

// Blocks SIGINT and SIGTERM in this thread and the threads it starts later, so that one
// thread can wait for them with sigwait.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Sets *token to the client's token (cli/token.h); false, with a message, when it cannot be
// read.
bool LoadClientToken(const std::string& token_file, std::string* token) {
  absl::StatusOr<std::string> read = ClientToken(token_file);
  if (!read.ok()) {
    std::cerr << "hippo: " << read.status().message() << "\n";
    return false;
  }
  *token = *std::move(read);
  return true;
}

// Sets *token to the server's token, made beside the database on first start; "" with
// --insecure, after a warning. False, with a message, when there is none to be had.
bool LoadServerToken(const ServerCommandOptions& options, std::string* token) {
  if (options.insecure) {
    if (!options.token_file.empty()) {
      std::cerr << "hippo server: --insecure and --token-file contradict each other: drop one\n";
      return false;
    }
    std::cerr << "hippo server: WARNING: --insecure: no token is checked, and no TLS is required "
                 "off loopback: whoever can reach "
              << options.listen
              << " can submit studies, and so run programs as the workers' user\n";
    return true;
  }
  absl::StatusOr<ServerToken> loaded = LoadOrCreateServerToken(options.token_file, options.db);
  if (!loaded.ok()) {
    std::cerr << "hippo server: " << loaded.status().message() << "\n";
    return false;
  }
  *token = loaded->token;
  if (loaded->file.empty()) {
    std::cout << "hippo server: token from $HIPPO_TOKEN" << std::endl;
  } else {
    const std::string path = std::filesystem::absolute(loaded->file).string();
    std::cout << "hippo server: token " << (loaded->created ? "created in " : "read from ") << path
              << " (clients: --token-file " << path << ", or HIPPO_TOKEN_FILE)" << std::endl;
  }
  return true;
}

}  // namespace

std::vector<std::string> DefaultWorkerTrainers() {
  std::vector<std::string> kinds;
  for (const std::string& kind : workers::BuiltinTrainerKinds()) {
    if (kind == "sim" || kind == "torch") kinds.push_back(kind);
  }
  return kinds;
}

int ServerCommand(const ServerCommandOptions& options) {
  coordinator::ServerOptions server_options;
  server_options.listen = options.listen;
  server_options.db_path = options.db;
  server_options.lease_seconds = options.lease_seconds;
  server_options.retry_backoff_seconds = options.retry_backoff_seconds;
  server_options.unhealthy_after_failures = options.unhealthy_after;
  server_options.drain_seconds = options.drain_seconds;
  server_options.plugins = options.plugins;
  server_options.collect_checkpoints = options.checkpoint_gc;
  server_options.keep_best_states = options.keep_best_checkpoints;
  server_options.compact_ops_after = options.compact_ops;
  server_options.worker_large_messages.bytes_per_second =
      static_cast<double>(options.worker_bytes_per_second);
  server_options.client_large_messages.bytes_per_second =
      static_cast<double>(options.client_bytes_per_second);
  server_options.client_cpu.cores = options.client_cpu_cores;
  server_options.insecure = options.insecure;
  server_options.tls_cert_file = options.tls_cert;
  server_options.tls_key_file = options.tls_key;
  if (!LoadServerToken(options, &server_options.token)) return kExitBadInput;
  const sigset_t signals = BlockStopSignals();
  absl::StatusOr<std::unique_ptr<coordinator::Server>> server =
      coordinator::Server::Start(server_options);
  if (!server.ok()) {
    std::cerr << "hippo server: " << server.status().message() << "\n";
    return server.status().code() == absl::StatusCode::kFailedPrecondition ||
                   server.status().code() == absl::StatusCode::kInvalidArgument
               ? kExitBadInput
               : kExitFailure;
  }
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::cout << "hippo server listening on " << host << ":" << (*server)->port()
            << (options.tls_cert.empty() ? "" : " (TLS)") << " (database " << options.db << ")"
            << std::endl;
  std::unique_ptr<dashboard::HttpServer> http;
  if (options.http != "off") {
    dashboard::HttpOptions http_options;
    http_options.listen = options.http;
    http_options.token = server_options.token;
    http_options.insecure = options.insecure;
    http_options.tls_cert_file = options.tls_cert;
    http_options.tls_key_file = options.tls_key;
    absl::StatusOr<std::unique_ptr<dashboard::HttpServer>> started =
        dashboard::HttpServer::Start(&(*server)->engine(), http_options);
    if (!started.ok()) {
      std::cerr << "hippo server: " << started.status().message() << "\n";
      (*server)->Shutdown();
      return started.status().code() == absl::StatusCode::kUnavailable ? kExitFailure
                                                                       : kExitBadInput;
    }
    http = *std::move(started);
    // The URL carries the token once (Jupyter's way): the page then keeps it in a cookie.
    std::cout << "hippo server: dashboard at " << http->login_url() << std::endl;
  }
  int signal = 0;
  sigwait(&signals, &signal);
  std::cout << "hippo server: stopping" << std::endl;
  if (http) http->Shutdown();
  (*server)->Shutdown();
  return kExitOk;
}

// `hippo worker --device auto` on a machine with GPUs: one `hippo worker --device cuda:i`
// process per GPU (a fresh process each, so no CUDA state crosses a fork), stopped together.
int WorkerPerGpu(const WorkerCommandOptions& options, int gpus, sigset_t signals) {
  std::vector<pid_t> children;
  for (int gpu = 0; gpu < gpus; ++gpu) {
    std::vector<std::string> args = {"hippo",
                                     "worker",
                                     "--device",
                                     "cuda:" + std::to_string(gpu),
                                     "--checkpoint-dir",
                                     options.checkpoint_dir,
                                     "--cache-mb",
                                     std::to_string(options.cache_mb),
                                     "--checkpoint-budget",
                                     std::to_string(options.checkpoint_budget_bytes)};
    if (!options.client.coordinator.empty()) {
      args.insert(args.end(), {"--coordinator", options.client.coordinator});
    }
    if (!options.client.token_file.empty()) {
      args.insert(args.end(), {"--token-file", options.client.token_file});
    }
    if (!options.client.tls_ca.empty()) {
      args.insert(args.end(), {"--tls-ca", options.client.tls_ca});
    }
    if (!options.id.empty())
      args.insert(args.end(), {"--id", options.id + "-cuda" + std::to_string(gpu)});
    if (!options.trainers.empty()) {
      args.insert(args.end(), {"--trainers", absl::StrJoin(options.trainers, ",")});
    }
    for (const std::string& dir : options.allow_dirs) {
      args.insert(args.end(), {"--allow-dir", dir});
    }
    const pid_t pid = fork();
    if (pid == 0) {
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv("/proc/self/exe", argv.data());
      std::perror("hippo worker: cannot start a worker per GPU");
      _exit(kExitFailure);
    }
    if (pid < 0) {
      std::perror("hippo worker: fork");
      break;
    }
    children.push_back(pid);
  }
  std::cout << "hippo worker: " << children.size() << " workers, one per GPU" << std::endl;
  // Forward a stop signal to every child; wake up when they have all ended on their own.
  std::atomic<bool> all_ended{false};
  std::thread forwarder([&children, &all_ended, signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (all_ended.load()) return;  // their pids may belong to other processes by now
    for (pid_t child : children) kill(child, SIGTERM);
  });
  int exit_code = kExitOk;
  for (pid_t child : children) {
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != kExitOk) exit_code = code;
  }
  all_ended.store(true);
  pthread_kill(forwarder.native_handle(), SIGTERM);
  forwarder.join();
  return children.size() == static_cast<size_t>(gpus) ? exit_code : kExitFailure;
}

int WorkerCommand(const WorkerCommandOptions& options) {
  // Blocked before anything starts a thread (CUDA does): every thread, and the per-GPU children,
  // inherit the mask, and one thread takes the signals with sigwait.
  const sigset_t signals = BlockStopSignals();
  if (options.device == "auto" && options.count_cuda_devices != nullptr) {
    if (const int gpus = options.count_cuda_devices(); gpus > 0) {
      return WorkerPerGpu(options, gpus, signals);
    }
  }
  workers::WorkerOptions worker_options;
  worker_options.coordinator = options.client.coordinator;
  if (worker_options.coordinator.empty()) {
    const char* env = std::getenv("HIPPO_COORDINATOR");
    worker_options.coordinator = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  }
  if (!LoadClientToken(options.client.token_file, &worker_options.token)) return kExitBadInput;
  if (!options.client.tls_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadTlsCa(options.client.tls_ca);
    if (!ca.ok()) {
      std::cerr << "hippo worker: " << ca.status().message() << "\n";
      return kExitBadInput;
    }
    worker_options.tls_root_certs = *std::move(ca);
  }
  worker_options.worker_id = options.id;
  worker_options.checkpoint_dir = options.checkpoint_dir;
  worker_options.cache_bytes = options.cache_mb * 1024 * 1024;
  worker_options.checkpoint_budget_bytes = options.checkpoint_budget_bytes;
  worker_options.device = options.device == "auto" ? "cpu" : options.device;
  worker_options.trainers = options.trainers.empty() ? DefaultWorkerTrainers() : options.trainers;
  worker_options.allow_dirs = options.allow_dirs;
  workers::Worker worker(worker_options);
  std::thread stopper([&worker, signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    worker.Stop();
  });
  absl::Status status = worker.Run();
  // Wake the signal thread if the worker ended on its own (a Drain).
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  if (!status.ok()) {
    std::cerr << "hippo worker: " << status.message() << "\n";
    // Bad flags (an unknown trainer kind, command without --allow-dir) are the user's to fix.
    const bool bad_flags = status.code() == absl::StatusCode::kInvalidArgument ||
                           status.code() == absl::StatusCode::kNotFound;
    return bad_flags ? kExitBadInput : kExitFailure;
  }
  return kExitOk;
}

}  // namespace hippo::cli
