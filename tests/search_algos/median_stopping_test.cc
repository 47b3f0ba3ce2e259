#include "search_algos/median_stopping.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <utility>

#include "search_algos/point_sampler.h"
#include "tests/support/fake_coordinator.h"

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
  return *stage_tree::SearchSpaceFromProto(proto);
}

AlgorithmContext Context(const stage_tree::SearchSpace& space, Step max_steps, int64_t max_trials) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = max_steps;
  context.max_trials = max_trials;
  context.seed = 3;
  context.config.set_name("median");
  return context;
}

std::unique_ptr<SearchAlgorithm> Make(const AlgorithmContext& context) {
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> algorithm =
      AlgorithmRegistry::Global().Create("median", context);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
  return algorithm.ok() ? *std::move(algorithm) : nullptr;
}

// Plays the coordinator (tests/support/fake_coordinator.h): a running trial trains to its
// target in one go and reports objective(trial, target - 1).
using FakeCoordinator = test_support::StudyRunner;

// Hand-made curves (maximised), one value per step 0..3, and the rule worked out by hand with
// n_startup_trials = 2 and n_warmup_steps = 1, the trials run one after another:
//   trial 0: 50 60 70 80  completes (no completed trial yet)     running averages 50 55 60 65
//   trial 1: 30 40 50 60  completes (only one completed trial)   running averages 30 35 40 45
//             medians of trials 0 and 1:                                          40 45 50 55
//   trial 2: 20 30 ..     step 0 is warm-up (20 < 40 is not acted on); step 1: 30 < 45, stopped
//   trial 3: 45 50 50 90  step 1: 50 >= 45; step 2: best 50 == median 50, not strictly worse;
//                         completes                        running averages 45 47.5 48.33 58.75
//             medians of trials 0, 1 and 3:                                      47.5 48.33
//   trial 4: 20 48 10 ..  step 1: 48 >= 47.5; step 2: best 48 < 48.33, stopped
//   trial 5: 20 60 10 90  step 2: its value 10 is below the median, its best 60 is not; completes
const std::vector<std::vector<double>> kCurves = {
    {50, 60, 70, 80}, {30, 40, 50, 60}, {20, 30, 90, 90},
    {45, 50, 50, 90}, {20, 48, 10, 90}, {20, 60, 10, 90},
};

AlgorithmContext HandMadeContext(const stage_tree::SearchSpace& space) {
  AlgorithmContext context = Context(space, /*max_steps=*/4, /*max_trials=*/6);
  context.config.mutable_median()->set_n_startup_trials(2);
  context.config.mutable_median()->set_n_warmup_steps(1);
  return context;
}

double HandMadeObjective(TrialNumber trial, Step step) { return kCurves[trial][step]; }

// (trial, the target it had reached when stopped)
std::vector<std::pair<TrialNumber, Step>> Stops(
    const std::vector<Request>& requests,
    const std::vector<test_support::FakeCoordinator::Trial>& trials) {
  std::vector<std::pair<TrialNumber, Step>> stops;
  for (const Request& request : requests) {
    if (request.kind == Request::Kind::kStop) {
      stops.emplace_back(request.trial, trials.at(request.trial).target);
    }
  }
  return stops;
}

TEST(MedianStoppingTest, StopsExactlyTheHandComputedTrialsAtTheHandComputedSteps) {
  const stage_tree::SearchSpace space = Space();
  FakeCoordinator coordinator(HandMadeContext(space), HandMadeObjective);
  const std::vector<Request> requests = coordinator.Run(/*parallel=*/1);
  // Trial 2 stopped after its step 1 (target 2), trial 4 after its step 2 (target 3).
  const std::vector<std::pair<TrialNumber, Step>> expected = {{2, 2}, {4, 3}};
  EXPECT_EQ(Stops(requests, coordinator.trials()), expected);
  for (TrialNumber trial : {0, 1, 3, 5}) EXPECT_EQ(coordinator.trials()[trial].target, 4) << trial;
}

TEST(MedianStoppingTest, StopsNoTrialBeforeStartupTrialsCompleteNorDuringWarmUp) {
  const stage_tree::SearchSpace space = Space();
  // Trial 1 would be stopped at step 1 with one startup trial; trial 2 would be at step 0
  // without warm-up.
  AlgorithmContext more_startup = HandMadeContext(space);
  more_startup.config.mutable_median()->set_n_startup_trials(3);
  FakeCoordinator waits(more_startup, HandMadeObjective);
  // With three startup trials, trial 2 is judged when only two have completed: it is not
  // stopped, completes, and raises the bar no further trial then falls below.
  EXPECT_TRUE(Stops(waits.Run(1), waits.trials()).empty());

  AlgorithmContext one_startup = HandMadeContext(space);
  one_startup.config.mutable_median()->set_n_startup_trials(1);
  FakeCoordinator eager(one_startup, HandMadeObjective);
  const std::vector<Request> with_one = eager.Run(1);
  ASSERT_FALSE(Stops(with_one, eager.trials()).empty());
  EXPECT_EQ(Stops(with_one, eager.trials()).front(), std::make_pair(TrialNumber{1}, Step{2}));

  AlgorithmContext long_warm_up = HandMadeContext(space);
  long_warm_up.config.mutable_median()->set_n_warmup_steps(3);
  FakeCoordinator warm(long_warm_up, HandMadeObjective);
  EXPECT_TRUE(Stops(warm.Run(1), warm.trials()).empty());

  AlgorithmContext no_warm_up = HandMadeContext(space);
  no_warm_up.config.mutable_median()->clear_n_warmup_steps();
  FakeCoordinator cold(no_warm_up, HandMadeObjective);
  const std::vector<std::pair<TrialNumber, Step>> cold_stops = Stops(cold.Run(1), cold.trials());
  ASSERT_FALSE(cold_stops.empty());
  EXPECT_EQ(cold_stops.front(), std::make_pair(TrialNumber{2}, Step{1}));
}

