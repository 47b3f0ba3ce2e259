// Plans run again after a report (engine_reports.cc): what they ask of running attempts reaches
// the workers. A trial that fails makes its study's plan run again; a trial it then adds may
// split a stage another worker is training, which must be sent CheckpointAt for the split step.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "hippo/engine.h"
#include "search_algos/search_algorithm.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::SmallGrid;
using engine_test::TempDb;

// Trials 0 (lr 0.1) and 1 (lr 0.2) to step 20; once trial 1 failed, trial 2 (lr 0.1) to step
// 13, which splits trial 0's stage at 13.
class SplitsWhenATrialFails : public search_algos::SearchAlgorithm {
 public:
  void OnMetric(search_algos::TrialNumber, search_algos::Step, double) override {}
  void OnTrialReachedTarget(search_algos::TrialNumber, search_algos::Step) override {}
  void OnTrialEnded(search_algos::TrialNumber trial, search_algos::TrialOutcome outcome) override {
    if (trial == 1 && outcome == search_algos::TrialOutcome::kFailed) failed_ = true;
  }
  std::vector<search_algos::Request> Suggest(int64_t) override {
    using Kind = search_algos::Request::Kind;
    if (proposed_ == 0) {
      proposed_ = 2;
      return {{Kind::kNewTrial, {0.1}, 20, -1, 0}, {Kind::kNewTrial, {0.2}, 20, -1, 0}};
    }
    if (proposed_ == 2 && failed_) {
      proposed_ = 3;
      return {{Kind::kNewTrial, {0.1}, 13, -1, 0}};
    }
    return {};
  }
  bool Finished() const override { return proposed_ == 3; }
  std::string SaveState() const override {
    return std::to_string(proposed_) + (failed_ ? "f" : "");
  }
  absl::Status LoadState(const std::string& state) override {
    proposed_ = state.empty() ? 0 : state[0] - '0';
    failed_ = state.find('f') != std::string::npos;
    return absl::OkStatus();
  }

 private:
  int proposed_ = 0;
  bool failed_ = false;
};

double LrOf(const v1::Assign& assign) { return assign.parameters(0).segments(0).constant(); }

TEST(EngineReplanTest, ACheckpointRequestOfAPlanRunAfterAFailedTrialReachesTheWorker) {
  (void)search_algos::AlgorithmRegistry::Global().Register(
      "splits_when_a_trial_fails",
      [](const search_algos::AlgorithmContext&)
          -> absl::StatusOr<std::unique_ptr<search_algos::SearchAlgorithm>> {
        return std::make_unique<SplitsWhenATrialFails>();
      });
  v1::StudySpec spec = SmallGrid();
  spec.mutable_algorithm()->set_name("splits_when_a_trial_fails");
  v1::Parameter* lr = spec.mutable_search_space()->mutable_parameters(0);
  lr->mutable_sequence()->Clear();
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_low(0.01);
  lr->mutable_sequence()->mutable_constant()->mutable_range()->set_high(0.2);
  spec.mutable_budget()->set_max_steps(20);
  const std::string db = TempDb();
  auto store = store::Store::Open(db);
  ASSERT_TRUE(store.ok());
  EngineOptions options;
  options.max_attempts = 1;  // the first failure fails the trial
  Engine engine(store->get(), options);
  ASSERT_TRUE(engine.Recover().ok());
  ASSERT_TRUE(engine.CreateStudy(spec, false).ok());

  auto a = std::make_shared<RecordingChannel>();
  auto b = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.Connect(Hello("a"), a).ok());
  ASSERT_TRUE(engine.Connect(Hello("b"), b).ok());
  std::optional<v1::CoordinatorMessage> to_a = a->Next();
  std::optional<v1::CoordinatorMessage> to_b = b->Next();
  ASSERT_TRUE(to_a && to_a->has_assign() && to_b && to_b->has_assign());
  // Whichever worker has trial 1 (lr 0.2) fails it; the other trains trial 0's [0, 20).
  const bool a_has_trial_0 = LrOf(to_a->assign()) == 0.1;
  const v1::Assign& running = a_has_trial_0 ? to_a->assign() : to_b->assign();
  const v1::Assign& failing = a_has_trial_0 ? to_b->assign() : to_a->assign();
  RecordingChannel& running_channel = a_has_trial_0 ? *a : *b;
  ASSERT_EQ(LrOf(failing), 0.2);
  ASSERT_EQ(running.end_step(), 20);

  v1::WorkerMessage failed;
  failed.mutable_finished()->set_attempt_id(failing.attempt_id());
  failed.mutable_finished()->set_ok(false);
  failed.mutable_finished()->set_error("out of memory");
  ASSERT_TRUE(engine.OnWorkerMessage(a_has_trial_0 ? "b" : "a", failed).ok());

  // Trial 2 splits the running stage at 13: its worker is asked for the state there.
  std::optional<v1::CoordinatorMessage> request;
  while (std::optional<v1::CoordinatorMessage> message = running_channel.Next()) {
    if (message->has_checkpoint_at()) request = message;
  }
  ASSERT_TRUE(request.has_value()) << "no CheckpointAt reached the worker of the running stage";
  EXPECT_EQ(request->checkpoint_at().attempt_id(), running.attempt_id());
  EXPECT_EQ(request->checkpoint_at().step(), 13);
  std::filesystem::remove(db);
}

}  // namespace
}  // namespace hippo::coordinator
