#include "stage_tree/sequence.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hippo::stage_tree {
namespace {

double WithoutNegativeZero(double value) { return value == 0.0 ? 0.0 : value; }

absl::Status CheckHorizon(Step horizon) {
  if (horizon <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("horizon must be positive, got ", horizon));
  }
  return absl::OkStatus();
}

// Replaces [0, warmup) of `segments` by a linear ramp that reaches `peak` at step warmup - 1.
std::vector<Segment> WithWarmup(std::vector<Segment> segments, double peak, Step warmup) {
  if (warmup <= 0) return segments;
  std::vector<Segment> result;
  const Step horizon = segments.back().end;
  const Step ramp_end = std::min(warmup, horizon);
  result.push_back({0, ramp_end, SegmentFunction::Linear(0.0, peak, -1, warmup)});
  for (Segment& segment : segments) {
    if (segment.end <= ramp_end) continue;
    segment.start = std::max(segment.start, ramp_end);
    result.push_back(segment);
  }
  return result;
}

}  // namespace

uint64_t SegmentFunction::Bits(double value) { return std::bit_cast<uint64_t>(value); }

SegmentFunction SegmentFunction::Constant(double value) {
  return {FunctionKind::kConstant, WithoutNegativeZero(value), 0, 0, 0};
}

SegmentFunction SegmentFunction::Linear(double from, double to, Step origin, Step span) {
  if (from == to) return Constant(from);
  return {FunctionKind::kLinear, WithoutNegativeZero(from), WithoutNegativeZero(to), origin, span};
}

SegmentFunction SegmentFunction::Exponential(double initial, double rate, Step origin) {
  if (rate == 1.0 || initial == 0.0) return Constant(initial);
  return {FunctionKind::kExponential, initial, rate, origin, 0};
}

SegmentFunction SegmentFunction::Cosine(double max, double min, Step origin, Step period) {
  if (max == min) return Constant(max);
  return {FunctionKind::kCosine, WithoutNegativeZero(max), WithoutNegativeZero(min), origin,
          period};
}

double SegmentFunction::Evaluate(Step step) const {
  switch (kind) {
    case FunctionKind::kConstant:
      return first;
    case FunctionKind::kLinear:
      // Written in this order so that warm-up reads initial * (s + 1) / w exactly.
      return first +
             (second - first) * static_cast<double>(step - origin) / static_cast<double>(span);
    case FunctionKind::kExponential:
      return first * std::pow(second, static_cast<double>(step - origin));
    case FunctionKind::kCosine:
      return second + (first - second) *
                          (1.0 + std::cos(std::numbers::pi * static_cast<double>(step - origin) /
                                          static_cast<double>(span))) /
                          2.0;
  }
  return first;
}

bool operator==(const SegmentFunction& a, const SegmentFunction& b) {
  return a.kind == b.kind && SegmentFunction::Bits(a.first) == SegmentFunction::Bits(b.first) &&
         SegmentFunction::Bits(a.second) == SegmentFunction::Bits(b.second) &&
         a.origin == b.origin && a.span == b.span;
}

std::string SegmentFunction::ToString() const {
  switch (kind) {
    case FunctionKind::kConstant:
      return absl::StrCat(first);
    case FunctionKind::kLinear:
      return absl::StrCat("linear(", first, "->", second, ", origin=", origin, ", span=", span,
                          ")");
    case FunctionKind::kExponential:
      return absl::StrCat(first, "*", second, "^(s-", origin, ")");
    case FunctionKind::kCosine:
      return absl::StrCat("cosine(", first, "->", second, ", origin=", origin, ", period=", span,
                          ")");
  }
  return "?";
}

absl::StatusOr<Sequence> Sequence::FromSegments(std::vector<Segment> segments) {
  if (segments.empty()) return absl::InvalidArgumentError("a sequence needs at least one segment");
  Sequence sequence;
  Step expected_start = 0;
  for (const Segment& segment : segments) {
    if (segment.start != expected_start || segment.end <= segment.start) {
      return absl::InvalidArgumentError(
          absl::StrCat("segments must be non-empty and contiguous from step 0; segment [",
                       segment.start, ", ", segment.end, ") should start at ", expected_start));
    }
    if (segment.function.kind == FunctionKind::kLinear && segment.function.span == 0) {
      return absl::InvalidArgumentError("a linear segment needs a non-zero span");
    }
    if (segment.function.kind == FunctionKind::kCosine && segment.function.span <= 0) {
      return absl::InvalidArgumentError("a cosine segment needs a positive period");
    }
    expected_start = segment.end;
    if (!sequence.segments_.empty() && sequence.segments_.back().function == segment.function) {
      sequence.segments_.back().end = segment.end;
    } else {
      sequence.segments_.push_back(segment);
    }
  }
  return sequence;
}

Sequence Sequence::ConstantOver(double value, Step horizon) {
  Sequence sequence;
  sequence.segments_.push_back({0, horizon, SegmentFunction::Constant(value)});
  return sequence;
}

const SegmentFunction& Sequence::FunctionAt(Step step) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), step,
                             [](Step s, const Segment& segment) { return s < segment.end; });
  return it->function;
}

double Sequence::Evaluate(Step step) const { return FunctionAt(step).Evaluate(step); }

