"""Writer of parity.report.v1 reports, stage bundles and components files.

Use it from your own torch or numpy pipeline to produce the `python.json` that
`parity check` compares a port against::

    from parity_oracle import ReportWriter

    w = ReportWriter("out/python.json",
                     producer={"name": "my-svf", "implementation": "torch-f32"},
                     baseline={"label": "python in-memory",
                               "historical_reproducible": False,
                               "note": "SVD recomputed in this environment"})
    w.add_tensor("model.layers.0.mlp.gate_proj.weight", operation="svf_apply",
                 params={"final_shape": [1024, 3072]},
                 stages={"source_f32": W, "offsets_f32": off, ...},
                 components={"source": W, "u": U, "s": S, "v": V, "offsets": off})
    w.write()  # out/python.json, out/python_stages.safetensors,
               # out/python_components.safetensors

Arrays may be numpy arrays or torch tensors (on any device; bf16/f16/fp8 kept
bit-exact); torch is never imported by this module. Everything added is copied
(so later in-place edits cannot make a hash lie) and held in memory until write(), which writes the bundle and components first and the
report last, each atomically, so a report never names a bundle that is not
fully written.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

import ml_dtypes
import numpy as np
import safetensors

from .tensorio import atomic_write_bytes, is_torch_tensor, safetensors_dtype, serialize_tensors, sha256_hex, to_numpy

SCHEMA = "parity.report.v1"

# Operations whose stage list the writer knows: stages are checked against it
# and written in its (pipeline) order; the last one gives final_sha256. Filled
# by the catalog's registrations (`parity_oracle.ops.register`, svf_apply like
# every other operation); `known_stages` loads the catalog on first use.
KNOWN_OPERATIONS: dict[str, tuple[str, ...]] = {}


def known_stages(operation: str) -> tuple[str, ...] | None:
    """The registered stage list of `operation`, or None for an operation the
    oracle does not know (its stages are then written as given)."""
    if operation not in KNOWN_OPERATIONS:
        from . import ops  # imports report: a top-level import would be circular

        ops.load_all()
    return KNOWN_OPERATIONS.get(operation)

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_NAME_PART = re.compile(r"^[A-Za-z0-9_]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def safe_key(name: str) -> str:
    """The tensor's key in bundles: every character (Unicode code point) that is
    not an ASCII letter, digit or underscore becomes "_".

    >>> safe_key("model.layers.26.mlp.gate_proj.weight")
    'model_layers_26_mlp_gate_proj_weight'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"tensor name must be a non-empty string, got {name!r}")
    return _UNSAFE.sub("_", name)


