"""golden/pytorch_*: torch's own reader agrees with each safetensors twin, and
regenerating a case gives the committed twin and diff_case.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import GOLDEN_DIR
from parity_oracle import load_tensors

from parity_oracle import pytorch_case

torch = pytest.importorskip("torch")

PAIRS = {
    pytorch_case.ZIP: ("model.pt", "twin.safetensors"),
    pytorch_case.TRAINING: ("checkpoint.pt", "twin.safetensors"),
}


def flatten(obj, prefix=""):
    """Tensors by dotted path, as parity names them (docs/pytorch.md)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}.{i}" if prefix else str(i))


def bits(t) -> bytes:
    t = t.contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().tobytes()
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return t.view(torch.uint8).numpy().tobytes()
    return t.numpy().tobytes()


@pytest.mark.parametrize("case", sorted(PAIRS))
def test_torch_reads_each_committed_file_as_its_twin(case):
    pt, twin = PAIRS[case]
    loaded = torch.load(GOLDEN_DIR / case / pt, weights_only=True)
    ours = dict(flatten(loaded))
    twin_arrays = load_tensors(GOLDEN_DIR / case / twin)
    assert sorted(ours) == sorted(twin_arrays)
    for name, t in ours.items():
        a = twin_arrays[name]
        assert tuple(t.shape) == a.shape, name
        assert bits(t) == np.ascontiguousarray(a).tobytes(), name


def test_torch_cannot_load_its_own_legacy_float8_save():
    """torch 2.15 writes float8 tensors in the legacy format (over an untyped
    storage) but its legacy loader fails on them. parity reads the file, and
    `parity gate` holds every tensor of it identical to the twin numpy wrote;
    here the same file without its float8 tensors is what torch reads."""
    with pytest.raises(AttributeError, match="UntypedStorage"):
        torch.load(GOLDEN_DIR / pytorch_case.LEGACY / "model.pt", weights_only=True)
    # The zip twin of the same state dict, which torch reads, holds the same
    # values as the legacy case's safetensors twin.
    legacy_twin = load_tensors(GOLDEN_DIR / pytorch_case.LEGACY / "twin.safetensors")
    zip_twin = load_tensors(GOLDEN_DIR / pytorch_case.ZIP / "twin.safetensors")
    assert sorted(legacy_twin) == sorted(zip_twin)
    for name in legacy_twin:
        assert legacy_twin[name].tobytes() == zip_twin[name].tobytes(), name


def test_the_sharded_bin_case_is_its_twin():
    d = GOLDEN_DIR / pytorch_case.SHARDED
    index = json.loads((d / "left" / "pytorch_model.bin.index.json").read_text())
    twin = load_tensors(d / "right" / "model.safetensors")
    assert sorted(index["weight_map"]) == sorted(twin)
    for shard in sorted(set(index["weight_map"].values())):
        for name, t in torch.load(d / "left" / shard, weights_only=True).items():
            assert index["weight_map"][name] == shard
            assert bits(t) == np.ascontiguousarray(twin[name]).tobytes(), name


def test_regenerating_gives_the_committed_twins_and_expectations(tmp_path):
    pytorch_case.generate(tmp_path, list(pytorch_case.NAMES), "versions", "cmd")
    for case, (_, twin) in {**PAIRS, pytorch_case.LEGACY: ("model.pt", "twin.safetensors")}.items():
        assert (tmp_path / case / twin).read_bytes() == (GOLDEN_DIR / case / twin).read_bytes(), case
        assert (tmp_path / case / "diff_case.json").read_text() == (GOLDEN_DIR / case / "diff_case.json").read_text()
    right = "right/model.safetensors"
    assert (tmp_path / pytorch_case.SHARDED / right).read_bytes() == (GOLDEN_DIR / pytorch_case.SHARDED / right).read_bytes()
