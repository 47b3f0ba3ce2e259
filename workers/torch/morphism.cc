#include "workers/torch/morphism.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/torch/torch_data.h"

namespace hippo::workers::torch_trainer {
namespace {

constexpr uint64_t kMorphSalt = 0x6d6f7270;  // "morp": the stream that picks copied units

// How the units of one child layer copy those of the parent layer they come from: unit j is a
// copy of `source[j]` and carries `share[j]` of that unit's outgoing weights; the shares of a
// unit's copies (itself included) sum to 1, and a unit without copies has share 1.
struct Replication {
  at::Tensor source;  // int64 [child width]
  at::Tensor share;   // float [child width]
};

// The parent's `base` units first, in order, then `width - base` copies of units drawn
// uniformly from the stream of (seed, layer). The copies of a unit split its outgoing weights
// unequally, in proportions drawn from the same stream in [0.5, 1.5): equal shares would give
// the copies equal gradients for ever, so a widened layer would never use its new units (Net2Net
// adds noise instead, which the function would not survive exactly).
Replication Replicate(int64_t base, int64_t width, uint64_t seed, int64_t layer,
                      at::Device device) {
  at::Tensor source = at::arange(width, at::TensorOptions().dtype(at::kLong));
  at::Tensor weight = at::ones({width}, at::TensorOptions().dtype(at::kFloat));
  if (width > base) {
    at::Generator generator =
        at::make_generator<at::CPUGeneratorImpl>(StreamSeed(seed, kMorphSalt, layer));
    source.slice(0, base, width).copy_(at::randint(base, {width - base}, generator));
    weight = at::rand({width}, generator) + 0.5;
  }
  const at::Tensor total = at::zeros({base}, weight.options()).index_add_(0, source, weight);
  return Replication{.source = source.to(device),
                     .share = (weight / total.index_select(0, source)).to(device)};
}

// A per-unit factor laid along dimension `dim` of a tensor with `dims` dimensions, for
// broadcasting.
at::Tensor Along(const at::Tensor& factor, int64_t dim, int64_t dims) {
  std::vector<int64_t> shape(static_cast<size_t>(dims), 1);
  shape[static_cast<size_t>(dim)] = factor.size(0);
  return factor.view(shape);
}

// What a tensor of a layer holds, which decides how it is divided among copies.
enum class Role {
  kValue,         // a weight: copied along outputs, times the copies' shares along inputs
  kFirstMoment,   // momentum / exp_avg: copied along inputs, times the shares along outputs
  kSecondMoment,  // exp_avg_sq: copied along inputs, times the shares squared along outputs
};

// `value` of a parent layer (dim 0: output units, dim 1 when present: input units; a classifier
// reading a [channels, height, width] image sees `spatial` = height * width inputs per channel)
// spread over the child's units.
at::Tensor Spread(const at::Tensor& value, const Replication& outputs, const Replication* inputs,
                  int64_t spatial, Role role) {
  at::Tensor out = value.index_select(0, outputs.source);
  if (inputs != nullptr) {
    const std::vector<int64_t> shape = out.sizes().vec();
    if (spatial > 1) out = out.reshape({shape[0], shape[1] / spatial, spatial});
    out = out.index_select(1, inputs->source);
    if (role == Role::kValue) out = out * Along(inputs->share, 1, out.dim());
    if (spatial > 1) out = out.reshape({shape[0], -1});
  }
  if (role == Role::kFirstMoment) out = out * Along(outputs.share, 0, out.dim());
  if (role == Role::kSecondMoment) {
    out = out * Along(outputs.share * outputs.share, 0, out.dim());
  }
  return out.contiguous();
}

// A convolution kernel [out, in, k, k] with `pad` zeros on every side of its k x k taps: with
// the padding of the convolution grown by `pad` too (k / 2 for every odd k), it computes the
// same output, since the new taps only ever multiply by 0. Other tensors are returned as they
// are.
at::Tensor PadKernel(const at::Tensor& value, int64_t pad) {
  if (pad == 0 || value.dim() != 4) return value;
  const std::vector<int64_t> sides = {pad, pad, pad, pad};
  return at::constant_pad_nd(value, at::IntArrayRef(sides), 0.0);
}

std::string ShapeText(at::IntArrayRef sizes) { return absl::StrJoin(sizes, "x"); }

// The tensors of an inserted identity layer, by their name within the layer ("weight", "bias",
// "running_mean", ...).
using LayerTensors = std::map<std::string, at::Tensor>;

constexpr std::pair<const char*, Role> kMomentSuffixes[] = {{"momentum", Role::kFirstMoment},
                                                            {"exp_avg", Role::kFirstMoment},
                                                            {"exp_avg_sq", Role::kSecondMoment}};

class Morpher {
 public:
  Morpher(const std::vector<NamedTensor>& parent_tensors, const std::vector<NamedTensor>& child) {
    for (const NamedTensor& entry : parent_tensors) parent_[entry.name] = entry.tensor;
    for (const NamedTensor& entry : child) template_[entry.name] = entry.tensor;
  }

