// Evolution by network morphisms: aging evolution (evolution.h) whose children start from their
// parent's trained state whenever their architecture only grows the parent's, so that a child
// trains a few steps on top of what its parent learned instead of everything from scratch (as
// NASH, Elsken et al. 2017, does by hill climbing). The trainer carries the weights over by
// function-preserving morphisms (the torch trainer: wider layers, more layers, larger kernels;
// docs/concepts.md).
//
//   - The first population_size (P) trials are random points trained from scratch for
//     initial_steps.
//   - Each of the `children` (C) trials: parent = the winner of sample_size (S) members drawn
//     uniformly, with replacement, from the population, compared at equal steps: the member
//     with the higher standing among all the trials read at its own target (Standing) wins,
//     then the fitter, then the first drawn. Members are read after different steps (1 to
//     max_steps along a chain), and one read later reads higher for its longer training alone;
//     compared by objective, the longest chains won every tournament and the search collapsed
//     onto one family (benchmarks/README.md, "morphism"). Mutations
//     are morphisms when possible: if the parent uses a `grow` dimension that has a larger value,
//     that no earlier child of the parent grew, and the child's steps fit in budget.max_steps,
//     one such dimension, drawn uniformly, rises to its next larger value (the child extends
//     its parent), or, for a `grow` entry NAME+N, to one of its next N larger values drawn
//     uniformly (so that a chain of few generations can reach the large networks); the child
//     inherits the parent's state at the parent's target and trains child_steps more (a kMorph
//     request). A child of a morphed child inherits again, so chains
//     of morphisms grow a network step by step for up to (max_steps - initial_steps) /
//     child_steps generations. Its hyper-parameter sequences
//     are its parent's, read at the steps it trains: the learning-rate schedule goes on from
//     where the inherited state left it, as if one network had trained all along. A parent that
//     has nothing left to grow (fully grown, or its morphs all tried) but steps left trains on
//     by the identity morphism, once: the child has the parent's point, inherits its state and
//     trains child_steps more, so that a grown network still reaches the end of its schedule.
//     A parent already trained on once trains on again under another schedule: one dimension of
//     its non-structural parameters (its hyper-parameter sequences) drawn afresh, read at the
//     steps the child trains (the schedule is a hyper-parameter of the stage after the fork, as
//     in PBT's explore), once per distinct point. Otherwise (the parent trained to max_steps, or
//     the schedule drawn was tried) one dimension the parent uses with more than one value,
//     drawn uniformly, is drawn afresh and the child trains from scratch for initial_steps.
//     Dimensions the change brings into use (the width of a layer a deeper network appends)
//     take, in a morph, the value of the last `grow` dimension before them that the parent uses
//     (the appended layer starts as an identity of the layer before it), and are drawn afresh
//     otherwise; those it takes out of use get their placeholder back.
//   - Fitness: the objective a trial reports at its target. A trial that reaches its target
//     joins the population; when it then holds more than P members the OLDEST leaves (aging),
//     except the fittest member, which stays (elitism: the best network found so far keeps
//     being drawn, and the next oldest leaves instead). A failed trial never joins. Members stay paused (their state is kept for their children);
//     once every trial was proposed and none trains, every trial that reached its target ends
//     as completed there (kStop with its target) and the study ends.
//   - Children start once S members scored; at most max(1, P / 2) children train at once.
#ifndef HIPPO_SEARCH_ALGOS_MORPHISM_H_
#define HIPPO_SEARCH_ALGOS_MORPHISM_H_

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "search_algos/population.h"

namespace hippo::search_algos {

class MorphismEvolution : public PopulationSearch {
 public:
  // algorithm.morphism (see MorphismConfig); InvalidArgument naming the field if one is out of
  // range or `grow` names no ordered numeric dimension of the space.
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber trial, Step target) override;
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  bool Finished() const override;
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;

