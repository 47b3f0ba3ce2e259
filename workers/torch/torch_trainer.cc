#include "workers/torch/torch_trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#ifdef HIPPO_TORCH_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <atomic>
#include <exception>
#include <list>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "workers/torch/datasets.h"
#include "workers/torch/models.h"
#include "workers/torch/morphism.h"
#include "workers/torch/optimizer.h"
#include "workers/torch/register_torch_trainer.h"
#include "workers/torch/torch_config.h"
#include "workers/torch/torch_data.h"
#include "workers/torch/torch_state.h"

namespace hippo::workers {
namespace {

using torch_trainer::DataOn;
using torch_trainer::DataSpec;
using torch_trainer::DeviceData;
using torch_trainer::DrawOrder;
using torch_trainer::ErrorText;
using torch_trainer::MemoryLayout;
using torch_trainer::ModelKind;
using torch_trainer::NamedTensor;
using torch_trainer::Network;
using torch_trainer::Normalised;
using torch_trainer::Optimizer;
using torch_trainer::Precision;
using torch_trainer::StepValues;
using torch_trainer::StreamSeed;
using torch_trainer::TorchError;
using torch_trainer::TorchSettings;
using torch_trainer::TorchState;

// Salts that keep the seeded streams of one trial apart (the epoch orders' is torch_data.cc's).
constexpr uint64_t kInitSalt = 0x696e6974;     // "init"
constexpr uint64_t kDropoutSalt = 0x64726f70;  // "drop"
constexpr char kCpuRng[] = "rng/cpu";
constexpr char kCudaRng[] = "rng/cuda";
// Eager iterations on the capture stream before a CUDA graph is captured (lazy initialisation,
// cuDNN algorithm selection), as PyTorch's CUDA graph notes advise.
constexpr int kWarmupIterations = 3;
// Workspaces (networks, optimizer storages, graphs) kept per trainer.
constexpr size_t kMaxWorkspaces = 2;

std::atomic<int> live_trainers{0};

// "cpu", "cuda" or "cuda:N".
absl::StatusOr<at::Device> ParseDevice(const std::string& text) {
  if (text == "cpu") return at::Device(at::kCPU);
  int index = 0;
  if (text != "cuda" && !(text.rfind("cuda:", 0) == 0 && absl::SimpleAtoi(text.substr(5), &index) &&
                          index >= 0 && index < 64)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--device: '", text, "' is not a device; use cpu, cuda or cuda:N"));
  }
#ifdef HIPPO_TORCH_CUDA
  const int count = static_cast<int>(c10::cuda::device_count());
  if (count == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device ", text, ": this machine has no CUDA device; use --device cpu"));
  }
  if (index >= count) {
    return absl::FailedPreconditionError(absl::StrCat("--device ", text, ": this machine has ",
                                                      count, " CUDA device(s); use cpu or cuda:0..",
                                                      count - 1));
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
#else
  return absl::FailedPreconditionError(absl::StrCat(
      "--device ", text, ": this build's LibTorch has no CUDA support; use --device cpu"));
#endif
}

// ---------------------------------------------------------------------------------------------
// Mixed precision (CUDA only): bf16 autocast around the forward pass, cache off so that a
// captured graph recasts the weights at every replay.

#ifdef HIPPO_TORCH_CUDA
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_type_ = at::autocast::get_autocast_dtype(at::kCUDA);
    previous_cache_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_cache_enabled(false);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_type_);
    at::autocast::set_autocast_cache_enabled(previous_cache_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool was_enabled_ = false;
  at::ScalarType previous_type_ = at::kBFloat16;
  bool previous_cache_ = true;
};
#else
class AutocastScope {
 public:
  explicit AutocastScope(bool) {}
};
#endif

// ---------------------------------------------------------------------------------------------
// A workspace: the network, optimizer and static tensors of one family on the trainer's device.
// States are copied in and out of its storages, which stay put, so a captured CUDA graph stays
// valid across stages and trials.

struct Workspace {
  std::string key;
  TorchSettings settings;
  at::Device device = at::kCPU;
  std::shared_ptr<const DeviceData> data;
  // Of the network's convolution weights and of the images it is fed.
  at::MemoryFormat memory_format = at::MemoryFormat::Contiguous;
  std::unique_ptr<Network> network;
  std::unique_ptr<Optimizer> optimizer;
  std::vector<at::Tensor> parameters;
  // Parameters, buffers and optimizer state under their state names; the same storages.
  std::vector<NamedTensor> state_tensors;
  at::Tensor batch_indices;  // int64 [batch_size]
  at::Tensor loss_sum;       // float64, the training losses of the current step
  at::Tensor keep;           // float, 1 - dropout
  at::Generator cpu_generator;
  int64_t batches_per_epoch = 0;
  int64_t iterations_per_step = 0;
  // The order of the epoch being trained, cached.
  at::Tensor order;
  uint64_t order_seed = 0;
  int64_t order_epoch = -1;
  bool graph_tried = false;
  std::string graph_error;
  bool released_after_first_stage = false;  // ReleaseCachedMemory after its first Train
#ifdef HIPPO_TORCH_CUDA
  c10::optional<c10::cuda::CUDAStream> stream;
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif

