// Every field of every sequence shape changes the values it should, and only those; shapes
// compile to canonical segments; one_of and searched piecewise lists enumerate and build.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "stage_tree/search_space.h"

namespace hippo::stage_tree {
namespace {

namespace v1 = ::hippo::v1;

constexpr Step kSteps = 20;

v1::SearchSpace SpaceOf(const std::string& sequence_text) {
  v1::SearchSpace space;
  v1::Parameter* parameter = space.add_parameters();
  parameter->set_name("p");
  EXPECT_TRUE(
      google::protobuf::TextFormat::ParseFromString(sequence_text, parameter->mutable_sequence()))
      << sequence_text;
  return space;
}

// The sequences of every grid point of a one-parameter space.
std::vector<Sequence> Compile(const std::string& sequence_text) {
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(SpaceOf(sequence_text));
  EXPECT_TRUE(space.ok()) << space.status();
  if (!space.ok()) return {};
  absl::StatusOr<std::vector<Point>> points = GridPoints(*space);
  EXPECT_TRUE(points.ok()) << points.status();
  std::vector<Sequence> sequences;
  for (const Point& point : *points) {
    absl::StatusOr<TrialPlan> plan = BuildTrial(*space, point, kSteps);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (plan.ok()) sequences.push_back(plan->sequences.at("p"));
  }
  return sequences;
}

bool SameValue(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b) || (a == 0.0 && b == 0.0);
}

std::set<Step> StepsThatDiffer(const Sequence& a, const Sequence& b) {
  std::set<Step> steps;
  for (Step s = 0; s < kSteps; ++s) {
    if (!SameValue(a.Evaluate(s), b.Evaluate(s))) steps.insert(s);
  }
  return steps;
}

std::set<Step> Range(Step begin, Step end) {
  std::set<Step> steps;
  for (Step s = begin; s < end; ++s) steps.insert(s);
  return steps;
}

struct FieldCase {
  std::string shape;
  std::string field;
  std::string base;
  std::string changed;
  Step differ_from;  // the changed field alters exactly the steps [differ_from, differ_to)
  Step differ_to;
};

// Shapes over 20 steps. Warm-up rows end the ramp on the shape's value at step 0 (exactly, with
// the chosen values), so a shape that holds that value at step 3 differs on [0, 3) only.
const char kConstant[] = "constant { value: 0.1 }";
const char kStepDecay[] =
    "step_decay { initial { value: 0.1 } gamma { value: 0.1 } milestones { choices { steps: 10 "
    "} } }";
const char kCosine[] = "cosine { max { value: 1 } min { value: 0 } period { value: 20 } }";
const char kExponential[] = "exponential { initial { value: 1 } rate { value: 0.6 } }";
const char kPiecewise[] = "piecewise { boundaries: [5, 10] values: [1, 2, 3] }";
const char kPiecewiseDomains[] =
    "piecewise { boundary_domains { value: 5 } boundary_domains { value: 10 } value_domains { "
    "value: 1 } value_domains { value: 2 } value_domains { value: 3 } }";
const char kPiecewiseChoices[] =
    "piecewise { boundary_choices { choices { steps: [5, 10] } } value_choices { choices { "
    "values: [1, 2, 3] } } }";
const char kLinear[] =
    "linear { from { value: 0.85 } to { value: 0.95 } start { value: 2 } end { value: 8 } }";

std::vector<FieldCase> FieldCases() {
  using std::string;
  auto with = [](const char* shape, const string& extra) { return string(shape) + " " + extra; };
  std::vector<FieldCase> cases = {
      {"constant", "value", kConstant, "constant { value: 0.2 }", 0, 20},
      {"step_decay", "initial", kStepDecay,
       "step_decay { initial { value: 0.2 } gamma { value: 0.1 } milestones { choices { steps: "
       "10 } } }",
       0, 20},
      {"step_decay", "gamma", kStepDecay,
       "step_decay { initial { value: 0.1 } gamma { value: 0.5 } milestones { choices { steps: "
       "10 } } }",
       10, 20},
      {"step_decay", "milestones", kStepDecay,
       "step_decay { initial { value: 0.1 } gamma { value: 0.1 } milestones { choices { steps: "
       "15 } } }",
       10, 15},
      {"cosine", "max", kCosine,
       "cosine { max { value: 2 } min { value: 0 } period { value: 20 } }", 0, 20},
      {"cosine", "min", kCosine,
       "cosine { max { value: 1 } min { value: 0.5 } period { value: 20 } }", 1, 20},
      {"cosine", "period", kCosine,
       "cosine { max { value: 1 } min { value: 0 } period { value: 10 } }", 1, 20},
      {"exponential", "initial", kExponential,
       "exponential { initial { value: 2 } rate { value: 0.6 } }", 0, 20},
      {"exponential", "rate", kExponential,
       "exponential { initial { value: 1 } rate { value: 0.9 } }", 1, 20},
      {"piecewise", "boundaries", kPiecewise, "piecewise { boundaries: [5, 12] values: [1, 2, 3] }",
       10, 12},
      {"piecewise", "values", kPiecewise, "piecewise { boundaries: [5, 10] values: [1, 4, 3] }", 5,
       10},
      {"piecewise", "boundary_domains", kPiecewiseDomains,
       "piecewise { boundary_domains { value: 3 } boundary_domains { value: 10 } value_domains { "
       "value: 1 } value_domains { value: 2 } value_domains { value: 3 } }",
       3, 5},
      {"piecewise", "value_domains", kPiecewiseDomains,
       "piecewise { boundary_domains { value: 5 } boundary_domains { value: 10 } value_domains { "
       "value: 1 } value_domains { value: 2 } value_domains { value: 7 } }",
       10, 20},
      {"piecewise", "boundary_choices", kPiecewiseChoices,
       "piecewise { boundary_choices { choices { steps: [5, 11] } } value_choices { choices { "
       "values: [1, 2, 3] } } }",
       10, 11},
      {"piecewise", "value_choices", kPiecewiseChoices,
       "piecewise { boundary_choices { choices { steps: [5, 10] } } value_choices { choices { "
       "values: [9, 2, 3] } } }",
       0, 5},
      {"linear", "from", kLinear,
       "linear { from { value: 0.8 } to { value: 0.95 } start { value: 2 } end { value: 8 } }", 0,
       8},
      {"linear", "to", kLinear,
       "linear { from { value: 0.85 } to { value: 1 } start { value: 2 } end { value: 8 } }", 3,
       20},
      {"linear", "start", kLinear,
       "linear { from { value: 0.85 } to { value: 0.95 } start { value: 4 } end { value: 8 } }", 3,
       8},
      {"linear", "end", kLinear,
       "linear { from { value: 0.85 } to { value: 0.95 } start { value: 2 } end { value: 12 } }", 3,
       12},
  };
  // warmup_steps and warmup_from on every shape.
  struct Shape {
    const char* name;
    const char* text;
    double first_value;    // the shape's value at step 0
    bool holds_to_step_3;  // whether its value at step 3 is still the one at step 0
  };
  const Shape shapes[] = {
      {"constant", kConstant, 0.1, true},
      {"step_decay", kStepDecay, 0.1, true},
      {"cosine", kCosine, 1, false},
      {"exponential", kExponential, 1, false},
      {"piecewise", kPiecewise, 1, true},
      {"piecewise domains", kPiecewiseDomains, 1, true},
      {"piecewise choices", kPiecewiseChoices, 1, true},
      {"linear", kLinear, 0.85, false},
  };
  for (const Shape& shape : shapes) {
    const Step ramp_differs_to = shape.holds_to_step_3 ? 3 : 4;
    cases.push_back({shape.name, "warmup_steps", shape.text,
                     with(shape.text, "warmup_steps { value: 4 }"), 0, ramp_differs_to});
    // From half the first value, so the ramp's last step is that value exactly.
    const string from = "warmup_from { value: " + std::to_string(shape.first_value / 2) + " }";
    cases.push_back({shape.name, "warmup_from", with(shape.text, "warmup_steps { value: 4 }"),
                     with(shape.text, "warmup_steps { value: 4 } " + from), 0, 3});
  }
  return cases;
}

TEST(ShapesTest, EveryFieldOfEveryShapeChangesExactlyTheStepsItShould) {
  for (const FieldCase& c : FieldCases()) {
    SCOPED_TRACE(c.shape + "." + c.field);
    const std::vector<Sequence> base = Compile(c.base);
    const std::vector<Sequence> changed = Compile(c.changed);
    ASSERT_EQ(base.size(), 1u);
    ASSERT_EQ(changed.size(), 1u);
    EXPECT_EQ(StepsThatDiffer(base[0], changed[0]), Range(c.differ_from, c.differ_to));
  }
}

TEST(ShapesTest, WarmupFollowsItsFormulaOnEveryShape) {
  // v0 + (v - v0) * (s + 1) / w on [0, w), then the shape unchanged.
  for (const char* shape : {kConstant, kStepDecay, kCosine, kExponential, kPiecewise, kLinear}) {
    SCOPED_TRACE(shape);
    const Sequence plain = Compile(shape).at(0);
    const Sequence warm =
        Compile(std::string(shape) + " warmup_steps { value: 6 } warmup_from { value: 0.01 }")
            .at(0);
    const double v = plain.Evaluate(0);
    for (Step s = 0; s < kSteps; ++s) {
      const double expected =
          s < 6 ? 0.01 + (v - 0.01) * static_cast<double>(s + 1) / 6.0 : plain.Evaluate(s);
      EXPECT_EQ(warm.Evaluate(s), expected) << "step " << s;
    }
  }
}

TEST(ShapesTest, PiecewiseWarmupGridGivesDistinctTrials) {
  const std::vector<Sequence> trials =
      Compile(std::string(kPiecewise) + " warmup_steps { choices { values: [0, 3] } }");
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_EQ(StepsThatDiffer(trials[0], trials[1]), Range(0, 2));
}

TEST(ShapesTest, LinearRampsThenHolds) {
  const Sequence momentum =
      Compile("linear { from { value: 0.85 } to { value: 0.95 } end { value: 10 } }").at(0);
  for (Step s = 0; s < kSteps; ++s) {
    const double expected = s < 10 ? 0.85 + (0.95 - 0.85) * static_cast<double>(s) / 10.0 : 0.95;
    EXPECT_EQ(momentum.Evaluate(s), expected) << "step " << s;
  }
  EXPECT_EQ(momentum.segments().size(), 2u);
}

TEST(ShapesTest, RampWrittenAsOneStepPiecesIsOneLinearSegment) {
  // The values a linear segment gives, written as 10 one-step pieces, then a hold.
  const SegmentFunction line = SegmentFunction::Linear(0.85, 0.95, 0, 9);
  std::string text = "piecewise { boundaries: [";
  for (Step s = 1; s <= 10; ++s) text += std::to_string(s) + (s < 10 ? ", " : "] values: [");
  for (Step s = 0; s < 10; ++s) {
    char value[40];
    std::snprintf(value, sizeof(value), "%.17g, ", line.Evaluate(s));
    text += value;
  }
  text += "0.95] }";
  const Sequence pieces = Compile(text).at(0);
  ASSERT_EQ(pieces.segments().size(), 2u) << text;
  EXPECT_EQ(pieces.segments()[0].end, 10);
  for (Step s = 0; s < 10; ++s) EXPECT_EQ(pieces.Evaluate(s), line.Evaluate(s));
}

TEST(ShapesTest, LinearShapeWrittenAsPiecesCompilesToTheLinearShape) {
  const std::string linear = "linear { from { value: 0.85 } to { value: 0.95 } end { value: 10 } }";
  const Sequence ramp = Compile(linear).at(0);
  std::string text = "piecewise { boundaries: [";
  for (Step s = 1; s <= 10; ++s) text += std::to_string(s) + (s < 10 ? ", " : "] values: [");
  for (Step s = 0; s <= 10; ++s) {
    char value[40];
    std::snprintf(value, sizeof(value), "%.17g%s", ramp.Evaluate(s), s < 10 ? ", " : "] }");
    text += value;
  }
  EXPECT_EQ(Compile(text).at(0), ramp) << text;
}

TEST(ShapesTest, CanonicalFormMergesWhatHasEqualValues) {
  // A one-step warm-up is the shape's own first value: no segment of its own.
  EXPECT_EQ(Compile(std::string(kConstant) + " warmup_steps { value: 1 }").at(0).segments().size(),
            1u);
  // Pieces of equal value, a flat ramp, a rate-1 exponential: one constant each.
  EXPECT_EQ(Compile("piecewise { boundaries: [5, 10] values: [1, 1, 1] }").at(0).segments().size(),
            1u);
  EXPECT_EQ(Compile("linear { from { value: 0.9 } to { value: 0.9 } end { value: 5 } }")
                .at(0)
                .segments()
                .size(),
            1u);
  EXPECT_EQ(Compile("exponential { initial { value: 1 } rate { value: 1 } }").at(0),
            Compile("constant { value: 1 }").at(0));
  // A piece at the value where a ramp arrives continues nothing: it stays its own segment.
  EXPECT_EQ(Compile(std::string(kLinear)).at(0).segments().size(), 3u);
}

TEST(ShapesTest, OneOfGridIsTheSumOfTheAlternativesGrids) {
  const std::vector<Sequence> trials = Compile(
      "one_of { step_decay { initial { choices { values: [0.1, 0.05] } } gamma { value: 0.1 } "
      "milestones { choices { steps: 10 } choices { steps: 15 } } } } "
      "one_of { cosine { max { choices { values: [0.1, 0.05] } } min { value: 0 } } } "
      "one_of { constant { value: 0.1 } } "
      "warmup_steps { choices { values: [0, 2] } }");
  // (2 * 2 + 2 + 1) alternatives' points, times two warm-ups.
  ASSERT_EQ(trials.size(), 14u);
  for (size_t i = 0; i < trials.size(); ++i) {
    for (size_t j = i + 1; j < trials.size(); ++j) {
      EXPECT_FALSE(StepsThatDiffer(trials[i], trials[j]).empty()) << i << " and " << j;
    }
  }
}

TEST(ShapesTest, OneOfDimensionsAreUsedOnlyByTheirAlternative) {
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(
      SpaceOf("one_of { cosine { max { range { low: 0.01 high: 0.1 } } min { value: 0 } } } "
              "one_of { constant { range { low: 0.01 high: 0.1 } } } "
              "one_of { constant { value: 0.5 } }"));
  ASSERT_TRUE(space.ok()) << space.status();
  std::vector<std::string> names;
  for (const Dimension& dimension : space->dimensions) names.push_back(dimension.name);
  EXPECT_EQ(names, (std::vector<std::string>{"p.one_of", "p.cosine.max", "p.constant"}));
  EXPECT_EQ(space->dimensions[0].choices, (std::vector<Value>{"cosine", "constant", "constant_2"}));
  Point point = {std::string("constant"), 0.05, 0.02};
  EXPECT_FALSE(IsActive(space->dimensions, point, 1));
  EXPECT_TRUE(IsActive(space->dimensions, point, 2));
  absl::StatusOr<TrialPlan> plan = BuildTrial(*space, point, kSteps);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->sequences.at("p"), Sequence::ConstantOver(0.02, kSteps));
  point[0] = std::string("constant_2");
  plan = BuildTrial(*space, point, kSteps);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->sequences.at("p"), Sequence::ConstantOver(0.5, kSteps));
}

