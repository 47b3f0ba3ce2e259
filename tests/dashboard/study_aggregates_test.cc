// The dashboard's incremental chart aggregates (dashboard/server/study_aggregates.h), updated
// one changed trial at a time as the mirror does, against the same aggregates computed from
// scratch over every trial, on random studies.
#include "dashboard/server/study_aggregates.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "hippo/v1/hippo.pb.h"

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

// A random trial: any state, an objective or none (or NaN), a curve of up to 8 steps with the
// odd non-finite value.
TrialEntry RandomTrial(std::mt19937& random, int max_step) {
  TrialEntry trial;
  const int states[] = {v1::TRIAL_RUNNING, v1::TRIAL_COMPLETED, v1::TRIAL_COMPLETED,
                        v1::TRIAL_STOPPED, v1::TRIAL_FAILED};
  trial.state = states[random() % 5];
  std::normal_distribution<double> value(0.5, 0.2);
  const int kind = static_cast<int>(random() % 10);
  trial.has_objective = kind > 1;
  // A few ties: objectives on a coarse grid now and then.
  trial.objective = kind == 2 ? std::numeric_limits<double>::quiet_NaN()
                    : kind == 3 ? std::round(value(random) * 10) / 10
                                : value(random);
  const int steps = static_cast<int>(random() % 9);
  int step = static_cast<int>(random() % 3);
  for (int i = 0; i < steps && step < max_step; ++i, step += 1 + static_cast<int>(random() % 3)) {
    trial.curve_steps.push_back(step);
    trial.curve_values.push_back(random() % 50 == 0 ? std::numeric_limits<float>::infinity()
                                                    : static_cast<float>(value(random)));
  }
  return trial;
}

// The best trials from scratch: every scored trial sorted, best first, ties by number.
std::vector<int32_t> BestFromScratch(const std::vector<TrialEntry>& trials, bool maximize,
                                     size_t count) {
  std::vector<int32_t> numbers;
  for (size_t i = 0; i < trials.size(); ++i) {
    if (Scored(trials[i])) numbers.push_back(static_cast<int32_t>(i));
  }
  std::sort(numbers.begin(), numbers.end(), [&](int32_t a, int32_t b) {
    if (trials[a].objective != trials[b].objective) {
      return maximize ? trials[a].objective > trials[b].objective
                      : trials[a].objective < trials[b].objective;
    }
    return a < b;
  });
  numbers.resize(std::min(count, numbers.size()));
  return numbers;
}

// The history from scratch, as the dashboard made it before it was kept incrementally.
HistoryBins HistoryFromScratch(const std::vector<TrialEntry>& trials, bool maximize,
                               int64_t max_bins) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  HistoryBins bins;
  const int64_t count = static_cast<int64_t>(trials.size());
  const int64_t width = std::max<int64_t>(1, (count + max_bins - 1) / max_bins);
  bins.bin_width = width;
  double best = nan;
  for (int64_t start = 0; start < count; start += width) {
    double low = nan, high = nan;
    for (int64_t i = start; i < std::min(count, start + width); ++i) {
      const TrialEntry& trial = trials[i];
      if (!trial.has_objective || std::isnan(trial.objective)) continue;
      low = std::isnan(low) ? trial.objective : std::min(low, trial.objective);
      high = std::isnan(high) ? trial.objective : std::max(high, trial.objective);
      if (trial.state == v1::TRIAL_COMPLETED &&
          (std::isnan(best) || (maximize ? trial.objective > best : trial.objective < best))) {
        best = trial.objective;
      }
    }
    bins.first_trial.push_back(start);
    bins.low.push_back(low);
    bins.high.push_back(high);
    bins.best_so_far.push_back(best);
  }
  return bins;
}

// The density from scratch over `bins`, as the dashboard counted it before.
std::pair<std::vector<int32_t>, std::vector<int32_t>> DensityFromScratch(
    const std::vector<TrialEntry>& trials, const DensityBins& bins) {
  const int64_t value_bins = CurveDensity::kValueBins;
  std::vector<int32_t> completed(bins.step_bins * value_bins, 0);
  std::vector<int32_t> pruned(bins.step_bins * value_bins, 0);
  const double step_scale = static_cast<double>(bins.step_bins) / bins.step_high;
  const double value_scale = value_bins / (bins.value_high - bins.value_low);
  for (const TrialEntry& trial : trials) {
    std::vector<int32_t>& density =
        trial.state == v1::TRIAL_STOPPED || trial.state == v1::TRIAL_FAILED ? pruned : completed;
    for (size_t i = 0; i < trial.curve_steps.size(); ++i) {
      const float value = trial.curve_values[i];
      if (!std::isfinite(value)) continue;
      const int64_t step_bin = std::min<int64_t>(
          bins.step_bins - 1, static_cast<int64_t>(trial.curve_steps[i] * step_scale));
      const int64_t value_bin = static_cast<int64_t>((value - bins.value_low) * value_scale);
      if (value_bin < 0 || value_bin >= value_bins) continue;
      ++density[step_bin * value_bins + value_bin];
    }
  }
  return {completed, pruned};
}

