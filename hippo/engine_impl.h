// EngineImpl: the state and the decisions behind Engine (hippo/engine.h), which forwards to it.
//
// Its implementation is spread over files by concern:
//   engine.cc            construction, the commit protocol, Engine's forwarding
//   engine_studies.cc    creating and stopping studies, running their plans, families, trials
//   engine_dispatch.cc   priorities, dispatch (cutting at breakpoints, assigning), cancelling
//   engine_reports.cc    worker sessions, their reports, the end of attempts, leases
//   engine_views.cc      read views (studies, trials, stage trees, workers) and store records
//   engine_changes.cc    the versions of the read views, and the change listeners
//   engine_ask_tell.cc   Ask and Tell, for studies whose trials a client trains
//   engine_retry.cc      failed stages: backoff, retries, worker health, `hippo retry`
//   engine_repair.cc     lost states: a starting state that cannot be read is recomputed
//   engine_recovery.cc   Recover: the state rebuilt from the store
//   engine_gc.cc         checkpoint garbage collection: what is kept, releasing, deleting
//   engine_budget.cc     checkpoint directory budgets: room for each write, over-budget status
//   engine_delete.cc     DeleteStudy
//   engine_compaction.cc compacting the tree-operation logs (snapshots), restoring them
//
// Every member function below the public API runs with mutex_ held. Each call that changes
// state collects its store rows in one WriteBatch and its messages in one Outbox, and ends with
// CommitAndSend: nothing is sent or answered before its batch is committed.
#ifndef HIPPO_HIPPO_ENGINE_IMPL_H_
#define HIPPO_HIPPO_ENGINE_IMPL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hippo/checkpoint_ledger.h"
#include "hippo/configurations.h"
#include "hippo/engine.h"
#include "hippo/family_state.h"
#include "hippo/ordered_committer.h"
#include "hippo/scheduler.h"
#include "hippo/v1/hippo.pb.h"
#include "search_algos/external.h"
#include "search_algos/search_algorithm.h"
#include "stage_tree/search_space.h"
#include "stage_tree/stage_tree.h"
#include "store/store.h"

namespace hippo::coordinator {

class EngineImpl {
 public:
  EngineImpl(store::Store* store, EngineOptions options);

  // The API of Engine, with the same contracts (hippo/engine.h).
  absl::Status Recover();
  absl::StatusOr<hippo::v1::Study> CreateStudy(const hippo::v1::StudySpec& spec, bool no_merge);
  absl::StatusOr<hippo::v1::Study> GetStudy(const std::string& study_id);
  absl::StatusOr<int64_t> DistinctStepsOf(const std::vector<std::string>& study_ids);
  std::vector<hippo::v1::Study> ListStudies();
  std::vector<hippo::v1::Study> ListStudies(size_t offset, size_t limit, size_t* total);
  std::vector<hippo::v1::Study> ListStudySummaries(size_t offset, size_t limit, size_t* total);
  absl::StatusOr<hippo::v1::Study> StopStudy(const std::string& study_id,
                                             const std::string& reason);
  absl::StatusOr<hippo::v1::ListTrialsResponse> ListTrials(const std::string& study_id,
                                                           bool with_metrics);
  absl::StatusOr<hippo::v1::Trial> GetBestTrial(const std::string& study_id);
  absl::StatusOr<hippo::v1::StageTree> GetStageTree(const std::string& study_id, bool dot);
  absl::StatusOr<TrialPage> ListTrialsPage(const std::string& study_id, const TrialQuery& query);
  absl::StatusOr<StagePage> GetStageTreePage(const std::string& study_id, const StageQuery& query);
  std::vector<hippo::v1::WorkerInfo> ListWorkers();
  hippo::v1::CollectGarbageResponse CollectGarbage();
  absl::StatusOr<hippo::v1::DeleteStudyResponse> DeleteStudy(const std::string& study_id);
  absl::StatusOr<hippo::v1::RetryTrialsResponse> RetryTrials(
      const hippo::v1::RetryTrialsRequest& request);
  void AddChangeListener(std::function<void()> listener);
  absl::StatusOr<hippo::v1::AskResponse> Ask(const std::string& study_id, int64_t count);
  absl::Status Tell(const hippo::v1::TellRequest& request);
  absl::StatusOr<int64_t> Connect(const hippo::v1::WorkerHello& hello,
                                  std::shared_ptr<WorkerChannel> channel);
  void Disconnect(const std::string& worker_id, int64_t session);
  absl::Status OnWorkerMessage(const std::string& worker_id,
                               const hippo::v1::WorkerMessage& message);
  void ExpireLeases(Clock::time_point now);
  Engine::Stats stats();

