// Random points of a search space drawn without replacement: the k-th point is the k-th new
// configuration in the stream SamplePoint(space, seed, 0), SamplePoint(space, seed, 1), ...
// (points that differ only in a dimension they do not use, of a one_of alternative not chosen
// or a conditional parameter whose condition fails, are one configuration). So the draws keep the with-replacement sampler's distribution, conditioned on
// not repeating, stay a pure function of (seed, k) (a restarted coordinator replays the stream),
// and the space can run out.
//
// Only spaces whose every dimension is a list of choices or an int range on a linear scale are
// drawn without replacement: there every value is equally likely and the configurations can be
// counted exactly. Any other space (a float range, a log-scaled int range) is sampled as
// before, independently: a float range is effectively infinite, and the rounding of a log int
// range gives its values unequal weights that would make its last values slow to find.
#ifndef HIPPO_SEARCH_ALGOS_DISTINCT_SAMPLER_H_
#define HIPPO_SEARCH_ALGOS_DISTINCT_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "stage_tree/search_space.h"

namespace hippo::search_algos {

class DistinctSampler {
 public:
  // `with_replacement`: every draw independent (algorithm.sample_with_replacement).
  DistinctSampler(stage_tree::SearchSpace space, uint64_t seed, bool with_replacement);

  // The index-th point, or nullopt when the space has fewer than index + 1 configurations (it
  // is exhausted). Without replacement, points are drawn in order and kept (an earlier index is
  // answered from memory); with it, each is drawn on its own.
  std::optional<stage_tree::Point> PointAt(int64_t index);

  // Whether draws never repeat a configuration (the option and the space allow it).
  bool without_replacement() const { return configurations_ > 0; }
  // How many configurations the space has (0: not drawn without replacement).
  int64_t configurations() const { return configurations_; }
  // Whether every configuration was drawn.
  bool exhausted() const { return configurations_ > 0 && drawn() >= configurations_; }
  // Configurations drawn so far without replacement.
  int64_t drawn() const { return static_cast<int64_t>(points_.size()); }
  const stage_tree::SearchSpace& space() const { return space_; }
  uint64_t seed() const { return seed_; }
  // "the search space's 96 configurations were all drawn (algorithm.sample_with_replacement is
  // false)": why a study that ran out of configurations ended.
  std::string ExhaustedMessage() const;

  // The number of configurations of a space drawn without replacement, or 0 if it is not (see
  // the file comment); saturates at INT64_MAX.
  static int64_t CountConfigurations(const stage_tree::SearchSpace& space);

 private:
  std::string Key(const stage_tree::Point& point) const;
  // Draws the next new configuration; false if there is none.
  bool DrawNext();

  stage_tree::SearchSpace space_;
  uint64_t seed_;
  int64_t configurations_ = 0;
  uint64_t stream_ = 0;  // the next index of the with-replacement stream
  std::vector<stage_tree::Point> points_;
  absl::flat_hash_set<std::string> seen_;
  // Once new configurations got rare in the stream: the ones not yet drawn, in grid order.
  std::optional<std::vector<stage_tree::Point>> remaining_;
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_DISTINCT_SAMPLER_H_
