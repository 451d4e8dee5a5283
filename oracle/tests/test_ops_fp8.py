"""fp8_block_quantize / fp8_block_dequantize: the oracle's two pipelines on
hand-computed blocks."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from parity_oracle import ops

ops.load_all()

RAGGED = np.array([[448, -1, 0, 0], [0.5, 3, 0, 0], [224, 1, -7, 0.25]], np.float32)
CODES = [0x7E, 0xB8, 0, 0, 0x30, 0x44, 0, 0, 0x7E, 0x40, 0xFE, 0x58]


def run(impl: str, x, params) -> dict:
    return ops.run("fp8_block_quantize", impl, {"x": x}, params)


def test_blocks_amax_scale_and_codes_by_hand():
    for impl in ("numpy-f32", "numpy-f64"):
        st = run(impl, RAGGED, {"block": [2, 2]})
        assert st["amax"].tolist() == [[448, 0], [224, 7]]
        assert st["scale"].tolist() == [[1, 1], [0.5, 1 / 64]]
        assert st["quantized"].dtype == ml_dtypes.float8_e4m3fn
        assert st["quantized"].view(np.uint8).ravel().tolist() == CODES
        assert np.array_equal(st["dequantized"], RAGGED)


def test_stage_dtypes_are_f32_in_the_f32_pipeline_and_f64_in_the_f64_one():
    assert {k: v.dtype.name for k, v in run("numpy-f32", RAGGED, {}).items()} == {
        "amax": "float32", "scale": "float32", "quantized": "float8_e4m3fn", "dequantized": "float32"}
    assert {k: v.dtype.name for k, v in run("numpy-f64", RAGGED, {"format": "F8_E5M2"}).items()} == {
        "amax": "float64", "scale": "float64", "quantized": "float8_e5m2", "dequantized": "float64"}


def test_a_nan_poisons_its_block_only():
    x = RAGGED.copy()
    x[0, 1] = np.nan
    st = run("numpy-f32", x, {"block": [2, 2]})
    assert np.isnan(st["amax"][0, 0]) and st["amax"][1, 1] == 7
    assert np.all(np.isnan(st["dequantized"][:2, :2])) and not np.any(np.isnan(st["dequantized"][2]))


def test_the_f32_pipeline_divides_in_f32_and_the_f64_one_rounds_the_exact_quotient():
    # amax = 3 + 2⁻²² gives an f32 scale for which x / scale is exactly the tie
    # 1.0625 in f32 (→ 1.0, even) while the exact quotient is above it (→ 1.125).
    amax = np.array([0x40400001], np.uint32).view(np.float32)[0]
    x = np.array([[amax, np.array([0x3BE92494], np.uint32).view(np.float32)[0]]], np.float32)
    f32 = run("numpy-f32", x, {})["quantized"].view(np.uint8).ravel().tolist()
    f64 = run("numpy-f64", x, {})["quantized"].view(np.uint8).ravel().tolist()
    assert f32 == [0x7E, 0x38] and f64 == [0x7E, 0x39]


def test_dequantize_inverts_the_dequantized_stage():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 10)).astype(np.float32)
    for fmt in ("F8_E4M3", "F8_E5M2"):
        st = run("numpy-f32", x, {"format": fmt, "block": [4, 3]})
        out = ops.run("fp8_block_dequantize", "numpy-f32", {"quantized": st["quantized"], "scale": st["scale"]},
                      {"block": [4, 3]})["output"]
        assert np.array_equal(out, st["dequantized"])
