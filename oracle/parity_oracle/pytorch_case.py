"""Golden PyTorch-checkpoint cases (issue 24): files written by `torch.save`
itself, each beside a safetensors twin holding the same tensors, and a
`diff_case.json` whose every expected status is `identical`.

The values are made in numpy first; the torch tensors are built from them
(views taken in torch: a transpose, a column, a permutation, an offset
slice, tied names) and the twin is written from the numpy arrays with the
same views taken in numpy, so the twin never passes through torch's reader
and `expected` is computed by `checkpoint.expected_diff` on numpy values.

Needs torch (the `golden` extra); never run in CI, where `parity gate`
checks the committed files.
"""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from pathlib import Path

import ml_dtypes
import numpy as np

from .checkpoint import expected_diff, serialize_tensors, write_checkpoint
from .tensorio import atomic_write_bytes

ZIP = "pytorch_zip_views"
LEGACY = "pytorch_legacy"
TRAINING = "pytorch_training_checkpoint"
SHARDED = "pytorch_sharded_bin"
NAMES = (ZIP, LEGACY, TRAINING, SHARDED)

PROVES = {
    ZIP: "a `torch.save` zip file read without running its pickle: every dtype torch writes "
         "(f64, f32, f16, bf16, i64 past 2^53, i32, i16, i8, u8, bool, float8 e4m3fn/e5m2), views sharing one "
         "storage (tied, transposed, a column, a 3-D permute, an offset slice), 0-d and empty tensors — "
         "`identical` to its safetensors twin",
    LEGACY: "the same state dict in the legacy format (`_use_new_zipfile_serialization=False`)",
    TRAINING: "a nested training checkpoint (model, optimizer state under integer keys, epoch and "
              "hyper-parameters skipped): tensors named by their dotted path",
    SHARDED: "a Hugging Face sharded `.bin` directory with `pytorch_model.bin.index.json`",
}


