#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hippo/engine_impl.h"
#include "proto/spec_loader.h"
#include "search_algos/spec_checks.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using engine_internal::NowMs;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

namespace {

// See RunPlan.
constexpr int kMaxRoundsFailingAtOnce = 1000;

bool IsBetter(double candidate, double incumbent, bool minimize) {
  return minimize ? candidate < incumbent : candidate > incumbent;
}

// The order of a study's best trial: a better objective first, a NaN objective after every
// number, and of equal objectives the earlier trial. A strict total order, so that the best
// can be kept as trials change and equals what a walk over every trial would find.
bool BetterTrial(double objective, int64_t number, double incumbent, int64_t incumbent_number,
                 bool minimize) {
  if (std::isnan(objective) != std::isnan(incumbent)) return std::isnan(incumbent);
  if (!std::isnan(objective) && objective != incumbent) {
    return IsBetter(objective, incumbent, minimize);
  }
  return number < incumbent_number;
}

}  // namespace

absl::StatusOr<FamilyState*> EngineImpl::FamilyFor(const std::string& key,
                                                   const std::vector<std::string>& parameter_names,
                                                   store::WriteBatch& batch,
                                                   Inheritance inheritance) {
  if (auto it = family_ids_.find(key); it != family_ids_.end()) {
    FamilyState& family = FamilyById(it->second);
    if (family.tree().parameter_names() != parameter_names) {
      return absl::InvalidArgumentError(
          absl::StrCat("search_space.parameters: studies of family '", key,
                       "' must have the same sequence parameters; it has [",
                       absl::StrJoin(family.tree().parameter_names(), ", "), "], this study has [",
                       absl::StrJoin(parameter_names, ", "), "]"));
    }
    return &family;
  }
  auto family = std::make_unique<FamilyState>(static_cast<int64_t>(families_.size()) + 1, key,
                                              parameter_names, inheritance);
  const int64_t family_id = family->id();
  family->tree().set_on_ready([this, family_id](NodeId node) {
    const FamilyState& owner = FamilyById(family_id);
    if (owner.client_trained()) return;
    ready_.Push(QueuedStage{family_id, node}, owner.Priority(node));
  });
  store::FamilyRecord record;
  record.id = family->id();
  record.key = key;
  record.parameter_names = family->tree().parameter_names();
  record.inherits_family = inheritance.family_id;
  record.inherits_lineage = inheritance.lineage;
  record.inherits_step = inheritance.step;
  batch.families.push_back(record);
  family_ids_[key] = family->id();
  if (inheritance.inherits()) inheritors_[inheritance.family_id].push_back(family_id);
  families_.push_back(std::move(family));
  if (!families_.back()->client_trained()) scheduled_families_.push_back(families_.back().get());
  return families_.back().get();
}

