#include "workers/sim_trainer.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "workers/config_json.h"
#include "workers/little_endian.h"
#include "workers/state_header.h"

namespace hippo::workers {
namespace {

constexpr StateFormat kFormat = {.magic = "HSIM", .version = 1, .what = "sim trainer state"};
// The header, three doubles, the padding length.
constexpr size_t kFixedBytes = kStateHeaderBytes + 3 * 8 + 8;
// Guards against absurd configs; a real model checkpoint is rarely above this.
constexpr double kMaxStateBytes = 4.0 * 1024 * 1024 * 1024;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A number in [-1, 1) that depends only on its inputs.
double Noise(uint64_t salt, uint64_t seed, Step step, const SimState& state) {
  uint64_t h = SplitMix64(salt ^ seed);
  h = SplitMix64(h ^ static_cast<uint64_t>(step));
  h = SplitMix64(h ^ std::bit_cast<uint64_t>(state.progress()));
  h = SplitMix64(h ^ std::bit_cast<uint64_t>(state.temperature()));
  h = SplitMix64(h ^ std::bit_cast<uint64_t>(state.memorisation()));
  return static_cast<double>(h >> 11) * 0x1.0p-52 - 1.0;
}

struct SimConfig {
  double cost_per_step = 0;
  bool virtual_time = false;
  int64_t state_bytes = 0;
  double wall_seconds_per_step = 0;
};

absl::StatusOr<SimConfig> ParseConfig(const StageTask& task) {
  absl::StatusOr<Json> json = ParseJson(task.trainer_config_json);
  if (!json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sim trainer config: ", json.status().message()));
  }
  if (!json->is_object()) {
    return absl::InvalidArgumentError("sim trainer config must be a JSON object");
  }
  SimConfig config;
  absl::StatusOr<double> cost = NumberOr(*json, "cost_per_step", 0.0);
  if (!cost.ok()) return cost.status();
  if (!(*cost >= 0) || std::isinf(*cost)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.cost_per_step must be finite and >= 0, got ", *cost));
  }
  config.cost_per_step = *cost;
  absl::StatusOr<double> wall = NumberOr(*json, "wall_seconds_per_step", 0.0);
  if (!wall.ok()) return wall.status();
  if (!(*wall >= 0) || std::isinf(*wall)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.wall_seconds_per_step must be finite and >= 0, got ", *wall));
  }
  config.wall_seconds_per_step = *wall;
  absl::StatusOr<bool> virtual_time = BoolOr(*json, "virtual_time", false);
  if (!virtual_time.ok()) return virtual_time.status();
  config.virtual_time = *virtual_time;
  absl::StatusOr<double> state_bytes = NumberOr(*json, "state_bytes", 0.0);
  if (!state_bytes.ok()) return state_bytes.status();
  if (!(*state_bytes >= 0) || *state_bytes > kMaxStateBytes ||
      *state_bytes != std::floor(*state_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.state_bytes must be a whole number in [0, 4 GiB], got ", *state_bytes));
  }
  config.state_bytes = static_cast<int64_t>(*state_bytes);
  return config;
}

// The hyper-parameter values that one step uses.
struct StepValues {
  double lr = 0;
  double weight_decay = 0;
  double momentum = 0;
  double depth = 0;
  double width = 0;
  double kernel = 0;
};

absl::StatusOr<double> ValueOr(const StageTask& task, std::string_view name, Step step,
                               double fallback, double low, double high) {
  std::optional<double> value = task.ValueAt(name, step);
  if (!value.has_value()) {
    auto it = task.static_parameters.find(std::string(name));
    if (it != task.static_parameters.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sim trainer: parameter '", std::string(name), "' must be a number"));
    }
    return fallback;
  }
  if (!(*value >= low && *value <= high)) {
    return absl::InvalidArgumentError(absl::StrCat("sim trainer: parameter '", std::string(name),
                                                   "' is ", *value, " at step ", step,
                                                   ", outside [", low, ", ", high, "]"));
  }
  return *value;
}

absl::StatusOr<StepValues> ValuesAt(const StageTask& task, Step step) {
  const bool named_lr = task.parameters.contains("lr") || task.static_parameters.contains("lr");
  absl::StatusOr<double> lr =
      ValueOr(task, named_lr ? "lr" : "learning_rate", step, 0.01, 0.0, 1e6);
  absl::StatusOr<double> weight_decay = ValueOr(task, "weight_decay", step, 0.0, 0.0, 1e6);
  absl::StatusOr<double> momentum = ValueOr(task, "momentum", step, 0.9, 0.0, 0.999);
  absl::StatusOr<double> depth = ValueOr(task, "depth", step, 4, 1, 1e4);
  absl::StatusOr<double> width = ValueOr(task, "width", step, 64, 1, 1e7);
  absl::StatusOr<double> kernel = ValueOr(task, "kernel", step, 3, 1, 1e3);
  for (const absl::StatusOr<double>* value :
       {&lr, &weight_decay, &momentum, &depth, &width, &kernel}) {
    if (!value->ok()) return value->status();
  }
  return StepValues{.lr = *lr,
                    .weight_decay = *weight_decay,
                    .momentum = *momentum,
                    .depth = *depth,
                    .width = *width,
                    .kernel = *kernel};
}

// The state variables after training one step.
struct Dynamics {
  double progress = 0;
  double temperature = 0;
  double memorisation = 0;
};

Dynamics Advance(const StepValues& values, uint64_t seed, Step step, const SimState& state) {
  const double eta = values.lr / (1.0 - values.momentum);
  const double gain = std::sqrt(eta) / (1.0 + std::pow(eta / 1.5, 3.0));
  const double xi = Noise(0x747261696eULL /* "train" */, seed, step, state);
  const double speed = 0.24 / (2.0 + values.depth);
  const double dp = speed * gain * (1.0 + 0.2 * xi);
  return Dynamics{
      .progress = state.progress() + dp,
      .temperature = state.temperature() + 0.3 * (eta - state.temperature()),
      .memorisation = state.memorisation() + dp * 0.1 / (1.0 + values.weight_decay / 2e-4)};
}

Metrics Measure(const StepValues& values, uint64_t seed, Step step, const SimState& state) {
  const double kernel_factor = values.kernel >= 5 ? 1.15 : 1.0;
  const double capacity =
      1.0 - 0.35 * std::exp(-values.depth * std::sqrt(values.width) * kernel_factor / 16.0);
  const double fit = 1.0 / (1.0 + std::pow(values.weight_decay / 1e-2, 2.0));
  const double f = 1.0 - std::exp(-state.progress());
  const double t = state.temperature();
  const double o = state.memorisation();
  const double z_train = capacity * fit * f * (1.0 - 0.5 * t / (1.0 + t));
  const double z_val = z_train * (1.0 - std::min(0.5, 0.15 * o));
  const double xi = Noise(0x6576616cULL /* "eval" */, seed, step, state);
  Metrics metrics;
  metrics["loss"] = -std::log(0.1 + 0.9 * z_train);
  metrics["val_loss"] = -std::log(0.1 + 0.9 * z_val) + 0.1 * o;
  metrics["val_accuracy"] = std::clamp(0.1 + 0.9 * z_val + 0.002 * xi, 0.0, 1.0);
  return metrics;
}

}  // namespace

absl::StatusOr<std::string> SimState::Serialize() const {
  std::string out;
  out.reserve(kFixedBytes + padding_.size());
  AppendStateHeader(kFormat, step_, out);
  AppendDouble(progress_, out);
  AppendDouble(temperature_, out);
  AppendDouble(memorisation_, out);
  AppendLittleEndian<uint64_t>(padding_.size(), out);
  out.append(padding_);
  return out;
}

absl::StatusOr<std::unique_ptr<SimState>> SimState::Parse(std::string_view bytes) {
  absl::StatusOr<Step> step = ParseStateHeader(kFormat, bytes, kFixedBytes);
  if (!step.ok()) return step.status();
  auto state = std::make_unique<SimState>();
  // The fixed part is all there (ParseStateHeader checked).
  state->step_ = *step;
  state->progress_ = std::bit_cast<double>(LoadLittleEndian<uint64_t>(bytes.data() + 16));
  state->temperature_ = std::bit_cast<double>(LoadLittleEndian<uint64_t>(bytes.data() + 24));
  state->memorisation_ = std::bit_cast<double>(LoadLittleEndian<uint64_t>(bytes.data() + 32));
  const auto padding = LoadLittleEndian<uint64_t>(bytes.data() + 40);
  if (padding != bytes.size() - kFixedBytes) {
    return absl::DataLossError(absl::StrCat("sim trainer state holds ", bytes.size() - kFixedBytes,
                                            " padding bytes, its header says ", padding));
  }
  state->padding_ = std::string(bytes.substr(kFixedBytes));
  return state;
}

std::unique_ptr<TrainingState> SimState::Clone() const { return std::make_unique<SimState>(*this); }

int64_t SimState::SizeBytes() const {
  return static_cast<int64_t>(sizeof(SimState) + padding_.capacity());
}

absl::StatusOr<std::unique_ptr<TrainingState>> SimTrainer::NewState(const StageTask& task) {
  absl::StatusOr<SimConfig> config = ParseConfig(task);
  if (!config.ok()) return config.status();
  auto state = std::make_unique<SimState>();
  // Deterministic "weights": the padding depends on the seed only.
  state->padding_.resize(static_cast<size_t>(config->state_bytes));
  uint64_t word = SplitMix64(task.seed);
  for (size_t i = 0; i < state->padding_.size(); ++i) {
    if (i % 8 == 0) word = SplitMix64(word);
    state->padding_[i] = static_cast<char>((word >> (8 * (i % 8))) & 0xFF);
  }
  return state;
}

absl::StatusOr<std::unique_ptr<TrainingState>> SimTrainer::Deserialize(const StageTask& task,
                                                                       std::string_view bytes) {
  (void)task;  // A sim state does not depend on the model's settings.
  absl::StatusOr<std::unique_ptr<SimState>> state = SimState::Parse(bytes);
  if (!state.ok()) return state.status();
  return std::unique_ptr<TrainingState>(*std::move(state));
}

absl::StatusOr<StageOutcome> SimTrainer::Train(const StageTask& task, TrainingState& state,
                                               StageControl& control,
                                               const TrainCallbacks& callbacks) {
  absl::StatusOr<SimState*> own = StateToTrain<SimState>("sim", task, state);
  if (!own.ok()) return own.status();
  SimState* sim = *own;
  absl::StatusOr<SimConfig> config = ParseConfig(task);
  if (!config.ok()) return config.status();

  for (Step step = task.start_step; step < task.end_step; ++step) {
    if (control.ShouldStop()) return control.StopStatus();
    absl::StatusOr<StepValues> values = ValuesAt(task, step);
    if (!values.ok()) return values.status();
    const double sleep =
        (config->virtual_time ? 0.0 : config->cost_per_step) + config->wall_seconds_per_step;
    if (sleep > 0 && control.SleepUnlessStopped(absl::Seconds(sleep))) {
      return control.StopStatus();
    }
    const Dynamics next = Advance(*values, task.seed, step, *sim);
    sim->progress_ = next.progress;
    sim->temperature_ = next.temperature;
    sim->memorisation_ = next.memorisation;
    sim->step_ = step + 1;
    if (callbacks.progress) callbacks.progress(step, Measure(*values, task.seed, step, *sim));
    if (control.ReachedStep(step + 1) && callbacks.checkpoint) {
      if (absl::Status written = callbacks.checkpoint(step + 1, *sim); !written.ok()) {
        return written;
      }
    }
  }
  StageOutcome outcome;
  if (config->virtual_time) {
    outcome.virtual_seconds =
        config->cost_per_step * static_cast<double>(task.end_step - task.start_step);
  }
  return outcome;
}

}  // namespace hippo::workers
