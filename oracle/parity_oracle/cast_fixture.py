"""Record what ml_dtypes/numpy casts actually do, for the Rust cast tests.

    python3 -m parity_oracle make-cast-fixture [--out FILE] [--scale N] [--exhaustive16]

Writes one safetensors file (default: tests/fixtures/cast_ml_dtypes.safetensors
of the parity checkout around the current directory): for every source dtype S
(f64, f32, f16, bf16) an input tensor ``S.x`` and, for every target T it can be
cast to, ``S.to_T`` = ``S.x.astype(T)`` as numpy 2.4 + ml_dtypes 0.6 compute it
(F8_E4M3 is ml_dtypes.float8_e4m3fn). tests/ops_cast.rs requires the fast cast
to equal every ``S.to_T`` bit for bit (NaN payloads included).

The inputs over-sample where casts differ: exact ties of every target and one
ULP either side, every target's overflow and underflow thresholds, values a
hair off a tie that only f64 can hold (where rounding through f32 decides),
subnormals of every format, ±0, ±inf and NaNs with assorted signs and
payloads, plus uniformly random bit patterns. Fixed seed: the file is
byte-reproducible. The default size keeps it under 200 KB; `--scale 20` (and
``--exhaustive16``) writes a much larger one for a one-off deeper check
(PARITY_CAST_FIXTURE=<file> cargo test --test ops_cast).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors.numpy

from .checkout import NotACheckout, find_checkout

# The fixture's path inside a parity checkout.
FIXTURE = Path("tests") / "fixtures" / "cast_ml_dtypes.safetensors"
# The command the fixture's metadata names. The script it names is a shim for
# `python3 -m parity_oracle make-cast-fixture`; the text is part of the
# committed fixture's bytes.
COMMAND = "oracle/make_cast_fixture.py"

DTYPES = {
    "f64": np.dtype(np.float64),
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
}
TARGETS = {
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F16": np.dtype(np.float16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "F32": np.dtype(np.float32),
}
# Bit position of the rounding point in an f32 mantissa, per narrow target.
ROUND_BIT = {"F16": 13, "BF16": 16, "F8_E4M3": 20, "F8_E5M2": 21}
# Overflow thresholds and their neighbourhoods (largest finite, the tie above it, the next value).
THRESHOLDS = [448.0, 464.0, 480.0, 57344.0, 61440.0, 65536.0, 65504.0, 65520.0,
              float(np.float32(3.3895314e38)), float(np.float32(3.3961776e38))]
# Smallest subnormals of each target (e4m3, e5m2, f16, bf16).
TINY = [2.0**-9, 2.0**-16, 2.0**-24, 2.0**-133]


def f32_inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    per = n // 8
    parts = []
    # Ties of every target, and one f32 ULP either side, over a wide exponent range.
    for k in ROUND_BIT.values():
        sign = rng.integers(0, 2, per // 2, dtype=np.uint32) << 31
        exp = rng.integers(100, 160, per // 2, dtype=np.uint32) << 23
        high = rng.integers(0, 1 << 23, per // 2, dtype=np.uint32) & ~np.uint32((1 << k) - 1)
        tie = sign | exp | high | np.uint32(1 << (k - 1))
        nudge = rng.integers(-1, 2, per // 2).astype(np.int64)
        parts.append((tie.astype(np.int64) + nudge).astype(np.uint32))
    # Every exponent, random mantissas: overflow, underflow, subnormals of all targets.
    exp = np.repeat(np.arange(256, dtype=np.uint32), 4) << 23
    parts.append(exp | rng.integers(0, 1 << 23, exp.size, dtype=np.uint32) | (rng.integers(0, 2, exp.size, dtype=np.uint32) << 31))
    # Thresholds and smallest subnormals, ±, and a few f32 ULPs around them.
    special = np.array(THRESHOLDS + TINY + [t / 2 for t in TINY] + [t * 1.5 for t in TINY], dtype=np.float32)
    special = np.concatenate([special, -special]).view(np.uint32).astype(np.int64)
    parts.append(np.concatenate([special + d for d in (-2, -1, 0, 1, 2)]).astype(np.uint32))
    # Zeros, infinities, NaNs of both signs with assorted payloads, f32 subnormals.
    payload = rng.integers(1, 1 << 23, 40, dtype=np.uint32)
    nans = np.concatenate([0x7F80_0000 | payload, 0xFF80_0000 | payload,
                           np.array([0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x7FFF_FFFF, 0x7FE0_0000], np.uint32)])
    parts.append(np.concatenate([np.array([0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000], np.uint32), nans,
                                 rng.integers(1, 1 << 23, 40, dtype=np.uint32)]))
    used = sum(p.size for p in parts)
    parts.append(rng.integers(0, 1 << 32, max(n - used, 0), dtype=np.uint64).astype(np.uint32))
    return np.concatenate(parts)[:n].view(np.float32)


def f64_inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    per = n // 6
    parts = []
    # f32 values at a target's tie (or anywhere), nudged by less than half an
    # f32 ULP: f32 rounds them back onto the f32 value, the exact value does not.
    with np.errstate(invalid="ignore"):
        base = f32_inputs(rng, per * 2).astype(np.float64)
    base = base[np.isfinite(base) & (base != 0)]
    rel = rng.choice([2.0**-30, -2.0**-30, 2.0**-40, -2.0**-40, 2.0**-52, -2.0**-52, 2.0**-25, -2.0**-25], base.size)
    parts.append(base * (1 + rel))
    # The same values one f64 ULP either side (sticky bits only).
    bits = base[: per].view(np.uint64).astype(np.int64)
    parts.append((bits + rng.integers(-2, 3, bits.size)).astype(np.uint64).view(np.float64))
    # Around f32's own overflow and underflow.
    f32max = float(np.finfo(np.float32).max)
    parts.append(np.array([f32max, f32max * (1 + 2**-25), f32max * (1 + 2**-24), 2.0**128, 2.0**-149, 2.0**-150,
                           2.0**-150 * (1 + 2**-30), 2.0**-151, 1e-300, 5e-324, 1e300, float(np.finfo(np.float64).max)]))
    # Every f64 exponent near f32's range, random mantissas; random bit patterns (NaN payloads included).
    exp = rng.integers(1023 - 160, 1023 + 140, per, dtype=np.uint64) << np.uint64(52)
    parts.append((exp | rng.integers(0, 1 << 52, per, dtype=np.uint64)).view(np.float64) * rng.choice([-1.0, 1.0], per))
    nan_payload = rng.integers(1, 1 << 52, 30, dtype=np.uint64)
    parts.append(np.concatenate([0x7FF0_0000_0000_0000 | nan_payload, 0xFFF0_0000_0000_0000 | nan_payload,
                                 np.array([0x7FF8 << 48, 0xFFF8 << 48, 0x7FF0_0000_2000_0000, 0x7FF0_0000_0000_0001],
                                          np.uint64)]).astype(np.uint64).view(np.float64))
    parts.append(np.array([0.0, -0.0, np.inf, -np.inf]))
    used = sum(p.size for p in parts)
    parts.append(rng.integers(0, 1 << 64, max(n - used, 0), dtype=np.uint64).view(np.float64))
    return np.concatenate(parts)[:n]


def bits16_inputs(rng: np.random.Generator, n: int, exhaustive: bool) -> np.ndarray:
    if exhaustive:
        return np.arange(65536, dtype=np.uint16)
    specials = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7C01,
                         0x7E00, 0xFE00, 0x7FFF, 0xFFFF, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7F81,
                         0x7FC0, 0xFFC0, 0x7FBF], dtype=np.uint16)
    return np.concatenate([specials, rng.integers(0, 65536, n - specials.size, dtype=np.uint16)])


def build(scale: int, exhaustive16: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    inputs = {
        "f32": f32_inputs(rng, 5000 * scale),
        "f64": f64_inputs(rng, 3500 * scale),
        "bf16": bits16_inputs(rng, 2500 * scale, exhaustive16).view(ml_dtypes.bfloat16),
        "f16": bits16_inputs(rng, 2500 * scale, exhaustive16).view(np.float16),
    }
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow and NaN casts warn; they are the point
        for src, x in inputs.items():
            out[f"{src}.x"] = x
            for name, dtype in TARGETS.items():
                if dtype != DTYPES[src]:
                    out[f"{src}.to_{name}"] = x.astype(dtype)
    return out


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The top-level entry point: write the fixture."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output file (default: {FIXTURE.as_posix()} of the parity checkout around the "
                        "current directory)")
    parser.add_argument("--scale", type=int, default=1, help="multiply the number of inputs (default 1: < 200 KB)")
    parser.add_argument("--exhaustive16", action="store_true", help="every f16 and bf16 bit pattern")
    args = parser.parse_args(argv)
    if args.out is None:
        try:
            args.out = find_checkout() / FIXTURE
        except NotACheckout as e:
            print(f"make-cast-fixture: {e}; run it from a parity checkout or pass --out FILE", file=sys.stderr)
            return 2
    tensors = build(args.scale, args.exhaustive16)
    # One metadata key: safetensors writes several in hash order, not reproducibly.
    metadata = {"source": f"{COMMAND} --scale {args.scale}"
                          f"{' --exhaustive16' if args.exhaustive16 else ''}; "
                          f"numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = safetensors.numpy.save({k: tensors[k] for k in sorted(tensors)}, metadata=metadata)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data) / 1024:.0f} KiB, {sum(v.size for k, v in tensors.items() if k.endswith('.x'))} inputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
