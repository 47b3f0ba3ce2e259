#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hippo/engine_impl.h"
#include "stage_tree/graph_view.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using engine_internal::NowMs;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

void EngineImpl::TrackSplits(FamilyState& family,
                             const std::vector<stage_tree::SplitResult>& splits, Outbox& outbox,
                             store::WriteBatch& batch) {
  family.FollowSplits(splits);
  for (const stage_tree::SplitResult& split : splits) {
    if (split.action == stage_tree::SplitAction::kUpperDone) {
      // The state at the split step was kept already: the attempt goes on with the lower part
      // only. A trial ending at the upper part is the one being inserted or extended; its caller
      // sees the part done.
      for (auto& [id, attempt] : attempts_) {
        if (attempt.family_id != family.id()) continue;
        auto at = std::find(attempt.chain.begin(), attempt.chain.end(), split.upper);
        if (at == attempt.chain.end()) continue;
        *at = split.lower;
        if (attempt.last_part == split.upper) attempt.last_part = split.lower;
        break;
      }
      batch.stages.push_back(StageRecordOf(family, split.upper));
      continue;
    }
    if (split.action != stage_tree::SplitAction::kCheckpointRequested) continue;
    // The running attempt now covers both parts: ask it for the state at the split step.
    for (auto& [id, attempt] : attempts_) {
      if (attempt.family_id != family.id()) continue;
      auto at = std::find(attempt.chain.begin(), attempt.chain.end(), split.upper);
      if (at == attempt.chain.end()) continue;
      attempt.chain.insert(at + 1, split.lower);
      if (attempt.last_part == split.upper) attempt.last_part = split.lower;
      ++attempt.writes_left;  // the state at the split step
      // The worker may have reported the upper part's last step already, when it was not yet
      // a last step, and still honour the request: that report is the upper part's end metric.
      const Step split_step = family.tree().node(split.upper).end;
      if (attempt.last_reported_step == split_step - 1) {
        for (const auto& [name, value] : attempt.last_reported_metrics) {
          family.KeepMetric(name, family.lineage(split.upper), split_step - 1, value);
        }
      }
      if (auto worker = workers_.find(attempt.worker_id);
          worker != workers_.end() && worker->second.connected) {
        v1::CoordinatorMessage message;
        message.mutable_checkpoint_at()->set_attempt_id(id);
        message.mutable_checkpoint_at()->set_step(family.tree().node(split.upper).end);
        outbox.sends.emplace_back(worker->second.channel, std::move(message));
      }
      break;
    }
  }
}

bool EngineImpl::Needed(const FamilyState& family, NodeId node) const {
  for (stage_tree::TrialId trial : family.tree().TrialsThrough(node)) {
    const auto& [study_index, number] = family.OwnerOf(trial);
    if (study_index == FamilyState::kNoStudy) continue;  // of a deleted study
    const StudyState& study = *studies_[study_index];
    if (study.record.state == v1::STUDY_RUNNING &&
        study.trials[number].state == v1::TRIAL_RUNNING) {
      return true;
    }
  }
  // An inheriting family that waits for a state this node leads to (engine_repair.cc).
  return NeededByInheritors(family, node, /*at_end_only=*/false);
}

bool EngineImpl::RecomputeNeeded(const FamilyState& family, NodeId node) const {
  for (NodeId child : family.tree().Children(node)) {
    if (family.tree().node(child).state != StageState::kDone && Needed(family, child)) return true;
  }
  for (stage_tree::TrialId trial : family.tree().TrialsThrough(node)) {
    if (family.tree().Leaf(trial) != node) continue;
    const auto& [study_index, number] = family.OwnerOf(trial);
    if (study_index == FamilyState::kNoStudy) continue;  // of a deleted study
    const StudyState& study = *studies_[study_index];
    if (study.record.state == v1::STUDY_RUNNING &&
        study.trials[number].state == v1::TRIAL_RUNNING) {
      return true;
    }
  }
  // The state an inheriting family starts from (engine_repair.cc).
  return NeededByInheritors(family, node, /*at_end_only=*/true);
}

