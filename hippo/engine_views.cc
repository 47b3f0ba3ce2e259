#include <algorithm>
#include <functional>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hippo/engine_impl.h"
#include "hippo/study_pages.h"
#include "stage_tree/graph_view.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

namespace {

constexpr size_t kForkCacheShown = 64;

// WorkerInfo.fork_cache: a bounded list of the worker's cached states, the most recent stages
// (highest ids) first, so that a worker holding thousands of states keeps its view small.
void AddForkCache(const absl::btree_set<std::pair<int64_t, int64_t>>& cached,
                  v1::WorkerInfo& info) {
  size_t shown = 0;
  for (auto it = cached.rbegin(); it != cached.rend() && shown < kForkCacheShown; ++it, ++shown) {
    v1::CachedState* state = info.add_fork_cache();
    state->set_stage_id(it->first);
    state->set_step(it->second);
  }
}

}  // namespace

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
  record.state = engine_internal::StageStateOf(view);
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
  view.set_message(TrialFailure(study, number));
  if (trial.objective) {
    view.set_objective_value(*trial.objective);
    view.set_has_objective_value(true);
  }
  Step reached = 0;
  for (NodeId node : family.tree().Path(trial.tree_trial)) {
    view.add_path(GlobalStageId(family.id(), node));
    const stage_tree::NodeView stage = family.tree().node(node);
    // Trained steps count, also when their state was collected or lost since.
    if (stage.trained && reached == stage.start) reached = stage.end;
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

v1::Study EngineImpl::StudyView(const StudyState& study, bool with_spec) const {
  v1::Study view;
  view.set_id(study.record.id);
  if (with_spec) *view.mutable_spec() = study.spec;
  view.set_state(static_cast<v1::StudyState>(study.record.state));
  view.mutable_created()->set_seconds(study.record.created_ms / 1000);
  view.mutable_created()->set_nanos(static_cast<int32_t>(study.record.created_ms % 1000) * 1000000);
  if (study.record.finished_ms > 0) {
    view.mutable_finished()->set_seconds(study.record.finished_ms / 1000);
  }
  view.set_message(study.record.message);
  view.set_waiting(WaitingReason(study));
  view.set_checkpoint_budget(StudyOverBudget(study));
  view.set_trials_total(static_cast<int64_t>(study.trials.size()));
  view.set_trials_completed(study.completed_trials);
  view.mutable_steps()->set_trial_steps(study.trial_steps);
  view.mutable_steps()->set_distinct_steps(study.configurations.steps());
  view.mutable_steps()->set_checkpoint_copy_steps(study.trial_steps - study.forked_prefix_steps);
  // Step counts of the study's families (shared with other studies of the same family).
  for (int64_t family_id : study.family_ids) {
    const stage_tree::StepCounts& counts = FamilyById(family_id).tree().counts();
    view.mutable_steps()->set_unique_steps(view.steps().unique_steps() + counts.unique_steps);
    view.mutable_steps()->set_executed_steps(view.steps().executed_steps() + counts.executed_steps);
    view.mutable_steps()->set_recomputed_steps(view.steps().recomputed_steps() +
                                               counts.recomputed_steps);
    view.mutable_steps()->set_reached_trial_steps(view.steps().reached_trial_steps() +
                                                  counts.reached_trial_steps);
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

absl::StatusOr<int64_t> EngineImpl::DistinctStepsOf(const std::vector<std::string>& study_ids) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<const Configurations*> sets;
  for (const std::string& study_id : study_ids) {
    absl::StatusOr<size_t> index = StudyIndex(study_id);
    if (!index.ok()) return index.status();
    sets.push_back(&studies_[*index]->configurations);
  }
  return Configurations::StepsOfUnion(sets);
}

std::vector<v1::Study> EngineImpl::ListStudies() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<v1::Study> views;
  for (const auto& study : studies_) {
    if (!study->deleted) views.push_back(StudyView(*study));
  }
  return views;
}

std::vector<v1::Study> EngineImpl::ListStudies(size_t offset, size_t limit, size_t* total) {
  std::vector<v1::Study> views;
  std::vector<const v1::StudySpec*> specs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Positions count the studies a listing shows: deleted ones are skipped.
    size_t shown = 0;
    for (const auto& study : studies_) {
      if (study->deleted) continue;
      if (shown >= offset && views.size() < limit) {
        views.push_back(StudyView(*study, /*with_spec=*/false));
        specs.push_back(&study->spec);
      }
      ++shown;
    }
    *total = shown;
  }
  // The specs (up to 1 MiB each) are copied after the lock: a study's spec never changes once
  // it is created, and its StudyState lives as long as the engine (a deleted study's too). The
  // page ends before it would pass kMaxStudyPageBytes; the caller's next token starts there.
  size_t bytes = 0;
  for (size_t i = 0; i < views.size(); ++i) {
    bytes += views[i].ByteSizeLong() + specs[i]->ByteSizeLong();
    if (i > 0 && bytes > kMaxStudyPageBytes) {
      views.resize(i);
      break;
    }
    *views[i].mutable_spec() = *specs[i];
  }
  return views;
}

