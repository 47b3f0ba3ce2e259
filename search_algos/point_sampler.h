// Sampling points of a search space: the k-th point of a seed is a pure function of (seed, k),
// so random search needs no state but a count, and is the same after a restart.
#ifndef HIPPO_SEARCH_ALGOS_POINT_SAMPLER_H_
#define HIPPO_SEARCH_ALGOS_POINT_SAMPLER_H_

#include <cstdint>
#include <random>

#include "stage_tree/search_space.h"

namespace hippo::search_algos {

// A generator seeded from (seed, stream, index) so draws of different indices are independent.
std::mt19937_64 SeededGenerator(uint64_t seed, uint64_t stream, uint64_t index);

// A value of `dimension` drawn with `random`: uniform over choices; uniform (or log-uniform) over
// a range, rounded to its step.
stage_tree::Value SampleDimension(const stage_tree::Dimension& dimension, std::mt19937_64& random);

// The index-th random point of `space` for `seed`.
stage_tree::Point SamplePoint(const stage_tree::SearchSpace& space, uint64_t seed, uint64_t index);

// Whether a mutation can change the dimension: a choice of several values, or a range.
bool HasSeveralValues(const stage_tree::Dimension& dimension);
// An int, a float with a step, or a choice of numbers: a value has neighbours.
bool IsOrderedNumeric(const stage_tree::Dimension& dimension);

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_POINT_SAMPLER_H_
