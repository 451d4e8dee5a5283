"""cast: ml_dtypes' real semantics (what the f32 pipeline reproduces) and the
f64 pipeline's single correct rounding (parity_oracle.rounding)."""

from __future__ import annotations

import math
import warnings

import ml_dtypes
import numpy as np
import pytest
from conftest import REPO_ROOT

from parity_oracle import cast_fixture, load_tensors, ops, rounding
from parity_oracle.ops import cast

ops.load_all()

BF16, E4M3, E5M2 = ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2


def bits(x: np.ndarray) -> list[int]:
    x = np.asarray(x)
    return x.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]).ravel().tolist()


def astype(x, dtype) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(x).astype(dtype)


# ---------------------------------------------------------------- ml_dtypes, as measured


def test_ml_dtypes_rounds_f64_to_bf16_and_fp8_through_f32():
    # 2⁻⁴⁰ above a tie: one rounding goes up, f32 first drops it and ties to even.
    x = np.array([1 + 2**-8 + 2**-40, 1 + 2**-4 + 2**-40, 1 + 2**-3 + 2**-40])
    assert bits(astype(x[:1], BF16)) == [0x3F80]
    assert bits(astype(x[1:2], E4M3)) == [0x38]
    assert bits(astype(x[2:], E5M2)) == [0x3C]
    for dtype, xi in ((BF16, x[:1]), (E4M3, x[1:2]), (E5M2, x[2:])):
        assert bits(astype(xi, dtype)) == bits(astype(astype(xi, np.float32), dtype))


def test_numpy_rounds_f64_to_f16_once():
    assert bits(astype(np.array([1 + 2**-11 + 2**-40]), np.float16)) == [0x3C01]


def test_e4m3fn_overflows_to_signed_nan_without_saturating():
    x = np.array([448, 464, 465, 480, -465, np.inf, -np.inf], np.float32)
    assert bits(astype(x, E4M3)) == [0x7E, 0x7E, 0x7F, 0x7F, 0xFF, 0x7F, 0xFF]


def test_e5m2_overflows_to_inf_and_writes_nan_as_0x7e_with_its_sign():
    x = np.array([57344, 61439, 61440, np.nan, -np.nan], np.float32)
    assert bits(astype(x, E5M2)) == [0x7B, 0x7B, 0x7C, 0x7E, 0xFE]


def test_nan_becomes_the_signed_quiet_nan_in_ml_dtypes_but_keeps_its_payload_in_numpy():
    x = np.array([0x7F800001, 0xFFC00000, 0x7FE00000], np.uint32).view(np.float32)
    assert bits(astype(x, BF16)) == [0x7FC0, 0xFFC0, 0x7FC0]
    assert bits(astype(x, np.float16)) == [0x7C01, 0xFE00, 0x7F00]


def test_subnormals_are_rounded_not_flushed_and_minus_zero_is_kept():
    x = np.array([2.0**-9, 2.0**-10, 1.5 * 2.0**-9, -0.0, 1e-40], np.float32)
    assert bits(astype(x, E4M3))[:4] == [0x01, 0x00, 0x02, 0x80]
    assert bits(astype(x[4:], BF16))[0] != 0


# ---------------------------------------------------------------- the exact encoder


@pytest.mark.parametrize("to", ["BF16", "F16", "F8_E4M3", "F8_E5M2", "F32"])
def test_exact_encoder_equals_ml_dtypes_from_f32(to):
    """From f32 ml_dtypes rounds once, so the exact encoder must agree with it
    bit for bit on every non-NaN value (f32 → F32 is the identity)."""
    x = cast._f32_edges(np.random.default_rng(5))
    rng = np.random.default_rng(6)
    x = np.concatenate([x, rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    want = astype(x, rounding.FORMATS[to].dtype)
    got = rounding.round_exact(x, to)
    keep = ~np.isnan(x)
    assert bits(got[keep]) == bits(want[keep])


def test_exact_encoder_rounds_f64_once():
    assert bits(rounding.round_exact(np.array([1 + 2**-8 + 2**-40]), "BF16")) == [0x3F81]
    assert bits(rounding.round_exact(np.array([464 + 2**-20, -464 - 2**-20]), "F8_E4M3")) == [0x7F, 0xFF]
    assert bits(rounding.round_exact(np.array([61440 - 2**-20]), "F8_E5M2")) == [0x7B]
    assert bits(rounding.round_exact(np.array([np.nan, -np.nan, -0.0]), "F8_E5M2")) == [0x7E, 0xFE, 0x80]


def test_exact_encoder_extremes():
    fmt = rounding.FORMATS["F8_E4M3"]
    assert fmt.max_finite() == 448 and rounding.FORMATS["F8_E5M2"].max_finite() == 57344
    assert rounding.encode_bits(2.0**-9, fmt) == 1 and rounding.encode_bits(2.0**-10, fmt) == 0
    assert rounding.encode_bits(math.ldexp(1.0, -10) * 1.0001, fmt) == 1


# ---------------------------------------------------------------- the operation


def test_cast_pipelines():
    x = np.array([1 + 2**-8 + 2**-40, -0.0, np.inf], np.float64)
    f32 = ops.run("cast", "numpy-f32", {"x": x}, {"to": "BF16"})["output"]
    f64 = ops.run("cast", "numpy-f64", {"x": x}, {"to": "BF16"})["output"]
    assert f32.dtype == f64.dtype == np.dtype(BF16)
    assert bits(f32) == [0x3F80, 0x8000, 0x7F80] and bits(f64) == [0x3F81, 0x8000, 0x7F80]


def test_cast_to_the_same_dtype_copies():
    x = np.array([0x7F800001], np.uint32).view(np.float32)
    assert bits(ops.run("cast", "numpy-f64", {"x": x}, {"to": "F32"})["output"]) == [0x7F800001]


def test_cast_refuses_unknown_targets_and_sources():
    with pytest.raises(ValueError, match="'to' must be one of"):
        ops.run("cast", "numpy-f32", {"x": np.zeros(2, np.float32)}, {"to": "F8"})
    with pytest.raises(ValueError, match="x must be"):
        ops.run("cast", "numpy-f64", {"x": np.zeros(2, np.int32)}, {"to": "BF16"})


def test_rust_fixture_is_what_the_generator_writes_today():
    """tests/fixtures/cast_ml_dtypes.safetensors is reproducible and records
    the installed ml_dtypes' behaviour."""
    fresh = cast_fixture.build(1, False)
    committed = load_tensors(REPO_ROOT / "tests" / "fixtures" / "cast_ml_dtypes.safetensors")
    assert sorted(fresh) == sorted(committed)
    for key in fresh:
        assert fresh[key].tobytes() == committed[key].tobytes(), key
    assert (REPO_ROOT / "tests" / "fixtures" / "cast_ml_dtypes.safetensors").stat().st_size < 200 * 1024
