#include "stage_tree/sequence.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <optional>
#include <span>
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

// The tree's notion of one value: the same bits, with -0.0 and 0.0 the same.
bool SameValue(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b) || (a == 0.0 && b == 0.0);
}

// Whether `function` gives the value of `segment` at every one of its steps. The end points are
// compared first, as most candidates fail there.
bool Reproduces(const SegmentFunction& function, const Segment& segment) {
  if (function == segment.function) return true;
  auto same_at = [&](Step step) {
    return SameValue(function.Evaluate(step), segment.function.Evaluate(step));
  };
  if (!same_at(segment.start) || !same_at(segment.end - 1)) return false;
  for (Step step = segment.start + 1; step < segment.end - 1; ++step) {
    if (!same_at(step)) return false;
  }
  return true;
}

// The segment's function, or the constant it amounts to on the segment's steps.
SegmentFunction Simplified(const Segment& segment) {
  if (segment.function.kind == FunctionKind::kConstant) return segment.function;
  const SegmentFunction constant =
      SegmentFunction::Constant(segment.function.Evaluate(segment.start));
  return Reproduces(constant, segment) ? constant : segment.function;
}

bool IsStraight(const SegmentFunction& function) {
  return function.kind == FunctionKind::kConstant || function.kind == FunctionKind::kLinear;
}

// A straight line that gives the values of every segment of `run` (contiguous segments), if
// there is one: the line from the run's first value to its last, or, when `next` (the segment
// after the run) is given, the line that reaches next's first value one step after the run,
// which is how a linear ramp that then holds is written.
std::optional<SegmentFunction> LineThrough(std::span<const Segment> run,
                                           const Segment* next = nullptr) {
  const Step start = run.front().start;
  const double from = run.front().function.Evaluate(start);
  auto reproduces_run = [&](const SegmentFunction& line) {
    for (const Segment& segment : run) {
      if (!Reproduces(line, segment)) return false;
    }
    return true;
  };
  const Step end = run.back().end;
  if (next != nullptr) {
    const SegmentFunction line =
        SegmentFunction::Linear(from, next->function.Evaluate(end), start, end - start);
    if (reproduces_run(line)) return line;
  }
  if (end - 1 <= start) return std::nullopt;
  const SegmentFunction line =
      SegmentFunction::Linear(from, run.back().function.Evaluate(end - 1), start, end - 1 - start);
  if (reproduces_run(line)) return line;
  return std::nullopt;
}

// One function for two neighbours, if one gives the values of both.
std::optional<SegmentFunction> MergedFunction(const Segment& a, const Segment& b) {
  if (a.function == b.function || Reproduces(a.function, b)) return a.function;
  if (Reproduces(b.function, a)) return b.function;
  if (IsStraight(a.function) && IsStraight(b.function)) {
    const Segment pair[] = {a, b};
    return LineThrough(pair);
  }
  return std::nullopt;
}

// Runs of straight pieces longer than this are only tried as a whole, not prefix by prefix,
// which is quadratic in their length.
constexpr size_t kLongestRunTriedByPrefix = 256;

// Merges neighbours greedily, after first replacing by one line the longest run of constant and
// linear pieces from each piece on that one line reproduces (a greedy pairwise merge of a ramp
// written piece by piece can stop half way, as rounding makes the lines through its first two
// or three steps differ from the line through all of them).
std::vector<Segment> Canonical(std::vector<Segment> segments) {
  for (Segment& segment : segments) segment.function = Simplified(segment);
  std::vector<Segment> runs;
  for (size_t i = 0; i < segments.size();) {
    size_t last = i;
    if (IsStraight(segments[i].function)) {
      while (last + 1 < segments.size() && IsStraight(segments[last + 1].function)) ++last;
    }
    const size_t shortest = last - i + 1 > kLongestRunTriedByPrefix ? last : i + 1;
    std::optional<SegmentFunction> line;
    size_t j = last;
    for (; j >= shortest; --j) {
      line = LineThrough(std::span(segments).subspan(i, j - i + 1),
                         j + 1 < segments.size() ? &segments[j + 1] : nullptr);
      if (line) break;
    }
    if (line) {
      runs.push_back({segments[i].start, segments[j].end, *line});
      i = j + 1;
    } else {
      runs.push_back(segments[i]);
      ++i;
    }
  }
  std::vector<Segment> merged;
  for (const Segment& segment : runs) {
    std::optional<SegmentFunction> function;
    if (!merged.empty()) function = MergedFunction(merged.back(), segment);
    if (function) {
      merged.back().function = *function;
      merged.back().end = segment.end;
    } else {
      merged.push_back(segment);
    }
  }
  return merged;
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
  }
  Sequence sequence;
  sequence.segments_ = Canonical(std::move(segments));
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

absl::StatusOr<Sequence> WithWarmup(const Sequence& schedule, Step warmup, double from) {
  if (warmup <= 0) return schedule;
  const Step horizon = schedule.Horizon();
  if (warmup >= horizon) {
    return absl::InvalidArgumentError(absl::StrCat(
        "warm-up of ", warmup, " steps leaves no step of the schedule (horizon ", horizon, ")"));
  }
  std::vector<Segment> segments = {
      {0, warmup, SegmentFunction::Linear(from, schedule.Evaluate(0), -1, warmup)}};
  for (Segment segment : schedule.segments()) {
    if (segment.end <= warmup) continue;
    segment.start = std::max(segment.start, warmup);
    segments.push_back(segment);
  }
  return Sequence::FromSegments(std::move(segments));
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
  absl::StatusOr<Sequence> schedule = Sequence::FromSegments(std::move(segments));
  if (!schedule.ok()) return schedule.status();
  return WithWarmup(*schedule, warmup);
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
  absl::StatusOr<Sequence> schedule =
      Sequence::FromSegments({{0, horizon, SegmentFunction::Cosine(max, min, 0, period)}});
  if (!schedule.ok()) return schedule.status();
  return WithWarmup(*schedule, warmup);
}

absl::StatusOr<Sequence> ExponentialSchedule(double initial, double rate, Step warmup,
                                             Step horizon) {
  if (absl::Status status = CheckHorizon(horizon); !status.ok()) return status;
  absl::StatusOr<Sequence> schedule =
      Sequence::FromSegments({{0, horizon, SegmentFunction::Exponential(initial, rate, 0)}});
  if (!schedule.ok()) return schedule.status();
  return WithWarmup(*schedule, warmup);
}

absl::StatusOr<Sequence> LinearSchedule(double from, double to, Step start, Step end,
                                        Step horizon) {
  if (absl::Status status = CheckHorizon(horizon); !status.ok()) return status;
  if (start < 0 || end <= start) {
    return absl::InvalidArgumentError(
        absl::StrCat("a linear ramp needs 0 <= start < end; got [", start, ", ", end, ")"));
  }
  std::vector<Segment> segments;
  if (start > 0) segments.push_back({0, std::min(start, horizon), SegmentFunction::Constant(from)});
  if (start < horizon) {
    segments.push_back(
        {start, std::min(end, horizon), SegmentFunction::Linear(from, to, start, end - start)});
  }
  if (end < horizon) segments.push_back({end, horizon, SegmentFunction::Constant(to)});
  return Sequence::FromSegments(std::move(segments));
}

}  // namespace hippo::stage_tree
