// The built-in networks of the `torch` trainer, written functionally on ATen so that their
// tensors are plain, named and owned by the network (no torch::nn module tree): a training
// state is just these tensors, copied in and out of a fixed set of storages, which is also what
// a CUDA graph needs.
//
//   mlp     flatten, `depth` x (linear, ReLU, dropout), linear; hidden layer i has
//           Architecture::MlpWidths()[i] units (`width_i`, else `width`)
//   cnn     `layers` x (conv k x k, batch norm, ReLU, 2x2 max-pool in the first `pool_layers`
//           blocks), flatten, dropout, linear;
//           layer i has Architecture::CnnChannels()[i] channels (`channels_i`, else `channels`
//           doubling per layer)
//   resnet  He et al.'s CIFAR ResNet (depth 6n+2: 20, 32, 56, ...): a 3x3 stem, three stages of
//           n basic blocks with 16, 32, 64 channels (times width_multiplier), identity
//           shortcuts with zero-padded channels (option A), global average pool, linear.
//           Works on 28x28 and 32x32 inputs alike.
//
// Weights are drawn on the CPU from a generator seeded by the trial's seed (uniform in
// +-1/sqrt(fan_in), PyTorch's default), then moved to the device: the same seed gives the same
// initial weights on every device.
#ifndef HIPPO_WORKERS_TORCH_MODELS_H_
#define HIPPO_WORKERS_TORCH_MODELS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "workers/torch/torch_config.h"

namespace hippo::workers::torch_trainer {

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

// Batch norm's epsilon (added to the variance) in every network.
inline constexpr double kBatchNormEps = 1e-5;

// The input a network is built for.
struct InputShape {
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t classes = 10;
};

class Network {
 public:
  virtual ~Network() = default;
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Logits [batch, classes] of normalised images [batch, channels, height, width]. Training
  // mode uses (and updates) batch-norm batch statistics and applies dropout.
  virtual at::Tensor Forward(const at::Tensor& images, bool training) = 0;

  // Trainable tensors (requires_grad) and batch-norm running statistics, in a fixed order.
  const std::vector<NamedTensor>& parameters() const { return parameters_; }
  const std::vector<NamedTensor>& buffers() const { return buffers_; }

  // Dropout keeps an activation with probability `keep` (a 0-dim float tensor on the device,
  // read at every call, so that a captured graph follows its value) and draws from
  // `generator` (none: the device's default generator).
  void SetDropout(at::Tensor keep, c10::optional<at::Generator> generator);

 protected:
  struct Linear {
    at::Tensor weight;
    at::Tensor bias;
  };
  struct Conv {
    at::Tensor weight;
    int64_t stride = 1;
    int64_t padding = 0;
  };
  struct BatchNorm {
    at::Tensor weight;
    at::Tensor bias;
    at::Tensor running_mean;
    at::Tensor running_var;
  };

  // 4-d parameters (convolution weights) are laid out in `memory_format`.
  Network(at::Device device, uint64_t seed, at::MemoryFormat memory_format);

  Linear AddLinear(const std::string& name, int64_t in, int64_t out);
  Conv AddConv(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride);
  BatchNorm AddBatchNorm(const std::string& name, int64_t channels);

  static at::Tensor Apply(const Linear& layer, const at::Tensor& x);
  static at::Tensor Apply(const Conv& layer, const at::Tensor& x);
  static at::Tensor Apply(const BatchNorm& layer, const at::Tensor& x, bool training);
  at::Tensor Dropout(const at::Tensor& x, bool training) const;

 private:
  at::Tensor Uniform(std::vector<int64_t> shape, double bound);
  at::Tensor AddParameter(const std::string& name, at::Tensor value);
  at::Tensor AddBuffer(const std::string& name, at::Tensor value);

  at::Device device_;
  at::MemoryFormat memory_format_;
  at::Generator init_generator_;
  std::vector<NamedTensor> parameters_;
  std::vector<NamedTensor> buffers_;
  at::Tensor keep_;
  c10::optional<at::Generator> dropout_generator_;
};

// cnn: whether each block of `architecture` max-pools on `input` (the first `pool_layers`
// blocks, or all when it is -1, as long as the image is at least 2x2), and the image's height and
// width after the last block.
struct CnnLayout {
  std::vector<bool> pools;
  int64_t height = 0;
  int64_t width = 0;
};
CnnLayout CnnLayoutOf(const Architecture& architecture, const InputShape& input);

// The network of `architecture` for `input`, on `device`, initialised from `seed`, its
// convolution weights in `memory_format` (Forward then expects images in the same format).
std::unique_ptr<Network> MakeNetwork(const Architecture& architecture, const InputShape& input,
                                     at::Device device, uint64_t seed,
                                     at::MemoryFormat memory_format = at::MemoryFormat::Contiguous);

}  // namespace hippo::workers::torch_trainer

#endif  // HIPPO_WORKERS_TORCH_MODELS_H_
