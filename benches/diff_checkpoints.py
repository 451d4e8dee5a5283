"""Make two sharded checkpoints for the `parity diff` benchmarks (outside CI).

    python3 benches/diff_checkpoints.py DIR [--gib 2] [--shards 4]

DIR/left and DIR/right are Hugging Face sharded layouts of Qwen-MLP-shaped F32
weights ([3072, 1024] and [1024, 3072], 12 MiB each) totalling --gib GiB per
side. RIGHT is LEFT resharded (--shards + 1 shards) with a realistic mix of
changes: three quarters of the tensors identical, the rest with float noise of
~1e-6 relative (so `--atol` makes them `within`), one tensor with the "+1" bug.
Shards are written one at a time, so memory stays at one shard.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import safetensors.numpy


def names(n: int) -> list[tuple[str, tuple[int, int]]]:
    out = []
    for i in range(n):
        layer, which = divmod(i, 2)
        shape = (3072, 1024) if which == 0 else (1024, 3072)
        proj = "up_proj" if which == 0 else "down_proj"
        out.append((f"model.layers.{layer}.mlp.{proj}.weight", shape))
    return out


def tensor(i: int, shape) -> np.ndarray:
    return (np.random.default_rng(i).standard_normal(shape, dtype=np.float32) * 0.02)


def write(dirpath: Path, items, shards: int, modify) -> None:
    dirpath.mkdir(parents=True, exist_ok=True)
    per = -(-len(items) // shards)
    weight_map, total = {}, 0
    for s in range(shards):
        part = items[s * per:(s + 1) * per]
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {}
        for i, (name, shape) in part:
            t = modify(i, name, tensor(i, shape))
            tensors[name] = t
            weight_map[name] = file
            total += t.nbytes
        safetensors.numpy.save_file(tensors, str(dirpath / file))
        del tensors
    (dirpath / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--embedding-rows", type=int, default=0,
                    help="add model.embed_tokens.weight [ROWS, 1024] F32 (a vocabulary embedding: "
                         "the largest tensor, for the apply memory benchmark)")
    ap.add_argument("--left-only", action="store_true", help="write left/ only")
    a = ap.parse_args()
    n = max(2, int(a.gib * 1024 / 12))
    items = list(enumerate(names(n)))
    if a.embedding_rows:
        items.append((n, ("model.embed_tokens.weight", (a.embedding_rows, 1024))))

    def noisy(i, name, t):
        if i == 1:
            return t + np.float32(1)
        if i % 4 == 3:
            return t + (np.random.default_rng(10_000 + i).standard_normal(t.shape, dtype=np.float32) * 2e-8)
        return t

    write(a.dir / "left", items, a.shards, lambda i, n, t: t)
    if not a.left_only:
        write(a.dir / "right", items, a.shards + 1, noisy)
    print(f"{n} tensors, {n * 12 / 1024:.2f} GiB per side in {a.dir}")


if __name__ == "__main__":
    main()
