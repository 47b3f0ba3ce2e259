// The critical-path scheduler on hand-made trees: the stage gating the most remaining work goes
// first; among equals, the one whose parent state the worker holds.
#include "hippo/scheduler.h"

#include <gtest/gtest.h>

#include <map>

#include "stage_tree/graph_view.h"

namespace hippo::coordinator {
namespace {

using stage_tree::NodeId;
using stage_tree::Segment;
using stage_tree::SegmentFunction;
using stage_tree::Sequence;
using stage_tree::StageTree;
using stage_tree::TrialSequences;

TrialSequences Trial(double weight_decay, double lr_after, stage_tree::Step change) {
  return {{"lr", *Sequence::FromSegments({{0, change, SegmentFunction::Constant(0.1)},
                                          {change, 100, SegmentFunction::Constant(lr_after)}})},
          {"wd", Sequence::ConstantOver(weight_decay, 100)}};
}

// Queues every ready node of `tree` with its critical path, as the engine does.
ReadyQueue QueueOf(const StageTree& tree) {
  ReadyQueue queue;
  const std::vector<double> priorities = stage_tree::RemainingCriticalPath(tree, 1.0);
  for (NodeId node : tree.ReadyNodes()) queue.Push(QueuedStage{1, node}, priorities[node]);
  return queue;
}

auto AlwaysReady = [](const QueuedStage&) { return true; };
auto NeverLocal = [](const QueuedStage&) { return false; };

TEST(SchedulerTest, LongestRemainingCriticalPathGoesFirst) {
  StageTree tree("family", {"lr", "wd"});
  // Two roots: wd=1e-4 leads to 100 steps of work, wd=5e-4 to 30.
  const auto long_trial = *tree.Insert(Trial(1e-4, 0.01, 50), 100);
  const auto short_trial = *tree.Insert(Trial(5e-4, 0.01, 50), 30);
  ReadyQueue queue = QueueOf(tree);
  std::optional<QueuedStage> first = queue.Pop(AlwaysReady, NeverLocal);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->node, tree.Path(long_trial)[0]);
  std::optional<QueuedStage> second = queue.Pop(AlwaysReady, NeverLocal);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->node, tree.Path(short_trial)[0]);
  EXPECT_FALSE(queue.Pop(AlwaysReady, NeverLocal));
}

TEST(SchedulerTest, ABranchWithMoreWorkBelowBeatsALongerStage) {
  StageTree tree("family", {"lr", "wd"});
  // Root A (wd=1e-4): [0,40) then two children of 60 steps: remaining 100.
  tree.Insert(Trial(1e-4, 0.01, 40), 100).value();
  tree.Insert(Trial(1e-4, 0.02, 40), 100).value();
  // Root B (wd=5e-4): one stage of 90 steps: remaining 90.
  const auto single = *tree.Insert(Trial(5e-4, 0.1, 50), 90);
  ReadyQueue queue = QueueOf(tree);
  std::optional<QueuedStage> first = queue.Pop(AlwaysReady, NeverLocal);
  ASSERT_TRUE(first);
  EXPECT_NE(first->node, tree.Path(single)[0]);
  EXPECT_EQ(tree.node(first->node).end, 40);
}

TEST(SchedulerTest, AmongEqualPrioritiesTheWorkersCachedParentWins) {
  StageTree tree("family", {"lr", "wd"});
  const auto a = *tree.Insert(Trial(1e-4, 0.01, 50), 100);
  const auto b = *tree.Insert(Trial(1e-4, 0.02, 50), 100);
  const NodeId shared = tree.Path(a)[0];
  ASSERT_TRUE(tree.MarkRunning(shared).ok());
  ASSERT_TRUE(tree.MarkDone(shared).ok());
  // Both children are ready with equal critical paths; only the worker's cache tells them
  // apart (parent state cached: `shared`). Make locality pick the later-ordered one.
  const NodeId child_a = tree.Path(a)[1];
  const NodeId child_b = tree.Path(b)[1];
  ReadyQueue queue = QueueOf(tree);
  const NodeId wanted = std::max(child_a, child_b);
  std::optional<QueuedStage> chosen =
      queue.Pop(AlwaysReady, [&](const QueuedStage& stage) { return stage.node == wanted; });
  ASSERT_TRUE(chosen);
  EXPECT_EQ(chosen->node, wanted);
}

TEST(SchedulerTest, APreferredStageWinsOnlyFromWithinItsWindow) {
  ReadyQueue queue;
  // Five stages of one group, priorities 50..10: node 1 is the best, node 5 the worst.
  for (NodeId node = 1; node <= 5; ++node) {
    queue.Push(QueuedStage{1, node}, 60.0 - 10.0 * static_cast<double>(node));
  }
  // Window 2: node 4 is not among the 2 best, so the best goes; node 2 is, and wins.
  Preference far{{QueuedStage{1, 4}}, 2};
  EXPECT_EQ(queue.Pop(AlwaysReady, NeverLocal, nullptr, far)->node, 1u);
  Preference near{{QueuedStage{1, 4}, QueuedStage{1, 3}}, 2};
  EXPECT_EQ(queue.Pop(AlwaysReady, NeverLocal, nullptr, near)->node, 3u);
  // Window 0 (one worker): anywhere in the group, the best preferred one.
  Preference anywhere{{QueuedStage{1, 5}, QueuedStage{1, 4}}, 0};
  EXPECT_EQ(queue.Pop(AlwaysReady, NeverLocal, nullptr, anywhere)->node, 4u);
  // A preferred stage that is not ready is passed over.
  auto not_five = [](const QueuedStage& stage) { return stage.node != 5; };
  Preference stale{{QueuedStage{1, 5}}, 0};
  EXPECT_EQ(queue.Pop(not_five, NeverLocal, nullptr, stale)->node, 2u);
  // Remove and ForEach see what is left: node 5.
  std::vector<NodeId> left;
  queue.ForEach(nullptr, 10, [&](const QueuedStage& stage, double) { left.push_back(stage.node); });
  EXPECT_EQ(left, std::vector<NodeId>{5});
  EXPECT_TRUE(queue.Remove(QueuedStage{1, 5}));
  EXPECT_FALSE(queue.Remove(QueuedStage{1, 5}));
  EXPECT_EQ(queue.size(), 0u);
}