 private:
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
    int32_t configuration = -1;  // its id in the study's Configurations
    int64_t told_step = -1;      // ask/tell: the last step the client reported
    int64_t view_version = 0;    // when its view or metrics last changed (0: not since recovery)
  };

  struct StudyState {
    store::StudyRecord record;
    hippo::v1::StudySpec spec;
    stage_tree::SearchSpace space;
    std::unique_ptr<search_algos::SearchAlgorithm> algorithm;
    std::vector<TrialState> trials;
    std::string trainer_identity;
    std::string saved_algorithm_state;  // the last state written to the store
    // The algorithm's journal (SearchAlgorithm::TakeStateDelta): the last entry's sequence, and
    // how many entries follow saved_algorithm_state.
    int64_t journal_sequence = 0;
    int64_t journal_entries = 0;
    int64_t running_trials = 0;  // kept by SetTrialState, so no event scans every trial
    int64_t completed_trials = 0;
    // Kept as trials are added and change, so that a view of the study does not walk every
    // trial under the engine's lock.
    int64_t trial_steps = 0;          // the sum of the trials' targets
    int64_t forked_prefix_steps = 0;  // the sum of the forks' fork steps (inherited prefixes)
    Configurations configurations;    // distinct_steps
    std::set<int64_t> family_ids;     // the families its trials are in
    // The best completed trial (BetterTrial's order), or none; recomputed by BestTrial when
    // stale (the best trial itself changed). Mutable: a cache, filled by const readers.
    mutable std::optional<int64_t> best;
    mutable bool best_stale = false;
    // Deleted (DeleteStudy): no longer in study_index_ nor in any view; kept in studies_ only so
    // that the indices of the others stay valid until the next start.
    bool deleted = false;
    // (view_version, trial number) of every trial that changed since recovery, so that the
    // trials changed after a version are found without a walk over the study.
    absl::btree_set<std::pair<int64_t, int64_t>> changed_trials;
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
    // Its worker time as charged to its share group (resources.weight): an estimate when it is
    // handed out, replaced by the time it took when it ends (SettleCharge).
    Clock::time_point started;
    double charged_seconds = 0;
    // The states it was asked to write and has not reported yet (Assign.checkpoint_steps, and
    // one per CheckpointAt): what it may still add to its checkpoint directory.
    int64_t writes_left = 0;
    // The part whose end the worker reaches last (the assigned node, or the lower part split
    // off it): the model it holds in memory when it finishes.
    stage_tree::NodeId last_part = 0;
  };

  struct Worker {
    hippo::v1::WorkerHello hello;
    std::shared_ptr<WorkerChannel> channel;
    int64_t session = 0;
    bool connected = false;
    std::optional<int64_t> attempt;  // one stage at a time
    // Health (EngineOptions::unhealthy_after_failures), kept across reconnects and, in the
    // store (worker_health), across restarts.
    int64_t consecutive_failures = 0;
    int drains = 0;                                  // drains in a row, for the doubling
    std::optional<Clock::time_point> drained_until;  // given no stage before then
    std::string last_error;
    // (global lineage id, step) of the states in its fork cache. Ordered, so that its view
    // (WorkerInfo.fork_cache: the most recent 64) is read off the end: a worker's cache grows
    // with every state it writes, and a copy and partial sort of all of them at each
    // ListWorkers (the dashboard lists the workers at each refresh of its mirror) cost the
    // engine's lock a pass over hundreds of thousands of states.
    absl::btree_set<std::pair<int64_t, int64_t>> cached_states;
    // (family id, node) of the stage it finished last, whose model it still holds: a ready
    // child of it continues without loading a state (AssignTo prefers one). Cleared when an
    // attempt fails and when it says hello again (a new process).
    std::optional<std::pair<int64_t, stage_tree::NodeId>> last_trained;
  };

  // A stage whose attempts failed: while it waits out its backoff (`due`), and the workers it
  // failed on, which it avoids while another worker can take it.
  struct StageRetry {
    std::optional<Clock::time_point> due;
    std::set<std::string> failed_on;
  };

  // Messages to send once the batch that decided them is committed.
  struct Outbox {
    std::vector<std::pair<std::shared_ptr<WorkerChannel>, hippo::v1::CoordinatorMessage>> sends;
  };

