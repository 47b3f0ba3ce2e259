#include "search_algos/tpe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <numbers>
#include <set>
#include <utility>
#include <vector>

#include "search_algos/point_sampler.h"
#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;
using stage_tree::Point;

constexpr Step kMaxSteps = 10;

void AddFloat(v1::SearchSpace& proto, const std::string& name, double low, double high,
              bool log = false, double step = 0) {
  v1::Parameter* parameter = proto.add_parameters();
  parameter->set_name(name);
  parameter->mutable_float_()->set_low(low);
  parameter->mutable_float_()->set_high(high);
  parameter->mutable_float_()->set_log(log);
  parameter->mutable_float_()->set_step(step);
}

void AddInt(v1::SearchSpace& proto, const std::string& name, int64_t low, int64_t high,
            bool log = false) {
  v1::Parameter* parameter = proto.add_parameters();
  parameter->set_name(name);
  parameter->mutable_int_()->set_low(low);
  parameter->mutable_int_()->set_high(high);
  parameter->mutable_int_()->set_log(log);
}

void AddChoice(v1::SearchSpace& proto, const std::string& name,
               const std::vector<std::string>& values) {
  v1::Parameter* parameter = proto.add_parameters();
  parameter->set_name(name);
  for (const std::string& value : values) {
    parameter->mutable_categorical()->add_values()->set_string_value(value);
  }
}

AlgorithmContext Context(const stage_tree::SearchSpace& space, uint64_t seed, int64_t max_trials,
                         bool minimize) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = kMaxSteps;
  context.max_trials = max_trials;
  context.seed = seed;
  context.minimize = minimize;
  context.config.set_name("tpe");
  return context;
}

std::unique_ptr<SearchAlgorithm> MakeTpe(const AlgorithmContext& context) {
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> tpe =
      AlgorithmRegistry::Global().Create("tpe", context);
  EXPECT_TRUE(tpe.ok()) << tpe.status();
  return tpe.ok() ? *std::move(tpe) : nullptr;
}

// The coordinator's events for a trial trained to max_steps with `objective`.
void Complete(SearchAlgorithm& algorithm, TrialNumber trial, double objective) {
  algorithm.OnMetric(trial, kMaxSteps - 1, objective);
  algorithm.OnTrialReachedTarget(trial, kMaxSteps);
  algorithm.OnTrialEnded(trial, TrialOutcome::kCompleted);
}

using Objective = std::function<double(const Point&)>;

double Number(const Point& point, size_t dimension) { return std::get<double>(point[dimension]); }

// Runs `algorithm` one trial at a time (one worker); returns the best objective.
double BestOfSequentialRun(SearchAlgorithm& algorithm, const Objective& objective, int trials,
                           bool minimize) {
  double best =
      minimize ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  for (int trial = 0; trial < trials; ++trial) {
    const std::vector<Request> requests = algorithm.Suggest(1);
    EXPECT_EQ(requests.size(), 1u);
    if (requests.size() != 1) return best;
    EXPECT_EQ(requests[0].kind, Request::Kind::kNewTrial);
    EXPECT_EQ(requests[0].target, kMaxSteps);
    const double value = objective(requests[0].point);
    Complete(algorithm, trial, value);
    best = minimize ? std::min(best, value) : std::max(best, value);
  }
  return best;
}

double BestOfRandomSearch(const stage_tree::SearchSpace& space, uint64_t seed,
                          const Objective& objective, int trials, bool minimize) {
  double best =
      minimize ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  for (int trial = 0; trial < trials; ++trial) {
    const double value = objective(SamplePoint(space, seed, trial));
    best = minimize ? std::min(best, value) : std::max(best, value);
  }
  return best;
}

struct Comparison {
  double tpe_regret = 0;  // mean over seeds of |best - optimum|
  double random_regret = 0;
};

Comparison CompareWithRandomSearch(const stage_tree::SearchSpace& space, const Objective& objective,
                                   double optimum, bool minimize, const std::string& name) {
  constexpr int kSeeds = 10;
  constexpr int kTrials = 60;
  Comparison comparison;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    std::unique_ptr<SearchAlgorithm> tpe = MakeTpe(Context(space, seed, kTrials, minimize));
    comparison.tpe_regret +=
        std::abs(BestOfSequentialRun(*tpe, objective, kTrials, minimize) - optimum) / kSeeds;
    comparison.random_regret +=
        std::abs(BestOfRandomSearch(space, seed, objective, kTrials, minimize) - optimum) / kSeeds;
    EXPECT_TRUE(tpe->Finished());
  }
  std::cout << name << ": mean regret after " << kTrials << " trials over " << kSeeds
            << " seeds: tpe " << comparison.tpe_regret << ", random " << comparison.random_regret
            << "\n";
  return comparison;
}

