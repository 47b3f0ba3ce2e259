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
#include <functional>
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

// The most trials a study has running at once, whatever its budget.max_parallel_trials (0
// included), so that a large budget.max_trials is planned in windows (a study of 10^9 trials
// costs what one of 4096 does until they train), not inside CreateStudy. Without a
// max_parallel_trials at or below it, the window is refilled (up to this many running again)
// only once half of it has ended, i.e. at most kMaxTrialsPlannedAhead / 2 trials still run, so
// that the algorithm is asked once per half window, not on every end (engine_studies.cc,
// RunPlan). With a smaller
// max_parallel_trials, a trial is asked for as each one ends. Far above the workers one
// coordinator serves, so no worker waits for it.
inline constexpr int64_t kMaxTrialsPlannedAhead = 4096;

struct EngineOptions {
  double lease_seconds = 10;  // a running stage goes back to the queue after this silence
  int max_attempts = 3;       // attempts of a stage before its trials fail
  // A stage whose attempt failed waits retry_backoff_seconds × 2^(failures − 1), at most
  // retry_backoff_max_seconds, each ±20 % at random, before it is handed out again, to a
  // worker it has not failed on when one is connected; 0: at once.
  double retry_backoff_seconds = 0.5;
  double retry_backoff_max_seconds = 30;
  // A worker whose last `unhealthy_after_failures` attempts failed is unhealthy: drained (given
  // no stage) for drain_seconds, doubling while it keeps failing (up to 16×), then given one
  // stage on probation; a stage it finishes makes it healthy again. 0: never drained.
  int unhealthy_after_failures = 3;
  double drain_seconds = 60;
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
  // Compact a family's tree-operation log (docs/durability.md): once this many operations, and
  // at least as many as its tree has nodes, follow its last snapshot, the commit that carries
  // them also stores a snapshot of the tree and deletes the operations it covers, so recovery
  // replays at most that many. 0: never (recovery replays the whole log).
  int64_t compact_ops_after = 10000;
};

using Clock = std::chrono::steady_clock;

class EngineImpl;  // hippo/engine_impl.h

// Which of a study's trials Engine::ListTrialsPage lists, and from where.
struct TrialQuery {
  // 0: every trial, by number. Else only the trials whose view or metrics changed after this
  // version (a TrialPage's), in the order they changed; a version larger than the current one
  // (from before a restart) lists every trial.
  int64_t changed_since = 0;
  // Where the previous page ended (its TrialPage::last_version and last_trial); the first page
  // leaves them as they are.
  int64_t after_version = 0;
  int64_t after_trial = -1;
  size_t limit = 100;  // trials at most
  bool with_metrics = false;
  std::vector<std::string> metric_names;  // with_metrics: only these (empty: all)
  // With metrics, the page ends after the trial that brings it to this many metric points.
  size_t max_metric_points = 100000;
};

struct TrialPage {
  hippo::v1::ListTrialsResponse response;  // trials, metrics (if asked) and version
  bool more = false;                       // trials follow: ask again from last_*
  int64_t last_version = 0;
  int64_t last_trial = -1;
};

// A page of a study's stages, by stage id.
struct StageQuery {
  bool dot = false;              // Graphviz text of the whole tree (only with after_stage 0)
  int64_t after_stage = 0;       // the last stage id of the previous page
  size_t limit = SIZE_MAX;       // stages at most
  size_t max_dot_stages = 5000;  // dot of a larger tree is FailedPrecondition
};

