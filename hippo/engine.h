// Engine: the coordinator's state and decisions, without the RPC layer.
//
// It owns one stage tree per family, one search plan per study, the ready queue and the
// attempts (leases) of running stages. Every change is applied in memory under one mutex,
// queued to the store in the same order, and only after the store has committed it does the
// engine answer a client or send anything to a worker (docs/durability.md). On start,
// Recover() rebuilds everything from the store: trees by replaying their operation logs,
// studies and trials from their rows, algorithms from their saved states.
#ifndef HIPPO_HIPPO_ENGINE_H_
#define HIPPO_HIPPO_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hippo/ordered_committer.h"
#include "hippo/scheduler.h"
#include "hippo/v1/hippo.pb.h"
#include "search_algos/search_algorithm.h"
#include "stage_tree/search_space.h"
#include "stage_tree/stage_tree.h"
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
};

using Clock = std::chrono::steady_clock;

// A stage's global id: its family in the high 32 bits, its node in the low 32.
inline int64_t GlobalStageId(int64_t family_id, stage_tree::NodeId node) {
  return (family_id << 32) | static_cast<int64_t>(node);
}

class Engine {
 public:
  Engine(store::Store* store, EngineOptions options);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Rebuilds the state from the store. Call once, before anything else.
  absl::Status Recover();

  // StudyService.
  absl::StatusOr<hippo::v1::Study> CreateStudy(const hippo::v1::StudySpec& spec, bool no_merge);
  absl::StatusOr<hippo::v1::Study> GetStudy(const std::string& study_id);
  std::vector<hippo::v1::Study> ListStudies();
  absl::StatusOr<hippo::v1::Study> StopStudy(const std::string& study_id,
                                             const std::string& reason);
  absl::StatusOr<hippo::v1::ListTrialsResponse> ListTrials(const std::string& study_id,
                                                           bool with_metrics);
  absl::StatusOr<hippo::v1::Trial> GetBestTrial(const std::string& study_id);
  absl::StatusOr<hippo::v1::StageTree> GetStageTree(const std::string& study_id, bool dot);
  std::vector<hippo::v1::WorkerInfo> ListWorkers();

  // Ask/tell, for studies of algorithm `external` (search_algos/external.h): Ask makes up to
  // `count` trials for the client to train; Tell records their metrics and ends them. Both
  // return once what they changed is committed.
  absl::StatusOr<hippo::v1::AskResponse> Ask(const std::string& study_id, int64_t count);
  absl::Status Tell(const hippo::v1::TellRequest& request);

  // WorkerService. Connect returns a session number for the other calls; a worker that
  // reconnects under the same id replaces its earlier session.
  absl::StatusOr<int64_t> Connect(const hippo::v1::WorkerHello& hello,
                                  std::shared_ptr<WorkerChannel> channel);
  void Disconnect(const std::string& worker_id, int64_t session);
  absl::Status OnWorkerMessage(const std::string& worker_id,
                               const hippo::v1::WorkerMessage& message);

  // Requeues the stages whose lease expired; called periodically.
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
  struct Family {
    int64_t id = 0;
    std::unique_ptr<stage_tree::StageTree> tree;
    int64_t next_op = 1;
    std::vector<int64_t> lineage;  // by node id
    // By tree trial id: the study index and trial number it belongs to.
    std::vector<std::pair<size_t, int64_t>> owners;
    // Metric values by name, at (lineage, step) as in the store, at the steps where a stage
    // may end: a step is kept when the state after it is or may be kept (the last step of a
    // stage, the step before a breakpoint, the step an attempt reported last when a split asks
    // it for the state after that step; after a restart, every step of a running attempt's
    // parts, as its last report is not known). A stage [start, end) finds its objective at
    // (lineage, end - 1), however and whenever it was split. The first report wins, as in the
    // store: a recomputed step does not replace it.
    std::map<std::string, absl::flat_hash_map<std::pair<int64_t, int64_t>, double>> step_metrics;
    // Checkpoints by (lineage, step): a state is named by the lineage of the stage that
    // reached it, which splits do not change (the worker's cache uses the same names).
    absl::flat_hash_map<std::pair<int64_t, int64_t>, std::string> state_uri;
    absl::flat_hash_map<stage_tree::NodeId, int64_t> attempts_of_node;
    // Steps where a trial of the family ends or changes a hyper-parameter: where later trials
    // are likely to branch. Stages keep their state at these steps, so that a branch made
    // after a stage finished needs no recomputation.
    std::set<int64_t> breakpoints;
    double seconds_per_step = 1.0;
    bool priorities_dirty = true;
    std::vector<double> priorities;
    absl::flat_hash_set<stage_tree::NodeId> failed_for_good;
    // The stages of an ask/tell trial are trained by the client, never dispatched: one family
    // per such trial (key kClientTrainedPrefix + study + trial), its stage running until told.
    bool client_trained = false;
    // One trial of a study run trial by trial (no_merge, the baseline): scheduled as a
    // trial-based system would, each stage whole and by its known critical path only.
    bool trial_by_trial = false;
  };
  static constexpr char kClientTrainedPrefix[] = "external|";

