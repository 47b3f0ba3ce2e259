#include "tests/support/fake_coordinator.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace hippo::test_support {

using search_algos::AlgorithmContext;
using search_algos::AlgorithmRegistry;
using search_algos::TrialOutcome;

std::unique_ptr<SearchAlgorithm> MakeAlgorithm(const AlgorithmContext& context) {
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> algorithm =
      AlgorithmRegistry::Global().Create(context.config.name(), context);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
  return algorithm.ok() ? *std::move(algorithm) : nullptr;
}

bool SameRequests(const std::vector<Request>& a, const std::vector<Request>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind != b[i].kind || a[i].trial != b[i].trial || a[i].target != b[i].target ||
        a[i].fork_step != b[i].fork_step || a[i].point != b[i].point) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> FakeCoordinator::Suggest(SearchAlgorithm& algorithm) {
  return Suggest(algorithm, workers_ == kUnbounded ? 1000 : workers_ - Running());
}

std::vector<std::string> FakeCoordinator::Suggest(SearchAlgorithm& algorithm, int64_t capacity) {
  return Apply(algorithm, algorithm.Suggest(capacity));
}

std::vector<std::string> FakeCoordinator::Apply(SearchAlgorithm& algorithm,
                                                const std::vector<Request>& requests) {
  std::vector<std::string> written;
  extended_.clear();
  for (const Request& request : requests) {
    const auto number = static_cast<TrialNumber>(trials_.size());
    switch (request.kind) {
      case Request::Kind::kNewTrial:
        trials_.push_back(
            {.point = request.point, .target = request.target, .targets = {request.target}});
        written.push_back(absl::StrCat("new ", number, " ->", request.target));
        break;
      case Request::Kind::kMorph:
        EXPECT_GT(request.target, request.fork_step) << "morph of trial " << request.trial;
        EXPECT_LT(request.trial, number) << "morph of an unknown trial";
        trials_.push_back({.point = request.point,
                           .target = request.target,
                           .targets = {request.target},
                           .forked_from = request.trial,
                           .fork_step = request.fork_step,
                           .morphed = true});
        written.push_back(absl::StrCat("morph ", number, " from ", request.trial, "@",
                                       request.fork_step, " ->", request.target));
        break;
      case Request::Kind::kFork:
        EXPECT_GT(request.target, request.fork_step) << "fork of trial " << request.trial;
        EXPECT_LT(request.trial, number) << "fork of an unknown trial";
        trials_.push_back({.point = request.point,
                           .target = request.target,
                           .targets = {request.target},
                           .forked_from = request.trial,
                           .fork_step = request.fork_step});
        written.push_back(absl::StrCat("fork ", number, " from ", request.trial, "@",
                                       request.fork_step, " ->", request.target));
        break;
      case Request::Kind::kExtend: {
        Trial& trial = trials_.at(request.trial);
        EXPECT_EQ(trial.state, State::kPaused) << "extend of trial " << request.trial;
        trial.target = request.target;
        trial.targets.push_back(request.target);
        trial.state = State::kRunning;
        extended_.emplace_back(request.trial, request.target);
        written.push_back(absl::StrCat("extend ", request.trial, " ->", request.target));
        break;
      }
      case Request::Kind::kStop: {
        Trial& trial = trials_.at(request.trial);
        EXPECT_EQ(trial.state, State::kPaused) << "stop of trial " << request.trial;
        trial.state = State::kEnded;
        trial.stopped = true;
        algorithm.OnTrialEnded(request.trial, TrialOutcome::kStopped);
        written.push_back(absl::StrCat("stop ", request.trial));
        break;
      }
    }
  }
  return written;
}

void FakeCoordinator::Reach(SearchAlgorithm& algorithm, TrialNumber number, double objective) {
  Trial& trial = trials_.at(number);
  ASSERT_EQ(trial.state, State::kRunning) << "trial " << number;
  algorithm.OnMetric(number, trial.target - 1, objective);
  algorithm.OnTrialReachedTarget(number, trial.target);
  trial.state = State::kPaused;
  if (trial.target == max_steps_) {
    trial.state = State::kEnded;
    algorithm.OnTrialEnded(number, TrialOutcome::kCompleted);
  }
}

std::vector<TrialNumber> FakeCoordinator::running() const {
  std::vector<TrialNumber> running;
  for (size_t number = 0; number < trials_.size(); ++number) {
    if (trials_[number].state == State::kRunning) {
      running.push_back(static_cast<TrialNumber>(number));
    }
  }
  return running;
}

bool FakeCoordinator::all_ended() const {
  for (const Trial& trial : trials_) {
    if (trial.state != State::kEnded) return false;
  }
  return true;
}

StudyRunner::StudyRunner(const AlgorithmContext& context, Objective objective, bool restore)
    : context_(context),
      algorithm_(MakeAlgorithm(context)),
      objective_(std::move(objective)),
      restore_(restore),
      coordinator_(context.max_steps) {}

StudyRunner::StudyRunner(const AlgorithmContext& context, TrialObjective objective, bool restore)
    : StudyRunner(
          context,
          [objective = std::move(objective)](TrialNumber trial, const stage_tree::Point&,
                                             Step step) { return objective(trial, step); },
          restore) {}

StudyRunner::StudyRunner(const AlgorithmContext& context, PointObjective objective, bool restore)
    : StudyRunner(
          context,
          [objective = std::move(objective)](TrialNumber, const stage_tree::Point& point,
                                             Step step) { return objective(point, step); },
          restore) {}

std::vector<Request> StudyRunner::Run(int64_t parallel) {
  std::vector<Request> all;
  if (algorithm_ == nullptr) return all;
  for (int round = 0; round < 10000; ++round) {
    if (restore_) {
      std::unique_ptr<SearchAlgorithm> restored = MakeAlgorithm(context_);
      if (restored == nullptr) return all;
      const std::string state = algorithm_->SaveState();
      EXPECT_TRUE(restored->LoadState(state).ok());
      EXPECT_EQ(restored->SaveState(), state);
      algorithm_ = std::move(restored);
    }
    if (before_suggest) before_suggest(*algorithm_);
    const std::vector<Request> requests = algorithm_->Suggest(parallel - coordinator_.Running());
    for (const Request& request : requests) {
      if (on_request) on_request(request);
      coordinator_.Apply(*algorithm_, {request});
    }
    all.insert(all.end(), requests.begin(), requests.end());
    const std::vector<TrialNumber> running = coordinator_.running();
    if (running.empty()) {
      if (algorithm_->Finished()) return all;
      if (requests.empty()) {
        ADD_FAILURE() << "the study is stuck: nothing runs and the algorithm asks for nothing";
        return all;
      }
    }
    for (TrialNumber number : running) {
      const FakeCoordinator::Trial& trial = coordinator_.trial(number);
      coordinator_.Reach(*algorithm_, number, objective_(number, trial.point, trial.target - 1));
    }
  }
  ADD_FAILURE() << "the study does not end";
  return all;
}

}  // namespace hippo::test_support