std::vector<v1::Study> EngineImpl::ListStudySummaries(size_t offset, size_t limit, size_t* total) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<v1::Study> views;
  size_t shown = 0;  // as ListStudies: deleted studies are skipped
  for (const auto& study : studies_) {
    if (study->deleted) continue;
    if (shown >= offset && views.size() < limit) {
      views.push_back(StudyView(*study, /*with_spec=*/false));
    }
    ++shown;
  }
  *total = shown;
  return views;
}

absl::StatusOr<TrialPage> EngineImpl::ListTrialsPage(const std::string& study_id,
                                                     const TrialQuery& query) {
  TrialPage page;
  struct MetricQuery {
    int64_t trial;
    int64_t family_id;
    std::vector<std::pair<int64_t, NodeId>> lineages;             // (lineage, node) along the path
    std::vector<std::tuple<Step, Step, int64_t, NodeId>> ranges;  // (start, end, lineage, node)
    Step target;
  };
  std::vector<MetricQuery> queries;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    absl::StatusOr<size_t> index = StudyIndex(study_id);
    if (!index.ok()) return index.status();
    ResolveChanges();
    const StudyState& study = *studies_[*index];
    page.response.set_version(view_version_);
    const int64_t count = static_cast<int64_t>(study.trials.size());
    // Every trial by number: the first page of a full listing (or of one from a version this
    // engine never handed out), and the pages after it (their position has no version).
    const bool by_number = query.changed_since <= 0 || query.changed_since > view_version_ ||
                           (query.after_version == 0 && query.after_trial >= 0);
    std::vector<std::pair<int64_t, int64_t>> listed;  // (version, number)
    if (by_number) {
      for (int64_t number = std::max<int64_t>(0, query.after_trial + 1);
           number < count && listed.size() < query.limit; ++number) {
        listed.emplace_back(0, number);
      }
      page.more = !listed.empty() && listed.back().second + 1 < count;
    } else {
      const std::pair<int64_t, int64_t> after =
          query.after_version > 0
              ? std::make_pair(query.after_version, query.after_trial)
              : std::make_pair(query.changed_since, std::numeric_limits<int64_t>::max());
      auto it = study.changed_trials.upper_bound(after);
      for (; it != study.changed_trials.end() && listed.size() < query.limit; ++it) {
        listed.push_back(*it);
      }
      page.more = it != study.changed_trials.end();
    }
    size_t points = 0;
    for (size_t i = 0; i < listed.size(); ++i) {
      const auto& [version, number] = listed[i];
      *page.response.add_trials() = TrialView(study, number);
      page.last_version = version;
      page.last_trial = number;
      if (query.with_metrics) {
        const TrialState& trial = study.trials[number];
        const FamilyState& family = FamilyById(trial.family_id);
        MetricQuery metric_query{number, family.id(), {}, {}, trial.target};
        for (NodeId node : family.tree().Path(trial.tree_trial)) {
          metric_query.lineages.emplace_back(family.lineage(node), node);
          const stage_tree::NodeView view = family.tree().node(node);
          metric_query.ranges.emplace_back(view.start, view.end, family.lineage(node), node);
        }
        queries.push_back(std::move(metric_query));
        // Every step of its target, as an estimate of the points it brings.
        points += static_cast<size_t>(std::max<int64_t>(1, trial.target)) *
                  std::max<size_t>(1, query.metric_names.size());
        if (points >= query.max_metric_points) {
          page.more = page.more || i + 1 < listed.size();
          break;
        }
      }
    }
  }
  if (queries.empty()) return page;
  committer_.Flush();  // metrics reported so far are in the store
  const std::set<std::string> names(query.metric_names.begin(), query.metric_names.end());
  // One read of the store per family, of the lineages of all its trials on the page (one
  // transaction), not one per trial: a reader that follows a running study (the dashboard's
  // mirror) reads hundreds of changed trials at once.
  struct FamilyRead {
    std::vector<int64_t> lineages;
    Step target = 0;
    std::map<int64_t, std::vector<store::MetricRecord>> rows;  // by lineage, in step order
  };
  std::map<int64_t, FamilyRead> reads;
  for (const MetricQuery& metric_query : queries) {
    FamilyRead& read = reads[metric_query.family_id];
    for (const auto& [lineage, node] : metric_query.lineages) read.lineages.push_back(lineage);
    read.target = std::max(read.target, metric_query.target);
  }
  for (auto& [family_id, read] : reads) {
    std::sort(read.lineages.begin(), read.lineages.end());
    read.lineages.erase(std::unique(read.lineages.begin(), read.lineages.end()),
                        read.lineages.end());
    absl::StatusOr<std::vector<store::MetricRecord>> rows =
        store_->ListMetrics(family_id, read.lineages, 0, read.target);
    if (!rows.ok()) return rows.status();
    for (store::MetricRecord& row : *rows) {
      if (!names.empty() && !names.contains(row.name)) continue;
      read.rows[row.lineage].push_back(std::move(row));
    }
  }
  for (const MetricQuery& metric_query : queries) {
    const FamilyRead& read = reads.at(metric_query.family_id);
    v1::TrialMetrics* metrics = page.response.add_metrics();
    metrics->set_trial_id(metric_query.trial);
    // A lineage may hold steps of stages off this trial's path (the other part of a split):
    // keep only the steps of the path's own stages, as they were when the page was read.
    std::map<int64_t, v1::Metric> by_step;
    for (const auto& [start, end, lineage, node] : metric_query.ranges) {
      auto rows = read.rows.find(lineage);
      if (rows == read.rows.end()) continue;
      for (const store::MetricRecord& row : rows->second) {
        if (row.step < start || row.step >= end || row.step >= metric_query.target) continue;
        v1::Metric& metric = by_step[row.step];
        metric.set_step(row.step);
        metric.set_stage_id(GlobalStageId(metric_query.family_id, node));
        (*metric.mutable_values())[row.name] = row.value;
      }
    }
    for (auto& [step, metric] : by_step) *metrics->add_metrics() = std::move(metric);
  }
  return page;
}

