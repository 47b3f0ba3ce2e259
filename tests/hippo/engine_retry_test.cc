// No fault is permanent (hippo/engine_retry.cc, hippo/engine_repair.cc), with a real SQLite
// store and in-test workers: a failed stage is tried again by a new study, a restart or
// `hippo retry`; retries back off and go to another worker first; a worker that keeps failing is
// drained and shown unhealthy; a lost starting state is recomputed from the nearest kept one.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>

#include "hippo/engine.h"
#include "tests/hippo/engine_fixture.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;
using EngineRetryTest = engine_test::EngineTest;
using engine_test::Hello;
using engine_test::RecordingChannel;
using engine_test::SmallGrid;
using engine_test::Train;

// Reports the attempt of `assign` as failed.
void Fail(Engine& engine, const std::string& worker, const v1::Assign& assign,
          bool parent_state_lost = false) {
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_attempt_id(assign.attempt_id());
  finished.mutable_finished()->set_ok(false);
  finished.mutable_finished()->set_error(parent_state_lost
                                             ? "checkpoint file:///x is corrupt: payload checksum"
                                             : "cannot write checkpoint: No space left on device");
  finished.mutable_finished()->set_parent_state_lost(parent_state_lost);
  ASSERT_TRUE(engine.OnWorkerMessage(worker, finished).ok());
}

// Options whose retries come at once and whose workers are never drained, unless a test says.
EngineOptions Immediate() {
  EngineOptions options;
  options.retry_backoff_seconds = 0;
  options.unhealthy_after_failures = 0;
  return options;
}

// Fails every Assign of `channel` until none comes; returns how many there were.
int FailEverything(Engine& engine, const std::string& worker, RecordingChannel& channel) {
  int attempts = 0;
  while (std::optional<v1::CoordinatorMessage> message = channel.Next()) {
    if (!message->has_assign()) continue;
    ++attempts;
    Fail(engine, worker, message->assign());
  }
  return attempts;
}

// Trains every Assign of `channel` until none comes; returns the Assigns.
std::vector<v1::Assign> TrainEverything(Engine& engine, const std::string& worker,
                                        RecordingChannel& channel) {
  std::vector<v1::Assign> assigns;
  while (std::optional<v1::CoordinatorMessage> message = channel.Next()) {
    if (!message->has_assign()) continue;
    assigns.push_back(message->assign());
    Train(engine, worker, message->assign());
  }
  return assigns;
}

// Two trials sharing [0, 60) (cut at 30, a boundary of the schedule), differing after 60.
v1::StudySpec ThreeLevels() {
  v1::StudySpec spec = SmallGrid();
  v1::Parameter* lr = spec.mutable_search_space()->mutable_parameters(0);
  lr->clear_sequence();
  v1::PiecewiseSequence* piecewise = lr->mutable_sequence()->mutable_piecewise();
  piecewise->add_boundaries(30);
  piecewise->add_boundaries(60);
  for (double last : {0.001, 0.002}) {
    v1::NumberList* values = piecewise->mutable_value_choices()->add_choices();
    values->add_values(0.1);
    values->add_values(0.01);
    values->add_values(last);
  }
  return spec;
}

TEST_F(EngineRetryTest, AStageThatUsedUpItsAttemptsIsTriedAgainByANewIdenticalStudy) {
  ASSERT_NO_FATAL_FAILURE(Start(Immediate()));
  absl::StatusOr<v1::Study> first = engine().CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(first.ok()) << first.status();
  const auto channel = Connect("w");
  EXPECT_EQ(FailEverything(engine(), "w", *channel), 3);
  ASSERT_EQ(engine().GetStudy(first->id())->state(), v1::STUDY_FAILED);
  absl::StatusOr<v1::ListTrialsResponse> failed = engine().ListTrials(first->id(), false);
  ASSERT_TRUE(failed.ok());
  EXPECT_NE(failed->trials(0).message().find("failed after 3 attempts: cannot write checkpoint"),
            std::string::npos)
      << failed->trials(0).message();

  // The fault is gone: an identical study runs the shared stage again and completes.
  absl::StatusOr<v1::Study> second = engine().CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(TrainEverything(engine(), "w", *channel).size(), 3u);
  absl::StatusOr<v1::Study> done = engine().GetStudy(second->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED) << done->message();
  EXPECT_EQ(done->trials_completed(), 2);
}

