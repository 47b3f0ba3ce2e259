// The server-side aggregates of a study (api.h): learning-curve density, optimization history
// bins, a parallel-coordinates sample with parameter importance. Each is bounded in size
// whatever the number of trials.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dashboard/server/api.h"

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

constexpr int64_t kMaxStepBins = 200;
constexpr int64_t kValueBins = 80;
constexpr int kBestCurves = 10;
constexpr int64_t kMaxSelected = 500;
constexpr int64_t kHistoryBins = 1000;
constexpr size_t kSampleRows = 1000;
constexpr size_t kBestRows = 50;
constexpr int kImportanceBins = 10;
constexpr size_t kPoolRows = 20000;

// A value as the charts are sent it: to 6 significant digits, whose difference from the whole
// double no chart of a few thousand pixels shows. The JSON of a whole double takes up to 17
// digits: the history's 3 000 values and the parameter sample's 3 000 or more, most of the bytes
// of an event with the charts (made once, then written to every watching stream and parsed by
// every page), were twice as long, and printing them took the dashboard's threads a fifth more
// CPU. Rounding keeps the order: a sample's axis bounds stay the bounds of its rounded values.
double Charted(double value) {
  if (!std::isfinite(value) || value == 0) return value;
  const int digits = 5 - static_cast<int>(std::floor(std::log10(std::abs(value))));
  if (digits < 0 || digits > 22) return value;  // 10^digits is exact up to 10^22
  const double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

bool Better(const StudyData& study, const TrialEntry& a, const TrialEntry& b) {
  return study.maximize ? a.objective > b.objective : a.objective < b.objective;
}

// The numbers of the trials with an objective.
std::vector<int32_t> WithObjective(const StudyData& study) {
  std::vector<int32_t> numbers;
  numbers.reserve(study.trials.size());
  for (size_t i = 0; i < study.trials.size(); ++i) {
    const TrialEntry& trial = study.trials[i];
    if (trial.has_objective && !std::isnan(trial.objective))
      numbers.push_back(static_cast<int32_t>(i));
  }
  return numbers;
}

// Best first, ties by trial number.
auto BestFirst(const StudyData& study) {
  return [&study](int32_t a, int32_t b) {
    const TrialEntry& x = study.trials[a];
    const TrialEntry& y = study.trials[b];
    if (x.objective != y.objective) return Better(study, x, y);
    return a < b;
  };
}

// The `count` best of `numbers`, best first: a partial sort, linear in the study's size (a
// running study's charts are made again as it grows; a full sort of every trial was their
// largest cost).
std::vector<int32_t> Best(const StudyData& study, std::vector<int32_t> numbers, size_t count) {
  count = std::min(count, numbers.size());
  std::partial_sort(numbers.begin(), numbers.begin() + count, numbers.end(), BestFirst(study));
  numbers.resize(count);
  return numbers;
}

void AddCurve(const TrialEntry& trial, int64_t number, api::Curve* curve) {
  curve->set_trial_id(number);
  curve->set_state(static_cast<v1::TrialState>(trial.state));
  for (size_t i = 0; i < trial.curve_steps.size(); ++i) {
    curve->add_steps(trial.curve_steps[i]);
    curve->add_values(Charted(trial.curve_values[i]));
  }
}

// The 1st and 99th percentiles of the curves' finite values (a sample of them at most), so
// that a few diverged curves do not flatten the rest.
std::pair<double, double> ValueRange(const StudyData& study) {
  // Every stride-th trial's curve: the sample costs its size, not the study's.
  const size_t stride = std::max<size_t>(1, study.trials.size() / 20000);
  std::vector<float> sample;
  for (size_t i = 0; i < study.trials.size(); i += stride) {
    for (float value : study.trials[i].curve_values) {
      if (std::isfinite(value)) sample.push_back(value);
    }
  }
  if (sample.empty()) return {0, 1};
  const size_t low_at = sample.size() / 100;
  const size_t high_at = sample.size() - 1 - sample.size() / 100;
  std::nth_element(sample.begin(), sample.begin() + low_at, sample.end());
  const double low = sample[low_at];
  std::nth_element(sample.begin(), sample.begin() + high_at, sample.end());
  double high = sample[high_at];
  if (high <= low) high = low + 1;
  return {low, high};
}

}  // namespace

