#include "workers/torch/torch_config.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/config_json.h"

namespace hippo::workers::torch_trainer {
namespace {

constexpr std::string_view kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Every member trainer.config may hold; anything else is a typo worth reporting.
const std::vector<std::string>& KnownConfigFields() {
  static const auto* fields = new std::vector<std::string>{
      "model",      "dataset",         "data_dir",      "train_limit", "val_limit",
      "image_size", "image_channels",  "data_seed",     "batch_size",  "iterations_per_step",
      "eval_every", "eval_batch_size", "optimizer",     "nesterov",    "precision",
      "cuda_graph", "memory_format",   "deterministic", "threads",     "depth",
      "width",      "layers",          "channels",      "kernel_size", "width_multiplier",
      "dropout",    "pool_layers"};
  return *fields;
}

// The layer index i of a per-layer key `<prefix>_<i>` (i written without leading zeros), else
// nothing.
std::optional<int64_t> LayerIndex(absl::string_view key, absl::string_view prefix) {
  if (key.size() <= prefix.size() + 1 || key.substr(0, prefix.size()) != prefix ||
      key[prefix.size()] != '_') {
    return std::nullopt;
  }
  const absl::string_view digits = key.substr(prefix.size() + 1);
  if (digits.size() > 6 || (digits.size() > 1 && digits[0] == '0') ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return std::nullopt;
  }
  int64_t index = 0;
  if (!absl::SimpleAtoi(digits, &index)) return std::nullopt;
  return index;
}

// The prefixes of per-layer architecture keys: `width_<i>` (mlp), `channels_<i>` (cnn).
bool IsLayerKey(absl::string_view key) {
  return LayerIndex(key, "width").has_value() || LayerIndex(key, "channels").has_value();
}

std::string ConfigField(std::string_view key) {
  return absl::StrCat("trainer.config.", std::string(key));
}

// The value named `name` among `choices`, else InvalidArgument "FIELD: unknown WHAT 'name'; use
// a, b or c".
template <typename Enum>
absl::StatusOr<Enum> Choose(absl::string_view field, absl::string_view what, absl::string_view name,
                            std::initializer_list<std::pair<absl::string_view, Enum>> choices) {
  std::vector<absl::string_view> names;
  for (const auto& [choice, value] : choices) {
    if (name == choice) return value;
    names.push_back(choice);
  }
  const absl::string_view last = names.back();
  names.pop_back();
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown ", what, " '", name, "'; use ",
                                                 absl::StrJoin(names, ", "), " or ", last));
}

absl::StatusOr<std::optional<std::string>> StringField(const Json& config, std::string_view key) {
  const Json* member = Member(config, key);
  if (member == nullptr) return std::nullopt;
  if (!member->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(ConfigField(key), ": must be a string"));
  }
  return member->get<std::string>();
}

absl::StatusOr<bool> BoolField(const Json& config, std::string_view key, bool fallback) {
  const Json* member = Member(config, key);
  if (member == nullptr) return fallback;
  if (!member->is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat(ConfigField(key), ": must be true or false"));
  }
  return member->get<bool>();
}

absl::StatusOr<int64_t> WholeField(const Json& config, std::string_view key, int64_t fallback,
                                   int64_t low, int64_t high) {
  const Json* member = Member(config, key);
  if (member == nullptr) return fallback;
  const bool number = member->is_number();
  const double value = number ? member->get<double>() : 0;
  if (!number || value != std::floor(value) || value < static_cast<double>(low) ||
      value > static_cast<double>(high)) {
    return absl::InvalidArgumentError(
        absl::StrCat(ConfigField(key), ": must be a whole number in [", low, ", ", high, "]",
                     number ? absl::StrCat(", got ", value) : std::string()));
  }
  return static_cast<int64_t>(value);
}

// A numeric setting that may come from the task's parameters (architecture), else the config.
struct NumberSource {
  double value = 0;
  std::string field;  // "parameter 'depth'" or "trainer.config.depth", for messages
  bool given = false;
};

