#include "search_algos/asha.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "search_algos/point_sampler.h"

namespace hippo::search_algos {
namespace {

// Shortest text that reads back as the same double.
std::string ExactText(double value) {
  char buffer[32];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof(buffer), value).ptr);
}

}  // namespace

absl::StatusOr<std::vector<Step>> AshaRungs(Step min_resource, Step max_resource,
                                            double reduction_factor) {
  if (!(reduction_factor > 1)) {
    return absl::InvalidArgumentError("algorithm.asha.reduction_factor: must be > 1");
  }
  if (min_resource < 1) {
    return absl::InvalidArgumentError("algorithm.asha.min_resource: must be >= 1");
  }
  if (max_resource < min_resource) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.asha.max_resource: must be >= ", "min_resource (", min_resource,
                     "), is ", max_resource));
  }
  std::vector<Step> rungs;
  double resource = static_cast<double>(min_resource);
  for (Step step = min_resource; step < max_resource;) {
    rungs.push_back(step);
    resource *= reduction_factor;
    step = std::max<Step>(std::llround(resource), step + 1);
  }
  rungs.push_back(max_resource);
  return rungs;
}

Asha::Asha(const AlgorithmContext& context, std::vector<Step> rungs, double reduction_factor,
           int64_t max_trials, std::optional<TpeParameters> tpe_parameters)
    : space_(*context.space),
      seed_(context.seed),
      minimize_(context.minimize),
      max_steps_(context.max_steps),
      rungs_(std::move(rungs)),
      reduction_factor_(reduction_factor),
      max_trials_(max_trials),
      tpe_parameters_(tpe_parameters),
      requested_trials_(max_trials) {
  if (tpe_parameters_.has_value()) {
    tpe_.emplace(space_, seed_, minimize_, *tpe_parameters_);
  } else {
    random_.emplace(space_, seed_, context.config.sample_with_replacement());
    if (random_->without_replacement()) {
      max_trials_ = std::min(max_trials_, random_->configurations());
    }
  }
}

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Asha::Create(const AlgorithmContext& context) {
  const hippo::v1::AshaConfig& config = context.config.asha();
  if (context.max_steps < 1) return absl::InvalidArgumentError("budget.max_steps: must be >= 1");
  if (config.max_resource() > context.max_steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.asha.max_resource: must be <= budget.max_steps (",
                     context.max_steps, "), is ", config.max_resource()));
  }
  if (config.min_resource() < 0) {
    return absl::InvalidArgumentError("algorithm.asha.min_resource: must be >= 1 (0: 1)");
  }
  if (config.max_resource() < 0) {
    return absl::InvalidArgumentError(
        "algorithm.asha.max_resource: must be >= 1 (0: budget.max_steps)");
  }
  if (config.reduction_factor() != 0 && !(config.reduction_factor() > 1)) {
    return absl::InvalidArgumentError("algorithm.asha.reduction_factor: must be > 1 (0: 3)");
  }
  const Step min_resource = config.min_resource() > 0 ? config.min_resource() : 1;
  const Step max_resource = config.max_resource() > 0 ? config.max_resource() : context.max_steps;
  const double reduction_factor = config.reduction_factor() > 0 ? config.reduction_factor() : 3;
  if (min_resource > max_resource) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.asha.min_resource: must be <= max_resource (",
                     config.max_resource() > 0 ? "" : "budget.max_steps: ", max_resource, "), is ",
                     min_resource));
  }
  absl::StatusOr<std::vector<Step>> rungs = AshaRungs(min_resource, max_resource, reduction_factor);
  if (!rungs.ok()) return rungs.status();

  std::optional<TpeParameters> tpe_parameters;
  if (config.sampler() == "tpe") {
    absl::StatusOr<TpeParameters> parameters = TpeParametersFromConfig(context.config.tpe());
    if (!parameters.ok()) return parameters.status();
    tpe_parameters = *parameters;
  } else if (!config.sampler().empty() && config.sampler() != "random") {
    return absl::InvalidArgumentError(absl::StrCat("algorithm.asha.sampler: unknown sampler '",
                                                   config.sampler(), "'; use random or tpe"));
  }
  const int64_t max_trials = context.max_trials > 0 ? context.max_trials : 100;
  return std::unique_ptr<SearchAlgorithm>(
      new Asha(context, *std::move(rungs), reduction_factor, max_trials, tpe_parameters));
}

void Asha::OnMetric(TrialNumber trial, Step step, double objective) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  if (trials_[trial].state == TrialState::kRunning) {
    trials_[trial].last_metric = std::make_pair(step, objective);
  }
}

void Asha::OnTrialReachedTarget(TrialNumber trial, Step target) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& reached = trials_[trial];
  if (reached.state != TrialState::kRunning) return;
  reached.state = TrialState::kPaused;
  // Without an objective for the rung's last step the trial cannot be ranked: it stays paused,
  // never promoted, and is stopped at the end.
  if (reached.last_metric.has_value() && reached.last_metric->first == target - 1 &&
      reached.objectives.size() == reached.rung) {
    reached.objectives.push_back(reached.last_metric->second);
    ObserveForTpe(trial);
  }
}

