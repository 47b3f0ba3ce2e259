// Hand-made cases for node states, splits of running and finished stages, and the accounting.
#include <gtest/gtest.h>

#include "stage_tree/stage_tree.h"

namespace hippo::stage_tree {
namespace {

TrialSequences LearningRate(double before, double after, Step change, Step horizon = 100) {
  std::vector<Segment> segments = {{0, change, SegmentFunction::Constant(before)},
                                   {change, horizon, SegmentFunction::Constant(after)}};
  return {{"lr", *Sequence::FromSegments(segments)}};
}

TEST(StageTreeStatesTest, FirstTrialIsOneReadyStage) {
  StageTree tree("family", {"lr"});
  absl::StatusOr<TrialId> trial = tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  ASSERT_TRUE(trial.ok());
  ASSERT_EQ(tree.Path(*trial).size(), 1u);
  const NodeView stage = tree.node(tree.Path(*trial)[0]);
  EXPECT_EQ(stage.start, 0);
  EXPECT_EQ(stage.end, 100);
  EXPECT_EQ(stage.state, StageState::kReady);
  EXPECT_EQ(tree.counts().unique_steps, 100);
  EXPECT_EQ(tree.counts().trial_steps, 100);
}

TEST(StageTreeStatesTest, DivergingTrialCutsPendingStageWithoutAction) {
  StageTree tree("family", {"lr"});
  const TrialId first = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  std::vector<SplitResult> splits;
  const TrialId second = *tree.Insert(LearningRate(0.1, 0.05, 50), 100, &splits);
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(splits[0].action, SplitAction::kNone);
  EXPECT_EQ(tree.node(splits[0].upper).end, 50);
  EXPECT_EQ(tree.Path(first)[0], tree.Path(second)[0]);  // they share [0, 50)
  EXPECT_EQ(tree.counts().unique_steps, 150);
  EXPECT_EQ(tree.counts().trial_steps, 200);
  EXPECT_EQ(tree.TrialsThrough(splits[0].upper), (std::vector<TrialId>{first, second}));
  EXPECT_EQ(tree.node(tree.Path(second)[1]).state, StageState::kPending);
}

TEST(StageTreeStatesTest, SplittingRunningStageRequestsCheckpoint) {
  StageTree tree("family", {"lr"});
  const TrialId first = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  const NodeId stage = tree.Path(first)[0];
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  std::vector<SplitResult> splits;
  ASSERT_TRUE(tree.Insert(LearningRate(0.1, 0.05, 50), 100, &splits).ok());
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(splits[0].action, SplitAction::kCheckpointRequested);
  EXPECT_EQ(splits[0].upper, stage);
  EXPECT_EQ(tree.node(splits[0].lower).state, StageState::kRunning);
  // The checkpoint at 50 arrives: the upper part is done and the new branch can start.
  ASSERT_TRUE(tree.MarkDone(stage).ok());
  EXPECT_EQ(tree.ReadyNodes().size(), 1u);
  ASSERT_TRUE(tree.MarkDone(splits[0].lower).ok());
  EXPECT_EQ(tree.counts().executed_steps, 100);
  EXPECT_EQ(tree.counts().recomputed_steps, 0);
}

TEST(StageTreeStatesTest, SplittingFinishedStageWithoutStateSchedulesCountedRecompute) {
  StageTree tree("family", {"lr"});
  const NodeId stage = tree.Path(*tree.Insert(LearningRate(0.1, 0.01, 50), 100))[0];
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.AddCheckpoint(stage, 20).ok());
  ASSERT_TRUE(tree.MarkDone(stage).ok());
  std::vector<SplitResult> splits;
  const TrialId second = *tree.Insert(LearningRate(0.1, 0.05, 50), 100, &splits);
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(splits[0].action, SplitAction::kRecomputeScheduled);
  EXPECT_EQ(splits[0].recompute_from, 20);  // the nearest earlier checkpoint
  EXPECT_EQ(tree.node(stage).state, StageState::kReady);
  EXPECT_TRUE(tree.node(stage).recompute);
  EXPECT_EQ(tree.node(splits[0].lower).state, StageState::kDone);
  EXPECT_EQ(tree.counts().recompute_stages, 1);
  // The new branch waits for the recomputed state at 50.
  const NodeId branch = tree.Path(second)[1];
  EXPECT_EQ(tree.node(branch).state, StageState::kPending);
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.MarkDone(stage).ok());
  EXPECT_EQ(tree.node(branch).state, StageState::kReady);
  EXPECT_EQ(tree.counts().recomputed_steps, 30);
  EXPECT_EQ(tree.counts().executed_steps, 130);
}