absl::StatusOr<NumberSource> ArchitectureNumber(const StageTask& task, const Json& config,
                                                std::string_view name, double fallback) {
  NumberSource source{.value = fallback, .field = ConfigField(name)};
  const std::string key(name);
  if (task.parameters.contains(key) || task.static_parameters.contains(key)) {
    source.field = absl::StrCat("parameter '", key, "'");
    std::optional<double> first = task.ValueAt(name, task.start_step);
    if (!first.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(source.field, ": must be a number"));
    }
    if (task.parameters.contains(key)) {
      // An architecture cannot change while training: the sequence must stay constant.
      for (Step step = task.start_step; step < task.end_step; ++step) {
        std::optional<double> value = task.ValueAt(name, step);
        if (!value.has_value() || *value != *first) {
          return absl::InvalidArgumentError(absl::StrCat(
              source.field, ": changes at step ", step,
              "; architecture parameters must stay fixed (mark the parameter structural)"));
        }
      }
    }
    source.value = *first;
    source.given = true;
    return source;
  }
  if (const Json* member = Member(config, name); member != nullptr) {
    if (!member->is_number()) {
      return absl::InvalidArgumentError(absl::StrCat(source.field, ": must be a number"));
    }
    source.value = member->get<double>();
    source.given = true;
  }
  return source;
}

absl::StatusOr<int64_t> WholeArchitecture(const StageTask& task, const Json& config,
                                          std::string_view name, int64_t fallback, int64_t low,
                                          int64_t high) {
  absl::StatusOr<NumberSource> source =
      ArchitectureNumber(task, config, name, static_cast<double>(fallback));
  if (!source.ok()) return source.status();
  if (source->value != std::floor(source->value) || source->value < static_cast<double>(low) ||
      source->value > static_cast<double>(high)) {
    return absl::InvalidArgumentError(absl::StrCat(source->field, ": must be a whole number in [",
                                                   low, ", ", high, "], got ", source->value));
  }
  return static_cast<int64_t>(source->value);
}

// The per-layer sizes `<prefix>_0` .. `<prefix>_<count - 1>` of a network whose uniform rule
// gives `uniform` (count entries): each from the task's parameter or the config when named
// there (a whole number in [low, high]), else the uniform size. Empty when no layer is named, so
// that a network without per-layer sizes keeps its uniform description. A `<prefix>_<i>` for a
// layer the network does not have (i >= count) would be silently unread and split families for
// nothing, so it is refused, naming it.
absl::StatusOr<std::vector<int64_t>> LayerSizes(const StageTask& task, const Json& config,
                                                absl::string_view prefix,
                                                absl::string_view count_name,
                                                const std::vector<int64_t>& uniform, int64_t low,
                                                int64_t high) {
  const int64_t count = static_cast<int64_t>(uniform.size());
  const auto refuse_extra = [&](absl::string_view key, const std::string& field) -> absl::Status {
    std::optional<int64_t> index = LayerIndex(key, prefix);
    if (!index.has_value() || *index < count) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": the network has ", count, " layers (", count_name, "), so only ",
                     prefix, "_0 .. ", prefix, "_", count - 1,
                     " are read; remove it, or make it conditional in the "
                     "search space: when: {param: ",
                     count_name, ", at_least: ", *index + 1, "}"));
  };
  for (const auto& [key, unused] : task.parameters) {
    if (absl::Status status = refuse_extra(key, absl::StrCat("parameter '", key, "'"));
        !status.ok()) {
      return status;
    }
  }
  for (const auto& [key, unused] : task.static_parameters) {
    if (absl::Status status = refuse_extra(key, absl::StrCat("parameter '", key, "'"));
        !status.ok()) {
      return status;
    }
  }
  for (const auto& [key, unused] : config.items()) {
    if (absl::Status status = refuse_extra(key, ConfigField(key)); !status.ok()) return status;
  }
  std::vector<int64_t> sizes = uniform;
  bool named = false;
  for (int64_t i = 0; i < count; ++i) {
    const std::string name = absl::StrCat(prefix, "_", i);
    absl::StatusOr<NumberSource> source =
        ArchitectureNumber(task, config, name, static_cast<double>(uniform[i]));
    if (!source.ok()) return source.status();
    if (!source->given) continue;
    absl::StatusOr<int64_t> size = WholeArchitecture(task, config, name, uniform[i], low, high);
    if (!size.ok()) return size.status();
    sizes[i] = *size;
    named = true;
  }
  if (!named) sizes.clear();
  return sizes;
}

