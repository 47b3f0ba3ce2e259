// The `sim` trainer: a deterministic synthetic learning curve with a cost model, for tests,
// benchmarks and simulated studies (docs/workloads.md). It reacts to the hyper-parameters the way
// real training roughly does, so search algorithms make real decisions:
//
//   - `lr` (alias `learning_rate`) and `momentum` set the effective step size
//     eta = lr / (1 - momentum). Too small learns slowly; a large eta learns fast but keeps a
//     high "temperature" (SGD noise) that holds accuracy down until the rate is decayed.
//   - `weight_decay` slows memorisation (the train/validation gap); too much of it underfits.
//   - structural `depth`, `width`, `kernel` set the capacity (the accuracy ceiling) and the
//     learning speed (deeper learns more slowly per step).
//
// State after n steps: progress p, temperature T, memorisation o (plus optional padding). One
// step s, with the values of step s:
//   eta   = lr / (1 - momentum)
//   gain  = sqrt(eta) / (1 + (eta / 1.5)^3)
//   xi    = noise(seed, s, p, T, o) in [-1, 1)        (a hash, never wall time or the worker)
//   dp    = speed * gain * (1 + 0.2 xi),   speed = 0.24 / (2 + depth)
//   p    += dp
//   T    += 0.3 (eta - T)
//   o    += dp * 0.1 / (1 + weight_decay / 2e-4)
// Metrics after step s (f = 1 - exp(-p)):
//   capacity = 1 - 0.35 exp(-depth sqrt(width) k / 16), k = 1.15 for kernel >= 5 else 1
//   fit      = 1 / (1 + (weight_decay / 1e-2)^2)
//   z_train  = capacity * fit * f * (1 - 0.5 T / (1 + T))
//   z_val    = z_train * (1 - min(0.5, 0.15 o))
//   loss         = -ln(0.1 + 0.9 z_train)
//   val_loss     = -ln(0.1 + 0.9 z_val) + 0.1 o
//   val_accuracy = clamp(0.1 + 0.9 z_val + 0.002 xi', 0, 1)   (xi' another hash of the same)
// Defaults when a parameter is absent: lr 0.01, momentum 0.9, weight_decay 0, depth 4, width 64,
// kernel 3. Accuracy starts at chance (0.1, ten classes).
//
// Config (TrainerSpec.config): "cost_per_step" seconds (default 0); "virtual_time" (default
// false): when true the trainer does not sleep and reports cost_per_step * steps as the stage's
// seconds, else it sleeps cost_per_step per step; "state_bytes" (default 0): padding carried in
// the state and its checkpoints, to model a model's size for the fork cache and checkpoint I/O;
// "wall_seconds_per_step" (default 0): real seconds slept per step even with virtual_time, so
// that stages take time (a fault test's kill lands mid-study) while the coordinator measures
// the same virtual cost on every run.
#ifndef HIPPO_WORKERS_SIM_TRAINER_H_
#define HIPPO_WORKERS_SIM_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/trainer_kinds.h"
#include "workers/trainer.h"

namespace hippo::workers {

// The sim trainer's state. Its fields are everything later steps depend on.
class SimState : public TrainingState {
 public:
  Step step() const override { return step_; }
  absl::StatusOr<std::string> Serialize() const override;
  std::unique_ptr<TrainingState> Clone() const override;
  int64_t SizeBytes() const override;

  // Parses Serialize() bytes: DataLoss for bytes that are not a sim state.
  static absl::StatusOr<std::unique_ptr<SimState>> Parse(std::string_view bytes);

  double progress() const { return progress_; }
  double temperature() const { return temperature_; }
  double memorisation() const { return memorisation_; }

 private:
  friend class SimTrainer;

  Step step_ = 0;
  double progress_ = 0;
  double temperature_ = 0;
  double memorisation_ = 0;
  std::string padding_;
};

class SimTrainer : public Trainer {
 public:
  static constexpr std::string_view kKind = proto::kSimTrainerKind;

  std::string_view kind() const override { return kKind; }
  absl::StatusOr<std::unique_ptr<TrainingState>> NewState(const StageTask& task) override;
  absl::StatusOr<std::unique_ptr<TrainingState>> Deserialize(const StageTask& task,
                                                             std::string_view bytes) override;
  absl::StatusOr<StageOutcome> Train(const StageTask& task, TrainingState& state,
                                     StageControl& control,
                                     const TrainCallbacks& callbacks) override;
};

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_SIM_TRAINER_H_
