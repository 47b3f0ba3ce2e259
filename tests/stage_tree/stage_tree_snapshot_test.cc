// StageTree::Save / Restore: a tree restored from a snapshot (through its bytes) behaves as the
// tree that was saved: the same answers to every read, and the same results for every later
// operation (insertions that reuse and split its stages, state changes, dropped states).
#include <gtest/gtest.h>

#include <random>

#include "hippo/snapshot/tree_snapshot.pb.h"
#include "stage_tree/stage_tree.h"
#include "tests/stage_tree/random_trials.h"

namespace hippo::stage_tree {
namespace {

using testing::ParameterNames;
using testing::RandomTrial;
using testing::RandomTrials;

// Every read of the two trees agrees.
void ExpectSameTree(const StageTree& a, const StageTree& b) {
  ASSERT_EQ(a.node_count(), b.node_count());
  ASSERT_EQ(a.trial_count(), b.trial_count());
  for (NodeId id = 0; id < a.node_count(); ++id) {
    const NodeView x = a.node(id);
    const NodeView y = b.node(id);
    EXPECT_EQ(x.parent, y.parent) << "node " << id;
    EXPECT_EQ(x.start, y.start) << "node " << id;
    EXPECT_EQ(x.end, y.end) << "node " << id;
    EXPECT_EQ(x.state, y.state) << "node " << id;
    EXPECT_EQ(x.recompute, y.recompute) << "node " << id;
    EXPECT_EQ(x.recompute_from, y.recompute_from) << "node " << id;
    EXPECT_EQ(x.trained, y.trained) << "node " << id;
    EXPECT_EQ(a.Children(id), b.Children(id)) << "node " << id;
    EXPECT_EQ(a.LatestCheckpoint(id), b.LatestCheckpoint(id)) << "node " << id;
  }
  for (TrialId trial = 0; trial < a.trial_count(); ++trial) {
    EXPECT_EQ(a.Path(trial), b.Path(trial)) << "trial " << trial;
  }
  EXPECT_EQ(a.ReadyNodes(), b.ReadyNodes());
  EXPECT_EQ(a.counts(), b.counts());
  EXPECT_EQ(a.parameter_names(), b.parameter_names());
}

// The same random operation on both trees, with the same outcome.
void RandomStep(std::mt19937_64& random, const std::vector<RandomTrial>& trials, size_t& next,
                StageTree& a, StageTree& b) {
  const int action = static_cast<int>(random() % 6);
  if (action == 0 && next < trials.size()) {
    const RandomTrial& trial = trials[next++];
    absl::StatusOr<TrialId> x = a.Insert(trial.sequences, trial.target);
    absl::StatusOr<TrialId> y = b.Insert(trial.sequences, trial.target);
    ASSERT_EQ(x.ok(), y.ok());
    if (x.ok()) {
      EXPECT_EQ(*x, *y);
    }
    return;
  }
  const NodeId node = 1 + static_cast<NodeId>(random() % std::max<size_t>(1, a.node_count() - 1));
  if (node >= a.node_count()) return;
  const NodeView view = a.node(node);
  const Step inside =
      view.end - view.start > 1
          ? view.start + 1 + static_cast<Step>(random() % (view.end - view.start - 1))
          : 0;
  absl::Status x;
  absl::Status y;
  switch (action) {
    case 1:
      x = a.MarkRunning(node);
      y = b.MarkRunning(node);
      break;
    case 2:
      if (inside > 0 && view.state == StageState::kRunning) {
        x = a.AddCheckpoint(node, inside);
        y = b.AddCheckpoint(node, inside);
      }
      x = a.MarkDone(node);
      y = b.MarkDone(node);
      break;
    case 3:
      x = a.DropState(node, view.end);
      y = b.DropState(node, view.end);
      break;
    case 4:
      if (inside > 0) {
        absl::StatusOr<SplitResult> sx = a.Split(node, inside);
        absl::StatusOr<SplitResult> sy = b.Split(node, inside);
        ASSERT_EQ(sx.ok(), sy.ok());
        if (sx.ok()) {
          EXPECT_EQ(sx->lower, sy->lower);
        }
      }
      break;
    default:
      x = a.Requeue(node);
      y = b.Requeue(node);
      break;
  }
  EXPECT_EQ(x.code(), y.code()) << x << " / " << y;
}

TEST(StageTreeSnapshotTest, RestoredTreeBehavesAsTheSavedOneUnderLaterOperations) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 random(seed);
    const size_t parameters = 1 + random() % 2;
    const Step horizon = 16 + static_cast<Step>(random() % 48);
    const std::vector<RandomTrial> trials =
        RandomTrials(random, 30 + random() % 30, parameters, horizon, 2 + random() % 4);
    StageTree original("family", ParameterNames(parameters));
    StageTree shadow("family", ParameterNames(parameters));  // the same operations, never saved
    size_t next = 0;
    for (int i = 0; i < 150; ++i) RandomStep(random, trials, next, original, shadow);

    hippo::snapshot::TreeSnapshot saved;
    original.Save(saved);
    std::string bytes;
    ASSERT_TRUE(saved.SerializeToString(&bytes));
    hippo::snapshot::TreeSnapshot parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    StageTree restored("other", {});
    ASSERT_TRUE(restored.Restore(parsed).ok()) << "seed " << seed;
    ExpectSameTree(original, restored);
    ASSERT_FALSE(::testing::Test::HasFailure()) << "seed " << seed;

    // What follows the snapshot: the restored tree and the one never saved stay identical.
    for (int i = 0; i < 300; ++i) RandomStep(random, trials, next, shadow, restored);
    ExpectSameTree(shadow, restored);
    ASSERT_FALSE(::testing::Test::HasFailure()) << "seed " << seed;
  }
}

TEST(StageTreeSnapshotTest, ASnapshotWhoseColumnsDisagreeIsRefusedNamingTheField) {
  StageTree tree("family", ParameterNames(1));
  hippo::snapshot::TreeSnapshot saved;
  tree.Save(saved);
  saved.add_node_end(7);  // one end more than there are nodes
  StageTree restored("family", ParameterNames(1));
  const absl::Status status = restored.Restore(saved);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("node_"), std::string::npos) << status;
}

}  // namespace
}  // namespace hippo::stage_tree
