"""GGUF files of random quantized blocks, with `gguf.quants.dequantize`'s
values beside them: what parity's dequantization is held to, bit for bit
(oracle/tests/test_gguf_dequantize.py, tests/fixtures/gguf/).

Blocks are random bytes — every bit pattern of the packed values, scales
and high bits is fair — except the f16 scale fields, which are drawn from
finite f16 values (normal, subnormal, zero, negative) so that every
dequantized value is finite or is NaN/inf only where `with_specials` puts
an inf or NaN scale. (Where a type has both a scale and a min and both are
NaN, the NaN payload of `d·q + m` depends on operand order, which IEEE
leaves to the implementation: `with_specials` never sets both.)

    python3 -m parity_oracle.gguf_blocks OUT_DIR [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ml_dtypes
import numpy as np

# Byte offsets of each type's f16 fields within one block, from ggml's
# block layouts (ggml-common.h): (values per block, bytes per block, f16 offsets).
LAYOUTS = {
    "Q4_0": (32, 18, (0,)),
    "Q4_1": (32, 20, (0, 2)),
    "Q5_0": (32, 22, (0,)),
    "Q5_1": (32, 24, (0, 2)),
    "Q8_0": (32, 34, (0,)),
    "Q2_K": (256, 84, (80, 82)),
    "Q3_K": (256, 110, (108,)),
    "Q4_K": (256, 144, (0, 2)),
    "Q5_K": (256, 176, (0, 2)),
    "Q6_K": (256, 210, (208,)),
    "IQ4_NL": (32, 18, (0,)),
    "IQ4_XS": (256, 136, (0,)),
}


def random_blocks(rng: np.random.Generator, name: str, n_blocks: int, with_specials: bool) -> np.ndarray:
    """`n_blocks` blocks of type `name`, as a (n_blocks, bytes) uint8 array."""
    _, size, scales = LAYOUTS[name]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for k, off in enumerate(scales):
        kind = rng.integers(0, 8, size=n_blocks)
        v = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        v = np.where(kind == 0, np.float16(0.0), v)
        v = np.where(kind == 1, np.float16(-0.0), v)
        v = np.where(kind == 2, (rng.integers(1, 1024, n_blocks).astype(np.uint16)).view(np.float16), v)  # subnormal
        if with_specials and k == 0:
            v = np.where(kind == 3, np.float16(np.inf), v)
            v = np.where(kind == 4, np.float16(np.nan), v)
        raw[:, off:off + 2] = v.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw


def write(out: Path, seed: int = 0, rows: int = 3, blocks_per_row: int = 2, with_specials: bool = True) -> dict[str, np.ndarray]:
    """out/blocks.gguf (every type in LAYOUTS, plus F32/F16/BF16) and
    out/blocks_ref.safetensors (gguf.quants.dequantize of each). Returns the
    reference arrays."""
    import gguf
    from gguf.quants import dequantize, quantize

    from .tensorio import atomic_write_bytes
    from .checkpoint import serialize_tensors

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out / "blocks.gguf"), "llama")
    w.add_uint32("llama.attention.head_count", 4)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a"])
    ref: dict[str, np.ndarray] = {}
    for name, (block, size, _) in LAYOUTS.items():
        qtype = gguf.GGMLQuantizationType[name]
        raw = random_blocks(rng, name, rows * blocks_per_row, with_specials)
        q = raw.reshape(rows, blocks_per_row * size)
        w.add_tensor(f"blk.{name}", q, raw_dtype=qtype)
        with np.errstate(all="ignore"):
            ref[f"blk.{name}"] = np.ascontiguousarray(dequantize(q, qtype)).astype(np.float32)
    x = rng.standard_normal((rows, 64)).astype(np.float32)
    w.add_tensor("plain.F32", x, raw_dtype=gguf.GGMLQuantizationType.F32)
    ref["plain.F32"] = x
    w.add_tensor("plain.F16", x.astype(np.float16), raw_dtype=gguf.GGMLQuantizationType.F16)
    ref["plain.F16"] = x.astype(np.float16)
    bf = quantize(x, gguf.GGMLQuantizationType.BF16)
    w.add_tensor("plain.BF16", bf, raw_dtype=gguf.GGMLQuantizationType.BF16)
    ref["plain.BF16"] = bf.view(ml_dtypes.bfloat16).reshape(x.shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    atomic_write_bytes(out / "blocks_ref.safetensors", serialize_tensors(ref))
    return ref


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    write(a.out, a.seed)


if __name__ == "__main__":
    main()
