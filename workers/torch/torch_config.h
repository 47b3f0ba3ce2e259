// The settings of the `torch` trainer, read from a StageTask: TrainerSpec.config (JSON) for the
// family-wide settings (model, data, batch size, optimizer), static parameters (or constant
// sequences) for the architecture, and per-step values for the optimizer's hyper-parameters.
//
// No LibTorch here: the settings are plain data, so they can be parsed and tested without it.
// Errors are InvalidArgument naming the field and the fix, e.g.
//   trainer.config.model: unknown model 'resnt'; use mlp, cnn or resnet
#ifndef HIPPO_WORKERS_TORCH_TORCH_CONFIG_H_
#define HIPPO_WORKERS_TORCH_TORCH_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/trainer.h"

namespace hippo::workers::torch_trainer {

enum class ModelKind { kMlp, kCnn, kResNet };
enum class DatasetKind { kFashionMnist, kCifar10, kSynthetic };
enum class OptimizerKind { kSgd, kAdam, kAdamW };
enum class Precision { kFloat32, kBFloat16 };
// How 4-d tensors (convolution weights, images, activations) lie in memory. Channels-last lets
// cuDNN run small convolutions several times faster on a GPU; `kAuto` picks it for convolutional
// models on CUDA and keeps PyTorch's default (contiguous NCHW) elsewhere. A training state is
// the same whatever the layout (checkpoints are written contiguous), only speed differs.
enum class MemoryLayout { kAuto, kContiguous, kChannelsLast };

// The network's shape. Only the fields of `model` matter.
struct Architecture {
  ModelKind model = ModelKind::kMlp;
  // mlp: hidden layers; resnet: total depth 6n+2 (20, 32, 56, ...).
  int64_t depth = 2;
  // mlp: units per hidden layer.
  int64_t width = 256;
  // mlp: units of each hidden layer (`depth` entries, from parameters `width_0`, `width_1`,
  // ...); empty: `width` for every layer.
  std::vector<int64_t> layer_widths = {};
  // cnn: convolution layers (each followed by batch norm, ReLU and a 2x2 max-pool).
  int64_t layers = 2;
  // cnn: channels of the first layer, doubling with every layer.
  int64_t channels = 32;
  // cnn: channels of each layer (`layers` entries, from parameters `channels_0`, `channels_1`,
  // ...); empty: `channels` doubling with every layer.
  std::vector<int64_t> layer_channels = {};
  int64_t kernel_size = 3;
  // cnn: only the first `pool_layers` blocks max-pool (-1: every block while the image is at
  // least 2x2). Blocks after them keep the image size, so a block can be appended to a trained
  // network without changing its function (workers/torch/morphism.h).
  int64_t pool_layers = -1;
  // resnet: channels 16, 32, 64 of the three stages are multiplied by this.
  double width_multiplier = 1.0;
  // mlp and cnn: a dropout layer exists when the task names `dropout` (its rate may then follow
  // a sequence; 0 turns it off at a step).
  bool dropout = false;

  // The units of each hidden layer of the mlp (`depth` entries): `layer_widths` when set,
  // else `width` repeated.
  std::vector<int64_t> MlpWidths() const;
  // The channels of each convolution layer of the cnn (`layers` entries): `layer_channels` when
  // set, else `channels` doubling per layer.
  std::vector<int64_t> CnnChannels() const;

  // A stable text form that depends only on the network's layout, e.g. "cnn layers=2
  // channels=32 kernel_size=3 dropout=no"; per-layer sizes that follow the uniform rule print as
  // it does ("channels=16" for 16, 32, 64), others as a list ("channels=[16,48,32]").
  std::string Describe() const;
};

// Where the examples come from. The data never depends on the trainer seed, so families that
// differ only in their seed share one loaded copy per process.
struct DataSpec {
  DatasetKind kind = DatasetKind::kFashionMnist;
  // fashion_mnist: the IDX files (default /usr/share/datasets/fashion-mnist); cifar10: the
  // binary batches (data_batch_1.bin ... test_batch.bin), required.
  std::string dir;
  // Examples used for training and for validation; 0 means all (synthetic: 1024 and 256).
  int64_t train_limit = 0;
  int64_t val_limit = 0;
  // synthetic only: square images of this size and channel count, made from data_seed.
  int64_t image_size = 28;
  int64_t image_channels = 1;
  uint64_t data_seed = 0;

  // A stable text form, the key of the per-process dataset cache.
  std::string Describe() const;
};

struct TorchSettings {
  Architecture architecture;
  DataSpec data;
  OptimizerKind optimizer = OptimizerKind::kSgd;
  bool nesterov = false;
  // Examples per optimizer iteration; fixed per family. The last partial batch of an epoch is
  // dropped, so every iteration has this shape.
  int64_t batch_size = 128;
  // Optimizer iterations per Hippo step; 0 means one epoch (train examples / batch_size).
  int64_t iterations_per_step = 0;
  // Validation after step s when (s + 1) % eval_every == 0.
  int64_t eval_every = 1;
  int64_t eval_batch_size = 1000;
  Precision precision = Precision::kFloat32;
  // CUDA only: capture the training iteration in a CUDA graph (falls back to eager).
  bool cuda_graph = true;
  MemoryLayout memory_format = MemoryLayout::kAuto;
  // CUDA: deterministic algorithms only, so that a stage trained straight and one resumed
  // from a checkpoint or a fork give the same bits (slower); otherwise cuDNN autotunes and GPU
  // results agree within float tolerance. The CPU is always deterministic.
  bool deterministic = false;
  // CPU intra-op threads; 0 picks hardware threads / torch trainers in the process.
  int64_t threads = 0;
  // trainer.config.dropout: the rate of steps whose task has no `dropout` parameter.
  double config_dropout = 0;

  // Everything a training state's layout and meaning depend on (architecture, data, batch
  // size, optimizer): a checkpoint is only valid for a task with the same signature.
  std::string Signature() const;
};

// Reads the settings of `task`. Architecture values come from, in order: the task's parameter
// of that name at task.start_step (static, or a sequence that must stay constant over the
// stage), trainer.config, the default. Per-layer sizes (`channels_<i>` for the cnn, `width_<i>`
// for the mlp) override the uniform one for layer i; one named for a layer the network does not
// have is refused, naming it (a search space makes it conditional on the depth instead).
absl::StatusOr<TorchSettings> ParseTorchSettings(const StageTask& task);

// The values one step uses.
struct StepValues {
  double lr = 0;
  double momentum = 0;
  double weight_decay = 0;
  double beta1 = 0;
  double beta2 = 0;
  double eps = 0;
  double dropout = 0;
};

// The hyper-parameters of `step` (lr or learning_rate, momentum, weight_decay, beta1, beta2,
// eps, dropout), each from the task's sequence or static value, else its default (lr 0.01 for
// sgd and 0.001 for adam/adamw, momentum 0.9, weight_decay 0 (adamw 0.01), beta1 0.9, beta2
// 0.999, eps 1e-8, dropout 0 or trainer.config.dropout). InvalidArgument naming the parameter
// and step for a value out of range.
absl::StatusOr<StepValues> StepValuesAt(const StageTask& task, const TorchSettings& settings,
                                        Step step);

}  // namespace hippo::workers::torch_trainer

#endif  // HIPPO_WORKERS_TORCH_TORCH_CONFIG_H_