  // ---- engine.cc
  // Queues the batch in order (under the lock), then (without the lock) waits for it to be
  // committed if anything is to be sent or `wait_for_commit`, and sends the outbox. Call with
  // `lock` held; returns with it released. It cannot fail: a failed commit stops the process
  // (OrderedCommitter), so nothing uncommitted is ever acknowledged.
  void CommitAndSend(std::unique_lock<std::mutex>& lock, store::WriteBatch batch, Outbox outbox,
                     bool wait_for_commit = true);
  absl::StatusOr<size_t> StudyIndex(const std::string& study_id) const;
  FamilyState& FamilyById(int64_t id) { return *families_[id - 1]; }
  const FamilyState& FamilyById(int64_t id) const { return *families_[id - 1]; }
  store::EventRecord Event(const std::string& study_id, const std::string& kind,
                           const std::string& payload) const;

  // ---- engine_studies.cc
  // The scheduler's share group of a study (scheduler.h): a family's stages are in the group of
  // the study whose trial created the family.
  static int64_t ShareGroup(size_t study_index) { return static_cast<int64_t>(study_index) + 1; }
  // Ends a running study as STUDY_STOPPED with `message`: its running and paused trials stop.
  // The caller cancels what no live trial needs (CancelUnneeded) and dispatches.
  void StopRunningStudy(size_t study_index, const std::string& message, store::WriteBatch& batch);
  // Stops the running studies whose budget.max_wall_seconds has passed at `now_ms`; true if any.
  bool EnforceWallBudgets(int64_t now_ms, store::WriteBatch& batch);
  // The family of `key`, created (and its record added to `batch`) if new. InvalidArgument
  // when it exists with other sequence parameters.
  absl::StatusOr<FamilyState*> FamilyFor(const std::string& key,
                                         const std::vector<std::string>& parameter_names,
                                         store::WriteBatch& batch, Inheritance inheritance = {});
  // Inherited states (engine_inherit.cc). What the new family of a kMorph request inherits: the
  // state of the parent trial after request.fork_step, which must end a done stage of its path.
  absl::StatusOr<Inheritance> InheritanceOf(const StudyState& study,
                                            const search_algos::Request& request) const;
  // Names the inherited state as the start of a first stage of inheriting `family`.
  void SetInheritedStart(const FamilyState& family, hippo::v1::Assign& assign) const;
  // The global id of the parent family's stage that reached the state `family` inherits.
  int64_t InheritedFromStage(const FamilyState& family) const;
  // The node of the parent family's tree whose end is the state `family` inherits; kNoNode for
  // a family that inherits nothing (or, for a malformed store, a state no node ends at).
  stage_tree::NodeId InheritedNode(const FamilyState& family) const;
  // Whether the state `family` inherits is kept now (its node is done and was not lost or
  // released since); true for a family that inherits nothing.
  bool InheritedStateKept(const FamilyState& family) const;
  // Asks the study's algorithm for requests and carries them out, again while some were
  // answered at once; then saves the algorithm state and ends the study if it is done.
  absl::Status RunPlan(size_t study_index, store::WriteBatch& batch, Outbox& outbox);
  // Writes what changed in the study's algorithm state to `batch` (engine_studies.cc).
  void SaveAlgorithmState(StudyState& study, store::WriteBatch& batch);
  absl::Status CarryOut(size_t study_index, const std::vector<search_algos::Request>& requests,
                        store::WriteBatch& batch, Outbox& outbox);
  absl::Status AddTrial(size_t study_index, const search_algos::Request& request,
                        store::WriteBatch& batch, Outbox& outbox);
  // A trial's sequences: its point's, after its parent's up to the fork step for a fork.
  absl::StatusOr<stage_tree::TrialSequences> SequencesOf(const StudyState& study,
                                                         int64_t trial) const;
  void TrialReachedTarget(size_t study_index, int64_t trial, store::WriteBatch& batch);
  void FinishStudyIfDone(size_t study_index, store::WriteBatch& batch);
  void SetTrialState(StudyState& study, int64_t number, hippo::v1::TrialState state);
  // Adds a trial to the study and to its kept sums.
  // `configuration`: the trial's Configurations::KeyOf.
  void AppendTrial(StudyState& study, TrialState trial, std::string configuration);
  // The best completed trial with an objective (study.best, recomputed if stale).
  std::optional<int64_t> BestTrial(const StudyState& study) const;
  // Keeps study.best current after trial `number`'s state or objective changed.
  void UpdateBest(StudyState& study, int64_t number);
  // Whether trial `number` is completed with an objective and better than `best` (BetterTrial).
  static bool Beats(const StudyState& study, int64_t number, std::optional<int64_t> best);

