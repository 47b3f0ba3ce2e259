#include "search_algos/tpe.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "search_algos/point_sampler.h"

namespace hippo::search_algos {
namespace {

using stage_tree::Dimension;
using stage_tree::DimensionKind;
using stage_tree::Point;

constexpr double kLowestLog = -1e300;

// Shortest text that reads back as the same double.
std::string ExactText(double value) {
  char buffer[32];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof(buffer), value).ptr);
}

// Uniform in [0, 1) from 53 random bits (as SampleDimension draws), so draws are the same on
// every platform.
double UnitDraw(std::mt19937_64& random) { return static_cast<double>(random() >> 11) * 0x1.0p-53; }

// Box–Muller: one standard normal draw from two uniform ones.
double StandardNormalDraw(std::mt19937_64& random) {
  const double radius = std::sqrt(-2.0 * std::log(1.0 - UnitDraw(random)));
  return radius * std::cos(2.0 * std::numbers::pi * UnitDraw(random));
}

// P(a <= Z <= b) for a standard normal Z, accurate in both tails.
double StandardNormalMass(double a, double b) {
  constexpr double kSqrtHalf = std::numbers::sqrt2 / 2;
  if (a >= 0) return 0.5 * (std::erfc(a * kSqrtHalf) - std::erfc(b * kSqrtHalf));
  if (b <= 0) return 0.5 * (std::erfc(-b * kSqrtHalf) - std::erfc(-a * kSqrtHalf));
  return 1.0 - 0.5 * std::erfc(b * kSqrtHalf) - 0.5 * std::erfc(-a * kSqrtHalf);
}

double SafeLog(double x) { return x > 0 ? std::log(x) : kLowestLog; }

double LogSumExp(const std::vector<double>& terms) {
  const double largest = *std::max_element(terms.begin(), terms.end());
  if (largest <= kLowestLog) return kLowestLog;
  double sum = 0;
  for (double term : terms) sum += std::exp(term - largest);
  return largest + std::log(sum);
}

// Optuna's default_weights: equal weights for the 25 newest results, a linear ramp from 1/n up
// to 1 for older ones, so that old results fade. `n` results in trial order.
std::vector<double> ObservationWeights(size_t n) {
  std::vector<double> weights(n, 1.0);
  constexpr size_t kFlat = 25;
  if (n <= kFlat) return weights;
  const size_t ramp = n - kFlat;
  const double first = 1.0 / static_cast<double>(n);
  for (size_t i = 0; i < ramp; ++i) {
    weights[i] =
        ramp == 1 ? first
                  : first + (1.0 - first) * static_cast<double>(i) / static_cast<double>(ramp - 1);
  }
  return weights;
}

std::vector<double> Normalized(std::vector<double> weights) {
  double total = 0;
  for (double weight : weights) total += weight;
  for (double& weight : weights) weight /= total;
  return weights;
}

// How a numeric dimension maps to the space its kernels live in: log for log dimensions, and
// the grid its values are rounded to (its step; integers for log ints, as SampleDimension does).
struct NumericScale {
  explicit NumericScale(const Dimension& dimension)
      : low(dimension.low), high(dimension.high), log(dimension.log && dimension.low > 0) {
    grid = dimension.kind == DimensionKind::kInt ? (log ? 1.0 : dimension.step) : dimension.step;
    if (log) {
      // As Optuna: a log dimension with a step is continuous in log space over the range widened
      // by half a step, and rounded to the grid afterwards.
      const double half = grid / 2;
      model_low = std::log(grid > 0 && low - half > 0 ? low - half : low);
      model_high = std::log(high + half);
      model_step = 0;
    } else {
      model_low = low;
      model_high = high;
      model_step = grid;
    }
  }
  double ToModel(double value) const { return log ? std::log(value) : value; }
  // A value of the model's space back to a value of the dimension: on the grid, in range.
  double FromModel(double value) const {
    if (log) value = std::exp(value);
    if (grid > 0) value = low + std::round((value - low) / grid) * grid;
    return std::clamp(value, low, high);
  }

