#include "search_algos/pbt.h"

#include <google/protobuf/util/json_util.h>
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

// lr (dimension 0), weight_decay (1, a range so narrow that every factor is clamped), batch (2,
// numeric choices, ordered) and depth (3, structural: a fork may never change it).
stage_tree::SearchSpace Space() {
  v1::SearchSpace proto;
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_low(0.01);
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_high(0.1);
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_log(true);
  v1::Parameter* weight_decay = proto.add_parameters();
  weight_decay->set_name("weight_decay");
  weight_decay->mutable_float_()->set_low(0.5);
  weight_decay->mutable_float_()->set_high(0.55);
  v1::Parameter* batch = proto.add_parameters();
  batch->set_name("batch");
  for (double size : {64.0, 32.0, 128.0}) {
    batch->mutable_categorical()->add_values()->set_number_value(size);
  }
  v1::Parameter* depth = proto.add_parameters();
  depth->set_name("depth");
  depth->mutable_int_()->set_low(2);
  depth->mutable_int_()->set_high(6);
  depth->set_structural(true);
  return *stage_tree::SearchSpaceFromProto(proto);
}

constexpr size_t kLr = 0;
constexpr size_t kWeightDecay = 1;
constexpr size_t kBatch = 2;
constexpr size_t kDepth = 3;

double Number(const Point& point, size_t dimension) { return std::get<double>(point[dimension]); }

AlgorithmContext Context(const stage_tree::SearchSpace& space, int64_t population, Step max_steps) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = max_steps;
  context.seed = 11;
  context.config.set_name("pbt");
  v1::PbtConfig* pbt = context.config.mutable_pbt();
  pbt->set_population_size(population);
  pbt->set_perturbation_interval(10);
  return context;
}

// proto3 cannot say 0: a probability this small never fires in these tests.
constexpr double kNeverResample = 1e-300;

std::unique_ptr<SearchAlgorithm> Make(const AlgorithmContext& context) {
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> algorithm =
      AlgorithmRegistry::Global().Create("pbt", context);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
  return algorithm.ok() ? *std::move(algorithm) : nullptr;
}

// The objective: a higher lr is better (maximised), so the ranking is known.
double LrObjective(const Point& point, Step) { return Number(point, kLr); }

// Plays the coordinator (tests/support/fake_coordinator.h): every running trial trains to its
// target in one go and reports objective(point, target - 1). A fork never changes depth.
class FakeCoordinator : public test_support::StudyRunner {
 public:
  FakeCoordinator(const AlgorithmContext& context, PointObjective objective, bool restore = false)
      : StudyRunner(context, std::move(objective), restore) {
    on_request = [this](const Request& request) {
      if (request.kind != Request::Kind::kFork) return;
      EXPECT_EQ(request.point[kDepth], trials().at(request.trial).point[kDepth]);
    };
  }
};

// Whether `child` is `parent` multiplied by one of the factors and clamped to [low, high].
bool IsPerturbed(double parent, double child, double low, double high) {
  for (double factor : {0.8, 1.2}) {
    if (std::abs(child - std::clamp(parent * factor, low, high)) <= 1e-12 * high) return true;
  }
  return false;
}

// The batch choices, in order: 32, 64, 128. A perturbed value is a neighbour of the parent's (or
// the parent's own at an end).
bool IsNeighbourChoice(double parent, double child) {
  const std::vector<double> ordered = {32, 64, 128};
  const auto at = std::find(ordered.begin(), ordered.end(), parent) - ordered.begin();
  for (auto i : {at - 1, at + 1}) {
    if (i >= 0 && i < 3 && ordered[i] == child) return true;
  }
  return (at == 0 || at == 2) && child == parent;
}