TEST(StageTreeStatesTest, SplitAtKeptCheckpointNeedsNoRecompute) {
  StageTree tree("family", {"lr"});
  const NodeId stage = tree.Path(*tree.Insert(LearningRate(0.1, 0.01, 50), 100))[0];
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.AddCheckpoint(stage, 50).ok());
  ASSERT_TRUE(tree.MarkDone(stage).ok());
  std::vector<SplitResult> splits;
  ASSERT_TRUE(tree.Insert(LearningRate(0.1, 0.05, 50), 100, &splits).ok());
  EXPECT_EQ(splits[0].action, SplitAction::kNone);
  EXPECT_EQ(tree.node(stage).state, StageState::kDone);
  EXPECT_EQ(tree.ReadyNodes().size(), 1u);
}

TEST(StageTreeStatesTest, SplittingRunningStageAtItsKeptCheckpointMarksUpperDoneWithoutRecompute) {
  StageTree tree("family", {"lr"});
  const TrialId first = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  const NodeId stage = tree.Path(first)[0];
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.AddCheckpoint(stage, 50).ok());  // the attempt kept 50 and went on
  std::vector<SplitResult> splits;
  const TrialId second = *tree.Insert(LearningRate(0.1, 0.05, 50), 100, &splits);
  const TrialId third = *tree.Insert(LearningRate(0.1, 0.05, 50), 50);  // ends at the split
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(splits[0].action, SplitAction::kUpperDone);
  EXPECT_EQ(splits[0].upper, stage);
  EXPECT_EQ(tree.node(stage).state, StageState::kDone);
  EXPECT_FALSE(tree.node(stage).recompute);
  EXPECT_EQ(tree.Leaf(third), stage);
  // The attempt goes on with [50, 100); the new branch can start from the state at 50.
  EXPECT_EQ(tree.node(splits[0].lower).state, StageState::kRunning);
  EXPECT_FALSE(tree.node(splits[0].lower).recompute);
  EXPECT_EQ(tree.ReadyNodes(), (std::vector<NodeId>{tree.Path(second)[1]}));
  ASSERT_TRUE(tree.MarkDone(splits[0].lower).ok());
  ASSERT_TRUE(tree.MarkRunning(tree.Path(second)[1]).ok());
  ASSERT_TRUE(tree.MarkDone(tree.Path(second)[1]).ok());
  EXPECT_EQ(tree.counts().unique_steps, 150);
  EXPECT_EQ(tree.counts().executed_steps, 150);
  EXPECT_EQ(tree.counts().recomputed_steps, 0);
  EXPECT_EQ(tree.counts().recompute_stages, 0);
}

TEST(StageTreeStatesTest, SplittingRunningRerunAtItsKeptCheckpointCountsEachStepOnce) {
  StageTree tree("family", {"lr"});
  const NodeId stage = tree.Path(*tree.Insert(LearningRate(0.1, 0.01, 50), 100))[0];
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.MarkDoneWithoutState(stage).ok());  // 100 steps, state lost: rerun from 0
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.AddCheckpoint(stage, 50).ok());
  std::vector<SplitResult> splits;
  ASSERT_TRUE(tree.Insert(LearningRate(0.1, 0.05, 50), 100, &splits).ok());
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(splits[0].action, SplitAction::kUpperDone);
  EXPECT_EQ(tree.node(stage).state, StageState::kDone);
  EXPECT_EQ(tree.counts().recomputed_steps, 50);
  const NodeView lower = tree.node(splits[0].lower);
  EXPECT_EQ(lower.state, StageState::kRunning);
  EXPECT_TRUE(lower.recompute);
  EXPECT_EQ(lower.recompute_from, 50);
  ASSERT_TRUE(tree.MarkDone(splits[0].lower).ok());
  EXPECT_EQ(tree.counts().recomputed_steps, 100);
  EXPECT_EQ(tree.counts().executed_steps, 200);
  EXPECT_EQ(tree.counts().recompute_stages, 1);
}

