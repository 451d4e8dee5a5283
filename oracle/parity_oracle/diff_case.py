"""Golden checkpoint-diff cases (SPEC §10): a tiny two-shard model, a
modified and resharded copy, and what `parity diff` must say of them —
computed here with numpy, independently of parity.

A case directory holds `left/` and `right/` (Hugging Face sharded layouts),
`tolerances.json` (a `"tensors"` section), `diff_case.json` (the runs and
their expected statuses and max |diff|) and `NOTE.md`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ml_dtypes
import numpy as np

from .checkpoint import expected_diff, write_checkpoint
from .tensorio import atomic_write_bytes

NAME = "diff_two_shards"
PROVES = ("`parity diff` of a two-shard model and a resharded (three-shard) copy with one change of each kind: "
          "identical, within, differs, shape_mismatch (stored transposed), only_left, only_right, "
          "F32 vs BF16 by value, -0 vs +0, NaN in place, the norm-weight +1 bug")

TOLERANCES = {
    "schema": "parity.tolerances.v1",
    "description": "attention weights may differ by float noise; everything else exact",
    "tensors": {"*.attention.*": {"max_abs": 1e-4, "mean_abs": 1e-5}},
}


def models(seed: int = 11) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: (rng.standard_normal(shape) * 0.05).astype(np.float32)  # noqa: E731
    p = "bert.encoder.layer"
    left = {
        "bert.embeddings.word_embeddings.weight": f32(32, 16),
        f"{p}.0.attention.self.query.weight": f32(16, 16),
        f"{p}.0.attention.self.query.bias": f32(16),
        f"{p}.0.intermediate.dense.bias": f32(24),
        f"{p}.0.output.dense.bias": np.zeros(16, np.float32),
        f"{p}.1.attention.self.key.weight": f32(16, 16).astype(ml_dtypes.bfloat16).astype(np.float32),
        f"{p}.1.output.dense.weight": f32(16, 24),
        f"{p}.1.output.LayerNorm.weight": np.ones(16, np.float32) + f32(16),
        "bert.pooler.dense.weight": f32(16, 16),
    }
    left[f"{p}.0.intermediate.dense.bias"][3] = np.nan
    right = {k: v.copy() for k, v in left.items()}
    # float noise well inside 1e-4: differs exactly, within the tolerance file
    q = f"{p}.0.attention.self.query.weight"
    right[q] = (left[q] + f32(16, 16) * 1e-4).astype(np.float32)
    # -0.0 where LEFT has +0.0: not the same bytes, the same values
    right[f"{p}.0.output.dense.bias"][5] = -0.0
    # stored as BF16, values exactly those of LEFT's F32: within, by value
    right[f"{p}.1.attention.self.key.weight"] = left[f"{p}.1.attention.self.key.weight"].astype(ml_dtypes.bfloat16)
    # stored transposed
    right[f"{p}.1.output.dense.weight"] = np.ascontiguousarray(left[f"{p}.1.output.dense.weight"].T)
    # the "+1" norm-weight bug
    right[f"{p}.1.output.LayerNorm.weight"] = left[f"{p}.1.output.LayerNorm.weight"] + np.float32(1)
    del right["bert.pooler.dense.weight"]
    right["cls.predictions.bias"] = f32(32)
    return left, right


def generate(out: Path, versions: str, command: str) -> None:
    case_dir = out / NAME
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    left, right = models()
    write_checkpoint(case_dir / "left", left, shards=2)
    write_checkpoint(case_dir / "right", right, shards=3)
    atomic_write_bytes(case_dir / "tolerances.json", (json.dumps(TOLERANCES, indent=2) + "\n").encode())
    runs = [
        {"args": [], "expected": expected_diff(left, right)},
        {"args": ["--tolerances", "tolerances.json"], "expected": expected_diff(left, right, TOLERANCES["tensors"])},
    ]
    case = {"schema": "parity.diff_case.v1", "left": "left", "right": "right", "runs": runs}
    atomic_write_bytes(case_dir / "diff_case.json", (json.dumps(case, indent=2) + "\n").encode())
    rows = "\n".join(
        f"| `{n}` | {r0['status']} | {r1['status']} |"
        for (n, r0), r1 in zip(runs[0]["expected"].items(), runs[1]["expected"].values())
    )
    note = f"""# {NAME}

What it proves: {PROVES}.

`left/` is a two-shard Hugging Face layout, `right/` a three-shard one (so every
unchanged tensor must still diff as `identical`). `diff_case.json` lists the runs
`parity gate` makes and the status (and max |right − left|, in f64) numpy expects:

| tensor | exact | `--tolerances tolerances.json` |
|---|---|---|
{rows}

## How it was made

- command: `{command} --case {NAME}` (from the repository root)
- seed: `numpy.random.default_rng(11)`
- versions: {versions}
"""
    (case_dir / "NOTE.md").write_text(note, encoding="utf-8")