TEST(TpeTest, BeatsRandomSearchOnAShiftedSphere) {
  v1::SearchSpace proto;
  AddFloat(proto, "x", -5, 5);
  AddFloat(proto, "y", -5, 5);
  AddFloat(proto, "z", -5, 5);
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(proto);
  auto sphere = [](const Point& point) {
    return std::pow(Number(point, 0) - 1.3, 2) + std::pow(Number(point, 1) + 2.1, 2) +
           std::pow(Number(point, 2) - 0.7, 2);
  };
  const Comparison result =
      CompareWithRandomSearch(space, sphere, 0.0, /*minimize=*/true, "shifted sphere (3 floats)");
  EXPECT_LT(result.tpe_regret, 0.5 * result.random_regret);
}

TEST(TpeTest, BeatsRandomSearchOnBranin) {
  v1::SearchSpace proto;
  AddFloat(proto, "x1", -5, 10);
  AddFloat(proto, "x2", 0, 15);
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(proto);
  auto branin = [](const Point& point) {
    const double x1 = Number(point, 0);
    const double x2 = Number(point, 1);
    constexpr double kPi = std::numbers::pi;
    const double b = 5.1 / (4 * kPi * kPi);
    const double c = 5 / kPi;
    const double t = 1 / (8 * kPi);
    return std::pow(x2 - b * x1 * x1 + c * x1 - 6, 2) + 10 * (1 - t) * std::cos(x1) + 10;
  };
  const Comparison result =
      CompareWithRandomSearch(space, branin, 0.397887, /*minimize=*/true, "branin (2 floats)");
  EXPECT_LT(result.tpe_regret, 0.7 * result.random_regret);
}

// A choice, a log float, an int and a float with a step, maximised.
TEST(TpeTest, BeatsRandomSearchOnMixedSpaceWhenMaximizing) {
  v1::SearchSpace proto;
  AddChoice(proto, "optimizer", {"sgd", "adam", "rmsprop", "adagrad", "lamb", "lion"});
  AddFloat(proto, "lr", 1e-6, 1, /*log=*/true);
  AddInt(proto, "layers", 1, 16);
  AddFloat(proto, "dropout", 0, 0.8, /*log=*/false, /*step=*/0.05);
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(proto);
  auto accuracy = [](const Point& point) {
    const std::string& optimizer = std::get<std::string>(point[0]);
    const double bonus = optimizer == "adam" ? 1.0 : optimizer == "lamb" ? 0.6 : 0.0;
    return bonus - std::pow(std::log10(Number(point, 1)) + 2.5, 2) -
           0.05 * std::pow(Number(point, 2) - 11, 2) - 4 * std::pow(Number(point, 3) - 0.3, 2);
  };
  const Comparison result = CompareWithRandomSearch(space, accuracy, 1.0, /*minimize=*/false,
                                                    "choice + log float + int + stepped float");
  EXPECT_LT(result.tpe_regret, 0.7 * result.random_regret);
}

