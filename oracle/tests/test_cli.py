"""`python -m parity_oracle`: the command line writes a golden-style case."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

from parity_oracle import load_tensors, sha256_hex


def run_cli(*args: str, cwd=REPO_ROOT, module: str = "parity_oracle") -> subprocess.CompletedProcess:
    # The installed package, whatever the directory: no PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


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


def test_the_installed_package_runs_from_any_directory(tmp_path):
    r = run_cli("svf-random", "--out", str(tmp_path / "case"), "--seed", "1", "--shape", "4", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "case" / "oracle_f32.json").is_file()


def test_make_golden_writes_a_case_and_its_manifest(tmp_path):
    out = tmp_path / "g"
    r = run_cli("make-golden", "--out", str(out), "--case", "svf_bf16_ties", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "svf_bf16_ties" / "NOTE.md").is_file() and (out / "MANIFEST.sha256").is_file()
    committed = REPO_ROOT / "golden" / "svf_bf16_ties" / "oracle_f32.safetensors"
    assert (out / "svf_bf16_ties" / "oracle_f32.safetensors").read_bytes() == committed.read_bytes()


def test_generators_refuse_to_guess_a_checkout(tmp_path):
    """Without --out, outside a parity checkout: exit 2 and a clear message,
    nothing written."""
    for command in ("make-golden", "make-cast-fixture"):
        r = run_cli(command, cwd=tmp_path)
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        assert "not inside a parity checkout" in r.stderr and "--out" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_make_golden_finds_the_checkout_from_a_subdirectory(tmp_path):
    """golden/ is located from the current directory upwards (a stand-in
    checkout here, so the real golden/ is not touched)."""
    (tmp_path / "oracle").mkdir()
    (tmp_path / "Cargo.toml").write_text("")
    (tmp_path / "oracle" / "pyproject.toml").write_text("")
    (tmp_path / "src" / "deep").mkdir(parents=True)
    r = run_cli("make-golden", "--case", "svf_bf16_ties", cwd=tmp_path / "src" / "deep")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "golden" / "svf_bf16_ties" / "NOTE.md").is_file()


def test_subcommand_help_lists_every_command():
    r = run_cli("--help")
    assert r.returncode == 0
    for command in ("svf-random", "make-golden", "make-cast-fixture"):
        assert command in r.stdout
    r = run_cli("make-golden", "--help")
    assert r.returncode == 0 and "--case" in r.stdout and "svf_minilm_query" in r.stdout


def test_make_golden_makes_blas_single_threaded_before_numpy_loads():
    """The package loads no numpy on import, so the generator's BLAS settings
    (read once, when numpy loads OpenBLAS) take effect under `-m`."""
    code = ("import os, sys; import parity_oracle; assert 'numpy' not in sys.modules; "
            "import parity_oracle.golden; print(os.environ['OPENBLAS_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENBLAS_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
