"""PyTorch doing what `parity apply svf_all.yaml` does, written plainly (outside CI).

Read the base checkpoint and the components, compute svf_apply's final bf16
weight of every tensor in f32 (torch.matmul → the BLAS sgemm), write the
output safetensors, and sha256 every output tensor (the manifest's hashes).

    python3 benches/torch_apply.py /dev/shm/qwen8 /dev/shm/qwen8/torch_out.safetensors

Needs torch and safetensors (`pip install ./oracle torch`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def main(argv: list[str]) -> int:
    d, out = Path(argv[0]), Path(argv[1])
    t0 = time.perf_counter()
    report = json.loads((d / "python.json").read_text())
    base = load_file(str(d / "base.safetensors"))
    comps = load_file(str(d / report["components"]))
    result: dict[str, torch.Tensor] = {}
    for t in report["tensors"]:
        key, source = t["key"], base[t["name"]]
        u, s, v, off = (comps[f"tensor.{key}.{x}"] for x in ("u", "s", "v", "offsets"))
        m, n = source.shape
        scaled_s = s * (1.0 + off)
        adapted = ((u * scaled_s.reshape(1, -1)) @ v.T) * (s.sum() / scaled_s.sum())
        final_shape = t["params"]["final_shape"]
        final = adapted.T if list(final_shape) == [n, m] and m != n else adapted
        result[t["name"]] = final.to(torch.bfloat16).contiguous()
    save_file(result, str(out))
    with open(out, "rb+") as f:
        os.fsync(f.fileno())  # parity apply fsyncs what it writes
    for x in result.values():
        hashlib.sha256(x.view(torch.uint8).numpy().tobytes()).hexdigest()
    print(f"torch apply: {len(result)} tensors in {time.perf_counter() - t0:.2f} s "
          f"({torch.get_num_threads()} threads, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