  // The parent's tensor `name` ("parameter/hidden0.weight"), InvalidArgument if it is missing.
  absl::StatusOr<at::Tensor> Parent(const std::string& name) const {
    auto it = parent_.find(name);
    if (it == parent_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("morphism: the parent state has no tensor ", name));
    }
    return it->second;
  }

  // Sets the child's tensors `fields` ("weight", "bias", "running_mean", ...) of the layer named
  // `prefix` ("hidden1", "conv0", "norm0") from the parent's layer of the same name, or for an
  // inserted layer from `identity` (then its optimizer state starts at zero). Parameters'
  // optimizer state follows them. A kept convolution whose kernel grows gets `kernel_pad` zero
  // taps on every side of its kernel, and of its moments (no history for the new taps).
  absl::Status Layer(const std::string& prefix, const std::vector<std::string>& fields,
                     const LayerTensors* identity, const Replication& outputs,
                     const Replication* inputs, int64_t spatial, int64_t kernel_pad = 0) {
    for (const std::string& field : fields) {
      const bool buffer = field == "running_mean" || field == "running_var";
      const std::string kind = buffer ? "buffer/" : "parameter/";
      at::Tensor value;
      if (identity != nullptr) {
        value = identity->at(field);
      } else {
        absl::StatusOr<at::Tensor> parent = Parent(kind + prefix + "." + field);
        if (!parent.ok()) return parent.status();
        value = PadKernel(*parent, kernel_pad);
      }
      const Replication* layer_inputs = value.dim() > 1 ? inputs : nullptr;
      child_[kind + prefix + "." + field] =
          Spread(value, outputs, layer_inputs, spatial, Role::kValue);
      if (buffer) continue;
      for (const auto& [suffix, role] : kMomentSuffixes) {
        const std::string child_name = absl::StrCat("optimizer/", prefix, ".", field, ".", suffix);
        auto wanted = template_.find(child_name);
        if (wanted == template_.end()) continue;
        if (identity != nullptr) {
          child_[child_name] = at::zeros_like(wanted->second);
          continue;
        }
        absl::StatusOr<at::Tensor> moment = Parent(child_name);
        if (!moment.ok()) return moment.status();
        child_[child_name] =
            Spread(PadKernel(*moment, kernel_pad), outputs, layer_inputs, spatial, role);
      }
    }
    return absl::OkStatus();
  }

  // The child's tensors in the template's order, each checked against the template's shape.
  absl::StatusOr<std::vector<NamedTensor>> Assemble(const std::vector<NamedTensor>& child) {
    if (auto step = parent_.find("optimizer/step"); step != parent_.end()) {
      child_["optimizer/step"] = step->second.clone();
    }
    std::vector<NamedTensor> out;
    for (const NamedTensor& entry : child) {
      auto it = child_.find(entry.name);
      if (it == child_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("morphism: nothing in the parent state makes the child's ", entry.name));
      }
      if (!it->second.sizes().equals(entry.tensor.sizes()) ||
          it->second.scalar_type() != entry.tensor.scalar_type()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "morphism: the child's ", entry.name, " came out ", ShapeText(it->second.sizes()), " ",
            c10::toString(it->second.scalar_type()), ", its network has ",
            ShapeText(entry.tensor.sizes()), " ", c10::toString(entry.tensor.scalar_type())));
      }
      out.push_back(
          NamedTensor{entry.name, it->second.contiguous(entry.tensor.suggest_memory_format())});
    }
    return out;
  }

 private:
  std::map<std::string, at::Tensor> parent_;
  std::map<std::string, at::Tensor> template_;
  std::map<std::string, at::Tensor> child_;
};

at::TensorOptions FloatOn(at::Device device) {
  return at::TensorOptions().dtype(at::kFloat).device(device);
}

// Batch norm that is the identity in eval mode over `channels`.
LayerTensors IdentityNorm(int64_t channels, at::Device device) {
  return {{"weight", at::full({channels}, std::sqrt(1.0 + kBatchNormEps), FloatOn(device))},
          {"bias", at::zeros({channels}, FloatOn(device))},
          {"running_mean", at::zeros({channels}, FloatOn(device))},
          {"running_var", at::ones({channels}, FloatOn(device))}};
}

// A linear layer that is the identity over `units`.
LayerTensors IdentityLinear(int64_t units, at::Device device) {
  return {{"weight", at::eye(units, FloatOn(device))},
          {"bias", at::zeros({units}, FloatOn(device))}};
}

// A convolution (odd kernel, padding kernel / 2) that is the identity over `channels`.
LayerTensors IdentityConv(int64_t channels, int64_t kernel, at::Device device) {
  at::Tensor weight = at::zeros({channels, channels, kernel, kernel}, FloatOn(device));
  // The centre tap, [out, in], is the identity matrix.
  weight.select(3, kernel / 2).select(2, kernel / 2).copy_(at::eye(channels, FloatOn(device)));
  return {{"weight", weight}};
}

}  // namespace

std::vector<int64_t> HiddenWidths(const Architecture& architecture) {
  switch (architecture.model) {
    case ModelKind::kMlp:
      return architecture.MlpWidths();
    case ModelKind::kCnn:
      return architecture.CnnChannels();
    case ModelKind::kResNet:
      break;
  }
  return {};
}

