#include "search_algos/asha.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <random>
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
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  lr->mutable_float_()->set_low(1e-4);
  lr->mutable_float_()->set_high(1e-1);
  lr->mutable_float_()->set_log(true);
  v1::Parameter* optimizer = proto.add_parameters();
  optimizer->set_name("optimizer");
  optimizer->mutable_categorical()->add_values()->set_string_value("sgd");
  optimizer->mutable_categorical()->add_values()->set_string_value("adam");
  return *stage_tree::SearchSpaceFromProto(proto);
}

AlgorithmContext Context(const stage_tree::SearchSpace& space, Step min_resource, Step max_steps,
                         int64_t max_trials, bool minimize) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = max_steps;
  context.max_trials = max_trials;
  context.seed = 3;
  context.minimize = minimize;
  context.config.set_name("asha");
  context.config.mutable_asha()->set_min_resource(min_resource);
  return context;
}

std::unique_ptr<SearchAlgorithm> MakeAsha(const AlgorithmContext& context) {
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> asha =
      AlgorithmRegistry::Global().Create("asha", context);
  EXPECT_TRUE(asha.ok()) << asha.status();
  return asha.ok() ? *std::move(asha) : nullptr;
}

// Plays the coordinator for a fixed number of workers (tests/support/fake_coordinator.h):
// Suggest gets the free workers as capacity; requests are written as "new 3 ->1", "extend 2 ->3",
// "stop 4".
class Coordinator : public test_support::FakeCoordinator {
 public:
  Coordinator(int64_t workers, Step max_steps) : FakeCoordinator(max_steps, workers) {}
};

TEST(AshaTest, RungsAreMinResourceTimesPowersOfEtaCappedAtMaxResource) {
  EXPECT_EQ(*AshaRungs(1, 9, 3), (std::vector<Step>{1, 3, 9}));
  EXPECT_EQ(*AshaRungs(1, 10, 3), (std::vector<Step>{1, 3, 9, 10}));
  EXPECT_EQ(*AshaRungs(5, 120, 3), (std::vector<Step>{5, 15, 45, 120}));  // W2
  EXPECT_EQ(*AshaRungs(1, 8, 2), (std::vector<Step>{1, 2, 4, 8}));
  EXPECT_EQ(*AshaRungs(7, 7, 3), (std::vector<Step>{7}));
  // η close to 1 still gives distinct whole steps.
  EXPECT_EQ(*AshaRungs(1, 4, 1.2), (std::vector<Step>{1, 2, 3, 4}));

  const stage_tree::SearchSpace space = Space();
  AlgorithmContext w2 = Context(space, 5, 120, 256, true);
  w2.config.mutable_asha()->set_reduction_factor(3);
  w2.config.mutable_asha()->set_max_resource(120);
  std::unique_ptr<SearchAlgorithm> asha = MakeAsha(w2);
  EXPECT_EQ(dynamic_cast<Asha&>(*asha).rungs(), (std::vector<Step>{5, 15, 45, 120}));
}

// One step of the script: `trial` reaches its target with `objective`, then Suggest answers
// `expected`.
struct ScriptStep {
  TrialNumber trial;
  double objective;
  std::vector<std::string> expected;
};