def library_versions() -> dict[str, str]:
    """Versions recorded in every report's producer (python, numpy, ml_dtypes, safetensors)."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ml_dtypes": ml_dtypes.__version__,
        "safetensors": safetensors.__version__,
    }


class ReportWriter:
    """Collects tensors and their stages, then writes one parity.report.v1 report.

    Args:
        path: where the report JSON goes (its directory is created if needed).
        producer: {"name": ..., "implementation": ...} plus optional "versions"
            (merged over the library versions recorded automatically) and any
            extra keys (kept after those three).
        baseline: {"label": str, "historical_reproducible": bool, "note": str
            (optional)}. Defaults to a baseline saying no historical hash is
            reproducible.
        stage_bundle: the bundle's path relative to the report's directory;
            default "<report stem>_stages.safetensors".
        components: the components file's path relative to the report's
            directory; default "<report stem>_components.safetensors". Written
            (and named in the report) only if some tensor has components.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        producer: Mapping[str, Any],
        baseline: Mapping[str, Any] | None = None,
        stage_bundle: str | None = None,
        components: str | None = None,
    ) -> None:
        self.path = Path(path)
        stem = self.path.stem
        self.stage_bundle = _relative_path("stage_bundle", stage_bundle or f"{stem}_stages.safetensors")
        self.components = _relative_path("components", components or f"{stem}_components.safetensors")
        if self.stage_bundle == self.components:
            raise ValueError(f"stage_bundle and components must be different files, both are {self.stage_bundle!r}")
        self._producer = _check_producer(producer)
        self._baseline = _check_baseline(baseline)
        self._entries: list[dict[str, Any]] = []
        self._names: dict[str, str] = {}  # key -> name, to refuse collisions
        self._stage_arrays: dict[str, np.ndarray] = {}
        self._component_arrays: dict[str, np.ndarray] = {}
        self._saw_torch = False

    def add_tensor(
        self,
        name: str,
        *,
        operation: str,
        params: Mapping[str, Any],
        stages: Mapping[str, Any],
        components: Mapping[str, Any] | None = None,
        historical_final_sha256: str | None = None,
    ) -> dict[str, Any]:
        """Add one tensor's stages (and optionally the operation's inputs).

        `stages` maps stage name -> array, in pipeline order. For a known
        operation (svf_apply or any other of `parity_oracle.ops`) the names
        must be its stages (a subset is fine, but it must include the final
        one) and are written in pipeline order whatever order they come in; for
        others the last stage given is final.
        Returns the report entry (a dict) for this tensor.
        """
        key = safe_key(name)
        if key in self._names:
            other = self._names[key]
            if other == name:
                raise ValueError(f"tensor {name!r} was already added")
            raise ValueError(f"tensor names {other!r} and {name!r} both map to the key {key!r}")
        if not isinstance(operation, str) or not operation:
            raise ValueError(f"{name}: operation must be a non-empty string, got {operation!r}")
        params = _json_clean(f"{name}: params", dict(params))
        if not stages:
            raise ValueError(f"{name}: no stages given")

        stage_names = list(stages)
        for stage in stage_names:
            _check_part(f"{name}: stage name", stage)
        known = known_stages(operation)
        if known is not None:
            unknown = [st for st in stage_names if st not in known]
            if unknown:
                raise ValueError(
                    f"{name}: unknown stage(s) {unknown} for {operation}; its stages are {list(known)}"
                )
            if known[-1] not in stages:
                raise ValueError(f"{name}: {operation} needs its final stage {known[-1]!r}")
            stage_names = [st for st in known if st in stages]

        arrays: dict[str, np.ndarray] = {}
        described: dict[str, Any] = {}
        for stage in stage_names:
            self._saw_torch |= is_torch_tensor(stages[stage])
            # A private copy: the caller (or torch, whose .numpy() shares memory)
            # may change the array in place before write(), and the bytes written
            # must be the bytes hashed now.
            arr = to_numpy(stages[stage], f"{name}: stage {stage}").copy(order="C")
            arrays[stage] = arr
            described[stage] = {
                "dtype": safetensors_dtype(arr),
                "shape": list(arr.shape),
                "sha256": sha256_hex(arr),
            }

        comp_arrays: dict[str, np.ndarray] = {}
        for input_name, value in (components or {}).items():
            _check_part(f"{name}: component name", input_name)
            self._saw_torch |= is_torch_tensor(value)
            comp_arrays[input_name] = to_numpy(value, f"{name}: component {input_name}").copy(order="C")

        entry: dict[str, Any] = {
            "name": name,
            "key": key,
            "operation": operation,
            "params": params,
            "stages": described,
            "final_sha256": described[stage_names[-1]]["sha256"],
        }
        if historical_final_sha256 is not None:
            if not isinstance(historical_final_sha256, str) or not _SHA256.match(historical_final_sha256.lower()):
                raise ValueError(
                    f"{name}: historical_final_sha256 must be 64 hex digits, got {historical_final_sha256!r}"
                )
            entry["historical_final_sha256"] = historical_final_sha256.lower()

        # Commit only once everything validated, so a failed add leaves no trace.
        self._names[key] = name
        self._entries.append(entry)
        for stage, arr in arrays.items():
            self._stage_arrays[f"tensor.{key}.{stage}"] = arr
        for input_name, arr in comp_arrays.items():
            self._component_arrays[f"tensor.{key}.{input_name}"] = arr
        return entry

    def report(self) -> dict[str, Any]:
        """The report as it will be written (keys in the contract's order)."""
        return assemble_report(
            producer=self._producer,
            stage_bundle=self.stage_bundle,
            components=self.components if self._component_arrays else None,
            baseline=self._baseline,
            tensors=self._entries,
            saw_torch=self._saw_torch,
        )

    def write(self) -> dict[str, Any]:
        """Write the stage bundle, the components file (if any) and the report.

        Each file is written atomically; the report goes last. Returns the
        report that was written.
        """
        if not self._entries:
            raise ValueError(f"{self.path}: no tensors added, nothing to write")
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        report = self.report()
        bundle_path = directory / self.stage_bundle
        bundle_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(bundle_path, serialize_tensors(self._stage_arrays))
        if self._component_arrays:
            comp_path = directory / self.components
            comp_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(comp_path, serialize_tensors(self._component_arrays))
        atomic_write_bytes(self.path, dumps_report(report).encode("utf-8"))
        return report


