#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>

#include "search_algos/point_sampler.h"
#include "search_algos/search_algorithm.h"
#include "search_algos/spec_checks.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;

stage_tree::SearchSpace Space() {
  v1::SearchSpace proto;
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  lr->mutable_float_()->set_low(1e-4);
  lr->mutable_float_()->set_high(1e-1);
  lr->mutable_float_()->set_log(true);
  v1::Parameter* depth = proto.add_parameters();
  depth->set_name("depth");
  depth->mutable_int_()->set_low(2);
  depth->mutable_int_()->set_high(6);
  v1::Parameter* optimizer = proto.add_parameters();
  optimizer->set_name("optimizer");
  optimizer->mutable_categorical()->add_values()->set_string_value("sgd");
  optimizer->mutable_categorical()->add_values()->set_string_value("adam");
  return *stage_tree::SearchSpaceFromProto(proto);
}

AlgorithmContext Context(const stage_tree::SearchSpace& space, int64_t max_trials) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = 50;
  context.max_trials = max_trials;
  context.seed = 7;
  return context;
}

TEST(GridRandomTest, GridProposesEveryPointOnceThenFinishes) {
  v1::SearchSpace proto;
  v1::Parameter* a = proto.add_parameters();
  a->set_name("a");
  a->mutable_int_()->set_low(1);
  a->mutable_int_()->set_high(3);
  v1::Parameter* b = proto.add_parameters();
  b->set_name("b");
  b->mutable_categorical()->add_values()->set_number_value(0.5);
  b->mutable_categorical()->add_values()->set_number_value(0.25);
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(proto);
  auto grid = AlgorithmRegistry::Global().Create("grid", Context(space, 0));
  ASSERT_TRUE(grid.ok()) << grid.status();
  std::vector<Request> first = (*grid)->Suggest(4);
  EXPECT_EQ(first.size(), 4u);
  EXPECT_FALSE((*grid)->Finished());
  std::vector<Request> rest = (*grid)->Suggest(100);
  EXPECT_EQ(rest.size(), 2u);
  EXPECT_TRUE((*grid)->Finished());
  std::set<stage_tree::Point> points;
  for (const auto& request : first) points.insert(request.point);
  for (const auto& request : rest) points.insert(request.point);
  EXPECT_EQ(points.size(), 6u);
  for (const auto& request : first) EXPECT_EQ(request.target, 50);
}

// The grid is walked, not held: its points are GridPoints' (the reference enumeration), in its
// order, with one_of alternatives whose dimensions are inactive; also after a restore.
TEST(GridRandomTest, GridWalksThePointsOfGridPointsInTheirOrderAlsoAfterARestore) {
  absl::StatusOr<v1::StudySpec> spec =
      LoadStudySpecFile(std::string(HIPPO_SOURCE_DIR) + "/examples/schedules.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(spec->search_space());
  absl::StatusOr<std::vector<stage_tree::Point>> expected = stage_tree::GridPoints(space);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_GT(expected->size(), 8u);
  auto grid = AlgorithmRegistry::Global().Create("grid", Context(space, 0));
  ASSERT_TRUE(grid.ok()) << grid.status();
  std::vector<stage_tree::Point> walked;
  for (const Request& request : (*grid)->Suggest(5)) walked.push_back(request.point);
  const std::string saved = (*grid)->SaveState();
  for (const Request& request : (*grid)->Suggest(1'000'000)) walked.push_back(request.point);
  EXPECT_TRUE((*grid)->Finished());
  EXPECT_EQ(walked, *expected);
  // A restore goes back to an earlier index.
  ASSERT_TRUE((*grid)->LoadState(saved).ok());
  std::vector<Request> again = (*grid)->Suggest(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].point, (*expected)[5]);
}

TEST(GridRandomTest, GridRefusesContinuousSpace) {
  const stage_tree::SearchSpace space = Space();
  EXPECT_FALSE(AlgorithmRegistry::Global().Create("grid", Context(space, 0)).ok());
}

TEST(GridRandomTest, RandomIsDeterministicStaysInBoundsAndResumesFromSavedState) {
  const stage_tree::SearchSpace space = Space();
  auto first = AlgorithmRegistry::Global().Create("random", Context(space, 20));
  auto second = AlgorithmRegistry::Global().Create("random", Context(space, 20));
  ASSERT_TRUE(first.ok() && second.ok());
  std::vector<Request> a = (*first)->Suggest(5);
  std::vector<Request> b = (*second)->Suggest(5);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].point, b[i].point);
  // Restore a third from the first's state: it continues with the same points.
  auto third = AlgorithmRegistry::Global().Create("random", Context(space, 20));
  ASSERT_TRUE((*third)->LoadState((*first)->SaveState()).ok());
  std::vector<Request> continued = (*first)->Suggest(15);
  std::vector<Request> resumed = (*third)->Suggest(15);
  ASSERT_EQ(continued.size(), 15u);
  for (size_t i = 0; i < continued.size(); ++i) EXPECT_EQ(continued[i].point, resumed[i].point);
  EXPECT_TRUE((*first)->Finished());
  for (const Request& request : continued) {
    const double lr = std::get<double>(request.point[0]);
    const double depth = std::get<double>(request.point[1]);
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-1);
    EXPECT_EQ(depth, std::round(depth));
    EXPECT_GE(depth, 2);
    EXPECT_LE(depth, 6);
  }
  EXPECT_FALSE((*third)->LoadState("garbage").ok());
}

TEST(GridRandomTest, LogUniformSamplingCoversDecadesEvenly) {
  const stage_tree::SearchSpace space = Space();
  int below_1e3 = 0;
  constexpr int kDraws = 3000;
  for (int i = 0; i < kDraws; ++i) {
    below_1e3 += std::get<double>(SamplePoint(space, 1, i)[0]) < 1e-3;
  }
  // One decade of three: about a third of the draws.
  EXPECT_NEAR(static_cast<double>(below_1e3) / kDraws, 1.0 / 3, 0.05);
}

// SeededGenerator computes std::seed_seq's words itself (faster); the draws must not change.
TEST(GridRandomTest, SeededGeneratorDrawsWhatStdSeedSeqSeedingDraws) {
  const uint64_t values[] = {
      0, 1, 7, 12345, 0xffffffffull, 0x100000000ull, 0xdeadbeefcafef00dull, ~0ull};
  for (uint64_t seed : values) {
    for (uint64_t stream : {0ull, 1ull, 3ull}) {
      for (uint64_t index : values) {
        std::seed_seq reference_sequence{
            static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
            static_cast<uint32_t>(stream), static_cast<uint32_t>(index),
            static_cast<uint32_t>(index >> 32)};
        std::mt19937_64 reference(reference_sequence);
        std::mt19937_64 generator = SeededGenerator(seed, stream, index);
        for (int draw = 0; draw < 700; ++draw) {  // past the first 312-word refill
          ASSERT_EQ(generator(), reference())
              << "seed " << seed << " stream " << stream << " index " << index << " draw " << draw;
        }
      }
    }
  }
}

TEST(GridRandomTest, UnknownAlgorithmNamesTheKnownOnes) {
  const stage_tree::SearchSpace space = Space();
  auto unknown = AlgorithmRegistry::Global().Create("bayesopt", Context(space, 0));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("grid"), std::string::npos);
}

}  // namespace
}  // namespace hippo::search_algos
