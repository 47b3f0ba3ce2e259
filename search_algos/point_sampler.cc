#include "search_algos/point_sampler.h"

#include <cmath>

namespace hippo::search_algos {

std::mt19937_64 SeededGenerator(uint64_t seed, uint64_t stream, uint64_t index) {
  std::seed_seq sequence{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                         static_cast<uint32_t>(stream), static_cast<uint32_t>(index),
                         static_cast<uint32_t>(index >> 32)};
  return std::mt19937_64(sequence);
}

stage_tree::Value SampleDimension(const stage_tree::Dimension& dimension,
                                  std::mt19937_64& random) {
  using stage_tree::DimensionKind;
  if (dimension.kind == DimensionKind::kChoice) {
    return dimension.choices[random() % dimension.choices.size()];
  }
  // Uniform in [0, 1) from 53 random bits: the same on every platform, unlike the standard
  // distributions whose algorithms the standard leaves open.
  const double unit = static_cast<double>(random() >> 11) * 0x1.0p-53;
  double value;
  if (dimension.log && dimension.low > 0) {
    value = std::exp(std::log(dimension.low) +
                     unit * (std::log(dimension.high) - std::log(dimension.low)));
  } else {
    value = dimension.low + unit * (dimension.high - dimension.low);
  }
  if (dimension.kind == DimensionKind::kInt) {
    const double steps = std::floor((dimension.high - dimension.low) / dimension.step + 1e-9);
    const double index = std::min(steps, std::floor(unit * (steps + 1)));
    value = dimension.log ? std::round(value) : dimension.low + index * dimension.step;
  } else if (dimension.step > 0) {
    value = dimension.low + std::round((value - dimension.low) / dimension.step) * dimension.step;
  }
  return std::min(std::max(value, dimension.low), dimension.high);
}

stage_tree::Point SamplePoint(const stage_tree::SearchSpace& space, uint64_t seed,
                              uint64_t index) {
  std::mt19937_64 random = SeededGenerator(seed, 0, index);
  stage_tree::Point point;
  point.reserve(space.dimensions.size());
  for (const stage_tree::Dimension& dimension : space.dimensions) {
    point.push_back(SampleDimension(dimension, random));
  }
  return point;
}

}  // namespace hippo::search_algos