  // ---- engine_dispatch.cc
  // Follows the tree's splits: lineages, the running attempts' chains, the checkpoint requests
  // (into `outbox`) and the records of parts done at once (into `batch`).
  void TrackSplits(FamilyState& family, const std::vector<stage_tree::SplitResult>& splits,
                   Outbox& outbox, store::WriteBatch& batch);
  // Whether a live trial (running, in a running study) passes through `node`, or an inheriting
  // family that needs its inherited state needs `node` for it (NeededByInheritors).
  bool Needed(const FamilyState& family, stage_tree::NodeId node) const;
  // Whether the end state of recompute stage `node` is wanted: a stage below it that is not
  // done and is needed starts from it, a live trial ends there, or an inheriting family that
  // needs its inherited state inherits it. A state released by garbage collection is
  // recomputed only then, not merely because a live trial passes through it.
  bool RecomputeNeeded(const FamilyState& family, stage_tree::NodeId node) const;
  // Cancels the running attempts that no live trial needs any more (after trials stopped).
  void CancelUnneeded(store::WriteBatch& batch, Outbox& outbox);
  // Takes a running attempt back: its stages return to the queue, its worker is told to cancel
  // (if connected), and the attempt is recorded in `record_state`.
  void Abandon(int64_t attempt_id, int record_state, store::WriteBatch& batch, Outbox& outbox);
  // Replaces the estimate charged for `attempt` by the worker time it took until now.
  void SettleCharge(const Attempt& attempt);
  // Whether `worker` said in its hello that it serves trainer `kind`.
  static bool Serves(const Worker& worker, const std::string& kind);
  // Whether `worker` can read the state `node` starts from: a fresh start, a state in its fork
  // cache, or a checkpoint in its own directory (WorkerHello.checkpoint_dir). A worker confines
  // its reads to its directory, so a checkpoint elsewhere is not readable by it; a worker that
  // names no directory, or a state whose file the engine does not know, counts as readable.
  bool CanReadStart(const Worker& worker, const FamilyState& family, stage_tree::NodeId node) const;
  // Whether `stage` is left for another worker because this one cannot read its starting state
  // and a connected, undrained one can. When none can, it is not left: the worker reports the
  // state lost and the engine recomputes it from its nearest kept ancestor (engine_repair.cc).
  bool LeaveToReader(const Worker& worker, const QueuedStage& stage) const;
  // Why a running study waits (hippo.v1.Study.waiting): no connected worker serves its trainer
  // kind; "" when one does, and for ask/tell studies.
  std::string WaitingReason(const StudyState& study) const;
  // Assigns ready stages to idle connected workers, best first, each only stages of a trainer
  // kind it serves.
  void Dispatch(store::WriteBatch& batch, Outbox& outbox);
  // The best ready stage for `worker`, or none; `left_to_another` is set when a ready stage
  // was left for another worker (LeaveToAnother, LeaveToReader), so others may still take
  // something.
  std::optional<hippo::v1::Assign> AssignTo(Worker& worker, store::WriteBatch& batch,
                                            Outbox& outbox, bool& left_to_another);
  // The ready children of the stage `worker` finished last (Worker::last_trained), and how
  // many of its group's best ready stages they may be taken from (scheduler.h, Preference).
  Preference ContinuationsOf(const Worker& worker) const;
  // The owner of the first trial through a stage that is not a deleted study's: its study's
  // spec and its structural values train the stage (a family shares them). Call only for a
  // stage that Needed accepts (a live trial passes through it).
  const FamilyState::Owner& StageOwner(const FamilyState& family, stage_tree::NodeId node) const;
  // The steps whose states a stage writes (Assign.checkpoint_steps): the breakpoints inside
  // it, every resources.checkpoint_every_steps-th step, and its end.
  std::vector<int64_t> CheckpointStepsOf(const FamilyState& family, stage_tree::NodeId node,
                                         const StudyState& study) const;
  // Per node, the work that may still follow it: a running trial ending there below its
  // study's max_steps may be extended (a rung, a round, an exploit boundary) up to max_steps.
  // Counting it ranks the stages whose results decide the most work first.
  // Both in steps.
  std::vector<double> Continuations(const FamilyState& family) const;
  double ContinuationOf(const FamilyState& family, const StudyState& study,
                        const TrialState& trial) const;
  // After AddTrial inserted `trial` into `family`'s tree, with the priorities current before:
  // updates them along the trial's path and rebuilds the ready queue, instead of a computation
  // over the whole tree at the next dispatch (which made every new trial of a large family cost
  // time linear in the family's size).
  void KeepPrioritiesAfterInsert(FamilyState& family, const StudyState& study,
                                 const TrialState& trial,
                                 const std::vector<stage_tree::SplitResult>& splits);
  // Recomputes stale priorities and, if any changed, rebuilds the ready queue.
  void RefreshPriorities();
  // Refills the ready queue from every ready stage at its family's current priority: stages
  // taken out of it while they could not start come back this way. Linear in the ready stages.
  void RebuildReadyQueue();