  struct TrialState {
    int64_t family_id = 0;
    stage_tree::TrialId tree_trial = 0;
    stage_tree::Point point;
    std::string point_json;  // the point as stored, written once (every trial record has it)
    std::map<std::string, stage_tree::Value> structural;
    int64_t target = 0;
    hippo::v1::TrialState state = hippo::v1::TRIAL_RUNNING;
    std::optional<double> objective;
    int64_t forked_from = -1;  // PBT: the trial this one continues on [0, forked_at)
    int64_t forked_at = 0;
    int64_t told_step = -1;  // ask/tell: the last step the client reported
  };

  struct StudyState {
    store::StudyRecord record;
    hippo::v1::StudySpec spec;
    stage_tree::SearchSpace space;
    std::unique_ptr<search_algos::SearchAlgorithm> algorithm;
    std::vector<TrialState> trials;
    std::string trainer_identity;
    std::string saved_algorithm_state;  // the last state written to the store
    int64_t running_trials = 0;         // kept by SetTrialState, so no event scans every trial
    int64_t completed_trials = 0;
    // Kept as trials are added and change, so that a view of the study does not walk every
    // trial under the engine's lock (a poll of a 100 000-trial study stalled dispatching).
    int64_t trial_steps = 0;        // the sum of the trials' targets
    std::set<int64_t> family_ids;   // the families its trials are in
    // The best completed trial (BetterTrial's order), or none; recomputed by BestTrial when
    // stale (the best trial itself changed). Mutable: a cache, filled by const readers.
    mutable std::optional<int64_t> best;
    mutable bool best_stale = false;
  };

  struct Attempt {
    int64_t id = 0;
    int64_t family_id = 0;
    stage_tree::NodeId assigned = 0;  // the node it was given (its records name it)
    int64_t steps = 0;                // how many steps it was given
    // The parts of the assigned node that it still trains: the node and the parts split off it,
    // less those done (a later split may make a done part a stage to train again, under another
    // attempt: it is no longer this one's).
    std::vector<stage_tree::NodeId> chain;
    std::string worker_id;
    Clock::time_point lease_expires;
    bool recompute = false;
    // The step it reported last and its metrics: if a split then asks for the state after that
    // step, the worker can still honour it, and the part that ends there needs this metric.
    int64_t last_reported_step = -1;
    std::map<std::string, double> last_reported_metrics;
  };

  struct Worker {
    hippo::v1::WorkerHello hello;
    std::shared_ptr<WorkerChannel> channel;
    int64_t session = 0;
    bool connected = false;
    std::optional<int64_t> attempt;  // one stage at a time
    // (global lineage id, step) of the states in its fork cache.
    absl::flat_hash_set<std::pair<int64_t, int64_t>> cached_states;
  };

  // Messages to send once the batch that decided them is committed.
  struct Outbox {
    std::vector<std::pair<std::shared_ptr<WorkerChannel>, hippo::v1::CoordinatorMessage>> sends;
  };