  double low, high;
  bool log;
  double grid = 0;
  double model_low = 0, model_high = 0;  // the kernels are truncated to this range
  double model_step = 0;                 // > 0: the model is discrete on low + k·step
};

// A mixture of Gaussians truncated to [low - step/2, high + step/2] (Optuna's _ParzenEstimator
// for one numeric parameter): a kernel per observation, bandwidth the larger distance to its
// neighbours (clipped to [range / min(100, n + 2), range]), and a prior kernel N((low + high)/2,
// range). With a step, the mixture is discrete: a grid value has the mass of its cell.
class TruncatedGaussianMixture {
 public:
  TruncatedGaussianMixture(const std::vector<double>& observations,
                           const std::vector<double>& observation_weights, double low, double high,
                           double step, double prior_weight)
      : lower_(low - step / 2), upper_(high + step / 2), low_(low), high_(high), step_(step) {
    const size_t n = observations.size();
    const double range = upper_ - lower_;
    std::vector<double> mus = observations;
    mus.push_back(0.5 * (low + high));
    std::vector<size_t> order(mus.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return mus[a] < mus[b]; });
    // Sorted centres between the two ends of the range.
    std::vector<double> ends = {lower_};
    for (size_t i : order) ends.push_back(mus[i]);
    ends.push_back(upper_);
    std::vector<double> sorted_sigmas(order.size());
    for (size_t j = 0; j < order.size(); ++j) {
      sorted_sigmas[j] = std::max(ends[j + 1] - ends[j], ends[j + 2] - ends[j + 1]);
    }
    // consider_endpoints = false: the outermost kernels look inwards only.
    if (ends.size() >= 4) {
      sorted_sigmas.front() = ends[2] - ends[1];
      sorted_sigmas.back() = ends[ends.size() - 2] - ends[ends.size() - 3];
    }
    // consider_magic_clip.
    const double min_sigma = range / std::min(100.0, 1.0 + static_cast<double>(n) + 1.0);
    std::vector<double> sigmas(mus.size());
    for (size_t j = 0; j < order.size(); ++j) {
      sigmas[order[j]] = std::clamp(sorted_sigmas[j], min_sigma, range);
    }
    sigmas.back() = range;  // the prior

    std::vector<double> weights = observation_weights;
    weights.push_back(prior_weight);
    weights = Normalized(std::move(weights));
    for (size_t i = 0; i < mus.size(); ++i) {
      const double mass =
          StandardNormalMass((lower_ - mus[i]) / sigmas[i], (upper_ - mus[i]) / sigmas[i]);
      kernels_.push_back({mus[i], sigmas[i], weights[i], SafeLog(weights[i]) - SafeLog(mass)});
    }
  }

  // A draw: a kernel chosen by weight, then a draw of it inside the range (by rejection: a
  // kernel's centre lies in the range and its bandwidth is at most the range, so at least about
  // a third of the draws fall inside).
  double Sample(std::mt19937_64& random) const {
    double pick = UnitDraw(random);
    const Kernel* kernel = &kernels_.back();
    for (const Kernel& candidate : kernels_) {
      if (pick < candidate.weight) {
        kernel = &candidate;
        break;
      }
      pick -= candidate.weight;
    }
    double value = kernel->mu;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const double draw = kernel->mu + kernel->sigma * StandardNormalDraw(random);
      if (draw >= lower_ && draw <= upper_) {
        value = draw;
        break;
      }
    }
    if (step_ > 0) value = low_ + std::round((value - low_) / step_) * step_;
    return std::clamp(value, step_ > 0 ? low_ : lower_, step_ > 0 ? high_ : upper_);
  }

  // log density at `x` (continuous), or log mass of x's cell [x - step/2, x + step/2].
  double LogDensity(double x) const {
    std::vector<double> terms;
    terms.reserve(kernels_.size());
    for (const Kernel& kernel : kernels_) {
      if (step_ > 0) {
        const double mass =
            StandardNormalMass((std::max(x - step_ / 2, lower_) - kernel.mu) / kernel.sigma,
                               (std::min(x + step_ / 2, upper_) - kernel.mu) / kernel.sigma);
        terms.push_back(kernel.log_scale + SafeLog(mass));
      } else {
        const double z = (x - kernel.mu) / kernel.sigma;
        terms.push_back(kernel.log_scale - 0.5 * z * z - std::log(kernel.sigma) -
                        0.5 * std::log(2 * std::numbers::pi));
      }
    }
    return LogSumExp(terms);
  }

 private:
  struct Kernel {
    double mu;
    double sigma;
    double weight;     // normalised, for drawing
    double log_scale;  // log(weight / mass of the kernel inside the range)
  };

  double lower_, upper_;  // where the kernels are truncated
  double low_, high_;     // the grid's ends
  double step_;
  std::vector<Kernel> kernels_;
};

