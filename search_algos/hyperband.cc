#include "search_algos/hyperband.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "search_algos/point_sampler.h"

namespace hippo::search_algos {
namespace {

// Relative slack for floor and ceil of quantities that are whole numbers in exact arithmetic
// (81 / 3^4, 5 / 3 · 9) but may come out a hair off in floating point.
constexpr double kSlack = 1e-9;

// Shortest text that reads back as the same double.
std::string ExactText(double value) {
  char buffer[32];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof(buffer), value).ptr);
}

}  // namespace

int64_t HyperbandMaxTrials(const std::vector<HyperbandBracket>& brackets) {
  int64_t cycle = 0;
  for (const HyperbandBracket& bracket : brackets) cycle += bracket.n;
  return cycle * kMaxHyperbandCycles;
}

absl::StatusOr<std::vector<HyperbandBracket>> HyperbandBrackets(Step max_resource,
                                                                double reduction_factor) {
  const double eta = reduction_factor;
  if (!(eta > 1)) {
    return absl::InvalidArgumentError("algorithm.hyperband.reduction_factor: must be > 1");
  }
  if (max_resource < 1) {
    return absl::InvalidArgumentError("algorithm.hyperband.max_resource: must be >= 1");
  }
  const auto R = static_cast<double>(max_resource);
  // s_max = floor(log_η(R)): the largest s with η^s <= R.
  int64_t s_max = 0;
  while (std::pow(eta, static_cast<double>(s_max + 1)) <= R * (1 + kSlack)) ++s_max;

  std::vector<HyperbandBracket> brackets;
  for (int64_t s = s_max; s >= 0; --s) {
    HyperbandBracket bracket;
    bracket.s = s;
    const double eta_s = std::pow(eta, static_cast<double>(s));
    const double n = static_cast<double>(s_max + 1) * eta_s / static_cast<double>(s + 1);
    bracket.n = static_cast<int64_t>(std::ceil(n * (1 - kSlack)));
    bracket.r = R / eta_s;
    for (int64_t i = 0; i <= s; ++i) {
      const double eta_i = std::pow(eta, static_cast<double>(i));
      HyperbandRound round;
      round.n = static_cast<int64_t>(std::floor(static_cast<double>(bracket.n) / eta_i + kSlack));
      round.r = bracket.r * eta_i;
      if (i == s) {
        round.steps = max_resource;
      } else {
        round.steps = std::max<Step>(std::llround(round.r), 1);
        if (!bracket.rounds.empty()) {
          round.steps = std::max(round.steps, bracket.rounds.back().steps + 1);
        }
        if (round.steps >= max_resource) {
          return absl::InvalidArgumentError(absl::StrCat(
              "algorithm.hyperband.reduction_factor: ", eta, " is too close to 1 for max_resource ",
              max_resource, ": the rounds of bracket s = ", s, " would not get distinct steps"));
        }
      }
      bracket.rounds.push_back(round);
    }
    brackets.push_back(std::move(bracket));
  }
  return brackets;
}

Hyperband::Hyperband(const AlgorithmContext& context, std::vector<HyperbandBracket> brackets)
    : space_(*context.space),
      seed_(context.seed),
      minimize_(context.minimize),
      max_steps_(context.max_steps),
      brackets_(std::move(brackets)),
      progress_(brackets_.size()) {
  first_trial_.push_back(0);
  for (const HyperbandBracket& bracket : brackets_) {
    first_trial_.push_back(first_trial_.back() + bracket.n);
  }
}

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Hyperband::Create(
    const AlgorithmContext& context) {
  const hippo::v1::HyperbandConfig& config = context.config.hyperband();
  if (context.max_steps < 1) return absl::InvalidArgumentError("budget.max_steps: must be >= 1");
  if (config.max_resource() < 0 || config.max_resource() > context.max_steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.hyperband.max_resource: must be in [1, budget.max_steps = ", context.max_steps,
        "] (0: budget.max_steps), is ", config.max_resource()));
  }
  if (config.reduction_factor() != 0 && !(config.reduction_factor() > 1)) {
    return absl::InvalidArgumentError("algorithm.hyperband.reduction_factor: must be > 1 (0: 3)");
  }
  const Step max_resource = config.max_resource() > 0 ? config.max_resource() : context.max_steps;
  const double reduction_factor = config.reduction_factor() > 0 ? config.reduction_factor() : 3;
  absl::StatusOr<std::vector<HyperbandBracket>> table =
      HyperbandBrackets(max_resource, reduction_factor);
  if (!table.ok()) return table.status();

  std::vector<HyperbandBracket> brackets;
  if (context.max_trials > HyperbandMaxTrials(*table)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "budget.max_trials: at most ", HyperbandMaxTrials(*table), " for hyperband (",
        kMaxHyperbandCycles, " cycles of its brackets; got ", context.max_trials, ")"));
  }
  if (context.max_trials <= 0) {
    brackets = *std::move(table);
  } else {
    int64_t left = context.max_trials;
    for (bool added = true; added;) {
      added = false;
      for (const HyperbandBracket& bracket : *table) {
        if (bracket.n > left) continue;
        brackets.push_back(bracket);
        left -= bracket.n;
        added = true;
      }
    }
    if (brackets.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("budget.max_trials: hyperband's smallest bracket needs ", table->back().n,
                       " trials, max_trials is ", context.max_trials));
    }
  }
  return std::unique_ptr<SearchAlgorithm>(new Hyperband(context, std::move(brackets)));
}

