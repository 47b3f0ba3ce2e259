// End-to-end harness: real `hippo` processes on loopback, real SQLite files, real SIGKILL.
#ifndef HIPPO_TESTS_E2E_HARNESS_H_
#define HIPPO_TESTS_E2E_HARNESS_H_

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

namespace hippo::e2e {

// A scratch directory removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A child process running the hippo binary; killed (SIGKILL) at destruction if still alive.
class Process {
 public:
  // Starts `hippo args...` with stdout and stderr appended to `log_path`.
  Process(const std::vector<std::string>& args, const std::string& log_path);
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
CommandResult RunHippo(const std::vector<std::string>& args);

// A loopback port that was free a moment ago.
int FreePort();

// A StudyService client for `address`.
std::unique_ptr<hippo::v1::StudyService::Stub> Connect(const std::string& address);

// Polls until the coordinator answers (true) or `timeout` passes (false).
bool WaitForServer(const std::string& address, std::chrono::seconds timeout);

// SIGKILLs the coordinator `server` and starts `hippo server_args...` again (its output appended
// to `log_path`), waiting until it answers on `address`.
void KillAndRestartServer(std::unique_ptr<Process>& server,
                          const std::vector<std::string>& server_args, const std::string& log_path,
                          const std::string& address);

// Polls the study until it is no longer running; returns its final view. Retries while the
// coordinator is down (it may be restarting).
absl::StatusOr<hippo::v1::Study> WaitForStudy(const std::string& address,
                                              const std::string& study_id,
                                              std::chrono::seconds timeout);

// The trials of a study with all their metrics.
absl::StatusOr<hippo::v1::ListTrialsResponse> TrialsWithMetrics(const std::string& address,
                                                                const std::string& study_id);

// Per trial id: per step: metric name -> value.
using TrialCurves = std::map<int64_t, std::map<int64_t, std::map<std::string, double>>>;
TrialCurves CurvesOf(const hippo::v1::ListTrialsResponse& trials);

// What the `sim` trainer produces for `trial` trained straight from step 0 to its target in
// one stage, for `spec`'s trainer.
absl::StatusOr<std::map<int64_t, std::map<std::string, double>>> StraightRun(
    const hippo::v1::StudySpec& spec, const hippo::v1::Trial& trial);

// Reads examples/workloads/<name> and replaces its trainer config by `config_yaml`.
std::string WorkloadWithConfig(const std::string& name, const std::string& config_yaml);

}  // namespace hippo::e2e

#endif  // HIPPO_TESTS_E2E_HARNESS_H_
