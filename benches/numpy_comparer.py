"""A straightforward numpy comparer: the baseline `parity check` is measured against.

It computes what `parity check` computes for every stage of every tensor of two
reports — max_abs with its index, mean_abs, rms, max_rel, cosine (f64), NMSE,
max ULP distance, elements not bit-equal, byte match, sha256 of both sides —
the way one would write it in numpy: load each stage, decode to f64, compute.

    python3 benches/numpy_comparer.py LEFT.json RIGHT.json [--hash none|final|all]

Needs numpy, ml_dtypes and safetensors, which `pip install ./oracle` brings.

What it hashes follows `parity check`'s modes: `--hash none` as
`--strict-stage-tolerances` (no verdict rests on a hash), `--hash final` each
tensor's last stage, as the hash modes (`--strict-hash`), `--hash all` (the
default here) every stage, as `--verify-hashes`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors import safe_open


def stages_of(report_path: Path):
    report = json.loads(report_path.read_text())
    bundle = report_path.parent / report["stage_bundle"]
    return report, safe_open(str(bundle), framework="numpy")


def ordered(bits: np.ndarray, sign: int) -> np.ndarray:
    b = bits.astype(np.int64)
    return np.where(b & sign, -(b & (sign - 1)), b)


def metrics(a: np.ndarray, b: np.ndarray, hash_it: bool) -> dict:
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    finite = np.isfinite(x) & np.isfinite(y)
    d = np.abs(x - y)[finite]
    xf, yf = x[finite], y[finite]
    out = {
        "max_abs": float(d.max()) if d.size else 0.0,
        "max_abs_index": np.unravel_index(int(np.argmax(np.where(finite, np.abs(x - y), -1))), a.shape) if a.size else (),
        "mean_abs": float(d.mean()) if d.size else 0.0,
        "rms": float(np.sqrt((d * d).mean())) if d.size else 0.0,
        "max_rel": float((d / np.maximum(np.abs(xf), np.finfo(np.float64).tiny)).max()) if d.size else 0.0,
        "cosine": float(xf @ yf / (np.linalg.norm(xf) * np.linalg.norm(yf) or 1.0)),
        "nmse": float((d * d).sum() / ((xf * xf).sum() or 1.0)),
        "not_bit_equal": int((a.view(np.uint8).reshape(a.size, -1) != b.view(np.uint8).reshape(b.size, -1)).any(axis=1).sum()) if a.size else 0,
        "bytes_equal": a.tobytes() == b.tobytes(),
    }
    if hash_it:
        out["sha256"] = (hashlib.sha256(a.tobytes()).hexdigest(), hashlib.sha256(b.tobytes()).hexdigest())
    if a.dtype == ml_dtypes.bfloat16:
        out["max_ulp"] = int(np.abs(ordered(a.view(np.uint16), 1 << 15) - ordered(b.view(np.uint16), 1 << 15)).max())
    elif a.dtype == np.float32:
        out["max_ulp"] = int(np.abs(ordered(a.view(np.uint32), 1 << 31) - ordered(b.view(np.uint32), 1 << 31)).max())
    return out


def main(argv: list[str]) -> int:
    which = argv[argv.index("--hash") + 1] if "--hash" in argv else "all"
    if which not in ("none", "final", "all"):
        print(f"numpy_comparer: --hash {which}: expected none, final or all", file=sys.stderr)
        return 2
    left, right = Path(argv[0]), Path(argv[1])
    t0 = time.perf_counter()
    lrep, lf = stages_of(left)
    rrep, rf = stages_of(right)
    count = 0
    for t in lrep["tensors"]:
        stages = list(t["stages"])
        for stage in stages:
            key = f"tensor.{t['key']}.{stage}"
            hash_it = which == "all" or (which == "final" and stage == stages[-1])
            metrics(lf.get_tensor(key), rf.get_tensor(key), hash_it)
            count += 1
    print(f"numpy comparer: {count} stages in {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
