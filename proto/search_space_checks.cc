#include "proto/search_space_checks.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"

namespace hippo::proto {
namespace {

bool IsValidParameterName(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

// The smallest and largest number a (checked) domain can give.
double Lowest(const hippo::v1::NumberDomain& domain) {
  if (domain.has_range()) return domain.range().low();
  if (domain.has_choices() && !domain.choices().values().empty()) {
    return *std::min_element(domain.choices().values().begin(), domain.choices().values().end());
  }
  return domain.value();
}

double Highest(const hippo::v1::NumberDomain& domain) {
  if (domain.has_range()) return domain.range().high();
  if (domain.has_choices() && !domain.choices().values().empty()) {
    return *std::max_element(domain.choices().values().begin(), domain.choices().values().end());
  }
  return domain.value();
}

class SearchSpaceChecker {
 public:
  explicit SearchSpaceChecker(std::int64_t max_steps) : max_steps_(max_steps) {}

  Issue Check(const hippo::v1::SearchSpace& space) const;

 private:
  Issue CheckParameter(const hippo::v1::Parameter& parameter, const std::string& path) const;
  // The `when` of parameters[index]: an earlier structural categorical, int or float parameter,
  // one test, values of that parameter's type.
  Issue CheckCondition(const hippo::v1::SearchSpace& space, int index,
                       const std::string& path) const;
  Issue CheckIntParameter(const hippo::v1::IntParameter& range, const std::string& path) const;
  Issue CheckFloatParameter(const hippo::v1::FloatParameter& range, const std::string& path) const;
  Issue CheckCategorical(const hippo::v1::CategoricalParameter& categorical,
                         const std::string& path) const;
  Issue CheckSequence(const hippo::v1::SequenceParameter& sequence, bool structural,
                      const std::string& path) const;
  // Milestones, linear start/end and piecewise lists of one shape (no one_of).
  Issue CheckShapeLists(const hippo::v1::SequenceParameter& sequence,
                        const std::string& path) const;
  Issue CheckPiecewise(const hippo::v1::PiecewiseSequence& piecewise,
                       const std::string& path) const;
  Issue CheckNumberDomain(const SequenceDomain& at) const;
  Issue CheckStepValue(double value, const StepBounds& bounds, const std::string& path) const;
  Issue CheckStepList(const google::protobuf::RepeatedField<std::int64_t>& steps,
                      const std::string& path) const;

  const std::int64_t max_steps_;
};

Issue SearchSpaceChecker::Check(const hippo::v1::SearchSpace& space) const {
  const auto& parameters = space.parameters();
  if (parameters.empty()) {
    return Problem("search_space.parameters",
                   "empty; list at least one parameter, e.g. "
                   "- {name: lr, float: {low: 0.001, high: 0.1, log: true}}");
  }
  std::map<std::string, int> first_index;
  for (int i = 0; i < parameters.size(); ++i) {
    const std::string path = IndexPath("search_space.parameters", i);
    const std::string& name = parameters[i].name();
    if (auto [it, inserted] = first_index.emplace(name, i); !inserted && !name.empty()) {
      return Problem(JoinPath(path, "name"),
                     absl::StrCat("\"", name, "\" is also the name of search_space.parameters[",
                                  it->second, "]; parameter names must be unique"));
    }
    if (Issue issue = CheckParameter(parameters[i], path)) {
      return issue;
    }
    if (parameters[i].has_when()) {
      if (Issue issue = CheckCondition(space, i, JoinPath(path, "when"))) return issue;
    }
  }
  return std::nullopt;
}

// A value a condition compares with a parameter's: "a number", "a string", or nullptr.
const char* ConditionValueType(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return "a number";
    case google::protobuf::Value::kStringValue:
      return "a string";
    default:
      return nullptr;
  }
}

Issue SearchSpaceChecker::CheckCondition(const hippo::v1::SearchSpace& space, int index,
                                         const std::string& path) const {
  using hippo::v1::Condition;
  using hippo::v1::Parameter;
  const Condition& when = space.parameters(index).when();
  const std::string param_path = JoinPath(path, "param");
  if (when.param().empty()) {
    return Problem(param_path,
                   "required; name an earlier structural parameter, e.g. "
                   "when: {param: layers, at_least: 4}");
  }
  int parent = -1;
  for (int j = 0; j < space.parameters_size(); ++j) {
    if (space.parameters(j).name() == when.param()) {
      parent = j;
      break;
    }
  }
  if (parent < 0) {
    return Problem(param_path, absl::StrCat("no parameter is named \"", when.param(),
                                            "\"; name an earlier structural parameter"));
  }
  if (parent >= index) {
    return Problem(param_path,
                   absl::StrCat("\"", when.param(), "\" is ",
                                parent == index ? "this parameter" : "listed after this one",
                                "; a condition refers to a parameter listed before it (move \"",
                                when.param(), "\" up)"));
  }
  const Parameter& target = space.parameters(parent);
  const bool strings =
      target.kind_case() == Parameter::kCategorical && target.categorical().values_size() > 0 &&
      target.categorical().values(0).kind_case() == google::protobuf::Value::kStringValue;
  if (target.kind_case() != Parameter::kCategorical && target.kind_case() != Parameter::kInt &&
      target.kind_case() != Parameter::kFloat) {
    return Problem(param_path, absl::StrCat("\"", when.param(),
                                            "\" is not a categorical, int or float parameter; a "
                                            "condition compares one value"));
  }
  if (!target.structural() && !strings) {
    return Problem(param_path,
                   absl::StrCat("\"", when.param(),
                                "\" is not structural; mark it structural: true (which "
                                "parameters a trial has may not change while it trains)"));
  }
  const char* expected = strings ? "a string" : "a number";
  const auto check_value = [&](const google::protobuf::Value& value,
                               const std::string& value_path) -> Issue {
    const char* type = ConditionValueType(value);
    if (type == nullptr || std::string_view(type) != expected) {
      return Problem(value_path, absl::StrCat("must be ", expected, ", as the values of \"",
                                              when.param(), "\" are"));
    }
    return std::nullopt;
  };
  switch (when.test_case()) {
    case Condition::kEquals:
      return check_value(when.equals(), JoinPath(path, "equals"));
    case Condition::kAnyOf: {
      const std::string any_path = JoinPath(path, "any_of");
      if (when.any_of().values().empty()) {
        return Problem(any_path, "empty; list at least one value");
      }
      for (int i = 0; i < when.any_of().values_size(); ++i) {
        if (Issue issue = check_value(when.any_of().values(i), IndexPath(any_path, i))) {
          return issue;
        }
      }
      return std::nullopt;
    }
    case Condition::kAtLeast:
    case Condition::kAtMost:
      if (strings) {
        return Problem(
            JoinPath(path, when.test_case() == Condition::kAtLeast ? "at_least" : "at_most"),
            absl::StrCat("\"", when.param(),
                         "\" takes strings, which have no order; use equals or any_of"));
      }
      return std::nullopt;
    default:
      return Problem(path,
                     "needs a test: equals, any_of, at_least or at_most, e.g. "
                     "when: {param: layers, at_least: 4}");
  }
}

Issue SearchSpaceChecker::CheckParameter(const hippo::v1::Parameter& parameter,
                                         const std::string& path) const {
  using hippo::v1::Parameter;
  if (parameter.name().empty()) {
    return Problem(JoinPath(path, "name"), "required; give the parameter a name, e.g. name: lr");
  }
  if (!IsValidParameterName(parameter.name())) {
    return Problem(JoinPath(path, "name"),
                   absl::StrCat("\"", parameter.name(),
                                "\" is not a valid name; use letters, digits, _ and ., starting "
                                "with a letter or _"));
  }
  switch (parameter.kind_case()) {
    case Parameter::kCategorical:
      return CheckCategorical(parameter.categorical(), JoinPath(path, "categorical"));
    case Parameter::kInt:
      return CheckIntParameter(parameter.int_(), JoinPath(path, "int"));
    case Parameter::kFloat:
      return CheckFloatParameter(parameter.float_(), JoinPath(path, "float"));
    case Parameter::kSequence:
      return CheckSequence(parameter.sequence(), parameter.structural(),
                           JoinPath(path, "sequence"));
    case Parameter::kFixed:
      if (parameter.fixed().kind_case() == google::protobuf::Value::kNullValue) {
        return Problem(JoinPath(path, "fixed"), "is null; give the constant value");
      }
      return std::nullopt;
    default:
      return Problem(path, "no domain; set one of categorical, int, float, sequence or fixed");
  }
}

Issue SearchSpaceChecker::CheckCategorical(const hippo::v1::CategoricalParameter& categorical,
                                           const std::string& path) const {
  const std::string values_path = JoinPath(path, "values");
  if (categorical.values().empty()) {
    return Problem(values_path, "empty; list at least one value, e.g. values: [relu, gelu]");
  }
  std::map<std::string, int> seen;  // the value's JSON text → its index
  for (int i = 0; i < categorical.values_size(); ++i) {
    const google::protobuf::Value& value = categorical.values(i);
    std::string key;
    if (value.kind_case() == google::protobuf::Value::kNumberValue) {
      key = FormatNumber(value.number_value());
    } else if (value.kind_case() == google::protobuf::Value::kStringValue) {
      key = QuoteJson(value.string_value());
    } else {
      return Problem(IndexPath(values_path, i), "must be a number or a string");
    }
    // One type: a trainer reads the choice as one type, and an algorithm that orders or models
    // the choices (TPE, evolution) compares them.
    if (value.kind_case() != categorical.values(0).kind_case()) {
      const auto type_of = [](const google::protobuf::Value& v) {
        return v.kind_case() == google::protobuf::Value::kNumberValue ? "a number" : "a string";
      };
      return Problem(
          IndexPath(values_path, i),
          absl::StrCat("is ", type_of(value), ", values[0] ", type_of(categorical.values(0)),
                       "; list choices of one type (quote numbers to make them "
                       "strings)"));
    }
    if (auto [it, inserted] = seen.emplace(key, i); !inserted) {
      return Problem(IndexPath(values_path, i), absl::StrCat("repeats values[", it->second, "] (",
                                                             key, "); list each value once"));
    }
  }
  return std::nullopt;
}

Issue SearchSpaceChecker::CheckIntParameter(const hippo::v1::IntParameter& range,
                                            const std::string& path) const {
  // Ranges are enumerated in doubles (stage_tree/search_space.cc): beyond 2^53 a step no longer
  // changes the value.
  constexpr std::int64_t kMaxMagnitude = std::int64_t{1} << 53;
  for (const auto& [name, value] : {std::pair{"low", range.low()}, {"high", range.high()}}) {
    if (value > kMaxMagnitude || value < -kMaxMagnitude) {
      return Problem(JoinPath(path, name),
                     absl::StrCat("must be within ±2^53 (", kMaxMagnitude, ") (got ", value,
                                  "); integers beyond it are not exact in a double"));
    }
  }
  if (range.low() > range.high()) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must not exceed high (got low=", range.low(),
                                ", high=", range.high(), "); high is inclusive"));
  }
  if (range.log() && range.low() <= 0) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must be > 0 when log is true (got ", range.low(), ")"));
  }
  if (range.step() < 0) {
    return Problem(JoinPath(path, "step"),
                   absl::StrCat("must not be negative (got ", range.step(), ")"));
  }
  if (const std::int64_t step = range.step();
      step > 1 && (range.high() - range.low()) % step != 0) {
    const std::int64_t below = range.low() + (range.high() - range.low()) / step * step;
    return Problem(JoinPath(path, "high"), absl::StrCat("high - low (", range.high() - range.low(),
                                                        ") is not a multiple of step (", step,
                                                        "), so high is never drawn; "
                                                        "use high: ",
                                                        below, " or ", below + step));
  }
  return std::nullopt;
}

