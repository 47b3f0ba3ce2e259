#include "search_algos/morphism.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "search_algos/point_sampler.h"
#include "search_algos/state_text.h"

namespace hippo::search_algos {
namespace {

using stage_tree::Dimension;
using stage_tree::DimensionKind;
using stage_tree::Point;
using stage_tree::Value;
using state_text::PutDouble;
using state_text::PutInt;
using state_text::PutPoint;
using state_text::TokenReader;

constexpr char kStateHeader[] = "morphism-v1";
// Streams of SeededGenerator (stream 0 is SamplePoint's).
constexpr uint64_t kChildStream = 1;
constexpr int kResampleTries = 8;

// The next larger value of an ordered numeric dimension, if any.
std::optional<double> NextLarger(const Dimension& dimension, double value) {
  if (dimension.kind == DimensionKind::kChoice) {
    std::optional<double> next;
    for (const Value& choice : dimension.choices) {
      const double candidate = std::get<double>(choice);
      if (candidate > value && (!next || candidate < *next)) next = candidate;
    }
    return next;
  }
  const double step = std::max(dimension.step, dimension.kind == DimensionKind::kInt ? 1.0 : 0.0);
  if (value + step <= dimension.high + 1e-9 * step) return value + step;
  return std::nullopt;
}

// The smallest value of an ordered numeric dimension that is at least `value`, else its
// largest.
double AtLeast(const Dimension& dimension, double value) {
  if (dimension.kind == DimensionKind::kChoice) {
    std::optional<double> best;
    double largest = std::get<double>(dimension.choices.front());
    for (const Value& choice : dimension.choices) {
      const double candidate = std::get<double>(choice);
      largest = std::max(largest, candidate);
      if (candidate >= value && (!best || candidate < *best)) best = candidate;
    }
    return best.value_or(largest);
  }
  if (value <= dimension.low) return dimension.low;
  const double step = std::max(dimension.step, dimension.kind == DimensionKind::kInt ? 1.0 : 0.0);
  if (step <= 0) return std::min(value, dimension.high);
  const double steps = std::ceil((value - dimension.low) / step - 1e-9);
  return std::min(dimension.low + steps * step, dimension.high);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> MorphismEvolution::Create(
    const AlgorithmContext& context) {
  const hippo::v1::MorphismConfig& config = context.config.morphism();
  if (context.max_steps <= 0) {
    return absl::InvalidArgumentError("budget.max_steps: must be > 0 for morphism");
  }
  Options options;
  if (config.population_size() < 0) {
    return absl::InvalidArgumentError("algorithm.morphism.population_size: must be >= 1");
  }
  if (config.population_size() > 0) options.population_size = config.population_size();
  options.sample_size = std::min(options.sample_size, options.population_size);
  if (config.sample_size() != 0) {
    if (config.sample_size() < 1 || config.sample_size() > options.population_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("algorithm.morphism.sample_size: must be in [1, population_size = ",
                       options.population_size, "]"));
    }
    options.sample_size = config.sample_size();
  }
  if (config.children() < 0) {
    return absl::InvalidArgumentError("algorithm.morphism.children: must be >= 0");
  }
  if (context.max_trials > 0 && context.max_trials < options.population_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.morphism.population_size: ", options.population_size,
                     " exceeds budget.max_trials (", context.max_trials, ")"));
  }
  if (config.children() > 0) {
    options.children = config.children();
  } else if (context.max_trials > 0) {
    options.children = context.max_trials - options.population_size;
  }
  if (context.max_trials > 0) {
    options.children = std::min(options.children, context.max_trials - options.population_size);
  }
  if (config.initial_steps() <= 0 || config.initial_steps() > context.max_steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.morphism.initial_steps: must be in [1, budget.max_steps = ", context.max_steps,
        "]"));
  }
  if (config.child_steps() <= 0 || config.child_steps() >= context.max_steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.morphism.child_steps: must be in [1, budget.max_steps = ", context.max_steps,
        ")"));
  }
  options.initial_steps = config.initial_steps();
  options.child_steps = config.child_steps();
  for (const std::string& name : config.grow()) {
    const auto& dimensions = context.space->dimensions;
    const auto found = std::find_if(dimensions.begin(), dimensions.end(),
                                    [&](const Dimension& d) { return d.name == name; });
    const auto index = static_cast<size_t>(found - dimensions.begin());
    // The parameter the dimension searches: a morph changes the architecture, so only a
    // structural parameter (whose values make the network) may grow.
    const bool structural = std::any_of(
        context.space->parameters.begin(), context.space->parameters.end(),
        [&](const stage_tree::ParameterSpec& parameter) {
          if (!parameter.structural) return false;
          return std::any_of(
              parameter.components.begin(), parameter.components.end(),
              [&](const auto& component) { return component.second.dimension == index; });
        });
    if (found == dimensions.end() || !IsOrderedNumeric(*found) || !structural) {
      return absl::InvalidArgumentError(absl::StrCat(
          "algorithm.morphism.grow: '", name,
          "' is not an ordered numeric dimension of a structural parameter of the search space "
          "(an int, a float with a step or a choice of numbers, structural: true)"));
    }
    options.grow.push_back(index);
  }
  options.max_steps = context.max_steps;
  options.minimize = context.minimize;
  options.seed = context.seed;
  return std::unique_ptr<SearchAlgorithm>(
      new MorphismEvolution(*context.space, std::move(options)));
}

