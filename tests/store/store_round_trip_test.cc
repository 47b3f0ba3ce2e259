// Round trips of every record type through Commit and the reads, and the write semantics of
// WriteBatch (upserts replace, metrics keep their first value, tree ops and events append).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/store/store_test_util.h"

namespace hippo::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing_util::OpenOrDie;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Bytes no text column could carry unharmed: NUL, a stray continuation byte, 0xFF.
const std::string kBinary = std::string("\0\x01\x80\xff payload \0end", 16);

FamilyRecord Family(int64_t id, std::string key, std::vector<std::string> names) {
  FamilyRecord r;
  r.id = id;
  r.key = std::move(key);
  r.parameter_names = std::move(names);
  return r;
}

StudyRecord Study(std::string id, int64_t created_ms) {
  StudyRecord r;
  r.id = std::move(id);
  r.name = "study " + r.id;
  r.spec_json = R"({"objective":{"metric":"loss","mode":"MIN"},"note":"ü"})";
  r.state = 3;
  r.created_ms = created_ms;
  r.finished_ms = created_ms + 1000;
  r.no_merge = true;
  r.message = "finished: budget spent";
  return r;
}

TrialRecord Trial(std::string study_id, int64_t trial_id) {
  TrialRecord r;
  r.study_id = std::move(study_id);
  r.trial_id = trial_id;
  r.family_id = 7;
  r.tree_trial = 100 + trial_id;
  r.point_json = R"({"lr":0.1,"decay":"cosine"})";
  r.target_step = 90;
  r.state = 2;
  r.forked_from = trial_id == 0 ? -1 : 0;
  r.forked_at_step = trial_id == 0 ? 0 : 30;
  return r;
}

TreeOp Op(int64_t family_id, int64_t sequence, TreeOpKind kind, int64_t a, int64_t b,
          std::string payload) {
  TreeOp r;
  r.family_id = family_id;
  r.sequence = sequence;
  r.kind = kind;
  r.a = a;
  r.b = b;
  r.payload = std::move(payload);
  return r;
}

StageRecord Stage(int64_t family_id, int64_t node_id) {
  StageRecord r;
  r.family_id = family_id;
  r.node_id = node_id;
  r.parent_id = node_id - 1;
  r.lineage = node_id * 10;
  r.start_step = node_id * 30;
  r.end_step = node_id * 30 + 30;
  r.state = 4;
  r.attempts = 2;
  r.checkpoint_uri = "file:///ckpt/" + std::to_string(node_id);
  r.worker_id = "gpu-host-1/0";
  return r;
}

MetricRecord Metric(int64_t family_id, int64_t lineage, int64_t step, std::string name,
                    double value) {
  MetricRecord r;
  r.family_id = family_id;
  r.lineage = lineage;
  r.step = step;
  r.name = std::move(name);
  r.value = value;
  return r;
}

AttemptRecord Attempt(int64_t attempt_id, int state) {
  AttemptRecord r;
  r.attempt_id = attempt_id;
  r.family_id = 7;
  r.node_id = 40 + attempt_id;
  r.worker_id = "worker-" + std::to_string(attempt_id);
  r.lease_expires_ms = 1'700'000'000'000 + attempt_id;
  r.state = state;
  return r;
}

CheckpointRecord Checkpoint(int64_t family_id, int64_t node_id, int64_t step) {
  CheckpointRecord r;
  r.family_id = family_id;
  r.node_id = node_id;
  r.step = step;
  r.uri = "file:///ckpt/" + std::to_string(node_id) + "@" + std::to_string(step);
  r.size_bytes = int64_t{5} << 33;  // over 32 bits
  r.checksum = "crc32c:deadbeef";
  return r;
}

WorkerRecord Worker(std::string worker_id, bool connected) {
  WorkerRecord r;
  r.worker_id = std::move(worker_id);
  r.host = "gpu-host-1";
  r.hello_json = R"({"devices":[{"kind":"cuda","memoryBytes":"85899345920"}]})";
  r.last_seen_ms = 1'700'000'123'456;
  r.connected = connected;
  return r;
}

EventRecord Event(std::string study_id, std::string kind, int64_t time_ms) {
  EventRecord r;
  r.study_id = std::move(study_id);
  r.kind = std::move(kind);
  r.payload_json = R"({"trial":3})";
  r.time_ms = time_ms;
  return r;
}

