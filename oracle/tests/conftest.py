"""Shared fixtures of the oracle's test suite.

Run from the repository root against the installed package
(`pip install './oracle[test]'`, then `python3 -m pytest oracle/tests -q`). The
checkout is located from this file only for what the suite reads from it
(golden/, the Rust side's JSON Schema, the cast fixture): the package itself is
imported as installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = REPO_ROOT / "golden"
SCHEMA_PATH = REPO_ROOT / "schemas" / "parity.report.v1.schema.json"

# SPEC §3's built-in tolerance profile for svf_apply: stage -> (max_abs, mean_abs).
SVF_TOLERANCES = {
    "source_f32": (0.0, 0.0),
    "offsets_f32": (0.0, 0.0),
    "scaled_s": (1e-6, 1e-8),
    "u_scaled": (1e-6, 1e-8),
    "normalization": (1e-6, 1e-6),
    "zero_source_f32": (1e-3, 1e-5),
    "matmul_pre_norm": (1e-3, 1e-5),
    "adapted_source_f32": (1e-3, 1e-5),
    "final_f32": (1e-3, 1e-5),
    "final_bf16": (1e-3, 1e-5),
}


def stage_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max_abs, mean_abs) of a - b in f64, non-finite values matched by
    position and sign (a mismatch there counts as an infinite difference)."""
    a = np.asarray(a).astype(np.float64)
    b = np.asarray(b).astype(np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0, 0.0
    fa, fb = np.isfinite(a), np.isfinite(b)
    same_nonfinite = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    if np.any((~fa | ~fb) & ~same_nonfinite):
        return float("inf"), float("inf")
    both = fa & fb
    if not both.any():
        return 0.0, 0.0
    d = np.abs(a[both] - b[both])
    return float(d.max()), float(d.mean())


@pytest.fixture(scope="session")
def report_schema():
    """The parity.report.v1 JSON Schema shipped with the Rust side."""
    if not SCHEMA_PATH.is_file():
        pytest.fail(f"JSON Schema not found at {SCHEMA_PATH.relative_to(REPO_ROOT)}")
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def validate_report(report_schema):
    """A function that raises jsonschema.ValidationError for an invalid report."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(report_schema)
    validator_cls.check_schema(report_schema)
    validator = validator_cls(report_schema)

    def validate(report: dict) -> None:
        validator.validate(report)

    return validate


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under scripts/test (and so in CI) torch and transformers are installed
    and PARITY_REQUIRE_TORCH is set: a test skipped for want of one of them
    there is a failure, never a silent pass."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or not os.environ.get("PARITY_REQUIRE_TORCH"):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if "torch" in reason or "transformers" in reason:
        report.outcome = "failed"
        report.longrepr = f"PARITY_REQUIRE_TORCH is set but the test skipped: {reason}"


# The parity binary the oracle's tests run: PARITY_BIN, else the debug build
# (what `cargo test` just built, so never stale in scripts/test), else release.
def parity_bin() -> str:
    candidates = [
        os.environ.get("PARITY_BIN"),
        REPO_ROOT / "target" / "debug" / "parity",
        REPO_ROOT / "target" / "release" / "parity",
        shutil.which("parity"),
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return str(c)
    pytest.skip("no parity binary: build it (cargo build) or set PARITY_BIN to one")


def parity(*args) -> subprocess.CompletedProcess:
    return subprocess.run([parity_bin(), *map(str, args)], capture_output=True, text=True, timeout=120)