Issue SearchSpaceChecker::CheckFloatParameter(const hippo::v1::FloatParameter& range,
                                              const std::string& path) const {
  if (range.low() >= range.high()) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must be below high (got low=", FormatNumber(range.low()),
                                ", high=", FormatNumber(range.high()), ")"));
  }
  if (range.log() && range.low() <= 0) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must be > 0 when log is true (got ", FormatNumber(range.low()),
                                "); a log scale cannot reach 0 or negative numbers"));
  }
  return CheckNumberNotNegative(range.step(), JoinPath(path, "step"));
}

Issue SearchSpaceChecker::CheckSequence(const hippo::v1::SequenceParameter& sequence,
                                        bool structural, const std::string& path) const {
  using hippo::v1::SequenceParameter;
  const bool has_warmup = sequence.has_warmup_steps() || sequence.has_warmup_from();
  if (!sequence.one_of().empty()) {
    if (sequence.shape_case() != SequenceParameter::SHAPE_NOT_SET) {
      return Problem(JoinPath(path, "one_of"),
                     "set either a shape or one_of, not both; move the shape into one_of");
    }
    if (structural) {
      return Problem(JoinPath(path, "one_of"),
                     "a structural parameter cannot change during training; use constant, or "
                     "drop structural: true");
    }
    for (int i = 0; i < sequence.one_of_size(); ++i) {
      const hippo::v1::SequenceParameter& alternative = sequence.one_of(i);
      const std::string alternative_path = IndexPath(JoinPath(path, "one_of"), i);
      if (!alternative.one_of().empty()) {
        return Problem(JoinPath(alternative_path, "one_of"),
                       "an alternative is a plain shape; list every alternative in the outer "
                       "one_of");
      }
      if (alternative.shape_case() == SequenceParameter::SHAPE_NOT_SET) {
        return Problem(alternative_path,
                       "no shape; set one of constant, step_decay, cosine, exponential, "
                       "piecewise or linear, e.g. constant: {value: 0.1}");
      }
      if (has_warmup && (alternative.has_warmup_steps() || alternative.has_warmup_from())) {
        return Problem(JoinPath(alternative_path,
                                alternative.has_warmup_steps() ? "warmup_steps" : "warmup_from"),
                       "warm-up is set for every alternative already (next to one_of); set it "
                       "there or in each alternative, not both");
      }
    }
  } else if (sequence.shape_case() == SequenceParameter::SHAPE_NOT_SET) {
    return Problem(path,
                   "no shape; set one of constant, step_decay, cosine, exponential, piecewise "
                   "or linear, or one_of: [...] to choose among them, e.g. constant: {value: "
                   "0.1}");
  }
  if (structural && sequence.shape_case() != SequenceParameter::kConstant) {
    return Problem(path,
                   "a structural parameter cannot change during training; use constant, or "
                   "drop structural: true");
  }
  if (structural && has_warmup) {
    return Problem(JoinPath(path, sequence.has_warmup_steps() ? "warmup_steps" : "warmup_from"),
                   "a structural parameter cannot change during training, so it has no "
                   "warm-up; drop it, or drop structural: true");
  }
  for (const SequenceDomain& at : SequenceDomains(sequence, path, max_steps_)) {
    if (Issue issue = CheckNumberDomain(at)) {
      return issue;
    }
  }
  if (!sequence.one_of().empty()) {
    for (int i = 0; i < sequence.one_of_size(); ++i) {
      if (Issue issue =
              CheckShapeLists(sequence.one_of(i), IndexPath(JoinPath(path, "one_of"), i))) {
        return issue;
      }
    }
    return std::nullopt;
  }
  return CheckShapeLists(sequence, path);
}

