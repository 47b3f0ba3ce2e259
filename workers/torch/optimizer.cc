#include "workers/torch/optimizer.h"

#include <torch/version.h>

namespace hippo::workers::torch_trainer {
namespace {

// Element-wise arithmetic over a whole list of tensors, each with a 0-dim factor that is itself a
// tensor (on the device, read by the kernel: a captured graph follows its value). LibTorch 2.x
// has multi-tensor (foreach) overloads for that, one launch for many tensors; 1.13 (the CPU
// machines' Debian LibTorch) takes only host scalars there, so it loops, one op per tensor.
std::vector<at::Tensor> Times(at::TensorList tensors, const at::Tensor& factor) {
#if TORCH_VERSION_MAJOR >= 2
  return at::_foreach_mul(tensors, factor);
#else
  std::vector<at::Tensor> products;
  products.reserve(tensors.size());
  for (const at::Tensor& tensor : tensors) products.push_back(tensor * factor);
  return products;
#endif
}

void MultiplyBy(at::TensorList tensors, const at::Tensor& factor) {
#if TORCH_VERSION_MAJOR >= 2
  at::_foreach_mul_(tensors, factor);
#else
  for (const at::Tensor& tensor : tensors) tensor.mul_(factor);
#endif
}

void AddTo(at::TensorList tensors, const at::Tensor& value) {
#if TORCH_VERSION_MAJOR >= 2
  at::_foreach_add_(tensors, value);
#else
  for (const at::Tensor& tensor : tensors) tensor.add_(value);
#endif
}

}  // namespace

Optimizer::Optimizer(OptimizerKind kind, bool nesterov, const std::vector<NamedTensor>& parameters,
                     at::Device device)
    : kind_(kind), nesterov_(nesterov), device_(device) {
  for (const NamedTensor& parameter : parameters) {
    const at::Tensor zeros = at::zeros_like(parameter.tensor.detach());
    if (kind_ == OptimizerKind::kSgd) {
      state_.push_back(NamedTensor{parameter.name + ".momentum", zeros});
      first_.push_back(zeros);
    } else {
      const at::Tensor more_zeros = zeros.clone();
      state_.push_back(NamedTensor{parameter.name + ".exp_avg", zeros});
      state_.push_back(NamedTensor{parameter.name + ".exp_avg_sq", more_zeros});
      first_.push_back(zeros);
      second_.push_back(more_zeros);
    }
  }
  if (kind_ != OptimizerKind::kSgd) {
    step_ = Scalar(at::kDouble);
    state_.push_back(NamedTensor{"step", step_});
  }
  negative_lr_ = Scalar();
  momentum_ = Scalar();
  weight_decay_ = Scalar();
  beta1_ = Scalar();
  one_minus_beta1_ = Scalar();
  beta2_ = Scalar();
  one_minus_beta2_ = Scalar();
  eps_ = Scalar();
  decoupled_decay_ = Scalar();
  SetValues(StepValues{});
}

at::Tensor Optimizer::Scalar(at::ScalarType type) const {
  return at::zeros({}, at::TensorOptions().dtype(type).device(device_));
}

void Optimizer::SetValues(const StepValues& values) {
  negative_lr_.fill_(-values.lr);
  momentum_.fill_(values.momentum);
  weight_decay_.fill_(values.weight_decay);
  beta1_.fill_(values.beta1);
  one_minus_beta1_.fill_(1.0 - values.beta1);
  beta2_.fill_(values.beta2);
  one_minus_beta2_.fill_(1.0 - values.beta2);
  eps_.fill_(values.eps);
  decoupled_decay_.fill_(1.0 - values.lr * values.weight_decay);
}

void Optimizer::Update(const std::vector<at::Tensor>& parameters,
                       const std::vector<at::Tensor>& gradients) {
  if (kind_ == OptimizerKind::kSgd) {
    // direction = g + wd p
    std::vector<at::Tensor> direction = Times(parameters, weight_decay_);
    at::_foreach_add_(direction, gradients);
    // b = momentum b + direction
    MultiplyBy(first_, momentum_);
    at::_foreach_add_(first_, direction);
    if (nesterov_) {
      // direction += momentum b
      at::_foreach_add_(direction, Times(first_, momentum_));
    } else {
      direction = first_;
    }
    // p += -lr direction
    at::_foreach_add_(parameters, Times(direction, negative_lr_));
    return;
  }
  step_.add_(1);
  const at::Tensor bias1 = 1 - at::pow(beta1_.to(at::kDouble), step_);
  const at::Tensor bias2_sqrt = at::sqrt(1 - at::pow(beta2_.to(at::kDouble), step_));
  const at::Tensor step_size = (negative_lr_.to(at::kDouble) / bias1).to(at::kFloat);
  const at::Tensor inverse_bias2_root = (1 / bias2_sqrt).to(at::kFloat);
  std::vector<at::Tensor> g;
  if (kind_ == OptimizerKind::kAdamW) {
    MultiplyBy(parameters, decoupled_decay_);
    g = gradients;
  } else {
    g = Times(parameters, weight_decay_);
    at::_foreach_add_(g, gradients);
  }
  // m = beta1 m + (1 - beta1) g
  MultiplyBy(first_, beta1_);
  at::_foreach_add_(first_, Times(g, one_minus_beta1_));
  // v = beta2 v + (1 - beta2) g^2
  MultiplyBy(second_, beta2_);
  at::_foreach_addcmul_(second_, Times(g, one_minus_beta2_), g);
  // p += step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
  std::vector<at::Tensor> denominator = at::_foreach_sqrt(second_);
  MultiplyBy(denominator, inverse_bias2_root);
  AddTo(denominator, eps_);
  at::_foreach_addcdiv_(parameters, Times(first_, step_size), denominator);
}

}  // namespace hippo::workers::torch_trainer
