// Conditional parameters (Parameter.when): a parameter exists in a trial only when its condition
// on an earlier structural parameter holds. Its dimensions are used only then, the trial built
// from a point has it only then (no placeholder value), the family key holds only the
// parameters the trial has, and the grid enumerates a conditional parameter's values only where
// it exists.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "stage_tree/search_space.h"

namespace hippo::stage_tree {
namespace {

namespace v1 = ::hippo::v1;

// A search space written as JSON (protobuf's mapping of hippo.v1.SearchSpace).
SearchSpace SpaceOf(const std::string& json) {
  v1::SearchSpace proto;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, &proto);
  EXPECT_TRUE(parsed.ok()) << parsed.message();
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(proto);
  EXPECT_TRUE(space.ok()) << space.status();
  return space.value_or(SearchSpace{});
}

absl::Status ErrorOf(const std::string& json) {
  v1::SearchSpace proto;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &proto).ok());
  return SearchSpaceFromProto(proto).status();
}

// Dimensions: layers (0), channels_0 (1), channels_1 (2), channels_2 (3), optimizer (4),
// momentum (5), lr (6).
constexpr char kNetworkSpace[] = R"({"parameters": [
  {"name": "layers", "int": {"low": 1, "high": 3}, "structural": true},
  {"name": "channels_0", "int": {"low": 8, "high": 32, "step": 8}, "structural": true},
  {"name": "channels_1", "int": {"low": 8, "high": 32, "step": 8}, "structural": true,
   "when": {"param": "layers", "atLeast": 2}},
  {"name": "channels_2", "int": {"low": 8, "high": 32, "step": 8}, "structural": true,
   "when": {"param": "layers", "atLeast": 3}},
  {"name": "optimizer", "categorical": {"values": ["sgd", "adam"]}},
  {"name": "momentum", "float": {"low": 0.8, "high": 0.99},
   "when": {"param": "optimizer", "equals": "sgd"}},
  {"name": "lr", "float": {"low": 0.01, "high": 0.1, "log": true}}]})";

TEST(ConditionalSpaceTest, AParameterIsUsedOnlyWhereItsConditionHolds) {
  const SearchSpace space = SpaceOf(kNetworkSpace);
  ASSERT_EQ(space.dimensions.size(), 7u);
  const Point two_layers_adam = {2.0, 16.0, 24.0, 8.0, std::string("adam"), 0.9, 0.05};
  const std::vector<bool> expected = {true, true, true, false, true, false, true};
  for (size_t d = 0; d < expected.size(); ++d) {
    EXPECT_EQ(IsActive(space.dimensions, two_layers_adam, d), expected[d])
        << space.dimensions[d].name;
  }
  Point three_layers_sgd = two_layers_adam;
  three_layers_sgd[0] = 3.0;
  three_layers_sgd[4] = std::string("sgd");
  for (size_t d = 0; d < space.dimensions.size(); ++d) {
    EXPECT_TRUE(IsActive(space.dimensions, three_layers_sgd, d)) << space.dimensions[d].name;
  }
}

TEST(ConditionalSpaceTest, ATrialHasOnlyItsParametersAndItsFamilyKeyOnlyTheirValues) {
  const SearchSpace space = SpaceOf(kNetworkSpace);
  const Point point = {2.0, 16.0, 24.0, 8.0, std::string("adam"), 0.9, 0.05};
  absl::StatusOr<TrialPlan> plan = BuildTrial(space, point, 10);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::set<std::string> structural;
  for (const auto& [name, value] : plan->structural) structural.insert(name);
  EXPECT_EQ(structural, (std::set<std::string>{"layers", "channels_0", "channels_1", "optimizer"}));
  std::set<std::string> sequences;
  for (const auto& [name, sequence] : plan->sequences) sequences.insert(name);
  EXPECT_EQ(sequences, (std::set<std::string>{"lr"}));

  // Another value of an absent parameter makes the same trial, in the same family.
  Point other = point;
  other[3] = 32.0;  // channels_2, absent with 2 layers
  other[5] = 0.8;   // momentum, absent with adam
  absl::StatusOr<TrialPlan> same = BuildTrial(space, other, 10);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(FamilyKey("torch:1", same->structural), FamilyKey("torch:1", plan->structural));
  EXPECT_EQ(same->sequences.size(), plan->sequences.size());
  // A parameter that is present changes the family.
  other[2] = 32.0;  // channels_1
  absl::StatusOr<TrialPlan> wider = BuildTrial(space, other, 10);
  ASSERT_TRUE(wider.ok());
  EXPECT_NE(FamilyKey("torch:1", wider->structural), FamilyKey("torch:1", plan->structural));
  EXPECT_EQ(FamilyKey("torch:1", plan->structural).find("channels_2"), std::string::npos);
}

