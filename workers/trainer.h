// The trainer interface: what a worker needs from the code that trains one stage.
//
// A worker hands a trainer a StageTask (plain data converted from an Assign at the RPC edge), a
// TrainingState at the stage's start step and a StageControl through which the session thread
// cancels the stage or asks for extra checkpoints while it runs. The trainer trains the steps
// [start_step, end_step) one by one, in order, reporting the metrics of every step and handing
// the state at each requested step to a checkpoint callback.
//
// Correctness bar (docs/concepts.md): training [a, c) straight and training
// [a, b) then [b, c) with the state serialised and deserialised, or deep-copied, in between must
// give bit-identical metrics. A trainer therefore keeps everything that influences later steps
// inside its TrainingState, and never reads wall time, the worker, the stage id or the attempt.
#ifndef HIPPO_WORKERS_TRAINER_H_
#define HIPPO_WORKERS_TRAINER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "stage_tree/sequence.h"

namespace hippo::workers {

using Step = stage_tree::Step;

// The value of a static (non-sequence) parameter: a number, a boolean or a string. Lists and
// objects arrive as their JSON text.
using StaticValue = std::variant<double, bool, std::string>;

// Metrics of one step by name, e.g. {"loss": 0.41, "val_accuracy": 0.87}.
using Metrics = std::map<std::string, double>;

// One stage to train: plain data, converted from hippo.v1.Assign (see assignment.h).
struct StageTask {
  int64_t attempt_id = 0;
  // Globally unique; the coordinator encodes family and node in it.
  int64_t stage_id = 0;
  // The stage trains the steps [start_step, end_step).
  Step start_step = 0;
  Step end_step = 0;
  // Per hyper-parameter, contiguous segments covering at least [start_step, end_step), written
  // in absolute steps (the functions count from their own origin, not from start_step).
  std::map<std::string, std::vector<stage_tree::Segment>> parameters;
  std::map<std::string, StaticValue> static_parameters;
  std::string trainer_kind;
  // TrainerSpec.config as a JSON object ("{}" when absent).
  std::string trainer_config_json = "{}";
  // TrainerSpec.command: the program and its arguments (kind "command" only).
  std::vector<std::string> command;
  // TrainerSpec.seed.
  uint64_t seed = 0;
  // Steps whose state must be written, in (start_step, end_step]; a state "at step k" is the
  // state after k steps were trained, i.e. ready to train step k.
  std::vector<Step> checkpoint_steps;
  // TrainerSpec.timeout_seconds; 0 means no limit.
  double timeout_seconds = 0;

  // The value of hyper-parameter `name` while training `step`: from its segments when it has
  // them (step must lie in [start_step, end_step)), else from a numeric or boolean static
  // parameter, else std::nullopt.
  std::optional<double> ValueAt(std::string_view name, Step step) const;
};

// Checks the task's invariants: start < end, every parameter's segments contiguous and covering
// [start_step, end_step) with well-formed functions, checkpoint steps in (start, end].
// InvalidArgument naming the offending parameter or step otherwise.
absl::Status ValidateStageTask(const StageTask& task);

// The full training state at a step boundary. Owned by exactly one party at a time (the
// training thread, or the fork cache); shared only through Clone().
class TrainingState {
 public:
  virtual ~TrainingState() = default;

  // The number of steps trained so far: the state is ready to train step `step()`.
  virtual Step step() const = 0;

  // Bytes that the same trainer kind's Trainer::Deserialize turns back into an equal state.
  virtual absl::StatusOr<std::string> Serialize() const = 0;

  // A deep copy that shares nothing mutable with this state.
  virtual std::unique_ptr<TrainingState> Clone() const = 0;

  // Approximate memory held by the state, for the fork cache's budget.
  virtual int64_t SizeBytes() const = 0;
};

// What every trainer checks before Train: `state` is its own kind of state (S), the task is well
// formed (ValidateStageTask) and the state lies at the task's start step. `kind` names the
// trainer in the messages.
absl::Status CheckStageStart(std::string_view kind, const StageTask& task, Step state_step);

template <typename S>
absl::StatusOr<S*> StateToTrain(std::string_view kind, const StageTask& task,
                                TrainingState& state) {
  auto* own = dynamic_cast<S*>(&state);
  if (own == nullptr) {
    return absl::InvalidArgumentError(std::string(kind) +
                                      " trainer: the state was made by another trainer");
  }
  if (absl::Status status = CheckStageStart(kind, task, own->step()); !status.ok()) return status;
  return own;
}

// Shared between the session thread (which cancels and requests checkpoints) and the training
// thread (which polls). Thread-safe.
class StageControl {
 public:
  StageControl() = default;
  StageControl(const StageControl&) = delete;
  StageControl& operator=(const StageControl&) = delete;

  // Asks the trainer to stop at the next step boundary (or sleep). Idempotent.
  void Cancel();
  bool cancelled() const;

  // Stops the stage once `deadline` passes (TrainerSpec.timeout_seconds).
  void SetDeadline(absl::Time deadline);
  bool timed_out() const;

