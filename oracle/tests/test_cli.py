"""`python -m parity_oracle`: the command line writes a golden-style case."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ORACLE_DIR, REPO_ROOT

from parity_oracle import load_tensors, sha256_hex


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ORACLE_DIR)}
    return subprocess.run([sys.executable, "-m", "parity_oracle", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_svf_random_writes_components_and_both_oracle_reports(tmp_path, validate_report):
    out = tmp_path / "case"
    r = run_cli("svf-random", "--out", str(out), "--seed", "5", "--shape", "8", "6", "--k", "4",
                "--tensors", "2", "--orientation", "transposed")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["components.safetensors", "oracle_f32.json", "oracle_f32.safetensors",
                                       "oracle_f64.json", "oracle_f64.safetensors"]
    for name, impl in (("oracle_f32.json", "numpy-f32"), ("oracle_f64.json", "numpy-f64")):
        report = json.loads((out / name).read_text())
        validate_report(report)
        assert report["producer"]["implementation"] == impl
        assert [t["name"] for t in report["tensors"]] == ["random.0.weight", "random.1.weight"]
        t = report["tensors"][0]
        assert t["params"] == {"final_shape": [6, 8], "transpose": True}
        assert t["stages"]["scaled_s"]["shape"] == [4]
        bundle = load_tensors(out / report["stage_bundle"])
        assert sha256_hex(bundle["tensor.random_0_weight.final_bf16"]) == t["final_sha256"]


def test_svf_random_is_deterministic_per_seed(tmp_path):
    for d in ("a", "b"):
        assert run_cli("svf-random", "--out", str(tmp_path / d), "--seed", "9").returncode == 0
    for f in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_svf_random_reports_bad_arguments_with_exit_code_2(tmp_path):
    r = run_cli("svf-random", "--out", str(tmp_path / "x"), "--shape", "4", "3", "--k", "9")
    assert r.returncode == 2 and "k=9" in r.stderr
    assert not (tmp_path / "x").exists()
