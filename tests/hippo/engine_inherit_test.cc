// Families that inherit another family's trained state (the `morphism` algorithm's children):
// the Assign of a child's first stage names the parent family's stage, step and checkpoint and
// the parent's structural values; the store records the family's inheritance (real SQLite
// file); the stage tree lists the stage the child inherited from; a restarted engine rebuilds
// all of it from the file; a child stage whose worker is lost starts again from the same
// inherited state; an inherited state that cannot be read is recomputed by the parent family
// while the child's stage waits for it, also across a restart of the engine.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "hippo/engine.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::TempDb;
using engine_test::Train;

// width 4..64 step 4 (structural, grown by morphisms) and a constant lr: every child inherits
// its parent's state at the parent's target (4 for an initial member, 6 for a child) and trains
// 2 steps more, one width step wider (the same width when the parent has the widest: the
// identity morphism).
v1::StudySpec MorphismStudy() {
  v1::StudySpec spec;
  spec.set_name("morphism");
  spec.mutable_objective()->set_metric("score");
  spec.mutable_objective()->set_direction(v1::MAXIMIZE);
  spec.mutable_trainer()->set_kind("sim");
  v1::Parameter* lr = spec.mutable_search_space()->add_parameters();
  lr->set_name("lr");
  lr->mutable_sequence()->mutable_constant()->set_value(0.1);
  v1::Parameter* width = spec.mutable_search_space()->add_parameters();
  width->set_name("width");
  width->mutable_int_()->set_low(4);
  width->mutable_int_()->set_high(64);
  width->mutable_int_()->set_step(4);
  width->set_structural(true);
  v1::Algorithm& algorithm = *spec.mutable_algorithm();
  algorithm.set_name("morphism");
  algorithm.set_seed(1);
  v1::MorphismConfig& morphism = *algorithm.mutable_morphism();
  morphism.set_population_size(2);
  morphism.set_sample_size(1);
  morphism.set_children(2);
  morphism.set_initial_steps(4);
  morphism.set_child_steps(2);
  morphism.add_grow("width");
  spec.mutable_budget()->set_max_steps(20);
  return spec;
}

std::optional<v1::Assign> NextAssign(RecordingChannel& channel) {
  while (std::optional<v1::CoordinatorMessage> message = channel.Next()) {
    if (message->has_assign()) return message->assign();
  }
  return std::nullopt;
}