TEST(ConditionalSpaceTest, ResetUnusedGivesTheSameTrialTheSamePoint) {
  const SearchSpace space = SpaceOf(kNetworkSpace);
  Point a = {1.0, 16.0, 24.0, 16.0, std::string("adam"), 0.9, 0.05};
  Point b = {1.0, 16.0, 32.0, 8.0, std::string("adam"), 0.85, 0.05};
  ResetUnused(space.dimensions, a);
  ResetUnused(space.dimensions, b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[2], Value(8.0));  // the placeholder: low
  EXPECT_EQ(a[5], Value(0.8));
}

TEST(ConditionalSpaceTest, GridEnumeratesAConditionalParameterOnlyWhereItExists) {
  const SearchSpace space = SpaceOf(R"({"parameters": [
    {"name": "layers", "categorical": {"values": [1, 2, 3]}, "structural": true},
    {"name": "channels_0", "categorical": {"values": [8, 16]}, "structural": true},
    {"name": "channels_1", "categorical": {"values": [8, 16]}, "structural": true,
     "when": {"param": "layers", "atLeast": 2}},
    {"name": "channels_2", "categorical": {"values": [8, 16]}, "structural": true,
     "when": {"param": "layers", "anyOf": [3]}}]})");
  absl::StatusOr<std::vector<Point>> points = GridPoints(space);
  ASSERT_TRUE(points.ok()) << points.status();
  // 2 one-layer networks, 4 two-layer ones, 8 three-layer ones: 14, not 3 * 2 * 2 * 2 = 24.
  ASSERT_EQ(points->size(), 14u);
  std::set<std::string> families;
  for (const Point& point : *points) {
    absl::StatusOr<TrialPlan> plan = BuildTrial(space, point, 5);
    ASSERT_TRUE(plan.ok());
    const auto layers = static_cast<size_t>(std::get<double>(point[0]));
    EXPECT_EQ(plan->structural.size(), 1 + layers);
    families.insert(FamilyKey("torch:1", plan->structural));
  }
  EXPECT_EQ(families.size(), 14u) << "every grid point is a different network";
}

