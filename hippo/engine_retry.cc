// Failed stages and unhealthy workers: no fault is permanent.
//
// A failed attempt puts its stage in the failed state for a backoff, then back in the queue,
// where a worker it has not failed on goes first; after EngineOptions::max_attempts the trials
// through it fail. The stage is tried again, with a new budget, when a new attempt can succeed:
// a trial of another study needs it, the coordinator restarts with a live trial needing it, or
// a client retries a trial through it (`hippo retry`). A trial of the study that saw the stage
// use up its attempts fails at once instead, so that a study never waits on a stage nobody will
// run. A worker whose attempts keep failing is drained for a while, then given one stage on
// probation.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"
#include "nlohmann/json.hpp"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using engine_internal::NowMs;
using stage_tree::NodeId;
using stage_tree::StageState;

namespace {

// Worker errors are kept in the operation log and shown to users: bounded.
constexpr size_t kMaxErrorBytes = 2000;

std::string Bounded(const std::string& error) {
  if (error.empty()) return "no reason given";
  // The end, where a program's output names its cause (as report_bounds.h keeps it).
  return error.size() <= kMaxErrorBytes ? error
                                        : "..." + error.substr(error.size() - kMaxErrorBytes);
}

}  // namespace

void EngineImpl::StageFailed(FamilyState& family, NodeId node, const std::string& worker_id,
                             const std::string& error, store::WriteBatch& batch,
                             std::set<size_t>& touched_studies) {
  const std::string reason = Bounded(error);
  (void)family.tree().MarkFailed(node);  // the caller checked it is running
  family.AppendOp(store::TreeOpKind::kFailed, node, 0, reason, batch);
  family.SetFailure(node, reason);
  StageRetry& retry = retries_[GlobalStageId(family.id(), node)];
  retry.failed_on.insert(worker_id);
  const int64_t failures = family.BudgetedAttemptsOf(node);
  if (failures < options_.max_attempts) {
    const double base = options_.retry_backoff_seconds *
                        std::pow(2.0, static_cast<double>(std::max<int64_t>(0, failures - 1)));
    const double seconds = std::min(base, options_.retry_backoff_max_seconds) *
                           std::uniform_real_distribution<double>(0.8, 1.2)(jitter_);
    if (seconds <= 0) {
      RequeueFailed(family, node, /*new_budget=*/false, batch);
    } else {
      retry.due = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(seconds));
    }
    return;
  }
  retry.due.reset();
  const std::string message = absl::StrCat("stage ", GlobalStageId(family.id(), node),
                                           " failed after ", failures, " attempts: ", reason);
  for (stage_tree::TrialId trial : family.tree().TrialsThrough(node)) {
    const auto& [study_index, number] = family.OwnerOf(trial);
    if (study_index == FamilyState::kNoStudy) continue;  // of a deleted study
    if (studies_[study_index]->trials[number].state != v1::TRIAL_RUNNING) continue;
    FailTrial(study_index, number, message, batch);
    touched_studies.insert(study_index);
  }
  FailInheritorsWaitingOn(family, node, message, batch, touched_studies);
}

void EngineImpl::FailTrial(size_t study_index, int64_t number, const std::string& error,
                           store::WriteBatch& batch) {
  StudyState& study = *studies_[study_index];
  SetTrialState(study, number, v1::TRIAL_FAILED);
  study.algorithm->OnTrialEnded(number, search_algos::TrialOutcome::kFailed);
  batch.trials.push_back(TrialRecordOf(study_index, number));
  // The first failure is what a user needs to see (the summary, `hippo study`).
  if (study.record.message.empty()) {
    study.record.message = absl::StrCat("trial ", number, " failed: ", error);
    batch.studies.push_back(study.record);
  }
}