void Asha::OnTrialEnded(TrialNumber trial, TrialOutcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  trials_[trial].state = TrialState::kEnded;
}

void Asha::ObserveForTpe(TrialNumber trial) {
  const Trial& observed = trials_[trial];
  if (!tpe_.has_value() || observed.objectives.empty()) return;
  tpe_->Observe(trial, observed.point, observed.objectives.back(),
                static_cast<int64_t>(observed.objectives.size()) - 1);
}

std::vector<TrialNumber> Asha::Promotable(size_t rung) const {
  std::vector<TrialNumber> completed;
  for (TrialNumber trial = 0; trial < static_cast<TrialNumber>(trials_.size()); ++trial) {
    if (trials_[trial].objectives.size() > rung) completed.push_back(trial);
  }
  std::stable_sort(completed.begin(), completed.end(), [&](TrialNumber a, TrialNumber b) {
    return Better(trials_[a].objectives[rung], trials_[b].objectives[rung]);
  });
  const auto top = static_cast<size_t>(
      std::floor(static_cast<double>(completed.size()) / reduction_factor_ + 1e-9));
  std::vector<TrialNumber> promotable;
  for (size_t i = 0; i < top && i < completed.size(); ++i) {
    const Trial& trial = trials_[completed[i]];
    if (trial.state == TrialState::kPaused && trial.rung == rung) {
      promotable.push_back(completed[i]);
    }
  }
  return promotable;
}

std::vector<Request> Asha::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  // get_job, from the top rung down: every promotable trial, now.
  int64_t promotions = 0;
  for (size_t rung = rungs_.size() - 1; rung-- > 0;) {
    for (TrialNumber number : Promotable(rung)) {
      Trial& trial = trials_[number];
      trial.rung = rung + 1;
      trial.state = TrialState::kRunning;
      trial.last_metric.reset();
      Request request;
      request.kind = Request::Kind::kExtend;
      request.trial = number;
      request.target = rungs_[trial.rung];
      requests.push_back(std::move(request));
      ++promotions;
    }
  }
  // Trials at the top rung below max_steps are done.
  for (TrialNumber number = 0; number < static_cast<TrialNumber>(trials_.size()); ++number) {
    Trial& trial = trials_[number];
    if (trial.state == TrialState::kPaused && trial.rung + 1 == rungs_.size()) {
      trial.state = TrialState::kEnded;
      Request request;
      request.kind = Request::Kind::kStop;
      request.trial = number;
      requests.push_back(std::move(request));
    }
  }
  // Grow the bottom rung.
  for (int64_t added = 0;
       static_cast<int64_t>(trials_.size()) < max_trials_ && added < max_new_trials - promotions;
       ++added) {
    const auto index = static_cast<uint64_t>(trials_.size());
    Trial trial;
    // The random sampler has a point for every index below max_trials_ (at most the space's
    // configurations), unless new ones became too rare to find in a huge space: then a repeat.
    if (tpe_.has_value()) {
      trial.point = tpe_->Sample(index);
    } else if (std::optional<stage_tree::Point> point =
                   random_->PointAt(static_cast<int64_t>(index))) {
      trial.point = *std::move(point);
    } else {
      trial.point = SamplePoint(space_, seed_, index);
    }
    Request request;
    request.kind = Request::Kind::kNewTrial;
    request.point = trial.point;
    request.target = rungs_.front();
    requests.push_back(std::move(request));
    trials_.push_back(std::move(trial));
  }
  // End of the study: with every trial proposed and none running, no rung can change.
  if (static_cast<int64_t>(trials_.size()) >= max_trials_ &&
      std::none_of(trials_.begin(), trials_.end(),
                   [](const Trial& trial) { return trial.state == TrialState::kRunning; })) {
    for (TrialNumber number = 0; number < static_cast<TrialNumber>(trials_.size()); ++number) {
      if (trials_[number].state != TrialState::kPaused) continue;
      trials_[number].state = TrialState::kEnded;
      Request request;
      request.kind = Request::Kind::kStop;
      request.trial = number;
      requests.push_back(std::move(request));
    }
  }
  return requests;
}

std::string Asha::EndReason() const {
  return max_trials_ < requested_trials_ && random_.has_value() ? random_->ExhaustedMessage()
                                                                : std::string();
}

bool Asha::Finished() const {
  return static_cast<int64_t>(trials_.size()) >= max_trials_ &&
         std::all_of(trials_.begin(), trials_.end(),
                     [](const Trial& trial) { return trial.state == TrialState::kEnded; });
}

// One line per trial:
// "trial <running|paused|ended> <rung> <metric step or -1> <metric objective> <n> <n objectives>
//  <point>".
std::string Asha::SaveState() const {
  std::string state = "asha\n";
  for (const Trial& trial : trials_) {
    const char* name = trial.state == TrialState::kRunning  ? "running"
                       : trial.state == TrialState::kPaused ? "paused"
                                                            : "ended";
    absl::StrAppend(&state, "trial ", name, " ", trial.rung, " ",
                    trial.last_metric.has_value() ? trial.last_metric->first : -1, " ",
                    ExactText(trial.last_metric.has_value() ? trial.last_metric->second : 0), " ",
                    trial.objectives.size());
    for (double objective : trial.objectives) absl::StrAppend(&state, " ", ExactText(objective));
    absl::StrAppend(&state, " ", EncodePoint(space_, trial.point), "\n");
  }
  return state;
}

