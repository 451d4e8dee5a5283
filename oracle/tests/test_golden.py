"""golden/: integrity, consistency with the oracle, and reproducible generation."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN_DIR, SVF_TOLERANCES, stage_diff

from parity_oracle import SVF_INPUTS, SVF_STAGES, load_tensors, ops, sha256_hex, svf_apply_f32, svf_apply_f64
from parity_oracle import golden as make_golden

# Cases of another kind than the catalog's: checkpoint diffs (safetensors and
# PyTorch) and a plan (their own files; tested in test_apply.py and by `parity gate`).
SPECIAL_CASES = (make_golden.diff_case.NAME, make_golden.plan_case.NAME, *make_golden.pytorch_case.NAMES,
                 make_golden.gguf_case.NAME)
CASE_DIRS = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and p.name not in SPECIAL_CASES) \
    if GOLDEN_DIR.is_dir() else []
REPORTS = ("oracle_f32.json", "oracle_f64.json")


def _operations(case_dir: Path) -> set[str]:
    report = json.loads((case_dir / "oracle_f32.json").read_text(encoding="utf-8"))
    return {t["operation"] for t in report["tensors"]}


# svf_apply cases are checked stage by stage below; the catalog operations'
# cases (parity_oracle.ops) generically here and in their family's tests.
SVF_CASE_DIRS = [p for p in CASE_DIRS if _operations(p) == {"svf_apply"}]
OP_CASE_DIRS = [p for p in CASE_DIRS if p not in SVF_CASE_DIRS]
CASE_FILES = {"NOTE.md", "components.safetensors", "oracle_f32.json", "oracle_f32.safetensors",
              "oracle_f64.json", "oracle_f64.safetensors"}


def read_report(case_dir: Path, name: str) -> dict:
    return json.loads((case_dir / name).read_text(encoding="utf-8"))


def test_golden_has_the_expected_cases():
    names = {p.name for p in CASE_DIRS}
    assert names == {c.name for c in make_golden.CASES}
    assert {p.name for p in GOLDEN_DIR.iterdir() if p.is_dir()} == names | set(SPECIAL_CASES)
    for case_dir in CASE_DIRS:
        assert {p.name for p in case_dir.iterdir()} == CASE_FILES, case_dir.name


def test_every_case_comes_from_the_catalog_and_svf_apply_is_registered_like_the_others():
    """One mechanism for every operation: the generator's cases are exactly
    the catalog's, svf_apply's included, in golden/README.md's order."""
    assert make_golden.CASES == ops.CASES
    assert ops.OPS["svf_apply"].stages == SVF_STAGES and ops.OPS["svf_apply"].inputs == SVF_INPUTS
    svf_cases = [c.name for c in ops.CASES if c.family == "parity_oracle.ops.svf"]
    assert len(svf_cases) == len(SVF_CASE_DIRS) == 8
    readme = (GOLDEN_DIR / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| \[`([^`]+)`\]", readme, flags=re.M)
    assert listed == [c.name for c in make_golden.CASES] + list(SPECIAL_CASES)
    assert listed[:8] == svf_cases


def test_manifest_lists_every_file_with_its_hash():
    text = (GOLDEN_DIR / "MANIFEST.sha256").read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    paths = []
    for line in lines:
        m = re.fullmatch(r"([0-9a-f]{64})  (\S.*)", line)
        assert m, line
        digest, rel = m.groups()
        assert hashlib.sha256((GOLDEN_DIR / rel).read_bytes()).hexdigest() == digest, rel
        paths.append(rel)
    assert paths == sorted(paths)
    on_disk = sorted(p.relative_to(GOLDEN_DIR).as_posix() for p in GOLDEN_DIR.rglob("*")
                     if p.is_file() and p.name != "MANIFEST.sha256")
    assert paths == on_disk


def test_golden_stays_small():
    total = sum(p.stat().st_size for p in GOLDEN_DIR.rglob("*") if p.is_file())
    assert total < 30 * 2**20, total


@pytest.mark.parametrize("case_dir", SVF_CASE_DIRS, ids=lambda p: p.name)
def test_golden_reports_validate_and_match_their_bundles(case_dir, validate_report):
    components = load_tensors(case_dir / "components.safetensors")
    tensors_by_report = {}
    for name in REPORTS:
        report = read_report(case_dir, name)
        validate_report(report)
        impl = "numpy-f32" if name == "oracle_f32.json" else "numpy-f64"
        assert report["producer"]["name"] == "parity-oracle" and report["producer"]["implementation"] == impl
        assert report["stage_bundle"] == name.replace(".json", ".safetensors")
        assert report["components"] == "components.safetensors"
        bundle = load_tensors(case_dir / report["stage_bundle"])
        expected_keys = set()
        for t in report["tensors"]:
            assert list(t["stages"]) == list(SVF_STAGES)
            for stage, desc in t["stages"].items():
                key = f"tensor.{t['key']}.{stage}"
                expected_keys.add(key)
                arr = bundle[key]
                assert list(arr.shape) == desc["shape"] and sha256_hex(arr) == desc["sha256"], key
                float_dtype = "F32" if impl == "numpy-f32" else "F64"
                assert desc["dtype"] == ("BF16" if stage == "final_bf16" else float_dtype), key
            assert t["final_sha256"] == t["stages"]["final_bf16"]["sha256"]
            for inp in SVF_INPUTS:
                assert components[f"tensor.{t['key']}.{inp}"].dtype == np.float32
        assert set(bundle) == expected_keys
        tensors_by_report[name] = [(t["name"], t["key"], t["params"]) for t in report["tensors"]]
    assert tensors_by_report["oracle_f32.json"] == tensors_by_report["oracle_f64.json"]
    assert set(components) == {f"tensor.{key}.{i}" for _, key, _ in tensors_by_report["oracle_f32.json"]
                               for i in SVF_INPUTS}


@pytest.mark.parametrize("case_dir", OP_CASE_DIRS, ids=lambda p: p.name)
def test_operation_case_reports_validate_and_match_their_bundles(case_dir, validate_report):
    """Catalog cases: both reports valid, every stage in the bundle with its
    hash, stages named and ordered as the oracle registers them, and the
    tensor's inputs in the components file."""
    ops.load_all()
    components = load_tensors(case_dir / "components.safetensors")
    names = {}
    for name in REPORTS:
        report = read_report(case_dir, name)
        validate_report(report)
        impl = "numpy-f32" if name == "oracle_f32.json" else "numpy-f64"
        assert report["producer"]["implementation"] == impl
        bundle = load_tensors(case_dir / report["stage_bundle"])
        keys = set()
        for t in report["tensors"]:
            assert list(t["stages"]) == list(ops.OPS[t["operation"]].stages), t["name"]
            for stage, desc in t["stages"].items():
                arr = bundle[f"tensor.{t['key']}.{stage}"]
                assert list(arr.shape) == desc["shape"] and sha256_hex(arr) == desc["sha256"], (t["name"], stage)
                keys.add(f"tensor.{t['key']}.{stage}")
            assert t["final_sha256"] == list(t["stages"].values())[-1]["sha256"]
            assert any(k.startswith(f"tensor.{t['key']}.") for k in components), t["name"]
        assert set(bundle) == keys
        names[name] = [(t["name"], t["operation"], t["params"]) for t in report["tensors"]]
    assert names["oracle_f32.json"] == names["oracle_f64.json"]


@pytest.mark.parametrize("case_dir", SVF_CASE_DIRS, ids=lambda p: p.name)
def test_oracle_replays_the_committed_components_to_the_committed_stages(case_dir):
    """Machine-independent check that golden/ and the current oracle agree: the
    f32 stages within SPEC's profile, the f64 stages to ~1e-15 relative."""
    components = load_tensors(case_dir / "components.safetensors")
    for name, pipeline in (("oracle_f32.json", svf_apply_f32), ("oracle_f64.json", svf_apply_f64)):
        report = read_report(case_dir, name)
        bundle = load_tensors(case_dir / report["stage_bundle"])
        for t in report["tensors"]:
            inputs = [components[f"tensor.{t['key']}.{i}"] for i in SVF_INPUTS]
            stages = pipeline(*inputs, final_shape=t["params"]["final_shape"],
                              transpose=t["params"].get("transpose"))
            for stage in SVF_STAGES:
                committed = bundle[f"tensor.{t['key']}.{stage}"]
                ours = stages[stage]
                assert ours.dtype == committed.dtype and ours.shape == committed.shape, stage
                max_abs, mean_abs = stage_diff(ours, committed)
                if name == "oracle_f64.json" and stage != "final_bf16":
                    finite = np.isfinite(committed.astype(np.float64))
                    scale = float(np.max(np.abs(committed[finite]), initial=1.0))
                    assert max_abs <= 1e-13 * scale, (t["name"], stage, max_abs)
                else:
                    max_tol, mean_tol = SVF_TOLERANCES[stage]
                    assert max_abs <= max_tol and mean_abs <= mean_tol, (t["name"], stage, max_abs, mean_abs)
            # Inputs and elementwise stages involve no summation order: bit-equal.
            for stage in ("source_f32", "offsets_f32", "scaled_s", "u_scaled"):
                assert stages[stage].tobytes() == bundle[f"tensor.{t['key']}.{stage}"].tobytes(), stage


def test_bf16_ties_case_holds_ties_rounded_both_ways():
    bundle = load_tensors(GOLDEN_DIR / "svf_bf16_ties" / "oracle_f32.safetensors")
    f32 = bundle["tensor.bf16_ties_weight.final_f32"].view(np.uint32).ravel().astype(np.uint64)
    bf16 = bundle["tensor.bf16_ties_weight.final_bf16"].view(np.uint16).ravel()
    tie = (f32 & 0xFFFF) == 0x8000
    odd = ((f32 >> 16) & 1) == 1
    assert np.sum(tie & odd) > 0 and np.sum(tie & ~odd) > 0
    # RNE by integer arithmetic on the bits, independent of ml_dtypes.
    assert np.array_equal(bf16, ((f32 + 0x7FFF + ((f32 >> 16) & 1)) >> 16).astype(np.uint16))
    assert np.all(bf16[tie & odd] == (f32[tie & odd] >> 16) + 1)
    assert np.all(bf16[tie & ~odd] == f32[tie & ~odd] >> 16)


# ---------------------------------------------------------------- regeneration


def _generate(out: Path, cases: list[str]) -> None:
    args = ["--out", str(out)]
    for c in cases:
        args += ["--case", c]
    assert make_golden.main(args) == 0


def _without_versions(path: Path) -> str:
    if path.suffix == ".json":
        report = json.loads(path.read_text(encoding="utf-8"))
        report["producer"].pop("versions")
        return json.dumps(report)
    return "\n".join(l for l in path.read_text(encoding="utf-8").splitlines() if not l.startswith("- versions:"))


def test_make_golden_is_byte_reproducible(tmp_path):
    cases = [c.name for c in make_golden.CASES if c.needs is None]
    _generate(tmp_path / "a", cases)
    _generate(tmp_path / "b", cases)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 2 + len(cases) * len(CASE_FILES)
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_regenerated_case_matches_the_committed_one(tmp_path):
    # svf_bf16_ties uses no SVD and only exact products, so its bytes do not
    # depend on the CPU or BLAS; only the recorded versions may differ.
    _generate(tmp_path, ["svf_bf16_ties"])
    for name in sorted(CASE_FILES):
        new, old = tmp_path / "svf_bf16_ties" / name, GOLDEN_DIR / "svf_bf16_ties" / name
        if name.endswith(".safetensors"):
            assert new.read_bytes() == old.read_bytes(), name
        else:
            assert _without_versions(new) == _without_versions(old), name
