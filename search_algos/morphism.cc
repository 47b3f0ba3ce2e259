#include "search_algos/morphism.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

constexpr char kStateHeader[] = "morphism-v2";

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

// The larger values of an ordered numeric dimension within `steps` steps of `value`, in order.
std::vector<double> LargerWithin(const Dimension& dimension, double value, int64_t steps) {
  std::vector<double> larger;
  for (std::optional<double> next = NextLarger(dimension, value);
       next && static_cast<int64_t>(larger.size()) < steps; next = NextLarger(dimension, *next)) {
    larger.push_back(*next);
  }
  return larger;
}

// A `grow` entry: a dimension's name, or NAME+N (it may rise by up to N steps at once). The
// most steps, 0 if the entry is malformed.
std::pair<std::string, int64_t> ParseGrow(const std::string& entry,
                                          const std::vector<Dimension>& dimensions) {
  const auto named = [&](const std::string& name) {
    return std::any_of(dimensions.begin(), dimensions.end(),
                       [&](const Dimension& d) { return d.name == name; });
  };
  const size_t plus = entry.rfind('+');
  if (named(entry) || plus == std::string::npos) return {entry, 1};
  const std::string digits = entry.substr(plus + 1);
  if (digits.empty() || digits.size() > 6 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return {entry, 0};
  }
  return {entry.substr(0, plus), std::stoll(digits)};
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
  absl::StatusOr<Sizes> sizes =
      ReadSizes("algorithm.morphism", config.population_size(), config.sample_size(),
                config.children(), context, Sizes{8, 3, 24});
  if (!sizes.ok()) return sizes.status();
  Options options;
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
  for (const std::string& entry : config.grow()) {
    const auto& dimensions = context.space->dimensions;
    const std::pair<std::string, int64_t> parsed = ParseGrow(entry, dimensions);
    const std::string& name = parsed.first;
    const int64_t most_steps = parsed.second;
    if (most_steps < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "algorithm.morphism.grow: '", entry,
          "': NAME+N needs a whole number of steps N >= 1 (the most a morph raises NAME at once)"));
    }
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
    options.most_steps.push_back(most_steps);
  }
  options.max_steps = context.max_steps;
  // The dimensions of structural parameters (the architecture); the others make the trial's
  // hyper-parameter sequences, which a continuing child may change.
  options.structural.assign(context.space->dimensions.size(), false);
  for (const stage_tree::ParameterSpec& parameter : context.space->parameters) {
    if (!parameter.structural) continue;
    for (const auto& component : parameter.components) {
      if (component.second.dimension) options.structural[*component.second.dimension] = true;
    }
  }
  return std::unique_ptr<SearchAlgorithm>(
      new MorphismEvolution(*context.space, *sizes, std::move(options), context));
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
  RemoveReading(record);
  record.has_objective = true;
  record.objective = objective;
  AddReading(record);
}

void MorphismEvolution::OnTrialReachedTarget(TrialNumber trial, Step target) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  if (record.state != TrialState::kTraining || target != record.target) return;
  SetState(trial, TrialState::kReached);
  JoinIfScored(trial);
}

void MorphismEvolution::OnTrialEnded(TrialNumber trial, TrialOutcome outcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  const bool was_training = record.state == TrialState::kTraining;
  SetState(trial, TrialState::kEnded);
  // A trial trained to max_steps completes without pausing: it joins as one that reached.
  if (was_training && outcome == TrialOutcome::kCompleted) JoinIfScored(trial);
}

void MorphismEvolution::JoinIfScored(TrialNumber trial) {
  const Trial& record = trials_[trial];
  if (record.has_objective && !std::isnan(record.objective)) Join(trial, record.objective);
}

bool MorphismEvolution::Grows(size_t dimension) const {
  return std::find(options_.grow.begin(), options_.grow.end(), dimension) != options_.grow.end();
}

int64_t MorphismEvolution::MostSteps(size_t dimension) const {
  const auto found = std::find(options_.grow.begin(), options_.grow.end(), dimension);
  if (found == options_.grow.end()) return 0;
  return options_.most_steps[static_cast<size_t>(found - options_.grow.begin())];
}

