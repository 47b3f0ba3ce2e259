#include "search_algos/population.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "search_algos/point_sampler.h"

namespace hippo::search_algos {
namespace {

// Stream of SeededGenerator for children (stream 0 is SamplePoint's).
constexpr uint64_t kChildStream = 1;
// Redraws of a resampled value that came out equal to the parent's.
constexpr int kResampleTries = 8;

}  // namespace

absl::StatusOr<PopulationSearch::Sizes> PopulationSearch::ReadSizes(
    absl::string_view block, int64_t population_size, int64_t sample_size, int64_t children,
    const AlgorithmContext& context, Sizes defaults) {
  Sizes sizes = defaults;
  if (population_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(block, ".population_size: must be >= 1"));
  }
  if (population_size > 0) sizes.population_size = population_size;
  if (context.max_trials > 0 && context.max_trials < sizes.population_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(block, ".population_size: ", sizes.population_size,
                     " exceeds budget.max_trials (", context.max_trials, ")"));
  }
  sizes.sample_size = std::min(sizes.sample_size, sizes.population_size);
  if (sample_size != 0) {
    if (sample_size < 1 || sample_size > sizes.population_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          block, ".sample_size: must be in [1, population_size = ", sizes.population_size, "]"));
    }
    sizes.sample_size = sample_size;
  }
  if (children < 0) {
    return absl::InvalidArgumentError(absl::StrCat(block, ".children: must be >= 0"));
  }
  if (children > 0) {
    sizes.children = children;
  } else if (context.max_trials > 0) {
    sizes.children = context.max_trials - sizes.population_size;
  }
  if (context.max_trials > 0) {
    sizes.children = std::min(sizes.children, context.max_trials - sizes.population_size);
  }
  return sizes;
}

stage_tree::Point PopulationSearch::InitialPoint(uint64_t index) const {
  return SamplePoint(space_, seed_, index);
}

std::mt19937_64 PopulationSearch::ChildGenerator(TrialNumber number) const {
  return SeededGenerator(seed_, kChildStream, static_cast<uint64_t>(number));
}

void PopulationSearch::Join(TrialNumber trial, double fitness) {
  population_.push_back(Member{trial, fitness});
  if (static_cast<int64_t>(population_.size()) <= sizes_.population_size) return;
  auto leaving = population_.begin();
  if (aging_ == Aging::kOldestButTheBest) {
    auto fittest = population_.begin();
    for (auto member = population_.begin(); member != population_.end(); ++member) {
      if (Better(member->fitness, fittest->fitness)) fittest = member;
    }
    if (leaving == fittest) ++leaving;
  }
  population_.erase(leaving);
}

const PopulationSearch::Member& PopulationSearch::Tournament(
    std::mt19937_64& random, std::vector<TrialNumber>* drawn) const {
  return Tournament(
      random, [this](const Member& a, const Member& b) { return Better(a.fitness, b.fitness); },
      drawn);
}

const PopulationSearch::Member& PopulationSearch::Tournament(
    std::mt19937_64& random, absl::FunctionRef<bool(const Member&, const Member&)> better,
    std::vector<TrialNumber>* drawn) const {
  const Member* best = nullptr;
  for (int64_t draw = 0; draw < sizes_.sample_size; ++draw) {
    const Member& candidate = population_[random() % population_.size()];
    if (drawn != nullptr) drawn->push_back(candidate.trial);
    if (best == nullptr || better(candidate, *best)) best = &candidate;
  }
  return *best;
}

std::vector<size_t> PopulationSearch::MutableDimensions(const stage_tree::Point& point) const {
  std::vector<size_t> dimensions;
  for (size_t d = 0; d < space_.dimensions.size(); ++d) {
    if (HasSeveralValues(space_.dimensions[d]) &&
        stage_tree::IsActive(space_.dimensions, point, d)) {
      dimensions.push_back(d);
    }
  }
  return dimensions;
}

void PopulationSearch::Resample(const stage_tree::Point& parent, size_t d, stage_tree::Point& child,
                                std::mt19937_64& random) const {
  for (int tries = 0; tries < kResampleTries && child[d] == parent[d]; ++tries) {
    child[d] = SampleDimension(space_.dimensions[d], random);
  }
}

void PopulationSearch::CompleteChild(
    const stage_tree::Point& parent, size_t changed, stage_tree::Point& child,
    std::mt19937_64& random, absl::FunctionRef<std::optional<double>(size_t)> inherited) const {
  for (size_t e = changed + 1; e < space_.dimensions.size(); ++e) {
    if (stage_tree::IsActive(space_.dimensions, child, e) &&
        !stage_tree::IsActive(space_.dimensions, parent, e)) {
      if (const std::optional<double> value = inherited(e)) {
        child[e] = *value;
      } else {
        child[e] = SampleDimension(space_.dimensions[e], random);
      }
    }
  }
  stage_tree::ResetUnused(space_.dimensions, child);
}

void PopulationSearch::PutPopulation(std::string& out) const {
  state_text::PutInt(out, static_cast<int64_t>(population_.size()));
  for (const Member& member : population_) {
    state_text::PutInt(out, member.trial);
    state_text::PutDouble(out, member.fitness);
  }
  out.push_back('\n');
}

std::optional<std::deque<PopulationSearch::Member>> PopulationSearch::ReadPopulation(
    state_text::TokenReader& reader, int64_t trial_count) const {
  int64_t members = 0;
  if (!reader.Int(members) || members < 0 || members > sizes_.population_size) {
    return std::nullopt;
  }
  std::deque<Member> population(members);
  for (Member& member : population) {
    if (!reader.Int(member.trial) || member.trial < 0 || member.trial >= trial_count ||
        !reader.Double(member.fitness)) {
      return std::nullopt;
    }
  }
  return population;
}

}  // namespace hippo::search_algos
