// Torch trainer benchmark (issue 6): the `torch` trainer driven through the Trainer interface,
// as a worker drives it.
//
//   throughput  for each model x batch size x precision x mode (eager, CUDA graph): one Train call
//               of warm-up steps then measured steps, each step `iterations_per_step` optimizer
//               iterations on a synthetic 32x32 RGB set held on the device. The clock is read in
//               the progress callback: the trainer reads the step's loss with .item(), which
//               waits for the device, so every reading is a synchronised point. images/s =
//               measured steps x iterations x batch / (last reading - last warm-up reading).
//   fork        a fork from memory (TrainingState::Clone, then a device synchronisation)
//               against one through the disk (Serialize, CheckpointStore::Write with its fsyncs,
//               CheckpointStore::Read, Trainer::Deserialize, synchronisation); medians in ms.
//   gap         one-epoch steps: stage A trains [0, 2); then, several times, stage B trains
//               [2, 4) from a Clone of A's end state, right after the previous Train returned.
//               gap = B's first progress callback - the previous return; overhead = gap minus
//               B's second step (one steady epoch), also as % of that one-epoch stage.
//
// Usage: torch_trainer_benchmark [--device cuda:0] [--json FILE] [--quick] [--models ...]
//   --quick --device cpu runs a tiny version on the CPU (what CI-like machines can check).
#include <execinfo.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "workers/checkpoint_store.h"
#include "workers/torch/torch_trainer.h"
#include "workers/trainer.h"

namespace {

using hippo::workers::CheckpointStore;
using hippo::workers::Metrics;
using hippo::workers::StageControl;
using hippo::workers::StageTask;
using hippo::workers::Step;
using hippo::workers::TorchTrainer;
using hippo::workers::TrainCallbacks;
using hippo::workers::TrainingState;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string device = "cuda:0";
  std::string json_path = "torch_trainer_benchmark.json";
  bool quick = false;
  std::vector<std::string> models = {"resnet20", "resnet56"};
  std::vector<int64_t> batch_sizes = {128, 512};
  std::vector<std::string> precisions = {"fp32", "bf16"};
  std::vector<std::string> modes = {"eager", "graph"};
  // nchw = memory_format contiguous (PyTorch's default), nhwc = channels_last.
  std::vector<std::string> layouts = {"nchw", "nhwc"};
  int64_t image_size = 32;
  int64_t train_examples = 50000;  // CIFAR-10's size: one epoch of the gap measurement
  int64_t iterations_per_step = 50;
  int64_t warmup_steps = 1;
  int64_t steps = 4;
  int repeats = 7;
  std::string checkpoint_dir = "/tmp/torch_trainer_benchmark";
  std::vector<std::string> phases = {"throughput", "fork", "gap"};
  // Steps of the fork measurement (all by default; fewer to isolate a fault).
  std::vector<std::string> fork_parts = {"clone", "serialize", "store", "deserialize"};

  bool Runs(const std::string& phase) const {
    return std::find(phases.begin(), phases.end(), phase) != phases.end();
  }
  bool Forks(const std::string& part) const {
    return std::find(fork_parts.begin(), fork_parts.end(), part) != fork_parts.end();
  }
};