  // Cancelled or timed out: the trainer must return promptly (with absl::CancelledError or
  // absl::DeadlineExceededError, see StopStatus()).
  bool ShouldStop() const;
  // The status a trainer returns when ShouldStop() is true.
  absl::Status StopStatus() const;

  // Records the checkpoint steps of the Assign (they do not count as mid-stage requests).
  void SetAssignedCheckpoints(const std::vector<Step>& steps);

  // Asks for the state at `step` to be checkpointed (CheckpointAt). Returns false when the
  // trainer already reached that step, so the request cannot be honoured; true otherwise.
  bool RequestCheckpoint(Step step);

  // Called by the trainer when its state reaches `step` (after training step - 1). Returns
  // whether that state must be checkpointed; from then on RequestCheckpoint refuses `step` and
  // every earlier step. Atomic, so a request is either honoured or refused, never lost.
  bool ReachedStep(Step step);

  // True when `step` was requested through RequestCheckpoint (a split point the coordinator
  // asked for while the stage was assigned), as opposed to a checkpoint step of the Assign.
  bool RequestedMidStage(Step step) const;

  // Sleeps for `duration` unless the stage is asked to stop first. Returns ShouldStop().
  bool SleepUnlessStopped(absl::Duration duration) const;

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Time> deadline_ ABSL_GUARDED_BY(mu_);
  std::set<Step> assigned_ ABSL_GUARDED_BY(mu_);
  std::set<Step> mid_stage_ ABSL_GUARDED_BY(mu_);
  std::optional<Step> reached_ ABSL_GUARDED_BY(mu_);
};

// Called by a trainer while it trains; both run on the training thread.
struct TrainCallbacks {
  // After each step s of [start_step, end_step), in order: the step just trained and the
  // metrics measured after it.
  std::function<void(Step step, const Metrics& metrics)> progress;
  // With the state at step k whenever control.ReachedStep(k) says so, k in (start, end]. An
  // error fails the stage; the trainer returns it unchanged.
  std::function<absl::Status(Step step, const TrainingState& state)> checkpoint;
};

struct StageOutcome {
  // Simulated seconds the stage cost, when the trainer simulates time (sim with virtual_time);
  // std::nullopt when the worker should report the wall time it measured.
  std::optional<double> virtual_seconds;
};

// Trains stages of one trainer kind. A worker calls one trainer from one thread at a time.
class Trainer {
 public:
  virtual ~Trainer() = default;

  // The TrainerSpec.kind this trainer serves, e.g. "sim".
  virtual std::string_view kind() const = 0;

  // The state at step 0 of the family that `task` belongs to (a root stage).
  virtual absl::StatusOr<std::unique_ptr<TrainingState>> NewState(const StageTask& task) = 0;

  // Rebuilds a state from TrainingState::Serialize() bytes. InvalidArgument or DataLoss for
  // bytes of another trainer kind or an incompatible model.
  virtual absl::StatusOr<std::unique_ptr<TrainingState>> Deserialize(const StageTask& task,
                                                                     std::string_view bytes) = 0;

  // The start state of a stage whose family inherits another family's trained state (a
  // function-preserving morphism, docs/concepts.md "Morphism"): `state` was trained under
  // `parent` (a task of the parent family, read for its settings only) and the result is the
  // same function reshaped for `task`'s family, at the same step. The default refuses:
  // Unimplemented naming the trainer kind.
  virtual absl::StatusOr<std::unique_ptr<TrainingState>> Morph(const StageTask& parent,
                                                               const StageTask& task,
                                                               const TrainingState& state);

  // Trains `state` (which must be at task.start_step) through task.end_step, in place.
  // Returns Cancelled / DeadlineExceeded when `control` says stop (state then lies at some step
  // boundary), the callback's error if a checkpoint fails, another error if training fails.
  virtual absl::StatusOr<StageOutcome> Train(const StageTask& task, TrainingState& state,
                                             StageControl& control,
                                             const TrainCallbacks& callbacks) = 0;
};

// Makes a trainer of one kind; `device` is the worker's --device ("cpu", "cuda:0", ...).
using TrainerFactory =
    std::function<absl::StatusOr<std::unique_ptr<Trainer>>(const std::string& device)>;

// Adds a trainer kind to those MakeBuiltinTrainer knows. Trainers living in libraries that
// hippo_workers must not depend on (LibTorch's) register themselves through this, called once
// from main before any worker starts. A second registration of a kind replaces the first.
void RegisterTrainerKind(const std::string& kind, TrainerFactory factory);

// The kinds MakeBuiltinTrainer can make, sorted ("command", "sim" and those registered).
std::vector<std::string> BuiltinTrainerKinds();

// The built-in or registered trainer of `kind` for `device`; NotFound, listing the kinds this
// build has, for another kind.
absl::StatusOr<std::unique_ptr<Trainer>> MakeBuiltinTrainer(std::string_view kind,
                                                            const std::string& device = "cpu");

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_TRAINER_H_