void EngineImpl::CancelUnneeded(store::WriteBatch& batch, Outbox& outbox) {
  if (!trials_ended_) return;
  trials_ended_ = false;
  std::vector<int64_t> unneeded;
  for (const auto& [id, attempt] : attempts_) {
    const FamilyState& family = FamilyById(attempt.family_id);
    // An attempt whose parts are all done only has its finish to report.
    if (!attempt.chain.empty() && std::none_of(attempt.chain.begin(), attempt.chain.end(),
                                               [&](NodeId node) { return Needed(family, node); })) {
      unneeded.push_back(id);
    }
  }
  for (int64_t id : unneeded) {
    Abandon(id, store::kAttemptCancelled, batch, outbox);
    ++stats_.attempts_cancelled;
  }
}

void EngineImpl::SettleCharge(const Attempt& attempt) {
  const double took = std::chrono::duration<double>(Clock::now() - attempt.started).count();
  ready_.Charge(attempt.family_id, took - attempt.charged_seconds);
}

void EngineImpl::Abandon(int64_t attempt_id, int record_state, store::WriteBatch& batch,
                         Outbox& outbox) {
  Attempt attempt = std::move(attempts_[attempt_id]);
  attempts_.erase(attempt_id);
  SettleCharge(attempt);
  FamilyState& family = FamilyById(attempt.family_id);
  for (NodeId node : attempt.chain) {
    const stage_tree::NodeView view = family.tree().node(node);
    if (view.state != StageState::kRunning) continue;
    // A state the attempt kept inside the stage (resources.checkpoint_every_steps) is where the
    // stage resumes: split there, the part above is done (its state exists) and only the rest
    // goes back. The kRequeue operation records the step, so that a replay splits alike.
    NodeId requeued = node;
    const Step kept = view.recompute ? view.start : family.tree().LatestCheckpoint(node);
    if (kept > view.start) {
      absl::StatusOr<stage_tree::SplitResult> split = family.tree().Split(node, kept);
      if (split.ok() && split->action == stage_tree::SplitAction::kUpperDone) {
        TrackSplits(family, {*split}, outbox, batch);
        requeued = split->lower;
      }
    }
    // A running stage can always go back to the queue, where it waits until a trial needs it.
    (void)family.tree().Requeue(requeued);
    family.AppendOp(store::TreeOpKind::kRequeue, node, requeued == node ? 0 : kept, "", batch);
    batch.stages.push_back(StageRecordOf(family, requeued));
  }
  if (auto worker = workers_.find(attempt.worker_id); worker != workers_.end()) {
    if (worker->second.attempt == attempt_id) worker->second.attempt.reset();
    if (worker->second.connected) {
      v1::CoordinatorMessage cancel;
      cancel.mutable_cancel()->set_attempt_id(attempt_id);
      outbox.sends.emplace_back(worker->second.channel, std::move(cancel));
    }
  }
  store::AttemptRecord record;
  record.attempt_id = attempt_id;
  record.family_id = attempt.family_id;
  record.node_id = attempt.assigned;
  record.worker_id = attempt.worker_id;
  record.state = record_state;
  batch.attempts.push_back(record);
}

std::vector<double> EngineImpl::Continuations(const FamilyState& family) const {
  std::vector<double> continuation;
  if (family.trial_by_trial()) return continuation;
  for (stage_tree::TrialId tree_trial = 0; tree_trial < family.owned_trials(); ++tree_trial) {
    const auto& [study_index, number] = family.OwnerOf(tree_trial);
    if (study_index == FamilyState::kNoStudy) continue;  // of a deleted study
    const StudyState& study = *studies_[study_index];
    const double steps = ContinuationOf(family, study, study.trials[number]);
    if (steps == 0) continue;
    const NodeId leaf = family.tree().Leaf(tree_trial);
    if (continuation.size() <= leaf) continuation.resize(leaf + 1, 0.0);
    continuation[leaf] = std::max(continuation[leaf], steps);
  }
  return continuation;
}

