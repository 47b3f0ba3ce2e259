// Hyper-parameter sequences: a hyper-parameter's value as a function of the training step.
//
// A sequence is a list of segments [start, end) -> function, contiguous from step 0. Functions
// come from a small closed set with exact parameters written in absolute steps, so that two
// trials with the same schedule produce bit-identical values and their stages merge.
#ifndef HIPPO_STAGE_TREE_SEQUENCE_H_
#define HIPPO_STAGE_TREE_SEQUENCE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hippo::stage_tree {

using Step = int64_t;

enum class FunctionKind : uint8_t { kConstant, kLinear, kExponential, kCosine };

// One segment function. Construct through the named constructors, which return the canonical
// form: a function that is constant on every step (a linear ramp with from == to, an
// exponential with rate 1, a cosine with max == min) becomes a kConstant, and -0.0 becomes 0.0,
// so that structural equality agrees with value equality wherever it cheaply can.
struct SegmentFunction {
  FunctionKind kind = FunctionKind::kConstant;
  double first = 0;   // constant: value; linear: from; exponential: initial; cosine: max
  double second = 0;  // linear: to; exponential: rate; cosine: min
  Step origin = 0;    // the step the function's formula counts from
  Step span = 0;      // linear: span; cosine: period

  static SegmentFunction Constant(double value);
  // value(s) = from + (to - from) * (s - origin) / span. span must be non-zero.
  static SegmentFunction Linear(double from, double to, Step origin, Step span);
  // value(s) = initial * rate^(s - origin)
  static SegmentFunction Exponential(double initial, double rate, Step origin);
  // value(s) = min + (max - min) * (1 + cos(pi * (s - origin) / period)) / 2
  static SegmentFunction Cosine(double max, double min, Step origin, Step period);

  double Evaluate(Step step) const;

  // Structural equality: same kind and bit-identical parameters.
  friend bool operator==(const SegmentFunction& a, const SegmentFunction& b);

  template <typename H>
  friend H AbslHashValue(H hash, const SegmentFunction& function) {
    return H::combine(std::move(hash), function.kind, Bits(function.first), Bits(function.second),
                      function.origin, function.span);
  }

  std::string ToString() const;

 private:
  static uint64_t Bits(double value);
};

struct Segment {
  Step start = 0;
  Step end = 0;
  SegmentFunction function;

  friend bool operator==(const Segment&, const Segment&) = default;
};

// A hyper-parameter sequence over [0, Horizon()).
class Sequence {
 public:
  Sequence() = default;

  // Checks that the segments are non-empty, contiguous and start at 0 (InvalidArgument
  // otherwise) and returns their canonical form, which has the same value at every step:
  //  - a segment whose function gives one value on all its steps becomes that constant;
  //  - neighbours merge when one function gives the values of both: the same function, one
  //    continuing the other, or one straight line through a run of constant and linear pieces
  //    (a ramp written as one-step pieces becomes one linear segment).
  // Every check is on bit-exact values, so a segment boundary remains exactly where the values
  // stop following one function; callers may treat segment starts as the steps where the
  // schedule changes course.
  static absl::StatusOr<Sequence> FromSegments(std::vector<Segment> segments);
  static Sequence ConstantOver(double value, Step horizon);

  // The value used while training `step`. Requires 0 <= step < Horizon().
  double Evaluate(Step step) const;
  const SegmentFunction& FunctionAt(Step step) const;

  Step Horizon() const { return segments_.empty() ? 0 : segments_.back().end; }
  const std::vector<Segment>& segments() const { return segments_; }

  friend bool operator==(const Sequence&, const Sequence&) = default;

 private:
  std::vector<Segment> segments_;
};

// A trial's sequences by hyper-parameter name (ordered, so iteration order is canonical).
using TrialSequences = std::map<std::string, Sequence>;

// The sequences of a fork: `before` on [0, step), `after` from `step` on (PBT's exploit and
// explore). Both must name the same parameters and cover the same horizon, with
// 0 < step < horizon; InvalidArgument otherwise.
absl::StatusOr<TrialSequences> ComposeAt(const TrialSequences& before, const TrialSequences& after,
                                         Step step);

// A lossless text encoding of a trial's sequences (doubles as their bit patterns), for storage:
// DecodeSequences(EncodeSequences(s)) == s. DataLoss if the text is not such an encoding.
std::string EncodeSequences(const TrialSequences& sequences);
absl::StatusOr<TrialSequences> DecodeSequences(const std::string& text);

// Linear warm-up: [0, warmup) of `schedule` is replaced by a ramp from `from` (v0) towards the
// schedule's value at step 0 (v): value(s) = v0 + (v - v0) * (s + 1) / warmup, so the last
// warm-up step has v exactly; the schedule goes on unchanged from step `warmup`. warmup <= 0
// returns the schedule as it is; InvalidArgument if warmup is not below the horizon.
absl::StatusOr<Sequence> WithWarmup(const Sequence& schedule, Step warmup, double from = 0.0);

// Step decay with optional linear warm-up, as docs/workloads.md defines it: for s < warmup the value
// is initial * (s + 1) / warmup, else initial * gamma^k with k the number of milestones m <= s.
// Milestones must be strictly increasing; those at or beyond the horizon are ignored.
absl::StatusOr<Sequence> StepDecay(double initial, double gamma,
                                   const std::vector<Step>& milestones, Step warmup, Step horizon);

// Values held between boundaries: values[i] on [boundaries[i-1], boundaries[i]). Boundaries
// must be positive and strictly increasing; those at or beyond the horizon are ignored.
absl::StatusOr<Sequence> Piecewise(const std::vector<Step>& boundaries,
                                   const std::vector<double>& values, Step horizon);

// Cosine annealing from max to min over `period` steps (then it rises again, as cos does), with
// optional warm-up whose ramp ends at max.
absl::StatusOr<Sequence> CosineSchedule(double max, double min, Step period, Step warmup,
                                        Step horizon);

// initial * rate^s with optional warm-up whose ramp ends at initial.
absl::StatusOr<Sequence> ExponentialSchedule(double initial, double rate, Step warmup,
                                             Step horizon);

// `from` before `start`, from + (to - from) * (s - start) / (end - start) on [start, end), `to`
// from `end` on. Requires 0 <= start < end; an end beyond the horizon cuts the ramp short.
absl::StatusOr<Sequence> LinearSchedule(double from, double to, Step start, Step end, Step horizon);

}  // namespace hippo::stage_tree

#endif  // HIPPO_STAGE_TREE_SEQUENCE_H_