TEST(PbtTest, BottomQuantileForksFromTheTopQuantileAtTheBoundaryOthersAreExtended) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, /*population=*/8, /*max_steps=*/30);
  context.config.mutable_pbt()->set_resample_probability(kNeverResample);
  std::unique_ptr<SearchAlgorithm> algorithm = Make(context);
  const std::vector<Request> initial = algorithm->Suggest(100);
  ASSERT_EQ(initial.size(), 8u);
  for (const Request& request : initial) {
    EXPECT_EQ(request.kind, Request::Kind::kNewTrial);
    EXPECT_EQ(request.target, 10);
  }
  // Seven of eight members at the boundary: the round is not complete, nothing happens.
  for (TrialNumber trial = 0; trial < 7; ++trial) {
    algorithm->OnMetric(trial, 9, Number(initial[trial].point, kLr));
    algorithm->OnTrialReachedTarget(trial, 10);
  }
  EXPECT_TRUE(algorithm->Suggest(100).empty());
  algorithm->OnMetric(7, 9, Number(initial[7].point, kLr));
  algorithm->OnTrialReachedTarget(7, 10);

  std::vector<TrialNumber> ranked = {0, 1, 2, 3, 4, 5, 6, 7};  // best (highest lr) first
  std::sort(ranked.begin(), ranked.end(), [&](TrialNumber a, TrialNumber b) {
    return Number(initial[a].point, kLr) > Number(initial[b].point, kLr);
  });
  const std::set<TrialNumber> top = {ranked[0], ranked[1]};
  const std::set<TrialNumber> bottom = {ranked[6], ranked[7]};

  const std::vector<Request> round = algorithm->Suggest(100);
  std::set<TrialNumber> extended;
  std::set<TrialNumber> stopped;
  int forks = 0;
  for (const Request& request : round) {
    switch (request.kind) {
      case Request::Kind::kExtend:
        EXPECT_EQ(request.target, 20);
        extended.insert(request.trial);
        break;
      case Request::Kind::kStop:
        stopped.insert(request.trial);
        break;
      case Request::Kind::kFork: {
        ++forks;
        EXPECT_TRUE(top.contains(request.trial)) << "forked from " << request.trial;
        EXPECT_EQ(request.fork_step, 10);
        EXPECT_EQ(request.target, 20);
        const Point& parent = initial[request.trial].point;
        EXPECT_TRUE(IsPerturbed(Number(parent, kLr), Number(request.point, kLr), 0.01, 0.1));
        // weight_decay * 0.8 < 0.5 and * 1.2 > 0.55: always clamped to an end.
        const double weight_decay = Number(request.point, kWeightDecay);
        EXPECT_TRUE(weight_decay == 0.5 || weight_decay == 0.55) << weight_decay;
        EXPECT_TRUE(IsNeighbourChoice(Number(parent, kBatch), Number(request.point, kBatch)));
        EXPECT_EQ(request.point[kDepth], parent[kDepth]);
        break;
      }
      case Request::Kind::kNewTrial:
      case Request::Kind::kMorph:
        ADD_FAILURE() << "a new trial after the first round";
    }
  }
  EXPECT_EQ(forks, 2);
  EXPECT_EQ(stopped, bottom);
  EXPECT_EQ(extended.size(), 6u);
  for (TrialNumber trial : bottom) EXPECT_FALSE(extended.contains(trial));
  // The forks are trials 8 and 9; the next round waits for them too.
  for (TrialNumber trial : extended) algorithm->OnTrialReachedTarget(trial, 20);
  EXPECT_TRUE(algorithm->Suggest(100).empty());
  algorithm->OnTrialReachedTarget(8, 20);
  algorithm->OnTrialReachedTarget(9, 20);
  const std::vector<Request> last = algorithm->Suggest(100);
  ASSERT_FALSE(last.empty());
  for (const Request& request : last) {
    if (request.kind != Request::Kind::kStop) {
      EXPECT_EQ(request.target, 30);
    }
    if (request.kind == Request::Kind::kFork) {
      EXPECT_EQ(request.fork_step, 20);
    }
  }
}

// W4 of docs/workloads.md: population 16, a round every 10 steps, 120 steps, lr and weight_decay
// multiplied by 0.8 or 1.2 (resampled with the default probability 0.25).
AlgorithmContext W4Context(const stage_tree::SearchSpace& space) {
  AlgorithmContext context = Context(space, /*population=*/16, /*max_steps=*/120);
  context.config.mutable_pbt()->add_perturbed_parameters("lr");
  context.config.mutable_pbt()->add_perturbed_parameters("weight_decay");
  context.config.mutable_pbt()->add_perturbation_factors(0.8);
  context.config.mutable_pbt()->add_perturbation_factors(1.2);
  return context;
}

