// The spec fields that change how a study runs, each through a `hippo server` process, `hippo
// worker` processes and real gRPC: budget.max_wall_seconds, resources.weight,
// resources.checkpoint_every_steps and family.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <set>

#include "search_algos/spec_checks.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;

// A random-search sim study: `trials` trials of `steps` steps, `seconds_per_step` of real time.
v1::StudySpec SimSpec(const std::string& name, int trials, int steps, double seconds_per_step,
                      int seed = 0) {
  absl::StatusOr<v1::StudySpec> spec = search_algos::ParseStudySpec("name: " + name + R"yaml(
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer: {kind: sim, config: {model: resnet20}}
search_space:
  parameters:
    - {name: lr, float: {low: 0.001, high: 0.1, log: true}}
algorithm: {name: random, seed: 1}
budget: {max_steps: 1}
)yaml",
                                                                    "sim.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  // budget above is a placeholder, replaced here.
  (*spec->mutable_trainer()->mutable_config()->mutable_fields())["cost_per_step"].set_number_value(
      seconds_per_step);
  spec->mutable_trainer()->set_seed(seed);
  spec->mutable_budget()->set_max_steps(steps);
  spec->mutable_budget()->set_max_trials(trials);
  return *spec;
}

class SpecFieldsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = "127.0.0.1:" + std::to_string(FreePort());
    server_ = std::make_unique<Process>(
        std::vector<std::string>{"server", "--listen", address_, "--db", dir_.File("hippo.db"),
                                 "--lease-seconds", "2"},
        dir_.File("server.log"));
    ASSERT_TRUE(WaitForServer(address_));
    stub_ = Connect(address_);
  }

  Process& StartWorker() {
    workers_.push_back(std::make_unique<Process>(
        std::vector<std::string>{"worker", "--coordinator", address_, "--id",
                                 "worker-" + std::to_string(workers_.size()), "--checkpoint-dir",
                                 dir_.File("checkpoints")},
        dir_.File("worker.log")));
    return *workers_.back();
  }

  grpc::Status Create(const v1::StudySpec& spec, v1::Study* study) {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = spec;
    return stub_->CreateStudy(&context, request, study);
  }

  std::string Create(const v1::StudySpec& spec) {
    v1::Study study;
    const grpc::Status status = Create(spec, &study);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return study.id();
  }

  v1::Study Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetStudyRequest request;
    request.set_study_id(id);
    v1::Study study;
    EXPECT_TRUE(stub_->GetStudy(&context, request, &study).ok());
    return study;
  }

  v1::StageTree Tree(const std::string& id) {
    grpc::ClientContext context;
    v1::GetStageTreeRequest request;
    request.set_study_id(id);
    v1::StageTree tree;
    EXPECT_TRUE(stub_->GetStageTree(&context, request, &tree).ok());
    return tree;
  }

  TempDir dir_;
  std::string address_;
  std::unique_ptr<Process> server_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::unique_ptr<v1::StudyService::Stub> stub_;
};

TEST_F(SpecFieldsTest, MaxWallSecondsStopsTheStudyWithinTheBoundAndSaysWhy) {
  StartWorker();
  v1::StudySpec spec = SimSpec("bounded", 20, 50, 0.05);  // 50 s of training on one worker
  spec.mutable_budget()->set_max_wall_seconds(2);
  const std::string id = Create(spec);
  absl::StatusOr<v1::Study> study = WaitForStudy(address_, id, std::chrono::seconds(30));
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->state(), v1::STUDY_STOPPED);
  EXPECT_NE(study->message().find("budget.max_wall_seconds"), std::string::npos)
      << study->message();
  const double seconds =
      static_cast<double>(study->finished().seconds() - study->created().seconds());
  EXPECT_GE(seconds, 1);  // whole seconds: 2 s may read as 1 across a second boundary
  EXPECT_LE(seconds, 4);  // the bound, checked every 100 ms, plus a second of rounding
  EXPECT_LT(study->trials_completed(), 20);
  const CommandResult shown = RunHippo({"study", id, "--coordinator", address_});
  EXPECT_NE(shown.output.find("budget.max_wall_seconds"), std::string::npos) << shown.output;
}

TEST_F(SpecFieldsTest, WeightsThreeToOneShareContendedWorkersAboutThreeToOne) {
  // Two studies of equal stages (different seeds: no stage is shared), both queued before any
  // worker connects, so the workers are contended from the start.
  v1::StudySpec heavy = SimSpec("heavy", 40, 5, 0.02, /*seed=*/1);
  heavy.mutable_resources()->set_weight(3);
  v1::StudySpec light = SimSpec("light", 40, 5, 0.02, /*seed=*/2);  // weight absent: 1
  const std::string heavy_id = Create(heavy);
  const std::string light_id = Create(light);
  StartWorker();
  StartWorker();
  // Until the heavy study is done, the light one should get a quarter of the worker time.
  absl::StatusOr<v1::Study> done = WaitForStudy(address_, heavy_id, std::chrono::seconds(120));
  ASSERT_TRUE(done.ok()) << done.status();
  const v1::Study other = Get(light_id);
  ASSERT_EQ(done->state(), v1::STUDY_COMPLETED);
  const double heavy_steps = static_cast<double>(done->steps().executed_steps());
  const double light_steps = static_cast<double>(other.steps().executed_steps());
  EXPECT_EQ(heavy_steps, 200);
  ASSERT_GT(light_steps, 0) << "the lighter study got no worker time at all";
  const double ratio = heavy_steps / light_steps;
  std::cout << "executed steps while both ran: heavy " << heavy_steps << ", light " << light_steps
            << " (" << ratio << ":1)\n";
  EXPECT_GE(ratio, 2.0) << heavy_steps << " vs " << light_steps;
  EXPECT_LE(ratio, 4.5) << heavy_steps << " vs " << light_steps;
  absl::StatusOr<v1::Study> light_done =
      WaitForStudy(address_, light_id, std::chrono::seconds(120));
  ASSERT_TRUE(light_done.ok()) << light_done.status();
  EXPECT_EQ(light_done->state(), v1::STUDY_COMPLETED);
}

