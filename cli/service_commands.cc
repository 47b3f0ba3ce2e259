// `hippo server` and `hippo worker`: long-running processes stopped by SIGINT or SIGTERM.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/commands.h"
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

bool ReadToken(const std::string& token_file, std::string* token) {
  token->clear();
  if (token_file.empty()) {
    if (const char* env = std::getenv("HIPPO_TOKEN"); env != nullptr) *token = env;
    return true;
  }
  std::ifstream file(token_file);
  if (!file || !std::getline(file, *token) || token->empty()) {
    std::cerr << "hippo: --token-file " << token_file << ": cannot read a token from it\n";
    return false;
  }
  return true;
}

}  // namespace

int ServerCommand(const ServerCommandOptions& options) {
  coordinator::ServerOptions server_options;
  server_options.listen = options.listen;
  server_options.db_path = options.db;
  server_options.lease_seconds = options.lease_seconds;
  server_options.plugins = options.plugins;
  if (!ReadToken(options.token_file, &server_options.token)) return kExitBadInput;
  const sigset_t signals = BlockStopSignals();
  absl::StatusOr<std::unique_ptr<coordinator::Server>> server =
      coordinator::Server::Start(server_options);
  if (!server.ok()) {
    std::cerr << "hippo server: " << server.status().message() << "\n";
    return server.status().code() == absl::StatusCode::kFailedPrecondition ? kExitBadInput
                                                                           : kExitFailure;
  }
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::cout << "hippo server listening on " << host << ":" << (*server)->port() << " (database "
            << options.db << ")" << std::endl;
  int signal = 0;
  sigwait(&signals, &signal);
  std::cout << "hippo server: stopping" << std::endl;
  (*server)->Shutdown();
  return kExitOk;
}

int WorkerCommand(const WorkerCommandOptions& options) {
  workers::WorkerOptions worker_options;
  worker_options.coordinator = options.client.coordinator;
  if (worker_options.coordinator.empty()) {
    const char* env = std::getenv("HIPPO_COORDINATOR");
    worker_options.coordinator = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  }
  if (!ReadToken(options.client.token_file, &worker_options.token)) return kExitBadInput;
  worker_options.worker_id = options.id;
  worker_options.checkpoint_dir = options.checkpoint_dir;
  worker_options.cache_bytes = options.cache_mb * 1024 * 1024;
  worker_options.device = options.device;
  worker_options.trainers = workers::BuiltinTrainerKinds();
  const sigset_t signals = BlockStopSignals();
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
    return status.code() == absl::StatusCode::kInvalidArgument ? kExitBadInput : kExitFailure;
  }
  return kExitOk;
}

}  // namespace hippo::cli
