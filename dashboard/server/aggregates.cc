// The server-side aggregates of a study (api.h): learning-curve density, optimization history
// bins, a parallel-coordinates sample with parameter importance. Each is bounded in size
// whatever the number of trials, and made from what the mirror keeps up to date as trials
// change (study_aggregates.h), so that making one costs its size, not the study's.
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
#include "dashboard/server/study_aggregates.h"

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

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

void AddCurve(const TrialEntry& trial, int64_t number, api::Curve* curve) {
  curve->set_trial_id(number);
  curve->set_state(static_cast<v1::TrialState>(trial.state));
  for (size_t i = 0; i < trial.curve_steps.size(); ++i) {
    curve->add_steps(trial.curve_steps[i]);
    curve->add_values(Charted(trial.curve_values[i]));
  }
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
    // The density as the mirror keeps it (study_aggregates.h): over its bins, counted as the
    // trials changed.
    const CurveDensity& density = study.aggregates.density();
    const DensityBins& bins = density.bins();
    response.set_step_bins(bins.step_bins);
    response.set_value_bins(CurveDensity::kValueBins);
    response.set_step_low(0);
    response.set_step_high(bins.step_high);
    response.set_value_low(Charted(bins.value_low));
    response.set_value_high(Charted(bins.value_high));
    *response.mutable_completed_density() = {density.completed().begin(), density.completed().end()};
    *response.mutable_pruned_density() = {density.pruned().begin(), density.pruned().end()};
    for (int32_t number : study.aggregates.ranked().Best(kBestCurves)) {
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
    // From the mirror's summaries of blocks of trials (study_aggregates.h): a few blocks a bin.
    const HistoryBins bins = study.aggregates.history().Make(study.trials, kHistoryBins);
    response.set_bin_width(bins.bin_width);
    for (size_t i = 0; i < bins.first_trial.size(); ++i) {
      response.add_trial(bins.first_trial[i]);
      response.add_low(Charted(bins.low[i]));
      response.add_high(Charted(bins.high[i]));
      response.add_best_so_far(Charted(bins.best_so_far[i]));
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
    const RankedTrials& ranked = study.aggregates.ranked();
    response.set_sampled_from(static_cast<int64_t>(ranked.size()));
    // A pool of at most kPoolRows trials spread evenly over the trial numbers (every stride-th
    // number, those with an objective), ranked: the importance comes from it, so a large study
    // costs the sort of the pool, not a pass over every trial. Sorted
    // as (objective, number) pairs, best first: contiguous keys, not rows all over the study.
    const size_t stride = std::max<size_t>(1, study.trials.size() / kPoolRows);
    std::vector<std::pair<double, int32_t>> keys;
    keys.reserve(study.trials.size() / stride + 1);
    for (size_t i = 0; i < study.trials.size(); i += stride) {
      const TrialEntry& trial = study.trials[i];
      if (!Scored(trial)) continue;
      keys.emplace_back(study.maximize ? -trial.objective : trial.objective,
                        static_cast<int32_t>(i));
    }
    std::sort(keys.begin(), keys.end());
    std::vector<int32_t> pool;
    pool.reserve(keys.size());
    for (const auto& [key, number] : keys) pool.push_back(number);
    // The best rows (the mirror's ranking), then the others among every stride-th trial number
    // (StrideSample: a sample that stays as the study grows, so that the page draws only the
    // lines that joined it since its last drawing, charts/parallel.ts). A spread over the
    // ranking instead (the pool's every k-th) changed nine in ten of a running study's sampled
    // trials at every event, and each page drew its thousand lines again.
    std::vector<int32_t> rows = ranked.Best(kBestRows);
    const std::set<int32_t> best(rows.begin(), rows.end());
    const size_t others = ranked.size() - rows.size();
    for (int32_t row : StrideSample(study.trials.size(), others, kSampleRows - rows.size(), [&](size_t i) {
           return Scored(study.trials[i]) && !best.contains(static_cast<int32_t>(i));
         })) {
      rows.push_back(row);
    }
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