// A string setting from a static parameter, else the config.
absl::StatusOr<std::optional<std::string>> StringSetting(const StageTask& task, const Json& config,
                                                         std::string_view name,
                                                         std::string* field) {
  *field = ConfigField(name);
  if (auto it = task.static_parameters.find(std::string(name));
      it != task.static_parameters.end()) {
    *field = absl::StrCat("parameter '", std::string(name), "'");
    if (const std::string* text = std::get_if<std::string>(&it->second)) return *text;
    return absl::InvalidArgumentError(absl::StrCat(*field, ": must be a string"));
  }
  return StringField(config, name);
}

absl::StatusOr<Architecture> ParseArchitecture(const StageTask& task, const Json& config) {
  Architecture architecture;
  std::string field;
  absl::StatusOr<std::optional<std::string>> model = StringSetting(task, config, "model", &field);
  if (!model.ok()) return model.status();
  absl::StatusOr<ModelKind> kind = Choose<ModelKind>(
      field, "model", model->value_or("mlp"),
      {{"mlp", ModelKind::kMlp}, {"cnn", ModelKind::kCnn}, {"resnet", ModelKind::kResNet}});
  if (!kind.ok()) return kind.status();
  architecture.model = *kind;
  switch (architecture.model) {
    case ModelKind::kMlp: {
      absl::StatusOr<int64_t> depth = WholeArchitecture(task, config, "depth", 2, 0, 64);
      if (!depth.ok()) return depth.status();
      absl::StatusOr<int64_t> width = WholeArchitecture(task, config, "width", 256, 1, 1 << 16);
      if (!width.ok()) return width.status();
      architecture.depth = *depth;
      architecture.width = *width;
      absl::StatusOr<std::vector<int64_t>> widths =
          LayerSizes(task, config, "width", "depth", architecture.MlpWidths(), 1, 1 << 16);
      if (!widths.ok()) return widths.status();
      architecture.layer_widths = *std::move(widths);
      break;
    }
    case ModelKind::kCnn: {
      absl::StatusOr<int64_t> layers = WholeArchitecture(task, config, "layers", 2, 1, 8);
      if (!layers.ok()) return layers.status();
      absl::StatusOr<int64_t> channels = WholeArchitecture(task, config, "channels", 32, 1, 1024);
      if (!channels.ok()) return channels.status();
      absl::StatusOr<int64_t> kernel = WholeArchitecture(task, config, "kernel_size", 3, 1, 11);
      if (!kernel.ok()) return kernel.status();
      if (*kernel % 2 == 0) {
        absl::StatusOr<NumberSource> source = ArchitectureNumber(task, config, "kernel_size", 3);
        return absl::InvalidArgumentError(absl::StrCat(
            source.ok() ? source->field : ConfigField("kernel_size"),
            ": must be odd (1, 3, 5, ...) so that padding keeps the image size, got ", *kernel));
      }
      // -1 (the default): every block pools.
      absl::StatusOr<int64_t> pool = WholeArchitecture(task, config, "pool_layers", -1, -1, 8);
      if (!pool.ok()) return pool.status();
      architecture.pool_layers = *pool;
      architecture.layers = *layers;
      architecture.channels = *channels;
      architecture.kernel_size = *kernel;
      absl::StatusOr<std::vector<int64_t>> sizes =
          LayerSizes(task, config, "channels", "layers", architecture.CnnChannels(), 1, 1024);
      if (!sizes.ok()) return sizes.status();
      architecture.layer_channels = *std::move(sizes);
      break;
    }
    case ModelKind::kResNet: {
      absl::StatusOr<NumberSource> depth = ArchitectureNumber(task, config, "depth", 20);
      if (!depth.ok()) return depth.status();
      const double value = depth->value;
      if (value != std::floor(value) || value < 8 || value > 1202 ||
          (static_cast<int64_t>(value) - 2) % 6 != 0) {
        return absl::InvalidArgumentError(absl::StrCat(depth->field, ": resnet depth is ", value,
                                                       "; use 6n+2 (8, 14, 20, 32, 44, 56, 110)"));
      }
      absl::StatusOr<NumberSource> multiplier =
          ArchitectureNumber(task, config, "width_multiplier", 1.0);
      if (!multiplier.ok()) return multiplier.status();
      if (!(multiplier->value >= 1.0 / 16 && multiplier->value <= 16)) {
        return absl::InvalidArgumentError(
            absl::StrCat(multiplier->field, ": must be in [0.0625, 16], got ", multiplier->value));
      }
      architecture.depth = static_cast<int64_t>(value);
      architecture.width_multiplier = multiplier->value;
      break;
    }
  }
  if (architecture.model != ModelKind::kResNet) {
    architecture.dropout = task.parameters.contains("dropout") ||
                           task.static_parameters.contains("dropout") ||
                           Member(config, "dropout") != nullptr;
  }
  return architecture;
}

