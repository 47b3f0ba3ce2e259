// The `morphism` algorithm (search_algos/morphism.h): children that only grow a `grow`
// dimension of their parent inherit its state at its target (kMorph) and train child_steps
// more, whenever the parent can grow; a fully grown parent trains on by the identity morphism,
// then under another learning rate; one trained to max_steps has children from scratch; the best
// member never ages out; tournaments compare members among the readings after as many steps;
// the study ends with every member stopped; the state reads back exactly; bad configs name their
// field.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "search_algos/morphism.h"
#include "tests/support/fake_coordinator.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;
using stage_tree::Point;

// channels 4..16 step 4 and layers 1..3 (structural, grown by morphisms), lr one of two.
stage_tree::SearchSpace Space() {
  v1::SearchSpace proto;
  v1::Parameter* channels = proto.add_parameters();
  channels->set_name("channels");
  channels->mutable_int_()->set_low(4);
  channels->mutable_int_()->set_high(16);
  channels->mutable_int_()->set_step(4);
  channels->set_structural(true);
  v1::Parameter* layers = proto.add_parameters();
  layers->set_name("layers");
  layers->mutable_int_()->set_low(1);
  layers->mutable_int_()->set_high(3);
  layers->set_structural(true);
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  for (double value : {0.1, 0.05}) {
    lr->mutable_sequence()->mutable_constant()->mutable_choices()->add_values(value);
  }
  return *stage_tree::SearchSpaceFromProto(proto);
}

AlgorithmContext Context(const stage_tree::SearchSpace& space) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = 40;
  context.seed = 3;
  context.config.set_name("morphism");
  v1::MorphismConfig* morphism = context.config.mutable_morphism();
  morphism->set_population_size(4);
  morphism->set_sample_size(2);
  morphism->set_children(12);
  morphism->set_initial_steps(4);
  morphism->set_child_steps(2);
  morphism->add_grow("channels");
  morphism->add_grow("layers");
  return context;
}

// Bigger networks and more steps score higher.
double Accuracy(const Point& point, Step step) {
  return std::get<double>(point[0]) / 16 + std::get<double>(point[1]) / 3 +
         0.1 * static_cast<double>(step);
}

TEST(MorphismSearchTest, GrowingChildrenInheritTheirParentsStateAndTrainChildStepsMore) {
  const stage_tree::SearchSpace space = Space();
  test_support::StudyRunner runner(Context(space),
                                   test_support::StudyRunner::PointObjective(Accuracy));
  const std::vector<Request> requests = runner.Run();
  const auto& trials = runner.trials();
  ASSERT_EQ(trials.size(), 16u);
  int morphs = 0;
  for (size_t number = 4; number < trials.size(); ++number) {
    const test_support::FakeCoordinator::Trial& child = trials[number];
    if (!child.morphed) {
      EXPECT_EQ(child.targets.front(), 4) << "a child from scratch trains initial_steps";
      continue;
    }
    ++morphs;
    const test_support::FakeCoordinator::Trial& parent = trials.at(child.forked_from);
    // It inherits the parent's state at the parent's target and trains child_steps more.
    EXPECT_EQ(child.fork_step, parent.targets.front());
    EXPECT_EQ(child.targets.front(), child.fork_step + 2);
    // Its point grows one grow dimension by one step and keeps everything else, or keeps the
    // architecture (a parent with nothing left to grow trains on, see below).
    int grown = 0;
    for (size_t d = 0; d < 2; ++d) {
      if (child.point[d] == parent.point[d]) continue;
      EXPECT_GT(std::get<double>(child.point[d]), std::get<double>(parent.point[d]));
      ++grown;
    }
    EXPECT_LE(grown, 1);
    if (grown == 1) {
      EXPECT_EQ(child.point[2], parent.point[2]) << "a growing morph keeps lr";
    }
  }
  EXPECT_GT(morphs, 0);
  // The members were stopped at the end, and the study is finished.
  EXPECT_TRUE(runner.algorithm().Finished());
  EXPECT_TRUE(std::any_of(requests.begin(), requests.end(),
                          [](const Request& r) { return r.kind == Request::Kind::kStop; }));
}

