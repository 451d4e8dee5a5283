"""GGUF benchmarks (issue 25), outside CI.

    python3 benches/gguf_bench.py make DIR [--gib 2]     # DIR/hf (F16 safetensors), DIR/q8_0.gguf, DIR/q4_k.gguf
    python3 benches/gguf_bench.py numpy DIR              # gguf.quants.dequantize GB/s per type (the baseline)

`make` writes Qwen-MLP-shaped weights ([3072, 1024] and [1024, 3072]) in F16
totalling --gib GiB, and their conversions to Q8_0 (`gguf.quants.quantize`,
the reference quantizer) and Q4_K (the plain quantizer of
oracle/parity_oracle/gguf_case.py), with llama.cpp's names, one tensor at a
time. Then, timed by hand (benches/README.md):

    parity diff DIR/hf DIR/q8_0.gguf --map-preset llama
    parity diff DIR/hf DIR/q4_k.gguf --map-preset llama
    python3 benches/peak_anon.py target/release/parity diff DIR/hf DIR/q8_0.gguf --map-preset llama

`numpy` times `gguf.quants.dequantize` on 64 MiB of random blocks of each
type parity dequantizes, as GB/s of F32 output (the unit the Rust kernels'
bench reports: `cargo bench --bench bandwidth -- dequantize`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def shapes(gib: float):
    n = int(gib * (1 << 30) // (6 << 20))  # 6 MiB per F16 tensor
    for i in range(n):
        layer, which = divmod(i, 2)
        yield (f"model.layers.{layer}.mlp.up_proj.weight", f"blk.{layer}.ffn_up.weight", (3072, 1024)) if which == 0 else \
              (f"model.layers.{layer}.mlp.down_proj.weight", f"blk.{layer}.ffn_down.weight", (1024, 3072))


def make(d: Path, gib: float) -> None:
    import gguf
    from gguf.quants import quantize
    from safetensors.numpy import save_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "oracle"))
    from parity_oracle.gguf_case import quantize_q4_k

    (d / "hf").mkdir(parents=True, exist_ok=True)
    tensors = {}
    for i, (hf, _, shape) in enumerate(shapes(gib)):
        tensors[hf] = (np.random.default_rng(i).standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
    save_file(tensors, str(d / "hf" / "model.safetensors"))
    for ty in ("Q8_0", "Q4_K"):
        w = gguf.GGUFWriter(str(d / f"{ty.lower()}.gguf"), "llama")
        for hf, name, _ in shapes(gib):
            x = tensors[hf].astype(np.float32)
            raw = quantize(x, gguf.GGMLQuantizationType.Q8_0) if ty == "Q8_0" else quantize_q4_k(x)
            w.add_tensor(name, raw, raw_dtype=gguf.GGMLQuantizationType[ty])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    print(f"wrote {d}/hf, {d}/q8_0.gguf, {d}/q4_k.gguf")


def numpy_rates() -> None:
    import gguf
    from gguf.quants import dequantize

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "oracle"))
    from parity_oracle.gguf_blocks import LAYOUTS, random_blocks

    rng = np.random.default_rng(0)
    for name, (block, size, _) in LAYOUTS.items():
        n = (64 << 20) // (block * 4)
        raw = random_blocks(rng, name, n, with_specials=False)
        start = time.perf_counter()
        with np.errstate(all="ignore"):
            out = dequantize(raw.reshape(-1), gguf.GGMLQuantizationType[name])
        took = time.perf_counter() - start
        print(f"{name:7s} numpy gguf.quants.dequantize: {out.nbytes / took / 1e9:6.2f} GB/s of F32")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "numpy"])
    ap.add_argument("dir", type=Path, nargs="?")
    ap.add_argument("--gib", type=float, default=2.0)
    a = ap.parse_args()
    if a.what == "make":
        make(a.dir, a.gib)
    else:
        numpy_rates()


if __name__ == "__main__":
    main()