  // ---- engine_reports.cc
  // One report of `worker` (progress, checkpoint, stage done, heartbeat, eviction); reports of
  // an attempt that is not the worker's are ignored.
  void HandleReport(Worker& worker, const hippo::v1::WorkerMessage& message,
                    store::WriteBatch& batch, Outbox& outbox);
  // The problem of a report in `reports` that only the engine's state shows (a checkpoint of
  // another stage than its attempt's), as "field: what is wrong" with the attempt it is about.
  std::optional<std::pair<int64_t, std::string>> StateProblem(
      const Worker& worker, const std::vector<const hippo::v1::WorkerMessage*>& reports) const;
  // A report of `worker` about `attempt_id` broke a bound (`problem`): nothing of it is stored.
  // An attempt the worker holds fails with the problem as its reason (the trainer produced
  // it, so a retry may do better, and the study's message shows it) and the worker is told to
  // cancel it; a report of any other attempt is ignored. Logged either way. The failure counts
  // against the worker's health unless the trial `diverged` (ReportsDivergence): a worker is not
  // drained for what the hyper-parameters did.
  void RefuseReport(Worker& worker, int64_t attempt_id, const std::string& problem, bool diverged,
                    store::WriteBatch& batch, Outbox& outbox);
  // RunPlan after a report changed the study's trials; a failure of the plan is logged, as it
  // must not refuse the report (the study asks again at its next event).
  void RunPlanAfterReport(size_t study_index, store::WriteBatch& batch, Outbox& outbox);
  // Trials ending at `node`, now done, reached their target; their studies go to `touched`.
  void StageDone(FamilyState& family, stage_tree::NodeId node, store::WriteBatch& batch,
                 std::set<size_t>& touched_studies);
  // `error` is the worker's account of a failure (empty when the attempt succeeded);
  // `state_lost`: it failed because its starting state could not be read (engine_repair.cc).
  // The plans run again for the studies whose trials failed; what they send to workers goes to
  // `outbox`.
  void EndAttempt(int64_t attempt_id, bool failed, const std::string& error, bool state_lost,
                  store::WriteBatch& batch, Outbox& outbox);

  // ---- engine_gc.cc
  // What a collection released, per directory: (bytes, files).
  using Freed = std::map<std::string, std::pair<int64_t, int64_t>>;
  // Records a reported checkpoint in the ledger (a file it replaces becomes garbage).
  void LedgerKeep(const FamilyState& family, stage_tree::NodeId node, int64_t step,
                  const std::string& uri, int64_t size_bytes, store::WriteBatch& batch);
  // Releases what no known work needs (`unneeded`), and in directories over their budget what
  // could be recomputed, until they are under it.
  Freed Collect(bool unneeded, store::WriteBatch& batch, Outbox& outbox);
  // Collect when a study ended since the last collection (or a directory is over its budget).
  void CollectIfDue(store::WriteBatch& batch, Outbox& outbox);
  // Releases the state after `step` of `node`: the tree forgets it (a done node becomes a
  // recompute stage), its checkpoint row goes, its file becomes garbage. Adds to `freed`.
  void ReleaseState(FamilyState& family, stage_tree::NodeId node, int64_t step, Freed& freed,
                    store::WriteBatch& batch);
  // Sends the garbage not yet sent to a connected worker of each directory (all of a
  // directory's garbage to `fresh`, a worker that just connected).
  // `resend`: also what was sent before and not yet confirmed.
  void SendGarbage(Outbox& outbox, const Worker* fresh = nullptr, bool resend = false);
  // A worker's CheckpointsDeleted: the files are gone; stages held back for them may go.
  void GarbageDeleted(const hippo::v1::CheckpointsDeleted& deleted, store::WriteBatch& batch);
  // Whether `worker` must not train `node` now: it would write a state whose old file in its
  // directory still waits to be deleted.
  bool BlockedByGarbage(const Worker& worker, const FamilyState& family,
                        stage_tree::NodeId node) const;
  // The node of `lineage` whose steps (start, end] hold `step`, kNoNode if none.
  static stage_tree::NodeId NodeOfState(
      const std::map<std::pair<int64_t, int64_t>, stage_tree::NodeId>& by_lineage_start,
      const FamilyState& family, int64_t lineage, int64_t step);

