// Grid search: every point of a finite space, in GridPoints order, each trained to max_steps.
#ifndef HIPPO_SEARCH_ALGOS_GRID_SEARCH_H_
#define HIPPO_SEARCH_ALGOS_GRID_SEARCH_H_

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
  // The most points a grid may have: Create expands every point in memory.
  static constexpr std::int64_t kMaxGridPoints = 1'000'000;
  // Every domain of the spec's search space is finite, and the grid has at most kMaxGridPoints
  // points; see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

 private:
  GridSearch(std::vector<stage_tree::Point> points, int64_t count, Step max_steps)
      : IndependentTrials(count, max_steps), points_(std::move(points)) {}
  stage_tree::Point PointAt(int64_t index) const override { return points_[index]; }

  std::vector<stage_tree::Point> points_;
};

// Random search: max_trials points (10 when unset), the k-th drawn from (seed, k).
class RandomSearch : public IndependentTrials {
 public:
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);

 private:
  RandomSearch(const stage_tree::SearchSpace& space, uint64_t seed, int64_t count, Step max_steps)
      : IndependentTrials(count, max_steps), space_(space), seed_(seed) {}
  stage_tree::Point PointAt(int64_t index) const override;

  stage_tree::SearchSpace space_;
  uint64_t seed_;
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_GRID_SEARCH_H_