proto::Issue MorphismEvolution::CheckConfig(const hippo::v1::Algorithm& config,
                                            const hippo::v1::StudySpec& spec) {
  const hippo::v1::MorphismConfig& morphism = config.morphism();
  const Step max_steps = spec.budget().max_steps();
  if (morphism.initial_steps() <= 0 || morphism.initial_steps() > max_steps) {
    return proto::Problem("algorithm.morphism.initial_steps",
                          absl::StrCat("required, in [1, budget.max_steps = ", max_steps,
                                       "]; the steps a trial trained from scratch trains"));
  }
  if (morphism.child_steps() <= 0 || morphism.child_steps() >= max_steps) {
    return proto::Problem("algorithm.morphism.child_steps",
                          absl::StrCat("required, in [1, budget.max_steps = ", max_steps,
                                       "); the steps a child trains past what it inherits"));
  }
  if (morphism.grow().empty()) {
    return proto::Problem("algorithm.morphism.grow",
                          "required; the dimensions a morphism may grow, e.g. [channels, layers]");
  }
  if (morphism.population_size() < 0 || morphism.sample_size() < 0 || morphism.children() < 0) {
    return proto::Problem("algorithm.morphism", "sizes must not be negative");
  }
  const int64_t population = morphism.population_size() > 0 ? morphism.population_size() : 8;
  if (morphism.sample_size() > population) {
    return proto::Problem("algorithm.morphism.sample_size",
                          absl::StrCat("must not exceed population_size (got ",
                                       morphism.sample_size(), " > ", population, ")"));
  }
  if (spec.budget().max_trials() > 0 && population > spec.budget().max_trials()) {
    return proto::Problem("algorithm.morphism.population_size",
                          absl::StrCat("must not exceed budget.max_trials (got ", population, " > ",
                                       spec.budget().max_trials(), ")"));
  }
  return std::nullopt;
}

void MorphismEvolution::OnMetric(TrialNumber trial, Step step, double objective) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  // Fitness is the objective at the trial's target (the last step it trains).
  if (step != record.target - 1) return;
  record.has_objective = true;
  record.objective = objective;
}

void MorphismEvolution::OnTrialReachedTarget(TrialNumber trial, Step target) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  if (record.state != TrialState::kTraining || target != record.target) return;
  record.state = TrialState::kReached;
  if (!record.has_objective || std::isnan(record.objective)) return;
  population_.push_back(Member{trial, record.objective});
  if (static_cast<int64_t>(population_.size()) > options_.population_size) {
    population_.pop_front();
  }
}

void MorphismEvolution::OnTrialEnded(TrialNumber trial, TrialOutcome outcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  const bool was_training = record.state == TrialState::kTraining;
  record.state = TrialState::kEnded;
  // A trial trained to max_steps completes without pausing: it joins as one that reached.
  if (was_training && outcome == TrialOutcome::kCompleted && record.has_objective &&
      !std::isnan(record.objective)) {
    population_.push_back(Member{trial, record.objective});
    if (static_cast<int64_t>(population_.size()) > options_.population_size) {
      population_.pop_front();
    }
  }
}

