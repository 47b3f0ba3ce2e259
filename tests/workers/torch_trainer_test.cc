// The torch trainer (LibTorch, CPU): a trial trained straight, in stages through checkpoint
// bytes, and in stages through fork copies gives bit-identical metrics for every model and
// optimizer; the data order depends on (seed, epoch) only; a sequence's change takes effect at
// exactly its step; bad configs name their field; the Fashion-MNIST loader reads the real files.
//
// Tiny networks on small synthetic images keep the suite to seconds on two cores.
#include "workers/torch/torch_trainer.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/staged_training.h"
#include "workers/torch/datasets.h"
#include "workers/torch/models.h"
#include "workers/torch/register_torch_trainer.h"
#include "workers/torch/torch_config.h"

namespace hippo::workers {
namespace {

using stage_tree::Segment;
using stage_tree::SegmentFunction;
using torch_trainer::Architecture;
using torch_trainer::InputShape;
using torch_trainer::MakeNetwork;
using torch_trainer::ModelKind;
using torch_trainer::Network;

constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Small synthetic images: 96 training examples in batches of 16, two iterations per step.
std::string SyntheticConfig(const std::string& model_fields) {
  return "{\"dataset\": \"synthetic\", \"image_size\": 12, \"train_limit\": 96, "
         "\"val_limit\": 64, \"batch_size\": 16, \"iterations_per_step\": 2, " +
         model_fields + "}";
}

// A torch trial: the shared straight-versus-staged harness (tests/support) with the torch
// trainer, seven steps by default.
struct Trial : test_support::TrainerTrial {
  Trial() {
    kind = "torch";
    horizon = 7;
    seed = 5;
  }
};

using test_support::Curve;
using test_support::ExpectBitIdentical;
using test_support::Handover;
using test_support::TaskFor;
using test_support::TrainStage;

std::unique_ptr<TorchTrainer> TrainerOn(const std::string& device) {
  absl::StatusOr<std::unique_ptr<TorchTrainer>> trainer = TorchTrainer::Create(device);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return *std::move(trainer);
}

std::unique_ptr<TorchTrainer> CpuTrainer() { return TrainerOn("cpu"); }

test_support::TrainerFactory TrainersOn(const std::string& device) {
  return [device]() -> std::unique_ptr<Trainer> { return TrainerOn(device); };
}

Curve TrainStraight(const Trial& trial, const std::string& device = "cpu") {
  return test_support::TrainStraight(TrainersOn(device), trial);
}

// Each stage on a fresh trainer, as if another worker trained it.
Curve TrainInStages(const Trial& trial, const std::vector<Step>& cuts, Handover handover,
                    const std::string& device = "cpu") {
  return test_support::TrainInStages(TrainersOn(device), trial, cuts, handover);
}

struct ModelCase {
  const char* name;
  const char* config_fields;  // model and optimizer settings
  double lr_before;           // lr on steps [0, 3)
  double lr_after;            // lr from step 3 on: changes in the middle of a stage
  bool dropout;
};

class TorchDeterminismTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(TorchDeterminismTest, StraightStagedAndForkedRunsGiveBitIdenticalMetrics) {
  const ModelCase& model = GetParam();
  Trial trial;
  trial.config = SyntheticConfig(model.config_fields);
  trial.parameters["lr"] = {Segment{0, 3, SegmentFunction::Constant(model.lr_before)},
                            Segment{3, trial.horizon, SegmentFunction::Constant(model.lr_after)}};
  trial.parameters["weight_decay"] = {
      Segment{0, trial.horizon, SegmentFunction::Linear(1e-3, 1e-4, 0, trial.horizon)}};
  if (model.dropout) {
    trial.parameters["dropout"] = {Segment{0, 4, SegmentFunction::Constant(0.2)},
                                   Segment{4, trial.horizon, SegmentFunction::Constant(0.0)}};
  }
  const Curve straight = TrainStraight(trial);
  ASSERT_EQ(straight.size(), static_cast<size_t>(trial.horizon));
  for (const auto& [step, metrics] : straight) {
    EXPECT_TRUE(metrics.contains("loss") && metrics.contains("val_loss") &&
                metrics.contains("val_accuracy"))
        << "step " << step;
    EXPECT_TRUE(std::isfinite(metrics.at("loss"))) << "step " << step;
  }
  // Cuts at 2 and 5: the lr change at step 3 falls inside the middle stage.
  ExpectBitIdentical(straight, TrainInStages(trial, {2, 5}, Handover::kCheckpointBytes),
                     std::string(model.name) + " through checkpoint bytes");
  ExpectBitIdentical(straight, TrainInStages(trial, {1, 3, 4}, Handover::kForkCopy),
                     std::string(model.name) + " through fork copies");
}

INSTANTIATE_TEST_SUITE_P(
    EveryModelAndOptimizer, TorchDeterminismTest,
    ::testing::Values(
        ModelCase{"mlp_sgd_nesterov",
                  "\"model\": \"mlp\", \"depth\": 2, \"width\": 32, \"optimizer\": \"sgd\", "
                  "\"nesterov\": true",
                  0.05, 0.01, true},
        ModelCase{"mlp_adam",
                  "\"model\": \"mlp\", \"depth\": 1, \"width\": 24, \"optimizer\": "
                  "\"adam\"",
                  0.003, 0.001, true},
        ModelCase{"cnn_adamw",
                  "\"model\": \"cnn\", \"layers\": 2, \"channels\": 4, \"kernel_size\": 3, "
                  "\"optimizer\": \"adamw\"",
                  0.003, 0.0005, true},
        // Per-layer sizes, neither uniform nor doubling.
        ModelCase{"cnn_per_layer_channels",
                  "\"model\": \"cnn\", \"layers\": 3, \"channels_0\": 6, \"channels_1\": 3, "
                  "\"channels_2\": 5, \"optimizer\": \"sgd\"",
                  0.05, 0.01, true},
        ModelCase{"mlp_per_layer_widths",
                  "\"model\": \"mlp\", \"depth\": 2, \"width_0\": 20, \"width_1\": 12, "
                  "\"optimizer\": \"adam\"",
                  0.003, 0.001, false},
        ModelCase{"resnet8_sgd",
                  "\"model\": \"resnet\", \"depth\": 8, \"width_multiplier\": 0.25, "
                  "\"optimizer\": \"sgd\"",
                  0.05, 0.005, false},
        // Checkpoints are written contiguous and loaded into channels-last storages.
        ModelCase{"resnet8_channels_last",
                  "\"model\": \"resnet\", \"depth\": 8, \"width_multiplier\": 0.25, "
                  "\"optimizer\": \"sgd\", \"memory_format\": \"channels_last\"",
                  0.05, 0.005, false}),
    [](const ::testing::TestParamInfo<ModelCase>& info) { return std::string(info.param.name); });

// The memory layout changes how convolutions run, not what they compute: the same trial's
// curves agree within float rounding, and a state moves between layouts.
TEST(TorchTrainerTest, ChannelsLastTrainsTheSameModelAsContiguous) {
  Trial trial;
  trial.horizon = 4;
  trial.parameters["lr"] = {Segment{0, trial.horizon, SegmentFunction::Constant(0.05)}};
  const std::string model = "\"model\": \"cnn\", \"layers\": 2, \"channels\": 4";
  trial.config = SyntheticConfig(model + ", \"memory_format\": \"contiguous\"");
  const Curve contiguous = TrainStraight(trial);
  trial.config = SyntheticConfig(model + ", \"memory_format\": \"channels_last\"");
  const Curve channels_last = TrainStraight(trial);
  ASSERT_EQ(contiguous.size(), channels_last.size());
  ASSERT_EQ(contiguous.size(), static_cast<size_t>(trial.horizon));
  for (size_t i = 0; i < contiguous.size(); ++i) {
    for (const char* name : {"loss", "val_loss"}) {
      const double expected = contiguous[i].second.at(name);
      EXPECT_NEAR(channels_last[i].second.at(name), expected, 1e-4 * std::abs(expected))
          << name << " at step " << contiguous[i].first;
    }
  }

  // The layout is real: the network's convolution weights are channels-last.
  const std::unique_ptr<Network> network =
      MakeNetwork(Architecture{.model = ModelKind::kCnn, .layers = 2, .channels = 4},
                  InputShape{.channels = 3, .height = 12, .width = 12}, at::kCPU, 1,
                  at::MemoryFormat::ChannelsLast);
  const at::Tensor& conv = network->parameters().front().tensor;
  ASSERT_EQ(conv.dim(), 4);
  EXPECT_TRUE(conv.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_FALSE(conv.is_contiguous());

  // A contiguous state's checkpoint resumes on a channels-last trainer as if it had stayed.
  trial.config = SyntheticConfig(model + ", \"memory_format\": \"contiguous\"");
  std::unique_ptr<TorchTrainer> trainer = CpuTrainer();
  auto state = trainer->NewState(TaskFor(trial, 0, trial.horizon));
  ASSERT_TRUE(state.ok()) << state.status();
  Curve head;
  TrainStage(*trainer, trial, 0, 2, **state, head);
  absl::StatusOr<std::string> bytes = (*state)->Serialize();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  trainer.reset();
  trial.config = SyntheticConfig(model + ", \"memory_format\": \"channels_last\"");
  std::unique_ptr<TorchTrainer> other = CpuTrainer();
  auto resumed = other->Deserialize(TaskFor(trial, 2, trial.horizon), *bytes);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  Curve tail;
  TrainStage(*other, trial, 2, trial.horizon, **resumed, tail);
  ASSERT_EQ(tail.size(), 2u);
  for (size_t i = 0; i < tail.size(); ++i) {
    const double expected = contiguous[2 + i].second.at("loss");
    EXPECT_NEAR(tail[i].second.at("loss"), expected, 1e-4 * std::abs(expected))
        << "loss at step " << tail[i].first;
  }
}

// On a GPU (skipped where this build or machine has none), with the CUDA graph and
// channels-last defaults, in fp32 and bf16: with `deterministic`, the same trial trained
// straight, as stages handed over through checkpoint bytes, and as stages forked in memory gives
// the same bits, as on the CPU. (Without it cuDNN autotunes and may use algorithms that sum in
// a varying order; two straight runs then differ by up to a few percent of the loss after a few
// dozen iterations of this small network, so only `deterministic` makes a sharp test.)
TEST(TorchTrainerTest, CudaStraightStagedAndForkedAreIdenticalWhenDeterministic) {
  if (!TorchTrainer::Create("cuda:0").ok()) GTEST_SKIP() << "no CUDA device";
  for (const char* precision : {"fp32", "bf16"}) {
    Trial trial;
    trial.config =
        "{\"dataset\": \"synthetic\", \"image_size\": 16, \"image_channels\": 3, "
        "\"train_limit\": 256, \"val_limit\": 128, \"batch_size\": 32, "
        "\"iterations_per_step\": 4, \"model\": \"resnet\", \"depth\": 8, "
        "\"optimizer\": \"sgd\", \"nesterov\": true, \"deterministic\": true, "
        "\"precision\": \"" +
        std::string(precision) + "\"}";
    trial.parameters["lr"] = {Segment{0, 3, SegmentFunction::Constant(0.05)},
                              Segment{3, trial.horizon, SegmentFunction::Constant(0.01)}};
    const Curve straight = TrainStraight(trial, "cuda:0");
    ASSERT_EQ(straight.size(), static_cast<size_t>(trial.horizon)) << precision;
    ExpectBitIdentical(straight, TrainStraight(trial, "cuda:0"),
                       absl::StrCat(precision, ": a second straight run"));
    ExpectBitIdentical(straight, TrainInStages(trial, {2, 5}, Handover::kCheckpointBytes, "cuda:0"),
                       absl::StrCat(precision, " through checkpoint bytes"));
    ExpectBitIdentical(straight, TrainInStages(trial, {1, 3, 4}, Handover::kForkCopy, "cuda:0"),
                       absl::StrCat(precision, " through fork copies"));
  }
}

// A NAS worker trains a new network nearly every stage. On a GPU (skipped where this build or
// machine has none), what the CUDA caching allocator reserves stays near what the kept
// workspaces use, however many networks went before: an evicted workspace's graph pool and the
// workspaces cuDNN's autotuning tried go back to the driver, for the other worker processes on
// the GPU. Twenty networks of about one size, each a new shape (a new workspace and graph). On
// the CPU the trainer reserves nothing on a device.
TEST(TorchTrainerTest, CudaReservedMemoryStaysBoundedAcrossManyNetworks) {
  EXPECT_EQ(CpuTrainer()->device_bytes_reserved(), 0);
  if (!TorchTrainer::Create("cuda:0").ok()) GTEST_SKIP() << "no CUDA device";
  std::unique_ptr<TorchTrainer> trainer = TrainerOn("cuda:0");
  std::vector<int64_t> reserved;
  for (int channels = 16; channels < 36; ++channels) {
    Trial trial;
    trial.horizon = 2;
    trial.config = absl::StrCat(
        "{\"dataset\": \"synthetic\", \"image_size\": 32, \"image_channels\": 3, "
        "\"train_limit\": 512, \"val_limit\": 256, \"batch_size\": 64, "
        "\"iterations_per_step\": 4, \"model\": \"cnn\", \"layers\": 2, \"channels\": ",
        channels, "}");
    trial.parameters["lr"] = {Segment{0, trial.horizon, SegmentFunction::Constant(0.05)}};
    auto state = trainer->NewState(TaskFor(trial, 0, trial.horizon));
    ASSERT_TRUE(state.ok()) << state.status();
    Curve curve;
    TrainStage(*trainer, trial, 0, trial.horizon, **state, curve);
    ASSERT_EQ(curve.size(), 2u) << channels << " channels";
    reserved.push_back(trainer->device_bytes_reserved());
  }
  const int64_t settled = *std::max_element(reserved.begin(), reserved.begin() + 3);
  for (size_t i = 3; i < reserved.size(); ++i) {
    EXPECT_LE(reserved[i], 2 * settled)
        << "network " << i << ": " << reserved[i] << " bytes reserved, against " << settled
        << " after the first three";
  }
}

TEST(TorchTrainerTest, MidStageCheckpointResumesBitIdentically) {
  Trial trial;
  trial.config = SyntheticConfig("\"model\": \"cnn\", \"layers\": 1, \"channels\": 4");
  trial.parameters["lr"] = {Segment{0, trial.horizon, SegmentFunction::Constant(0.05)}};
  const Curve straight = TrainStraight(trial);

  // One trainer alive at a time: the default thread count (hardware threads / torch trainers)
  // is the same for every run, and CPU results depend on it.
  std::unique_ptr<TorchTrainer> trainer = CpuTrainer();
  auto state = trainer->NewState(TaskFor(trial, 0, trial.horizon));
  ASSERT_TRUE(state.ok()) << state.status();
  StageTask task = TaskFor(trial, 0, trial.horizon);
  StageControl control;
  control.SetAssignedCheckpoints(task.checkpoint_steps);
  ASSERT_TRUE(control.RequestCheckpoint(4));
  std::string at_four;
  TrainCallbacks callbacks;
  callbacks.checkpoint = [&at_four](Step step, const TrainingState& at) -> absl::Status {
    if (step == 4) {
      absl::StatusOr<std::string> bytes = at.Serialize();
      if (!bytes.ok()) return bytes.status();
      at_four = *bytes;
    }
    return absl::OkStatus();
  };
  ASSERT_TRUE(trainer->Train(task, **state, control, callbacks).ok());
  ASSERT_FALSE(at_four.empty());
  trainer.reset();

  auto resumed = CpuTrainer()->Deserialize(TaskFor(trial, 4, trial.horizon), at_four);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ((*resumed)->step(), 4);
  Curve tail;
  std::unique_ptr<TorchTrainer> other = CpuTrainer();
  TrainStage(*other, trial, 4, trial.horizon, **resumed, tail);
  ExpectBitIdentical(Curve(straight.begin() + 4, straight.end()), tail, "resumed at step 4");
}

TEST(TorchTrainerTest, EpochOrderDependsOnlyOnSeedAndEpoch) {
  absl::StatusOr<std::vector<int64_t>> order = EpochOrder(7, 3, 1000);
  ASSERT_TRUE(order.ok()) << order.status();
  EXPECT_EQ(*order, *EpochOrder(7, 3, 1000));
  std::vector<int64_t> sorted = *order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(*order, *EpochOrder(7, 4, 1000));
  EXPECT_NE(*order, *EpochOrder(8, 3, 1000));
}

// Two trials of one family that never change their weights (lr 0) but differ in their other
// hyper-parameters see the same batches: their training losses agree at every step. Another
// seed draws other batches (and weights).
TEST(TorchTrainerTest, BatchesDependOnTheSeedNotOnTheTrial) {
  Trial still;
  still.horizon = 8;  // more than one epoch of 6 batches
  still.config = SyntheticConfig("\"model\": \"mlp\", \"depth\": 1, \"width\": 16");
  still.parameters["lr"] = {Segment{0, still.horizon, SegmentFunction::Constant(0.0)}};
  still.parameters["momentum"] = {Segment{0, still.horizon, SegmentFunction::Constant(0.9)}};
  Trial other = still;
  other.parameters["momentum"] = {Segment{0, still.horizon, SegmentFunction::Constant(0.1)}};
  other.parameters["weight_decay"] = {Segment{0, still.horizon, SegmentFunction::Constant(0.5)}};
  const Curve a = TrainStraight(still);
  const Curve b = TrainInStages(other, {3}, Handover::kCheckpointBytes);
  ASSERT_EQ(a.size(), b.size());
  std::set<double> losses;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].second.at("loss"), b[i].second.at("loss")) << "step " << i;
    losses.insert(a[i].second.at("loss"));
  }
  EXPECT_GT(losses.size(), 1u) << "every step saw the same batches";
  Trial reseeded = still;
  reseeded.seed = still.seed + 1;
  EXPECT_NE(TrainStraight(reseeded)[0].second.at("loss"), a[0].second.at("loss"));
}

