#include "search_algos/hyperband.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "search_algos/point_sampler.h"
#include "search_algos/search_algorithm.h"
#include "tests/support/fake_coordinator.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;

stage_tree::SearchSpace Space() {
  v1::SearchSpace proto;
  v1::Parameter* x = proto.add_parameters();
  x->set_name("x");
  x->mutable_float_()->set_low(0);
  x->mutable_float_()->set_high(1);
  return *stage_tree::SearchSpaceFromProto(proto);
}

AlgorithmContext Context(const stage_tree::SearchSpace& space, Step max_steps, bool minimize,
                         int64_t max_trials = 0) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = max_steps;
  context.max_trials = max_trials;
  context.seed = 5;
  context.minimize = minimize;
  context.config.set_name("hyperband");
  return context;
}

std::unique_ptr<SearchAlgorithm> MakeHyperband(const AlgorithmContext& context) {
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> hyperband =
      AlgorithmRegistry::Global().Create("hyperband", context);
  EXPECT_TRUE(hyperband.ok()) << hyperband.status();
  return hyperband.ok() ? *std::move(hyperband) : nullptr;
}

// (n_i, r_i) of every round of a bracket.
std::vector<std::pair<int64_t, double>> Rounds(const HyperbandBracket& bracket) {
  std::vector<std::pair<int64_t, double>> rounds;
  for (const HyperbandRound& round : bracket.rounds) rounds.emplace_back(round.n, round.r);
  return rounds;
}

std::vector<Step> StepsOf(const HyperbandBracket& bracket) {
  std::vector<Step> steps;
  for (const HyperbandRound& round : bracket.rounds) steps.push_back(round.steps);
  return steps;
}

// Table 1 of the paper (R = 81, η = 3).
TEST(HyperbandTest, BracketsForR81Eta3AreThePapersTable) {
  absl::StatusOr<std::vector<HyperbandBracket>> brackets = HyperbandBrackets(81, 3);
  ASSERT_TRUE(brackets.ok()) << brackets.status();
  ASSERT_EQ(brackets->size(), 5u);
  using Table = std::vector<std::pair<int64_t, double>>;
  const std::vector<Table> expected = {
      {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}},  // s = 4
      {{34, 3}, {11, 9}, {3, 27}, {1, 81}},          // s = 3
      {{15, 9}, {5, 27}, {1, 81}},                   // s = 2
      {{8, 27}, {2, 81}},                            // s = 1
      {{5, 81}},                                     // s = 0
  };
  const std::vector<std::pair<int64_t, double>> n_and_r = {
      {81, 1}, {34, 3}, {15, 9}, {8, 27}, {5, 81}};
  for (size_t b = 0; b < brackets->size(); ++b) {
    const HyperbandBracket& bracket = (*brackets)[b];
    EXPECT_EQ(bracket.s, 4 - static_cast<int64_t>(b));
    EXPECT_EQ(bracket.n, n_and_r[b].first) << "s = " << bracket.s;
    EXPECT_DOUBLE_EQ(bracket.r, n_and_r[b].second) << "s = " << bracket.s;
    EXPECT_EQ(Rounds(bracket), expected[b]) << "s = " << bracket.s;
    // R = 81 is a power of η: the steps are the resources.
    for (const HyperbandRound& round : bracket.rounds) {
      EXPECT_EQ(static_cast<double>(round.steps), round.r);
    }
  }
}

// W3: R = 120 is not a power of 3; r_i is rounded to the nearest step, the last round is R.
TEST(HyperbandTest, BracketsForR120Eta3GetWholeStepRounds) {
  absl::StatusOr<std::vector<HyperbandBracket>> brackets = HyperbandBrackets(120, 3);
  ASSERT_TRUE(brackets.ok()) << brackets.status();
  ASSERT_EQ(brackets->size(), 5u);  // s_max = floor(log_3 120) = 4
  const std::vector<int64_t> n = {81, 34, 15, 8, 5};
  const std::vector<std::vector<Step>> steps = {
      {1, 4, 13, 40, 120}, {4, 13, 40, 120}, {13, 40, 120}, {40, 120}, {120}};
  const std::vector<std::vector<int64_t>> trials = {
      {81, 27, 9, 3, 1}, {34, 11, 3, 1}, {15, 5, 1}, {8, 2}, {5}};
  for (size_t b = 0; b < brackets->size(); ++b) {
    const HyperbandBracket& bracket = (*brackets)[b];
    EXPECT_EQ(bracket.n, n[b]);
    EXPECT_DOUBLE_EQ(bracket.r, 120.0 / std::pow(3.0, static_cast<double>(bracket.s)));
    EXPECT_EQ(StepsOf(bracket), steps[b]) << "s = " << bracket.s;
    std::vector<int64_t> round_trials;
    for (const HyperbandRound& round : bracket.rounds) round_trials.push_back(round.n);
    EXPECT_EQ(round_trials, trials[b]) << "s = " << bracket.s;
  }
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> w3 = MakeHyperband(Context(space, 120, true));
  EXPECT_EQ(dynamic_cast<Hyperband&>(*w3).brackets().size(), 5u);
  EXPECT_EQ(w3->Suggest(1000).size(), 143u);  // 81 + 34 + 15 + 8 + 5
}

