#include "search_algos/evolution.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "tests/support/fake_coordinator.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;

using stage_tree::Point;

// W6's space: depth int 2-6, width int 16-128, kernel 3/5 (structural), lr one of three.
stage_tree::SearchSpace Space() {
  v1::SearchSpace proto;
  v1::Parameter* depth = proto.add_parameters();
  depth->set_name("depth");
  depth->mutable_int_()->set_low(2);
  depth->mutable_int_()->set_high(6);
  depth->set_structural(true);
  v1::Parameter* width = proto.add_parameters();
  width->set_name("width");
  width->mutable_int_()->set_low(16);
  width->mutable_int_()->set_high(128);
  width->set_structural(true);
  v1::Parameter* kernel = proto.add_parameters();
  kernel->set_name("kernel");
  kernel->mutable_categorical()->add_values()->set_number_value(3);
  kernel->mutable_categorical()->add_values()->set_number_value(5);
  kernel->set_structural(true);
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  for (double value : {0.1, 0.05, 0.02}) {
    lr->mutable_sequence()->mutable_constant()->mutable_choices()->add_values(value);
  }
  return *stage_tree::SearchSpaceFromProto(proto);
}

AlgorithmContext Context(const stage_tree::SearchSpace& space, int64_t population, int64_t sample,
                         int64_t children, Step max_steps) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = max_steps;
  context.seed = 5;
  context.config.set_name("evolution");
  v1::EvolutionConfig* evolution = context.config.mutable_evolution();
  evolution->set_population_size(population);
  evolution->set_sample_size(sample);
  evolution->set_children(children);
  return context;
}

// W6 of docs/workloads.md: P = 16, S = 4, 64 children trained with ASHA rungs 5, 15, 45, 120.
AlgorithmContext W6Context(const stage_tree::SearchSpace& space) {
  AlgorithmContext context = Context(space, 16, 4, 64, 120);
  v1::AshaConfig* asha = context.config.mutable_evolution()->mutable_asha();
  asha->set_min_resource(5);
  asha->set_max_resource(120);
  asha->set_reduction_factor(3);
  return context;
}

std::unique_ptr<SearchAlgorithm> Make(const AlgorithmContext& context) {
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> algorithm =
      AlgorithmRegistry::Global().Create("evolution", context);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
  return algorithm.ok() ? *std::move(algorithm) : nullptr;
}

RegularizedEvolution& Evolution(SearchAlgorithm& algorithm) {
  return dynamic_cast<RegularizedEvolution&>(algorithm);
}

// A made-up accuracy (maximised) that grows with the step and prefers deep, wide networks with
// kernel 5 and lr 0.05.
double Accuracy(const Point& point, Step step) {
  const double depth = std::get<double>(point[0]);
  const double width = std::get<double>(point[1]);
  const double kernel = std::get<double>(point[2]);
  const double lr = std::get<double>(point[3]);
  const double quality = depth / 6 + width / 128 + (kernel == 5 ? 0.3 : 0) - std::abs(lr - 0.05);
  return quality * (1 - 1.0 / static_cast<double>(step + 2));
}

// Plays the coordinator (tests/support/fake_coordinator.h): every running trial trains to its
// target in one go and reports objective(trial, point, target - 1). Records the population each
// child was proposed from.
class FakeCoordinator : public test_support::StudyRunner {
 public:
  FakeCoordinator(const AlgorithmContext& context, Objective objective, bool restore = false)
      : StudyRunner(context, std::move(objective), restore) {
    before_suggest = [this](SearchAlgorithm& algorithm) {
      population_ = Evolution(algorithm).population();
    };
    on_request = [this](const Request& request) {
      EXPECT_NE(request.kind, Request::Kind::kFork) << "evolution never forks";
      if (request.kind == Request::Kind::kNewTrial) {
        population_when_proposed[static_cast<TrialNumber>(trials().size())] = population_;
      }
    };
  }

