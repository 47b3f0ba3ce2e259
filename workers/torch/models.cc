#include "workers/torch/models.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hippo::workers::torch_trainer {
namespace {

// Channels of a ResNet stage: base x multiplier, at least 1.
int64_t Scaled(int64_t base, double multiplier) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(base) * multiplier));
}

class Mlp : public Network {
 public:
  Mlp(const Architecture& architecture, const InputShape& input, at::Device device, uint64_t seed,
      at::MemoryFormat memory_format)
      : Network(device, seed, memory_format) {
    int64_t features = input.channels * input.height * input.width;
    const std::vector<int64_t> widths = architecture.MlpWidths();
    for (size_t i = 0; i < widths.size(); ++i) {
      hidden_.push_back(AddLinear(absl::StrCat("hidden", i), features, widths[i]));
      features = widths[i];
    }
    output_ = AddLinear("output", features, input.classes);
  }

  at::Tensor Forward(const at::Tensor& images, bool training) override {
    at::Tensor x = images.flatten(1);
    for (const Linear& layer : hidden_) x = Dropout(at::relu(Apply(layer, x)), training);
    return Apply(output_, x);
  }

 private:
  std::vector<Linear> hidden_;
  Linear output_;
};

class Cnn : public Network {
 public:
  Cnn(const Architecture& architecture, const InputShape& input, at::Device device, uint64_t seed,
      at::MemoryFormat memory_format)
      : Network(device, seed, memory_format) {
    const CnnLayout layout = CnnLayoutOf(architecture, input);
    int64_t channels = input.channels;
    const std::vector<int64_t> sizes = architecture.CnnChannels();
    for (size_t i = 0; i < sizes.size(); ++i) {
      const int64_t out = sizes[i];
      blocks_.push_back(Block{
          .conv = AddConv(absl::StrCat("conv", i), channels, out, architecture.kernel_size, 1),
          .norm = AddBatchNorm(absl::StrCat("norm", i), out),
          .pool = layout.pools[i]});
      channels = out;
    }
    output_ = AddLinear("output", channels * layout.height * layout.width, input.classes);
  }

  at::Tensor Forward(const at::Tensor& images, bool training) override {
    at::Tensor x = images;
    for (const Block& block : blocks_) {
      x = at::relu(Apply(block.norm, Apply(block.conv, x), training));
      if (block.pool) x = at::max_pool2d(x, at::IntArrayRef(kPool));
    }
    return Apply(output_, Dropout(x.flatten(1), training));
  }

 private:
  struct Block {
    Conv conv;
    BatchNorm norm;
    bool pool = false;
  };
  static constexpr int64_t kPool[2] = {2, 2};
  std::vector<Block> blocks_;
  Linear output_;
};

class ResNet : public Network {
 public:
  ResNet(const Architecture& architecture, const InputShape& input, at::Device device,
         uint64_t seed, at::MemoryFormat memory_format)
      : Network(device, seed, memory_format) {
    const int64_t blocks_per_stage = (architecture.depth - 2) / 6;
    const int64_t widths[3] = {Scaled(16, architecture.width_multiplier),
                               Scaled(32, architecture.width_multiplier),
                               Scaled(64, architecture.width_multiplier)};
    stem_ = AddConv("stem.conv", input.channels, widths[0], 3, 1);
    stem_norm_ = AddBatchNorm("stem.norm", widths[0]);
    int64_t channels = widths[0];
    for (int stage = 0; stage < 3; ++stage) {
      for (int64_t b = 0; b < blocks_per_stage; ++b) {
        const int64_t stride = stage > 0 && b == 0 ? 2 : 1;
        const std::string name = absl::StrCat("stage", stage, ".block", b);
        blocks_.push_back(
            Block{.conv1 = AddConv(name + ".conv1", channels, widths[stage], 3, stride),
                  .norm1 = AddBatchNorm(name + ".norm1", widths[stage]),
                  .conv2 = AddConv(name + ".conv2", widths[stage], widths[stage], 3, 1),
                  .norm2 = AddBatchNorm(name + ".norm2", widths[stage]),
                  .stride = stride,
                  .extra_channels = widths[stage] - channels});
        channels = widths[stage];
      }
    }
    output_ = AddLinear("output", channels, input.classes);
  }

  at::Tensor Forward(const at::Tensor& images, bool training) override {
    at::Tensor x = at::relu(Apply(stem_norm_, Apply(stem_, images), training));
    for (const Block& block : blocks_) {
      at::Tensor y = at::relu(Apply(block.norm1, Apply(block.conv1, x), training));
      y = Apply(block.norm2, Apply(block.conv2, y), training);
      at::Tensor shortcut = x;
      if (block.stride != 1) {
        shortcut = shortcut.slice(2, 0, shortcut.size(2), block.stride)
                       .slice(3, 0, shortcut.size(3), block.stride);
      }
      if (block.extra_channels > 0) {
        const std::vector<int64_t> pad = {0, 0, 0, 0, 0, block.extra_channels};
        shortcut = at::constant_pad_nd(shortcut, at::IntArrayRef(pad));
      }
      x = at::relu(y + shortcut);
    }
    return Apply(output_, x.mean(at::IntArrayRef(kSpatial)));
  }

