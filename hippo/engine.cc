#include "hippo/engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "proto/spec_loader.h"
#include "search_algos/external.h"
#include "search_algos/spec_checks.h"
#include "stage_tree/graph_view.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::StageState StageStateOf(StageState state) {
  switch (state) {
    case StageState::kPending:
      return v1::STAGE_PENDING;
    case StageState::kReady:
      return v1::STAGE_READY;
    case StageState::kRunning:
      return v1::STAGE_RUNNING;
    case StageState::kDone:
      return v1::STAGE_DONE;
    case StageState::kFailed:
      return v1::STAGE_FAILED;
  }
  return v1::STAGE_STATE_UNSPECIFIED;
}

void ToProto(const stage_tree::Segment& segment, v1::Segment* out) {
  out->set_start(segment.start);
  out->set_end(segment.end);
  const stage_tree::SegmentFunction& function = segment.function;
  switch (function.kind) {
    case stage_tree::FunctionKind::kConstant:
      out->set_constant(function.first);
      break;
    case stage_tree::FunctionKind::kLinear: {
      v1::LinearFunction* linear = out->mutable_linear();
      linear->set_from(function.first);
      linear->set_to(function.second);
      linear->set_origin(function.origin);
      linear->set_span(function.span);
      break;
    }
    case stage_tree::FunctionKind::kExponential: {
      v1::ExponentialFunction* exponential = out->mutable_exponential();
      exponential->set_initial(function.first);
      exponential->set_rate(function.second);
      exponential->set_origin(function.origin);
      break;
    }
    case stage_tree::FunctionKind::kCosine: {
      v1::CosineFunction* cosine = out->mutable_cosine();
      cosine->set_max(function.first);
      cosine->set_min(function.second);
      cosine->set_origin(function.origin);
      cosine->set_period(function.span);
      break;
    }
  }
}

google::protobuf::Value ToProtoValue(const stage_tree::Value& value) {
  google::protobuf::Value out;
  if (const double* number = std::get_if<double>(&value)) {
    out.set_number_value(*number);
  } else if (const std::string* text = std::get_if<std::string>(&value)) {
    out.set_string_value(*text);
  } else {
    for (Step step : std::get<std::vector<Step>>(value)) {
      out.mutable_list_value()->add_values()->set_number_value(static_cast<double>(step));
    }
  }
  return out;
}

// Points are stored as the JSON of a google.protobuf.ListValue.
// The algorithm as ask/tell, or nullptr when the study's trials are trained by workers.
search_algos::ExternalAskTell* AskTellOf(search_algos::SearchAlgorithm* algorithm) {
  return dynamic_cast<search_algos::ExternalAskTell*>(algorithm);
}

std::string PointToJson(const stage_tree::Point& point) {
  google::protobuf::ListValue list;
  for (const stage_tree::Value& value : point) *list.add_values() = ToProtoValue(value);
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(list, &json);
  return json;
}

absl::StatusOr<stage_tree::Point> PointFromJson(const std::string& json) {
  google::protobuf::ListValue list;
  if (!google::protobuf::util::JsonStringToMessage(json, &list).ok()) {
    return absl::DataLossError(absl::StrCat("stored point is not a JSON list: ", json));
  }
  stage_tree::Point point;
  for (const google::protobuf::Value& value : list.values()) {
    if (value.has_list_value()) {
      std::vector<Step> steps;
      for (const auto& step : value.list_value().values()) {
        steps.push_back(static_cast<Step>(step.number_value()));
      }
      point.emplace_back(std::move(steps));
    } else if (value.kind_case() == google::protobuf::Value::kStringValue) {
      point.emplace_back(value.string_value());
    } else {
      point.emplace_back(value.number_value());
    }
  }
  return point;
}

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

Engine::Engine(store::Store* store, EngineOptions options)
    : store_(store), options_(std::move(options)), committer_(store) {}

// ----------------------------------------------------------------------------------------------
// Commit protocol

absl::Status Engine::CommitAndSend(std::unique_lock<std::mutex>& lock, store::WriteBatch batch,
                                   Outbox outbox, bool wait_for_commit) {
  if (options_.send_from_committer && options_.durable_acknowledgements &&
      !outbox.sends.empty()) {
    // Sent in commit order by the committer thread, right after the commit.
    std::future<absl::Status> committed =
        committer_.Enqueue(std::move(batch), [sends = std::move(outbox.sends)]() mutable {
          for (auto& [channel, message] : sends) channel->Send(std::move(message));
        });
    lock.unlock();
    if (wait_for_commit) committed.wait();
    return absl::OkStatus();
  }
  std::future<absl::Status> committed;
  if (!batch.empty()) committed = committer_.Enqueue(std::move(batch));
  lock.unlock();
  // Only what is sent must wait for the disk: a batch that acknowledges nothing (a metric, a
  // heartbeat) is durable as soon as any later batch is, since batches commit in order.
  if (committed.valid() && options_.durable_acknowledgements &&
      (!outbox.sends.empty() || wait_for_commit)) {
    committed.wait();
  }
  for (auto& [channel, message] : outbox.sends) channel->Send(std::move(message));
  return absl::OkStatus();
}

const std::string* Engine::StateUri(const Family& family, NodeId node, int64_t step) const {
  auto it = family.state_uri.find({family.lineage[node], step});
  return it == family.state_uri.end() ? nullptr : &it->second;
}

void Engine::KeepMetric(Family& family, const std::string& name, int64_t lineage, int64_t step,
                        double value) {
  family.step_metrics[name].try_emplace({lineage, step}, value);
}

const double* Engine::EndMetric(const Family& family, NodeId node, const std::string& name) const {
  auto values = family.step_metrics.find(name);
  if (values == family.step_metrics.end()) return nullptr;
  auto it = values->second.find({family.lineage[node], family.tree->node(node).end - 1});
  return it == values->second.end() ? nullptr : &it->second;
}

store::EventRecord Engine::Event(const std::string& study_id, const std::string& kind,
                                 const std::string& payload) const {
  store::EventRecord event;
  event.study_id = study_id;
  event.kind = kind;
  event.payload_json = payload;
  event.time_ms = NowMs();
  return event;
}

// ----------------------------------------------------------------------------------------------
// Families and the tree-operation log

absl::StatusOr<Engine::Family*> Engine::FamilyFor(const std::string& key,
                                                  const std::vector<std::string>& parameter_names,
                                                  store::WriteBatch& batch) {
  if (auto it = family_ids_.find(key); it != family_ids_.end()) {
    Family& family = FamilyById(it->second);
    if (family.tree->parameter_names() != parameter_names) {
      return absl::InvalidArgumentError(
          absl::StrCat("search_space.parameters: studies of family '", key,
                       "' must have the same sequence parameters; it has [",
                       absl::StrJoin(family.tree->parameter_names(), ", "), "], this study has [",
                       absl::StrJoin(parameter_names, ", "), "]"));
    }
    return &family;
  }
  auto family = std::make_unique<Family>();
  family->id = static_cast<int64_t>(families_.size()) + 1;
  family->tree = std::make_unique<stage_tree::StageTree>(key, parameter_names);
  family->lineage.push_back(0);
  family->client_trained = key.starts_with(kClientTrainedPrefix);
  const int64_t family_id = family->id;
  family->tree->set_on_ready([this, family_id](NodeId node) {
    Family& owner = FamilyById(family_id);
    if (owner.client_trained) return;
    const double priority =
        node < owner.priorities.size() ? owner.priorities[node] : owner.seconds_per_step;
    ready_.Push(QueuedStage{family_id, node}, priority);
  });
  store::FamilyRecord record;
  record.id = family->id;
  record.key = key;
  record.parameter_names = family->tree->parameter_names();
  batch.families.push_back(record);
  family_ids_[key] = family->id;
  families_.push_back(std::move(family));
  return families_.back().get();
}

void Engine::AppendOp(Family& family, store::TreeOpKind kind, int64_t a, int64_t b,
                      std::string payload, store::WriteBatch& batch) {
  store::TreeOp op;
  op.family_id = family.id;
  op.sequence = family.next_op++;
  op.kind = kind;
  op.a = a;
  op.b = b;
  op.payload = std::move(payload);
  batch.tree_ops.push_back(std::move(op));
}

void Engine::AddBreakpoints(Family& family, const stage_tree::TrialSequences& sequences,
                            int64_t target) {
  family.breakpoints.insert(target);
  for (const auto& [name, sequence] : sequences) {
    for (const stage_tree::Segment& segment : sequence.segments()) {
      if (segment.start > 0) family.breakpoints.insert(segment.start);
    }
  }
}

