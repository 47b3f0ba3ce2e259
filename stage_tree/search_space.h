// The search space as plain data: the dimensions an algorithm samples, and how a point of
// those dimensions becomes a trial's hyper-parameter sequences.
//
// A scalar parameter is one dimension ("weight_decay"); a sequence parameter has one dimension
// per searched component ("lr.initial", "lr.milestones", "lr.warmup_steps",
// "lr.boundaries[1]"). A one_of parameter has a dimension choosing the alternative
// ("lr.one_of", whose choices are the alternatives' labels: their shape names, "cosine",
// "step_decay", with "_2", "_3" added to repeated shapes) and the dimensions of each
// alternative under its label ("lr.cosine.max"); those are used only when their alternative is
// chosen. Fixed values are not dimensions. Non-structural numeric parameters become constant
// sequences, so they can be changed mid-training (PBT); structural ones (and strings) go into
// the family key.
#ifndef HIPPO_STAGE_TREE_SEARCH_SPACE_H_
#define HIPPO_STAGE_TREE_SEARCH_SPACE_H_

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"
#include "stage_tree/sequence.h"

namespace hippo::stage_tree {

// A value of a dimension: a number, a string, or a list of steps (milestones).
using Value = std::variant<double, std::string, std::vector<Step>>;
std::string ValueToString(const Value& value);

enum class DimensionKind { kChoice, kInt, kFloat };

// When a dimension (or a parameter) is used: an earlier dimension is used and its value passes
// one test. Conditions come from a one_of parameter (a dimension of an alternative is used when
// the choosing dimension equals the alternative's label) and from a parameter's `when` (e.g.
// `width_3` when `layers` is at least 4).
struct Condition {
  enum class Test { kEquals, kAnyOf, kAtLeast, kAtMost };
  size_t dimension = 0;  // an earlier dimension
  Test test = Test::kEquals;
  std::vector<Value> values;  // kEquals (one value), kAnyOf
  double bound = 0;           // kAtLeast, kAtMost; a string never passes them

  // Whether `value` (of `dimension`) passes the test, regardless of whether it is used.
  bool Passes(const Value& value) const;
};

struct Dimension {
  std::string name;
  DimensionKind kind = DimensionKind::kChoice;
  std::vector<Value> choices;  // kChoice
  double low = 0;              // kInt, kFloat: [low, high], both included
  double high = 0;
  bool log = false;
  double step = 0;  // quantisation; kInt uses at least 1
  // Set: the dimension is used only by points that satisfy it (see Holds). The condition's
  // dimension comes first in the space, so a sampler can draw it and then the ones it controls.
  // A point still holds a value for an unused dimension; it changes nothing, and the trial has
  // no parameter for it.
  std::optional<Condition> active_if;
};

// Whether `point` uses dimension `dimension`: it has no condition, or its condition holds.
// `point` needs values for the dimensions before `dimension` only.
bool IsActive(const std::vector<Dimension>& dimensions, const std::vector<Value>& point,
              size_t dimension);
// Whether `condition` holds for `point`: its dimension is used and its value passes the test.
bool Holds(const std::vector<Dimension>& dimensions, const std::vector<Value>& point,
           const Condition& condition);

// The value a dimension holds where a point does not use it: its first choice, or low.
Value FirstValue(const Dimension& dimension);
// Sets every dimension `point` does not use to FirstValue, so that points that make the same
// trial are equal.
void ResetUnused(const std::vector<Dimension>& dimensions, std::vector<Value>& point);

enum class Shape { kScalar, kStepDecay, kCosine, kExponential, kPiecewise, kLinear, kOneOf };

// A component of a parameter: a fixed value, or the index of the dimension that searches it.
struct Component {
  std::optional<size_t> dimension;
  Value fixed = 0.0;
};

struct ParameterSpec {
  std::string name;
  bool structural = false;
  // Set: a trial has this parameter only when the condition holds (Parameter.when); its
  // dimensions carry the same condition.
  std::optional<Condition> when;
  Shape shape = Shape::kScalar;
  // By component name: "value" (scalar), "initial", "gamma", "milestones", "max", "min",
  // "period", "rate", "from", "to", "start", "end", "warmup_steps", "warmup_from"; piecewise:
  // "boundaries" (a list) or "boundaries[i]", "values" (a list label) or "values[i]"; one_of:
  // "one_of" (the chosen alternative's label).
  std::map<std::string, Component> components;
  size_t piece_count = 0;  // piecewise: number of values (one more than boundaries)
  // piecewise given value_choices: each list by the label that is its dimension's choice.
  std::map<std::string, std::vector<double>> value_lists;
  // one_of: the alternatives (plain shapes), each with its label in `name`.
  std::vector<ParameterSpec> alternatives;
};

struct SearchSpace {
  std::vector<Dimension> dimensions;
  std::vector<ParameterSpec> parameters;
};

// A point: one value per dimension, in SearchSpace::dimensions order.
using Point = std::vector<Value>;

// What a point becomes: the sequences of the dynamic parameters over [0, max_steps) and the
// values of the structural ones; a parameter whose `when` does not hold is in neither.
struct TrialPlan {
  TrialSequences sequences;
  std::map<std::string, Value> structural;
};

absl::StatusOr<SearchSpace> SearchSpaceFromProto(const hippo::v1::SearchSpace& proto);

// Every point of a finite space, the last dimension varying fastest. InvalidArgument naming
// the dimension if one is continuous.
absl::StatusOr<std::vector<Point>> GridPoints(const SearchSpace& space);

absl::StatusOr<TrialPlan> BuildTrial(const SearchSpace& space, const Point& point, Step max_steps);

// The identity of a trainer spec: "<kind>:<64-bit FNV-1a of its deterministic serialization>".
// Stable across processes and builds, so it can be stored; equal specs give equal identities.
std::string TrainerIdentity(const hippo::v1::TrainerSpec& trainer);

// The root key of a trial's family: the trainer's identity and every structural value (of the
// parameters the trial has).
std::string FamilyKey(std::string_view trainer_identity,
                      const std::map<std::string, Value>& structural);

}  // namespace hippo::stage_tree

#endif  // HIPPO_STAGE_TREE_SEARCH_SPACE_H_