void MorphismEvolution::Admit(Trial trial) {
  const auto number = static_cast<TrialNumber>(trials_.size());
  if (trial.inherits) trials_[trial.parent].heirs.push_back(number);
  ++training_;
  if (number >= sizes_.population_size) ++children_training_;
  trials_.push_back(std::move(trial));
}

void MorphismEvolution::SetState(TrialNumber trial, TrialState state) {
  Trial& record = trials_[trial];
  const int64_t change = (state == TrialState::kTraining) - (record.state == TrialState::kTraining);
  training_ += change;
  if (trial >= sizes_.population_size) children_training_ += change;
  record.state = state;
}

void MorphismEvolution::AddReading(const Trial& record) {
  if (!record.has_objective || std::isnan(record.objective)) return;
  std::vector<double>& readings = readings_[record.target];
  readings.insert(std::upper_bound(readings.begin(), readings.end(), record.objective),
                  record.objective);
}

void MorphismEvolution::RemoveReading(const Trial& record) {
  if (!record.has_objective || std::isnan(record.objective)) return;
  const auto found = readings_.find(record.target);
  if (found == readings_.end()) return;
  std::vector<double>& readings = found->second;
  const auto at = std::lower_bound(readings.begin(), readings.end(), record.objective);
  if (at != readings.end() && *at == record.objective) readings.erase(at);
}

void MorphismEvolution::Reindex() {
  readings_.clear();
  training_ = 0;
  children_training_ = 0;
  for (Trial& record : trials_) record.heirs.clear();
  for (TrialNumber number = 0; number < static_cast<TrialNumber>(trials_.size()); ++number) {
    const Trial& record = trials_[number];
    if (record.inherits) trials_[record.parent].heirs.push_back(number);
    if (record.state == TrialState::kTraining) {
      ++training_;
      if (number >= sizes_.population_size) ++children_training_;
    }
    AddReading(record);
  }
}

double MorphismEvolution::Standing(TrialNumber trial) const {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return 0.5;
  const Trial& record = trials_[trial];
  if (!record.has_objective || std::isnan(record.objective)) return 0.5;
  // Its own reading is among them, so `readings` is never empty.
  const std::vector<double>& readings = readings_.at(record.target);
  const auto low = std::lower_bound(readings.begin(), readings.end(), record.objective);
  const auto high = std::upper_bound(low, readings.end(), record.objective);
  const double below = static_cast<double>(low - readings.begin());
  const double above = static_cast<double>(readings.end() - high);
  const double ties = static_cast<double>(high - low);  // itself included, counting half each
  const double beaten = minimize_ ? above : below;
  return (beaten + ties / 2) / static_cast<double>(readings.size());
}

bool MorphismEvolution::Beats(TrialNumber a, TrialNumber b) const {
  const double fitness_a = trials_[a].objective;
  const double fitness_b = trials_[b].objective;
  const double standing_a = Standing(a);
  const double standing_b = Standing(b);
  if (standing_a != standing_b) return standing_a > standing_b;
  return Better(fitness_a, fitness_b);
}

