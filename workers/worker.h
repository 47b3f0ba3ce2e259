// Worker: the process side of hippo.v1.WorkerService (docs/protocol.md).
//
// A worker holds one bidirectional Session stream to the coordinator. It says hello first
// (host, devices, memory, trainers, the states in its fork cache), then trains the stages it is
// assigned, one at a time on a training thread, reporting Progress after every step,
// CheckpointWritten for every requested checkpoint, CacheEvicted when its fork cache drops
// states, and StageFinished at the end; a Heartbeat every heartbeat_ms lists the attempts it
// holds. When the stream breaks it reconnects with exponential backoff and says hello again,
// listing the attempts it holds, so that a coordinator (restarted or not) takes back at once
// the ones the worker never received.
//
// A stage running when the connection breaks keeps training. Its reports (Progress,
// CheckpointWritten, StageFinished, and CacheEvicted) are kept in order while disconnected and
// sent after the next hello; and since a write that succeeded may still have been lost in
// flight, every report already written for the two newest attempts is sent again first.
// Delivery is therefore at least once, in order per attempt: the coordinator must ignore
// duplicates (metrics are insert-or-ignore) and reports of attempts it no longer considers
// current. Heartbeats are not kept.
//
// `hippo worker` and `hippo run` construct a Worker from command-line options; Run() blocks
// until Stop() is called (from another thread) or the coordinator sends Drain and the worker
// has finished and reported its stages.
#ifndef HIPPO_WORKERS_WORKER_H_
#define HIPPO_WORKERS_WORKER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "hippo/v1/hippo.pb.h"
#include "workers/assignment.h"
#include "workers/checkpoint_store.h"
#include "workers/fork_cache.h"
#include "workers/trainer.h"

namespace grpc {
class ClientContext;
template <class W, class R>
class ClientReaderWriter;
}  // namespace grpc

namespace hippo::workers {

struct WorkerOptions {
  // host:port of the coordinator's gRPC endpoint.
  std::string coordinator = "127.0.0.1:50051";
  // Sent as gRPC metadata "x-hippo-token" when non-empty.
  std::string token;
  // PEM root certificates to verify the coordinator's TLS certificate with; empty: plaintext.
  std::string tls_root_certs;
  // Stable across reconnects; defaults to "<host>-<pid>".
  std::string worker_id;
  // Defaults to the machine's host name.
  std::string host;
  // Where checkpoints are written and read. Workers that fork from each other's checkpoints
  // must share it (same path on a shared filesystem): uris outside it are refused.
  std::string checkpoint_dir = "hippo-checkpoints";
  // The bytes of checkpoints the coordinator should keep in checkpoint_dir at most (it releases
  // states that can be recomputed beyond it); 0: no budget. Sent in the hello.
  int64_t checkpoint_budget_bytes = 0;
  // Byte budget of the fork cache; 0 disables it.
  int64_t cache_bytes = int64_t{1} << 30;
  // Built-in trainer kinds to serve (see MakeBuiltinTrainer); AddTrainer adds others. The
  // worker refuses an Assign of any other kind, and says which it serves in its hello, so that
  // the coordinator sends it no other.
  std::vector<std::string> trainers = {"sim"};
  // The directories whose programs the `command` trainer may run (AllowedPrograms). Serving
  // `command` requires at least one: Run() refuses to start otherwise.
  std::vector<std::string> allow_dirs;
  // Where trainers run: "cpu" or "cuda:N"; handed to every trainer factory.
  std::string device = "cpu";
  // Memory reported in the hello; 0: the machine's physical memory.
  int64_t memory_bytes = 0;
  int heartbeat_ms = 1000;
  // Reconnection waits: backoff_initial_ms, doubling up to backoff_max_ms, each multiplied by
  // a random factor in [1 - backoff_jitter, 1 + backoff_jitter].
  int backoff_initial_ms = 50;
  int backoff_max_ms = 2000;
  double backoff_jitter = 0.2;
  // After a Drain, how long to wait for the coordinator to close the stream once the worker
  // has half-closed it.
  int drain_close_timeout_ms = 5000;
  // Where the worker logs one-line events (connections, failures). Defaults to stderr.
  std::function<void(std::string_view line)> log;
};

// Counters, for tests and `hippo workers`.
struct WorkerStats {
  int64_t sessions_opened = 0;  // hellos written
  int64_t stages_succeeded = 0;
  int64_t stages_failed = 0;       // StageFinished(ok = false), cancellations included
  int64_t states_from_memory = 0;  // stages started from the fork cache
  int64_t states_from_checkpoint = 0;
  int64_t states_fresh = 0;         // root stages
  int64_t checkpoints_deleted = 0;  // files released by the coordinator and deleted
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  // Requires Run() to have returned (or never been called).
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves `trainer` for its kind (replacing a built-in of the same kind). Call before Run().
  absl::Status AddTrainer(std::unique_ptr<Trainer> trainer);