TEST(MedianStoppingTest, MinimizingFlipsTheComparison) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = HandMadeContext(space);
  context.minimize = true;
  // The same curves negated give the same decisions.
  FakeCoordinator coordinator(context,
                              [](TrialNumber trial, Step step) { return -kCurves[trial][step]; });
  const std::vector<std::pair<TrialNumber, Step>> expected = {{2, 2}, {4, 3}};
  EXPECT_EQ(Stops(coordinator.Run(1), coordinator.trials()), expected);
}

TEST(MedianStoppingTest, TrainsInIntervalsUpToMaxSteps) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, /*max_steps=*/5, /*max_trials=*/3);
  context.config.mutable_median()->set_interval_steps(2);
  std::unique_ptr<SearchAlgorithm> algorithm = Make(context);
  std::vector<Request> first = algorithm->Suggest(10);
  ASSERT_EQ(first.size(), 3u);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].kind, Request::Kind::kNewTrial);
    EXPECT_EQ(first[i].target, 2);
    EXPECT_EQ(first[i].point, SamplePoint(space, context.seed, i));
  }
  // Intermediate metrics at other steps are accepted.
  algorithm->OnMetric(0, 0, 1.0);
  algorithm->OnMetric(0, 1, 2.0);
  algorithm->OnTrialReachedTarget(0, 2);
  std::vector<Request> second = algorithm->Suggest(10);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].kind, Request::Kind::kExtend);
  EXPECT_EQ(second[0].target, 4);
  algorithm->OnMetric(0, 3, 3.0);
  algorithm->OnTrialReachedTarget(0, 4);
  std::vector<Request> third = algorithm->Suggest(10);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].target, 5);
  algorithm->OnTrialReachedTarget(0, 5);
  algorithm->OnTrialEnded(0, TrialOutcome::kCompleted);
  EXPECT_TRUE(algorithm->Suggest(10).empty());
  EXPECT_FALSE(algorithm->Finished());
  algorithm->OnTrialEnded(1, TrialOutcome::kFailed);
  algorithm->OnTrialEnded(2, TrialOutcome::kStopped);
  EXPECT_TRUE(algorithm->Finished());
}

TEST(MedianStoppingTest, DefaultsToTwentyRandomTrials) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 10, /*max_trials=*/0));
  EXPECT_EQ(algorithm->Suggest(1000).size(), 20u);
}

TEST(MedianStoppingTest, RestoredFromSavedStateAtEveryStepItMakesTheSameRequests) {
  const stage_tree::SearchSpace space = Space();
  FakeCoordinator straight(HandMadeContext(space), HandMadeObjective);
  FakeCoordinator restarted(HandMadeContext(space), HandMadeObjective, /*restore=*/true);
  const std::vector<Request> expected = straight.Run(2);
  const std::vector<Request> actual = restarted.Run(2);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].kind, expected[i].kind) << i;
    EXPECT_EQ(actual[i].trial, expected[i].trial) << i;
    EXPECT_EQ(actual[i].target, expected[i].target) << i;
    EXPECT_EQ(actual[i].point, expected[i].point) << i;
  }
  std::unique_ptr<SearchAlgorithm> algorithm = Make(HandMadeContext(space));
  EXPECT_EQ(algorithm->LoadState("garbage").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(algorithm->LoadState("").code(), absl::StatusCode::kDataLoss);
}

TEST(MedianStoppingTest, RefusesBadConfigNamingTheField) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext sampler = Context(space, 10, 5);
  sampler.config.mutable_median()->set_sampler("cmaes");
  auto bad_sampler = AlgorithmRegistry::Global().Create("median", sampler);
  ASSERT_FALSE(bad_sampler.ok());
  EXPECT_NE(bad_sampler.status().message().find("algorithm.median.sampler"), std::string::npos);
  AlgorithmContext warm_up = Context(space, 10, 5);
  warm_up.config.mutable_median()->set_n_warmup_steps(-1);
  auto bad_warm_up = AlgorithmRegistry::Global().Create("median", warm_up);
  ASSERT_FALSE(bad_warm_up.ok());
  EXPECT_NE(bad_warm_up.status().message().find("algorithm.median.n_warmup_steps"),
            std::string::npos);
}

}  // namespace
}  // namespace hippo::search_algos