  RegularizedEvolution& algorithm() { return Evolution(StudyRunner::algorithm()); }

  std::map<TrialNumber, std::deque<RegularizedEvolution::Member>> population_when_proposed;

 private:
  std::deque<RegularizedEvolution::Member> population_;
};

double W6Objective(TrialNumber, const Point& point, Step step) { return Accuracy(point, step); }

std::vector<TrialNumber> Trials(const std::deque<RegularizedEvolution::Member>& population) {
  std::vector<TrialNumber> trials;
  for (const RegularizedEvolution::Member& member : population) trials.push_back(member.trial);
  return trials;
}

TEST(EvolutionTest, IdenticalChildrenInFlightTakeOneSlot) {
  // One dimension of three values, P = 4: at most two distinct children in flight.
  v1::SearchSpace proto;
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  for (double value : {0.1, 0.05, 0.02}) {
    lr->mutable_sequence()->mutable_constant()->mutable_choices()->add_values(value);
  }
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(proto);
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 4, 2, 40, 10));
  std::vector<Point> points;
  size_t most_children_at_once = 0;
  for (int round = 0; round < 100 && !algorithm->Finished(); ++round) {
    const size_t first = points.size();
    for (const Request& request : algorithm->Suggest(1000)) {
      ASSERT_EQ(request.kind, Request::Kind::kNewTrial);
      points.push_back(request.point);
    }
    // Every trial proposed now is in flight until the training below.
    if (first >= 4) {
      std::set<Point> distinct(points.begin() + static_cast<ptrdiff_t>(first), points.end());
      EXPECT_LE(distinct.size(), 2u) << "round " << round;
      most_children_at_once = std::max(most_children_at_once, points.size() - first);
    }
    for (size_t trial = first; trial < points.size(); ++trial) {
      const auto number = static_cast<TrialNumber>(trial);
      algorithm->OnMetric(number, 9, std::get<double>(points[trial][0]));
      algorithm->OnTrialReachedTarget(number, 10);
      algorithm->OnTrialEnded(number, TrialOutcome::kCompleted);
    }
  }
  EXPECT_TRUE(algorithm->Finished());
  EXPECT_EQ(points.size(), 44u);
  EXPECT_GT(most_children_at_once, 2u);  // repeated children did not take a slot
}

TEST(EvolutionTest, AddingAChildRemovesTheOldestMemberNotTheWorst) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 4, 2, 2, 10));
  const std::vector<Request> initial = algorithm->Suggest(100);
  ASSERT_EQ(initial.size(), 4u);
  for (const Request& request : initial) EXPECT_EQ(request.target, 10);
  // Trial 0 is the best and the oldest, trial 3 the worst.
  const std::vector<double> fitness = {100, 50, 40, 10};
  for (TrialNumber trial = 0; trial < 4; ++trial) {
    algorithm->OnMetric(trial, 9, fitness[trial]);
    algorithm->OnTrialReachedTarget(trial, 10);
    algorithm->OnTrialEnded(trial, TrialOutcome::kCompleted);
  }
  EXPECT_EQ(Trials(Evolution(*algorithm).population()), (std::vector<TrialNumber>{0, 1, 2, 3}));
  const std::vector<Request> children = algorithm->Suggest(100);
  ASSERT_EQ(children.size(), 2u);  // P / 2 = 2 children at a time
  algorithm->OnMetric(4, 9, 30);
  algorithm->OnTrialReachedTarget(4, 10);
  algorithm->OnTrialEnded(4, TrialOutcome::kCompleted);
  EXPECT_EQ(Trials(Evolution(*algorithm).population()), (std::vector<TrialNumber>{1, 2, 3, 4}));
  algorithm->OnMetric(5, 9, 20);
  algorithm->OnTrialReachedTarget(5, 10);
  algorithm->OnTrialEnded(5, TrialOutcome::kCompleted);
  EXPECT_EQ(Trials(Evolution(*algorithm).population()), (std::vector<TrialNumber>{2, 3, 4, 5}));
  EXPECT_TRUE(algorithm->Suggest(100).empty());
  EXPECT_TRUE(algorithm->Finished());
}

