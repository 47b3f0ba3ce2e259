// BuildTrial: how a point of a search space becomes a trial's sequences (the shapes of
// hippo.v1.SequenceParameter compiled to canonical segments).
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "stage_tree/search_space.h"

namespace hippo::stage_tree {
namespace {

const Value& ValueOf(const ParameterSpec& parameter, const std::string& component,
                     const Point& point) {
  const Component& found = parameter.components.at(component);
  return found.dimension ? point[*found.dimension] : found.fixed;
}

absl::StatusOr<double> NumberOf(const ParameterSpec& parameter, const std::string& component,
                                const Point& point) {
  const Value& value = ValueOf(parameter, component, point);
  if (const double* number = std::get_if<double>(&value)) return *number;
  return absl::InvalidArgumentError(
      absl::StrCat(component, " must be a number, got ", ValueToString(value)));
}

// A component that counts steps: a whole number (sampled ranges are rounded).
absl::StatusOr<Step> StepsOf(const ParameterSpec& parameter, const std::string& component,
                             const Point& point) {
  absl::StatusOr<double> number = NumberOf(parameter, component, point);
  if (!number.ok()) return number.status();
  return static_cast<Step>(std::llround(*number));
}

// Reads the named numeric components in order; the first error wins.
absl::Status ReadNumbers(const ParameterSpec& parameter, const Point& point,
                         std::initializer_list<std::pair<const char*, double*>> wanted) {
  for (const auto& [component, out] : wanted) {
    absl::StatusOr<double> number = NumberOf(parameter, component, point);
    if (!number.ok()) return number.status();
    *out = *number;
  }
  return absl::OkStatus();
}

absl::StatusOr<Sequence> BuildPiecewise(const ParameterSpec& parameter, const Point& point,
                                        Step max_steps) {
  std::vector<Step> boundaries;
  if (parameter.components.contains("boundaries")) {
    const auto* list = std::get_if<std::vector<Step>>(&ValueOf(parameter, "boundaries", point));
    if (list == nullptr) return absl::InvalidArgumentError("boundaries must be a list of steps");
    boundaries = *list;
  } else {
    for (size_t i = 0; i + 1 < parameter.piece_count; ++i) {
      absl::StatusOr<Step> boundary =
          StepsOf(parameter, absl::StrCat("boundaries[", i, "]"), point);
      if (!boundary.ok()) return boundary.status();
      boundaries.push_back(*boundary);
    }
  }
  std::vector<double> values;
  if (parameter.components.contains("values")) {
    const Value& label = ValueOf(parameter, "values", point);
    const std::string* text = std::get_if<std::string>(&label);
    auto list = text == nullptr ? parameter.value_lists.end() : parameter.value_lists.find(*text);
    if (list == parameter.value_lists.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("values: ", ValueToString(label), " is not one of value_choices"));
    }
    values = list->second;
  } else {
    for (size_t i = 0; i < parameter.piece_count; ++i) {
      absl::StatusOr<double> value = NumberOf(parameter, absl::StrCat("values[", i, "]"), point);
      if (!value.ok()) return value.status();
      values.push_back(*value);
    }
  }
  for (size_t i = 0; i < boundaries.size(); ++i) {
    if (boundaries[i] <= 0 || boundaries[i] >= max_steps ||
        (i > 0 && boundaries[i] <= boundaries[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "boundaries[", i, "] = ", boundaries[i],
          ": boundaries must be strictly increasing steps in (0, max_steps = ", max_steps, ")"));
    }
  }
  return Piecewise(boundaries, values, max_steps);
}

// The shape alone, without warm-up.
absl::StatusOr<Sequence> BuildShape(const ParameterSpec& parameter, const Point& point,
                                    Step max_steps) {
  switch (parameter.shape) {
    case Shape::kScalar: {
      absl::StatusOr<double> value = NumberOf(parameter, "value", point);
      if (!value.ok()) return value.status();
      return Sequence::ConstantOver(*value, max_steps);
    }
    case Shape::kStepDecay: {
      double initial = 0, gamma = 0;
      if (absl::Status status =
              ReadNumbers(parameter, point, {{"initial", &initial}, {"gamma", &gamma}});
          !status.ok()) {
        return status;
      }
      const auto* milestones =
          std::get_if<std::vector<Step>>(&ValueOf(parameter, "milestones", point));
      return StepDecay(initial, gamma, milestones ? *milestones : std::vector<Step>{}, 0,
                       max_steps);
    }
    case Shape::kCosine: {
      double max = 0, min = 0;
      if (absl::Status status = ReadNumbers(parameter, point, {{"max", &max}, {"min", &min}});
          !status.ok()) {
        return status;
      }
      absl::StatusOr<Step> period = StepsOf(parameter, "period", point);
      if (!period.ok()) return period.status();
      return CosineSchedule(max, min, *period > 0 ? *period : max_steps, 0, max_steps);
    }
    case Shape::kExponential: {
      double initial = 0, rate = 0;
      if (absl::Status status =
              ReadNumbers(parameter, point, {{"initial", &initial}, {"rate", &rate}});
          !status.ok()) {
        return status;
      }
      return ExponentialSchedule(initial, rate, 0, max_steps);
    }
    case Shape::kLinear: {
      double from = 0, to = 0;
      if (absl::Status status = ReadNumbers(parameter, point, {{"from", &from}, {"to", &to}});
          !status.ok()) {
        return status;
      }
      absl::StatusOr<Step> start = StepsOf(parameter, "start", point);
      absl::StatusOr<Step> end = StepsOf(parameter, "end", point);
      if (!start.ok()) return start.status();
      if (!end.ok()) return end.status();
      return LinearSchedule(from, to, *start, *end > 0 ? *end : max_steps, max_steps);
    }
    case Shape::kPiecewise:
      return BuildPiecewise(parameter, point, max_steps);
    case Shape::kOneOf: {
      const Value& chosen = ValueOf(parameter, "one_of", point);
      for (const ParameterSpec& alternative : parameter.alternatives) {
        if (Value(alternative.name) != chosen) continue;
        absl::StatusOr<Sequence> sequence = BuildShape(alternative, point, max_steps);
        if (!sequence.ok()) return sequence.status();
        absl::StatusOr<Step> warmup = StepsOf(alternative, "warmup_steps", point);
        absl::StatusOr<double> from = NumberOf(alternative, "warmup_from", point);
        if (!warmup.ok()) return warmup.status();
        if (!from.ok()) return from.status();
        return WithWarmup(*sequence, *warmup, *from);
      }
      return absl::InvalidArgumentError(
          absl::StrCat("one_of: no alternative is labelled ", ValueToString(chosen)));
    }
  }
  return absl::InternalError("unknown sequence shape");
}

absl::StatusOr<Sequence> BuildSequence(const ParameterSpec& parameter, const Point& point,
                                       Step max_steps) {
  absl::StatusOr<Sequence> sequence = BuildShape(parameter, point, max_steps);
  if (!sequence.ok()) return sequence.status();
  absl::StatusOr<Step> warmup = StepsOf(parameter, "warmup_steps", point);
  if (!warmup.ok()) return warmup.status();
  if (*warmup <= 0) return sequence;
  absl::StatusOr<double> from = parameter.components.contains("warmup_from")
                                    ? NumberOf(parameter, "warmup_from", point)
                                    : absl::StatusOr<double>(0.0);
  if (!from.ok()) return from.status();
  return WithWarmup(*sequence, *warmup, *from);
}

}  // namespace

absl::StatusOr<TrialPlan> BuildTrial(const SearchSpace& space, const Point& point, Step max_steps) {
  if (point.size() != space.dimensions.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a point needs ", space.dimensions.size(), " values; got ", point.size()));
  }
  TrialPlan plan;
  for (const ParameterSpec& parameter : space.parameters) {
    if (parameter.when && !Holds(space.dimensions, point, *parameter.when)) continue;
    if (parameter.structural) {
      plan.structural[parameter.name] = ValueOf(parameter, "value", point);
      continue;
    }
    absl::StatusOr<Sequence> sequence = BuildSequence(parameter, point, max_steps);
    if (!sequence.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", parameter.name, "': ", sequence.status().message()));
    }
    plan.sequences[parameter.name] = *std::move(sequence);
  }
  return plan;
}

}  // namespace hippo::stage_tree
