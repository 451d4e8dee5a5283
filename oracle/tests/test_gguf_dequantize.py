"""parity's GGUF dequantization is gguf.quants.dequantize's, bit for bit:
random blocks of every type parity dequantizes (random packed bits, random
finite, subnormal, zero and negative f16 scales, and inf and NaN scales),
written with the gguf package, diffed by `parity diff` against the package's
own dequantized values — every tensor must be `identical` (same bytes)."""

from __future__ import annotations

import json

import pytest
from conftest import parity

gguf = pytest.importorskip("gguf")

from parity_oracle import gguf_blocks  # noqa: E402  (after the gguf skip)


@pytest.mark.parametrize("seed", range(1, 9))
def test_every_block_type_dequantizes_bit_for_bit(tmp_path, seed):
    gguf_blocks.write(tmp_path, seed=seed, rows=4, blocks_per_row=8)
    r = parity("diff", tmp_path / "blocks_ref.safetensors", tmp_path / "blocks.gguf", "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    statuses = {t["name"]: t["status"] for t in out["tensors"]}
    assert set(statuses) == {f"blk.{n}" for n in gguf_blocks.LAYOUTS} | {"plain.F32", "plain.F16", "plain.BF16"}
    assert all(s == "identical" for s in statuses.values()), statuses


def test_the_committed_fixture_is_what_the_generator_writes(tmp_path):
    """tests/fixtures/gguf (read by the Rust tests without Python) is seed 0."""
    from conftest import REPO_ROOT

    gguf_blocks.write(tmp_path, seed=0)
    fixture = REPO_ROOT / "tests" / "fixtures" / "gguf"
    assert (tmp_path / "blocks_ref.safetensors").read_bytes() == (fixture / "blocks_ref.safetensors").read_bytes()
    assert (tmp_path / "blocks.gguf").read_bytes() == (fixture / "blocks.gguf").read_bytes()


QUANTIZED = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "BF16")


@pytest.mark.parametrize("seed", range(1, 7))
def test_the_reference_quantizer_is_gguf_quants_quantize_bit_for_bit(tmp_path, seed):
    """LEFT random f32 rows (Gaussian, wide-range, all-zero and constant
    blocks, exact ties at half steps), RIGHT each type as gguf.quants.quantize
    writes it: parity must find RIGHT's blocks to be its reference
    quantizer's (`matches_reference: true`) for every type."""
    import numpy as np

    from parity_oracle.checkpoint import serialize_tensors
    from parity_oracle.tensorio import atomic_write_bytes

    rng = np.random.default_rng(seed)
    rows, cols = 8, 256
    left = {}
    for ty in QUANTIZED + ("F16",):
        x = (rng.standard_normal((rows, cols)) * rng.choice([1e-3, 0.02, 1.0, 300.0])).astype(np.float32)
        x[0, :32] = 0.0                       # an all-zero block: scale 0, reciprocal 0
        x[1, :32] = np.float32(0.75)          # a constant block
        x[2, :32] = np.arange(32, dtype=np.float32) - 16  # integers: many exact ties
        x[3, :32] *= np.float32(1e-30)        # tiny: a subnormal f16 scale
        left[f"t.{ty}"] = x
    atomic_write_bytes(tmp_path / "left.safetensors", serialize_tensors(left))
    w = gguf.GGUFWriter(str(tmp_path / "right.gguf"), "llama")
    for ty in QUANTIZED + ("F16",):
        q = gguf.quants.quantize(left[f"t.{ty}"], gguf.GGMLQuantizationType[ty])
        w.add_tensor(f"t.{ty}", q, raw_dtype=gguf.GGMLQuantizationType[ty])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = parity("diff", tmp_path / "left.safetensors", tmp_path / "right.gguf", "--format", "json")
    out = json.loads(r.stdout)
    got = {t["name"]: (t["status"], (t.get("quantization") or {}).get("matches_reference")) for t in out["tensors"]}
    assert got == {f"t.{ty}": ("within", True) for ty in QUANTIZED + ("F16",)}, got
