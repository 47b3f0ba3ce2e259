"""Segment functions evaluated as the C++ stage tree does (same formulas, same operation
order), and the Stage handed to train_stage."""

import math

import pytest

from hippo.schedule import Schedule, Segment
from hippo.v1 import hippo_pb2


def test_each_function_kind_follows_its_formula():
    assert Segment(0, 10, "constant", 0.1)(5) == 0.1
    warmup = Segment(0, 4, "linear", 0.0, 0.2, -1, 4)  # warm-up: initial * (s + 1) / w
    assert [warmup(s) for s in range(4)] == [0.2 * (s + 1) / 4 for s in range(4)]
    assert Segment(0, 9, "exponential", 0.1, 0.9, 2)(5) == 0.1 * math.pow(0.9, 3.0)
    cosine = Segment(0, 100, "cosine", 0.1, 0.001, 0, 100)
    assert cosine(0) == 0.1 and cosine(100) == pytest.approx(0.001)
    assert cosine(50) == 0.001 + (0.1 - 0.001) * (1.0 + math.cos(math.pi * 50 / 100)) / 2.0


def test_degenerate_functions_are_constants_as_in_cpp():
    assert Segment(0, 5, "linear", 0.3, 0.3, 0, 5).kind == "constant"
    assert Segment(0, 5, "exponential", 0.3, 1.0, 0).kind == "constant"
    assert math.copysign(1.0, Segment(0, 5, "constant", -0.0)(0)) == 1.0


def test_a_schedule_from_proto_segments_picks_the_segment_of_each_step():
    segments = [hippo_pb2.Segment(start=0, end=3, constant=0.1),
                hippo_pb2.Segment(start=3, end=6, constant=0.01),
                hippo_pb2.Segment(start=6, end=8, exponential=hippo_pb2.ExponentialFunction(
                    initial=0.01, rate=0.5, origin=6))]
    schedule = Schedule.from_proto(segments)
    assert schedule.values() == [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.005]
    assert (schedule.start, schedule.end) == (0, 8)
    with pytest.raises(ValueError, match="outside"):
        schedule(8)
