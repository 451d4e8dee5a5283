"""PyTorch's CPU kernels doing what `parity replay --impl fast` does, written plainly.

For every tensor of a report: read the components, compute the ten SVF
stages in f32 (torch.matmul → MKL/OpenBLAS sgemm), write the stage bundle and
hash every stage. The baseline the fast kernel's time is quoted against.

    python3 benches/torch_replay.py /tmp/qwen8/python.json /tmp/torch_out.safetensors

Needs torch and safetensors (`pip install ./oracle torch`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def main(argv: list[str]) -> int:
    report_path, out = Path(argv[0]), Path(argv[1])
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    report = json.loads(report_path.read_text())
    comps = load_file(str(report_path.parent / report["components"]))
    stages: dict[str, torch.Tensor] = {}
    for t in report["tensors"]:
        key = t["key"]
        source, u, s, v, off = (comps[f"tensor.{key}.{x}"] for x in ("source", "u", "s", "v", "offsets"))
        m, n = source.shape
        scaled_s = s * (1.0 + off)
        normalization = (s.sum() / scaled_s.sum()).reshape(1)
        u_scaled = u * scaled_s.reshape(1, -1)
        matmul = u_scaled @ v.T
        zero = (u * s.reshape(1, -1)) @ v.T
        adapted = matmul * normalization
        final_shape = t["params"]["final_shape"]
        # A separate tensor even when no transpose is needed: the bundle stores
        # final_f32 as its own stage (safetensors refuses shared storage).
        final = adapted.T.contiguous() if list(final_shape) == [n, m] and m != n else adapted.clone()
        for name, x in [("source_f32", source), ("offsets_f32", off), ("scaled_s", scaled_s),
                        ("normalization", normalization), ("u_scaled", u_scaled), ("matmul_pre_norm", matmul),
                        ("zero_source_f32", zero), ("adapted_source_f32", adapted), ("final_f32", final),
                        ("final_bf16", final.to(torch.bfloat16))]:
            stages[f"tensor.{key}.{name}"] = x.contiguous()
    save_file(stages, str(out))
    for x in stages.values():
        hashlib.sha256(x.view(torch.uint8).numpy().tobytes() if x.dtype == torch.bfloat16 else x.numpy().tobytes()).hexdigest()
    print(f"torch replay: {len(report['tensors'])} tensors in {time.perf_counter() - t0:.2f} s "
          f"({torch.get_num_threads()} threads, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
