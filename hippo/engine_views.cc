#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"
#include "stage_tree/graph_view.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

store::TrialRecord EngineImpl::TrialRecordOf(size_t study_index, int64_t number) const {
  const StudyState& study = *studies_[study_index];
  const TrialState& trial = study.trials[number];
  store::TrialRecord record;
  record.study_id = study.record.id;
  record.trial_id = number;
  record.family_id = trial.family_id;
  record.tree_trial = trial.tree_trial;
  record.point_json = trial.point_json;
  record.target_step = trial.target;
  record.state = trial.state;
  record.forked_from = trial.forked_from;
  record.forked_at_step = trial.forked_at;
  return record;
}

store::StageRecord EngineImpl::StageRecordOf(const FamilyState& family, NodeId node) const {
  const stage_tree::NodeView view = family.tree().node(node);
  store::StageRecord record;
  record.family_id = family.id();
  record.node_id = node;
  record.parent_id = view.parent;
  record.lineage = family.lineage(node);
  record.start_step = view.start;
  record.end_step = view.end;
  record.state = engine_internal::StageStateOf(view.state);
  record.attempts = family.AttemptsOf(node);
  if (view.state == StageState::kDone) {
    if (const std::string* uri = family.StateUri(node, view.end)) record.checkpoint_uri = *uri;
  }
  return record;
}

v1::Trial EngineImpl::TrialView(const StudyState& study, int64_t number) const {
  const TrialState& trial = study.trials[number];
  const FamilyState& family = FamilyById(trial.family_id);
  v1::Trial view;
  view.set_study_id(study.record.id);
  view.set_id(number);
  view.set_state(trial.state);
  view.set_target_step(trial.target);
  view.set_forked_from_trial(trial.forked_from);
  view.set_forked_at_step(trial.forked_at);
  if (trial.objective) {
    view.set_objective_value(*trial.objective);
    view.set_has_objective_value(true);
  }
  Step reached = 0;
  for (NodeId node : family.tree().Path(trial.tree_trial)) {
    view.add_path(GlobalStageId(family.id(), node));
    const stage_tree::NodeView stage = family.tree().node(node);
    if (stage.state == StageState::kDone && reached == stage.start) reached = stage.end;
  }
  if (family.client_trained()) reached = std::max(reached, trial.told_step + 1);
  view.set_reached_step(reached);
  // Parameters: structural values as scalars, sequences as segments (and as a scalar when
  // they are one constant).
  for (const auto& [name, value] : trial.structural) {
    *(*view.mutable_parameters())[name].mutable_scalar() = engine_internal::ToProtoValue(value);
  }
  const std::vector<std::string>& names = family.tree().parameter_names();
  const std::vector<NodeId> path = family.tree().Path(trial.tree_trial);
  for (size_t i = 0; i < names.size(); ++i) {
    v1::ParameterValue& value = (*view.mutable_parameters())[names[i]];
    for (NodeId node : path) {
      const std::vector<std::vector<stage_tree::Segment>> segments = family.tree().SegmentsOf(node);
      for (const stage_tree::Segment& segment : segments[i]) {
        if (value.segments_size() > 0) {
          v1::Segment probe;
          engine_internal::ToProto(segment, &probe);
          v1::Segment& last = *value.mutable_segments(value.segments_size() - 1);
          probe.set_start(last.start());
          probe.set_end(last.end());
          if (probe.SerializeAsString() == last.SerializeAsString()) {
            last.set_end(segment.end);
            continue;
          }
        }
        engine_internal::ToProto(segment, value.add_segments());
      }
    }
    if (value.segments_size() == 1 && value.segments(0).has_constant()) {
      value.mutable_scalar()->set_number_value(value.segments(0).constant());
    }
  }
  return view;
}

