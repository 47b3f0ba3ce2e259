// End-to-end harness: real `hippo` processes on loopback, real SQLite files, real SIGKILL.
// Library hippo_test_support; a test that uses it depends on the `hippo` binary (HIPPO_BINARY).
#ifndef HIPPO_TESTS_SUPPORT_E2E_HARNESS_H_
#define HIPPO_TESTS_SUPPORT_E2E_HARNESS_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "tests/support/temp_dir.h"

namespace hippo::e2e {

using test_support::TempDir;

// Environment variables set for one child process.
using Env = std::map<std::string, std::string>;

// Tokens. Authentication is on by default: a `hippo server` started by Process (or RunHippo)
// is remembered with the token file it reads (`--token-file`, else `<db>.token`, which it
// creates; none with --insecure). A later `hippo` process given `--coordinator ADDR` of such a
// server, without --token-file, gets HIPPO_TOKEN_FILE pointing there, as a user's shell would;
// `env` overrides that (HIPPO_TOKEN_FILE set to "" sends no token). Connect() presents the
// token too. Such a server serves no dashboard (`--http off` is added) unless `--http` is
// given: tests running at once must not share the default 127.0.0.1:8080.
// The token file of the coordinator started at `address`; "" when none is known.
std::string TokenFileOf(const std::string& address);

// Resource limits of a child process; 0 leaves one as inherited.
struct ProcessLimits {
  size_t address_space_bytes = 0;  // RLIMIT_AS, as `ulimit -v` sets it
};

// A child process running the hippo binary; killed (SIGKILL) at destruction if still alive.
class Process {
 public:
  // Starts `hippo args...` with stdout and stderr appended to `log_path`, `env` added to the
  // environment (after the token's, see above), under `limits`.
  Process(const std::vector<std::string>& args, const std::string& log_path, const Env& env = {},
          ProcessLimits limits = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Kill(int signal);
  // Waits for the exit; returns the exit code (128 + signal when killed).
  int Wait();
  bool Alive();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
};

// Runs `hippo args...` to completion; returns the exit code and what it printed.
struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
CommandResult RunHippo(const std::vector<std::string>& args, const Env& env = {});

// A loopback port that was free a moment ago.
int FreePort();

// A StudyService client for `address`, presenting the token of the coordinator started there
// (TokenFileOf, read at each call: it may appear after the client was made).
std::unique_ptr<hippo::v1::StudyService::Stub> Connect(const std::string& address);

// How long a coordinator may take to start answering, by default: long, since a test shares
// its machine with builds and other tests (a start that takes it is a slow machine, not a bug).
// HIPPO_TEST_SERVER_START_SECONDS overrides it.
std::chrono::seconds ServerStartTimeout();

// Polls until the coordinator answers (true) or `timeout` passes (false).
bool WaitForServer(const std::string& address, std::chrono::seconds timeout = ServerStartTimeout());

// A coordinator (`hippo server` on a free loopback port, its database `dir`/hippo.db) and
// `workers` worker processes ("worker-0", ...; checkpoints in `dir`/checkpoints), the logs in
// `dir`. The constructor returns once the coordinator answers (a test failure if it does not
// within ServerStartTimeout()); the destructor SIGKILLs whatever still runs. `worker_flags` are
// added to every worker's command line.
class Cluster {
 public:
  Cluster(const TempDir& dir, int workers, const std::vector<std::string>& server_flags = {},
          const std::vector<std::string>& worker_flags = {});

  const std::string& address() const { return address_; }
  // Submits the spec file; the study id, or "" with a test failure.
  std::string Submit(const std::string& spec_path) const;
  // SIGKILLs the coordinator and starts it again on the same database.
  void KillAndRestartServer();
  // SIGKILLs the coordinator (a test failure if it had exited on its own).
  void KillServer();
  // Starts the coordinator again on the same database; with `wait`, returns once it answers
  // (a test failure if it does not within ServerStartTimeout()).
  void StartServer(bool wait);
  const std::string& server_log() const { return server_log_; }
  // Starts one more worker `id` with its own checkpoint directory, its log in `log_path` and
  // `env` added to its environment; the cluster keeps it (SIGKILLed at the end if still alive).
  Process& AddWorker(const std::string& id, const std::string& checkpoint_dir,
                     const std::string& log_path, const Env& env = {});
  // Polls ListWorkers until `count` workers are connected (false after `timeout`).
  bool WaitForWorkers(size_t count, std::chrono::seconds timeout) const;

 private:
  std::string address_;
  std::string server_log_;
  std::vector<std::string> server_args_;
  std::unique_ptr<Process> server_;
  std::vector<std::unique_ptr<Process>> workers_;
};

// The study's view now (one GetStudy, 10 s deadline: a loaded machine answers slowly).
absl::StatusOr<hippo::v1::Study> GetStudy(const std::string& address, const std::string& study_id);

// Polls the study until it is no longer running; returns its final view. Retries while the
// coordinator is down (it may be restarting).
absl::StatusOr<hippo::v1::Study> WaitForStudy(const std::string& address,
                                              const std::string& study_id,
                                              std::chrono::seconds timeout);

// The trials of a study with all their metrics (every page of ListTrials).
absl::StatusOr<hippo::v1::ListTrialsResponse> TrialsWithMetrics(const std::string& address,
                                                                const std::string& study_id);

// Per trial id: per step: metric name -> value.
using TrialCurves = std::map<int64_t, std::map<int64_t, std::map<std::string, double>>>;
TrialCurves CurvesOf(const hippo::v1::ListTrialsResponse& trials);

// A study that has ended: its final view, its trials with their metrics, and the curves.
struct EndedStudy {
  hippo::v1::Study study;
  hippo::v1::ListTrialsResponse trials;
  TrialCurves curves;
};
// WaitForStudy, then TrialsWithMetrics.
absl::StatusOr<EndedStudy> WaitForEndedStudy(const std::string& address,
                                             const std::string& study_id,
                                             std::chrono::seconds timeout);

// What the `sim` trainer produces for `trial` trained straight from step 0 to its target in
// one stage, for `spec`'s trainer.
absl::StatusOr<std::map<int64_t, std::map<std::string, double>>> StraightRun(
    const hippo::v1::StudySpec& spec, const hippo::v1::Trial& trial);

// Reads examples/workloads/<name> and replaces its trainer config by `config_yaml`.
std::string WorkloadWithConfig(const std::string& name, const std::string& config_yaml);

}  // namespace hippo::e2e

#endif  // HIPPO_TESTS_SUPPORT_E2E_HARNESS_H_