TEST(EngineInheritTest, ChildFamiliesRecordTheStateTheyInheritAndStartFromIt) {
  const std::string db = TempDb();
  std::string study_id;
  std::vector<v1::Assign> inherited;
  std::map<int64_t, v1::Assign> by_stage;  // every Assign, by stage id
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(MorphismStudy(), false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    auto channel = std::make_shared<RecordingChannel>();
    ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
    for (int i = 0; i < 20; ++i) {
      std::optional<v1::Assign> assign = NextAssign(*channel);
      if (!assign) break;
      by_stage[assign->stage_id()] = *assign;
      if (assign->has_inherit()) inherited.push_back(*assign);
      Train(engine, "w", *assign);
    }
    absl::StatusOr<v1::Study> done = engine.GetStudy(study_id);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->state(), v1::STUDY_COMPLETED);
    // Every trial trained to its own target (below max_steps) and completed there, so the
    // study has a best trial.
    EXPECT_EQ(done->trials_completed(), done->trials_total());
    EXPECT_TRUE(done->has_best_trial());
  }
  ASSERT_FALSE(inherited.empty()) << "no child inherited a state";
  for (const v1::Assign& child : inherited) {
    // It starts where its parent stopped, from the checkpoint the parent's stage wrote.
    EXPECT_TRUE(child.parent_state_step() == 4 || child.parent_state_step() == 6)
        << child.parent_state_step();
    EXPECT_EQ(child.start_step(), child.parent_state_step());
    EXPECT_EQ(child.end_step(), child.start_step() + 2);
    ASSERT_TRUE(by_stage.contains(child.parent_stage_id()));
    const v1::Assign& parent = by_stage.at(child.parent_stage_id());
    EXPECT_EQ(parent.end_step(), child.parent_state_step());
    EXPECT_EQ(child.parent_state_uri(),
              "file:///checkpoints/" + std::to_string(child.parent_stage_id()));
    // Another family (stage ids hold the family in their high bits), a wider network.
    EXPECT_NE(child.stage_id() >> 32, child.parent_stage_id() >> 32);
    const double parent_width = parent.static_parameters().at("width").number_value();
    EXPECT_EQ(child.inherit().parent_static_parameters().at("width").number_value(), parent_width);
    EXPECT_EQ(child.static_parameters().at("width").number_value(),
              std::min(parent_width + 4, 64.0));
  }

  // The store's families record the inheritance; the tree lists it; both survive a restart.
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  absl::StatusOr<store::Snapshot> snapshot = (*store)->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  std::set<int64_t> inheriting;
  for (const store::FamilyRecord& family : snapshot->families) {
    if (family.inherits_family == 0) continue;
    inheriting.insert(family.id);
    EXPECT_LT(family.inherits_family, family.id);
    EXPECT_TRUE(family.inherits_step == 4 || family.inherits_step == 6) << family.inherits_step;
    EXPECT_NE(family.key.find("|inherits="), std::string::npos) << family.key;
  }
  std::set<int64_t> child_families;
  for (const v1::Assign& child : inherited) child_families.insert(child.stage_id() >> 32);
  EXPECT_EQ(inheriting, child_families);

  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  absl::StatusOr<v1::StageTree> tree = recovered.GetStageTree(study_id, false);
  ASSERT_TRUE(tree.ok()) << tree.status();
  int listed = 0;
  for (const v1::Stage& stage : tree->stages()) {
    if (!child_families.contains(stage.id() >> 32) || stage.parent_id() != 0) continue;
    ++listed;
    ASSERT_TRUE(by_stage.contains(stage.id()));
    EXPECT_EQ(stage.start_step(), by_stage.at(stage.id()).parent_state_step());
    EXPECT_EQ(stage.inherited_from(), by_stage.at(stage.id()).parent_stage_id());
  }
  EXPECT_EQ(listed, static_cast<int>(child_families.size()));
  for (const v1::Stage& stage : tree->stages()) {
    if (!child_families.contains(stage.id() >> 32)) {
      EXPECT_EQ(stage.inherited_from(), 0);
    }
  }
}

TEST(EngineInheritTest, AChildStageWhoseWorkerIsLostStartsAgainFromTheInheritedState) {
  auto store = store::Store::Open(TempDb());
  ASSERT_TRUE(store.ok());
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  ASSERT_TRUE(engine.CreateStudy(MorphismStudy(), false).ok());
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  std::optional<v1::Assign> child;
  for (int i = 0; i < 10 && !child; ++i) {
    std::optional<v1::Assign> assign = NextAssign(*channel);
    ASSERT_TRUE(assign);
    if (assign->has_inherit()) {
      child = *assign;
    } else {
      Train(engine, "w", *assign);
    }
  }
  ASSERT_TRUE(child) << "no child inherited a state";
  // The worker dies mid-stage: its lease expires and the stage goes to another worker.
  engine.Disconnect("w", 1);
  engine.ExpireLeases(Clock::now() + std::chrono::minutes(1));
  auto other = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w2"), other).ok());
  std::optional<v1::Assign> again;
  for (int i = 0; i < 10 && !again; ++i) {
    std::optional<v1::Assign> assign = NextAssign(*other);
    ASSERT_TRUE(assign);
    if (assign->stage_id() == child->stage_id()) {
      again = *assign;
    } else {
      Train(engine, "w2", *assign);
    }
  }
  ASSERT_TRUE(again) << "the lost child stage was not handed out again";
  EXPECT_NE(again->attempt_id(), child->attempt_id());
  EXPECT_EQ(again->start_step(), child->start_step());
  EXPECT_EQ(again->parent_stage_id(), child->parent_stage_id());
  EXPECT_EQ(again->parent_state_step(), child->parent_state_step());
  EXPECT_EQ(again->parent_state_uri(), child->parent_state_uri());
  EXPECT_EQ(again->inherit().SerializeAsString(), child->inherit().SerializeAsString());
}