  bool bf16() const { return settings.precision == Precision::kBFloat16; }
  bool has_graph() const {
#ifdef HIPPO_TORCH_CUDA
    return graph != nullptr;
#else
    return false;
#endif
  }
};

// The state tensors of a network and its optimizer, named as in a TorchState.
std::vector<NamedTensor> StateTensorsOf(const Network& network, const Optimizer& optimizer) {
  std::vector<NamedTensor> tensors;
  for (const NamedTensor& entry : network.parameters()) {
    tensors.push_back(NamedTensor{"parameter/" + entry.name, entry.tensor});
  }
  for (const NamedTensor& entry : network.buffers()) {
    tensors.push_back(NamedTensor{"buffer/" + entry.name, entry.tensor});
  }
  for (const NamedTensor& entry : optimizer.state()) {
    tensors.push_back(NamedTensor{"optimizer/" + entry.name, entry.tensor});
  }
  return tensors;
}

at::Generator DefaultCudaGenerator(at::Device device) {
#ifdef HIPPO_TORCH_CUDA
  return at::cuda::detail::getDefaultCUDAGenerator(device.index());
#else
  (void)device;
  return at::Generator();
#endif
}

// Normalised images in the workspace's memory format, from uint8 pixels.
at::Tensor NetworkInput(const Workspace& w, const at::Tensor& pixels) {
  return Normalised(*w.data, pixels.contiguous(w.memory_format));
}

// One optimizer iteration on the batch at w.batch_indices: what a CUDA graph captures.
void Iteration(Workspace& w) {
  const DeviceData& data = *w.data;
  const at::Tensor images = NetworkInput(w, data.train_images.index_select(0, w.batch_indices));
  const at::Tensor labels = data.train_labels.index_select(0, w.batch_indices);
  at::Tensor loss;
  {
    AutocastScope autocast(w.bf16());
    loss = at::cross_entropy_loss(w.network->Forward(images, /*training=*/true).to(at::kFloat),
                                  labels);
  }
  const std::vector<at::Tensor> gradients = torch::autograd::grad({loss}, w.parameters);
  at::NoGradGuard no_grad;
  w.optimizer->Update(w.parameters, gradients);
  w.loss_sum.add_(loss.detach());
}

// Validation loss and accuracy with the current weights (eval mode: running statistics, no
// dropout, no generator touched).
std::pair<double, double> Evaluate(Workspace& w) {
  const DeviceData& data = *w.data;
  at::NoGradGuard no_grad;
  AutocastScope autocast(w.bf16());
  const int64_t count = data.val_labels.size(0);
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(w.device));
  at::Tensor correct = at::zeros({}, at::TensorOptions().dtype(at::kLong).device(w.device));
  for (int64_t begin = 0; begin < count; begin += w.settings.eval_batch_size) {
    const int64_t end = std::min(count, begin + w.settings.eval_batch_size);
    const at::Tensor images = NetworkInput(w, data.val_images.slice(0, begin, end));
    const at::Tensor labels = data.val_labels.slice(0, begin, end);
    const at::Tensor logits = w.network->Forward(images, /*training=*/false).to(at::kFloat);
    loss_sum.add_(
        at::cross_entropy_loss(logits, labels, c10::optional<at::Tensor>(), at::Reduction::Sum));
    correct.add_(logits.argmax(1).eq(labels).sum());
  }
  const double n = static_cast<double>(count);
  return {loss_sum.item<double>() / n, static_cast<double>(correct.item<int64_t>()) / n};
}

// Copies `state` into the workspace's storages and generators.
absl::Status Load(Workspace& w, const TorchState& state) {
  if (state.tensors_.size() < w.state_tensors.size()) {
    return absl::DataLossError("torch trainer state lacks tensors its model needs");
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < w.state_tensors.size(); ++i) {
    const NamedTensor& source = state.tensors_[i];
    const NamedTensor& target = w.state_tensors[i];
    if (source.name != target.name || !source.tensor.sizes().equals(target.tensor.sizes()) ||
        source.tensor.scalar_type() != target.tensor.scalar_type()) {
      return absl::DataLossError(absl::StrCat("torch trainer state holds ", source.name,
                                              " where its model has ", target.name));
    }
    target.tensor.copy_(source.tensor);
  }
  const NamedTensor* cpu_rng = state.Find(kCpuRng);
  if (cpu_rng == nullptr) return absl::DataLossError("torch trainer state has no CPU rng state");
  {
    std::lock_guard<std::mutex> lock(w.cpu_generator.mutex());
    w.cpu_generator.set_state(cpu_rng->tensor);
  }
  if (w.device.is_cuda()) {
    const NamedTensor* cuda_rng = state.Find(kCudaRng);
    if (cuda_rng == nullptr) {
      return absl::DataLossError(
          "torch trainer state has no CUDA rng state (it was written on a CPU worker)");
    }
    at::Generator generator = DefaultCudaGenerator(w.device);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(cuda_rng->tensor);
  }
  return absl::OkStatus();
}

// Copies the workspace's storages and generators into `state`.
void Store(Workspace& w, TorchState& state) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < w.state_tensors.size(); ++i) {
    state.tensors_[i].tensor.copy_(w.state_tensors[i].tensor);
  }
  for (NamedTensor& entry : state.tensors_) {
    if (entry.name == kCpuRng) {
      std::lock_guard<std::mutex> lock(w.cpu_generator.mutex());
      entry.tensor = w.cpu_generator.get_state();
    } else if (entry.name == kCudaRng && w.device.is_cuda()) {
      at::Generator generator = DefaultCudaGenerator(w.device);
      std::lock_guard<std::mutex> lock(generator.mutex());
      entry.tensor = generator.get_state();
    }
  }
}