Issue SearchSpaceChecker::CheckShapeLists(const hippo::v1::SequenceParameter& sequence,
                                          const std::string& path) const {
  if (sequence.has_step_decay()) {
    const std::string milestones_path = JoinPath(path, "step_decay.milestones.choices");
    const auto& choices = sequence.step_decay().milestones().choices();
    if (choices.empty()) {
      return Problem(milestones_path,
                     "empty; list at least one set of milestones, e.g. "
                     "milestones: {choices: [{steps: [60, 90]}]}");
    }
    for (int i = 0; i < choices.size(); ++i) {
      const std::string steps_path = JoinPath(IndexPath(milestones_path, i), "steps");
      if (Issue issue = CheckStepList(choices[i].steps(), steps_path)) {
        return issue;
      }
    }
  }
  if (sequence.has_linear()) {
    const hippo::v1::LinearSequence& linear = sequence.linear();
    if (linear.has_start() && linear.has_end() && Highest(linear.start()) >= Lowest(linear.end())) {
      return Problem(JoinPath(path, "linear.end"),
                     absl::StrCat("must be above start for every choice (lowest end ",
                                  FormatNumber(Lowest(linear.end())), ", highest start ",
                                  FormatNumber(Highest(linear.start())), ")"));
    }
  }
  if (sequence.has_piecewise()) {
    return CheckPiecewise(sequence.piecewise(), JoinPath(path, "piecewise"));
  }
  return std::nullopt;
}

