// The torch trainer's data on the device (one copy per dataset and device, shared by every
// workspace of the process), the epoch orders drawn from a trial's seed, and the seeded streams
// those draws come from.
//
// Internal to the torch trainer: this header includes LibTorch, so only the torch target's own
// sources include it (workers/torch/CMakeLists.txt keeps LibTorch private).
#ifndef HIPPO_WORKERS_TORCH_TORCH_DATA_H_
#define HIPPO_WORKERS_TORCH_TORCH_DATA_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "workers/torch/datasets.h"
#include "workers/torch/models.h"
#include "workers/torch/torch_config.h"

namespace hippo::workers::torch_trainer {

// A seed for one stream of one trial: depends on the trial seed, the stream and `index` only.
uint64_t StreamSeed(uint64_t seed, uint64_t salt, uint64_t index = 0);

struct DeviceData {
  std::shared_ptr<const Dataset> dataset;
  at::Tensor train_images;  // uint8 [N, C, H, W]
  at::Tensor train_labels;  // int64 [N]
  at::Tensor val_images;
  at::Tensor val_labels;
  // Normalisation as one multiply-add: x = pixel * scale + shift, per channel [1, C, 1, 1].
  at::Tensor scale;
  at::Tensor shift;

  InputShape shape() const {
    return InputShape{.channels = dataset->channels,
                      .height = dataset->height,
                      .width = dataset->width,
                      .classes = dataset->classes};
  }
};

// The data of `spec` on `device`, loaded on first use and kept for the process.
absl::StatusOr<std::shared_ptr<const DeviceData>> DataOn(const DataSpec& spec, at::Device device);

// Normalised float images from uint8 `pixels` of `data`.
at::Tensor Normalised(const DeviceData& data, const at::Tensor& pixels);

// The order of the `count` training examples in `epoch`, from the trial's `seed`, on `device`.
at::Tensor DrawOrder(uint64_t seed, int64_t epoch, int64_t count, at::Device device);

}  // namespace hippo::workers::torch_trainer

#endif  // HIPPO_WORKERS_TORCH_TORCH_DATA_H_
