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
