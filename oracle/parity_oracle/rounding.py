"""Correct rounding into small float formats, by exact rational arithmetic.

ml_dtypes is what users' pipelines run, but it is not the contract's
definition of a rounding: from float64 it rounds to float32 first and then to
bf16 / fp8 (a double rounding; see `parity_oracle.cast_fixture` and
`parity_oracle.ops.cast`). The f64 pipelines need the single correctly rounded
step from the exact value, so this module computes it with Python integers and
`fractions.Fraction` — slow, obviously right, and independent of both
ml_dtypes and the Rust encoders (which round by bit manipulation and by
scaled `round_ties_even`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class Format:
    exp_bits: int
    man_bits: int
    bias: int
    finite_only: bool  # e4m3fn: no inf, only the all-ones pattern is NaN
    dtype: np.dtype
    bits_dtype: np.dtype

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def top(self) -> int:
        return (1 << self.exp_bits) - 1

    def quiet_nan(self) -> int:
        """The canonical positive quiet NaN (what ml_dtypes writes for any NaN)."""
        if self.finite_only:
            return (self.top << self.man_bits) | ((1 << self.man_bits) - 1)
        return (self.top << self.man_bits) | (1 << (self.man_bits - 1))

    def max_finite(self) -> Fraction:
        if self.finite_only:
            mant, e = (1 << (self.man_bits + 1)) - 2, self.top - self.bias
        else:
            mant, e = (1 << (self.man_bits + 1)) - 1, self.top - 1 - self.bias
        return Fraction(mant, 1 << self.man_bits) * Fraction(2) ** e


FORMATS: dict[str, Format] = {
    "BF16": Format(8, 7, 127, False, np.dtype(ml_dtypes.bfloat16), np.dtype(np.uint16)),
    "F16": Format(5, 10, 15, False, np.dtype(np.float16), np.dtype(np.uint16)),
    "F8_E4M3": Format(4, 3, 7, True, np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(np.uint8)),
    "F8_E5M2": Format(5, 2, 15, False, np.dtype(ml_dtypes.float8_e5m2), np.dtype(np.uint8)),
    "F32": Format(8, 23, 127, False, np.dtype(np.float32), np.dtype(np.uint32)),
}


def _floor_log2(v: Fraction) -> int:
    e = v.numerator.bit_length() - v.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > v else e


def encode_bits(x: float, fmt: Format) -> int:
    """The bits of `x` rounded to nearest, ties to even, in one step from its
    exact value. Overflow (the rounded magnitude above the largest finite
    value) gives ±inf, or NaN with x's sign where the format has no inf; NaN
    gives the format's quiet NaN with x's sign; -0 stays -0."""
    sign = (1 << (fmt.width - 1)) if math.copysign(1.0, x) < 0 else 0
    if math.isnan(x):
        return sign | fmt.quiet_nan()
    overflow = sign | (fmt.quiet_nan() if fmt.finite_only else fmt.top << fmt.man_bits)
    if math.isinf(x):
        return overflow
    v = Fraction(abs(x))
    if v == 0:
        return sign
    emin = 1 - fmt.bias
    quantum = Fraction(2) ** (max(_floor_log2(v), emin) - fmt.man_bits)
    n, rem = divmod(v, quantum)  # n = floor(v / quantum), rem in [0, quantum)
    n = int(n)
    if rem * 2 > quantum or (rem * 2 == quantum and n % 2 == 1):
        n += 1
    r = n * quantum
    if r > fmt.max_finite():
        return overflow
    if r == 0:
        return sign
    e = max(_floor_log2(r), emin)
    mant = int(r / Fraction(2) ** (e - fmt.man_bits))  # includes the hidden bit for normals
    if mant < (1 << fmt.man_bits):  # subnormal
        return sign | mant
    return sign | ((e + fmt.bias) << fmt.man_bits) | (mant - (1 << fmt.man_bits))


def round_exact(x, to: str) -> np.ndarray:
    """Every element of `x` (any float dtype; its values are read exactly as
    float64) correctly rounded into the format named `to`."""
    fmt = FORMATS[to]
    with np.errstate(invalid="ignore"):  # ml_dtypes warns on widening a NaN
        flat = np.asarray(x).astype(np.float64).ravel()
    bits = np.array([encode_bits(float(v), fmt) for v in flat], dtype=fmt.bits_dtype)
    return bits.view(fmt.dtype).reshape(np.shape(x))
