#include "workers/trainer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/command_trainer.h"
#include "workers/sim_trainer.h"

namespace hippo::workers {

std::optional<double> StageTask::ValueAt(std::string_view name, Step step) const {
  if (auto it = parameters.find(std::string(name)); it != parameters.end()) {
    const std::vector<stage_tree::Segment>& segments = it->second;
    // Segments are sorted and contiguous: the first one ending after `step` holds it.
    auto segment = std::upper_bound(
        segments.begin(), segments.end(), step,
        [](Step s, const stage_tree::Segment& candidate) { return s < candidate.end; });
    if (segment == segments.end() || segment->start > step) return std::nullopt;
    return segment->function.Evaluate(step);
  }
  if (auto it = static_parameters.find(std::string(name)); it != static_parameters.end()) {
    if (const double* number = std::get_if<double>(&it->second)) return *number;
    if (const bool* flag = std::get_if<bool>(&it->second)) return *flag ? 1.0 : 0.0;
  }
  return std::nullopt;
}

absl::Status ValidateStageTask(const StageTask& task) {
  if (task.start_step < 0 || task.start_step >= task.end_step) {
    return absl::InvalidArgumentError(absl::StrCat("stage ", task.stage_id, ": steps [",
                                                   task.start_step, ", ", task.end_step,
                                                   ") are empty or negative"));
  }
  for (const auto& [name, segments] : task.parameters) {
    if (segments.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stage ", task.stage_id, ": parameter '", name, "' has no segments"));
    }
    for (size_t i = 0; i < segments.size(); ++i) {
      const stage_tree::Segment& segment = segments[i];
      if (segment.start >= segment.end) {
        return absl::InvalidArgumentError(absl::StrCat("stage ", task.stage_id, ": parameter '",
                                                       name, "' segment ", i, " [", segment.start,
                                                       ", ", segment.end, ") is empty"));
      }
      if (i > 0 && segments[i - 1].end != segment.start) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stage ", task.stage_id, ": parameter '", name, "' segments ", i - 1, " and ", i,
            " are not contiguous (", segments[i - 1].end, " vs ", segment.start, ")"));
      }
      const stage_tree::SegmentFunction& function = segment.function;
      if ((function.kind == stage_tree::FunctionKind::kLinear ||
           function.kind == stage_tree::FunctionKind::kCosine) &&
          function.span == 0) {
        return absl::InvalidArgumentError(absl::StrCat("stage ", task.stage_id, ": parameter '",
                                                       name, "' segment ", i,
                                                       " has a zero span or period"));
      }
    }
    if (segments.front().start > task.start_step || segments.back().end < task.end_step) {
      return absl::InvalidArgumentError(
          absl::StrCat("stage ", task.stage_id, ": parameter '", name, "' covers [",
                       segments.front().start, ", ", segments.back().end,
                       "), not the stage's steps [", task.start_step, ", ", task.end_step, ")"));
    }
  }
  for (Step step : task.checkpoint_steps) {
    if (step <= task.start_step || step > task.end_step) {
      return absl::InvalidArgumentError(absl::StrCat("stage ", task.stage_id, ": checkpoint step ",
                                                     step, " is outside (", task.start_step, ", ",
                                                     task.end_step, "]"));
    }
  }
  if (!(task.timeout_seconds >= 0) || std::isinf(task.timeout_seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage ", task.stage_id, ": timeout_seconds must be finite and >= 0, got ",
                     task.timeout_seconds));
  }
  return absl::OkStatus();
}

void StageControl::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

bool StageControl::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void StageControl::SetDeadline(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  deadline_ = deadline;
}

bool StageControl::timed_out() const {
  absl::MutexLock lock(&mu_);
  return deadline_.has_value() && absl::Now() >= *deadline_;
}

bool StageControl::ShouldStop() const { return cancelled() || timed_out(); }

absl::Status StageControl::StopStatus() const {
  if (cancelled()) return absl::CancelledError("the stage was cancelled");
  if (timed_out()) return absl::DeadlineExceededError("the stage ran past its timeout");
  return absl::OkStatus();
}

