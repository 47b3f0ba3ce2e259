// Grid search: every point of a finite space, in GridPoints order, each trained to max_steps.
#ifndef HIPPO_SEARCH_ALGOS_GRID_SEARCH_H_
#define HIPPO_SEARCH_ALGOS_GRID_SEARCH_H_

#include "search_algos/distinct_sampler.h"
#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

// Shared by algorithms that propose a fixed sequence of independent trials: `PointAt(k)` for
// k = 0 .. count - 1, each to max_steps. State: how many were proposed.
class IndependentTrials : public SearchAlgorithm {
 public:
  IndependentTrials(int64_t count, Step max_steps) : count_(count), max_steps_(max_steps) {}

  void OnMetric(TrialNumber, Step, double) override {}
  void OnTrialReachedTarget(TrialNumber, Step) override {}
  void OnTrialEnded(TrialNumber, TrialOutcome) override {}
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  bool Finished() const override { return proposed_ >= count_; }
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;

 protected:
  virtual stage_tree::Point PointAt(int64_t index) const = 0;

 private:
  int64_t count_;
  Step max_steps_;
  int64_t proposed_ = 0;
};

class GridSearch : public IndependentTrials {
 public:
  // InvalidArgument if the space has a continuous dimension.
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The most points a grid may have (docs/security.md): Create counts them one by one.
  static constexpr std::int64_t kMaxGridPoints = 1'000'000;
  // Every domain of the spec's search space is finite, and the grid has at most kMaxGridPoints
  // points; see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

 private:
  GridSearch(std::vector<stage_tree::Dimension> dimensions,
             std::vector<std::vector<stage_tree::Value>> axes, int64_t count, Step max_steps);
  // The grid in GridPoints order without holding it in memory: an odometer over the axes, the
  // last dimension turning fastest and a dimension inactive at the point (one_of) staying at
  // its first value. Points are asked for in order, so each is one step from the last; an
  // earlier index (after LoadState) starts again from the first point.
  stage_tree::Point PointAt(int64_t index) const override;
  // Turns the odometer to the next point; false after the last.
  bool Advance() const;
  void Reset() const;

  std::vector<stage_tree::Dimension> dimensions_;
  std::vector<std::vector<stage_tree::Value>> axes_;
  mutable std::vector<size_t> digits_;  // the odometer: an index into each axis
  mutable stage_tree::Point point_;     // the point at the odometer, at index at_
  mutable int64_t at_ = 0;
};

// Random search: max_trials points (10 when unset), drawn by a DistinctSampler from the seed:
// without replacement from a finite space (unless algorithm.sample_with_replacement), so at
// most as many as the space has configurations; EndReason says when that cut the study short.
class RandomSearch : public IndependentTrials {
 public:
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  std::string EndReason() const override;

 private:
  RandomSearch(DistinctSampler sampler, int64_t requested, int64_t count, Step max_steps)
      : IndependentTrials(count, max_steps),
        sampler_(std::move(sampler)),
        requested_(requested),
        trials_(count) {}
  stage_tree::Point PointAt(int64_t index) const override;

  // Draws are made in index order and kept: a cache behind the const PointAt.
  mutable DistinctSampler sampler_;
  int64_t requested_;  // max_trials, or the default
  int64_t trials_;     // what it proposes: at most the space's configurations
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_GRID_SEARCH_H_