TEST(EvolutionTest, ChildrenStartOnceSampleSizeMembersAreTrainedNotTheWholePopulation) {
  const stage_tree::SearchSpace space = Space();
  // P = 4, S = 2, 4 children: P / 2 = 2 children at a time.
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 4, 2, 4, 10));
  ASSERT_EQ(algorithm->Suggest(100).size(), 4u);
  auto complete = [&](TrialNumber trial, double fitness) {
    algorithm->OnMetric(trial, 9, fitness);
    algorithm->OnTrialReachedTarget(trial, 10);
    algorithm->OnTrialEnded(trial, TrialOutcome::kCompleted);
  };
  // One member trained: no tournament of S = 2 can be drawn yet.
  complete(2, 30);
  EXPECT_TRUE(algorithm->Suggest(100).empty());
  // Two trained, members 0 and 1 still training: children come, drawn from {2, 3} only.
  complete(3, 40);
  const std::vector<Request> children = algorithm->Suggest(100);
  ASSERT_EQ(children.size(), 2u);
  for (TrialNumber child = 4; child < 6; ++child) {
    const RegularizedEvolution::Lineage* lineage = Evolution(*algorithm).LineageOf(child);
    ASSERT_NE(lineage, nullptr);
    for (TrialNumber drawn : lineage->sample) EXPECT_TRUE(drawn == 2 || drawn == 3) << drawn;
  }
  // A late initial member joins when it ends, as the youngest; aging goes by that order.
  complete(4, 50);
  complete(0, 10);
  EXPECT_EQ(Trials(Evolution(*algorithm).population()), (std::vector<TrialNumber>{2, 3, 4, 0}));
  complete(5, 20);
  EXPECT_EQ(Trials(Evolution(*algorithm).population()), (std::vector<TrialNumber>{3, 4, 0, 5}));
  ASSERT_EQ(algorithm->Suggest(100).size(), 2u);  // the last two children
  complete(1, 60);
  complete(6, 70);
  complete(7, 80);
  EXPECT_TRUE(algorithm->Suggest(100).empty());
  EXPECT_TRUE(algorithm->Finished());
  EXPECT_EQ(Trials(Evolution(*algorithm).population()), (std::vector<TrialNumber>{5, 1, 6, 7}));
}

TEST(EvolutionTest, WithFewerThanSampleSizeScoredChildrenWaitForEveryInitialMember) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 3, 2, 2, 10));
  ASSERT_EQ(algorithm->Suggest(100).size(), 3u);
  algorithm->OnTrialEnded(0, TrialOutcome::kFailed);
  algorithm->OnMetric(1, 9, 5);
  algorithm->OnTrialReachedTarget(1, 10);
  algorithm->OnTrialEnded(1, TrialOutcome::kCompleted);
  EXPECT_TRUE(algorithm->Suggest(100).empty());  // trial 2 may still make a tournament of 2
  algorithm->OnTrialEnded(2, TrialOutcome::kFailed);
  // Every initial member ended and one scored: children come from it, as before.
  const std::vector<Request> children = algorithm->Suggest(100);
  EXPECT_EQ(children.size(), 1u);  // P / 2 = 1 at a time
  EXPECT_EQ(Evolution(*algorithm).LineageOf(3)->parent, 1);
}

