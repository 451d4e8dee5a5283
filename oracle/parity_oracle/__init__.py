"""parity_oracle: the independent Python oracle of `parity` (SPEC §6).

* `ReportWriter` writes parity.report.v1 reports with their stage bundle and
  components file, from numpy arrays or torch tensors.
* `svf_apply_f32` / `svf_apply_f64` compute svf_apply (SPEC §3) the torch-like
  f32 way and in f64; `decompose_f32` gives torch.svd-layout components.
"""

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

__version__ = "0.1.0"

__all__ = [
    "KNOWN_OPERATIONS",
    "SCHEMA",
    "SUPPORTED_DTYPES",
    "SVF_INPUTS",
    "SVF_STAGES",
    "ReportWriter",
    "atomic_write_bytes",
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
