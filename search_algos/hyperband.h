// Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh, Talwalkar, "Hyperband: A Novel Bandit-Based
// Approach to Hyperparameter Optimization", JMLR 18(185), 2018), Algorithm 1, with steps as the
// resource.
//
// R = max_resource (default max_steps), η = reduction_factor (default 3),
// s_max = floor(log_η(R)). Bracket s = s_max, ..., 0 starts n = ceil((s_max + 1) / (s + 1) · η^s)
// random trials with r = R·η^(-s) steps and runs successive halving: round i = 0, ..., s trains
// n_i = floor(n·η^(-i)) trials to r_i = r·η^i steps, then keeps the best floor(n_i / η)
// (= n_(i+1) for an integer η; we keep n_(i+1)) for round i + 1.
//
// Steps: r_i is rounded to the nearest whole step, at least one step above the round before;
// the last round of every bracket trains to R exactly. For R = 120, η = 3 the brackets train to
// {1, 4, 13, 40, 120}, {4, 13, 40, 120}, {13, 40, 120}, {40, 120} and {120} steps.
//
// Scheduling: the brackets run concurrently. New trials are proposed bracket by bracket (every
// trial of bracket s_max, then of s_max - 1, ...) as the capacity given to Suggest allows, so a
// bracket's trials have consecutive numbers and trial k's point is SamplePoint(seed, k). Within
// a bracket successive halving is synchronous, as in the paper: round i ends when every trial
// in it has reached r_i (or failed); then the best n_(i+1) are extended to r_(i+1) (kExtend)
// and the others stopped (kStop). Trials reaching R < max_steps are stopped too (they are
// done). Running brackets side by side keeps workers busy while one bracket waits for its
// slowest trial; the results are those of the sequential loop, since brackets are independent.
// Extensions take slots like new trials: Suggest proposes at most max_new_trials minus the
// extensions it makes.
//
// Budget: with max_trials unset, one run of the paper's outer loop (every bracket once: 143
// trials for R = 81, η = 3). With max_trials set, brackets are taken in the order s_max, ..., 0
// again and again, each one that still fits in the trials left, until none fits.
//
// A trial's objective at a round is the one reported for the round's last step (r_i − 1).
// Ties rank the earlier trial first; a trial without an objective is never kept.
// State: per bracket its round, per trial its round, state and objective (text).
#ifndef HIPPO_SEARCH_ALGOS_HYPERBAND_H_
#define HIPPO_SEARCH_ALGOS_HYPERBAND_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

struct HyperbandRound {
  int64_t n = 0;   // n_i: trials in the round
  double r = 0;    // r_i: the resource, as the paper has it
  Step steps = 0;  // r_i as whole steps: what the trials train to
};

struct HyperbandBracket {
  int64_t s = 0;
  int64_t n = 0;  // trials started
  double r = 0;   // resource of the first round
  std::vector<HyperbandRound> rounds;
};

// Brackets s = s_max, ..., 0 for R = max_resource and η = reduction_factor. InvalidArgument
// naming the algorithm.hyperband field that is out of range (η must be > 1, and far enough
// from 1 that the rounds of a bracket get distinct steps).
absl::StatusOr<std::vector<HyperbandBracket>> HyperbandBrackets(Step max_resource,
                                                                double reduction_factor);

// Hyperband runs its brackets in cycles, each kept in memory from the start: a study's
// max_trials may fill at most kMaxHyperbandCycles cycles (about 10^5 trials at the defaults),
// so that a large max_trials cannot hold the coordinator while it lays them out.
inline constexpr int64_t kMaxHyperbandCycles = 1000;

// The most trials `brackets` (one cycle) allow in budget.max_trials.
int64_t HyperbandMaxTrials(const std::vector<HyperbandBracket>& brackets);

class Hyperband : public SearchAlgorithm {
 public:
  // InvalidArgument naming the field of algorithm.hyperband or budget that is wrong.
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The spec's algorithm.hyperband, and a budget.max_trials that fits a bracket; see
  // ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber trial, Step target) override;
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  bool Finished() const override;
  // The steps of every round of every bracket.
  std::vector<Step> BranchSteps() const override;
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;

  // The brackets in the order they are started.
  const std::vector<HyperbandBracket>& brackets() const { return brackets_; }

 private:
  enum class TrialState { kRunning, kPaused, kEnded };
  struct Trial {
    size_t bracket = 0;
    size_t round = 0;  // the round it trains in, or waits in
    TrialState state = TrialState::kRunning;
    std::optional<double> objective;  // at its round's steps
    std::optional<std::pair<Step, double>> last_metric;
  };
  struct Progress {
    size_t round = 0;  // the round under way
    bool finished = false;
  };

  Hyperband(const AlgorithmContext& context, std::vector<HyperbandBracket> brackets);

  // Ends rounds of `bracket` while every trial of its current round has reported: extends the
  // best to the next round, stops the rest. Returns the number of extensions.
  int64_t Advance(size_t bracket, std::vector<Request>& requests);
  bool Better(double a, double b) const { return minimize_ ? a < b : a > b; }

  stage_tree::SearchSpace space_;
  uint64_t seed_;
  bool minimize_;
  Step max_steps_;
  std::vector<HyperbandBracket> brackets_;
  std::vector<TrialNumber> first_trial_;  // per bracket; one more entry: the total
  std::vector<Progress> progress_;        // per bracket
  std::vector<Trial> trials_;             // by trial number
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_HYPERBAND_H_