TEST(EvolutionTest, EachParentIsTheBestOfASampleFromThePopulationAndTheChildDiffersInOneDimension) {
  const stage_tree::SearchSpace space = Space();
  FakeCoordinator coordinator(W6Context(space), W6Objective);
  coordinator.Run();
  RegularizedEvolution& evolution = coordinator.algorithm();
  int one_change = 0;
  for (TrialNumber child = 16; child < 80; ++child) {
    const RegularizedEvolution::Lineage* lineage = evolution.LineageOf(child);
    ASSERT_NE(lineage, nullptr);
    ASSERT_EQ(lineage->sample.size(), 4u);
    std::map<TrialNumber, double> fitness;
    for (const auto& member : coordinator.population_when_proposed.at(child)) {
      fitness[member.trial] = member.fitness;
    }
    TrialNumber best = -1;
    for (TrialNumber drawn : lineage->sample) {
      ASSERT_TRUE(fitness.contains(drawn)) << drawn << " was not in the population";
      if (best < 0 || fitness[drawn] > fitness[best]) best = drawn;
    }
    EXPECT_EQ(lineage->parent, best);
    const Point& parent = coordinator.trials()[lineage->parent].point;
    const Point& point = coordinator.trials()[child].point;
    int changed = 0;
    for (size_t d = 0; d < point.size(); ++d) changed += point[d] != parent[d];
    EXPECT_LE(changed, 1);
    one_change += changed == 1;
  }
  EXPECT_GE(one_change, 60);
  EXPECT_EQ(evolution.LineageOf(3), nullptr);
}

TEST(EvolutionTest, W6ProposesExactlyTheChildrenAndTrainsThemInAshaRungs) {
  const stage_tree::SearchSpace space = Space();
  FakeCoordinator coordinator(W6Context(space), W6Objective);
  const std::vector<Request> requests = coordinator.Run();
  const auto new_trials = std::count_if(requests.begin(), requests.end(), [](const Request& r) {
    return r.kind == Request::Kind::kNewTrial;
  });
  EXPECT_EQ(new_trials, 16 + 64);
  ASSERT_EQ(coordinator.trials().size(), 80u);
  // The initial members train straight to max_steps; children climb the rungs 5, 15, 45, 120.
  const std::vector<Step> rungs = {5, 15, 45, 120};
  int fully_trained_children = 0;
  for (size_t trial = 0; trial < coordinator.trials().size(); ++trial) {
    const std::vector<Step>& targets = coordinator.trials()[trial].targets;
    if (trial < 16) {
      EXPECT_EQ(targets, std::vector<Step>{120});
      continue;
    }
    ASSERT_LE(targets.size(), rungs.size());
    EXPECT_TRUE(std::equal(targets.begin(), targets.end(), rungs.begin())) << trial;
    EXPECT_EQ(coordinator.trials()[trial].stopped, targets.back() != 120);
    fully_trained_children += targets.back() == 120;
  }
  // Roughly 1/3 of the children pass each rung; the first to arrive always does.
  EXPECT_GE(fully_trained_children, 2);
  EXPECT_LT(fully_trained_children, 32);
}

TEST(EvolutionTest, AshaPromotesAChildOnlyIfItIsInTheTopThirdOfItsRung) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, /*population=*/2, /*sample=*/1, /*children=*/5, 9);
  context.config.mutable_evolution()->mutable_asha()->set_min_resource(1);  // rungs 1, 3; 9
  // Children (one at a time, P / 2 = 1) with constant curves, worked out by hand:
  //   2: 10  rung 1: {10} first, on; rung 3: {10} on; completes
  //   3:  5  rung 1: {10, 5}, one better: 1 * 3 < 2 fails, stopped at 1
  //   4: 20  rung 1: best of 3, on; rung 3: best of {10, 20}, on; completes
  //   5:  1  rung 1: three better of 4, stopped at 1
  //   6: 15  rung 1: one better of 5 (3 < 5), on; rung 3: one better of {10, 20, 15} (3 < 3
  //          fails), stopped at 3
  const std::map<TrialNumber, double> curves = {{0, 7},  {1, 8}, {2, 10}, {3, 5},
                                                {4, 20}, {5, 1}, {6, 15}};
  FakeCoordinator coordinator(
      context, [&](TrialNumber trial, const Point&, Step) { return curves.at(trial); });
  coordinator.Run();
  ASSERT_EQ(coordinator.trials().size(), 7u);
  const std::vector<std::vector<Step>> expected = {{9},       {9}, {1, 3, 9}, {1},
                                                   {1, 3, 9}, {1}, {1, 3}};
  for (size_t trial = 0; trial < expected.size(); ++trial) {
    EXPECT_EQ(coordinator.trials()[trial].targets, expected[trial]) << trial;
  }
  // Stopped children never join the population; the last to complete are 2 and 4.
  EXPECT_EQ(Trials(coordinator.algorithm().population()), (std::vector<TrialNumber>{2, 4}));
}

