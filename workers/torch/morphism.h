// Function-preserving network morphisms (Net2Net, Chen et al. 2016) for the torch trainer's mlp
// and cnn: a child architecture that extends its parent's (wider layers, more layers at the end,
// a larger cnn kernel) starts from the parent's trained tensors instead of from scratch, and
// computes the same function as the parent in eval mode, up to float rounding.
//
// Widen: a child layer of width W' >= W keeps the parent's W units and adds copies of units
// drawn from the trial seed (deterministic). Every copy takes its unit's incoming weights, bias,
// batch-norm weight, bias and running statistics; the next layer splits its weights from a
// copied unit among the unit's copies in unequal shares that sum to 1 (drawn from the seed), so
// the sum it computes is unchanged. Equal shares would give the copies equal gradients for ever
// (a widened layer that never uses its new units); unequal ones give each copy its share of the
// gradient, so the copies drift apart as they train. Batch norm is per channel, so copies also
// normalise alike in training mode.
//
// Deepen: layers appended after the parent's last hidden layer (mlp) or block (cnn) start as an
// identity: a linear layer with the identity matrix and no bias, or a convolution whose kernel is
// 1 at its centre for its own channel and 0 elsewhere (odd kernels, padding k/2: same size),
// followed by batch norm set to the identity in eval mode (running mean 0, variance 1, weight
// sqrt(1 + eps), bias 0). The ReLU after it is the identity because its input is the output of
// a ReLU (then of a max-pool), never negative. A new cnn block must not max-pool (pool_layers),
// or the image the classifier reads would shrink. A new layer may be wider than the one before
// it: it then copies units as a widened layer does. Caveat: in training mode batch norm uses the
// batch's statistics, not the running ones, so the inserted identity block is the identity in
// eval mode only (as in Net2Net); dropout after an inserted mlp layer also draws in training.
//
// Larger kernel (cnn, kernel_size k to k' > k, both odd): every kept convolution's k x k kernel
// is padded with (k' - k) / 2 zeros on each side; its padding grows from k / 2 to k' / 2 as well,
// so each output still sums the same k x k neighbourhood with the same weights, and the new taps
// learn from there. Their optimizer moments start at zero, the others are kept.
//
// Optimizer state: what a parameter's gradient would be in the child, the moments follow. A
// copied unit's outgoing weights are split but their gradient is not (each copy sees the same
// activation); a copy's incoming weights, bias and batch-norm parameters get its share s of the
// gradient (its output is read with s of the weight). So momentum buffers and first moments are
// copied along inputs and multiplied by s along outputs, second moments by s^2, Adam's step
// count carried over; inserted layers start with zero moments (no history has a meaning for
// them).
//
// Internal to the torch trainer (includes LibTorch).
#ifndef HIPPO_WORKERS_TORCH_MORPHISM_H_
#define HIPPO_WORKERS_TORCH_MORPHISM_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/torch/models.h"
#include "workers/torch/torch_config.h"

namespace hippo::workers::torch_trainer {

// The widths of the hidden layers (mlp) or blocks (cnn), in order.
std::vector<int64_t> HiddenWidths(const Architecture& architecture);

// OK when a network of `child` can start from a trained network of `parent` on `input`: the
// same model (mlp or cnn) and dropout, the same kernel size or one larger by an even number
// (cnn), at least as many layers, each at least as wide as the parent's layer (an appended one:
// as its last), appended cnn blocks that do not pool and kept blocks that pool as the parent's
// did. InvalidArgument saying what differs.
absl::Status CheckExtends(const Architecture& parent, const Architecture& child,
                          const InputShape& input);

// The child's state tensors, in the order and with the names and shapes of `child_template`
// (the tensors of a fresh child network and optimizer, named as in a TorchState: "parameter/...",
// "buffer/...", "optimizer/..."), made from the parent's (`parent_tensors`, named alike, on the
// same device). `seed` chooses the copied units. Checks CheckExtends first; InvalidArgument when
// a tensor the morphism needs is missing or has the wrong shape.
absl::StatusOr<std::vector<NamedTensor>> MorphTensors(
    const Architecture& parent, const Architecture& child, const InputShape& input,
    const std::vector<NamedTensor>& parent_tensors, const std::vector<NamedTensor>& child_template,
    uint64_t seed);

}  // namespace hippo::workers::torch_trainer

#endif  // HIPPO_WORKERS_TORCH_MORPHISM_H_
