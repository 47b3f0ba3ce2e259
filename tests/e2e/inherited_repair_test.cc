// A morphism child's inherited state, lost, is recomputed by the family that trained it: real
// `hippo` server and torch worker processes train a `morphism` study; while a child stage that
// inherited its parent's trained state runs, its worker is SIGKILLed and the parent's checkpoint
// file of that state is deleted (or corrupted), so that no worker can read it. The next worker
// reports it lost; the parent family trains the state again from scratch, the child's stage
// waits for it and then runs from it, and every trial's metrics equal those of the same study
// run undisturbed, with recomputed_steps counting the steps trained again. In the second test
// the worker that recomputes the state dies writing it and the coordinator is SIGKILLed and
// restarted meanwhile: the wait and the recomputation are rebuilt from the stored tree.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Two CNNs trained 2 steps from scratch; two children that each grow the fitter and train 10
// more steps from its state (one child trains at a time).
constexpr char kSpec[] = R"(name: inherited-repair
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

enum class Damage { kNone, kDelete, kCorruptAndRestartWhileRecomputing };

struct Outcome {
  v1::Study study;
  TrialCurves curves;
  bool damaged = false;
};

Outcome RunStudy(Damage damage) {
  TempDir dir;
  const std::string spec_path = dir.File("morphism.yaml");
  std::ofstream(spec_path) << kSpec;
  Cluster cluster(dir, /*workers=*/0, {"--lease-seconds", "1"});
  Process& first = cluster.AddWorker("first", dir.File("checkpoints"), dir.File("first.log"));
  // A torch worker loads LibTorch before it says hello: slow on a loaded machine.
  EXPECT_TRUE(cluster.WaitForWorkers(1, std::chrono::seconds(90)));
  const std::string study_id = cluster.Submit(spec_path);
  Outcome outcome;
  if (damage != Damage::kNone) {
    // A running child stage: its worker dies, and the state it inherits goes.
    std::string inherited_file;
    for (int poll = 0; poll < 3000 && inherited_file.empty(); ++poll) {
      const v1::StageTree tree = TreeOf(cluster.address(), study_id);
      for (const v1::Stage& stage : tree.stages()) {
        if (stage.inherited_from() == 0 || stage.state() != v1::STAGE_RUNNING) continue;
        for (const v1::Stage& parent : tree.stages()) {
          if (parent.id() != stage.inherited_from()) continue;
          EXPECT_TRUE(parent.checkpoint_uri().starts_with("file://")) << parent.checkpoint_uri();
          inherited_file = parent.checkpoint_uri().substr(7);
        }
        break;
      }
      if (inherited_file.empty()) std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_FALSE(inherited_file.empty()) << "no inherited stage was seen running";
    first.Kill(SIGKILL);
    first.Wait();
    if (!inherited_file.empty()) {
      EXPECT_TRUE(fs::exists(inherited_file)) << inherited_file;
      if (damage == Damage::kDelete) {
        fs::remove(inherited_file);
      } else {
        // A flipped payload byte: the checksum fails.
        std::fstream file(inherited_file, std::ios::in | std::ios::out | std::ios::binary);
        file.seekg(-1, std::ios::end);
        char last = 0;
        file.get(last);
        file.seekp(-1, std::ios::end);
        file.put(static_cast<char>(last ^ 0x5a));
      }
      outcome.damaged = true;
    }
    if (damage == Damage::kCorruptAndRestartWhileRecomputing) {
      // This worker is handed the child's stage, cannot read its state, and is handed the
      // parent's stage to recompute it: it dies writing that state (its first checkpoint).
      Process& second =
          cluster.AddWorker("second", dir.File("checkpoints"), dir.File("second.log"),
                            Env{{"HIPPO_TEST_SIGKILL_AT_CHECKPOINT", "before-rename:1"}});
      for (int poll = 0; poll < 1500 && second.Alive(); ++poll) {
        std::this_thread::sleep_for(milliseconds(100));
      }
      EXPECT_FALSE(second.Alive()) << "the recomputing worker never wrote the lost state";
      cluster.KillAndRestartServer();
    }
    cluster.AddWorker("last", dir.File("checkpoints"), dir.File("last.log"));
  }
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(300));
  EXPECT_TRUE(ended.ok()) << ended.status();
  if (!ended.ok()) return outcome;
  outcome.study = ended->study;
  outcome.curves = ended->curves;
  return outcome;
}

// The undisturbed run, computed once for both tests.
const Outcome& Reference() {
  static const Outcome* const reference = new Outcome(RunStudy(Damage::kNone));
  return *reference;
}

void ExpectSameAsReference(const Outcome& repaired) {
  const Outcome& reference = Reference();
  ASSERT_EQ(reference.study.state(), v1::STUDY_COMPLETED) << reference.study.message();
  EXPECT_EQ(reference.study.steps().recomputed_steps(), 0);
  ASSERT_TRUE(repaired.damaged);
  ASSERT_EQ(repaired.study.state(), v1::STUDY_COMPLETED) << repaired.study.message();
  // The parent's stage [0, 2) was trained again (twice when its first recomputation died).
  EXPECT_GE(repaired.study.steps().recomputed_steps(), 2);
  EXPECT_EQ(repaired.study.trials_completed(), reference.study.trials_completed());
  ASSERT_EQ(repaired.curves.size(), reference.curves.size());
  EXPECT_EQ(repaired.curves, reference.curves);
  EXPECT_EQ(repaired.study.best_trial().id(), reference.study.best_trial().id());
  EXPECT_EQ(repaired.study.best_trial().objective_value(),
            reference.study.best_trial().objective_value());
}

TEST(InheritedRepairTest, ADeletedInheritedCheckpointIsRecomputedAndTheChildEndsAsUndisturbed) {
  ExpectSameAsReference(RunStudy(Damage::kDelete));
}

TEST(InheritedRepairTest,
     ACorruptInheritedCheckpointIsRecomputedAcrossACoordinatorKillWhileItIsRecomputed) {
  ExpectSameAsReference(RunStudy(Damage::kCorruptAndRestartWhileRecomputing));
}

}  // namespace
}  // namespace hippo::e2e