// Waits for the workspace's stream: states handed out are complete.
void Synchronize(const Workspace& w) {
#ifdef HIPPO_TORCH_CUDA
  if (w.stream.has_value()) w.stream->synchronize();
#else
  (void)w;
#endif
}

#ifdef HIPPO_TORCH_CUDA
// Capturing a CUDA graph and handing cached memory back to the driver exclude each other across
// the trainers of a process (`hippo run --workers 2` runs two in one): a cudaFree, which
// synchronizes the device, must not fall inside another thread's capture.
std::mutex& CaptureMutex() {
  static std::mutex mutex;
  return mutex;
}

// Hands back to the driver what the caching allocator holds but no tensor uses: the private
// pool of an evicted workspace's CUDA graph (the allocator frees it only on an OOM in this
// process or here), and the workspaces cuDNN's autotuning tried for a new network's shapes.
// Without this, a worker process of a NAS study, where nearly every stage brings a new network,
// kept growing its cache: twelve worker processes on one H100 held ~12 GiB each, and those that
// met "CUDA out of memory" were drained. Returning it keeps each process at what its (at most
// kMaxWorkspaces) workspaces use, so worker processes can share a GPU.
void ReleaseCachedMemory() {
  std::lock_guard<std::mutex> lock(CaptureMutex());
  c10::cuda::device_synchronize();
  c10::cuda::CUDACachingAllocator::emptyCache();
}

