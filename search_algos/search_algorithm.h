// SearchAlgorithm: the interface between a study's search plan and a search algorithm.
//
// Events in, requests out (docs/architecture.md). An algorithm never
// touches the stage tree or the store. It is deterministic given its seed and the events it
// saw, and it serialises its state, so that a restarted coordinator resumes it exactly.
//
// Trial ids: the search plan gives the k-th kNewTrial, kFork or kMorph request (counting from 0,
// in the order requests are returned) trial id k, so an algorithm can name its trials without
// waiting for an answer.
#ifndef HIPPO_SEARCH_ALGOS_SEARCH_ALGORITHM_H_
#define HIPPO_SEARCH_ALGOS_SEARCH_ALGORITHM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "hippo/v1/hippo.pb.h"
#include "proto/spec_issues.h"
#include "stage_tree/search_space.h"

namespace hippo::search_algos {

using TrialNumber = int64_t;
using Step = stage_tree::Step;

// kMorph: a trial whose structure extends its parent's (wider, deeper) starts from the parent's
// trained state at `fork_step` (a target the parent reached), trains [fork_step, target) in a
// family of its own that records what it inherited. kStop with `target` > 0: a trial paused at
// that target ends as completed (trained to its end, its objective counts), not as stopped.
struct Request {
  enum class Kind { kNewTrial, kExtend, kStop, kFork, kMorph };
  Kind kind = Kind::kNewTrial;
  stage_tree::Point point;  // kNewTrial, kFork, kMorph: the trial's hyper-parameters
  Step target = 0;          // kNewTrial, kExtend, kFork, kMorph: the step to train to
  TrialNumber trial = -1;   // kExtend, kStop: the trial; kFork, kMorph: the parent
  Step fork_step = 0;       // kFork: the new trial follows `trial` on [0, fork_step); kMorph:
                            // it inherits `trial`'s state after fork_step steps
};

enum class TrialOutcome { kCompleted, kStopped, kFailed };

// What an algorithm is built from.
struct AlgorithmContext {
  const stage_tree::SearchSpace* space = nullptr;
  Step max_steps = 0;
  int64_t max_trials = 0;  // 0: the algorithm decides (grid: every point)
  uint64_t seed = 0;
  bool minimize = false;
  hippo::v1::Algorithm config;
};

class SearchAlgorithm {
 public:
  virtual ~SearchAlgorithm() = default;

  // The objective of `trial` after training `step` (reported when the stage holding the step
  // is done).
  virtual void OnMetric(TrialNumber trial, Step step, double objective) = 0;
  // `trial` reached its target and will not be trained further unless extended, or ended.
  virtual void OnTrialReachedTarget(TrialNumber trial, Step target) = 0;
  virtual void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) = 0;

  // Requests to carry out now; at most `max_new_trials` new or forked trials.
  virtual std::vector<Request> Suggest(int64_t max_new_trials) = 0;

  // No more requests will come, ever.
  virtual bool Finished() const = 0;
  // Why it finished short of what the spec asked for (the search space ran out of new
  // configurations), or empty: the coordinator shows it as the ended study's message.
  virtual std::string EndReason() const { return {}; }

  // Steps where this algorithm may later pause, stop or branch trials (rungs, exploit
  // boundaries). Stages keep their state there, so that a trial which later pauses or branches
  // at one of them needs no recomputation. Default: none beyond the trials' own targets.
  virtual std::vector<Step> BranchSteps() const { return {}; }

  virtual std::string SaveState() const = 0;
  virtual absl::Status LoadState(const std::string& state) = 0;

  // An optional append-only journal of the state, so that the coordinator need not write the
  // whole state after every event. An algorithm that supports it returns true, and then:
  //  - TakeStateDelta() returns what changed in the state since the last TakeStateDelta(),
  //    LoadState() or ApplyStateDelta() (empty: nothing changed), and forgets it;
  //  - LoadState(s) followed by ApplyStateDelta(d1), ..., ApplyStateDelta(dk), where s was saved
  //    and d1..dk taken after it in order, leaves the algorithm exactly as it was when dk was
  //    taken (and with nothing left to take).
  // Default: no journal; the coordinator saves the whole state after every change.
  virtual bool SupportsStateDelta() const { return false; }
  virtual std::string TakeStateDelta() { return {}; }
  virtual absl::Status ApplyStateDelta(const std::string& delta) {
    return absl::UnimplementedError(absl::StrCat(
        "this algorithm keeps no state journal; cannot apply a delta of ", delta.size(), " bytes"));
  }
};

using AlgorithmFactory =
    std::function<absl::StatusOr<std::unique_ptr<SearchAlgorithm>>(const AlgorithmContext&)>;

// An algorithm's own checks of its config, run on a spec that passed the generic ones
// (proto/spec_validator.h: objective, trainer, budget, resources, search space, a known
// algorithm.name, no negative numbers). `config` is spec.algorithm(), given on its own so that a
// plugin reads its config without touching the StudySpec's accessors (their symbols live in the
// server binary, which a plugin does not link). Returns the first problem, with its field path
// (e.g. algorithm.asha.min_resource) and "what is wrong; the fix", or nullopt. A spec it accepts
// must not be refused by the algorithm's factory.
using ConfigCheck = std::function<proto::Issue(const hippo::v1::Algorithm& config,
                                               const hippo::v1::StudySpec& spec)>;

// What a registration carries.
struct AlgorithmDefinition {
  AlgorithmFactory create;
  ConfigCheck check_config;  // empty: nothing beyond the generic checks
  // Config blocks of hippo.v1.Algorithm the algorithm reads besides the one named after it and
  // plugin_config (asha reads tpe for its TPE sampler). A spec that sets any other block is
  // refused: the block would be silently ignored.
  std::vector<std::string> other_config_blocks;
};

// The registry of algorithms by name. Built-ins register themselves on first use.
class AlgorithmRegistry {
 public:
  static AlgorithmRegistry& Global();
  // AlreadyExists if the name is taken.
  absl::Status Register(const std::string& name, AlgorithmDefinition definition);
  // An algorithm with no checks of its own.
  absl::Status Register(const std::string& name, AlgorithmFactory factory);
  // NotFound naming the known algorithms if `name` is not registered.
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const std::string& name,
                                                          const AlgorithmContext& context) const;
  // The first problem of the config of spec.algorithm().name(), a registered algorithm: a config
  // block it does not read, then its own check. nullopt for a name not registered.
  proto::Issue CheckConfig(const hippo::v1::StudySpec& spec) const;
  // In registration order, built-ins first.
  std::vector<std::string> Names() const;

 private:
  AlgorithmRegistry();
  const AlgorithmDefinition* Find(const std::string& name) const;

  std::vector<std::pair<std::string, AlgorithmDefinition>> definitions_;
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_SEARCH_ALGORITHM_H_