absl::StatusOr<v1::ListTrialsResponse> EngineImpl::ListTrials(const std::string& study_id,
                                                              bool with_metrics) {
  v1::ListTrialsResponse all;
  TrialQuery query;
  query.limit = 1000;
  query.with_metrics = with_metrics;
  query.max_metric_points = std::numeric_limits<size_t>::max();
  while (true) {
    absl::StatusOr<TrialPage> page = ListTrialsPage(study_id, query);
    if (!page.ok()) return page.status();
    if (all.version() == 0) all.set_version(page->response.version());
    for (v1::Trial& trial : *page->response.mutable_trials()) *all.add_trials() = std::move(trial);
    for (v1::TrialMetrics& metrics : *page->response.mutable_metrics()) {
      *all.add_metrics() = std::move(metrics);
    }
    if (!page->more) return all;
    query.after_version = page->last_version;
    query.after_trial = page->last_trial;
  }
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

absl::StatusOr<StagePage> EngineImpl::GetStageTreePage(const std::string& study_id,
                                                       const StageQuery& query) {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  const StudyState& study = *studies_[*index];
  StagePage page;
  v1::StageTree& tree = page.tree;
  if (query.dot && query.after_stage == 0) {
    size_t stages = 0;
    for (int64_t family_id : study.family_ids) {
      stages += FamilyById(family_id).tree().node_count() - 1;
    }
    if (stages > query.max_dot_stages) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dot: the stage tree of study '", study_id, "' has ", stages, " stages, more than the ",
          query.max_dot_stages, " that Graphviz text is made for; list the stages instead"));
    }
  }
  // Families in id order, and stage ids have the family in their high bits: stage ids grow
  // along the listing.
  for (int64_t family_id : study.family_ids) {
    const FamilyState& family = FamilyById(family_id);
    const stage_tree::StepCounts& counts = family.tree().counts();
    tree.mutable_steps()->set_trial_steps(tree.steps().trial_steps() + counts.trial_steps);
    tree.mutable_steps()->set_unique_steps(tree.steps().unique_steps() + counts.unique_steps);
    tree.mutable_steps()->set_executed_steps(tree.steps().executed_steps() + counts.executed_steps);
    tree.mutable_steps()->set_reached_trial_steps(tree.steps().reached_trial_steps() +
                                                  counts.reached_trial_steps);
    tree.mutable_steps()->set_recomputed_steps(tree.steps().recomputed_steps() +
                                               counts.recomputed_steps);
    if (query.dot && query.after_stage == 0) {
      tree.set_dot(tree.dot() + stage_tree::ToDot(family.tree()));
    }
    const NodeId nodes = static_cast<NodeId>(family.tree().node_count());
    if (nodes <= 1 || page.more || GlobalStageId(family.id(), nodes - 1) <= query.after_stage) {
      continue;
    }
    NodeId first = 1;
    if (GlobalStageId(family.id(), 0) < query.after_stage) {
      first = static_cast<NodeId>(query.after_stage - GlobalStageId(family.id(), 0)) + 1;
    }
    // The critical path of this page's stages only (their subtrees): a reader lists a large
    // tree a page at a time, and the whole tree's computation at every page made a listing
    // cost the tree's size squared, under the engine's lock.
    absl::flat_hash_map<NodeId, double> remaining;
    for (NodeId node = first; node < nodes; ++node) {
      if (static_cast<size_t>(tree.stages_size()) >= query.limit) {
        page.more = true;
        break;
      }
      const stage_tree::NodeView view = family.tree().node(node);
      v1::Stage* stage = tree.add_stages();
      stage->set_id(GlobalStageId(family.id(), node));
      stage->set_parent_id(
          view.parent == stage_tree::kRootNode ? 0 : GlobalStageId(family.id(), view.parent));
      stage->set_family(family.tree().family_key());
      if (view.parent == stage_tree::kRootNode && family.inheritance().inherits()) {
        stage->set_inherited_from(InheritedFromStage(family));
      }
      stage->set_start_step(view.start);
      stage->set_end_step(view.end);
      stage->set_state(engine_internal::StageStateOf(view));
      stage->set_attempts(family.AttemptsOf(node));
      if (view.state == StageState::kDone) {
        if (const std::string* uri = family.StateUri(node, view.end)) {
          stage->set_checkpoint_uri(*uri);
        }
      }
      stage->set_critical_path_seconds(stage_tree::RemainingCriticalPathBelow(
          family.tree(), family.seconds_per_step(), node, remaining));
      for (stage_tree::TrialId trial : family.tree().TrialsThrough(node)) {
        const auto& [owner, number] = family.OwnerOf(trial);
        if (owner == *index) stage->add_trial_ids(number);
      }
      page.last_stage = stage->id();
    }
  }
  return page;
}

