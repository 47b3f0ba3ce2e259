// What the population algorithms share: regularized evolution (evolution.h) and evolution by
// network morphisms (morphism.h) keep an aging population of trained members, pick a child's
// parent by tournament and change one dimension of it. This base holds the population and
// those steps; each algorithm decides how many steps a trial trains, when a member joins and
// how a dimension changes.
#ifndef HIPPO_SEARCH_ALGOS_POPULATION_H_
#define HIPPO_SEARCH_ALGOS_POPULATION_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "search_algos/search_algorithm.h"
#include "search_algos/state_text.h"

namespace hippo::search_algos {

class PopulationSearch : public SearchAlgorithm {
 public:
  // A member of the population.
  struct Member {
    TrialNumber trial = 0;
    double fitness = 0;
  };

  // The population, oldest first.
  const std::deque<Member>& population() const { return population_; }

 protected:
  struct Sizes {
    int64_t population_size = 0;
    int64_t sample_size = 0;
    int64_t children = 0;
  };

  // The sizes of the config block `block` ("algorithm.evolution"): 0 means the default (proto3
  // cannot tell 0 from unset). sample_size is at most population_size; budget.max_trials, when
  // set, must hold the population and caps population_size + children (children defaults to
  // max_trials - population_size then). InvalidArgument naming the field if one is out of
  // range.
  static absl::StatusOr<Sizes> ReadSizes(absl::string_view block, int64_t population_size,
                                         int64_t sample_size, int64_t children,
                                         const AlgorithmContext& context, Sizes defaults);

  // Who leaves a full population when a member joins.
  enum class Aging {
    kOldest,            // the oldest member (regularized evolution)
    kOldestButTheBest,  // the oldest but the fittest: the best member stays (elitism)
  };

  PopulationSearch(const stage_tree::SearchSpace& space, Sizes sizes, bool minimize, uint64_t seed,
                   Aging aging = Aging::kOldest)
      : space_(space), sizes_(sizes), minimize_(minimize), seed_(seed), aging_(aging) {}

  bool Better(double a, double b) const { return minimize_ ? a < b : a > b; }
  // The index-th initial member's point.
  stage_tree::Point InitialPoint(uint64_t index) const;
  // The generator of trial `number`'s mutation: a pure function of (seed, number).
  std::mt19937_64 ChildGenerator(TrialNumber number) const;

  // Aging: `trial` joins at the back; when the population then holds more than population_size
  // members, the OLDEST leaves, not the worst; with Aging::kOldestButTheBest the oldest that is
  // not the fittest (the first of the fittest, if several tie) leaves, so the best member found
  // so far is never aged out.
  void Join(TrialNumber trial, double fitness);
  // Tournament: the fittest of sample_size members drawn uniformly, with replacement, from the
  // population (the first drawn wins a tie); the members drawn are appended to `drawn` when it
  // is given. The population must not be empty.
  const Member& Tournament(std::mt19937_64& random, std::vector<TrialNumber>* drawn) const;
  // The same draws, the winner by `better(a, b)` (a beats b) instead of by fitness.
  const Member& Tournament(std::mt19937_64& random,
                           absl::FunctionRef<bool(const Member&, const Member&)> better,
                           std::vector<TrialNumber>* drawn = nullptr) const;

  // The dimensions of `point` a mutation may change: those it uses (stage_tree::IsActive) with
  // more than one value, in space order.
  std::vector<size_t> MutableDimensions(const stage_tree::Point& point) const;
  // Redraws `child`'s dimension `d` until it differs from `parent`'s (a few tries; a continuous
  // draw differs almost surely).
  void Resample(const stage_tree::Point& parent, size_t d, stage_tree::Point& child,
                std::mt19937_64& random) const;
  // After dimension `changed` changed: the dimensions `child` uses and `parent` did not (the
  // widths of the layers a deeper network appends) take `inherited(e)` when it gives a value,
  // else a fresh draw, in space order so that a newly used choice can bring in its own; those
  // `child` no longer uses go back to their placeholder.
  void CompleteChild(const stage_tree::Point& parent, size_t changed, stage_tree::Point& child,
                     std::mt19937_64& random,
                     absl::FunctionRef<std::optional<double>(size_t)> inherited) const;

  // The population's text form (state_text), and reading it back for a study of
  // `trial_count` trials: nullopt if it is malformed.
  void PutPopulation(std::string& out) const;
  std::optional<std::deque<Member>> ReadPopulation(state_text::TokenReader& reader,
                                                   int64_t trial_count) const;

  stage_tree::SearchSpace space_;
  Sizes sizes_;
  bool minimize_ = false;
  uint64_t seed_ = 0;
  Aging aging_ = Aging::kOldest;
  std::deque<Member> population_;  // oldest first
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_POPULATION_H_