// lr 0 until step 3, then 0.1; against lr 0 throughout. One iteration per step: the loss of
// step s is measured before step s's update, validation after it.
TEST(TorchTrainerTest, SequenceChangeTakesEffectAtExactlyItsStep) {
  Trial frozen;
  frozen.horizon = 6;
  frozen.config =
      "{\"dataset\": \"synthetic\", \"image_size\": 8, \"train_limit\": 64, \"val_limit\": 32, "
      "\"batch_size\": 16, \"iterations_per_step\": 1, \"model\": \"mlp\", \"width\": 16}";
  frozen.parameters["lr"] = {Segment{0, frozen.horizon, SegmentFunction::Constant(0.0)}};
  Trial changed = frozen;
  changed.parameters["lr"] = {Segment{0, 3, SegmentFunction::Constant(0.0)},
                              Segment{3, frozen.horizon, SegmentFunction::Constant(0.1)}};
  const Curve a = TrainStraight(frozen);
  const Curve b = TrainStraight(changed);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (int step = 0; step < 3; ++step) EXPECT_EQ(a[step].second, b[step].second) << step;
  EXPECT_EQ(a[3].second.at("loss"), b[3].second.at("loss"));
  EXPECT_NE(a[3].second.at("val_loss"), b[3].second.at("val_loss"));
  EXPECT_NE(a[4].second.at("loss"), b[4].second.at("loss"));
}