void StageControl::SetAssignedCheckpoints(const std::vector<Step>& steps) {
  absl::MutexLock lock(&mu_);
  assigned_.insert(steps.begin(), steps.end());
}

bool StageControl::RequestCheckpoint(Step step) {
  absl::MutexLock lock(&mu_);
  if (reached_.has_value() && step <= *reached_) return false;
  mid_stage_.insert(step);
  return true;
}

bool StageControl::ReachedStep(Step step) {
  absl::MutexLock lock(&mu_);
  reached_ = step;
  return assigned_.contains(step) || mid_stage_.contains(step);
}

bool StageControl::RequestedMidStage(Step step) const {
  absl::MutexLock lock(&mu_);
  return mid_stage_.contains(step);
}

bool StageControl::SleepUnlessStopped(absl::Duration duration) const {
  absl::MutexLock lock(&mu_);
  absl::Time until = absl::Now() + duration;
  if (deadline_.has_value()) until = std::min(until, *deadline_);
  mu_.AwaitWithDeadline(absl::Condition(&cancelled_), until);
  return cancelled_ || (deadline_.has_value() && absl::Now() >= *deadline_);
}

absl::StatusOr<std::unique_ptr<TrainingState>> Trainer::Morph(const StageTask& parent,
                                                              const StageTask& task,
                                                              const TrainingState& state) {
  (void)parent;
  (void)state;
  return absl::UnimplementedError(absl::StrCat(
      "the ", std::string(kind()), " trainer cannot start stage ", task.stage_id,
      " from another family's state (no morphism); use the torch trainer or a study without "
      "inherited states"));
}

absl::Status CheckStageStart(std::string_view kind, const StageTask& task, Step state_step) {
  if (absl::Status valid = ValidateStageTask(task); !valid.ok()) return valid;
  if (state_step != task.start_step) {
    return absl::FailedPreconditionError(
        absl::StrCat(std::string(kind), " trainer: stage ", task.stage_id, " starts at step ",
                     task.start_step, " but its parent state is at step ", state_step));
  }
  return absl::OkStatus();
}

namespace {

struct TrainerKinds {
  absl::Mutex mu;
  std::map<std::string, TrainerFactory> factories ABSL_GUARDED_BY(mu);
};

TrainerKinds& Kinds() {
  static TrainerKinds* kinds = [] {
    auto* created = new TrainerKinds;
    absl::MutexLock lock(&created->mu);
    created->factories[std::string(SimTrainer::kKind)] =
        [](const std::string&) -> absl::StatusOr<std::unique_ptr<Trainer>> {
      return std::make_unique<SimTrainer>();
    };
    created->factories[std::string(CommandTrainer::kKind)] =
        [](const std::string&) -> absl::StatusOr<std::unique_ptr<Trainer>> {
      return std::make_unique<CommandTrainer>();
    };
    return created;
  }();
  return *kinds;
}

}  // namespace

void RegisterTrainerKind(const std::string& kind, TrainerFactory factory) {
  TrainerKinds& kinds = Kinds();
  absl::MutexLock lock(&kinds.mu);
  kinds.factories[kind] = std::move(factory);
}

std::vector<std::string> BuiltinTrainerKinds() {
  TrainerKinds& kinds = Kinds();
  absl::MutexLock lock(&kinds.mu);
  std::vector<std::string> names;
  for (const auto& [kind, factory] : kinds.factories) names.push_back(kind);
  return names;
}

absl::StatusOr<std::unique_ptr<Trainer>> MakeBuiltinTrainer(std::string_view kind,
                                                            const std::string& device) {
  TrainerFactory factory;
  {
    TrainerKinds& kinds = Kinds();
    absl::MutexLock lock(&kinds.mu);
    if (auto it = kinds.factories.find(std::string(kind)); it != kinds.factories.end()) {
      factory = it->second;
    }
  }
  if (!factory) {
    return absl::NotFoundError(
        absl::StrCat("no trainer of kind '", std::string(kind),
                     "' in this build (it has: ", absl::StrJoin(BuiltinTrainerKinds(), ", "), ")"));
  }
  return factory(device);
}

}  // namespace hippo::workers
