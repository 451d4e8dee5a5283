"""The oracle's elementwise operations against hand-computed values: torch's
rounding of Python scalars in the f32 pipeline, one rounding in the f64
pipeline, IEEE specials, and fill's single correct RNE step (checked against
exact rational arithmetic) versus ml_dtypes' double rounding."""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from ops_golden import replay_case

from parity_oracle import ops
from parity_oracle.ops import elementwise

ops.load_all()

ELEMENTWISE_CASES = ["scale_weight", "add_weights", "subtract_weights", "clamp_weight", "fill_like"]


def f32(*v):
    return np.array(v, np.float32)


def run(name, impl, inputs, params):
    return ops.run(name, impl, inputs, params)["output"]


def test_scale_f32_rounds_the_factor_first_and_f64_does_not():
    x = f32(4.07)
    fast = run("scale", "numpy-f32", {"x": x}, {"factor": 0.1})
    exact = run("scale", "numpy-f64", {"x": x}, {"factor": 0.1})
    assert fast.dtype == np.float32 and exact.dtype == np.float64
    assert fast[0] == x[0] * np.float32(0.1)
    assert exact[0] == float(x[0]) * 0.1
    assert fast.view(np.uint32)[0] == exact.astype(np.float32).view(np.uint32)[0] + 1  # one ULP apart


def test_scale_keeps_specials():
    out = run("scale", "numpy-f32", {"x": f32(np.nan, np.inf, -0.0)}, {"factor": 2.0})
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == 0 and np.signbit(out[2])


def test_add_and_subtract_follow_torch_semantics():
    a, b = f32(1.0, 2.0), f32(0.5, -4.0)
    assert run("add", "numpy-f32", {"a": a, "b": b}, {}).tolist() == [1.5, -2.0]
    assert run("subtract", "numpy-f64", {"a": a, "b": b}, {"alpha": 2}).tolist() == [0.0, 10.0]
    assert run("add", "numpy-f32", {"a": a}, {"value": 0.5, "alpha": 2}).tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="exactly one"):
        run("add", "numpy-f32", {"a": a, "b": b}, {"value": 1.0})


def test_the_f32_add_rounds_alpha_times_b_before_adding():
    a, b = f32(0.125), f32(0.9)
    fast = run("add", "numpy-f32", {"a": a, "b": b}, {"alpha": 0.3})
    exact = run("add", "numpy-f64", {"a": a, "b": b}, {"alpha": 0.3})
    assert fast[0] == np.float32(a[0] + np.float32(np.float32(0.3) * b[0]))
    assert fast.view(np.uint32)[0] == exact.astype(np.float32).view(np.uint32)[0] + 1


def test_clamp_keeps_nan_and_clamps_infinities():
    x = f32(-2.0, 0.5, np.nan, np.inf, -np.inf)
    for impl in ("numpy-f32", "numpy-f64"):
        out = run("clamp", impl, {"x": x}, {"min": -1, "max": 1})
        assert out[[0, 1, 3, 4]].tolist() == [-1.0, 0.5, 1.0, -1.0] and np.isnan(out[2])
        assert run("clamp", impl, {"x": x}, {"max": 0})[[0, 1, 4]].tolist() == [-2.0, 0.0, -np.inf]


def exact_rne(v: float, fmt) -> float:
    """v rounded to nearest-even among all finite values of fmt, by exact
    rational arithmetic over an enumeration of the format (independent of
    any float conversion)."""
    bits = np.arange(2 ** (8 * np.dtype(fmt).itemsize), dtype=np.uint64)
    bits = bits.astype(np.uint16 if np.dtype(fmt).itemsize == 2 else np.uint8)
    with np.errstate(invalid="ignore"):  # the NaN patterns
        values = bits.view(fmt).astype(np.float64)
    finite = np.unique(values[np.isfinite(values)])
    target = Fraction(v)
    i = int(np.searchsorted(finite, float(v)))
    candidates = [finite[j] for j in (i - 1, i, i + 1) if 0 <= j < len(finite)]
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - target),
                                          int(np.array(c).astype(fmt).view(bits.dtype)) & 1))
    return float(best)


@pytest.mark.parametrize("fmt", [ml_dtypes.bfloat16, np.float16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2])
@pytest.mark.parametrize("v", [0.1, -0.02, 1.0 + 2.0**-8 + 2.0**-30, 1.0 + 2.0**-8, 3.0 + 2.0**-40, -0.3333333333])
def test_the_f64_fill_rounds_once_correctly(fmt, v):
    got = elementwise.round_once(v, fmt)
    assert float(got) == exact_rne(v, fmt)


def test_the_f32_fill_rounds_through_f32_like_torch():
    v = elementwise.DOUBLE_ROUNDING_VALUE
    x = np.zeros(3, ml_dtypes.bfloat16)
    torch_like = run("fill", "numpy-f32", {"x": x}, {"value": v})
    correct = run("fill", "numpy-f64", {"x": x}, {"value": v})
    assert torch_like.dtype == correct.dtype == ml_dtypes.bfloat16
    assert torch_like.view(np.uint16).tolist() == [0x3F80] * 3
    assert correct.view(np.uint16).tolist() == [0x3F81] * 3


def test_round_to_odd_marks_inexact_values_and_keeps_exact_ones():
    assert elementwise.round_to_odd_f32(1.5) == np.float32(1.5)
    r = elementwise.round_to_odd_f32(1.0 + 2.0**-30)
    assert r.view(np.uint32) == np.float32(1.0).view(np.uint32) | 1
    r = elementwise.round_to_odd_f32(-(1.0 - 2.0**-30))  # just below 1 in magnitude: truncate, then odd
    assert r.view(np.uint32) == np.float32(-1.0).view(np.uint32) - 1


def test_fill_writes_integers_and_f64_exactly():
    assert run("fill", "numpy-f32", {"x": np.zeros(2, np.int64)}, {"value": -3}).tolist() == [-3, -3]
    assert run("fill", "numpy-f64", {"x": np.zeros(1, np.float64)}, {"value": 0.1})[0] == 0.1


@pytest.mark.parametrize("case", ELEMENTWISE_CASES)
def test_golden_elementwise_cases_replay_bit_for_bit(case):
    replay_case(case)