absl::Status CheckExtends(const Architecture& parent, const Architecture& child,
                          const InputShape& input) {
  const std::string pair =
      absl::StrCat("morphism from '", parent.Describe(), "' to '", child.Describe(), "': ");
  if (parent.model != child.model || parent.model == ModelKind::kResNet) {
    return absl::InvalidArgumentError(
        pair + "the models differ or are not mlp or cnn; a morphism keeps an mlp or a cnn");
  }
  if (parent.dropout != child.dropout) {
    return absl::InvalidArgumentError(pair + "one has dropout and the other not");
  }
  const std::vector<int64_t> from = HiddenWidths(parent);
  const std::vector<int64_t> to = HiddenWidths(child);
  if (from.empty()) {
    return absl::InvalidArgumentError(pair + "the parent has no hidden layer to copy");
  }
  if (to.size() < from.size()) {
    return absl::InvalidArgumentError(pair + "the child has fewer layers than its parent");
  }
  for (size_t i = 0; i < to.size(); ++i) {
    const int64_t base = from[std::min(i, from.size() - 1)];
    if (to[i] < base) {
      return absl::InvalidArgumentError(absl::StrCat(
          pair, "layer ", i, " has ", to[i], " units, fewer than the ", base, " it would copy"));
    }
  }
  if (child.model == ModelKind::kCnn) {
    if (child.kernel_size < parent.kernel_size ||
        (child.kernel_size - parent.kernel_size) % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          pair, "the kernel size goes from ", parent.kernel_size, " to ", child.kernel_size,
          "; a morphism keeps it or grows it by an even number (a kernel padded with zeros on "
          "every side)"));
    }
    const CnnLayout before = CnnLayoutOf(parent, input);
    const CnnLayout after = CnnLayoutOf(child, input);
    for (size_t i = 0; i < after.pools.size(); ++i) {
      const bool expected = i < before.pools.size() && before.pools[i];
      if (after.pools[i] != expected) {
        return absl::InvalidArgumentError(
            absl::StrCat(pair, "block ", i,
                         expected ? " pools in the parent but not in the child"
                                  : " would max-pool in the child; an appended block must "
                                    "keep the image size (set pool_layers)"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NamedTensor>> MorphTensors(
    const Architecture& parent, const Architecture& child, const InputShape& input,
    const std::vector<NamedTensor>& parent_tensors, const std::vector<NamedTensor>& child_template,
    uint64_t seed) {
  if (absl::Status extends = CheckExtends(parent, child, input); !extends.ok()) return extends;
  if (child_template.empty()) return absl::InvalidArgumentError("morphism: empty child template");
  const at::Device device = child_template.front().tensor.device();
  at::NoGradGuard no_grad;
  Morpher morpher(parent_tensors, child_template);
  const std::vector<int64_t> from = HiddenWidths(parent);
  const std::vector<int64_t> to = HiddenWidths(child);
  const bool cnn = child.model == ModelKind::kCnn;
  const int64_t first_inputs = cnn ? input.channels : input.channels * input.height * input.width;
  Replication inputs = Replicate(first_inputs, first_inputs, seed, 0, device);
  for (size_t i = 0; i < to.size(); ++i) {
    const bool kept = i < from.size();
    const int64_t base = from[std::min(i, from.size() - 1)];
    const Replication outputs = Replicate(base, to[i], seed, static_cast<int64_t>(i) + 1, device);
    const std::string index = std::to_string(i);
    // An inserted layer is the identity over the parent's last layer, then widened like any.
    absl::Status done;
    if (cnn) {
      const LayerTensors conv_identity = IdentityConv(base, child.kernel_size, device);
      const LayerTensors norm_identity = IdentityNorm(base, device);
      done = morpher.Layer("conv" + index, {"weight"}, kept ? nullptr : &conv_identity, outputs,
                           &inputs, 1, (child.kernel_size - parent.kernel_size) / 2);
      if (done.ok()) {
        done = morpher.Layer("norm" + index, {"weight", "bias", "running_mean", "running_var"},
                             kept ? nullptr : &norm_identity, outputs, nullptr, 1);
      }
    } else {
      const LayerTensors identity = IdentityLinear(base, device);
      done = morpher.Layer("hidden" + index, {"weight", "bias"}, kept ? nullptr : &identity,
                           outputs, &inputs, 1);
    }
    if (!done.ok()) return done;
    inputs = outputs;
  }
  // The classifier reads every channel at each position the last block leaves.
  int64_t spatial = 1;
  if (cnn) {
    const CnnLayout layout = CnnLayoutOf(child, input);
    spatial = layout.height * layout.width;
  }
  const Replication classes = Replicate(input.classes, input.classes, seed, 0, device);
  if (absl::Status done =
          morpher.Layer("output", {"weight", "bias"}, nullptr, classes, &inputs, spatial);
      !done.ok()) {
    return done;
  }
  return morpher.Assemble(child_template);
}

}  // namespace hippo::workers::torch_trainer
