#include "search_algos/grid_search.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proto/search_space_checks.h"
#include "search_algos/point_sampler.h"

namespace hippo::search_algos {

std::vector<Request> IndependentTrials::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  while (proposed_ < count_ && static_cast<int64_t>(requests.size()) < max_new_trials) {
    Request request;
    request.kind = Request::Kind::kNewTrial;
    request.point = PointAt(proposed_++);
    request.target = max_steps_;
    requests.push_back(std::move(request));
  }
  return requests;
}

std::string IndependentTrials::SaveState() const { return absl::StrCat("proposed=", proposed_); }

absl::Status IndependentTrials::LoadState(const std::string& state) {
  constexpr std::string_view kPrefix = "proposed=";
  int64_t proposed = 0;
  if (state.rfind(kPrefix, 0) != 0 ||
      std::from_chars(state.data() + kPrefix.size(), state.data() + state.size(), proposed).ec !=
          std::errc() ||
      proposed < 0 || proposed > count_) {
    return absl::DataLossError(
        absl::StrCat("bad saved state for a grid/random search: '", state, "'"));
  }
  proposed_ = proposed;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> GridSearch::Create(
    const AlgorithmContext& context) {
  std::vector<std::vector<stage_tree::Value>> axes;
  for (const stage_tree::Dimension& dimension : context.space->dimensions) {
    std::vector<stage_tree::Value> axis;
    if (dimension.kind == stage_tree::DimensionKind::kChoice) {
      axis = dimension.choices;
    } else if (dimension.step > 0) {
      // As stage_tree::GridPoints steps through a range.
      for (double value = dimension.low; value <= dimension.high + 1e-9 * dimension.step;
           value += dimension.step) {
        axis.emplace_back(value);
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension '", dimension.name,
                       "' is continuous; grid search needs choices or a range with a step"));
    }
    if (axis.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension '", dimension.name, "' has no value to take"));
    }
    axes.push_back(std::move(axis));
  }
  std::unique_ptr<GridSearch> grid(
      new GridSearch(context.space->dimensions, std::move(axes), 0, context.max_steps));
  // The points, counted without keeping them (one_of alternatives make the count less than the
  // product of the axes).
  int64_t count = 1;
  while (grid->Advance()) ++count;
  grid->Reset();
  if (context.max_trials > 0) count = std::min(count, context.max_trials);
  return std::unique_ptr<SearchAlgorithm>(new GridSearch(
      std::move(grid->dimensions_), std::move(grid->axes_), count, context.max_steps));
}

GridSearch::GridSearch(std::vector<stage_tree::Dimension> dimensions,
                       std::vector<std::vector<stage_tree::Value>> axes, int64_t count,
                       Step max_steps)
    : IndependentTrials(count, max_steps),
      dimensions_(std::move(dimensions)),
      axes_(std::move(axes)) {
  Reset();
}

void GridSearch::Reset() const {
  digits_.assign(axes_.size(), 0);
  point_.clear();
  for (const auto& axis : axes_) point_.push_back(axis.front());
  at_ = 0;
}

bool GridSearch::Advance() const {
  for (size_t d = axes_.size(); d-- > 0;) {
    if (!stage_tree::IsActive(dimensions_, point_, d) || digits_[d] + 1 >= axes_[d].size()) {
      continue;
    }
    point_[d] = axes_[d][++digits_[d]];
    for (size_t e = d + 1; e < axes_.size(); ++e) {
      digits_[e] = 0;
      point_[e] = axes_[e].front();
    }
    ++at_;
    return true;
  }
  return false;
}

stage_tree::Point GridSearch::PointAt(int64_t index) const {
  if (index < at_) Reset();
  while (at_ < index && Advance()) {
  }
  return point_;
}

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> RandomSearch::Create(
    const AlgorithmContext& context) {
  const int64_t requested = context.max_trials > 0 ? context.max_trials : 10;
  DistinctSampler sampler(*context.space, context.seed, context.config.sample_with_replacement());
  const int64_t count =
      sampler.without_replacement() ? std::min(requested, sampler.configurations()) : requested;
  return std::unique_ptr<SearchAlgorithm>(
      new RandomSearch(std::move(sampler), requested, count, context.max_steps));
}