stage_tree::SearchSpace MixedSpace() {
  v1::SearchSpace proto;
  AddFloat(proto, "lr", 1e-4, 1e-1, /*log=*/true);
  AddInt(proto, "depth", 2, 6);
  AddInt(proto, "width", 8, 512, /*log=*/true);
  AddFloat(proto, "momentum", 0.5, 0.99, /*log=*/false, /*step=*/0.01);
  AddChoice(proto, "optimizer", {"sgd", "adam"});
  v1::Parameter* lr_schedule = proto.add_parameters();
  lr_schedule->set_name("schedule");
  v1::StepDecaySequence* decay = lr_schedule->mutable_sequence()->mutable_step_decay();
  decay->mutable_initial()->mutable_choices()->add_values(0.1);
  decay->mutable_initial()->mutable_choices()->add_values(0.05);
  decay->mutable_gamma()->set_value(0.1);
  v1::StepList* first = decay->mutable_milestones()->add_choices();
  first->add_steps(3);
  first->add_steps(6);
  v1::StepList* second = decay->mutable_milestones()->add_choices();
  second->add_steps(5);
  absl::StatusOr<stage_tree::SearchSpace> space = stage_tree::SearchSpaceFromProto(proto);
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

// A deterministic objective over MixedSpace's numbers.
double MixedObjective(const Point& point) {
  return std::pow(std::log10(Number(point, 0)) + 2, 2) + 0.1 * Number(point, 1) +
         std::abs(std::log2(Number(point, 2)) - 6) + std::abs(Number(point, 3) - 0.9);
}

TEST(TpeTest, SuggestionsStayInTheSpaceOnEveryKindOfDimension) {
  const stage_tree::SearchSpace space = MixedSpace();
  ASSERT_EQ(space.dimensions.size(), 7u);
  std::unique_ptr<SearchAlgorithm> tpe = MakeTpe(Context(space, 3, 40, true));
  for (TrialNumber trial = 0; trial < 40; ++trial) {
    const std::vector<Request> requests = tpe->Suggest(1);
    ASSERT_EQ(requests.size(), 1u);
    const Point& point = requests[0].point;
    ASSERT_EQ(point.size(), space.dimensions.size());
    for (size_t d = 0; d < point.size(); ++d) {
      const stage_tree::Dimension& dimension = space.dimensions[d];
      if (dimension.kind == stage_tree::DimensionKind::kChoice) {
        EXPECT_NE(std::find(dimension.choices.begin(), dimension.choices.end(), point[d]),
                  dimension.choices.end())
            << dimension.name;
        continue;
      }
      const double value = Number(point, d);
      EXPECT_GE(value, dimension.low) << dimension.name;
      EXPECT_LE(value, dimension.high) << dimension.name;
      if (dimension.kind == stage_tree::DimensionKind::kInt) {
        EXPECT_EQ(value, std::round(value)) << dimension.name;
      } else if (dimension.step > 0) {
        const double steps = (value - dimension.low) / dimension.step;
        EXPECT_NEAR(steps, std::round(steps), 1e-6) << dimension.name;
      }
    }
    Complete(*tpe, trial, MixedObjective(point));
  }
}

TEST(TpeTest, FirstStartupTrialsAreRandomSearchPoints) {
  const stage_tree::SearchSpace space = MixedSpace();
  std::unique_ptr<SearchAlgorithm> tpe = MakeTpe(Context(space, 5, 30, true));
  for (TrialNumber trial = 0; trial < 10; ++trial) {
    const std::vector<Request> requests = tpe->Suggest(1);
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].point, SamplePoint(space, 5, trial));
    Complete(*tpe, trial, MixedObjective(requests[0].point));
  }
  // The model is in use from the eleventh trial on.
  EXPECT_NE(tpe->Suggest(1)[0].point, SamplePoint(space, 5, 10));
}

// A fixed event sequence with two trials in flight: each round proposes what the capacity
// allows, then the older trial ends (every seventh fails, the others complete).
struct TwoInFlight {
  std::vector<Point> Run(SearchAlgorithm& algorithm, TrialNumber rounds) {
    std::vector<Point> proposed;
    for (TrialNumber round = 0; round < rounds; ++round) {
      for (const Request& request : algorithm.Suggest(points.empty() ? 2 : 1)) {
        points[static_cast<TrialNumber>(points.size())] = request.point;
        proposed.push_back(request.point);
      }
      if (next_to_end % 7 == 3) {
        algorithm.OnTrialEnded(next_to_end, TrialOutcome::kFailed);
      } else {
        Complete(algorithm, next_to_end, MixedObjective(points.at(next_to_end)));
      }
      ++next_to_end;
    }
    return proposed;
  }

  std::map<TrialNumber, Point> points;  // every trial proposed
  TrialNumber next_to_end = 0;
};

TEST(TpeTest, SameSeedAndEventsGiveSamePoints) {
  const stage_tree::SearchSpace space = MixedSpace();
  std::unique_ptr<SearchAlgorithm> a = MakeTpe(Context(space, 11, 50, true));
  std::unique_ptr<SearchAlgorithm> b = MakeTpe(Context(space, 11, 50, true));
  std::unique_ptr<SearchAlgorithm> other_seed = MakeTpe(Context(space, 12, 50, true));
  const std::vector<Point> from_a = TwoInFlight().Run(*a, 30);
  EXPECT_EQ(from_a.size(), 31u);
  EXPECT_EQ(from_a, TwoInFlight().Run(*b, 30));
  EXPECT_NE(from_a, TwoInFlight().Run(*other_seed, 30));
}

