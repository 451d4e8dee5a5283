"""The golden plan case (SPEC §11): a tiny two-shard BERT-like model, a
surgery plan over it, and what the oracle's run of that plan
(:mod:`parity_oracle.apply`, numpy f32 pipelines) wrote — its stage report
and its output model. `parity gate` runs `parity apply` on the same plan and
holds it to both: the stages with `parity check --strict-stage-tolerances`,
the model with `parity diff --tolerances model_tolerances.json`.

A case directory holds `base/` (the model, two shards + index + config.json),
`svf_components.safetensors`, `extra.safetensors`, `plan.yaml`,
`oracle_f32.json` + `oracle_f32.safetensors` (the oracle's --save-stages
report), `oracle_out/` (the oracle's output model), `model_tolerances.json`,
`plan_case.json` (what the gate runs) and `NOTE.md`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .checkpoint import write_checkpoint
from .report import safe_key
from .tensorio import atomic_write_bytes, serialize_tensors

NAME = "plan_two_shards"
PROVES = ("a surgery plan run by `parity apply` equals the oracle's run of it, stage by stage and tensor by "
          "tensor: svf_apply on layers 0-1's query weights (bf16, `layers`, defaulted final_shape), a cast to "
          "BF16, a bias scaled through a `{layer}` template, rename, copy, delete, merge_missing from a second "
          "checkpoint (the model wins on overlap) and asserts (exists, count, shape, dtype, finite, iszero, equal)")
SEED = 23
HIDDEN, INTERMEDIATE, VOCAB, POSITIONS, LAYERS = 16, 32, 48, 16, 3
SVF_LAYERS = (0, 1)
PREFIX = "bert.encoder.layer"

TOLERANCES = {
    "schema": "parity.tolerances.v1",
    "description": "the SVF-written bf16 query weights may differ by float noise (a bf16 rounding flip); "
                   "everything else exact",
    "tensors": {"*.query.weight": {"max_abs": 1e-2, "mean_abs": 1e-3}},
}

CASE = {
    "schema": "parity.plan_case.v1",
    "plan": "plan.yaml",
    "oracle_report": "oracle_f32.json",
    "oracle_model": "oracle_out",
    "diff_args": ["--tolerances", "model_tolerances.json"],
}

CONFIG = {"architectures": ["BertModel"], "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
          "model_type": "bert", "num_hidden_layers": LAYERS, "vocab_size": VOCAB}

PLAN = r"""schema: parity.plan.v1
description: >-
  SVF on the query weights of layers 0-1 (written as bf16), layer 2's key weight
  cast to bf16, one bias halved, the old LayerNorm names renamed, a tied LM head
  copied, a stale buffer deleted, the pooler and LM-head bias taken from a
  second checkpoint, then asserts on the result
inputs:
  base: base/
  svf: svf_components.safetensors
  extra: extra.safetensors
output:
  path: out/                # parity gate overrides it with --out
  layout: sharded
  shard_size: 16KiB
  copy_files: true
steps:
  - id: svf_query
    operation: svf_apply
    target: {match: "bert.encoder.layer.*.attention.self.query.weight", layers: "0..2"}
    inputs: {source: "base:{name}", u: "svf:tensor.{key}.u", s: "svf:tensor.{key}.s",
             v: "svf:tensor.{key}.v", offsets: "svf:tensor.{key}.offsets"}
    write: final_bf16       # final_shape left out: the source's shape
    expect: {dtype: BF16, shape: [16, 16]}
  - id: key_to_bf16
    operation: cast
    target: {match: "bert.encoder.layer.2.attention.self.key.weight"}
    inputs: {x: "base:{name}"}
    params: {to: BF16}
    expect: {dtype: BF16}
  - id: halve_bias
    operation: scale
    target: {match: "re:^bert\\.encoder\\.layer\\.1\\.output\\.dense\\.bias$"}
    inputs: {x: "base:bert.encoder.layer.{layer}.output.dense.bias"}
    params: {factor: 0.5}
  - id: ln_gamma
    operation: rename
    target: {match: "bert.embeddings.LayerNorm.gamma"}
    output: bert.embeddings.LayerNorm.weight
  - id: ln_beta
    operation: rename
    target: {match: "bert.embeddings.LayerNorm.beta"}
    output: bert.embeddings.LayerNorm.bias
  - id: tie_decoder
    operation: copy
    target: {match: "bert.embeddings.word_embeddings.weight"}
    output: cls.predictions.decoder.weight
  - id: drop_position_ids
    operation: delete
    target: {match: "bert.embeddings.position_ids"}
  - id: take_heads
    operation: merge_missing
    inputs: {extra: extra}
  - id: no_position_ids
    assert: {match: "*position_ids", exists: false}
  - id: svf_queries_bf16
    assert: {match: "bert.encoder.layer.*.attention.self.query.weight", layers: "0..2", count: 2, dtype: BF16}
  - id: pooler_taken
    assert: {match: "bert.pooler.dense.*", count: 2, dtype: F32}
  - id: decoder_tied
    assert: {match: "cls.predictions.decoder.weight", exists: true, shape: [48, 16],
             equal: {to: "base:bert.embeddings.word_embeddings.weight", max_abs: 0}}
  - id: zero_buffers
    assert: {match: "re:(cls\\.predictions\\.bias|token_type_ids)$", count: 2, iszero: true}
  - id: all_finite
    assert: {match: "*", finite: true}
