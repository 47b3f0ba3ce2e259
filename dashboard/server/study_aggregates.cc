#include "dashboard/server/study_aggregates.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "hippo/v1/hippo.pb.h"

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The value range is estimated again once this share of the trials changed (the estimate
// samples up to kRangeSampleCurves curves: at every refresh of a running study it took a tenth
// of the dashboard's CPU)...
constexpr double kRangeCheckShare = 0.05;
// ...and the density rebuilt when an end moved by more than this share of the range's width.
constexpr double kRangeMoveShare = 0.01;
// Curves sampled for the value range, at most about this many.
constexpr size_t kRangeSampleCurves = 20000;

double Lower(double a, double b) { return std::isnan(a) || b < a ? b : a; }
double Higher(double a, double b) { return std::isnan(a) || b > a ? b : a; }

bool Pruned(const TrialEntry& trial) {
  return trial.state == v1::TRIAL_STOPPED || trial.state == v1::TRIAL_FAILED;
}

}  // namespace

std::pair<double, int32_t> RankedTrials::Key(int32_t number, const TrialEntry& trial) const {
  return {maximize_ ? -trial.objective : trial.objective, number};
}

void RankedTrials::Update(int32_t number, const TrialEntry& before, const TrialEntry& after) {
  if (Scored(before)) keys_.erase(Key(number, before));
  if (Scored(after)) keys_.insert(Key(number, after));
}

std::vector<int32_t> RankedTrials::Best(size_t count) const {
  std::vector<int32_t> best;
  best.reserve(std::min(count, keys_.size()));
  for (auto it = keys_.begin(); it != keys_.end() && best.size() < count; ++it) {
    best.push_back(it->second);
  }
  return best;
}

void HistoryBlocks::Fold(const TrialEntry& trial, Summary& summary) const {
  if (!Scored(trial)) return;
  summary.low = Lower(summary.low, trial.objective);
  summary.high = Higher(summary.high, trial.objective);
  // The best so far counts completed trials only, as the study's best trial does.
  if (trial.state == v1::TRIAL_COMPLETED) {
    summary.best = maximize_ ? Higher(summary.best, trial.objective)
                             : Lower(summary.best, trial.objective);
  }
}

void HistoryBlocks::Update(const std::vector<TrialEntry>& trials, size_t number) {
  const size_t blocks = (trials.size() + kBlock - 1) / kBlock;
  if (blocks_.size() < blocks) blocks_.resize(blocks, Summary{kNaN, kNaN, kNaN});
  const size_t block = number / kBlock;
  Summary summary{kNaN, kNaN, kNaN};
  const size_t end = std::min(trials.size(), (block + 1) * kBlock);
  for (size_t i = block * kBlock; i < end; ++i) Fold(trials[i], summary);
  blocks_[block] = summary;
}

HistoryBins HistoryBlocks::Make(const std::vector<TrialEntry>& trials, int64_t max_bins) const {
  HistoryBins bins;
  const size_t count = trials.size();
  const size_t width =
      std::max<size_t>(1, (count + static_cast<size_t>(max_bins) - 1) / static_cast<size_t>(max_bins));
  bins.bin_width = static_cast<int64_t>(width);
  double best = kNaN;
  for (size_t start = 0; start < count; start += width) {
    const size_t end = std::min(count, start + width);
    Summary bin{kNaN, kNaN, kNaN};
    for (size_t i = start; i < end;) {
      const size_t block = i / kBlock;
      if (i % kBlock == 0 && i + kBlock <= end && block < blocks_.size()) {
        // A whole block: its summary (trials past the last summarised block are placeholders
        // of the mirror, with no objective, and are read one by one).
        const Summary& whole = blocks_[block];
        if (!std::isnan(whole.low)) bin.low = Lower(bin.low, whole.low);
        if (!std::isnan(whole.high)) bin.high = Higher(bin.high, whole.high);
        if (!std::isnan(whole.best)) {
          bin.best = maximize_ ? Higher(bin.best, whole.best) : Lower(bin.best, whole.best);
        }
        i += kBlock;
      } else {
        Fold(trials[i], bin);
        ++i;
      }
    }
    if (!std::isnan(bin.best)) best = maximize_ ? Higher(best, bin.best) : Lower(best, bin.best);
    bins.first_trial.push_back(static_cast<int64_t>(start));
    bins.low.push_back(bin.low);
    bins.high.push_back(bin.high);
    bins.best_so_far.push_back(best);
  }
  return bins;
}