absl::StatusOr<api::CurvesOverview> Curves(const Mirror& mirror, const std::string& study_id,
                                           const Query& query) {
  std::vector<int64_t> selected;
  bool all = false;
  if (auto it = query.find("trials"); it != query.end() && !it->second.empty()) {
    if (it->second == "all") {
      all = true;
    } else {
      for (absl::string_view part : absl::StrSplit(it->second, ',', absl::SkipWhitespace())) {
        int64_t id = 0;
        if (!absl::SimpleAtoi(part, &id) || id < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("trials: '", part, "' is not a trial number (give 1,2,3 or all)"));
        }
        selected.push_back(id);
      }
      if (static_cast<int64_t>(selected.size()) > kMaxSelected) {
        return absl::InvalidArgumentError(
            absl::StrCat("trials: at most ", kMaxSelected, " curves in full at once"));
      }
    }
  }
  api::CurvesOverview response;
  absl::Status error;
  absl::Status status = mirror.ReadStudy(study_id, [&](const StudyData& study) {
    response.set_version(study.version);
    response.set_metric(study.metric);
    const int64_t trials = static_cast<int64_t>(study.trials.size());
    if (all && trials > kMaxSelected) {
      error = absl::InvalidArgumentError(
          absl::StrCat("trials: all is for studies of at most ", kMaxSelected,
                       " trials (this one has ", trials, "); name the trials to send in full"));
      return;
    }
    int64_t max_step = study.Spec().budget().max_steps();
    for (const TrialEntry& trial : study.trials) {
      if (!trial.curve_steps.empty())
        max_step = std::max<int64_t>(max_step, trial.curve_steps.back() + 1);
    }
    const int64_t step_bins = std::clamp<int64_t>(max_step, 1, kMaxStepBins);
    const auto [low, high] = ValueRange(study);
    response.set_step_bins(step_bins);
    response.set_value_bins(kValueBins);
    response.set_step_low(0);
    response.set_step_high(static_cast<double>(std::max<int64_t>(max_step, 1)));
    response.set_value_low(Charted(low));
    response.set_value_high(Charted(high));
    std::vector<int32_t> completed(step_bins * kValueBins, 0);
    std::vector<int32_t> pruned(step_bins * kValueBins, 0);
    const double step_scale = static_cast<double>(step_bins) / response.step_high();
    const double value_scale = kValueBins / (high - low);
    for (const TrialEntry& trial : study.trials) {
      std::vector<int32_t>& density =
          trial.state == v1::TRIAL_STOPPED || trial.state == v1::TRIAL_FAILED ? pruned : completed;
      for (size_t i = 0; i < trial.curve_steps.size(); ++i) {
        const float value = trial.curve_values[i];
        if (!std::isfinite(value)) continue;
        const int64_t step_bin = std::min<int64_t>(
            step_bins - 1, static_cast<int64_t>(trial.curve_steps[i] * step_scale));
        const int64_t value_bin = static_cast<int64_t>((value - low) * value_scale);
        if (value_bin < 0 || value_bin >= kValueBins) continue;
        ++density[step_bin * kValueBins + value_bin];
      }
    }
    *response.mutable_completed_density() = {completed.begin(), completed.end()};
    *response.mutable_pruned_density() = {pruned.begin(), pruned.end()};
    for (int32_t number : Best(study, WithObjective(study), kBestCurves)) {
      AddCurve(study.trials[number], number, response.add_best());
    }
    response.set_best_trial_id(study.view.has_best_trial() ? study.view.best_trial().id() : -1);
    if (all) {
      for (int64_t id = 0; id < trials; ++id)
        AddCurve(study.trials[id], id, response.add_selected());
    }
    for (int64_t id : selected) {
      if (id < trials) AddCurve(study.trials[id], id, response.add_selected());
    }
  });
  if (!status.ok()) return status;
  if (!error.ok()) return error;
  return response;
}