absl::Status Asha::LoadState(const std::string& state) {
  const std::vector<absl::string_view> lines = absl::StrSplit(state, '\n', absl::SkipEmpty());
  if (lines.empty() || lines.front() != "asha") {
    return absl::DataLossError("bad saved state for asha: it does not start with 'asha'");
  }
  std::vector<Trial> trials;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<absl::string_view> fields = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    auto bad = [&] {
      return absl::DataLossError(absl::StrCat("bad saved state for asha: line '", lines[i], "'"));
    };
    Trial trial;
    Step metric_step = 0;
    double metric_objective = 0;
    size_t count = 0;
    if (fields.size() < 6 || fields[0] != "trial" || !absl::SimpleAtoi(fields[2], &trial.rung) ||
        trial.rung >= rungs_.size() || !absl::SimpleAtoi(fields[3], &metric_step) ||
        !absl::SimpleAtod(fields[4], &metric_objective) || !absl::SimpleAtoi(fields[5], &count) ||
        fields.size() < 6 + count || count > trial.rung + 1) {
      return bad();
    }
    if (fields[1] == "running") {
      trial.state = TrialState::kRunning;
    } else if (fields[1] == "paused") {
      trial.state = TrialState::kPaused;
    } else if (fields[1] == "ended") {
      trial.state = TrialState::kEnded;
    } else {
      return bad();
    }
    if (metric_step >= 0) trial.last_metric = std::make_pair(metric_step, metric_objective);
    for (size_t k = 0; k < count; ++k) {
      double objective = 0;
      if (!absl::SimpleAtod(fields[6 + k], &objective)) return bad();
      trial.objectives.push_back(objective);
    }
    const std::vector<absl::string_view> point_fields(fields.begin() + 6 + count, fields.end());
    absl::StatusOr<stage_tree::Point> point = DecodePoint(space_, absl::StrJoin(point_fields, " "));
    if (!point.ok()) return point.status();
    trial.point = *std::move(point);
    trials.push_back(std::move(trial));
  }
  if (static_cast<int64_t>(trials.size()) > max_trials_) {
    return absl::DataLossError(absl::StrCat("bad saved state for asha: ", trials.size(),
                                            " trials, more than max_trials ", max_trials_));
  }
  trials_ = std::move(trials);
  tpe_.reset();
  if (tpe_parameters_.has_value()) tpe_.emplace(space_, seed_, minimize_, *tpe_parameters_);
  for (TrialNumber trial = 0; trial < static_cast<TrialNumber>(trials_.size()); ++trial) {
    ObserveForTpe(trial);
  }
  return absl::OkStatus();
}

proto::Issue Asha::CheckConfig(const hippo::v1::Algorithm& config,
                               const hippo::v1::StudySpec& spec) {
  const hippo::v1::AshaConfig& asha = config.asha();
  const Step max_steps = spec.budget().max_steps();
  if (asha.min_resource() == 0) {
    return proto::Problem("algorithm.asha.min_resource",
                          "required; the steps of the first rung, e.g. min_resource: 5");
  }
  if (asha.max_resource() > max_steps) {
    return proto::Problem("algorithm.asha.max_resource",
                          absl::StrCat("must not exceed budget.max_steps (", max_steps, ") (got ",
                                       asha.max_resource(), ")"));
  }
  const bool max_is_default = asha.max_resource() == 0;
  const Step max_resource = max_is_default ? max_steps : asha.max_resource();
  if (asha.min_resource() > max_resource) {
    return proto::Problem(
        "algorithm.asha.min_resource",
        absl::StrCat("must not exceed ", max_is_default ? "budget.max_steps" : "max_resource",
                     " (got ", asha.min_resource(), " > ", max_resource, ")"));
  }
  if (asha.reduction_factor() != 0 && asha.reduction_factor() <= 1) {
    return proto::Problem(
        "algorithm.asha.reduction_factor",
        absl::StrCat("must be > 1 (got ", proto::FormatNumber(asha.reduction_factor()),
                     "); each rung keeps 1/reduction_factor of the trials, e.g. 3"));
  }
  if (!asha.sampler().empty() && asha.sampler() != "random" && asha.sampler() != "tpe") {
    return proto::Problem(
        "algorithm.asha.sampler",
        absl::StrCat("unknown sampler \"", asha.sampler(), "\"; known: random, tpe"));
  }
  if (asha.sampler() == "tpe") return CheckTpeConfig(config.tpe());
  if (config.has_tpe()) {
    return proto::Problem("algorithm.tpe",
                          "configures the TPE sampler, but algorithm.asha.sampler is not tpe; "
                          "remove it or set sampler: tpe");
  }
  return std::nullopt;
}

}  // namespace hippo::search_algos
