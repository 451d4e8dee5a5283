"""Checkpoints as Hugging Face writes them, and what `parity diff` must say
about a pair of them (SPEC §10), computed independently with numpy.

* `write_checkpoint(dir, tensors, shards=N)` writes `model-0000i-of-0000N.safetensors`
  plus `model.safetensors.index.json` (`metadata.total_size`, `weight_map`), or a
  single `model.safetensors` when `shards` is None; with `shard_size=BYTES` it cuts
  the shards by size instead, as `save_pretrained` and `parity apply` do.
* `open_checkpoint(path)` reads one back: a `.safetensors` file, a directory with
  an index, or a directory of `*.safetensors` shards (`Checkpoint`), validated as
  SPEC §10 asks (a missing or escaping shard, a tensor absent from its shard or
  in two shards is an error).
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

from .tensorio import atomic_write_bytes, load_tensors, serialize_tensors

INDEX = "model.safetensors.index.json"


def shard_groups(tensors: Mapping[str, np.ndarray], shard_size: int) -> list[list[str]]:
    """Names in name order cut into shards of at most `shard_size` bytes (a
    tensor larger than that gets a shard of its own); always at least one."""
    groups: list[list[str]] = []
    size = 0
    for name in sorted(tensors):
        b = np.asarray(tensors[name]).nbytes
        if not groups or (size > 0 and size + b > shard_size):
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += b
    return groups or [[]]


def write_checkpoint(out: Path, tensors: Mapping[str, np.ndarray], shards: int | None,
                     *, shard_size: int | None = None) -> list[str]:
    """Write `tensors` as one file (shards=None) or N shards with an index.
    Tensors go to shards in name order, in contiguous runs of near-equal size,
    or, with `shard_size`, cut greedily at that many bytes. Returns the files
    written (relative to `out`)."""
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    if shards is None and shard_size is None:
        atomic_write_bytes(out / "model.safetensors", serialize_tensors(tensors))
        return ["model.safetensors"]
    if shard_size is not None:
        groups = shard_groups(tensors, shard_size)
    else:
        per = -(-len(names) // shards)
        groups = [names[i * per:(i + 1) * per] for i in range(shards)]
    shards = len(groups)
    weight_map = {}
    total = 0
    files = []
    for i, part in enumerate(groups):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        atomic_write_bytes(out / file, serialize_tensors({n: tensors[n] for n in part}))
        files.append(file)
        for n in part:
            weight_map[n] = file
            total += np.asarray(tensors[n]).nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    atomic_write_bytes(out / INDEX, (json.dumps(index, indent=2) + "\n").encode())
    return [*files, INDEX]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as SPEC §10 defines one."""


class Checkpoint:
    """An open checkpoint: every shard's tensors by name, each file read (with
    tensorio) on first use. `layout` is "single file", "sharded (index)" or
    "shards (no index)", as parity names them."""

    def __init__(self, path: Path, layout: str, where: dict[str, Path]):
        self.path, self.layout, self._where = path, layout, where
        self._files: dict[Path, dict[str, np.ndarray]] = {}

    def names(self) -> list[str]:
        return sorted(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def file_of(self, name: str) -> Path:
        return self._where[name]

    def get(self, name: str) -> np.ndarray:
        """The tensor as stored (a read-only array); KeyError if absent."""
        file = self._where[name]
        if file not in self._files:
            self._files[file] = load_tensors(file)
        return self._files[file][name]


def _header_names(file: Path) -> list[str]:
    """The tensor names of one safetensors file, from its header alone."""
    data = file.read_bytes()
    if len(data) < 8:
        raise CheckpointError(f"{file}: not a safetensors file: {len(data)} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise CheckpointError(f"{file}: invalid safetensors: header length {n} exceeds the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as e:
        raise CheckpointError(f"{file}: invalid safetensors header: {e}") from None
    return [k for k in header if k != "__metadata__"]


def open_checkpoint(path: str | Path) -> Checkpoint:
    """A `.safetensors` file, a directory with `model.safetensors.index.json`,
    or a directory of `*.safetensors` files (SPEC §10)."""
    path = Path(path)
    if path.is_dir():
        index_path = path / INDEX
        if index_path.is_file():
            try:
                weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
                assert isinstance(weight_map, dict)
            except (ValueError, KeyError, TypeError, AssertionError):
                raise CheckpointError(f'{index_path}: no "weight_map" object (tensor name → shard file)') from None
            where: dict[str, Path] = {}
            for tensor, shard in weight_map.items():
                rel = Path(shard) if isinstance(shard, str) else None
                if rel is None or not shard or rel.is_absolute() or any(p == ".." for p in rel.parts):
                    raise CheckpointError(f"{index_path}: weight_map.{tensor}: shard {shard!r} leaves the directory")
                where[tensor] = path / shard
            in_shards: dict[str, Path] = {}
            for shard in sorted(set(where.values())):
                if not shard.is_file():
                    tensor = next(t for t, s in where.items() if s == shard)
                    raise CheckpointError(f"{index_path}: tensor '{tensor}': its shard '{shard.name}' does not exist")
                for name in _header_names(shard):
                    if name in in_shards:
                        raise CheckpointError(f"{shard}: tensor '{name}' is also in {in_shards[name]}")
                    in_shards[name] = shard
            for tensor, shard in where.items():
                if in_shards.get(tensor) != shard:
                    raise CheckpointError(f"{shard}: tensor '{tensor}': named by {INDEX} but absent from this shard")
            for tensor, shard in in_shards.items():
                if tensor not in where:
                    raise CheckpointError(f"{shard}: tensor '{tensor}': in this shard but not in {INDEX}")
            return Checkpoint(path, "sharded (index)", where)
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".safetensors")
        if not files:
            raise CheckpointError(f"{path}: not a checkpoint: no {INDEX} and no *.safetensors files")
        where = {}
        for f in files:
            for name in _header_names(f):
                if name in where:
                    raise CheckpointError(f"{f}: tensor '{name}' is also in {where[name]}")
                where[name] = f
        return Checkpoint(path, "shards (no index)", where)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or directory")
    return Checkpoint(path, "single file", {n: path for n in _header_names(path)})


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