TEST(MorphismSearchTest,
     AParentGrowsIfItCanElseTrainsOnElseTrainsOnUnderAnotherScheduleElseHasAChildFromScratch) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space);
  context.config.mutable_morphism()->set_children(24);
  // Chains of 4 generations: 4 steps from scratch, then 2 more a generation up to 12.
  context.max_steps = 12;
  test_support::StudyRunner runner(context, test_support::StudyRunner::PointObjective(Accuracy));
  runner.Run();
  const auto& algorithm = dynamic_cast<const MorphismEvolution&>(runner.algorithm());
  const auto& trials = runner.trials();
  ASSERT_EQ(trials.size(), 28u);
  int grown = 0;
  int chained = 0;
  int continued = 0;
  int rescheduled = 0;
  int scratch = 0;
  for (size_t number = 4; number < trials.size(); ++number) {
    const auto child = static_cast<TrialNumber>(number);
    const TrialNumber parent = algorithm.ParentOf(child);
    ASSERT_GE(parent, 0) << "child " << number;
    const Point& from = trials.at(parent).point;
    const bool steps_left = trials.at(parent).targets.front() + 2 <= 12;
    // What earlier children of the same parent did: a grow dimension grown, trained on, or
    // trained on under the other learning rate (lr has two values: one other schedule).
    bool grown_before[2] = {false, false};
    bool continued_before = false;
    bool rescheduled_before = false;
    for (size_t earlier = 4; earlier < number; ++earlier) {
      if (!trials[earlier].morphed || trials[earlier].forked_from != parent) continue;
      continued_before |= trials[earlier].point == from;
      rescheduled_before |= trials[earlier].point[0] == from[0] &&
                            trials[earlier].point[1] == from[1] &&
                            trials[earlier].point[2] != from[2];
      for (size_t d : {size_t{0}, size_t{1}}) {
        grown_before[d] |= trials[earlier].point[d] != from[d];
      }
    }
    // Channels (up to 16) or layers (up to 3) below their highest value, not grown before.
    const bool could_grow = steps_left && ((!grown_before[0] && std::get<double>(from[0]) < 16) ||
                                           (!grown_before[1] && std::get<double>(from[1]) < 3));
    const test_support::FakeCoordinator::Trial& made = trials[number];
    if (could_grow) {
      ASSERT_TRUE(made.morphed) << "child " << number << " of " << parent;
      EXPECT_NE(made.point, from) << "child " << number << " of " << parent;
      EXPECT_EQ(made.forked_from, parent);
      EXPECT_EQ(algorithm.InheritedFrom(child), parent);
      ++grown;
      if (algorithm.InheritedFrom(parent) >= 0) ++chained;
    } else if (steps_left && !continued_before) {
      ASSERT_TRUE(made.morphed) << "child " << number << " of " << parent;
      EXPECT_EQ(made.point, from) << "the identity morphism of trial " << parent;
      ++continued;
    } else if (steps_left && !rescheduled_before) {
      // Trained on again, under the other learning rate, from the parent's state at its target.
      ASSERT_TRUE(made.morphed) << "child " << number << " of " << parent;
      EXPECT_EQ(made.forked_from, parent);
      EXPECT_EQ(made.fork_step, trials.at(parent).targets.front());
      EXPECT_EQ(made.point[0], from[0]);
      EXPECT_EQ(made.point[1], from[1]);
      EXPECT_NE(made.point[2], from[2]) << "child " << number << " of " << parent;
      ++rescheduled;
    } else {
      EXPECT_FALSE(made.morphed) << "child " << number << " of " << parent;
      EXPECT_EQ(made.targets.front(), 4) << "a child from scratch trains initial_steps";
      ++scratch;
    }
  }
  EXPECT_GT(grown, 0);
  EXPECT_GT(chained, 0) << "no child of a morphed child inherited again";
  EXPECT_GT(continued, 0) << "no fully grown parent trained on";
  EXPECT_GT(rescheduled, 0) << "no parent trained on once trained on under another schedule";
  EXPECT_GT(scratch, 0) << "no parent trained to max_steps had a child";
}