TEST(ConditionalSpaceTest, ConditionsChainAndReachIntoOneOfAlternatives) {
  const SearchSpace space = SpaceOf(R"({"parameters": [
    {"name": "layers", "int": {"low": 1, "high": 2}, "structural": true},
    {"name": "kernel_1", "categorical": {"values": [3, 5]}, "structural": true,
     "when": {"param": "layers", "atLeast": 2}},
    {"name": "dilation_1", "categorical": {"values": [1, 2]}, "structural": true,
     "when": {"param": "kernel_1", "equals": 3}},
    {"name": "lr", "when": {"param": "layers", "atMost": 1}, "sequence": {"oneOf": [
      {"cosine": {"max": {"choices": {"values": [0.1, 0.2]}}, "min": {"value": 0}}},
      {"constant": {"choices": {"values": [0.1, 0.2]}}}]}}]})");
  std::vector<std::string> names;
  for (const Dimension& dimension : space.dimensions) names.push_back(dimension.name);
  ASSERT_EQ(names, (std::vector<std::string>{"layers", "kernel_1", "dilation_1", "lr.one_of",
                                             "lr.cosine.max", "lr.constant"}));
  // One layer: kernel_1 is absent, so dilation_1 is too, even though its test would pass.
  const Point one_layer = {1.0, 3.0, 2.0, std::string("cosine"), 0.2, 0.1};
  EXPECT_FALSE(IsActive(space.dimensions, one_layer, 2));
  EXPECT_TRUE(IsActive(space.dimensions, one_layer, 4));
  EXPECT_FALSE(IsActive(space.dimensions, one_layer, 5));
  absl::StatusOr<TrialPlan> plan = BuildTrial(space, one_layer, 10);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->structural.size(), 1u);
  EXPECT_TRUE(plan->sequences.contains("lr"));
  // Two layers: lr is absent, with every dimension of its alternatives.
  const Point two_layers = {2.0, 3.0, 2.0, std::string("cosine"), 0.2, 0.1};
  for (size_t d = 3; d < 6; ++d) EXPECT_FALSE(IsActive(space.dimensions, two_layers, d));
  plan = BuildTrial(space, two_layers, 10);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->structural.size(), 3u);
  EXPECT_FALSE(plan->sequences.contains("lr"));
}

TEST(ConditionalSpaceTest, AConditionOnAOneValueChoiceIsDecidedOnce) {
  // A tiny version of a space: one depth only. The parameters of deeper networks have no
  // dimension and are never in a trial.
  const SearchSpace space = SpaceOf(R"({"parameters": [
    {"name": "layers", "categorical": {"values": [1]}, "structural": true},
    {"name": "channels_0", "categorical": {"values": [8, 16]}, "structural": true},
    {"name": "channels_1", "categorical": {"values": [8, 16]}, "structural": true,
     "when": {"param": "layers", "atLeast": 2}},
    {"name": "kernel_1", "categorical": {"values": [3, 5]}, "structural": true,
     "when": {"param": "channels_1", "atLeast": 16}},
    {"name": "kernel_0", "categorical": {"values": [3, 5]}, "structural": true,
     "when": {"param": "layers", "equals": 1}}]})");
  std::vector<std::string> names;
  for (const Dimension& dimension : space.dimensions) names.push_back(dimension.name);
  EXPECT_EQ(names, (std::vector<std::string>{"channels_0", "kernel_0"}));
  absl::StatusOr<TrialPlan> plan = BuildTrial(space, Point{16.0, 5.0}, 10);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->structural.size(), 3u);  // layers, channels_0, kernel_0
}

TEST(ConditionalSpaceTest, AConditionOnALaterOrDynamicParameterIsRefusedNamingIt) {
  const absl::Status later = ErrorOf(R"({"parameters": [
    {"name": "width_1", "int": {"low": 8, "high": 16}, "when": {"param": "layers", "atLeast": 2}},
    {"name": "layers", "int": {"low": 1, "high": 2}, "structural": true}]})");
  EXPECT_EQ(later.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(later.message().find("parameter 'width_1': when.param: 'layers'"), std::string::npos)
      << later;
  const absl::Status dynamic = ErrorOf(R"({"parameters": [
    {"name": "lr", "float": {"low": 0.01, "high": 0.1}},
    {"name": "warmup", "int": {"low": 0, "high": 5}, "when": {"param": "lr", "atLeast": 0.05}}]})");
  EXPECT_NE(dynamic.message().find("structural"), std::string::npos) << dynamic;
  const absl::Status no_test = ErrorOf(R"({"parameters": [
    {"name": "layers", "int": {"low": 1, "high": 2}, "structural": true},
    {"name": "width_1", "int": {"low": 8, "high": 16}, "when": {"param": "layers"}}]})");
  EXPECT_NE(no_test.message().find("needs a test"), std::string::npos) << no_test;
}

}  // namespace
}  // namespace hippo::stage_tree
