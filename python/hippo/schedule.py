"""Hyper-parameters as functions of the step, evaluated exactly as Hippo's C++ code does.

The coordinator sends a sequence hyper-parameter as segments in absolute steps, each valid on
[start, end) with one function (hippo.v1.Segment). A Schedule evaluates them with the same
formulas, in the same operation order, as stage_tree::SegmentFunction::Evaluate, so a Python
trainer sees the very doubles a C++ trainer would:

- constant:     value
- linear:       from + (to - from) * (s - origin) / span
- exponential:  initial * rate ** (s - origin)
- cosine:       min + (max - min) * (1 + cos(pi * (s - origin) / period)) / 2
"""

import bisect
import math

from hippo.errors import InvalidArgument


def _no_negative_zero(value):
    return 0.0 if value == 0.0 else value


class Segment:
    """One function of the step, valid on [start, end)."""

    __slots__ = ("start", "end", "kind", "a", "b", "origin", "span")

    def __init__(self, start, end, kind, a=0.0, b=0.0, origin=0, span=0):
        self.start, self.end, self.kind = int(start), int(end), kind
        self.a, self.b, self.origin, self.span = float(a), float(b), int(origin), int(span)
        # The C++ constructors fold degenerate functions into constants (and -0.0 into 0.0).
        if kind == "linear" and self.a == self.b or kind == "cosine" and self.a == self.b:
            self.kind, self.a = "constant", _no_negative_zero(self.a)
        elif kind == "exponential" and (self.b == 1.0 or self.a == 0.0):
            self.kind, self.a = "constant", _no_negative_zero(self.a)
        elif kind in ("constant", "linear", "cosine"):
            self.a, self.b = _no_negative_zero(self.a), _no_negative_zero(self.b)
        if self.kind in ("linear", "cosine") and self.span == 0:
            raise InvalidArgument(f"{kind} segment [{start}, {end}) with span 0")

    @classmethod
    def from_proto(cls, segment):
        """Builds a Segment from a hippo.v1.Segment message."""
        which = segment.WhichOneof("function")
        if which == "constant":
            return cls(segment.start, segment.end, "constant", segment.constant)
        if which == "linear":
            f = segment.linear
            return cls(segment.start, segment.end, "linear", getattr(f, "from"), f.to, f.origin,
                       f.span)
        if which == "exponential":
            f = segment.exponential
            return cls(segment.start, segment.end, "exponential", f.initial, f.rate, f.origin)
        if which == "cosine":
            f = segment.cosine
            return cls(segment.start, segment.end, "cosine", f.max, f.min, f.origin, f.period)
        raise InvalidArgument(f"segment [{segment.start}, {segment.end}) has no function")

    def __call__(self, step):
        kind = self.kind
        if kind == "constant":
            return self.a
        if kind == "linear":
            return self.a + (self.b - self.a) * float(step - self.origin) / float(self.span)
        if kind == "exponential":
            return self.a * math.pow(self.b, float(step - self.origin))
        return self.b + (self.a - self.b) * (
            1.0 + math.cos(math.pi * float(step - self.origin) / float(self.span))) / 2.0

    def __repr__(self):
        return f"Segment([{self.start}, {self.end}), {self.kind}, {self.a}, {self.b})"


class Schedule:
    """A hyper-parameter's value as a function of the absolute step: ``schedule(step)``.

    Defined on the union of its segments (sorted, contiguous); a step outside raises
    ValueError.
    """

    def __init__(self, segments):
        self.segments = sorted(segments, key=lambda s: s.start)
        self._ends = [s.end for s in self.segments]

    @classmethod
    def from_proto(cls, segments):
        """A Schedule from repeated hippo.v1.Segment."""
        return cls([Segment.from_proto(s) for s in segments])

    @property
    def start(self):
        """First step the schedule covers."""
        return self.segments[0].start if self.segments else 0

    @property
    def end(self):
        """One past the last step the schedule covers."""
        return self.segments[-1].end if self.segments else 0

    def __call__(self, step):
        index = bisect.bisect_right(self._ends, step)
        if index == len(self.segments) or self.segments[index].start > step:
            raise ValueError(f"step {step} is outside the schedule's steps "
                             f"[{self.start}, {self.end})")
        return self.segments[index](step)

    def values(self, start=None, end=None):
        """The values at steps [start, end) (default: every step covered)."""
        start = self.start if start is None else start
        end = self.end if end is None else end
        return [self(step) for step in range(start, end)]

    def __repr__(self):
        return f"Schedule({self.segments!r})"


def parameter_value(value):
    """A hippo.v1.ParameterValue as Python: a number/string/bool, or a Schedule."""
    if len(value.segments):
        return Schedule.from_proto(value.segments)
    return scalar(value.scalar)


def scalar(value):
    """A google.protobuf.Value as a Python scalar (whole numbers stay floats)."""
    which = value.WhichOneof("kind")
    if which == "number_value":
        return value.number_value
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which is None or which == "null_value":
        return None
    from google.protobuf import json_format
    return json_format.MessageToDict(value)