TEST_F(SpecFieldsTest, CheckpointEveryStepsKeepsStatesInsideAStageSoACrashLosesAtMostThatMany) {
  constexpr int kEvery = 5;
  v1::StudySpec spec = SimSpec("checkpointed", 1, 40, 0.1);
  spec.mutable_resources()->set_checkpoint_every_steps(kEvery);
  const std::string id = Create(spec);
  Process& first = StartWorker();
  // The states the worker wrote, by step (files <dir>/stage-<id>-step-<step>.ckpt).
  auto written = [&] {
    std::set<int64_t> steps;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.File("checkpoints"), error)) {
      const std::string name = entry.path().filename().string();
      const size_t at = name.find("-step-");
      if (at != std::string::npos && name.ends_with(".ckpt")) {
        steps.insert(std::stoll(name.substr(at + 6)));
      }
    }
    return steps;
  };
  // Once the one stage [0, 40) has kept its state at step 15 (about 1.5 s in), kill its worker.
  for (int i = 0; i < 600 && !written().contains(15); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  first.Kill(SIGKILL);
  first.Wait();
  const std::set<int64_t> kept = written();
  ASSERT_TRUE(kept.contains(15));
  EXPECT_TRUE(kept.contains(5));
  EXPECT_TRUE(kept.contains(10));
  EXPECT_FALSE(kept.contains(40)) << "the stage ended before the kill: nothing was lost";
  const int64_t last_kept = *kept.rbegin();

  // Another worker resumes from the last of them: the stage is cut there, its upper part done
  // by the dead worker, the rest trained again from that state.
  StartWorker();
  absl::StatusOr<v1::Study> study = WaitForStudy(address_, id, std::chrono::seconds(120));
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
  const v1::StageTree tree = Tree(id);
  int64_t resumed_from = -1;
  for (const v1::Stage& stage : tree.stages()) {
    EXPECT_EQ(stage.state(), v1::STAGE_DONE);
    if (stage.end_step() == 40) resumed_from = stage.start_step();
  }
  // It resumed from the last state written before the kill (or the one before, if the kill
  // came between writing the last and reporting it): the worker cannot have trained more than
  // k steps past a reported state without writing the next one.
  EXPECT_TRUE(resumed_from == last_kept || resumed_from == last_kept - kEvery)
      << "resumed from " << resumed_from << ", last state written at " << last_kept;
  EXPECT_GE(resumed_from, 10);
  EXPECT_EQ(resumed_from % kEvery, 0);
}

TEST_F(SpecFieldsTest, StudiesShareAStageTreeOnlyUnderTheSameFamilyNameAndTrainer) {
  // Grid over one value: every study has the same one trial.
  auto spec = [](const std::string& family, uint64_t seed) {
    v1::StudySpec spec = SimSpec("family-" + family, 1, 10, 0, static_cast<int>(seed));
    spec.set_family(family);
    spec.mutable_algorithm()->set_name("grid");
    v1::Parameter& lr = *spec.mutable_search_space()->mutable_parameters(0);
    lr.mutable_categorical()->add_values()->set_number_value(0.01);
    return spec;
  };
  auto family_of = [&](const std::string& id) {
    const v1::StageTree tree = Tree(id);
    EXPECT_EQ(tree.stages_size(), 1);
    return tree.stages_size() > 0 ? tree.stages(0).family() : std::string();
  };
  const std::string alpha = Create(spec("alpha", 1));
  const std::string alpha_again = Create(spec("alpha", 1));
  const std::string beta = Create(spec("beta", 1));
  const std::string unnamed = Create(spec("", 1));
  const std::string unnamed_again = Create(spec("", 1));
  EXPECT_EQ(family_of(alpha), family_of(alpha_again));  // same name, same trainer: shared
  EXPECT_NE(family_of(alpha), family_of(beta));         // another name: a tree of its own
  EXPECT_NE(family_of(alpha), family_of(unnamed));
  EXPECT_EQ(family_of(unnamed), family_of(unnamed_again));  // no name: by trainer, as before
  EXPECT_NE(family_of(alpha).find("alpha"), std::string::npos) << family_of(alpha);

  // A family name already used with another trainer is refused, naming the field.
  v1::Study refused;
  const grpc::Status status = Create(spec("alpha", 2), &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("family: ", 0), 0u) << status.error_message();
  EXPECT_NE(status.error_message().find(alpha), std::string::npos) << status.error_message();
  // A name that cannot be part of a key is refused too.
  const grpc::Status bad_name = Create(spec("a|b", 1), &refused);
  EXPECT_EQ(bad_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad_name.error_message().rfind("family: ", 0), 0u) << bad_name.error_message();

  // The shared tree trains its stage once, for both studies.
  StartWorker();
  for (const std::string& id : {alpha, alpha_again, beta}) {
    absl::StatusOr<v1::Study> study = WaitForStudy(address_, id, std::chrono::seconds(60));
    ASSERT_TRUE(study.ok()) << study.status();
    EXPECT_EQ(study->state(), v1::STUDY_COMPLETED);
    EXPECT_EQ(study->steps().executed_steps(), 10) << id;
  }
}

}  // namespace
}  // namespace hippo::e2e