int64_t MorphismEvolution::ChildrenInFlight() const {
  int64_t in_flight = 0;
  for (TrialNumber trial = options_.population_size;
       trial < static_cast<TrialNumber>(trials_.size()); ++trial) {
    if (trials_[trial].state == TrialState::kTraining) ++in_flight;
  }
  return in_flight;
}

Request MorphismEvolution::MakeChild(std::mt19937_64& random) const {
  const Member* best = nullptr;
  for (int64_t drawn = 0; drawn < options_.sample_size; ++drawn) {
    const Member& candidate = population_[random() % population_.size()];
    if (best == nullptr || Better(candidate.fitness, best->fitness)) best = &candidate;
  }
  const Trial& parent = trials_[best->trial];
  Request request{Request::Kind::kNewTrial, parent.point, options_.initial_steps, -1, 0};
  std::vector<size_t> mutable_dimensions;
  for (size_t d = 0; d < space_.dimensions.size(); ++d) {
    if (HasSeveralValues(space_.dimensions[d]) &&
        stage_tree::IsActive(space_.dimensions, parent.point, d)) {
      mutable_dimensions.push_back(d);
    }
  }
  if (mutable_dimensions.empty()) return request;
  const size_t d = mutable_dimensions[random() % mutable_dimensions.size()];
  const Dimension& dimension = space_.dimensions[d];
  Point& child = request.point;
  const bool grows =
      std::find(options_.grow.begin(), options_.grow.end(), d) != options_.grow.end();
  std::optional<double> larger;
  if (grows && parent.target + options_.child_steps <= options_.max_steps) {
    larger = NextLarger(dimension, std::get<double>(parent.point[d]));
  }
  if (larger) {
    request.kind = Request::Kind::kMorph;
    child[d] = *larger;
    request.trial = best->trial;
    request.fork_step = parent.target;
    request.target = parent.target + options_.child_steps;
  } else {
    for (int tries = 0; tries < kResampleTries && child[d] == parent.point[d]; ++tries) {
      child[d] = SampleDimension(dimension, random);
    }
  }
  // The dimensions the change brings into use (the widths of the layers a deeper network
  // appends), in space order. A morph's appended layer starts as the identity of the layer
  // before it, so a `grow` dimension takes the value of the last `grow` dimension before it that
  // the parent uses (clamped up to its own range); any other dimension is drawn afresh. Those the
  // change takes out of use get their placeholder back.
  std::optional<double> previous_width;
  for (size_t e = 0; e < space_.dimensions.size(); ++e) {
    const Dimension& other = space_.dimensions[e];
    const bool other_grows =
        std::find(options_.grow.begin(), options_.grow.end(), e) != options_.grow.end();
    const bool was_active = stage_tree::IsActive(space_.dimensions, parent.point, e);
    if (e > d && !was_active && stage_tree::IsActive(space_.dimensions, child, e)) {
      if (request.kind == Request::Kind::kMorph && other_grows && previous_width) {
        child[e] = AtLeast(other, *previous_width);
      } else {
        child[e] = SampleDimension(other, random);
      }
    }
    if (other_grows && e != d && was_active) {
      previous_width = std::get<double>(parent.point[e]);
    }
  }
  stage_tree::ResetUnused(space_.dimensions, child);
  return request;
}