Issue SearchSpaceChecker::CheckPiecewise(const hippo::v1::PiecewiseSequence& piecewise,
                                         const std::string& path) const {
  const int boundary_forms = (piecewise.boundaries_size() > 0) +
                             (piecewise.boundary_domains_size() > 0) +
                             (piecewise.boundary_choices().choices_size() > 0);
  if (boundary_forms > 1) {
    return Problem(path,
                   "boundaries are given more than one way; use one of boundaries, "
                   "boundary_domains or boundary_choices");
  }
  const int value_forms = (piecewise.values_size() > 0) + (piecewise.value_domains_size() > 0) +
                          (piecewise.value_choices().choices_size() > 0);
  if (value_forms != 1) {
    return Problem(path, absl::StrCat("values are given ", value_forms,
                                      " ways; use exactly one of values, value_domains or "
                                      "value_choices, e.g. values: [0.1, 0.01]"));
  }
  int boundary_count = piecewise.boundaries_size();
  if (Issue issue = CheckStepList(piecewise.boundaries(), JoinPath(path, "boundaries"))) {
    return issue;
  }
  const auto& boundary_lists = piecewise.boundary_choices().choices();
  for (int i = 0; i < boundary_lists.size(); ++i) {
    const std::string list_path = IndexPath(JoinPath(path, "boundary_choices.choices"), i);
    if (Issue issue = CheckStepList(boundary_lists[i].steps(), JoinPath(list_path, "steps"))) {
      return issue;
    }
    if (boundary_lists[i].steps_size() != boundary_lists[0].steps_size()) {
      return Problem(JoinPath(list_path, "steps"),
                     absl::StrCat("has ", boundary_lists[i].steps_size(), " steps, the first list ",
                                  boundary_lists[0].steps_size(),
                                  "; every list needs as many, to match the values"));
    }
    boundary_count = boundary_lists[0].steps_size();
  }
  for (int i = 1; i < piecewise.boundary_domains_size(); ++i) {
    const double lowest = Lowest(piecewise.boundary_domains(i));
    const double highest_before = Highest(piecewise.boundary_domains(i - 1));
    if (lowest <= highest_before) {
      return Problem(
          IndexPath(JoinPath(path, "boundary_domains"), i),
          absl::StrCat("every value must be above every value of boundary_domains[", i - 1,
                       "] (lowest ", FormatNumber(lowest), ", highest before ",
                       FormatNumber(highest_before), "), so that boundaries always increase"));
    }
  }
  if (piecewise.boundary_domains_size() > 0) boundary_count = piecewise.boundary_domains_size();
  auto check_count = [&](int count, const std::string& count_path) -> Issue {
    if (count == boundary_count + 1) return std::nullopt;
    return Problem(count_path, absl::StrCat("has ", count, " values for ", boundary_count,
                                            " boundaries; give one more value than boundaries"));
  };
  if (piecewise.values_size() > 0) {
    return check_count(piecewise.values_size(), JoinPath(path, "values"));
  }
  if (piecewise.value_domains_size() > 0) {
    return check_count(piecewise.value_domains_size(), JoinPath(path, "value_domains"));
  }
  const auto& value_lists = piecewise.value_choices().choices();
  for (int i = 0; i < value_lists.size(); ++i) {
    if (Issue issue = check_count(
            value_lists[i].values_size(),
            JoinPath(IndexPath(JoinPath(path, "value_choices.choices"), i), "values"))) {
      return issue;
    }
  }
  return std::nullopt;
}