absl::StatusOr<v1::Study> EngineImpl::CreateStudy(const v1::StudySpec& spec, bool no_merge) {
  if (absl::Status status = search_algos::ValidateStudySpec(spec); !status.ok()) {
    return status;
  }
  auto study = std::make_unique<StudyState>();
  absl::StatusOr<stage_tree::SearchSpace> space =
      stage_tree::SearchSpaceFromProto(spec.search_space());
  if (!space.ok()) return space.status();
  study->space = *std::move(space);
  study->spec = spec;
  study->trainer_identity = stage_tree::TrainerIdentity(spec.trainer());
  // What depends on the spec alone is made before the lock, so that a large spec (a grid at its
  // cap, a trainer config near the size limit) does not hold up the studies and workers that
  // wait for the engine.
  study->record.name = spec.name();
  study->record.spec_json = proto::StudySpecToJson(spec);
  search_algos::AlgorithmContext context;
  context.space = &study->space;
  context.max_steps = spec.budget().max_steps();
  context.max_trials = spec.budget().max_trials();
  context.seed = spec.algorithm().seed();
  context.minimize = spec.objective().direction() == v1::MINIMIZE;
  context.config = spec.algorithm();
  absl::StatusOr<std::unique_ptr<search_algos::SearchAlgorithm>> algorithm =
      search_algos::AlgorithmRegistry::Global().Create(spec.algorithm().name(), context);
  if (!algorithm.ok()) return absl::InvalidArgumentError(algorithm.status().message());
  study->algorithm = *std::move(algorithm);

  std::unique_lock<std::mutex> lock(mutex_);
  // A family name stands for one trainer (hippo.proto, StudySpec.family).
  if (!spec.family().empty()) {
    for (const auto& other : studies_) {
      if (other->deleted) continue;
      if (other->spec.family() == spec.family() &&
          other->trainer_identity != study->trainer_identity) {
        return absl::InvalidArgumentError(absl::StrCat(
            "family: \"", spec.family(), "\" is the family of study ", other->record.id,
            ", whose trainer spec differs from this one; studies of one family share stages, so "
            "they need the same trainer: use its trainer spec, or another family name"));
      }
    }
  }
  // Numbers are never reused, also those of deleted studies (DeleteStudy keeps the highest).
  last_study_number_ = std::max<int64_t>(last_study_number_, static_cast<int64_t>(studies_.size()));
  study->record.id = absl::StrFormat("s-%06d", ++last_study_number_);
  study->record.state = v1::STUDY_RUNNING;
  study->record.created_ms = NowMs();
  study->record.no_merge = no_merge;

  const size_t index = studies_.size();
  ready_.SetWeight(ShareGroup(index), spec.resources().weight());
  study_index_[study->record.id] = index;
  studies_.push_back(std::move(study));
  store::WriteBatch batch;
  Outbox outbox;
  batch.studies.push_back(studies_[index]->record);
  batch.events.push_back(Event(studies_[index]->record.id, "study_created", ""));
  if (absl::Status status = RunPlan(index, batch, outbox); !status.ok()) {
    // Nothing was committed: forget the study entirely.
    study_index_.erase(studies_[index]->record.id);
    --last_study_number_;
    studies_.pop_back();
    return status;
  }
  if (const double budget = spec.budget().max_wall_seconds(); budget > 0) {
    wall_deadlines_.emplace(
        studies_[index]->record.created_ms + static_cast<int64_t>(std::ceil(budget * 1000)), index);
  }
  Dispatch(batch, outbox);
  v1::Study view = StudyView(*studies_[index]);
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return view;
}

absl::Status EngineImpl::RunPlan(size_t study_index, store::WriteBatch& batch, Outbox& outbox) {
  StudyState& study = *studies_[study_index];
  if (study.record.state != v1::STUDY_RUNNING) return absl::OkStatus();
  // A request can be answered at once (an extension or a new trial whose stages another trial
  // already trained, or a new trial that fails at once below a stage that failed): the
  // algorithm then hears of it and may have more to ask. Rounds that only fail trials are
  // bounded: a study without a trial limit could otherwise propose failing trials forever.
  int rounds_failing = 0;
  for (bool answered_at_once = true;
       answered_at_once && rounds_failing < kMaxRoundsFailingAtOnce;) {
    answered_at_once = false;
    const int64_t limit = study.spec.budget().max_parallel_trials();
    const bool windowed = limit <= 0 || limit > kMaxTrialsPlannedAhead;
    int64_t capacity =
        std::max<int64_t>(0, (windowed ? kMaxTrialsPlannedAhead : limit) - study.running_trials);
    // A window is refilled once half of it has ended, not trial by trial (engine.h,
    // kMaxTrialsPlannedAhead).
    if (windowed && study.running_trials > kMaxTrialsPlannedAhead / 2) capacity = 0;
    const int64_t reached_before = targets_reached_;
    const int64_t failed_before = failed_at_once_;
    std::vector<search_algos::Request> requests = study.algorithm->Suggest(capacity);
    if (absl::Status status = CarryOut(study_index, requests, batch, outbox); !status.ok()) {
      return status;
    }
    answered_at_once = targets_reached_ != reached_before || failed_at_once_ != failed_before;
    rounds_failing = targets_reached_ == reached_before && failed_at_once_ != failed_before
                         ? rounds_failing + 1
                         : 0;
  }
  SaveAlgorithmState(study, batch);
  FinishStudyIfDone(study_index, batch);
  // Workers' reports are the only events of a study its workers train: with no trial running
  // and nothing proposed, none will come, and the study would wait forever.
  if (study.record.state == v1::STUDY_RUNNING && study.running_trials == 0 &&
      engine_internal::AskTellOf(study.algorithm.get()) == nullptr) {
    EndStalledStudy(study_index,
                    rounds_failing >= kMaxRoundsFailingAtOnce
                        ? "ended: its new trials keep failing at once below failed stages"
                        : "ended: no trial can run and the algorithm proposes no other",
                    batch);
  }
  return absl::OkStatus();
}