// Optuna's categorical Parzen estimator: each observation a kernel with mass 1 on its choice
// plus prior_weight / (n + 1) on every choice (normalised), and a uniform prior kernel; the
// mixture is a smoothed histogram.
std::vector<double> ChoiceProbabilities(const std::vector<double>& observations,
                                        const std::vector<double>& observation_weights,
                                        size_t choices, double prior_weight) {
  const double k = static_cast<double>(choices);
  const double smoothing = prior_weight / (static_cast<double>(observations.size()) + 1.0);
  std::vector<double> weights = observation_weights;
  weights.push_back(prior_weight);
  weights = Normalized(std::move(weights));
  std::vector<double> probabilities(choices, weights.back() / k);
  for (size_t i = 0; i < observations.size(); ++i) {
    const auto observed = static_cast<size_t>(observations[i]);
    for (size_t c = 0; c < choices; ++c) {
      probabilities[c] +=
          weights[i] * ((c == observed ? 1.0 : 0.0) + smoothing) / (1.0 + k * smoothing);
    }
  }
  return probabilities;
}

size_t DrawIndex(const std::vector<double>& probabilities, std::mt19937_64& random) {
  double pick = UnitDraw(random);
  for (size_t c = 0; c < probabilities.size(); ++c) {
    if (pick < probabilities[c]) return c;
    pick -= probabilities[c];
  }
  return probabilities.size() - 1;
}

// Per dimension: the index of the point's choice, or its number. Nullopt if the point is not
// of the space.
std::optional<std::vector<double>> Coordinates(const stage_tree::SearchSpace& space,
                                               const Point& point) {
  if (point.size() != space.dimensions.size()) return std::nullopt;
  std::vector<double> coordinates;
  coordinates.reserve(point.size());
  for (size_t d = 0; d < point.size(); ++d) {
    const Dimension& dimension = space.dimensions[d];
    if (dimension.kind == DimensionKind::kChoice) {
      const auto found = std::find(dimension.choices.begin(), dimension.choices.end(), point[d]);
      if (found == dimension.choices.end()) return std::nullopt;
      coordinates.push_back(static_cast<double>(found - dimension.choices.begin()));
    } else {
      const double* number = std::get_if<double>(&point[d]);
      if (number == nullptr) return std::nullopt;
      coordinates.push_back(*number);
    }
  }
  return coordinates;
}

}  // namespace

