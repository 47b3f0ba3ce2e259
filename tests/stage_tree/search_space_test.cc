#include "stage_tree/search_space.h"

#include <gtest/gtest.h>

namespace hippo::stage_tree {
namespace {

namespace v1 = ::hippo::v1;

v1::SearchSpace ScheduleSpace() {
  v1::SearchSpace space;
  v1::Parameter* lr = space.add_parameters();
  lr->set_name("lr");
  v1::StepDecaySequence* decay = lr->mutable_sequence()->mutable_step_decay();
  for (double value : {0.1, 0.05}) decay->mutable_initial()->mutable_choices()->add_values(value);
  decay->mutable_gamma()->set_value(0.1);
  decay->mutable_milestones()->add_choices()->add_steps(60);
  lr->mutable_sequence()->mutable_warmup_steps()->mutable_choices()->add_values(0);
  lr->mutable_sequence()->mutable_warmup_steps()->mutable_choices()->add_values(5);
  v1::Parameter* depth = space.add_parameters();
  depth->set_name("depth");
  depth->set_structural(true);
  depth->mutable_int_()->set_low(2);
  depth->mutable_int_()->set_high(4);
  v1::Parameter* optimizer = space.add_parameters();
  optimizer->set_name("optimizer");
  optimizer->mutable_fixed()->set_string_value("sgd");
  return space;
}

TEST(SearchSpaceTest, SequenceComponentsBecomeNamedDimensions) {
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(ScheduleSpace());
  ASSERT_TRUE(space.ok()) << space.status();
  std::vector<std::string> names;
  for (const Dimension& dimension : space->dimensions) names.push_back(dimension.name);
  // gamma and milestones have one choice each: fixed, not searched.
  EXPECT_EQ(names, (std::vector<std::string>{"lr.initial", "lr.warmup_steps", "depth"}));
  EXPECT_EQ(space->dimensions[2].kind, DimensionKind::kInt);
}

TEST(SearchSpaceTest, GridIsTheCartesianProductLastDimensionFastest) {
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(ScheduleSpace());
  ASSERT_TRUE(space.ok());
  absl::StatusOr<std::vector<Point>> points = GridPoints(*space);
  ASSERT_TRUE(points.ok());
  ASSERT_EQ(points->size(), 2u * 2u * 3u);
  EXPECT_EQ((*points)[0], (Point{0.1, 0.0, 2.0}));
  EXPECT_EQ((*points)[1], (Point{0.1, 0.0, 3.0}));
  EXPECT_EQ(points->back(), (Point{0.05, 5.0, 4.0}));
}

TEST(SearchSpaceTest, ContinuousDimensionHasNoGrid) {
  v1::SearchSpace proto;
  v1::Parameter* parameter = proto.add_parameters();
  parameter->set_name("lr");
  parameter->mutable_float_()->set_low(1e-4);
  parameter->mutable_float_()->set_high(1e-1);
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(proto);
  ASSERT_TRUE(space.ok());
  absl::StatusOr<std::vector<Point>> points = GridPoints(*space);
  ASSERT_FALSE(points.ok());
  EXPECT_NE(points.status().message().find("'lr'"), std::string::npos);
}

TEST(SearchSpaceTest, BuildTrialSeparatesSequencesFromStructuralValues) {
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(ScheduleSpace());
  ASSERT_TRUE(space.ok());
  absl::StatusOr<TrialPlan> plan = BuildTrial(*space, Point{0.1, 5.0, 3.0}, 100);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->sequences.size(), 1u);
  const Sequence& lr = plan->sequences.at("lr");
  EXPECT_EQ(lr.Evaluate(0), 0.1 * 1 / 5);
  EXPECT_EQ(lr.Evaluate(10), 0.1);
  EXPECT_EQ(lr.Evaluate(60), 0.1 * 0.1);
  EXPECT_EQ(std::get<double>(plan->structural.at("depth")), 3.0);
  EXPECT_EQ(std::get<std::string>(plan->structural.at("optimizer")), "sgd");
  EXPECT_NE(FamilyKey("sim", plan->structural),
            FamilyKey("sim", {{"depth", 2.0}, {"optimizer", std::string("sgd")}}));
  EXPECT_FALSE(BuildTrial(*space, Point{0.1}, 100).ok());
}

}  // namespace
}  // namespace hippo::stage_tree

namespace hippo::stage_tree {
namespace {

TEST(SearchSpaceTest, TrainerIdentityIgnoresConfigKeyOrderButNotValues) {
  hippo::v1::TrainerSpec first;
  first.set_kind("sim");
  (*first.mutable_config()->mutable_fields())["model"].set_string_value("cnn");
  (*first.mutable_config()->mutable_fields())["batch_size"].set_number_value(128);
  hippo::v1::TrainerSpec second;
  second.set_kind("sim");
  (*second.mutable_config()->mutable_fields())["batch_size"].set_number_value(128);
  (*second.mutable_config()->mutable_fields())["model"].set_string_value("cnn");
  EXPECT_EQ(TrainerIdentity(first), TrainerIdentity(second));
  EXPECT_EQ(TrainerIdentity(first).rfind("sim:", 0), 0u);
  (*second.mutable_config()->mutable_fields())["batch_size"].set_number_value(256);
  EXPECT_NE(TrainerIdentity(first), TrainerIdentity(second));
  second = first;
  second.set_seed(1);
  EXPECT_NE(TrainerIdentity(first), TrainerIdentity(second));
}

}  // namespace
}  // namespace hippo::stage_tree
