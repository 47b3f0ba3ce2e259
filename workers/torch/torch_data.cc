#include "workers/torch/torch_data.h"

#include <ATen/CPUGeneratorImpl.h>

#ifdef HIPPO_TORCH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace hippo::workers::torch_trainer {
namespace {

// The salt of the epoch orders' stream (the trainer's other streams have their own).
constexpr uint64_t kOrderSalt = 0x6f72646572;  // "order"

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

at::Tensor ImagesOn(const ImageSet& set, const Dataset& dataset, at::Device device) {
  // from_blob does not own the bytes: clone (or copy to the device) before they could go away.
  at::Tensor images =
      at::from_blob(const_cast<uint8_t*>(set.pixels.data()),
                    {set.count, dataset.channels, dataset.height, dataset.width}, at::kByte);
  return device.is_cpu() ? images.clone() : images.to(device);
}

at::Tensor LabelsOn(const ImageSet& set, at::Device device) {
  at::Tensor labels =
      at::from_blob(const_cast<uint8_t*>(set.labels.data()), {set.count}, at::kByte);
  return labels.to(at::kLong).to(device);
}

}  // namespace

uint64_t StreamSeed(uint64_t seed, uint64_t salt, uint64_t index) {
  // CUDA generators keep 63-bit seeds happy; drop the top bit everywhere for one rule.
  return SplitMix64(SplitMix64(seed ^ salt) + index) >> 1;
}

absl::StatusOr<std::shared_ptr<const DeviceData>> DataOn(const DataSpec& spec, at::Device device) {
  struct Cache {
    absl::Mutex mu;
    std::map<std::string, std::shared_ptr<const DeviceData>> loaded ABSL_GUARDED_BY(mu);
  };
  static Cache* cache = new Cache;
  const std::string key = absl::StrCat(spec.Describe(), " on ", device.str());
  absl::MutexLock lock(&cache->mu);
  if (auto it = cache->loaded.find(key); it != cache->loaded.end()) return it->second;
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = LoadDataset(spec);
  if (!dataset.ok()) return dataset.status();
  auto data = std::make_shared<DeviceData>();
  data->dataset = *dataset;
  const Dataset& d = **dataset;
  data->train_images = ImagesOn(d.train, d, device);
  data->train_labels = LabelsOn(d.train, device);
  data->val_images = ImagesOn(d.validation, d, device);
  data->val_labels = LabelsOn(d.validation, device);
  std::vector<float> scale, shift;
  for (size_t c = 0; c < d.mean.size(); ++c) {
    scale.push_back(1.0f / (255.0f * d.stddev[c]));
    shift.push_back(-d.mean[c] / d.stddev[c]);
  }
  const at::TensorOptions options = at::TensorOptions().dtype(at::kFloat);
  data->scale = at::tensor(scale, options).view({1, d.channels, 1, 1}).to(device);
  data->shift = at::tensor(shift, options).view({1, d.channels, 1, 1}).to(device);
  cache->loaded[key] = data;
  return std::shared_ptr<const DeviceData>(data);
}

at::Tensor Normalised(const DeviceData& data, const at::Tensor& pixels) {
  return pixels.to(at::kFloat).mul_(data.scale).add_(data.shift);
}

at::Tensor DrawOrder(uint64_t seed, int64_t epoch, int64_t count, at::Device device) {
  const uint64_t order_seed = StreamSeed(seed, kOrderSalt, static_cast<uint64_t>(epoch));
#ifdef HIPPO_TORCH_CUDA
  if (device.is_cuda()) {
    at::Generator generator = at::cuda::detail::createCUDAGenerator(device.index());
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(order_seed);
    }
    return at::randperm(count, generator, at::TensorOptions().dtype(at::kLong).device(device));
  }
#endif
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(order_seed);
  return at::randperm(count, generator, at::TensorOptions().dtype(at::kLong)).to(device);
}

}  // namespace hippo::workers::torch_trainer