Issue SearchSpaceChecker::CheckNumberDomain(const SequenceDomain& at) const {
  using hippo::v1::NumberDomain;
  const NumberDomain& domain = *at.domain;
  switch (domain.domain_case()) {
    case NumberDomain::kValue:
      if (at.bounds.has_value()) {
        return CheckStepValue(domain.value(), *at.bounds, JoinPath(at.path, "value"));
      }
      return std::nullopt;
    case NumberDomain::kChoices: {
      const std::string values_path = JoinPath(at.path, "choices.values");
      if (domain.choices().values().empty()) {
        return Problem(values_path, "empty; list at least one value, e.g. values: [0.1, 0.01]");
      }
      if (!at.bounds.has_value()) {
        return std::nullopt;
      }
      for (int i = 0; i < domain.choices().values_size(); ++i) {
        if (Issue issue =
                CheckStepValue(domain.choices().values(i), *at.bounds, IndexPath(values_path, i))) {
          return issue;
        }
      }
      return std::nullopt;
    }
    case NumberDomain::kRange: {
      const hippo::v1::NumberRange& range = domain.range();
      const std::string range_path = JoinPath(at.path, "range");
      if (range.low() >= range.high()) {
        return Problem(JoinPath(range_path, "low"),
                       absl::StrCat("must be below high (got low=", FormatNumber(range.low()),
                                    ", high=", FormatNumber(range.high()), ")"));
      }
      if (range.log() && range.low() <= 0) {
        return Problem(JoinPath(range_path, "low"),
                       absl::StrCat("must be > 0 when log is true (got ", FormatNumber(range.low()),
                                    "); a log scale cannot reach 0 or negative numbers"));
      }
      if (at.bounds.has_value()) {
        if (Issue issue = CheckStepValue(range.low(), *at.bounds, JoinPath(range_path, "low"))) {
          return issue;
        }
        return CheckStepValue(range.high(), *at.bounds, JoinPath(range_path, "high"));
      }
      return CheckNumberNotNegative(range.step(), JoinPath(range_path, "step"));
    }
    default:
      return Problem(at.path, "required; set one of value, choices or range, e.g. {value: 0.1}");
  }
}