"""

STEPS_TABLE = """| step | kind | what it does |
|---|---|---|
| `svf_query` | svf_apply | layers 0..2's query weights (2 of 3) from the components file, `final_shape` defaulted, `final_bf16` written; `expect` dtype and shape |
| `key_to_bf16` | cast | `bert.encoder.layer.2.attention.self.key.weight` to BF16 |
| `halve_bias` | scale | layer 1's `output.dense.bias` × 0.5, target by `re:`, input by a `{layer}` template |
| `ln_gamma`, `ln_beta` | rename | the old `LayerNorm.gamma`/`beta` names to `weight`/`bias` |
| `tie_decoder` | copy | the word embeddings to `cls.predictions.decoder.weight` (a tied LM head) |
| `drop_position_ids` | delete | the stale I64 `bert.embeddings.position_ids` buffer |
| `take_heads` | merge_missing | from `extra.safetensors`: the pooler and `cls.predictions.bias`; its `word_embeddings` and `LayerNorm.weight` lose to the model's |
| `no_position_ids` … `all_finite` | asserts | exists false, count + dtype (with `layers`), count + dtype, exists + shape + equal, count + iszero (F32 and I64), finite on everything |"""


def models(seed: int = SEED) -> tuple[dict, dict, dict]:
    """(base model, svf components, extra checkpoint), from one seeded generator."""
    from .svf import decompose_f32

    rng = np.random.default_rng(seed)
    f32 = lambda *shape: (rng.standard_normal(shape) * 0.05).astype(np.float32)  # noqa: E731
    ln = lambda: (1.0 + rng.standard_normal(HIDDEN) * 0.02).astype(np.float32)  # noqa: E731
    base = {
        "bert.embeddings.word_embeddings.weight": f32(VOCAB, HIDDEN),
        "bert.embeddings.position_embeddings.weight": f32(POSITIONS, HIDDEN),
        "bert.embeddings.position_ids": np.arange(POSITIONS, dtype=np.int64).reshape(1, POSITIONS),
        "bert.embeddings.token_type_ids": np.zeros((1, POSITIONS), np.int64),
        "bert.embeddings.LayerNorm.gamma": ln(),
        "bert.embeddings.LayerNorm.beta": f32(HIDDEN),
    }
    for layer in range(LAYERS):
        p = f"{PREFIX}.{layer}"
        for proj in ("query", "key", "value"):
            base[f"{p}.attention.self.{proj}.weight"] = f32(HIDDEN, HIDDEN)
            base[f"{p}.attention.self.{proj}.bias"] = f32(HIDDEN)
        base[f"{p}.attention.output.dense.weight"] = f32(HIDDEN, HIDDEN)
        base[f"{p}.attention.output.dense.bias"] = f32(HIDDEN)
        base[f"{p}.attention.output.LayerNorm.weight"] = ln()
        base[f"{p}.attention.output.LayerNorm.bias"] = f32(HIDDEN)
        base[f"{p}.intermediate.dense.weight"] = f32(INTERMEDIATE, HIDDEN)
        base[f"{p}.intermediate.dense.bias"] = f32(INTERMEDIATE)
        base[f"{p}.output.dense.weight"] = f32(HIDDEN, INTERMEDIATE)
        base[f"{p}.output.dense.bias"] = f32(HIDDEN)
        base[f"{p}.output.LayerNorm.weight"] = ln()
        base[f"{p}.output.LayerNorm.bias"] = f32(HIDDEN)
    components = {}
    for layer in SVF_LAYERS:
        name = f"{PREFIX}.{layer}.attention.self.query.weight"
        u, s, v = decompose_f32(base[name])
        key = safe_key(name)
        components[f"tensor.{key}.u"] = u
        components[f"tensor.{key}.s"] = s
        components[f"tensor.{key}.v"] = v
        components[f"tensor.{key}.offsets"] = (rng.standard_normal(s.shape[0]) * 0.05).astype(np.float32)
    extra = {
        "bert.pooler.dense.weight": f32(HIDDEN, HIDDEN),
        "bert.pooler.dense.bias": f32(HIDDEN),
        "cls.predictions.bias": np.zeros(VOCAB, np.float32),
        # Overlaps: the working model's tensors win (the second one exists by
        # then only because ln_gamma renamed it).
        "bert.embeddings.word_embeddings.weight": f32(VOCAB, HIDDEN),
        "bert.embeddings.LayerNorm.weight": np.ones(HIDDEN, np.float32),
    }
    return base, components, extra


def _checks(case_dir: Path, base: dict, components: dict, extra: dict, applied) -> list[str]:
    """What the oracle's output must show for the case to prove its claim;
    raises if it does not. Returns the lines NOTE.md lists."""
    from . import ops
    from .checkpoint import open_checkpoint

    out = open_checkpoint(case_dir / CASE["oracle_model"])
    got = {n: out.get(n) for n in out.names()}
    q = f"{PREFIX}.{{}}.attention.self.query.weight"
    lines = []

    def check(cond: bool, line: str) -> None:
        if not cond:
            raise ValueError(f"{NAME}: not as claimed: {line}")
        lines.append(line)

    for layer in SVF_LAYERS:
        name = q.format(layer)
        key = safe_key(name)
        inputs = {"source": base[name], **{i: components[f"tensor.{key}.{i}"] for i in ("u", "s", "v", "offsets")}}
        expected = ops.run("svf_apply", "numpy-f32", inputs, {"final_shape": [HIDDEN, HIDDEN]})["final_bf16"]
        check(got[name].tobytes() == expected.tobytes() and got[name].dtype == expected.dtype,
              f"`{name}` is svf_apply's final_bf16 (BF16) with final_shape [{HIDDEN}, {HIDDEN}]")
    check(got[q.format(2)].tobytes() == base[q.format(2)].tobytes(), f"`{q.format(2)}` is untouched (outside `layers: 0..2`)")
    k2 = f"{PREFIX}.2.attention.self.key.weight"
    check(str(got[k2].dtype) == "bfloat16" and np.array_equal(got[k2].astype(np.float32),
                                                                base[k2].astype(got[k2].dtype).astype(np.float32)),
          f"`{k2}` is BF16, RNE from F32")
    b1 = f"{PREFIX}.1.output.dense.bias"
    others = [f"{PREFIX}.{layer}.output.dense.bias" for layer in range(LAYERS) if layer != 1]
    check(np.array_equal(got[b1], base[b1] * np.float32(0.5)) and all(np.array_equal(got[n], base[n]) for n in others),
          f"`{b1}` is halved; layer 0's and 2's are not")
    check("bert.embeddings.LayerNorm.gamma" not in got
          and np.array_equal(got["bert.embeddings.LayerNorm.weight"], base["bert.embeddings.LayerNorm.gamma"]),
          "`LayerNorm.gamma`/`beta` renamed; `LayerNorm.weight` is base's gamma, not extra's ones")
    we = "bert.embeddings.word_embeddings.weight"
    check(np.array_equal(got["cls.predictions.decoder.weight"], base[we]) and np.array_equal(got[we], base[we]),
          "`cls.predictions.decoder.weight` is a copy of base's word embeddings, which beat extra's on overlap")
    check("bert.embeddings.position_ids" not in got, "`bert.embeddings.position_ids` is deleted")
    taken = sorted(n for n in extra if n not in base and n != "bert.embeddings.LayerNorm.weight")
    check(all(np.array_equal(got[n], extra[n]) for n in taken), f"merge_missing took {', '.join(f'`{n}`' for n in taken)}")
    check(len(got) == len(base) + len(taken), f"{len(got)} tensors out: base's {len(base)}, +1 copy, "
          f"-1 delete, +{len(taken)} taken")
    check([t["name"] for t in applied.report["tensors"]] == [f"svf_query/{q.format(0)}", f"svf_query/{q.format(1)}",
                                                             f"key_to_bf16/{k2}", f"halve_bias/{b1}"],
          "the stage report has one tensor per applied operation (step, tensor): 2 svf_apply, 1 cast, 1 scale")
    check(applied.report["tensors"][0]["params"] == {"final_shape": [HIDDEN, HIDDEN]},
          "svf_apply's params in the report are as resolved: the defaulted `final_shape`")
    return lines


def generate(out: Path, versions: str, command: str) -> None:
    from .apply import run

    case_dir = out / NAME
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    base, components, extra = models()
    write_checkpoint(case_dir / "base", base, shards=2)
    atomic_write_bytes(case_dir / "base" / "config.json", (json.dumps(CONFIG, indent=2) + "\n").encode())
    atomic_write_bytes(case_dir / "svf_components.safetensors", serialize_tensors(components))
    atomic_write_bytes(case_dir / "extra.safetensors", serialize_tensors(extra))
    atomic_write_bytes(case_dir / "plan.yaml", PLAN.encode())
    atomic_write_bytes(case_dir / "model_tolerances.json", (json.dumps(TOLERANCES, indent=2) + "\n").encode())
    atomic_write_bytes(case_dir / "plan_case.json", (json.dumps(CASE, indent=2) + "\n").encode())
    applied = run(case_dir / "plan.yaml", out=case_dir / CASE["oracle_model"],
                  save_stages=case_dir / CASE["oracle_report"], stage_bundle="oracle_f32.safetensors")
    checks = "\n".join(f"- {line}" for line in _checks(case_dir, base, components, extra, applied))
    log = "\n".join(applied.log).replace(str(case_dir) + "/", "")
    note = f"""# {NAME}