// Ends a capture that an exception interrupted, so that the stream can run eager work again.
// Best effort: the exception being handled is the error reported; the CUDA calls' own statuses
// are dropped, and the sticky error they may leave is cleared last.
void AbandonCapture(c10::cuda::CUDAStream stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream.stream(), &status) == cudaSuccess &&
      status != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream.stream(), &graph);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
  }
  (void)cudaGetLastError();
}

// Warms up on the workspace's stream, then captures one Iteration. The warm-up changes the
// workspace's tensors; the caller loads the real state afterwards (into the same storages).
void CaptureGraph(Workspace& w) {
  w.graph_tried = true;
  try {
    c10::cuda::CUDAStreamGuard guard(*w.stream);
    w.batch_indices.copy_(at::arange(w.settings.batch_size, w.batch_indices.options()));
    for (int i = 0; i < kWarmupIterations; ++i) Iteration(w);
    w.stream->synchronize();
    std::lock_guard<std::mutex> lock(CaptureMutex());
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    Iteration(w);
    graph->capture_end();
    w.stream->synchronize();
    w.graph = std::move(graph);
  } catch (const std::exception& error) {
    w.graph_error = ErrorText(error);
    AbandonCapture(*w.stream);
    // A fresh stream for the eager iterations that follow.
    w.stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, w.device.index());
  }
}
#endif

void RunIteration(Workspace& w) {
#ifdef HIPPO_TORCH_CUDA
  if (w.graph != nullptr) {
    w.graph->replay();
    return;
  }
#endif
  Iteration(w);
}

