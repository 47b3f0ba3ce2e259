// The torch trainer's training state (TorchState) and its byte format, and the conversion of
// LibTorch exceptions into statuses.
//
// Internal to the torch trainer: this header includes LibTorch, so only the torch target's own
// sources include it (workers/torch/CMakeLists.txt keeps LibTorch private).
#ifndef HIPPO_WORKERS_TORCH_TORCH_STATE_H_
#define HIPPO_WORKERS_TORCH_TORCH_STATE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/torch/models.h"
#include "workers/trainer.h"

namespace hippo::workers::torch_trainer {

// The message of a LibTorch error without its backtrace; any other exception's what().
std::string ErrorText(const std::exception& error);

// An internal error "torch trainer: <what>: <error text>".
absl::Status TorchError(std::string_view what, const std::exception& error);

// The state after `step_` steps: the data position, the signature of the settings that made it,
// and every tensor training reads (network, optimizer, generators).
class TorchState final : public TrainingState {
 public:
  Step step() const override { return step_; }
  absl::StatusOr<std::string> Serialize() const override;
  std::unique_ptr<TrainingState> Clone() const override;
  int64_t SizeBytes() const override;

  static absl::StatusOr<std::unique_ptr<TorchState>> Parse(std::string_view bytes,
                                                           at::Device device);

  const NamedTensor* Find(std::string_view name) const {
    for (const NamedTensor& entry : tensors_) {
      if (entry.name == name) return &entry;
    }
    return nullptr;
  }

  Step step_ = 0;
  // Data position: the next batch is batch_ of epoch_.
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
  std::string signature_;
  // Network parameters and buffers, optimizer state (names "parameter/...", "buffer/...",
  // "optimizer/..."), then the generators' states ("rng/cpu", "rng/cuda", CPU bytes).
  std::vector<NamedTensor> tensors_;
};

}  // namespace hippo::workers::torch_trainer

#endif  // HIPPO_WORKERS_TORCH_TORCH_STATE_H_
