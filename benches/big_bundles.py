"""Write two large reports + stage bundles (default 8 GiB per side) without
holding them in memory, to show that `parity check` stays within its memory
bound whatever the bundle size. Outside CI (it writes 2 × SIZE to disk):

    python3 benches/big_bundles.py /tmp/big [--gib 8]
    python3 benches/peak_anon.py target/release/parity check /tmp/big/left.json /tmp/big/right.json --strict-stage-tolerances

Each tensor is one `identity` stage `output`, F32 [4096, 4096] (64 MiB); the
right side differs from the left by a relative 1e-7 on every element, so every
metric has real work to do (the identity profile then fails: exit 1 expected).
The safetensors layout is written by hand here (header, then data in key
order) only because this generator must stream; parity itself reads it with
the safetensors crate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from pathlib import Path

import numpy as np

ROWS = COLS = 4096


def write_side(out: Path, stem: str, count: int, perturb: bool, seed: int) -> None:
    names = [f"tensor.t{i:04d}.output" for i in range(count)]
    nbytes = ROWS * COLS * 4
    header = {n: {"dtype": "F32", "shape": [ROWS, COLS], "data_offsets": [i * nbytes, (i + 1) * nbytes]}
              for i, n in enumerate(sorted(names))}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # 8-byte aligned data, as safetensors writes it
    shas = {}
    with open(out / f"{stem}_stages.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for i, name in enumerate(sorted(names)):
            rng = np.random.default_rng(seed + i)  # same values on both sides
            x = rng.standard_normal((ROWS, COLS), dtype=np.float32) * np.float32(0.02)
            if perturb:
                x = x * np.float32(1 + 1e-7)
            data = x.tobytes()
            shas[name] = hashlib.sha256(data).hexdigest()
            f.write(data)
    tensors = []
    for i in range(count):
        key = f"t{i:04d}"
        sha = shas[f"tensor.{key}.output"]
        tensors.append({"name": f"big.{key}", "key": key, "operation": "identity", "params": {},
                        "stages": {"output": {"dtype": "F32", "shape": [ROWS, COLS], "sha256": sha}},
                        "final_sha256": sha})
    report = {"schema": "parity.report.v1", "producer": {"name": "big_bundles", "implementation": stem},
              "stage_bundle": f"{stem}_stages.safetensors", "tensors": tensors}
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--gib", type=float, default=8.0)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    count = int(a.gib * 1024 / 64)
    write_side(a.out, "left", count, False, 1)
    write_side(a.out, "right", count, True, 1)
    print(f"wrote 2 × {count} tensors of 64 MiB to {a.out}")


if __name__ == "__main__":
    main()
