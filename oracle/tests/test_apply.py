"""`python -m parity_oracle apply`: the oracle's mirror of `parity apply`
(SPEC §11) — every step kind, templating, asserts and their exit codes, YAML
and JSON plans, and the golden plan case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import yaml
from conftest import GOLDEN_DIR, REPO_ROOT, SVF_TOLERANCES, stage_diff

from parity_oracle import load_tensors, ops, safe_key, sha256_hex
from parity_oracle.apply import AssertFailed, run
from parity_oracle.checkpoint import open_checkpoint, write_checkpoint
from parity_oracle.plan import PlanError, load_plan, matching, template
from parity_oracle.plan_case import NAME as PLAN_CASE
from parity_oracle.svf import decompose_f32
from parity_oracle.tensorio import serialize_tensors

Q = "model.layers.{}.self_attn.q_proj.weight"


def _w(rng, *shape):
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


@pytest.fixture()
def work(tmp_path):
    """A 3-layer model in two shards, SVF components for two of its q_proj
    weights (one [8, 6] wide, to tell orientations apart), an extra checkpoint."""
    rng = np.random.default_rng(4)
    base = {"model.embed_tokens.weight": _w(rng, 10, 6), "model.norm.weight": np.ones(6, np.float32)}
    for layer in range(3):
        base[Q.format(layer)] = _w(rng, 8, 6)
        base[f"model.layers.{layer}.mlp.down_proj.bias"] = _w(rng, 6)
    base["model.layers.1.mlp.down_proj.bias"][2] = np.inf  # for finite/equal
    write_checkpoint(tmp_path / "base", base, shards=2)
    (tmp_path / "base" / "config.json").write_text('{"model_type": "llama"}\n')
    (tmp_path / "base" / ".hidden").write_text("not copied\n")
    comps = {}
    for layer in (0, 1):
        u, s, v = decompose_f32(base[Q.format(layer)])
        key = safe_key(Q.format(layer))
        comps.update({f"tensor.{key}.u": u, f"tensor.{key}.s": s, f"tensor.{key}.v": v,
                      f"tensor.{key}.offsets": (rng.standard_normal(s.shape[0]) * 0.05).astype(np.float32)})
    (tmp_path / "svf.safetensors").write_bytes(serialize_tensors(comps))
    extra = {"lm_head.weight": _w(rng, 10, 6), "model.norm.weight": np.zeros(6, np.float32)}
    (tmp_path / "extra.safetensors").write_bytes(serialize_tensors(extra))
    return tmp_path, base, comps, extra


INPUTS = {"base": "base/", "svf": "svf.safetensors", "extra": "extra.safetensors"}
SVF_INPUTS = {"source": "base:{name}", "u": "svf:tensor.{key}.u", "s": "svf:tensor.{key}.s",
              "v": "svf:tensor.{key}.v", "offsets": "svf:tensor.{key}.offsets"}


def _plan(d: Path, steps: list, name: str = "plan.json", output: dict | None = None, **extra) -> Path:
    value = {"schema": "parity.plan.v1", "inputs": INPUTS, "output": output or {"path": "out/"}, "steps": steps,
             **extra}
    p = d / name
    if name.endswith((".yaml", ".yml")):
        p.write_text(yaml.safe_dump(value, sort_keys=False))
    else:
        p.write_text(json.dumps(value, indent=1))
    return p


def _svf_step(**kw):
    return {"id": "svf", "operation": "svf_apply", "target": {"match": "model.layers.*.self_attn.q_proj.weight",
                                                              "layers": "0..2"},
            "inputs": SVF_INPUTS, "write": "final_bf16", **kw}


def _out(d: Path, name: str = "out") -> dict:
    ck = open_checkpoint(d / name)
    return {n: ck.get(n) for n in ck.names()}


def run_cli(*args: str, cwd=REPO_ROOT, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "parity_oracle", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- operations


def test_svf_apply_with_layers_defaulted_final_shape_and_the_stage_report(work, validate_report):
    d, base, comps, _ = work
    (d / "st").mkdir()
    applied = run(_plan(d, [_svf_step(expect={"dtype": "BF16", "shape": [8, 6]})]), save_stages=d / "st" / "r.json")
    out = _out(d)
    for layer in (0, 1):
        key = safe_key(Q.format(layer))
        inputs = {"source": base[Q.format(layer)], **{i: comps[f"tensor.{key}.{i}"] for i in ("u", "s", "v", "offsets")}}
        want = ops.run("svf_apply", "numpy-f32", inputs, {"final_shape": [8, 6]})
        assert out[Q.format(layer)].dtype == ml_dtypes.bfloat16
        assert out[Q.format(layer)].tobytes() == want["final_bf16"].tobytes()
    assert out[Q.format(2)].tobytes() == base[Q.format(2)].tobytes()  # outside layers 0..2
    report = json.loads((d / "st" / "r.json").read_text())
    validate_report(report)
    assert report["stage_bundle"] == "r_stages.safetensors"
    assert [t["name"] for t in report["tensors"]] == [f"svf/{Q.format(0)}", f"svf/{Q.format(1)}"]
    t = report["tensors"][0]
    assert t["key"] == safe_key(t["name"]) == "svf_model_layers_0_self_attn_q_proj_weight"
    assert t["operation"] == "svf_apply" and t["params"] == {"final_shape": [8, 6]}
    assert list(t["stages"]) == list(ops.OPS["svf_apply"].stages)
    bundle = load_tensors(d / "st" / "r_stages.safetensors")
    assert sha256_hex(bundle[f"tensor.{t['key']}.final_bf16"]) == t["final_sha256"] == sha256_hex(out[Q.format(0)])
    assert applied.report == report


def test_svf_transpose_true_defaults_final_shape_to_the_transpose(work):
    d, *_ = work
    step = _svf_step(params={"transpose": True}, write=None)
    del step["write"]
    applied = run(_plan(d, [step]), save_stages=d / "r.json")
    assert applied.report["tensors"][0]["params"] == {"transpose": True, "final_shape": [6, 8]}
    assert _out(d)[Q.format(0)].shape == (6, 8)


def test_cast_scale_and_stage_filters(work):
    d, base, *_ = work
    steps = [
        {"id": "to_bf16", "operation": "cast", "target": {"match": "model.embed_tokens.weight"},
         "inputs": {"x": "base:{name}"}, "params": {"to": "BF16"}},
        {"id": "halve", "operation": "scale", "target": {"match": "re:layers\\.[02]\\.mlp\\.down_proj\\.bias$"},
         "inputs": {"x": "base:model.layers.{layer}.mlp.down_proj.bias"}, "params": {"factor": 0.5}},
    ]
    applied = run(_plan(d, steps), save_stages=d / "r.json", stage_layers="2..3")
    out = _out(d)
    e = "model.embed_tokens.weight"
    assert out[e].dtype == ml_dtypes.bfloat16 and np.array_equal(out[e], base[e].astype(ml_dtypes.bfloat16))
    for layer, factor in ((0, 0.5), (1, 1.0), (2, 0.5)):
        n = f"model.layers.{layer}.mlp.down_proj.bias"
        assert np.array_equal(out[n], base[n] * np.float32(factor)), n
    # --layers 2..3 keeps layer 2 and the tensor with no layer number
    assert [t["name"] for t in applied.report["tensors"]] == [f"to_bf16/{e}",
                                                              "halve/model.layers.2.mlp.down_proj.bias"]


def test_base_references_see_earlier_steps_and_other_inputs_read_their_files(work):
    d, base, _, extra = work
    steps = [
        {"id": "double", "operation": "scale", "target": {"match": "model.norm.weight"},
         "inputs": {"x": "base:{name}"}, "params": {"factor": 2}, "output": "model.norm.doubled"},
        {"id": "again", "operation": "scale", "target": {"match": "model.norm.doubled"},
         "inputs": {"x": "base:{name}"}, "params": {"factor": 3}},
        {"id": "drop", "operation": "delete", "target": {"match": "model.norm.weight"}},
        # extra:NAME is the file's tensor whatever the working model holds
        {"id": "from_extra", "operation": "scale", "target": {"match": "model.norm.doubled"},
         "inputs": {"x": "extra:model.norm.weight"}, "params": {"factor": 1}, "output": "z"},
    ]
    run(_plan(d, steps))
    out = _out(d)
    assert np.array_equal(out["model.norm.doubled"], np.full(6, 6, np.float32))
    assert "model.norm.weight" not in out and np.array_equal(out["z"], extra["model.norm.weight"])


def test_write_selects_a_stage_and_output_names_the_written_tensor(work):
    d, base, *_ = work
    step = _svf_step(write="zero_source_f32", output="{name}.zero", target={"match": Q.format(0)})
    run(_plan(d, [step]))
    out = _out(d)
    assert out[Q.format(0) + ".zero"].dtype == np.float32 and out[Q.format(0)].tobytes() == base[Q.format(0)].tobytes()


# ---------------------------------------------------------------- structural


def test_copy_rename_delete_and_merge_missing(work):
    d, base, _, extra = work
    steps = [
        {"id": "tie", "operation": "copy", "target": {"match": "model.embed_tokens.weight"}, "output": "tied.{key}"},
        {"id": "mv", "operation": "rename", "target": {"match": "model.layers.2.mlp.*"},
         "output": "model.layers.{layer}.mlp.renamed_bias"},
        {"id": "rm", "operation": "delete", "target": {"match": "model.layers.*.self_attn.q_proj.weight",
                                                       "layers": "1..3"}},
        {"id": "take", "operation": "merge_missing", "inputs": {"extra": "extra"}},
    ]
    applied = run(_plan(d, steps))
    out = _out(d)
    assert np.array_equal(out["tied.model_embed_tokens_weight"], base["model.embed_tokens.weight"])
    assert "model.layers.2.mlp.down_proj.bias" not in out
    assert np.array_equal(out["model.layers.2.mlp.renamed_bias"], base["model.layers.2.mlp.down_proj.bias"])
    assert Q.format(0) in out and Q.format(1) not in out and Q.format(2) not in out
    assert np.array_equal(out["lm_head.weight"], extra["lm_head.weight"])
    assert np.array_equal(out["model.norm.weight"], base["model.norm.weight"])  # the model wins on overlap
    assert any("took 1 tensor(s) from 'extra': lm_head.weight" in line for line in applied.log)


def test_copy_or_rename_onto_an_existing_tensor_is_a_setup_error(work):
    d, *_ = work
    p = _plan(d, [{"id": "mv", "operation": "rename", "target": {"match": "model.norm.weight"},
                   "output": "model.embed_tokens.weight"}])
    with pytest.raises(PlanError, match="would overwrite 'model.embed_tokens.weight'"):
        run(p)
    r = run_cli("apply", str(p))
    assert r.returncode == 2 and "would overwrite" in r.stderr and not (d / "out").exists()


def test_output_layouts_copy_files_and_stale_files(work):
    d, base, *_ = work
    run(_plan(d, [], output={"path": "out/", "shard_size": "200B"}))
    index = json.loads((d / "out" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and index["metadata"]["total_size"] == sum(a.nbytes for a in base.values())
    assert (d / "out" / "config.json").read_text() == '{"model_type": "llama"}\n'
    assert not (d / "out" / ".hidden").exists()
    # a single-file run into the same directory leaves no stale index or shard
    run(_plan(d, [], output={"path": "out/", "layout": "single", "copy_files": False}))
    assert sorted(p.name for p in (d / "out").iterdir() if p.suffix != ".json") == ["model.safetensors"]
    assert {n: a.tobytes() for n, a in _out(d).items()} == {n: a.tobytes() for n, a in base.items()}


# ---------------------------------------------------------------- asserts


PASSING_ASSERTS = [
    {"match": "model.layers.*.self_attn.q_proj.weight", "exists": True, "count": 3, "shape": [8, 6], "dtype": "f32"},
    {"match": "nothing.*", "exists": False},
    {"match": "nothing", "count": 0},
    {"match": "model.layers.*.mlp.down_proj.bias", "layers": "0..1", "finite": True},
    {"match": "model.layers.1.mlp.down_proj.bias", "finite": False},
    {"match": "model.embed_tokens.weight", "iszero": False},
    {"match": "model.layers.1.mlp.down_proj.bias", "equal": {"to": "base:{name}"}},  # inf == inf
    {"match": "model.norm.weight", "equal": {"to": "extra:{name}", "max_abs": 1.0}},
]

FAILING_ASSERTS = [
    ({"match": "model.norm.weight", "exists": False}, "matches 1 tensor(s), expected none"),
    ({"match": "nothing", "exists": True}, "matches no tensor"),
    ({"match": "model.layers.*.self_attn.q_proj.weight", "count": 2}, "matches 3 tensor(s), expected 2"),
    ({"match": "model.norm.weight", "shape": [5]}, "has shape [6], expected [5]"),
    ({"match": "model.norm.weight", "dtype": "BF16"}, "is F32, expected BF16"),
    ({"match": "model.layers.*.mlp.down_proj.bias", "finite": True}, "finite is false, expected true"),
    ({"match": "model.norm.weight", "iszero": True}, "iszero is false, expected true"),
    ({"match": "model.norm.weight", "equal": {"to": "extra:{name}", "max_abs": 0.5}}, "max |diff| 1.000000e+00"),
    ({"match": "model.layers.1.mlp.down_proj.bias", "equal": {"to": "base:model.layers.0.mlp.down_proj.bias",
                                                               "max_abs": 1e9}}, "max |diff| inf"),
]


def test_passing_asserts_hold(work):
    d, *_ = work
    applied = run(_plan(d, [{"id": f"a{i}", "assert": a} for i, a in enumerate(PASSING_ASSERTS)]))
    assert len(applied.tensors) == 8


@pytest.mark.parametrize("spec,message", FAILING_ASSERTS, ids=[m for _, m in FAILING_ASSERTS])
def test_a_failed_assert_stops_the_run(work, spec, message):
    d, *_ = work
    p = _plan(d, [{"id": "halve", "operation": "scale", "target": {"match": "model.embed_tokens.weight"},
                   "inputs": {"x": "base:{name}"}, "params": {"factor": 0.5}},
                  {"id": "check", "assert": spec}])
    with pytest.raises(AssertFailed, match=r"step 'check': ") as e:
        run(p, save_stages=d / "r.json")
    assert message in str(e.value)
    assert not (d / "out").exists() and not (d / "r.json").exists()  # nothing written


def test_a_failed_assert_exits_1_and_a_plan_error_2_from_the_command_line(work):
    d, *_ = work
    p = _plan(d, [{"id": "check", "assert": {"match": "model.norm.weight", "iszero": True}}])
    r = run_cli("apply", str(p), "--out", str(d / "o"))
    assert r.returncode == 1 and "step 'check'" in r.stderr and "iszero is false" in r.stderr
    assert not (d / "o").exists()
    p = _plan(d, [{"id": "x", "assert": {"match": "nothing.*", "finite": True}}], name="bad.json")
    r = run_cli("apply", str(p))
    assert r.returncode == 2 and "matches no tensor" in r.stderr
    p = _plan(d, [{"id": "ok", "assert": {"match": "*", "count": 8}}], name="ok.json")
    r = run_cli("apply", str(p), "--save-stages", str(d / "r.json"), cwd=d)
    assert r.returncode == 0, r.stderr
    assert json.loads((d / "r.json").read_text())["tensors"] == [] and (d / "r_stages.safetensors").is_file()


def test_expect_dtype_shape_and_sha256_exit_1(work):
    d, base, *_ = work
    good = sha256_hex(base["model.norm.weight"] * np.float32(2))
    step = {"id": "s", "operation": "scale", "target": {"match": "model.norm.weight"}, "inputs": {"x": "base:{name}"},
            "params": {"factor": 2}}
    run(_plan(d, [dict(step, expect={"dtype": "F32", "shape": [6], "sha256": good.upper()})]))
    for expect, message in (({"dtype": "BF16"}, "dtype F32, expected BF16"), ({"shape": [1, 6]}, "shape [6]"),
                            ({"sha256": "0" * 64}, "sha256 " + good)):
        with pytest.raises(AssertFailed, match=r"tensor 'model.norm.weight': expect: ") as e:
            run(_plan(d, [dict(step, expect=expect)]))
        assert message in str(e.value)
    with pytest.raises(AssertFailed, match="expect: sha256"):  # copies too
        run(_plan(d, [{"id": "c", "operation": "copy", "target": {"match": "model.norm.weight"}, "output": "n2",
                       "expect": {"sha256": "0" * 64}}]))


# ---------------------------------------------------------------- templates and targets


def test_templates():
    n = "model.layers.12.mlp.up_proj.weight"
    assert template("svf:tensor.{key}.u", n) == "svf:tensor.model_layers_12_mlp_up_proj_weight.u"
    assert template("{name}.scale", n) == n + ".scale"
    assert template("x.{layer}.y", n) == "x.12.y"
    assert template("x.{layer}", "transformer.h.3.attn") == "x.3"
    with pytest.raises(PlanError, match="has no layer number"):
        template("{layer}", "model.embed_tokens.weight")
    with pytest.raises(PlanError, match="unknown placeholder"):
        template("{nme}", n)
    assert template("{", n) == "{"  # an unclosed brace is literal


def test_matching_is_exact_glob_or_regex_in_name_order_with_layers():
    names = ["b.layers.10.w", "b.layers.2.w", "a.w", "b.layers.2.v"]
    assert matching(names, "b.layers.*.w", None) == ["b.layers.10.w", "b.layers.2.w"]
    assert matching(names, "*", "0..3") == ["a.w", "b.layers.2.v", "b.layers.2.w"]  # no layer number: kept
    assert matching(names, "re:\\.2\\.", None) == ["b.layers.2.v", "b.layers.2.w"]  # unanchored search
    assert matching(names, "a.w", None) == ["a.w"]
    with pytest.raises(PlanError, match="matches no tensor in layers 11..12"):
        matching(names, "b.*", "11..12")
    for bad in ("3..3", "a..b", "4"):
        with pytest.raises(PlanError, match="expected START..END"):
            matching(names, "*", bad)


def test_targets_apply_in_name_order(work):
    d, *_ = work
    applied = run(_plan(d, [{"id": "s", "operation": "scale", "target": {"match": "re:down_proj"},
                             "inputs": {"x": "base:{name}"}, "params": {"factor": 1}}]), save_stages=d / "r.json")
    assert [t["name"] for t in applied.report["tensors"]] == [f"s/model.layers.{i}.mlp.down_proj.bias" for i in range(3)]


# ---------------------------------------------------------------- plan files


def test_yaml_and_json_plans_give_the_same_result(work):
    d, *_ = work
    steps = [_svf_step(), {"id": "h", "operation": "scale", "target": {"match": "model.norm.weight"},
                           "inputs": {"x": "base:{name}"}, "params": {"factor": 0.25}},
             {"id": "take", "operation": "merge_missing", "inputs": {"extra": "extra"}},
             {"id": "n", "assert": {"match": "*", "count": 9}}]
    results = {}
    for name in ("plan.json", "plan.yaml"):
        stem = name.split(".")[1]
        (d / stem).mkdir()
        run(_plan(d, steps, name=name), out=d / stem / "out", save_stages=d / stem / "r.json")
        report = json.loads((d / stem / "r.json").read_text())
        results[stem] = (report["tensors"], {p.name: p.read_bytes() for p in (d / stem / "out").iterdir()},
                         (d / stem / "r_stages.safetensors").read_bytes())
    assert results["json"] == results["yaml"]


def test_yaml_plans_read_as_yaml_1_2_core(tmp_path):
    from parity_oracle.plan import parse_plan_text

    v = parse_plan_text(b"a: 1e-2\nb: yes\nc: 010\nd: 0x1F\ne: .inf\nf: True\ng: ~\nh: 2.5\ni: '1'\n", True, "t")
    assert v == {"a": 0.01, "b": "yes", "c": 10, "d": 31, "e": float("inf"), "f": True, "g": None, "h": 2.5, "i": "1"}
    with pytest.raises(PlanError, match="duplicate key"):
        parse_plan_text(b"a: 1\na: 2\n", True, "t")


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.update(schema="parity.plan.v2"), "schema 'parity.plan.v2'"),
    (lambda p: p.update(extra=1), "unknown field `extra`"),
    (lambda p: p["inputs"].pop("base"), "no 'base'"),
    (lambda p: p["inputs"].update(up="../x"), "leaves the plan's directory"),
    (lambda p: p["steps"].append(dict(p["steps"][0])), "duplicate step id"),
    (lambda p: p["steps"][0].update({"assert": {"match": "*"}}), "has both"),
    (lambda p: p["steps"][0].update(operation="scaling"), "unknown operation 'scaling'"),
    (lambda p: p["steps"][0].pop("target"), "needs a 'target'"),
    (lambda p: p["steps"].append({"id": "c", "operation": "copy", "target": {"match": "*"}}), "needs an 'output'"),
    (lambda p: p["steps"].append({"id": "m", "operation": "merge_missing", "inputs": {"extra": "nope"}}),
     "merge_missing takes inputs"),
    (lambda p: p["steps"][0]["inputs"].update(x="base"), "expected INPUT:NAME"),
    (lambda p: p["steps"][0]["inputs"].update(x="other:{name}"), "no input named 'other'"),
    (lambda p: p["steps"][0].update(expect={"dtyp": "F32"}), "unknown field `dtyp`"),
])
def test_bad_plans_are_refused_before_anything_runs(tmp_path, mutate, message):
    plan = {"schema": "parity.plan.v1", "inputs": {"base": "m.safetensors"}, "steps": [
        {"id": "s", "operation": "scale", "target": {"match": "*"}, "inputs": {"x": "base:{name}"},
         "params": {"factor": 2}}]}
    mutate(plan)
    (tmp_path / "p.json").write_text(json.dumps(plan))
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_plan(tmp_path / "p.json")


@pytest.mark.parametrize("step,message", [
    ({"params": {"factor": 2, "perm": [1, 0]}}, "parameter 'perm': unknown parameter"),
    ({"params": {}}, "parameter 'factor': missing"),
    ({"inputs": {"y": "base:{name}"}}, "'y' is not an input of scale"),
    ({"inputs": {}}, "input 'x' of scale is not given"),
    ({"write": "final"}, "write: 'final' is not a stage of scale"),
    ({"inputs": {"x": "extra:{name}.nope"}}, "but not in this file"),
    ({"inputs": {"x": "base:{name}.nope"}}, "no such tensor in the model (at this step)"),
    ({"target": {"match": "nothing"}}, "matches no tensor"),
])
def test_steps_that_cannot_resolve_are_setup_errors(work, step, message):
    d, *_ = work
    s = {"id": "s", "operation": "scale", "target": {"match": "model.norm.weight"}, "inputs": {"x": "base:{name}"},
         "params": {"factor": 2}}
    s.update(step)
    with pytest.raises(PlanError) as e:
        run(_plan(d, [s]))
    assert message in str(e.value)


def test_the_output_may_not_be_the_base_checkpoint(work):
    d, *_ = work
    with pytest.raises(PlanError, match="is the base checkpoint"):
        run(_plan(d, []), out=d / "base")


# ---------------------------------------------------------------- the golden plan case


CASE_DIR = GOLDEN_DIR / PLAN_CASE


def test_golden_plan_case_files_and_size(validate_report):
    case = json.loads((CASE_DIR / "plan_case.json").read_text())
    assert case == {"schema": "parity.plan_case.v1", "plan": "plan.yaml", "oracle_report": "oracle_f32.json",
                    "oracle_model": "oracle_out", "diff_args": ["--tolerances", "model_tolerances.json"]}
    assert sorted(p.name for p in CASE_DIR.iterdir()) == sorted([
        "NOTE.md", "base", "extra.safetensors", "model_tolerances.json", "oracle_f32.json", "oracle_f32.safetensors",
        "oracle_out", "plan.yaml", "plan_case.json", "svf_components.safetensors"])
    assert sum(p.stat().st_size for p in CASE_DIR.rglob("*") if p.is_file()) < 200_000
    report = json.loads((CASE_DIR / "oracle_f32.json").read_text())
    validate_report(report)
    assert report["stage_bundle"] == "oracle_f32.safetensors" and report["producer"]["implementation"] == "numpy-f32"
    plan = load_plan(CASE_DIR / "plan.yaml")
    assert plan.output["path"] == "out/" and open_checkpoint(CASE_DIR / "base").layout == "sharded (index)"
    assert len(set(json.loads((CASE_DIR / "base" / "model.safetensors.index.json").read_text())["weight_map"]
                   .values())) == 2
    tol = json.loads((CASE_DIR / "model_tolerances.json").read_text())
    assert tol["schema"] == "parity.tolerances.v1" and list(tol["tensors"]) == ["*.query.weight"]


def test_the_oracle_rerun_on_the_committed_case_gives_its_committed_report_and_model(tmp_path):
    """Machine-independent: from the committed inputs, every stage and output
    tensor is byte-equal except svf_apply's BLAS-summed stages, which stay
    within SPEC §3's profile (the committed ones were made with OpenBLAS's
    Haswell kernels)."""
    applied = run(CASE_DIR / "plan.yaml", out=tmp_path / "out", save_stages=tmp_path / "r.json")
    committed = json.loads((CASE_DIR / "oracle_f32.json").read_text())
    ours = json.loads((tmp_path / "r.json").read_text())
    cb, ob = load_tensors(CASE_DIR / "oracle_f32.safetensors"), load_tensors(tmp_path / "r_stages.safetensors")
    assert [(t["name"], t["params"]) for t in ours["tensors"]] == [(t["name"], t["params"]) for t in committed["tensors"]]
    for t in committed["tensors"]:
        for stage in t["stages"]:
            a, b = cb[f"tensor.{t['key']}.{stage}"], ob[f"tensor.{t['key']}.{stage}"]
            if t["operation"] == "svf_apply" and stage not in ("source_f32", "offsets_f32", "scaled_s", "u_scaled"):
                max_abs, mean_abs = stage_diff(a, b)
                assert max_abs <= SVF_TOLERANCES[stage][0] and mean_abs <= SVF_TOLERANCES[stage][1], (t["name"], stage)
            else:
                assert a.tobytes() == b.tobytes() and a.dtype == b.dtype, (t["name"], stage)
    committed_out = open_checkpoint(CASE_DIR / "oracle_out")
    assert committed_out.names() == sorted(applied.tensors)
    for n in committed_out.names():
        a, b = committed_out.get(n), applied.tensors[n]
        if n.endswith(".query.weight"):
            assert a.dtype == b.dtype and stage_diff(a, b)[0] <= 1e-2, n
        else:
            assert a.tobytes() == b.tobytes() and a.dtype == b.dtype, n


def _without_versions(path: Path) -> bytes:
    if path.name == "oracle_f32.json":
        report = json.loads(path.read_text())
        report["producer"].pop("versions")
        return json.dumps(report).encode()
    if path.name == "NOTE.md":
        return "\n".join(l for l in path.read_text().splitlines() if not l.startswith("- versions:")).encode()
    return path.read_bytes()


def test_make_golden_reproduces_the_committed_plan_case_byte_for_byte(tmp_path):
    # The kernels the committed golden/ was made with (golden README): pinned,
    # so the SVD and the f32 GEMMs give the same bits on any x86-64 with AVX2.
    r = run_cli("make-golden", "--out", str(tmp_path), "--case", PLAN_CASE, env_extra={"OPENBLAS_CORETYPE": "Haswell"})
    assert r.returncode == 0, r.stderr
    new = sorted(p.relative_to(tmp_path / PLAN_CASE) for p in (tmp_path / PLAN_CASE).rglob("*") if p.is_file())
    old = sorted(p.relative_to(CASE_DIR) for p in CASE_DIR.rglob("*") if p.is_file())
    assert new == old
    for rel in new:
        assert _without_versions(tmp_path / PLAN_CASE / rel) == _without_versions(CASE_DIR / rel), rel
    # only this case (and README + MANIFEST) was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MANIFEST.sha256", "README.md", PLAN_CASE]