absl::StatusOr<DataSpec> ParseData(const Json& config) {
  DataSpec data;
  absl::StatusOr<std::optional<std::string>> dataset = StringField(config, "dataset");
  if (!dataset.ok()) return dataset.status();
  absl::StatusOr<DatasetKind> kind =
      Choose<DatasetKind>(ConfigField("dataset"), "dataset", dataset->value_or("fashion_mnist"),
                          {{"fashion_mnist", DatasetKind::kFashionMnist},
                           {"cifar10", DatasetKind::kCifar10},
                           {"synthetic", DatasetKind::kSynthetic}});
  if (!kind.ok()) return kind.status();
  data.kind = *kind;
  absl::StatusOr<std::optional<std::string>> dir = StringField(config, "data_dir");
  if (!dir.ok()) return dir.status();
  if (data.kind == DatasetKind::kFashionMnist) {
    data.dir = dir->value_or(std::string(kDefaultFashionMnistDir));
  } else if (data.kind == DatasetKind::kCifar10) {
    if (!dir->has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ConfigField("data_dir"),
                       ": dataset cifar10 needs the folder of the CIFAR-10 binary batches "
                       "(data_batch_1.bin ... test_batch.bin)"));
    }
    data.dir = **dir;
  } else if (dir->has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        ConfigField("data_dir"), ": the synthetic dataset reads no files; remove data_dir"));
  }
  const bool synthetic = data.kind == DatasetKind::kSynthetic;
  constexpr int64_t kMaxExamples = int64_t{1} << 31;
  absl::StatusOr<int64_t> train =
      WholeField(config, "train_limit", synthetic ? 1024 : 0, synthetic ? 1 : 0, kMaxExamples);
  if (!train.ok()) return train.status();
  absl::StatusOr<int64_t> val =
      WholeField(config, "val_limit", synthetic ? 256 : 0, synthetic ? 1 : 0, kMaxExamples);
  if (!val.ok()) return val.status();
  data.train_limit = *train;
  data.val_limit = *val;
  for (std::string_view key : {"image_size", "image_channels", "data_seed"}) {
    if (!synthetic && config.contains(std::string(key))) {
      return absl::InvalidArgumentError(
          absl::StrCat(ConfigField(key),
                       ": only the synthetic dataset takes it; remove it or use "
                       "dataset: synthetic"));
    }
  }
  absl::StatusOr<int64_t> size = WholeField(config, "image_size", 28, 4, 512);
  if (!size.ok()) return size.status();
  absl::StatusOr<int64_t> channels = WholeField(config, "image_channels", 1, 1, 16);
  if (!channels.ok()) return channels.status();
  absl::StatusOr<int64_t> seed = WholeField(config, "data_seed", 0, 0, int64_t{1} << 53);
  if (!seed.ok()) return seed.status();
  data.image_size = *size;
  data.image_channels = *channels;
  data.data_seed = static_cast<uint64_t>(*seed);
  return data;
}