double EngineImpl::ContinuationOf(const FamilyState& family, const StudyState& study,
                                  const TrialState& trial) const {
  const int64_t max_steps = study.spec.budget().max_steps();
  if (family.trial_by_trial() || study.record.state != v1::STUDY_RUNNING ||
      trial.state != v1::TRIAL_RUNNING || trial.target >= max_steps) {
    return 0;
  }
  return static_cast<double>(max_steps - trial.target);
}

void EngineImpl::KeepPrioritiesAfterInsert(FamilyState& family, const StudyState& study,
                                           const TrialState& trial,
                                           const std::vector<stage_tree::SplitResult>& splits) {
  const std::vector<NodeId> changed =
      family.AddTrialPriorities(trial.tree_trial, splits, ContinuationOf(family, study, trial));
  if (changed.empty() && family.priorities_dirty()) return;  // computed whole at the next dispatch
  for (NodeId node : changed) {
    if (family.tree().node(node).state == StageState::kReady) {
      ready_.Push(QueuedStage{family.id(), node}, family.Priority(node));
    }
  }
  // The new trial may need again a stage taken out of the queue because nothing needed it (a
  // deleted study's, say): queued again, as a rebuild of the whole queue would. Only those, so
  // that an insertion costs the stages it changed, not every ready stage.
  for (const auto& [family_id, node] : dropped_ready_) {
    const FamilyState& owner = FamilyById(family_id);
    if (owner.tree().node(node).state == StageState::kReady) {
      ready_.Push(QueuedStage{family_id, node}, owner.Priority(node));
    }
  }
  dropped_ready_.clear();
}

void EngineImpl::RefreshPriorities() {
  bool any = false;
  for (FamilyState* family : scheduled_families_) {
    if (!family->priorities_dirty()) continue;
    family->SetPriorities(
        stage_tree::RemainingCriticalPath(family->tree(), 1.0, Continuations(*family)));
    any = true;
  }
  if (any) RebuildReadyQueue();
}

void EngineImpl::RebuildReadyQueue() {
  ready_.Clear();
  dropped_ready_.clear();
  for (const FamilyState* family : scheduled_families_) {
    for (NodeId node : family->tree().ready_set()) {
      ready_.Push(QueuedStage{family->id(), node}, family->Priority(node));
    }
  }
}

