// Compacting the tree-operation log: a coordinator that stores snapshots of its trees recovers
// the same trees as one that replays every operation, and its log stays bounded.
#include <gtest/gtest.h>

#include <optional>

#include "google/protobuf/util/message_differencer.h"
#include "hippo/engine.h"
#include "store/store.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::TempDb;
using engine_test::Train;

// 18 trials: three milestones times six decay factors, sharing prefixes.
v1::StudySpec Grid() {
  v1::StudySpec spec = engine_test::SmallGrid();
  v1::StepDecaySequence* decay =
      spec.mutable_search_space()->mutable_parameters(0)->mutable_sequence()->mutable_step_decay();
  decay->mutable_gamma()->mutable_choices()->clear_values();
  for (double gamma : {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}) {
    decay->mutable_gamma()->mutable_choices()->add_values(gamma);
  }
  decay->mutable_milestones()->add_choices()->add_steps(30);
  decay->mutable_milestones()->add_choices()->add_steps(70);
  return spec;
}

// The tree as a read shows it, less the critical path, which follows step times measured by
// the engine that read it.
v1::StageTree Normalized(v1::StageTree tree) {
  for (v1::Stage& stage : *tree.mutable_stages()) stage.clear_critical_path_seconds();
  return tree;
}

std::optional<v1::Assign> NextAssign(RecordingChannel& channel) {
  while (std::optional<v1::CoordinatorMessage> message = channel.Next()) {
    if (message->has_assign()) return message->assign();
  }
  return std::nullopt;
}

struct RunResult {
  v1::StageTree tree_before;     // the live engine's tree after `stages` stages
  v1::StageTree tree_recovered;  // the tree of an engine recovered from the file
  v1::Study finished;            // the study, trained to its end by the recovered engine
  int64_t stored_ops = 0;        // the operations left in the file at the end
  int64_t snapshots = 0;         // the tree snapshots in it
};

// Trains `stages` stages of Grid() with one worker, restarts the engine on the file, compares,
// then trains the rest.
RunResult TrainRestartAndFinish(int64_t compact_ops_after, int stages) {
  const std::string db = TempDb();
  EngineOptions options;
  options.compact_ops_after = compact_ops_after;
  RunResult run;
  std::string study_id;
  {
    auto store = store::Store::Open(db);
    EXPECT_TRUE(store.ok());
    Engine engine(store->get(), options);
    EXPECT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(Grid(), false);
    EXPECT_TRUE(study.ok());
    study_id = study->id();
    auto channel = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine.Connect(Hello("w"), channel).ok());
    for (int i = 0; i < stages; ++i) {
      std::optional<v1::Assign> assign = NextAssign(*channel);
      if (!assign) break;
      Train(engine, "w", *assign);
    }
    run.tree_before = Normalized(*engine.GetStageTree(study_id, false));
  }
  auto store = store::Store::Open(db);
  EXPECT_TRUE(store.ok());
  {
    Engine engine(store->get(), options);
    EXPECT_TRUE(engine.Recover().ok());
    run.tree_recovered = Normalized(*engine.GetStageTree(study_id, false));
    // The worker restarted too and holds no attempt: the one in flight goes back at once rather
    // than after its lease.
    v1::WorkerHello hello = Hello("w");
    hello.mutable_held();
    auto channel = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine.Connect(hello, channel).ok());
    while (std::optional<v1::Assign> assign = NextAssign(*channel)) Train(engine, "w", *assign);
    run.finished = *engine.GetStudy(study_id);
  }
  absl::StatusOr<store::Snapshot> stored = (*store)->LoadSnapshot();
  EXPECT_TRUE(stored.ok());
  run.stored_ops = static_cast<int64_t>(stored->tree_ops.size());
  run.snapshots = static_cast<int64_t>(stored->tree_snapshots.size());
  return run;
}

TEST(EngineCompactionTest, RecoveryFromASnapshotGivesTheTreeOfAFullReplay) {
  const RunResult full = TrainRestartAndFinish(/*compact_ops_after=*/0, /*stages=*/12);
  const RunResult compacted = TrainRestartAndFinish(/*compact_ops_after=*/8, /*stages=*/12);
  ASSERT_GT(full.tree_before.stages_size(), 12);
  // Each recovered tree is the tree its engine had, and compaction changes nothing in it.
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(full.tree_recovered, full.tree_before));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(compacted.tree_recovered,
                                                                 compacted.tree_before))
      << compacted.tree_recovered.DebugString() << "\n---\n"
      << compacted.tree_before.DebugString();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(compacted.tree_recovered,
                                                                 full.tree_recovered));
  // Trained to the end after the restart, the studies agree.
  ASSERT_EQ(full.finished.state(), v1::STUDY_COMPLETED) << full.finished.ShortDebugString();
  ASSERT_EQ(compacted.finished.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(compacted.finished.trials_completed(), 18);
  EXPECT_EQ(compacted.finished.best_trial().id(), full.finished.best_trial().id());
  EXPECT_EQ(compacted.finished.best_trial().objective_value(),
            full.finished.best_trial().objective_value());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(compacted.finished.steps(),
                                                                 full.finished.steps()));
  // The full log keeps every operation; the compacted one a snapshot and fewer operations than
  // its threshold (the tree's node count, which is above 8) plus one commit's.
  EXPECT_EQ(full.snapshots, 0);
  EXPECT_EQ(compacted.snapshots, 1);
  EXPECT_LT(compacted.stored_ops, full.stored_ops / 2);
  EXPECT_LE(compacted.stored_ops, full.tree_recovered.stages_size() + 8);
}

}  // namespace
}  // namespace hippo::coordinator
