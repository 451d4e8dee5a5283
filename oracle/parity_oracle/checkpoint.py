"""Checkpoints as Hugging Face writes them, and what `parity diff` must say
about a pair of them (SPEC §10), computed independently with numpy.

* `write_checkpoint(dir, tensors, shards=N)` writes `model-0000i-of-0000N.safetensors`
  plus `model.safetensors.index.json` (`metadata.total_size`, `weight_map`), or a
  single `model.safetensors` when `shards` is None.
* `expected_diff(left, right, rules)` gives each tensor's status —
  identical | within | differs | shape_mismatch | only_left | only_right — and its
  max |right − left| in f64, by the rules of SPEC §10.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Mapping

import numpy as np

from .tensorio import atomic_write_bytes, serialize_tensors

INDEX = "model.safetensors.index.json"


def write_checkpoint(out: Path, tensors: Mapping[str, np.ndarray], shards: int | None) -> None:
    """Write `tensors` as one file (shards=None) or N shards with an index.
    Tensors go to shards in name order, in contiguous runs of near-equal size."""
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    if shards is None:
        atomic_write_bytes(out / "model.safetensors", serialize_tensors(tensors))
        return
    per = -(-len(names) // shards)
    weight_map = {}
    total = 0
    for i in range(shards):
        part = names[i * per:(i + 1) * per]
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        atomic_write_bytes(out / file, serialize_tensors({n: tensors[n] for n in part}))
        for n in part:
            weight_map[n] = file
            total += np.asarray(tensors[n]).nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    atomic_write_bytes(out / INDEX, (json.dumps(index, indent=2) + "\n").encode())


def _decoded(a: np.ndarray) -> np.ndarray:
    """Values in f64 (bf16 via ml_dtypes converts exactly: every bf16 is an f32)."""
    return np.asarray(a).astype(np.float64)


def _nonfinite_agree(l: np.ndarray, r: np.ndarray) -> bool:
    ln, rn = np.isnan(l), np.isnan(r)
    if not np.array_equal(ln, rn):
        return False
    li, ri = np.isinf(l), np.isinf(r)
    return bool(np.array_equal(li, ri) and np.array_equal(l[li], r[ri]))


def _within(l: np.ndarray, r: np.ndarray, rule: Mapping[str, float] | None) -> tuple[bool, float]:
    """(passes, max_abs) of RIGHT against LEFT under `rule` (None = exact)."""
    lv, rv = _decoded(l), _decoded(r)
    if not _nonfinite_agree(lv, rv):
        return False, float("inf")
    fin = np.isfinite(lv) & np.isfinite(rv)
    d = np.abs(rv[fin] - lv[fin])
    max_abs = float(d.max()) if d.size else 0.0
    mean_abs = float(d.mean()) if d.size else 0.0
    if rule is None:
        return max_abs == 0.0, max_abs
    ok = max_abs <= rule.get("max_abs", float("inf")) and mean_abs <= rule.get("mean_abs", float("inf"))
    if "atol" in rule or "rtol" in rule:
        bound = rule.get("atol", 0.0) + rule.get("rtol", 0.0) * np.abs(lv[fin])
        outside = int(np.count_nonzero(d > bound))
        ok = ok and outside <= rule.get("max_mismatch_fraction", 0.0) * lv.size
    return ok, max_abs


def expected_diff(left: Mapping[str, np.ndarray], right: Mapping[str, np.ndarray],
                  rules: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, dict]:
    """Each tensor name → {"status", "max_abs"} as SPEC §10 defines them.
    `rules` is a tolerance file's "tensors" section (first matching glob wins);
    tensors no rule matches are held to exact equality of decoded values."""
    out: dict[str, dict] = {}
    for name in sorted(set(left) | set(right)):
        if name not in right:
            out[name] = {"status": "only_left"}
            continue
        if name not in left:
            out[name] = {"status": "only_right"}
            continue
        l, r = np.asarray(left[name]), np.asarray(right[name])
        if l.shape != r.shape:
            out[name] = {"status": "shape_mismatch"}
            continue
        if l.dtype == r.dtype and l.tobytes() == r.tobytes():
            out[name] = {"status": "identical", "max_abs": 0.0}
            continue
        rule = next((v for g, v in (rules or {}).items() if fnmatch.fnmatchcase(name, g)), None)
        ok, max_abs = _within(l, r, rule)
        out[name] = {"status": "within" if ok else "differs", "max_abs": max_abs}
    return out
