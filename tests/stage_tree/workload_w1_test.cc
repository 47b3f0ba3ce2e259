// W1 of docs/workloads.md: 96 trials of the schedule space S, trial_steps 11 520, unique_steps 7
// 438.
#include <gtest/gtest.h>

#include "proto/spec_loader.h"
#include "stage_tree/search_space.h"
#include "stage_tree/stage_tree.h"

namespace hippo::stage_tree {
namespace {

TEST(WorkloadW1Test, ScheduleSpaceBuiltDirectlyHas7438UniqueSteps) {
  StageTree tree("w1", {"lr", "weight_decay"});
  int trials = 0;
  for (double initial : {0.1, 0.05, 0.02}) {
    for (const std::vector<Step>& milestones :
         std::vector<std::vector<Step>>{{60, 90}, {80, 100}, {40, 80, 100}, {30, 60, 90}}) {
      for (double gamma : {0.1, 0.2}) {
        for (Step warmup : {0, 5}) {
          for (double weight_decay : {5e-4, 1e-4}) {
            TrialSequences sequences = {
                {"lr", *StepDecay(initial, gamma, milestones, warmup, 120)},
                {"weight_decay", Sequence::ConstantOver(weight_decay, 120)}};
            ASSERT_TRUE(tree.Insert(sequences, 120).ok());
            ++trials;
          }
        }
      }
    }
  }
  EXPECT_EQ(trials, 96);
  EXPECT_EQ(tree.counts().trial_steps, 11520);
  EXPECT_EQ(tree.counts().unique_steps, 7438);
}

TEST(WorkloadW1Test, SpecFileGivesTheSameFigures) {
  // The stage tree needs a spec that passes the generic checks; the algorithm is not this
  // layer's concern (search_algos checks it), so any name is accepted here.
  hippo::proto::SpecRules any_algorithm;
  any_algorithm.accept_unknown_algorithms = true;
  absl::StatusOr<hippo::v1::StudySpec> spec = hippo::proto::LoadStudySpecFile(
      std::string(HIPPO_SOURCE_DIR) + "/examples/workloads/w1.yaml", any_algorithm);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(spec->search_space());
  ASSERT_TRUE(space.ok()) << space.status();
  absl::StatusOr<std::vector<Point>> points = GridPoints(*space);
  ASSERT_TRUE(points.ok());
  ASSERT_EQ(points->size(), 96u);
  std::unique_ptr<StageTree> tree;
  for (const Point& point : *points) {
    absl::StatusOr<TrialPlan> plan = BuildTrial(*space, point, spec->budget().max_steps());
    ASSERT_TRUE(plan.ok()) << plan.status();
    if (!tree) {
      std::vector<std::string> names;
      for (const auto& [name, sequence] : plan->sequences) names.push_back(name);
      tree = std::make_unique<StageTree>("w1", names);
    }
    ASSERT_TRUE(tree->Insert(plan->sequences, spec->budget().max_steps()).ok());
  }
  EXPECT_EQ(tree->counts().trial_steps, 11520);
  EXPECT_EQ(tree->counts().unique_steps, 7438);
  EXPECT_EQ(tree->parameter_names(), (std::vector<std::string>{"lr", "momentum", "weight_decay"}));
}

}  // namespace
}  // namespace hippo::stage_tree
