"""Elementwise operations: scale, add, subtract, clamp, fill.

* ``f32`` follows torch's CPU sequence for an f32 tensor and Python scalars:
  each scalar (factor, alpha, value, min, max) becomes an f32 first; alpha·b
  is an f32 product, rounded, then the sum is rounded (numpy never fuses the
  two into an FMA). ``fill`` is ``torch.full_like``: the Python float becomes
  an f32, then the target format (bf16, f16, fp8) by RNE from that f32.
* ``f64`` computes each formula in float64 from the parameters as given. Its
  ``fill`` rounds the value into the target dtype once, correctly (RNE), the
  contract's definition — see :func:`round_once`.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from . import OpCase, OpTensor, OracleOp, golden_case, register


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


# ---------------------------------------------------------------- scale


def scale_f32(inputs: dict, params: dict) -> dict:
    return {"output": _f32(inputs["x"]) * np.float32(params["factor"])}


def scale_f64(inputs: dict, params: dict) -> dict:
    return {"output": _f64(inputs["x"]) * float(params["factor"])}


# ---------------------------------------------------------------- add / subtract


def _second_operand(inputs: dict, params: dict):
    has_b, has_value = "b" in inputs, params.get("value") is not None
    if has_b == has_value:
        raise ValueError("add/subtract need exactly one of input 'b' and parameter 'value'")
    return inputs["b"] if has_b else None


def _add_f32(inputs: dict, params: dict, sign: int) -> dict:
    a = _f32(inputs["a"])
    alpha = np.float32(params.get("alpha", 1.0))
    b = _second_operand(inputs, params)
    other = alpha * (_f32(b) if b is not None else np.float32(params["value"]))  # rounded to f32
    return {"output": (a + other if sign > 0 else a - other).astype(np.float32)}


def _add_f64(inputs: dict, params: dict, sign: int) -> dict:
    a = _f64(inputs["a"])
    alpha = float(params.get("alpha", 1.0))
    b = _second_operand(inputs, params)
    other = alpha * (_f64(b) if b is not None else float(params["value"]))
    return {"output": a + other if sign > 0 else a - other}


# ---------------------------------------------------------------- clamp


def _clamp(x: np.ndarray, lo, hi) -> np.ndarray:
    # Comparisons with NaN are false, so NaN passes through (torch.clamp);
    # np.clip/np.maximum would do the same, but spelled out it cannot drift.
    if lo is not None:
        x = np.where(x < lo, lo, x)
    if hi is not None:
        x = np.where(x > hi, hi, x)
    return x


def clamp_f32(inputs: dict, params: dict) -> dict:
    lo, hi = params.get("min"), params.get("max")
    out = _clamp(_f32(inputs["x"]), None if lo is None else np.float32(lo), None if hi is None else np.float32(hi))
    return {"output": out.astype(np.float32)}


def clamp_f64(inputs: dict, params: dict) -> dict:
    lo, hi = params.get("min"), params.get("max")
    return {"output": _clamp(_f64(inputs["x"]), lo, hi).astype(np.float64)}


# ---------------------------------------------------------------- fill

_NARROW = (np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(ml_dtypes.float8_e4m3fn),
           np.dtype(ml_dtypes.float8_e5m2))


def round_to_odd_f32(v: float) -> np.float32:
    """f64 → f32 rounding to odd: truncate toward zero, and set the last bit
    when anything was dropped. Followed by RNE into a format with at least two
    fewer significand bits, this gives the correctly rounded result in one
    step (Boldo & Melquiond 2008) — which ml_dtypes' f64 → bf16 does not (it
    rounds to f32 first: a double rounding)."""
    with np.errstate(over="ignore"):  # beyond f32's range: ±inf, stepped back to ±max below
        r = np.float32(v)
    if not np.isfinite(v) or float(r) == v:
        return r
    if abs(float(r)) > abs(v):  # rounded away from zero: step back toward it
        r = np.nextafter(r, np.float32(0.0))
    return (np.array(r, np.float32).view(np.uint32) | np.uint32(1)).view(np.float32)[()]


def round_once(v: float, dtype) -> np.ndarray:
    """The value v rounded RNE into dtype in one correct step (fill's contract)."""
    dtype = np.dtype(dtype)
    if dtype in _NARROW:
        with np.errstate(over="ignore"):  # overflow to ±inf (NaN for e4m3fn) is the defined result
            return np.asarray(round_to_odd_f32(v)).astype(dtype)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):  # overflow to ±inf is the RNE result
            return np.asarray(v).astype(dtype)  # numpy's f64 → f32 cast is correctly rounded
    return np.asarray(int(v)).astype(dtype)