void Hyperband::OnMetric(TrialNumber trial, Step step, double objective) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  if (trials_[trial].state == TrialState::kRunning) {
    trials_[trial].last_metric = std::make_pair(step, objective);
  }
}

void Hyperband::OnTrialReachedTarget(TrialNumber trial, Step target) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& reached = trials_[trial];
  if (reached.state != TrialState::kRunning) return;
  reached.state = TrialState::kPaused;
  if (reached.last_metric.has_value() && reached.last_metric->first == target - 1) {
    reached.objective = reached.last_metric->second;
  }
}

void Hyperband::OnTrialEnded(TrialNumber trial, TrialOutcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  trials_[trial].state = TrialState::kEnded;
}

int64_t Hyperband::Advance(size_t bracket, std::vector<Request>& requests) {
  Progress& progress = progress_[bracket];
  const std::vector<HyperbandRound>& rounds = brackets_[bracket].rounds;
  const TrialNumber first = first_trial_[bracket];
  const TrialNumber end = first_trial_[bracket + 1];
  int64_t extensions = 0;
  while (!progress.finished && static_cast<TrialNumber>(trials_.size()) >= end) {
    std::vector<TrialNumber> waiting;
    for (TrialNumber number = first; number < end; ++number) {
      const Trial& trial = trials_[number];
      if (trial.round != progress.round) continue;
      if (trial.state == TrialState::kRunning) return extensions;  // the round is under way
      if (trial.state == TrialState::kPaused) waiting.push_back(number);
    }
    // top_k: those with an objective, best first; then those without.
    std::stable_sort(waiting.begin(), waiting.end(), [&](TrialNumber a, TrialNumber b) {
      const std::optional<double>& x = trials_[a].objective;
      const std::optional<double>& y = trials_[b].objective;
      if (x.has_value() != y.has_value()) return x.has_value();
      return x.has_value() && Better(*x, *y);
    });
    const bool last = progress.round + 1 == rounds.size();
    const int64_t keep = last ? 0 : rounds[progress.round + 1].n;
    for (size_t i = 0; i < waiting.size(); ++i) {
      Trial& trial = trials_[waiting[i]];
      Request request;
      request.trial = waiting[i];
      if (static_cast<int64_t>(i) < keep && trial.objective.has_value()) {
        trial.round = progress.round + 1;
        trial.state = TrialState::kRunning;
        trial.objective.reset();
        trial.last_metric.reset();
        request.kind = Request::Kind::kExtend;
        request.target = rounds[trial.round].steps;
        ++extensions;
      } else {
        trial.state = TrialState::kEnded;
        request.kind = Request::Kind::kStop;
      }
      requests.push_back(std::move(request));
    }
    if (last) {
      progress.finished = true;
    } else {
      ++progress.round;
    }
  }
  return extensions;
}

std::vector<Request> Hyperband::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  int64_t extensions = 0;
  for (size_t bracket = 0; bracket < brackets_.size(); ++bracket) {
    extensions += Advance(bracket, requests);
  }
  for (int64_t added = 0; static_cast<TrialNumber>(trials_.size()) < first_trial_.back() &&
                          added < max_new_trials - extensions;
       ++added) {
    const auto number = static_cast<TrialNumber>(trials_.size());
    Trial trial;
    trial.bracket =
        static_cast<size_t>(std::upper_bound(first_trial_.begin(), first_trial_.end(), number) -
                            first_trial_.begin() - 1);
    Request request;
    request.kind = Request::Kind::kNewTrial;
    request.point = SamplePoint(space_, seed_, static_cast<uint64_t>(number));
    request.target = brackets_[trial.bracket].rounds.front().steps;
    requests.push_back(std::move(request));
    trials_.push_back(trial);
  }
  return requests;
}

bool Hyperband::Finished() const {
  return static_cast<TrialNumber>(trials_.size()) >= first_trial_.back() &&
         std::all_of(trials_.begin(), trials_.end(),
                     [](const Trial& trial) { return trial.state == TrialState::kEnded; });
}

// "bracket <round> <0|1 finished>" per bracket, then per trial
// "trial <running|paused|ended> <round> <metric step or -1> <metric objective> <objective or ->".
std::string Hyperband::SaveState() const {
  std::string state = "hyperband\n";
  for (const Progress& progress : progress_) {
    absl::StrAppend(&state, "bracket ", progress.round, " ", progress.finished ? 1 : 0, "\n");
  }
  for (const Trial& trial : trials_) {
    const char* name = trial.state == TrialState::kRunning  ? "running"
                       : trial.state == TrialState::kPaused ? "paused"
                                                            : "ended";
    absl::StrAppend(&state, "trial ", name, " ", trial.round, " ",
                    trial.last_metric.has_value() ? trial.last_metric->first : -1, " ",
                    ExactText(trial.last_metric.has_value() ? trial.last_metric->second : 0), " ",
                    trial.objective.has_value() ? ExactText(*trial.objective) : "-", "\n");
  }
  return state;
}