TEST(SchedulerTest, EntriesNoLongerReadyAreDroppedAndRequeueMovesPriority) {
  ReadyQueue queue;
  queue.Push(QueuedStage{1, 1}, 10);
  queue.Push(QueuedStage{1, 2}, 5);
  queue.Push(QueuedStage{1, 2}, 20);  // moved up, not duplicated
  EXPECT_EQ(queue.size(), 2u);
  std::optional<QueuedStage> first = queue.Pop(AlwaysReady, NeverLocal);
  EXPECT_EQ(first->node, 2u);
  std::optional<QueuedStage> none = queue.Pop([](const QueuedStage&) { return false; }, NeverLocal);
  EXPECT_FALSE(none);
  EXPECT_EQ(queue.size(), 0u);
}

// Two share groups of weights 3 and 1, each with more ready stages than are handed out: the
// stages go out 3:1, whatever their priorities (the light group's are all higher).
TEST(SchedulerTest, GroupsShareStagesByWeight) {
  ReadyQueue queue;
  queue.SetGroup(1, 10);
  queue.SetGroup(2, 20);
  queue.SetWeight(10, 3);  // group 20 keeps the default weight 1
  for (NodeId node = 1; node <= 100; ++node) {
    queue.Push(QueuedStage{1, node}, 1);
    queue.Push(QueuedStage{2, node}, 1000);
  }
  std::map<int64_t, int> popped;
  for (int i = 0; i < 80; ++i) {
    std::optional<QueuedStage> stage = queue.Pop(AlwaysReady, NeverLocal);
    ASSERT_TRUE(stage);
    ++popped[stage->family_id];
    queue.Charge(stage->family_id, 2.0);  // every stage costs the same
  }
  EXPECT_EQ(popped[1], 60);
  EXPECT_EQ(popped[2], 20);
}

// A group that had nothing ready does not catch up on the time it waited: it joins at the
// charge of the least-charged busy group and then shares by weight from there.
TEST(SchedulerTest, AGroupThatJoinsLateGetsNoCreditForWaiting) {
  ReadyQueue queue;
  queue.SetGroup(1, 1);
  queue.SetGroup(2, 2);
  for (NodeId node = 1; node <= 100; ++node) queue.Push(QueuedStage{1, node}, 1);
  for (int i = 0; i < 50; ++i) {
    std::optional<QueuedStage> stage = queue.Pop(AlwaysReady, NeverLocal);
    ASSERT_TRUE(stage);
    queue.Charge(stage->family_id, 1.0);
  }
  for (NodeId node = 1; node <= 50; ++node) queue.Push(QueuedStage{2, node}, 1);
  std::map<int64_t, int> popped;
  for (int i = 0; i < 20; ++i) {
    std::optional<QueuedStage> stage = queue.Pop(AlwaysReady, NeverLocal);
    ASSERT_TRUE(stage);
    ++popped[stage->family_id];
    queue.Charge(stage->family_id, 1.0);
  }
  EXPECT_EQ(popped[1], 10);
  EXPECT_EQ(popped[2], 10);
}

TEST(SchedulerTest, GroupsTheWorkerCannotServeAreSkippedAndKeepTheirStages) {
  ReadyQueue queue;
  queue.SetGroup(1, 1);  // say, a command study's family
  queue.SetGroup(2, 2);  // a sim study's
  queue.Push(QueuedStage{1, 1}, 100.0);
  queue.Push(QueuedStage{1, 2}, 90.0);
  queue.Push(QueuedStage{2, 1}, 10.0);
  auto sim_only = [](int64_t group) { return group == 2; };
  // The least-charged group with the longest stage is group 1's, which this worker cannot train.
  std::optional<QueuedStage> stage = queue.Pop(AlwaysReady, NeverLocal, sim_only);
  ASSERT_TRUE(stage);
  EXPECT_EQ(*stage, (QueuedStage{2, 1}));
  EXPECT_FALSE(queue.Pop(AlwaysReady, NeverLocal, sim_only));
  EXPECT_EQ(queue.size(), 2u) << "the skipped group's stages stay queued";
  // A stage the skipped group no longer needs is dropped when a worker that serves it asks.
  auto all = [](int64_t) { return true; };
  stage = queue.Pop([](const QueuedStage& s) { return s.node != 1; }, NeverLocal, all);
  ASSERT_TRUE(stage);
  EXPECT_EQ(*stage, (QueuedStage{1, 2}));
  EXPECT_EQ(queue.size(), 0u);
}

}  // namespace
}  // namespace hippo::coordinator
