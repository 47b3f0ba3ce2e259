// Image classification data for the `torch` trainer, as plain bytes (no LibTorch here): Fashion-
// MNIST IDX files (gzipped or not), CIFAR-10 binary batches, and a synthetic set made from a seed.
// A worker creates every trainer at start-up, so nothing is read until a stage needs it; then
// LoadDataset keeps one copy per process for every trainer and stage that asks again.
#ifndef HIPPO_WORKERS_TORCH_DATASETS_H_
#define HIPPO_WORKERS_TORCH_DATASETS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/torch/torch_config.h"

namespace hippo::workers::torch_trainer {

// `count` images of channels x height x width bytes each, in NCHW order, and their labels.
struct ImageSet {
  int64_t count = 0;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
};

struct Dataset {
  std::string description;  // DataSpec::Describe()
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t classes = 10;
  // Per channel, of pixel / 255: inputs are normalised to (pixel / 255 - mean) / stddev.
  std::vector<float> mean;
  std::vector<float> stddev;
  ImageSet train;
  ImageSet validation;
};

// Reads an IDX image file (magic 0x00000803) and its label file (0x00000801), gzipped or plain,
// keeping the first `limit` examples (0: all). DataLoss for a malformed file, NotFound for a
// missing one.
absl::StatusOr<ImageSet> ReadIdx(const std::string& images_path, const std::string& labels_path,
                                 int64_t limit, int64_t* height, int64_t* width);

// Fashion-MNIST from `dir` (train-images-idx3-ubyte[.gz], ..., t10k-labels-idx1-ubyte[.gz]):
// training from the 60000 training images, validation from the 10000 test images.
absl::StatusOr<Dataset> LoadFashionMnist(const DataSpec& spec);

// CIFAR-10 from `dir` (data_batch_1.bin ... data_batch_5.bin, test_batch.bin).
absl::StatusOr<Dataset> LoadCifar10(const DataSpec& spec);

// Ten classes, each a random pattern; an example is its class's pattern plus as much uniform
// noise. Depends only on the spec (data_seed, sizes).
Dataset MakeSyntheticDataset(const DataSpec& spec);

// The dataset of `spec`, loaded on first use and shared by the whole process afterwards.
absl::StatusOr<std::shared_ptr<const Dataset>> LoadDataset(const DataSpec& spec);

}  // namespace hippo::workers::torch_trainer

#endif  // HIPPO_WORKERS_TORCH_DATASETS_H_
