// StudyAggregates: what a study's charts (aggregates.cc) are made from, kept up to date by the
// mirror as each of its trials changes, so that making a chart of a large running study costs
// the chart's size, not the study's. A running study grows by hundreds of trials a second; its
// charts made from every trial at each event took the dashboard's threads most of their CPU
// (and had to be made less often than the events went out, so a chart lagged behind them).
//
//   RankedTrials   the trials with an objective, best first (the best curves, the parameters'
//                  best rows, how many were scored).
//   HistoryBlocks  per block of kBlock trial numbers: the lowest and highest objective and the
//                  best completed one, from which any binning of the history is made with a few
//                  blocks per bin.
//   CurveDensity   the learning curves' density over fixed bins: a changed trial takes its old
//                  curve out and puts its new one in. The value range (the 1st to 99th
//                  percentiles of a sample of the curves' values) is estimated again whenever
//                  5 % of the trials changed; the density is rebuilt when it moved by more than
//                  1 % of its width or the step bins changed (a study's range settles early, so
//                  rebuilds are rare).
//
// Every member is written by the mirror under its exclusive lock and read under its shared one.
#ifndef HIPPO_DASHBOARD_SERVER_STUDY_AGGREGATES_H_
#define HIPPO_DASHBOARD_SERVER_STUDY_AGGREGATES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "dashboard/server/trial_entry.h"

namespace hippo::dashboard {

class RankedTrials {
 public:
  // Best first: the highest objective when `maximize`, else the lowest; ties by trial number.
  explicit RankedTrials(bool maximize = false) : maximize_(maximize) {}
  // Trial `number` went from `before` to `after` (either may be unscored).
  void Update(int32_t number, const TrialEntry& before, const TrialEntry& after);
  size_t size() const { return keys_.size(); }
  // The numbers of the `count` best, best first.
  std::vector<int32_t> Best(size_t count) const;

 private:
  // (the objective, negated when maximizing, so that the best comes first; the trial number)
  std::pair<double, int32_t> Key(int32_t number, const TrialEntry& trial) const;
  bool maximize_;
  absl::btree_set<std::pair<double, int32_t>> keys_;
};

// The optimization history's bins (api.History's trial, low, high, best_so_far).
struct HistoryBins {
  int64_t bin_width = 1;
  std::vector<int64_t> first_trial;
  std::vector<double> low, high, best_so_far;  // NaN where none
};

class HistoryBlocks {
 public:
  static constexpr size_t kBlock = 64;
  explicit HistoryBlocks(bool maximize = false) : maximize_(maximize) {}
  // Trial `number` of `trials` changed (or was added): its block is summarised again.
  void Update(const std::vector<TrialEntry>& trials, size_t number);
  // The history of `trials` in at most `max_bins` bins of equal width: the lowest and highest
  // objective of each (every scored trial), and the best completed one up to its end.
  HistoryBins Make(const std::vector<TrialEntry>& trials, int64_t max_bins) const;

 private:
  struct Summary {
    double low, high, best;  // NaN where none
  };
  // Folds `trial` into `summary`.
  void Fold(const TrialEntry& trial, Summary& summary) const;
  bool maximize_;
  std::vector<Summary> blocks_;
};

// The bins of the learning curves' density.
struct DensityBins {
  int64_t step_bins = 1;
  double step_high = 1;  // steps [0, step_high) over step_bins bins
  double value_low = 0, value_high = 1;
  bool operator==(const DensityBins&) const = default;
};

class CurveDensity {
 public:
  static constexpr int64_t kMaxStepBins = 200;
  static constexpr int64_t kValueBins = 80;
  const DensityBins& bins() const { return bins_; }
  // step_bins × kValueBins counts, step bin major: completed (and running) trials' points,
  // and stopped or failed trials'.
  const std::vector<int32_t>& completed() const { return completed_; }
  const std::vector<int32_t>& pruned() const { return pruned_; }
  // Counts every trial's curve again over `bins`.
  void Rebuild(const std::vector<TrialEntry>& trials, const DensityBins& bins);
  // Adds the trial's curve points (`sign` +1) or takes them out (-1).
  void Add(const TrialEntry& trial, int sign);

 private:
  DensityBins bins_;
  std::vector<int32_t> completed_ = std::vector<int32_t>(kValueBins, 0);
  std::vector<int32_t> pruned_ = std::vector<int32_t>(kValueBins, 0);
};

// The 1st and 99th percentiles of the curves' finite values, from every stride-th trial's curve
// (at most about 20 000 curves): a few diverged curves do not flatten the rest. {0, 1} for none.
std::pair<double, double> SampledValueRange(const std::vector<TrialEntry>& trials);

// The numbers below `count` that `eligible` takes (at most `room`), among every stride-th
// number, the stride the smallest power of two that leaves `expected` eligible numbers (how many
// there are in all, a count that only grows) within nine tenths of `room`: the parallel
// coordinates' sample of a study's trials besides its best (aggregates.cc), which stays as the
// study grows (a new number joins it when it is a multiple of the stride; the stride doubles,
// thinning the sample out, only when the eligible numbers did), so that the page draws only the
// lines that joined it since its last drawing.
std::vector<int32_t> StrideSample(size_t count, size_t expected, size_t room,
                                  const std::function<bool(size_t)>& eligible);

class StudyAggregates {
 public:
  // A study's objective direction is fixed with its spec: set once, before any trial.
  void SetDirection(bool maximize);
  // Trial `number` of `trials` changed from `before` (a default TrialEntry when it is new) to
  // trials[number].
  void TrialChanged(const std::vector<TrialEntry>& trials, size_t number, const TrialEntry& before);
  // After a batch of changes: the density follows the study's steps (`spec_max_steps` or the
  // longest curve) and its value range (see above).
  void Settle(const std::vector<TrialEntry>& trials, int64_t spec_max_steps);

  const RankedTrials& ranked() const { return ranked_; }
  const HistoryBlocks& history() const { return history_; }
  const CurveDensity& density() const { return density_; }

 private:
  RankedTrials ranked_;
  HistoryBlocks history_;
  CurveDensity density_;
  bool density_built_ = false;
  std::map<int32_t, int64_t> last_steps_;  // each curve's last step -> how many end there
  size_t changes_since_range_ = 0;         // trial changes since the range was estimated
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_STUDY_AGGREGATES_H_