  // ---- engine_compaction.cc
  // Adds to `batch` a snapshot of each family it appends operations to whose log is due for
  // compaction (EngineOptions::compact_ops_after); the store deletes the covered operations in
  // the same transaction.
  void CompactTreeLogs(store::WriteBatch& batch);
  // Recovery, before the operations are replayed: each family starts from its stored snapshot.
  absl::Status RestoreTreeSnapshots(const std::vector<store::TreeSnapshotRecord>& snapshots);

  // ---- engine_budget.cc
  // The bytes the attempts running with `directory` as their checkpoint directory may still
  // write there: the states each was asked for and has not reported (Attempt::writes_left),
  // each of the directory's largest checkpoint size.
  int64_t InFlightBytes(const std::string& directory) const;
  // The kept bytes a directory with a budget may hold so that the writes in flight and the
  // reserve (ReserveBytes) also fit. INT64_MAX without a budget.
  int64_t KeptLimit(const std::string& directory) const;
  bool OverLimit(const std::string& directory) const;
  std::vector<std::string> OverLimitDirectories() const;
  // The stage to give `worker`, chosen so that its checkpoint directory does not go over its
  // budget: what is on disk there (kept states, released files not yet deleted), the writes in
  // flight and the new stage's writes must fit. Releases what it may to make room; the stage
  // then waits for the deletions. When nothing is in flight there, nothing waits for deletion
  // and everything kept is needed, the needed states alone leave no room: the stage goes
  // anyway, the directory is marked over budget (over_budget_) and the studies and workers say
  // so. Without a budget (or with collection off) it is `pop`'s stage.
  // `pop` takes the stage of the scheduler's order. Under pressure — what is on disk and in flight
  // there plus one stage's writes for each worker of the directory would not fit — the stage is
  // chosen instead to let states go: first those whose completion releases their parent's state
  // (the last pending child of a branch point), then those that keep as many states as before,
  // deepest first, and a stage that opens a branch point only when nothing else runs there. A stage
  // is given only when its own writes (CheckpointStepsOf) fit. Returns none when the worker must
  // wait.
  std::optional<QueuedStage> ChooseWithinBudget(
      const Worker& worker, const std::function<std::optional<QueuedStage>()>& pop,
      const std::function<bool(const QueuedStage&)>& still_ready,
      const std::function<bool(int64_t group)>& serves_group, store::WriteBatch& batch,
      Outbox& outbox);
  // How the states kept as starts of pending work change when the stage is done: +1 if it
  // has children to train (its end state is kept for them), -1 if it is the last pending
  // child of its parent (the parent's state goes), 0 otherwise.
  int KeptStatesChange(const FamilyState& family, stage_tree::NodeId node) const;
  // Room kept free in a directory beyond its writes in flight: one stage's writes (the most a
  // stage given there wrote) for each connected worker of the directory.
  int64_t ReserveBytes(const std::string& directory) const;
  // Why `directory` is over its budget, "" when it is not marked so.
  std::string OverBudgetMessage(const std::string& directory) const;
  // The over-budget message of the first marked directory holding a state of the study's
  // families, "" if none.
  std::string StudyOverBudget(const StudyState& study) const;

  // ---- engine_retry.cc
  // An attempt of running `node` failed on `worker_id`: the node fails, and goes back to the
  // queue after its backoff while it has attempts left; else the trials through it fail.
  void StageFailed(FamilyState& family, stage_tree::NodeId node, const std::string& worker_id,
                   const std::string& error, store::WriteBatch& batch,
                   std::set<size_t>& touched_studies);
  // Failed `node` goes back to the queue; with `new_budget`, with all its attempts again.
  void RequeueFailed(FamilyState& family, stage_tree::NodeId node, bool new_budget,
                     store::WriteBatch& batch);
  // `node` is done: it has no failure and no retry to wait for any more.
  void ForgetFailure(FamilyState& family, stage_tree::NodeId node);
  // Requeues the failed stages whose backoff ended by `now` and ends the drains that ended;
  // true if anything can be dispatched anew.
  bool RetryWhatIsDue(Clock::time_point now, store::WriteBatch& batch);
  // Counts an attempt's outcome in its worker's health; drains it after too many failures. A
  // change of health is written to the store (worker_health), so that a drain outlives a restart.
  void NoteWorkerOutcome(Worker& worker, bool failed, const std::string& error,
                         store::WriteBatch& batch);
  static store::WorkerHealthRecord HealthRecord(const Worker& worker);
  // At recovery: the workers that were unhealthy, with their failures and what is left of their
  // drain, listed as disconnected until they say hello again.
  void RecoverWorkerHealth(const std::vector<store::WorkerHealthRecord>& records);
  bool Drained(const Worker& worker, Clock::time_point now) const;
  // Whether `worker` should leave `stage` to another connected worker (it failed there and
  // another, not drained, did not).
  bool LeaveToAnother(const Worker& worker, const QueuedStage& stage) const;
  // A trial just added, extended or retried (`by_client`: `hippo retry`) passes through failed
  // stages whose attempts are used up: each is tried again with a new budget, unless the
  // trial's own study already saw it fail (not by_client): then the trial fails at once.
  // Returns whether it failed.
  bool ReviveFailedPath(size_t study_index, int64_t number, bool by_client,
                        store::WriteBatch& batch);
  // Fails running trial `number` because a stage it needs failed; its algorithm hears of it.
  void FailTrial(size_t study_index, int64_t number, const std::string& error,
                 store::WriteBatch& batch);
  // Recover: failed stages that a live trial needs go back to the queue (a restart is a new
  // chance), and running studies with nothing running and nothing to propose end.
  void RecoverFailedStages(store::WriteBatch& batch);
  // Why failed trial `number` failed: the failed stage on its path and its error ("" if none).
  std::string TrialFailure(const StudyState& study, int64_t number) const;
  // Ends a running study that cannot progress (no trial runs, its algorithm proposes none):
  // COMPLETED if a trial completed, else FAILED, with `why` in its message.
  void EndStalledStudy(size_t study_index, const std::string& why, store::WriteBatch& batch);