// The worker could not read the state `assign` starts from (missing or corrupt file).
void ReportStateLost(Engine& engine, const std::string& worker, const v1::Assign& assign) {
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_attempt_id(assign.attempt_id());
  finished.mutable_finished()->set_ok(false);
  finished.mutable_finished()->set_error("checkpoint checksum mismatch");
  finished.mutable_finished()->set_parent_state_lost(true);
  ASSERT_TRUE(engine.OnWorkerMessage(worker, finished).ok());
}

// Trains `engine`'s stages on `worker` until the study ends (or nothing is handed out):
// returns every Assign in order.
std::vector<v1::Assign> TrainToTheEnd(Engine& engine, const std::string& worker,
                                      RecordingChannel& channel) {
  std::vector<v1::Assign> assigns;
  for (int i = 0; i < 200; ++i) {
    std::optional<v1::Assign> assign = NextAssign(channel);
    if (!assign) break;
    assigns.push_back(*assign);
    Train(engine, worker, *assign);
  }
  return assigns;
}

// Runs the morphism study until the first stage of an inheriting family is handed out, and
// has its worker report that stage's inherited state unreadable. Returns that Assign.
std::optional<v1::Assign> LoseTheFirstInheritedState(Engine& engine, RecordingChannel& channel) {
  for (int i = 0; i < 20; ++i) {
    std::optional<v1::Assign> assign = NextAssign(channel);
    if (!assign) return std::nullopt;
    if (assign->has_inherit()) {
      ReportStateLost(engine, "w", *assign);
      return assign;
    }
    Train(engine, "w", *assign);
  }
  return std::nullopt;
}

// After the loss: the parent's stage is trained again from scratch up to the inherited step
// before the child's stage is handed out again, from the same state; the study completes.
void ExpectRecomputedBeforeTheChildRuns(const v1::Assign& child,
                                        const std::vector<v1::Assign>& after) {
  std::optional<size_t> recomputed;
  std::optional<size_t> child_again;
  for (size_t i = 0; i < after.size(); ++i) {
    if (after[i].stage_id() == child.parent_stage_id() &&
        after[i].end_step() == child.parent_state_step() && !recomputed) {
      recomputed = i;
      EXPECT_EQ(after[i].start_step(), 0);
    }
    if (after[i].stage_id() == child.stage_id() && !child_again) child_again = i;
  }
  ASSERT_TRUE(recomputed) << "the lost inherited state was not recomputed";
  ASSERT_TRUE(child_again) << "the child's stage was not handed out again";
  EXPECT_LT(*recomputed, *child_again) << "the child ran before its state was kept again";
  const v1::Assign& again = after[*child_again];
  EXPECT_EQ(again.start_step(), child.start_step());
  EXPECT_EQ(again.parent_stage_id(), child.parent_stage_id());
  EXPECT_EQ(again.parent_state_step(), child.parent_state_step());
  EXPECT_EQ(again.inherit().SerializeAsString(), child.inherit().SerializeAsString());
}

TEST(EngineInheritTest, ALostInheritedStateIsRecomputedByItsFamilyBeforeTheChildStarts) {
  auto store = store::Store::Open(TempDb());
  ASSERT_TRUE(store.ok());
  Engine engine(store->get(), EngineOptions{});
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(MorphismStudy(), false);
  ASSERT_TRUE(study.ok()) << study.status();
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  std::optional<v1::Assign> child = LoseTheFirstInheritedState(engine, *channel);
  ASSERT_TRUE(child) << "no child inherited a state";
  EXPECT_EQ(engine.stats().states_lost, 1);
  ExpectRecomputedBeforeTheChildRuns(*child, TrainToTheEnd(engine, "w", *channel));
  absl::StatusOr<v1::Study> done = engine.GetStudy(study->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED) << done->message();
  EXPECT_EQ(done->trials_completed(), done->trials_total());
  EXPECT_EQ(done->steps().recomputed_steps(), child->parent_state_step());
}

