#include "search_algos/pbt.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "search_algos/point_sampler.h"
#include "search_algos/state_text.h"

namespace hippo::search_algos {
namespace {

using stage_tree::Dimension;
using stage_tree::DimensionKind;
using stage_tree::Point;
using stage_tree::SearchSpace;
using stage_tree::Value;

// A dimension PBT can perturb: a range, or a choice of numbers.
bool IsNumeric(const Dimension& dimension) {
  if (dimension.kind != DimensionKind::kChoice) return true;
  return std::all_of(dimension.choices.begin(), dimension.choices.end(),
                     [](const Value& value) { return std::holds_alternative<double>(value); });
}

// The dimensions named in perturbed_parameters, or by default every numeric dimension of a
// non-structural parameter, in space order.
absl::StatusOr<std::vector<size_t>> PerturbedDimensions(
    const SearchSpace& space, const google::protobuf::RepeatedPtrField<std::string>& names) {
  std::vector<const stage_tree::ParameterSpec*> parameter_of(space.dimensions.size(), nullptr);
  for (const stage_tree::ParameterSpec& parameter : space.parameters) {
    for (const auto& [unused, component] : parameter.components) {
      if (component.dimension) parameter_of[*component.dimension] = &parameter;
    }
  }
  auto structural = [&](size_t dimension) {
    return parameter_of[dimension] != nullptr && parameter_of[dimension]->structural;
  };
  std::set<size_t> chosen;
  if (names.empty()) {
    for (size_t d = 0; d < space.dimensions.size(); ++d) {
      if (IsNumeric(space.dimensions[d]) && !structural(d)) chosen.insert(d);
    }
    return std::vector<size_t>(chosen.begin(), chosen.end());
  }
  for (const std::string& name : names) {
    const std::string field = absl::StrCat("algorithm.pbt.perturbed_parameters: '", name, "'");
    bool found = false;
    for (size_t d = 0; d < space.dimensions.size(); ++d) {
      const bool exact = space.dimensions[d].name == name;
      const bool of_parameter = parameter_of[d] != nullptr && parameter_of[d]->name == name;
      if (!exact && !of_parameter) continue;
      if (structural(d)) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " is structural; a fork continues its parent's model and cannot change it"));
      }
      if (!IsNumeric(space.dimensions[d])) {
        if (exact) return absl::InvalidArgumentError(absl::StrCat(field, " is not numeric"));
        continue;
      }
      chosen.insert(d);
      found = true;
    }
    if (!found) {
      std::vector<std::string> known;
      for (const Dimension& dimension : space.dimensions) known.push_back(dimension.name);
      return absl::InvalidArgumentError(absl::StrCat(
          field, " names no numeric dimension; the space has: ", absl::StrJoin(known, ", ")));
    }
  }
  return std::vector<size_t>(chosen.begin(), chosen.end());
}

using state_text::PutDouble;
using state_text::PutInt;
using state_text::PutPoint;
using state_text::TokenReader;

constexpr char kStateHeader[] = "pbt-v1";

