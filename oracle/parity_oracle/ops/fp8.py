"""`fp8_block_quantize` and `fp8_block_dequantize`: per-block fp8 as FP8
checkpoints store it (128×128 blocks, one f32 ``weight_scale_inv`` per block).

Per block B: ``amax = max|x|`` (NaN if B holds one), ``scale = amax /
max_finite`` (1 where amax == 0), ``quantized = RNE_fp8(x / scale)``,
``dequantized = decode(quantized) · scale``.

* ``f32`` is the torch sequence: ``amax / 448`` in f32, ``(x / scale)`` in f32,
  then ml_dtypes' cast to fp8, ``q.float() * scale`` in f32.
* ``f64``: amax and scale in float64 (stored F64); the quantization divides by
  the scale as stored — rounded to f32, the value a loader multiplies by — and
  rounds the quotient to fp8 once, correctly (:mod:`parity_oracle.rounding`:
  ml_dtypes would round an f64 through f32 first); dequantized is the exact
  product decode(q)·scale in float64.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from .. import rounding
from . import OpCase, OpTensor, OracleOp, golden_case, register

FP8 = {"F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn), "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2)}
MAX_FINITE = {"F8_E4M3": 448.0, "F8_E5M2": 57344.0}


def _block(params: dict) -> tuple[int, int]:
    bm, bn = params.get("block", [128, 128])
    if int(bm) <= 0 or int(bn) <= 0:
        raise ValueError(f"block must be two positive integers, got {params.get('block')}")
    return int(bm), int(bn)


def _grid(shape, params) -> tuple[int, int, int, int]:
    m, n = shape
    bm, bn = _block(params)
    return bm, bn, -(-m // bm), -(-n // bn)


def _expand(per_block: np.ndarray, shape, bm: int, bn: int) -> np.ndarray:
    """The block grid broadcast to every element: [rows, cols] → [m, n]."""
    m, n = shape
    return np.repeat(np.repeat(per_block, bm, axis=0), bn, axis=1)[:m, :n]


def _amax(x: np.ndarray, bm: int, bn: int, rows: int, cols: int) -> np.ndarray:
    amax = np.zeros((rows, cols), dtype=x.dtype)
    for i in range(rows):
        for j in range(cols):
            block = x[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn]
            amax[i, j] = np.max(np.abs(block)) if block.size else 0  # np.max propagates NaN
    return amax


def quantize_f32(inputs: dict, params: dict) -> dict:
    fmt = params.get("format", "F8_E4M3")
    x = np.asarray(inputs["x"]).astype(np.float32)
    bm, bn, rows, cols = _grid(x.shape, params)
    amax = _amax(x, bm, bn, rows, cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(amax == 0, np.float32(1), amax / np.float32(MAX_FINITE[fmt])).astype(np.float32)
        s = _expand(scale, x.shape, bm, bn)
        q = (x / s).astype(FP8[fmt])
        deq = q.astype(np.float32) * s
    return {"amax": amax, "scale": scale, "quantized": q, "dequantized": deq}


def quantize_f64(inputs: dict, params: dict) -> dict:
    fmt = params.get("format", "F8_E4M3")
    x = np.asarray(inputs["x"]).astype(np.float64)
    bm, bn, rows, cols = _grid(x.shape, params)
    amax = _amax(x, bm, bn, rows, cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(amax == 0, 1.0, amax / MAX_FINITE[fmt])
        stored = _expand(scale.astype(np.float32).astype(np.float64), x.shape, bm, bn)
        q = rounding.round_exact(x / stored, fmt)
        deq = q.astype(np.float64) * stored
    return {"amax": amax, "scale": scale, "quantized": q, "dequantized": deq}


def _dequantize(inputs: dict, params: dict, dtype) -> dict:
    q = np.asarray(inputs["quantized"])
    if q.dtype not in FP8.values():
        raise ValueError(f"quantized must be float8_e4m3fn or float8_e5m2, got {q.dtype}")
    bm, bn, rows, cols = _grid(q.shape, params)
    scale = np.asarray(inputs["scale"]).astype(dtype)
    if scale.shape != (rows, cols):
        raise ValueError(f"scale has shape {scale.shape}, expected {(rows, cols)}")
    with np.errstate(invalid="ignore"):
        return {"output": q.astype(dtype) * _expand(scale, q.shape, bm, bn)}


def dequantize_f32(inputs: dict, params: dict) -> dict:
    return _dequantize(inputs, params, np.float32)


def dequantize_f64(inputs: dict, params: dict) -> dict:
    return _dequantize(inputs, params, np.float64)


register(OracleOp("fp8_block_quantize", ("x",), ("amax", "scale", "quantized", "dequantized"),
                  f32=quantize_f32, f64=quantize_f64))
register(OracleOp("fp8_block_dequantize", ("quantized", "scale"), ("output",),
                  f32=dequantize_f32, f64=dequantize_f64))


# ---------------------------------------------------------------- golden cases


def _ragged_weight(rng: np.random.Generator) -> np.ndarray:
    """[10, 12] in [4, 8] blocks (a 3 × 2 grid, the last row and column of
    blocks cut short), O(1) values with one all-zero block, a NaN in another,
    and a block whose largest magnitude is negative."""
    x = rng.standard_normal((10, 12)).astype(np.float32)
    x[0:4, 8:12] = 0.0  # block (0, 1): amax 0 → scale 1
    x[5, 2] = np.nan  # block (1, 0): amax NaN → the whole block NaN
    x[9, 10] = -7.5  # block (2, 1): amax from a negative value → -max_finite
    return x


def build_quantize() -> list[OpTensor]:
    rng = np.random.default_rng(21)
    x = _ragged_weight(rng)
    y = (rng.standard_normal((6, 5)) * 0.02).astype(np.float32)
    return [
        OpTensor("ragged_e4m3", "fp8_block_quantize", {"x": x}, {"format": "F8_E4M3", "block": [4, 8]}),
        OpTensor("ragged_e5m2", "fp8_block_quantize", {"x": x}, {"format": "F8_E5M2", "block": [4, 8]}),
        # Defaults: e4m3fn in 128×128 blocks, one block here.
        OpTensor("default_params", "fp8_block_quantize", {"x": y}, {}),
    ]


def _verify_quantize(results: dict) -> None:
    for impl, tensors in results.items():
        st = tensors["ragged_e4m3"]
        assert st["scale"][0, 1] == 1.0 and np.isnan(st["amax"][1, 0]), impl
        assert np.all(np.isnan(st["dequantized"][4:8, 0:8].astype(np.float64))), impl
        assert st["quantized"].view(np.uint8)[9, 10] == 0xFE, impl  # -448
    a, b = results["numpy-f32"], results["numpy-f64"]
    for name in a:
        assert np.array_equal(a[name]["quantized"].view(np.uint8)[~np.isnan(a[name]["dequantized"])],
                              b[name]["quantized"].view(np.uint8)[~np.isnan(b[name]["dequantized"])]), name
    QUANTIZE.checks[:] = [
        "block (0, 1) is all zero: scale 1; block (1, 0) holds a NaN: amax NaN, all its values NaN; "
        "x[9, 10] = -7.5 is its block's amax and quantizes to -448 (0xFE)",
        "numpy-f32 (f32 division, ml_dtypes) and numpy-f64 (one correct rounding of the quotient) give "
        "the same fp8 codes on this case",
    ]


QUANTIZE = golden_case(OpCase(
    name="fp8_block_quantize_ragged",
    proves="per-block fp8 quantization on a grid that does not divide the matrix, both formats and the "
    "default parameters, with a zero block (scale 1) and a NaN block",
    build=build_quantize,
    seed=21,
    verify=_verify_quantize,
    data="N(0, 1) values in f32 with a zero block, a NaN and a negative amax; N(0, 0.02²) for the default-params tensor",
))


def build_dequantize() -> list[OpTensor]:
    rng = np.random.default_rng(22)
    tensors = []
    for fmt in ("F8_E4M3", "F8_E5M2"):
        x = rng.standard_normal((10, 12)).astype(np.float32)
        st = quantize_f32({"x": x}, {"format": fmt, "block": [4, 8]})
        tensors.append(OpTensor(f"ragged_{fmt[3:].lower()}", "fp8_block_dequantize",
                                {"quantized": st["quantized"], "scale": st["scale"]}, {"block": [4, 8]}))
    return tensors


golden_case(OpCase(
    name="fp8_block_dequantize_ragged",
    proves="per-block fp8 dequantization (decode · scale of the element's block) on a grid that does not "
    "divide the matrix, both formats",
    build=build_dequantize,
    seed=22,
    data="N(0, 1) weights quantized by the oracle's f32 pipeline in [4, 8] blocks",
))