Request MorphismEvolution::MakeChild(std::mt19937_64& random, TrialNumber& winner) const {
  winner = Tournament(random, [this](const Member& a, const Member& b) {
             return Beats(a.trial, b.trial);
           }).trial;
  const Point& parent = trials_[winner].point;
  Request request{Request::Kind::kNewTrial, parent, options_.initial_steps, -1, 0};
  Point& child = request.point;
  // The morphs the parent can have: a `grow` dimension it uses that has a larger value, while
  // the child's steps still fit in budget.max_steps, and that no earlier child of it grew (that
  // child would be trained again as the same network).
  std::vector<size_t> growable;
  if (trials_[winner].target + options_.child_steps <= options_.max_steps) {
    for (size_t g : options_.grow) {
      const std::vector<TrialNumber>& heirs = trials_[winner].heirs;
      const bool grown_before = std::any_of(heirs.begin(), heirs.end(), [&](TrialNumber heir) {
        return trials_[heir].point[g] != parent[g];
      });
      if (!grown_before && stage_tree::IsActive(space_.dimensions, parent, g) &&
          NextLarger(space_.dimensions[g], std::get<double>(parent[g]))) {
        growable.push_back(g);
      }
    }
  }
  const Step continued = trials_[winner].target + options_.child_steps;
  const auto continue_parent = [&] {
    request.kind = Request::Kind::kMorph;
    request.trial = winner;
    request.fork_step = trials_[winner].target;
    request.target = continued;
  };
  // Whether an earlier child of the winner inherited its state with the point `point`.
  const auto inherited_before = [&](const Point& point) {
    const std::vector<TrialNumber>& heirs = trials_[winner].heirs;
    return std::any_of(heirs.begin(), heirs.end(),
                       [&](TrialNumber heir) { return trials_[heir].point == point; });
  };
  size_t d = 0;
  if (!growable.empty()) {
    d = growable[random() % growable.size()];
    // Up to the entry's most steps larger, drawn uniformly (no draw when one step is allowed, so
    // that a plain entry makes the children it made before NAME+N existed).
    const std::vector<double> larger =
        LargerWithin(space_.dimensions[d], std::get<double>(parent[d]), MostSteps(d));
    child[d] = larger.size() == 1 ? larger.front() : larger[random() % larger.size()];
    continue_parent();
  } else if (continued <= options_.max_steps && !inherited_before(parent)) {
    // Nothing left to grow: the identity morphism, the same network trained further.
    continue_parent();
    return request;
  } else if (continued <= options_.max_steps && ChangeSchedule(parent, child, random) &&
             !inherited_before(child)) {
    // Trained on once already: the same network trained further under another schedule.
    continue_parent();
    return request;
  } else {
    child = parent;
    const std::vector<size_t> mutable_dimensions = MutableDimensions(parent);
    if (mutable_dimensions.empty()) return request;
    d = mutable_dimensions[random() % mutable_dimensions.size()];
    Resample(parent, d, child, random);
  }
  // A morph's appended layer starts as the identity of the layer before it: a `grow` dimension
  // it brings into use takes the value of the last `grow` dimension before it that the parent
  // uses (clamped up to its own range). A mutation from scratch draws them afresh.
  const bool morph = request.kind == Request::Kind::kMorph;
  CompleteChild(parent, d, child, random, [&](size_t e) -> std::optional<double> {
    if (!morph || !Grows(e)) return std::nullopt;
    for (size_t before = e; before-- > 0;) {
      if (before != d && Grows(before) && stage_tree::IsActive(space_.dimensions, parent, before)) {
        return AtLeast(space_.dimensions[e], std::get<double>(parent[before]));
      }
    }
    return std::nullopt;
  });
  return request;
}

bool MorphismEvolution::ChangeSchedule(const Point& parent, Point& child,
                                       std::mt19937_64& random) const {
  std::vector<size_t> schedule = MutableDimensions(parent);
  std::erase_if(schedule, [&](size_t d) { return options_.structural[d]; });
  if (schedule.empty()) return false;
  const size_t d = schedule[random() % schedule.size()];
  Resample(parent, d, child, random);
  // A sequence that changes its shape (one_of) brings in the new shape's parameters, drawn.
  CompleteChild(parent, d, child, random, [](size_t) { return std::nullopt; });
  return child != parent;
}