using StoreRoundTrip = testing_util::StoreDirectoryTest;
using StoreUpsert = testing_util::StoreDirectoryTest;

TEST_F(StoreRoundTrip, EveryRecordTypeComesBackFromLoadSnapshotFieldForField) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);

  FamilyRecord family_1 = Family(
      1, "trainer=sim;model=\"mlp\";seed=7",
      {"lr", "quote\" backslash\\ newline\n tab\t", "ünïcödé", std::string("ctrl\x01\x1f", 6)});
  FamilyRecord family_2 = Family(2, "", {});  // no names, empty key
  // A morphism child's family: it inherits family 1's state after step 40 of lineage 3.
  family_2.inherits_family = 1;
  family_2.inherits_lineage = 3;
  family_2.inherits_step = 40;
  StudyRecord study_old = Study("s-000002", 100);
  StudyRecord study_new = Study("s-000001", 200);
  study_new.no_merge = false;
  study_new.finished_ms = 0;
  study_new.message = "";
  TrialRecord trial_0 = Trial("s-000001", 0);
  TrialRecord trial_1 = Trial("s-000001", 1);
  TrialRecord trial_other = Trial("s-000002", 0);
  TreeOp op_2_1 = Op(2, 1, TreeOpKind::kInsert, 0, 90, kBinary);
  TreeOp op_1_1 = Op(1, 1, TreeOpKind::kInsert, 0, 120, R"({"lr":[[0,120,"const",0.1]]})");
  TreeOp op_1_2 = Op(1, 2, TreeOpKind::kCheckpoint, kMax, kMin, "");
  AttemptRecord running_1 = Attempt(1, 0);
  AttemptRecord done_2 = Attempt(2, 1);
  AttemptRecord running_3 = Attempt(3, 0);
  CheckpointRecord checkpoint_a = Checkpoint(1, 4, 60);
  CheckpointRecord checkpoint_b = Checkpoint(1, 4, 30);
  std::pair<std::string, std::string> state_b = {"s-000002", kBinary};
  std::pair<std::string, std::string> state_a = {"s-000001", ""};
  std::pair<std::string, std::string> setting_b = {"scheduler.weights", R"({"s-000001":2})"};
  std::pair<std::string, std::string> setting_a = {"checkpoint.gc", "keep-branchable"};

  WriteBatch batch;
  batch.families = {family_2, family_1};
  batch.studies = {study_new, study_old};
  batch.trials = {trial_other, trial_1, trial_0};
  batch.tree_ops = {op_2_1, op_1_2, op_1_1};
  batch.attempts = {running_3, done_2, running_1};
  batch.checkpoints = {checkpoint_a, checkpoint_b};
  batch.algorithm_states = {state_b, state_a};
  batch.settings = {setting_b, setting_a};
  ASSERT_TRUE(store->Commit(batch).ok());

  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->families, ElementsAre(family_1, family_2));
  EXPECT_THAT(snapshot->studies, ElementsAre(study_old, study_new));  // by created_ms
  EXPECT_THAT(snapshot->trials, ElementsAre(trial_0, trial_1, trial_other));
  EXPECT_THAT(snapshot->tree_ops, ElementsAre(op_1_1, op_1_2, op_2_1));
  EXPECT_THAT(snapshot->attempts, ElementsAre(running_1, running_3));  // running only
  EXPECT_THAT(snapshot->checkpoints, ElementsAre(checkpoint_b, checkpoint_a));
  EXPECT_THAT(snapshot->algorithm_states, ElementsAre(state_a, state_b));
  EXPECT_THAT(snapshot->settings, ElementsAre(setting_a, setting_b));
}

// The journal comes back by study and sequence; a trim deletes the study's entries up to its
// sequence, after the batch's own entries are written, and leaves other studies' alone.
TEST_F(StoreRoundTrip, AlgorithmJournalComesBackInOrderAndTrimsDeleteTheCoveredEntries) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  const AlgorithmDelta a1{"s-a", 1, std::string("one\0", 4)};
  const AlgorithmDelta a2{"s-a", 2, "two"};
  const AlgorithmDelta a3{"s-a", 3, "three"};
  const AlgorithmDelta b1{"s-b", 1, "b one"};
  WriteBatch first;
  first.algorithm_deltas = {b1, a2, a1};
  ASSERT_TRUE(store->Commit(first).ok());
  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->algorithm_deltas, ElementsAre(a1, a2, b1));

  // One batch: a state covering s-a up to 3 (so 3 itself, written in the batch, goes too).
  WriteBatch second;
  second.algorithm_states = {{"s-a", "snapshot"}};
  second.algorithm_deltas = {a3};
  second.algorithm_journal_trims = {{"s-a", 3}};
  ASSERT_TRUE(store->Commit(second).ok());
  snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->algorithm_deltas, ElementsAre(b1));

  // A sequence already in the journal is refused, naming it.
  WriteBatch repeated;
  repeated.algorithm_deltas = {b1};
  const absl::Status status = store->Commit(repeated);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("1 of study s-b"));
}