const at::Tensor& OrderFor(Workspace& w, uint64_t seed, int64_t epoch) {
  if (!w.order.defined() || w.order_seed != seed || w.order_epoch != epoch) {
    w.order = DrawOrder(seed, epoch, w.data->train_labels.size(0), w.device);
    w.order_seed = seed;
    w.order_epoch = epoch;
  }
  return w.order;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct TorchTrainer::Impl {
  at::Device device = at::kCPU;
  std::list<std::unique_ptr<Workspace>> workspaces;  // most recently used first
  bool last_used_graph = false;
  std::string last_graph_error;
#ifdef HIPPO_TORCH_CUDA
  // The stream every workspace of this trainer runs and captures on (it trains one at a time).
  // One per trainer, not one per workspace: cuBLAS keeps a workspace (~66 MiB on an H100) for
  // each stream it has run on until the process ends, so a stream per network grew a NAS
  // worker's memory by that much per network.
  c10::optional<c10::cuda::CUDAStream> stream;
#endif

  absl::StatusOr<TorchSettings> Settings(const StageTask& task) const {
    absl::StatusOr<TorchSettings> settings = torch_trainer::ParseTorchSettings(task);
    if (!settings.ok()) return settings.status();
    if (settings->precision == Precision::kBFloat16 && !device.is_cuda()) {
      return absl::InvalidArgumentError(
          absl::StrCat("trainer.config.precision: bf16 needs a CUDA device and this worker "
                       "trains on ",
                       device.str(), "; use fp32 or --device cuda:N"));
    }
    return settings;
  }

  void SetThreads(const TorchSettings& settings) const {
    const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int threads = settings.threads > 0
                            ? static_cast<int>(settings.threads)
                            : std::max(1, hardware / std::max(1, live_trainers.load()));
    if (at::get_num_threads() != threads) at::set_num_threads(threads);
  }

  // kAuto: channels-last for convolutional models on CUDA (cuDNN's fast path for small
  // convolutions), PyTorch's default everywhere else.
  at::MemoryFormat MemoryFormatFor(const TorchSettings& settings) const {
    switch (settings.memory_format) {
      case MemoryLayout::kContiguous:
        return at::MemoryFormat::Contiguous;
      case MemoryLayout::kChannelsLast:
        return at::MemoryFormat::ChannelsLast;
      case MemoryLayout::kAuto:
        break;
    }
    const bool convolutional = settings.architecture.model != ModelKind::kMlp;
    return device.is_cuda() && convolutional ? at::MemoryFormat::ChannelsLast
                                             : at::MemoryFormat::Contiguous;
  }

  // CUDA: cuDNN autotuning (fastest; results then agree only within float tolerance between
  // runs) or, for `deterministic`, deterministic algorithms only (the same run gives the same
  // bits). The CPU is deterministic either way.
  void SetDeterminism(const TorchSettings& settings) const {
    if (!device.is_cuda()) return;
    at::globalContext().setBenchmarkCuDNN(!settings.deterministic);
    at::globalContext().setDeterministicCuDNN(settings.deterministic);
    at::globalContext().setDeterministicAlgorithms(settings.deterministic, /*warn_only=*/true);
  }

  absl::StatusOr<Workspace*> WorkspaceFor(const TorchSettings& settings) {
    const std::string key = absl::StrCat(
        settings.Signature(),
        " precision=", settings.precision == Precision::kBFloat16 ? "bf16" : "fp32",
        " graph=", settings.cuda_graph, " deterministic=", settings.deterministic,
        " channels_last=", MemoryFormatFor(settings) == at::MemoryFormat::ChannelsLast,
        " iterations=", settings.iterations_per_step, " eval=", settings.eval_batch_size);
    for (auto it = workspaces.begin(); it != workspaces.end(); ++it) {
      if ((*it)->key == key) {
        workspaces.splice(workspaces.begin(), workspaces, it);
        return workspaces.front().get();
      }
    }
    absl::StatusOr<std::shared_ptr<const DeviceData>> data = DataOn(settings.data, device);
    if (!data.ok()) return data.status();
    const int64_t train_count = (*data)->train_labels.size(0);
    if (settings.batch_size > train_count) {
      return absl::InvalidArgumentError(
          absl::StrCat("trainer.config.batch_size: ", settings.batch_size, " is larger than the ",
                       train_count, " training examples; lower batch_size"));
    }
    auto w = std::make_unique<Workspace>();
    w->key = key;
    w->settings = settings;
    w->device = device;
    w->data = *data;
    w->memory_format = MemoryFormatFor(settings);
    w->network = torch_trainer::MakeNetwork(settings.architecture, (*data)->shape(), device, 0,
                                            w->memory_format);
    w->optimizer = std::make_unique<Optimizer>(settings.optimizer, settings.nesterov,
                                               w->network->parameters(), device);
    for (const NamedTensor& entry : w->network->parameters()) w->parameters.push_back(entry.tensor);
    w->state_tensors = StateTensorsOf(*w->network, *w->optimizer);
    const at::TensorOptions on_device = at::TensorOptions().device(device);
    w->batch_indices = at::zeros({settings.batch_size}, on_device.dtype(at::kLong));
    w->loss_sum = at::zeros({}, on_device.dtype(at::kDouble));
    w->keep = at::ones({}, on_device.dtype(at::kFloat));
    w->cpu_generator = at::make_generator<at::CPUGeneratorImpl>(0);
    if (settings.architecture.dropout) {
      w->network->SetDropout(w->keep, device.is_cuda()
                                          ? c10::optional<at::Generator>()
                                          : c10::optional<at::Generator>(w->cpu_generator));
    }
    w->batches_per_epoch = train_count / settings.batch_size;
    w->iterations_per_step =
        settings.iterations_per_step > 0 ? settings.iterations_per_step : w->batches_per_epoch;
#ifdef HIPPO_TORCH_CUDA
    if (device.is_cuda()) {
      if (!stream.has_value()) {
        stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
      }
      w->stream = stream;
    }
#endif
    workspaces.push_front(std::move(w));
    bool evicted = false;
    while (workspaces.size() > kMaxWorkspaces) {
      workspaces.pop_back();
      evicted = true;
    }
#ifdef HIPPO_TORCH_CUDA
    if (evicted && device.is_cuda()) ReleaseCachedMemory();
#else
    (void)evicted;
#endif
    return workspaces.front().get();
  }

  absl::StatusOr<std::unique_ptr<TrainingState>> NewState(const StageTask& task) {
    absl::StatusOr<TorchSettings> settings = Settings(task);
    if (!settings.ok()) return settings.status();
    absl::StatusOr<std::shared_ptr<const DeviceData>> data = DataOn(settings->data, device);
    if (!data.ok()) return data.status();
    const std::unique_ptr<Network> network = torch_trainer::MakeNetwork(
        settings->architecture, (*data)->shape(), device, StreamSeed(task.seed, kInitSalt));
    const Optimizer optimizer(settings->optimizer, settings->nesterov, network->parameters(),
                              device);
    auto state = std::make_unique<TorchState>();
    state->signature_ = settings->Signature();
    for (const NamedTensor& entry : StateTensorsOf(*network, optimizer)) {
      state->tensors_.push_back(NamedTensor{entry.name, entry.tensor.detach()});
    }
    const uint64_t dropout_seed = StreamSeed(task.seed, kDropoutSalt);
    state->tensors_.push_back(
        NamedTensor{kCpuRng, at::make_generator<at::CPUGeneratorImpl>(dropout_seed).get_state()});
#ifdef HIPPO_TORCH_CUDA
    if (device.is_cuda()) {
      at::Generator generator = at::cuda::detail::createCUDAGenerator(device.index());
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(dropout_seed);
      state->tensors_.push_back(NamedTensor{kCudaRng, generator.get_state()});
    }
#endif
    return std::unique_ptr<TrainingState>(std::move(state));
  }

  absl::StatusOr<std::unique_ptr<TrainingState>> Morph(const StageTask& parent_task,
                                                       const StageTask& task,
                                                       const TorchState& parent) {
    absl::StatusOr<TorchSettings> from = Settings(parent_task);
    if (!from.ok()) return from.status();
    absl::StatusOr<TorchSettings> to = Settings(task);
    if (!to.ok()) return to.status();
    if (parent.signature_ != from->Signature()) {
      return absl::InvalidArgumentError(
          absl::StrCat("torch trainer: the inherited state was made "
                       "for '",
                       parent.signature_, "', its parent task trains '", from->Signature(), "'"));
    }
    TorchSettings same_but_architecture = *from;
    same_but_architecture.architecture = to->architecture;
    if (same_but_architecture.Signature() != to->Signature()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "torch trainer: stage ", task.stage_id, " cannot inherit a state trained under '",
          from->Signature(), "' as it trains '", to->Signature(),
          "': a morphism changes the architecture only"));
    }
    absl::StatusOr<std::shared_ptr<const DeviceData>> data = DataOn(to->data, device);
    if (!data.ok()) return data.status();
    const std::unique_ptr<Network> network =
        torch_trainer::MakeNetwork(to->architecture, (*data)->shape(), device, 0);
    const Optimizer optimizer(to->optimizer, to->nesterov, network->parameters(), device);
    absl::StatusOr<std::vector<NamedTensor>> tensors = torch_trainer::MorphTensors(
        from->architecture, to->architecture, (*data)->shape(), parent.tensors_,
        StateTensorsOf(*network, optimizer), task.seed);
    if (!tensors.ok()) return tensors.status();
    auto state = std::make_unique<TorchState>();
    state->step_ = parent.step_;
    state->epoch_ = parent.epoch_;
    state->batch_ = parent.batch_;
    state->signature_ = to->Signature();
    for (NamedTensor& entry : *tensors) {
      state->tensors_.push_back(NamedTensor{entry.name, entry.tensor.detach()});
    }
    for (const char* generator : {kCpuRng, kCudaRng}) {
      if (const NamedTensor* rng = parent.Find(generator); rng != nullptr) {
        state->tensors_.push_back(NamedTensor{rng->name, rng->tensor.clone()});
      }
    }
    return std::unique_ptr<TrainingState>(std::move(state));
  }

  absl::StatusOr<StageOutcome> Train(const StageTask& task, TorchState& state,
                                     StageControl& control, const TrainCallbacks& callbacks) {
    absl::StatusOr<TorchSettings> settings = Settings(task);
    if (!settings.ok()) return settings.status();
    if (state.signature_ != settings->Signature()) {
      return absl::InvalidArgumentError(absl::StrCat("torch trainer: the state was made for '",
                                                     state.signature_, "', stage ", task.stage_id,
                                                     " trains '", settings->Signature(), "'"));
    }
    SetThreads(*settings);
    SetDeterminism(*settings);
    absl::StatusOr<Workspace*> workspace = WorkspaceFor(*settings);
    if (!workspace.ok()) return workspace.status();
    Workspace& w = **workspace;

#ifdef HIPPO_TORCH_CUDA
    c10::optional<c10::cuda::CUDAGuard> device_guard;
    if (device.is_cuda()) {
      device_guard.emplace(device.index());
      // States were made or copied on other streams.
      c10::cuda::device_synchronize();
      if (settings->cuda_graph && !w.graph_tried) {
        CaptureGraph(w);
        stream = w.stream;  // a fresh one after a failed capture
      }
    }
    c10::optional<c10::cuda::CUDAStreamGuard> stream_guard;
    if (w.stream.has_value()) stream_guard.emplace(*w.stream);
#endif
    last_used_graph = w.has_graph();
    last_graph_error = w.graph_error;
    if (absl::Status loaded = Load(w, state); !loaded.ok()) return loaded;

    const int64_t batch_size = settings->batch_size;
    for (Step step = task.start_step; step < task.end_step; ++step) {
      if (control.ShouldStop()) {
        Store(w, state);
        Synchronize(w);
        return control.StopStatus();
      }
      absl::StatusOr<StepValues> values = torch_trainer::StepValuesAt(task, *settings, step);
      if (!values.ok()) return values.status();
      w.optimizer->SetValues(*values);
      w.keep.fill_(1.0 - values->dropout);
      w.loss_sum.zero_();
      for (int64_t i = 0; i < w.iterations_per_step; ++i) {
        const at::Tensor& order = OrderFor(w, task.seed, state.epoch_);
        w.batch_indices.copy_(
            order.slice(0, state.batch_ * batch_size, (state.batch_ + 1) * batch_size));
        RunIteration(w);
        if (++state.batch_ == w.batches_per_epoch) {
          state.batch_ = 0;
          ++state.epoch_;
        }
      }
      Metrics metrics;
      metrics["loss"] = w.loss_sum.item<double>() / static_cast<double>(w.iterations_per_step);
      if ((step + 1) % settings->eval_every == 0) {
        const auto [val_loss, val_accuracy] = Evaluate(w);
        metrics["val_loss"] = val_loss;
        metrics["val_accuracy"] = val_accuracy;
      }
      state.step_ = step + 1;
      if (callbacks.progress) callbacks.progress(step, metrics);
      if (control.ReachedStep(step + 1) && callbacks.checkpoint) {
        Store(w, state);
        Synchronize(w);
        if (absl::Status written = callbacks.checkpoint(step + 1, state); !written.ok()) {
          return written;
        }
      }
    }
    Store(w, state);
    Synchronize(w);
#ifdef HIPPO_TORCH_CUDA
    // A new network's first stage autotuned cuDNN for its shapes, training and evaluation: the
    // workspaces it tried stay cached, unused from now on.
    if (device.is_cuda() && !w.released_after_first_stage) {
      w.released_after_first_stage = true;
      ReleaseCachedMemory();
    }
#endif
    return StageOutcome{};
  }
};