using test_support::SameRequests;

TEST(EvolutionTest, IsDeterministicAndARestoreAtEveryStepGivesTheSameRequests) {
  const stage_tree::SearchSpace space = Space();
  FakeCoordinator first(W6Context(space), W6Objective);
  FakeCoordinator second(W6Context(space), W6Objective);
  FakeCoordinator restarted(W6Context(space), W6Objective, /*restore=*/true);
  const std::vector<Request> expected = first.Run();
  EXPECT_TRUE(SameRequests(second.Run(), expected));
  EXPECT_TRUE(SameRequests(restarted.Run(), expected));
  AlgorithmContext other_seed = W6Context(space);
  other_seed.seed = 6;
  FakeCoordinator different(other_seed, W6Objective);
  EXPECT_FALSE(SameRequests(different.Run(), expected));
  std::unique_ptr<SearchAlgorithm> algorithm = Make(W6Context(space));
  EXPECT_EQ(algorithm->LoadState("evolution-v1 1 0").code(), absl::StatusCode::kDataLoss);
}

TEST(EvolutionTest, FailedInitialMembersNeverJoinAndAllFailedEndsTheStudy) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 2, 1, 3, 10));
  ASSERT_EQ(algorithm->Suggest(100).size(), 2u);
  algorithm->OnTrialEnded(0, TrialOutcome::kFailed);
  EXPECT_FALSE(algorithm->Finished());
  algorithm->OnTrialEnded(1, TrialOutcome::kFailed);
  EXPECT_TRUE(Evolution(*algorithm).population().empty());
  EXPECT_TRUE(algorithm->Suggest(100).empty());
  EXPECT_TRUE(algorithm->Finished());
}

TEST(EvolutionTest, RefusesBadConfigNamingTheField) {
  const stage_tree::SearchSpace space = Space();
  auto message = [&](const AlgorithmContext& context) {
    absl::StatusOr<std::unique_ptr<SearchAlgorithm>> algorithm =
        AlgorithmRegistry::Global().Create("evolution", context);
    return algorithm.ok() ? std::string() : std::string(algorithm.status().message());
  };
  EXPECT_NE(message(Context(space, 4, 5, 10, 10)).find("algorithm.evolution.sample_size"),
            std::string::npos);
  AlgorithmContext resource = W6Context(space);
  resource.config.mutable_evolution()->mutable_asha()->set_max_resource(100);
  EXPECT_NE(message(resource).find("algorithm.evolution.asha.max_resource"), std::string::npos);
  AlgorithmContext first_rung = W6Context(space);
  first_rung.config.mutable_evolution()->mutable_asha()->clear_min_resource();
  EXPECT_NE(message(first_rung).find("algorithm.evolution.asha.min_resource"), std::string::npos);
  AlgorithmContext budget = Context(space, 16, 4, 64, 120);
  budget.max_trials = 10;
  EXPECT_NE(message(budget).find("algorithm.evolution.population_size"), std::string::npos);
  // budget.max_trials caps population + children.
  budget.max_trials = 20;
  std::unique_ptr<SearchAlgorithm> capped = Make(budget);
  EXPECT_EQ(capped->Suggest(100).size(), 16u);
}

}  // namespace
}  // namespace hippo::search_algos