absl::StatusOr<TrialSequences> ComposeAt(const TrialSequences& before, const TrialSequences& after,
                                         Step step) {
  TrialSequences composed;
  for (const auto& [name, first] : before) {
    auto second = after.find(name);
    if (second == after.end() || second->second.Horizon() != first.Horizon() || step <= 0 ||
        step >= first.Horizon()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a fork needs the same parameters over the same steps on both sides of a step inside "
          "them; '",
          name, "' does not fit at step ", step));
    }
    std::vector<Segment> segments;
    for (Segment segment : first.segments()) {
      if (segment.start >= step) break;
      segment.end = std::min(segment.end, step);
      segments.push_back(segment);
    }
    for (Segment segment : second->second.segments()) {
      if (segment.end <= step) continue;
      segment.start = std::max(segment.start, step);
      segments.push_back(segment);
    }
    absl::StatusOr<Sequence> sequence = Sequence::FromSegments(std::move(segments));
    if (!sequence.ok()) return sequence.status();
    composed[name] = *std::move(sequence);
  }
  if (composed.size() != after.size()) {
    return absl::InvalidArgumentError("a fork must keep the parameters of the trial it forks");
  }
  return composed;
}

std::string EncodeSequences(const TrialSequences& sequences) {
  std::string text;
  for (const auto& [name, sequence] : sequences) {
    absl::StrAppend(&text, name, " ", sequence.segments().size(), "\n");
    for (const Segment& segment : sequence.segments()) {
      const SegmentFunction& function = segment.function;
      absl::StrAppend(&text, segment.start, " ", segment.end, " ", static_cast<int>(function.kind),
                      " ", absl::Hex(std::bit_cast<uint64_t>(function.first)), " ",
                      absl::Hex(std::bit_cast<uint64_t>(function.second)), " ", function.origin,
                      " ", function.span, "\n");
    }
  }
  return text;
}

absl::StatusOr<TrialSequences> DecodeSequences(const std::string& text) {
  std::istringstream in(text);
  TrialSequences sequences;
  std::string name;
  size_t count = 0;
  auto corrupt = [&] {
    return absl::DataLossError(absl::StrCat("stored sequences are corrupt near '", name, "'"));
  };
  while (in >> name >> count) {
    std::vector<Segment> segments(count);
    for (Segment& segment : segments) {
      int kind = 0;
      uint64_t first = 0;
      uint64_t second = 0;
      if (!(in >> segment.start >> segment.end >> kind >> std::hex >> first >> second >> std::dec >>
            segment.function.origin >> segment.function.span) ||
          kind < 0 || kind > static_cast<int>(FunctionKind::kCosine)) {
        return corrupt();
      }
      segment.function.kind = static_cast<FunctionKind>(kind);
      segment.function.first = std::bit_cast<double>(first);
      segment.function.second = std::bit_cast<double>(second);
    }
    absl::StatusOr<Sequence> sequence = Sequence::FromSegments(std::move(segments));
    if (!sequence.ok()) return corrupt();
    sequences[name] = *std::move(sequence);
  }
  if (!in.eof()) return corrupt();
  return sequences;
}

absl::StatusOr<Sequence> StepDecay(double initial, double gamma,
                                   const std::vector<Step>& milestones, Step warmup, Step horizon) {
  if (absl::Status status = CheckHorizon(horizon); !status.ok()) return status;
  std::vector<Segment> segments;
  Step start = 0;
  int decays = 0;
  for (Step milestone : milestones) {
    if (milestone <= start) {
      return absl::InvalidArgumentError(
          absl::StrCat("milestones must be positive and strictly increasing; got ", milestone,
                       " after ", start));
    }
    if (milestone >= horizon) break;
    segments.push_back(
        {start, milestone, SegmentFunction::Constant(initial * std::pow(gamma, decays))});
    start = milestone;
    ++decays;
  }
  segments.push_back(
      {start, horizon, SegmentFunction::Constant(initial * std::pow(gamma, decays))});
  return Sequence::FromSegments(WithWarmup(std::move(segments), initial, warmup));
}

absl::StatusOr<Sequence> Piecewise(const std::vector<Step>& boundaries,
                                   const std::vector<double>& values, Step horizon) {
  if (absl::Status status = CheckHorizon(horizon); !status.ok()) return status;
  if (values.size() != boundaries.size() + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("piecewise needs one more value than boundaries; got ", values.size(),
                     " values and ", boundaries.size(), " boundaries"));
  }
  std::vector<Segment> segments;
  Step start = 0;
  for (size_t i = 0; i < boundaries.size(); ++i) {
    if (boundaries[i] <= start) {
      return absl::InvalidArgumentError(
          "piecewise boundaries must be positive and strictly increasing");
    }
    if (boundaries[i] >= horizon) break;
    segments.push_back({start, boundaries[i], SegmentFunction::Constant(values[i])});
    start = boundaries[i];
  }
  segments.push_back({start, horizon, SegmentFunction::Constant(values[segments.size()])});
  return Sequence::FromSegments(std::move(segments));
}

absl::StatusOr<Sequence> CosineSchedule(double max, double min, Step period, Step warmup,
                                        Step horizon) {
  if (absl::Status status = CheckHorizon(horizon); !status.ok()) return status;
  if (period <= 0) return absl::InvalidArgumentError("cosine period must be positive");
  std::vector<Segment> segments = {{0, horizon, SegmentFunction::Cosine(max, min, 0, period)}};
  return Sequence::FromSegments(WithWarmup(std::move(segments), max, warmup));
}

absl::StatusOr<Sequence> ExponentialSchedule(double initial, double rate, Step warmup,
                                             Step horizon) {
  if (absl::Status status = CheckHorizon(horizon); !status.ok()) return status;
  std::vector<Segment> segments = {{0, horizon, SegmentFunction::Exponential(initial, rate, 0)}};
  return Sequence::FromSegments(WithWarmup(std::move(segments), initial, warmup));
}

}  // namespace hippo::stage_tree