TEST_F(EngineRetryTest, NewTrialsOfAStudyBelowAStageItSawFailFailAtOnceAndTheStudyEnds) {
  ASSERT_NO_FATAL_FAILURE(Start(Immediate()));
  // Every trial is the same point, so every trial needs the one stage that fails.
  v1::StudySpec spec = SmallGrid();
  spec.mutable_search_space()
      ->mutable_parameters(0)
      ->mutable_sequence()
      ->mutable_step_decay()
      ->mutable_gamma()
      ->mutable_choices()
      ->mutable_values()
      ->RemoveLast();
  spec.mutable_algorithm()->set_name("random");
  // Four draws of the space's one configuration (without replacement there would be one).
  spec.mutable_algorithm()->set_sample_with_replacement(true);
  spec.mutable_budget()->set_max_trials(4);
  spec.mutable_budget()->set_max_parallel_trials(1);
  absl::StatusOr<v1::Study> study = engine().CreateStudy(spec, false);
  ASSERT_TRUE(study.ok()) << study.status();
  const auto channel = Connect("w");
  EXPECT_EQ(FailEverything(engine(), "w", *channel), 3);  // the first trial's attempts only
  absl::StatusOr<v1::Study> ended = engine().GetStudy(study->id());
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state(), v1::STUDY_FAILED);
  EXPECT_EQ(ended->trials_total(), 4);
  absl::StatusOr<v1::ListTrialsResponse> trials = engine().ListTrials(study->id(), false);
  ASSERT_TRUE(trials.ok());
  for (const v1::Trial& trial : trials->trials()) {
    EXPECT_EQ(trial.state(), v1::TRIAL_FAILED) << trial.id();
    EXPECT_NE(trial.message().find("failed after 3 attempts"), std::string::npos)
        << trial.message();
  }
}

