"""`cast`: a tensor rounded into bf16, f16, fp8 (e4m3fn, e5m2) or f32.

* ``f32`` is ``x.astype(to)`` with numpy and ml_dtypes — exactly what a user's
  tensors go through, including ml_dtypes' semantics (measured, see
  `parity_oracle/cast_fixture.py` and tests/test_ops_cast.py):

  - from float32/float16/bfloat16: one RNE step, subnormals kept, -0 kept;
    overflow → ±inf (bf16, f16, e5m2) or NaN with the input's sign (e4m3fn:
    no saturation; 464 ties to 448, anything above is NaN);
  - from float64 to bf16, e4m3fn, e5m2: **through float32** (RNE twice: a
    double rounding); from float64 to float16 numpy rounds once;
  - NaN → the target's quiet NaN with the input's sign (bf16 0x7FC0, e4m3fn
    0x7F, e5m2 0x7E); numpy's f16/f32 casts keep the payload's top bits.

* ``f64`` is the contract's definition: one correctly rounded step from the
  exact value (:mod:`parity_oracle.rounding`), NaN → signed quiet NaN, a cast
  to the input's own dtype copies it.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from .. import rounding
from . import OpCase, OpTensor, OracleOp, golden_case, register

TARGETS = ("BF16", "F16", "F8_E4M3", "F8_E5M2", "F32")
SOURCES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def _check(inputs: dict, params: dict) -> tuple[np.ndarray, str]:
    x = np.asarray(inputs["x"])
    to = params.get("to")
    if to not in TARGETS:
        raise ValueError(f"cast: 'to' must be one of {TARGETS}, got {to!r}")
    if x.dtype not in SOURCES:
        raise ValueError(f"cast: x must be float64/32/16 or bfloat16, got {x.dtype}")
    return x, to


def cast_f32(inputs: dict, params: dict) -> dict:
    x, to = _check(inputs, params)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/overflow are defined results here
        return {"output": x.astype(rounding.FORMATS[to].dtype)}


def cast_f64(inputs: dict, params: dict) -> dict:
    x, to = _check(inputs, params)
    fmt = rounding.FORMATS[to]
    if x.dtype == fmt.dtype:
        return {"output": x.copy()}
    return {"output": rounding.round_exact(x, to)}


register(OracleOp("cast", ("x",), ("output",), f32=cast_f32, f64=cast_f64))


# ---------------------------------------------------------------- golden case


def _from_bits(bits, dtype) -> np.ndarray:
    width = {8: np.uint64, 4: np.uint32, 2: np.uint16}[np.dtype(dtype).itemsize]
    return np.array(bits, dtype=width).view(dtype)


def _f32_edges(rng: np.random.Generator) -> np.ndarray:
    """float32 values where every target's rounding is decided: ties of bf16
    (low 16 bits 0x8000), f16 (0x1000), e4m3 (bit 19) and e5m2 (bit 20) and one
    ULP either side, each format's overflow threshold, subnormals, ±0, ±inf, NaN."""
    base = rng.integers(0x3E00_0000, 0x4100_0000, size=4, dtype=np.uint32) & 0xFFE0_0000
    bits = []
    for b in base.tolist():
        for tie in (0x8000, 0x1000, 0x8_0000, 0x10_0000):
            bits += [b | tie, (b | tie) - 1, (b | tie) + 1, b | (tie << 1) | tie]
    values = [448.0, 464.0, 465.0, 480.0, 500.0, -464.0, -1000.0,  # e4m3fn: 464 ties to 448, beyond → NaN
              57344.0, 61439.0, 61440.0, -61440.0, 65504.0, 65520.0, 65519.99,  # e5m2 and f16 overflow
              3.3895314e38, 3.3961776e38, 2.0**-10, 2.0**-9 * 1.5, 2.0**-17, 2.0**-17 * 1.0001,  # bf16 max, fp8 subnormals
              6e-8, 3e-8, 1e-45, -1e-40, 0.0, -0.0, float("inf"), float("-inf"), float("nan")]
    x = np.concatenate([_from_bits(bits, np.float32), np.array(values, np.float32)])
    neg_nan = _from_bits([0xFFC0_0000, 0x7F80_0001], np.float32)  # negative quiet and signalling NaN
    return np.concatenate([x, neg_nan])