TEST(PbtTest, W4RunsElevenRoundsOfFourForksAndEndsWithTheWholePopulationAtMaxSteps) {
  const stage_tree::SearchSpace space = Space();
  FakeCoordinator coordinator(W4Context(space), LrObjective);
  const std::vector<Request> requests = coordinator.Run();
  std::map<Step, int> forks_at;
  int stops = 0;
  int new_trials = 0;
  int perturbed = 0;
  int resampled = 0;
  for (const Request& request : requests) {
    new_trials += request.kind == Request::Kind::kNewTrial;
    stops += request.kind == Request::Kind::kStop;
    if (request.kind != Request::Kind::kFork) continue;
    ++forks_at[request.fork_step];
    const Point& parent = coordinator.trials()[request.trial].point;
    // batch is not perturbed: only lr and weight_decay are named.
    EXPECT_EQ(request.point[kBatch], parent[kBatch]);
    const bool lr_perturbed =
        IsPerturbed(Number(parent, kLr), Number(request.point, kLr), 0.01, 0.1);
    perturbed += lr_perturbed;
    resampled += !lr_perturbed;
    const double lr = Number(request.point, kLr);
    EXPECT_TRUE(lr >= 0.01 && lr <= 0.1) << lr;
  }
  EXPECT_EQ(new_trials, 16);
  EXPECT_EQ(stops, 44);
  std::map<Step, int> expected;
  for (Step step = 10; step < 120; step += 10) expected[step] = 4;
  EXPECT_EQ(forks_at, expected);
  // About a quarter resampled (44 draws).
  EXPECT_GT(resampled, 3);
  EXPECT_GT(perturbed, 22);
  int at_max_steps = 0;
  for (const auto& trial : coordinator.trials()) {
    at_max_steps += trial.target == 120;
  }
  EXPECT_EQ(at_max_steps, 16);
}

TEST(PbtTest, MaxTrialsCountsTheForksAndOnceUsedUpTheBottomMembersGoOnAsTheyAre) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = W4Context(space);
  context.max_trials = 26;  // 16 members and 10 forks: two rounds of four, then the worst two
  FakeCoordinator coordinator(context, LrObjective);
  const std::vector<Request> requests = coordinator.Run();
  std::map<Step, int> forks_at;
  int new_trials = 0;
  int stops = 0;
  for (const Request& request : requests) {
    new_trials += request.kind == Request::Kind::kNewTrial;
    stops += request.kind == Request::Kind::kStop;
    if (request.kind == Request::Kind::kFork) ++forks_at[request.fork_step];
  }
  EXPECT_EQ(new_trials, 16);
  EXPECT_EQ(forks_at, (std::map<Step, int>{{10, 4}, {20, 4}, {30, 2}}));
  EXPECT_EQ(stops, 10);
  EXPECT_EQ(coordinator.trials().size(), 26u);
  // The population still trains to max_steps: its 16 slots, with their own hyper-parameters
  // once no trial is left for a fork.
  int at_max_steps = 0;
  for (const auto& trial : coordinator.trials()) at_max_steps += trial.target == 120;
  EXPECT_EQ(at_max_steps, 16);

  AlgorithmContext too_few = W4Context(space);
  too_few.max_trials = 8;
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> refused =
      AlgorithmRegistry::Global().Create("pbt", too_few);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "algorithm.pbt.population_size: 16 exceeds budget.max_trials (8)"),
            std::string::npos)
      << refused.status();
}

using test_support::SameRequests;

TEST(PbtTest, IsDeterministicAndARestoreAtEveryStepGivesTheSameRequests) {
  const stage_tree::SearchSpace space = Space();
  FakeCoordinator first(W4Context(space), LrObjective);
  FakeCoordinator second(W4Context(space), LrObjective);
  FakeCoordinator restarted(W4Context(space), LrObjective, /*restore=*/true);
  const std::vector<Request> expected = first.Run();
  EXPECT_TRUE(SameRequests(second.Run(), expected));
  EXPECT_TRUE(SameRequests(restarted.Run(), expected));
  AlgorithmContext other_seed = W4Context(space);
  other_seed.seed = 12;
  FakeCoordinator different(other_seed, LrObjective);
  EXPECT_FALSE(SameRequests(different.Run(), expected));
  std::unique_ptr<SearchAlgorithm> algorithm = Make(W4Context(space));
  EXPECT_EQ(algorithm->LoadState("pbt-v1 10 1").code(), absl::StatusCode::kDataLoss);
}

