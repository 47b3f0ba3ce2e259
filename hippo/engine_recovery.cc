#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using engine_internal::kLastStudyNumberSetting;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

absl::Status EngineImpl::Recover() {
  absl::StatusOr<store::Snapshot> snapshot = store_->LoadSnapshot();
  if (!snapshot.ok()) return snapshot.status();
  std::lock_guard<std::mutex> lock(mutex_);

  // Studies first: trees replay trial insertions that name them.
  for (const store::StudyRecord& record : snapshot->studies) {
    auto study = std::make_unique<StudyState>();
    study->record = record;
    if (!google::protobuf::util::JsonStringToMessage(record.spec_json, &study->spec).ok()) {
      return absl::DataLossError(absl::StrCat("study ", record.id, ": stored spec is corrupt"));
    }
    absl::StatusOr<stage_tree::SearchSpace> space =
        stage_tree::SearchSpaceFromProto(study->spec.search_space());
    if (!space.ok()) return space.status();
    study->space = *std::move(space);
    study->trainer_identity = stage_tree::TrainerIdentity(study->spec.trainer());
    search_algos::AlgorithmContext context;
    context.space = &study->space;
    context.max_steps = study->spec.budget().max_steps();
    context.max_trials = study->spec.budget().max_trials();
    context.seed = study->spec.algorithm().seed();
    context.minimize = study->spec.objective().direction() == v1::MINIMIZE;
    context.config = study->spec.algorithm();
    absl::StatusOr<std::unique_ptr<search_algos::SearchAlgorithm>> algorithm =
        search_algos::AlgorithmRegistry::Global().Create(study->spec.algorithm().name(), context);
    if (!algorithm.ok()) return algorithm.status();
    study->algorithm = *std::move(algorithm);
    study_index_[record.id] = studies_.size();
    studies_.push_back(std::move(study));
  }
  // Study numbers are never reused: the highest given, deleted studies' included.
  for (const auto& [key, value] : snapshot->settings) {
    if (key == kLastStudyNumberSetting) (void)absl::SimpleAtoi(value, &last_study_number_);
  }
  for (const auto& study : studies_) {
    int64_t number = 0;
    if (absl::SimpleAtoi(absl::string_view(study->record.id).substr(2), &number)) {
      last_study_number_ = std::max(last_study_number_, number);
    }
  }
  for (const auto& [study_id, state] : snapshot->algorithm_states) {
    auto it = study_index_.find(study_id);
    if (it == study_index_.end()) continue;
    if (absl::Status status = studies_[it->second]->algorithm->LoadState(state); !status.ok()) {
      return status;
    }
    studies_[it->second]->saved_algorithm_state = state;
  }
  // Then each study's journal, in order (SaveAlgorithmState).
  for (const store::AlgorithmDelta& entry : snapshot->algorithm_deltas) {
    auto it = study_index_.find(entry.study_id);
    if (it == study_index_.end()) continue;
    StudyState& study = *studies_[it->second];
    if (absl::Status status = study.algorithm->ApplyStateDelta(entry.delta); !status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("study ", entry.study_id, ": algorithm journal entry ",
                                       entry.sequence, ": ", status.message()));
    }
    study.journal_sequence = entry.sequence;
    ++study.journal_entries;
  }
  for (const store::TrialRecord& record : snapshot->trials) {
    auto it = study_index_.find(record.study_id);
    if (it == study_index_.end()) continue;
    StudyState& study = *studies_[it->second];
    if (record.trial_id != static_cast<int64_t>(study.trials.size())) {
      return absl::DataLossError(
          absl::StrCat("study ", record.study_id, ": trial ", record.trial_id, " is out of order"));
    }
    absl::StatusOr<stage_tree::Point> point = engine_internal::PointFromJson(record.point_json);
    if (!point.ok()) return point.status();
    TrialState trial;
    trial.family_id = record.family_id;
    trial.tree_trial = static_cast<stage_tree::TrialId>(record.tree_trial);
    trial.point = *point;
    trial.point_json = record.point_json;
    absl::StatusOr<stage_tree::TrialPlan> plan =
        stage_tree::BuildTrial(study.space, trial.point, study.spec.budget().max_steps());
    if (plan.ok()) trial.structural = plan->structural;
    trial.target = record.target_step;
    trial.forked_from = record.forked_from;
    trial.forked_at = record.forked_at_step;
    trial.state = v1::TRIAL_STATE_UNSPECIFIED;
    // Its configuration, as AddTrial keyed it (a fork: composed with its parent's sequences).
    std::string configuration;
    if (plan.ok()) {
      absl::StatusOr<stage_tree::TrialSequences> sequences = plan->sequences;
      if (trial.forked_from >= 0 && trial.forked_from < record.trial_id) {
        absl::StatusOr<stage_tree::TrialSequences> parent = SequencesOf(study, trial.forked_from);
        sequences =
            parent.ok() ? stage_tree::ComposeAt(*parent, plan->sequences, trial.forked_at) : parent;
      }
      if (sequences.ok()) {
        configuration =
            Configurations::KeyOf(plan->structural, stage_tree::EncodeSequences(*sequences));
      }
    }
    // A point the space no longer builds (it cannot happen for a stored study: its spec is
    // stored with it) is a configuration of its own.
    if (configuration.empty()) configuration = absl::StrCat("trial=", record.trial_id);
    AppendTrial(study, std::move(trial), std::move(configuration));
    SetTrialState(study, record.trial_id, static_cast<v1::TrialState>(record.state));
  }

  // Trees: replay each family's log.
  store::WriteBatch unused_batch;
  Outbox unused_outbox;
  for (const store::FamilyRecord& record : snapshot->families) {
    if (record.id != static_cast<int64_t>(families_.size()) + 1) {
      return absl::DataLossError("stored families are not numbered densely from 1");
    }
    const Inheritance inheritance{.family_id = record.inherits_family,
                                  .lineage = record.inherits_lineage,
                                  .step = record.inherits_step};
    if (inheritance.family_id < 0 || inheritance.family_id >= record.id || inheritance.step < 0) {
      return absl::DataLossError(absl::StrCat("family ", record.id, " inherits from family ",
                                              inheritance.family_id, " at step ", inheritance.step,
                                              ", which no earlier family is"));
    }
    absl::StatusOr<FamilyState*> family =
        FamilyFor(record.key, record.parameter_names, unused_batch, inheritance);
    if (!family.ok()) return family.status();
  }
  if (absl::Status status = RestoreTreeSnapshots(snapshot->tree_snapshots); !status.ok()) {
    return status;
  }
  for (const store::TreeOp& op : snapshot->tree_ops) {
    if (op.family_id < 1 || op.family_id > static_cast<int64_t>(families_.size())) {
      return absl::DataLossError(absl::StrCat("tree operation of unknown family ", op.family_id));
    }
    FamilyState& family = FamilyById(op.family_id);
    if (absl::Status status = family.ExpectNextOp(op.sequence); !status.ok()) return status;
    std::vector<stage_tree::SplitResult> splits;
    absl::Status status;
    const auto node = static_cast<NodeId>(op.a);
    switch (op.kind) {
      case store::TreeOpKind::kInsert: {
        absl::StatusOr<stage_tree::TrialSequences> sequences =
            stage_tree::DecodeSequences(op.payload);
        if (!sequences.ok()) return sequences.status();
        absl::StatusOr<stage_tree::TrialId> trial = family.tree().Insert(*sequences, op.b, &splits);
        if (!trial.ok()) return trial.status();
        family.AddBreakpoints(*sequences, op.b);
        if (*trial != op.a) return absl::DataLossError("replayed trial ids diverge");
        break;
      }
      case store::TreeOpKind::kExtend:
        status = family.tree().Extend(static_cast<stage_tree::TrialId>(op.a), op.b, &splits);
        family.AddBreakpoint(op.b);
        break;
      case store::TreeOpKind::kRunning:
        // b: the step the dispatch cut the stage at (0: not cut).
        if (op.b > 0) status = family.Cut(node, op.b);
        if (status.ok()) status = family.tree().MarkRunning(node);
        break;
      case store::TreeOpKind::kDone:
        status =
            op.b == 1 ? family.tree().MarkDoneWithoutState(node) : family.tree().MarkDone(node);
        if (op.b != 1) family.ClearFailure(node);
        break;
      case store::TreeOpKind::kFailed:
        status = family.tree().MarkFailed(node);
        family.SetFailure(node, op.payload.empty() ? "no reason given" : op.payload);
        break;
      case store::TreeOpKind::kStateLost:
        status = family.tree().LoseState(node, op.b);
        break;
      case store::TreeOpKind::kRequeue: {
        // b: the step inside the stage it resumes from (Abandon), its part above done; 0: none.
        NodeId requeued = node;
        if (op.b > 0) {
          absl::StatusOr<stage_tree::SplitResult> split = family.tree().Split(node, op.b);
          if (!split.ok()) {
            status = split.status();
            break;
          }
          splits.push_back(*split);
          requeued = split->lower;
        }
        status = family.tree().Requeue(requeued);
        // The payload says how the attempts count (RequeueFailed, EndAttempt).
        if (op.payload == "retry") family.ResetAttemptBudget(requeued);
        if (op.payload == "state-lost") family.ForgiveAttempt(requeued);
        break;
      }
      case store::TreeOpKind::kCheckpoint:
        status = family.tree().AddCheckpoint(node, op.b);
        break;
      case store::TreeOpKind::kDropState:
        status = family.tree().DropState(node, op.b);
        break;
      default:
        status =
            absl::DataLossError(absl::StrCat("unknown operation kind ", static_cast<int>(op.kind)));
        break;
    }
    if (!status.ok()) {
      return absl::DataLossError(absl::StrCat("replaying operation ", op.sequence, " of family ",
                                              op.family_id, ": ", status.message()));
    }
    TrackSplits(family, splits, unused_outbox, unused_batch);
    if (op.kind == store::TreeOpKind::kRunning) family.CountAttempt(node);
  }
  // Owners of tree trials.
  for (size_t index = 0; index < studies_.size(); ++index) {
    for (int64_t number = 0; number < static_cast<int64_t>(studies_[index]->trials.size());
         ++number) {
      const TrialState& trial = studies_[index]->trials[number];
      FamilyState& family = FamilyById(trial.family_id);
      family.SetOwner(trial.tree_trial, {index, number});
      family.set_trial_by_trial(studies_[index]->record.no_merge);
      for (Step step : studies_[index]->algorithm->BranchSteps()) {
        if (step > 0 && step < studies_[index]->spec.budget().max_steps()) {
          family.AddBreakpoint(step);
        }
      }
    }
  }
  // Shares of the workers (scheduler.h): a family's stages count against the study of its first
  // trial, each study with its weight; wall-clock budgets of running studies, counted from
  // their creation (a budget that passed while the coordinator was down stops the study at the
  // first lease check).
  for (const auto& family : families_) {
    for (stage_tree::TrialId trial = 0; trial < family->owned_trials(); ++trial) {
      if (family->OwnerOf(trial).deleted()) continue;
      ready_.SetGroup(family->id(), ShareGroup(family->OwnerOf(trial).study_index));
      break;
    }
    family->InvalidatePriorities();  // the queue is rebuilt with the groups at the next dispatch
  }
  for (size_t index = 0; index < studies_.size(); ++index) {
    const StudyState& study = *studies_[index];
    ready_.SetWeight(ShareGroup(index), study.spec.resources().weight());
    const double budget = study.spec.budget().max_wall_seconds();
    if (study.record.state == v1::STUDY_RUNNING && budget > 0) {
      wall_deadlines_.emplace(
          study.record.created_ms + static_cast<int64_t>(std::ceil(budget * 1000)), index);
    }
  }
  // Checkpoints: the end states of done stages.
  for (const store::CheckpointRecord& checkpoint : snapshot->checkpoints) {
    if (checkpoint.family_id < 1 || checkpoint.family_id > static_cast<int64_t>(families_.size())) {
      continue;
    }
    FamilyState& family = FamilyById(checkpoint.family_id);
    const auto node = static_cast<NodeId>(checkpoint.node_id);
    if (node < family.tree().node_count()) {
      family.SetStateUri(node, checkpoint.step, checkpoint.uri);
      store::WriteBatch unused;  // the rows are as the ledger would write them
      LedgerKeep(family, node, checkpoint.step, checkpoint.uri, checkpoint.size_bytes, unused);
    }
  }
  // Files released and not yet confirmed deleted: sent again to the workers of their directory.
  for (store::GarbageRecord& garbage : snapshot->garbage) ledger_.AddGarbage(std::move(garbage));
  // Objective values at the ends of done stages.
  std::map<int64_t, std::set<std::string>> objectives;  // family -> metric names
  for (const auto& study : studies_) {
    for (const TrialState& trial : study->trials) {
      objectives[trial.family_id].insert(study->spec.objective().metric());
    }
  }
  for (const auto& [family_id, names] : objectives) {
    FamilyState& family = FamilyById(family_id);
    if (family.client_trained()) continue;  // below
    std::vector<int64_t> lineages(family.lineages().begin(), family.lineages().end());
    std::sort(lineages.begin(), lineages.end());
    lineages.erase(std::unique(lineages.begin(), lineages.end()), lineages.end());
    absl::StatusOr<std::vector<store::MetricRecord>> rows =
        store_->ListMetrics(family_id, lineages, 0, std::numeric_limits<int64_t>::max());
    if (!rows.ok()) return rows.status();
    // The steps a live engine keeps (see step_metrics): the stages' last steps and the steps
    // before breakpoints.
    absl::flat_hash_set<std::pair<int64_t, Step>> stage_ends;
    for (NodeId node = 1; node < family.tree().node_count(); ++node) {
      stage_ends.insert({family.lineage(node), family.tree().node(node).end - 1});
    }
    for (const store::MetricRecord& row : *rows) {
      if (!names.contains(row.name)) continue;
      if (stage_ends.contains({row.lineage, row.step}) || family.IsBreakpoint(row.step + 1)) {
        family.KeepMetric(row.name, row.lineage, row.step, row.value);
      }
    }
  }
  // Ask/tell trials: what the client told last.
  for (auto& study : studies_) {
    for (TrialState& trial : study->trials) {
      FamilyState& family = FamilyById(trial.family_id);
      if (!family.client_trained()) continue;
      const NodeId leaf = family.tree().Leaf(trial.tree_trial);
      absl::StatusOr<std::vector<store::MetricRecord>> rows = store_->ListMetrics(
          family.id(), {family.lineage(leaf)}, 0, std::numeric_limits<int64_t>::max());
      if (!rows.ok()) return rows.status();
      std::map<std::string, std::pair<Step, double>> last;  // by name: (step, value)
      for (const store::MetricRecord& row : *rows) {
        trial.told_step = std::max(trial.told_step, row.step);
        auto [it, inserted] = last.try_emplace(row.name, row.step, row.value);
        if (!inserted && row.step >= it->second.first) it->second = {row.step, row.value};
      }
      if (auto told = last.find(study->spec.objective().metric()); told != last.end()) {
        trial.objective = told->second.second;
      }
    }
  }
  // Trial objectives.
  for (auto& study : studies_) {
    for (TrialState& trial : study->trials) {
      const FamilyState& family = FamilyById(trial.family_id);
      if (family.client_trained()) continue;  // above
      if (const double* value = family.EndMetric(family.tree().Leaf(trial.tree_trial),
                                                 study->spec.objective().metric())) {
        trial.objective = *value;
      }
    }
    study->best_stale = true;  // objectives were set after the trials' states
  }
  // Running attempts keep a fresh lease: their workers may reconnect and finish them.
  const auto lease = std::chrono::milliseconds(static_cast<int64_t>(options_.lease_seconds * 1000));
  std::set<std::pair<int64_t, NodeId>> assigned_elsewhere;  // (family, node) given to an attempt
  for (const store::AttemptRecord& record : snapshot->attempts) {
    assigned_elsewhere.insert({record.family_id, static_cast<NodeId>(record.node_id)});
  }
  // Attempt ids go on after the last one given, running or not: a worker may still hold an
  // attempt that ended here (its lease expired) and re-sends the reports of its last ones after
  // a reconnect, and a new attempt under the same id would take them for its own.
  next_attempt_ = std::max(next_attempt_, snapshot->last_attempt_id + 1);
  for (const store::AttemptRecord& record : snapshot->attempts) {
    if (record.family_id < 1 || record.family_id > static_cast<int64_t>(families_.size())) continue;
    FamilyState& family = FamilyById(record.family_id);
    auto node = static_cast<NodeId>(record.node_id);
    if (node >= family.tree().node_count()) continue;
    const StageState assigned_state = family.tree().node(node).state;
    if (assigned_state != StageState::kRunning && assigned_state != StageState::kDone) continue;
    Attempt attempt;
    attempt.id = record.attempt_id;
    attempt.family_id = record.family_id;
    attempt.worker_id = record.worker_id;
    attempt.lease_expires = Clock::now() + lease;
    attempt.started = Clock::now();  // charged from now on (nothing was charged since the restart)
    attempt.recompute = family.tree().node(node).recompute;
    attempt.assigned = node;
    // Parts split off the assigned stage follow it with the same lineage; those done already
    // (their end state came, or was kept before the split) are no longer the attempt's. A running
    // part that another attempt was given, or that is a rerun where the attempt's parts are not
    // (or the reverse), is a later recomputation: that attempt's, and the walk ends there.
    std::vector<NodeId> parts = {node};
    std::optional<bool> rerun;
    for (bool extended = true; extended;) {
      extended = false;
      for (NodeId child : family.tree().Children(parts.back())) {
        const stage_tree::NodeView view = family.tree().node(child);
        if (family.lineage(child) != family.lineage(node)) continue;
        if (view.state == StageState::kRunning) {
          if (assigned_elsewhere.contains({record.family_id, child})) break;
          if (!rerun) {
            // A running assigned stage says; a done one, its first running part.
            const stage_tree::NodeView assigned = family.tree().node(node);
            rerun = assigned.state == StageState::kRunning ? assigned.recompute : view.recompute;
          }
          if (view.recompute != *rerun) break;
        } else if (view.state != StageState::kDone) {
          break;
        }
        parts.push_back(child);
        extended = true;
        break;
      }
    }
    for (NodeId part : parts) {
      attempt.steps += family.tree().node(part).end - family.tree().node(part).start;
      if (family.tree().node(part).state == StageState::kRunning) attempt.chain.push_back(part);
    }
    if (attempt.chain.empty()) continue;
    if (rerun) attempt.recompute = *rerun;
    attempt.last_part = parts.back();
    // What it may still write, as far as the store tells: at least the end of each running
    // part (the breakpoints inside them count too, for the checkpoint budget).
    for (NodeId part : attempt.chain) {
      const stage_tree::NodeView view = family.tree().node(part);
      attempt.writes_left +=
          1 + static_cast<int64_t>(family.BreakpointsBetween(view.start, view.end).size());
    }
    attempts_[attempt.id] = std::move(attempt);
  }
  // A recovered attempt's last report (Attempt::last_reported_step) was lost with the restart:
  // a split right after it may still make that step a stage's last, with a worker that honours
  // the request. Which step it was is not known, so every step of its running parts that the
  // store has is kept (the first report, as the store keeps it).
  for (const auto& [id, attempt] : attempts_) {
    auto names = objectives.find(attempt.family_id);
    if (names == objectives.end()) continue;
    FamilyState& family = FamilyById(attempt.family_id);
    Step from = std::numeric_limits<Step>::max();
    Step to = 0;
    for (NodeId part : attempt.chain) {
      from = std::min(from, family.tree().node(part).start);
      to = std::max(to, family.tree().node(part).end);
    }
    const int64_t lineage = family.lineage(attempt.chain.front());
    absl::StatusOr<std::vector<store::MetricRecord>> rows =
        store_->ListMetrics(family.id(), {lineage}, from, to);
    if (!rows.ok()) return rows.status();
    for (const store::MetricRecord& row : *rows) {
      if (names->second.contains(row.name)) {
        family.KeepMetric(row.name, row.lineage, row.step, row.value);
      }
    }
  }
  RecoverWorkerHealth(snapshot->worker_health);
  // Any running stage without an attempt (its attempt row was lost with the crash) runs again.
  store::WriteBatch requeues;
  for (auto& family : families_) {
    family->InvalidatePriorities();
    if (family->client_trained()) continue;
    std::set<NodeId> covered;
    for (const auto& [id, attempt] : attempts_) {
      if (attempt.family_id == family->id())
        covered.insert(attempt.chain.begin(), attempt.chain.end());
    }
    for (NodeId node = 1; node < family->tree().node_count(); ++node) {
      if (family->tree().node(node).state == StageState::kRunning && !covered.contains(node)) {
        (void)family->tree().Requeue(node);  // it is running, which Requeue accepts
        family->AppendOp(store::TreeOpKind::kRequeue, node, 0, "", requeues);
      }
    }
  }
  // Failed stages a live trial needs are tried again; stalled studies end.
  RecoverFailedStages(requeues);
  RefreshPriorities();
  if (!requeues.empty()) return store_->Commit(std::move(requeues));
  return absl::OkStatus();
}

}  // namespace hippo::coordinator