  // Removes the temporary files of checkpoint writers that died mid-write (CheckpointStore::
  // RemoveOrphanTemporaries), then connects and serves until Stop() or a completed Drain; then
  // returns OK. Returns an error at once for bad options (unknown trainer kind, `command`
  // without allow_dirs, unusable checkpoint directory), and when the coordinator refuses the
  // worker for good (Unauthenticated, PermissionDenied, Unimplemented). May be called once.
  absl::Status Run();

  // Makes Run() return soon: cancels the running stage (unreported), drops queued ones and
  // closes the stream. Thread-safe; may be called before, during or after Run().
  void Stop();

  const std::string& worker_id() const { return options_.worker_id; }
  WorkerStats stats() const;

 private:
  using Stream = grpc::ClientReaderWriter<hippo::v1::WorkerMessage, hippo::v1::CoordinatorMessage>;

  struct Job {
    Assignment assignment;
    std::shared_ptr<StageControl> control;
  };

  class Backoff;

  void Log(std::string_view line) const;

  // Session side (the Run thread, and a reader thread per session).
  absl::Status SessionLoop();
  // One connection: hello, then read until the stream ends; heartbeats from this thread.
  absl::Status RunSession(Backoff& backoff);
  void HandleMessage(const hippo::v1::CoordinatorMessage& message);
  void HandleAssign(const hippo::v1::Assign& assign);
  void HandleCheckpointAt(const hippo::v1::CheckpointAt& request);
  void HandleCancel(int64_t attempt_id);
  void HandleDrain();
  void HandleDeleteCheckpoints(const hippo::v1::DeleteCheckpoints& request);
  // The hello: `holding` (the running and queued attempts, read under mu_ before send_mu_ was
  // taken) plus the attempts whose reports wait in the outbox or will be replayed.
  hippo::v1::WorkerMessage Hello(const std::vector<int64_t>& holding) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  // The running attempt and the queued ones.
  std::vector<int64_t> HeldAttempts() const;
  hippo::v1::WorkerMessage Heartbeat() const;

  // Writes `message` on the stream, or keeps it in the outbox while disconnected when
  // `keep_if_disconnected` (dropped otherwise). Serialises all writes.
  void Send(const hippo::v1::WorkerMessage& message, bool keep_if_disconnected);
  // Stage done, after the reports in `before` (sent together as one Reports message).
  // `parent_state_lost`: it failed because the state to start from could not be read.
  void SendFinished(int64_t attempt_id, bool ok, std::string_view error, double seconds,
                    std::vector<hippo::v1::WorkerMessage> before = {},
                    bool parent_state_lost = false);
  // Keeps a written report of an attempt for replay after a reconnect.
  void RecordSent(const hippo::v1::WorkerMessage& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);

  // Training side (the training thread).
  void TrainingLoop();
  void RunJob(Job& job);
  // The state the stage starts from. `state_lost` is set when it fails because that state is
  // nowhere to be read: not in the fork cache, and its checkpoint missing or corrupt (or not
  // named), which the coordinator repairs by recomputing it.
  absl::StatusOr<std::unique_ptr<TrainingState>> StartState(Trainer& trainer,
                                                            const Assignment& assignment,
                                                            bool& state_lost);
  void KeepInCache(StateKey key, std::unique_ptr<TrainingState> state);

  WorkerOptions options_;
  std::map<std::string, std::unique_ptr<Trainer>, std::less<>> trainers_;
  std::optional<CheckpointStore> store_;
  ForkCache cache_;
  std::thread training_thread_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool drained_ ABSL_GUARDED_BY(mu_) = false;  // draining and every stage reported
  bool session_ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  int64_t current_attempt_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<StageControl> current_control_ ABSL_GUARDED_BY(mu_);
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);

  // Serialises writes on the stream. Never held together with mu_: a write can block, and
  // Stop() must be able to take mu_ to cancel it.
  mutable absl::Mutex send_mu_;
  Stream* stream_ ABSL_GUARDED_BY(send_mu_) = nullptr;
  // Reports not yet written (made while disconnected), oldest first.
  std::deque<hippo::v1::WorkerMessage> outbox_ ABSL_GUARDED_BY(send_mu_);
  // Reports written in this or an earlier session, of the two newest attempts, by attempt:
  // re-sent after a reconnect because a write that succeeded may still have been lost.
  std::deque<std::pair<int64_t, std::vector<hippo::v1::WorkerMessage>>> replay_
      ABSL_GUARDED_BY(send_mu_);
};

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_WORKER_H_
