// Population based training (Jaderberg et al., "Population Based Training of Neural Networks",
// 2017): truncation selection to exploit, perturbation to explore.
//
// population_size members, drawn by random search, train in rounds of perturbation_interval
// steps: their targets are the round boundaries interval, 2 * interval, ... and max_steps.
// When every member has reached a boundary b < max_steps, the members are ranked by their last
// reported objective and
//   - exploit: each member of the bottom quantile_fraction is replaced by a member drawn
//     uniformly from the top quantile_fraction: kFork(trial = top member, fork_step = b,
//     point = explored point, target = next boundary), then kStop(bottom member). The fork
//     continues the top member's model from step b (a new branch of the stage tree) with the
//     explored hyper-parameters;
//   - explore: each perturbed dimension the top member's point uses (an inactive conditional
//     parameter or unchosen one_of alternative is left out) is, with resample_probability,
//     resampled from the search space, or else multiplied by a factor drawn uniformly from
//     perturbation_factors and clamped to the dimension's range (and rounded to its step). A
//     choice of numbers moves to the neighbouring choice in the factor's direction;
//   - every other member is extended to the next boundary.
// A member of the population keeps a slot; a fork takes the slot of the member it replaces.
//
// Rounds are synchronous: a member that reaches a boundary waits there (paused, its state
// checkpointed) until the whole population has reported the round. The paper (and Ray Tune)
// exploit asynchronously, each member against the latest results of the others; synchronous
// rounds make every decision a function of complete rounds, so a study gives the same trials
// however its workers are timed, and all forks of a round branch at the same step.
//
// Details the paper leaves open:
//   - each quantile holds ceil(n * quantile_fraction) of the n ranked members, at most n / 2;
//   - a member with no objective ranks last; ties go to the lower slot;
//   - a member that fails, or is stopped from outside, leaves its slot empty; at the next
//     boundary the slot is refilled like a bottom member, by a fork of a top member;
//   - when budget.max_parallel_trials leaves too little room, forks wait for a later Suggest
//     (the member they replace waits with them), and the next round waits for them;
//   - budget.max_trials counts the initial members and the forks (population_size must not
//     exceed it): once it is used up, no member is replaced any more, the bottom ones go on
//     with their own hyper-parameters and an empty slot stays empty. While a round has fewer
//     trials left than slots to refill, empty slots go first, then the worst members.
// The study ends when the population has reached max_steps.
#ifndef HIPPO_SEARCH_ALGOS_PBT_H_
#define HIPPO_SEARCH_ALGOS_PBT_H_

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

class PopulationBasedTraining : public SearchAlgorithm {
 public:
  // algorithm.pbt: population_size (default 16, at least 2), perturbation_interval (required),
  // quantile_fraction (default 0.25, at most 0.5), perturbed_parameters (names of dimensions,
  // "lr.initial", or of parameters, "lr", meaning all their numeric dimensions; default: every
  // numeric dimension of a non-structural parameter), perturbation_factors (default 0.8, 1.2),
  // resample_probability (default 0.25). proto3 cannot tell 0 from unset, so 0 means the
  // default. InvalidArgument naming the field if a value is out of range, or if a perturbed
  // parameter is unknown, not numeric or structural (a fork cannot change the model).
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The spec's algorithm.pbt, whose perturbed parameters must be searched and may change
  // during training; see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber trial, Step target) override;
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  // First the initial members, then, once a round is complete, its extensions, then its forks
  // (each followed by the stop of the member it replaces). Extensions take room like new
  // trials (the coordinator counts a paused member as not running): at most `max_new_trials`
  // minus the extensions are new trials or forks.
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  // The population was proposed and every member has ended (reached max_steps or failed).
  bool Finished() const override;
  // The exploit/explore boundaries: multiples of perturbation_interval.
  std::vector<Step> BranchSteps() const override;
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;

 private:
  struct Options {
    int64_t population_size = 16;
    Step perturbation_interval = 0;
    double quantile_fraction = 0.25;
    std::vector<size_t> perturbed_dimensions;
    std::vector<double> perturbation_factors = {0.8, 1.2};
    double resample_probability = 0.25;
    Step max_steps = 0;
    int64_t max_trials = 0;  // budget.max_trials, forks included; 0: no limit
    bool minimize = false;
    uint64_t seed = 0;
  };

  struct Trial {
    stage_tree::Point point;  // its hyper-parameters (from its fork step on, for a fork)
    int64_t slot = 0;         // the population slot it holds or held
    Step reached = 0;         // the last target it reached
    bool has_objective = false;
    Step objective_step = 0;
    double objective = 0;  // the latest reported
    bool ended = false;
  };

  // An exploit decided at a boundary and not yet requested.
  struct PendingFork {
    int64_t slot = 0;
    TrialNumber parent = 0;
    Step fork_step = 0;
    stage_tree::Point point;
  };

  PopulationBasedTraining(const stage_tree::SearchSpace& space, Options options)
      : space_(space), options_(std::move(options)), boundary_(FirstBoundary()) {}

  Step FirstBoundary() const {
    return std::min(options_.perturbation_interval, options_.max_steps);
  }
  // Every member holds a slot and has reached boundary_ < max_steps; no fork is pending.
  bool RoundComplete() const;
  // Ranks the members at boundary_, appends the extensions to `requests`, queues the forks and
  // moves boundary_ to the next round's.
  void ExploitAndExplore(std::vector<Request>& requests);
  stage_tree::Point Explore(const stage_tree::Point& point, std::mt19937_64& random) const;
  stage_tree::Value Perturb(const stage_tree::Dimension& dimension, const stage_tree::Value& value,
                            double factor) const;
  bool Better(double a, double b) const { return options_.minimize ? a < b : a > b; }

  stage_tree::SearchSpace space_;
  Options options_;
  std::vector<Trial> trials_;       // by trial number
  std::vector<TrialNumber> slots_;  // the member holding each slot; -1 while empty
  Step boundary_ = 0;               // the boundary the population trains to
  std::vector<PendingFork> pending_forks_;
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_PBT_H_