TEST(TpeTest, RestoredStateGivesTheSameNextSuggestions) {
  const stage_tree::SearchSpace space = MixedSpace();
  std::unique_ptr<SearchAlgorithm> original = MakeTpe(Context(space, 21, 60, true));
  TwoInFlight events;
  events.Run(*original, 25);  // trial 25 is proposed and still running
  const std::string state = original->SaveState();
  std::unique_ptr<SearchAlgorithm> restored = MakeTpe(Context(space, 21, 60, true));
  ASSERT_TRUE(restored->LoadState(state).ok());
  EXPECT_EQ(restored->SaveState(), state);
  TwoInFlight same_events = events;
  EXPECT_EQ(events.Run(*original, 20), same_events.Run(*restored, 20));
  EXPECT_EQ(restored->SaveState(), original->SaveState());

  EXPECT_FALSE(restored->LoadState("garbage").ok());
  EXPECT_FALSE(restored->LoadState("tpe\ntrial running - 1 2 3\n").ok());
}

// Recovery from the journal: a snapshot, then the deltas taken after it in order, leaves the
// algorithm as it was, so it continues with the suggestions of one that never stopped.
TEST(TpeTest, SnapshotPlusDeltasGiveTheSameNextSuggestions) {
  const stage_tree::SearchSpace space = MixedSpace();
  std::unique_ptr<SearchAlgorithm> original = MakeTpe(Context(space, 23, 80, true));
  ASSERT_TRUE(original->SupportsStateDelta());
  TwoInFlight events;
  events.Run(*original, 10);
  const std::string snapshot = original->SaveState();
  original->TakeStateDelta();  // covered by the snapshot
  std::vector<std::string> deltas;
  for (int rounds : {1, 4, 9}) {
    events.Run(*original, rounds);
    deltas.push_back(original->TakeStateDelta());
    EXPECT_FALSE(deltas.back().empty());
  }
  // A metric of a running trial, told without its end, is a change too.
  original->OnMetric(events.next_to_end, 3, 0.25);
  deltas.push_back(original->TakeStateDelta());
  EXPECT_TRUE(original->TakeStateDelta().empty());  // nothing changed since

  std::unique_ptr<SearchAlgorithm> restored = MakeTpe(Context(space, 23, 80, true));
  ASSERT_TRUE(restored->LoadState(snapshot).ok());
  for (const std::string& delta : deltas) ASSERT_TRUE(restored->ApplyStateDelta(delta).ok());
  EXPECT_EQ(restored->SaveState(), original->SaveState());
  EXPECT_TRUE(restored->TakeStateDelta().empty());
  TwoInFlight same_events = events;
  EXPECT_EQ(events.Run(*original, 25), same_events.Run(*restored, 25));
  EXPECT_EQ(restored->SaveState(), original->SaveState());
  EXPECT_EQ(restored->TakeStateDelta(), original->TakeStateDelta());

  // A delta that skips trials, or is not one, is refused.
  EXPECT_FALSE(restored->ApplyStateDelta("trial 1000 running - 1 2 3\n").ok());
  EXPECT_FALSE(restored->ApplyStateDelta("garbage\n").ok());
}

TEST(TpeTest, StopsProposingAtMaxTrials) {
  const stage_tree::SearchSpace space = MixedSpace();
  std::unique_ptr<SearchAlgorithm> tpe = MakeTpe(Context(space, 1, 0, true));
  EXPECT_EQ(tpe->Suggest(1000).size(), 100u);  // the default
  EXPECT_TRUE(tpe->Finished());
  EXPECT_TRUE(tpe->Suggest(10).empty());
}

TEST(TpeTest, ConfigErrorsNameTheField) {
  const stage_tree::SearchSpace space = MixedSpace();
  AlgorithmContext context = Context(space, 1, 10, true);
  context.config.mutable_tpe()->set_gamma(1.5);
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> tpe = TpeSearch::Create(context);
  ASSERT_FALSE(tpe.ok());
  EXPECT_NE(tpe.status().message().find("algorithm.tpe.gamma"), std::string::npos);
  context.config.mutable_tpe()->set_gamma(0.25);
  context.config.mutable_tpe()->set_n_ei_candidates(-1);
  EXPECT_FALSE(TpeSearch::Create(context).ok());
}