TEST_F(EngineRetryTest, RetryTrialsTrainsFailedTrialsAgainAndTheStudyEndsWithTheirResults) {
  ASSERT_NO_FATAL_FAILURE(Start(Immediate()));
  absl::StatusOr<v1::Study> study = engine().CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(study.ok()) << study.status();
  const auto channel = Connect("w");
  EXPECT_EQ(FailEverything(engine(), "w", *channel), 3);
  ASSERT_EQ(engine().GetStudy(study->id())->state(), v1::STUDY_FAILED);

  v1::RetryTrialsRequest request;
  request.set_study_id(study->id());
  request.add_trial_ids(7);
  EXPECT_EQ(engine().RetryTrials(request).status().code(), absl::StatusCode::kNotFound);
  request.clear_trial_ids();
  request.add_trial_ids(1);
  absl::StatusOr<v1::RetryTrialsResponse> retried = engine().RetryTrials(request);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->study().state(), v1::STUDY_RUNNING);
  ASSERT_EQ(retried->retried_trial_ids_size(), 1);
  EXPECT_EQ(TrainEverything(engine(), "w", *channel).size(), 2u);  // the shared stage, its branch
  absl::StatusOr<v1::Study> done = engine().GetStudy(study->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED) << done->message();
  EXPECT_EQ(done->trials_completed(), 1);

  // Then the other one, named by none: every failed trial.
  request.clear_trial_ids();
  retried = engine().RetryTrials(request);
  ASSERT_TRUE(retried.ok()) << retried.status();
  ASSERT_EQ(retried->retried_trial_ids_size(), 1);
  EXPECT_EQ(retried->retried_trial_ids(0), 0);
  // The study's end released the shared stage's state (checkpoint collection: no live stage
  // needed it), so the retried trial trains that stage again, then its own branch.
  EXPECT_EQ(TrainEverything(engine(), "w", *channel).size(), 2u);
  done = engine().GetStudy(study->id());
  EXPECT_EQ(done->state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(done->trials_completed(), 2);
  EXPECT_DOUBLE_EQ(done->best_trial().objective_value(), 99 + 0.05);
  // Nothing failed is left: a completed trial cannot be retried.
  request.add_trial_ids(0);
  EXPECT_EQ(engine().RetryTrials(request).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(EngineRetryTest, AStageWaitingOutItsBackoffRunsAtOnceAfterARestart) {
  std::string study_id;
  {
    EngineOptions options = Immediate();
    options.retry_backoff_seconds = 1000;
    ASSERT_NO_FATAL_FAILURE(Start(options));
    absl::StatusOr<v1::Study> study = engine().CreateStudy(SmallGrid(), false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    const auto channel = Connect("w");
    std::optional<v1::CoordinatorMessage> first = channel->Next();
    ASSERT_TRUE(first.has_value() && first->has_assign());
    Fail(engine(), "w", first->assign());
    engine().ExpireLeases(Clock::now());
    EXPECT_FALSE(channel->Next().has_value());  // backing off
  }
  ASSERT_NO_FATAL_FAILURE(Start(Immediate()));
  const auto channel = Connect("w");
  EXPECT_EQ(TrainEverything(engine(), "w", *channel).size(), 3u);
  EXPECT_EQ(engine().GetStudy(study_id)->state(), v1::STUDY_COMPLETED);
}

TEST_F(EngineRetryTest, AFailedStageBacksOffThenGoesToAnotherWorkerFirst) {
  EngineOptions options = Immediate();
  options.retry_backoff_seconds = 100;
  options.retry_backoff_max_seconds = 1000;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  ASSERT_TRUE(engine().CreateStudy(SmallGrid(), false).ok());
  const auto bad = Connect("a-bad");  // first in order, gets the stage
  const auto good = Connect("b-good");
  std::optional<v1::CoordinatorMessage> first = bad->Next();
  ASSERT_TRUE(first.has_value() && first->has_assign());
  Fail(engine(), "a-bad", first->assign());
  engine().ExpireLeases(Clock::now() + std::chrono::seconds(50));
  EXPECT_FALSE(bad->Next().has_value());  // within its backoff (100 s ± 20 %)
  EXPECT_FALSE(good->Next().has_value());
  engine().ExpireLeases(Clock::now() + std::chrono::seconds(200));
  EXPECT_FALSE(bad->Next().has_value());  // idle, and first in order, yet left to the other
  std::optional<v1::CoordinatorMessage> retry = good->Next();
  ASSERT_TRUE(retry.has_value() && retry->has_assign());
  EXPECT_EQ(retry->assign().stage_id(), first->assign().stage_id());
}

TEST_F(EngineRetryTest, AWorkerThatKeepsFailingIsDrainedShownUnhealthyThenOnProbation) {
  EngineOptions options = Immediate();
  options.max_attempts = 5;
  options.unhealthy_after_failures = 2;
  options.drain_seconds = 1000;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  absl::StatusOr<v1::Study> study = engine().CreateStudy(SmallGrid(), false);
  ASSERT_TRUE(study.ok()) << study.status();
  const auto channel = Connect("w");
  for (int i = 0; i < 2; ++i) {
    std::optional<v1::CoordinatorMessage> message = channel->Next();
    ASSERT_TRUE(message.has_value() && message->has_assign()) << i;
    Fail(engine(), "w", message->assign());
  }
  EXPECT_FALSE(channel->Next().has_value());  // drained, though the stage is ready
  std::vector<v1::WorkerInfo> workers = engine().ListWorkers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_FALSE(workers[0].healthy());
  EXPECT_EQ(workers[0].consecutive_failures(), 2);
  EXPECT_NE(workers[0].health_message().find("No space left on device"), std::string::npos)
      << workers[0].health_message();
  EXPECT_EQ(engine().stats().workers_drained, 1);

  // The drain ends: one stage on probation, which it finishes, and it is healthy again.
  engine().ExpireLeases(Clock::now() + std::chrono::seconds(2000));
  EXPECT_EQ(TrainEverything(engine(), "w", *channel).size(), 3u);
  workers = engine().ListWorkers();
  EXPECT_TRUE(workers[0].healthy());
  EXPECT_EQ(workers[0].consecutive_failures(), 0);
  EXPECT_EQ(engine().GetStudy(study->id())->state(), v1::STUDY_COMPLETED);
}

// A trial whose training diverges (a non-finite metric) fails its attempt, but the worker that
// ran it stays healthy: with one worker, counting divergence would drain it, and every study on
// it would wait out the drain. A report that breaks another bound still counts.
TEST_F(EngineRetryTest, ADivergingTrialFailsItsAttemptsButNeverDrainsItsWorker) {
  EngineOptions options = Immediate();
  options.max_attempts = 10;
  options.unhealthy_after_failures = 2;
  options.drain_seconds = 1000;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  ASSERT_TRUE(engine().CreateStudy(SmallGrid(), false).ok());
  const auto channel = Connect("w");
  const auto report = [&](const v1::Assign& assign, const std::string& name, double value) {
    v1::WorkerMessage progress;
    progress.mutable_progress()->set_attempt_id(assign.attempt_id());
    progress.mutable_progress()->set_step(assign.start_step());
    (*progress.mutable_progress()->mutable_metrics())[name] = value;
    ASSERT_TRUE(engine().OnWorkerMessage("w", progress).ok());
  };
  const auto next_assign = [&]() -> std::optional<v1::Assign> {
    while (std::optional<v1::CoordinatorMessage> message = channel->Next()) {
      if (message->has_assign()) return message->assign();
    }
    return std::nullopt;
  };
  constexpr double kInf = std::numeric_limits<double>::infinity();
  for (double diverged : {std::nan(""), kInf, -kInf, std::nan("")}) {
    const std::optional<v1::Assign> assign = next_assign();
    ASSERT_TRUE(assign.has_value()) << "drained after a diverged trial (" << diverged << ")";
    report(*assign, "score", diverged);
  }
  EXPECT_EQ(engine().stats().attempts_failed, 4);
  std::vector<v1::WorkerInfo> workers = engine().ListWorkers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_TRUE(workers[0].healthy());
  EXPECT_EQ(workers[0].consecutive_failures(), 0);
  EXPECT_EQ(engine().stats().workers_drained, 0);

  // Reports out of other bounds (a metric name with a control character) count as failures.
  for (int i = 0; i < 2; ++i) {
    const std::optional<v1::Assign> assign = next_assign();
    ASSERT_TRUE(assign.has_value()) << i;
    report(*assign, "score\x1b[31m", 1.0);
  }
  EXPECT_FALSE(next_assign().has_value());
  EXPECT_EQ(engine().stats().workers_drained, 1);
  EXPECT_FALSE(engine().ListWorkers()[0].healthy());
}

TEST_F(EngineRetryTest, ADrainedWorkerStaysDrainedAfterARestartUntilItsDrainEnds) {
  EngineOptions options = Immediate();
  options.max_attempts = 5;
  options.unhealthy_after_failures = 2;
  options.drain_seconds = 1000;
  std::string study_id;
  {
    ASSERT_NO_FATAL_FAILURE(Start(options));
    absl::StatusOr<v1::Study> study = engine().CreateStudy(SmallGrid(), false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    const auto channel = Connect("w");
    for (int i = 0; i < 2; ++i) {
      std::optional<v1::CoordinatorMessage> message = channel->Next();
      ASSERT_TRUE(message.has_value() && message->has_assign()) << i;
      Fail(engine(), "w", message->assign());
    }
    ASSERT_FALSE(engine().ListWorkers()[0].healthy());
  }
  // The coordinator restarts within the drain: the worker is still unhealthy, and when it
  // connects again it gets nothing, though the stage is ready (another worker takes it).
  {
    ASSERT_NO_FATAL_FAILURE(Start(options));
    std::vector<v1::WorkerInfo> workers = engine().ListWorkers();
    ASSERT_EQ(workers.size(), 1u);
    EXPECT_EQ(workers[0].worker_id(), "w");
    EXPECT_FALSE(workers[0].connected());
    EXPECT_FALSE(workers[0].healthy());
    EXPECT_EQ(workers[0].consecutive_failures(), 2);
    EXPECT_NE(workers[0].health_message().find("drained for"), std::string::npos)
        << workers[0].health_message();
    EXPECT_NE(workers[0].health_message().find("No space left on device"), std::string::npos)
        << workers[0].health_message();
    const auto channel = Connect("w");
    EXPECT_FALSE(channel->Next().has_value()) << "a drained worker got a stage after the restart";
    auto other = std::make_shared<RecordingChannel>();
    absl::StatusOr<int64_t> session = engine().Connect(Hello("v"), other);
    ASSERT_TRUE(session.ok());
    std::optional<v1::CoordinatorMessage> taken = other->Next();
    ASSERT_TRUE(taken.has_value() && taken->has_assign());
    engine().Disconnect("v", *session);  // its stage goes back when its lease expires, below

    // Its drain ends: a stage on probation, which it finishes, and it is healthy again.
    engine().ExpireLeases(Clock::now() + std::chrono::seconds(2000));
    std::optional<v1::CoordinatorMessage> probation = channel->Next();
    ASSERT_TRUE(probation.has_value() && probation->has_assign());
    Train(engine(), "w", probation->assign());
    for (const v1::WorkerInfo& worker : engine().ListWorkers()) EXPECT_TRUE(worker.healthy());
  }
  // Healthy is what the next restart remembers too.
  ASSERT_NO_FATAL_FAILURE(Start(options));
  for (const v1::WorkerInfo& worker : engine().ListWorkers()) {
    EXPECT_TRUE(worker.healthy()) << worker.worker_id();
  }
}

TEST_F(EngineRetryTest, LostParentAndGrandparentStatesAreRecomputedAndCounted) {
  std::string study_id;
  {
    ASSERT_NO_FATAL_FAILURE(Start(EngineOptions{}));  // the defaults: lost states are no failures
    absl::StatusOr<v1::Study> study = engine().CreateStudy(ThreeLevels(), false);
    ASSERT_TRUE(study.ok()) << study.status();
    study_id = study->id();
    const auto channel = Connect("w");
    // [0, 30), [30, 60), then the first branch [60, 100).
    for (int i = 0; i < 3; ++i) {
      std::optional<v1::CoordinatorMessage> message = channel->Next();
      ASSERT_TRUE(message.has_value() && message->has_assign());
      Train(engine(), "w", message->assign());
    }
    // The second branch cannot read the state at 60: [30, 60) runs again from the state at 30,
    // which cannot be read either: [0, 30) runs again from scratch.
    std::optional<v1::CoordinatorMessage> branch = channel->Next();
    ASSERT_TRUE(branch.has_value() && branch->has_assign());
    EXPECT_EQ(branch->assign().start_step(), 60);
    Fail(engine(), "w", branch->assign(), /*parent_state_lost=*/true);
    std::optional<v1::CoordinatorMessage> parent = channel->Next();
    ASSERT_TRUE(parent.has_value() && parent->has_assign());
    EXPECT_EQ(parent->assign().start_step(), 30);
    EXPECT_EQ(parent->assign().end_step(), 60);
    EXPECT_EQ(parent->assign().stage_id(), branch->assign().parent_stage_id());
    Fail(engine(), "w", parent->assign(), /*parent_state_lost=*/true);
    std::optional<v1::CoordinatorMessage> grandparent = channel->Next();
    ASSERT_TRUE(grandparent.has_value() && grandparent->has_assign());
    EXPECT_EQ(grandparent->assign().start_step(), 0);
    EXPECT_EQ(grandparent->assign().end_step(), 30);
    EXPECT_EQ(engine().stats().states_lost, 2);
    // Recomputed: [0, 30), [30, 60), then the branch. Two losses cost no attempt of the budget
    // and do not make the worker unhealthy.
    const std::vector<v1::Assign> rest = [&] {
      Train(engine(), "w", grandparent->assign());
      return TrainEverything(engine(), "w", *channel);
    }();
    ASSERT_EQ(rest.size(), 2u);
    EXPECT_EQ(rest[0].start_step(), 30);
    EXPECT_EQ(rest[1].start_step(), 60);
    EXPECT_TRUE(engine().ListWorkers()[0].healthy());
    absl::StatusOr<v1::Study> done = engine().GetStudy(study_id);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->state(), v1::STUDY_COMPLETED) << done->message();
    EXPECT_EQ(done->trials_completed(), 2);
    EXPECT_EQ(done->steps().recomputed_steps(), 60);
    EXPECT_EQ(done->steps().executed_steps(), 140 + 60);
  }
  // The losses are in the operation log: a restarted coordinator counts the same.
  ASSERT_NO_FATAL_FAILURE(Start(EngineOptions{}));
  absl::StatusOr<v1::Study> recovered = engine().GetStudy(study_id);
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(recovered->steps().recomputed_steps(), 60);
  EXPECT_EQ(recovered->steps().executed_steps(), 200);
}

}  // namespace
}  // namespace hippo::coordinator