// An algorithm with a journal appends what changed, and its whole state every
// kJournalEntriesPerSnapshot entries (which trims the entries it covers), so each event costs
// O(1) amortised instead of a write of the whole state. Any other algorithm's whole state is
// written whenever it changed.
constexpr int64_t kJournalEntriesPerSnapshot = 1000;

void EngineImpl::SaveAlgorithmState(StudyState& study, store::WriteBatch& batch) {
  search_algos::SearchAlgorithm& algorithm = *study.algorithm;
  const bool journal = algorithm.SupportsStateDelta();
  if (journal && !study.saved_algorithm_state.empty() &&
      study.journal_entries < kJournalEntriesPerSnapshot) {
    std::string delta = algorithm.TakeStateDelta();
    if (delta.empty()) return;
    ++study.journal_entries;
    batch.algorithm_deltas.push_back(
        store::AlgorithmDelta{study.record.id, ++study.journal_sequence, std::move(delta)});
    return;
  }
  // The snapshot covers whatever the next delta would hold.
  if (journal) algorithm.TakeStateDelta();
  std::string state = algorithm.SaveState();
  if (state == study.saved_algorithm_state) return;
  study.saved_algorithm_state = state;
  batch.algorithm_states.emplace_back(study.record.id, std::move(state));
  if (study.journal_entries > 0) {
    batch.algorithm_journal_trims.emplace_back(study.record.id, study.journal_sequence);
    study.journal_entries = 0;
  }
}