void CurveDensity::Add(const TrialEntry& trial, int sign) {
  if (trial.curve_steps.empty()) return;
  std::vector<int32_t>& density = Pruned(trial) ? pruned_ : completed_;
  const double step_scale = static_cast<double>(bins_.step_bins) / bins_.step_high;
  const double value_scale = kValueBins / (bins_.value_high - bins_.value_low);
  for (size_t i = 0; i < trial.curve_steps.size(); ++i) {
    const float value = trial.curve_values[i];
    if (!std::isfinite(value)) continue;
    const int64_t step_bin = std::min<int64_t>(
        bins_.step_bins - 1, static_cast<int64_t>(trial.curve_steps[i] * step_scale));
    const int64_t value_bin = static_cast<int64_t>((value - bins_.value_low) * value_scale);
    if (step_bin < 0 || value_bin < 0 || value_bin >= kValueBins) continue;
    density[step_bin * kValueBins + value_bin] += sign;
  }
}

void CurveDensity::Rebuild(const std::vector<TrialEntry>& trials, const DensityBins& bins) {
  bins_ = bins;
  completed_.assign(bins.step_bins * kValueBins, 0);
  pruned_.assign(bins.step_bins * kValueBins, 0);
  for (const TrialEntry& trial : trials) Add(trial, +1);
}

std::vector<int32_t> StrideSample(size_t count, size_t expected, size_t room,
                                  const std::function<bool(size_t)>& eligible) {
  // The stride from `expected` alone, which only grows, with a tenth to spare: a stride from
  // the numbers the stride takes went back and forth where they were about `room` (a trial in
  // and out of the best ones), and with it half the sample.
  size_t stride = 1;
  while (expected * 10 > stride * room * 9) stride *= 2;
  std::vector<int32_t> sample;
  for (size_t i = 0; i < count && sample.size() < room; i += stride) {
    if (eligible(i)) sample.push_back(static_cast<int32_t>(i));
  }
  return sample;
}

std::pair<double, double> SampledValueRange(const std::vector<TrialEntry>& trials) {
  // Every stride-th trial's curve: the sample costs its size, not the study's.
  const size_t stride = std::max<size_t>(1, trials.size() / kRangeSampleCurves);
  std::vector<float> sample;
  for (size_t i = 0; i < trials.size(); i += stride) {
    for (float value : trials[i].curve_values) {
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

void StudyAggregates::SetDirection(bool maximize) {
  ranked_ = RankedTrials(maximize);
  history_ = HistoryBlocks(maximize);
}

void StudyAggregates::TrialChanged(const std::vector<TrialEntry>& trials, size_t number,
                                   const TrialEntry& before) {
  const TrialEntry& after = trials[number];
  ranked_.Update(static_cast<int32_t>(number), before, after);
  history_.Update(trials, number);
  if (density_built_) {
    density_.Add(before, -1);
    density_.Add(after, +1);
  }
  if (!before.curve_steps.empty()) {
    auto it = last_steps_.find(before.curve_steps.back());
    if (it != last_steps_.end() && --it->second == 0) last_steps_.erase(it);
  }
  if (!after.curve_steps.empty()) ++last_steps_[after.curve_steps.back()];
  ++changes_since_range_;
}

void StudyAggregates::Settle(const std::vector<TrialEntry>& trials, int64_t spec_max_steps) {
  int64_t max_step = spec_max_steps;
  if (!last_steps_.empty()) {
    max_step = std::max<int64_t>(max_step, static_cast<int64_t>(last_steps_.rbegin()->first) + 1);
  }
  DensityBins wanted = density_.bins();
  wanted.step_bins = std::clamp<int64_t>(max_step, 1, CurveDensity::kMaxStepBins);
  wanted.step_high = static_cast<double>(std::max<int64_t>(max_step, 1));
  if (!density_built_ ||
      static_cast<double>(changes_since_range_) >=
          kRangeCheckShare * static_cast<double>(trials.size())) {
    changes_since_range_ = 0;
    const auto [low, high] = SampledValueRange(trials);
    const double moved = kRangeMoveShare * (wanted.value_high - wanted.value_low);
    if (!density_built_ || std::abs(low - wanted.value_low) > moved ||
        std::abs(high - wanted.value_high) > moved) {
      wanted.value_low = low;
      wanted.value_high = high;
    }
  }
  if (density_built_ && wanted == density_.bins()) return;
  density_.Rebuild(trials, wanted);
  density_built_ = true;
}

}  // namespace hippo::dashboard