// r = 1, η = 3, R = 9: rungs {1, 3, 9}; 9 trials, 2 workers; minimising. Worked by hand: a
// trial of rung k is promoted when it is paused there and in the top floor(|rung k| / 3).
const std::vector<std::string> kFirstRequests = {"new 0 ->1", "new 1 ->1"};
const std::vector<ScriptStep> kScript = {
    // rung 0 = {0: .50}: top 0.
    {0, 0.50, {"new 2 ->1"}},
    // rung 0 = {.50, 1: .40}: top 0.
    {1, 0.40, {"new 3 ->1"}},
    // rung 0 = {.50, .40, 2: .90}: top 1 = {1}: 1 is promoted, taking the free worker.
    {2, 0.90, {"extend 1 ->3"}},
    // rung 0 has 4: top 1 = {3}.
    {3, 0.30, {"extend 3 ->3"}},
    // rung 1 = {1: .35}: top 0; rung 0's top 1 is 3, already promoted.
    {1, 0.35, {"new 4 ->1"}},
    // rung 0 has 5: top 1 = {4: .20}.
    {4, 0.20, {"extend 4 ->3"}},
    // rung 1 = {.35, 3: .25}: top 0; rung 0's top 1 = {4}, promoted.
    {3, 0.25, {"new 5 ->1"}},
    // rung 0 has 6: top 2 = {4, 3}, both promoted.
    {5, 0.60, {"new 6 ->1"}},
    // rung 1 = {.35, .25, 4: .10}: top 1 = {4}: to the last rung.
    {4, 0.10, {"extend 4 ->9"}},
    // rung 0 has 7: top 2 = {4, 3}.
    {6, 0.45, {"new 7 ->1"}},
    // rung 0 has 8: top 2 = {4, 3}; 1 (.40) and 7 (.35) wait.
    {7, 0.35, {"new 8 ->1"}},
    // rung 0 has 9: top 3 = {8: .05, 4, 3}: 8 is promoted; max_trials reached.
    {8, 0.05, {"extend 8 ->3"}},
    // 4 completes at R = max_steps; 8 still runs, so the paused trials wait.
    {4, 0.08, {}},
    // rung 1 = {4: .10, 3: .25, 8: .30, 1: .35}: top 1 = {4}, done. Nothing runs, nothing can
    // be promoted, no trial is left to propose: the paused trials are stopped.
    {8, 0.30, {"stop 0", "stop 1", "stop 2", "stop 3", "stop 5", "stop 6", "stop 7", "stop 8"}},
};

void Play(SearchAlgorithm& asha, Coordinator& coordinator, size_t from, size_t to, double sign) {
  for (size_t i = from; i < to; ++i) {
    coordinator.Reach(asha, kScript[i].trial, sign * kScript[i].objective);
    EXPECT_EQ(coordinator.Suggest(asha), kScript[i].expected)
        << "after trial " << kScript[i].trial << " reported " << kScript[i].objective;
    EXPECT_EQ(asha.Finished(), i + 1 == kScript.size());
  }
}

TEST(AshaTest, PromotesExactlyTheHandComputedTrialsWhenMinimizing) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> asha = MakeAsha(Context(space, 1, 9, 9, /*minimize=*/true));
  Coordinator coordinator(2, 9);
  EXPECT_EQ(coordinator.Suggest(*asha), kFirstRequests);
  Play(*asha, coordinator, 0, kScript.size(), 1.0);
  EXPECT_TRUE(asha->Finished());
  EXPECT_TRUE(coordinator.all_ended());
  EXPECT_TRUE(coordinator.Suggest(*asha).empty());
}

TEST(AshaTest, MaximizingTheNegatedObjectivesPromotesTheSameTrials) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> asha = MakeAsha(Context(space, 1, 9, 9, /*minimize=*/false));
  Coordinator coordinator(2, 9);
  EXPECT_EQ(coordinator.Suggest(*asha), kFirstRequests);
  Play(*asha, coordinator, 0, kScript.size(), -1.0);
  EXPECT_TRUE(asha->Finished());
}

TEST(AshaTest, RestoredMidRunGivesTheSameNextRequests) {
  const stage_tree::SearchSpace space = Space();
  for (const std::string sampler : {"random", "tpe"}) {
    AlgorithmContext context = Context(space, 1, 9, 9, true);
    context.config.mutable_asha()->set_sampler(sampler);
    context.config.mutable_tpe()->set_n_startup_trials(3);
    std::unique_ptr<SearchAlgorithm> original = MakeAsha(context);
    Coordinator coordinator(2, 9);
    coordinator.Suggest(*original);
    Play(*original, coordinator, 0, 7, 1.0);
    std::unique_ptr<SearchAlgorithm> restored = MakeAsha(context);
    ASSERT_TRUE(restored->LoadState(original->SaveState()).ok());
    EXPECT_EQ(restored->SaveState(), original->SaveState());
    Coordinator coordinator_of_restored = coordinator;
    Play(*original, coordinator, 7, kScript.size(), 1.0);
    Play(*restored, coordinator_of_restored, 7, kScript.size(), 1.0);
    for (TrialNumber trial = 0; trial < coordinator.trial_count(); ++trial) {
      EXPECT_EQ(coordinator.point(trial), coordinator_of_restored.point(trial)) << sampler;
    }
    EXPECT_EQ(restored->SaveState(), original->SaveState());
  }
}