std::vector<Request> MorphismEvolution::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  int64_t room = max_new_trials;
  while (static_cast<int64_t>(trials_.size()) < sizes_.population_size && room > 0) {
    Trial member;
    member.point = InitialPoint(trials_.size());
    member.target = options_.initial_steps;
    requests.push_back(Request{Request::Kind::kNewTrial, member.point, member.target, -1, 0});
    Admit(std::move(member));
    --room;
  }
  const auto proposed = static_cast<int64_t>(trials_.size());
  if (proposed < sizes_.population_size) return requests;
  const int64_t children = proposed - sizes_.population_size;
  const bool initial_done = training_ == children_training_;  // no initial member trains
  const bool can_select =
      !population_.empty() &&
      (static_cast<int64_t>(population_.size()) >= sizes_.sample_size || initial_done);
  const int64_t most_in_flight = std::max<int64_t>(1, sizes_.population_size / 2);
  int64_t made = 0;
  while (can_select && children + made < sizes_.children && room > 0 &&
         children_training_ < most_in_flight) {
    const auto number = static_cast<TrialNumber>(trials_.size());
    std::mt19937_64 random = ChildGenerator(number);
    Trial child;
    Request request = MakeChild(random, child.parent);
    child.point = request.point;
    child.target = request.target;
    child.inherits = request.kind == Request::Kind::kMorph;
    Admit(std::move(child));
    requests.push_back(std::move(request));
    ++made;
    --room;
  }
  // Everything proposed and trained: the members waiting for children are done.
  const bool all_proposed =
      static_cast<int64_t>(trials_.size()) >= sizes_.population_size + sizes_.children ||
      (population_.empty() && children_training_ == 0 && initial_done);
  if (all_proposed && !stopped_members_ && training_ == 0) {
    stopped_members_ = true;
    for (TrialNumber trial = 0; trial < static_cast<TrialNumber>(trials_.size()); ++trial) {
      if (trials_[trial].state != TrialState::kReached) continue;
      SetState(trial, TrialState::kEnded);
      // Trained to its own target: it completes there (its objective counts for the best).
      requests.push_back(Request{Request::Kind::kStop, {}, trials_[trial].target, trial, 0});
    }
  }
  return requests;
}

bool MorphismEvolution::Finished() const {
  if (static_cast<int64_t>(trials_.size()) < sizes_.population_size) return false;
  return stopped_members_ && std::all_of(trials_.begin(), trials_.end(), [](const Trial& trial) {
           return trial.state == TrialState::kEnded;
         });
}

TrialNumber MorphismEvolution::InheritedFrom(TrialNumber trial) const {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return -1;
  return trials_[trial].inherits ? trials_[trial].parent : -1;
}

TrialNumber MorphismEvolution::ParentOf(TrialNumber trial) const {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return -1;
  return trials_[trial].parent;
}

std::string MorphismEvolution::SaveState() const {
  std::string out = absl::StrCat(kStateHeader, "\n");
  PutInt(out, static_cast<int64_t>(trials_.size()));
  PutInt(out, stopped_members_);
  out.push_back('\n');
  for (const Trial& trial : trials_) {
    PutInt(out, static_cast<int64_t>(trial.state));
    PutInt(out, trial.target);
    PutInt(out, trial.parent);
    PutInt(out, trial.inherits);
    PutInt(out, trial.has_objective);
    PutDouble(out, trial.objective);
    PutPoint(out, space_, trial.point);
    out.push_back('\n');
  }
  PutPopulation(out);
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
      count > sizes_.population_size + sizes_.children || !reader.Int(stopped)) {
    return bad();
  }
  std::vector<Trial> trials(count);
  for (Trial& trial : trials) {
    int64_t kind = 0;
    int64_t inherits = 0;
    int64_t has_objective = 0;
    if (!reader.Int(kind) || kind < 0 || kind > static_cast<int64_t>(TrialState::kEnded) ||
        !reader.Int(trial.target) || !reader.Int(trial.parent) || trial.parent < -1 ||
        trial.parent >= count || !reader.Int(inherits) || (inherits != 0 && trial.parent < 0) ||
        !reader.Int(has_objective) || !reader.Double(trial.objective) ||
        !reader.PointOf(space_, trial.point)) {
      return bad();
    }
    trial.state = static_cast<TrialState>(kind);
    trial.inherits = inherits != 0;
    trial.has_objective = has_objective != 0;
  }
  std::optional<std::deque<Member>> population = ReadPopulation(reader, count);
  if (!population || !reader.AtEnd()) return bad();
  trials_ = std::move(trials);
  population_ = *std::move(population);
  stopped_members_ = stopped != 0;
  Reindex();
  return absl::OkStatus();
}

}  // namespace hippo::search_algos