void ExpectSameHistory(const HistoryBins& got, const HistoryBins& want) {
  ASSERT_EQ(got.bin_width, want.bin_width);
  ASSERT_EQ(got.first_trial, want.first_trial);
  for (size_t i = 0; i < want.low.size(); ++i) {
    SCOPED_TRACE(i);
    // NaN where none: compared as "both NaN" or equal.
    for (const auto& [a, b] : {std::pair{got.low[i], want.low[i]}, {got.high[i], want.high[i]},
                               {got.best_so_far[i], want.best_so_far[i]}}) {
      if (std::isnan(b)) {
        EXPECT_TRUE(std::isnan(a));
      } else {
        EXPECT_EQ(a, b);
      }
    }
  }
}

// A study that grows and changes as the mirror sees a running one: new trials appended (some
// past the end, leaving placeholders as the mirror does), existing ones changed, each change
// handed to the aggregates; after each batch, every aggregate against its from-scratch value.
void CheckRandomStudy(bool maximize, uint32_t seed, int batches, int max_step) {
  std::mt19937 random(seed);
  std::vector<TrialEntry> trials;
  StudyAggregates aggregates;
  aggregates.SetDirection(maximize);
  for (int batch = 0; batch < batches; ++batch) {
    const int changes = 1 + static_cast<int>(random() % 300);
    for (int c = 0; c < changes; ++c) {
      size_t number;
      if (trials.empty() || random() % 3 == 0) {
        number = trials.size() + random() % 3;  // new, sometimes past the end
      } else {
        number = random() % trials.size();
      }
      while (trials.size() <= number) trials.emplace_back().state = v1::TRIAL_RUNNING;
      const TrialEntry before = std::exchange(trials[number], RandomTrial(random, max_step));
      aggregates.TrialChanged(trials, number, before);
    }
    aggregates.Settle(trials, /*spec_max_steps=*/batch % 7 == 0 ? max_step / 2 : 0);
    SCOPED_TRACE(testing::Message() << "batch " << batch << ", " << trials.size() << " trials");

    EXPECT_EQ(aggregates.ranked().Best(50), BestFromScratch(trials, maximize, 50));
    size_t scored = 0;
    for (const TrialEntry& trial : trials) scored += Scored(trial);
    EXPECT_EQ(aggregates.ranked().size(), scored);

    for (int64_t max_bins : {1000, 37, 1}) {
      ExpectSameHistory(aggregates.history().Make(trials, max_bins),
                        HistoryFromScratch(trials, maximize, max_bins));
    }

    const DensityBins& bins = aggregates.density().bins();
    int64_t max_step_seen = batch % 7 == 0 ? max_step / 2 : 0;
    for (const TrialEntry& trial : trials) {
      if (!trial.curve_steps.empty()) {
        max_step_seen = std::max<int64_t>(max_step_seen, trial.curve_steps.back() + 1);
      }
    }
    EXPECT_EQ(bins.step_high, static_cast<double>(std::max<int64_t>(max_step_seen, 1)));
    EXPECT_EQ(bins.step_bins, std::clamp<int64_t>(max_step_seen, 1, CurveDensity::kMaxStepBins));
    const auto [completed, pruned] = DensityFromScratch(trials, bins);
    EXPECT_EQ(aggregates.density().completed(), completed);
    EXPECT_EQ(aggregates.density().pruned(), pruned);
  }
}

TEST(StudyAggregatesTest, IncrementalAggregatesEqualFromScratchWhenMinimizing) {
  CheckRandomStudy(/*maximize=*/false, /*seed=*/1, /*batches=*/60, /*max_step=*/30);
}

TEST(StudyAggregatesTest, IncrementalAggregatesEqualFromScratchWhenMaximizing) {
  CheckRandomStudy(/*maximize=*/true, /*seed=*/2, /*batches=*/60, /*max_step=*/30);
}

TEST(StudyAggregatesTest, IncrementalAggregatesEqualFromScratchWithMoreStepsThanBins) {
  CheckRandomStudy(/*maximize=*/false, /*seed=*/3, /*batches=*/30, /*max_step=*/1000);
}