def state_arrays(seed: int = 24) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, object]]]:
    """The base arrays (numpy), and each view's recipe: (base name, numpy view)."""
    rng = np.random.default_rng(seed)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    base = {
        "embed.weight": f32(8, 6),
        "block.0.weight": f32(6, 6),
        "block.0.bias": f32(6),
        "block.1.weight": f32(2, 3, 4),
        "norm.weight": (np.ones(6) + rng.standard_normal(6) * 0.1).astype(np.float16),
        "norm.bias": f32(6).astype(ml_dtypes.bfloat16),
        "rope.freqs": rng.standard_normal(5),  # f64
        "position_ids": np.array([0, 1, 2, 2**53 + 1, -7], np.int64),
        "counts": np.array([1, -2, 3], np.int32),
        "quant.zero": np.array([-300, 0, 300], np.int16),
        "quant.scale_i8": np.array([-128, 0, 127], np.int8),
        "mask_u8": np.array([0, 255, 7], np.uint8),
        "mask": np.array([True, False, True]),
        "fp8.e4m3": np.array([0.5, -1.25, 448.0, 0.0], np.float32).astype(ml_dtypes.float8_e4m3fn),
        "fp8.e5m2": np.array([0.5, -3.0, 57344.0, 2**-16], np.float32).astype(ml_dtypes.float8_e5m2),
        "step": np.array(7.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    base["block.0.bias"][2] = np.float32(-0.0)
    base["embed.weight"][1, 1] = np.float32(np.nan)
    base["embed.weight"][2, 2] = np.float32(1e-40)  # a subnormal
    views = {
        "lm_head.weight": ("embed.weight", lambda a: a),              # tied: same storage, same view
        "embed.weight_t": ("embed.weight", lambda a: a.T),            # transposed
        "embed.column": ("embed.weight", lambda a: a[:, 3]),          # stride 6, offset 3
        "embed.rows": ("embed.weight", lambda a: a[2:5]),             # offset 12, row-major
        "block.1.permuted": ("block.1.weight", lambda a: a.transpose(2, 0, 1)),
    }
    return base, views


def torch_state(base: dict, views: dict):
    import torch

    def to_torch(a: np.ndarray):
        # Bits through an integer view where numpy has no torch twin.
        if a.dtype == ml_dtypes.bfloat16:
            return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        if a.dtype == ml_dtypes.float8_e4m3fn:
            return torch.from_numpy(a.view(np.uint8).copy()).view(torch.float8_e4m3fn)
        if a.dtype == ml_dtypes.float8_e5m2:
            return torch.from_numpy(a.view(np.uint8).copy()).view(torch.float8_e5m2)
        return torch.from_numpy(a.copy())

    sd = OrderedDict((k, to_torch(v)) for k, v in base.items())
    torch_views = {
        "lm_head.weight": lambda t: t,
        "embed.weight_t": lambda t: t.t(),
        "embed.column": lambda t: t[:, 3],
        "embed.rows": lambda t: t[2:5],
        "block.1.permuted": lambda t: t.permute(2, 0, 1),
    }
    for name, (src, _) in views.items():
        sd[name] = torch_views[name](sd[src])
    if views:
        assert not sd["embed.weight_t"].is_contiguous() and sd["embed.column"].storage_offset() == 3
    return sd


def twin(base: dict, views: dict) -> dict[str, np.ndarray]:
    out = dict(base)
    for name, (src, view) in views.items():
        out[name] = np.ascontiguousarray(view(base[src]))
    return out


def _note(name: str, versions: str, command: str, files: str) -> str:
    return f"""# {name}

What it proves: {PROVES[name]}.

{files}

`diff_case.json` lists the run `parity gate` makes: `parity diff` of the PyTorch side against
its twin, every tensor `identical` (same dtype, shape and bytes), as numpy computes from the
arrays both were written from.

## How it was made

- command: `{command} --case {name}` (from the repository root; needs torch: `pip install './oracle[golden]'`)
- seed: `numpy.random.default_rng(24)`
- versions: {versions}
"""


def _case(out: Path, name: str, left: str, right: str, left_arrays: dict, right_arrays: dict,
          versions: str, command: str, files: str) -> None:
    expected = expected_diff(left_arrays, right_arrays)
    assert all(e["status"] == "identical" for e in expected.values()), expected
    case = {"schema": "parity.diff_case.v1", "left": left, "right": right,
            "runs": [{"args": [], "expected": expected}]}
    atomic_write_bytes(out / name / "diff_case.json", (json.dumps(case, indent=2) + "\n").encode())
    (out / name / "NOTE.md").write_text(_note(name, versions, command, files), encoding="utf-8")


def generate(out: Path, names: list[str], versions: str, command: str) -> None:
    import torch

    base, views = state_arrays()
    arrays = twin(base, views)
    for name in names:
        d = out / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    if ZIP in names:
        torch.save(torch_state(base, views), out / ZIP / "model.pt")
        atomic_write_bytes(out / ZIP / "twin.safetensors", serialize_tensors(arrays))
        _case(out, ZIP, "model.pt", "twin.safetensors", arrays, arrays, versions, command,
              "`model.pt` is `torch.save(state_dict)`; `twin.safetensors` the same tensors, views made contiguous.")
    if LEGACY in names:
        torch.save(torch_state(base, views), out / LEGACY / "model.pt", _use_new_zipfile_serialization=False)
        atomic_write_bytes(out / LEGACY / "twin.safetensors", serialize_tensors(arrays))
        _case(out, LEGACY, "model.pt", "twin.safetensors", arrays, arrays, versions, command,
              "`model.pt` is `torch.save(state_dict, _use_new_zipfile_serialization=False)`.")
    if TRAINING in names:
        sd = torch_state(base, views)
        exp_avg = np.full(6, 0.25, np.float32)
        checkpoint = {
            "epoch": 3,
            "model": sd,
            "optimizer": {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.from_numpy(exp_avg.copy())}},
                          "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]},
            "note": "a string leaf",
        }
        torch.save(checkpoint, out / TRAINING / "checkpoint.pt")
        flat = {f"model.{k}": v for k, v in arrays.items()}
        flat["optimizer.state.0.step"] = np.array(10.0, np.float32)
        flat["optimizer.state.0.exp_avg"] = exp_avg
        atomic_write_bytes(out / TRAINING / "twin.safetensors", serialize_tensors(flat))
        _case(out, TRAINING, "checkpoint.pt", "twin.safetensors", flat, flat, versions, command,
              "`checkpoint.pt` holds `{epoch, model: state_dict, optimizer: {state: {0: …}, param_groups}, note}`; "
              "`twin.safetensors` its tensors under their dotted paths (the epoch, lr, betas, params and note are "
              "not tensors: skipped and counted by `parity inspect`).")
    if SHARDED in names:
        names_sorted = sorted(base)
        half = len(names_sorted) // 2
        parts = [names_sorted[:half], names_sorted[half:]]
        sd = torch_state(base, {})
        left = out / SHARDED / "left"
        left.mkdir()
        weight_map = {}
        for i, part in enumerate(parts):
            file = f"pytorch_model-{i + 1:05d}-of-{len(parts):05d}.bin"
            torch.save(OrderedDict((n, sd[n]) for n in part), left / file)
            weight_map.update({n: file for n in part})
        index = {"metadata": {"total_size": int(sum(a.nbytes for a in base.values()))}, "weight_map": weight_map}
        atomic_write_bytes(left / "pytorch_model.bin.index.json", (json.dumps(index, indent=2) + "\n").encode())
        write_checkpoint(out / SHARDED / "right", base, shards=None)
        _case(out, SHARDED, "left", "right", base, base, versions, command,
              "`left/` is a two-shard `.bin` checkpoint with `pytorch_model.bin.index.json`, as Hugging Face "
              "`save_pretrained(safe_serialization=False)` lays it out; `right/model.safetensors` the same tensors.")