TorchTrainer::TorchTrainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  live_trainers.fetch_add(1);
}

TorchTrainer::~TorchTrainer() { live_trainers.fetch_sub(1); }

absl::StatusOr<std::unique_ptr<TorchTrainer>> TorchTrainer::Create(const std::string& device) {
  try {
    absl::StatusOr<at::Device> parsed = ParseDevice(device);
    if (!parsed.ok()) return parsed.status();
    auto impl = std::make_unique<Impl>();
    impl->device = *parsed;
    return std::unique_ptr<TorchTrainer>(new TorchTrainer(std::move(impl)));
  } catch (const std::exception& error) {
    return TorchError("starting", error);
  }
}

absl::StatusOr<std::unique_ptr<TrainingState>> TorchTrainer::NewState(const StageTask& task) {
  try {
    return impl_->NewState(task);
  } catch (const std::exception& error) {
    return TorchError("making the initial state", error);
  }
}

absl::StatusOr<std::unique_ptr<TrainingState>> TorchTrainer::Deserialize(const StageTask& task,
                                                                         std::string_view bytes) {
  absl::StatusOr<TorchSettings> settings = impl_->Settings(task);
  if (!settings.ok()) return settings.status();
  absl::StatusOr<std::unique_ptr<TorchState>> state = TorchState::Parse(bytes, impl_->device);
  if (!state.ok()) return state.status();
  if ((*state)->signature_ != settings->Signature()) {
    return absl::InvalidArgumentError(
        absl::StrCat("torch trainer: the checkpoint was written for '", (*state)->signature_,
                     "', stage ", task.stage_id, " trains '", settings->Signature(), "'"));
  }
  return std::unique_ptr<TrainingState>(*std::move(state));
}