struct StagePage {
  hippo::v1::StageTree tree;  // stages, step counts, dot
  bool more = false;
  int64_t last_stage = 0;
};

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
  // distinct_steps over several studies together: a configuration that several of them train
  // counts once, to its furthest target in any (the figure of a multi-study workload).
  absl::StatusOr<int64_t> DistinctStepsOf(const std::vector<std::string>& study_ids);
  std::vector<hippo::v1::Study> ListStudies();
  // The views of `limit` studies from the `offset`-th, in creation order, and how many studies
  // there are: only the page's views are made (a view holds its spec) while the engine is locked.
  // The page ends early, after at least one study, before its size passes kMaxStudyPageBytes
  // (hippo/study_pages.h); the next page starts after its last study.
  std::vector<hippo::v1::Study> ListStudies(size_t offset, size_t limit, size_t* total);
  // The same without the specs (`spec` left empty), and with no bound on bytes: a view without
  // its spec is small (its best trial at most), and a spec never changes once the study is
  // created, so a reader that follows every study (the dashboard's mirror) asks for a study's
  // spec once (GetStudy) and copies only the views at each refresh.
  std::vector<hippo::v1::Study> ListStudySummaries(size_t offset, size_t limit, size_t* total);
  // Stops a running study and its running or paused trials (a no-op on an ended study);
  // attempts no other study needs are cancelled.
  absl::StatusOr<hippo::v1::Study> StopStudy(const std::string& study_id,
                                             const std::string& reason);
  // One page of the study's trials (TrialQuery), with their reported metrics by step when
  // asked (read from the store after what was reported so far is committed). The engine's lock
  // is held for the trials of the page only: a large study is read a page at a time, and
  // a reader that follows it (changed_since) pays for the changes, not for the study's size.
  absl::StatusOr<TrialPage> ListTrialsPage(const std::string& study_id, const TrialQuery& query);
  // Every trial of the study (page by page, the lock released between pages).
  absl::StatusOr<hippo::v1::ListTrialsResponse> ListTrials(const std::string& study_id,
                                                           bool with_metrics);
  // NotFound while no trial completed with an objective.
  absl::StatusOr<hippo::v1::Trial> GetBestTrial(const std::string& study_id);
  // A page of the stages of the study's families (shared ones included), by stage id.
  absl::StatusOr<StagePage> GetStageTreePage(const std::string& study_id, const StageQuery& query);
  // Every stage, with Graphviz text if `dot` (of any size).
  absl::StatusOr<hippo::v1::StageTree> GetStageTree(const std::string& study_id, bool dot);
  // Every worker known since the start, by id.
  std::vector<hippo::v1::WorkerInfo> ListWorkers();
  // Collects checkpoint garbage now (even with collect_checkpoints off): the states nothing
  // needs, and in a directory over its budget those that could be recomputed; the released
  // files are deleted by the workers of their directory. Returns once it is committed.
  hippo::v1::CollectGarbageResponse CollectGarbage();
  // Removes a study (stopped first if running), its trials, metrics and events, and releases
  // the checkpoints only it used; other studies of its families keep what they need. NotFound
  // for an unknown id.
  absl::StatusOr<hippo::v1::DeleteStudyResponse> DeleteStudy(const std::string& study_id);
  // Trains the named failed trials (every failed trial when none is named) again: the failed
  // stages on their paths get a new budget of attempts, the trials run again, and a study that
  // had ended runs again until they end. The study's algorithm counted them as failed and is
  // not told again. NotFound for an unknown study or trial; FailedPrecondition for a trial that
  // did not fail, a stopped study, or an ask/tell study (its client retries).
  absl::StatusOr<hippo::v1::RetryTrialsResponse> RetryTrials(
      const hippo::v1::RetryTrialsRequest& request);

  // Change signals, for readers that follow the views (WatchStudy, the dashboard): `listener`
  // is called after every committed change of a study, trial, stage or metric, a worker's
  // connection, or a checkpoint written (a worker's fork cache), with the engine's lock
  // held, so it must only signal (set a flag, notify a condition variable) and never call the
  // engine. Listeners are kept until the engine is destroyed.
  void AddChangeListener(std::function<void()> listener);

  // Ask/tell, for studies of algorithm `external` (search_algos/external.h): Ask makes up to
  // `count` trials for the client to train; Tell records their metrics and ends them. Both
  // return once what they changed is committed. FailedPrecondition for a study of another
  // algorithm or one that ended; OutOfRange when the budget allows no trial now.
  absl::StatusOr<hippo::v1::AskResponse> Ask(const std::string& study_id, int64_t count);
  absl::Status Tell(const hippo::v1::TellRequest& request);

  // WorkerService. Connect returns a session number for the other calls; a worker that
  // reconnects under the same id replaces its earlier session, and keeps the attempt it held
  // until that attempt's lease says otherwise. Disconnect of an older session is ignored.
  // Connect refuses a hello out of bounds (report_bounds.h) with INVALID_ARGUMENT.
  // OnWorkerMessage handles one report or a packed `reports` (in order, all or none refused);
  // reports of an attempt that is not the worker's are ignored (counted in Stats). A report
  // out of bounds (report_bounds.h; a checkpoint of another stage than its attempt's) refuses
  // the whole message: nothing of it is stored, and the attempt it is about, if the worker's,
  // fails with the problem as its reason. INVALID_ARGUMENT for more reports in one message than
  // allowed; FailedPrecondition before the worker's Connect.
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
    // Attempts taken back when their worker's hello did not list them.
    int64_t attempts_not_held = 0;
    int64_t attempts_failed = 0;
    int64_t states_lost = 0;      // starting states reported missing or corrupt, then recomputed
    int64_t workers_drained = 0;  // times a worker became unhealthy
  };
  Stats stats();

 private:
  std::unique_ptr<EngineImpl> impl_;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_ENGINE_H_
