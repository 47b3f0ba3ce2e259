#include "search_algos/point_sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <variant>

namespace hippo::search_algos {
namespace {

// The 624 words std::seed_seq{v...} gives a std::mt19937_64 (312 words of 64 bits), computed
// by the algorithm of [rand.util.seedseq] with its sizes fixed at compile time. libstdc++'s
// seed_seq takes every index modulo the size, four divisions a word, which made seeding the
// largest single cost of a random-search dispatch; the words are the same, so are the draws.
class FixedSeedSequence {
 public:
  using result_type = uint32_t;
  static constexpr size_t kWords = 624;

  explicit FixedSeedSequence(const std::array<uint32_t, 5>& v) {
    constexpr size_t n = kWords;
    constexpr size_t s = 5;
    constexpr size_t t = 11;  // n >= 623
    constexpr size_t p = (n - t) / 2;
    constexpr size_t q = p + t;
    // Indices below 2n, so one subtraction wraps them.
    auto at = [](size_t i) { return i >= n ? i - n : i; };
    auto mix = [](uint32_t x) { return x ^ (x >> 27); };
    words_.fill(0x8b8b8b8bu);
    std::array<uint32_t, n>& b = words_;
    for (size_t k = 0; k < n; ++k) {  // m = max(s + 1, n) = n
      const uint32_t r1 = 1664525u * mix(b[k] ^ b[at(k + p)] ^ b[k == 0 ? n - 1 : k - 1]);
      const uint32_t r2 = r1 + static_cast<uint32_t>(k) + (k == 0 ? s : k <= s ? v[k - 1] : 0);
      b[at(k + p)] += r1;
      b[at(k + q)] += r2;
      b[k] = r2;
    }
    for (size_t k = 0; k < n; ++k) {  // the standard's k = m .. m + n - 1, here k mod n
      const uint32_t r3 = 1566083941u * mix(b[k] + b[at(k + p)] + b[k == 0 ? n - 1 : k - 1]);
      const uint32_t r4 = r3 - static_cast<uint32_t>(k);
      b[at(k + p)] ^= r3;
      b[at(k + q)] ^= r4;
      b[k] = r4;
    }
  }

  // What std::mt19937_64's constructor calls; it asks for exactly kWords words.
  template <typename Iterator>
  void generate(Iterator begin, Iterator end) const {
    for (size_t i = 0; begin != end; ++begin, ++i) *begin = words_[i % kWords];
  }

 private:
  std::array<uint32_t, kWords> words_;
};

}  // namespace

std::mt19937_64 SeededGenerator(uint64_t seed, uint64_t stream, uint64_t index) {
  FixedSeedSequence sequence({static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                              static_cast<uint32_t>(stream), static_cast<uint32_t>(index),
                              static_cast<uint32_t>(index >> 32)});
  return std::mt19937_64(sequence);
}

stage_tree::Value SampleDimension(const stage_tree::Dimension& dimension, std::mt19937_64& random) {
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
    // Log-uniform integers keep to the step's grid: the nearest multiple of step above low.
    value = dimension.log ? dimension.low + std::round((value - dimension.low) / dimension.step) *
                                                dimension.step
                          : dimension.low + index * dimension.step;
  } else if (dimension.step > 0) {
    value = dimension.low + std::round((value - dimension.low) / dimension.step) * dimension.step;
  }
  return std::min(std::max(value, dimension.low), dimension.high);
}

stage_tree::Point SamplePoint(const stage_tree::SearchSpace& space, uint64_t seed, uint64_t index) {
  std::mt19937_64 random = SeededGenerator(seed, 0, index);
  stage_tree::Point point;
  point.reserve(space.dimensions.size());
  for (const stage_tree::Dimension& dimension : space.dimensions) {
    point.push_back(SampleDimension(dimension, random));
  }
  // Every dimension is drawn, used or not, so that a point's draws do not depend on which
  // dimensions it uses; those it does not use then get their placeholder, so that points that
  // make the same trial are equal.
  stage_tree::ResetUnused(space.dimensions, point);
  return point;
}

bool HasSeveralValues(const stage_tree::Dimension& dimension) {
  return dimension.kind == stage_tree::DimensionKind::kChoice ? dimension.choices.size() > 1
                                                              : dimension.high > dimension.low;
}

bool IsOrderedNumeric(const stage_tree::Dimension& dimension) {
  if (dimension.kind == stage_tree::DimensionKind::kChoice) {
    return std::all_of(
        dimension.choices.begin(), dimension.choices.end(),
        [](const stage_tree::Value& value) { return std::holds_alternative<double>(value); });
  }
  return dimension.kind == stage_tree::DimensionKind::kInt || dimension.step > 0;
}

}  // namespace hippo::search_algos