// A tree snapshot replaces, in its batch's transaction, its family's operations up to the one it
// covers (those of the same batch included); other families' operations and later ones stay.
TEST_F(StoreRoundTrip, TreeSnapshotDeletesTheOperationsItCoversInItsBatch) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  WriteBatch first;
  first.tree_ops = {Op(1, 1, TreeOpKind::kInsert, 0, 90, "a"),
                    Op(1, 2, TreeOpKind::kRunning, 1, 0, ""),
                    Op(2, 1, TreeOpKind::kInsert, 0, 50, "b")};
  ASSERT_TRUE(store->Commit(first).ok());

  WriteBatch second;
  second.tree_ops = {Op(1, 3, TreeOpKind::kDone, 1, 0, ""),
                     Op(1, 4, TreeOpKind::kExtend, 0, 99, "")};
  second.tree_snapshots = {TreeSnapshotRecord{1, 3, std::string("tree\0bytes", 10)}};
  ASSERT_TRUE(store->Commit(second).ok());
  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->tree_snapshots.size(), 1u);
  EXPECT_EQ(snapshot->tree_snapshots[0].family_id, 1);
  EXPECT_EQ(snapshot->tree_snapshots[0].through_sequence, 3);
  EXPECT_EQ(snapshot->tree_snapshots[0].snapshot, std::string("tree\0bytes", 10));
  EXPECT_THAT(snapshot->tree_ops, ElementsAre(Op(1, 4, TreeOpKind::kExtend, 0, 99, ""),
                                              Op(2, 1, TreeOpKind::kInsert, 0, 50, "b")));

  // A later snapshot of the family replaces the earlier one.
  WriteBatch third;
  third.tree_snapshots = {TreeSnapshotRecord{1, 4, "newer"}};
  ASSERT_TRUE(store->Commit(third).ok());
  snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->tree_snapshots.size(), 1u);
  EXPECT_EQ(snapshot->tree_snapshots[0].snapshot, "newer");
  EXPECT_THAT(snapshot->tree_ops, ElementsAre(Op(2, 1, TreeOpKind::kInsert, 0, 50, "b")));
}

TEST_F(StoreRoundTrip, StudiesTrialsStagesAndWorkersComeBackFromTheListReads) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  StudyRecord study_a = Study("s-a", 300);
  StudyRecord study_b = Study("s-b", 300);  // same time: ordered by id
  StudyRecord study_c = Study("s-c", 100);
  TrialRecord trial_a0 = Trial("s-a", 0);
  TrialRecord trial_a1 = Trial("s-a", 1);
  TrialRecord trial_b0 = Trial("s-b", 0);
  StageRecord stage_1 = Stage(7, 1);
  StageRecord stage_2 = Stage(7, 2);
  StageRecord stage_other_family = Stage(8, 1);
  WorkerRecord worker_x = Worker("x", true);
  WorkerRecord worker_y = Worker("y", false);

  WriteBatch batch;
  batch.studies = {study_b, study_c, study_a};
  batch.trials = {trial_a1, trial_b0, trial_a0};
  batch.stages = {stage_2, stage_other_family, stage_1};
  batch.workers = {worker_y, worker_x};
  ASSERT_TRUE(store->Commit(batch).ok());

  absl::StatusOr<std::vector<StudyRecord>> studies = store->ListStudies();
  ASSERT_TRUE(studies.ok()) << studies.status();
  EXPECT_THAT(*studies, ElementsAre(study_c, study_a, study_b));

  absl::StatusOr<std::optional<StudyRecord>> found = store->GetStudy("s-b");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, study_b);
  absl::StatusOr<std::optional<StudyRecord>> missing = store->GetStudy("s-none");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());

  absl::StatusOr<std::vector<TrialRecord>> trials = store->ListTrials("s-a");
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_THAT(*trials, ElementsAre(trial_a0, trial_a1));
  absl::StatusOr<std::vector<TrialRecord>> no_trials = store->ListTrials("s-c");
  ASSERT_TRUE(no_trials.ok());
  EXPECT_THAT(*no_trials, IsEmpty());

  absl::StatusOr<std::vector<StageRecord>> stages = store->ListStages(7);
  ASSERT_TRUE(stages.ok()) << stages.status();
  EXPECT_THAT(*stages, ElementsAre(stage_1, stage_2));

  absl::StatusOr<std::vector<WorkerRecord>> workers = store->ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_THAT(*workers, ElementsAre(worker_x, worker_y));
}