// A uniform draw from [0, 1) with 53 random bits, the same on every platform.
double Unit(std::mt19937_64& random) { return static_cast<double>(random() >> 11) * 0x1.0p-53; }

}  // namespace

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> PopulationBasedTraining::Create(
    const AlgorithmContext& context) {
  const hippo::v1::PbtConfig& config = context.config.pbt();
  Options options;
  if (config.population_size() != 0) {
    if (config.population_size() < 2) {
      return absl::InvalidArgumentError("algorithm.pbt.population_size: must be >= 2");
    }
    options.population_size = config.population_size();
  }
  if (config.perturbation_interval() <= 0) {
    return absl::InvalidArgumentError(
        "algorithm.pbt.perturbation_interval: must be > 0 (the steps between exploit/explore "
        "rounds)");
  }
  options.perturbation_interval = config.perturbation_interval();
  if (config.quantile_fraction() != 0) {
    if (!(config.quantile_fraction() > 0 && config.quantile_fraction() <= 0.5)) {
      return absl::InvalidArgumentError("algorithm.pbt.quantile_fraction: must be in (0, 0.5]");
    }
    options.quantile_fraction = config.quantile_fraction();
  }
  if (!config.perturbation_factors().empty()) {
    options.perturbation_factors.assign(config.perturbation_factors().begin(),
                                        config.perturbation_factors().end());
    for (double factor : options.perturbation_factors) {
      if (!(factor > 0) || !std::isfinite(factor)) {
        return absl::InvalidArgumentError(
            absl::StrCat("algorithm.pbt.perturbation_factors: ", factor, " is not > 0"));
      }
    }
  }
  if (config.resample_probability() != 0) {
    if (!(config.resample_probability() > 0 && config.resample_probability() <= 1)) {
      return absl::InvalidArgumentError("algorithm.pbt.resample_probability: must be in [0, 1]");
    }
    options.resample_probability = config.resample_probability();
  }
  if (context.max_steps <= 0) {
    return absl::InvalidArgumentError(
        "budget.max_steps: must be > 0 for population based training");
  }
  if (context.max_trials > 0 && context.max_trials < options.population_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.pbt.population_size: ", options.population_size,
                     " exceeds budget.max_trials (", context.max_trials,
                     "); the initial members are trials too: raise max_trials or shrink the "
                     "population"));
  }
  options.max_trials = context.max_trials;
  absl::StatusOr<std::vector<size_t>> perturbed =
      PerturbedDimensions(*context.space, config.perturbed_parameters());
  if (!perturbed.ok()) return perturbed.status();
  options.perturbed_dimensions = *std::move(perturbed);
  options.max_steps = context.max_steps;
  options.minimize = context.minimize;
  options.seed = context.seed;
  return std::unique_ptr<SearchAlgorithm>(
      new PopulationBasedTraining(*context.space, std::move(options)));
}

void PopulationBasedTraining::OnMetric(TrialNumber trial, Step step, double objective) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  if (record.has_objective && step < record.objective_step) return;
  record.has_objective = true;
  record.objective_step = step;
  record.objective = objective;
}

void PopulationBasedTraining::OnTrialReachedTarget(TrialNumber trial, Step target) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  trials_[trial].reached = std::max(trials_[trial].reached, target);
}

void PopulationBasedTraining::OnTrialEnded(TrialNumber trial, TrialOutcome outcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  if (record.ended) return;
  record.ended = true;
  // A member that failed or was stopped from outside leaves its slot to be refilled.
  if (outcome != TrialOutcome::kCompleted && slots_[record.slot] == trial) slots_[record.slot] = -1;
}

std::vector<Request> PopulationBasedTraining::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  int64_t room = max_new_trials;
  while (static_cast<int64_t>(slots_.size()) < options_.population_size && room > 0) {
    Request request;
    request.kind = Request::Kind::kNewTrial;
    request.point = SamplePoint(space_, options_.seed, slots_.size());
    request.target = boundary_;
    Trial trial;
    trial.point = request.point;
    trial.slot = static_cast<int64_t>(slots_.size());
    slots_.push_back(static_cast<TrialNumber>(trials_.size()));
    trials_.push_back(std::move(trial));
    requests.push_back(std::move(request));
    --room;
  }
  if (RoundComplete()) {
    const size_t before = requests.size();
    ExploitAndExplore(requests);
    // An extended member runs again: it takes room as a fork does.
    room -= static_cast<int64_t>(requests.size() - before);
  }
  size_t forked = 0;
  for (; forked < pending_forks_.size() && room > 0; ++forked, --room) {
    PendingFork& fork = pending_forks_[forked];
    Request request;
    request.kind = Request::Kind::kFork;
    request.trial = fork.parent;
    request.fork_step = fork.fork_step;
    request.point = fork.point;
    request.target = boundary_;
    requests.push_back(std::move(request));
    const TrialNumber replaced = slots_[fork.slot];
    Trial trial;
    trial.point = std::move(fork.point);
    trial.slot = fork.slot;
    trial.reached = fork.fork_step;
    slots_[fork.slot] = static_cast<TrialNumber>(trials_.size());
    trials_.push_back(std::move(trial));
    if (replaced >= 0 && !trials_[replaced].ended) {
      Request stop;
      stop.kind = Request::Kind::kStop;
      stop.trial = replaced;
      requests.push_back(std::move(stop));
      trials_[replaced].ended = true;
    }
  }
  pending_forks_.erase(pending_forks_.begin(), pending_forks_.begin() + forked);
  return requests;
}

