#include "stage_tree/search_space.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace hippo::stage_tree {
namespace {

namespace v1 = ::hippo::v1;

absl::StatusOr<Value> FromProtoValue(const google::protobuf::Value& value,
                                     const std::string& path) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return Value(value.number_value());
    case google::protobuf::Value::kStringValue:
      return Value(value.string_value());
    case google::protobuf::Value::kBoolValue:
      return Value(value.bool_value() ? 1.0 : 0.0);
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": expected a number, a string or a bool"));
  }
}

// Adds a dimension (or keeps a fixed value) for one component and returns the component.
// While an alternative of a one_of parameter is added, its dimensions are marked as used only
// when that alternative is chosen.
class SpaceBuilder {
 public:
  Component Choices(std::string name, std::vector<Value> choices) {
    if (choices.size() == 1) return Component{std::nullopt, choices.front()};
    Dimension dimension;
    dimension.name = std::move(name);
    dimension.kind = DimensionKind::kChoice;
    dimension.choices = std::move(choices);
    return Add(std::move(dimension));
  }

  Component Range(std::string name, DimensionKind kind, double low, double high, bool log,
                  double step) {
    Dimension dimension;
    dimension.name = std::move(name);
    dimension.kind = kind;
    dimension.low = low;
    dimension.high = high;
    dimension.log = log;
    dimension.step = kind == DimensionKind::kInt ? std::max(step, 1.0) : step;
    return Add(std::move(dimension));
  }

  Component Number(std::string name, const v1::NumberDomain& domain, double absent) {
    switch (domain.domain_case()) {
      case v1::NumberDomain::kValue:
        return Component{std::nullopt, domain.value()};
      case v1::NumberDomain::kChoices: {
        std::vector<Value> choices(domain.choices().values().begin(),
                                   domain.choices().values().end());
        return Choices(std::move(name), std::move(choices));
      }
      case v1::NumberDomain::kRange:
        return Range(std::move(name), DimensionKind::kFloat, domain.range().low(),
                     domain.range().high(), domain.range().log(), domain.range().step());
      default:
        return Component{std::nullopt, absent};
    }
  }

  Component StepLists(std::string name, const v1::StepListDomain& domain) {
    std::vector<Value> choices;
    for (const v1::StepList& list : domain.choices()) {
      choices.emplace_back(std::vector<Step>(list.steps().begin(), list.steps().end()));
    }
    if (choices.empty()) return Component{std::nullopt, std::vector<Step>{}};
    return Choices(std::move(name), std::move(choices));
  }

  // The condition of the parameter being added (its `when`), carried by all its dimensions.
  void set_parameter_condition(std::optional<Condition> condition) {
    parameter_condition_ = std::move(condition);
  }
  // While an alternative of a one_of is added: its dimensions are used when the choosing
  // dimension equals its label (and, through that dimension, when the parameter's holds).
  void set_alternative_condition(std::optional<Condition> condition) {
    alternative_condition_ = std::move(condition);
  }

  SearchSpace& space() { return space_; }

 private:
  Component Add(Dimension dimension) {
    dimension.active_if = alternative_condition_ ? alternative_condition_ : parameter_condition_;
    space_.dimensions.push_back(std::move(dimension));
    return Component{space_.dimensions.size() - 1, 0.0};
  }

  SearchSpace space_;
  std::optional<Condition> parameter_condition_;
  std::optional<Condition> alternative_condition_;
};