const char* ModelName(ModelKind model) {
  switch (model) {
    case ModelKind::kMlp:
      return "mlp";
    case ModelKind::kCnn:
      return "cnn";
    case ModelKind::kResNet:
      return "resnet";
  }
  return "?";
}

const char* OptimizerName(OptimizerKind optimizer) {
  switch (optimizer) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kAdamW:
      return "adamw";
  }
  return "?";
}

// The value of `name` at `step` from the task, else `fallback`; checked against [low, high].
absl::StatusOr<double> StepValue(const StageTask& task, std::string_view name, Step step,
                                 double fallback, double low, double high) {
  std::optional<double> value = task.ValueAt(name, step);
  if (!value.has_value()) {
    if (task.static_parameters.contains(std::string(name))) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", std::string(name), "': must be a number"));
    }
    return fallback;
  }
  if (!(*value >= low && *value <= high)) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", std::string(name), "' is ",
                                                   *value, " at step ", step, ", outside [", low,
                                                   ", ", high, "]"));
  }
  return *value;
}

}  // namespace

std::vector<int64_t> Architecture::MlpWidths() const {
  if (!layer_widths.empty()) return layer_widths;
  return std::vector<int64_t>(static_cast<size_t>(std::max<int64_t>(depth, 0)), width);
}

std::vector<int64_t> Architecture::CnnChannels() const {
  if (!layer_channels.empty()) return layer_channels;
  std::vector<int64_t> sizes;
  for (int64_t i = 0; i < layers; ++i) sizes.push_back(channels << std::min<int64_t>(i, 20));
  return sizes;
}

std::string Architecture::Describe() const {
  switch (model) {
    case ModelKind::kMlp: {
      const std::vector<int64_t> widths = MlpWidths();
      const bool uniform =
          std::all_of(widths.begin(), widths.end(), [&](int64_t w) { return w == widths.front(); });
      const std::string text = widths.empty() ? absl::StrCat(width)
                               : uniform      ? absl::StrCat(widths.front())
                                              : absl::StrCat("[", absl::StrJoin(widths, ","), "]");
      return absl::StrCat("mlp depth=", depth, " width=", text,
                          " dropout=", dropout ? "yes" : "no");
    }
    case ModelKind::kCnn: {
      const std::vector<int64_t> sizes = CnnChannels();
      bool doubling = !sizes.empty();
      for (size_t i = 0; i < sizes.size() && doubling; ++i) {
        doubling = sizes[i] == sizes.front() << std::min<size_t>(i, 20);
      }
      const std::string text = doubling ? absl::StrCat(sizes.front())
                                        : absl::StrCat("[", absl::StrJoin(sizes, ","), "]");
      return absl::StrCat("cnn layers=", layers, " channels=", text, " kernel_size=", kernel_size,
                          pool_layers >= 0 ? absl::StrCat(" pool_layers=", pool_layers) : "",
                          " dropout=", dropout ? "yes" : "no");
    }
    case ModelKind::kResNet:
      return absl::StrCat("resnet depth=", depth, " width_multiplier=", width_multiplier);
  }
  return std::string(ModelName(model));
}

std::string DataSpec::Describe() const {
  switch (kind) {
    case DatasetKind::kFashionMnist:
      return absl::StrCat("fashion_mnist dir=", dir, " train=", train_limit, " val=", val_limit);
    case DatasetKind::kCifar10:
      return absl::StrCat("cifar10 dir=", dir, " train=", train_limit, " val=", val_limit);
    case DatasetKind::kSynthetic:
      return absl::StrCat("synthetic size=", image_size, " channels=", image_channels,
                          " seed=", data_seed, " train=", train_limit, " val=", val_limit);
  }
  return "?";
}