TEST(StageTreeStatesTest, StageDoneWithoutStateIsCountedAndRecomputed) {
  StageTree tree("family", {"lr"});
  const TrialId trial = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  const NodeId stage = tree.Path(trial)[0];
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.MarkDoneWithoutState(stage).ok());
  EXPECT_EQ(tree.node(stage).state, StageState::kReady);
  EXPECT_TRUE(tree.node(stage).recompute);
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.MarkDone(stage).ok());
  EXPECT_EQ(tree.counts().executed_steps, 200);
  EXPECT_EQ(tree.counts().recomputed_steps, 100);
  EXPECT_EQ(tree.counts().recompute_stages, 1);
}

TEST(StageTreeStatesTest, FailedStageIsRequeued) {
  StageTree tree("family", {"lr"});
  const NodeId stage = tree.Path(*tree.Insert(LearningRate(0.1, 0.01, 50), 100))[0];
  EXPECT_FALSE(tree.MarkDone(stage).ok());  // not running
  ASSERT_TRUE(tree.MarkRunning(stage).ok());
  ASSERT_TRUE(tree.MarkFailed(stage).ok());
  EXPECT_EQ(tree.node(stage).state, StageState::kFailed);
  ASSERT_TRUE(tree.Requeue(stage).ok());
  EXPECT_EQ(tree.node(stage).state, StageState::kReady);
  EXPECT_EQ(tree.counts().executed_steps, 0);
}

TEST(StageTreeStatesTest, ALostEndStateMakesItsStageARecomputeFromItsLatestKeptState) {
  StageTree tree("family", {"lr"});
  const TrialId first = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  const TrialId second = *tree.Insert(LearningRate(0.1, 0.05, 50), 100);
  const NodeId shared = tree.Path(first)[0];
  ASSERT_TRUE(tree.MarkRunning(shared).ok());
  ASSERT_TRUE(tree.AddCheckpoint(shared, 20).ok());
  ASSERT_TRUE(tree.MarkDone(shared).ok());
  const NodeId branch = tree.Path(second)[1];
  EXPECT_EQ(tree.node(branch).state, StageState::kReady);
  EXPECT_FALSE(tree.LoseState(shared, 30).ok());  // no state kept there

  ASSERT_TRUE(tree.LoseState(shared, 50).ok());
  EXPECT_TRUE(tree.node(shared).recompute);
  EXPECT_EQ(tree.node(shared).recompute_from, 20);
  EXPECT_EQ(tree.node(shared).state, StageState::kReady);  // from its own state at 20
  EXPECT_EQ(tree.node(branch).state, StageState::kPending);
  EXPECT_FALSE(tree.LoseState(shared, 50).ok());  // lost already
  // The state at 20 is lost too: the rerun starts from the stage's start (the root's state).
  ASSERT_TRUE(tree.LoseState(shared, 20).ok());
  EXPECT_EQ(tree.node(shared).recompute_from, 0);
  EXPECT_EQ(tree.node(shared).state, StageState::kReady);
  ASSERT_TRUE(tree.MarkRunning(shared).ok());
  ASSERT_TRUE(tree.MarkDone(shared).ok());
  EXPECT_EQ(tree.counts().recomputed_steps, 50);
  EXPECT_EQ(tree.counts().executed_steps, 100);
  EXPECT_EQ(tree.node(branch).state, StageState::kReady);
  EXPECT_FALSE(tree.node(shared).recompute);
}

