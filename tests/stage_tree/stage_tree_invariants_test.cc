// The invariants of docs/concepts.md, checked on thousands of random trial sets against naive
// references that work step by step.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "stage_tree/stage_tree.h"
#include "tests/stage_tree/random_trials.h"

namespace hippo::stage_tree {
namespace {

using testing::ParameterNames;
using testing::RandomTrial;
using testing::RandomTrials;

constexpr int kTrialSets = 2000;

std::vector<double> ValuesOf(const TrialSequences& sequences, Step step) {
  std::vector<double> values;
  for (const auto& [name, sequence] : sequences) values.push_back(sequence.Evaluate(step));
  return values;
}

// Naive reference: an uncompressed trie with one node per (prefix, step). Its size is the
// size of the union of all trials' prefixes.
int64_t NaiveUniqueSteps(const std::vector<RandomTrial>& trials) {
  std::map<std::pair<int64_t, std::vector<double>>, int64_t> trie;
  for (const RandomTrial& trial : trials) {
    int64_t node = -1;
    for (Step step = 0; step < trial.target; ++step) {
      auto [it, inserted] = trie.try_emplace({node, ValuesOf(trial.sequences, step)},
                                             static_cast<int64_t>(trie.size()));
      node = it->second;
    }
  }
  return static_cast<int64_t>(trie.size());
}

// Concatenating a trial's path reproduces its values on every step of [0, target).
void ExpectPathsReproduceSequences(const StageTree& tree, const std::vector<RandomTrial>& trials,
                                   const std::vector<TrialId>& ids) {
  for (size_t i = 0; i < trials.size(); ++i) {
    const std::vector<NodeId> path = tree.Path(ids[i]);
    ASSERT_FALSE(path.empty());
    Step expected_start = 0;
    for (NodeId node : path) {
      const NodeView view = tree.node(node);
      ASSERT_EQ(view.start, expected_start) << "path of trial " << i << " has a gap";
      for (Step step = view.start; step < view.end; ++step) {
        ASSERT_EQ(tree.ValuesAt(node, step), ValuesOf(trials[i].sequences, step))
            << "trial " << i << " step " << step;
      }
      expected_start = view.end;
    }
    ASSERT_EQ(expected_start, trials[i].target);
    ASSERT_EQ(tree.Target(ids[i]), trials[i].target);
  }
}

void ExpectSiblingsDiffer(const StageTree& tree) {
  for (NodeId node = 0; node < tree.node_count(); ++node) {
    std::set<std::vector<double>> first_values;
    for (NodeId child : tree.Children(node)) {
      const NodeView view = tree.node(child);
      ASSERT_EQ(view.parent, node);
      ASSERT_EQ(view.start, tree.node(node).end) << "child " << child << " does not follow";
      ASSERT_LT(view.start, view.end);
      ASSERT_TRUE(first_values.insert(tree.ValuesAt(child, view.start)).second)
          << "siblings under " << node << " share their first step";
    }
  }
}

int64_t SumOfStageLengths(const StageTree& tree) {
  int64_t sum = 0;
  for (NodeId node = 1; node < tree.node_count(); ++node) {
    sum += tree.node(node).end - tree.node(node).start;
  }
  return sum;
}

// The tree up to node ids: each stage's steps and the (original) trials through it, sorted.
std::string Canonical(const StageTree& tree, NodeId node, const std::vector<size_t>& original) {
  const NodeView view = tree.node(node);
  std::vector<size_t> trials;
  for (TrialId trial : tree.TrialsThrough(node)) trials.push_back(original[trial]);
  std::sort(trials.begin(), trials.end());
  std::string text = "[" + std::to_string(view.start) + "," + std::to_string(view.end) + "){";
  for (size_t trial : trials) text += std::to_string(trial) + ",";
  std::vector<std::string> children;
  for (NodeId child : tree.Children(node)) children.push_back(Canonical(tree, child, original));
  std::sort(children.begin(), children.end());
  for (const std::string& child : children) text += child;
  return text + "}";
}

struct Built {
  StageTree tree;
  std::vector<TrialId> ids;      // by index in the trial set
  std::vector<size_t> original;  // by TrialId: index in the trial set
};

Built Build(const std::vector<RandomTrial>& trials, size_t parameters,
            const std::vector<size_t>& order) {
  Built built{StageTree("family", ParameterNames(parameters)), {}, {}};
  built.ids.resize(trials.size());
  for (size_t index : order) {
    absl::StatusOr<TrialId> id = built.tree.Insert(trials[index].sequences, trials[index].target);
    EXPECT_TRUE(id.ok()) << id.status();
    built.ids[index] = *id;
    built.original.push_back(index);
  }
  return built;
}

std::vector<size_t> Identity(size_t size) {
  std::vector<size_t> order(size);
  for (size_t i = 0; i < size; ++i) order[i] = i;
  return order;
}

TEST(StageTreeInvariantsTest, PathsSiblingsAndUniqueStepsMatchNaiveReference) {
  std::mt19937_64 random(20261125);
  for (int set = 0; set < kTrialSets; ++set) {
    const size_t parameters = 1 + random() % 3;
    const Step horizon = 4 + static_cast<Step>(random() % 40);
    const std::vector<RandomTrial> trials =
        RandomTrials(random, 1 + random() % 24, parameters, horizon, 2 + random() % 4);
    Built built = Build(trials, parameters, Identity(trials.size()));
    SCOPED_TRACE("trial set " + std::to_string(set));
    ExpectPathsReproduceSequences(built.tree, trials, built.ids);
    ExpectSiblingsDiffer(built.tree);
    EXPECT_EQ(built.tree.counts().unique_steps, NaiveUniqueSteps(trials));
    EXPECT_EQ(built.tree.counts().unique_steps, SumOfStageLengths(built.tree));
    int64_t trial_steps = 0;
    for (const RandomTrial& trial : trials) trial_steps += trial.target;
    EXPECT_EQ(built.tree.counts().trial_steps, trial_steps);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(StageTreeInvariantsTest, TreeDoesNotDependOnInsertionOrder) {
  std::mt19937_64 random(7);
  for (int set = 0; set < kTrialSets; ++set) {
    const size_t parameters = 1 + random() % 3;
    const Step horizon = 4 + static_cast<Step>(random() % 40);
    const std::vector<RandomTrial> trials =
        RandomTrials(random, 2 + random() % 20, parameters, horizon, 2 + random() % 4);
    std::vector<size_t> order = Identity(trials.size());
    const Built first = Build(trials, parameters, order);
    std::shuffle(order.begin(), order.end(), random);
    const Built second = Build(trials, parameters, order);
    ASSERT_EQ(Canonical(first.tree, kRootNode, first.original),
              Canonical(second.tree, kRootNode, second.original))
        << "trial set " << set;
    ASSERT_EQ(first.tree.node_count(), second.tree.node_count());
    ASSERT_EQ(first.tree.counts(), second.tree.counts());
  }
}

TEST(StageTreeInvariantsTest, ExtensionsKeepInvariantsAndDoNotDependOnOrder) {
  std::mt19937_64 random(11);
  for (int set = 0; set < kTrialSets / 2; ++set) {
    const size_t parameters = 1 + random() % 2;
    const Step horizon = 8 + static_cast<Step>(random() % 32);
    std::vector<RandomTrial> trials =
        RandomTrials(random, 2 + random() % 16, parameters, horizon, 2 + random() % 3);
    // Each trial first runs to an early rung, then some are extended (ASHA-like promotions).
    std::vector<Step> final_targets;
    for (RandomTrial& trial : trials) {
      final_targets.push_back(trial.target);
      trial.target = 1 + static_cast<Step>(random() % trial.target);
    }
    auto run = [&](std::vector<size_t> order) {
      Built built = Build(trials, parameters, order);
      std::shuffle(order.begin(), order.end(), random);
      for (size_t index : order) {
        if (final_targets[index] > trials[index].target) {
          EXPECT_TRUE(built.tree.Extend(built.ids[index], final_targets[index]).ok());
        }
      }
      return built;
    };
    std::vector<size_t> order = Identity(trials.size());
    const Built first = run(order);
    std::shuffle(order.begin(), order.end(), random);
    const Built second = run(order);

    std::vector<RandomTrial> extended = trials;
    for (size_t i = 0; i < extended.size(); ++i) extended[i].target = final_targets[i];
    SCOPED_TRACE("trial set " + std::to_string(set));
    ExpectPathsReproduceSequences(first.tree, extended, first.ids);
    ExpectSiblingsDiffer(first.tree);
    EXPECT_EQ(first.tree.counts().unique_steps, NaiveUniqueSteps(extended));
    EXPECT_EQ(Canonical(first.tree, kRootNode, first.original),
              Canonical(second.tree, kRootNode, second.original));
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(StageTreeInvariantsTest, ExplicitSplitsKeepPathsAndCounts) {
  std::mt19937_64 random(13);
  for (int set = 0; set < kTrialSets / 2; ++set) {
    const size_t parameters = 1 + random() % 3;
    const Step horizon = 8 + static_cast<Step>(random() % 32);
    const std::vector<RandomTrial> trials =
        RandomTrials(random, 1 + random() % 16, parameters, horizon, 2 + random() % 3);
    Built built = Build(trials, parameters, Identity(trials.size()));
    const StepCounts before = built.tree.counts();
    for (int split = 0; split < 5; ++split) {
      const NodeId node = 1 + static_cast<NodeId>(random() % (built.tree.node_count() - 1));
      const NodeView view = built.tree.node(node);
      if (view.end - view.start < 2) continue;
      const Step at = view.start + 1 + static_cast<Step>(random() % (view.end - view.start - 1));
      absl::StatusOr<SplitResult> result = built.tree.Split(node, at);
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->action, SplitAction::kNone);  // nothing ran yet
      EXPECT_EQ(built.tree.node(result->upper).end, at);
      EXPECT_EQ(built.tree.node(result->lower).start, at);
    }
    SCOPED_TRACE("trial set " + std::to_string(set));
    ExpectPathsReproduceSequences(built.tree, trials, built.ids);
    ExpectSiblingsDiffer(built.tree);
    EXPECT_EQ(built.tree.counts(), before);
    EXPECT_EQ(SumOfStageLengths(built.tree), before.unique_steps);
    if (::testing::Test::HasFailure()) return;
  }
}

// Executing the tree while trials keep arriving (which splits running and finished stages)
// trains exactly the unique steps plus the recomputation it counts.
TEST(StageTreeInvariantsTest, ExecutedStepsEqualUniqueStepsPlusCountedRecomputation) {
  std::mt19937_64 random(17);
  int64_t total_recomputed = 0;
  for (int set = 0; set < kTrialSets / 2; ++set) {
    const size_t parameters = 1 + random() % 2;
    const Step horizon = 8 + static_cast<Step>(random() % 32);
    const std::vector<RandomTrial> trials =
        RandomTrials(random, 2 + random() % 16, parameters, horizon, 2 + random() % 3);
    StageTree tree("family", ParameterNames(parameters));
    std::vector<NodeId> running;
    size_t next_trial = 0;
    while (true) {
      if (next_trial < trials.size() && random() % 2 == 0) {
        const RandomTrial& trial = trials[next_trial++];
        ASSERT_TRUE(tree.Insert(trial.sequences, trial.target).ok());
        continue;
      }
      // Running stages may have been split into several running parts; finish them all.
      if (!running.empty() && random() % 2 == 0) {
        const NodeId node = running[random() % running.size()];
        if (tree.node(node).state == StageState::kRunning) {
          if (random() % 4 == 0 && tree.node(node).end - tree.node(node).start > 1) {
            ASSERT_TRUE(tree.AddCheckpoint(node, tree.node(node).start + 1).ok());
          }
          ASSERT_TRUE(tree.MarkDone(node).ok());
        }
        std::erase(running, node);
        continue;
      }
      const std::vector<NodeId> ready = tree.ReadyNodes();
      std::vector<NodeId> scanned;
      for (NodeId node = 1; node < tree.node_count(); ++node) {
        if (tree.node(node).state == StageState::kReady) scanned.push_back(node);
      }
      ASSERT_EQ(ready, scanned) << "the ready set drifted from the node states";
      if (!ready.empty()) {
        const NodeId node = ready[random() % ready.size()];
        ASSERT_TRUE(tree.MarkRunning(node).ok());
        running.push_back(node);
        continue;
      }
      if (next_trial == trials.size() && running.empty()) {
        // Split parts of running stages are running too; finish any left.
        bool any = false;
        for (NodeId node = 1; node < tree.node_count(); ++node) {
          if (tree.node(node).state == StageState::kRunning) {
            running.push_back(node);
            any = true;
          }
        }
        if (!any) break;
      }
    }
    SCOPED_TRACE("trial set " + std::to_string(set));
    for (NodeId node = 1; node < tree.node_count(); ++node) {
      ASSERT_EQ(tree.node(node).state, StageState::kDone) << "stage " << node;
    }
    const StepCounts& counts = tree.counts();
    EXPECT_EQ(counts.executed_steps, counts.unique_steps + counts.recomputed_steps);
    EXPECT_EQ(counts.unique_steps, NaiveUniqueSteps(trials));
    total_recomputed += counts.recomputed_steps;
  }
  EXPECT_GT(total_recomputed, 0) << "the test never exercised recomputation";
}

}  // namespace
}  // namespace hippo::stage_tree
