// Asynchronous successive halving, ASHA (Li, Jamieson, Rostamizadeh, Gonina, Hardt, Recht,
// Talwalkar, "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020;
// arXiv:1810.05934), Algorithm 2.
//
// Rungs k = 0, 1, ... train to r·η^k steps (r = min_resource, η = reduction_factor), rounded
// to whole steps and capped at R = max_resource; the last rung is R. A new trial trains to the
// first rung and pauses there. The paper's get_job, from the top rung down: a trial is
// promotable from rung k if it is paused at rung k, has not been promoted from it, and is in
// the top floor(|rung k| / η) of the trials that completed rung k; it is promoted to rung k + 1.
// If no trial is promotable, the bottom rung grows by a new trial.
//
// As requests (docs/architecture.md):
// - Suggest extends every promotable trial to its next rung (kExtend): a promotion happens as
//   soon as a rung allows it, whichever trial's result made it possible. Then it proposes new
//   trials while fewer than max_trials (100 when unset) were proposed: at most max_new_trials
//   minus the promotions it made (a promoted trial takes a slot, as get_job gives it a
//   worker), so the study's parallelism holds.
// - A trial that reaches R < max_steps is done and is stopped (kStop).
// - End of the study: once max_trials trials were proposed and none is running, no result can
//   change any rung: nothing is promotable ever again. Suggest then stops (kStop) every trial
//   still paused, and Finished() becomes true. Until then paused trials wait, since a result
//   still to come can make one promotable.
//
// A trial's objective at a rung is the one reported for the step before the rung (the rung's
// last step). Ties rank the earlier trial first. Sampler: "random" (default) draws trial k's
// point as SamplePoint(seed, k), like random search; "tpe" uses TpeSampler (algorithm.tpe's
// parameters), which sees each trial's objective at the highest rung it reached, ranked by that
// rung first (a trial promoted further counts as better, as Optuna's TPE ranks pruned trials by
// the step they reached): objectives of different rungs are not comparable otherwise.
// State: the trials, with their points, rungs, states and objectives (text).
#ifndef HIPPO_SEARCH_ALGOS_ASHA_H_
#define HIPPO_SEARCH_ALGOS_ASHA_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "search_algos/distinct_sampler.h"
#include "search_algos/search_algorithm.h"
#include "search_algos/tpe.h"

namespace hippo::search_algos {

// The rung steps: round(r·η^k) while below R (each at least one step above the one before),
// then R. InvalidArgument naming the algorithm.asha field that is out of range.
absl::StatusOr<std::vector<Step>> AshaRungs(Step min_resource, Step max_resource,
                                            double reduction_factor);

class Asha : public SearchAlgorithm {
 public:
  // InvalidArgument naming the field of algorithm.asha (or algorithm.tpe) that is wrong.
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The spec's algorithm.asha (and algorithm.tpe for the TPE sampler); see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber trial, Step target) override;
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  bool Finished() const override;
  std::string EndReason() const override;
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;

  const std::vector<Step>& rungs() const { return rungs_; }
  std::vector<Step> BranchSteps() const override { return rungs_; }

 private:
  enum class TrialState { kRunning, kPaused, kEnded };
  struct Trial {
    stage_tree::Point point;
    size_t rung = 0;  // the rung it trains to, or is paused at
    TrialState state = TrialState::kRunning;
    std::vector<double> objectives;  // at rungs 0, 1, ...: the rungs it completed with a result
    std::optional<std::pair<Step, double>> last_metric;
  };

  Asha(const AlgorithmContext& context, std::vector<Step> rungs, double reduction_factor,
       int64_t max_trials, std::optional<TpeParameters> tpe_parameters);

  // Trials paused at `rung`, not promoted from it, in the top floor(|rung| / η); best first.
  std::vector<TrialNumber> Promotable(size_t rung) const;
  bool Better(double a, double b) const { return minimize_ ? a < b : a > b; }
  void ObserveForTpe(TrialNumber trial);

  stage_tree::SearchSpace space_;
  uint64_t seed_;
  bool minimize_;
  Step max_steps_;
  std::vector<Step> rungs_;
  double reduction_factor_;
  int64_t max_trials_;
  std::optional<TpeParameters> tpe_parameters_;  // set when the sampler is "tpe"
  std::optional<TpeSampler> tpe_;
  // The random sampler (when the sampler is not tpe): without replacement unless
  // algorithm.sample_with_replacement, so max_trials_ is at most the space's configurations.
  std::optional<DistinctSampler> random_;
  int64_t requested_trials_ = 0;  // budget.max_trials, or the default
  std::vector<Trial> trials_;     // by trial number
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_ASHA_H_