absl::StatusOr<TpeParameters> TpeParametersFromConfig(const hippo::v1::TpeConfig& config) {
  TpeParameters parameters;
  if (config.n_startup_trials() < 0) {
    return absl::InvalidArgumentError("algorithm.tpe.n_startup_trials: must be >= 0 (0: 10)");
  }
  if (config.n_ei_candidates() < 0) {
    return absl::InvalidArgumentError("algorithm.tpe.n_ei_candidates: must be >= 0 (0: 24)");
  }
  if (!(config.gamma() >= 0 && config.gamma() <= 1)) {
    return absl::InvalidArgumentError("algorithm.tpe.gamma: must be in [0, 1] (0: 0.25)");
  }
  if (config.n_startup_trials() > 0) parameters.n_startup_trials = config.n_startup_trials();
  if (config.n_ei_candidates() > 0) parameters.n_ei_candidates = config.n_ei_candidates();
  if (config.gamma() > 0) parameters.gamma = config.gamma();
  return parameters;
}

TpeSampler::TpeSampler(const stage_tree::SearchSpace& space, uint64_t seed, bool minimize,
                       TpeParameters parameters)
    : space_(space),
      seed_(seed),
      minimize_(minimize),
      parameters_(parameters),
      ranked_(RankOrder{minimize}) {}

void TpeSampler::Observe(TrialNumber trial, const Point& point, double objective, int64_t level) {
  std::optional<std::vector<double>> coordinates = Coordinates(space_, point);
  if (!coordinates.has_value() || std::isnan(objective)) return;
  if (auto old = observations_.find(trial); old != observations_.end()) {
    ranked_.erase(RankKey{old->second.level, old->second.objective, trial});
  }
  std::vector<bool> used(point.size());
  for (size_t d = 0; d < point.size(); ++d)
    used[d] = stage_tree::IsActive(space_.dimensions, point, d);
  observations_[trial] = Observation{*std::move(coordinates), std::move(used), objective, level};
  ranked_.insert(RankKey{level, objective, trial});
}