std::string TorchSettings::Signature() const {
  return absl::StrCat("torch-state-v1 ", architecture.Describe(), "; ", data.Describe(),
                      "; batch_size=", batch_size, " optimizer=", OptimizerName(optimizer),
                      nesterov ? " nesterov" : "");
}

absl::StatusOr<TorchSettings> ParseTorchSettings(const StageTask& task) {
  absl::StatusOr<Json> config = ParseJson(task.trainer_config_json);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer.config: not valid JSON: ", config.status().message()));
  }
  if (!config->is_object()) {
    return absl::InvalidArgumentError("trainer.config: must be an object");
  }
  const std::vector<std::string>& known = KnownConfigFields();
  for (const auto& [key, value] : config->items()) {
    if (std::find(known.begin(), known.end(), key) == known.end() && !IsLayerKey(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(ConfigField(key), ": unknown field for the torch trainer; known: ",
                       absl::StrJoin(known, ", "), ", and width_<i> or channels_<i> for layer i"));
    }
  }
  TorchSettings settings;
  absl::StatusOr<Architecture> architecture = ParseArchitecture(task, *config);
  if (!architecture.ok()) return architecture.status();
  settings.architecture = *architecture;
  absl::StatusOr<DataSpec> data = ParseData(*config);
  if (!data.ok()) return data.status();
  settings.data = *data;

  std::string field;
  absl::StatusOr<std::optional<std::string>> optimizer =
      StringSetting(task, *config, "optimizer", &field);
  if (!optimizer.ok()) return optimizer.status();
  absl::StatusOr<OptimizerKind> optimizer_kind =
      Choose<OptimizerKind>(field, "optimizer", optimizer->value_or("sgd"),
                            {{"sgd", OptimizerKind::kSgd},
                             {"adam", OptimizerKind::kAdam},
                             {"adamw", OptimizerKind::kAdamW}});
  if (!optimizer_kind.ok()) return optimizer_kind.status();
  settings.optimizer = *optimizer_kind;
  if (auto it = task.static_parameters.find("nesterov"); it != task.static_parameters.end()) {
    const bool* flag = std::get_if<bool>(&it->second);
    if (flag == nullptr) {
      return absl::InvalidArgumentError("parameter 'nesterov': must be true or false");
    }
    settings.nesterov = *flag;
  } else {
    absl::StatusOr<bool> nesterov = BoolField(*config, "nesterov", false);
    if (!nesterov.ok()) return nesterov.status();
    settings.nesterov = *nesterov;
  }
  if (settings.nesterov && settings.optimizer != OptimizerKind::kSgd) {
    return absl::InvalidArgumentError(
        "trainer.config.nesterov: Nesterov momentum is an sgd option; remove it or use "
        "optimizer sgd");
  }

  absl::StatusOr<int64_t> batch = WholeField(*config, "batch_size", 128, 1, 1 << 20);
  if (!batch.ok()) return batch.status();
  settings.batch_size = *batch;
  if (settings.data.train_limit > 0 && settings.batch_size > settings.data.train_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        ConfigField("batch_size"), ": ", settings.batch_size, " is larger than train_limit ",
        settings.data.train_limit, "; lower batch_size or raise train_limit"));
  }
  absl::StatusOr<int64_t> iterations =
      WholeField(*config, "iterations_per_step", 0, 0, int64_t{1} << 30);
  if (!iterations.ok()) return iterations.status();
  settings.iterations_per_step = *iterations;
  absl::StatusOr<int64_t> eval_every = WholeField(*config, "eval_every", 1, 1, int64_t{1} << 30);
  if (!eval_every.ok()) return eval_every.status();
  settings.eval_every = *eval_every;
  absl::StatusOr<int64_t> eval_batch = WholeField(*config, "eval_batch_size", 1000, 1, 1 << 20);
  if (!eval_batch.ok()) return eval_batch.status();
  settings.eval_batch_size = *eval_batch;

  absl::StatusOr<std::optional<std::string>> precision = StringField(*config, "precision");
  if (!precision.ok()) return precision.status();
  absl::StatusOr<Precision> precision_kind =
      Choose<Precision>(ConfigField("precision"), "precision", precision->value_or("fp32"),
                        {{"fp32", Precision::kFloat32}, {"bf16", Precision::kBFloat16}});
  if (!precision_kind.ok()) return precision_kind.status();
  settings.precision = *precision_kind;
  absl::StatusOr<bool> graph = BoolField(*config, "cuda_graph", true);
  if (!graph.ok()) return graph.status();
  settings.cuda_graph = *graph;
  absl::StatusOr<bool> deterministic = BoolField(*config, "deterministic", false);
  if (!deterministic.ok()) return deterministic.status();
  settings.deterministic = *deterministic;
  absl::StatusOr<std::optional<std::string>> layout = StringField(*config, "memory_format");
  if (!layout.ok()) return layout.status();
  absl::StatusOr<MemoryLayout> layout_kind =
      Choose<MemoryLayout>(ConfigField("memory_format"), "memory format", layout->value_or("auto"),
                           {{"auto", MemoryLayout::kAuto},
                            {"contiguous", MemoryLayout::kContiguous},
                            {"channels_last", MemoryLayout::kChannelsLast}});
  if (!layout_kind.ok()) return layout_kind.status();
  settings.memory_format = *layout_kind;
  absl::StatusOr<int64_t> threads = WholeField(*config, "threads", 0, 0, 1024);
  if (!threads.ok()) return threads.status();
  settings.threads = *threads;
  if (const Json* dropout = Member(*config, "dropout"); dropout != nullptr) {
    if (!dropout->is_number() || !(dropout->get<double>() >= 0) || !(dropout->get<double>() < 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(ConfigField("dropout"), ": must be a number in [0, 1)"));
    }
    settings.config_dropout = dropout->get<double>();
  }
  return settings;
}

