#include "search_algos/median_stopping.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "search_algos/point_sampler.h"
#include "search_algos/state_text.h"

namespace hippo::search_algos {
namespace {

using state_text::PutDouble;
using state_text::PutInt;
using state_text::TokenReader;

constexpr char kStateHeader[] = "median-stopping-v1";

}  // namespace

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> MedianStoppingRule::Create(
    const AlgorithmContext& context) {
  const hippo::v1::MedianConfig& config = context.config.median();
  Options options;
  if (config.n_startup_trials() < 0) {
    return absl::InvalidArgumentError("algorithm.median.n_startup_trials: must be >= 0");
  }
  if (config.n_warmup_steps() < 0) {
    return absl::InvalidArgumentError("algorithm.median.n_warmup_steps: must be >= 0");
  }
  if (config.interval_steps() < 0) {
    return absl::InvalidArgumentError(
        "algorithm.median.interval_steps: must be >= 0 (0 means the default, 1)");
  }
  if (!config.sampler().empty() && config.sampler() != "random") {
    return absl::InvalidArgumentError(absl::StrCat("algorithm.median.sampler: unknown sampler '",
                                                   config.sampler(),
                                                   "'; the median rule samples with 'random'"));
  }
  if (context.max_steps <= 0) {
    return absl::InvalidArgumentError("budget.max_steps: must be > 0 for the median rule");
  }
  if (config.n_startup_trials() > 0) options.n_startup_trials = config.n_startup_trials();
  options.n_warmup_steps = config.n_warmup_steps();
  if (config.interval_steps() > 0) options.interval_steps = config.interval_steps();
  if (context.max_trials > 0) options.max_trials = context.max_trials;
  options.max_steps = context.max_steps;
  options.minimize = context.minimize;
  options.seed = context.seed;
  return std::unique_ptr<SearchAlgorithm>(new MedianStoppingRule(*context.space, options));
}

void MedianStoppingRule::OnMetric(TrialNumber trial, Step step, double objective) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  trials_[trial].objectives[step] = objective;
}

void MedianStoppingRule::OnTrialReachedTarget(TrialNumber trial, Step target) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  // At max_steps the trial completes (OnTrialEnded follows); below it, the rule decides.
  if (record.state != TrialState::kTraining || target >= options_.max_steps) return;
  record.state = TrialState::kPaused;
  record.target = target;
  paused_.push_back(trial);
}

void MedianStoppingRule::OnTrialEnded(TrialNumber trial, TrialOutcome outcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  if (record.state == TrialState::kCompleted || record.state == TrialState::kEnded) return;
  if (record.state == TrialState::kPaused) std::erase(paused_, trial);
  if (outcome == TrialOutcome::kCompleted) {
    record.state = TrialState::kCompleted;
    ++completed_;
  } else {
    record.state = TrialState::kEnded;
  }
}

std::vector<Request> MedianStoppingRule::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  // An extended trial runs again: it takes room as a new trial does.
  int64_t room = max_new_trials;
  while (!paused_.empty()) {
    const TrialNumber number = paused_.front();
    paused_.pop_front();
    Trial& trial = trials_[number];
    Request request;
    request.trial = number;
    if (ShouldStop(trial, trial.target - 1)) {
      request.kind = Request::Kind::kStop;
      trial.state = TrialState::kEnded;
    } else {
      request.kind = Request::Kind::kExtend;
      request.target = std::min(trial.target + options_.interval_steps, options_.max_steps);
      trial.state = TrialState::kTraining;
      trial.target = request.target;
      --room;
    }
    requests.push_back(std::move(request));
  }
  while (static_cast<int64_t>(trials_.size()) < options_.max_trials && room > 0) {
    Request request;
    request.kind = Request::Kind::kNewTrial;
    request.point = SamplePoint(space_, options_.seed, trials_.size());
    request.target = std::min(options_.interval_steps, options_.max_steps);
    trials_.push_back(Trial{TrialState::kTraining, request.target, {}});
    requests.push_back(std::move(request));
    --room;
  }
  return requests;
}

bool MedianStoppingRule::Finished() const {
  if (static_cast<int64_t>(trials_.size()) < options_.max_trials) return false;
  return std::all_of(trials_.begin(), trials_.end(), [](const Trial& trial) {
    return trial.state == TrialState::kCompleted || trial.state == TrialState::kEnded;
  });
}