TEST(TorchTrainerTest, ValidationFollowsTheEvalEverySchedule) {
  Trial trial;
  trial.horizon = 5;
  trial.config = SyntheticConfig("\"model\": \"mlp\", \"width\": 8, \"eval_every\": 2");
  const Curve curve = TrainStraight(trial);
  ASSERT_EQ(curve.size(), 5u);
  for (const auto& [step, metrics] : curve) {
    EXPECT_EQ(metrics.contains("val_accuracy"), (step + 1) % 2 == 0) << "step " << step;
    EXPECT_TRUE(metrics.contains("loss"));
  }
}

TEST(TorchTrainerTest, LearnsTheSyntheticTask) {
  Trial trial;
  trial.horizon = 6;
  trial.config =
      "{\"dataset\": \"synthetic\", \"image_size\": 8, \"train_limit\": 512, \"val_limit\": 256, "
      "\"batch_size\": 32, \"model\": \"mlp\", \"width\": 32, \"optimizer\": \"adam\"}";
  trial.parameters["lr"] = {Segment{0, trial.horizon, SegmentFunction::Constant(0.003)}};
  const Curve curve = TrainStraight(trial);
  ASSERT_EQ(curve.size(), 6u);
  EXPECT_LT(curve.back().second.at("loss"), curve.front().second.at("loss"));
  EXPECT_GT(curve.back().second.at("val_accuracy"), 0.6);
}