v1::Study EngineImpl::StudyView(const StudyState& study) const {
  v1::Study view;
  view.set_id(study.record.id);
  *view.mutable_spec() = study.spec;
  view.set_state(static_cast<v1::StudyState>(study.record.state));
  view.mutable_created()->set_seconds(study.record.created_ms / 1000);
  view.mutable_created()->set_nanos(static_cast<int32_t>(study.record.created_ms % 1000) * 1000000);
  if (study.record.finished_ms > 0) {
    view.mutable_finished()->set_seconds(study.record.finished_ms / 1000);
  }
  view.set_message(study.record.message);
  view.set_trials_total(static_cast<int64_t>(study.trials.size()));
  view.set_trials_completed(study.completed_trials);
  view.mutable_steps()->set_trial_steps(study.trial_steps);
  // Step counts of the study's families (shared with other studies of the same family).
  for (int64_t family_id : study.family_ids) {
    const stage_tree::StepCounts& counts = FamilyById(family_id).tree().counts();
    view.mutable_steps()->set_unique_steps(view.steps().unique_steps() + counts.unique_steps);
    view.mutable_steps()->set_executed_steps(view.steps().executed_steps() + counts.executed_steps);
    view.mutable_steps()->set_recomputed_steps(view.steps().recomputed_steps() +
                                               counts.recomputed_steps);
  }
  if (const std::optional<int64_t> best = BestTrial(study)) {
    *view.mutable_best_trial() = TrialView(study, *best);
  }
  return view;
}

absl::StatusOr<v1::Study> EngineImpl::GetStudy(const std::string& study_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  return StudyView(*studies_[*index]);
}

std::vector<v1::Study> EngineImpl::ListStudies() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<v1::Study> views;
  for (const auto& study : studies_) {
    if (!study->deleted) views.push_back(StudyView(*study));
  }
  return views;
}

absl::StatusOr<v1::ListTrialsResponse> EngineImpl::ListTrials(const std::string& study_id,
                                                              bool with_metrics) {
  v1::ListTrialsResponse response;
  struct MetricQuery {
    int64_t trial;
    int64_t family_id;
    std::vector<std::pair<int64_t, NodeId>> lineages;  // (lineage, node) along the path
    Step target;
  };
  std::vector<MetricQuery> queries;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    absl::StatusOr<size_t> index = StudyIndex(study_id);
    if (!index.ok()) return index.status();
    const StudyState& study = *studies_[*index];
    for (int64_t number = 0; number < static_cast<int64_t>(study.trials.size()); ++number) {
      *response.add_trials() = TrialView(study, number);
      if (!with_metrics) continue;
      const TrialState& trial = study.trials[number];
      const FamilyState& family = FamilyById(trial.family_id);
      MetricQuery query{number, family.id(), {}, trial.target};
      for (NodeId node : family.tree().Path(trial.tree_trial)) {
        query.lineages.emplace_back(family.lineage(node), node);
      }
      queries.push_back(std::move(query));
    }
  }
  committer_.Flush();  // metrics reported so far are in the store
  for (const MetricQuery& query : queries) {
    std::vector<int64_t> lineages;
    for (const auto& [lineage, node] : query.lineages) lineages.push_back(lineage);
    std::sort(lineages.begin(), lineages.end());
    lineages.erase(std::unique(lineages.begin(), lineages.end()), lineages.end());
    absl::StatusOr<std::vector<store::MetricRecord>> rows =
        store_->ListMetrics(query.family_id, lineages, 0, query.target);
    if (!rows.ok()) return rows.status();
    v1::TrialMetrics* metrics = response.add_metrics();
    metrics->set_trial_id(query.trial);
    // A lineage may hold steps of stages off this trial's path (the other part of a split):
    // keep only the steps of the path's own stages.
    std::map<int64_t, v1::Metric> by_step;
    std::vector<std::tuple<Step, Step, int64_t, NodeId>> ranges;  // (start, end, lineage, node)
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const FamilyState& family = FamilyById(query.family_id);
      for (const auto& [lineage, node] : query.lineages) {
        const stage_tree::NodeView view = family.tree().node(node);
        ranges.emplace_back(view.start, view.end, lineage, node);
      }
    }
    for (const store::MetricRecord& row : *rows) {
      for (const auto& [start, end, lineage, node] : ranges) {
        if (row.lineage != lineage || row.step < start || row.step >= end) continue;
        v1::Metric& metric = by_step[row.step];
        metric.set_step(row.step);
        metric.set_stage_id(GlobalStageId(query.family_id, node));
        (*metric.mutable_values())[row.name] = row.value;
      }
    }
    for (auto& [step, metric] : by_step) *metrics->add_metrics() = std::move(metric);
  }
  return response;
}