def _f64_double_rounding() -> np.ndarray:
    """float64 values where rounding through f32 differs from rounding once:
    a hair off a bf16 / fp8 tie (f32 rounds them onto it), and a hair below
    each format's overflow tie (f32 rounds them up onto it, then to inf/NaN)."""
    hair = 2.0**-40
    return np.array([
        1 + 2**-8 + hair, 1 + 2**-8 - hair, 1 + 3 * 2**-8 - hair, -(1 + 2**-8 + hair),  # bf16 ties at 1
        1 + 2**-4 + hair, 1 + 3 * 2**-4 - hair,  # e4m3 ties at 1
        1 + 2**-3 + hair, 1 + 3 * 2**-3 - hair,  # e5m2 ties at 1
        (2 - 2**-8) * 2.0**127 - 2.0**90,  # just below bf16's overflow tie
        464.0 + 2**-20,  # just above e4m3fn's overflow tie: correct NaN, via f32 → 448
        61440.0 - 2**-20,  # just below e5m2's overflow tie: correct 57344, via f32 → inf
        1.0 / 3.0, -2.0 / 3.0, 1e-300, -1e-300, 1e300, 0.1, 0.0, -0.0, float("nan"), float("inf"),
    ], dtype=np.float64)


def build_cast_edges() -> list[OpTensor]:
    rng = np.random.default_rng(11)
    f32 = _f32_edges(rng)
    f64 = _f64_double_rounding()
    all16 = np.arange(0, 65536, 521, dtype=np.uint16)  # 126 patterns across the whole range
    specials16 = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x7C00, 0xFC00, 0x7C01, 0x7E00, 0xFE00, 0x7F80, 0xFF80,
                           0x7F81, 0x7FC0, 0x7BFF, 0x7F7F, 0x03FF], dtype=np.uint16)
    bits16 = np.concatenate([all16, specials16])
    tensors = []
    for to in ("BF16", "F16", "F8_E4M3", "F8_E5M2"):
        tensors.append(OpTensor(f"f32_to_{to.lower()}", "cast", {"x": f32}, {"to": to}))
    for to in ("BF16", "F16", "F8_E4M3", "F8_E5M2", "F32"):
        tensors.append(OpTensor(f"f64_to_{to.lower()}", "cast", {"x": f64}, {"to": to}))
    tensors.append(OpTensor("bf16_to_f16", "cast", {"x": bits16.view(ml_dtypes.bfloat16)}, {"to": "F16"}))
    tensors.append(OpTensor("bf16_to_f32", "cast", {"x": bits16.view(ml_dtypes.bfloat16)}, {"to": "F32"}))
    tensors.append(OpTensor("f16_to_bf16", "cast", {"x": bits16.view(np.float16)}, {"to": "BF16"}))
    tensors.append(OpTensor("f16_to_f8_e5m2", "cast", {"x": bits16.view(np.float16).reshape(2, -1)},
                            {"to": "F8_E5M2"}))
    tensors.append(OpTensor("f32_to_f32", "cast", {"x": f32[:8]}, {"to": "F32"}))
    return tensors


def _widen(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # ml_dtypes warns on widening a NaN
        return x.astype(np.float64)


def _verify_cast_edges(results: dict) -> None:
    f32, f64 = results["numpy-f32"], results["numpy-f64"]
    # The case must show the double rounding: ml_dtypes and the correct
    # rounding differ on f64 → bf16 (by one ULP) and at e5m2's overflow (inf vs finite).
    a = f32["f64_to_bf16"]["output"].view(np.uint16).astype(np.int64)
    b = f64["f64_to_bf16"]["output"].view(np.uint16).astype(np.int64)
    assert np.any(a != b) and np.max(np.abs(a - b)) == 1
    e5_fast = _widen(f32["f64_to_f8_e5m2"]["output"])
    e5_exact = _widen(f64["f64_to_f8_e5m2"]["output"])
    assert np.any(np.isinf(e5_fast) & np.isfinite(e5_exact))
    # From f32/f16/bf16 the two agree on every non-NaN value, bit for bit.
    for name in f32:
        if name.startswith("f64_"):
            continue
        x, y = f32[name]["output"], f64[name]["output"]
        nan = np.isnan(_widen(x))
        assert np.array_equal(nan, np.isnan(_widen(y))), name
        assert x[~nan].tobytes() == y[~nan].tobytes(), name
    CAST_EDGES.checks[:] = [
        "numpy-f32 (ml_dtypes) and numpy-f64 (one correct rounding) agree bit for bit on every non-NaN value "
        "cast from f32, f16 and bf16",
        "from f64 they differ: by one ULP on bf16 near ties, and finite vs inf at e5m2's overflow threshold "
        "(ml_dtypes rounds through f32)",
    ]


CAST_EDGES = golden_case(OpCase(
    name="cast_edge_values",
    proves="casts to bf16, f16, fp8 e4m3fn/e5m2 and f32 reproduce ml_dtypes bit for bit (fast) and round once, "
    "correctly (reference), on ties, overflow thresholds, subnormals, ±0, ±inf and NaN, from every source dtype",
    build=build_cast_edges,
    seed=11,
    data="hand-picked edge values plus seeded random bases for the rounding ties",
    verify=_verify_cast_edges,
))
