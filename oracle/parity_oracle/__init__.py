"""parity_oracle: the independent Python oracle of `parity` (SPEC §6).

* `ReportWriter` writes parity.report.v1 reports with their stage bundle and
  components file, from numpy arrays or torch tensors.
* `capture` records every module call of a PyTorch model as such a report,
  streamed to disk as the forward runs (needs torch, imported only then).
* `svf_apply_f32` / `svf_apply_f64` compute svf_apply (SPEC §3) the torch-like
  f32 way and in f64; `decompose_f32` gives torch.svd-layout components.
* `parity_oracle.ops` is the operation catalog (svf_apply included) with the
  golden cases; `python -m parity_oracle make-golden` writes them.

The names below are imported on first use, not with the package: importing
`parity_oracle` alone loads no numpy, so `parity_oracle.golden` can make BLAS
single-threaded before numpy (and the BLAS library) is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS = {
    "KNOWN_OPERATIONS": "report",
    "SCHEMA": "report",
    "ReportWriter": "report",
    "dumps_report": "report",
    "library_versions": "report",
    "safe_key": "report",
    "capture": "torch_capture",
    "SVF_INPUTS": "svf",
    "SVF_STAGES": "svf",
    "decompose_f32": "svf",
    "resolve_orientation": "svf",
    "svf_apply_f32": "svf",
    "svf_apply_f64": "svf",
    "svf_components": "svf",
    "svf_params": "svf",
    "SUPPORTED_DTYPES": "tensorio",
    "atomic_write_bytes": "tensorio",
    "load_tensors": "tensorio",
    "sha256_hex": "tensorio",
    "to_numpy": "tensorio",
}

__all__ = [
    "KNOWN_OPERATIONS",
    "ReportWriter",
    "SCHEMA",
    "SUPPORTED_DTYPES",
    "SVF_INPUTS",
    "SVF_STAGES",
    "atomic_write_bytes",
    "capture",
    "decompose_f32",
    "dumps_report",
    "library_versions",
    "load_tensors",
    "resolve_orientation",
    "safe_key",
    "sha256_hex",
    "svf_apply_f32",
    "svf_apply_f64",
    "svf_components",
    "svf_params",
    "to_numpy",
]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from .report import KNOWN_OPERATIONS, SCHEMA, ReportWriter, dumps_report, library_versions, safe_key
    from .svf import (
        SVF_INPUTS,
        SVF_STAGES,
        decompose_f32,
        resolve_orientation,
        svf_apply_f32,
        svf_apply_f64,
        svf_components,
        svf_params,
    )
    from .tensorio import SUPPORTED_DTYPES, atomic_write_bytes, load_tensors, sha256_hex, to_numpy
    from .torch_capture import capture


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "KNOWN_OPERATIONS":
        # Filled by the catalog's registrations: load them all first.
        importlib.import_module(f"{__name__}.ops").load_all()
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
