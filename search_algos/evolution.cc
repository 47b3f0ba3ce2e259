#include "search_algos/evolution.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "search_algos/point_sampler.h"
#include "search_algos/state_text.h"

namespace hippo::search_algos {
namespace {

using stage_tree::Dimension;
using stage_tree::DimensionKind;
using stage_tree::Point;
using stage_tree::SearchSpace;
using stage_tree::Value;

// The values next to `value` in an ordered numeric dimension: one or two.
std::vector<double> Neighbours(const Dimension& dimension, double value) {
  std::vector<double> neighbours;
  if (dimension.kind == DimensionKind::kChoice) {
    std::vector<double> ordered;
    for (const Value& choice : dimension.choices) ordered.push_back(std::get<double>(choice));
    std::sort(ordered.begin(), ordered.end());
    ordered.erase(std::unique(ordered.begin(), ordered.end()), ordered.end());
    const auto at = std::lower_bound(ordered.begin(), ordered.end(), value);
    if (at != ordered.begin()) neighbours.push_back(*(at - 1));
    if (at != ordered.end() && at + 1 != ordered.end()) neighbours.push_back(*(at + 1));
    return neighbours;
  }
  const double tolerance = 1e-9 * dimension.step;
  if (value - dimension.step >= dimension.low - tolerance) {
    neighbours.push_back(value - dimension.step);
  }
  if (value + dimension.step <= dimension.high + tolerance) {
    neighbours.push_back(value + dimension.step);
  }
  return neighbours;
}

using state_text::PutDouble;
using state_text::PutInt;
using state_text::PutPoint;
using state_text::TokenReader;

constexpr char kStateHeader[] = "evolution-v1";

bool Scored(bool has_objective, double objective) {
  return has_objective && !std::isnan(objective);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> RegularizedEvolution::Create(
    const AlgorithmContext& context) {
  const hippo::v1::EvolutionConfig& config = context.config.evolution();
  if (context.max_steps <= 0) {
    return absl::InvalidArgumentError("budget.max_steps: must be > 0 for evolution");
  }
  absl::StatusOr<Sizes> sizes =
      ReadSizes("algorithm.evolution", config.population_size(), config.sample_size(),
                config.children(), context, Sizes{20, 5, 100});
  if (!sizes.ok()) return sizes.status();
  Options options;
  if (config.has_asha()) {
    const hippo::v1::AshaConfig& asha = config.asha();
    if (asha.min_resource() <= 0) {
      return absl::InvalidArgumentError(
          "algorithm.evolution.asha.min_resource: must be > 0 (the steps of the first rung)");
    }
    if (asha.max_resource() != 0 && asha.max_resource() != context.max_steps) {
      return absl::InvalidArgumentError(absl::StrCat(
          "algorithm.evolution.asha.max_resource: children train to budget.max_steps (",
          context.max_steps, "); leave it unset or set it to that"));
    }
    if (asha.reduction_factor() != 0) {
      if (!(asha.reduction_factor() > 1) || !std::isfinite(asha.reduction_factor())) {
        return absl::InvalidArgumentError("algorithm.evolution.asha.reduction_factor: must be > 1");
      }
      options.reduction_factor = asha.reduction_factor();
    }
    if (!asha.sampler().empty()) {
      return absl::InvalidArgumentError(
          "algorithm.evolution.asha.sampler: evolution makes its own children; leave it unset");
    }
    for (double rung = static_cast<double>(asha.min_resource()); rung < context.max_steps;
         rung *= options.reduction_factor) {
      const auto step = static_cast<Step>(std::llround(rung));
      if (step >= context.max_steps) break;
      if (options.rungs.empty() || step > options.rungs.back()) options.rungs.push_back(step);
    }
  }
  options.max_steps = context.max_steps;
  return std::unique_ptr<SearchAlgorithm>(
      new RegularizedEvolution(*context.space, *sizes, std::move(options), context));
}

void RegularizedEvolution::OnMetric(TrialNumber trial, Step step, double objective) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  if (record.has_objective && step < record.objective_step) return;
  record.has_objective = true;
  record.objective_step = step;
  record.objective = objective;
}

void RegularizedEvolution::OnTrialReachedTarget(TrialNumber trial, Step target) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  // At max_steps the trial completes (OnTrialEnded follows); below it, it is at a rung.
  if (record.state != TrialState::kTraining || target >= options_.max_steps) return;
  record.state = TrialState::kPaused;
  record.target = target;
  if (Scored(record.has_objective, record.objective)) {
    rung_results_[target].push_back(record.objective);
  }
  paused_.push_back(trial);
}

void RegularizedEvolution::OnTrialEnded(TrialNumber trial, TrialOutcome outcome) {
  if (trial < 0 || trial >= static_cast<TrialNumber>(trials_.size())) return;
  Trial& record = trials_[trial];
  if (record.state == TrialState::kEnded) return;
  if (record.state == TrialState::kPaused) std::erase(paused_, trial);
  record.state = TrialState::kEnded;
  if (outcome != TrialOutcome::kCompleted || !Scored(record.has_objective, record.objective)) {
    return;
  }
  Join(trial, record.objective);
}

std::vector<Request> RegularizedEvolution::Suggest(int64_t max_new_trials) {
  std::vector<Request> requests;
  // A promoted child runs again: it takes room as a new trial does.
  int64_t room = max_new_trials;
  while (!paused_.empty()) {
    const TrialNumber number = paused_.front();
    paused_.pop_front();
    Trial& child = trials_[number];
    Request request;
    request.trial = number;
    if (Promote(child, child.target)) {
      request.kind = Request::Kind::kExtend;
      request.target = NextTarget(child.target);
      child.state = TrialState::kTraining;
      child.target = request.target;
      --room;
    } else {
      request.kind = Request::Kind::kStop;
      child.state = TrialState::kEnded;
    }
    requests.push_back(std::move(request));
  }

  while (static_cast<int64_t>(trials_.size()) < sizes_.population_size && room > 0) {
    Trial member;
    member.point = InitialPoint(trials_.size());
    member.target = options_.max_steps;
    requests.push_back(Request{Request::Kind::kNewTrial, member.point, member.target, -1, 0});
    trials_.push_back(std::move(member));
    --room;
  }

  // Children come once every initial member was proposed and sample_size of them are scored
  // (or all have ended, fewer having scored), a few at a time (see the header).
  if (static_cast<int64_t>(trials_.size()) < sizes_.population_size || population_.empty()) {
    return requests;
  }
  if (static_cast<int64_t>(population_.size()) < sizes_.sample_size) {
    for (TrialNumber member = 0; member < sizes_.population_size; ++member) {
      if (trials_[member].state != TrialState::kEnded) return requests;
    }
  }
  const int64_t most_in_flight = std::max<int64_t>(1, sizes_.population_size / 2);
  while (ChildrenProposed() < sizes_.children && room > 0 && ChildrenInFlight() < most_in_flight) {
    const auto number = static_cast<TrialNumber>(trials_.size());
    std::mt19937_64 random = ChildGenerator(number);
    Trial child = MakeChild(random);
    child.target = FirstTarget(number);
    requests.push_back(Request{Request::Kind::kNewTrial, child.point, child.target, -1, 0});
    trials_.push_back(std::move(child));
    --room;
  }
  return requests;
}

bool RegularizedEvolution::Finished() const {
  if (static_cast<int64_t>(trials_.size()) < sizes_.population_size) return false;
  const bool all_ended = std::all_of(trials_.begin(), trials_.end(), [](const Trial& trial) {
    return trial.state == TrialState::kEnded;
  });
  if (!all_ended) return false;
  // With every trial ended and no member left, no child can be made any more.
  return ChildrenProposed() >= sizes_.children || population_.empty();
}

const RegularizedEvolution::Lineage* RegularizedEvolution::LineageOf(TrialNumber child) const {
  if (!IsChild(child) || child >= static_cast<TrialNumber>(trials_.size())) return nullptr;
  return &trials_[child].lineage;
}

int64_t RegularizedEvolution::ChildrenProposed() const {
  return std::max<int64_t>(0, static_cast<int64_t>(trials_.size()) - sizes_.population_size);
}

int64_t RegularizedEvolution::ChildrenInFlight() const {
  std::vector<const stage_tree::Point*> in_flight;
  for (TrialNumber trial = sizes_.population_size; trial < static_cast<TrialNumber>(trials_.size());
       ++trial) {
    if (trials_[trial].state == TrialState::kEnded) continue;
    const stage_tree::Point& point = trials_[trial].point;
    if (std::none_of(in_flight.begin(), in_flight.end(),
                     [&](const stage_tree::Point* other) { return *other == point; })) {
      in_flight.push_back(&point);
    }
  }
  return static_cast<int64_t>(in_flight.size());
}

bool RegularizedEvolution::Promote(const Trial& child, Step rung) const {
  if (!Scored(child.has_objective, child.objective)) return false;
  const auto results = rung_results_.find(rung);
  if (results == rung_results_.end()) return false;
  const int64_t reached = static_cast<int64_t>(results->second.size());
  const auto better =
      std::count_if(results->second.begin(), results->second.end(),
                    [&](double objective) { return Better(objective, child.objective); });
  // rank = better + 1 <= ceil(reached / eta)  <=>  better * eta < reached.
  return static_cast<double>(better) * options_.reduction_factor < static_cast<double>(reached);
}

RegularizedEvolution::Trial RegularizedEvolution::MakeChild(std::mt19937_64& random) const {
  Trial child;
  const Member& parent = Tournament(random, &child.lineage.sample);
  child.lineage.parent = parent.trial;
  child.point = Mutate(trials_[parent.trial].point, random);
  return child;
}

Point RegularizedEvolution::Mutate(const Point& parent, std::mt19937_64& random) const {
  const std::vector<size_t> mutable_dimensions = MutableDimensions(parent);
  Point child = parent;
  if (mutable_dimensions.empty()) return child;
  const size_t d = mutable_dimensions[random() % mutable_dimensions.size()];
  const Dimension& dimension = space_.dimensions[d];
  const bool step_to_neighbour = IsOrderedNumeric(dimension) && (random() & 1) == 0;
  bool stepped = false;
  if (step_to_neighbour) {
    const std::vector<double> neighbours = Neighbours(dimension, std::get<double>(parent[d]));
    if (!neighbours.empty()) {
      child[d] = neighbours[random() % neighbours.size()];
      stepped = true;
    }
  }
  if (!stepped) Resample(parent, d, child, random);
  // The dimensions the change brings into use (e.g. the widths of layers a deeper network adds)
  // are drawn afresh.
  CompleteChild(parent, d, child, random, [](size_t) { return std::optional<double>(); });
  return child;
}

Step RegularizedEvolution::FirstTarget(TrialNumber trial) const {
  if (!IsChild(trial) || options_.rungs.empty()) return options_.max_steps;
  return options_.rungs.front();
}

Step RegularizedEvolution::NextTarget(Step target) const {
  const auto next = std::upper_bound(options_.rungs.begin(), options_.rungs.end(), target);
  return next == options_.rungs.end() ? options_.max_steps : *next;
}

std::string RegularizedEvolution::SaveState() const {
  std::string out = absl::StrCat(kStateHeader, "\n");
  PutInt(out, static_cast<int64_t>(trials_.size()));
  out.push_back('\n');
  for (const Trial& trial : trials_) {
    PutInt(out, static_cast<int64_t>(trial.state));
    PutInt(out, trial.target);
    PutInt(out, trial.has_objective);
    PutInt(out, trial.objective_step);
    PutDouble(out, trial.objective);
    PutPoint(out, space_, trial.point);
    PutInt(out, trial.lineage.parent);
    PutInt(out, static_cast<int64_t>(trial.lineage.sample.size()));
    for (TrialNumber drawn : trial.lineage.sample) PutInt(out, drawn);
    out.push_back('\n');
  }
  PutPopulation(out);
  PutInt(out, static_cast<int64_t>(rung_results_.size()));
  out.push_back('\n');
  for (const auto& [rung, objectives] : rung_results_) {
    PutInt(out, rung);
    PutInt(out, static_cast<int64_t>(objectives.size()));
    for (double objective : objectives) PutDouble(out, objective);
    out.push_back('\n');
  }
  PutInt(out, static_cast<int64_t>(paused_.size()));
  for (TrialNumber trial : paused_) PutInt(out, trial);
  out.push_back('\n');
  return out;
}

absl::Status RegularizedEvolution::LoadState(const std::string& state) {
  auto bad = [] {
    return absl::DataLossError(
        "bad saved state for regularized evolution (not written by this version?)");
  };
  TokenReader reader(state);
  int64_t count = 0;
  if (!reader.Expect(kStateHeader) || !reader.Int(count) || count < 0 ||
      count > sizes_.population_size + sizes_.children) {
    return bad();
  }
  std::vector<Trial> trials(count);
  for (Trial& trial : trials) {
    int64_t kind = 0;
    int64_t has_objective = 0;
    int64_t sampled = 0;
    if (!reader.Int(kind) || kind < 0 || kind > static_cast<int64_t>(TrialState::kEnded) ||
        !reader.Int(trial.target) || !reader.Int(has_objective) ||
        !reader.Int(trial.objective_step) || !reader.Double(trial.objective) ||
        !reader.PointOf(space_, trial.point) || !reader.Int(trial.lineage.parent) ||
        trial.lineage.parent < -1 || trial.lineage.parent >= count || !reader.Int(sampled) ||
        sampled < 0 || sampled > sizes_.sample_size) {
      return bad();
    }
    trial.state = static_cast<TrialState>(kind);
    trial.has_objective = has_objective != 0;
    trial.lineage.sample.resize(sampled);
    for (TrialNumber& drawn : trial.lineage.sample) {
      if (!reader.Int(drawn) || drawn < 0 || drawn >= count) return bad();
    }
  }
  std::optional<std::deque<Member>> population = ReadPopulation(reader, count);
  if (!population) return bad();
  int64_t rungs = 0;
  if (!reader.Int(rungs) || rungs < 0) return bad();
  std::map<Step, std::vector<double>> rung_results;
  for (int64_t i = 0; i < rungs; ++i) {
    Step rung = 0;
    int64_t results = 0;
    if (!reader.Int(rung) || !reader.Int(results) || results < 0 || results > count) return bad();
    std::vector<double>& objectives = rung_results[rung];
    objectives.resize(results);
    for (double& objective : objectives) {
      if (!reader.Double(objective)) return bad();
    }
  }
  int64_t paused_count = 0;
  if (!reader.Int(paused_count) || paused_count < 0 || paused_count > count) return bad();
  std::deque<TrialNumber> paused;
  for (int64_t i = 0; i < paused_count; ++i) {
    TrialNumber trial = 0;
    if (!reader.Int(trial) || trial < 0 || trial >= count ||
        trials[trial].state != TrialState::kPaused) {
      return bad();
    }
    paused.push_back(trial);
  }
  if (!reader.AtEnd()) return bad();
  trials_ = std::move(trials);
  population_ = *std::move(population);
  rung_results_ = std::move(rung_results);
  paused_ = std::move(paused);
  return absl::OkStatus();
}

proto::Issue RegularizedEvolution::CheckConfig(const hippo::v1::Algorithm& config,
                                               const hippo::v1::StudySpec& spec) {
  const hippo::v1::EvolutionConfig& evolution = config.evolution();
  const Step max_steps = spec.budget().max_steps();
  const int64_t max_trials = spec.budget().max_trials();
  if (evolution.population_size() == 0) {
    return proto::Problem("algorithm.evolution.population_size",
                          "required; the number of models kept alive, e.g. population_size: 16");
  }
  if (max_trials > 0 && evolution.population_size() > max_trials) {
    return proto::Problem(
        "algorithm.evolution.population_size",
        absl::StrCat("must not exceed budget.max_trials (got ", evolution.population_size(), " > ",
                     max_trials, "); the first population alone would not fit"));
  }
  if (evolution.children() == 0) {
    return proto::Problem("algorithm.evolution.children",
                          "required; the number of children to train, e.g. children: 64");
  }
  if (evolution.sample_size() > evolution.population_size()) {
    return proto::Problem(
        "algorithm.evolution.sample_size",
        absl::StrCat("must not exceed population_size (got ", evolution.sample_size(), " > ",
                     evolution.population_size(), ")"));
  }
  if (!evolution.has_asha()) return std::nullopt;
  const hippo::v1::AshaConfig& asha = evolution.asha();
  if (asha.min_resource() == 0) {
    return proto::Problem("algorithm.evolution.asha.min_resource",
                          "required; the steps of the first rung, e.g. min_resource: 5");
  }
  if (asha.min_resource() > max_steps) {
    return proto::Problem("algorithm.evolution.asha.min_resource",
                          absl::StrCat("must not exceed budget.max_steps (got ",
                                       asha.min_resource(), " > ", max_steps, ")"));
  }
  if (asha.max_resource() != 0 && asha.max_resource() != max_steps) {
    return proto::Problem("algorithm.evolution.asha.max_resource",
                          absl::StrCat("children train to budget.max_steps (", max_steps, ") (got ",
                                       asha.max_resource(), "); leave it unset or set it to that"));
  }
  if (asha.reduction_factor() != 0 && asha.reduction_factor() <= 1) {
    return proto::Problem(
        "algorithm.evolution.asha.reduction_factor",
        absl::StrCat("must be > 1 (got ", proto::FormatNumber(asha.reduction_factor()),
                     "); each rung keeps 1/reduction_factor of the children, e.g. 3"));
  }
  if (!asha.sampler().empty()) {
    return proto::Problem("algorithm.evolution.asha.sampler",
                          "evolution makes its own children; remove sampler");
  }
  return std::nullopt;
}

}  // namespace hippo::search_algos