// The shortest text that reads back as the same double.
std::string ExactText(double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

const char* ShapeName(v1::SequenceParameter::ShapeCase shape) {
  switch (shape) {
    case v1::SequenceParameter::kConstant:
      return "constant";
    case v1::SequenceParameter::kStepDecay:
      return "step_decay";
    case v1::SequenceParameter::kCosine:
      return "cosine";
    case v1::SequenceParameter::kExponential:
      return "exponential";
    case v1::SequenceParameter::kPiecewise:
      return "piecewise";
    case v1::SequenceParameter::kLinear:
      return "linear";
    default:
      return "none";
  }
}

absl::Status AddPiecewise(const v1::PiecewiseSequence& piecewise, const std::string& where,
                          const std::string& prefix, SpaceBuilder& builder, ParameterSpec& spec) {
  auto& components = spec.components;
  const int boundary_forms = (piecewise.boundaries_size() > 0) +
                             (piecewise.boundary_domains_size() > 0) +
                             (piecewise.boundary_choices().choices_size() > 0);
  const int value_forms = (piecewise.values_size() > 0) + (piecewise.value_domains_size() > 0) +
                          (piecewise.value_choices().choices_size() > 0);
  if (boundary_forms > 1 || value_forms != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ".piecewise: give the boundaries at most one way (boundaries, boundary_domains or "
        "boundary_choices) and the values exactly one way (values, value_domains or "
        "value_choices)"));
  }
  size_t boundary_count = 0;
  if (piecewise.boundary_choices().choices_size() > 0) {
    boundary_count = piecewise.boundary_choices().choices(0).steps_size();
    for (const v1::StepList& list : piecewise.boundary_choices().choices()) {
      if (static_cast<size_t>(list.steps_size()) != boundary_count) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".piecewise.boundary_choices: every list needs the same number of steps"));
      }
    }
    components["boundaries"] =
        builder.StepLists(prefix + "boundaries", piecewise.boundary_choices());
  } else if (piecewise.boundary_domains_size() > 0) {
    boundary_count = piecewise.boundary_domains_size();
    for (size_t i = 0; i < boundary_count; ++i) {
      const std::string name = absl::StrCat("boundaries[", i, "]");
      components[name] = builder.Number(prefix + name, piecewise.boundary_domains(i), 0);
    }
  } else {
    boundary_count = piecewise.boundaries_size();
    components["boundaries"] =
        Component{std::nullopt,
                  std::vector<Step>(piecewise.boundaries().begin(), piecewise.boundaries().end())};
  }
  spec.piece_count = boundary_count + 1;
  auto check_count = [&](size_t count, const char* field) -> absl::Status {
    if (count == spec.piece_count) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".piecewise.", field, ": has ", count, " values for ", boundary_count,
                     " boundaries; give one more value than boundaries"));
  };
  if (piecewise.value_choices().choices_size() > 0) {
    std::vector<Value> labels;
    for (const v1::NumberList& list : piecewise.value_choices().choices()) {
      if (absl::Status status = check_count(list.values_size(), "value_choices"); !status.ok()) {
        return status;
      }
      std::vector<double> values(list.values().begin(), list.values().end());
      std::vector<std::string> texts;
      for (double value : values) texts.push_back(ExactText(value));
      std::string label = absl::StrCat("[", absl::StrJoin(texts, ", "), "]");
      spec.value_lists[label] = std::move(values);
      labels.emplace_back(std::move(label));
    }
    components["values"] = builder.Choices(prefix + "values", std::move(labels));
  } else if (piecewise.value_domains_size() > 0) {
    if (absl::Status status = check_count(piecewise.value_domains_size(), "value_domains");
        !status.ok()) {
      return status;
    }
    for (size_t i = 0; i < spec.piece_count; ++i) {
      const std::string name = absl::StrCat("values[", i, "]");
      components[name] = builder.Number(prefix + name, piecewise.value_domains(i), 0);
    }
  } else {
    if (absl::Status status = check_count(piecewise.values_size(), "values"); !status.ok()) {
      return status;
    }
    for (size_t i = 0; i < spec.piece_count; ++i) {
      components[absl::StrCat("values[", i, "]")] = Component{std::nullopt, piecewise.values(i)};
    }
  }
  return absl::OkStatus();
}

// The components of one shape of `sequence`, with dimensions named `prefix` + component
// (`value_name` for a constant's value). `where` names the parameter in errors.
absl::Status AddShape(const v1::SequenceParameter& sequence, const std::string& where,
                      const std::string& prefix, const std::string& value_name,
                      SpaceBuilder& builder, ParameterSpec& spec) {
  auto& components = spec.components;
  switch (sequence.shape_case()) {
    case v1::SequenceParameter::kConstant:
      spec.shape = Shape::kScalar;
      components["value"] = builder.Number(value_name, sequence.constant(), 0);
      break;
    case v1::SequenceParameter::kStepDecay:
      spec.shape = Shape::kStepDecay;
      components["initial"] =
          builder.Number(prefix + "initial", sequence.step_decay().initial(), 0);
      components["gamma"] = builder.Number(prefix + "gamma", sequence.step_decay().gamma(), 0.1);
      components["milestones"] =
          builder.StepLists(prefix + "milestones", sequence.step_decay().milestones());
      break;
    case v1::SequenceParameter::kCosine:
      spec.shape = Shape::kCosine;
      components["max"] = builder.Number(prefix + "max", sequence.cosine().max(), 0);
      components["min"] = builder.Number(prefix + "min", sequence.cosine().min(), 0);
      components["period"] = builder.Number(prefix + "period", sequence.cosine().period(), 0);
      break;
    case v1::SequenceParameter::kExponential:
      spec.shape = Shape::kExponential;
      components["initial"] =
          builder.Number(prefix + "initial", sequence.exponential().initial(), 0);
      components["rate"] = builder.Number(prefix + "rate", sequence.exponential().rate(), 1);
      break;
    case v1::SequenceParameter::kLinear:
      spec.shape = Shape::kLinear;
      components["from"] = builder.Number(prefix + "from", sequence.linear().from(), 0);
      components["to"] = builder.Number(prefix + "to", sequence.linear().to(), 0);
      components["start"] = builder.Number(prefix + "start", sequence.linear().start(), 0);
      components["end"] = builder.Number(prefix + "end", sequence.linear().end(), 0);
      break;
    case v1::SequenceParameter::kPiecewise:
      spec.shape = Shape::kPiecewise;
      if (absl::Status status = AddPiecewise(sequence.piecewise(), where, prefix, builder, spec);
          !status.ok()) {
        return status;
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": a sequence needs a shape (constant, step_decay, cosine, exponential, "
                       "piecewise or linear) or one_of"));
  }
  components["warmup_steps"] = builder.Number(prefix + "warmup_steps", sequence.warmup_steps(), 0);
  components["warmup_from"] = builder.Number(prefix + "warmup_from", sequence.warmup_from(), 0);
  return absl::OkStatus();
}