TEST(HyperbandTest, SmallAndOddSettings) {
  // R < η: one bracket of one round.
  absl::StatusOr<std::vector<HyperbandBracket>> brackets = HyperbandBrackets(2, 3);
  ASSERT_TRUE(brackets.ok());
  ASSERT_EQ(brackets->size(), 1u);
  EXPECT_EQ((*brackets)[0].n, 1);
  EXPECT_EQ(StepsOf((*brackets)[0]), (std::vector<Step>{2}));
  // η = 2, R = 8: s_max = 3; bracket s = 3 has n = 8 and steps 1, 2, 4, 8.
  brackets = HyperbandBrackets(8, 2);
  ASSERT_TRUE(brackets.ok());
  EXPECT_EQ((*brackets)[0].n, 8);
  EXPECT_EQ(StepsOf((*brackets)[0]), (std::vector<Step>{1, 2, 4, 8}));
  EXPECT_FALSE(HyperbandBrackets(10, 1).ok());
  EXPECT_NE(
      HyperbandBrackets(10, 1).status().message().find("algorithm.hyperband.reduction_factor"),
      std::string::npos);
}

// Plays the coordinator (tests/support/fake_coordinator.h): every request applied at once
// (unbounded workers), written as "new 3 ->1", "extend 2 ->3", "stop 4".
using Coordinator = test_support::FakeCoordinator;

// R = 9, η = 3: brackets s = 2 (9 trials: 9 × 1 step, 3 × 3, 1 × 9), s = 1 (5 trials: 5 × 3,
// 1 × 9), s = 0 (3 trials × 9). Objectives are a fixed function of (trial, step); bracket
// s = 2 is worked by hand.
double Objective(TrialNumber trial, Step step) {
  // At step 1, trials 0..8 score (minimised):
  static const std::map<TrialNumber, double> kAtOne = {
      {0, 0.9}, {1, 0.3}, {2, 0.7}, {3, 0.1}, {4, 0.8}, {5, 0.5}, {6, 0.2}, {7, 0.6}, {8, 0.4}};
  // At step 3, the three kept (3, 6, 1) score 3: .50, 6: .15, 1: .40.
  static const std::map<TrialNumber, double> kAtThree = {{3, 0.5}, {6, 0.15}, {1, 0.4}};
  if (step == 1 && kAtOne.count(trial) > 0) return kAtOne.at(trial);
  if (step == 3 && kAtThree.count(trial) > 0) return kAtThree.at(trial);
  return 1.0 / static_cast<double>(step) + 0.01 * static_cast<double>(trial % 5);
}

