// A morphism child's training survives a crash: real `hippo` server and worker processes train a
// `morphism` study of torch CNNs; while a child stage that inherited its parent's trained state
// runs, its worker is SIGKILLed (and, in the second test, the coordinator too, restarted on the
// same database); another worker trains the stage again from the same inherited state (read
// from the parent's checkpoint file and morphed again), and every trial's metrics equal those
// of the same study run without a kill. In the run without a kill, `hippo trials --json` names
// for each inheriting trial the stage, step and trial it starts from.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using std::chrono::milliseconds;

// Two CNNs trained 2 steps from scratch; two children that each grow channels or layers of the
// fitter and train 10 more steps from its state (blocks after the first keep the image size).
constexpr char kSpec[] = R"(name: morphism-kill
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer:
  kind: torch
  seed: 7
  config: {model: cnn, pool_layers: 1, kernel_size: 3, dataset: synthetic, image_size: 12,
           train_limit: 1024, val_limit: 128, batch_size: 32, threads: 1}
search_space:
  parameters:
    - {name: channels, int: {low: 2, high: 8, step: 2}, structural: true}
    - {name: layers, int: {low: 1, high: 3}, structural: true}
    - name: lr
      fixed: 0.05
algorithm:
  name: morphism
  seed: 4
  morphism: {population_size: 2, sample_size: 1, children: 2, initial_steps: 2, child_steps: 10,
             grow: [channels, layers]}
budget: {max_steps: 30}
)";

struct Outcome {
  v1::Study study;
  TrialCurves curves;
  int64_t inherited_stages = 0;
  int64_t reassigned_inherited = 0;
};

// `hippo trials --json` of a study with `tree`: every trial whose first stage inherits has
// "inherited" naming that stage's inherited_from, its start step, and a trial whose path ends at
// the inherited stage with that step as its target; no other trial has it. Returns how many
// trials have it.
int64_t CheckTrialsJson(const std::string& address, const std::string& study_id,
                        const v1::StageTree& tree) {
  const CommandResult listed = RunHippo({"trials", study_id, "--json", "--coordinator", address});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  const nlohmann::json json = nlohmann::json::parse(listed.output, nullptr, false);
  EXPECT_FALSE(json.is_discarded()) << listed.output;
  if (json.is_discarded()) return 0;
  std::map<std::string, const v1::Stage*> stages;
  for (const v1::Stage& stage : tree.stages()) stages[std::to_string(stage.id())] = &stage;
  std::map<std::string, const nlohmann::json*> trials;
  // The proto JSON mapping leaves out a field at its default: trial 0 has no "id".
  for (const nlohmann::json& trial : json.at("trials")) trials[trial.value("id", "0")] = &trial;
  int64_t inheriting = 0;
  for (const nlohmann::json& trial : json.at("trials")) {
    const v1::Stage* first = stages.at(trial.at("path").front().get<std::string>());
    if (first->inherited_from() == 0) {
      EXPECT_FALSE(trial.contains("inherited")) << trial.dump();
      continue;
    }
    ++inheriting;
    const nlohmann::json& inherited = trial.at("inherited");
    EXPECT_EQ(inherited.at("stage"), std::to_string(first->inherited_from()));
    EXPECT_EQ(inherited.at("step"), std::to_string(first->start_step()));
    const nlohmann::json& parent = *trials.at(inherited.at("trial").get<std::string>());
    EXPECT_EQ(parent.at("path").back(), inherited.at("stage")) << parent.dump();
    EXPECT_EQ(parent.at("target_step"), inherited.at("step")) << parent.dump();
  }
  return inheriting;
}

v1::StageTree TreeOf(const std::string& address, const std::string& study_id) {
  auto stub = Connect(address);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  v1::StageTree tree;
  if (!stub->GetStageTree(&context, request, &tree).ok()) return {};
  return tree;
}

enum class Kill { kNone, kWorker, kWorkerAndCoordinator };

Outcome RunStudy(Kill kill) {
  TempDir dir;
  const std::string spec_path = dir.File("morphism.yaml");
  std::ofstream(spec_path) << kSpec;
  Cluster cluster(dir, /*workers=*/0, {"--lease-seconds", "1"});
  Process& victim = cluster.AddWorker("victim", dir.File("checkpoints"), dir.File("victim.log"));
  // A torch worker loads LibTorch before it says hello: slow on a loaded machine.
  EXPECT_TRUE(cluster.WaitForWorkers(1, std::chrono::seconds(90)));
  const std::string study_id = cluster.Submit(spec_path);
  Outcome outcome;
  if (kill != Kill::kNone) {
    // Waits for a running stage of an inheriting family, then kills its worker.
    bool killed = false;
    for (int poll = 0; poll < 3000 && !killed; ++poll) {
      const v1::StageTree tree = TreeOf(cluster.address(), study_id);
      for (const v1::Stage& stage : tree.stages()) {
        if (stage.inherited_from() != 0 && stage.state() == v1::STAGE_RUNNING) {
          victim.Kill(SIGKILL);
          victim.Wait();
          killed = true;
          break;
        }
      }
      if (!killed) std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_TRUE(killed) << "no inherited stage was seen running";
    if (kill == Kill::kWorkerAndCoordinator) cluster.KillAndRestartServer();
    cluster.AddWorker("survivor", dir.File("checkpoints"), dir.File("survivor.log"));
  }
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(300));
  EXPECT_TRUE(ended.ok()) << ended.status();
  if (!ended.ok()) return outcome;
  outcome.study = ended->study;
  outcome.curves = ended->curves;
  const v1::StageTree tree = TreeOf(cluster.address(), study_id);
  for (const v1::Stage& stage : tree.stages()) {
    if (stage.inherited_from() == 0) continue;
    ++outcome.inherited_stages;
    outcome.reassigned_inherited += stage.attempts() > 1;
  }
  if (kill == Kill::kNone) {
    EXPECT_GT(CheckTrialsJson(cluster.address(), study_id, tree), 0);
  }
  return outcome;
}

// The uninterrupted run, computed once for both tests.
const Outcome& Reference() {
  static const Outcome* const reference = new Outcome(RunStudy(Kill::kNone));
  return *reference;
}

void ExpectSameAsReference(const Outcome& interrupted) {
  const Outcome& reference = Reference();
  ASSERT_EQ(reference.study.state(), v1::STUDY_COMPLETED);
  ASSERT_GT(reference.inherited_stages, 0) << "no child inherited a state";
  ASSERT_EQ(interrupted.study.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(interrupted.inherited_stages, reference.inherited_stages);
  EXPECT_GE(interrupted.reassigned_inherited, 1) << "the killed stage did not run again";
  ASSERT_EQ(interrupted.curves.size(), reference.curves.size());
  EXPECT_EQ(interrupted.curves, reference.curves);
  EXPECT_EQ(interrupted.study.best_trial().id(), reference.study.best_trial().id());
  EXPECT_EQ(interrupted.study.best_trial().objective_value(),
            reference.study.best_trial().objective_value());
}

TEST(MorphismKillTest, AChildWhoseWorkerIsKilledMidStageTrainsAgainToTheSameMetrics) {
  ExpectSameAsReference(RunStudy(Kill::kWorker));
}

TEST(MorphismKillTest,
     AChildWhoseWorkerAndCoordinatorAreKilledMidStageTrainsAgainToTheSameMetrics) {
  ExpectSameAsReference(RunStudy(Kill::kWorkerAndCoordinator));
}

}  // namespace
}  // namespace hippo::e2e