absl::Status EngineImpl::CarryOut(size_t study_index,
                                  const std::vector<search_algos::Request>& requests,
                                  store::WriteBatch& batch, Outbox& outbox) {
  StudyState& study = *studies_[study_index];
  for (const search_algos::Request& request : requests) {
    switch (request.kind) {
      case search_algos::Request::Kind::kNewTrial:
      case search_algos::Request::Kind::kFork:
      case search_algos::Request::Kind::kMorph:
        if (absl::Status status = AddTrial(study_index, request, batch, outbox); !status.ok()) {
          return status;
        }
        break;
      case search_algos::Request::Kind::kExtend: {
        TrialState& trial = study.trials.at(request.trial);
        FamilyState& family = FamilyById(trial.family_id);
        std::vector<stage_tree::SplitResult> splits;
        if (absl::Status status = family.tree().Extend(trial.tree_trial, request.target, &splits);
            !status.ok()) {
          return status;
        }
        family.AppendOp(store::TreeOpKind::kExtend, trial.tree_trial, request.target, "", batch);
        family.AddBreakpoint(request.target);
        TrackSplits(family, splits, outbox, batch);
        study.trial_steps += request.target - trial.target;
        study.configurations.Raise(trial.configuration, request.target);
        trial.target = request.target;
        SetTrialState(study, request.trial, v1::TRIAL_RUNNING);
        batch.trials.push_back(TrialRecordOf(study_index, request.trial));
        if (ReviveFailedPath(study_index, request.trial, /*by_client=*/false, batch)) break;
        // Another trial may have trained the whole extension already.
        if (family.tree().node(family.tree().Leaf(trial.tree_trial)).state == StageState::kDone) {
          TrialReachedTarget(study_index, request.trial, batch);
        }
        break;
      }
      case search_algos::Request::Kind::kStop: {
        // A stop at the step where the trial paused ends it as trained to its end (a `morphism`
        // member: every trial trains to a target of its own, below max_steps).
        const TrialState& trial = study.trials[request.trial];
        const bool completes = request.target > 0 && trial.state == v1::TRIAL_PAUSED &&
                               trial.target == request.target && trial.objective.has_value();
        SetTrialState(study, request.trial, completes ? v1::TRIAL_COMPLETED : v1::TRIAL_STOPPED);
        batch.trials.push_back(TrialRecordOf(study_index, request.trial));
        study.algorithm->OnTrialEnded(request.trial, completes
                                                         ? search_algos::TrialOutcome::kCompleted
                                                         : search_algos::TrialOutcome::kStopped);
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status EngineImpl::AddTrial(size_t study_index, const search_algos::Request& request,
                                  store::WriteBatch& batch, Outbox& outbox) {
  StudyState& study = *studies_[study_index];
  const Step max_steps = study.spec.budget().max_steps();
  absl::StatusOr<stage_tree::TrialPlan> plan =
      stage_tree::BuildTrial(study.space, request.point, max_steps);
  if (!plan.ok()) return absl::InvalidArgumentError(plan.status().message());
  const int64_t number = static_cast<int64_t>(study.trials.size());
  if (request.kind == search_algos::Request::Kind::kFork) {
    if (request.trial < 0 || request.trial >= number) {
      return absl::InvalidArgumentError(absl::StrCat("a fork of unknown trial ", request.trial));
    }
    if (plan->structural != study.trials[request.trial].structural) {
      return absl::InvalidArgumentError(
          "a fork continues its parent's model: only sequence parameters may change");
    }
    absl::StatusOr<stage_tree::TrialSequences> parent = SequencesOf(study, request.trial);
    if (!parent.ok()) return parent.status();
    absl::StatusOr<stage_tree::TrialSequences> composed =
        stage_tree::ComposeAt(*parent, plan->sequences, request.fork_step);
    if (!composed.ok()) return composed.status();
    plan->sequences = *std::move(composed);
  }
  // The family name, when given, is part of the key: studies share stages only under one name.
  std::string key = stage_tree::FamilyKey(
      study.spec.family().empty()
          ? study.trainer_identity
          : absl::StrCat("family=", study.spec.family(), "|", study.trainer_identity),
      plan->structural);
  if (study.record.no_merge) absl::StrAppend(&key, "|study=", study.record.id, "|trial=", number);
  // A morph starts from a trained state: its family is the one of that state and structure.
  Inheritance inheritance;
  if (request.kind == search_algos::Request::Kind::kMorph) {
    absl::StatusOr<Inheritance> inherited = InheritanceOf(study, request);
    if (!inherited.ok()) return inherited.status();
    inheritance = *inherited;
    absl::StrAppend(&key, "|inherits=", inheritance.family_id, "/", inheritance.lineage, "@",
                    inheritance.step);
  }
  const bool client_trained = engine_internal::AskTellOf(study.algorithm.get()) != nullptr;
  if (client_trained) {
    key = absl::StrCat(FamilyState::kClientTrainedPrefix, study.record.id, "|trial=", number);
  }
  std::vector<std::string> names;
  for (const auto& [name, sequence] : plan->sequences) names.push_back(name);
  absl::StatusOr<FamilyState*> family = FamilyFor(key, names, batch, inheritance);
  if (!family.ok()) return family.status();
  // A new family's stages are charged to this study (before Insert queues its first stage).
  if ((*family)->owned_trials() == 0) ready_.SetGroup((*family)->id(), ShareGroup(study_index));
  std::vector<stage_tree::SplitResult> splits;
  const bool priorities_current = !(*family)->priorities_dirty();
  absl::StatusOr<stage_tree::TrialId> tree_trial =
      (*family)->tree().Insert(plan->sequences, request.target, &splits);
  if (!tree_trial.ok()) return tree_trial.status();
  std::string encoded = stage_tree::EncodeSequences(plan->sequences);
  std::string configuration = Configurations::KeyOf(plan->structural, encoded);
  (*family)->AppendOp(store::TreeOpKind::kInsert, *tree_trial, request.target, std::move(encoded),
                      batch);
  (*family)->AddBreakpoints(plan->sequences, request.target);
  for (Step step : study.algorithm->BranchSteps()) {
    if (step > 0 && step < max_steps) (*family)->AddBreakpoint(step);
  }
  TrackSplits(**family, splits, outbox, batch);
  (*family)->SetOwner(*tree_trial, {study_index, number});
  (*family)->set_trial_by_trial(study.record.no_merge);

  TrialState trial;
  trial.family_id = (*family)->id();
  trial.tree_trial = *tree_trial;
  trial.point = request.point;
  trial.point_json = engine_internal::PointToJson(request.point);
  trial.structural = plan->structural;
  trial.target = request.target;
  if (request.kind == search_algos::Request::Kind::kFork) {
    trial.forked_from = request.trial;
    trial.forked_at = request.fork_step;
  }
  trial.state = v1::TRIAL_STATE_UNSPECIFIED;
  AppendTrial(study, std::move(trial), std::move(configuration));
  SetTrialState(study, number, v1::TRIAL_RUNNING);
  if (priorities_current) KeepPrioritiesAfterInsert(**family, study, study.trials[number], splits);
  batch.trials.push_back(TrialRecordOf(study_index, number));
  if (client_trained) {
    // The client trains it: its one stage runs from now until the client ends the trial.
    const NodeId stage = (*family)->tree().Leaf(*tree_trial);
    // The trial is its new family's only one: its stage is ready, which MarkRunning accepts.
    (void)(*family)->tree().MarkRunning(stage);
    (*family)->AppendOp(store::TreeOpKind::kRunning, stage, 0, "", batch);
    return absl::OkStatus();
  }
  if (ReviveFailedPath(study_index, number, /*by_client=*/false, batch)) return absl::OkStatus();
  // A trial whose whole path is already trained (another study trained it) has its result now.
  const NodeId leaf = (*family)->tree().Leaf(*tree_trial);
  if ((*family)->tree().node(leaf).state == StageState::kDone) {
    TrialReachedTarget(study_index, number, batch);
  }
  return absl::OkStatus();
}

absl::StatusOr<stage_tree::TrialSequences> EngineImpl::SequencesOf(const StudyState& study,
                                                                   int64_t number) const {
  const TrialState& trial = study.trials[number];
  absl::StatusOr<stage_tree::TrialPlan> plan =
      stage_tree::BuildTrial(study.space, trial.point, study.spec.budget().max_steps());
  if (!plan.ok()) return plan.status();
  if (trial.forked_from < 0) return plan->sequences;
  absl::StatusOr<stage_tree::TrialSequences> parent = SequencesOf(study, trial.forked_from);
  if (!parent.ok()) return parent.status();
  return stage_tree::ComposeAt(*parent, plan->sequences, trial.forked_at);
}

void EngineImpl::TrialReachedTarget(size_t study_index, int64_t number, store::WriteBatch& batch) {
  ++targets_reached_;
  StudyState& study = *studies_[study_index];
  TrialState& trial = study.trials[number];
  FamilyState& family = FamilyById(trial.family_id);
  const NodeId leaf = family.tree().Leaf(trial.tree_trial);
  if (const double* value = family.EndMetric(leaf, study.spec.objective().metric())) {
    trial.objective = *value;
    study.algorithm->OnMetric(number, trial.target - 1, *value);
  }
  study.algorithm->OnTrialReachedTarget(number, trial.target);
  if (trial.target >= study.spec.budget().max_steps()) {
    SetTrialState(study, number, v1::TRIAL_COMPLETED);
    study.algorithm->OnTrialEnded(number, search_algos::TrialOutcome::kCompleted);
  } else {
    SetTrialState(study, number, v1::TRIAL_PAUSED);
  }
  batch.trials.push_back(TrialRecordOf(study_index, number));
}

void EngineImpl::FinishStudyIfDone(size_t study_index, store::WriteBatch& batch) {
  StudyState& study = *studies_[study_index];
  if (study.record.state != v1::STUDY_RUNNING || !study.algorithm->Finished()) return;
  if (study.running_trials > 0) return;
  // A study whose every trial failed has no result: it failed (its message says why).
  const bool failed = study.completed_trials == 0 && !study.trials.empty() &&
                      std::all_of(study.trials.begin(), study.trials.end(),
                                  [](const TrialState& t) { return t.state == v1::TRIAL_FAILED; });
  study.record.state = failed ? v1::STUDY_FAILED : v1::STUDY_COMPLETED;
  collection_due_ = true;  // its checkpoints may be garbage now
  // Ended short of the spec (its search space ran out of new configurations): say why.
  if (!failed && study.record.message.empty()) study.record.message = study.algorithm->EndReason();
  study.record.finished_ms = NowMs();
  batch.studies.push_back(study.record);
  batch.events.push_back(Event(study.record.id, failed ? "study_failed" : "study_completed", ""));
}

void EngineImpl::SetTrialState(StudyState& study, int64_t number, v1::TrialState state) {
  v1::TrialState& current = study.trials[number].state;
  if (current == v1::TRIAL_RUNNING && state != v1::TRIAL_RUNNING && state != v1::TRIAL_COMPLETED &&
      state != v1::TRIAL_PAUSED) {
    trials_ended_ = true;
    // Its continuation no longer counts in the priorities.
    FamilyById(study.trials[number].family_id).InvalidatePriorities();
  }
  study.running_trials += (state == v1::TRIAL_RUNNING) - (current == v1::TRIAL_RUNNING);
  study.completed_trials += (state == v1::TRIAL_COMPLETED) - (current == v1::TRIAL_COMPLETED);
  current = state;
  UpdateBest(study, number);
}

void EngineImpl::AppendTrial(StudyState& study, TrialState trial, std::string configuration) {
  study.trial_steps += trial.target;
  if (trial.forked_from >= 0) study.forked_prefix_steps += trial.forked_at;
  trial.configuration = study.configurations.Add(std::move(configuration), trial.target);
  study.family_ids.insert(trial.family_id);
  study.trials.push_back(std::move(trial));
}

void EngineImpl::UpdateBest(StudyState& study, int64_t number) {
  if (study.best_stale) return;
  if (study.best == number) {
    study.best_stale = true;  // it may have got worse or left the running: look at every trial
    return;
  }
  if (Beats(study, number, study.best)) study.best = number;
}

bool EngineImpl::Beats(const StudyState& study, int64_t number, std::optional<int64_t> best) {
  const TrialState& trial = study.trials[number];
  if (trial.state != v1::TRIAL_COMPLETED || !trial.objective) return false;
  return !best || BetterTrial(*trial.objective, number, *study.trials[*best].objective, *best,
                              study.spec.objective().direction() == v1::MINIMIZE);
}

std::optional<int64_t> EngineImpl::BestTrial(const StudyState& study) const {
  if (!study.best_stale) return study.best;
  std::optional<int64_t> best;
  for (int64_t number = 0; number < static_cast<int64_t>(study.trials.size()); ++number) {
    if (Beats(study, number, best)) best = number;
  }
  study.best = best;
  study.best_stale = false;
  return best;
}

absl::StatusOr<v1::Study> EngineImpl::StopStudy(const std::string& study_id,
                                                const std::string& reason) {
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  StudyState& study = *studies_[*index];
  store::WriteBatch batch;
  if (study.record.state == v1::STUDY_RUNNING) {
    StopRunningStudy(*index, reason.empty() ? "stopped by a client" : reason, batch);
  }
  Outbox outbox;
  CancelUnneeded(batch, outbox);
  CollectIfDue(batch, outbox);
  Dispatch(batch, outbox);
  v1::Study view = StudyView(study);
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return view;
}

void EngineImpl::StopRunningStudy(size_t study_index, const std::string& message,
                                  store::WriteBatch& batch) {
  StudyState& study = *studies_[study_index];
  study.record.state = v1::STUDY_STOPPED;
  study.record.finished_ms = NowMs();
  collection_due_ = true;  // its checkpoints may be garbage now
  study.record.message = message;
  for (int64_t number = 0; number < static_cast<int64_t>(study.trials.size()); ++number) {
    if (study.trials[number].state == v1::TRIAL_RUNNING ||
        study.trials[number].state == v1::TRIAL_PAUSED) {
      SetTrialState(study, number, v1::TRIAL_STOPPED);
      batch.trials.push_back(TrialRecordOf(study_index, number));
    }
  }
  batch.studies.push_back(study.record);
  batch.events.push_back(Event(study.record.id, "study_stopped", study.record.message));
  trials_ended_ = true;
}

bool EngineImpl::EnforceWallBudgets(int64_t now_ms, store::WriteBatch& batch) {
  bool stopped = false;
  while (!wall_deadlines_.empty() && wall_deadlines_.begin()->first <= now_ms) {
    const size_t index = wall_deadlines_.begin()->second;
    wall_deadlines_.erase(wall_deadlines_.begin());
    if (studies_[index]->record.state != v1::STUDY_RUNNING) continue;  // it ended before
    const double budget = studies_[index]->spec.budget().max_wall_seconds();
    StopRunningStudy(
        index,
        absl::StrCat("budget.max_wall_seconds: stopped after its wall-clock budget of ",
                     absl::StrFormat("%g", budget), " s; the trials that had not finished stopped"),
        batch);
    stopped = true;
  }
  return stopped;
}

}  // namespace hippo::coordinator