bool PopulationBasedTraining::Finished() const {
  if (static_cast<int64_t>(slots_.size()) < options_.population_size) return false;
  if (!pending_forks_.empty()) return false;
  return std::all_of(slots_.begin(), slots_.end(),
                     [this](TrialNumber member) { return member < 0 || trials_[member].ended; });
}

bool PopulationBasedTraining::RoundComplete() const {
  if (static_cast<int64_t>(slots_.size()) < options_.population_size) return false;
  if (!pending_forks_.empty() || boundary_ >= options_.max_steps) return false;
  bool any_member = false;
  for (TrialNumber member : slots_) {
    if (member < 0) continue;
    if (trials_[member].ended || trials_[member].reached < boundary_) return false;
    any_member = true;
  }
  return any_member;
}

void PopulationBasedTraining::ExploitAndExplore(std::vector<Request>& requests) {
  // The occupied slots, best member first; a member without an objective ranks last, ties go
  // to the lower slot (stable sort).
  std::vector<int64_t> ranked;
  for (int64_t slot = 0; slot < static_cast<int64_t>(slots_.size()); ++slot) {
    if (slots_[slot] >= 0) ranked.push_back(slot);
  }
  auto ranks_ahead = [this](int64_t a, int64_t b) {
    const Trial& x = trials_[slots_[a]];
    const Trial& y = trials_[slots_[b]];
    const bool x_scored = x.has_objective && !std::isnan(x.objective);
    const bool y_scored = y.has_objective && !std::isnan(y.objective);
    if (x_scored != y_scored) return x_scored;
    return x_scored && Better(x.objective, y.objective);
  };
  std::stable_sort(ranked.begin(), ranked.end(), ranks_ahead);
  const size_t members = ranked.size();
  const size_t quantile =
      std::min(static_cast<size_t>(
                   std::ceil(static_cast<double>(members) * options_.quantile_fraction - 1e-9)),
               members / 2);
  // Empty slots are refilled from the best member even when the quantile is empty.
  const std::vector<int64_t> top(ranked.begin(),
                                 ranked.begin() + std::min(members, std::max<size_t>(quantile, 1)));
  const std::set<int64_t> bottom(ranked.end() - quantile, ranked.end());

  // The slots refilled by a fork: the empty ones, then the bottom members, worst first, as
  // far as budget.max_trials leaves trials (a fork is a trial); a bottom member left over goes
  // on with its own hyper-parameters, as an extension.
  std::vector<int64_t> refill;
  for (int64_t slot = 0; slot < static_cast<int64_t>(slots_.size()); ++slot) {
    if (slots_[slot] < 0) refill.push_back(slot);
  }
  for (auto it = ranked.rbegin(); it != ranked.rend(); ++it) {
    if (bottom.contains(*it)) refill.push_back(*it);
  }
  if (options_.max_trials > 0) {
    const int64_t trials_left = std::max<int64_t>(
        0, options_.max_trials - static_cast<int64_t>(trials_.size() + pending_forks_.size()));
    if (static_cast<int64_t>(refill.size()) > trials_left) refill.resize(trials_left);
  }
  const std::set<int64_t> refilled(refill.begin(), refill.end());

  const Step fork_step = boundary_;
  boundary_ = std::min(boundary_ + options_.perturbation_interval, options_.max_steps);
  for (int64_t slot = 0; slot < static_cast<int64_t>(slots_.size()); ++slot) {
    if (slots_[slot] >= 0 && !refilled.contains(slot)) {
      Request extend;
      extend.kind = Request::Kind::kExtend;
      extend.trial = slots_[slot];
      extend.target = boundary_;
      requests.push_back(std::move(extend));
      continue;
    }
    if (slots_[slot] < 0 && !refilled.contains(slot)) continue;  // no trials left to refill it
    if (top.empty()) continue;
    // One generator per (boundary, slot): the decision does not depend on the order of others.
    std::mt19937_64 random = SeededGenerator(options_.seed, static_cast<uint64_t>(fork_step),
                                             static_cast<uint64_t>(slot));
    const TrialNumber parent = slots_[top[random() % top.size()]];
    pending_forks_.push_back(
        PendingFork{slot, parent, fork_step, Explore(trials_[parent].point, random)});
  }
}