absl::Status AddSequence(const v1::Parameter& proto, SpaceBuilder& builder, ParameterSpec& spec) {
  const v1::SequenceParameter& sequence = proto.sequence();
  const std::string where = absl::StrCat("parameter '", proto.name(), "'");
  const std::string prefix = proto.name() + ".";
  if (sequence.one_of().empty()) {
    return AddShape(sequence, where, prefix, proto.name(), builder, spec);
  }
  if (sequence.shape_case() != v1::SequenceParameter::SHAPE_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": set either a shape or one_of, not both"));
  }
  spec.shape = Shape::kOneOf;
  std::vector<Value> labels;
  std::map<std::string, int> seen;
  for (const v1::SequenceParameter& alternative : sequence.one_of()) {
    const std::string shape = ShapeName(alternative.shape_case());
    const int count = ++seen[shape];
    labels.emplace_back(count == 1 ? shape : absl::StrCat(shape, "_", count));
  }
  const Component choice = builder.Choices(prefix + "one_of", labels);
  spec.components["one_of"] = choice;
  for (int i = 0; i < sequence.one_of_size(); ++i) {
    const v1::SequenceParameter& alternative = sequence.one_of(i);
    const std::string label = std::get<std::string>(labels[i]);
    const std::string alternative_where = absl::StrCat(where, ".one_of[", i, "]");
    if (!alternative.one_of().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(alternative_where, ": an alternative is a plain shape, not one_of"));
    }
    if ((alternative.has_warmup_steps() || alternative.has_warmup_from()) &&
        (sequence.has_warmup_steps() || sequence.has_warmup_from())) {
      return absl::InvalidArgumentError(absl::StrCat(
          alternative_where,
          ": warm-up is set for all alternatives already; set it there or here, not both"));
    }
    ParameterSpec alternative_spec;
    alternative_spec.name = label;
    if (choice.dimension.has_value()) {
      builder.set_alternative_condition(Condition{
          .dimension = *choice.dimension, .test = Condition::Test::kEquals, .values = {labels[i]}});
    }
    const std::string alternative_prefix = absl::StrCat(prefix, label, ".");
    if (absl::Status status = AddShape(alternative, alternative_where, alternative_prefix,
                                       absl::StrCat(prefix, label), builder, alternative_spec);
        !status.ok()) {
      return status;
    }
    builder.set_alternative_condition(std::nullopt);
    spec.alternatives.push_back(std::move(alternative_spec));
  }
  spec.components["warmup_steps"] =
      builder.Number(prefix + "warmup_steps", sequence.warmup_steps(), 0);
  spec.components["warmup_from"] =
      builder.Number(prefix + "warmup_from", sequence.warmup_from(), 0);
  return absl::OkStatus();
}

// What a later parameter's `when` may refer to.
struct ConditionTarget {
  bool present = true;  // false: the parameter is never in a trial
  bool scalar = false;  // a categorical, int or float parameter
  bool structural = false;
  Component value = {};
  std::optional<Condition> when = {};
};

