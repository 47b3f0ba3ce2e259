#include "stage_tree/search_space.h"

#include <cmath>

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

  SearchSpace& space() { return space_; }

 private:
  Component Add(Dimension dimension) {
    space_.dimensions.push_back(std::move(dimension));
    return Component{space_.dimensions.size() - 1, 0.0};
  }

  SearchSpace space_;
};

absl::Status AddSequence(const v1::Parameter& proto, SpaceBuilder& builder, ParameterSpec& spec) {
  const v1::SequenceParameter& sequence = proto.sequence();
  const std::string prefix = proto.name() + ".";
  auto& components = spec.components;
  switch (sequence.shape_case()) {
    case v1::SequenceParameter::kConstant:
      spec.shape = Shape::kScalar;
      components["value"] = builder.Number(proto.name(), sequence.constant(), 0);
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
    case v1::SequenceParameter::kPiecewise:
      spec.shape = Shape::kPiecewise;
      spec.boundaries.assign(sequence.piecewise().boundaries().begin(),
                             sequence.piecewise().boundaries().end());
      spec.values.assign(sequence.piecewise().values().begin(),
                         sequence.piecewise().values().end());
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", proto.name(),
                       "': a sequence needs a shape (constant, step_decay, cosine, exponential "
                       "or piecewise)"));
  }
  components["warmup_steps"] = builder.Number(prefix + "warmup_steps", sequence.warmup_steps(), 0);
  return absl::OkStatus();
}

const Value& ValueOf(const ParameterSpec& parameter, const std::string& component,
                     const Point& point) {
  const Component& found = parameter.components.at(component);
  return found.dimension ? point[*found.dimension] : found.fixed;
}

absl::StatusOr<double> NumberOf(const ParameterSpec& parameter, const std::string& component,
                                const Point& point) {
  const Value& value = ValueOf(parameter, component, point);
  if (const double* number = std::get_if<double>(&value)) return *number;
  return absl::InvalidArgumentError(absl::StrCat("parameter '", parameter.name, "': ", component,
                                                 " must be a number, got ", ValueToString(value)));
}

absl::StatusOr<Sequence> BuildSequence(const ParameterSpec& parameter, const Point& point,
                                       Step max_steps) {
  absl::StatusOr<double> warmup = NumberOf(parameter, "warmup_steps", point);
  if (!warmup.ok()) return warmup.status();
  const auto warmup_steps = static_cast<Step>(std::llround(*warmup));
  switch (parameter.shape) {
    case Shape::kScalar: {
      absl::StatusOr<double> value = NumberOf(parameter, "value", point);
      if (!value.ok()) return value.status();
      if (warmup_steps > 0) return ExponentialSchedule(*value, 1.0, warmup_steps, max_steps);
      return Sequence::ConstantOver(*value, max_steps);
    }
    case Shape::kStepDecay: {
      absl::StatusOr<double> initial = NumberOf(parameter, "initial", point);
      absl::StatusOr<double> gamma = NumberOf(parameter, "gamma", point);
      if (!initial.ok()) return initial.status();
      if (!gamma.ok()) return gamma.status();
      const auto* milestones =
          std::get_if<std::vector<Step>>(&ValueOf(parameter, "milestones", point));
      return StepDecay(*initial, *gamma, milestones ? *milestones : std::vector<Step>{},
                       warmup_steps, max_steps);
    }
    case Shape::kCosine: {
      absl::StatusOr<double> max = NumberOf(parameter, "max", point);
      absl::StatusOr<double> min = NumberOf(parameter, "min", point);
      absl::StatusOr<double> period = NumberOf(parameter, "period", point);
      if (!max.ok()) return max.status();
      if (!min.ok()) return min.status();
      if (!period.ok()) return period.status();
      const Step steps = *period > 0 ? static_cast<Step>(std::llround(*period)) : max_steps;
      return CosineSchedule(*max, *min, steps, warmup_steps, max_steps);
    }
    case Shape::kExponential: {
      absl::StatusOr<double> initial = NumberOf(parameter, "initial", point);
      absl::StatusOr<double> rate = NumberOf(parameter, "rate", point);
      if (!initial.ok()) return initial.status();
      if (!rate.ok()) return rate.status();
      return ExponentialSchedule(*initial, *rate, warmup_steps, max_steps);
    }
    case Shape::kPiecewise:
      return Piecewise(parameter.boundaries, parameter.values, max_steps);
  }
  return absl::InternalError("unknown sequence shape");
}

}  // namespace

std::string ValueToString(const Value& value) {
  if (const double* number = std::get_if<double>(&value)) return absl::StrCat(*number);
  if (const std::string* text = std::get_if<std::string>(&value)) return *text;
  return absl::StrCat("[", absl::StrJoin(std::get<std::vector<Step>>(value), ", "), "]");
}

absl::StatusOr<SearchSpace> SearchSpaceFromProto(const v1::SearchSpace& proto) {
  SpaceBuilder builder;
  for (const v1::Parameter& parameter : proto.parameters()) {
    ParameterSpec spec;
    spec.name = parameter.name();
    spec.structural = parameter.structural();
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
    builder.space().parameters.push_back(std::move(spec));
  }
  return std::move(builder.space());
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
  std::vector<Point> points = {Point{}};
  for (const std::vector<Value>& axis : axes) {
    std::vector<Point> extended;
    extended.reserve(points.size() * axis.size());
    for (const Point& point : points) {
      for (const Value& value : axis) {
        extended.push_back(point);
        extended.back().push_back(value);
      }
    }
    points = std::move(extended);
  }
  return points;
}

absl::StatusOr<TrialPlan> BuildTrial(const SearchSpace& space, const Point& point, Step max_steps) {
  if (point.size() != space.dimensions.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a point needs ", space.dimensions.size(), " values; got ", point.size()));
  }
  TrialPlan plan;
  for (const ParameterSpec& parameter : space.parameters) {
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
