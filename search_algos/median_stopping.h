// Median stopping rule (Golovin et al., "Google Vizier: A Service for Black-Box Optimization",
// KDD 2017, section 3.2.1): "a pending trial x_t is stopped at step s if the trial's best
// objective value by step s is strictly worse than the median value of the running averages
// o_{1:s} of all completed trials' objectives reported up to s".
//
// Trials are drawn by random search (budget.max_trials of them, 20 when unset) and trained in
// intervals: a trial's targets are interval_steps, 2 * interval_steps, ... and max_steps. At
// each target below max_steps the rule decides whether the trial is extended to its next target
// or stopped, so a trial is only ever stopped at a target, where its state is checkpointed.
//
// Steps are the coordinator's: the objective after training a trial to target t is reported at
// step t - 1, and that step is the s of the rule. The rule is not applied
//   - before n_startup_trials trials have completed (trained to max_steps), nor
//   - at a trial's warm-up steps 0 .. n_warmup_steps - 1 (as in Optuna's MedianPruner).
// A completed trial enters the median at step s only if it reported an objective at or before s;
// a trial with no objective yet is not stopped. A stopped trial is not a completed trial: only
// trials trained to max_steps set the bar.
//
// Parallelism: the rule needs completed trials, so it only bites when the study runs fewer
// trials at once than it has in total (budget.max_parallel_trials).
#ifndef HIPPO_SEARCH_ALGOS_MEDIAN_STOPPING_H_
#define HIPPO_SEARCH_ALGOS_MEDIAN_STOPPING_H_

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

class MedianStoppingRule : public SearchAlgorithm {
 public:
  // algorithm.median: n_startup_trials (default 5), n_warmup_steps (default 0), interval_steps
  // (default 1), sampler ("random", the default, is the only one). proto3 cannot tell 0 from
  // unset, so 0 means the default. InvalidArgument naming the field if one is out of range.
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The spec's algorithm.median; see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber trial, Step target) override;
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  // First the decisions for the trials paused at a target, in the order they got there (extend
  // or stop); then new trials. Extensions take room like new trials (the coordinator counts a
  // paused trial as not running): at most `max_new_trials` minus the extensions are new.
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  // Every trial was proposed and has ended.
  bool Finished() const override;
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;

 private:
  struct Options {
    int64_t n_startup_trials = 5;
    Step n_warmup_steps = 0;
    Step interval_steps = 1;
    int64_t max_trials = 20;
    Step max_steps = 0;
    bool minimize = false;
    uint64_t seed = 0;
  };

  enum class TrialState { kTraining, kPaused, kCompleted, kEnded };

  struct Trial {
    TrialState state = TrialState::kTraining;
    Step target = 0;                    // the step it trains (or trained) to
    std::map<Step, double> objectives;  // by step
  };

  MedianStoppingRule(const stage_tree::SearchSpace& space, const Options& options)
      : space_(space), options_(options) {}

  // The rule at step `step` for `trial`: true if it should be stopped there.
  bool ShouldStop(const Trial& trial, Step step) const;
  // The median of the running averages of the completed trials' objectives up to `step`;
  // false if no completed trial reported an objective by then.
  bool MedianOfRunningAverages(Step step, double* median) const;
  bool Worse(double a, double b) const { return options_.minimize ? a > b : a < b; }

  stage_tree::SearchSpace space_;
  Options options_;
  std::vector<Trial> trials_;       // by trial number; the k-th is SamplePoint(seed, k)
  std::deque<TrialNumber> paused_;  // awaiting a decision, in the order they reached targets
  int64_t completed_ = 0;
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_MEDIAN_STOPPING_H_