absl::Status Hyperband::LoadState(const std::string& state) {
  const std::vector<absl::string_view> lines = absl::StrSplit(state, '\n', absl::SkipEmpty());
  if (lines.empty() || lines.front() != "hyperband") {
    return absl::DataLossError("bad saved state for hyperband: it does not start with 'hyperband'");
  }
  std::vector<Progress> progress;
  std::vector<Trial> trials;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<absl::string_view> fields = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    auto bad = [&] {
      return absl::DataLossError(
          absl::StrCat("bad saved state for hyperband: line '", lines[i], "'"));
    };
    if (fields.size() == 3 && fields[0] == "bracket") {
      Progress bracket;
      int finished = 0;
      if (!trials.empty() || progress.size() >= brackets_.size() ||
          !absl::SimpleAtoi(fields[1], &bracket.round) ||
          bracket.round >= brackets_[progress.size()].rounds.size() ||
          !absl::SimpleAtoi(fields[2], &finished) || (finished != 0 && finished != 1)) {
        return bad();
      }
      bracket.finished = finished == 1;
      progress.push_back(bracket);
      continue;
    }
    const auto number = static_cast<TrialNumber>(trials.size());
    Trial trial;
    Step metric_step = 0;
    double metric_objective = 0;
    double objective = 0;
    if (fields.size() != 6 || fields[0] != "trial" || progress.size() != brackets_.size() ||
        number >= first_trial_.back() || !absl::SimpleAtoi(fields[2], &trial.round) ||
        !absl::SimpleAtoi(fields[3], &metric_step) ||
        !absl::SimpleAtod(fields[4], &metric_objective) ||
        (fields[5] != "-" && !absl::SimpleAtod(fields[5], &objective))) {
      return bad();
    }
    trial.bracket =
        static_cast<size_t>(std::upper_bound(first_trial_.begin(), first_trial_.end(), number) -
                            first_trial_.begin() - 1);
    if (trial.round >= brackets_[trial.bracket].rounds.size()) return bad();
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
    if (fields[5] != "-") trial.objective = objective;
    trials.push_back(trial);
  }
  if (progress.size() != brackets_.size()) {
    return absl::DataLossError(absl::StrCat("bad saved state for hyperband: ", progress.size(),
                                            " brackets, this plan has ", brackets_.size()));
  }
  progress_ = std::move(progress);
  trials_ = std::move(trials);
  return absl::OkStatus();
}

std::vector<Step> Hyperband::BranchSteps() const {
  std::vector<Step> steps;
  for (const HyperbandBracket& bracket : brackets_) {
    for (const HyperbandRound& round : bracket.rounds) steps.push_back(round.steps);
  }
  return steps;
}

proto::Issue Hyperband::CheckConfig(const hippo::v1::Algorithm& config,
                                    const hippo::v1::StudySpec& spec) {
  const hippo::v1::HyperbandConfig& hyperband = config.hyperband();
  const Step max_steps = spec.budget().max_steps();
  if (hyperband.max_resource() > max_steps) {
    return proto::Problem("algorithm.hyperband.max_resource",
                          absl::StrCat("must not exceed budget.max_steps (", max_steps, ") (got ",
                                       hyperband.max_resource(), ")"));
  }
  if (hyperband.reduction_factor() != 0 && hyperband.reduction_factor() <= 1) {
    return proto::Problem(
        "algorithm.hyperband.reduction_factor",
        absl::StrCat("must be > 1 (got ", proto::FormatNumber(hyperband.reduction_factor()),
                     "), e.g. reduction_factor: 3"));
  }
  const int64_t max_trials = spec.budget().max_trials();
  if (max_trials == 0) return std::nullopt;
  const absl::StatusOr<std::vector<HyperbandBracket>> brackets =
      HyperbandBrackets(hyperband.max_resource() > 0 ? hyperband.max_resource() : max_steps,
                        hyperband.reduction_factor() > 0 ? hyperband.reduction_factor() : 3);
  if (brackets.ok() && max_trials > HyperbandMaxTrials(*brackets)) {
    return proto::Problem(
        "budget.max_trials",
        absl::StrCat("at most ", HyperbandMaxTrials(*brackets), " for hyperband (",
                     kMaxHyperbandCycles, " cycles of its brackets; got ", max_trials,
                     "); a study that long is many studies, or use asha"));
  }
  if (brackets.ok() && !brackets->empty() && brackets->back().n > max_trials) {
    return proto::Problem(
        "budget.max_trials",
        absl::StrCat("hyperband's smallest bracket starts ", brackets->back().n,
                     " trials (got max_trials: ", max_trials, "); raise max_trials to at least ",
                     brackets->back().n, ", or leave it 0 for every bracket"));
  }
  return std::nullopt;
}

}  // namespace hippo::search_algos
