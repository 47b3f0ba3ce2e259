// Random trial sets for the stage-tree property tests: few distinct functions and boundaries,
// so that trials share prefixes often and diverge in the middle of existing stages.
#ifndef HIPPO_TESTS_STAGE_TREE_RANDOM_TRIALS_H_
#define HIPPO_TESTS_STAGE_TREE_RANDOM_TRIALS_H_

#include <random>
#include <string>
#include <vector>

#include "stage_tree/sequence.h"

namespace hippo::stage_tree::testing {

struct RandomTrial {
  TrialSequences sequences;
  Step target = 0;
};

inline SegmentFunction RandomFunction(std::mt19937_64& random) {
  static const double kValues[] = {0.1, 0.2, 0.02, 0.05};
  const double value = kValues[random() % 4];
  switch (random() % 6) {
    case 0:
      // A warm-up ramp: passes exactly through 0.02 at step 0 when it peaks at 0.1 over 5.
      return SegmentFunction::Linear(0.0, value, -1, 5);
    case 1:
      return SegmentFunction::Cosine(value, 0.0, 0, 16);
    default:
      return SegmentFunction::Constant(value);
  }
}

inline Sequence RandomSequence(std::mt19937_64& random, Step horizon) {
  std::vector<Segment> segments;
  Step start = 0;
  while (start < horizon) {
    Step end = std::min<Step>(horizon, start + 1 + static_cast<Step>(random() % 12));
    if (random() % 3 == 0) end = std::min<Step>(horizon, (end + 3) / 4 * 4);  // shared cuts
    segments.push_back({start, end, RandomFunction(random)});
    start = end;
  }
  return *Sequence::FromSegments(std::move(segments));
}

// `pool` distinct sequences per parameter, combined at random, so many trials share prefixes.
inline std::vector<RandomTrial> RandomTrials(std::mt19937_64& random, size_t trials,
                                             size_t parameters, Step horizon, size_t pool) {
  std::vector<std::vector<Sequence>> pools(parameters);
  for (auto& sequences : pools) {
    Sequence base = RandomSequence(random, horizon);
    for (size_t i = 0; i < pool; ++i) {
      // Each pool member is the base up to a random step, then something else.
      const Step cut = static_cast<Step>(random() % horizon);
      std::vector<Segment> segments;
      for (Segment segment : base.segments()) {
        if (segment.start >= cut) break;
        segment.end = std::min(segment.end, cut);
        segments.push_back(segment);
      }
      const Sequence other = RandomSequence(random, horizon);
      for (const Segment& tail : other.segments()) {
        if (tail.end <= cut) continue;
        segments.push_back({std::max(tail.start, cut), tail.end, tail.function});
      }
      sequences.push_back(*Sequence::FromSegments(std::move(segments)));
    }
  }
  std::vector<RandomTrial> result(trials);
  for (RandomTrial& trial : result) {
    for (size_t p = 0; p < parameters; ++p) {
      trial.sequences["p" + std::to_string(p)] = pools[p][random() % pool];
    }
    trial.target = 1 + static_cast<Step>(random() % horizon);
  }
  return result;
}

inline std::vector<std::string> ParameterNames(size_t parameters) {
  std::vector<std::string> names;
  for (size_t p = 0; p < parameters; ++p) names.push_back("p" + std::to_string(p));
  return names;
}

}  // namespace hippo::stage_tree::testing

#endif  // HIPPO_TESTS_STAGE_TREE_RANDOM_TRIALS_H_
