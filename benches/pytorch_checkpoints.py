"""PyTorch-checkpoint benchmarks (issue 24), outside CI.

    python3 benches/pytorch_checkpoints.py make DIR [--gib 2]
    python3 benches/pytorch_checkpoints.py torch DIR

`make` writes DIR/left/pytorch_model.bin — `torch.save` of a state dict (the
zip format) of Qwen-MLP-shaped F32 weights ([3072, 1024] and [1024, 3072],
12 MiB each) totalling --gib GiB, plus one transposed view sharing a weight's
storage (a non-contiguous tensor) — and DIR/right/model.safetensors, the same
tensors (the view made contiguous). Memory: the whole state dict once (torch
holds it to save it).

`torch` is the Python baseline: `torch.load(weights_only=True, mmap=True)`,
then for every tensor the same per-tensor comparison as benches/python_diff.py
(max_abs with index, mean_abs, rms, max_rel, cosine, NMSE, SQNR, max ULP,
elements not bit-equal, NaN mismatches, a content hash) against the
safetensors twin read with `safe_open`. It prints the seconds taken.

`parity diff DIR/left DIR/right` is the command measured against it, and
`PARITY_BENCH_CHECKPOINTS=DIR cargo bench --bench bandwidth -- "checkpoints|diff"`
against the page-cache read of both files (benches/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def make(d: Path, gib: float) -> None:
    import torch
    from safetensors.torch import save_file

    n = int(gib * (1 << 30) // (12 << 20))
    sd = {}
    for i in range(n):
        layer, which = divmod(i, 2)
        shape = (3072, 1024) if which == 0 else (1024, 3072)
        proj = "up_proj" if which == 0 else "down_proj"
        g = torch.Generator().manual_seed(i)
        sd[f"model.layers.{layer}.mlp.{proj}.weight"] = torch.randn(shape, generator=g) * 0.02
    # One non-contiguous view sharing the first weight's storage.
    sd["lm_head.weight_t"] = sd["model.layers.0.mlp.up_proj.weight"].t()
    (d / "left").mkdir(parents=True, exist_ok=True)
    (d / "right").mkdir(parents=True, exist_ok=True)
    torch.save(sd, d / "left" / "pytorch_model.bin")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(d / "right" / "model.safetensors"))
    print(f"wrote {d}/left/pytorch_model.bin and {d}/right/model.safetensors: {len(sd)} tensors")


def torch_baseline(d: Path) -> None:
    import torch
    from safetensors import safe_open

    sys.path.insert(0, str(Path(__file__).parent))
    from python_diff import content_hash, metrics

    start = time.perf_counter()
    left = torch.load(d / "left" / "pytorch_model.bin", weights_only=True, mmap=True)
    counts: dict[str, int] = {}
    with safe_open(d / "right" / "model.safetensors", "np") as f:
        right_names = set(f.keys())
        for name in sorted(set(left) | right_names):
            if name not in left or name not in right_names:
                status = "only_left" if name in left else "only_right"
            else:
                l = left[name].contiguous().numpy()
                r = f.get_tensor(name)
                same = content_hash(l) == content_hash(r)
                m = metrics(l, r, 0.0, 0.0)
                status = "identical" if same else ("within" if m["outside_allclose"] == 0 else "differs")
            counts[status] = counts.get(status, 0) + 1
    took = time.perf_counter() - start
    print(f"torch.load(weights_only=True, mmap=True) + numpy metrics: {took:.2f} s; {counts}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "torch"])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--gib", type=float, default=2.0)
    a = ap.parse_args()
    if a.what == "make":
        make(a.dir, a.gib)
    else:
        torch_baseline(a.dir)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