TEST(AshaTest, NewTrialsRespectCapacityAndPromotionsTakeSlots) {
  const stage_tree::SearchSpace space = Space();
  std::unique_ptr<SearchAlgorithm> asha = MakeAsha(Context(space, 1, 9, 20, true));
  EXPECT_EQ(asha->Suggest(0).size(), 0u);
  EXPECT_EQ(asha->Suggest(3).size(), 3u);
  for (TrialNumber trial = 0; trial < 3; ++trial) {
    asha->OnMetric(trial, 0, static_cast<double>(trial));
    asha->OnTrialReachedTarget(trial, 1);
  }
  // Trial 0 is promotable; one free slot: the promotion takes it.
  const std::vector<Request> requests = asha->Suggest(1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].kind, Request::Kind::kExtend);
  // With capacity, new trials fill the free slots (trial 0 is promoted already).
  asha->OnMetric(0, 2, 0.0);
  asha->OnTrialReachedTarget(0, 3);
  EXPECT_EQ(asha->Suggest(3).size(), 3u);
  // A promotion is never held back for want of capacity: rung 0 now has 6 trials, its top 2
  // are trials 5 and 4, both paused there.
  for (TrialNumber trial = 3; trial < 6; ++trial) {
    asha->OnMetric(trial, 0, -1.0 * static_cast<double>(trial));
    asha->OnTrialReachedTarget(trial, 1);
  }
  const std::vector<Request> promotions = asha->Suggest(0);
  ASSERT_EQ(promotions.size(), 2u);
  EXPECT_EQ(promotions[0].kind, Request::Kind::kExtend);
  EXPECT_EQ(promotions[0].trial, 5);
  EXPECT_EQ(promotions[1].trial, 4);
}

// Whether `trial` is in the top floor(|rung| / η) of `rung` (objectives by trial; ties rank the
// earlier trial first), computed independently of Asha.
bool InTopOfRung(const std::map<TrialNumber, double>& rung, TrialNumber trial, bool minimize) {
  const double value = rung.at(trial);
  int64_t better = 0;
  for (const auto& [other, other_value] : rung) {
    const bool other_better = minimize ? other_value < value : other_value > value;
    better += other_better || (other_value == value && other < trial);
  }
  return better < static_cast<int64_t>(rung.size()) / 3;
}

// W2's settings with 8 workers finishing in a pseudo-random order and a deterministic learning
// curve. Against an independent oracle, after every Suggest: each promotion was allowed (the
// trial is in the top 1/η of its rung), and no paused trial is left that could be promoted
// (promotion as soon as the rung allows). Every trial goes through the rungs in order, once
// each; all 256 are proposed and the study ends with every trial ended.
TEST(AshaTest, W2RunPromotesAsSoonAsAllowedAndOnlyWhenAllowed) {
  const stage_tree::SearchSpace space = Space();
  for (const std::string sampler : {"random", "tpe"}) {
    AlgorithmContext context = Context(space, 5, 120, 256, true);
    context.config.mutable_asha()->set_reduction_factor(3);
    context.config.mutable_asha()->set_sampler(sampler);
    std::unique_ptr<SearchAlgorithm> asha = MakeAsha(context);
    const std::vector<Step> rungs = {5, 15, 45, 120};
    Coordinator coordinator(8, 120);
    auto loss = [&](TrialNumber trial, Step step) {
      const stage_tree::Point& point = coordinator.point(trial);
      const double lr = std::get<double>(point[0]);
      const double quality =
          std::abs(std::log10(lr) + 2) + (std::get<std::string>(point[1]) == "adam" ? 0 : 0.3);
      return quality + 5.0 / static_cast<double>(step);
    };
    std::vector<std::map<TrialNumber, double>> rung_objectives(rungs.size());
    auto check_promotions = [&] {
      for (const auto& [trial, target] : coordinator.extended()) {
        const auto k =
            static_cast<size_t>(std::find(rungs.begin(), rungs.end(), target) - rungs.begin() - 1);
        ASSERT_LT(k + 1, rungs.size());
        EXPECT_TRUE(InTopOfRung(rung_objectives[k], trial, true)) << "trial " << trial;
      }
      for (TrialNumber trial = 0; trial < coordinator.trial_count(); ++trial) {
        const size_t k = coordinator.targets(trial).size() - 1;
        if (coordinator.paused(trial) && k + 1 < rungs.size() &&
            rung_objectives[k].count(trial) > 0) {
          EXPECT_FALSE(InTopOfRung(rung_objectives[k], trial, true)) << "trial " << trial;
        }
      }
    };
    std::mt19937_64 order = SeededGenerator(1, 0, 0);
    coordinator.Suggest(*asha);
    for (int events = 0; events < 10000 && coordinator.Running() > 0; ++events) {
      const std::vector<TrialNumber> running = coordinator.running();
      const TrialNumber trial = running[order() % running.size()];
      const Step target = coordinator.target(trial);
      const double objective = loss(trial, target);
      rung_objectives[coordinator.targets(trial).size() - 1][trial] = objective;
      coordinator.Reach(*asha, trial, objective);
      coordinator.Suggest(*asha);
      check_promotions();
    }
    EXPECT_TRUE(asha->Finished()) << sampler;
    EXPECT_TRUE(coordinator.all_ended()) << sampler;
    EXPECT_EQ(coordinator.trial_count(), 256) << sampler;
    std::vector<int64_t> reached(rungs.size(), 0);
    for (TrialNumber trial = 0; trial < coordinator.trial_count(); ++trial) {
      const std::vector<Step>& targets = coordinator.targets(trial);
      ASSERT_LE(targets.size(), rungs.size());
      for (size_t k = 0; k < targets.size(); ++k) {
        EXPECT_EQ(targets[k], rungs[k]) << "trial " << trial;
        ++reached[k];
      }
    }
    std::cout << "W2 with sampler " << sampler
              << ": trials reaching rungs 5/15/45/120: " << reached[0] << "/" << reached[1] << "/"
              << reached[2] << "/" << reached[3] << "\n";
  }
}

