// Regularized (aging) evolution (Real et al., "Regularized Evolution for Image Classifier
// Architecture Search", AAAI 2019, Algorithm 1).
//
// The population is a queue of at most population_size (P) members, oldest first, in the order
// they finished. The first P trials are random points trained to max_steps. Once S of them have
// joined the population (or all P have ended, fewer having scored), each of the `children` (C)
// trials is
//   - parent = the fittest of sample_size (S) members drawn uniformly from the population as it
//     is when the child is proposed, with replacement as in the paper's Algorithm 1 (the first
//     drawn wins a tie);
//   - child = mutate(parent): one dimension, drawn uniformly among those with more than one
//     value, changes. An ordered numeric dimension (int, float with a step, choice of numbers)
//     steps to a neighbouring value (either side, whichever exists) half of the time and is
//     resampled the other half; any other dimension is resampled. A resampled value differs from
//     the parent's (redrawn a few times; a continuous draw differs almost surely). Only the
//     dimensions the parent uses are drawn from (stage_tree::IsActive: conditional parameters
//     the parent has, the chosen one_of alternative); a change that brings dimensions into use
//     (a deeper network's new per-layer widths) draws them afresh, and those it takes out of use
//     go back to their placeholder.
// A member's fitness is its final objective, the one reported at max_steps. When a trial trained
// to max_steps joins the population and the population then holds more than P members, the
// OLDEST is removed (aging), not the worst. A failed trial never joins.
//
// ASHA option (EvolutionConfig.asha set): each child, not the initial members, is trained in
// rungs min_resource * eta^k (k = 0, 1, ... while below max_steps) and then max_steps. A child
// that reaches a rung is extended to the next one only if it is in the top 1/eta of the n
// children that have reached that rung so far, itself included: if its rank there (1 + the
// number of those strictly better) is at most ceil(n / eta); otherwise it is stopped. The
// decision is made once, when the child arrives (ASHA proper would also promote a waiting child
// later), so the first child at a rung always goes on. A stopped child counts as one of the C
// children but has no final objective, so it never joins the population.
//
// Asynchronous start: Algorithm 1 is sequential and trains the whole initial population before
// the first cycle. In parallel, that barrier costs time: in W6 (P = 16 trained to 120 steps, 64
// children in ASHA rungs, 8 workers) no child could start before t = 240, and the last
// children's rung chains (up to 120 steps each) then drained with most workers idle: makespan
// 490 against a bound of 426.9 (1.148). So, as a free worker of an asynchronous steady-state
// evolution would, a child takes its tournament from the members trained so far as soon as S of
// them are; initial members still training join the population when they end and age as any
// member. Selection, mutation and aging are Algorithm 1's; only when the first children start
// changes. The price: early children see only part of the initial population, and the initial
// members left behind wait (the scheduler puts children's chains first), so they act as filler
// work. In W6 the best initial member (trial 11) joined after 60 of the 64 children had been
// proposed. W6 now takes 470 against 438.1 (1.073) with the same best objective (0.7960, trial
// 11) and the same best child (0.7747); over W6 with seeds 0-9, the best found was the same for
// 7 seeds, higher for 2 (+0.0004, +0.0002) and lower for 1 (-0.0005).
//
// Parallelism: the paper's workers each train one child at a time; here at most
// max(1, P / 2) distinct children train at once (budget.max_parallel_trials can lower it
// further), so that parents are chosen from a population that has seen most earlier children;
// with the whole budget in flight at once, evolution would be random search. Children with the
// same point (a mutation can repeat one in flight) count once: the coordinator trains them as
// one, so they take one worker, as one child of the paper would.
#ifndef HIPPO_SEARCH_ALGOS_EVOLUTION_H_
#define HIPPO_SEARCH_ALGOS_EVOLUTION_H_

#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "search_algos/population.h"

namespace hippo::search_algos {

class RegularizedEvolution : public PopulationSearch {
 public:
  // How a child was made: the members drawn for its tournament, in draw order, and the winner.
  struct Lineage {
    std::vector<TrialNumber> sample;
    TrialNumber parent = -1;
  };

  // algorithm.evolution: population_size (default 20), sample_size (default 5, at most
  // population_size), children (default budget.max_trials - population_size when max_trials is
  // set, else 100); asha: min_resource (required), max_resource (unset or budget.max_steps),
  // reduction_factor (default 3, > 1). budget.max_trials, when set, caps population_size +
  // children. proto3 cannot tell 0 from unset, so 0 means the default. InvalidArgument naming
  // the field if one is out of range.
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The spec's algorithm.evolution, including its asha block; see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber trial, Step target) override;
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  // First the rung decisions for children paused at a rung (extend or stop), in the order they
  // got there; then the initial members; then children. Promotions take room like new trials
  // (the coordinator counts a paused child as not running): at most `max_new_trials` minus the
  // promotions are new.
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  // Every trial was proposed (or no parent is left to make a child from) and has ended.
  bool Finished() const override;
  std::vector<Step> BranchSteps() const override { return options_.rungs; }
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;

  // How `child` was made; nullptr for an initial member or an unknown trial.
  const Lineage* LineageOf(TrialNumber child) const;

 private:
  struct Options {
    std::vector<Step> rungs;  // ASHA rungs below max_steps; empty: children train to max_steps
    double reduction_factor = 3;
    Step max_steps = 0;
  };

  enum class TrialState { kTraining, kPaused, kEnded };

  struct Trial {
    stage_tree::Point point;
    TrialState state = TrialState::kTraining;
    Step target = 0;
    bool has_objective = false;
    Step objective_step = 0;
    double objective = 0;  // the latest reported
    Lineage lineage;       // children only
  };

  RegularizedEvolution(const stage_tree::SearchSpace& space, Sizes sizes, Options options,
                       const AlgorithmContext& context)
      : PopulationSearch(space, sizes, context.minimize, context.seed),
        options_(std::move(options)) {}

  bool IsChild(TrialNumber trial) const { return trial >= sizes_.population_size; }
  int64_t ChildrenProposed() const;
  // Children not ended, those with the same point counted once.
  int64_t ChildrenInFlight() const;
  // The decision for a child paused at rung `rung`: true to promote it to the next.
  bool Promote(const Trial& child, Step rung) const;
  // Tournament selection and mutation for the next child.
  Trial MakeChild(std::mt19937_64& random) const;
  stage_tree::Point Mutate(const stage_tree::Point& parent, std::mt19937_64& random) const;
  Step FirstTarget(TrialNumber trial) const;
  Step NextTarget(Step target) const;

  Options options_;
  std::vector<Trial> trials_;                         // by trial number
  std::map<Step, std::vector<double>> rung_results_;  // objectives of children at each rung
  std::deque<TrialNumber> paused_;                    // children awaiting a rung decision
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_EVOLUTION_H_