def fill_f32(inputs: dict, params: dict) -> dict:
    x = np.asarray(inputs["x"])
    v = params["value"]
    if x.dtype in _NARROW or x.dtype == np.float32:
        with np.errstate(over="ignore"):  # overflow to ±inf (NaN for e4m3fn) is the defined result
            element = np.asarray(np.float32(v)).astype(x.dtype)  # torch: through f32
    elif x.dtype == np.float64:
        element = np.asarray(float(v))
    else:
        element = np.asarray(int(v)).astype(x.dtype)
    return {"output": np.full(x.shape, element, dtype=x.dtype)}


def fill_f64(inputs: dict, params: dict) -> dict:
    x = np.asarray(inputs["x"])
    return {"output": np.full(x.shape, round_once(float(params["value"]), x.dtype), dtype=x.dtype)}


register(OracleOp("scale", ("x",), ("output",), f32=scale_f32, f64=scale_f64))
register(OracleOp("add", ("a", "b"), ("output",), f32=lambda i, p: _add_f32(i, p, +1),
                  f64=lambda i, p: _add_f64(i, p, +1)))
register(OracleOp("subtract", ("a", "b"), ("output",), f32=lambda i, p: _add_f32(i, p, -1),
                  f64=lambda i, p: _add_f64(i, p, -1)))
register(OracleOp("clamp", ("x",), ("output",), f32=clamp_f32, f64=clamp_f64))
register(OracleOp("fill", ("x",), ("output",), f32=fill_f32, f64=fill_f64))


# ---------------------------------------------------------------- golden cases
def _record(case: OpCase, line: str) -> None:
    """Note a fact the generator verified in the case's NOTE.md. Idempotent: a
    case object lives as long as the process and may be generated twice."""
    if line not in case.checks:
        case.checks.append(line)