TEST(TorchTrainerTest, CancelStopsAtAStepBoundary) {
  Trial trial;
  trial.config = SyntheticConfig("\"model\": \"mlp\", \"width\": 8");
  std::unique_ptr<TorchTrainer> trainer = CpuTrainer();
  auto state = trainer->NewState(TaskFor(trial, 0, trial.horizon));
  ASSERT_TRUE(state.ok());
  StageControl control;
  control.Cancel();
  absl::StatusOr<StageOutcome> outcome =
      trainer->Train(TaskFor(trial, 0, trial.horizon), **state, control, TrainCallbacks{});
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ((*state)->step(), 0);
}

TEST(TorchTrainerTest, CheckpointOfAnotherModelIsRefused) {
  Trial trial;
  trial.config = SyntheticConfig("\"model\": \"mlp\", \"width\": 8");
  std::unique_ptr<TorchTrainer> trainer = CpuTrainer();
  auto state = trainer->NewState(TaskFor(trial, 0, trial.horizon));
  ASSERT_TRUE(state.ok());
  absl::StatusOr<std::string> bytes = (*state)->Serialize();
  ASSERT_TRUE(bytes.ok());
  Trial wider = trial;
  wider.config = SyntheticConfig("\"model\": \"mlp\", \"width\": 9");
  EXPECT_EQ(trainer->Deserialize(TaskFor(wider, 0, 7), *bytes).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trainer->Deserialize(TaskFor(trial, 0, 7), "garbage").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(trainer->Deserialize(TaskFor(trial, 0, 7), bytes->substr(0, bytes->size() - 3))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

struct BadConfig {
  std::string config;
  std::map<std::string, StaticValue> static_parameters;
  std::string field;   // the message must name it
  std::string advice;  // and say this
};

TEST(TorchTrainerTest, BadConfigsAreInvalidArgumentNamingTheField) {
  const std::vector<BadConfig> cases = {
      {"{\"model\": \"resnt\"}", {}, "trainer.config.model", "use mlp, cnn or resnet"},
      {"{\"dataset\": \"mnist\"}", {}, "trainer.config.dataset", "fashion_mnist, cifar10"},
      {"{\"modle\": \"cnn\"}", {}, "trainer.config.modle", "unknown field"},
      {"{\"batch_size\": 0}", {}, "trainer.config.batch_size", "whole number"},
      {"{\"optimizer\": \"rmsprop\"}", {}, "trainer.config.optimizer", "sgd, adam or adamw"},
      {"{\"model\": \"resnet\", \"depth\": 21}", {}, "trainer.config.depth", "6n+2"},
      {"{\"precision\": \"bf16\"}", {}, "trainer.config.precision", "fp32"},
      {"{\"dataset\": \"cifar10\"}", {}, "trainer.config.data_dir", "CIFAR-10"},
      {"{\"dataset\": \"synthetic\", \"train_limit\": 8, \"batch_size\": 16}",
       {},
       "trainer.config.batch_size",
       "lower batch_size"},
      {"{}", {{"model", StaticValue(std::string("transformer"))}}, "parameter 'model'", "use mlp"},
      {"{\"model\": \"mlp\"}",
       {{"width", StaticValue(std::string("wide"))}},
       "parameter 'width'",
       "number"},
      {"{\"optimizer\": \"adam\", \"nesterov\": true}", {}, "nesterov", "sgd"},
      {"[1, 2]", {}, "trainer.config", "object"},
      {"{\"model\": \"cnn\", \"kernel_size\": 4}", {}, "trainer.config.kernel_size", "odd"},
      {"{\"memory_format\": \"nhwc\"}", {}, "trainer.config.memory_format", "channels_last"},
      {"{\"model\": \"cnn\", \"layers\": 2}",
       {{"channels_2", StaticValue(8.0)}},
       "parameter 'channels_2'",
       "when: {param: layers, at_least: 3}"},
      {"{\"model\": \"mlp\", \"depth\": 1, \"width_3\": 8}",
       {},
       "trainer.config.width_3",
       "at_least: 4"},
      {"{\"model\": \"cnn\", \"layers\": 2}",
       {{"channels_1", StaticValue(0.0)}},
       "parameter 'channels_1'",
       "whole number in [1, 1024]"},
      {"{\"model\": \"mlp\", \"width_01\": 8}", {}, "trainer.config.width_01", "unknown field"},
  };
  std::unique_ptr<TorchTrainer> trainer = CpuTrainer();
  for (const BadConfig& bad : cases) {
    Trial trial;
    trial.config = bad.config;
    trial.static_parameters = bad.static_parameters;
    absl::StatusOr<std::unique_ptr<TrainingState>> state = trainer->NewState(TaskFor(trial, 0, 3));
    ASSERT_FALSE(state.ok()) << bad.config;
    EXPECT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument) << state.status();
    EXPECT_NE(state.status().message().find(bad.field), absl::string_view::npos) << state.status();
    EXPECT_NE(state.status().message().find(bad.advice), absl::string_view::npos) << state.status();
  }
}

// Per-layer sizes (`channels_<i>`, `width_<i>`) set each layer's size, override the uniform rule
// layer by layer, and describe the network by its layout: per-layer values that follow the
// uniform rule give the uniform signature, so their states are interchangeable.
TEST(TorchTrainerTest, PerLayerSizesShapeTheNetworkAndItsSignature) {
  const auto settings_of = [](const std::string& config,
                              std::map<std::string, StaticValue> statics) {
    Trial trial;
    trial.config = SyntheticConfig(config);
    trial.static_parameters = std::move(statics);
    absl::StatusOr<torch_trainer::TorchSettings> settings =
        torch_trainer::ParseTorchSettings(TaskFor(trial, 0, 3));
    EXPECT_TRUE(settings.ok()) << settings.status();
    return settings.value_or(torch_trainer::TorchSettings{});
  };
  const torch_trainer::TorchSettings cnn =
      settings_of("\"model\": \"cnn\"", {{"layers", StaticValue(3.0)},
                                         {"channels_0", StaticValue(6.0)},
                                         {"channels_1", StaticValue(3.0)},
                                         {"channels_2", StaticValue(5.0)}});
  EXPECT_EQ(cnn.architecture.CnnChannels(), (std::vector<int64_t>{6, 3, 5}));
  EXPECT_NE(cnn.architecture.Describe().find("channels=[6,3,5]"), std::string::npos)
      << cnn.architecture.Describe();
  const std::unique_ptr<Network> network = MakeNetwork(
      cnn.architecture, InputShape{.channels = 1, .height = 12, .width = 12}, at::kCPU, 1);
  std::vector<std::vector<int64_t>> conv_shapes;
  for (const auto& [name, tensor] : network->parameters()) {
    if (tensor.dim() == 4) conv_shapes.push_back(tensor.sizes().vec());
  }
  EXPECT_EQ(conv_shapes,
            (std::vector<std::vector<int64_t>>{{6, 1, 3, 3}, {3, 6, 3, 3}, {5, 3, 3, 3}}));

  // One layer named: the others keep the uniform rule (4 doubling).
  const torch_trainer::TorchSettings partial = settings_of(
      "\"model\": \"cnn\", \"layers\": 3, \"channels\": 4", {{"channels_1", StaticValue(5.0)}});
  EXPECT_EQ(partial.architecture.CnnChannels(), (std::vector<int64_t>{4, 5, 16}));

  // The uniform rule written layer by layer is the uniform network.
  const torch_trainer::TorchSettings doubling =
      settings_of("\"model\": \"cnn\", \"layers\": 2",
                  {{"channels_0", StaticValue(8.0)}, {"channels_1", StaticValue(16.0)}});
  const torch_trainer::TorchSettings uniform =
      settings_of("\"model\": \"cnn\", \"layers\": 2, \"channels\": 8", {});
  EXPECT_EQ(doubling.Signature(), uniform.Signature());
  EXPECT_NE(doubling.Signature(), cnn.Signature());

  const torch_trainer::TorchSettings mlp = settings_of(
      "\"model\": \"mlp\", \"depth\": 2, \"width_1\": 12", {{"width_0", StaticValue(20.0)}});
  EXPECT_EQ(mlp.architecture.MlpWidths(), (std::vector<int64_t>{20, 12}));
  EXPECT_NE(mlp.architecture.Describe().find("width=[20,12]"), std::string::npos)
      << mlp.architecture.Describe();
  const std::unique_ptr<Network> perceptron = MakeNetwork(
      mlp.architecture, InputShape{.channels = 1, .height = 12, .width = 12}, at::kCPU, 1);
  std::vector<std::vector<int64_t>> linear_shapes;
  for (const auto& [name, tensor] : perceptron->parameters()) {
    if (name.ends_with(".weight")) linear_shapes.push_back(tensor.sizes().vec());
  }
  EXPECT_EQ(linear_shapes, (std::vector<std::vector<int64_t>>{{20, 144}, {12, 20}, {10, 12}}));
}

TEST(TorchTrainerTest, ArchitectureParameterThatChangesIsRefused) {
  Trial trial;
  trial.config = SyntheticConfig("\"model\": \"mlp\"");
  trial.parameters["width"] = {Segment{0, 2, SegmentFunction::Constant(8)},
                               Segment{2, 7, SegmentFunction::Constant(16)}};
  absl::StatusOr<std::unique_ptr<TrainingState>> state =
      CpuTrainer()->NewState(TaskFor(trial, 0, 7));
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(state.status().message().find("structural"), absl::string_view::npos) << state.status();
}

TEST(TorchTrainerTest, RegisteredKindIsBuiltForCpuAndRefusesBadDevices) {
  RegisterTorchTrainer();
  const std::vector<std::string> kinds = BuiltinTrainerKinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "torch"), kinds.end());
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = MakeBuiltinTrainer("torch", "cpu");
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ((*trainer)->kind(), "torch");
  EXPECT_EQ(MakeBuiltinTrainer("torch", "gpu0").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FashionMnistTest, LoaderReadsTheRealFiles) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)";
  }
  torch_trainer::DataSpec all;
  all.dir = kFashionMnistDir;
  absl::StatusOr<torch_trainer::Dataset> full = torch_trainer::LoadFashionMnist(all);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->train.count, 60000);
  EXPECT_EQ(full->validation.count, 10000);
  EXPECT_EQ(full->height, 28);
  EXPECT_EQ(full->width, 28);
  EXPECT_EQ(full->train.pixels.size(), 60000u * 784u);
  std::set<int> labels(full->train.labels.begin(), full->train.labels.end());
  EXPECT_EQ(labels, (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_LE(*std::max_element(full->validation.labels.begin(), full->validation.labels.end()), 9);

  torch_trainer::DataSpec limited = all;
  limited.train_limit = 500;
  limited.val_limit = 100;
  absl::StatusOr<torch_trainer::Dataset> subset = torch_trainer::LoadFashionMnist(limited);
  ASSERT_TRUE(subset.ok()) << subset.status();
  EXPECT_EQ(subset->train.count, 500);
  EXPECT_EQ(subset->validation.count, 100);
  EXPECT_TRUE(std::equal(subset->train.pixels.begin(), subset->train.pixels.end(),
                         full->train.pixels.begin()));

  torch_trainer::DataSpec missing = all;
  missing.dir = "/nonexistent";
  EXPECT_EQ(torch_trainer::LoadFashionMnist(missing).status().code(), absl::StatusCode::kNotFound);
}

TEST(FashionMnistTest, SmallCnnTrainsOnASubset) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed";
  }
  Trial trial;
  trial.horizon = 2;
  trial.config =
      "{\"dataset\": \"fashion_mnist\", \"train_limit\": 1024, \"val_limit\": 500, "
      "\"batch_size\": 64, \"model\": \"cnn\", \"layers\": 1, \"channels\": 8}";
  trial.parameters["lr"] = {Segment{0, trial.horizon, SegmentFunction::Constant(0.05)}};
  const Curve curve = TrainStraight(trial);
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_GT(curve.back().second.at("val_accuracy"), 0.5);
}

}  // namespace
}  // namespace hippo::workers