TEST(PbtTest, ForksWaitForRoomAndTheNextRoundWaitsForThem) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 8, 30));
  ASSERT_EQ(algorithm->Suggest(100).size(), 8u);
  for (TrialNumber trial = 0; trial < 8; ++trial) {
    algorithm->OnMetric(trial, 9, static_cast<double>(trial));
    algorithm->OnTrialReachedTarget(trial, 10);
  }
  auto count = [](const std::vector<Request>& requests, Request::Kind kind) {
    return std::count_if(requests.begin(), requests.end(),
                         [kind](const Request& request) { return request.kind == kind; });
  };
  // Six extensions and room for one fork.
  const std::vector<Request> first = algorithm->Suggest(7);
  EXPECT_EQ(count(first, Request::Kind::kExtend), 6);
  EXPECT_EQ(count(first, Request::Kind::kFork), 1);
  EXPECT_EQ(count(first, Request::Kind::kStop), 1);
  for (const Request& request : first) {
    if (request.kind == Request::Kind::kExtend) algorithm->OnTrialReachedTarget(request.trial, 20);
  }
  algorithm->OnTrialReachedTarget(8, 20);
  // Trials 0 and 1 (objectives 0 and 1) are replaced, one fork per Suggest; trial 1 still
  // holds its slot, so round 20 is not complete before its fork is requested and trained.
  const std::vector<Request> second = algorithm->Suggest(1);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].kind, Request::Kind::kFork);
  EXPECT_EQ(second[0].fork_step, 10);
  EXPECT_EQ(second[1].kind, Request::Kind::kStop);
  EXPECT_EQ(second[1].trial, 1);
  EXPECT_TRUE(algorithm->Suggest(1).empty());
  algorithm->OnTrialReachedTarget(9, 20);
  EXPECT_FALSE(algorithm->Suggest(100).empty());
}

TEST(PbtTest, FailedMemberSlotIsRefilledByAForkAtTheNextBoundary) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> algorithm = Make(Context(space, 4, 30));
  ASSERT_EQ(algorithm->Suggest(100).size(), 4u);
  algorithm->OnTrialEnded(1, TrialOutcome::kFailed);
  for (TrialNumber trial : {0, 2, 3}) {
    algorithm->OnMetric(trial, 9, static_cast<double>(trial));
    algorithm->OnTrialReachedTarget(trial, 10);
  }
  // Three members rank 3 > 2 > 0: the quantile is one member; slot 1 and trial 0's slot are
  // refilled from trial 3.
  const std::vector<Request> round = algorithm->Suggest(100);
  std::vector<TrialNumber> extended;
  std::vector<TrialNumber> forked_from;
  std::vector<TrialNumber> stopped;
  for (const Request& request : round) {
    if (request.kind == Request::Kind::kExtend) extended.push_back(request.trial);
    if (request.kind == Request::Kind::kFork) forked_from.push_back(request.trial);
    if (request.kind == Request::Kind::kStop) stopped.push_back(request.trial);
  }
  EXPECT_EQ(extended, (std::vector<TrialNumber>{2, 3}));
  EXPECT_EQ(forked_from, (std::vector<TrialNumber>{3, 3}));
  EXPECT_EQ(stopped, (std::vector<TrialNumber>{0}));
  EXPECT_FALSE(algorithm->Finished());
}

// optimizer (structural: sgd or adam); momentum only with sgd (`when`); lr either cosine from a
// range or step decay from a range (one_of): each member leaves some numeric dimensions unused.
constexpr char kConditionalSpace[] = R"({"parameters": [
  {"name": "optimizer", "categorical": {"values": ["sgd", "adam"]}, "structural": true},
  {"name": "momentum", "float": {"low": 0.5, "high": 0.99},
   "when": {"param": "optimizer", "equals": "sgd"}},
  {"name": "lr", "sequence": {"oneOf": [
    {"cosine": {"max": {"range": {"low": 0.05, "high": 0.2}}, "min": {"value": 0}}},
    {"stepDecay": {"initial": {"range": {"low": 0.01, "high": 0.1}}, "gamma": {"value": 0.1},
                   "milestones": {"choices": [{"steps": [20]}]}}}]}}]})";

