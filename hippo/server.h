// The coordinator process: the Engine behind StudyService and WorkerService on a gRPC server,
// with the standard health service and a lease reaper.
#ifndef HIPPO_HIPPO_SERVER_H_
#define HIPPO_HIPPO_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "hippo/byte_budget.h"
#include "hippo/client_pacing.h"
#include "hippo/cpu_budget.h"
#include "hippo/engine.h"
#include "store/store.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace hippo::coordinator {

struct ServerOptions {
  // host:port; port 0 picks a free one (see Server::port()).
  std::string listen = "127.0.0.1:50051";
  std::string db_path = "hippo.db";
  // Shared secret expected in the "x-hippo-token" metadata of every call (compared in constant
  // time). Required unless `insecure`.
  std::string token;
  // Allows an empty token (every caller is trusted) and plaintext on a non-loopback address.
  bool insecure = false;
  // PEM files of the server's certificate chain and private key: both or neither. With them the
  // server speaks TLS only; a non-loopback address requires them unless `insecure`.
  std::string tls_cert_file;
  std::string tls_key_file;
  double lease_seconds = 10;
  // Checkpoint garbage collection as studies end, and the workers' checkpoint budgets
  // (EngineOptions::collect_checkpoints, keep_best_states). On unless turned off (`hippo server
  // --no-checkpoint-gc`, `hippo run --no-checkpoint-gc`); `hippo gc` collects on demand either
  // way.
  bool collect_checkpoints = true;
  int keep_best_states = 0;
  int64_t compact_ops_after = 10000;  // EngineOptions::compact_ops_after
  // Failed stages and unhealthy workers (EngineOptions).
  double retry_backoff_seconds = 0.5;
  int unhealthy_after_failures = 3;
  double drain_seconds = 60;
  // Shared libraries of search algorithms to load before recovery (search_algos/plugin.h).
  std::vector<std::string> plugins;
  // Byte budgets (docs/security.md, "Rates"). The large messages of the worker streams,
  // together, are taken at a rate: a stream that sent one waits before its next is read. The
  // study service's requests and answers, together, of every size by default: a call is
  // charged its request and an estimate of its answer on arrival and waits for them before any
  // work (refused with RESOURCE_EXHAUSTED past max_wait_seconds), and the rest of its answer
  // before that is sent (client_pacing.h). `hippo server --worker-bytes-per-second` and
  // `--client-bytes-per-second` set the rates; Start refuses a rate or burst that is not
  // positive, or a burst below large_message_bytes.
  ByteBudgetOptions worker_large_messages;
  ByteBudgetOptions client_large_messages = {.large_message_bytes = 1, .max_wait_seconds = 10};
  // What an Ask is charged on the clients' budget per trial it asks for, on top of its answer,
  // for the work of making the trial (client_pacing.h): at the default rate, about 400 trials a
  // second for all clients together.
  int64_t ask_work_bytes_per_trial = 2 << 10;
  // The CPU time the study service's calls may take, all clients together (docs/security.md,
  // "Rates"; cpu_budget.h): each call is charged its handler thread's CPU time once done, and
  // calls wait on arrival while earlier ones took more than the rate paid for (refused with
  // RESOURCE_EXHAUSTED past max_wait_seconds). `hippo server --client-cpu-cores` sets the rate;
  // Start refuses one that is not positive.
  CpuBudgetOptions client_cpu;
};

// Whether `address` (host:port) listens on loopback only.
bool IsLoopback(const std::string& address);

// Whether `given` equals `expected`, in a time that depends only on expected's length (so that
// a caller cannot find the token byte by byte from the time a refusal takes).
bool TokenMatches(std::string_view given, std::string_view expected);

class Server {
 public:
  // Opens the store, recovers the engine from it and starts serving. FailedPrecondition without
  // a token or without TLS on a non-loopback address (unless `insecure`), or for a store that
  // cannot be opened; InvalidArgument for unreadable TLS files or budgets that cannot work.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  int port() const { return port_; }
  Engine& engine() { return *engine_; }
  // Stops accepting calls, ends open streams and the reaper. Idempotent.
  void Shutdown();
  // Blocks until Shutdown().
  void Wait();
  // What the study service's calls were charged so far (for tests and benchmarks): bytes, and
  // CPU time.
  ClientPacingStats client_pacing_stats() const;
  CpuBudgetStats client_cpu_stats() const;

 private:
  Server() = default;

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ByteBudget> worker_budget_;
  std::unique_ptr<ByteBudget> client_budget_;
  std::unique_ptr<CpuBudget> client_cpu_;
  std::unique_ptr<grpc::Service> study_service_;
  std::unique_ptr<grpc::Service> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::thread reaper_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_SERVER_H_
