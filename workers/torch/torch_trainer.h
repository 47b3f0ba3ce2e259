// The `torch` trainer: built-in LibTorch models (mlp, cnn, resnet) trained on Fashion-MNIST,
// CIFAR-10 or a synthetic set, with SGD, Adam or AdamW whose hyper-parameters may follow any
// sequence (read at every step). Settings: torch_config.h; networks: models.h; the update rules:
// optimizer.h; README.md of workers/ for the whole picture.
//
// A step is `iterations_per_step` optimizer iterations (default one epoch); metrics after every
// step: "loss" (mean training loss of its iterations) and, when (step + 1) % eval_every == 0,
// "val_loss" and "val_accuracy" on the validation set. The evaluation schedule depends on the
// step only, never on where stages begin or end.
//
// Determinism: a state holds the weights, batch-norm statistics, optimizer state, the dropout
// generators' states (CPU, and CUDA on a GPU), the data position (epoch, batch) and the step.
// Epoch e visits the training examples in EpochOrder(seed, e): the order depends on nothing
// else. On the CPU a trial trained straight and the same trial trained in stages, through
// Serialize/Deserialize or Clone, gives bit-identical metrics (with the same thread count).
//
// This header includes no LibTorch header, so code that includes gRPC/protobuf headers may use
// it (torch's bundled protobuf headers clash with the generated ones: docs/architecture.md).
#ifndef HIPPO_WORKERS_TORCH_TORCH_TRAINER_H_
#define HIPPO_WORKERS_TORCH_TORCH_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/trainer_kinds.h"
#include "workers/trainer.h"

namespace hippo::workers {

class TorchTrainer : public Trainer {
 public:
  static constexpr std::string_view kKind = proto::kTorchTrainerKind;

  // `device` is "cpu", "cuda" or "cuda:N". InvalidArgument for another string,
  // FailedPrecondition for a CUDA device this build or machine lacks. Reads no data.
  static absl::StatusOr<std::unique_ptr<TorchTrainer>> Create(const std::string& device);
  ~TorchTrainer() override;

  std::string_view kind() const override { return kKind; }
  absl::StatusOr<std::unique_ptr<TrainingState>> NewState(const StageTask& task) override;
  absl::StatusOr<std::unique_ptr<TrainingState>> Deserialize(const StageTask& task,
                                                             std::string_view bytes) override;
  absl::StatusOr<StageOutcome> Train(const StageTask& task, TrainingState& state,
                                     StageControl& control,
                                     const TrainCallbacks& callbacks) override;
  // Net2Net widening and deepening of an mlp or cnn (workers/torch/morphism.h); the settings of
  // `parent` and `task` may differ in their architecture only. The data position, generators
  // and step carry over.
  absl::StatusOr<std::unique_ptr<TrainingState>> Morph(const StageTask& parent,
                                                       const StageTask& task,
                                                       const TrainingState& state) override;

  // Whether the last Train on a CUDA device replayed a captured CUDA graph (false on the CPU,
  // with cuda_graph: false, or after a failed capture; see last_graph_error()).
  bool last_train_used_graph() const;
  std::string last_graph_error() const;
  // What the CUDA caching allocator holds on this trainer's device, in use or cached, for the
  // whole process (0 on the CPU). Stays near what the kept workspaces use: cached memory goes
  // back to the driver when a workspace is evicted and after a new network's first steps.
  int64_t device_bytes_reserved() const;

  struct Impl;

 private:
  explicit TorchTrainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The order in which epoch `epoch` of a trial with `seed` visits `count` training examples: a
// permutation drawn from a generator seeded by (seed, epoch) only, on `device` ("cpu" or a CUDA
// device; the two draw different permutations).
absl::StatusOr<std::vector<int64_t>> EpochOrder(uint64_t seed, int64_t epoch, int64_t count,
                                                const std::string& device = "cpu");

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_TORCH_TORCH_TRAINER_H_
