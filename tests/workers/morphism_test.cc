// Net2Net morphisms of the torch trainer (CPU): a widened, deepened, or widened and deepened mlp
// or cnn, and a cnn with a larger kernel, compute the same outputs as their parent in eval mode,
// to float tolerance; a copied unit's outgoing weights are split among its copies in unequal
// shares; optimizer moments are divided among copies so that their sum is kept, and start at
// zero in inserted layers and new kernel taps; children that do not extend their parent are
// refused; TorchTrainer::Morph makes a state that trains
// deterministically and refuses settings that differ beyond the architecture.
#include "workers/torch/morphism.h"

#include <ATen/CPUGeneratorImpl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "workers/torch/models.h"
#include "workers/torch/optimizer.h"
#include "workers/torch/torch_trainer.h"

namespace hippo::workers::torch_trainer {
namespace {

constexpr InputShape kInput{.channels = 1, .height = 12, .width = 12, .classes = 10};

Architecture Mlp(int64_t depth, int64_t width) {
  return Architecture{.model = ModelKind::kMlp, .depth = depth, .width = width};
}

// Blocks after the second keep the 3x3 image (pool_layers 2).
Architecture Cnn(int64_t layers, int64_t channels) {
  return Architecture{.model = ModelKind::kCnn,
                      .layers = layers,
                      .channels = channels,
                      .kernel_size = 3,
                      .pool_layers = 2};
}

// Per-layer sizes (channels_<i>, width_<i>).
Architecture CnnLayers(std::vector<int64_t> sizes) {
  Architecture architecture = Cnn(static_cast<int64_t>(sizes.size()), sizes.front());
  architecture.layer_channels = std::move(sizes);
  return architecture;
}

// The same network with a k x k kernel.
Architecture WithKernel(Architecture architecture, int64_t kernel) {
  architecture.kernel_size = kernel;
  return architecture;
}

Architecture MlpLayers(std::vector<int64_t> widths) {
  Architecture architecture = Mlp(static_cast<int64_t>(widths.size()), widths.front());
  architecture.layer_widths = std::move(widths);
  return architecture;
}

// A network with its optimizer, and its tensors named as in a TorchState.
struct Model {
  std::unique_ptr<Network> network;
  std::unique_ptr<Optimizer> optimizer;

  Model(const Architecture& architecture, OptimizerKind kind, uint64_t seed)
      : network(MakeNetwork(architecture, kInput, at::kCPU, seed)),
        optimizer(std::make_unique<Optimizer>(kind, false, network->parameters(), at::kCPU)) {}

  std::vector<NamedTensor> Tensors() const {
    std::vector<NamedTensor> tensors;
    for (const NamedTensor& e : network->parameters())
      tensors.push_back({"parameter/" + e.name, e.tensor});
    for (const NamedTensor& e : network->buffers())
      tensors.push_back({"buffer/" + e.name, e.tensor});
    for (const NamedTensor& e : optimizer->state())
      tensors.push_back({"optimizer/" + e.name, e.tensor});
    return tensors;
  }

