// The example specs of examples/workloads express W1–W6 of docs/workloads.md, and pass every
// check (the generic ones and their algorithm's own, as `hippo validate` runs them).
#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "search_algos/spec_checks.h"

namespace hippo::proto {
namespace {

using search_algos::LoadStudySpecFile;
using search_algos::ValidateStudySpec;

using google::protobuf::util::MessageDifferencer;
using hippo::v1::StudySpec;

StudySpec LoadWorkload(const std::string& file) {
  const std::string path = std::string(HIPPO_SOURCE_DIR) + "/examples/workloads/" + file;
  absl::StatusOr<StudySpec> spec = LoadStudySpecFile(path);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : StudySpec();
}

class WorkloadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WorkloadTest, ParsesAndValidates) {
  const StudySpec spec = LoadWorkload(GetParam());
  EXPECT_TRUE(ValidateStudySpec(spec).ok()) << ValidateStudySpec(spec);
  EXPECT_EQ(spec.trainer().kind(), "sim");
  EXPECT_EQ(spec.budget().max_steps(), 120);
}

INSTANTIATE_TEST_SUITE_P(Examples, WorkloadTest,
                         ::testing::Values("w1.yaml", "w2.yaml", "w3.yaml", "w4.yaml",
                                           "w5-grid.yaml", "w5-asha-seed1.yaml",
                                           "w5-asha-seed2.yaml", "w6.yaml"),
                         [](const auto& info) {
                           std::string name = info.param.substr(0, info.param.find('.'));
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

std::int64_t DomainSize(const hippo::v1::NumberDomain& domain) {
  return domain.has_choices() ? domain.choices().values_size() : 1;
}

// The number of grid points of a finite space (ranges count as one point here).
std::int64_t GridSize(const hippo::v1::SearchSpace& space) {
  std::int64_t size = 1;
  for (const hippo::v1::Parameter& parameter : space.parameters()) {
    if (parameter.has_categorical()) {
      size *= parameter.categorical().values_size();
    }
    if (parameter.has_int_()) {
      const auto& range = parameter.int_();
      size *= (range.high() - range.low()) / std::max<std::int64_t>(range.step(), 1) + 1;
    }
    if (parameter.has_sequence() && parameter.sequence().has_step_decay()) {
      const auto& decay = parameter.sequence().step_decay();
      size *= DomainSize(decay.initial()) * DomainSize(decay.gamma()) *
              decay.milestones().choices_size() * DomainSize(parameter.sequence().warmup_steps());
    }
  }
  return size;
}

TEST(Workloads, W1IsAGridOverThe96ConfigurationsOfS) {
  const StudySpec w1 = LoadWorkload("w1.yaml");
  EXPECT_EQ(w1.algorithm().name(), "grid");
  EXPECT_EQ(GridSize(w1.search_space()), 96);
}

TEST(Workloads, W2IsAshaWith256RandomTrialsFrom5To120ByThrees) {
  const StudySpec w2 = LoadWorkload("w2.yaml");
  EXPECT_EQ(w2.algorithm().name(), "asha");
  EXPECT_EQ(w2.algorithm().asha().sampler(), "random");
  EXPECT_EQ(w2.algorithm().asha().min_resource(), 5);
  EXPECT_EQ(w2.algorithm().asha().max_resource(), 120);
  EXPECT_EQ(w2.algorithm().asha().reduction_factor(), 3);
  EXPECT_EQ(w2.budget().max_trials(), 256);
  EXPECT_TRUE(
      MessageDifferencer::Equals(w2.search_space(), LoadWorkload("w1.yaml").search_space()));
}

TEST(Workloads, W3IsHyperbandWithR120AndEta3OverS) {
  const StudySpec w3 = LoadWorkload("w3.yaml");
  EXPECT_EQ(w3.algorithm().name(), "hyperband");
  EXPECT_EQ(w3.algorithm().hyperband().max_resource(), 120);
  EXPECT_EQ(w3.algorithm().hyperband().reduction_factor(), 3);
  EXPECT_TRUE(
      MessageDifferencer::Equals(w3.search_space(), LoadWorkload("w1.yaml").search_space()));
}

TEST(Workloads, W4IsPbtOf16PerturbingLrAndWeightDecayEvery10Steps) {
  const StudySpec w4 = LoadWorkload("w4.yaml");
  const hippo::v1::PbtConfig& pbt = w4.algorithm().pbt();
  EXPECT_EQ(w4.algorithm().name(), "pbt");
  EXPECT_EQ(pbt.population_size(), 16);
  EXPECT_EQ(pbt.perturbation_interval(), 10);
  EXPECT_THAT(pbt.perturbed_parameters(), ::testing::ElementsAre("lr", "weight_decay"));
  EXPECT_THAT(pbt.perturbation_factors(), ::testing::ElementsAre(0.8, 1.2));
}

TEST(Workloads, W5IsW1AndW2WithSeeds1And2InOneFamily) {
  const StudySpec grid = LoadWorkload("w5-grid.yaml");
  const StudySpec w1 = LoadWorkload("w1.yaml");
  const StudySpec w2 = LoadWorkload("w2.yaml");
  StudySpec expected_grid = w1;
  expected_grid.set_name(grid.name());
  expected_grid.set_family("schedule-s");
  EXPECT_TRUE(MessageDifferencer::Equals(grid, expected_grid));
  for (const std::uint64_t seed : {1, 2}) {
    const StudySpec asha = LoadWorkload("w5-asha-seed" + std::to_string(seed) + ".yaml");
    StudySpec expected = w2;
    expected.set_name(asha.name());
    expected.set_family("schedule-s");
    expected.mutable_algorithm()->set_seed(seed);
    EXPECT_TRUE(MessageDifferencer::Equals(asha, expected)) << seed;
    // Stages are shared only between identical trainer specs.
    EXPECT_TRUE(MessageDifferencer::Equals(asha.trainer(), grid.trainer()));
    EXPECT_NE(asha.name(), grid.name());
  }
}

TEST(Workloads, W6IsEvolutionOverAStructuralCnnSpaceWithAshaChildren) {
  const StudySpec w6 = LoadWorkload("w6.yaml");
  const hippo::v1::EvolutionConfig& evolution = w6.algorithm().evolution();
  EXPECT_EQ(w6.algorithm().name(), "evolution");
  EXPECT_EQ(evolution.children(), 64);
  EXPECT_GT(evolution.asha().min_resource(), 0);
  const auto& parameters = w6.search_space().parameters();
  ASSERT_GE(parameters.size(), 4);
  EXPECT_EQ(parameters[0].name(), "depth");
  EXPECT_EQ(parameters[0].int_().low(), 2);
  EXPECT_EQ(parameters[0].int_().high(), 6);
  EXPECT_EQ(parameters[1].name(), "width");
  EXPECT_EQ(parameters[1].int_().low(), 16);
  EXPECT_EQ(parameters[1].int_().high(), 128);
  EXPECT_EQ(parameters[2].name(), "kernel");
  EXPECT_EQ(parameters[2].categorical().values_size(), 2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(parameters[i].structural()) << parameters[i].name();
  }
  EXPECT_EQ(parameters[3].name(), "lr");
  EXPECT_TRUE(parameters[3].sequence().has_constant());
}

}  // namespace
}  // namespace hippo::proto