void Engine::TrackSplits(Family& family, const std::vector<stage_tree::SplitResult>& splits,
                         Outbox& outbox, store::WriteBatch& batch) {
  // New nodes start their own lineage; the lower part of a split continues its upper's.
  for (auto node = static_cast<NodeId>(family.lineage.size()); node < family.tree->node_count();
       ++node) {
    family.lineage.push_back(node);
  }
  for (const stage_tree::SplitResult& split : splits) {
    family.lineage[split.lower] = family.lineage[split.upper];
    if (split.action == stage_tree::SplitAction::kUpperDone) {
      // The state at the split step was kept already: the attempt goes on with the lower part
      // only. A trial ending at the upper part is the one being inserted or extended; its caller
      // sees the part done.
      for (auto& [id, attempt] : attempts_) {
        if (attempt.family_id != family.id) continue;
        auto at = std::find(attempt.chain.begin(), attempt.chain.end(), split.upper);
        if (at == attempt.chain.end()) continue;
        *at = split.lower;
        break;
      }
      batch.stages.push_back(StageRecordOf(family, split.upper));
      continue;
    }
    if (split.action != stage_tree::SplitAction::kCheckpointRequested) continue;
    // The running attempt now covers both parts: ask it for the state at the split step.
    for (auto& [id, attempt] : attempts_) {
      if (attempt.family_id != family.id) continue;
      auto at = std::find(attempt.chain.begin(), attempt.chain.end(), split.upper);
      if (at == attempt.chain.end()) continue;
      attempt.chain.insert(at + 1, split.lower);
      // The worker may have reported the upper part's last step already, when it was not yet
      // a last step, and still honour the request: that report is the upper part's end metric.
      const Step split_step = family.tree->node(split.upper).end;
      if (attempt.last_reported_step == split_step - 1) {
        for (const auto& [name, value] : attempt.last_reported_metrics) {
          KeepMetric(family, name, family.lineage[split.upper], split_step - 1, value);
        }
      }
      if (auto worker = workers_.find(attempt.worker_id);
          worker != workers_.end() && worker->second.connected) {
        v1::CoordinatorMessage message;
        message.mutable_checkpoint_at()->set_attempt_id(id);
        message.mutable_checkpoint_at()->set_step(family.tree->node(split.upper).end);
        outbox.sends.emplace_back(worker->second.channel, std::move(message));
      }
      break;
    }
  }
  family.priorities_dirty = true;
}

// ----------------------------------------------------------------------------------------------
// Studies and search plans

absl::StatusOr<size_t> Engine::StudyIndex(const std::string& study_id) const {
  auto it = study_index_.find(study_id);
  if (it == study_index_.end()) {
    return absl::NotFoundError(absl::StrCat("no study '", study_id, "'"));
  }
  return it->second;
}

absl::StatusOr<v1::Study> Engine::CreateStudy(const v1::StudySpec& spec, bool no_merge) {
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

  std::unique_lock<std::mutex> lock(mutex_);
  study->record.id = absl::StrFormat("s-%06d", studies_.size() + 1);
  study->record.name = spec.name();
  study->record.spec_json = proto::StudySpecToJson(spec);
  study->record.state = v1::STUDY_RUNNING;
  study->record.created_ms = NowMs();
  study->record.no_merge = no_merge;
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

  const size_t index = studies_.size();
  study_index_[study->record.id] = index;
  studies_.push_back(std::move(study));
  store::WriteBatch batch;
  Outbox outbox;
  batch.studies.push_back(studies_[index]->record);
  batch.events.push_back(Event(studies_[index]->record.id, "study_created", ""));
  if (absl::Status status = RunPlan(index, batch, outbox); !status.ok()) {
    // Nothing was committed: forget the study entirely.
    study_index_.erase(studies_[index]->record.id);
    studies_.pop_back();
    return status;
  }
  Dispatch(batch, outbox);
  v1::Study view = StudyView(*studies_[index]);
  (void)CommitAndSend(lock, std::move(batch), std::move(outbox));
  return view;
}

absl::Status Engine::RunPlan(size_t study_index, store::WriteBatch& batch, Outbox& outbox) {
  StudyState& study = *studies_[study_index];
  if (study.record.state != v1::STUDY_RUNNING) return absl::OkStatus();
  // A request can be answered at once (an extension or a new trial whose stages another trial
  // already trained): the algorithm then hears of it and may have more to ask.
  for (bool answered_at_once = true; answered_at_once;) {
    answered_at_once = false;
    int64_t capacity = std::numeric_limits<int32_t>::max();
    if (study.spec.budget().max_parallel_trials() > 0) {
      capacity =
          std::max<int64_t>(0, study.spec.budget().max_parallel_trials() - study.running_trials);
    }
    const int64_t reached_before = targets_reached_;
    std::vector<search_algos::Request> requests = study.algorithm->Suggest(capacity);
    if (absl::Status status = CarryOut(study_index, requests, batch, outbox); !status.ok()) {
      return status;
    }
    answered_at_once = targets_reached_ != reached_before;
  }
  std::string state = study.algorithm->SaveState();
  if (state != study.saved_algorithm_state) {
    study.saved_algorithm_state = state;
    batch.algorithm_states.emplace_back(study.record.id, std::move(state));
  }
  FinishStudyIfDone(study_index, batch);
  return absl::OkStatus();
}

