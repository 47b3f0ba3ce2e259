// Samplers over a space with conditional parameters (Parameter.when): random points, TPE's
// suggestions and evolution's children use a conditional dimension only where its condition
// holds and leave it at its placeholder elsewhere (so that the same trial is the same point);
// evolution mutates only the dimensions the parent uses, and a mutation of the depth brings in
// (drawn afresh) or drops the per-layer widths; TPE models a conditional dimension on the
// trials that had it.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "search_algos/evolution.h"
#include "search_algos/point_sampler.h"
#include "search_algos/tpe.h"
#include "tests/support/fake_coordinator.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;

using stage_tree::Point;

// layers 1-4; channels_i (8, 16, 24, 32) for each layer i that exists; kernel 3 or 5; lr.
constexpr char kNetworkSpace[] = R"({"parameters": [
  {"name": "layers", "int": {"low": 1, "high": 4}, "structural": true},
  {"name": "channels_0", "int": {"low": 8, "high": 32, "step": 8}, "structural": true},
  {"name": "channels_1", "int": {"low": 8, "high": 32, "step": 8}, "structural": true,
   "when": {"param": "layers", "atLeast": 2}},
  {"name": "channels_2", "int": {"low": 8, "high": 32, "step": 8}, "structural": true,
   "when": {"param": "layers", "atLeast": 3}},
  {"name": "channels_3", "int": {"low": 8, "high": 32, "step": 8}, "structural": true,
   "when": {"param": "layers", "atLeast": 4}},
  {"name": "kernel", "categorical": {"values": [3, 5]}, "structural": true},
  {"name": "lr", "float": {"low": 0.01, "high": 0.1, "log": true}}]})";
constexpr size_t kLayers = 0;
constexpr size_t kFirstChannels = 1;

stage_tree::SearchSpace NetworkSpace() {
  v1::SearchSpace proto;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(kNetworkSpace, &proto).ok());
  absl::StatusOr<stage_tree::SearchSpace> space = stage_tree::SearchSpaceFromProto(proto);
  EXPECT_TRUE(space.ok()) << space.status();
  return space.value_or(stage_tree::SearchSpace{});
}

int Layers(const Point& point) { return static_cast<int>(std::get<double>(point[kLayers])); }

// Every dimension a point does not use holds its placeholder; every one it uses is in range.
void ExpectWellFormed(const stage_tree::SearchSpace& space, const Point& point) {
  ASSERT_EQ(point.size(), space.dimensions.size());
  for (size_t d = kFirstChannels; d < kFirstChannels + 4; ++d) {
    const double channels = std::get<double>(point[d]);
    if (d - kFirstChannels < static_cast<size_t>(Layers(point))) {
      EXPECT_TRUE(stage_tree::IsActive(space.dimensions, point, d));
      EXPECT_TRUE(channels >= 8 && channels <= 32 && static_cast<int>(channels) % 8 == 0)
          << channels;
    } else {
      EXPECT_FALSE(stage_tree::IsActive(space.dimensions, point, d));
      EXPECT_EQ(channels, 8.0) << space.dimensions[d].name << " is unused: its placeholder";
    }
  }
}

TEST(ConditionalSamplingTest, RandomPointsDrawConditionalDimensionsOnlyWhereTheyExist) {
  const stage_tree::SearchSpace space = NetworkSpace();
  std::map<int, std::set<double>> last_layer_channels;  // layers -> channels of its last layer
  for (uint64_t index = 0; index < 400; ++index) {
    const Point point = SamplePoint(space, 3, index);
    ExpectWellFormed(space, point);
    const int layers = Layers(point);
    last_layer_channels[layers].insert(std::get<double>(point[kFirstChannels + layers - 1]));
  }
  ASSERT_EQ(last_layer_channels.size(), 4u) << "every depth is drawn";
  for (const auto& [layers, channels] : last_layer_channels) {
    EXPECT_EQ(channels.size(), 4u) << "the last of " << layers << " layers takes every width";
  }
}