TEST(ShapesTest, MalformedShapesAreRefusedNamingTheField) {
  struct Bad {
    std::string text;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {"constant { value: 1 } one_of { constant { value: 2 } }", "either a shape or one_of"},
      {"one_of { one_of { constant { value: 2 } } }", "one_of[0]: an alternative is a plain"},
      {"one_of { constant { value: 1 } warmup_steps { value: 2 } } warmup_steps { value: 3 }",
       "one_of[0]: warm-up is set for all alternatives"},
      {"piecewise { boundaries: [5] values: [1] }", "piecewise.values: has 1 values for 1"},
      {"piecewise { boundaries: [5] boundary_domains { value: 5 } values: [1, 2] }",
       "at most one way"},
      {"piecewise { boundary_choices { choices { steps: [5] } choices { steps: [5, 6] } } "
       "values: [1, 2] }",
       "boundary_choices: every list needs the same number"},
  };
  for (const Bad& b : bad) {
    absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(SpaceOf(b.text));
    ASSERT_FALSE(space.ok()) << b.text;
    EXPECT_NE(space.status().message().find(b.message), std::string::npos) << space.status();
  }
  // A searched boundary that lands out of order is refused when the trial is built.
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(
      SpaceOf("piecewise { boundary_domains { choices { values: [5, 12] } } boundary_domains { "
              "value: 10 } values: [1, 2, 3] }"));
  ASSERT_TRUE(space.ok()) << space.status();
  absl::StatusOr<TrialPlan> plan = BuildTrial(*space, {12.0}, kSteps);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("boundaries[1] = 10"), std::string::npos) << plan.status();
}

}  // namespace
}  // namespace hippo::stage_tree