Point TpeSampler::Sample(uint64_t index) const {
  if (observation_count() < std::max<int64_t>(parameters_.n_startup_trials, 1)) {
    return SamplePoint(space_, seed_, index);
  }
  // The good group: the best ceil(gamma n) results, at most max_good, from the ranking kept up
  // to date by Observe. The bad group: the newest max_bad other results. Each group in trial
  // order, for the weights that fade old results.
  const auto n = static_cast<int64_t>(ranked_.size());
  const int64_t n_good = std::clamp<int64_t>(
      static_cast<int64_t>(std::ceil(parameters_.gamma * static_cast<double>(n) - 1e-9)), 1,
      std::clamp<int64_t>(parameters_.max_good, 1, n));
  std::vector<std::pair<TrialNumber, const Observation*>> good;
  good.reserve(n_good);
  std::set<TrialNumber> good_trials;
  for (auto key = ranked_.begin(); static_cast<int64_t>(good.size()) < n_good; ++key) {
    good.emplace_back(key->trial, &observations_.at(key->trial));
    good_trials.insert(key->trial);
  }
  auto by_trial = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort(good.begin(), good.end(), by_trial);
  std::vector<std::pair<TrialNumber, const Observation*>> bad;
  const int64_t max_bad = std::max<int64_t>(parameters_.max_bad, 1);
  for (auto it = observations_.rbegin();
       it != observations_.rend() && static_cast<int64_t>(bad.size()) < max_bad; ++it) {
    if (!good_trials.contains(it->first)) bad.emplace_back(it->first, &it->second);
  }
  std::reverse(bad.begin(), bad.end());
  const std::vector<double> good_weights = ObservationWeights(good.size());
  const std::vector<double> bad_weights = ObservationWeights(bad.size());

  std::mt19937_64 random = SeededGenerator(seed_, kStream, index);
  Point point;
  point.reserve(space_.dimensions.size());
  for (size_t d = 0; d < space_.dimensions.size(); ++d) {
    const Dimension& dimension = space_.dimensions[d];
    // A dimension is modelled on the trials that used it (an alternative of a one_of on the
    // trials that chose it, a conditional parameter on the trials that had it). One the point
    // does not use is still drawn, so that the draws of the others do not depend on it, and
    // then gets its placeholder.
    auto used = [&](const Observation& observation) { return observation.used[d]; };
    std::vector<double> good_values, bad_values;
    std::vector<double> good_used_weights, bad_used_weights;
    for (size_t i = 0; i < good.size(); ++i) {
      if (!used(*good[i].second)) continue;
      good_values.push_back(good[i].second->coordinates[d]);
      good_used_weights.push_back(good_weights[i]);
    }
    for (size_t i = 0; i < bad.size(); ++i) {
      if (!used(*bad[i].second)) continue;
      bad_values.push_back(bad[i].second->coordinates[d]);
      bad_used_weights.push_back(bad_weights[i]);
    }
    const int64_t candidates = parameters_.n_ei_candidates;

    if (dimension.kind == DimensionKind::kChoice) {
      const size_t choices = dimension.choices.size();
      const std::vector<double> l =
          ChoiceProbabilities(good_values, good_used_weights, choices, parameters_.prior_weight);
      const std::vector<double> g =
          ChoiceProbabilities(bad_values, bad_used_weights, choices, parameters_.prior_weight);
      size_t best = 0;
      double best_score = -std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < candidates; ++i) {
        const size_t candidate = DrawIndex(l, random);
        const double score = SafeLog(l[candidate]) - SafeLog(g[candidate]);
        if (score > best_score) {
          best = candidate;
          best_score = score;
        }
      }
      point.push_back(dimension.choices[best]);
      continue;
    }

    if (!(dimension.high > dimension.low)) {
      point.push_back(dimension.low);
      continue;
    }
    const NumericScale scale(dimension);
    for (double& value : good_values) value = scale.ToModel(value);
    for (double& value : bad_values) value = scale.ToModel(value);
    const TruncatedGaussianMixture l(good_values, good_used_weights, scale.model_low,
                                     scale.model_high, scale.model_step, parameters_.prior_weight);
    const TruncatedGaussianMixture g(bad_values, bad_used_weights, scale.model_low,
                                     scale.model_high, scale.model_step, parameters_.prior_weight);
    double best = dimension.low;
    double best_score = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < candidates; ++i) {
      const double candidate = scale.FromModel(l.Sample(random));
      const double model_value = scale.ToModel(candidate);
      const double score = l.LogDensity(model_value) - g.LogDensity(model_value);
      if (score > best_score) {
        best = candidate;
        best_score = score;
      }
    }
    point.push_back(best);
  }
  stage_tree::ResetUnused(space_.dimensions, point);
  return point;
}

std::string EncodePoint(const stage_tree::SearchSpace& space, const Point& point) {
  std::string text;
  for (size_t d = 0; d < point.size() && d < space.dimensions.size(); ++d) {
    if (d > 0) text.push_back(' ');
    const Dimension& dimension = space.dimensions[d];
    if (dimension.kind == DimensionKind::kChoice) {
      const auto found = std::find(dimension.choices.begin(), dimension.choices.end(), point[d]);
      absl::StrAppend(&text, found - dimension.choices.begin());
    } else if (const double* number = std::get_if<double>(&point[d])) {
      absl::StrAppend(&text, ExactText(*number));
    }
  }
  return text;
}

absl::StatusOr<Point> DecodePoint(const stage_tree::SearchSpace& space, absl::string_view text) {
  const std::vector<absl::string_view> fields = absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (fields.size() != space.dimensions.size()) {
    return absl::DataLossError(absl::StrCat("a saved point has ", fields.size(),
                                            " values; the space has ", space.dimensions.size(),
                                            " dimensions"));
  }
  Point point;
  for (size_t d = 0; d < fields.size(); ++d) {
    const Dimension& dimension = space.dimensions[d];
    if (dimension.kind == DimensionKind::kChoice) {
      size_t index = 0;
      if (!absl::SimpleAtoi(fields[d], &index) || index >= dimension.choices.size()) {
        return absl::DataLossError(absl::StrCat("a saved point has choice '", fields[d],
                                                "' for dimension '", dimension.name, "'"));
      }
      point.push_back(dimension.choices[index]);
    } else {
      double number = 0;
      if (!absl::SimpleAtod(fields[d], &number)) {
        return absl::DataLossError(absl::StrCat("a saved point has value '", fields[d],
                                                "' for dimension '", dimension.name, "'"));
      }
      point.push_back(number);
    }
  }
  return point;
}

