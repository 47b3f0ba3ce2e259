// The `command` trainer: runs any program (TrainerSpec.command) to train a stage's steps.
//
// For steps [a, b) the trainer writes a JSON file describing them (hyper-parameter values per
// step, static parameters, seed, input and output checkpoint paths), starts the program with
// HIPPO_* environment variables pointing at it, reads one JSON object of metrics per trained
// step from the program's standard output, and takes the file the program wrote at
// HIPPO_CHECKPOINT_OUT as the state at step b. The full contract a program must honour is in
// workers/README.md ("command").
//
// A stage with checkpoint steps inside it runs the program once per sub-range ending at each
// checkpoint step, chaining the output checkpoint of one run into the next. A checkpoint asked
// for mid-stage (StageControl::RequestCheckpoint) is honoured when its step lies beyond the
// sub-range that has already started, refused otherwise (see Train).
//
// Config (TrainerSpec.config; every other member is passed to the program untouched):
//   "working_dir"         the program's working directory (default: the worker's)
//   "env"                 {NAME: string or number} added to the worker's environment
//   "kill_grace_seconds"  seconds between SIGTERM and SIGKILL when the program must stop (5)
//   "log_file"            a file to append the program's non-metric output to (default: none)
//   "scratch_dir"         where the per-stage scratch directory is made (default: $TMPDIR)
// TrainerSpec.timeout_seconds bounds each Train call; a program past it is killed.
//
// Only programs that AllowedPrograms accepts are started (the worker's --allow-dir; none by
// default, so a trainer made without them refuses every program). The program's environment is
// the worker's without the coordinator token (HIPPO_TOKEN*), plus config.env and HIPPO_*.
#ifndef HIPPO_WORKERS_COMMAND_TRAINER_H_
#define HIPPO_WORKERS_COMMAND_TRAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "proto/trainer_kinds.h"
#include "workers/allowed_programs.h"
#include "workers/trainer.h"

namespace hippo::workers {

// The command trainer's state: the bytes of the checkpoint file the program wrote for the
// state's step, opaque to Hippo. A family's state at step 0 has no checkpoint (the program
// initialises from the seed).
class CommandState : public TrainingState {
 public:
  Step step() const override { return step_; }
  absl::StatusOr<std::string> Serialize() const override;
  std::unique_ptr<TrainingState> Clone() const override;
  int64_t SizeBytes() const override;

  // Parses Serialize() bytes: DataLoss for bytes that are not a command trainer state.
  static absl::StatusOr<std::unique_ptr<CommandState>> Parse(std::string_view bytes);

  // The program's checkpoint for step(); std::nullopt for a fresh state.
  const std::optional<std::string>& checkpoint() const { return checkpoint_; }

 private:
  friend class CommandTrainer;

  Step step_ = 0;
  std::optional<std::string> checkpoint_;
};

class CommandTrainer : public Trainer {
 public:
  static constexpr std::string_view kKind = proto::kCommandTrainerKind;

  // Refuses every program (no directory allowed).
  CommandTrainer() = default;
  explicit CommandTrainer(AllowedPrograms allowed) : allowed_(std::move(allowed)) {}

  std::string_view kind() const override { return kKind; }
  absl::StatusOr<std::unique_ptr<TrainingState>> NewState(const StageTask& task) override;
  absl::StatusOr<std::unique_ptr<TrainingState>> Deserialize(const StageTask& task,
                                                             std::string_view bytes) override;

  // Runs the program over [start_step, end_step) in sub-ranges. Before starting a sub-range
  // [a, b) it calls control.ReachedStep(k) for each k in (a, b) in order, and ends the
  // sub-range at the first k that was requested; steps passed this way can no longer be
  // requested (RequestCheckpoint refuses them). At the end of each sub-range it calls
  // control.ReachedStep(b) and hands the state to callbacks.checkpoint when asked to.
  // Cancellation and the timeout kill the program's process group (SIGTERM, then SIGKILL after
  // kill_grace_seconds). A program that fails, misreports its steps or writes no checkpoint
  // fails the stage with Internal, quoting the last lines of its output.
  absl::StatusOr<StageOutcome> Train(const StageTask& task, TrainingState& state,
                                     StageControl& control,
                                     const TrainCallbacks& callbacks) override;

 private:
  AllowedPrograms allowed_;
};

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_COMMAND_TRAINER_H_
