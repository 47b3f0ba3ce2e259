// The engine's versioned read views with a real SQLite store and an in-test worker: a page of
// trials changed since a version lists exactly the trials a change reached (a metric or the end
// of a stage shared by two trials reaches both), nothing when nothing changed, and the change
// listeners are called for every change; study summaries are the views without their specs.
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <set>

#include "hippo/engine.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::SmallGrid;
using engine_test::TempDb;

// The ids of the trials changed since `version`, over pages of `limit`, and the first page's
// version.
std::pair<std::vector<int64_t>, int64_t> ChangedSince(Engine& engine, const std::string& study,
                                                      int64_t version, size_t limit = 1) {
  TrialQuery query;
  query.changed_since = version;
  query.limit = limit;
  std::vector<int64_t> ids;
  int64_t first_version = 0;
  while (true) {
    absl::StatusOr<TrialPage> page = engine.ListTrialsPage(study, query);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    if (first_version == 0) first_version = page->response.version();
    for (const v1::Trial& trial : page->response.trials()) ids.push_back(trial.id());
    if (!page->more) break;
    query.after_version = page->last_version;
    query.after_trial = page->last_trial;
  }
  return {ids, first_version};
}

TEST(EngineViewsTest, ChangesOfASharedStageReachEveryTrialThroughIt) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  std::atomic<int> signals{0};
  engine.AddChangeListener([&] { ++signals; });
  // Two trials sharing [0, 50), then differing: the first stage is theirs both.
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_GT(signals.load(), 0);

  // Both trials are new: a listing from the start has them, a listing since then nothing.
  auto [all, version] = ChangedSince(engine, study->id(), 0);
  EXPECT_EQ(all, (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(ChangedSince(engine, study->id(), version).first.empty());

  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  std::optional<v1::CoordinatorMessage> shared = channel->Next();
  ASSERT_TRUE(shared && shared->has_assign());
  ASSERT_EQ(shared->assign().end_step(), 50);

  // One metric of the shared stage: both trials have a new metric point.
  const int before = signals.load();
  v1::WorkerMessage progress;
  progress.mutable_progress()->set_attempt_id(shared->assign().attempt_id());
  progress.mutable_progress()->set_step(0);
  (*progress.mutable_progress()->mutable_metrics())["score"] = 0.5;
  ASSERT_TRUE(engine.OnWorkerMessage("w", progress).ok());
  EXPECT_GT(signals.load(), before);
  auto [after_metric, metric_version] = ChangedSince(engine, study->id(), version);
  EXPECT_EQ(std::set<int64_t>(after_metric.begin(), after_metric.end()), (std::set<int64_t>{0, 1}));
  EXPECT_EQ(after_metric.size(), 2u) << "each trial once";

  // The metric reads back with the listing.
  TrialQuery with_metrics;
  with_metrics.changed_since = version;
  with_metrics.with_metrics = true;
  absl::StatusOr<TrialPage> page = engine.ListTrialsPage(study->id(), with_metrics);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->response.metrics_size(), 2);
  for (const v1::TrialMetrics& metrics : page->response.metrics()) {
    ASSERT_EQ(metrics.metrics_size(), 1);
    EXPECT_DOUBLE_EQ(metrics.metrics(0).values().at("score"), 0.5);
  }

  // The shared stage ends (the rest of its steps, its state, done): both reached step 50.
  engine_test::Train(engine, "w", shared->assign());
  auto [after_stage, stage_version] = ChangedSince(engine, study->id(), metric_version, 5);
  EXPECT_EQ(std::set<int64_t>(after_stage.begin(), after_stage.end()), (std::set<int64_t>{0, 1}));
  absl::StatusOr<v1::ListTrialsResponse> trials = engine.ListTrials(study->id(), false);
  ASSERT_TRUE(trials.ok());
  for (const v1::Trial& trial : trials->trials()) EXPECT_EQ(trial.reached_step(), 50);

  // A branch of one trial ends: only that trial changed.
  std::optional<v1::CoordinatorMessage> branch = channel->Next();
  ASSERT_TRUE(branch && branch->has_assign());
  engine_test::Train(engine, "w", branch->assign());
  auto [after_branch, branch_version] = ChangedSince(engine, study->id(), stage_version);
  ASSERT_EQ(after_branch.size(), 1u);
  absl::StatusOr<v1::ListTrialsResponse> now = engine.ListTrials(study->id(), false);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->trials(static_cast<int>(after_branch[0])).reached_step(), 100);
  EXPECT_EQ(now->trials(static_cast<int>(1 - after_branch[0])).reached_step(), 50);

  // A version never handed out (from before a restart) lists every trial.
  EXPECT_EQ(ChangedSince(engine, study->id(), branch_version + 1000).first,
            (std::vector<int64_t>{0, 1}));
}

