// Workers whose checkpoint directories differ (WorkerHello.checkpoint_dir): a worker reads
// states only in its own directory, so a stage whose starting state lies in another directory
// goes to a worker of that directory while one is connected; when none is, it is not held back
// (the worker that takes it reports the state lost, and the engine recomputes it).
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hippo/engine.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::RecordingChannel;
using engine_test::SmallGrid;
using engine_test::TempDb;
using engine_test::Train;

// engine_test::Train reports every state as file:///checkpoints/<stage id>.
constexpr char kTrainDirectory[] = "/checkpoints";

v1::WorkerHello HelloIn(const std::string& id, const std::string& directory) {
  v1::WorkerHello hello = engine_test::Hello(id);
  hello.set_checkpoint_dir(directory);
  return hello;
}

struct TwoDirectories : ::testing::Test {
  void SetUp() override {
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
  }
  void TearDown() override { std::filesystem::remove(db); }

  std::string db = TempDb();
  std::unique_ptr<store::Store> store = *store::Store::Open(db);
  Engine engine{store.get(), EngineOptions{}};
  std::string study_id;
};

TEST_F(TwoDirectories, AStageGoesOnlyToAWorkerThatCanReadItsParentsState) {
  auto a = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(HelloIn("a", kTrainDirectory), a).ok());
  std::optional<v1::CoordinatorMessage> root = a->Next();
  ASSERT_TRUE(root && root->has_assign());
  ASSERT_EQ(root->assign().end_step(), 50);
  // Idle while the shared prefix trains; its directory is not the one the prefix is kept in.
  auto b = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(HelloIn("b", "/elsewhere"), b).ok());

  Train(engine, "a", root->assign());
  // Both branches start from the state in a's directory: a trains them one after the other,
  // and b, idle all along, is given neither.
  int branches = 0;
  while (std::optional<v1::CoordinatorMessage> message = a->Next()) {
    if (message->has_delete_checkpoints()) continue;  // the states released as the study ends
    ASSERT_TRUE(message->has_assign()) << message->DebugString();
    EXPECT_EQ(message->assign().parent_stage_id(), root->assign().stage_id());
    ++branches;
    Train(engine, "a", message->assign());
    EXPECT_FALSE(b->Next().has_value()) << "b cannot read the parent state";
  }
  EXPECT_EQ(branches, 2);
  absl::StatusOr<v1::Study> study = engine.GetStudy(study_id);
  ASSERT_TRUE(study.ok());
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(study->steps().recomputed_steps(), 0);
}

TEST_F(TwoDirectories, WithNoConnectedWorkerOfTheStatesDirectoryTheStageIsNotHeldBack) {
  auto a = std::make_shared<RecordingChannel>();
  absl::StatusOr<int64_t> session = engine.Connect(HelloIn("a", kTrainDirectory), a);
  ASSERT_TRUE(session.ok());
  std::optional<v1::CoordinatorMessage> root = a->Next();
  ASSERT_TRUE(root && root->has_assign());
  Train(engine, "a", root->assign());
  std::optional<v1::CoordinatorMessage> first_branch = a->Next();
  ASSERT_TRUE(first_branch && first_branch->has_assign());
  engine.Disconnect("a", *session);

  // The other branch: no connected worker can read its parent state, so b takes it (it will
  // report the state lost, and the engine recompute it; engine_repair.cc).
  auto b = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(HelloIn("b", "/elsewhere"), b).ok());
  std::optional<v1::CoordinatorMessage> second_branch = b->Next();
  ASSERT_TRUE(second_branch && second_branch->has_assign());
  EXPECT_EQ(second_branch->assign().parent_stage_id(), root->assign().stage_id());
}

TEST_F(TwoDirectories, AWorkerThatNamesNoDirectoryIsGivenAnyStage) {
  auto a = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(HelloIn("a", kTrainDirectory), a).ok());
  std::optional<v1::CoordinatorMessage> root = a->Next();
  ASSERT_TRUE(root && root->has_assign());
  auto b = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(HelloIn("b", ""), b).ok());
  Train(engine, "a", root->assign());
  // a takes one branch, and b (which may share a's directory: it does not say) the other.
  std::optional<v1::CoordinatorMessage> to_b = b->Next();
  ASSERT_TRUE(to_b && to_b->has_assign());
  EXPECT_EQ(to_b->assign().parent_stage_id(), root->assign().stage_id());
}

}  // namespace
}  // namespace hippo::coordinator