  const at::Tensor& Find(const std::string& name) const {
    static const at::Tensor none;
    for (const NamedTensor& entry : Tensors()) {
      if (entry.name == name) return entry.tensor;
    }
    ADD_FAILURE() << "no tensor " << name;
    return none;
  }
};

// Moves every tensor away from its initial value (batch-norm weights away from 1, running
// statistics away from 0 and 1, moments away from 0), as training would.
void Perturb(const Model& model, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  for (const NamedTensor& entry : model.Tensors()) {
    at::Tensor noise = at::rand(entry.tensor.sizes(), generator, entry.tensor.options());
    if (entry.name.find("running_var") != std::string::npos || entry.name == "optimizer/step" ||
        entry.name.find("exp_avg_sq") != std::string::npos) {
      entry.tensor.copy_(noise + 0.5);
    } else {
      entry.tensor.add_(noise - 0.5);
    }
  }
}

struct Case {
  std::string name;
  Architecture parent;
  Architecture child;
  OptimizerKind optimizer;
};

class MorphismTest : public ::testing::TestWithParam<Case> {};

TEST_P(MorphismTest, ChildComputesTheParentsOutputsInEvalMode) {
  const Case& c = GetParam();
  Model parent(c.parent, c.optimizer, 1);
  Perturb(parent, 2);
  Model child(c.child, c.optimizer, 3);
  absl::StatusOr<std::vector<NamedTensor>> morphed =
      MorphTensors(c.parent, c.child, kInput, parent.Tensors(), child.Tensors(), /*seed=*/7);
  ASSERT_TRUE(morphed.ok()) << morphed.status();
  const std::vector<NamedTensor> slots = child.Tensors();
  ASSERT_EQ(morphed->size(), slots.size());
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < slots.size(); ++i) {
      ASSERT_EQ((*morphed)[i].name, slots[i].name);
      slots[i].tensor.copy_((*morphed)[i].tensor);
    }
  }
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor images = at::randn({16, 1, 12, 12}, generator, at::kFloat);
  at::NoGradGuard no_grad;
  const at::Tensor expected = parent.network->Forward(images, /*training=*/false);
  const at::Tensor got = child.network->Forward(images, /*training=*/false);
  ASSERT_TRUE(got.sizes().equals(expected.sizes()));
  const double scale = expected.abs().max().item<double>();
  const double error = (got - expected).abs().max().item<double>();
  EXPECT_LE(error, 1e-5 * std::max(1.0, scale)) << "largest output " << scale;
  // The morphism changed something: a network of the child's shape from another seed does not
  // compute the same (guards against comparing a network with itself).
  Model other(c.child, c.optimizer, 4);
  EXPECT_GT((other.network->Forward(images, false) - expected).abs().max().item<double>(), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Morphisms, MorphismTest,
    ::testing::Values(
        Case{"MlpWiden", Mlp(2, 8), Mlp(2, 13), OptimizerKind::kSgd},
        Case{"MlpDeepen", Mlp(2, 8), Mlp(4, 8), OptimizerKind::kAdam},
        Case{"MlpWidenAndDeepen", Mlp(1, 8), Mlp(3, 12), OptimizerKind::kSgd},
        Case{"CnnWiden", Cnn(2, 4), Cnn(2, 7), OptimizerKind::kAdam},
        Case{"CnnDeepen", Cnn(2, 4), Cnn(3, 4), OptimizerKind::kSgd},
        Case{"CnnWidenAndDeepen", Cnn(2, 4), Cnn(4, 5), OptimizerKind::kAdamW},
        Case{"CnnPerLayer", CnnLayers({4, 6}), CnnLayers({5, 6, 9}), OptimizerKind::kSgd},
        Case{"MlpPerLayer", MlpLayers({8, 5}), MlpLayers({8, 7, 5}), OptimizerKind::kAdam},
        Case{"CnnLargerKernel", Cnn(2, 4), WithKernel(Cnn(2, 4), 5), OptimizerKind::kSgd},
        Case{"CnnKernel3To7", Cnn(1, 4), WithKernel(Cnn(1, 4), 7), OptimizerKind::kAdam},
        Case{"CnnLargerKernelWiderDeeper", CnnLayers({4, 6}), WithKernel(CnnLayers({5, 6, 9}), 5),
             OptimizerKind::kSgd}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(MorphismMomentsTest, CopiesShareTheirUnitsMomentsAndInsertedLayersStartAtZero) {
  Model parent(Mlp(1, 6), OptimizerKind::kAdam, 1);
  Perturb(parent, 2);
  Model child(Mlp(2, 10), OptimizerKind::kAdam, 3);
  absl::StatusOr<std::vector<NamedTensor>> morphed =
      MorphTensors(Mlp(1, 6), Mlp(2, 10), kInput, parent.Tensors(), child.Tensors(), 7);
  ASSERT_TRUE(morphed.ok()) << morphed.status();
  std::map<std::string, at::Tensor> by_name;
  for (const NamedTensor& entry : *morphed) by_name[entry.name] = entry.tensor;
  // hidden0's units are copied (6 -> 10): the rows of a unit's copies sum to its first moment.
  // Its inputs (pixels) are not copied, so summing all rows compares the two per input.
  const at::Tensor parent_first = parent.Find("optimizer/hidden0.weight.exp_avg");
  const at::Tensor child_first = by_name.at("optimizer/hidden0.weight.exp_avg");
  EXPECT_TRUE(at::allclose(child_first.sum(0), parent_first.sum(0), 1e-5, 1e-6));
  EXPECT_GT(child_first.size(0), parent_first.size(0));
  // The inserted layer hidden1 has no history.
  EXPECT_EQ(by_name.at("optimizer/hidden1.weight.exp_avg").abs().sum().item<double>(), 0.0);
  EXPECT_EQ(by_name.at("optimizer/hidden1.weight.exp_avg_sq").abs().sum().item<double>(), 0.0);
  // Adam's step count carries over.
  EXPECT_EQ(by_name.at("optimizer/step").item<double>(),
            parent.Find("optimizer/step").item<double>());
  // The same seed copies the same units.
  absl::StatusOr<std::vector<NamedTensor>> again =
      MorphTensors(Mlp(1, 6), Mlp(2, 10), kInput, parent.Tensors(), child.Tensors(), 7);
  ASSERT_TRUE(again.ok());
  for (size_t i = 0; i < again->size(); ++i) {
    EXPECT_TRUE(at::equal((*again)[i].tensor, (*morphed)[i].tensor)) << (*again)[i].name;
  }
}

// A copy that carried the same share of its unit's outgoing weights as the unit would get the
// same gradient for ever, and the widened layer would never use it: the shares must differ.
TEST(MorphismSharesTest, CopiesSplitTheirUnitsOutgoingWeightsInUnequalSharesThatSumToThem) {
  Model parent(Mlp(1, 6), OptimizerKind::kSgd, 1);
  Perturb(parent, 2);
  Model child(Mlp(1, 12), OptimizerKind::kSgd, 3);
  absl::StatusOr<std::vector<NamedTensor>> morphed =
      MorphTensors(Mlp(1, 6), Mlp(1, 12), kInput, parent.Tensors(), child.Tensors(), 7);
  ASSERT_TRUE(morphed.ok()) << morphed.status();
  std::map<std::string, at::Tensor> by_name;
  for (const NamedTensor& entry : *morphed) by_name[entry.name] = entry.tensor;
  const at::Tensor parent_in = parent.Find("parameter/hidden0.weight");
  const at::Tensor parent_out = parent.Find("parameter/output.weight");
  const at::Tensor child_in = by_name.at("parameter/hidden0.weight");
  const at::Tensor child_out = by_name.at("parameter/output.weight");
  int64_t copied_units = 0;
  for (int64_t unit = 0; unit < 6; ++unit) {
    // The child's units with this unit's incoming weights: the unit and its copies.
    at::Tensor sum = at::zeros_like(parent_out.select(1, unit));
    std::vector<at::Tensor> columns;
    for (int64_t j = 0; j < 12; ++j) {
      if (!at::equal(child_in[j], parent_in[unit])) continue;
      columns.push_back(child_out.select(1, j));
      sum += columns.back();
    }
    ASSERT_FALSE(columns.empty()) << "unit " << unit << " was lost";
    EXPECT_TRUE(at::allclose(sum, parent_out.select(1, unit), 1e-5, 1e-6)) << "unit " << unit;
    if (columns.size() < 2) continue;
    ++copied_units;
    for (size_t k = 1; k < columns.size(); ++k) {
      EXPECT_FALSE(at::allclose(columns[k], columns[0])) << "unit " << unit << ": equal shares";
    }
  }
  EXPECT_GT(copied_units, 0);
}

TEST(MorphismRefusalTest, ChildrenThatDoNotExtendTheirParentAreRefused) {
  const auto refused = [](const Architecture& parent, const Architecture& child,
                          const std::string& says) {
    const absl::Status status = CheckExtends(parent, child, kInput);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_NE(status.message().find(says), std::string::npos) << status;
  };
  refused(Mlp(2, 8), Mlp(2, 6), "fewer than");
  refused(Mlp(3, 8), Mlp(2, 8), "fewer layers");
  refused(Mlp(0, 8), Mlp(1, 8), "no hidden layer");
  refused(Mlp(2, 8), Cnn(2, 8), "models differ");
  refused(WithKernel(Cnn(2, 4), 5), Cnn(2, 4), "kernel size goes from 5 to 3");
  refused(Cnn(2, 4), WithKernel(Cnn(2, 4), 4), "kernel size goes from 3 to 4");
  // Every block pools on a 12x12 image while it is at least 2x2: a third block would pool.
  Architecture pooling_parent = Cnn(2, 4);
  pooling_parent.pool_layers = -1;
  Architecture pooling_child = Cnn(3, 4);
  pooling_child.pool_layers = -1;
  refused(pooling_parent, pooling_child, "pool_layers");
  EXPECT_TRUE(CheckExtends(Cnn(2, 4), Cnn(3, 4), kInput).ok());
  EXPECT_TRUE(CheckExtends(Cnn(2, 4), WithKernel(Cnn(2, 4), 5), kInput).ok());
}

// The taps a larger kernel adds are zero, with no history: the kept taps and their moments are
// the parent's.
TEST(MorphismKernelTest, LargerKernelKeepsTheParentsTapsAtItsCentreAndAddsZeros) {
  Model parent(Cnn(1, 4), OptimizerKind::kSgd, 1);
  Perturb(parent, 2);
  Model child(WithKernel(Cnn(1, 4), 5), OptimizerKind::kSgd, 3);
  absl::StatusOr<std::vector<NamedTensor>> morphed = MorphTensors(
      Cnn(1, 4), WithKernel(Cnn(1, 4), 5), kInput, parent.Tensors(), child.Tensors(), 7);
  ASSERT_TRUE(morphed.ok()) << morphed.status();
  std::map<std::string, at::Tensor> by_name;
  for (const NamedTensor& entry : *morphed) by_name[entry.name] = entry.tensor;
  for (const std::string name : {"parameter/conv0.weight", "optimizer/conv0.weight.momentum"}) {
    const at::Tensor grown = by_name.at(name);
    ASSERT_EQ(grown.sizes().vec(), (std::vector<int64_t>{4, 1, 5, 5})) << name;
    EXPECT_TRUE(at::equal(grown.slice(2, 1, 4).slice(3, 1, 4), parent.Find(name))) << name;
    EXPECT_GT(grown.slice(2, 1, 4).slice(3, 1, 4).abs().sum().item<double>(), 0.0) << name;
    at::Tensor border = grown.clone();
    border.slice(2, 1, 4).slice(3, 1, 4).zero_();
    EXPECT_EQ(border.abs().sum().item<double>(), 0.0) << name << ": a new tap is not zero";
  }
}

}  // namespace
}  // namespace hippo::workers::torch_trainer

namespace hippo::workers {
namespace {

std::string CnnConfig(int64_t layers, int64_t channels, int64_t batch_size = 16,
                      int64_t kernel_size = 3) {
  return absl::StrCat(
      "{\"dataset\": \"synthetic\", \"image_size\": 12, \"train_limit\": 96, \"val_limit\": 64, "
      "\"batch_size\": ",
      batch_size, ", \"iterations_per_step\": 2, \"model\": \"cnn\", \"pool_layers\": 2, ",
      "\"layers\": ", layers, ", \"channels\": ", channels, ", \"kernel_size\": ", kernel_size,
      "}");
}

// The stage [start, end) of a torch trial with `config`, a constant learning rate of 0.05.
StageTask TaskOf(const std::string& config, Step start, Step end) {
  StageTask task;
  task.stage_id = start + 1;
  task.start_step = start;
  task.end_step = end;
  task.parameters["lr"] = {stage_tree::Segment{0, 6, stage_tree::SegmentFunction::Constant(0.05)}};
  task.trainer_kind = "torch";
  task.trainer_config_json = config;
  task.seed = 5;
  task.checkpoint_steps = {end};
  return task;
}

using Curve = std::vector<std::pair<Step, Metrics>>;

// Trains `task` on `state`; the metrics of every step.
Curve TrainOn(TorchTrainer& trainer, const StageTask& task, TrainingState& state) {
  Curve curve;
  StageControl control;
  control.SetAssignedCheckpoints(task.checkpoint_steps);
  TrainCallbacks callbacks;
  callbacks.progress = [&](Step step, const Metrics& metrics) {
    curve.emplace_back(step, metrics);
  };
  callbacks.checkpoint = [](Step, const TrainingState&) { return absl::OkStatus(); };
  absl::StatusOr<StageOutcome> outcome = trainer.Train(task, state, control, callbacks);
  EXPECT_TRUE(outcome.ok()) << outcome.status();
  return curve;
}

TEST(TorchMorphTest, MorphedStateTrainsDeterministicallyAndSurvivesSerialisation) {
  absl::StatusOr<std::unique_ptr<TorchTrainer>> trainer = TorchTrainer::Create("cpu");
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const StageTask parent_task = TaskOf(CnnConfig(2, 4), 0, 3);
  absl::StatusOr<std::unique_ptr<TrainingState>> state = (*trainer)->NewState(parent_task);
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(TrainOn(**trainer, parent_task, **state).size(), 3u);

  // Wider (channels 4 -> 6), deeper (2 -> 3 blocks) and with 5x5 kernels, from the parent's
  // state at step 3.
  const StageTask child_task = TaskOf(CnnConfig(3, 6, 16, /*kernel_size=*/5), 3, 6);
  absl::StatusOr<std::unique_ptr<TrainingState>> first =
      (*trainer)->Morph(parent_task, child_task, **state);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->step(), 3);
  absl::StatusOr<std::string> bytes = (*first)->Serialize();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::unique_ptr<TrainingState>> second =
      (*trainer)->Deserialize(child_task, *bytes);
  ASSERT_TRUE(second.ok()) << second.status();