TEST(MorphismSearchTest, TheBestMemberIsNeverAgedOutOfThePopulation) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space);
  context.config.mutable_morphism()->set_children(24);
  context.max_steps = 12;
  // Trial 1 is the best network of the study whatever its steps; the others read higher the later
  // they came and the longer they trained, but never as high.
  test_support::StudyRunner runner(
      context, test_support::StudyRunner::TrialObjective([](TrialNumber trial, Step step) {
        return trial == 1 ? 100.0 : 0.01 * static_cast<double>(trial) + static_cast<double>(step);
      }));
  const auto holds = [](const MorphismEvolution& algorithm, TrialNumber trial) {
    const auto& population = algorithm.population();
    return std::any_of(population.begin(), population.end(),
                       [&](const PopulationSearch::Member& member) { return member.trial == trial; });
  };
  bool joined = false;
  int checked = 0;
  runner.before_suggest = [&](SearchAlgorithm& algorithm) {
    const auto& morphism = dynamic_cast<const MorphismEvolution&>(algorithm);
    if (joined) {
      EXPECT_TRUE(holds(morphism, 1)) << "the best member left the population";
      ++checked;
    }
    joined |= holds(morphism, 1);
  };
  runner.Run();
  EXPECT_TRUE(joined);
  EXPECT_GT(checked, 10);
  // Aging still goes on around it: the other initial members, older than any child, left.
  const auto& algorithm = dynamic_cast<const MorphismEvolution&>(runner.algorithm());
  EXPECT_EQ(algorithm.population().size(), 4u);
  EXPECT_TRUE(holds(algorithm, 1));
  for (TrialNumber initial : {0, 2, 3}) EXPECT_FALSE(holds(algorithm, initial)) << initial;
}

// Standing is kept in an index of the readings per target (morphism.h, readings_); it must equal
// its definition, counted over every trial, with ties (half each, itself included), in both
// directions, and after the state is read back (the runner restores it before every Suggest).
TEST(MorphismSearchTest, StandingIsTheShareOfTheSameTargetReadingsBeatenWithTiesCountingHalf) {
  const stage_tree::SearchSpace space = Space();
  for (const bool minimize : {false, true}) {
    AlgorithmContext context = Context(space);
    context.minimize = minimize;
    context.config.mutable_morphism()->set_children(30);
    context.max_steps = 12;
    // Three quality levels only, so that many readings tie.
    const auto objective = [](TrialNumber trial, Step step) {
      return static_cast<double>(step) + 0.25 * static_cast<double>((trial * 7) % 3);
    };
    test_support::StudyRunner runner(context, test_support::StudyRunner::TrialObjective(objective),
                                     /*restore=*/true);
    int checked = 0;
    runner.before_suggest = [&](SearchAlgorithm& algorithm) {
      const auto& morphism = dynamic_cast<const MorphismEvolution&>(algorithm);
      const auto& trials = runner.trials();
      const auto read = [&](size_t trial) {
        return objective(static_cast<TrialNumber>(trial), trials[trial].targets.front() - 1);
      };
      for (size_t a = 0; a < trials.size(); ++a) {
        double beaten = 0;
        int readings = 0;
        for (size_t b = 0; b < trials.size(); ++b) {
          if (trials[b].targets.front() != trials[a].targets.front()) continue;
          ++readings;
          const bool better = minimize ? read(a) < read(b) : read(a) > read(b);
          beaten += better ? 1.0 : read(a) == read(b) ? 0.5 : 0.0;
        }
        EXPECT_DOUBLE_EQ(morphism.Standing(static_cast<TrialNumber>(a)), beaten / readings)
            << "trial " << a << (minimize ? " (minimize)" : " (maximize)");
        ++checked;
      }
    };
    runner.Run();
    EXPECT_GT(checked, 100);
  }
}