TpeSearch::TpeSearch(const AlgorithmContext& context, TpeParameters parameters, int64_t max_trials)
    : space_(*context.space),
      parameters_(parameters),
      seed_(context.seed),
      minimize_(context.minimize),
      max_steps_(context.max_steps),
      max_trials_(max_trials),
      sampler_(space_, seed_, minimize_, parameters_) {}

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> TpeSearch::Create(
    const AlgorithmContext& context) {
  absl::StatusOr<TpeParameters> parameters = TpeParametersFromConfig(context.config.tpe());
  if (!parameters.ok()) return parameters.status();
  const int64_t max_trials = context.max_trials > 0 ? context.max_trials : 100;
  return std::unique_ptr<SearchAlgorithm>(new TpeSearch(context, *parameters, max_trials));
}

void TpeSearch::OnMetric(TrialNumber trial, Step, double objective) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  if (trials_[trial].state == TrialState::kRunning) {
    trials_[trial].last_objective = objective;
    changed_.insert(trial);
  }
}

void TpeSearch::OnTrialEnded(TrialNumber trial, TrialOutcome outcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& ended = trials_[trial];
  if (ended.state != TrialState::kRunning) return;
  changed_.insert(trial);
  if (outcome == TrialOutcome::kCompleted && ended.last_objective.has_value()) {
    ended.state = TrialState::kCompleted;
    sampler_.Observe(trial, ended.point, *ended.last_objective);
  } else {
    ended.state = TrialState::kEnded;
  }
}

std::vector<Request> TpeSearch::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  while (static_cast<int64_t>(trials_.size()) < max_trials_ &&
         static_cast<int64_t>(requests.size()) < max_new_trials) {
    Trial trial;
    trial.point = sampler_.Sample(trials_.size());
    Request request;
    request.kind = Request::Kind::kNewTrial;
    request.point = trial.point;
    request.target = max_steps_;
    requests.push_back(std::move(request));
    changed_.insert(static_cast<TrialNumber>(trials_.size()));
    trials_.push_back(std::move(trial));
  }
  return requests;
}

bool TpeSearch::Finished() const { return static_cast<int64_t>(trials_.size()) >= max_trials_; }

std::string TpeSearch::TrialText(const Trial& trial) const {
  const char* name = trial.state == TrialState::kRunning     ? "running"
                     : trial.state == TrialState::kCompleted ? "completed"
                                                             : "ended";
  return absl::StrCat(name, " ",
                      trial.last_objective.has_value() ? ExactText(*trial.last_objective) : "-",
                      " ", EncodePoint(space_, trial.point));
}

absl::StatusOr<TpeSearch::Trial> TpeSearch::TrialFromText(absl::string_view text,
                                                          absl::string_view line) const {
  const std::vector<absl::string_view> head = absl::StrSplit(text, absl::MaxSplits(' ', 2));
  Trial trial;
  double objective = 0;
  const bool known_state =
      head.size() == 3 && (head[0] == "running" || head[0] == "completed" || head[0] == "ended");
  if (!known_state || (head[1] != "-" && !absl::SimpleAtod(head[1], &objective))) {
    return absl::DataLossError(absl::StrCat("bad saved state for tpe: line '", line, "'"));
  }
  trial.state = head[0] == "running"     ? TrialState::kRunning
                : head[0] == "completed" ? TrialState::kCompleted
                                         : TrialState::kEnded;
  if (head[1] != "-") trial.last_objective = objective;
  absl::StatusOr<Point> point = DecodePoint(space_, head[2]);
  if (!point.ok()) return point.status();
  trial.point = *std::move(point);
  return trial;
}