TEST(EngineViewsTest, StudySummariesAreTheViewsWithoutTheirSpecs) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
    ASSERT_TRUE(study.ok()) << study.status();
    ids.push_back(study->id());
  }
  size_t total = 0;
  const std::vector<v1::Study> page = engine.ListStudySummaries(1, 5, &total);
  EXPECT_EQ(total, 3u);
  ASSERT_EQ(page.size(), 2u);  // from the second, in creation order
  const std::vector<v1::Study> full = engine.ListStudies();
  for (size_t i = 0; i < page.size(); ++i) {
    EXPECT_EQ(page[i].id(), ids[i + 1]);
    EXPECT_FALSE(page[i].has_spec());
    // Everything else is the view ListStudies gives.
    v1::Study without_spec = full[i + 1];
    without_spec.clear_spec();
    EXPECT_EQ(page[i].SerializeAsString(), without_spec.SerializeAsString());
  }
  EXPECT_TRUE(engine.ListStudySummaries(3, 5, &total).empty());
  EXPECT_EQ(total, 3u);
}

TEST(EngineViewsTest, StageTreePagesCoverTheTreeOnceInOrder) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
  ASSERT_TRUE(study.ok()) << study.status();
  absl::StatusOr<v1::StageTree> whole = engine.GetStageTree(study->id(), /*dot=*/true);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(whole->stages_size(), 3);
  StageQuery query;
  query.limit = 1;
  std::vector<int64_t> ids;
  while (true) {
    absl::StatusOr<StagePage> page = engine.GetStageTreePage(study->id(), query);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const v1::Stage& stage : page->tree.stages()) ids.push_back(stage.id());
    if (!page->more) break;
    query.after_stage = page->last_stage;
  }
  std::vector<int64_t> expected;
  for (const v1::Stage& stage : whole->stages()) expected.push_back(stage.id());
  EXPECT_EQ(ids, expected);
  // Graphviz text of a tree larger than asked for is refused, naming `dot`.
  StageQuery dot;
  dot.dot = true;
  dot.max_dot_stages = 2;
  absl::StatusOr<StagePage> refused = engine.GetStageTreePage(study->id(), dot);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message().rfind("dot: ", 0), 0u) << refused.status();
}

// Checkpoint collection deletes a stage's state, not its training: once a finished study's
// states are released, its trials still reached their targets, its stages still read as done
// (without a checkpoint_uri: their states are no longer on disk) and its step counts hold.
TEST(EngineViewsTest, CollectedStagesStillReadAsTrained) {
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(SmallGrid(), /*no_merge=*/false);
  ASSERT_TRUE(study.ok()) << study.status();
  v1::WorkerHello hello = Hello("w");
  hello.set_checkpoint_dir("/checkpoints");
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(hello, channel).ok());
  while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
    if (message->has_assign()) engine_test::Train(engine, "w", message->assign());
  }
  absl::StatusOr<v1::Study> ended = engine.GetStudy(study->id());
  ASSERT_TRUE(ended.ok());
  ASSERT_EQ(ended->state(), v1::STUDY_COMPLETED);
  // Whatever the end of the study released, `hippo gc` releases the rest: nothing is kept.
  engine.CollectGarbage();
  const v1::CollectGarbageResponse collected = engine.CollectGarbage();
  for (const v1::CheckpointDirectoryUsage& usage : collected.directories()) {
    EXPECT_EQ(usage.kept_checkpoints(), 0) << usage.ShortDebugString();
  }

  absl::StatusOr<v1::ListTrialsResponse> trials = engine.ListTrials(study->id(), false);
  ASSERT_TRUE(trials.ok());
  ASSERT_EQ(trials->trials_size(), 2);
  for (const v1::Trial& trial : trials->trials()) EXPECT_EQ(trial.reached_step(), 100);
  absl::StatusOr<v1::StageTree> tree = engine.GetStageTree(study->id(), /*dot=*/false);
  ASSERT_TRUE(tree.ok());
  ASSERT_EQ(tree->stages_size(), 3);
  for (const v1::Stage& stage : tree->stages()) {
    EXPECT_EQ(stage.state(), v1::STAGE_DONE) << stage.ShortDebugString();
    EXPECT_EQ(stage.checkpoint_uri(), "") << stage.ShortDebugString();
  }
  absl::StatusOr<v1::Study> now = engine.GetStudy(study->id());
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->steps().reached_trial_steps(), 200);
  EXPECT_EQ(now->steps().executed_steps(), 150);
  EXPECT_EQ(now->best_trial().reached_step(), 100);
}

}  // namespace
}  // namespace hippo::coordinator
