#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hippo/engine_impl.h"
#include "hippo/report_bounds.h"
#include "proto/report_checks.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;

namespace {

// The most bytes one Ask's answer may hold: what a client takes by default, and the
// coordinator's own receive limit. A trial's parameters take about what its study's search space
// does (a name and a value each), so a study of many or long parameters is asked for fewer
// trials at a time; checked before any trial is made.
constexpr int64_t kMaxAskAnswerBytes = kMaxReceiveMessageBytes;
// A trial's view besides its parameters: ids, state, steps, path.
constexpr int64_t kTrialViewBytes = 64;

}  // namespace

absl::StatusOr<v1::AskResponse> EngineImpl::Ask(const std::string& study_id, int64_t count) {
  if (count < 1 || count > kMaxAskCount) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: ask for 1 to ", kMaxAskCount, " trials at a time (got ", count, ")"));
  }
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(study_id);
  if (!index.ok()) return index.status();
  StudyState& study = *studies_[*index];
  search_algos::ExternalAskTell* ask_tell = engine_internal::AskTellOf(study.algorithm.get());
  if (ask_tell == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "study '", study_id, "' uses algorithm '", study.spec.algorithm().name(),
        "', whose trials Hippo's workers train; ask/tell needs a study with algorithm.name: "
        "external"));
  }
  const int64_t trial_bytes =
      static_cast<int64_t>(study.spec.search_space().ByteSizeLong() + study_id.size()) +
      kTrialViewBytes;
  if (count * trial_bytes > kMaxAskAnswerBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: ", count, " trials of study '", study_id, "' would answer about ",
                     count * trial_bytes, " bytes (its search space takes ",
                     study.spec.search_space().ByteSizeLong(), " bytes a trial), more than ",
                     kMaxAskAnswerBytes, ": ask for at most ",
                     std::max<int64_t>(1, kMaxAskAnswerBytes / trial_bytes), " trials at a time"));
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
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return response;
}

absl::Status EngineImpl::Tell(const v1::TellRequest& request) {
  // Checked before the lock: what a tell may store, as a worker's Progress (report_checks.h).
  if (proto::Issue issue = proto::CheckMetrics(request.values(), "values")) {
    return absl::InvalidArgumentError(proto::FormatIssue(*issue));
  }
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> index = StudyIndex(request.study_id());
  if (!index.ok()) return index.status();
  StudyState& study = *studies_[*index];
  if (engine_internal::AskTellOf(study.algorithm.get()) == nullptr) {
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
  }
  const std::string& objective_name = study.spec.objective().metric();
  FamilyState& family = FamilyById(trial.family_id);
  const NodeId stage = family.tree().Leaf(trial.tree_trial);
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
      metric.family_id = family.id();
      metric.lineage = family.lineage(stage);
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
      // A running trial's stage runs until it is told (AddTrial), so MarkDone accepts it.
      (void)family.tree().MarkDone(stage);
      family.AppendOp(store::TreeOpKind::kDone, stage, 0, "", batch);
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
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return absl::OkStatus();
}

}  // namespace hippo::coordinator