absl::StatusOr<api::History> HistoryOf(const Mirror& mirror, const std::string& study_id) {
  api::History response;
  absl::Status status = mirror.ReadStudy(study_id, [&](const StudyData& study) {
    response.set_version(study.version);
    response.set_maximize(study.maximize);
    const int64_t trials = static_cast<int64_t>(study.trials.size());
    const int64_t width = std::max<int64_t>(1, (trials + kHistoryBins - 1) / kHistoryBins);
    response.set_bin_width(width);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    double best = nan;
    for (int64_t start = 0; start < trials; start += width) {
      double low = nan, high = nan;
      for (int64_t i = start; i < std::min(trials, start + width); ++i) {
        const TrialEntry& trial = study.trials[i];
        if (!trial.has_objective || std::isnan(trial.objective)) continue;
        low = std::isnan(low) ? trial.objective : std::min(low, trial.objective);
        high = std::isnan(high) ? trial.objective : std::max(high, trial.objective);
        // The best so far counts completed trials only, as the study's best trial does.
        if (trial.state == v1::TRIAL_COMPLETED &&
            (std::isnan(best) ||
             (study.maximize ? trial.objective > best : trial.objective < best))) {
          best = trial.objective;
        }
      }
      response.add_trial(start);
      response.add_low(Charted(low));
      response.add_high(Charted(high));
      response.add_best_so_far(Charted(best));
    }
  });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<api::ParameterSample> ParametersOf(const Mirror& mirror,
                                                  const std::string& study_id) {
  api::ParameterSample response;
  absl::Status status = mirror.ReadStudy(study_id, [&](const StudyData& study) {
    response.set_version(study.version);
    const std::vector<int32_t> scored = WithObjective(study);
    response.set_sampled_from(static_cast<int64_t>(scored.size()));
    // A pool of at most kPoolRows trials spread evenly over the trial numbers, ranked: the
    // sample's spread and the importance come from it, so a large study costs a pass over its
    // trials and the sort of the pool, not a sort of every trial.
    const size_t stride = std::max<size_t>(1, scored.size() / kPoolRows);
    std::vector<int32_t> pool;
    for (size_t i = 0; i < scored.size(); i += stride) pool.push_back(scored[i]);
    std::sort(pool.begin(), pool.end(), BestFirst(study));
    // The best rows, then an even spread of the pool's others (ranked order: all quality
    // levels).
    std::vector<int32_t> rows = Best(study, scored, kBestRows);
    const std::set<int32_t> best(rows.begin(), rows.end());
    std::vector<int32_t> rest;
    for (int32_t number : pool) {
      if (!best.contains(number)) rest.push_back(number);
    }
    const size_t take = std::min(rest.size(), kSampleRows - rows.size());
    for (size_t k = 0; k < take; ++k) rows.push_back(rest[k * rest.size() / take]);
    const size_t axes = study.parameters.size();
    for (size_t a = 0; a < axes; ++a) {
      const ParameterColumn& column = study.parameters[a];
      api::ParameterAxis* axis = response.add_axes();
      axis->set_name(column.name);
      axis->set_log(column.log);
      axis->set_categorical(column.categorical);
      for (const std::string& category : column.categories) axis->add_categories(category);
      double low = std::numeric_limits<double>::infinity(), high = -low;
      for (int32_t row : rows) {
        const double value = study.trials[row].parameters[a];
        if (std::isnan(value)) continue;
        low = std::min(low, value);
        high = std::max(high, value);
      }
      axis->set_low(std::isfinite(low) ? Charted(low) : 0);
      axis->set_high(std::isfinite(high) ? Charted(high) : 1);
    }
    for (int32_t row : rows) {
      const TrialEntry& trial = study.trials[row];
      response.add_trial_ids(row);
      for (size_t a = 0; a < axes; ++a) response.add_values(Charted(trial.parameters[a]));
      response.add_values(Charted(trial.objective));
    }
    // Importance: the share of the objective's variance explained by each parameter's
    // quantile bins (its correlation ratio), normalised to sum to 1 over the parameters.
    if (pool.size() < 3) return;
    double mean = 0;
    for (int32_t i : pool) mean += study.trials[i].objective;
    mean /= static_cast<double>(pool.size());
    double total = 0;
    for (int32_t i : pool) total += std::pow(study.trials[i].objective - mean, 2);
    if (total <= 0) return;
    std::vector<double> ratio(axes, 0);
    for (size_t a = 0; a < axes; ++a) {
      std::vector<std::pair<double, double>> points;  // (parameter, objective)
      for (int32_t i : pool) {
        const double value = study.trials[i].parameters[a];
        if (!std::isnan(value)) points.emplace_back(value, study.trials[i].objective);
      }
      if (points.size() < 3) continue;
      std::sort(points.begin(), points.end());
      // Groups: equal values stay together; else quantile bins.
      double between = 0;
      size_t start = 0;
      const size_t per_bin = std::max<size_t>(1, points.size() / kImportanceBins);
      while (start < points.size()) {
        size_t end = std::min(points.size(), start + per_bin);
        while (end < points.size() && points[end].first == points[end - 1].first) ++end;
        double group = 0;
        for (size_t i = start; i < end; ++i) group += points[i].second;
        group /= static_cast<double>(end - start);
        between += static_cast<double>(end - start) * std::pow(group - mean, 2);
        start = end;
      }
      ratio[a] = between / total;
    }
    const double sum = std::accumulate(ratio.begin(), ratio.end(), 0.0);
    for (size_t a = 0; a < axes; ++a) {
      response.mutable_axes(a)->set_importance(sum > 0 ? ratio[a] / sum : 0);
    }
  });
  if (!status.ok()) return status;
  return response;
}

}  // namespace hippo::dashboard