absl::StatusOr<StageOutcome> TorchTrainer::Train(const StageTask& task, TrainingState& state,
                                                 StageControl& control,
                                                 const TrainCallbacks& callbacks) {
  absl::StatusOr<TorchState*> own = StateToTrain<TorchState>("torch", task, state);
  if (!own.ok()) return own.status();
  TorchState* torch_state = *own;
  try {
    return impl_->Train(task, *torch_state, control, callbacks);
  } catch (const std::exception& error) {
    return TorchError(absl::StrCat("training stage ", task.stage_id), error);
  }
}

absl::StatusOr<std::unique_ptr<TrainingState>> TorchTrainer::Morph(const StageTask& parent,
                                                                   const StageTask& task,
                                                                   const TrainingState& state) {
  const auto* torch_state = dynamic_cast<const TorchState*>(&state);
  if (torch_state == nullptr) {
    return absl::InvalidArgumentError(
        "torch trainer: the inherited state was made by another "
        "trainer");
  }
  try {
    return impl_->Morph(parent, task, *torch_state);
  } catch (const std::exception& error) {
    return TorchError(absl::StrCat("morphing the state of stage ", task.stage_id), error);
  }
}

bool TorchTrainer::last_train_used_graph() const { return impl_->last_used_graph; }

int64_t TorchTrainer::device_bytes_reserved() const {
#ifdef HIPPO_TORCH_CUDA
  if (!impl_->device.is_cuda()) return 0;
  // reserved_bytes[0]: the aggregate over the allocator's pools (StatType::AGGREGATE).
  return c10::cuda::CUDACachingAllocator::getDeviceStats(impl_->device.index())
      .reserved_bytes[0]
      .current;
#else
  return 0;
#endif
}