absl::StatusOr<v1::Trial> EngineImpl::GetBestTrial(const std::string& study_id) {
  absl::StatusOr<v1::Study> study = GetStudy(study_id);
  if (!study.ok()) return study.status();
  if (!study->has_best_trial()) {
    return absl::NotFoundError(
        absl::StrCat("study '", study_id, "' has no completed trial with an objective yet"));
  }
  return study->best_trial();
}

absl::StatusOr<v1::StageTree> EngineImpl::GetStageTree(const std::string& study_id, bool dot) {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  const StudyState& study = *studies_[*index];
  std::set<int64_t> family_ids;
  for (const TrialState& trial : study.trials) family_ids.insert(trial.family_id);
  v1::StageTree tree;
  for (int64_t family_id : family_ids) {
    const FamilyState& family = FamilyById(family_id);
    const std::vector<double> remaining =
        stage_tree::RemainingCriticalPath(family.tree(), family.seconds_per_step());
    for (NodeId node = 1; node < family.tree().node_count(); ++node) {
      const stage_tree::NodeView view = family.tree().node(node);
      v1::Stage* stage = tree.add_stages();
      stage->set_id(GlobalStageId(family.id(), node));
      stage->set_parent_id(
          view.parent == stage_tree::kRootNode ? 0 : GlobalStageId(family.id(), view.parent));
      stage->set_family(family.tree().family_key());
      stage->set_start_step(view.start);
      stage->set_end_step(view.end);
      stage->set_state(engine_internal::StageStateOf(view.state));
      stage->set_attempts(family.AttemptsOf(node));
      if (view.state == StageState::kDone) {
        if (const std::string* uri = family.StateUri(node, view.end)) {
          stage->set_checkpoint_uri(*uri);
        }
      }
      stage->set_critical_path_seconds(remaining[node]);
      for (stage_tree::TrialId trial : family.tree().TrialsThrough(node)) {
        const auto& [owner, number] = family.OwnerOf(trial);
        if (owner == *index) stage->add_trial_ids(number);
      }
    }
    const stage_tree::StepCounts& counts = family.tree().counts();
    tree.mutable_steps()->set_trial_steps(tree.steps().trial_steps() + counts.trial_steps);
    tree.mutable_steps()->set_unique_steps(tree.steps().unique_steps() + counts.unique_steps);
    tree.mutable_steps()->set_executed_steps(tree.steps().executed_steps() + counts.executed_steps);
    tree.mutable_steps()->set_recomputed_steps(tree.steps().recomputed_steps() +
                                               counts.recomputed_steps);
    if (dot) tree.set_dot(tree.dot() + stage_tree::ToDot(family.tree()));
  }
  return tree;
}

std::vector<v1::WorkerInfo> EngineImpl::ListWorkers() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<v1::WorkerInfo> workers;
  for (const auto& [id, worker] : workers_) {
    v1::WorkerInfo& info = workers.emplace_back();
    info.set_worker_id(id);
    info.set_host(worker.hello.host());
    *info.mutable_devices() = worker.hello.devices();
    *info.mutable_trainers() = worker.hello.trainers();
    info.set_connected(worker.connected);
    if (worker.attempt) {
      if (auto it = attempts_.find(*worker.attempt); it != attempts_.end()) {
        info.set_running_stage_id(GlobalStageId(it->second.family_id, it->second.assigned));
      }
    }
    info.set_cached_states(static_cast<int64_t>(worker.cached_states.size()));
  }
  return workers;
}

}  // namespace hippo::coordinator