  // ---- engine_repair.cc
  // The attempt could not read the state it was to start from: that state is marked lost in
  // the tree (its stage becomes a recompute stage, from its nearest kept ancestor state), so
  // the attempt's stages wait for it. False when the loss cannot be repaired (the root's
  // state, or a stage whose states were lost too often: workers that cannot read each other's
  // checkpoint directories): the attempt then counts as failed.
  bool RepairLostState(const Attempt& attempt, store::WriteBatch& batch);
  // Whether `view`, a stage of `family`, starts from the state the family inherits and must
  // wait for it: that state was lost or released, and its own family recomputes it.
  bool WaitsForInheritedState(const FamilyState& family, const stage_tree::NodeView& view) const;
  // Whether a first stage of inheriting family `inheritor` is not done and needed: the family
  // needs the state it inherits (to start, or to start again after a crash).
  bool InheritorNeedsState(const FamilyState& inheritor) const;
  // Whether an inheriting family that needs its inherited state (InheritorNeedsState) needs
  // `node` of `family` for it: `node` ends at that state, or (unless `at_end_only`) lies on
  // the path to it.
  bool NeededByInheritors(const FamilyState& family, stage_tree::NodeId node,
                          bool at_end_only) const;
  // `node` of `family` is done: inheriting families whose first stages waited for its end state
  // go back to the queue (their priorities are recomputed, which requeues their ready stages).
  void InheritedStateDone(const FamilyState& family, stage_tree::NodeId node);
  // `node` of `family` failed for good: the running trials of inheriting families whose first
  // stages wait for a state it leads to cannot start, and fail with `message`.
  void FailInheritorsWaitingOn(const FamilyState& family, stage_tree::NodeId node,
                               const std::string& message, store::WriteBatch& batch,
                               std::set<size_t>& touched_studies);

  // ---- engine_changes.cc: the versions of the read views
  // Notes what `batch` changes in the read views (trials, the stages on their paths, their
  // metrics) and signals the change listeners. Cheap: the noted changes are stamped with a
  // version by the next reader (ResolveChanges), or once many have gathered.
  void NoteChanges(const store::WriteBatch& batch);
  // Stamps every trial noted since the last call with a new version (view_version_).
  void ResolveChanges();
  void StampTrial(StudyState& study, int64_t number, int64_t version);

  // ---- engine_views.cc
  store::TrialRecord TrialRecordOf(size_t study_index, int64_t trial) const;
  store::StageRecord StageRecordOf(const FamilyState& family, stage_tree::NodeId node) const;
  // `with_spec`: false leaves spec out, for a caller that copies it after the lock.
  hippo::v1::Study StudyView(const StudyState& study, bool with_spec = true) const;
  hippo::v1::Trial TrialView(const StudyState& study, int64_t trial) const;