void EngineImpl::RequeueFailed(FamilyState& family, NodeId node, bool new_budget,
                               store::WriteBatch& batch) {
  (void)family.tree().Requeue(node);  // callers pass a failed node, which Requeue accepts
  if (new_budget) family.ResetAttemptBudget(node);
  family.AppendOp(store::TreeOpKind::kRequeue, node, 0, new_budget ? "retry" : "", batch);
  batch.stages.push_back(StageRecordOf(family, node));
  if (auto it = retries_.find(GlobalStageId(family.id(), node)); it != retries_.end()) {
    it->second.due.reset();
  }
}

void EngineImpl::ForgetFailure(FamilyState& family, NodeId node) {
  if (!family.has_failures()) return;
  family.ClearFailure(node);
  retries_.erase(GlobalStageId(family.id(), node));
}

bool EngineImpl::RetryWhatIsDue(Clock::time_point now, store::WriteBatch& batch) {
  bool any = false;
  std::vector<int64_t> due;
  for (const auto& [id, retry] : retries_) {
    if (retry.due && *retry.due <= now) due.push_back(id);
  }
  std::sort(due.begin(), due.end());  // a deterministic order of operations in the log
  for (int64_t id : due) {
    FamilyState& family = FamilyById(id >> 32);
    const auto node = static_cast<NodeId>(id & 0xffffffff);
    if (family.tree().node(node).state == StageState::kFailed) {
      RequeueFailed(family, node, /*new_budget=*/false, batch);
      any = true;
    } else {
      retries_[id].due.reset();
    }
  }
  for (auto& [id, worker] : workers_) {
    if (worker.drained_until && *worker.drained_until <= now) {
      worker.drained_until.reset();  // on probation: its next stage decides
      any = true;
    }
  }
  return any;
}

