// The full spec checks (search_algos/spec_checks.h): each algorithm refuses its own bad config
// with the field path, at the line the spec writes it; the registry's names are the ones a spec
// may use; a registered algorithm's check is called; a spec the checks accept is one the
// algorithm's factory accepts too.
#include "search_algos/spec_checks.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stage_tree/search_space.h"

namespace hippo::search_algos {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Line 7 holds the float parameter, line 11 the budget, line 12 the algorithm.
std::string Spec(const std::string& algorithm,
                 const std::string& budget = "{max_steps: 100, max_trials: 40}") {
  return R"yaml(name: checks
objective: {metric: loss, direction: MINIMIZE}
trainer: {kind: sim}
search_space:
  parameters:
    - name: lr
      float: {low: 0.001, high: 0.1, log: true}
    - name: width
      categorical: {values: [64, 128]}
      structural: true
budget: )yaml" +
         budget + "\nalgorithm: " + algorithm + "\n";
}

struct BadConfig {
  std::string name;
  std::string algorithm;
  std::string budget;
  std::string expected;  // the message after "c.yaml:"
};

void PrintTo(const BadConfig& bad, std::ostream* out) { *out << bad.name; }

const std::string kBudget = "{max_steps: 100, max_trials: 40}";

std::vector<BadConfig> BadConfigs() {
  return {
      {"asha_min_resource", "{name: asha, asha: {min_resource: 200}}", kBudget,
       "12:46: algorithm.asha.min_resource: must not exceed budget.max_steps (got 200 > 100)"},
      {"asha_sampler", "{name: asha, asha: {min_resource: 5, sampler: bayes}}", kBudget,
       "12:58: algorithm.asha.sampler: unknown sampler \"bayes\"; known: random, tpe"},
      {"asha_tpe_block_without_tpe_sampler", "{name: asha, asha: {min_resource: 5}, tpe: {}}",
       kBudget,
       "12:55: algorithm.tpe: configures the TPE sampler, but algorithm.asha.sampler is not tpe"},
      {"asha_tpe_sampler_gamma",
       "{name: asha, asha: {min_resource: 5, sampler: tpe}, tpe: {gamma: 1.5}}", kBudget,
       "12:77: algorithm.tpe.gamma: must be below 1 (got 1.5)"},
      {"hyperband_reduction_factor", "{name: hyperband, hyperband: {reduction_factor: 1}}", kBudget,
       "12:60: algorithm.hyperband.reduction_factor: must be > 1 (got 1)"},
      {"hyperband_max_trials", "{name: hyperband}", "{max_steps: 100, max_trials: 2}",
       "11:38: budget.max_trials: hyperband's smallest bracket starts "},
      {"tpe_gamma", "{name: tpe, tpe: {gamma: 1}}", kBudget,
       "12:37: algorithm.tpe.gamma: must be below 1 (got 1)"},
      {"median_sampler", "{name: median, median: {sampler: tpe}}", kBudget,
       "12:45: algorithm.median.sampler: unknown sampler \"tpe\"; known: random"},
      {"pbt_structural",
       "{name: pbt, pbt: {population_size: 4, perturbation_interval: 10, "
       "perturbed_parameters: [width]}}",
       kBudget, "12:100: algorithm.pbt.perturbed_parameters[0]: \"width\" is structural"},
      {"pbt_interval", "{name: pbt, pbt: {population_size: 4, perturbation_interval: 100}}",
       kBudget, "12:73: algorithm.pbt.perturbation_interval: must be between 1 and"},
      {"pbt_population_over_max_trials",
       "{name: pbt, pbt: {population_size: 50, perturbation_interval: 10}}", kBudget,
       "12:47: algorithm.pbt.population_size: must not exceed budget.max_trials"},
      {"evolution_sample_size",
       "{name: evolution, evolution: {population_size: 8, children: 16, sample_size: 9}}", kBudget,
       "12:89: algorithm.evolution.sample_size: must not exceed population_size"},
      {"evolution_population_over_max_trials",
       "{name: evolution, evolution: {population_size: 50, children: 16}}", kBudget,
       "12:59: algorithm.evolution.population_size: must not exceed budget.max_trials"},
      {"evolution_asha_max_resource",
       "{name: evolution, evolution: {population_size: 8, children: 16, "
       "asha: {min_resource: 5, max_resource: 50}}}",
       kBudget, "12:114: algorithm.evolution.asha.max_resource: children train to "},
      {"grid_float", "{name: grid}", kBudget,
       "7:14: search_space.parameters[0].float: grid search needs a finite domain"},
      {"external_tpe_gamma", "{name: external, tpe: {gamma: 2}}", kBudget,
       "12:42: algorithm.tpe.gamma: must be below 1 (got 2)"},
      {"other_algorithms_block", "{name: random, asha: {min_resource: 5}}", kBudget,
       "12:33: algorithm.asha: configures asha, but algorithm.name is \"random\"; remove it or "
       "set name: asha"},
  };
}

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, TheAlgorithmsOwnCheckNamesThePathAtItsLine) {
  const absl::StatusOr<hippo::v1::StudySpec> spec =
      ParseStudySpec(Spec(GetParam().algorithm, GetParam().budget), "c.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()), StartsWith("c.yaml:" + GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, BadConfigTest, ::testing::ValuesIn(BadConfigs()),
                         [](const auto& info) { return info.param.name; });

class GoodConfigTest : public ::testing::TestWithParam<std::string> {};

// The checks and the factory agree: what `hippo validate` accepts, CreateStudy can start.
TEST_P(GoodConfigTest, IsAcceptedAndTheFactoryAcceptsItToo) {
  const absl::StatusOr<hippo::v1::StudySpec> spec = ParseStudySpec(Spec(GetParam()), "g.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(ValidateStudySpec(*spec).ok());
  const absl::StatusOr<stage_tree::SearchSpace> space =
      stage_tree::SearchSpaceFromProto(spec->search_space());
  ASSERT_TRUE(space.ok()) << space.status();
  AlgorithmContext context;
  context.space = &*space;
  context.max_steps = spec->budget().max_steps();
  context.max_trials = spec->budget().max_trials();
  context.config = spec->algorithm();
  const auto algorithm = AlgorithmRegistry::Global().Create(spec->algorithm().name(), context);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
}

INSTANTIATE_TEST_SUITE_P(
    Algorithms, GoodConfigTest,
    ::testing::Values("{name: random}", "{name: tpe, tpe: {gamma: 0.3}}",
                      "{name: asha, asha: {min_resource: 5, sampler: tpe}, tpe: {gamma: 0.3}}",
                      "{name: hyperband, hyperband: {max_resource: 100, reduction_factor: 3}}",
                      "{name: median, median: {sampler: random}}",
                      "{name: pbt, pbt: {population_size: 4, perturbation_interval: 10, "
                      "perturbed_parameters: [lr]}}",
                      "{name: evolution, evolution: {population_size: 8, children: 16, "
                      "asha: {min_resource: 5}}}",
                      "{name: external, tpe: {gamma: 0.3}}"));

TEST(SpecChecks, AlgorithmNamesComeFromTheRegistry) {
  const absl::StatusOr<hippo::v1::StudySpec> spec =
      ParseStudySpec(Spec("{name: bayesopt}"), "n.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()),
              StartsWith("n.yaml:12:19: algorithm.name: unknown algorithm \"bayesopt\"; known: "
                         "grid, random, tpe, asha, hyperband, median, pbt, evolution, morphism, "
                         "external"));
}

TEST(SpecChecks, AClientLeavesUnknownNamesToTheServerButChecksTheOnesItKnows) {
  EXPECT_TRUE(
      ParseStudySpec(Spec("{name: bayesopt}"), "n.yaml", UnknownAlgorithms::kLeaveToServer).ok());
  const absl::StatusOr<hippo::v1::StudySpec> asha = ParseStudySpec(
      Spec("{name: asha, asha: {min_resource: 200}}"), "n.yaml", UnknownAlgorithms::kLeaveToServer);
  ASSERT_FALSE(asha.ok());
  EXPECT_THAT(std::string(asha.status().message()), HasSubstr("algorithm.asha.min_resource"));
}

TEST(SpecChecks, ARegisteredAlgorithmsCheckIsCalledWithItsConfig) {
  int calls = 0;
  AlgorithmDefinition definition;
  definition.create =
      [](const AlgorithmContext&) -> absl::StatusOr<std::unique_ptr<SearchAlgorithm>> {
    return absl::UnimplementedError("not started in this test");
  };
  definition.check_config = [&calls](const hippo::v1::Algorithm& config,
                                     const hippo::v1::StudySpec& spec) -> proto::Issue {
    ++calls;
    EXPECT_EQ(&config, &spec.algorithm());
    if (config.plugin_config().fields().contains("depth")) {
      return proto::Problem("algorithm.plugin_config.depth", "not supported; remove it");
    }
    return std::nullopt;
  };
  definition.other_config_blocks = {"asha"};
  ASSERT_TRUE(AlgorithmRegistry::Global().Register("checked_for_test", definition).ok());

  const absl::StatusOr<hippo::v1::StudySpec> refused =
      ParseStudySpec(Spec("{name: checked_for_test, plugin_config: {depth: 3}}"), "p.yaml");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              StartsWith("p.yaml:12:60: algorithm.plugin_config.depth: not supported; remove it"));
  EXPECT_EQ(calls, 1);
  // It reads algorithm.asha, as its definition says; algorithm.tpe is another's block.
  EXPECT_TRUE(
      ParseStudySpec(Spec("{name: checked_for_test, asha: {min_resource: 5}}"), "p.yaml").ok());
  EXPECT_EQ(calls, 2);
  const absl::StatusOr<hippo::v1::StudySpec> foreign =
      ParseStudySpec(Spec("{name: checked_for_test, tpe: {gamma: 0.3}}"), "p.yaml");
  ASSERT_FALSE(foreign.ok());
  EXPECT_THAT(std::string(foreign.status().message()),
              HasSubstr("algorithm.tpe: configures tpe, but algorithm.name is "
                        "\"checked_for_test\""));
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace hippo::search_algos