TEST(MorphismSearchTest, TournamentsCompareMembersAmongTheReadingsAfterAsManySteps) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext context = Context(space);
  context.config.mutable_morphism()->set_children(24);
  context.max_steps = 12;
  // A network trained longer reads higher for that alone (1 a step); among the readings after
  // as many steps, a trial's own quality (0 to 0.9, from its number) orders them.
  const auto objective = [](TrialNumber trial, Step step) {
    return static_cast<double>(step) + 0.1 * static_cast<double>((trial * 7) % 10);
  };
  test_support::StudyRunner runner(context, test_support::StudyRunner::TrialObjective(objective));
  runner.Run();
  const auto& algorithm = dynamic_cast<const MorphismEvolution&>(runner.algorithm());
  const auto& trials = runner.trials();
  // The trials read at each target, and their objectives there.
  std::map<Step, std::vector<TrialNumber>> by_target;
  for (size_t number = 0; number < trials.size(); ++number) {
    by_target[trials[number].targets.front()].push_back(static_cast<TrialNumber>(number));
  }
  const auto read = [&](TrialNumber trial) {
    return objective(trial, trials[trial].targets.front() - 1);
  };
  // A standing is the share of the same-target readings a trial beats: higher for a higher
  // objective, within (0, 1).
  for (const auto& [target, readings] : by_target) {
    for (TrialNumber a : readings) {
      EXPECT_GT(algorithm.Standing(a), 0.0);
      EXPECT_LT(algorithm.Standing(a), 1.0);
      for (TrialNumber b : readings) {
        if (read(a) > read(b)) {
          EXPECT_GT(algorithm.Standing(a), algorithm.Standing(b));
        }
      }
    }
  }
  // The best of the readings after the fewest steps beats the worst of those after the most (of
  // several readings), though the latter's objective is higher (it trained longer).
  std::erase_if(by_target, [](const auto& entry) { return entry.second.size() < 2; });
  ASSERT_GE(by_target.size(), 2u);
  const std::vector<TrialNumber>& young = by_target.begin()->second;
  const std::vector<TrialNumber>& old = by_target.rbegin()->second;
  const TrialNumber best_young =
      *std::max_element(young.begin(), young.end(),
                        [&](TrialNumber a, TrialNumber b) { return read(a) < read(b); });
  const TrialNumber worst_old =
      *std::min_element(old.begin(), old.end(),
                        [&](TrialNumber a, TrialNumber b) { return read(a) < read(b); });
  EXPECT_GT(read(worst_old), read(best_young));
  EXPECT_TRUE(algorithm.Beats(best_young, worst_old));
  EXPECT_FALSE(algorithm.Beats(worst_old, best_young));
}

// Per-layer widths as in examples/nas: layers 1..3, channels_0 always, channels_1 only for 2 or
// more layers, channels_2 only for 3.
stage_tree::SearchSpace ConditionalSpace() {
  v1::SearchSpace proto;
  v1::Parameter* layers = proto.add_parameters();
  layers->set_name("layers");
  layers->mutable_int_()->set_low(1);
  layers->mutable_int_()->set_high(3);
  layers->set_structural(true);
  for (int i = 0; i < 3; ++i) {
    v1::Parameter* channels = proto.add_parameters();
    channels->set_name("channels_" + std::to_string(i));
    channels->mutable_int_()->set_low(8);
    channels->mutable_int_()->set_high(16 * (i + 1));
    channels->mutable_int_()->set_step(8);
    channels->set_structural(true);
    if (i > 0) {
      channels->mutable_when()->set_param("layers");
      channels->mutable_when()->set_at_least(i + 1);
    }
  }
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  for (double value : {0.1, 0.05}) {
    lr->mutable_sequence()->mutable_constant()->mutable_choices()->add_values(value);
  }
  absl::StatusOr<stage_tree::SearchSpace> space = stage_tree::SearchSpaceFromProto(proto);
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

TEST(MorphismSearchTest, AMorphThatAppendsALayerGivesItTheWidthOfTheLayerBeforeIt) {
  const stage_tree::SearchSpace space = ConditionalSpace();
  AlgorithmContext context = Context(space);
  v1::MorphismConfig* morphism = context.config.mutable_morphism();
  morphism->set_children(40);
  morphism->clear_grow();
  for (const char* name : {"layers", "channels_0", "channels_1", "channels_2"}) {
    morphism->add_grow(name);
  }
  test_support::StudyRunner runner(
      context, test_support::StudyRunner::PointObjective([](const Point& point, Step step) {
        return std::get<double>(point[0]) + 0.1 * static_cast<double>(step);
      }));
  runner.Run();
  const auto& trials = runner.trials();
  int deepened = 0;
  for (size_t number = 4; number < trials.size(); ++number) {
    const test_support::FakeCoordinator::Trial& child = trials[number];
    if (!child.morphed) continue;
    const Point& parent = trials.at(child.forked_from).point;
    const auto layers = static_cast<size_t>(std::get<double>(parent[0]));
    if (std::get<double>(child.point[0]) == std::get<double>(parent[0])) continue;
    ++deepened;
    // The appended layer's width: the parent's last width, clamped up to its own range.
    const double last = std::get<double>(parent[layers]);
    const double appended = std::get<double>(child.point[layers + 1]);
    EXPECT_EQ(appended, std::max(last, 8.0)) << "child " << number;
    // The layers the parent has keep their widths.
    for (size_t i = 1; i <= layers; ++i) EXPECT_EQ(child.point[i], parent[i]);
  }
  EXPECT_GT(deepened, 0) << "no morph appended a layer";
}

// The rises of `channels` (steps of 4) in the morphs of studies (seeds 0 to 9) whose grow
// entries are `grow`.
std::vector<double> ChannelRises(const std::vector<std::string>& grow) {
  const stage_tree::SearchSpace space = Space();
  std::vector<double> rises;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    AlgorithmContext context = Context(space);
    context.seed = seed;
    v1::MorphismConfig* morphism = context.config.mutable_morphism();
    morphism->set_children(40);
    morphism->clear_grow();
    for (const std::string& entry : grow) morphism->add_grow(entry);
    test_support::StudyRunner runner(context,
                                     test_support::StudyRunner::PointObjective(Accuracy));
    runner.Run();
    for (const test_support::FakeCoordinator::Trial& child : runner.trials()) {
      if (!child.morphed) continue;
      const Point& parent = runner.trials().at(child.forked_from).point;
      const double rise = std::get<double>(child.point[0]) - std::get<double>(parent[0]);
      if (rise != 0) rises.push_back(rise);
    }
  }
  return rises;
}

