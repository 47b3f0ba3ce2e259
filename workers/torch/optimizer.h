// SGD (momentum, Nesterov, weight decay), Adam and AdamW, written with tensor operations only.
//
// torch::optim reads its hyper-parameters from host doubles, which a captured CUDA graph would
// freeze. Here every hyper-parameter lives in a 0-dim tensor on the device: SetValues writes the
// step's values into them (an asynchronous fill, no host synchronisation) and Update reads them,
// so one captured Update follows any schedule. The CPU runs the same code.
//
// Update works on all parameters at once with ATen's multi-tensor (foreach) ops: a handful of
// kernel launches per iteration instead of several per parameter tensor, which in a replayed
// CUDA graph is most of the optimizer's cost for small convolutional networks.
//
// The math, per parameter p with gradient g (PyTorch's conventions):
//   sgd:   g += wd p;  b = momentum b + g;  d = nesterov ? g + momentum b : b;  p -= lr d
//   adam:  g += wd p;  t += 1;  m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2;
//          p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//   adamw: p *= 1 - lr wd, then adam without the g += wd p.
#ifndef HIPPO_WORKERS_TORCH_OPTIMIZER_H_
#define HIPPO_WORKERS_TORCH_OPTIMIZER_H_

#include <ATen/ATen.h>

#include <vector>

#include "workers/torch/models.h"
#include "workers/torch/torch_config.h"

namespace hippo::workers::torch_trainer {

class Optimizer {
 public:
  // State tensors (zeros) for `parameters`, on `device`.
  Optimizer(OptimizerKind kind, bool nesterov, const std::vector<NamedTensor>& parameters,
            at::Device device);
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Writes the values of one step into the device tensors Update reads.
  void SetValues(const StepValues& values);

  // One update of `parameters` (the network's, same order) from `gradients`. Call under
  // at::NoGradGuard. Tensor operations only, so it can be captured in a CUDA graph.
  void Update(const std::vector<at::Tensor>& parameters, const std::vector<at::Tensor>& gradients);

  // Momentum buffers (sgd) or moments and the step count (adam, adamw): part of a training
  // state. Names: "<parameter>.momentum", "<parameter>.exp_avg", "<parameter>.exp_avg_sq",
  // "step".
  const std::vector<NamedTensor>& state() const { return state_; }

 private:
  at::Tensor Scalar(at::ScalarType type = at::kFloat) const;

  const OptimizerKind kind_;
  const bool nesterov_;
  const at::Device device_;
  std::vector<NamedTensor> state_;
  // Per parameter, the same storages as in state_: momentum buffers (sgd) or first moments,
  // second moments (adam, adamw); and the step count.
  std::vector<at::Tensor> first_;
  std::vector<at::Tensor> second_;
  at::Tensor step_;
  // Hyper-parameters of the current step.
  at::Tensor negative_lr_;
  at::Tensor momentum_;
  at::Tensor weight_decay_;
  at::Tensor one_minus_beta1_;
  at::Tensor beta1_;
  at::Tensor beta2_;
  at::Tensor one_minus_beta2_;
  at::Tensor eps_;
  at::Tensor decoupled_decay_;  // adamw: 1 - lr wd
};

}  // namespace hippo::workers::torch_trainer

#endif  // HIPPO_WORKERS_TORCH_OPTIMIZER_H_
