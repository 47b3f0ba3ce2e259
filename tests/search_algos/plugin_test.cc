// Loading search algorithms from a shared library: the example plugin registers "halton".
#include "search_algos/plugin.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

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

TEST(PluginTest, MissingOrForeignLibrariesAreRefusedNamingThePath) {
  const absl::Status missing = LoadPlugin("/nonexistent/libnothing.so", AlgorithmRegistry::Global());
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("/nonexistent/libnothing.so"), std::string::npos);
  const std::string text = ::testing::TempDir() + "/not-a-library.so";
  std::ofstream(text) << "hello";
  EXPECT_EQ(LoadPlugin(text, AlgorithmRegistry::Global()).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace hippo::search_algos
