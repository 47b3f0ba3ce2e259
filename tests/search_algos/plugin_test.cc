// Loading search algorithms from a shared library: the example plugin registers "halton", and
// its own check of algorithm.plugin_config runs with the spec checks.
#include "search_algos/plugin.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "search_algos/spec_checks.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;

TEST(PluginTest, ExamplePluginRegistersAnAlgorithmThatProposesDistinctPointsInRange) {
  ASSERT_TRUE(LoadPlugin(HIPPO_EXAMPLE_PLUGIN, AlgorithmRegistry::Global()).ok());
  v1::SearchSpace proto;
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  lr->mutable_float_()->set_low(1e-4);
  lr->mutable_float_()->set_high(1e-1);
  lr->mutable_float_()->set_log(true);
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(proto);
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = 10;
  context.max_trials = 8;
  auto halton = AlgorithmRegistry::Global().Create("halton", context);
  ASSERT_TRUE(halton.ok()) << halton.status();
  std::vector<Request> requests = (*halton)->Suggest(100);
  ASSERT_EQ(requests.size(), 8u);
  EXPECT_TRUE((*halton)->Finished());
  std::set<double> values;
  for (const Request& request : requests) {
    const double value = std::get<double>(request.point[0]);
    EXPECT_GE(value, 1e-4);
    EXPECT_LE(value, 1e-1);
    values.insert(value);
  }
  EXPECT_EQ(values.size(), 8u);
  // Loading it twice is refused: the name is taken.
  EXPECT_EQ(LoadPlugin(HIPPO_EXAMPLE_PLUGIN, AlgorithmRegistry::Global()).code(),
            absl::StatusCode::kAlreadyExists);
}

// ctest runs each test in a process of its own; the binary run whole runs them in one.
void LoadExamplePluginOnce() {
  const std::vector<std::string> names = AlgorithmRegistry::Global().Names();
  if (std::find(names.begin(), names.end(), "halton") != names.end()) return;
  ASSERT_TRUE(LoadPlugin(HIPPO_EXAMPLE_PLUGIN, AlgorithmRegistry::Global()).ok());
}

constexpr char kHaltonSpec[] = R"yaml(name: halton
objective: {metric: loss, direction: MINIMIZE}
trainer: {kind: sim}
search_space:
  parameters:
    - {name: lr, float: {low: 0.0001, high: 0.1}}
budget: {max_steps: 10, max_trials: 4}
algorithm: {name: halton, plugin_config: {skip: SKIP}}
)yaml";

std::string HaltonSpec(const std::string& skip) {
  std::string spec = kHaltonSpec;
  spec.replace(spec.find("SKIP"), 4, skip);
  return spec;
}

TEST(PluginTest, ThePluginsOwnCheckRefusesItsBadConfigAtItsLine) {
  LoadExamplePluginOnce();
  const absl::StatusOr<v1::StudySpec> zero = ParseStudySpec(HaltonSpec("0"), "h.yaml");
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(zero.status().message().substr(0, 51),
            "h.yaml:8:49: algorithm.plugin_config.skip: must be ");
  const absl::StatusOr<v1::StudySpec> fraction = ParseStudySpec(HaltonSpec("1.5"), "h.yaml");
  EXPECT_FALSE(fraction.ok());
  std::string other = HaltonSpec("2");
  other.replace(other.find("skip"), 4, "skipp");
  const absl::Status unknown_key = ParseStudySpec(other, "h.yaml").status();
  EXPECT_NE(unknown_key.message().find(
                "algorithm.plugin_config.skipp: unknown field; allowed here: skip"),
            std::string::npos)
      << unknown_key;
  // The server checks a spec that arrives over gRPC the same way.
  v1::StudySpec spec = *ParseStudySpec(HaltonSpec("2"), "h.yaml");
  (*spec.mutable_algorithm()->mutable_plugin_config()->mutable_fields())["skip"].set_number_value(
      -1);
  EXPECT_EQ(ValidateStudySpec(spec).message().substr(0, 42),
            "algorithm.plugin_config.skip: must be a wh");
}

TEST(PluginTest, TheConfigThePluginAcceptsIsTheOneItReads) {
  LoadExamplePluginOnce();
  auto first_points = [](const std::string& skip) {
    const absl::StatusOr<v1::StudySpec> spec = ParseStudySpec(HaltonSpec(skip), "h.yaml");
    EXPECT_TRUE(spec.ok()) << spec.status();
    const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(spec->search_space());
    AlgorithmContext context;
    context.space = &space;
    context.max_steps = spec->budget().max_steps();
    context.max_trials = spec->budget().max_trials();
    context.config = spec->algorithm();
    auto halton = AlgorithmRegistry::Global().Create("halton", context);
    EXPECT_TRUE(halton.ok()) << halton.status();
    std::vector<double> values;
    for (const Request& request : (*halton)->Suggest(100)) {
      values.push_back(std::get<double>(request.point[0]));
    }
    return values;
  };
  const std::vector<double> from_one = first_points("1");
  const std::vector<double> from_two = first_points("2");
  ASSERT_EQ(from_one.size(), 4u);
  ASSERT_EQ(from_two.size(), 4u);
  // Skipping one more point shifts the sequence by one.
  EXPECT_EQ(from_two[0], from_one[1]);
  EXPECT_EQ(from_two[2], from_one[3]);
  EXPECT_NE(from_two[0], from_one[0]);
}

TEST(PluginTest, MissingOrForeignLibrariesAreRefusedNamingThePath) {
  const absl::Status missing =
      LoadPlugin("/nonexistent/libnothing.so", AlgorithmRegistry::Global());
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("/nonexistent/libnothing.so"), std::string::npos);
  const std::string text = ::testing::TempDir() + "/not-a-library.so";
  std::ofstream(text) << "hello";
  EXPECT_EQ(LoadPlugin(text, AlgorithmRegistry::Global()).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace hippo::search_algos