absl::StatusOr<StepValues> StepValuesAt(const StageTask& task, const TorchSettings& settings,
                                        Step step) {
  const bool sgd = settings.optimizer == OptimizerKind::kSgd;
  const bool named_lr = task.parameters.contains("lr") || task.static_parameters.contains("lr");
  absl::StatusOr<double> lr =
      StepValue(task, named_lr ? "lr" : "learning_rate", step, sgd ? 0.01 : 0.001, 0, 1e3);
  absl::StatusOr<double> momentum = StepValue(task, "momentum", step, 0.9, 0, 1);
  absl::StatusOr<double> weight_decay = StepValue(
      task, "weight_decay", step, settings.optimizer == OptimizerKind::kAdamW ? 0.01 : 0, 0, 1e3);
  absl::StatusOr<double> beta1 = StepValue(task, "beta1", step, 0.9, 0, 1);
  absl::StatusOr<double> beta2 = StepValue(task, "beta2", step, 0.999, 0, 1);
  absl::StatusOr<double> eps = StepValue(task, "eps", step, 1e-8, 1e-30, 1);
  absl::StatusOr<double> dropout =
      StepValue(task, "dropout", step, settings.config_dropout, 0, 0.999);
  for (const absl::StatusOr<double>* value :
       {&lr, &momentum, &weight_decay, &beta1, &beta2, &eps, &dropout}) {
    if (!value->ok()) return value->status();
  }
  if (!sgd && (*beta1 >= 1 || *beta2 >= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameters 'beta1' and 'beta2' must be below 1 (step ", step, ")"));
  }
  return StepValues{.lr = *lr,
                    .momentum = *momentum,
                    .weight_decay = *weight_decay,
                    .beta1 = *beta1,
                    .beta2 = *beta2,
                    .eps = *eps,
                    .dropout = *dropout};
}

}  // namespace hippo::workers::torch_trainer