TEST(MorphismSearchTest, AGrowEntryWithPlusNRisesByUpToNStepsAtOnce) {
  // channels (4..16 step 4) may rise by 1 to 3 steps at once; some morph takes more than one.
  const std::vector<double> jumps = ChannelRises({"channels+3", "layers"});
  ASSERT_FALSE(jumps.empty());
  for (double rise : jumps) {
    EXPECT_TRUE(rise == 4 || rise == 8 || rise == 12) << rise;
  }
  EXPECT_TRUE(std::any_of(jumps.begin(), jumps.end(), [](double rise) { return rise > 4; }))
      << "no morph rose by more than one step";
  // A plain entry (and NAME+1) rises by exactly one step, and NAME+1 makes the same study.
  const std::vector<double> steps = ChannelRises({"channels", "layers"});
  ASSERT_FALSE(steps.empty());
  for (double rise : steps) EXPECT_EQ(rise, 4);
  EXPECT_EQ(ChannelRises({"channels+1", "layers"}), steps);
}

TEST(MorphismSearchTest, RestoredFromItsSavedStateBeforeEverySuggestItMakesTheSameRequests) {
  const stage_tree::SearchSpace space = Space();
  test_support::StudyRunner straight(Context(space),
                                     test_support::StudyRunner::PointObjective(Accuracy));
  test_support::StudyRunner restored(
      Context(space), test_support::StudyRunner::PointObjective(Accuracy), /*restore=*/true);
  EXPECT_TRUE(test_support::SameRequests(straight.Run(), restored.Run()));
}

TEST(MorphismSearchTest, ConfigsWithoutStepsOrWithUnknownGrowDimensionsAreRefused) {
  const stage_tree::SearchSpace space = Space();
  AlgorithmContext no_steps = Context(space);
  no_steps.config.mutable_morphism()->set_child_steps(0);
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> refused = MorphismEvolution::Create(no_steps);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status()));
  EXPECT_NE(refused.status().message().find("algorithm.morphism.child_steps"), std::string::npos);

  AlgorithmContext unknown = Context(space);
  unknown.config.mutable_morphism()->add_grow("lr");
  refused = MorphismEvolution::Create(unknown);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status()));
  EXPECT_NE(refused.status().message().find("algorithm.morphism.grow: 'lr'"), std::string::npos);

  for (const char* entry : {"channels+0", "channels+x", "channels+"}) {
    AlgorithmContext bad_steps = Context(space);
    bad_steps.config.mutable_morphism()->add_grow(entry);
    refused = MorphismEvolution::Create(bad_steps);
    EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << entry;
    EXPECT_NE(refused.status().message().find(entry), std::string::npos) << entry;
  }

  v1::StudySpec spec;
  spec.mutable_budget()->set_max_steps(40);
  *spec.mutable_algorithm() = Context(space).config;
  spec.mutable_algorithm()->mutable_morphism()->clear_grow();
  const proto::Issue issue = MorphismEvolution::CheckConfig(spec.algorithm(), spec);
  ASSERT_TRUE(issue.has_value());
  EXPECT_EQ(issue->path, "algorithm.morphism.grow");
}

}  // namespace
}  // namespace hippo::search_algos