Point PopulationBasedTraining::Explore(const Point& point, std::mt19937_64& random) const {
  Point explored = point;
  for (size_t d : options_.perturbed_dimensions) {
    // A dimension the member does not use (a parameter whose `when` fails, an alternative of
    // one_of it did not choose) is no parameter of its trial: it keeps its placeholder, so the
    // fork has exactly its parent's parameters. Conditions are on structural parameters, which
    // a fork never changes, so no perturbation brings a dimension into use either.
    if (!stage_tree::IsActive(space_.dimensions, point, d)) continue;
    const Dimension& dimension = space_.dimensions[d];
    if (Unit(random) < options_.resample_probability) {
      explored[d] = SampleDimension(dimension, random);
    } else {
      const double factor =
          options_.perturbation_factors[random() % options_.perturbation_factors.size()];
      explored[d] = Perturb(dimension, explored[d], factor);
    }
  }
  return explored;
}

Value PopulationBasedTraining::Perturb(const Dimension& dimension, const Value& value,
                                       double factor) const {
  const double* number = std::get_if<double>(&value);
  if (number == nullptr) return value;
  if (dimension.kind == DimensionKind::kChoice) {
    // Choices of numbers are ordered by value: move one step in the factor's direction.
    std::vector<double> ordered;
    for (const Value& choice : dimension.choices) ordered.push_back(std::get<double>(choice));
    std::sort(ordered.begin(), ordered.end());
    const auto at = std::lower_bound(ordered.begin(), ordered.end(), *number);
    if (factor > 1 && at != ordered.end() && at + 1 != ordered.end()) return *(at + 1);
    if (factor < 1 && at != ordered.begin()) return *(at - 1);
    return value;
  }
  double perturbed = std::clamp(*number * factor, dimension.low, dimension.high);
  if (dimension.step > 0) {
    perturbed =
        dimension.low + std::round((perturbed - dimension.low) / dimension.step) * dimension.step;
    if (perturbed > dimension.high) perturbed -= dimension.step;
    perturbed = std::clamp(perturbed, dimension.low, dimension.high);
  }
  return perturbed;
}

std::string PopulationBasedTraining::SaveState() const {
  std::string out = absl::StrCat(kStateHeader, "\n");
  PutInt(out, boundary_);
  PutInt(out, static_cast<int64_t>(trials_.size()));
  out.push_back('\n');
  for (const Trial& trial : trials_) {
    PutInt(out, trial.slot);
    PutInt(out, trial.reached);
    PutInt(out, trial.has_objective);
    PutInt(out, trial.objective_step);
    PutDouble(out, trial.objective);
    PutInt(out, trial.ended);
    PutPoint(out, space_, trial.point);
    out.push_back('\n');
  }
  PutInt(out, static_cast<int64_t>(slots_.size()));
  for (TrialNumber member : slots_) PutInt(out, member);
  out.push_back('\n');
  PutInt(out, static_cast<int64_t>(pending_forks_.size()));
  out.push_back('\n');
  for (const PendingFork& fork : pending_forks_) {
    PutInt(out, fork.slot);
    PutInt(out, fork.parent);
    PutInt(out, fork.fork_step);
    PutPoint(out, space_, fork.point);
    out.push_back('\n');
  }
  return out;
}

absl::Status PopulationBasedTraining::LoadState(const std::string& state) {
  auto bad = [] {
    return absl::DataLossError(
        "bad saved state for population based training (not written by this version?)");
  };
  TokenReader reader(state);
  Step boundary = 0;
  int64_t count = 0;
  if (!reader.Expect(kStateHeader) || !reader.Int(boundary) || boundary <= 0 ||
      boundary > options_.max_steps || !reader.Int(count) || count < 0) {
    return bad();
  }
  std::vector<Trial> trials;
  for (int64_t i = 0; i < count; ++i) {
    Trial trial;
    int64_t has_objective = 0;
    int64_t ended = 0;
    if (!reader.Int(trial.slot) || trial.slot < 0 || trial.slot >= options_.population_size ||
        !reader.Int(trial.reached) || !reader.Int(has_objective) ||
        !reader.Int(trial.objective_step) || !reader.Double(trial.objective) ||
        !reader.Int(ended) || !reader.PointOf(space_, trial.point)) {
      return bad();
    }
    trial.has_objective = has_objective != 0;
    trial.ended = ended != 0;
    trials.push_back(std::move(trial));
  }
  int64_t slot_count = 0;
  if (!reader.Int(slot_count) || slot_count < 0 || slot_count > options_.population_size) {
    return bad();
  }
  std::vector<TrialNumber> slots(slot_count);
  for (TrialNumber& member : slots) {
    if (!reader.Int(member) || member < -1 || member >= count) return bad();
  }
  int64_t pending_count = 0;
  if (!reader.Int(pending_count) || pending_count < 0 || pending_count > slot_count) return bad();
  std::vector<PendingFork> pending(pending_count);
  for (PendingFork& fork : pending) {
    if (!reader.Int(fork.slot) || fork.slot < 0 || fork.slot >= slot_count ||
        !reader.Int(fork.parent) || fork.parent < 0 || fork.parent >= count ||
        !reader.Int(fork.fork_step) || !reader.PointOf(space_, fork.point)) {
      return bad();
    }
  }
  if (!reader.AtEnd()) return bad();
  trials_ = std::move(trials);
  slots_ = std::move(slots);
  boundary_ = boundary;
  pending_forks_ = std::move(pending);
  return absl::OkStatus();
}