TEST(HyperbandTest, FullRunPromotesExactlyTheExpectedTrialsOfABracket) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> hyperband = MakeHyperband(Context(space, 9, true));
  Coordinator coordinator(9);
  std::vector<std::string> first = coordinator.Suggest(*hyperband);
  ASSERT_EQ(first.size(), 17u);
  EXPECT_EQ(first[0], "new 0 ->1");
  EXPECT_EQ(first[8], "new 8 ->1");
  EXPECT_EQ(first[9], "new 9 ->3");    // bracket s = 1
  EXPECT_EQ(first[14], "new 14 ->9");  // bracket s = 0

  // Synchronous within the bracket: nothing happens until all 9 trials of round 0 report.
  for (TrialNumber trial : {0, 2, 4, 5, 7, 8, 1, 3}) {
    coordinator.Reach(*hyperband, trial, Objective(trial, 1));
    EXPECT_TRUE(coordinator.Suggest(*hyperband).empty()) << "after trial " << trial;
  }
  coordinator.Reach(*hyperband, 6, Objective(6, 1));
  // Keep floor(9 / 3) = 3: trials 3 (.1), 6 (.2), 1 (.3); stop the other six.
  EXPECT_EQ(coordinator.Suggest(*hyperband),
            (std::vector<std::string>{"extend 3 ->3", "extend 6 ->3", "extend 1 ->3", "stop 8",
                                      "stop 5", "stop 7", "stop 2", "stop 4", "stop 0"}));
  for (TrialNumber trial : {6, 3}) {
    coordinator.Reach(*hyperband, trial, Objective(trial, 3));
    EXPECT_TRUE(coordinator.Suggest(*hyperband).empty());
  }
  coordinator.Reach(*hyperband, 1, Objective(1, 3));
  // Keep floor(3 / 3) = 1: trial 6 (.15).
  EXPECT_EQ(coordinator.Suggest(*hyperband),
            (std::vector<std::string>{"extend 6 ->9", "stop 1", "stop 3"}));
  coordinator.Reach(*hyperband, 6, Objective(6, 9));  // completes: max_steps
  EXPECT_TRUE(coordinator.Suggest(*hyperband).empty());
  EXPECT_FALSE(hyperband->Finished());

  // The other brackets run to their end.
  while (!coordinator.running().empty()) {
    const TrialNumber trial = *coordinator.running().begin();
    coordinator.Reach(*hyperband, trial, Objective(trial, coordinator.target(trial)));
    coordinator.Suggest(*hyperband);
  }
  EXPECT_TRUE(hyperband->Finished());
  EXPECT_TRUE(coordinator.Suggest(*hyperband).empty());
}

// W3 (R = 120, η = 3) to the end, trials finishing in a pseudo-random order: in every bracket
// exactly n_i trials train to the steps of round i, as the table says.
TEST(HyperbandTest, W3RunTrainsExactlyTheTablesTrialsPerRound) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> hyperband = MakeHyperband(Context(space, 120, true));
  const std::vector<HyperbandBracket> brackets = *HyperbandBrackets(120, 3);
  std::vector<TrialNumber> first_trial = {0};
  for (const HyperbandBracket& bracket : brackets) {
    first_trial.push_back(first_trial.back() + bracket.n);
  }
  std::map<std::pair<size_t, Step>, int64_t> reached;  // (bracket, steps) -> trials
  Coordinator coordinator(120);
  coordinator.Suggest(*hyperband, 16);
  std::mt19937_64 order = SeededGenerator(2, 0, 0);
  while (!coordinator.running().empty()) {
    const TrialNumber trial =
        *std::next(coordinator.running().begin(), order() % coordinator.running().size());
    const auto bracket = static_cast<size_t>(
        std::upper_bound(first_trial.begin(), first_trial.end(), trial) - first_trial.begin() - 1);
    ++reached[{bracket, coordinator.target(trial)}];
    coordinator.Reach(*hyperband, trial, Objective(trial, coordinator.target(trial)));
    coordinator.Suggest(*hyperband, 16);
  }
  EXPECT_TRUE(hyperband->Finished());
  for (size_t b = 0; b < brackets.size(); ++b) {
    for (const HyperbandRound& round : brackets[b].rounds) {
      EXPECT_EQ((reached[{b, round.steps}]), round.n)
          << "s = " << brackets[b].s << ", steps " << round.steps;
    }
  }
}

TEST(HyperbandTest, MaximizingPromotesTheLargest) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> hyperband = MakeHyperband(Context(space, 9, false));
  Coordinator coordinator(9);
  coordinator.Suggest(*hyperband);
  for (TrialNumber trial = 0; trial < 9; ++trial) {
    coordinator.Reach(*hyperband, trial, -Objective(trial, 1));
  }
  EXPECT_EQ(coordinator.Suggest(*hyperband),
            (std::vector<std::string>{"extend 3 ->3", "extend 6 ->3", "extend 1 ->3", "stop 8",
                                      "stop 5", "stop 7", "stop 2", "stop 4", "stop 0"}));
}

TEST(HyperbandTest, RestoredMidRunGivesTheSameNextRequests) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> original = MakeHyperband(Context(space, 27, true));
  Coordinator coordinator(27);
  coordinator.Suggest(*original, 20);  // capacity 20 of 3^3 + ... trials
  // Report a deterministic half of the running trials.
  auto report = [](SearchAlgorithm& algorithm, Coordinator& coordinator, int count) {
    std::vector<std::string> log;
    for (int i = 0; i < count && !coordinator.running().empty(); ++i) {
      const TrialNumber trial =
          *std::next(coordinator.running().begin(), i % coordinator.running().size());
      coordinator.Reach(algorithm, trial, Objective(trial, coordinator.target(trial)));
      for (const std::string& request : coordinator.Suggest(algorithm, 2)) log.push_back(request);
    }
    return log;
  };
  report(*original, coordinator, 25);
  std::unique_ptr<SearchAlgorithm> restored = MakeHyperband(Context(space, 27, true));
  ASSERT_TRUE(restored->LoadState(original->SaveState()).ok());
  EXPECT_EQ(restored->SaveState(), original->SaveState());
  Coordinator coordinator_of_restored = coordinator;
  const std::vector<std::string> continued = report(*original, coordinator, 400);
  EXPECT_FALSE(continued.empty());
  EXPECT_EQ(report(*restored, coordinator_of_restored, 400), continued);
  EXPECT_TRUE(original->Finished());
  EXPECT_TRUE(restored->Finished());

  EXPECT_FALSE(restored->LoadState("hyperband\nbracket 9 0\n").ok());
  EXPECT_FALSE(restored->LoadState("asha\n").ok());
}

