#include "stage_tree/graph_view.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace hippo::stage_tree {
namespace {

TrialSequences Constant(double before, double after, Step change) {
  return {{"lr", *Sequence::FromSegments({{0, change, SegmentFunction::Constant(before)},
                                          {change, 100, SegmentFunction::Constant(after)}})}};
}

TEST(GraphViewTest, CriticalPathIsLongestRemainingChainTimesCost) {
  StageTree tree("family", {"lr"});
  // [0,20) then two branches: [20,100) and [20,60).
  const TrialId long_trial = *tree.Insert(Constant(0.1, 0.01, 20), 100);
  const TrialId short_trial = *tree.Insert(Constant(0.1, 0.05, 20), 60);
  const NodeId shared = tree.Path(long_trial)[0];
  std::vector<double> remaining = RemainingCriticalPath(tree, 2.0);
  EXPECT_DOUBLE_EQ(remaining[kRootNode], 200.0);
  EXPECT_DOUBLE_EQ(remaining[shared], 200.0);
  EXPECT_DOUBLE_EQ(remaining[tree.Path(short_trial)[1]], 80.0);
  // Finished work no longer counts.
  ASSERT_TRUE(tree.MarkRunning(shared).ok());
  ASSERT_TRUE(tree.MarkDone(shared).ok());
  remaining = RemainingCriticalPath(tree, 2.0);
  EXPECT_DOUBLE_EQ(remaining[kRootNode], 160.0);
}

TEST(GraphViewTest, AContinuationMakesAShortBranchThatMayGrowOutrankALongerOne) {
  StageTree tree("family", {"lr"});
  // [0,20) then [20,100) and [20,40): the short branch's trial may later go on to 100.
  const TrialId long_trial = *tree.Insert(Constant(0.1, 0.01, 20), 100);
  const TrialId short_trial = *tree.Insert(Constant(0.1, 0.05, 20), 40);
  const NodeId shared = tree.Path(long_trial)[0];
  const NodeId long_branch = tree.Path(long_trial)[1];
  const NodeId short_branch = tree.Path(short_trial)[1];
  std::vector<double> continuation(tree.node_count(), 0.0);
  continuation[short_branch] = 60.0;  // [40,100) at one second a step
  const std::vector<double> remaining = RemainingCriticalPath(tree, 1.0, continuation);
  EXPECT_DOUBLE_EQ(remaining[long_branch], 80.0);
  EXPECT_DOUBLE_EQ(remaining[short_branch], 80.0);  // 20 + 60
  EXPECT_DOUBLE_EQ(remaining[shared], 100.0);
  continuation[short_branch] = 70.0;
  EXPECT_GT(RemainingCriticalPath(tree, 1.0, continuation)[short_branch], remaining[long_branch]);
  // Without continuations it is the plain critical path.
  EXPECT_EQ(RemainingCriticalPath(tree, 1.0, {}), RemainingCriticalPath(tree, 1.0));
}

// The definition, by recursion over the tree's children.
double Reference(const StageTree& tree, NodeId node, double seconds_per_step) {
  const NodeView view = tree.node(node);
  double below = 0;
  for (NodeId child : tree.Children(node)) {
    below = std::max(below, Reference(tree, child, seconds_per_step));
  }
  const double own = node == kRootNode || view.state == StageState::kDone
                         ? 0.0
                         : static_cast<double>(view.end - view.start);
  return own * seconds_per_step + below;
}

TEST(GraphViewTest, ParentsWithLargerIdsThanTheirChildrenAreComputedAfterThem) {
  StageTree tree("family", {"lr"});
  // A trial of 100 steps, then trials branching off at 50, 80 and 20: the split at 20 gives
  // [20, 50) a new id above those of the nodes below it, which it takes as its children.
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.1, 99), 100).ok());
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.05, 50), 100).ok());
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.02, 80), 90).ok());
  const TrialId late = *tree.Insert(Constant(0.1, 0.01, 20), 30);
  bool parent_above_child = false;
  for (NodeId node = 1; node < tree.node_count(); ++node) {
    parent_above_child |= tree.node(node).parent > node;
  }
  ASSERT_TRUE(parent_above_child) << "the tree no longer has the shape this test needs";
  ASSERT_TRUE(tree.MarkRunning(tree.Path(late)[0]).ok());
  ASSERT_TRUE(tree.MarkDone(tree.Path(late)[0]).ok());
  const std::vector<double> remaining = RemainingCriticalPath(tree, 1.5);
  ASSERT_EQ(remaining.size(), tree.node_count());
  for (NodeId node = 0; node < tree.node_count(); ++node) {
    EXPECT_DOUBLE_EQ(remaining[node], Reference(tree, node, 1.5)) << "node " << node;
  }
  EXPECT_DOUBLE_EQ(remaining[kRootNode], 80 * 1.5);  // [20, 100) of the first trial
}

TEST(GraphViewTest, ASubtreeWalkGivesTheWholeComputationsValuePageByPage) {
  StageTree tree("family", {"lr"});
  // Shared prefixes, splits that give parents ids above their children, a done stage.
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.1, 99), 100).ok());
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.05, 50), 100).ok());
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.02, 80), 90).ok());
  const TrialId late = *tree.Insert(Constant(0.1, 0.01, 20), 30);
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.03, 20), 70).ok());
  ASSERT_TRUE(tree.MarkRunning(tree.Path(late)[0]).ok());
  ASSERT_TRUE(tree.MarkDone(tree.Path(late)[0]).ok());
  const std::vector<double> whole = RemainingCriticalPath(tree, 1.5);
  // Pages of two nodes in id order, each with a memo of its own, as a listing reads them.
  for (NodeId first = 0; first < tree.node_count(); first += 2) {
    absl::flat_hash_map<NodeId, double> memo;
    for (NodeId node = first; node < std::min<NodeId>(first + 2, tree.node_count()); ++node) {
      EXPECT_DOUBLE_EQ(RemainingCriticalPathBelow(tree, 1.5, node, memo), whole[node])
          << "node " << node;
    }
  }
  // One memo for every node: each subtree is walked once, the values are the same.
  absl::flat_hash_map<NodeId, double> memo;
  EXPECT_DOUBLE_EQ(RemainingCriticalPathBelow(tree, 1.5, kRootNode, memo), whole[kRootNode]);
  EXPECT_EQ(memo.size(), tree.node_count());
  for (NodeId node = 0; node < tree.node_count(); ++node) {
    EXPECT_DOUBLE_EQ(memo.at(node), whole[node]) << "node " << node;
  }
}

TEST(GraphViewTest, DotHasOneVertexPerStageAndOneEdgePerChild) {
  StageTree tree("family", {"lr"});
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.01, 20), 100).ok());
  ASSERT_TRUE(tree.Insert(Constant(0.1, 0.05, 20), 100).ok());
  const std::string dot = ToDot(tree);
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  size_t edges = 0;
  for (size_t at = dot.find("->"); at != std::string::npos; at = dot.find("->", at + 2)) ++edges;
  EXPECT_EQ(edges, tree.node_count() - 1);
  EXPECT_NE(dot.find("[20, 100)"), std::string::npos);
  EXPECT_NE(dot.find("lr=0.05"), std::string::npos);
}

}  // namespace
}  // namespace hippo::stage_tree