TEST(EngineInheritTest, TheChildWaitsForItsLostInheritedStateAcrossARestart) {
  const std::string db = TempDb();
  std::optional<v1::Assign> child;
  std::string study_id;
  {
    auto store = store::Store::Open(db);
    ASSERT_TRUE(store.ok());
    Engine engine(store->get(), EngineOptions{});
    ASSERT_TRUE(engine.Recover().ok());
    absl::StatusOr<v1::Study> study = engine.CreateStudy(MorphismStudy(), false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    auto channel = std::make_shared<RecordingChannel>();
    ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
    child = LoseTheFirstInheritedState(engine, *channel);
    ASSERT_TRUE(child) << "no child inherited a state";
    // The coordinator dies here, before the state is recomputed.
  }
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  Engine recovered(store->get(), EngineOptions{});
  ASSERT_TRUE(recovered.Recover().ok());
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(recovered.Connect(Hello("w"), channel).ok());
  // What the first engine had handed out after the loss goes back to the queue.
  recovered.ExpireLeases(Clock::now() + std::chrono::minutes(1));
  ExpectRecomputedBeforeTheChildRuns(*child, TrainToTheEnd(recovered, "w", *channel));
  absl::StatusOr<v1::Study> done = recovered.GetStudy(study_id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED) << done->message();
  EXPECT_EQ(done->trials_completed(), done->trials_total());
  EXPECT_EQ(done->steps().recomputed_steps(), child->parent_state_step());
}

TEST(EngineInheritTest, AChildWhoseLostStateCannotBeRecomputedFailsInsteadOfWaiting) {
  auto store = store::Store::Open(TempDb());
  ASSERT_TRUE(store.ok());
  EngineOptions options;
  options.retry_backoff_seconds = 0;
  options.unhealthy_after_failures = 0;  // the one worker is never drained
  Engine engine(store->get(), options);
  ASSERT_TRUE(engine.Recover().ok());
  absl::StatusOr<v1::Study> study = engine.CreateStudy(MorphismStudy(), false);
  ASSERT_TRUE(study.ok()) << study.status();
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("w"), channel).ok());
  std::optional<v1::Assign> child = LoseTheFirstInheritedState(engine, *channel);
  ASSERT_TRUE(child) << "no child inherited a state";
  // Every recomputation of the parent's stage fails; everything else trains.
  int recompute_failures = 0;
  for (int i = 0; i < 200; ++i) {
    std::optional<v1::Assign> assign = NextAssign(*channel);
    if (!assign) break;
    ASSERT_NE(assign->stage_id(), child->stage_id()) << "the child ran without its state";
    if (assign->stage_id() == child->parent_stage_id() &&
        assign->end_step() == child->parent_state_step()) {
      ++recompute_failures;
      v1::WorkerMessage finished;
      finished.mutable_finished()->set_attempt_id(assign->attempt_id());
      finished.mutable_finished()->set_ok(false);
      finished.mutable_finished()->set_error("out of memory");
      ASSERT_TRUE(engine.OnWorkerMessage("w", finished).ok());
    } else {
      Train(engine, "w", *assign);
    }
  }
  EXPECT_GE(recompute_failures, 1);
  absl::StatusOr<v1::ListTrialsResponse> trials = engine.ListTrials(study->id(), false);
  ASSERT_TRUE(trials.ok()) << trials.status();
  int failed = 0;
  for (const v1::Trial& trial : trials->trials()) failed += trial.state() == v1::TRIAL_FAILED;
  EXPECT_GE(failed, 1);
  // Nothing waits forever: the study ended.
  absl::StatusOr<v1::Study> ended = engine.GetStudy(study->id());
  ASSERT_TRUE(ended.ok());
  EXPECT_NE(ended->state(), v1::STUDY_RUNNING) << ended->message();
  EXPECT_NE(ended->message().find("the state it inherits cannot be recomputed"), std::string::npos)
      << ended->message();
}

}  // namespace
}  // namespace hippo::coordinator