absl::Status Engine::CarryOut(size_t study_index,
                              const std::vector<search_algos::Request>& requests,
                              store::WriteBatch& batch, Outbox& outbox) {
  StudyState& study = *studies_[study_index];
  for (const search_algos::Request& request : requests) {
    switch (request.kind) {
      case search_algos::Request::Kind::kNewTrial:
      case search_algos::Request::Kind::kFork:
        if (absl::Status status = AddTrial(study_index, request, batch, outbox); !status.ok()) {
          return status;
        }
        break;
      case search_algos::Request::Kind::kExtend: {
        TrialState& trial = study.trials.at(request.trial);
        Family& family = FamilyById(trial.family_id);
        std::vector<stage_tree::SplitResult> splits;
        if (absl::Status status = family.tree->Extend(trial.tree_trial, request.target, &splits);
            !status.ok()) {
          return status;
        }
        AppendOp(family, store::TreeOpKind::kExtend, trial.tree_trial, request.target, "", batch);
        family.breakpoints.insert(request.target);
        TrackSplits(family, splits, outbox, batch);
        study.trial_steps += request.target - trial.target;
        trial.target = request.target;
        SetTrialState(study, request.trial, v1::TRIAL_RUNNING);
        batch.trials.push_back(TrialRecordOf(study_index, request.trial));
        // Another trial may have trained the whole extension already.
        if (family.tree->node(family.tree->Leaf(trial.tree_trial)).state == StageState::kDone) {
          TrialReachedTarget(study_index, request.trial, batch);
        }
        break;
      }
      case search_algos::Request::Kind::kStop: {
        SetTrialState(study, request.trial, v1::TRIAL_STOPPED);
        batch.trials.push_back(TrialRecordOf(study_index, request.trial));
        study.algorithm->OnTrialEnded(request.trial, search_algos::TrialOutcome::kStopped);
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::AddTrial(size_t study_index, const search_algos::Request& request,
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
  std::string key = stage_tree::FamilyKey(study.trainer_identity, plan->structural);
  if (study.record.no_merge) absl::StrAppend(&key, "|study=", study.record.id, "|trial=", number);
  const bool client_trained = AskTellOf(study.algorithm.get()) != nullptr;
  if (client_trained) {
    key = absl::StrCat(kClientTrainedPrefix, study.record.id, "|trial=", number);
  }
  std::vector<std::string> names;
  for (const auto& [name, sequence] : plan->sequences) names.push_back(name);
  absl::StatusOr<Family*> family = FamilyFor(key, names, batch);
  if (!family.ok()) return family.status();
  std::vector<stage_tree::SplitResult> splits;
  absl::StatusOr<stage_tree::TrialId> tree_trial =
      (*family)->tree->Insert(plan->sequences, request.target, &splits);
  if (!tree_trial.ok()) return tree_trial.status();
  AppendOp(**family, store::TreeOpKind::kInsert, *tree_trial, request.target,
           stage_tree::EncodeSequences(plan->sequences), batch);
  AddBreakpoints(**family, plan->sequences, request.target);
  for (Step step : study.algorithm->BranchSteps()) {
    if (step > 0 && step < max_steps) (*family)->breakpoints.insert(step);
  }
  TrackSplits(**family, splits, outbox, batch);
  (*family)->owners.resize(*tree_trial + 1);
  (*family)->owners[*tree_trial] = {study_index, number};
  (*family)->trial_by_trial = study.record.no_merge;

  TrialState trial;
  trial.family_id = (*family)->id;
  trial.tree_trial = *tree_trial;
  trial.point = request.point;
  trial.point_json = PointToJson(request.point);
  trial.structural = plan->structural;
  trial.target = request.target;
  if (request.kind == search_algos::Request::Kind::kFork) {
    trial.forked_from = request.trial;
    trial.forked_at = request.fork_step;
  }
  trial.state = v1::TRIAL_STATE_UNSPECIFIED;
  AppendTrial(study, std::move(trial));
  SetTrialState(study, number, v1::TRIAL_RUNNING);
  batch.trials.push_back(TrialRecordOf(study_index, number));
  if (client_trained) {
    // The client trains it: its one stage runs from now until the client ends the trial.
    const NodeId stage = (*family)->tree->Leaf(*tree_trial);
    (void)(*family)->tree->MarkRunning(stage);
    AppendOp(**family, store::TreeOpKind::kRunning, stage, 0, "", batch);
    return absl::OkStatus();
  }
  // A trial whose whole path is already trained (another study trained it) has its result now.
  const NodeId leaf = (*family)->tree->Leaf(*tree_trial);
  if ((*family)->tree->node(leaf).state == StageState::kDone) {
    TrialReachedTarget(study_index, number, batch);
  }
  return absl::OkStatus();
}

absl::StatusOr<stage_tree::TrialSequences> Engine::SequencesOf(const StudyState& study,
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

void Engine::TrialReachedTarget(size_t study_index, int64_t number, store::WriteBatch& batch) {
  ++targets_reached_;
  StudyState& study = *studies_[study_index];
  TrialState& trial = study.trials[number];
  Family& family = FamilyById(trial.family_id);
  const NodeId leaf = family.tree->Leaf(trial.tree_trial);
  if (const double* value = EndMetric(family, leaf, study.spec.objective().metric())) {
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

void Engine::FinishStudyIfDone(size_t study_index, store::WriteBatch& batch) {
  StudyState& study = *studies_[study_index];
  if (study.record.state != v1::STUDY_RUNNING || !study.algorithm->Finished()) return;
  if (study.running_trials > 0) return;
  // A study whose every trial failed has no result: it failed (its message says why).
  const bool failed = study.completed_trials == 0 && !study.trials.empty() &&
                      std::all_of(study.trials.begin(), study.trials.end(),
                                  [](const TrialState& t) { return t.state == v1::TRIAL_FAILED; });
  study.record.state = failed ? v1::STUDY_FAILED : v1::STUDY_COMPLETED;
  study.record.finished_ms = NowMs();
  batch.studies.push_back(study.record);
  batch.events.push_back(Event(study.record.id, failed ? "study_failed" : "study_completed", ""));
}

void Engine::SetTrialState(StudyState& study, int64_t number, v1::TrialState state) {
  v1::TrialState& current = study.trials[number].state;
  if (current == v1::TRIAL_RUNNING && state != v1::TRIAL_RUNNING && state != v1::TRIAL_COMPLETED &&
      state != v1::TRIAL_PAUSED) {
    trials_ended_ = true;
    // Its continuation no longer counts in the priorities.
    FamilyById(study.trials[number].family_id).priorities_dirty = true;
  }
  study.running_trials += (state == v1::TRIAL_RUNNING) - (current == v1::TRIAL_RUNNING);
  study.completed_trials += (state == v1::TRIAL_COMPLETED) - (current == v1::TRIAL_COMPLETED);
  current = state;
  UpdateBest(study, number);
}

void Engine::AppendTrial(StudyState& study, TrialState trial) {
  study.trial_steps += trial.target;
  study.family_ids.insert(trial.family_id);
  study.trials.push_back(std::move(trial));
}

void Engine::UpdateBest(StudyState& study, int64_t number) {
  if (study.best_stale) return;
  if (study.best == number) {
    study.best_stale = true;  // it may have got worse or left the running: look at every trial
    return;
  }
  if (Beats(study, number, study.best)) study.best = number;
}

bool Engine::Beats(const StudyState& study, int64_t number, std::optional<int64_t> best) {
  const TrialState& trial = study.trials[number];
  if (trial.state != v1::TRIAL_COMPLETED || !trial.objective) return false;
  return !best || BetterTrial(*trial.objective, number, *study.trials[*best].objective, *best,
                              study.spec.objective().direction() == v1::MINIMIZE);
}

std::optional<int64_t> Engine::BestTrial(const StudyState& study) const {
  if (!study.best_stale) return study.best;
  std::optional<int64_t> best;
  for (int64_t number = 0; number < static_cast<int64_t>(study.trials.size()); ++number) {
    if (Beats(study, number, best)) best = number;
  }
  study.best = best;
  study.best_stale = false;
  return best;
}

bool Engine::Needed(const Family& family, NodeId node) const {
  for (stage_tree::TrialId trial : family.tree->TrialsThrough(node)) {
    const auto& [study_index, number] = family.owners[trial];
    const StudyState& study = *studies_[study_index];
    if (study.record.state == v1::STUDY_RUNNING &&
        study.trials[number].state == v1::TRIAL_RUNNING) {
      return true;
    }
  }
  return false;
}

void Engine::CancelUnneeded(store::WriteBatch& batch, Outbox& outbox) {
  if (!trials_ended_) return;
  trials_ended_ = false;
  std::vector<int64_t> unneeded;
  for (const auto& [id, attempt] : attempts_) {
    const Family& family = FamilyById(attempt.family_id);
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

void Engine::Abandon(int64_t attempt_id, int record_state, store::WriteBatch& batch,
                     Outbox& outbox) {
  Attempt attempt = std::move(attempts_[attempt_id]);
  attempts_.erase(attempt_id);
  Family& family = FamilyById(attempt.family_id);
  for (NodeId node : attempt.chain) {
    if (family.tree->node(node).state != StageState::kRunning) continue;
    (void)family.tree->Requeue(node);  // back in the queue, skipped until a trial needs it
    AppendOp(family, store::TreeOpKind::kRequeue, node, 0, "", batch);
    batch.stages.push_back(StageRecordOf(family, node));
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

absl::StatusOr<v1::Study> Engine::StopStudy(const std::string& study_id,
                                            const std::string& reason) {
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  StudyState& study = *studies_[*index];
  store::WriteBatch batch;
  if (study.record.state == v1::STUDY_RUNNING) {
    study.record.state = v1::STUDY_STOPPED;
    study.record.finished_ms = NowMs();
    study.record.message = reason.empty() ? "stopped by a client" : reason;
    for (int64_t number = 0; number < static_cast<int64_t>(study.trials.size()); ++number) {
      if (study.trials[number].state == v1::TRIAL_RUNNING ||
          study.trials[number].state == v1::TRIAL_PAUSED) {
        SetTrialState(study, number, v1::TRIAL_STOPPED);
        batch.trials.push_back(TrialRecordOf(*index, number));
      }
    }
    batch.studies.push_back(study.record);
    batch.events.push_back(Event(study.record.id, "study_stopped", study.record.message));
    trials_ended_ = true;
  }
  Outbox outbox;
  CancelUnneeded(batch, outbox);
  Dispatch(batch, outbox);
  v1::Study view = StudyView(study);
  (void)CommitAndSend(lock, std::move(batch), std::move(outbox));
  return view;
}

// ----------------------------------------------------------------------------------------------
// Scheduling and dispatch

std::vector<double> Engine::Continuations(const Family& family) const {
  std::vector<double> continuation;
  if (family.trial_by_trial) return continuation;
  for (stage_tree::TrialId tree_trial = 0; tree_trial < family.owners.size(); ++tree_trial) {
    const auto& [study_index, number] = family.owners[tree_trial];
    const StudyState& study = *studies_[study_index];
    if (study.record.state != v1::STUDY_RUNNING) continue;
    const TrialState& trial = study.trials[number];
    const int64_t max_steps = study.spec.budget().max_steps();
    if (trial.state != v1::TRIAL_RUNNING || trial.target >= max_steps) continue;
    const NodeId leaf = family.tree->Leaf(tree_trial);
    if (continuation.size() <= leaf) continuation.resize(leaf + 1, 0.0);
    continuation[leaf] =
        std::max(continuation[leaf],
                 static_cast<double>(max_steps - trial.target) * family.seconds_per_step);
  }
  return continuation;
}

void Engine::RefreshPriorities() {
  bool any = false;
  for (auto& family : families_) {
    if (!family->priorities_dirty) continue;
    family->priorities = stage_tree::RemainingCriticalPath(*family->tree, family->seconds_per_step,
                                                           Continuations(*family));
    family->priorities_dirty = false;
    any = true;
  }
  if (!any) return;
  ready_.Clear();
  for (auto& family : families_) {
    if (family->client_trained) continue;
    for (NodeId node : family->tree->ready_set()) {
      ready_.Push(QueuedStage{family->id, node}, family->priorities[node]);
    }
  }
}

// Whether a stage in the queue should still run: it is ready and some live trial needs it.
void Engine::Dispatch(store::WriteBatch& batch, Outbox& outbox) {
  RefreshPriorities();
  for (auto& [id, worker] : workers_) {
    if (!worker.connected || worker.attempt.has_value()) continue;
    std::optional<v1::Assign> assign = AssignTo(worker, batch);
    if (!assign) break;  // nothing ready
    v1::CoordinatorMessage message;
    *message.mutable_assign() = *std::move(assign);
    outbox.sends.emplace_back(worker.channel, std::move(message));
  }
}

Step Engine::CutStep(const Family& family, NodeId node) const {
  const stage_tree::NodeView view = family.tree->node(node);
  if (view.recompute || family.trial_by_trial) return 0;
  const auto next = family.breakpoints.upper_bound(view.start);
  return next != family.breakpoints.end() && *next < view.end ? *next : 0;
}

absl::Status Engine::Cut(Family& family, NodeId node, Step step) {
  const double before = node < family.priorities.size() ? family.priorities[node] : 0;
  const bool priorities_current = !family.priorities_dirty;
  absl::StatusOr<stage_tree::SplitResult> split = family.tree->Split(node, step);
  if (!split.ok()) return split.status();
  Outbox unused;  // a stage not yet running needs no message and no record
  store::WriteBatch unused_batch;
  TrackSplits(family, {*split}, unused, unused_batch);
  if (priorities_current) {
    // The chains through the node are as long as before: only the new part needs a priority,
    // and the tree need not be walked again.
    const stage_tree::NodeView upper = family.tree->node(node);
    family.priorities.resize(family.tree->node_count(), 0.0);
    family.priorities[split->lower] =
        before - static_cast<double>(upper.end - upper.start) * family.seconds_per_step;
    family.priorities_dirty = false;
  }
  return absl::OkStatus();
}

std::optional<v1::Assign> Engine::AssignTo(Worker& worker, store::WriteBatch& batch) {
  auto still_ready = [this](const QueuedStage& stage) {
    const Family& family = FamilyById(stage.family_id);
    return family.tree->node(stage.node).state == StageState::kReady && Needed(family, stage.node);
  };
  auto is_local = [this, &worker](const QueuedStage& stage) {
    const stage_tree::NodeView node = FamilyById(stage.family_id).tree->node(stage.node);
    const Family& family = FamilyById(stage.family_id);
    return node.parent != stage_tree::kRootNode &&
           worker.cached_states.contains({WorkerStageId(family, node.parent), node.start});
  };
  std::optional<QueuedStage> chosen = ready_.Pop(still_ready, is_local);
  if (!chosen) return std::nullopt;
  Family& family = FamilyById(chosen->family_id);
  const Step cut = CutStep(family, chosen->node);
  if (cut > 0) (void)Cut(family, chosen->node, cut);  // CutStep is strictly inside: it cannot fail
  const stage_tree::NodeView node = family.tree->node(chosen->node);
  (void)family.tree->MarkRunning(chosen->node);
  AppendOp(family, store::TreeOpKind::kRunning, chosen->node, cut, "", batch);

  Attempt attempt;
  attempt.id = next_attempt_++;
  attempt.family_id = family.id;
  attempt.assigned = chosen->node;
  attempt.steps = node.end - node.start;
  attempt.chain = {chosen->node};
  attempt.worker_id = worker.hello.worker_id();
  attempt.lease_expires =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(options_.lease_seconds * 1000));
  attempt.recompute = node.recompute;
  worker.attempt = attempt.id;
  ++family.attempts_of_node[chosen->node];
  ++stats_.dispatches;

  v1::Assign assign;
  assign.set_attempt_id(attempt.id);
  assign.set_stage_id(WorkerStageId(family, chosen->node));
  assign.set_start_step(node.recompute ? node.recompute_from : node.start);
  assign.set_end_step(node.end);
  if (node.recompute && node.recompute_from > node.start) {
    // Start from a checkpoint kept inside the stage itself.
    assign.set_parent_stage_id(WorkerStageId(family, chosen->node));
    assign.set_parent_state_step(node.recompute_from);
    if (const std::string* uri = StateUri(family, chosen->node, node.recompute_from)) {
      assign.set_parent_state_uri(*uri);
    }
  } else if (node.parent != stage_tree::kRootNode) {
    assign.set_parent_stage_id(WorkerStageId(family, node.parent));
    assign.set_parent_state_step(node.start);
    if (const std::string* uri = StateUri(family, node.parent, node.start)) {
      assign.set_parent_state_uri(*uri);
    }
  }
  const std::vector<std::vector<stage_tree::Segment>> segments =
      family.tree->SegmentsOf(chosen->node);
  const std::vector<std::string>& names = family.tree->parameter_names();
  for (size_t i = 0; i < names.size(); ++i) {
    v1::ParameterSegments* parameter = assign.add_parameters();
    parameter->set_name(names[i]);
    for (const stage_tree::Segment& segment : segments[i]) {
      ToProto(segment, parameter->add_segments());
    }
  }
  // Trainer and structural values come from any trial through the stage (a family shares them).
  const stage_tree::TrialId any_trial = family.tree->TrialsThrough(chosen->node).front();
  const auto& [study_index, number] = family.owners[any_trial];
  const StudyState& study = *studies_[study_index];
  *assign.mutable_trainer() = study.spec.trainer();
  for (const auto& [name, value] : study.trials[number].structural) {
    (*assign.mutable_static_parameters())[name] = ToProtoValue(value);
  }
  for (auto step = family.breakpoints.upper_bound(assign.start_step());
       step != family.breakpoints.end() && *step < node.end; ++step) {
    assign.add_checkpoint_steps(*step);
  }
  assign.add_checkpoint_steps(node.end);
  assign.set_lease_seconds(options_.lease_seconds);

  store::AttemptRecord record;
  record.attempt_id = attempt.id;
  record.family_id = family.id;
  record.node_id = chosen->node;
  record.worker_id = attempt.worker_id;
  record.lease_expires_ms = NowMs() + static_cast<int64_t>(options_.lease_seconds * 1000);
  batch.attempts.push_back(record);
  batch.stages.push_back(StageRecordOf(family, chosen->node));
  attempts_[attempt.id] = std::move(attempt);
  return assign;
}

// ----------------------------------------------------------------------------------------------
// Workers

absl::StatusOr<int64_t> Engine::Connect(const v1::WorkerHello& hello,
                                        std::shared_ptr<WorkerChannel> channel) {
  if (hello.worker_id().empty()) {
    return absl::InvalidArgumentError("hello.worker_id: a worker must name itself");
  }
  std::unique_lock<std::mutex> lock(mutex_);
  Worker& worker = workers_[hello.worker_id()];
  worker.hello = hello;
  worker.channel = std::move(channel);
  worker.session = next_session_++;
  worker.connected = true;
  worker.cached_states.clear();
  for (const v1::CachedState& state : hello.cached_states()) {
    worker.cached_states.insert({state.stage_id(), state.step()});
  }
  // An attempt it held before reconnecting is still its own until the lease says otherwise.
  worker.attempt.reset();
  for (const auto& [id, attempt] : attempts_) {
    if (attempt.worker_id == hello.worker_id()) worker.attempt = id;
  }
  store::WriteBatch batch;
  Outbox outbox;
  store::WorkerRecord record;
  record.worker_id = hello.worker_id();
  record.host = hello.host();
  (void)google::protobuf::util::MessageToJsonString(hello, &record.hello_json);
  record.last_seen_ms = NowMs();
  record.connected = true;
  batch.workers.push_back(record);
  Dispatch(batch, outbox);
  const int64_t session = worker.session;
  (void)CommitAndSend(lock, std::move(batch), std::move(outbox));
  return session;
}

void Engine::Disconnect(const std::string& worker_id, int64_t session) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.session != session) return;
  it->second.connected = false;
  it->second.channel.reset();
  store::WriteBatch batch;
  store::WorkerRecord record;
  record.worker_id = worker_id;
  record.host = it->second.hello.host();
  (void)google::protobuf::util::MessageToJsonString(it->second.hello, &record.hello_json);
  record.last_seen_ms = NowMs();
  record.connected = false;
  batch.workers.push_back(record);
  (void)CommitAndSend(lock, std::move(batch), Outbox{});
}

absl::Status Engine::OnWorkerMessage(const std::string& worker_id,
                                     const v1::WorkerMessage& message) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto worker_it = workers_.find(worker_id);
  if (worker_it == workers_.end()) {
    return absl::FailedPreconditionError("a worker must say hello first");
  }
  // Checked before any is handled, so that a refused message changes nothing.
  for (const v1::WorkerMessage& report : message.reports().messages()) {
    if (report.has_reports() || report.has_hello()) {
      return absl::InvalidArgumentError("reports: hello and nested reports are not allowed");
    }
  }
  store::WriteBatch batch;
  Outbox outbox;
  if (message.has_reports()) {
    for (const v1::WorkerMessage& report : message.reports().messages()) {
      HandleReport(worker_it->second, report, batch, outbox);
    }
  } else {
    HandleReport(worker_it->second, message, batch, outbox);
  }
  CancelUnneeded(batch, outbox);
  Dispatch(batch, outbox);
  return CommitAndSend(lock, std::move(batch), std::move(outbox), /*wait_for_commit=*/false);
}

void Engine::HandleReport(Worker& worker, const v1::WorkerMessage& message,
                          store::WriteBatch& batch, Outbox& outbox) {
  const std::string& worker_id = worker.hello.worker_id();
  const auto lease = std::chrono::milliseconds(static_cast<int64_t>(options_.lease_seconds * 1000));

  // Reports of an attempt that is not (or no longer) this worker's are ignored.
  auto current = [&](int64_t attempt_id) -> Attempt* {
    auto it = attempts_.find(attempt_id);
    if (it == attempts_.end() || it->second.worker_id != worker_id) {
      ++stats_.stale_reports_ignored;
      return nullptr;
    }
    it->second.lease_expires = Clock::now() + lease;
    return &it->second;
  };

  switch (message.message_case()) {
    case v1::WorkerMessage::kHeartbeat:
      for (int64_t attempt_id : message.heartbeat().attempt_ids()) {
        if (auto it = attempts_.find(attempt_id);
            it != attempts_.end() && it->second.worker_id == worker_id) {
          it->second.lease_expires = Clock::now() + lease;
        }
      }
      break;
    case v1::WorkerMessage::kProgress: {
      Attempt* attempt = current(message.progress().attempt_id());
      if (attempt == nullptr) break;
      Family& family = FamilyById(attempt->family_id);
      const Step step = message.progress().step();
      for (NodeId node : attempt->chain) {
        const stage_tree::NodeView view = family.tree->node(node);
        if (step < view.start || step >= view.end) continue;
        // A stage may come to end after this step later, by a split: where the state after it
        // is kept (a breakpoint), or where a split right after this report asks for it.
        const bool may_end_here = step == view.end - 1 || family.breakpoints.contains(step + 1);
        for (const auto& [name, value] : message.progress().metrics()) {
          store::MetricRecord metric;
          metric.family_id = family.id;
          metric.lineage = family.lineage[node];
          metric.step = step;
          metric.name = name;
          metric.value = value;
          batch.metrics.push_back(std::move(metric));
          if (may_end_here) KeepMetric(family, name, family.lineage[node], step, value);
        }
      }
      attempt->last_reported_step = step;
      attempt->last_reported_metrics.clear();
      for (const auto& [name, value] : message.progress().metrics()) {
        attempt->last_reported_metrics[name] = value;
      }
      break;
    }
    case v1::WorkerMessage::kCheckpoint: {
      const v1::CheckpointWritten& checkpoint = message.checkpoint();
      Attempt* attempt = current(checkpoint.attempt_id());
      if (attempt == nullptr) break;
      Family& family = FamilyById(attempt->family_id);
      std::set<size_t> touched;
      std::vector<NodeId> done;
      for (NodeId node : attempt->chain) {
        const stage_tree::NodeView view = family.tree->node(node);
        store::CheckpointRecord record;
        record.family_id = family.id;
        record.node_id = node;
        record.step = checkpoint.step();
        record.uri = checkpoint.uri();
        record.size_bytes = checkpoint.size_bytes();
        record.checksum = checkpoint.checksum();
        if (checkpoint.step() == view.end && view.state == StageState::kRunning) {
          family.state_uri[{family.lineage[node], checkpoint.step()}] = checkpoint.uri();
          worker.cached_states.insert({WorkerStageId(family, node), checkpoint.step()});
          batch.checkpoints.push_back(record);
          (void)family.tree->MarkDone(node);
          AppendOp(family, store::TreeOpKind::kDone, node, 0, "", batch);
          batch.stages.push_back(StageRecordOf(family, node));
          StageDone(family, node, batch, touched);
          done.push_back(node);
        } else if (checkpoint.step() > view.start && checkpoint.step() < view.end) {
          (void)family.tree->AddCheckpoint(node, checkpoint.step());
          family.state_uri[{family.lineage[node], checkpoint.step()}] = checkpoint.uri();
          // A split at this step makes the step before it a stage's last (see kUpperDone).
          if (attempt->last_reported_step == checkpoint.step() - 1) {
            for (const auto& [name, value] : attempt->last_reported_metrics) {
              KeepMetric(family, name, family.lineage[node], checkpoint.step() - 1, value);
            }
          }
          worker.cached_states.insert({WorkerStageId(family, node), checkpoint.step()});
          AppendOp(family, store::TreeOpKind::kCheckpoint, node, checkpoint.step(), "", batch);
          batch.checkpoints.push_back(record);
        }
      }
      std::erase_if(attempt->chain, [&done](NodeId node) {
        return std::find(done.begin(), done.end(), node) != done.end();
      });
      for (size_t study_index : touched) {
        if (absl::Status status = RunPlan(study_index, batch, outbox); !status.ok()) {
          std::fprintf(stderr, "hippo: study %s: %s\n", studies_[study_index]->record.id.c_str(),
                       std::string(status.message()).c_str());
        }
      }
      break;
    }
    case v1::WorkerMessage::kFinished: {
      const v1::StageFinished& finished = message.finished();
      Attempt* attempt = current(finished.attempt_id());
      if (attempt == nullptr) break;
      Family& family = FamilyById(attempt->family_id);
      if (finished.ok() && finished.seconds() > 0) {
        if (attempt->steps > 0) {
          const double measured = finished.seconds() / static_cast<double>(attempt->steps);
          family.seconds_per_step = 0.8 * family.seconds_per_step + 0.2 * measured;
        }
      }
      EndAttempt(finished.attempt_id(), !finished.ok(), finished.error(), batch);
      worker.attempt.reset();
      break;
    }
    case v1::WorkerMessage::kEvicted:
      for (const v1::CachedState& state : message.evicted().states()) {
        worker.cached_states.erase({state.stage_id(), state.step()});
      }
      break;
    case v1::WorkerMessage::kHello:
    case v1::WorkerMessage::kReports:  // OnWorkerMessage unpacks them
    case v1::WorkerMessage::MESSAGE_NOT_SET:
      break;
  }
}

void Engine::StageDone(Family& family, NodeId node, store::WriteBatch& batch,
                       std::set<size_t>& touched_studies) {
  // Trials that end at this node reached their target.
  for (stage_tree::TrialId trial : family.tree->TrialsThrough(node)) {
    if (family.tree->Leaf(trial) != node) continue;
    const auto& [study_index, number] = family.owners[trial];
    StudyState& study = *studies_[study_index];
    if (study.trials[number].state != v1::TRIAL_RUNNING) continue;
    TrialReachedTarget(study_index, number, batch);
    touched_studies.insert(study_index);
  }
}

void Engine::EndAttempt(int64_t attempt_id, bool failed, const std::string& error,
                        store::WriteBatch& batch) {
  auto it = attempts_.find(attempt_id);
  if (it == attempts_.end()) return;
  Attempt attempt = std::move(it->second);
  attempts_.erase(it);
  Family& family = FamilyById(attempt.family_id);
  std::set<size_t> touched;
  for (NodeId node : attempt.chain) {
    if (family.tree->node(node).state != StageState::kRunning) continue;
    if (failed) {
      (void)family.tree->MarkFailed(node);
      AppendOp(family, store::TreeOpKind::kFailed, node, 0, "", batch);
      if (family.attempts_of_node[node] < options_.max_attempts) {
        (void)family.tree->Requeue(node);
        AppendOp(family, store::TreeOpKind::kRequeue, node, 0, "", batch);
      } else {
        family.failed_for_good.insert(node);
        for (stage_tree::TrialId trial : family.tree->TrialsThrough(node)) {
          const auto& [study_index, number] = family.owners[trial];
          StudyState& study = *studies_[study_index];
          if (study.trials[number].state != v1::TRIAL_RUNNING) continue;
          SetTrialState(study, number, v1::TRIAL_FAILED);
          study.algorithm->OnTrialEnded(number, search_algos::TrialOutcome::kFailed);
          batch.trials.push_back(TrialRecordOf(study_index, number));
          touched.insert(study_index);
          // The first failure is what a user needs to see (the summary, `hippo study`).
          if (study.record.message.empty()) {
            study.record.message =
                absl::StrCat("trial ", number, " failed after ", options_.max_attempts,
                             " attempts: ", error.empty() ? "no reason given" : error);
            batch.studies.push_back(study.record);
          }
        }
      }
    } else {
      // It finished without the state at this part's end (the checkpoint request came too
      // late): the steps were trained, the state must be recomputed.
      (void)family.tree->MarkDoneWithoutState(node);
      AppendOp(family, store::TreeOpKind::kDone, node, 1, "", batch);
    }
    batch.stages.push_back(StageRecordOf(family, node));
  }
  store::AttemptRecord record;
  record.attempt_id = attempt.id;
  record.family_id = attempt.family_id;
  record.node_id = attempt.assigned;
  record.worker_id = attempt.worker_id;
  record.state = failed ? store::kAttemptFailed : store::kAttemptDone;
  batch.attempts.push_back(record);
  for (size_t study_index : touched) {
    Outbox unused;
    (void)RunPlan(study_index, batch, unused);
  }
}

void Engine::ExpireLeases(Clock::time_point now) {
  std::unique_lock<std::mutex> lock(mutex_);
  store::WriteBatch batch;
  Outbox outbox;
  std::vector<int64_t> expired;
  for (const auto& [id, attempt] : attempts_) {
    if (attempt.lease_expires < now) expired.push_back(id);
  }
  for (int64_t id : expired) {
    Abandon(id, store::kAttemptExpired, batch, outbox);
    batch.events.push_back(Event("", "lease_expired", absl::StrCat("{\"attempt\": ", id, "}")));
    ++stats_.leases_expired;
  }
  if (!expired.empty()) Dispatch(batch, outbox);
  (void)CommitAndSend(lock, std::move(batch), std::move(outbox));
}

Engine::Stats Engine::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

// ----------------------------------------------------------------------------------------------
// Views

store::TrialRecord Engine::TrialRecordOf(size_t study_index, int64_t number) const {
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

store::StageRecord Engine::StageRecordOf(const Family& family, NodeId node) const {
  const stage_tree::NodeView view = family.tree->node(node);
  store::StageRecord record;
  record.family_id = family.id;
  record.node_id = node;
  record.parent_id = view.parent;
  record.lineage = family.lineage[node];
  record.start_step = view.start;
  record.end_step = view.end;
  record.state = StageStateOf(view.state);
  if (auto it = family.attempts_of_node.find(node); it != family.attempts_of_node.end()) {
    record.attempts = it->second;
  }
  if (view.state == StageState::kDone) {
    if (const std::string* uri = StateUri(family, node, view.end)) record.checkpoint_uri = *uri;
  }
  return record;
}

v1::Trial Engine::TrialView(const StudyState& study, int64_t number) const {
  const TrialState& trial = study.trials[number];
  const Family& family = *families_[trial.family_id - 1];
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
  for (NodeId node : family.tree->Path(trial.tree_trial)) {
    view.add_path(GlobalStageId(family.id, node));
    const stage_tree::NodeView stage = family.tree->node(node);
    if (stage.state == StageState::kDone && reached == stage.start) reached = stage.end;
  }
  if (family.client_trained) reached = std::max(reached, trial.told_step + 1);
  view.set_reached_step(reached);
  // Parameters: structural values as scalars, sequences as segments (and as a scalar when
  // they are one constant).
  for (const auto& [name, value] : trial.structural) {
    *(*view.mutable_parameters())[name].mutable_scalar() = ToProtoValue(value);
  }
  const std::vector<std::string>& names = family.tree->parameter_names();
  const std::vector<NodeId> path = family.tree->Path(trial.tree_trial);
  for (size_t i = 0; i < names.size(); ++i) {
    v1::ParameterValue& value = (*view.mutable_parameters())[names[i]];
    for (NodeId node : path) {
      const std::vector<std::vector<stage_tree::Segment>> segments = family.tree->SegmentsOf(node);
      for (const stage_tree::Segment& segment : segments[i]) {
        if (value.segments_size() > 0) {
          v1::Segment probe;
          ToProto(segment, &probe);
          v1::Segment& last = *value.mutable_segments(value.segments_size() - 1);
          probe.set_start(last.start());
          probe.set_end(last.end());
          if (probe.SerializeAsString() == last.SerializeAsString()) {
            last.set_end(segment.end);
            continue;
          }
        }
        ToProto(segment, value.add_segments());
      }
    }
    if (value.segments_size() == 1 && value.segments(0).has_constant()) {
      value.mutable_scalar()->set_number_value(value.segments(0).constant());
    }
  }
  return view;
}

v1::Study Engine::StudyView(const StudyState& study) const {
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
    const stage_tree::StepCounts& counts = families_[family_id - 1]->tree->counts();
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

absl::StatusOr<v1::Study> Engine::GetStudy(const std::string& study_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  return StudyView(*studies_[*index]);
}

std::vector<v1::Study> Engine::ListStudies() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<v1::Study> views;
  for (const auto& study : studies_) views.push_back(StudyView(*study));
  return views;
}

absl::StatusOr<v1::ListTrialsResponse> Engine::ListTrials(const std::string& study_id,
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
      const Family& family = *families_[trial.family_id - 1];
      MetricQuery query{number, family.id, {}, trial.target};
      for (NodeId node : family.tree->Path(trial.tree_trial)) {
        query.lineages.emplace_back(family.lineage[node], node);
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
      const Family& family = *families_[query.family_id - 1];
      for (const auto& [lineage, node] : query.lineages) {
        const stage_tree::NodeView view = family.tree->node(node);
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

absl::StatusOr<v1::Trial> Engine::GetBestTrial(const std::string& study_id) {
  absl::StatusOr<v1::Study> study = GetStudy(study_id);
  if (!study.ok()) return study.status();
  if (!study->has_best_trial()) {
    return absl::NotFoundError(
        absl::StrCat("study '", study_id, "' has no completed trial with an objective yet"));
  }
  return study->best_trial();
}

absl::StatusOr<v1::StageTree> Engine::GetStageTree(const std::string& study_id, bool dot) {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  const StudyState& study = *studies_[*index];
  std::set<int64_t> family_ids;
  for (const TrialState& trial : study.trials) family_ids.insert(trial.family_id);
  v1::StageTree tree;
  for (int64_t family_id : family_ids) {
    const Family& family = *families_[family_id - 1];
    const std::vector<double> remaining =
        stage_tree::RemainingCriticalPath(*family.tree, family.seconds_per_step);
    for (NodeId node = 1; node < family.tree->node_count(); ++node) {
      const stage_tree::NodeView view = family.tree->node(node);
      v1::Stage* stage = tree.add_stages();
      stage->set_id(GlobalStageId(family.id, node));
      stage->set_parent_id(
          view.parent == stage_tree::kRootNode ? 0 : GlobalStageId(family.id, view.parent));
      stage->set_family(family.tree->family_key());
      stage->set_start_step(view.start);
      stage->set_end_step(view.end);
      stage->set_state(StageStateOf(view.state));
      if (auto it = family.attempts_of_node.find(node); it != family.attempts_of_node.end()) {
        stage->set_attempts(it->second);
      }
      if (view.state == StageState::kDone) {
        if (const std::string* uri = StateUri(family, node, view.end)) {
          stage->set_checkpoint_uri(*uri);
        }
      }
      stage->set_critical_path_seconds(remaining[node]);
      for (stage_tree::TrialId trial : family.tree->TrialsThrough(node)) {
        const auto& [owner, number] = family.owners[trial];
        if (owner == *index) stage->add_trial_ids(number);
      }
    }
    const stage_tree::StepCounts& counts = family.tree->counts();
    tree.mutable_steps()->set_trial_steps(tree.steps().trial_steps() + counts.trial_steps);
    tree.mutable_steps()->set_unique_steps(tree.steps().unique_steps() + counts.unique_steps);
    tree.mutable_steps()->set_executed_steps(tree.steps().executed_steps() + counts.executed_steps);
    tree.mutable_steps()->set_recomputed_steps(tree.steps().recomputed_steps() +
                                               counts.recomputed_steps);
    if (dot) tree.set_dot(tree.dot() + stage_tree::ToDot(*family.tree));
  }
  return tree;
}

std::vector<v1::WorkerInfo> Engine::ListWorkers() {
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

// ----------------------------------------------------------------------------------------------
// Recovery

// ----------------------------------------------------------------------------------------------
// Ask/tell

absl::StatusOr<v1::AskResponse> Engine::Ask(const std::string& study_id, int64_t count) {
  if (count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: ask for at least 1 trial (got ", count, ")"));
  }
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  StudyState& study = *studies_[*index];
  search_algos::ExternalAskTell* ask_tell = AskTellOf(study.algorithm.get());
  if (ask_tell == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "study '", study_id, "' uses algorithm '", study.spec.algorithm().name(),
        "', whose trials Hippo's workers train; ask/tell needs a study with algorithm.name: "
        "external"));
  }
  if (study.record.state != v1::STUDY_RUNNING) {
    const std::string why =
        study.algorithm->Finished()
            ? absl::StrCat(" (all its budget.max_trials = ", study.spec.budget().max_trials(),
                           " trials were asked and ended)")
            : "";
    return absl::FailedPreconditionError(
        absl::StrCat("study '", study_id, "' is ",
                     v1::StudyState_Name(static_cast<v1::StudyState>(study.record.state)), why,
                     ": it takes no more asks"));
  }
  const size_t first = study.trials.size();
  store::WriteBatch batch;
  Outbox outbox;
  ask_tell->Ask(count);
  absl::Status status = RunPlan(*index, batch, outbox);
  ask_tell->ClearAsks();
  if (!status.ok()) return status;
  v1::AskResponse response;
  for (size_t number = first; number < study.trials.size(); ++number) {
    *response.add_trials() = TrialView(study, static_cast<int64_t>(number));
  }
  if (response.trials_size() == 0) {
    return absl::OutOfRangeError(absl::StrCat(
        "study '", study_id, "' has made all its budget.max_trials (",
        study.spec.budget().max_trials(), ") trials, or budget.max_parallel_trials (",
        study.spec.budget().max_parallel_trials(), ") are running: tell results first"));
  }
  if (absl::Status committed = CommitAndSend(lock, std::move(batch), std::move(outbox));
      !committed.ok()) {
    return committed;
  }
  return response;
}

absl::Status Engine::Tell(const v1::TellRequest& request) {
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(request.study_id());
  if (!index.ok()) return index.status();
  StudyState& study = *studies_[*index];
  if (AskTellOf(study.algorithm.get()) == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "study '", request.study_id(), "' uses algorithm '", study.spec.algorithm().name(),
        "': its metrics come from Hippo's workers; tell needs algorithm.name: external"));
  }
  if (request.trial_id() < 0 || request.trial_id() >= static_cast<int64_t>(study.trials.size())) {
    return absl::NotFoundError(absl::StrCat("study '", request.study_id(), "' has no trial ",
                                            request.trial_id(), " (ask for trials first)"));
  }
  const int64_t number = request.trial_id();
  TrialState& trial = study.trials[number];
  if (trial.state != v1::TRIAL_RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrCat("trial ", number, " already ended (", v1::TrialState_Name(trial.state), ")"));
  }
  const v1::TrialState final_state = request.final_state();
  if (final_state != v1::TRIAL_STATE_UNSPECIFIED && final_state != v1::TRIAL_COMPLETED &&
      final_state != v1::TRIAL_STOPPED && final_state != v1::TRIAL_FAILED) {
    return absl::InvalidArgumentError(
        "final_state: end a trial as TRIAL_COMPLETED, TRIAL_STOPPED or TRIAL_FAILED (or leave it "
        "unset to report metrics only)");
  }
  if (request.values().empty() && final_state == v1::TRIAL_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError("values: tell at least one metric, or a final_state");
  }
  if (!request.values().empty()) {
    if (request.step() < 0 || request.step() >= trial.target) {
      return absl::InvalidArgumentError(absl::StrCat("step: ", request.step(), " is outside [0, ",
                                                     trial.target, ") (budget.max_steps)"));
    }
    if (request.step() <= trial.told_step) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: steps of a trial are told in increasing order; trial ", number,
                       " was told step ", trial.told_step, " already"));
    }
    for (const auto& [name, value] : request.values()) {
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("values[\"", name, "\"]: ", value, " is not a finite number"));
      }
    }
  }
  const std::string& objective_name = study.spec.objective().metric();
  Family& family = FamilyById(trial.family_id);
  const NodeId stage = family.tree->Leaf(trial.tree_trial);
  const bool has_objective =
      request.values().contains(objective_name) || trial.objective.has_value();
  if (final_state == v1::TRIAL_COMPLETED && !has_objective) {
    return absl::InvalidArgumentError(absl::StrCat("values: completing trial ", number,
                                                   " needs its objective '", objective_name,
                                                   "' (in this tell or an earlier one)"));
  }

  store::WriteBatch batch;
  Outbox outbox;
  if (!request.values().empty()) {
    trial.told_step = request.step();
    for (const auto& [name, value] : request.values()) {
      store::MetricRecord metric;
      metric.family_id = family.id;
      metric.lineage = family.lineage[stage];
      metric.step = request.step();
      metric.name = name;
      metric.value = value;
      batch.metrics.push_back(std::move(metric));
    }
    if (auto value = request.values().find(objective_name); value != request.values().end()) {
      trial.objective = value->second;
      UpdateBest(study, number);
      study.algorithm->OnMetric(number, request.step(), value->second);
    }
  }
  switch (final_state) {
    case v1::TRIAL_COMPLETED:
      (void)family.tree->MarkDone(stage);
      AppendOp(family, store::TreeOpKind::kDone, stage, 0, "", batch);
      batch.stages.push_back(StageRecordOf(family, stage));
      SetTrialState(study, number, v1::TRIAL_COMPLETED);
      study.algorithm->OnTrialReachedTarget(number, trial.target);
      study.algorithm->OnTrialEnded(number, search_algos::TrialOutcome::kCompleted);
      break;
    case v1::TRIAL_STOPPED:
      SetTrialState(study, number, v1::TRIAL_STOPPED);
      study.algorithm->OnTrialEnded(number, search_algos::TrialOutcome::kStopped);
      break;
    case v1::TRIAL_FAILED:
      SetTrialState(study, number, v1::TRIAL_FAILED);
      study.algorithm->OnTrialEnded(number, search_algos::TrialOutcome::kFailed);
      break;
    default:
      break;
  }
  if (final_state != v1::TRIAL_STATE_UNSPECIFIED) {
    batch.trials.push_back(TrialRecordOf(*index, number));
    batch.events.push_back(Event(study.record.id, "trial_told",
                                 absl::StrFormat("{\"trial\": %d, \"state\": \"%s\"}", number,
                                                 v1::TrialState_Name(final_state))));
  }
  if (absl::Status status = RunPlan(*index, batch, outbox); !status.ok()) return status;
  return CommitAndSend(lock, std::move(batch), std::move(outbox));
}

absl::Status Engine::Recover() {
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
  for (const auto& [study_id, state] : snapshot->algorithm_states) {
    auto it = study_index_.find(study_id);
    if (it == study_index_.end()) continue;
    if (absl::Status status = studies_[it->second]->algorithm->LoadState(state); !status.ok()) {
      return status;
    }
  }
  for (const store::TrialRecord& record : snapshot->trials) {
    auto it = study_index_.find(record.study_id);
    if (it == study_index_.end()) continue;
    StudyState& study = *studies_[it->second];
    if (record.trial_id != static_cast<int64_t>(study.trials.size())) {
      return absl::DataLossError(
          absl::StrCat("study ", record.study_id, ": trial ", record.trial_id, " is out of order"));
    }
    absl::StatusOr<stage_tree::Point> point = PointFromJson(record.point_json);
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
    AppendTrial(study, std::move(trial));
    SetTrialState(study, record.trial_id, static_cast<v1::TrialState>(record.state));
  }

  // Trees: replay each family's log.
  store::WriteBatch unused_batch;
  Outbox unused_outbox;
  for (const store::FamilyRecord& record : snapshot->families) {
    if (record.id != static_cast<int64_t>(families_.size()) + 1) {
      return absl::DataLossError("stored families are not numbered densely from 1");
    }
    absl::StatusOr<Family*> family = FamilyFor(record.key, record.parameter_names, unused_batch);
    if (!family.ok()) return family.status();
  }
  for (const store::TreeOp& op : snapshot->tree_ops) {
    if (op.family_id < 1 || op.family_id > static_cast<int64_t>(families_.size())) {
      return absl::DataLossError(absl::StrCat("tree operation of unknown family ", op.family_id));
    }
    Family& family = FamilyById(op.family_id);
    if (op.sequence != family.next_op) {
      return absl::DataLossError(absl::StrCat("family ", op.family_id, ": operation ", op.sequence,
                                              " found where ", family.next_op, " was expected"));
    }
    ++family.next_op;
    std::vector<stage_tree::SplitResult> splits;
    absl::Status status;
    const auto node = static_cast<NodeId>(op.a);
    switch (op.kind) {
      case store::TreeOpKind::kInsert: {
        absl::StatusOr<stage_tree::TrialSequences> sequences =
            stage_tree::DecodeSequences(op.payload);
        if (!sequences.ok()) return sequences.status();
        absl::StatusOr<stage_tree::TrialId> trial = family.tree->Insert(*sequences, op.b, &splits);
        if (!trial.ok()) return trial.status();
        AddBreakpoints(family, *sequences, op.b);
        if (*trial != op.a) return absl::DataLossError("replayed trial ids diverge");
        break;
      }
      case store::TreeOpKind::kExtend:
        status = family.tree->Extend(static_cast<stage_tree::TrialId>(op.a), op.b, &splits);
        family.breakpoints.insert(op.b);
        break;
      case store::TreeOpKind::kRunning:
        // b: the step the dispatch cut the stage at (0: not cut).
        if (op.b > 0) status = Cut(family, node, op.b);
        if (status.ok()) status = family.tree->MarkRunning(node);
        break;
      case store::TreeOpKind::kDone:
        status = op.b == 1 ? family.tree->MarkDoneWithoutState(node) : family.tree->MarkDone(node);
        break;
      case store::TreeOpKind::kFailed:
        status = family.tree->MarkFailed(node);
        break;
      case store::TreeOpKind::kRequeue:
        status = family.tree->Requeue(node);
        break;
      case store::TreeOpKind::kCheckpoint:
        status = family.tree->AddCheckpoint(node, op.b);
        break;
    }
    if (!status.ok()) {
      return absl::DataLossError(absl::StrCat("replaying operation ", op.sequence, " of family ",
                                              op.family_id, ": ", status.message()));
    }
    TrackSplits(family, splits, unused_outbox, unused_batch);
    if (op.kind == store::TreeOpKind::kRunning) ++family.attempts_of_node[node];
  }
  // Owners of tree trials.
  for (size_t index = 0; index < studies_.size(); ++index) {
    for (int64_t number = 0; number < static_cast<int64_t>(studies_[index]->trials.size());
         ++number) {
      const TrialState& trial = studies_[index]->trials[number];
      Family& family = FamilyById(trial.family_id);
      if (family.owners.size() <= trial.tree_trial) family.owners.resize(trial.tree_trial + 1);
      family.owners[trial.tree_trial] = {index, number};
      family.trial_by_trial = studies_[index]->record.no_merge;
      for (Step step : studies_[index]->algorithm->BranchSteps()) {
        if (step > 0 && step < studies_[index]->spec.budget().max_steps()) {
          family.breakpoints.insert(step);
        }
      }
    }
  }
  // Checkpoints: the end states of done stages.
  for (const store::CheckpointRecord& checkpoint : snapshot->checkpoints) {
    if (checkpoint.family_id < 1 || checkpoint.family_id > static_cast<int64_t>(families_.size())) {
      continue;
    }
    Family& family = FamilyById(checkpoint.family_id);
    const auto node = static_cast<NodeId>(checkpoint.node_id);
    if (node < family.tree->node_count()) {
      family.state_uri[{family.lineage[node], checkpoint.step}] = checkpoint.uri;
    }
  }
  // Objective values at the ends of done stages.
  std::map<int64_t, std::set<std::string>> objectives;  // family -> metric names
  for (const auto& study : studies_) {
    for (const TrialState& trial : study->trials) {
      objectives[trial.family_id].insert(study->spec.objective().metric());
    }
  }
  for (const auto& [family_id, names] : objectives) {
    Family& family = FamilyById(family_id);
    if (family.client_trained) continue;  // below
    std::vector<int64_t> lineages(family.lineage.begin(), family.lineage.end());
    std::sort(lineages.begin(), lineages.end());
    lineages.erase(std::unique(lineages.begin(), lineages.end()), lineages.end());
    absl::StatusOr<std::vector<store::MetricRecord>> rows =
        store_->ListMetrics(family_id, lineages, 0, std::numeric_limits<int64_t>::max());
    if (!rows.ok()) return rows.status();
    // The steps a live engine keeps (see step_metrics): the stages' last steps and the steps
    // before breakpoints.
    absl::flat_hash_set<std::pair<int64_t, Step>> stage_ends;
    for (NodeId node = 1; node < family.tree->node_count(); ++node) {
      stage_ends.insert({family.lineage[node], family.tree->node(node).end - 1});
    }
    for (const store::MetricRecord& row : *rows) {
      if (!names.contains(row.name)) continue;
      if (stage_ends.contains({row.lineage, row.step}) ||
          family.breakpoints.contains(row.step + 1)) {
        KeepMetric(family, row.name, row.lineage, row.step, row.value);
      }
    }
  }
  // Ask/tell trials: what the client told last.
  for (auto& study : studies_) {
    for (TrialState& trial : study->trials) {
      Family& family = FamilyById(trial.family_id);
      if (!family.client_trained) continue;
      const NodeId leaf = family.tree->Leaf(trial.tree_trial);
      absl::StatusOr<std::vector<store::MetricRecord>> rows = store_->ListMetrics(
          family.id, {family.lineage[leaf]}, 0, std::numeric_limits<int64_t>::max());
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
      const Family& family = FamilyById(trial.family_id);
      if (family.client_trained) continue;  // above
      if (const double* value = EndMetric(family, family.tree->Leaf(trial.tree_trial),
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
  for (const store::AttemptRecord& record : snapshot->attempts) {
    next_attempt_ = std::max(next_attempt_, record.attempt_id + 1);
    if (record.family_id < 1 || record.family_id > static_cast<int64_t>(families_.size())) continue;
    Family& family = FamilyById(record.family_id);
    auto node = static_cast<NodeId>(record.node_id);
    if (node >= family.tree->node_count()) continue;
    const StageState assigned_state = family.tree->node(node).state;
    if (assigned_state != StageState::kRunning && assigned_state != StageState::kDone) continue;
    Attempt attempt;
    attempt.id = record.attempt_id;
    attempt.family_id = record.family_id;
    attempt.worker_id = record.worker_id;
    attempt.lease_expires = Clock::now() + lease;
    attempt.recompute = family.tree->node(node).recompute;
    attempt.assigned = node;
    // Parts split off the assigned stage follow it with the same lineage; those done already
    // (their end state came, or was kept before the split) are no longer the attempt's. A running
    // part that another attempt was given, or that is a rerun where the attempt's parts are not
    // (or the reverse), is a later recomputation: that attempt's, and the walk ends there.
    std::vector<NodeId> parts = {node};
    std::optional<bool> rerun;
    for (bool extended = true; extended;) {
      extended = false;
      for (NodeId child : family.tree->Children(parts.back())) {
        const stage_tree::NodeView view = family.tree->node(child);
        if (family.lineage[child] != family.lineage[node]) continue;
        if (view.state == StageState::kRunning) {
          if (assigned_elsewhere.contains({record.family_id, child})) break;
          if (!rerun) {
            // A running assigned stage says; a done one, its first running part.
            const stage_tree::NodeView assigned = family.tree->node(node);
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
      attempt.steps += family.tree->node(part).end - family.tree->node(part).start;
      if (family.tree->node(part).state == StageState::kRunning) attempt.chain.push_back(part);
    }
    if (attempt.chain.empty()) continue;
    if (rerun) attempt.recompute = *rerun;
    attempts_[attempt.id] = std::move(attempt);
  }
  // A recovered attempt's last report (Attempt::last_reported_step) was lost with the restart:
  // a split right after it may still make that step a stage's last, with a worker that honours
  // the request. Which step it was is not known, so every step of its running parts that the
  // store has is kept (the first report, as the store keeps it).
  for (const auto& [id, attempt] : attempts_) {
    auto names = objectives.find(attempt.family_id);
    if (names == objectives.end()) continue;
    Family& family = FamilyById(attempt.family_id);
    Step from = std::numeric_limits<Step>::max();
    Step to = 0;
    for (NodeId part : attempt.chain) {
      from = std::min(from, family.tree->node(part).start);
      to = std::max(to, family.tree->node(part).end);
    }
    const int64_t lineage = family.lineage[attempt.chain.front()];
    absl::StatusOr<std::vector<store::MetricRecord>> rows =
        store_->ListMetrics(family.id, {lineage}, from, to);
    if (!rows.ok()) return rows.status();
    for (const store::MetricRecord& row : *rows) {
      if (names->second.contains(row.name)) {
        KeepMetric(family, row.name, row.lineage, row.step, row.value);
      }
    }
  }
  // Any running stage without an attempt (its attempt row was lost with the crash) runs again.
  store::WriteBatch requeues;
  for (auto& family : families_) {
    family->priorities_dirty = true;
    if (family->client_trained) continue;
    std::set<NodeId> covered;
    for (const auto& [id, attempt] : attempts_) {
      if (attempt.family_id == family->id)
        covered.insert(attempt.chain.begin(), attempt.chain.end());
    }
    for (NodeId node = 1; node < family->tree->node_count(); ++node) {
      if (family->tree->node(node).state == StageState::kRunning && !covered.contains(node)) {
        (void)family->tree->Requeue(node);
        AppendOp(*family, store::TreeOpKind::kRequeue, node, 0, "", requeues);
      }
    }
  }
  RefreshPriorities();
  if (!requeues.empty()) return store_->Commit(std::move(requeues));
  return absl::OkStatus();
}

}  // namespace hippo::coordinator