bool MedianStoppingRule::ShouldStop(const Trial& trial, Step step) const {
  if (step < options_.n_warmup_steps || completed_ < options_.n_startup_trials) return false;
  bool has_best = false;
  double best = 0;
  for (const auto& [at, objective] : trial.objectives) {
    if (at > step) break;
    if (!has_best || Worse(best, objective)) best = objective;
    has_best = true;
  }
  double median = 0;
  if (!has_best || !MedianOfRunningAverages(step, &median)) return false;
  return Worse(best, median);
}

bool MedianStoppingRule::MedianOfRunningAverages(Step step, double* median) const {
  std::vector<double> averages;
  for (const Trial& trial : trials_) {
    if (trial.state != TrialState::kCompleted) continue;
    double sum = 0;
    int64_t count = 0;
    for (const auto& [at, objective] : trial.objectives) {
      if (at > step) break;
      sum += objective;
      ++count;
    }
    if (count > 0) averages.push_back(sum / static_cast<double>(count));
  }
  if (averages.empty()) return false;
  std::sort(averages.begin(), averages.end());
  const size_t middle = averages.size() / 2;
  *median =
      averages.size() % 2 == 1 ? averages[middle] : (averages[middle - 1] + averages[middle]) / 2;
  return true;
}

std::string MedianStoppingRule::SaveState() const {
  std::string out = absl::StrCat(kStateHeader, "\n");
  PutInt(out, static_cast<int64_t>(trials_.size()));
  out.push_back('\n');
  for (const Trial& trial : trials_) {
    PutInt(out, static_cast<int64_t>(trial.state));
    PutInt(out, trial.target);
    PutInt(out, static_cast<int64_t>(trial.objectives.size()));
    for (const auto& [step, objective] : trial.objectives) {
      PutInt(out, step);
      PutDouble(out, objective);
    }
    out.push_back('\n');
  }
  PutInt(out, static_cast<int64_t>(paused_.size()));
  for (TrialNumber trial : paused_) PutInt(out, trial);
  out.push_back('\n');
  return out;
}

absl::Status MedianStoppingRule::LoadState(const std::string& state) {
  auto bad = [] {
    return absl::DataLossError(
        "bad saved state for the median stopping rule (not written by this version?)");
  };
  TokenReader reader(state);
  int64_t count = 0;
  if (!reader.Expect(kStateHeader) || !reader.Int(count) || count < 0 ||
      count > options_.max_trials) {
    return bad();
  }
  std::vector<Trial> trials(count);
  int64_t completed = 0;
  for (Trial& trial : trials) {
    int64_t kind = 0;
    int64_t objectives = 0;
    if (!reader.Int(kind) || kind < 0 || kind > static_cast<int64_t>(TrialState::kEnded) ||
        !reader.Int(trial.target) || !reader.Int(objectives) || objectives < 0) {
      return bad();
    }
    trial.state = static_cast<TrialState>(kind);
    completed += trial.state == TrialState::kCompleted;
    for (int64_t i = 0; i < objectives; ++i) {
      Step step = 0;
      double objective = 0;
      if (!reader.Int(step) || !reader.Double(objective)) return bad();
      trial.objectives[step] = objective;
    }
  }
  int64_t paused_count = 0;
  if (!reader.Int(paused_count) || paused_count < 0 || paused_count > count) return bad();
  std::deque<TrialNumber> paused;
  for (int64_t i = 0; i < paused_count; ++i) {
    TrialNumber trial = 0;
    if (!reader.Int(trial) || trial < 0 || trial >= count ||
        trials[trial].state != TrialState::kPaused) {
      return bad();
    }
    paused.push_back(trial);
  }
  if (!reader.AtEnd()) return bad();
  trials_ = std::move(trials);
  paused_ = std::move(paused);
  completed_ = completed;
  return absl::OkStatus();
}

proto::Issue MedianStoppingRule::CheckConfig(const hippo::v1::Algorithm& config,
                                             const hippo::v1::StudySpec&) {
  const std::string& sampler = config.median().sampler();
  if (!sampler.empty() && sampler != "random") {
    return proto::Problem("algorithm.median.sampler",
                          absl::StrCat("unknown sampler \"", sampler, "\"; known: random"));
  }
  return std::nullopt;
}

}  // namespace hippo::search_algos
