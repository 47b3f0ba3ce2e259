// The `hippo` subcommands that talk to (or embed) a coordinator. Each returns the process exit
// code: 0 success, 1 runtime failure (unreachable coordinator, failed study), 2 bad input.
#ifndef HIPPO_CLI_COMMANDS_H_
#define HIPPO_CLI_COMMANDS_H_

#include <string>
#include <vector>

namespace hippo::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitBadInput = 2;

// Where a client command connects, and with which token.
struct ClientOptions {
  std::string coordinator;  // empty: $HIPPO_COORDINATOR, else 127.0.0.1:50051
  std::string token_file;   // empty: $HIPPO_TOKEN, $HIPPO_TOKEN_FILE, ./hippo.db.token (token.h)
  std::string tls_ca;  // PEM file of the CA that signed the server's certificate; empty: plaintext
  bool json = false;
};

struct ServerCommandOptions {
  std::string listen = "127.0.0.1:50051";
  std::string db = "hippo.db";
  std::string token_file;  // empty: $HIPPO_TOKEN, else <db>.token, made on first start
  bool insecure = false;   // no token, plaintext allowed off loopback
  std::string tls_cert;    // PEM certificate chain and private key: both or neither
  std::string tls_key;
  double lease_seconds = 10;
  double retry_backoff_seconds = 0.5;
  int unhealthy_after = 3;
  double drain_seconds = 60;
  std::vector<std::string> plugins;
  bool checkpoint_gc = true;  // --no-checkpoint-gc: ServerOptions::collect_checkpoints off
  int keep_best_checkpoints = 0;
  int64_t compact_ops = 10000;
  // Rates of large messages (docs/security.md, "Rates"), bytes per second.
  int64_t worker_bytes_per_second = 1 << 20;
  int64_t client_bytes_per_second = 1 << 20;
  // The CPU time the study service's calls may take, all clients together, in cores.
  double client_cpu_cores = 0.5;
  // The dashboard's HTTP address (host:port); "off" serves none.
  std::string http = "127.0.0.1:8080";
};

struct WorkerCommandOptions {
  ClientOptions client;
  std::string id;
  std::string checkpoint_dir = "hippo-checkpoints";
  int64_t cache_mb = 1024;
  int64_t checkpoint_budget_bytes = 0;  // --checkpoint-budget; 0: none
  // "cpu" or "cuda:N", handed to every trainer; "auto": one worker process per visible GPU
  // (cuda:0, cuda:1, ...), or one CPU worker when there is none.
  std::string device = "auto";
  // Counts the visible GPUs, for "auto" (unset in a build without LibTorch). Called only after
  // the stop signals are blocked: CUDA starts threads, which must inherit that mask.
  int (*count_cuda_devices)() = nullptr;
  // The trainer kinds it serves (--trainers): those named; empty means the default, sim and
  // (where built) torch. `command` is served only when named, and needs allow_dirs.
  std::vector<std::string> trainers;
  // --allow-dir: the directories whose programs the command trainer may run.
  std::vector<std::string> allow_dirs;
};

struct RunOptions {
  std::vector<std::string> spec_paths;  // one or more, run together by one coordinator
  int workers = 4;
  std::string db;              // empty: a temporary database, removed at the end
  std::string checkpoint_dir;  // empty: a temporary directory, removed at the end
  bool no_merge = false;
  bool json = false;
  bool checkpoint_gc = true;   // --no-checkpoint-gc: ServerOptions::collect_checkpoints off
  std::string device = "cpu";  // where the local workers train: "cpu" or "cuda:N"
  bool dashboard = false;      // serve the dashboard while the study runs
  std::string dashboard_listen = "127.0.0.1:0";
};

struct SimulateOptions {
  std::vector<std::string> spec_paths;  // one or more, simulated together
  int workers = 8;
  double seconds_per_step = 1.0;
  bool no_merge = false;
  bool compare = false;  // run merged and trial by trial, report the speedup
  bool json = false;
};

// What `hippo worker` serves without --trainers: sim and, where built, torch; never command.
std::vector<std::string> DefaultWorkerTrainers();

int ServerCommand(const ServerCommandOptions& options);
int WorkerCommand(const WorkerCommandOptions& options);
int RunCommand(const RunOptions& options);
int SimulateCommand(const SimulateOptions& options);

int SubmitCommand(const ClientOptions& options, const std::string& spec_path, bool no_merge);
int StudiesCommand(const ClientOptions& options);
int StudyCommand(const ClientOptions& options, const std::string& study_id);
int TrialsCommand(const ClientOptions& options, const std::string& study_id, bool with_metrics);
int BestCommand(const ClientOptions& options, const std::string& study_id);
int TreeCommand(const ClientOptions& options, const std::string& study_id, bool dot);
int StopCommand(const ClientOptions& options, const std::string& study_id,
                const std::string& reason);
int WorkersCommand(const ClientOptions& options);
// `hippo gc`: collects checkpoint garbage now and prints what it freed per directory.
int GcCommand(const ClientOptions& options);
// `hippo delete STUDY`: removes the study and the checkpoints only it used.
int DeleteCommand(const ClientOptions& options, const std::string& study_id);
// Retries the failed trials `trial_ids` of the study (every failed one when empty).
int RetryCommand(const ClientOptions& options, const std::string& study_id,
                 const std::vector<int64_t>& trial_ids);

}  // namespace hippo::cli

#endif  // HIPPO_CLI_COMMANDS_H_