TEST(AshaTest, TrialsReachingAMaxResourceBelowMaxStepsAreStopped) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space, 1, 20, 3, true);
  context.config.mutable_asha()->set_max_resource(3);
  std::unique_ptr<SearchAlgorithm> asha = MakeAsha(context);
  Coordinator coordinator(3, 20);
  EXPECT_EQ(coordinator.Suggest(*asha),
            (std::vector<std::string>{"new 0 ->1", "new 1 ->1", "new 2 ->1"}));
  coordinator.Reach(*asha, 0, 0.1);
  coordinator.Reach(*asha, 1, 0.2);
  EXPECT_TRUE(coordinator.Suggest(*asha).empty());
  coordinator.Reach(*asha, 2, 0.3);
  EXPECT_EQ(coordinator.Suggest(*asha), (std::vector<std::string>{"extend 0 ->3"}));
  coordinator.Reach(*asha, 0, 0.05);
  EXPECT_EQ(coordinator.Suggest(*asha), (std::vector<std::string>{"stop 0", "stop 1", "stop 2"}));
  EXPECT_TRUE(asha->Finished());
}

TEST(AshaTest, ConfigErrorsNameTheField) {
  const stage_tree::SearchSpace space = Space();
  auto error = [&](const std::function<void(v1::AshaConfig&)>& edit) {
    AlgorithmContext context = Context(space, 1, 9, 9, true);
    edit(*context.config.mutable_asha());
    absl::StatusOr<std::unique_ptr<SearchAlgorithm>> asha = Asha::Create(context);
    return asha.ok() ? std::string() : std::string(asha.status().message());
  };
  EXPECT_NE(error([](v1::AshaConfig& c) {
              c.set_reduction_factor(1);
            }).find("algorithm.asha.reduction_factor: must be > 1"),
            std::string::npos);
  EXPECT_NE(
      error([](v1::AshaConfig& c) { c.set_max_resource(10); }).find("algorithm.asha.max_resource"),
      std::string::npos);
  EXPECT_NE(
      error([](v1::AshaConfig& c) { c.set_min_resource(12); }).find("algorithm.asha.min_resource"),
      std::string::npos);
  EXPECT_NE(error([](v1::AshaConfig& c) { c.set_sampler("bohb"); }).find("algorithm.asha.sampler"),
            std::string::npos);
  EXPECT_EQ(error([](v1::AshaConfig&) {}), "");
}

}  // namespace
}  // namespace hippo::search_algos