absl::StatusOr<v1::StageTree> EngineImpl::GetStageTree(const std::string& study_id, bool dot) {
  StageQuery query;
  query.dot = dot;
  query.max_dot_stages = std::numeric_limits<size_t>::max();
  absl::StatusOr<StagePage> page = GetStageTreePage(study_id, query);
  if (!page.ok()) return page.status();
  return std::move(page->tree);
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
    AddForkCache(worker.cached_states, info);
    info.set_checkpoint_budget(OverBudgetMessage(worker.hello.checkpoint_dir()));
    const int threshold = options_.unhealthy_after_failures;
    info.set_consecutive_failures(worker.consecutive_failures);
    info.set_healthy(threshold <= 0 || worker.consecutive_failures < threshold);
    if (!info.healthy()) {
      const double drained_for =
          worker.drained_until
              ? std::chrono::duration<double>(*worker.drained_until - Clock::now()).count()
              : 0;
      info.set_health_message(
          absl::StrCat(worker.consecutive_failures, " stages failed in a row; ",
                       drained_for > 0 ? absl::StrFormat("drained for %.0f s more", drained_for)
                                       : std::string("on probation: its next stage decides"),
                       "; last error: ", worker.last_error));
    }
  }
  return workers;
}

}  // namespace hippo::coordinator