TEST(HyperbandTest, MaxTrialsTakesWholeBracketsThatFit) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, 81, true, /*max_trials=*/100);
  std::unique_ptr<SearchAlgorithm> hyperband = MakeHyperband(context);
  std::vector<int64_t> s;
  for (const HyperbandBracket& bracket : dynamic_cast<Hyperband&>(*hyperband).brackets()) {
    s.push_back(bracket.s);
  }
  EXPECT_EQ(s, (std::vector<int64_t>{4, 2}));  // 81 + 15; nothing else fits in the 4 left
  // Two whole passes (143 + 143), then of the 14 left s = 1 (8) and s = 0 (5).
  context.max_trials = 300;
  hyperband = MakeHyperband(context);
  EXPECT_EQ(dynamic_cast<Hyperband&>(*hyperband).brackets().size(), 12u);
  context.max_trials = 4;
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> too_few = Hyperband::Create(context);
  ASSERT_FALSE(too_few.ok());
  EXPECT_NE(too_few.status().message().find("budget.max_trials"), std::string::npos);
}

// Brackets are laid out for the whole budget: a max_trials beyond kMaxHyperbandCycles cycles (143
// trials each at R = 81, η = 3) is refused at once, naming the field and the limit, and the
// largest allowed one is laid out.
TEST(HyperbandTest, AMaxTrialsBeyondTheCycleLimitIsRefusedNamingTheField) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, 81, true, /*max_trials=*/1'000'000'000);
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> huge = Hyperband::Create(context);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(huge.status().message().rfind("budget.max_trials: at most 143000 for hyperband", 0), 0u)
      << huge.status().message();
  context.max_trials = 143 * kMaxHyperbandCycles;
  std::unique_ptr<SearchAlgorithm> largest = MakeHyperband(context);
  ASSERT_NE(largest, nullptr);
  EXPECT_EQ(dynamic_cast<Hyperband&>(*largest).brackets().size(), 5u * kMaxHyperbandCycles);
}

TEST(HyperbandTest, ConfigErrorsNameTheField) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, 81, true);
  context.config.mutable_hyperband()->set_reduction_factor(0.5);
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> hyperband = Hyperband::Create(context);
  ASSERT_FALSE(hyperband.ok());
  EXPECT_NE(hyperband.status().message().find("algorithm.hyperband.reduction_factor: must be > 1"),
            std::string::npos);
  context.config.mutable_hyperband()->set_reduction_factor(3);
  context.config.mutable_hyperband()->set_max_resource(100);
  hyperband = Hyperband::Create(context);
  ASSERT_FALSE(hyperband.ok());
  EXPECT_NE(hyperband.status().message().find("algorithm.hyperband.max_resource"),
            std::string::npos);
}

// R = 27 < max_steps = 30: the trials of the last rounds are done at R and are stopped.
TEST(HyperbandTest, TrialsAtAMaxResourceBelowMaxStepsAreStopped) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, 30, true);
  context.config.mutable_hyperband()->set_max_resource(27);
  std::unique_ptr<SearchAlgorithm> hyperband = MakeHyperband(context);
  Coordinator coordinator(30);
  coordinator.Suggest(*hyperband);
  int stops_at_27 = 0;
  while (!coordinator.running().empty()) {
    const TrialNumber trial = *coordinator.running().begin();
    const Step target = coordinator.target(trial);
    coordinator.Reach(*hyperband, trial, Objective(trial, target));
    for (const std::string& request : coordinator.Suggest(*hyperband)) {
      stops_at_27 += request == absl::StrCat("stop ", trial) && target == 27;
    }
  }
  EXPECT_TRUE(hyperband->Finished());
  EXPECT_GE(stops_at_27, 1);
}

}  // namespace
}  // namespace hippo::search_algos