bool EngineImpl::Serves(const Worker& worker, const std::string& kind) {
  const auto& kinds = worker.hello.trainers();
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

bool EngineImpl::CanReadStart(const Worker& worker, const FamilyState& family, NodeId node) const {
  const std::string& directory = worker.hello.checkpoint_dir();
  if (directory.empty()) return true;
  const stage_tree::NodeView view = family.tree().node(node);
  // The state AssignTo names: one kept inside the stage for a rerun from there, else the
  // parent's end.
  NodeId owner = view.parent;
  Step step = view.start;
  if (view.recompute && view.recompute_from > view.start) {
    owner = node;
    step = view.recompute_from;
  }
  if (owner == stage_tree::kRootNode) return true;
  if (worker.cached_states.contains({family.WorkerStageId(owner), step})) return true;
  const std::string* uri = family.StateUri(owner, step);
  if (uri == nullptr) return true;
  const std::string state_directory = CheckpointLedger::DirectoryOf(*uri);
  return state_directory.empty() || state_directory == directory;
}

bool EngineImpl::LeaveToReader(const Worker& worker, const QueuedStage& stage) const {
  const FamilyState& family = FamilyById(stage.family_id);
  if (CanReadStart(worker, family, stage.node)) return false;
  const Clock::time_point now = Clock::now();
  for (const auto& [id, other] : workers_) {
    if (other.connected && &other != &worker && !Drained(other, now) &&
        CanReadStart(other, family, stage.node)) {
      return true;
    }
  }
  return false;
}

std::string EngineImpl::WaitingReason(const StudyState& study) const {
  if (study.record.state != v1::STUDY_RUNNING ||
      engine_internal::AskTellOf(study.algorithm.get()) != nullptr) {
    return "";
  }
  const std::string& kind = study.spec.trainer().kind();
  std::set<std::string> served;
  bool any_connected = false;
  for (const auto& [id, worker] : workers_) {
    if (!worker.connected) continue;
    any_connected = true;
    if (Serves(worker, kind)) return "";
    served.insert(worker.hello.trainers().begin(), worker.hello.trainers().end());
  }
  if (!any_connected) return "waiting for a worker: none is connected";
  return absl::StrCat("waiting for a worker that serves trainer kind '", kind,
                      "': the connected workers serve ", absl::StrJoin(served, ", "),
                      "; start one with hippo worker --trainers ", kind,
                      kind == "command" ? " --allow-dir DIR" : "");
}

void EngineImpl::Dispatch(store::WriteBatch& batch, Outbox& outbox) {
  RefreshPriorities();
  const Clock::time_point now = Clock::now();
  for (auto& [id, worker] : workers_) {
    if (!worker.connected || worker.attempt.has_value() || Drained(worker, now)) continue;
    bool left_to_another = false;
    std::optional<v1::Assign> assign = AssignTo(worker, batch, outbox, left_to_another);
    // Nothing ready that this worker serves, only stages left to another worker, or no room in
    // its checkpoint directory yet: the next worker may still take something.
    if (!assign) continue;
    v1::CoordinatorMessage message;
    *message.mutable_assign() = *std::move(assign);
    outbox.sends.emplace_back(worker.channel, std::move(message));
  }
}

const FamilyState::Owner& EngineImpl::StageOwner(const FamilyState& family, NodeId node) const {
  const std::vector<stage_tree::TrialId>& trials = family.tree().TrialsThrough(node);
  for (stage_tree::TrialId trial : trials) {
    if (!family.OwnerOf(trial).deleted()) return family.OwnerOf(trial);
  }
  return family.OwnerOf(trials.front());
}

std::vector<Step> EngineImpl::CheckpointStepsOf(const FamilyState& family, NodeId node,
                                                const StudyState& study) const {
  const stage_tree::NodeView view = family.tree().node(node);
  const Step start = view.recompute ? view.recompute_from : view.start;
  std::vector<Step> steps = family.BreakpointsBetween(start, view.end);
  // resources.checkpoint_every_steps: also the states at every k-th step inside the stage, so
  // that a lost worker costs at most k steps (Abandon resumes from the last one). A stage shared
  // by studies follows the study of the trial that also gives its trainer.
  if (const int64_t every = study.spec.resources().checkpoint_every_steps(); every > 0) {
    for (Step step = (start / every + 1) * every; step < view.end; step += every) {
      steps.push_back(step);
    }
    std::sort(steps.begin(), steps.end());
    steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  }
  steps.push_back(view.end);
  return steps;
}

Preference EngineImpl::ContinuationsOf(const Worker& worker) const {
  Preference prefer;
  if (!worker.last_trained) return prefer;
  const auto& [family_id, node] = *worker.last_trained;
  const FamilyState& family = FamilyById(family_id);
  if (node >= family.tree().node_count()) return prefer;
  for (NodeId child : family.tree().Children(node)) {
    if (family.tree().node(child).state == StageState::kReady && Needed(family, child)) {
      prefer.stages.push_back(QueuedStage{family_id, child});
    }
  }
  if (prefer.stages.empty()) return prefer;
  // The window (scheduler.h, Preference) within which the child goes before the critical-path
  // order, chosen so that this cannot lengthen the study:
  // - One worker serves the trainer kind and the work is fixed (every running study of the
  //   family has an algorithm that will make no more requests: no new trial, extension or stop
  //   depends on when results arrive): the worker trains every ready stage in turn, so their
  //   order changes when each runs, not when the last ends. Anywhere (window 0).
  // - Otherwise, the K best ready stages, K the idle workers that serve the kind (this one
  //   included): those K start now in any case, so taking the child among them changes which
  //   worker starts which, not which stages start or when. A child further down waits for its
  //   turn: an adaptive algorithm (ASHA, Hyperband, evolution) decides its later work from the
  //   results that the critical-path order brings first, and taking a child from further down
  //   made such studies longer in the simulator (benchmarks/README.md, "continuation").
  const std::string& kind =
      studies_[StageOwner(family, prefer.stages.front().node).study_index]->spec.trainer().kind();
  const Clock::time_point now = Clock::now();
  size_t serving = 0;
  size_t idle = 0;
  for (const auto& [id, other] : workers_) {
    if (!other.connected || Drained(other, now) || !Serves(other, kind)) continue;
    ++serving;
    if (!other.attempt) ++idle;
  }
  bool fixed_work = true;
  for (const auto& study : studies_) {
    if (study->record.state != v1::STUDY_RUNNING || study->algorithm == nullptr) continue;
    if (study->family_ids.contains(family_id) && !study->algorithm->Finished()) fixed_work = false;
  }
  prefer.window = serving <= 1 && fixed_work ? 0 : std::max<size_t>(1, idle);
  return prefer;
}

std::optional<v1::Assign> EngineImpl::AssignTo(Worker& worker, store::WriteBatch& batch,
                                               Outbox& outbox, bool& left_to_another) {
  // Whether a stage in the queue should still run: it is ready and some live trial needs it.
  // One this worker failed on, which another worker can take, is left (and queued again below).
  std::vector<QueuedStage> left;
  auto still_ready = [this, &worker, &left](const QueuedStage& stage) {
    const FamilyState& family = FamilyById(stage.family_id);
    const stage_tree::NodeView view = family.tree().node(stage.node);
    if (view.state != StageState::kReady || !Needed(family, stage.node) ||
        (view.recompute && !RecomputeNeeded(family, stage.node)) ||
        WaitsForInheritedState(family, view)) {
      // Pop drops it from the queue: a ready one may be needed again (KeepPrioritiesAfterInsert).
      if (view.state == StageState::kReady) dropped_ready_.insert({stage.family_id, stage.node});
      return false;
    }
    if (LeaveToAnother(worker, stage) || LeaveToReader(worker, stage)) {
      left.push_back(stage);
      return false;
    }
    return true;
  };
  auto is_local = [this, &worker](const QueuedStage& stage) {
    const stage_tree::NodeView node = FamilyById(stage.family_id).tree().node(stage.node);
    const FamilyState& family = FamilyById(stage.family_id);
    if (node.parent == stage_tree::kRootNode) {
      // A first stage of an inheriting family starts from the parent family's state.
      const Inheritance& from = family.inheritance();
      return from.inherits() &&
             worker.cached_states.contains(
                 {GlobalStageId(from.family_id, static_cast<NodeId>(from.lineage)), from.step});
    }
    return worker.cached_states.contains({family.WorkerStageId(node.parent), node.start});
  };
  // Only stages of a trainer kind the worker said it serves: a share group is one study's, and
  // all its stages have that study's trainer (ShareGroup).
  auto serves_group = [this, &worker](int64_t group) {
    if (group < ShareGroup(0) || group >= ShareGroup(studies_.size())) return true;
    const std::string& kind =
        studies_[static_cast<size_t>(group - ShareGroup(0))]->spec.trainer().kind();
    return Serves(worker, kind);
  };
  const Preference continuations = ContinuationsOf(worker);
  std::optional<QueuedStage> chosen = ChooseWithinBudget(
      worker, [&] { return ready_.Pop(still_ready, is_local, serves_group, continuations); },
      still_ready, serves_group, batch, outbox);
  for (const QueuedStage& stage : left) {
    ready_.Push(stage, FamilyById(stage.family_id).Priority(stage.node));
  }
  left_to_another = !left.empty();

  if (!chosen) return std::nullopt;
  FamilyState& family = FamilyById(chosen->family_id);
  if (BlockedByGarbage(worker, family, chosen->node)) {
    // Back in the queue until the old file is deleted (GarbageDeleted).
    ready_.Push(*chosen, family.Priority(chosen->node));
    blocked_by_garbage_.insert(family.id());
    return std::nullopt;
  }
  const Step cut = family.CutStep(chosen->node);
  if (cut > 0) (void)family.Cut(chosen->node, cut);  // CutStep is strictly inside: it cannot fail
  const stage_tree::NodeView node = family.tree().node(chosen->node);
  (void)family.tree().MarkRunning(chosen->node);  // still_ready: it is ready, which it accepts
  family.AppendOp(store::TreeOpKind::kRunning, chosen->node, cut, "", batch);

  Attempt attempt;
  attempt.id = next_attempt_++;
  attempt.family_id = family.id();
  attempt.assigned = chosen->node;
  attempt.steps = node.end - node.start;
  attempt.chain = {chosen->node};
  attempt.last_part = chosen->node;
  attempt.worker_id = worker.hello.worker_id();
  attempt.lease_expires = Clock::now() + engine_internal::LeaseOf(options_);
  attempt.recompute = node.recompute;
  worker.attempt = attempt.id;
  family.CountAttempt(chosen->node);
  ++stats_.dispatches;
  // Its share of the workers (resources.weight): charged now at the stage's estimated cost, so
  // that workers asking at once are shared too; settled at the time it took when it ends.
  attempt.started = Clock::now();
  attempt.charged_seconds = static_cast<double>(attempt.steps) * family.seconds_per_step();
  ready_.Charge(family.id(), attempt.charged_seconds);

  v1::Assign assign;
  assign.set_attempt_id(attempt.id);
  assign.set_stage_id(family.WorkerStageId(chosen->node));
  assign.set_start_step(node.recompute ? node.recompute_from : node.start);
  assign.set_end_step(node.end);
  if (node.recompute && node.recompute_from > node.start) {
    // Start from a checkpoint kept inside the stage itself.
    assign.set_parent_stage_id(family.WorkerStageId(chosen->node));
    assign.set_parent_state_step(node.recompute_from);
    if (const std::string* uri = family.StateUri(chosen->node, node.recompute_from)) {
      assign.set_parent_state_uri(*uri);
    }
  } else if (node.parent != stage_tree::kRootNode) {
    assign.set_parent_stage_id(family.WorkerStageId(node.parent));
    assign.set_parent_state_step(node.start);
    if (const std::string* uri = family.StateUri(node.parent, node.start)) {
      assign.set_parent_state_uri(*uri);
    }
  } else if (family.inheritance().inherits()) {
    SetInheritedStart(family, assign);
  }
  const std::vector<std::vector<stage_tree::Segment>> segments =
      family.tree().SegmentsOf(chosen->node);
  const std::vector<std::string>& names = family.tree().parameter_names();
  for (size_t i = 0; i < names.size(); ++i) {
    v1::ParameterSegments* parameter = assign.add_parameters();
    parameter->set_name(names[i]);
    for (const stage_tree::Segment& segment : segments[i]) {
      engine_internal::ToProto(segment, parameter->add_segments());
    }
  }
  // Trainer and structural values come from any trial through the stage (a family shares them)
  // that is not a deleted study's; Needed found a live one.
  const FamilyState::Owner& owner = StageOwner(family, chosen->node);
  const StudyState& study = *studies_[owner.study_index];
  *assign.mutable_trainer() = study.spec.trainer();
  for (const auto& [name, value] : study.trials[owner.trial].structural) {
    (*assign.mutable_static_parameters())[name] = engine_internal::ToProtoValue(value);
  }
  for (Step step : CheckpointStepsOf(family, chosen->node, study)) {
    assign.add_checkpoint_steps(step);
  }
  attempt.writes_left = assign.checkpoint_steps_size();
  int64_t& most = most_writes_[worker.hello.checkpoint_dir()];
  most = std::max(most, attempt.writes_left);
  assign.set_lease_seconds(options_.lease_seconds);

  store::AttemptRecord record;
  record.attempt_id = attempt.id;
  record.family_id = family.id();
  record.node_id = chosen->node;
  record.worker_id = attempt.worker_id;
  record.lease_expires_ms = NowMs() + engine_internal::LeaseOf(options_).count();
  batch.attempts.push_back(record);
  batch.stages.push_back(StageRecordOf(family, chosen->node));
  attempts_[attempt.id] = std::move(attempt);
  return assign;
}

}  // namespace hippo::coordinator