def _weight(rng: np.random.Generator, shape, scale: float = 0.05) -> np.ndarray:
    # Drawn in f64 and rounded once to f32 (weight scale), like the golden svf cases' weights.
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _with_specials(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    flat = x.reshape(-1)
    flat[:5] = [np.nan, np.inf, -np.inf, -0.0, 1e-40]  # 1e-40: an f32 subnormal
    return x


def _scale_case():
    rng = np.random.default_rng(11)
    return [
        # 0.1 is not an f32: torch rounds it first, so the f32 and f64 pipelines
        # differ by up to one rounding; specials pass through x·factor.
        OpTensor("scale.weight", "scale", {"x": _with_specials(_weight(rng, (8, 12)))}, {"factor": 0.1}),
        OpTensor("scale.bf16_negative", "scale", {"x": _weight(rng, (4, 6)).astype(ml_dtypes.bfloat16)},
                 {"factor": -3.0}),
    ]


def _verify_scale(results: dict) -> None:
    f32 = results["numpy-f32"]["scale.weight"]["output"]
    f64 = results["numpy-f64"]["scale.weight"]["output"]
    finite = np.isfinite(f64)
    ulps = np.abs(f32[finite].view(np.int32).astype(np.int64) - f64[finite].astype(np.float32).view(np.int32))
    assert ulps.max() <= 1, ulps.max()
    _record(_SCALE, f"f32 pipeline (factor rounded to f32 first) vs f64 rounded once: "
                         f"{int(np.sum(ulps == 1))} of {ulps.size} finite elements 1 ULP apart, none more")


_SCALE = golden_case(OpCase(
    name="scale_weight",
    proves="scale multiplies by the factor with torch's rounding of the Python scalar (0.1 → f32 first); "
           "NaN, ±inf, −0 and subnormals pass through x·factor; BF16 input decodes exactly",
    build=_scale_case,
    seed=11,
    data="random N(0, 0.05²) weights (f64 → f32 once), the first five entries replaced by NaN, +inf, −inf, "
         "−0, 1e-40",
    verify=_verify_scale,
))


def _add_case(op: str):
    def build():
        rng = np.random.default_rng(12 if op == "add" else 13)
        a, b = _weight(rng, (6, 10)), _weight(rng, (6, 10))
        return [
            OpTensor(f"{op}.tensors", op, {"a": a, "b": b}, {}),
            OpTensor(f"{op}.alpha", op, {"a": a, "b": b}, {"alpha": 0.3}),
            OpTensor(f"{op}.scalar", op, {"a": a}, {"value": 0.01, "alpha": 2.0}),
            OpTensor(f"{op}.bf16_b", op, {"a": a, "b": b.astype(ml_dtypes.bfloat16)}, {}),
        ]

    return build


def _verify_add(op: str):
    def verify(results: dict) -> None:
        # alpha = 1 and a tensor b: one rounding of an exact sum in both pipelines.
        f32 = results["numpy-f32"][f"{op}.tensors"]["output"]
        f64 = results["numpy-f64"][f"{op}.tensors"]["output"]
        assert np.array_equal(f32, f64.astype(np.float32))
        _record(_ADD_CASES[op], "with alpha = 1 and a tensor b the f32 pipeline equals the f64 result "
                                      "rounded once, bit for bit")

    return verify


_ADD_CASES = {}
for _op, _sign in (("add", "+"), ("subtract", "−")):
    _ADD_CASES[_op] = golden_case(OpCase(
        name=f"{_op}_weights",
        proves=f"{_op} computes a {_sign} alpha·b (torch semantics): two tensors, alpha ≠ 1 (rounded to f32 "
               f"with the product), a scalar value in place of b, and a BF16 b",
        build=_add_case(_op),
        seed=12 if _op == "add" else 13,
        data="random N(0, 0.05²) weights (f64 → f32 once)",
        verify=_verify_add(_op),
    ))


def _clamp_case():
    rng = np.random.default_rng(14)
    x = _with_specials(_weight(rng, (8, 8)))
    return [
        OpTensor("clamp.both", "clamp", {"x": x}, {"min": -0.05, "max": 0.05}),
        OpTensor("clamp.min_only", "clamp", {"x": x}, {"min": 0.0}),
        OpTensor("clamp.max_only", "clamp", {"x": x}, {"max": -0.01}),
    ]


def _verify_clamp(results: dict) -> None:
    for impl, tensors in results.items():
        out = tensors["clamp.both"]["output"].astype(np.float32).reshape(-1)
        assert np.isnan(out[0]), impl  # NaN stays NaN
        assert out[1] == np.float32(0.05) and out[2] == np.float32(-0.05), impl
    _record(_CLAMP, "NaN stays NaN; +inf and −inf clamp to the bounds")


_CLAMP = golden_case(OpCase(
    name="clamp_weight",
    proves="clamp limits to [min, max] with either bound optional (bounds rounded to f32 like torch's); "
           "NaN stays NaN and ±inf clamp",
    build=_clamp_case,
    seed=14,
    data="random N(0, 0.05²) weights (f64 → f32 once), the first five entries NaN, +inf, −inf, −0, 1e-40",
    verify=_verify_clamp,
))

# 1 + 2^-8 + 2^-30: f32 rounds it to 1 + 2^-8, exactly a bf16 tie, which RNE
# sends down to 1.0; one correct rounding gives 1 + 2^-7. torch's full_like
# does the former.
DOUBLE_ROUNDING_VALUE = 1.0 + 2.0**-8 + 2.0**-30


def _fill_case():
    rng = np.random.default_rng(15)
    w = _weight(rng, (3, 4))
    return [
        OpTensor("fill.f32", "fill", {"x": w}, {"value": 0.1}),
        OpTensor("fill.bf16", "fill", {"x": w.astype(ml_dtypes.bfloat16)}, {"value": -0.02}),
        OpTensor("fill.f16", "fill", {"x": w.astype(np.float16)}, {"value": 65520.0}),
        OpTensor("fill.fp8_e4m3", "fill", {"x": w.astype(ml_dtypes.float8_e4m3fn)}, {"value": 0.3}),
        OpTensor("fill.bf16_double_rounding", "fill", {"x": w.astype(ml_dtypes.bfloat16)},
                 {"value": DOUBLE_ROUNDING_VALUE}),
    ]


def _verify_fill(results: dict) -> None:
    torch_like = results["numpy-f32"]["fill.bf16_double_rounding"]["output"].view(np.uint16)
    correct = results["numpy-f64"]["fill.bf16_double_rounding"]["output"].view(np.uint16)
    assert np.all(torch_like == 0x3F80) and np.all(correct == 0x3F81)
    for name in ("fill.f32", "fill.bf16", "fill.f16", "fill.fp8_e4m3"):
        a = results["numpy-f32"][name]["output"]
        b = results["numpy-f64"][name]["output"]
        assert a.tobytes() == b.tobytes(), name
    assert np.all(np.isinf(results["numpy-f32"]["fill.f16"]["output"]))  # 65520 is the tie between 65504 and 2^16: RNE goes to the even side, +inf
    _record(_FILL, "f32 (torch-like, through f32) and f64 (one RNE step) agree bit for bit except "
                        "fill.bf16_double_rounding: 0x3F80 (double rounding) vs 0x3F81 (correct); 65520 "
                        "(a tie) rounds to +inf in F16")


_FILL = golden_case(OpCase(
    name="fill_like",
    proves="fill repeats one value rounded into x's dtype (F32, BF16, F16 overflowing to inf, FP8 E4M3); "
           "torch (and the fast kernel) round through f32 first, which the bf16 double-rounding tensor "
           "shows differs from the single RNE step of the reference",
    build=_fill_case,
    seed=15,
    data="random N(0, 0.05²) weights, used for shape and dtype only",
    verify=_verify_fill,
))
