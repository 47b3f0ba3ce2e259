#include "workers/torch/optimizer.h"

namespace hippo::workers::torch_trainer {

Optimizer::Optimizer(OptimizerKind kind, bool nesterov, const std::vector<NamedTensor>& parameters,
                     at::Device device)
    : kind_(kind), nesterov_(nesterov), device_(device) {
  for (const NamedTensor& parameter : parameters) {
    const at::Tensor zeros = at::zeros_like(parameter.tensor.detach());
    if (kind_ == OptimizerKind::kSgd) {
      first_.push_back(state_.size());
      state_.push_back(NamedTensor{parameter.name + ".momentum", zeros});
    } else {
      first_.push_back(state_.size());
      state_.push_back(NamedTensor{parameter.name + ".exp_avg", zeros});
      second_.push_back(state_.size());
      state_.push_back(NamedTensor{parameter.name + ".exp_avg_sq", zeros.clone()});
    }
  }
  if (kind_ != OptimizerKind::kSgd) {
    step_index_ = state_.size();
    state_.push_back(NamedTensor{"step", Scalar(at::kDouble).zero_()});
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
    for (size_t i = 0; i < parameters.size(); ++i) {
      const at::Tensor& p = parameters[i];
      const at::Tensor g = at::addcmul(gradients[i], p, weight_decay_);
      at::Tensor& buffer = state_[first_[i]].tensor;
      buffer.mul_(momentum_).add_(g);
      const at::Tensor direction = nesterov_ ? at::addcmul(g, buffer, momentum_) : buffer;
      p.addcmul_(direction, negative_lr_);
    }
    return;
  }
  at::Tensor& step = state_[step_index_].tensor;
  step.add_(1);
  const at::Tensor bias1 = 1 - at::pow(beta1_.to(at::kDouble), step);
  const at::Tensor bias2_sqrt = at::sqrt(1 - at::pow(beta2_.to(at::kDouble), step));
  const at::Tensor step_size = (negative_lr_.to(at::kDouble) / bias1).to(at::kFloat);
  const at::Tensor bias2_root = bias2_sqrt.to(at::kFloat);
  for (size_t i = 0; i < parameters.size(); ++i) {
    const at::Tensor& p = parameters[i];
    at::Tensor g = gradients[i];
    if (kind_ == OptimizerKind::kAdamW) {
      p.mul_(decoupled_decay_);
    } else {
      g = at::addcmul(g, p, weight_decay_);
    }
    at::Tensor& exp_avg = state_[first_[i]].tensor;
    at::Tensor& exp_avg_sq = state_[second_[i]].tensor;
    exp_avg.lerp_(g, one_minus_beta1_);
    exp_avg_sq.mul_(beta2_).addcmul_(g * one_minus_beta2_, g);
    const at::Tensor denominator = (exp_avg_sq.sqrt() / bias2_root).add_(eps_);
    p.addcmul_(exp_avg / denominator, step_size);
  }
}

}  // namespace hippo::workers::torch_trainer
