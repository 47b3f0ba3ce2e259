// The coordinator's side of the SearchAlgorithm contract, played in-process for the algorithm
// tests (hippo/engine.cc plays it for real): requests are applied as the search plan applies
// them, and trials report their objective when they reach their target.
//
// FakeCoordinator keeps the trials and leaves the algorithm to the test, which drives it event
// by event. StudyRunner owns an algorithm and runs a whole study with it, optionally rebuilding
// it from its saved state before every Suggest, as after a coordinator restart.
#ifndef HIPPO_TESTS_SUPPORT_FAKE_COORDINATOR_H_
#define HIPPO_TESTS_SUPPORT_FAKE_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "search_algos/search_algorithm.h"

namespace hippo::test_support {

using search_algos::Request;
using search_algos::SearchAlgorithm;
using search_algos::Step;
using search_algos::TrialNumber;

class FakeCoordinator {
 public:
  enum class State { kRunning, kPaused, kEnded };
  struct Trial {
    stage_tree::Point point;
    Step target = 0;
    std::vector<Step> targets;  // every target it was given, in order
    State state = State::kRunning;
    bool stopped = false;          // ended by a kStop
    TrialNumber forked_from = -1;  // kFork, kMorph: the parent
    Step fork_step = 0;            // kFork: follows the parent on [0, fork_step); kMorph:
                                   // starts from its state there
    bool morphed = false;          // kMorph
  };

  static constexpr int64_t kUnbounded = -1;

  // Trials of `max_steps` steps complete when they reach it; Suggest offers the algorithm the
  // workers not running a trial, of `workers` (kUnbounded: room for 1000 more, always).
  explicit FakeCoordinator(Step max_steps, int64_t workers = kUnbounded)
      : max_steps_(max_steps), workers_(workers) {}

  // One Suggest with the free workers as capacity, every request applied (a test failure for
  // one the search plan would refuse: an extend of a trial that is not paused, a stop of one
  // that has ended, a fork at or beyond its target). Written as "new 3 ->1", "extend 2 ->3",
  // "fork 4 from 1@2 ->6", "stop 4".
  std::vector<std::string> Suggest(SearchAlgorithm& algorithm);
  std::vector<std::string> Suggest(SearchAlgorithm& algorithm, int64_t capacity);
  // Applies `requests` (returned by algorithm.Suggest) as Suggest does; the written form.
  std::vector<std::string> Apply(SearchAlgorithm& algorithm, const std::vector<Request>& requests);

  // Running `trial` reaches its target and reports `objective` for its last step; it pauses, or
  // completes at max_steps.
  void Reach(SearchAlgorithm& algorithm, TrialNumber trial, double objective);

  const std::vector<Trial>& trials() const { return trials_; }
  const Trial& trial(TrialNumber trial) const { return trials_.at(trial); }
  Step target(TrialNumber number) const { return trial(number).target; }
  const std::vector<Step>& targets(TrialNumber number) const { return trial(number).targets; }
  const stage_tree::Point& point(TrialNumber number) const { return trial(number).point; }
  bool paused(TrialNumber number) const { return trial(number).state == State::kPaused; }
  int64_t trial_count() const { return static_cast<int64_t>(trials_.size()); }
  int64_t Running() const { return static_cast<int64_t>(running().size()); }
  // The running trials, in increasing order.
  std::vector<TrialNumber> running() const;
  bool all_ended() const;
  // (trial, target) of every extend the last Suggest or Apply made.
  const std::vector<std::pair<TrialNumber, Step>>& extended() const { return extended_; }

 private:
  Step max_steps_;
  int64_t workers_;
  std::vector<Trial> trials_;
  std::vector<std::pair<TrialNumber, Step>> extended_;
};

class StudyRunner {
 public:
  // The objective a trial reports after `step`: of its number, its point, or both.
  using Objective = std::function<double(TrialNumber, const stage_tree::Point&, Step)>;
  using TrialObjective = std::function<double(TrialNumber, Step)>;
  using PointObjective = std::function<double(const stage_tree::Point&, Step)>;

  // The algorithm context.config names, from the registry (a test failure if it refuses the
  // context). With `restore`, it is rebuilt from its saved state before every Suggest, and the
  // state must read back to itself.
  StudyRunner(const search_algos::AlgorithmContext& context, Objective objective,
              bool restore = false);
  StudyRunner(const search_algos::AlgorithmContext& context, TrialObjective objective,
              bool restore = false);
  StudyRunner(const search_algos::AlgorithmContext& context, PointObjective objective,
              bool restore = false);

  // Runs the study with at most `parallel` trials at once: Suggest, then every running trial
  // trains to its target in one go, until the algorithm finishes (a test failure if it stops
  // asking for work first). Every request, in order.
  std::vector<Request> Run(int64_t parallel = 1000);

  SearchAlgorithm& algorithm() { return *algorithm_; }
  const std::vector<FakeCoordinator::Trial>& trials() const { return coordinator_.trials(); }

  // Called before every Suggest with the algorithm as it is then, and for every request before
  // it is applied: for checks and records of a particular algorithm's test.
  std::function<void(SearchAlgorithm&)> before_suggest;
  std::function<void(const Request&)> on_request;

 private:
  search_algos::AlgorithmContext context_;
  std::unique_ptr<SearchAlgorithm> algorithm_;
  Objective objective_;
  bool restore_;
  FakeCoordinator coordinator_;
};

// The algorithm context.config names, from the registry; nullptr with a test failure if it
// refuses the context.
std::unique_ptr<SearchAlgorithm> MakeAlgorithm(const search_algos::AlgorithmContext& context);

// Same kinds, trials, targets, fork steps and points, in the same order.
bool SameRequests(const std::vector<Request>& a, const std::vector<Request>& b);

}  // namespace hippo::test_support

#endif  // HIPPO_TESTS_SUPPORT_FAKE_COORDINATOR_H_