What it proves: {PROVES}.

`base/` is a two-shard Hugging Face layout (3 BERT-like layers, hidden {HIDDEN}, intermediate
{INTERMEDIATE}, vocabulary {VOCAB}; F32 weights, two I64 buffers) with a `config.json`.
`plan.yaml` (parity.plan.v1) edits it:

{STEPS_TABLE}

`parity gate` runs `parity apply plan.yaml --out … --save-stages …` with each implementation,
then `parity check oracle_f32.json <its report> --strict-stage-tolerances` (built-in profiles)
and `parity diff oracle_out <its output> --tolerances model_tolerances.json` (the bf16 query
weights within float noise, everything else exact), as `plan_case.json` says.

- files: `base/`; `svf_components.safetensors` (`tensor.<key>.u|s|v|offsets` of the two query
  weights: their f32 SVD in torch.svd layout and N(0, 0.05²) offsets); `extra.safetensors` (the
  second checkpoint); `plan.yaml`; `oracle_f32.json` + `oracle_f32.safetensors` (the oracle's
  `--save-stages` report: tensors `STEP_ID/TENSOR_NAME`, numpy-f32 stages); `oracle_out/` (the
  oracle's output model, cut at the plan's 16 KiB shards, with the copied `config.json`);
  `model_tolerances.json`; `plan_case.json`

## The oracle's run

```
{log}
```

## Checked by the generator

{checks}

## How it was made

- command: `{command} --case {NAME}` (from the repository root); the run is
  `python3 -m parity_oracle apply plan.yaml --out oracle_out --save-stages oracle_f32.json`
  with the bundle named `oracle_f32.safetensors`
- seed: `numpy.random.default_rng({SEED})` (weights N(0, 0.05²), LayerNorm weights 1 + N(0, 0.02²))
- versions: {versions}
"""
    (case_dir / "NOTE.md").write_text(note, encoding="utf-8")