// `parameter.when` as a condition on a dimension; nullopt when it always holds. Sets `*never`
// (and returns nullopt) when the parameter can never be present: its condition is on a parameter
// never present, or on a one-value categorical whose value fails it.
absl::StatusOr<std::optional<Condition>> ConditionOf(
    const v1::Parameter& parameter, const std::map<std::string, ConditionTarget>& earlier,
    bool* never) {
  *never = false;
  if (!parameter.has_when()) return std::nullopt;
  const v1::Condition& when = parameter.when();
  const std::string where = absl::StrCat("parameter '", parameter.name(), "': when");
  const auto found = earlier.find(when.param());
  if (found == earlier.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".param: '", when.param(),
                     "' is not a parameter listed before this one; a condition refers to an "
                     "earlier parameter"));
  }
  const ConditionTarget& target = found->second;
  if (!target.scalar || !target.structural) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ".param: '", when.param(),
        "' must be a structural categorical, int or float parameter (its value is fixed for the "
        "whole trial)"));
  }
  Condition condition;
  switch (when.test_case()) {
    case v1::Condition::kEquals: {
      absl::StatusOr<Value> value = FromProtoValue(when.equals(), where + ".equals");
      if (!value.ok()) return value.status();
      condition.test = Condition::Test::kEquals;
      condition.values.push_back(*std::move(value));
      break;
    }
    case v1::Condition::kAnyOf:
      condition.test = Condition::Test::kAnyOf;
      for (int i = 0; i < when.any_of().values_size(); ++i) {
        absl::StatusOr<Value> value =
            FromProtoValue(when.any_of().values(i), absl::StrCat(where, ".any_of[", i, "]"));
        if (!value.ok()) return value.status();
        condition.values.push_back(*std::move(value));
      }
      break;
    case v1::Condition::kAtLeast:
      condition.test = Condition::Test::kAtLeast;
      condition.bound = when.at_least();
      break;
    case v1::Condition::kAtMost:
      condition.test = Condition::Test::kAtMost;
      condition.bound = when.at_most();
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": needs a test: equals, any_of, at_least or at_most"));
  }
  if (!target.present) {
    *never = true;
    return std::nullopt;
  }
  if (target.value.dimension.has_value()) {
    condition.dimension = *target.value.dimension;
    return condition;
  }
  // A one-value categorical is not a dimension: the test is decided here.
  if (condition.Passes(target.value.fixed)) return target.when;
  *never = true;
  return std::nullopt;
}

}  // namespace

bool Condition::Passes(const Value& value) const {
  switch (test) {
    case Test::kEquals:
    case Test::kAnyOf:
      return std::find(values.begin(), values.end(), value) != values.end();
    case Test::kAtLeast:
    case Test::kAtMost: {
      const double* number = std::get_if<double>(&value);
      if (number == nullptr) return false;
      return test == Test::kAtLeast ? *number >= bound : *number <= bound;
    }
  }
  return false;
}

std::string ValueToString(const Value& value) {
  if (const double* number = std::get_if<double>(&value)) return absl::StrCat(*number);
  if (const std::string* text = std::get_if<std::string>(&value)) return *text;
  return absl::StrCat("[", absl::StrJoin(std::get<std::vector<Step>>(value), ", "), "]");
}