void EngineImpl::NoteWorkerOutcome(Worker& worker, bool failed, const std::string& error,
                                   store::WriteBatch& batch) {
  if (!failed) {
    const bool changed =
        worker.consecutive_failures != 0 || worker.drains != 0 || worker.drained_until;
    worker.consecutive_failures = 0;
    worker.drains = 0;
    worker.drained_until.reset();
    if (changed) batch.worker_health.push_back(HealthRecord(worker));
    return;
  }
  ++worker.consecutive_failures;
  worker.last_error = Bounded(error);
  const int threshold = options_.unhealthy_after_failures;
  if (threshold <= 0 || worker.consecutive_failures < threshold) {
    batch.worker_health.push_back(HealthRecord(worker));
    return;
  }
  const double seconds =
      options_.drain_seconds * static_cast<double>(1 << std::min(worker.drains, 4));
  ++worker.drains;
  worker.drained_until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(seconds));
  ++stats_.workers_drained;
  batch.worker_health.push_back(HealthRecord(worker));
  const nlohmann::json payload = {{"worker", worker.hello.worker_id()},
                                  {"failures", worker.consecutive_failures},
                                  {"seconds", seconds},
                                  {"error", worker.last_error}};
  batch.events.push_back(
      Event("", "worker_drained",
            payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

store::WorkerHealthRecord EngineImpl::HealthRecord(const Worker& worker) {
  store::WorkerHealthRecord record;
  record.worker_id = worker.hello.worker_id();
  record.consecutive_failures = worker.consecutive_failures;
  record.drains = worker.drains;
  if (worker.drained_until) {
    // Stored in wall-clock time: the steady clock starts again with the process.
    record.drained_until_ms =
        NowMs() +
        std::chrono::ceil<std::chrono::milliseconds>(*worker.drained_until - Clock::now()).count();
  }
  record.last_error = worker.last_error;
  return record;
}

void EngineImpl::RecoverWorkerHealth(const std::vector<store::WorkerHealthRecord>& records) {
  const int64_t now_ms = NowMs();
  for (const store::WorkerHealthRecord& record : records) {
    if (record.consecutive_failures == 0 && record.drains == 0) continue;  // healthy
    // Listed (disconnected) until it says hello again, which keeps what is set here.
    Worker& worker = workers_[record.worker_id];
    worker.hello.set_worker_id(record.worker_id);
    worker.consecutive_failures = record.consecutive_failures;
    worker.drains = static_cast<int>(record.drains);
    worker.last_error = record.last_error;
    if (record.drained_until_ms > now_ms) {
      worker.drained_until =
          Clock::now() + std::chrono::milliseconds(record.drained_until_ms - now_ms);
    }  // else its drain ended while the coordinator was down: on probation
  }
}

bool EngineImpl::Drained(const Worker& worker, Clock::time_point now) const {
  return worker.drained_until.has_value() && now < *worker.drained_until;
}

bool EngineImpl::LeaveToAnother(const Worker& worker, const QueuedStage& stage) const {
  auto retry = retries_.find(GlobalStageId(stage.family_id, stage.node));
  if (retry == retries_.end() || !retry->second.failed_on.contains(worker.hello.worker_id())) {
    return false;
  }
  const Clock::time_point now = Clock::now();
  for (const auto& [id, other] : workers_) {
    if (other.connected && &other != &worker && !Drained(other, now) &&
        !retry->second.failed_on.contains(id)) {
      return true;
    }
  }
  return false;
}

bool EngineImpl::ReviveFailedPath(size_t study_index, int64_t number, bool by_client,
                                  store::WriteBatch& batch) {
  const StudyState& study = *studies_[study_index];
  const TrialState& trial = study.trials[number];
  FamilyState& family = FamilyById(trial.family_id);
  if (!family.has_failures() || family.client_trained()) return false;
  for (NodeId node : family.tree().Path(trial.tree_trial)) {
    if (family.tree().node(node).state != StageState::kFailed) continue;
    auto retry = retries_.find(GlobalStageId(family.id(), node));
    if (retry != retries_.end() && retry->second.due) continue;  // it will be retried anyway
    if (!by_client) {
      // The study already saw this stage use up its attempts: the same work fails the same way.
      for (stage_tree::TrialId other : family.tree().TrialsThrough(node)) {
        const auto& [index, other_number] = family.OwnerOf(other);
        if (index != study_index || other_number == number ||
            study.trials[other_number].state != v1::TRIAL_FAILED) {
          continue;
        }
        const std::string* error = family.FailureOf(node);
        FailTrial(study_index, number,
                  absl::StrCat("stage ", GlobalStageId(family.id(), node),
                               " failed for an earlier trial of this study: ",
                               error != nullptr ? *error : "no reason given"),
                  batch);
        ++failed_at_once_;
        return true;
      }
    }
    RequeueFailed(family, node, /*new_budget=*/true, batch);
  }
  return false;
}

void EngineImpl::RecoverFailedStages(store::WriteBatch& batch) {
  for (auto& family : families_) {
    if (!family->has_failures() || family->client_trained()) continue;
    for (NodeId node = 1; node < family->tree().node_count(); ++node) {
      if (family->tree().node(node).state != StageState::kFailed || !Needed(*family, node)) {
        continue;
      }
      RequeueFailed(*family, node, family->BudgetedAttemptsOf(node) >= options_.max_attempts,
                    batch);
    }
  }
  Outbox unused;  // no worker is connected yet: what is ready goes out when they say hello
  for (size_t index = 0; index < studies_.size(); ++index) {
    const StudyState& study = *studies_[index];
    if (study.record.state == v1::STUDY_RUNNING && study.running_trials == 0 &&
        engine_internal::AskTellOf(study.algorithm.get()) == nullptr) {
      RunPlanAfterReport(index, batch, unused);
    }
  }
}

std::string EngineImpl::TrialFailure(const StudyState& study, int64_t number) const {
  const TrialState& trial = study.trials[number];
  if (trial.state != v1::TRIAL_FAILED) return "";
  const FamilyState& family = FamilyById(trial.family_id);
  if (!family.has_failures()) return "";
  for (NodeId node : family.tree().Path(trial.tree_trial)) {
    if (const std::string* error = family.FailureOf(node)) {
      return absl::StrCat("stage ", GlobalStageId(family.id(), node), " failed after ",
                          family.BudgetedAttemptsOf(node), " attempts: ", *error);
    }
  }
  return "";
}

void EngineImpl::EndStalledStudy(size_t study_index, const std::string& why,
                                 store::WriteBatch& batch) {
  StudyState& study = *studies_[study_index];
  for (int64_t number = 0; number < static_cast<int64_t>(study.trials.size()); ++number) {
    if (study.trials[number].state == v1::TRIAL_PAUSED) {
      SetTrialState(study, number, v1::TRIAL_STOPPED);
      batch.trials.push_back(TrialRecordOf(study_index, number));
    }
  }
  const bool failed = study.completed_trials == 0;
  study.record.state = failed ? v1::STUDY_FAILED : v1::STUDY_COMPLETED;
  study.record.finished_ms = NowMs();
  study.record.message =
      study.record.message.empty() ? why : absl::StrCat(why, "; ", study.record.message);
  batch.studies.push_back(study.record);
  batch.events.push_back(Event(study.record.id, failed ? "study_failed" : "study_completed", why));
}

absl::StatusOr<v1::RetryTrialsResponse> EngineImpl::RetryTrials(
    const v1::RetryTrialsRequest& request) {
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(request.study_id());
  if (!index.ok()) return index.status();
  StudyState& study = *studies_[*index];
  if (engine_internal::AskTellOf(study.algorithm.get()) != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("study_id: ", study.record.id,
                     " is an ask/tell study: its client trains its trials and retries them"));
  }
  if (study.record.state == v1::STUDY_STOPPED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "study_id: ", study.record.id, " was stopped (", study.record.message,
        "); only the failed trials of a running, completed or failed study can be retried"));
  }
  std::vector<int64_t> numbers;
  const auto count = static_cast<int64_t>(study.trials.size());
  for (int i = 0; i < request.trial_ids_size(); ++i) {
    const int64_t number = request.trial_ids(i);
    if (number < 0 || number >= count) {
      return absl::NotFoundError(absl::StrCat("trial_ids[", i, "]: study ", study.record.id,
                                              " has no trial ", number, " (it has ", count, ")"));
    }
    if (study.trials[number].state != v1::TRIAL_FAILED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "trial_ids[", i, "]: trial ", number, " is ",
          v1::TrialState_Name(study.trials[number].state), "; only failed trials can be retried"));
    }
    if (std::find(numbers.begin(), numbers.end(), number) == numbers.end()) {
      numbers.push_back(number);
    }
  }
  if (request.trial_ids().empty()) {
    for (int64_t number = 0; number < count; ++number) {
      if (study.trials[number].state == v1::TRIAL_FAILED) numbers.push_back(number);
    }
    if (numbers.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("study_id: ", study.record.id, " has no failed trial to retry"));
    }
  }
  store::WriteBatch batch;
  Outbox outbox;
  if (study.record.state != v1::STUDY_RUNNING) {
    study.record.state = v1::STUDY_RUNNING;
    study.record.finished_ms = 0;
  }
  study.record.message.clear();
  batch.studies.push_back(study.record);
  batch.events.push_back(
      Event(study.record.id, "trials_retried", absl::StrCat("{\"trials\": ", numbers.size(), "}")));
  v1::RetryTrialsResponse response;
  for (int64_t number : numbers) {
    TrialState& trial = study.trials[number];
    SetTrialState(study, number, v1::TRIAL_RUNNING);
    FamilyById(trial.family_id).InvalidatePriorities();
    batch.trials.push_back(TrialRecordOf(*index, number));
    (void)ReviveFailedPath(*index, number, /*by_client=*/true, batch);  // never fails it
    const FamilyState& family = FamilyById(trial.family_id);
    if (family.tree().node(family.tree().Leaf(trial.tree_trial)).state == StageState::kDone) {
      TrialReachedTarget(*index, number, batch);  // another study trained it meanwhile
    }
    response.add_retried_trial_ids(number);
  }
  RunPlanAfterReport(*index, batch, outbox);
  Dispatch(batch, outbox);
  *response.mutable_study() = StudyView(study);
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return response;
}

}  // namespace hippo::coordinator
