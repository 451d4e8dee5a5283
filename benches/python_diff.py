"""The baseline `parity diff` is measured against: a plain Python loop over
`safetensors.safe_open`, as the many `safetensors diff` scripts are written,
computing the same metrics per tensor with numpy (max_abs with index,
mean_abs, rms, max_rel, cosine, NMSE, SQNR, max ULP for equal float dtypes,
elements not bit-equal, NaN/inf positions, allclose mismatches) and a content
hash (sha256 of dtype, shape, bytes).

    python3 benches/python_diff.py LEFT_DIR RIGHT_DIR [--atol X] [--rtol Y]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors import safe_open


def weight_map(d: Path) -> dict[str, Path]:
    idx = json.loads((d / "model.safetensors.index.json").read_text())
    return {k: d / v for k, v in idx["weight_map"].items()}


def ordered(a: np.ndarray) -> np.ndarray:
    """f32 bits as a monotone integer line (for ULP distances)."""
    i = a.view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def metrics(l: np.ndarray, r: np.ndarray, atol: float, rtol: float) -> dict:
    lf, rf = l.astype(np.float64), r.astype(np.float64)
    fin = np.isfinite(lf) & np.isfinite(rf)
    d = np.abs(rf - lf)
    d[~fin] = 0.0
    flat = int(np.argmax(d))
    ll, rr, dot = float((lf * lf).sum()), float((rf * rf).sum()), float((lf * rf).sum())
    sq = float((d * d).sum())
    out = {
        "max_abs": float(d.max()) if d.size else 0.0,
        "max_abs_index": np.unravel_index(flat, l.shape) if d.size else None,
        "mean_abs": float(d.mean()) if d.size else 0.0,
        "rms": float(np.sqrt(sq / max(d.size, 1))),
        "max_rel": float((d / np.maximum(np.abs(lf), np.finfo(np.float64).tiny)).max()) if d.size else 0.0,
        "cosine": dot / np.sqrt(ll * rr) if ll and rr else 1.0,
        "nmse": sq / ll if ll else 0.0,
        "not_bit_equal": int(np.count_nonzero(l.view(np.uint32) != r.view(np.uint32))) if l.dtype == r.dtype else None,
        "nan_mismatch": int(np.count_nonzero(np.isnan(lf) != np.isnan(rf))),
        "outside_allclose": int(np.count_nonzero(d > atol + rtol * np.abs(lf))),
    }
    out["sqnr_db"] = -10 * np.log10(out["nmse"]) if out["nmse"] else float("inf")
    if l.dtype == r.dtype == np.float32:
        out["max_ulp"] = int(np.abs(ordered(l) - ordered(r)).max()) if l.size else 0
    return out


def content_hash(a: np.ndarray) -> str:
    h = hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("left", type=Path)
    ap.add_argument("right", type=Path)
    ap.add_argument("--atol", type=float, default=0.0)
    ap.add_argument("--rtol", type=float, default=0.0)
    a = ap.parse_args()
    lm, rm = weight_map(a.left), weight_map(a.right)
    counts: dict[str, int] = {}
    for name in sorted(set(lm) | set(rm)):
        if name not in rm or name not in lm:
            status = "only_left" if name in lm else "only_right"
        else:
            with safe_open(lm[name], "np") as f:
                l = f.get_tensor(name)
            with safe_open(rm[name], "np") as f:
                r = f.get_tensor(name)
            if l.shape != r.shape:
                status = "shape_mismatch"
            else:
                same_hash = content_hash(l) == content_hash(r)
                m = metrics(l, r, a.atol, a.rtol)
                status = "identical" if same_hash else ("within" if m["outside_allclose"] == 0 and m["nan_mismatch"] == 0 else "differs")
        counts[status] = counts.get(status, 0) + 1
    print(json.dumps(counts, sort_keys=True))


if __name__ == "__main__":
    main()