  // Everything below runs with mutex_ held.
  absl::StatusOr<Family*> FamilyFor(const std::string& key,
                                    const std::vector<std::string>& parameter_names,
                                    store::WriteBatch& batch);
  Family& FamilyById(int64_t id) { return *families_[id - 1]; }
  void AppendOp(Family& family, store::TreeOpKind kind, int64_t a, int64_t b, std::string payload,
                store::WriteBatch& batch);
  static void AddBreakpoints(Family& family, const stage_tree::TrialSequences& sequences,
                             int64_t target);
  // Follows the tree's splits: lineages, the running attempts' chains, the checkpoint requests
  // (into `outbox`) and the records of parts done at once (into `batch`).
  void TrackSplits(Family& family, const std::vector<stage_tree::SplitResult>& splits,
                   Outbox& outbox, store::WriteBatch& batch);
  // Asks the study's algorithm for requests and carries them out, again while some were
  // answered at once; then saves the algorithm state and ends the study if it is done.
  absl::Status RunPlan(size_t study_index, store::WriteBatch& batch, Outbox& outbox);
  absl::Status CarryOut(size_t study_index, const std::vector<search_algos::Request>& requests,
                        store::WriteBatch& batch, Outbox& outbox);
  absl::Status AddTrial(size_t study_index, const search_algos::Request& request,
                        store::WriteBatch& batch, Outbox& outbox);
  void StageDone(Family& family, stage_tree::NodeId node, store::WriteBatch& batch,
                 std::set<size_t>& touched_studies);
  // One report of `worker` (progress, checkpoint, stage done, heartbeat, eviction); reports of
  // an attempt that is not the worker's are ignored.
  void HandleReport(Worker& worker, const hippo::v1::WorkerMessage& message,
                    store::WriteBatch& batch, Outbox& outbox);
  // A trial's sequences: its point's, after its parent's up to the fork step for a fork.
  absl::StatusOr<stage_tree::TrialSequences> SequencesOf(const StudyState& study,
                                                         int64_t trial) const;
  void TrialReachedTarget(size_t study_index, int64_t trial, store::WriteBatch& batch);
  void FinishStudyIfDone(size_t study_index, store::WriteBatch& batch);
  void SetTrialState(StudyState& study, int64_t number, hippo::v1::TrialState state);
  // Whether a live trial (running, in a running study) passes through `node`.
  bool Needed(const Family& family, stage_tree::NodeId node) const;
  // Cancels the running attempts that no live trial needs any more (after trials stopped).
  void CancelUnneeded(store::WriteBatch& batch, Outbox& outbox);
  // Takes a running attempt back: its stages return to the queue, its worker is told to cancel
  // (if connected), and the attempt is recorded in `record_state`.
  void Abandon(int64_t attempt_id, int record_state, store::WriteBatch& batch, Outbox& outbox);
  void Dispatch(store::WriteBatch& batch, Outbox& outbox);
  // A stage is dispatched up to the family's next breakpoint inside it at most (where its state
  // is kept anyway): the rest becomes a stage of its own, ready when this part is done, so the
  // scheduler chooses again there, as a preemptive scheduler would. CutStep returns that
  // breakpoint, 0 when the whole stage goes out; Cut splits the stage there (the kRunning
  // operation records the step, so that a replay cuts alike).
  stage_tree::Step CutStep(const Family& family, stage_tree::NodeId node) const;
  absl::Status Cut(Family& family, stage_tree::NodeId node, stage_tree::Step step);
  std::optional<hippo::v1::Assign> AssignTo(Worker& worker, store::WriteBatch& batch);
  // `error` is the worker's account of a failure (empty when the attempt succeeded).
  void EndAttempt(int64_t attempt_id, bool failed, const std::string& error,
                  store::WriteBatch& batch);
  // Per node, the work that may still follow it: a running trial ending there below its
  // study's max_steps may be extended (a rung, a round, an exploit boundary) up to max_steps.
  // Counting it ranks the stages whose results decide the most work first.
  std::vector<double> Continuations(const Family& family) const;
  void RefreshPriorities();
  store::TrialRecord TrialRecordOf(size_t study_index, int64_t trial) const;
  store::StageRecord StageRecordOf(const Family& family, stage_tree::NodeId node) const;
  hippo::v1::Study StudyView(const StudyState& study) const;
  // The best completed trial with an objective (study.best, recomputed if stale).
  std::optional<int64_t> BestTrial(const StudyState& study) const;
  // Keeps study.best current after trial `number`'s state or objective changed.
  void UpdateBest(StudyState& study, int64_t number);
  // Whether trial `number` is completed with an objective and better than `best` (BetterTrial).
  static bool Beats(const StudyState& study, int64_t number, std::optional<int64_t> best);
  // Adds a trial to the study and to its kept sums.
  void AppendTrial(StudyState& study, TrialState trial);
  hippo::v1::Trial TrialView(const StudyState& study, int64_t trial) const;
  absl::StatusOr<size_t> StudyIndex(const std::string& study_id) const;
  // The id a stage is known by to workers: its lineage (stable when stages split).
  int64_t WorkerStageId(const Family& family, stage_tree::NodeId node) const {
    return GlobalStageId(family.id, static_cast<stage_tree::NodeId>(family.lineage[node]));
  }
  const std::string* StateUri(const Family& family, stage_tree::NodeId node, int64_t step) const;
  // Records a reported metric value of `step` of a lineage (keeps the first, see step_metrics).
  static void KeepMetric(Family& family, const std::string& name, int64_t lineage, int64_t step,
                         double value);
  // The value of metric `name` at the last step of `node`, nullptr if none was reported.
  const double* EndMetric(const Family& family, stage_tree::NodeId node,
                          const std::string& name) const;
  store::EventRecord Event(const std::string& study_id, const std::string& kind,
                           const std::string& payload) const;

  // Queues the batch in order (under the lock), then (without the lock) waits for it to be
  // committed if anything is to be sent or `wait_for_commit`, and sends the outbox. Call with
  // `lock` held; returns with it released.
  absl::Status CommitAndSend(std::unique_lock<std::mutex>& lock, store::WriteBatch batch,
                             Outbox outbox, bool wait_for_commit = true);

  store::Store* store_;
  EngineOptions options_;
  OrderedCommitter committer_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;  // id - 1
  absl::flat_hash_map<std::string, int64_t> family_ids_;
  std::vector<std::unique_ptr<StudyState>> studies_;
  absl::flat_hash_map<std::string, size_t> study_index_;
  std::map<int64_t, Attempt> attempts_;
  int64_t next_attempt_ = 1;
  std::map<std::string, Worker> workers_;
  int64_t next_session_ = 1;
  ReadyQueue ready_;
  bool trials_ended_ = false;    // a running trial stopped or failed since CancelUnneeded ran
  int64_t targets_reached_ = 0;  // counts TrialReachedTarget calls
  Stats stats_;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_ENGINE_H_