// ASHA's use: results of a higher level (rung) rank above any result of a lower one.
TEST(TpeSamplerTest, HigherLevelResultsFormTheGoodGroup) {
  v1::SearchSpace proto;
  AddFloat(proto, "x", 0, 10);
  const stage_tree::SearchSpace space = *stage_tree::SearchSpaceFromProto(proto);
  TpeSampler sampler(space, 1, /*minimize=*/true, TpeParameters{});
  // Level 0: excellent objectives near x = 2; level 1 (promoted further): worse ones near 8.
  for (TrialNumber trial = 0; trial < 30; ++trial) {
    const double x = 1.5 + 0.04 * static_cast<double>(trial);
    sampler.Observe(trial, Point{x}, 0.01 * static_cast<double>(trial), /*level=*/0);
  }
  for (TrialNumber trial = 30; trial < 40; ++trial) {
    const double x = 7.5 + 0.1 * static_cast<double>(trial - 30);
    sampler.Observe(trial, Point{x}, 5.0, /*level=*/1);
  }
  int near_eight = 0;
  for (uint64_t index = 40; index < 90; ++index) {
    near_eight += std::abs(std::get<double>(sampler.Sample(index)[0]) - 8) < 1.5;
  }
  EXPECT_GE(near_eight, 40);
}

// The trials whose results a bounded model uses: the best max_good (lower value first, then
// earlier trial) and the newest max_bad others.
std::set<TrialNumber> BestAndNewest(const std::vector<double>& values,
                                    const TpeParameters& parameters) {
  std::vector<std::pair<double, TrialNumber>> ranked;
  for (TrialNumber trial = 0; trial < static_cast<TrialNumber>(values.size()); ++trial) {
    ranked.emplace_back(values[trial], trial);
  }
  std::sort(ranked.begin(), ranked.end());
  std::set<TrialNumber> good;
  for (int64_t i = 0; i < parameters.max_good; ++i) good.insert(ranked[i].second);
  std::set<TrialNumber> kept = good;
  int64_t bad = 0;
  for (auto trial = static_cast<TrialNumber>(values.size()) - 1;
       trial >= 0 && bad < parameters.max_bad; --trial) {
    if (!good.contains(trial)) {
      kept.insert(trial);
      ++bad;
    }
  }
  return kept;
}

// The model is bounded: after 3 000 results a suggestion depends only on the best max_good and
// the newest max_bad others, so a sampler that saw just those suggests the same points (and a
// suggestion costs the same however many results came before). Replacing a result re-ranks it.
TEST(TpeSamplerTest, ModelsOnlyTheBestAndTheNewestResults) {
  const stage_tree::SearchSpace space = MixedSpace();
  const TpeParameters parameters;
  constexpr TrialNumber kResults = 3000;
  std::vector<double> values;
  for (TrialNumber trial = 0; trial < kResults; ++trial) {
    values.push_back(std::fmod(static_cast<double>(trial) * 0.618034, 1.0));  // spread out
  }
  auto point_of = [&](TrialNumber trial) {
    return SamplePoint(space, 11, static_cast<uint64_t>(trial));
  };
  TpeSampler all(space, 4, /*minimize=*/true, parameters);
  for (TrialNumber trial = 0; trial < kResults; ++trial) {
    all.Observe(trial, point_of(trial), values[trial]);
  }
  auto expect_same_as_subset = [&](uint64_t first_index) {
    TpeSampler kept(space, 4, /*minimize=*/true, parameters);
    for (TrialNumber trial : BestAndNewest(values, parameters)) {
      kept.Observe(trial, point_of(trial), values[trial]);
    }
    ASSERT_EQ(kept.observation_count(), parameters.max_good + parameters.max_bad);
    for (uint64_t index = first_index; index < first_index + 20; ++index) {
      EXPECT_EQ(all.Sample(index), kept.Sample(index)) << index;
    }
  };
  expect_same_as_subset(kResults);
  const auto best =
      static_cast<TrialNumber>(std::min_element(values.begin(), values.end()) - values.begin());
  values[best] = 2.0;  // now the worst
  all.Observe(best, point_of(best), values[best]);
  expect_same_as_subset(kResults + 100);
}

TEST(TpeSamplerTest, EncodedPointsDecodeExactly) {
  const stage_tree::SearchSpace space = MixedSpace();
  for (uint64_t index = 0; index < 20; ++index) {
    const Point point = SamplePoint(space, 9, index);
    absl::StatusOr<Point> decoded = DecodePoint(space, EncodePoint(space, point));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, point);
  }
  EXPECT_FALSE(DecodePoint(space, "1 2").ok());
}

}  // namespace
}  // namespace hippo::search_algos