Issue SearchSpaceChecker::CheckStepValue(double value, const StepBounds& bounds,
                                         const std::string& path) const {
  if (std::trunc(value) != value) {
    return Problem(path,
                   absl::StrCat("must be a whole number of steps (got ", FormatNumber(value), ")"));
  }
  if (value < static_cast<double>(bounds.min)) {
    return Problem(
        path, absl::StrCat("must be at least ", bounds.min, " (got ", FormatNumber(value), ")"));
  }
  if (value > static_cast<double>(bounds.max)) {
    return Problem(path, absl::StrCat("must be below budget.max_steps (", max_steps_, ") (got ",
                                      FormatNumber(value), ")"));
  }
  return std::nullopt;
}

// Milestones and piecewise boundaries: strictly increasing steps inside (0, max_steps).
Issue SearchSpaceChecker::CheckStepList(const google::protobuf::RepeatedField<std::int64_t>& steps,
                                        const std::string& path) const {
  for (int i = 0; i < steps.size(); ++i) {
    const std::string step_path = IndexPath(path, i);
    if (steps[i] <= 0) {
      return Problem(step_path, absl::StrCat("must be > 0 (got ", steps[i], ")"));
    }
    if (steps[i] >= max_steps_) {
      return Problem(step_path, absl::StrCat("must be below budget.max_steps (", max_steps_,
                                             ") (got ", steps[i], ")"));
    }
    if (i > 0 && steps[i] <= steps[i - 1]) {
      return Problem(step_path,
                     absl::StrCat("must be greater than the step before it (got ", steps[i],
                                  " after ", steps[i - 1], "); list steps in increasing order"));
    }
  }
  return std::nullopt;
}

}  // namespace