TEST_F(StoreRoundTrip, ListMetricsReturnsTheLineagesAndStepRangeAskedForInOrder) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  const double kNan = std::numeric_limits<double>::quiet_NaN();
  const double kInf = std::numeric_limits<double>::infinity();
  MetricRecord l1_s10_loss = Metric(7, 1, 10, "loss", 0.5);
  MetricRecord l1_s10_acc = Metric(7, 1, 10, "accuracy", 0.25);
  MetricRecord l1_s20 = Metric(7, 1, 20, "loss", kNan);  // a diverged run
  MetricRecord l1_s30 = Metric(7, 1, 30, "loss", -kInf);
  MetricRecord l2_s10 = Metric(7, 2, 10, "loss", 1e-300);
  MetricRecord l3_s15 = Metric(7, 3, 15, "loss", kInf);
  MetricRecord other_family = Metric(8, 1, 10, "loss", 9);

  WriteBatch batch;
  batch.metrics = {l3_s15, l1_s30, l2_s10, other_family, l1_s20, l1_s10_loss, l1_s10_acc};
  ASSERT_TRUE(store->Commit(batch).ok());

  // Lineages in any order and repeated: results ordered by lineage, then step, then name.
  absl::StatusOr<std::vector<MetricRecord>> some = store->ListMetrics(7, {3, 1, 3}, 10, 30);
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_THAT(*some, ElementsAre(l1_s10_acc, l1_s10_loss, l1_s20, l3_s15));

  // No lineages: every lineage of the family.
  absl::StatusOr<std::vector<MetricRecord>> all = store->ListMetrics(7, {}, 0, 1000);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, ElementsAre(l1_s10_acc, l1_s10_loss, l1_s20, l1_s30, l2_s10, l3_s15));

  absl::StatusOr<std::vector<MetricRecord>> none = store->ListMetrics(7, {2}, 11, 1000);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
}

TEST_F(StoreRoundTrip, EventsGetIncreasingSequenceNumbersAndPageByAfterSequenceAndLimit) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  WriteBatch first;
  first.events = {Event("s-1", "study_created", 10), Event("", "worker_lost", 11)};
  ASSERT_TRUE(store->Commit(first).ok());
  WriteBatch second;
  second.events = {Event("s-1", "trial_ended", 12)};
  ASSERT_TRUE(store->Commit(second).ok());

  absl::StatusOr<std::vector<EventRecord>> events = store->ListEvents(0, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u);
  std::vector<EventRecord> expected = {first.events[0], first.events[1], second.events[0]};
  for (size_t i = 0; i < expected.size(); ++i) {
    expected[i].sequence = (*events)[i].sequence;  // assigned by the store
    EXPECT_EQ((*events)[i], expected[i]);
    if (i > 0) {
      EXPECT_GT((*events)[i].sequence, (*events)[i - 1].sequence);
    }
  }
  EXPECT_GT((*events)[0].sequence, 0);

  absl::StatusOr<std::vector<EventRecord>> page =
      store->ListEvents((*events)[0].sequence, /*limit=*/1);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(*page, ElementsAre(expected[1]));
  absl::StatusOr<std::vector<EventRecord>> tail = store->ListEvents((*events)[2].sequence, 10);
  ASSERT_TRUE(tail.ok());
  EXPECT_THAT(*tail, IsEmpty());
}