  store::Store* store_;
  EngineOptions options_;
  OrderedCommitter committer_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<FamilyState>> families_;  // id - 1
  // The families whose stages the workers train, in id order: all but the client-trained ones
  // (one per ask/tell trial, never queued), so that what each dispatch walks (the priorities to
  // refresh, the ready queue's rebuild) does not grow with the ask/tell trials ever made.
  std::vector<FamilyState*> scheduled_families_;
  // Ready stages the queue dropped because no live trial needed them then (or they waited for
  // an inherited state), as (family, node): queued again after the next insertion (or a rebuild
  // of the whole queue), which may need them.
  absl::flat_hash_set<std::pair<int64_t, stage_tree::NodeId>> dropped_ready_;
  // The families that inherit a state of each family (engine_inherit.cc), by the parent's id.
  absl::flat_hash_map<int64_t, std::vector<int64_t>> inheritors_;
  absl::flat_hash_map<std::string, int64_t> family_ids_;
  std::vector<std::unique_ptr<StudyState>> studies_;
  absl::flat_hash_map<std::string, size_t> study_index_;
  std::map<int64_t, Attempt> attempts_;
  int64_t next_attempt_ = 1;
  std::map<std::string, Worker> workers_;
  int64_t next_session_ = 1;
  ReadyQueue ready_;
  // (deadline in wall-clock ms, study index) of the running studies with a max_wall_seconds.
  std::set<std::pair<int64_t, size_t>> wall_deadlines_;
  bool trials_ended_ = false;    // a running trial stopped or failed since CancelUnneeded ran
  int64_t targets_reached_ = 0;  // counts TrialReachedTarget calls
  int64_t failed_at_once_ = 0;   // counts trials failed by ReviveFailedPath
  absl::flat_hash_map<int64_t, StageRetry> retries_;  // by global stage id
  absl::flat_hash_map<int64_t, int> repairs_;         // lost states repaired, by global stage id
  std::mt19937_64 jitter_;                            // the backoffs' jitter
  Engine::Stats stats_;
  CheckpointLedger ledger_;
  bool collection_due_ = false;  // a study ended since the last collection
  // Directories still over their budget after a collection, with the bytes kept then.
  std::map<std::string, int64_t> futile_collections_;
  std::set<int64_t> blocked_by_garbage_;  // families with a stage held back by BlockedByGarbage
  // Directories whose needed states alone exceed their budget (ChooseWithinBudget), with the bytes
  // kept when that was found.
  std::map<std::string, int64_t> over_budget_;
  // Per family id, the last operation its stored snapshot covers (absent: none).
  std::map<int64_t, int64_t> snapshot_through_;
  // Directories whose stages wait for the deletion of released files, since when.
  std::map<std::string, Clock::time_point> deletion_waits_;
  // The most states a stage given in a directory was asked to write (ReserveBytes).
  std::map<std::string, int64_t> most_writes_;
  int64_t last_study_number_ = 0;  // the highest study number given, deleted ones included
  // The read views' versions (engine_changes.cc): the current one, and what changed since it
  // was stamped: trials as (study index, number), stages as (family id, node).
  int64_t view_version_ = 1;
  std::vector<std::pair<size_t, int64_t>> noted_trials_;
  std::vector<std::pair<int64_t, int64_t>> noted_nodes_;
  std::vector<std::pair<int64_t, int64_t>> noted_extends_;            // (family id, tree trial)
  std::vector<std::tuple<int64_t, int64_t, int64_t>> noted_metrics_;  // (family, lineage, step)
  std::vector<std::function<void()>> listeners_;
};

// Conversions shared by the engine's files (engine_conversions.cc).
namespace engine_internal {

// The setting that keeps the highest study number given (DeleteStudy writes it), so that a
// deleted study's number is not given again after a restart.
inline constexpr char kLastStudyNumberSetting[] = "last_study_number";

int64_t NowMs();  // wall-clock milliseconds since the epoch, as the store's times are
// A stage's state as the views show it: a stage whose steps were trained reads as done even
// when its end state was collected or lost since (it then has no checkpoint_uri; it is trained
// again only if a stage below needs its state, and reads as running while it is).
hippo::v1::StageState StageStateOf(const stage_tree::NodeView& view);
void ToProto(const stage_tree::Segment& segment, hippo::v1::Segment* out);
google::protobuf::Value ToProtoValue(const stage_tree::Value& value);
// Points are stored as the JSON of a google.protobuf.ListValue.
std::string PointToJson(const stage_tree::Point& point);
absl::StatusOr<stage_tree::Point> PointFromJson(const std::string& json);
// The lease of an attempt given or heard from now.
std::chrono::milliseconds LeaseOf(const EngineOptions& options);
// The algorithm as ask/tell, or nullptr when the study's trials are trained by workers.
inline search_algos::ExternalAskTell* AskTellOf(search_algos::SearchAlgorithm* algorithm) {
  return dynamic_cast<search_algos::ExternalAskTell*>(algorithm);
}

}  // namespace engine_internal

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_ENGINE_IMPL_H_
