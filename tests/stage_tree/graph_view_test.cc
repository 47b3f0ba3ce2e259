#include "stage_tree/graph_view.h"

#include <gtest/gtest.h>

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