TEST_F(StoreUpsert, UpsertsReplaceTheRowWithTheSameKey) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  WriteBatch before;
  before.families = {Family(1, "old", {"a"})};
  before.studies = {Study("s-1", 100)};
  before.trials = {Trial("s-1", 0)};
  before.stages = {Stage(7, 1)};
  before.attempts = {Attempt(1, 0)};
  before.checkpoints = {Checkpoint(7, 1, 30)};
  before.workers = {Worker("w", true)};
  before.algorithm_states = {{"s-1", "old state"}};
  before.settings = {{"k", "old"}};
  before.worker_health = {WorkerHealthRecord{"w", 3, 1, 1'700'000'060'000, "No space left"}};
  ASSERT_TRUE(store->Commit(before).ok());

  // Same keys, every other field changed.
  FamilyRecord family = Family(1, "new", {"b", "c"});
  StudyRecord study = Study("s-1", 555);
  study.name = "renamed";
  study.spec_json = "{}";
  study.state = 9;
  study.finished_ms = 0;
  study.no_merge = false;
  study.message = "re-opened";
  TrialRecord trial = Trial("s-1", 0);
  trial.family_id = 8;
  trial.tree_trial = 1;
  trial.point_json = "{}";
  trial.target_step = 270;
  trial.state = 5;
  trial.forked_from = 4;
  trial.forked_at_step = 60;
  StageRecord stage = Stage(7, 1);
  stage.parent_id = 0;
  stage.lineage = 99;
  stage.start_step = 0;
  stage.end_step = 15;
  stage.state = 1;
  stage.attempts = 3;
  stage.checkpoint_uri = "";
  stage.worker_id = "";
  AttemptRecord attempt = Attempt(1, 0);
  attempt.family_id = 8;
  attempt.node_id = 2;
  attempt.worker_id = "other";
  attempt.lease_expires_ms = 1;
  CheckpointRecord checkpoint = Checkpoint(7, 1, 30);
  checkpoint.uri = "file:///elsewhere";
  checkpoint.size_bytes = 1;
  checkpoint.checksum = "crc32c:00000000";
  WorkerRecord worker = Worker("w", false);
  worker.host = "other-host";
  worker.hello_json = "{}";
  worker.last_seen_ms = 5;

  WriteBatch after;
  after.families = {family};
  after.studies = {study};
  after.trials = {trial};
  after.stages = {stage};
  after.attempts = {attempt};
  after.checkpoints = {checkpoint};
  after.workers = {worker};
  after.algorithm_states = {{"s-1", "new state"}};
  after.settings = {{"k", "new"}};
  const WorkerHealthRecord health{"w", 0, 0, 0, ""};  // healthy again
  after.worker_health = {health};
  ASSERT_TRUE(store->Commit(after).ok());

  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->families, ElementsAre(family));
  EXPECT_THAT(snapshot->studies, ElementsAre(study));
  EXPECT_THAT(snapshot->trials, ElementsAre(trial));
  EXPECT_THAT(snapshot->attempts, ElementsAre(attempt));
  EXPECT_THAT(snapshot->checkpoints, ElementsAre(checkpoint));
  EXPECT_THAT(snapshot->algorithm_states,
              ElementsAre(std::pair<std::string, std::string>("s-1", "new state")));
  EXPECT_THAT(snapshot->settings, ElementsAre(std::pair<std::string, std::string>("k", "new")));
  EXPECT_THAT(snapshot->worker_health, ElementsAre(health));
  absl::StatusOr<std::vector<StageRecord>> stages = store->ListStages(7);
  ASSERT_TRUE(stages.ok());
  EXPECT_THAT(*stages, ElementsAre(stage));
  absl::StatusOr<std::vector<WorkerRecord>> workers = store->ListWorkers();
  ASSERT_TRUE(workers.ok());
  EXPECT_THAT(*workers, ElementsAre(worker));

  // An attempt that stops running leaves the snapshot (it holds running attempts only).
  WriteBatch finished;
  finished.attempts = {Attempt(1, 1)};
  ASSERT_TRUE(store->Commit(finished).ok());
  snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_THAT(snapshot->attempts, IsEmpty());
}

TEST_F(StoreUpsert, MetricsKeepTheirFirstValue) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  WriteBatch first;
  first.metrics = {Metric(7, 1, 10, "loss", 0.5)};
  ASSERT_TRUE(store->Commit(first).ok());

  // A replayed report in a later batch, and a duplicate inside one batch.
  WriteBatch replay;
  replay.metrics = {Metric(7, 1, 10, "loss", 0.75), Metric(7, 1, 20, "loss", 0.25),
                    Metric(7, 1, 20, "loss", 0.125)};
  ASSERT_TRUE(store->Commit(replay).ok());

  absl::StatusOr<std::vector<MetricRecord>> metrics = store->ListMetrics(7, {1}, 0, 100);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, ElementsAre(Metric(7, 1, 10, "loss", 0.5), Metric(7, 1, 20, "loss", 0.25)));
}