// reached_trial_steps: the work done so far counted trial by trial, each trial up to the step
// its path was trained to; a step once trained stays counted (a lost state, a rerun), and once
// every trial reached its target it equals trial_steps.
TEST(StageTreeStatesTest, ReachedTrialStepsCountEachTrialUpToWhereItsPathWasTrained) {
  StageTree tree("family", {"lr"});
  const TrialId first = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  const TrialId second = *tree.Insert(LearningRate(0.1, 0.05, 50), 100);
  const NodeId shared = tree.Path(first)[0];
  EXPECT_EQ(tree.counts().reached_trial_steps, 0);
  ASSERT_TRUE(tree.MarkRunning(shared).ok());
  EXPECT_EQ(tree.counts().reached_trial_steps, 0) << "running is not trained";
  ASSERT_TRUE(tree.MarkDone(shared).ok());
  EXPECT_EQ(tree.counts().reached_trial_steps, 100) << "both trials reached 50";
  EXPECT_EQ(tree.counts().executed_steps, 50);

  // A new trial through the trained stage has reached its end already.
  const TrialId third = *tree.Insert(LearningRate(0.1, 0.02, 50), 100);
  EXPECT_EQ(tree.counts().reached_trial_steps, 150);
  const NodeId own = tree.Path(first)[1];
  ASSERT_TRUE(tree.MarkRunning(own).ok());
  ASSERT_TRUE(tree.MarkDone(own).ok());
  EXPECT_EQ(tree.counts().reached_trial_steps, 200);

  // Losing the shared state and training it again adds nothing: those steps were reached.
  ASSERT_TRUE(tree.LoseState(shared, 50).ok());
  EXPECT_EQ(tree.counts().reached_trial_steps, 200);
  ASSERT_TRUE(tree.MarkRunning(shared).ok());
  ASSERT_TRUE(tree.MarkDone(shared).ok());
  EXPECT_EQ(tree.counts().reached_trial_steps, 200);
  EXPECT_EQ(tree.counts().recomputed_steps, 50);

  // A trial extended past a trained stage counts its new steps once they are trained.
  const TrialId short_trial = *tree.Insert(LearningRate(0.3, 0.03, 50), 40);
  const NodeId head = tree.Path(short_trial)[0];
  ASSERT_TRUE(tree.MarkRunning(head).ok());
  ASSERT_TRUE(tree.MarkDone(head).ok());
  EXPECT_EQ(tree.counts().reached_trial_steps, 240);
  ASSERT_TRUE(tree.Extend(short_trial, 100).ok());
  EXPECT_EQ(tree.counts().reached_trial_steps, 240);

  // Everything trained: the work done is every trial's full target.
  for (TrialId trial : {second, third, short_trial}) {
    for (NodeId node : tree.Path(trial)) {
      if (tree.node(node).state == StageState::kDone) continue;
      ASSERT_TRUE(tree.MarkRunning(node).ok()) << node;
      ASSERT_TRUE(tree.MarkDone(node).ok()) << node;
    }
  }
  EXPECT_EQ(tree.counts().trial_steps, 400);
  EXPECT_EQ(tree.counts().reached_trial_steps, tree.counts().trial_steps);
}

TEST(StageTreeStatesTest, ExtendingReusesSharedStages) {
  StageTree tree("family", {"lr"});
  const TrialId first = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  const TrialId second = *tree.Insert(LearningRate(0.1, 0.01, 50), 30);
  EXPECT_EQ(tree.counts().unique_steps, 100);
  EXPECT_EQ(tree.Path(second).size(), 1u);
  ASSERT_TRUE(tree.Extend(second, 100).ok());
  EXPECT_EQ(tree.Path(second), tree.Path(first));
  EXPECT_EQ(tree.counts().unique_steps, 100);
  EXPECT_EQ(tree.counts().trial_steps, 200);
  EXPECT_FALSE(tree.Extend(second, 100).ok());  // not above the current target
  EXPECT_FALSE(tree.Extend(second, 101).ok());  // beyond the horizon
}