// On a crash, the stack on stderr (the device machine has no gdb).
void PrintStackAndDie(int signal) {
  void* frames[64];
  const int count = backtrace(frames, 64);
  const char header[] = "\ntorch_trainer_benchmark: fatal signal; stack:\n";
  (void)!write(STDERR_FILENO, header, sizeof(header) - 1);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

// Where the benchmark is, on stderr, unbuffered: the last line names the phase of a crash.
void Phase(const std::string& what) { std::fprintf(stderr, "[phase] %s\n", what.c_str()); }

// One family's settings; `iterations` 0 means one epoch per step.
struct Config {
  std::string model = "resnet20";
  int64_t batch_size = 128;
  std::string precision = "fp32";
  std::string mode = "graph";
  // nchw, nhwc, or auto (the trainer's default: nhwc on CUDA).
  std::string layout = "auto";
  int64_t iterations = 50;
};

std::string MemoryFormatName(const std::string& layout) {
  if (layout == "nchw") return "contiguous";
  if (layout == "nhwc") return "channels_last";
  return "auto";
}

int64_t Depth(const std::string& model) { return model == "resnet56" ? 56 : 20; }

StageTask MakeTask(const Options& options, const Config& config, Step start, Step end) {
  StageTask task;
  task.attempt_id = 1;
  task.stage_id = 1;
  task.start_step = start;
  task.end_step = end;
  task.trainer_kind = "torch";
  task.seed = 7;
  // Static values: the optimizer still reads them from device tensors at every step.
  task.static_parameters = {{"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 5e-4}};
  task.trainer_config_json = absl::StrFormat(
      R"({"model": "resnet", "depth": %d, "dataset": "synthetic", "image_size": %d,)"
      R"( "image_channels": 3, "train_limit": %d, "val_limit": 256, "batch_size": %d,)"
      R"( "iterations_per_step": %d, "eval_every": 1073741824, "optimizer": "sgd",)"
      R"( "nesterov": true, "precision": "%s", "cuda_graph": %s, "memory_format": "%s"})",
      Depth(config.model), options.image_size, options.train_examples, config.batch_size,
      config.iterations, config.precision, config.mode == "graph" ? "true" : "false",
      MemoryFormatName(config.layout));
  return task;
}

void Synchronize(const std::string& device) {
  if (device == "cpu") return;
  const size_t colon = device.find(':');
  torch::cuda::synchronize(colon == std::string::npos ? 0 : std::stoll(device.substr(colon + 1)));
}

double Milliseconds(Clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

double Median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Trains task [0, end) and returns the clock reading of every step's progress callback.
absl::StatusOr<std::vector<Clock::time_point>> TrainTimed(TorchTrainer& trainer,
                                                          const StageTask& task,
                                                          TrainingState& state, double* last_loss) {
  std::vector<Clock::time_point> marks;
  StageControl control;
  TrainCallbacks callbacks;
  callbacks.progress = [&](Step, const Metrics& metrics) {
    marks.push_back(Clock::now());
    if (auto it = metrics.find("loss"); it != metrics.end()) *last_loss = it->second;
  };
  absl::StatusOr<hippo::workers::StageOutcome> outcome =
      trainer.Train(task, state, control, callbacks);
  if (!outcome.ok()) return outcome.status();
  return marks;
}

struct ThroughputRow {
  Config config;
  std::string status = "ok";
  double images_per_second = 0;
  double ms_per_iteration = 0;
  double loss = 0;
  bool used_graph = false;
  std::string graph_error;
};

ThroughputRow MeasureThroughput(const Options& options, const Config& config) {
  ThroughputRow row;
  row.config = config;
  if (options.device == "cpu" && (config.precision == "bf16" || config.mode == "graph")) {
    row.status = "skipped on cpu";
    return row;
  }
  absl::StatusOr<std::unique_ptr<TorchTrainer>> trainer = TorchTrainer::Create(options.device);
  if (!trainer.ok()) {
    row.status = std::string(trainer.status().message());
    return row;
  }
  const Step steps = options.warmup_steps + options.steps;
  const StageTask task = MakeTask(options, config, 0, steps);
  absl::StatusOr<std::unique_ptr<TrainingState>> state = (*trainer)->NewState(task);
  if (!state.ok()) {
    row.status = std::string(state.status().message());
    return row;
  }
  absl::StatusOr<std::vector<Clock::time_point>> marks =
      TrainTimed(**trainer, task, **state, &row.loss);
  if (!marks.ok()) {
    row.status = std::string(marks.status().message());
    return row;
  }
  const Clock::duration measured = marks->back() - (*marks)[options.warmup_steps - 1];
  const double iterations = static_cast<double>(options.steps * config.iterations);
  row.ms_per_iteration = Milliseconds(measured) / iterations;
  row.images_per_second = iterations * static_cast<double>(config.batch_size) /
                          std::chrono::duration<double>(measured).count();
  row.used_graph = (*trainer)->last_train_used_graph();
  row.graph_error = (*trainer)->last_graph_error();
  if (!std::isfinite(row.loss)) row.status = "loss is not finite";
  return row;
}

struct ForkRow {
  std::string model;
  std::string status = "ok";
  int64_t state_bytes = 0;
  int64_t checkpoint_bytes = 0;
  double clone_ms = 0;
  double disk_ms = 0;
  double serialize_ms = 0, write_ms = 0, read_ms = 0, deserialize_ms = 0;
};

// `report` gets the figures before the trainer and its states are released.
ForkRow MeasureFork(const Options& options, const std::string& model,
                    const std::function<void(const ForkRow&)>& report) {
  ForkRow row;
  row.model = model;
  const Config config{.model = model,
                      .batch_size = options.batch_sizes.front(),
                      .precision = "fp32",
                      .mode = options.device == "cpu" ? "eager" : "graph",
                      .iterations = 2};
  auto fail = [&](const absl::Status& status) {
    row.status = std::string(status.message());
    return row;
  };
  absl::StatusOr<std::unique_ptr<TorchTrainer>> trainer = TorchTrainer::Create(options.device);
  if (!trainer.ok()) return fail(trainer.status());
  const StageTask task = MakeTask(options, config, 0, 1);
  absl::StatusOr<std::unique_ptr<TrainingState>> state = (*trainer)->NewState(task);
  if (!state.ok()) return fail(state.status());
  double loss = 0;
  // One trained step, so that the momentum buffers hold real values.
  if (auto marks = TrainTimed(**trainer, task, **state, &loss); !marks.ok()) {
    return fail(marks.status());
  }
  Phase("fork: trained one step");
  absl::StatusOr<CheckpointStore> store = CheckpointStore::Open(options.checkpoint_dir);
  if (!store.ok()) return fail(store.status());
  row.state_bytes = (*state)->SizeBytes();
  std::vector<double> clone, disk, serialize, write, read, deserialize;
  const StageTask next = MakeTask(options, config, 1, 2);
  for (int r = 0; r < options.repeats; ++r) {
    if (options.Forks("clone")) {
      Phase("fork: clone");
      Synchronize(options.device);
      const Clock::time_point t0 = Clock::now();
      std::unique_ptr<TrainingState> copy = (*state)->Clone();
      Synchronize(options.device);
      const Clock::time_point t1 = Clock::now();
      if (copy == nullptr) return fail(absl::InternalError("Clone returned no state"));
      clone.push_back(Milliseconds(t1 - t0));
    }
    if (!options.Forks("serialize")) continue;
    Synchronize(options.device);
    Phase("fork: serialize");
    const Clock::time_point d0 = Clock::now();
    absl::StatusOr<std::string> bytes = (*state)->Serialize();
    if (!bytes.ok()) return fail(bytes.status());
    const Clock::time_point d1 = Clock::now();
    serialize.push_back(Milliseconds(d1 - d0));
    if (options.Forks("store")) {
      Phase("fork: store");
      absl::StatusOr<hippo::workers::CheckpointInfo> info = store->Write(1, 1, *bytes);
      if (!info.ok()) return fail(info.status());
      const Clock::time_point d2 = Clock::now();
      absl::StatusOr<std::string> loaded = store->Read(info->uri);
      if (!loaded.ok()) return fail(loaded.status());
      const Clock::time_point d3 = Clock::now();
      row.checkpoint_bytes = info->size_bytes;
      write.push_back(Milliseconds(d2 - d1));
      read.push_back(Milliseconds(d3 - d2));
      *bytes = *std::move(loaded);
    }
    if (options.Forks("deserialize")) {
      Phase("fork: deserialize");
      const Clock::time_point d3 = Clock::now();
      absl::StatusOr<std::unique_ptr<TrainingState>> restored =
          (*trainer)->Deserialize(next, *bytes);
      if (!restored.ok()) return fail(restored.status());
      Synchronize(options.device);
      const Clock::time_point d4 = Clock::now();
      deserialize.push_back(Milliseconds(d4 - d3));
      disk.push_back(Milliseconds(d4 - d0));
    }
  }
  row.clone_ms = Median(clone);
  row.disk_ms = Median(disk);
  row.serialize_ms = Median(serialize);
  row.write_ms = Median(write);
  row.read_ms = Median(read);
  row.deserialize_ms = Median(deserialize);
  report(row);
  // Released one by one, each announced: a fault while releasing shows where it happened.
  Phase("fork: releasing the state");
  state->reset();
  Phase("fork: releasing the trainer");
  trainer->reset();
  Phase("fork: released");
  std::error_code ignored;
  std::filesystem::remove_all(options.checkpoint_dir, ignored);
  return row;
}

struct GapRow {
  Config config;
  std::string status = "ok";
  int64_t iterations_per_epoch = 0;
  double epoch_ms = 0;     // B's second step: one steady one-epoch stage (median)
  double gap_ms = 0;       // A's return -> B's first progress callback (median)
  double overhead_ms = 0;  // gap_ms - epoch_ms
  double overhead_percent = 0;
};

GapRow MeasureGap(const Options& options) {
  GapRow row;
  row.config = Config{.model = options.models.front(),
                      .batch_size = options.batch_sizes.front(),
                      .precision = "fp32",
                      .mode = options.device == "cpu" ? "eager" : "graph",
                      .iterations = 0};
  row.iterations_per_epoch = options.train_examples / row.config.batch_size;
  auto fail = [&](const absl::Status& status) {
    row.status = std::string(status.message());
    return row;
  };
  absl::StatusOr<std::unique_ptr<TorchTrainer>> trainer = TorchTrainer::Create(options.device);
  if (!trainer.ok()) return fail(trainer.status());
  const StageTask first = MakeTask(options, row.config, 0, 2);
  absl::StatusOr<std::unique_ptr<TrainingState>> state = (*trainer)->NewState(first);
  if (!state.ok()) return fail(state.status());
  double loss = 0;
  absl::StatusOr<std::vector<Clock::time_point>> marks =
      TrainTimed(**trainer, first, **state, &loss);
  if (!marks.ok()) return fail(marks.status());
  std::vector<double> gaps;
  std::vector<double> epochs;
  const StageTask second = MakeTask(options, row.config, 2, 4);
  Clock::time_point end = Clock::now();
  const int repeats = std::max(1, std::min(options.repeats, 5));
  for (int r = 0; r < repeats; ++r) {
    // Every B starts from a Clone of A's end state, right after a Train call returned.
    std::unique_ptr<TrainingState> fork = (*state)->Clone();
    if (fork == nullptr) return fail(absl::InternalError("Clone returned no state"));
    absl::StatusOr<std::vector<Clock::time_point>> next =
        TrainTimed(**trainer, second, *fork, &loss);
    const Clock::time_point returned = Clock::now();
    if (!next.ok()) return fail(next.status());
    gaps.push_back(Milliseconds((*next)[0] - end));
    epochs.push_back(Milliseconds((*next)[1] - (*next)[0]));
    end = returned;
  }
  row.epoch_ms = Median(epochs);
  row.gap_ms = Median(gaps);
  row.overhead_ms = row.gap_ms - row.epoch_ms;
  row.overhead_percent = 100 * row.overhead_ms / row.epoch_ms;
  return row;
}

std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Number(double value) {
  return std::isfinite(value) ? absl::StrFormat("%.6g", value) : "null";
}

std::string ToJson(const Options& options, const std::vector<ThroughputRow>& throughput,
                   const std::vector<ForkRow>& forks, const GapRow& gap) {
  std::vector<std::string> rows;
  for (const ThroughputRow& r : throughput) {
    rows.push_back(absl::StrCat(
        "{\"model\": ", Quoted(r.config.model), ", \"batch_size\": ", r.config.batch_size,
        ", \"precision\": ", Quoted(r.config.precision), ", \"mode\": ", Quoted(r.config.mode),
        ", \"layout\": ", Quoted(r.config.layout),
        ", \"status\": ", Quoted(r.status), ", \"images_per_second\": ",
        Number(r.images_per_second), ", \"ms_per_iteration\": ", Number(r.ms_per_iteration),
        ", \"loss\": ", Number(r.loss), ", \"used_graph\": ", r.used_graph ? "true" : "false",
        ", \"graph_error\": ", Quoted(r.graph_error), "}"));
  }
  std::vector<std::string> fork_rows;
  for (const ForkRow& r : forks) {
    fork_rows.push_back(absl::StrCat(
        "{\"model\": ", Quoted(r.model), ", \"status\": ", Quoted(r.status),
        ", \"state_bytes\": ", r.state_bytes, ", \"checkpoint_bytes\": ", r.checkpoint_bytes,
        ", \"clone_ms\": ", Number(r.clone_ms), ", \"disk_ms\": ", Number(r.disk_ms),
        ", \"serialize_ms\": ", Number(r.serialize_ms), ", \"write_ms\": ", Number(r.write_ms),
        ", \"read_ms\": ", Number(r.read_ms), ", \"deserialize_ms\": ", Number(r.deserialize_ms),
        "}"));
  }
  const std::string gap_json = absl::StrCat(
      "{\"model\": ", Quoted(gap.config.model), ", \"batch_size\": ", gap.config.batch_size,
      ", \"mode\": ", Quoted(gap.config.mode), ", \"status\": ", Quoted(gap.status),
      ", \"iterations_per_epoch\": ", gap.iterations_per_epoch,
      ", \"epoch_ms\": ", Number(gap.epoch_ms), ", \"gap_ms\": ", Number(gap.gap_ms),
      ", \"overhead_ms\": ", Number(gap.overhead_ms),
      ", \"overhead_percent\": ", Number(gap.overhead_percent), "}");
  return absl::StrCat(
      "{\"device\": ", Quoted(options.device), ", \"quick\": ", options.quick ? "true" : "false",
      ", \"image_size\": ", options.image_size, ", \"train_examples\": ", options.train_examples,
      ", \"iterations_per_step\": ", options.iterations_per_step,
      ", \"warmup_steps\": ", options.warmup_steps, ", \"steps\": ", options.steps,
      ",\n \"throughput\": [\n  ", absl::StrJoin(rows, ",\n  "), "],\n \"fork\": [\n  ",
      absl::StrJoin(fork_rows, ",\n  "), "],\n \"gap\": ", gap_json, "}\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"Throughput, fork cost and stage-switch gap of the torch trainer"};
  app.add_option("--device", options.device, "cpu, cuda or cuda:N");
  app.add_option("--json", options.json_path, "Write the figures here");
  app.add_flag("--quick", options.quick,
               "Tiny sizes (8x8 images, batch 8, 2 iterations a step): checks that it runs");
  app.add_option("--models", options.models, "resnet20 and/or resnet56")->delimiter(',');
  app.add_option("--batch-sizes", options.batch_sizes, "Batch sizes")->delimiter(',');
  app.add_option("--precisions", options.precisions, "fp32 and/or bf16")->delimiter(',');
  app.add_option("--modes", options.modes, "eager and/or graph")->delimiter(',');
  app.add_option("--layouts", options.layouts,
                 "nchw (memory_format contiguous) and/or nhwc (channels_last)")
      ->delimiter(',');
  app.add_option("--iterations-per-step", options.iterations_per_step,
                 "Optimizer iterations per step (one loss read, a synchronisation, per step)");
  app.add_option("--warmup-steps", options.warmup_steps, "Steps before the clock starts")
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", options.steps, "Measured steps")->check(CLI::PositiveNumber);
  app.add_option("--repeats", options.repeats, "Repeats of the fork and gap measurements");
  app.add_option("--train-examples", options.train_examples,
                 "Synthetic training examples (one epoch of the gap measurement)");
  app.add_option("--checkpoint-dir", options.checkpoint_dir, "Scratch directory for the disk fork");
  app.add_option("--phases", options.phases, "Any of throughput, fork, gap")->delimiter(',');
  app.add_option("--fork-parts", options.fork_parts,
                 "Steps of the fork measurement: clone, serialize, store, deserialize")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGSEGV, PrintStackAndDie);
  std::signal(SIGABRT, PrintStackAndDie);
  if (options.quick) {
    options.image_size = 8;
    options.train_examples = 64;
    if (app.count("--models") == 0) options.models = {"resnet20"};
    if (app.count("--batch-sizes") == 0) options.batch_sizes = {8};
    if (app.count("--iterations-per-step") == 0) options.iterations_per_step = 2;
    options.warmup_steps = 1;
    if (app.count("--steps") == 0) options.steps = 2;
    options.repeats = 3;
  }

  std::printf("torch trainer benchmark on %s (synthetic %lldx%lldx3, %lld iterations a step)\n",
              options.device.c_str(), static_cast<long long>(options.image_size),
              static_cast<long long>(options.image_size),
              static_cast<long long>(options.iterations_per_step));
  std::vector<ThroughputRow> throughput;
  std::printf("%-9s %6s %5s %6s %6s %12s %10s %6s\n", "model", "batch", "prec", "layout", "mode",
              "images/s", "ms/iter", "graph");
  for (const std::string& model :
       options.Runs("throughput") ? options.models : std::vector<std::string>{}) {
    for (int64_t batch : options.batch_sizes) {
      for (const std::string& precision : options.precisions) {
        for (const std::string& layout : options.layouts) {
          for (const std::string& mode : options.modes) {
            const Config config{.model = model,
                                .batch_size = batch,
                                .precision = precision,
                                .mode = mode,
                                .layout = layout,
                                .iterations = options.iterations_per_step};
            Phase(absl::StrCat("throughput ", model, " ", batch, " ", precision, " ", layout, " ",
                               mode));
            ThroughputRow row = MeasureThroughput(options, config);
            const std::string label =
                absl::StrFormat("%-9s %6d %5s %6s %6s", model, batch, precision, layout, mode);
            if (row.status == "ok") {
              std::printf("%s %12.0f %10.3f %6s\n", label.c_str(), row.images_per_second,
                          row.ms_per_iteration, row.used_graph ? "yes" : "no");
            } else {
              std::printf("%s  %s\n", label.c_str(), row.status.c_str());
            }
            if (!row.graph_error.empty()) {
              std::printf("  graph error: %s\n", row.graph_error.c_str());
            }
            std::fflush(stdout);
            throughput.push_back(std::move(row));
          }
        }
      }
    }
  }

  GapRow gap;
  gap.status = "not run";
  std::vector<ForkRow> forks;
  // Written after every figure, so that a later fault loses nothing already measured.
  auto write_json = [&]() {
    std::ofstream out(options.json_path);
    out << ToJson(options, throughput, forks, gap);
    out.close();
    if (!out) std::fprintf(stderr, "cannot write %s\n", options.json_path.c_str());
    return static_cast<bool>(out);
  };
  write_json();
  std::printf("\n%-9s %12s %12s %12s   (disk = serialize + write + read + deserialize)\n", "model",
              "state MB", "clone ms", "disk ms");
  std::fflush(stdout);
  auto report_fork = [&](const ForkRow& row) {
    if (row.status == "ok") {
      std::printf("%-9s %12.2f %12.3f %12.3f   (%.2f + %.2f + %.2f + %.2f)\n", row.model.c_str(),
                  static_cast<double>(row.state_bytes) / 1e6, row.clone_ms, row.disk_ms,
                  row.serialize_ms, row.write_ms, row.read_ms, row.deserialize_ms);
    } else {
      std::printf("%-9s  %s\n", row.model.c_str(), row.status.c_str());
    }
    std::fflush(stdout);
    forks.push_back(row);
    write_json();
  };
  for (const std::string& model :
       options.Runs("fork") ? options.models : std::vector<std::string>{}) {
    Phase("fork " + model);
    ForkRow row = MeasureFork(options, model, report_fork);
    if (row.status != "ok") report_fork(row);  // errors return before reporting
  }

  if (options.Runs("gap")) {
    Phase("gap");
    gap = MeasureGap(options);
  }
  if (gap.status == "ok") {
    std::printf(
        "\nstage switch (%s, batch %lld, %s, %lld iterations an epoch): one-epoch stage %.1f ms, "
        "gap to the next stage's first step %.1f ms, overhead %.2f ms = %.2f%% of the stage\n",
        gap.config.model.c_str(), static_cast<long long>(gap.config.batch_size),
        gap.config.mode.c_str(), static_cast<long long>(gap.iterations_per_epoch), gap.epoch_ms,
        gap.gap_ms, gap.overhead_ms, gap.overhead_percent);
  } else {
    std::printf("\nstage switch: %s\n", gap.status.c_str());
  }

  if (!write_json()) return 1;
  std::printf("figures: %s\n", options.json_path.c_str());
  bool ok = gap.status == "ok" || gap.status == "not run";
  for (const ThroughputRow& row : throughput)
    ok = ok && (row.status == "ok" || row.status.starts_with("skipped"));
  for (const ForkRow& row : forks) ok = ok && row.status == "ok";
  return ok ? 0 : 1;
}
