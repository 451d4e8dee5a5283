"""Write the 8-tensor Qwen-MLP-sized SVF case used by the speed benchmarks.

Four gate/up_proj-like tensors [3072, 1024] (final_shape [1024, 3072], so
transposed) and four down_proj-like [1024, 3072] (kept), k = 1024, each with
all ten stages: about 0.6 GB of stage bundle per side. Outside CI (it takes
a minute and ~1.5 GB of disk):

    pip install ./oracle       # the oracle's report writer and svf pipeline
    python3 benches/qwen_case.py /tmp/qwen8 [--tensors 8] [--scale 1]

`--scale N` multiplies the number of tensors by N (N = 13 gives ~8 GB per side,
for the bounded-memory check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from parity_oracle import ReportWriter, svf_apply_f32, svf_components, svf_params


def orthonormal_columns(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    # QR of a Gaussian matrix: orthonormal columns, like an SVD basis, far
    # cheaper than decomposing a real weight of this size.
    q, _ = np.linalg.qr(rng.standard_normal((rows, cols)))
    return np.ascontiguousarray(q, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--tensors", type=int, default=8)
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    writer = ReportWriter(
        args.out / "python.json",
        producer={"name": "qwen-case", "implementation": "numpy-f32"},
        baseline={"label": "numpy f32", "historical_reproducible": False, "note": "benchmark data"},
    )
    count = args.tensors * args.scale
    for i in range(count):
        m, n = (3072, 1024) if i % 2 == 0 else (1024, 3072)
        k = min(m, n)
        u = orthonormal_columns(rng, m, k)
        v = orthonormal_columns(rng, n, k)
        s = np.sort(rng.uniform(0.05, 3.0, k)).astype(np.float32)[::-1].copy()
        offsets = (rng.standard_normal(k) * 0.05).astype(np.float32)
        source = ((u * s) @ v.T).astype(np.float32)
        final_shape = (n, m) if i % 2 == 0 else (m, n)
        stages = svf_apply_f32(source, u, s, v, offsets, final_shape=final_shape)
        proj = "gate_proj" if i % 2 == 0 else "down_proj"
        writer.add_tensor(
            f"model.layers.{i // 2}.mlp.{proj}.weight",
            operation="svf_apply",
            params=svf_params(final_shape, None),
            stages=stages,
            components=svf_components(source, u, s, v, offsets),
        )
        print(f"tensor {i + 1}/{count}", file=sys.stderr)
    writer.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