def assemble_report(
    *,
    producer: Mapping[str, Any],
    stage_bundle: str,
    components: str | None,
    baseline: Mapping[str, Any],
    tensors: list[Mapping[str, Any]],
    saw_torch: bool,
) -> dict[str, Any]:
    """A report's top level in the contract's key order, from a producer and
    baseline already checked (`_check_producer`, `_check_baseline`) and the
    tensor entries. One definition for every writer in the package (the
    in-memory `ReportWriter` and the streamed `capture`), so their reports
    cannot drift apart in layout or in the versions they record."""
    producer = dict(producer)
    versions = library_versions()
    if saw_torch and "torch" in sys.modules:
        versions["torch"] = str(getattr(sys.modules["torch"], "__version__", "unknown"))
    versions.update(producer.get("versions", {}))
    ordered_producer = {
        "name": producer["name"],
        "implementation": producer["implementation"],
        "versions": versions,
    }
    ordered_producer.update({k: v for k, v in producer.items() if k not in ordered_producer})
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "producer": ordered_producer,
        "stage_bundle": stage_bundle,
    }
    if components is not None:
        out["components"] = components
    out["baseline"] = dict(baseline)
    out["tensors"] = [dict(e) for e in tensors]
    return out


def dumps_report(report: Mapping[str, Any]) -> str:
    """JSON text of a report: 2-space indent, keys in insertion order, UTF-8
    (no \\u escapes), trailing newline. Matches serde_json's pretty printer."""
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _relative_path(what: str, value: str) -> str:
    """A path relative to the report's directory that stays inside it."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty relative path, got {value!r}")
    p = PurePosixPath(value.replace(os.sep, "/"))
    if p.is_absolute() or os.path.isabs(value) or ".." in p.parts:
        raise ValueError(f"{what} {value!r} must be relative to the report's directory and stay inside it")
    return p.as_posix()


def _check_part(what: str, value: Any) -> None:
    # Stage and input names end a bundle key `tensor.<key>.<name>`; a "." in them
    # would make the key ambiguous.
    if not isinstance(value, str) or not _NAME_PART.match(value):
        raise ValueError(f"{what} {value!r} must be non-empty and use only [A-Za-z0-9_]")


def _check_producer(producer: Mapping[str, Any]) -> dict[str, Any]:
    producer = dict(producer)
    for field in ("name", "implementation"):
        if not isinstance(producer.get(field), str) or not producer[field]:
            raise ValueError(f"producer.{field} must be a non-empty string, got {producer.get(field)!r}")
    versions = producer.get("versions", {})
    if not isinstance(versions, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
    ):
        raise ValueError(f"producer.versions must map names to version strings, got {versions!r}")
    producer["versions"] = dict(versions)
    return _json_clean("producer", producer)


def _check_baseline(baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    if baseline is None:
        return {
            "label": "in-memory",
            "historical_reproducible": False,
            "note": "no historical final hash is claimed reproducible",
        }
    baseline = dict(baseline)
    if not isinstance(baseline.get("label"), str) or not baseline["label"]:
        raise ValueError(f"baseline.label must be a non-empty string, got {baseline.get('label')!r}")
    if not isinstance(baseline.get("historical_reproducible"), bool):
        raise ValueError(
            "baseline.historical_reproducible must be true or false, got "
            f"{baseline.get('historical_reproducible')!r}"
        )
    if "note" in baseline and not isinstance(baseline["note"], str):
        raise ValueError(f"baseline.note must be a string, got {baseline['note']!r}")
    ordered = {k: baseline[k] for k in ("label", "historical_reproducible", "note") if k in baseline}
    ordered.update({k: v for k, v in baseline.items() if k not in ordered})
    return _json_clean("baseline", ordered)


def _json_clean(what: str, value: Any) -> Any:
    """Plain JSON values only (numpy scalars and tuples converted), no NaN/inf."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{what}: keys must be strings, got {k!r}")
            out[k] = _json_clean(what, v)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_clean(what, v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise ValueError(f"{what}: {value} cannot be written as JSON")
        return float(value)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{what}: {type(value).__name__} is not a JSON value")
