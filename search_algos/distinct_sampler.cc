#include "search_algos/distinct_sampler.h"

#include <cmath>
#include <limits>
#include <map>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "search_algos/point_sampler.h"

namespace hippo::search_algos {
namespace {

using stage_tree::Dimension;
using stage_tree::DimensionKind;
using stage_tree::Point;
using stage_tree::Value;

// Consecutive repeats after which the configurations not drawn yet are listed and drawn from
// directly (the stream finds new ones too rarely), if there are at most kMaxListed of them.
constexpr int64_t kRepeatsBeforeListing = 64;
constexpr int64_t kMaxListed = 100'000;
// Beyond kMaxListed configurations, the repeats after which the space counts as exhausted.
constexpr int64_t kMaxRepeats = 1'000'000;

int64_t Times(int64_t a, int64_t b) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) {
    return std::numeric_limits<int64_t>::max();
  }
  return a * b;
}

int64_t Plus(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

std::string ValueText(const Value& value) {
  if (const double* number = std::get_if<double>(&value)) return absl::StrFormat("%.17g", *number);
  if (const std::string* text = std::get_if<std::string>(&value)) return *text;
  return absl::StrCat("[", absl::StrJoin(std::get<std::vector<stage_tree::Step>>(value), ","), "]");
}

}  // namespace

DistinctSampler::DistinctSampler(stage_tree::SearchSpace space, uint64_t seed,
                                 bool with_replacement)
    : space_(std::move(space)),
      seed_(seed),
      configurations_(with_replacement ? 0 : CountConfigurations(space_)) {}

int64_t DistinctSampler::CountConfigurations(const stage_tree::SearchSpace& space) {
  const std::vector<Dimension>& dimensions = space.dimensions;
  // dependents[d]: the dimensions whose condition is on dimension d (each has one such d, listed
  // before it), so the configurations form a tree that is counted from the last dimension.
  std::vector<std::vector<size_t>> dependents(dimensions.size());
  for (size_t d = 0; d < dimensions.size(); ++d) {
    const Dimension& dimension = dimensions[d];
    if (dimension.kind == DimensionKind::kFloat ||
        (dimension.kind == DimensionKind::kInt && dimension.log)) {
      return 0;
    }
    if (dimension.active_if && dimension.active_if->dimension < d) {
      dependents[dimension.active_if->dimension].push_back(d);
    }
  }
  // An int range that others depend on is enumerated value by value; beyond this many values
  // the space is sampled independently instead.
  constexpr int64_t kMaxEnumerated = 1 << 20;
  std::vector<int64_t> count(dimensions.size(), 1);
  for (size_t d = dimensions.size(); d-- > 0;) {
    const Dimension& dimension = dimensions[d];
    std::vector<Value> values;
    if (dimension.kind == DimensionKind::kInt) {
      const double step = std::max(dimension.step, 1.0);
      const int64_t size =
          static_cast<int64_t>(std::floor((dimension.high - dimension.low) / step + 1e-9)) + 1;
      if (dependents[d].empty()) {
        count[d] = size;
        continue;
      }
      if (size > kMaxEnumerated) return 0;
      for (int64_t i = 0; i < size; ++i) {
        values.emplace_back(dimension.low + static_cast<double>(i) * step);
      }
    } else {
      values = dimension.choices;
    }
    int64_t sum = 0;
    for (const Value& value : values) {
      int64_t product = 1;
      for (size_t e : dependents[d]) {
        if (dimensions[e].active_if->Passes(value)) product = Times(product, count[e]);
      }
      sum = Plus(sum, product);
    }
    count[d] = sum;
  }
  int64_t total = 1;
  for (size_t d = 0; d < dimensions.size(); ++d) {
    if (!dimensions[d].active_if) total = Times(total, count[d]);
  }
  return total;
}

std::string DistinctSampler::Key(const Point& point) const {
  std::string key;
  for (size_t d = 0; d < point.size(); ++d) {
    absl::StrAppend(&key,
                    stage_tree::IsActive(space_.dimensions, point, d) ? ValueText(point[d]) : "*",
                    "\x1f");
  }
  return key;
}

std::optional<Point> DistinctSampler::PointAt(int64_t index) {
  // Independent draws need no memory: the index-th is a pure function of (seed, index).
  if (configurations_ == 0) return SamplePoint(space_, seed_, static_cast<uint64_t>(index));
  while (drawn() <= index) {
    if (!DrawNext()) return std::nullopt;
  }
  return points_[static_cast<size_t>(index)];
}

bool DistinctSampler::DrawNext() {
  if (drawn() >= configurations_) return false;
  for (int64_t repeats = 0; !remaining_.has_value(); ++repeats) {
    Point point = SamplePoint(space_, seed_, stream_++);
    if (seen_.insert(Key(point)).second) {
      points_.push_back(std::move(point));
      return true;
    }
    if (repeats >= kRepeatsBeforeListing && configurations_ <= kMaxListed) {
      absl::StatusOr<std::vector<Point>> grid = stage_tree::GridPoints(space_);
      if (!grid.ok()) return false;  // cannot happen: the space is finite (counted above)
      remaining_.emplace();
      for (Point& candidate : *grid) {
        if (seen_.insert(Key(candidate)).second) remaining_->push_back(std::move(candidate));
      }
    } else if (repeats >= kMaxRepeats) {
      configurations_ = drawn();  // so rare that the space counts as exhausted
      return false;
    }
  }
  if (remaining_->empty()) return false;
  std::mt19937_64 random = SeededGenerator(seed_, 1, static_cast<uint64_t>(drawn()));
  const size_t pick = static_cast<size_t>(random() % remaining_->size());
  points_.push_back(std::move((*remaining_)[pick]));
  (*remaining_)[pick] = std::move(remaining_->back());
  remaining_->pop_back();
  return true;
}

std::string DistinctSampler::ExhaustedMessage() const {
  return absl::StrCat("the search space's ", configurations_,
                      " configurations were all drawn; algorithm.sample_with_replacement: true "
                      "draws every trial independently (configurations may repeat)");
}

}  // namespace hippo::search_algos