  const Curve straight = TrainOn(**trainer, child_task, **first);
  const Curve reloaded = TrainOn(**trainer, child_task, **second);
  ASSERT_EQ(straight.size(), 3u);
  EXPECT_EQ(straight, reloaded);
}

TEST(TorchMorphTest, SettingsOtherThanTheArchitectureMustMatch) {
  absl::StatusOr<std::unique_ptr<TorchTrainer>> trainer = TorchTrainer::Create("cpu");
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const StageTask parent_task = TaskOf(CnnConfig(2, 4), 0, 3);
  absl::StatusOr<std::unique_ptr<TrainingState>> state = (*trainer)->NewState(parent_task);
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<std::unique_ptr<TrainingState>> morphed =
      (*trainer)->Morph(parent_task, TaskOf(CnnConfig(3, 4, /*batch_size=*/32), 0, 3), **state);
  EXPECT_TRUE(absl::IsInvalidArgument(morphed.status())) << morphed.status();
  EXPECT_NE(morphed.status().message().find("architecture only"), std::string::npos);
}

TEST(TorchMorphTest, TrainersWithoutMorphismsRefuseInheritedStates) {
  absl::StatusOr<std::unique_ptr<Trainer>> sim = MakeBuiltinTrainer("sim");
  ASSERT_TRUE(sim.ok()) << sim.status();
  StageTask task = TaskOf("{}", 0, 3);
  task.trainer_kind = "sim";
  absl::StatusOr<std::unique_ptr<TrainingState>> state = (*sim)->NewState(task);
  ASSERT_TRUE(state.ok()) << state.status();
  const absl::StatusOr<std::unique_ptr<TrainingState>> morphed = (*sim)->Morph(task, task, **state);
  EXPECT_TRUE(absl::IsUnimplemented(morphed.status())) << morphed.status();
}

}  // namespace
}  // namespace hippo::workers