TEST(PbtTest, ForksNeverPerturbOrIntroduceAParameterTheirParentDoesNotUse) {
  v1::SearchSpace proto;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(kConditionalSpace, &proto).ok());
  absl::StatusOr<stage_tree::SearchSpace> space = stage_tree::SearchSpaceFromProto(proto);
  ASSERT_TRUE(space.ok()) << space.status();
  AlgorithmContext context = Context(*space, /*population=*/8, /*max_steps=*/60);
  context.config.mutable_pbt()->set_resample_probability(0.5);
  // The objective: adam (no momentum) ranks first, then the larger learning rate, so the top
  // members that forks copy leave momentum and one of the lr alternatives unused.
  auto objective = [&](const Point& point, Step) {
    double value = std::get<std::string>(point[0]) == "adam" ? 1 : 0;
    for (size_t d = 2; d < point.size(); ++d) {
      if (stage_tree::IsActive(space->dimensions, point, d) &&
          std::holds_alternative<double>(point[d])) {
        value += std::get<double>(point[d]);
      }
    }
    return value;
  };
  test_support::StudyRunner runner(context, objective);
  int unused_checked = 0;
  int used_changed = 0;
  for (const Request& request : runner.Run()) {
    if (request.kind != Request::Kind::kFork) continue;
    const Point& parent = runner.trials().at(request.trial).point;
    for (size_t d = 0; d < parent.size(); ++d) {
      const bool used = stage_tree::IsActive(space->dimensions, parent, d);
      EXPECT_EQ(stage_tree::IsActive(space->dimensions, request.point, d), used)
          << space->dimensions[d].name << " of a fork of trial " << request.trial;
      if (used) {
        used_changed += request.point[d] != parent[d];
        continue;
      }
      ++unused_checked;
      EXPECT_EQ(request.point[d], stage_tree::FirstValue(space->dimensions[d]))
          << space->dimensions[d].name << " is not used by trial " << request.trial
          << " yet its fork changed it";
    }
  }
  EXPECT_GT(unused_checked, 0) << "no fork of a member with an unused dimension";
  EXPECT_GT(used_changed, 0) << "no fork perturbed a dimension its parent uses";
}

TEST(PbtTest, RefusesBadConfigNamingTheField) {
  const stage_tree::SearchSpace space = Space();
  auto message = [&](const AlgorithmContext& context) {
    absl::StatusOr<std::unique_ptr<SearchAlgorithm>> algorithm =
        AlgorithmRegistry::Global().Create("pbt", context);
    return algorithm.ok() ? std::string() : std::string(algorithm.status().message());
  };
  AlgorithmContext one = Context(space, 1, 30);
  EXPECT_EQ(message(one), "algorithm.pbt.population_size: must be >= 2");
  AlgorithmContext no_interval = Context(space, 4, 30);
  no_interval.config.mutable_pbt()->clear_perturbation_interval();
  EXPECT_NE(message(no_interval).find("algorithm.pbt.perturbation_interval"), std::string::npos);
  AlgorithmContext structural = Context(space, 4, 30);
  structural.config.mutable_pbt()->add_perturbed_parameters("depth");
  EXPECT_NE(message(structural).find("algorithm.pbt.perturbed_parameters: 'depth' is structural"),
            std::string::npos);
  AlgorithmContext unknown = Context(space, 4, 30);
  unknown.config.mutable_pbt()->add_perturbed_parameters("momentum");
  EXPECT_NE(message(unknown).find("algorithm.pbt.perturbed_parameters: 'momentum'"),
            std::string::npos);
  AlgorithmContext quantile = Context(space, 4, 30);
  quantile.config.mutable_pbt()->set_quantile_fraction(0.75);
  EXPECT_NE(message(quantile).find("algorithm.pbt.quantile_fraction"), std::string::npos);
  AlgorithmContext factor = Context(space, 4, 30);
  factor.config.mutable_pbt()->add_perturbation_factors(-1);
  EXPECT_NE(message(factor).find("algorithm.pbt.perturbation_factors"), std::string::npos);
}

}  // namespace
}  // namespace hippo::search_algos