absl::StatusOr<SearchSpace> SearchSpaceFromProto(const v1::SearchSpace& proto) {
  SpaceBuilder builder;
  std::map<std::string, ConditionTarget> earlier;
  for (const v1::Parameter& parameter : proto.parameters()) {
    bool never = false;
    absl::StatusOr<std::optional<Condition>> when = ConditionOf(parameter, earlier, &never);
    if (!when.ok()) return when.status();
    if (never) {
      // Never in a trial: no dimensions, no parameter; conditions on it never hold either.
      earlier[parameter.name()] =
          ConditionTarget{.present = false, .scalar = true, .structural = true};
      continue;
    }
    builder.set_parameter_condition(*when);
    ParameterSpec spec;
    spec.name = parameter.name();
    spec.structural = parameter.structural();
    spec.when = *when;
    spec.components["warmup_steps"] = Component{std::nullopt, 0.0};
    switch (parameter.kind_case()) {
      case v1::Parameter::kCategorical: {
        std::vector<Value> choices;
        for (const auto& value : parameter.categorical().values()) {
          absl::StatusOr<Value> converted = FromProtoValue(value, parameter.name());
          if (!converted.ok()) return converted.status();
          if (std::holds_alternative<std::string>(*converted)) spec.structural = true;
          choices.push_back(*std::move(converted));
        }
        spec.components["value"] = builder.Choices(parameter.name(), std::move(choices));
        break;
      }
      case v1::Parameter::kInt:
        spec.components["value"] = builder.Range(
            parameter.name(), DimensionKind::kInt, static_cast<double>(parameter.int_().low()),
            static_cast<double>(parameter.int_().high()), parameter.int_().log(),
            static_cast<double>(parameter.int_().step()));
        break;
      case v1::Parameter::kFloat:
        spec.components["value"] = builder.Range(
            parameter.name(), DimensionKind::kFloat, parameter.float_().low(),
            parameter.float_().high(), parameter.float_().log(), parameter.float_().step());
        break;
      case v1::Parameter::kFixed: {
        absl::StatusOr<Value> value = FromProtoValue(parameter.fixed(), parameter.name());
        if (!value.ok()) return value.status();
        if (std::holds_alternative<std::string>(*value)) spec.structural = true;
        spec.components["value"] = Component{std::nullopt, *value};
        break;
      }
      case v1::Parameter::kSequence:
        if (absl::Status status = AddSequence(parameter, builder, spec); !status.ok()) {
          return status;
        }
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("parameter '", parameter.name(),
                         "' needs a kind: categorical, int, float, sequence or fixed"));
    }
    builder.set_parameter_condition(std::nullopt);
    const v1::Parameter::KindCase kind = parameter.kind_case();
    earlier[parameter.name()] =
        ConditionTarget{.present = true,
                        .scalar = kind == v1::Parameter::kCategorical ||
                                  kind == v1::Parameter::kInt || kind == v1::Parameter::kFloat,
                        .structural = spec.structural,
                        .value = spec.components["value"],
                        .when = spec.when};
    builder.space().parameters.push_back(std::move(spec));
  }
  return std::move(builder.space());
}

bool IsActive(const std::vector<Dimension>& dimensions, const std::vector<Value>& point,
              size_t dimension) {
  const std::optional<Condition>& condition = dimensions[dimension].active_if;
  return !condition || Holds(dimensions, point, *condition);
}

bool Holds(const std::vector<Dimension>& dimensions, const std::vector<Value>& point,
           const Condition& condition) {
  return condition.Passes(point[condition.dimension]) &&
         IsActive(dimensions, point, condition.dimension);
}

Value FirstValue(const Dimension& dimension) {
  if (dimension.kind == DimensionKind::kChoice) return dimension.choices.front();
  return dimension.low;
}

void ResetUnused(const std::vector<Dimension>& dimensions, std::vector<Value>& point) {
  for (size_t d = 0; d < dimensions.size() && d < point.size(); ++d) {
    if (!IsActive(dimensions, point, d)) point[d] = FirstValue(dimensions[d]);
  }
}

absl::StatusOr<std::vector<Point>> GridPoints(const SearchSpace& space) {
  std::vector<std::vector<Value>> axes;
  for (const Dimension& dimension : space.dimensions) {
    std::vector<Value> axis;
    if (dimension.kind == DimensionKind::kChoice) {
      axis = dimension.choices;
    } else if (dimension.step > 0) {
      for (double value = dimension.low; value <= dimension.high + 1e-9 * dimension.step;
           value += dimension.step) {
        axis.emplace_back(value);
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension '", dimension.name,
                       "' is continuous; grid search needs choices or a range with a step"));
    }
    axes.push_back(std::move(axis));
  }
  // A dimension a point does not use keeps its first value there, so each alternative of a
  // one_of contributes its own grid once, not once per value of the others' dimensions.
  std::vector<Point> points = {Point{}};
  for (size_t d = 0; d < axes.size(); ++d) {
    std::vector<Point> extended;
    extended.reserve(points.size() * axes[d].size());
    for (const Point& point : points) {
      const bool active = IsActive(space.dimensions, point, d);
      for (const Value& value : axes[d]) {
        extended.push_back(point);
        extended.back().push_back(value);
        if (!active) break;
      }
    }
    points = std::move(extended);
  }
  return points;
}

std::string TrainerIdentity(const v1::TrainerSpec& trainer) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    trainer.SerializeToCodedStream(&coded);
  }
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a
  for (unsigned char byte : bytes) hash = (hash ^ byte) * 0x100000001b3ULL;
  return absl::StrFormat("%s:%016x", trainer.kind(), hash);
}

std::string FamilyKey(std::string_view trainer_identity,
                      const std::map<std::string, Value>& structural) {
  std::string key(trainer_identity);
  for (const auto& [name, value] : structural) {
    absl::StrAppend(&key, "|", name, "=", ValueToString(value));
  }
  return key;
}

}  // namespace hippo::stage_tree
