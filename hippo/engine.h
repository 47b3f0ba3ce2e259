// Engine: the coordinator's state and decisions, without the RPC layer.
//
// It owns one stage tree per family, one search plan per study, the ready queue and the
// attempts (leases) of running stages. Every change is applied in memory under one mutex,
// queued to the store in the same order, and only after the store has committed it does the
// engine answer a client or send anything to a worker. On start, Recover() rebuilds everything
// from the store: trees by replaying their operation logs, studies and trials from their rows,
// algorithms from their saved states.
#ifndef HIPPO_HIPPO_ENGINE_H_
#define HIPPO_HIPPO_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"
#include "store/store.h"

namespace hippo::coordinator {

// Where the engine sends messages for one connected worker. Send may block briefly (it must
// not, with EngineOptions::send_from_committer); it returns false if the worker is gone.
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  // Takes the message by value: callers move it in (an Assign is costly to copy).
  virtual bool Send(hippo::v1::CoordinatorMessage message) = 0;
};

struct EngineOptions {
  double lease_seconds = 10;  // a running stage goes back to the queue after this silence
  int max_attempts = 3;       // attempts of a stage before its trials fail
  // False only for simulation: messages go out before their batch reaches the disk.
  bool durable_acknowledgements = true;
  // True where WorkerChannel::Send only queues (the gRPC server's streams): the committer
  // thread then sends every message once its batch is committed, so that no caller waits for
  // the disk only to send, and a worker's report returns at once. False: the caller's thread
  // waits for the commit and sends (tests read their channels right after a call).
  bool send_from_committer = false;
  // Checkpoint garbage collection (docs/durability.md): release the states no known work needs
  // as studies end, and more (to be recomputed if ever needed) in a directory over its budget.
  bool collect_checkpoints = true;
  // Keep the final states of each study's this many best completed trials (to fork or resume
  // from them later) even when nothing else needs them.
  int keep_best_states = 0;
};

using Clock = std::chrono::steady_clock;

class EngineImpl;  // hippo/engine_impl.h

// Every method is thread-safe. Errors name the offending field and how to fix it.
class Engine {
 public:
  // `store` must outlive the engine; the engine is its only writer.
  Engine(store::Store* store, EngineOptions options);
  // Waits for what was queued to the store to be committed.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Rebuilds the state from the store. Call once, before anything else. DataLoss when the
  // stored rows contradict each other (the store is then left as it was).
  absl::Status Recover();

  // StudyService. A study's id is "s-" and its number (s-000001). CreateStudy validates the
  // spec (InvalidArgument naming the field), plans its first trials and returns once they are
  // committed; `no_merge` runs it trial by trial (the baseline: no shared stages). The views
  // (GetStudy, ListStudies) are kept as trials change and cost no walk over the trials.
  // NotFound for an unknown study id.
  absl::StatusOr<hippo::v1::Study> CreateStudy(const hippo::v1::StudySpec& spec, bool no_merge);
  absl::StatusOr<hippo::v1::Study> GetStudy(const std::string& study_id);
  std::vector<hippo::v1::Study> ListStudies();
  // Stops a running study and its running or paused trials (a no-op on an ended study);
  // attempts no other study needs are cancelled.
  absl::StatusOr<hippo::v1::Study> StopStudy(const std::string& study_id,
                                             const std::string& reason);
  // Every trial of the study, with its reported metrics by step when `with_metrics` (read from
  // the store after what was reported so far is committed).
  absl::StatusOr<hippo::v1::ListTrialsResponse> ListTrials(const std::string& study_id,
                                                           bool with_metrics);
  // NotFound while no trial completed with an objective.
  absl::StatusOr<hippo::v1::Trial> GetBestTrial(const std::string& study_id);
  // The stages of the study's families (shared ones included), with Graphviz text if `dot`.
  absl::StatusOr<hippo::v1::StageTree> GetStageTree(const std::string& study_id, bool dot);
  std::vector<hippo::v1::WorkerInfo> ListWorkers();
  // Collects checkpoint garbage now (even with collect_checkpoints off): the states nothing
  // needs, and in a directory over its budget those that could be recomputed; the released
  // files are deleted by the workers of their directory. Returns once it is committed.
  hippo::v1::CollectGarbageResponse CollectGarbage();
  // Removes a study (stopped first if running), its trials, metrics and events, and releases
  // the checkpoints only it used; other studies of its families keep what they need. NotFound
  // for an unknown id.
  absl::StatusOr<hippo::v1::DeleteStudyResponse> DeleteStudy(const std::string& study_id);

  // Ask/tell, for studies of algorithm `external` (search_algos/external.h): Ask makes up to
  // `count` trials for the client to train; Tell records their metrics and ends them. Both
  // return once what they changed is committed. FailedPrecondition for a study of another
  // algorithm or one that ended; OutOfRange when the budget allows no trial now.
  absl::StatusOr<hippo::v1::AskResponse> Ask(const std::string& study_id, int64_t count);
  absl::Status Tell(const hippo::v1::TellRequest& request);

  // WorkerService. Connect returns a session number for the other calls; a worker that
  // reconnects under the same id replaces its earlier session, and keeps the attempt it held
  // until that attempt's lease says otherwise. Disconnect of an older session is ignored.
  // OnWorkerMessage handles one report or a packed `reports` (in order, all or none refused);
  // reports of an attempt that is not the worker's are ignored (counted in Stats).
  // FailedPrecondition before the worker's Connect.
  absl::StatusOr<int64_t> Connect(const hippo::v1::WorkerHello& hello,
                                  std::shared_ptr<WorkerChannel> channel);
  void Disconnect(const std::string& worker_id, int64_t session);
  absl::Status OnWorkerMessage(const std::string& worker_id,
                               const hippo::v1::WorkerMessage& message);

  // Requeues the stages whose lease expired before `now`; called periodically.
  void ExpireLeases(Clock::time_point now);

  // For benchmarks and tests.
  struct Stats {
    int64_t dispatches = 0;
    int64_t stale_reports_ignored = 0;
    int64_t leases_expired = 0;
    int64_t attempts_cancelled = 0;
  };
  Stats stats();

 private:
  std::unique_ptr<EngineImpl> impl_;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_ENGINE_H_