std::string TorchTrainer::last_graph_error() const { return impl_->last_graph_error; }

absl::StatusOr<std::vector<int64_t>> EpochOrder(uint64_t seed, int64_t epoch, int64_t count,
                                                const std::string& device) {
  try {
    absl::StatusOr<at::Device> parsed = ParseDevice(device);
    if (!parsed.ok()) return parsed.status();
    const at::Tensor order = DrawOrder(seed, epoch, count, *parsed).to(at::kCPU).contiguous();
    const int64_t* begin = order.data_ptr<int64_t>();
    return std::vector<int64_t>(begin, begin + order.numel());
  } catch (const std::exception& error) {
    return TorchError("drawing an epoch order", error);
  }
}

int CudaDeviceCount() { return static_cast<int>(torch::cuda::device_count()); }

void RegisterTorchTrainer() {
  RegisterTrainerKind(std::string(TorchTrainer::kKind),
                      [](const std::string& device) -> absl::StatusOr<std::unique_ptr<Trainer>> {
                        absl::StatusOr<std::unique_ptr<TorchTrainer>> trainer =
                            TorchTrainer::Create(device);
                        if (!trainer.ok()) return trainer.status();
                        return std::unique_ptr<Trainer>(*std::move(trainer));
                      });
}

}  // namespace hippo::workers