std::vector<Request> MorphismEvolution::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  int64_t room = max_new_trials;
  while (static_cast<int64_t>(trials_.size()) < options_.population_size && room > 0) {
    Trial member;
    member.point = SamplePoint(space_, options_.seed, trials_.size());
    member.target = options_.initial_steps;
    requests.push_back(Request{Request::Kind::kNewTrial, member.point, member.target, -1, 0});
    trials_.push_back(std::move(member));
    --room;
  }
  const auto proposed = static_cast<int64_t>(trials_.size());
  if (proposed < options_.population_size) return requests;
  const int64_t children = proposed - options_.population_size;
  const bool initial_done =
      std::none_of(trials_.begin(), trials_.begin() + options_.population_size,
                   [](const Trial& trial) { return trial.state == TrialState::kTraining; });
  const bool can_select =
      !population_.empty() &&
      (static_cast<int64_t>(population_.size()) >= options_.sample_size || initial_done);
  const int64_t most_in_flight = std::max<int64_t>(1, options_.population_size / 2);
  int64_t made = 0;
  while (can_select && children + made < options_.children && room > 0 &&
         ChildrenInFlight() < most_in_flight) {
    const auto number = static_cast<TrialNumber>(trials_.size());
    std::mt19937_64 random =
        SeededGenerator(options_.seed, kChildStream, static_cast<uint64_t>(number));
    Request request = MakeChild(random);
    Trial child;
    child.point = request.point;
    child.target = request.target;
    child.inherited_from = request.kind == Request::Kind::kMorph ? request.trial : -1;
    trials_.push_back(std::move(child));
    requests.push_back(std::move(request));
    ++made;
    --room;
  }
  // Everything proposed and trained: the members waiting for children are done.
  const bool all_proposed =
      static_cast<int64_t>(trials_.size()) >= options_.population_size + options_.children ||
      (population_.empty() && ChildrenInFlight() == 0 && initial_done);
  if (all_proposed && !stopped_members_ &&
      std::none_of(trials_.begin(), trials_.end(),
                   [](const Trial& trial) { return trial.state == TrialState::kTraining; })) {
    stopped_members_ = true;
    for (TrialNumber trial = 0; trial < static_cast<TrialNumber>(trials_.size()); ++trial) {
      if (trials_[trial].state != TrialState::kReached) continue;
      trials_[trial].state = TrialState::kEnded;
      // Trained to its own target: it completes there (its objective counts for the best).
      requests.push_back(Request{Request::Kind::kStop, {}, trials_[trial].target, trial, 0});
    }
  }
  return requests;
}

bool MorphismEvolution::Finished() const {
  if (static_cast<int64_t>(trials_.size()) < options_.population_size) return false;
  return stopped_members_ && std::all_of(trials_.begin(), trials_.end(), [](const Trial& trial) {
           return trial.state == TrialState::kEnded;
         });
}

TrialNumber MorphismEvolution::InheritedFrom(TrialNumber trial) const {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return -1;
  return trials_[trial].inherited_from;
}

std::string MorphismEvolution::SaveState() const {
  std::string out = absl::StrCat(kStateHeader, "\n");
  PutInt(out, static_cast<int64_t>(trials_.size()));
  PutInt(out, stopped_members_);
  out.push_back('\n');
  for (const Trial& trial : trials_) {
    PutInt(out, static_cast<int64_t>(trial.state));
    PutInt(out, trial.target);
    PutInt(out, trial.inherited_from);
    PutInt(out, trial.has_objective);
    PutDouble(out, trial.objective);
    PutPoint(out, space_, trial.point);
    out.push_back('\n');
  }
  PutInt(out, static_cast<int64_t>(population_.size()));
  for (const Member& member : population_) {
    PutInt(out, member.trial);
    PutDouble(out, member.fitness);
  }
  out.push_back('\n');
  return out;
}

absl::Status MorphismEvolution::LoadState(const std::string& state) {
  auto bad = [] {
    return absl::DataLossError("bad saved state for morphism (not written by this version?)");
  };
  TokenReader reader(state);
  int64_t count = 0;
  int64_t stopped = 0;
  if (!reader.Expect(kStateHeader) || !reader.Int(count) || count < 0 ||
      count > options_.population_size + options_.children || !reader.Int(stopped)) {
    return bad();
  }
  std::vector<Trial> trials(count);
  for (Trial& trial : trials) {
    int64_t kind = 0;
    int64_t has_objective = 0;
    if (!reader.Int(kind) || kind < 0 || kind > static_cast<int64_t>(TrialState::kEnded) ||
        !reader.Int(trial.target) || !reader.Int(trial.inherited_from) ||
        trial.inherited_from < -1 || trial.inherited_from >= count || !reader.Int(has_objective) ||
        !reader.Double(trial.objective) || !reader.PointOf(space_, trial.point)) {
      return bad();
    }
    trial.state = static_cast<TrialState>(kind);
    trial.has_objective = has_objective != 0;
  }
  int64_t members = 0;
  if (!reader.Int(members) || members < 0 || members > options_.population_size) return bad();
  std::deque<Member> population(members);
  for (Member& member : population) {
    if (!reader.Int(member.trial) || member.trial < 0 || member.trial >= count ||
        !reader.Double(member.fitness)) {
      return bad();
    }
  }
  if (!reader.AtEnd()) return bad();
  trials_ = std::move(trials);
  population_ = std::move(population);
  stopped_members_ = stopped != 0;
  return absl::OkStatus();
}

}  // namespace hippo::search_algos