// A family whose hyper-parameters are all structural (say one categorical of strings) has no
// sequences: its trials share their prefix and may be extended, whatever their targets.
TEST(StageTreeStatesTest, FamilyWithoutSequencesTakesTrialsOfAnyTarget) {
  StageTree tree("family", {});
  const absl::StatusOr<TrialId> short_trial = tree.Insert({}, 2);
  ASSERT_TRUE(short_trial.ok()) << short_trial.status();
  const absl::StatusOr<TrialId> long_trial = tree.Insert({}, 5);
  ASSERT_TRUE(long_trial.ok()) << long_trial.status();
  EXPECT_EQ(tree.Path(*long_trial)[0], tree.Path(*short_trial)[0]);
  EXPECT_EQ(tree.counts().unique_steps, 5);
  EXPECT_EQ(tree.counts().trial_steps, 7);
  ASSERT_TRUE(tree.Extend(*short_trial, 9).ok());
  EXPECT_EQ(tree.counts().unique_steps, 9);
  EXPECT_FALSE(tree.Insert({}, 0).ok());
}

TEST(StageTreeStatesTest, BadTrialsAreRejectedAndChangeNothing) {
  StageTree tree("family", {"lr"});
  ASSERT_TRUE(tree.Insert(LearningRate(0.1, 0.01, 50), 100).ok());
  const StepCounts before = tree.counts();
  const size_t nodes = tree.node_count();
  EXPECT_FALSE(tree.Insert({{"momentum", Sequence::ConstantOver(0.9, 100)}}, 100).ok());
  EXPECT_FALSE(tree.Insert(LearningRate(0.1, 0.01, 50), 0).ok());
  EXPECT_FALSE(tree.Insert(LearningRate(0.1, 0.01, 50), 101).ok());
  EXPECT_FALSE(tree.Split(kRootNode, 1).ok());
  EXPECT_FALSE(tree.Split(1, 100).ok());
  EXPECT_FALSE(tree.Split(99, 5).ok());
  EXPECT_EQ(tree.counts(), before);
  EXPECT_EQ(tree.node_count(), nodes);
}

TEST(StageTreeStatesTest, SegmentsOfStageAreExact) {
  StageTree tree("family", {"lr"});
  const TrialId trial = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  const std::vector<std::vector<Segment>> segments = tree.SegmentsOf(tree.Path(trial)[0]);
  ASSERT_EQ(segments.size(), 1u);
  ASSERT_EQ(segments[0].size(), 2u);
  EXPECT_EQ(segments[0][0], (Segment{0, 50, SegmentFunction::Constant(0.1)}));
  EXPECT_EQ(segments[0][1], (Segment{50, 100, SegmentFunction::Constant(0.01)}));
}

// A family that inherits a trained state (a morphism child) is rooted at that state's step:
// its stages start there, trials count their steps from there, and a target at or before it is
// refused.
TEST(StageTreeStatesTest, TreeRootedAtAnInheritedStepStartsItsStagesThere) {
  StageTree tree("family|inherits=1/3@40", {"lr"}, /*root_step=*/40);
  EXPECT_EQ(tree.root_step(), 40);
  EXPECT_TRUE(absl::IsInvalidArgument(tree.Insert(LearningRate(0.1, 0.01, 50), 40).status()));
  const TrialId first = *tree.Insert(LearningRate(0.1, 0.01, 50), 100);
  ASSERT_EQ(tree.Path(first).size(), 1u);
  const NodeView stage = tree.node(tree.Path(first)[0]);
  EXPECT_EQ(stage.start, 40);
  EXPECT_EQ(stage.end, 100);
  EXPECT_EQ(stage.parent, kRootNode);
  EXPECT_EQ(stage.state, StageState::kReady);
  // A second trial agrees on [40, 50) only: the stage is split there, not at 0..40.
  std::vector<SplitResult> splits;
  const TrialId second = *tree.Insert(LearningRate(0.1, 0.05, 50), 70, &splits);
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(tree.node(splits[0].upper).start, 40);
  EXPECT_EQ(tree.node(splits[0].upper).end, 50);
  EXPECT_EQ(tree.Path(second).front(), tree.Path(first).front());
  EXPECT_EQ(tree.counts().trial_steps, (100 - 40) + (70 - 40));
  EXPECT_EQ(tree.counts().unique_steps, 60 + 20);
}

}  // namespace
}  // namespace hippo::stage_tree