 private:
  struct Block {
    Conv conv1;
    BatchNorm norm1;
    Conv conv2;
    BatchNorm norm2;
    int64_t stride = 1;
    int64_t extra_channels = 0;
  };
  static constexpr int64_t kSpatial[2] = {2, 3};
  Conv stem_;
  BatchNorm stem_norm_;
  std::vector<Block> blocks_;
  Linear output_;
};

}  // namespace

CnnLayout CnnLayoutOf(const Architecture& architecture, const InputShape& input) {
  CnnLayout layout{.pools = {}, .height = input.height, .width = input.width};
  for (int64_t i = 0; i < architecture.layers; ++i) {
    const bool pool = (architecture.pool_layers < 0 || i < architecture.pool_layers) &&
                      layout.height >= 2 && layout.width >= 2;
    if (pool) {
      layout.height /= 2;
      layout.width /= 2;
    }
    layout.pools.push_back(pool);
  }
  return layout;
}

Network::Network(at::Device device, uint64_t seed, at::MemoryFormat memory_format)
    : device_(device),
      memory_format_(memory_format),
      init_generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

void Network::SetDropout(at::Tensor keep, c10::optional<at::Generator> generator) {
  keep_ = std::move(keep);
  dropout_generator_ = std::move(generator);
}

at::Tensor Network::Uniform(std::vector<int64_t> shape, double bound) {
  at::Tensor value = at::empty(at::IntArrayRef(shape), at::TensorOptions().dtype(at::kFloat));
  value.uniform_(-bound, bound, init_generator_);
  return value;
}

at::Tensor Network::AddParameter(const std::string& name, at::Tensor value) {
  if (value.dim() == 4) value = value.contiguous(memory_format_);
  at::Tensor on_device = value.to(device_).detach().set_requires_grad(true);
  parameters_.push_back(NamedTensor{name, on_device});
  return on_device;
}

at::Tensor Network::AddBuffer(const std::string& name, at::Tensor value) {
  at::Tensor on_device = value.to(device_);
  buffers_.push_back(NamedTensor{name, on_device});
  return on_device;
}

Network::Linear Network::AddLinear(const std::string& name, int64_t in, int64_t out) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  Linear layer;
  layer.weight = AddParameter(name + ".weight", Uniform({out, in}, bound));
  layer.bias = AddParameter(name + ".bias", Uniform({out}, bound));
  return layer;
}

Network::Conv Network::AddConv(const std::string& name, int64_t in, int64_t out, int64_t kernel,
                               int64_t stride) {
  // No bias: every convolution is followed by batch norm, whose shift replaces it.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kernel * kernel));
  Conv layer;
  layer.weight = AddParameter(name + ".weight", Uniform({out, in, kernel, kernel}, bound));
  layer.stride = stride;
  layer.padding = kernel / 2;
  return layer;
}

Network::BatchNorm Network::AddBatchNorm(const std::string& name, int64_t channels) {
  const at::TensorOptions options = at::TensorOptions().dtype(at::kFloat);
  BatchNorm layer;
  layer.weight = AddParameter(name + ".weight", at::ones({channels}, options));
  layer.bias = AddParameter(name + ".bias", at::zeros({channels}, options));
  layer.running_mean = AddBuffer(name + ".running_mean", at::zeros({channels}, options));
  layer.running_var = AddBuffer(name + ".running_var", at::ones({channels}, options));
  return layer;
}

at::Tensor Network::Apply(const Linear& layer, const at::Tensor& x) {
  return at::linear(x, layer.weight, layer.bias);
}

at::Tensor Network::Apply(const Conv& layer, const at::Tensor& x) {
  const std::vector<int64_t> stride = {layer.stride, layer.stride};
  const std::vector<int64_t> padding = {layer.padding, layer.padding};
  return at::conv2d(x, layer.weight, c10::optional<at::Tensor>(), at::IntArrayRef(stride),
                    at::IntArrayRef(padding));
}

at::Tensor Network::Apply(const BatchNorm& layer, const at::Tensor& x, bool training) {
  return at::batch_norm(x, layer.weight, layer.bias, layer.running_mean, layer.running_var,
                        training, /*momentum=*/0.1, kBatchNormEps, /*cudnn_enabled=*/true);
}

at::Tensor Network::Dropout(const at::Tensor& x, bool training) const {
  if (!training || !keep_.defined()) return x;
  // keep = 1 makes every mask entry true (rand < 1) and leaves x exactly as it was.
  at::Tensor mask = at::rand(x.sizes(), dropout_generator_, x.options()).lt(keep_);
  return x * mask / keep_;
}

std::unique_ptr<Network> MakeNetwork(const Architecture& architecture, const InputShape& input,
                                     at::Device device, uint64_t seed,
                                     at::MemoryFormat memory_format) {
  switch (architecture.model) {
    case ModelKind::kMlp:
      return std::make_unique<Mlp>(architecture, input, device, seed, memory_format);
    case ModelKind::kCnn:
      return std::make_unique<Cnn>(architecture, input, device, seed, memory_format);
    case ModelKind::kResNet:
      return std::make_unique<ResNet>(architecture, input, device, seed, memory_format);
  }
  return nullptr;
}

}  // namespace hippo::workers::torch_trainer