std::vector<SequenceDomain> SequenceDomains(const hippo::v1::SequenceParameter& sequence,
                                            const std::string& path, std::int64_t max_steps) {
  using hippo::v1::SequenceParameter;
  std::vector<SequenceDomain> domains;
  auto add = [&](const std::string& sub, const hippo::v1::NumberDomain& domain) {
    domains.push_back({JoinPath(path, sub), &domain, std::nullopt});
  };
  switch (sequence.shape_case()) {
    case SequenceParameter::kConstant:
      add("constant", sequence.constant());
      break;
    case SequenceParameter::kStepDecay:
      add("step_decay.initial", sequence.step_decay().initial());
      add("step_decay.gamma", sequence.step_decay().gamma());
      break;
    case SequenceParameter::kCosine:
      add("cosine.max", sequence.cosine().max());
      add("cosine.min", sequence.cosine().min());
      if (sequence.cosine().has_period()) {
        domains.push_back({JoinPath(path, "cosine.period"), &sequence.cosine().period(),
                           StepBounds{1, std::numeric_limits<std::int64_t>::max()}});
      }
      break;
    case SequenceParameter::kExponential:
      add("exponential.initial", sequence.exponential().initial());
      add("exponential.rate", sequence.exponential().rate());
      break;
    case SequenceParameter::kLinear:
      add("linear.from", sequence.linear().from());
      add("linear.to", sequence.linear().to());
      if (sequence.linear().has_start()) {
        domains.push_back({JoinPath(path, "linear.start"), &sequence.linear().start(),
                           StepBounds{0, std::max<std::int64_t>(max_steps - 1, 0)}});
      }
      if (sequence.linear().has_end()) {
        domains.push_back(
            {JoinPath(path, "linear.end"), &sequence.linear().end(), StepBounds{1, max_steps}});
      }
      break;
    case SequenceParameter::kPiecewise: {
      const hippo::v1::PiecewiseSequence& piecewise = sequence.piecewise();
      for (int i = 0; i < piecewise.boundary_domains_size(); ++i) {
        domains.push_back({IndexPath(JoinPath(path, "piecewise.boundary_domains"), i),
                           &piecewise.boundary_domains(i),
                           StepBounds{1, std::max<std::int64_t>(max_steps - 1, 1)}});
      }
      for (int i = 0; i < piecewise.value_domains_size(); ++i) {
        add(IndexPath("piecewise.value_domains", i), piecewise.value_domains(i));
      }
      break;
    }
    default:
      break;
  }
  if (sequence.has_warmup_steps()) {
    domains.push_back({JoinPath(path, "warmup_steps"), &sequence.warmup_steps(),
                       StepBounds{0, std::max<std::int64_t>(max_steps - 1, 0)}});
  }
  if (sequence.has_warmup_from()) add("warmup_from", sequence.warmup_from());
  for (int i = 0; i < sequence.one_of_size(); ++i) {
    std::vector<SequenceDomain> alternative =
        SequenceDomains(sequence.one_of(i), IndexPath(JoinPath(path, "one_of"), i), max_steps);
    domains.insert(domains.end(), alternative.begin(), alternative.end());
  }
  return domains;
}

Issue CheckSearchSpace(const hippo::v1::SearchSpace& space, std::int64_t max_steps) {
  return SearchSpaceChecker(max_steps).Check(space);
}

}  // namespace hippo::proto