  // The parent a child inherited from, -1 for a trial trained from scratch.
  TrialNumber InheritedFrom(TrialNumber trial) const;
  // The member a child was made from (its tournament's winner), whether it inherited or not; -1
  // for an initial member or an unknown trial.
  TrialNumber ParentOf(TrialNumber trial) const;
  // A scored trial's standing among every trial read at the same target (after as many steps):
  // the share of those readings its objective beats, a tie counting half (itself included), in
  // (0, 1); 0.5 for a trial not scored. Logarithmic in the readings (readings_).
  double Standing(TrialNumber trial) const;
  // Whether member `a` wins a tournament against member `b`: the higher standing, then the
  // fitter. So a network read after 1 step is judged against the others read after 1 step, not
  // against one read after 5 (whose objective is higher for its longer training alone).
  bool Beats(TrialNumber a, TrialNumber b) const;

 private:
  struct Options {
    Step initial_steps = 0;
    Step child_steps = 0;
    std::vector<size_t> grow;  // dimension indices
    std::vector<int64_t> most_steps;  // per `grow` entry: the most steps a morph raises it at once
    Step max_steps = 0;
    std::vector<bool> structural;  // per dimension: of a structural parameter
  };
  enum class TrialState { kTraining, kReached, kEnded };
  struct Trial {
    stage_tree::Point point;
    TrialState state = TrialState::kTraining;
    Step target = 0;
    TrialNumber parent = -1;  // children: the tournament's winner
    bool inherits = false;    // a morph: starts from the parent's state
    bool has_objective = false;
    double objective = 0;
    // The children that inherited its state (kept beside the record, not saved: LoadState
    // rebuilds them), so that a tournament's winner's earlier morphs are found without a scan.
    std::vector<TrialNumber> heirs;
  };

  MorphismEvolution(const stage_tree::SearchSpace& space, Sizes sizes, Options options,
                    const AlgorithmContext& context)
      : PopulationSearch(space, sizes, context.minimize, context.seed, Aging::kOldestButTheBest),
        options_(std::move(options)) {}

  // The next child: tournament, then a morph of the winner if it can grow, else a mutation.
  // `winner` is set to the parent.
  Request MakeChild(std::mt19937_64& random, TrialNumber& winner) const;
  bool Grows(size_t dimension) const;
  // The most steps a morph raises a `grow` dimension at once (NAME+N: N; a plain name: 1).
  int64_t MostSteps(size_t dimension) const;
  // `child` (the parent's point) with one dimension of a non-structural parameter (a
  // hyper-parameter sequence, e.g. the learning-rate schedule) drawn afresh; false if there is
  // none to change.
  bool ChangeSchedule(const stage_tree::Point& parent, stage_tree::Point& child,
                      std::mt19937_64& random) const;
  // A trial that reached its target with a score joins the population.
  void JoinIfScored(TrialNumber trial);
  // Appends a proposed trial (kTraining) to trials_, indexing it (heirs, in-flight counts).
  void Admit(Trial trial);
  // Sets a trial's state, keeping the in-flight counts.
  void SetState(TrialNumber trial, TrialState state);
  // Records `trial`'s objective at its target in readings_ (AddReading) or takes it out.
  void AddReading(const Trial& record);
  void RemoveReading(const Trial& record);
  // heirs_, readings_ and the in-flight counts from trials_ (after LoadState).
  void Reindex();

  Options options_;
  std::vector<Trial> trials_;
  bool stopped_members_ = false;
  // Per target: the objectives read there (NaN left out), ascending. Every tournament compares
  // its members' standings among them, so a child costs a few binary searches, not a scan of
  // every trial (a study of 100 000 children would otherwise take the coordinator minutes).
  std::map<Step, std::vector<double>> readings_;
  int64_t training_ = 0;           // trials in kTraining
  int64_t children_training_ = 0;  // of them, children (numbers from population_size on)
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_MORPHISM_H_
