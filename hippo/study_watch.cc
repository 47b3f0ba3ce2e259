#include "hippo/study_watch.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;

absl::StatusOr<std::vector<v1::StudyEvent>> StudyWatch::Poll() {
  absl::StatusOr<v1::Study> study = engine_->GetStudy(study_id_);
  if (!study.ok()) return study.status();
  std::vector<v1::StudyEvent> events;
  auto event = [&]() -> v1::StudyEvent& {
    v1::StudyEvent& added = events.emplace_back();
    *added.mutable_study() = *study;
    return added;
  };
  std::string now = study->SerializeAsString();
  if (now != last_study_) {
    event();
    last_study_ = std::move(now);
  }
  // Trials are read after the study: a trial the study view counts is in the list.
  absl::StatusOr<v1::ListTrialsResponse> trials = engine_->ListTrials(study_id_, false);
  if (!trials.ok()) return trials.status();
  std::vector<size_t> advanced;  // trials whose reached step moved: they have new metrics
  for (const v1::Trial& trial : trials->trials()) {
    const size_t id = static_cast<size_t>(trial.id());
    if (id >= last_trial_.size()) {
      last_trial_.resize(id + 1);
      last_metric_step_.resize(id + 1, -1);
    }
    std::string view = trial.SerializeAsString();
    if (view == last_trial_[id]) continue;
    *event().mutable_trial() = trial;
    last_trial_[id] = std::move(view);
    if (trial.reached_step() > last_metric_step_[id] + 1) advanced.push_back(id);
  }
  if (!advanced.empty()) {
    absl::StatusOr<v1::ListTrialsResponse> metrics = engine_->ListTrials(study_id_, true);
    if (!metrics.ok()) return metrics.status();
    for (const v1::TrialMetrics& of_trial : metrics->metrics()) {
      const size_t id = static_cast<size_t>(of_trial.trial_id());
      // Skips a trial added between the two lists: its metrics come with the next poll.
      if (id >= last_metric_step_.size() || id >= static_cast<size_t>(trials->trials_size())) {
        continue;
      }
      for (const v1::Metric& metric : of_trial.metrics()) {
        if (metric.step() <= last_metric_step_[id]) continue;
        v1::StudyEvent& added = event();
        *added.mutable_trial() = trials->trials(static_cast<int>(id));  // listed by id
        *added.mutable_metric() = metric;
        last_metric_step_[id] = metric.step();
      }
    }
  }
  ended_ = study->state() != v1::STUDY_RUNNING && study->state() != v1::STUDY_PENDING;
  return events;
}

}  // namespace hippo::coordinator