TEST(ConditionalSamplingTest, EvolutionMutatesUsedDimensionsAndADepthChangeBringsInOrDropsWidths) {
  const stage_tree::SearchSpace space = NetworkSpace();
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = 4;
  context.seed = 11;
  context.config.set_name("evolution");
  context.config.mutable_evolution()->set_population_size(8);
  context.config.mutable_evolution()->set_sample_size(3);
  context.config.mutable_evolution()->set_children(120);
  // Wider layers and kernel 5 score higher; the depth itself does not, so the population keeps
  // every depth and depth mutations go both ways.
  test_support::StudyRunner runner(context, [](const Point& point, Step step) {
    double score = std::get<double>(point[5]) == 5 ? 1 : 0;
    for (int i = 0; i < Layers(point); ++i) {
      score += std::get<double>(point[kFirstChannels + i]) / 32 / Layers(point);
    }
    return score * static_cast<double>(step + 1);
  });
  runner.Run(4);
  auto& evolution = dynamic_cast<RegularizedEvolution&>(runner.algorithm());
  int deeper = 0, shallower = 0, one_change = 0;
  for (TrialNumber child = 8; child < static_cast<TrialNumber>(runner.trials().size()); ++child) {
    const Point& point = runner.trials()[child].point;
    ExpectWellFormed(space, point);
    const RegularizedEvolution::Lineage* lineage = evolution.LineageOf(child);
    ASSERT_NE(lineage, nullptr);
    const Point& parent = runner.trials()[lineage->parent].point;
    if (Layers(point) == Layers(parent)) {
      // One used dimension changed, none that the parent did not use.
      int changed = 0;
      for (size_t d = 0; d < point.size(); ++d) {
        if (point[d] != parent[d]) {
          EXPECT_TRUE(stage_tree::IsActive(space.dimensions, parent, d))
              << space.dimensions[d].name << " is unused by the parent but changed";
          ++changed;
        }
      }
      EXPECT_LE(changed, 1);
      one_change += changed == 1;
      continue;
    }
    // The depth changed: everything else the parent's layers had is kept; the layers it adds
    // got widths of their own (checked in range above), those it drops are gone.
    (Layers(point) > Layers(parent) ? deeper : shallower) += 1;
    const int kept = std::min(Layers(point), Layers(parent));
    for (int i = 0; i < kept; ++i) {
      EXPECT_EQ(point[kFirstChannels + i], parent[kFirstChannels + i]) << "channels_" << i;
    }
    EXPECT_EQ(point[5], parent[5]);
    EXPECT_EQ(point[6], parent[6]);
  }
  EXPECT_GT(one_change, 20);
  EXPECT_GT(deeper, 3);
  EXPECT_GT(shallower, 0);
}

TEST(ConditionalSamplingTest, TpeModelsAConditionalDimensionOnTheTrialsThatHadIt) {
  const stage_tree::SearchSpace space = NetworkSpace();
  TpeParameters parameters;
  parameters.n_startup_trials = 10;
  TpeSampler sampler(space, 7, /*minimize=*/false, parameters);
  // Good results: 4 layers whose last layer has 32 channels. Results of shallower networks
  // carry whatever channels_3 the point was drawn with before its reset; none of it may count.
  int matches_late = 0;
  constexpr int kTrials = 80;
  for (int trial = 0; trial < kTrials; ++trial) {
    const Point point = sampler.Sample(static_cast<uint64_t>(trial));
    ExpectWellFormed(space, point);
    const bool deep = Layers(point) == 4;
    const bool wide_last = std::get<double>(point[kFirstChannels + 3]) == 32;
    sampler.Observe(trial, point, (deep ? 1.0 : 0.0) + (deep && wide_last ? 1.0 : 0.0));
    if (trial >= kTrials - 30) matches_late += deep && wide_last;
  }
  // At random, 1 in 16 points is deep with a wide last layer (about 2 of 30).
  EXPECT_GE(matches_late, 6);
}

}  // namespace
}  // namespace hippo::search_algos