// One line per trial: "trial <running|completed|ended> <last objective or -> <point>".
std::string TpeSearch::SaveState() const {
  std::string state = "tpe\n";
  for (const Trial& trial : trials_) absl::StrAppend(&state, "trial ", TrialText(trial), "\n");
  return state;
}

absl::Status TpeSearch::LoadState(const std::string& state) {
  std::vector<absl::string_view> lines = absl::StrSplit(state, '\n', absl::SkipEmpty());
  if (lines.empty() || lines.front() != "tpe") {
    return absl::DataLossError("bad saved state for tpe: it does not start with 'tpe'");
  }
  std::vector<Trial> trials;
  TpeSampler sampler(space_, seed_, minimize_, parameters_);
  for (size_t i = 1; i < lines.size(); ++i) {
    if (!absl::ConsumePrefix(&lines[i], "trial ")) {
      return absl::DataLossError(absl::StrCat("bad saved state for tpe: line '", lines[i], "'"));
    }
    absl::StatusOr<Trial> trial = TrialFromText(lines[i], lines[i]);
    if (!trial.ok()) return trial.status();
    if (trial->state == TrialState::kCompleted && trial->last_objective.has_value()) {
      sampler.Observe(static_cast<TrialNumber>(trials.size()), trial->point,
                      *trial->last_objective);
    }
    trials.push_back(*std::move(trial));
  }
  if (static_cast<int64_t>(trials.size()) > max_trials_) {
    return absl::DataLossError(absl::StrCat("bad saved state for tpe: ", trials.size(),
                                            " trials, more than max_trials ", max_trials_));
  }
  trials_ = std::move(trials);
  sampler_ = std::move(sampler);
  changed_.clear();
  return absl::OkStatus();
}

// One line per trial proposed or changed: "trial <number> <as in SaveState>".
std::string TpeSearch::TakeStateDelta() {
  std::string delta;
  for (TrialNumber trial : changed_) {
    absl::StrAppend(&delta, "trial ", trial, " ", TrialText(trials_[trial]), "\n");
  }
  changed_.clear();
  return delta;
}

absl::Status TpeSearch::ApplyStateDelta(const std::string& delta) {
  for (absl::string_view line : absl::StrSplit(delta, '\n', absl::SkipEmpty())) {
    const std::vector<absl::string_view> head = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    int64_t number = -1;
    if (head.size() != 3 || head[0] != "trial" || !absl::SimpleAtoi(head[1], &number) ||
        number < 0 || number > static_cast<int64_t>(trials_.size()) || number >= max_trials_) {
      return absl::DataLossError(absl::StrCat("bad state delta for tpe: line '", line,
                                              "' (trial numbers follow the trials saved)"));
    }
    absl::StatusOr<Trial> trial = TrialFromText(head[2], line);
    if (!trial.ok()) return trial.status();
    if (trial->state == TrialState::kCompleted && trial->last_objective.has_value()) {
      sampler_.Observe(number, trial->point, *trial->last_objective);
    }
    if (number == static_cast<int64_t>(trials_.size())) {
      trials_.push_back(*std::move(trial));
    } else {
      trials_[number] = *std::move(trial);
    }
  }
  return absl::OkStatus();
}

proto::Issue CheckTpeConfig(const hippo::v1::TpeConfig& config) {
  if (config.gamma() >= 1) {
    return proto::Problem(
        "algorithm.tpe.gamma",
        absl::StrCat("must be below 1 (got ", proto::FormatNumber(config.gamma()),
                     "); it is the fraction of trials in the good group, e.g. 0.25"));
  }
  return std::nullopt;
}

proto::Issue TpeSearch::CheckConfig(const hippo::v1::Algorithm& config,
                                    const hippo::v1::StudySpec&) {
  return CheckTpeConfig(config.tpe());
}

}  // namespace hippo::search_algos