std::vector<Step> PopulationBasedTraining::BranchSteps() const {
  std::vector<Step> steps;
  for (Step step = options_.perturbation_interval; step < options_.max_steps;
       step += options_.perturbation_interval) {
    steps.push_back(step);
  }
  return steps;
}

proto::Issue PopulationBasedTraining::CheckConfig(const hippo::v1::Algorithm& config,
                                                  const hippo::v1::StudySpec& spec) {
  const hippo::v1::PbtConfig& pbt = config.pbt();
  const Step max_steps = spec.budget().max_steps();
  if (pbt.population_size() < 2) {
    return proto::Problem("algorithm.pbt.population_size",
                          absl::StrCat("must be at least 2 (got ", pbt.population_size(),
                                       "), e.g. population_size: 16"));
  }
  if (const int64_t max_trials = spec.budget().max_trials();
      max_trials > 0 && max_trials < pbt.population_size()) {
    return proto::Problem(
        "algorithm.pbt.population_size",
        absl::StrCat("must not exceed budget.max_trials (got ", pbt.population_size(), " > ",
                     max_trials, "); the initial members are trials too"));
  }
  if (pbt.perturbation_interval() <= 0 || pbt.perturbation_interval() >= max_steps) {
    return proto::Problem("algorithm.pbt.perturbation_interval",
                          absl::StrCat("must be between 1 and budget.max_steps - 1 (got ",
                                       pbt.perturbation_interval(),
                                       "); the steps between exploit/explore rounds, e.g. 10"));
  }
  if (pbt.quantile_fraction() > 0.5) {
    return proto::Problem(
        "algorithm.pbt.quantile_fraction",
        absl::StrCat("must be at most 0.5 (got ", proto::FormatNumber(pbt.quantile_fraction()),
                     "); the bottom fraction is replaced by the top one"));
  }
  if (pbt.resample_probability() > 1) {
    return proto::Problem("algorithm.pbt.resample_probability",
                          absl::StrCat("must be at most 1 (got ",
                                       proto::FormatNumber(pbt.resample_probability()), ")"));
  }
  for (int i = 0; i < pbt.perturbation_factors_size(); ++i) {
    if (pbt.perturbation_factors(i) <= 0) {
      return proto::Problem(proto::IndexPath("algorithm.pbt.perturbation_factors", i),
                            "must be > 0");
    }
  }
  const auto& parameters = spec.search_space().parameters();
  for (int i = 0; i < pbt.perturbed_parameters_size(); ++i) {
    const std::string path = proto::IndexPath("algorithm.pbt.perturbed_parameters", i);
    const std::string& name = pbt.perturbed_parameters(i);
    const auto it = std::find_if(parameters.begin(), parameters.end(),
                                 [&](const auto& parameter) { return parameter.name() == name; });
    if (it == parameters.end()) {
      return proto::Problem(path,
                            absl::StrCat("no parameter named \"", name, "\" in search_space"));
    }
    if (it->structural() || it->has_fixed()) {
      return proto::Problem(
          path, absl::StrCat("\"", name, "\" is ", it->structural() ? "structural" : "fixed",
                             ", so PBT cannot change it during training"));
    }
  }
  return std::nullopt;
}

}  // namespace hippo::search_algos