stage_tree::Point RandomSearch::PointAt(int64_t index) const {
  // nullopt only if new configurations became too rare to find (DistinctSampler gives up after
  // a million repeats in a huge space): a repeat is then the one point left to give.
  if (std::optional<stage_tree::Point> point = sampler_.PointAt(index)) return *std::move(point);
  return SamplePoint(sampler_.space(), sampler_.seed(), static_cast<uint64_t>(index));
}

std::string RandomSearch::EndReason() const {
  return trials_ < requested_ ? sampler_.ExhaustedMessage() : std::string();
}

namespace {

// Saturating product: the grid's size only matters up to kMaxGridPoints.
std::int64_t TimesAtMost(std::int64_t a, std::int64_t b) {
  if (a != 0 && b > std::numeric_limits<std::int64_t>::max() / a) {
    return std::numeric_limits<std::int64_t>::max();
  }
  return a * b;
}

// The number of values an int range contributes to a grid, computed without enumerating it;
// bounds are within ±2^53 (proto/search_space_checks.cc), so the difference cannot overflow.
std::int64_t IntAxisSize(const hippo::v1::IntParameter& range) {
  const std::int64_t step = std::max<std::int64_t>(range.step(), 1);
  return (range.high() - range.low()) / step + 1;
}

}  // namespace

proto::Issue GridSearch::CheckConfig(const hippo::v1::Algorithm&,
                                     const hippo::v1::StudySpec& spec) {
  const auto& parameters = spec.search_space().parameters();
  // An upper bound of the grid's size (one_of alternatives count as a product, not a sum), so
  // a grid is refused before it is expanded in memory.
  std::int64_t grid_size = 1;
  for (int i = 0; i < parameters.size(); ++i) {
    const std::string path = proto::IndexPath("search_space.parameters", i);
    std::int64_t axis = 1;
    if (parameters[i].has_categorical()) axis = parameters[i].categorical().values_size();
    if (parameters[i].has_int_()) axis = IntAxisSize(parameters[i].int_());
    if (parameters[i].has_sequence()) {
      for (const proto::SequenceDomain& at :
           proto::SequenceDomains(parameters[i].sequence(), proto::JoinPath(path, "sequence"),
                                  spec.budget().max_steps())) {
        if (at.domain->has_choices()) {
          axis = TimesAtMost(axis, std::max(at.domain->choices().values_size(), 1));
        }
      }
    }
    grid_size = TimesAtMost(grid_size, std::max<std::int64_t>(axis, 1));
    if (grid_size > kMaxGridPoints) {
      return proto::Problem(
          path, absl::StrCat("the grid has more than ", kMaxGridPoints,
                             " points with this parameter (grid search expands every point "
                             "before budget.max_trials applies); use random search "
                             "(algorithm: {name: random}) with budget.max_trials, or list "
                             "fewer values"));
    }
  }
  for (int i = 0; i < parameters.size(); ++i) {
    const std::string path = proto::IndexPath("search_space.parameters", i);
    if (parameters[i].has_float_()) {
      return proto::Problem(proto::JoinPath(path, "float"),
                            "grid search needs a finite domain, but a float range is continuous; "
                            "list the values to try with categorical: {values: [...]}, or use "
                            "another algorithm (random, tpe, asha)");
    }
    if (!parameters[i].has_sequence()) continue;
    for (const proto::SequenceDomain& at :
         proto::SequenceDomains(parameters[i].sequence(), proto::JoinPath(path, "sequence"),
                                spec.budget().max_steps())) {
      if (at.domain->has_range()) {
        return proto::Problem(proto::JoinPath(at.path, "range"),
                              "grid search needs a finite domain, but a range is continuous; list "
                              "the values to try with choices: {values: [...]}, or use another "
                              "algorithm (random, tpe, asha)");
      }
    }
  }
  return std::nullopt;
}

}  // namespace hippo::search_algos