TEST_F(StoreUpsert, TreeOpWithAnExistingSequenceFailsItsWholeBatch) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  TreeOp original = Op(1, 1, TreeOpKind::kInsert, 0, 90, "original");
  WriteBatch first;
  first.tree_ops = {original};
  ASSERT_TRUE(store->Commit(first).ok());

  WriteBatch duplicate;
  duplicate.studies = {Study("s-dup", 1)};
  duplicate.tree_ops = {Op(1, 2, TreeOpKind::kRunning, 1, 0, ""),
                        Op(1, 1, TreeOpKind::kDone, 1, 0, "rewritten history")};
  duplicate.events = {Event("s-dup", "study_created", 1)};
  absl::Status status = store->Commit(duplicate);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("sequence 1"));

  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_THAT(snapshot->tree_ops, ElementsAre(original));
  EXPECT_THAT(snapshot->studies, IsEmpty());
  absl::StatusOr<std::vector<EventRecord>> events = store->ListEvents(0, 0);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, IsEmpty());
}

// Rows go to SQLite many to a statement (store/apply_batch.cc); across and within statements
// they must behave as if written one by one: a later upsert wins, a duplicate metric keeps the
// first value, and a failing row fails the batch, named, with nothing of the batch stored.
TEST_F(StoreUpsert, ManyRowsOfATableInOneBatchBehaveAsWrittenOneByOne) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  constexpr int kRows = 40;  // more than one statement's worth
  WriteBatch batch;
  std::vector<StageRecord> expected_stages;
  std::vector<MetricRecord> expected_metrics;
  for (int i = 1; i <= kRows; ++i) {
    batch.stages.push_back(Stage(7, i));
    expected_stages.push_back(Stage(7, i));
    batch.metrics.push_back(Metric(7, 1, i, "loss", i));
    expected_metrics.push_back(Metric(7, 1, i, "loss", i));
    batch.tree_ops.push_back(Op(7, i, TreeOpKind::kRunning, i, 0, ""));
  }
  // The same keys again: inside the first statement's rows, and in a later statement.
  StageRecord rewritten = Stage(7, 3);
  rewritten.state = 5;
  batch.stages.insert(batch.stages.begin() + 5, rewritten);
  StageRecord rewritten_later = Stage(7, 20);
  rewritten_later.attempts = 9;
  batch.stages.push_back(rewritten_later);
  expected_stages[2] = rewritten;
  expected_stages[19] = rewritten_later;
  batch.metrics.insert(batch.metrics.begin() + 8, Metric(7, 1, 2, "loss", -1));  // not kept
  batch.metrics.push_back(Metric(7, 1, 4, "loss", -1));                          // not kept
  ASSERT_TRUE(store->Commit(batch).ok());

  absl::StatusOr<std::vector<StageRecord>> stages = store->ListStages(7);
  ASSERT_TRUE(stages.ok()) << stages.status();
  EXPECT_EQ(*stages, expected_stages);
  absl::StatusOr<std::vector<MetricRecord>> metrics = store->ListMetrics(7, {1}, 0, 1000);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(*metrics, expected_metrics);

  // A batch whose 37th tree op repeats a sequence: refused, named, nothing of it stored.
  WriteBatch failing;
  failing.studies = {Study("s-many", 1)};
  for (int i = 1; i <= kRows; ++i) {
    failing.tree_ops.push_back(Op(7, i == 37 ? 5 : kRows + i, TreeOpKind::kDone, i, 0, ""));
  }
  absl::Status status = store->Commit(failing);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("sequence 5"));
  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->tree_ops.size(), static_cast<size_t>(kRows));
  EXPECT_THAT(snapshot->studies, IsEmpty());
}

TEST_F(StoreUpsert, EmptyBatchCommitsNothingAndSucceeds) {
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(WriteBatch().empty());
  EXPECT_TRUE(store->Commit(WriteBatch()).ok());
  EXPECT_EQ(store->writer_stats().batches, 0);
  EXPECT_EQ(store->writer_stats().transactions, 0);
}

}  // namespace
}  // namespace hippo::store
