#include "workers/torch/datasets.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace hippo::workers::torch_trainer {
namespace {

constexpr int64_t kCifarImageBytes = 3 * 32 * 32;

// A gzip (or plain: zlib reads both) file, closed at destruction.
class GzipReader {
 public:
  explicit GzipReader(const std::string& path) : file_(gzopen(path.c_str(), "rb")) {}
  ~GzipReader() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  bool is_open() const { return file_ != nullptr; }

  // Reads exactly `size` bytes; false at a short read or an error.
  bool Read(void* out, int64_t size) {
    auto* bytes = static_cast<char*>(out);
    while (size > 0) {
      const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(size, 1 << 30));
      const int read = gzread(file_, bytes, chunk);
      if (read <= 0) return false;
      bytes += read;
      size -= read;
    }
    return true;
  }

 private:
  gzFile file_;
};

// `name` or `name.gz` in `dir`, whichever exists.
absl::StatusOr<std::string> FindFile(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {name, name + ".gz"}) {
    const std::filesystem::path path = std::filesystem::path(dir) / candidate;
    std::error_code error;
    if (std::filesystem::is_regular_file(path, error)) return path.string();
  }
  return absl::NotFoundError(absl::StrCat("no ", name, " or ", name, ".gz in ", dir));
}

bool ReadBigEndian32(GzipReader& reader, uint32_t* value) {
  unsigned char bytes[4];
  if (!reader.Read(bytes, 4)) return false;
  *value = (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
           uint32_t{bytes[3]};
  return true;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// DataLoss naming `where` for a label outside [0, classes).
absl::Status CheckLabels(const ImageSet& set, int64_t classes, const std::string& where) {
  for (uint8_t label : set.labels) {
    if (label >= classes) {
      return absl::DataLossError(
          absl::StrCat(where, ": label ", int{label}, " is not in [0, ", classes, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadCifarBatch(const std::string& path, int64_t wanted, ImageSet& set) {
  GzipReader reader(path);
  if (!reader.is_open()) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<uint8_t> record(1 + kCifarImageBytes);
  while (wanted > 0) {
    if (!reader.Read(record.data(), static_cast<int64_t>(record.size()))) break;
    set.labels.push_back(record[0]);
    set.pixels.insert(set.pixels.end(), record.begin() + 1, record.end());
    ++set.count;
    --wanted;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImageSet> ReadIdx(const std::string& images_path, const std::string& labels_path,
                                 int64_t limit, int64_t* height, int64_t* width) {
  GzipReader images(images_path);
  if (!images.is_open()) return absl::NotFoundError(absl::StrCat("cannot open ", images_path));
  GzipReader labels(labels_path);
  if (!labels.is_open()) return absl::NotFoundError(absl::StrCat("cannot open ", labels_path));
  uint32_t magic = 0, count = 0, rows = 0, columns = 0;
  if (!ReadBigEndian32(images, &magic) || magic != 0x00000803 || !ReadBigEndian32(images, &count) ||
      !ReadBigEndian32(images, &rows) || !ReadBigEndian32(images, &columns) || rows == 0 ||
      columns == 0 || rows > 4096 || columns > 4096) {
    return absl::DataLossError(absl::StrCat(images_path, ": not an IDX image file"));
  }
  uint32_t label_magic = 0, label_count = 0;
  if (!ReadBigEndian32(labels, &label_magic) || label_magic != 0x00000801 ||
      !ReadBigEndian32(labels, &label_count)) {
    return absl::DataLossError(absl::StrCat(labels_path, ": not an IDX label file"));
  }
  if (label_count != count) {
    return absl::DataLossError(absl::StrCat(images_path, " holds ", count, " images but ",
                                            labels_path, " ", label_count, " labels"));
  }
  ImageSet set;
  set.count = limit > 0 ? std::min<int64_t>(limit, count) : int64_t{count};
  const int64_t image_bytes = int64_t{rows} * columns;
  set.pixels.resize(static_cast<size_t>(set.count * image_bytes));
  set.labels.resize(static_cast<size_t>(set.count));
  if (!images.Read(set.pixels.data(), set.count * image_bytes)) {
    return absl::DataLossError(absl::StrCat(images_path, ": truncated"));
  }
  if (!labels.Read(set.labels.data(), set.count)) {
    return absl::DataLossError(absl::StrCat(labels_path, ": truncated"));
  }
  *height = rows;
  *width = columns;
  return set;
}

absl::StatusOr<Dataset> LoadFashionMnist(const DataSpec& spec) {
  Dataset dataset;
  dataset.description = spec.Describe();
  dataset.channels = 1;
  dataset.mean = {0.2860f};
  dataset.stddev = {0.3530f};
  struct Part {
    const char* images;
    const char* labels;
    int64_t limit;
    ImageSet* set;
  };
  for (const Part& part : {Part{"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                spec.train_limit, &dataset.train},
                           Part{"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", spec.val_limit,
                                &dataset.validation}}) {
    absl::StatusOr<std::string> images = FindFile(spec.dir, part.images);
    if (!images.ok()) return images.status();
    absl::StatusOr<std::string> labels = FindFile(spec.dir, part.labels);
    if (!labels.ok()) return labels.status();
    absl::StatusOr<ImageSet> set =
        ReadIdx(*images, *labels, part.limit, &dataset.height, &dataset.width);
    if (!set.ok()) return set.status();
    if (absl::Status valid = CheckLabels(*set, dataset.classes, *labels); !valid.ok()) {
      return valid;
    }
    *part.set = *std::move(set);
  }
  return dataset;
}

absl::StatusOr<Dataset> LoadCifar10(const DataSpec& spec) {
  Dataset dataset;
  dataset.description = spec.Describe();
  dataset.channels = 3;
  dataset.height = 32;
  dataset.width = 32;
  dataset.mean = {0.4914f, 0.4822f, 0.4465f};
  dataset.stddev = {0.2470f, 0.2435f, 0.2616f};
  int64_t wanted = spec.train_limit > 0 ? spec.train_limit : 50000;
  for (int batch = 1; batch <= 5 && wanted > dataset.train.count; ++batch) {
    absl::StatusOr<std::string> path =
        FindFile(spec.dir, absl::StrCat("data_batch_", batch, ".bin"));
    if (!path.ok()) return path.status();
    if (absl::Status read = ReadCifarBatch(*path, wanted - dataset.train.count, dataset.train);
        !read.ok()) {
      return read;
    }
  }
  absl::StatusOr<std::string> test = FindFile(spec.dir, "test_batch.bin");
  if (!test.ok()) return test.status();
  if (absl::Status read =
          ReadCifarBatch(*test, spec.val_limit > 0 ? spec.val_limit : 10000, dataset.validation);
      !read.ok()) {
    return read;
  }
  if (dataset.train.count == 0 || dataset.validation.count == 0) {
    return absl::DataLossError(absl::StrCat(spec.dir, ": the CIFAR-10 batches hold no records"));
  }
  if (absl::Status valid = CheckLabels(dataset.train, dataset.classes, spec.dir); !valid.ok()) {
    return valid;
  }
  if (absl::Status valid = CheckLabels(dataset.validation, dataset.classes, spec.dir);
      !valid.ok()) {
    return valid;
  }
  return dataset;
}

Dataset MakeSyntheticDataset(const DataSpec& spec) {
  Dataset dataset;
  dataset.description = spec.Describe();
  dataset.channels = spec.image_channels;
  dataset.height = spec.image_size;
  dataset.width = spec.image_size;
  dataset.mean.assign(static_cast<size_t>(dataset.channels), 0.5f);
  dataset.stddev.assign(static_cast<size_t>(dataset.channels), 0.25f);
  const int64_t image_bytes = dataset.channels * dataset.height * dataset.width;
  // Coarse patterns (4x4 pixel cells) so that convolutions have something to find.
  std::vector<uint8_t> patterns(static_cast<size_t>(dataset.classes * image_bytes));
  for (int64_t c = 0; c < dataset.classes; ++c) {
    for (int64_t i = 0; i < image_bytes; ++i) {
      const int64_t x = i % dataset.width;
      const int64_t y = (i / dataset.width) % dataset.height;
      const int64_t channel = i / (dataset.width * dataset.height);
      const uint64_t cell = SplitMix64(
          spec.data_seed ^
          SplitMix64(static_cast<uint64_t>(((c * 64 + channel) * 4096 + y / 4) * 4096 + x / 4)));
      patterns[static_cast<size_t>(c * image_bytes + i)] = static_cast<uint8_t>(cell >> 56);
    }
  }
  uint64_t counter = SplitMix64(spec.data_seed + 0x5EED);
  auto fill = [&](int64_t count, ImageSet& set) {
    set.count = count;
    set.pixels.resize(static_cast<size_t>(count * image_bytes));
    set.labels.resize(static_cast<size_t>(count));
    for (int64_t n = 0; n < count; ++n) {
      counter = SplitMix64(counter);
      const auto label = static_cast<uint8_t>(counter % static_cast<uint64_t>(dataset.classes));
      set.labels[static_cast<size_t>(n)] = label;
      for (int64_t i = 0; i < image_bytes; ++i) {
        if (i % 8 == 0) counter = SplitMix64(counter);
        const int noise = static_cast<int>((counter >> (8 * (i % 8))) & 0xFF);
        const int pattern = patterns[static_cast<size_t>(label * image_bytes + i)];
        set.pixels[static_cast<size_t>(n * image_bytes + i)] =
            static_cast<uint8_t>((pattern + noise) / 2);
      }
    }
  };
  fill(spec.train_limit, dataset.train);
  fill(spec.val_limit, dataset.validation);
  return dataset;
}

absl::StatusOr<std::shared_ptr<const Dataset>> LoadDataset(const DataSpec& spec) {
  struct Cache {
    absl::Mutex mu;
    std::map<std::string, std::shared_ptr<const Dataset>> loaded ABSL_GUARDED_BY(mu);
  };
  static Cache* cache = new Cache;
  const std::string key = spec.Describe();
  // One loader at a time: two workers asking for the same data wait for one read.
  absl::MutexLock lock(&cache->mu);
  if (auto it = cache->loaded.find(key); it != cache->loaded.end()) return it->second;
  absl::StatusOr<Dataset> dataset;
  switch (spec.kind) {
    case DatasetKind::kFashionMnist:
      dataset = LoadFashionMnist(spec);
      break;
    case DatasetKind::kCifar10:
      dataset = LoadCifar10(spec);
      break;
    case DatasetKind::kSynthetic:
      dataset = MakeSyntheticDataset(spec);
      break;
  }
  if (!dataset.ok()) {
    return absl::Status(dataset.status().code(), absl::StrCat("torch trainer data (", key,
                                                              "): ", dataset.status().message()));
  }
  auto shared = std::make_shared<const Dataset>(*std::move(dataset));
  cache->loaded[key] = shared;
  return shared;
}

}  // namespace hippo::workers::torch_trainer