// The density on fixed bins, updated change by change (a changed trial's old curve out, its new
// one in), never rebuilt: equal to the count from scratch after every change.
TEST(StudyAggregatesTest, DensityUpdatedChangeByChangeEqualsTheCountFromScratch) {
  std::mt19937 random(4);
  std::vector<TrialEntry> trials;
  for (int i = 0; i < 500; ++i) trials.push_back(RandomTrial(random, 40));
  CurveDensity density;
  const DensityBins bins{/*step_bins=*/20, /*step_high=*/40, /*value_low=*/0.1, /*value_high=*/0.9};
  density.Rebuild(trials, bins);
  for (int change = 0; change < 3000; ++change) {
    const size_t number = random() % trials.size();
    const TrialEntry before = std::exchange(trials[number], RandomTrial(random, 40));
    density.Add(before, -1);
    density.Add(trials[number], +1);
    if (change % 100 != 0) continue;
    SCOPED_TRACE(change);
    const auto [completed, pruned] = DensityFromScratch(trials, bins);
    ASSERT_EQ(density.completed(), completed);
    ASSERT_EQ(density.pruned(), pruned);
  }
}

// The value range follows the study: a fresh density's is the sampled range of the curves, and
// one whose values all moved is rebuilt on the new range once enough trials changed.
TEST(StudyAggregatesTest, DensityRangeFollowsTheCurvesValues) {
  std::vector<TrialEntry> trials;
  StudyAggregates aggregates;
  aggregates.SetDirection(false);
  auto with_value = [](float value) {
    TrialEntry trial;
    trial.state = v1::TRIAL_COMPLETED;
    trial.curve_steps = {0, 1};
    trial.curve_values = {value, value + 1};
    return trial;
  };
  for (int i = 0; i < 200; ++i) {
    trials.push_back(with_value(static_cast<float>(i % 10)));
    aggregates.TrialChanged(trials, trials.size() - 1, TrialEntry{});
  }
  aggregates.Settle(trials, 0);
  const auto [low, high] = SampledValueRange(trials);
  EXPECT_EQ(aggregates.density().bins().value_low, low);
  EXPECT_EQ(aggregates.density().bins().value_high, high);
  for (size_t i = 0; i < trials.size(); ++i) {
    const TrialEntry before = std::exchange(trials[i], with_value(100 + static_cast<float>(i % 10)));
    aggregates.TrialChanged(trials, i, before);
  }
  aggregates.Settle(trials, 0);
  const auto [new_low, new_high] = SampledValueRange(trials);
  EXPECT_EQ(aggregates.density().bins().value_low, new_low);
  EXPECT_EQ(aggregates.density().bins().value_high, new_high);
  const auto [completed, pruned] = DensityFromScratch(trials, aggregates.density().bins());
  EXPECT_EQ(aggregates.density().completed(), completed);
}

// The parallel coordinates' sample (besides the best trials) stays as the study grows: the
// numbers sampled from a study are sampled from it grown, until the stride doubles; within
// `room`, and the stride as small as fits.
TEST(StudyAggregatesTest, StrideSampleStaysAsTheStudyGrows) {
  const auto every = [](size_t) { return true; };
  const std::vector<int32_t> before = StrideSample(40000, 40000, 950, every);
  const std::vector<int32_t> after = StrideSample(48000, 48000, 950, every);
  ASSERT_EQ(before.size(), 40000u / 64);  // 64: the smallest power of two that fits 855
  for (int32_t number : before) EXPECT_TRUE(std::binary_search(after.begin(), after.end(), number)) << number;
  EXPECT_LE(after.size(), 950u);
  // The study doubled: every other number left, none joined but new ones.
  const std::vector<int32_t> doubled = StrideSample(80000, 80000, 950, every);
  EXPECT_EQ(doubled.size(), 80000u / 128);
  for (int32_t number : doubled) EXPECT_EQ(number % 128, 0);
  // Numbers not eligible (unscored trials, the best ones) are skipped and the stride is as small
  // as fits the eligible ones; never more than `room` (more eligible numbers than expected).
  const auto odd = [](size_t i) { return i % 2 == 1; };
  const std::vector<int32_t> small = StrideSample(1500, 750, 950, odd);
  EXPECT_EQ(small.size(), 750u);
  EXPECT_TRUE(std::all_of(small.begin(), small.end(), [](int32_t n) { return n % 2 == 1; }));
  EXPECT_TRUE(StrideSample(0, 0, 950, every).empty());
  EXPECT_EQ(StrideSample(4000, 100, 950, [](size_t i) { return i < 1000; }).size(), 950u);
}

}  // namespace
}  // namespace hippo::dashboard
