// The stage priorities a family keeps up to date as trials are inserted (AddTrialPriorities)
// against the whole computation over the tree (stage_tree::RemainingCriticalPath).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "hippo/family_state.h"
#include "stage_tree/graph_view.h"

namespace hippo::coordinator {
namespace {

using stage_tree::NodeId;
using stage_tree::SegmentFunction;
using stage_tree::Sequence;
using stage_tree::StageState;
using stage_tree::Step;
using stage_tree::TrialId;

constexpr Step kHorizon = 100;

stage_tree::TrialSequences Schedule(double before, Step change, double after) {
  return {{"lr", *Sequence::FromSegments({{0, change, SegmentFunction::Constant(before)},
                                          {change, kHorizon, SegmentFunction::Constant(after)}})}};
}

// What the engine computes over the whole tree: every trial may still run to the horizon.
std::vector<double> WholeComputation(const stage_tree::StageTree& tree) {
  std::vector<double> continuation(tree.node_count(), 0.0);
  for (TrialId trial = 0; trial < tree.trial_count(); ++trial) {
    const NodeId leaf = tree.Leaf(trial);
    continuation[leaf] =
        std::max(continuation[leaf], static_cast<double>(kHorizon - tree.Target(trial)));
  }
  return stage_tree::RemainingCriticalPath(tree, 1.0, continuation);
}

TEST(FamilyPrioritiesTest, KeptAlongInsertionsAsTheWholeComputationGivesThem) {
  FamilyState family(1, "family", {"lr"});
  family.SetPriorities(WholeComputation(family.tree()));
  std::mt19937 random(7);
  auto pick = [&](int n) { return static_cast<int>(random() % n); };
  int kept = 0;
  for (int i = 0; i < 300; ++i) {
    // Trials branching at steps 10..90 from one of two rates, ending anywhere after: inserting
    // them splits pending, ready, running and done nodes.
    const Step change = 10 * (1 + pick(9));
    const Step target = change + pick(static_cast<int>(kHorizon - change)) + 1;
    std::vector<stage_tree::SplitResult> splits;
    const absl::StatusOr<TrialId> trial = family.tree().Insert(
        Schedule(0.1 * (1 + pick(2)), change, 0.01 * (1 + pick(5))), target, &splits);
    ASSERT_TRUE(trial.ok()) << trial.status();
    family.FollowSplits(splits);  // as the engine does: the priorities are stale after it
    const std::vector<NodeId> changed =
        family.AddTrialPriorities(*trial, splits, static_cast<double>(kHorizon - target));
    if (family.priorities_dirty()) {
      // A split that reruns work: left to the whole computation, as the engine's next dispatch.
      EXPECT_TRUE(changed.empty());
      family.SetPriorities(WholeComputation(family.tree()));
    } else {
      ++kept;
      // A done node's value is never read (it is never queued) and is not kept low when the
      // node finishes, in the engine as here: every other node's must be exact.
      const std::vector<double> expected = WholeComputation(family.tree());
      for (NodeId node = 1; node < family.tree().node_count(); ++node) {
        if (family.tree().node(node).state == StageState::kDone) continue;
        ASSERT_DOUBLE_EQ(family.Priority(node), expected[node])
            << "node " << node << ", trial " << i;
      }
    }
    // Run some ready stages and finish some running ones, so that later insertions split them.
    const std::vector<NodeId> ready = family.tree().ReadyNodes();
    if (!ready.empty() && pick(2) == 0) {
      ASSERT_TRUE(family.tree().MarkRunning(ready[pick(static_cast<int>(ready.size()))]).ok());
    }
    for (NodeId node = 1; node < family.tree().node_count(); ++node) {
      if (family.tree().node(node).state == StageState::kRunning && pick(3) == 0) {
        ASSERT_TRUE(family.tree().MarkDone(node).ok());
      }
    }
  }
  // Most insertions are kept up to date without the whole computation.
  EXPECT_GT(kept, 150);
}

TEST(FamilyPrioritiesTest, PrioritiesAreStepsPricedAtTheCurrentCostOfAStep) {
  FamilyState family(1, "family", {"lr"});
  ASSERT_TRUE(family.priorities_dirty());  // a new family has none yet
  std::vector<stage_tree::SplitResult> splits;
  const absl::StatusOr<TrialId> trial = family.tree().Insert(Schedule(0.1, 50, 0.01), 100, &splits);
  ASSERT_TRUE(trial.ok());
  family.FollowSplits(splits);
  family.SetPriorities(WholeComputation(family.tree()));
  EXPECT_FALSE(family.priorities_dirty());
  EXPECT_DOUBLE_EQ(family.Priority(stage_tree::kRootNode), 100.0);
  // A step costs more now: the priorities follow without being computed again.
  family.MeasureStepTime(/*seconds=*/10.0, /*steps=*/1);
  EXPECT_DOUBLE_EQ(family.Priority(stage_tree::kRootNode), 100.0 * family.seconds_per_step());
}

}  // namespace
}  // namespace hippo::coordinator
