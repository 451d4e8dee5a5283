"""A golden-style case directory: one components file shared by two oracle
reports (f32 torch-like and f64), each with its own stage bundle.

    <dir>/components.safetensors
    <dir>/oracle_f32.json   <dir>/oracle_f32.safetensors   (implementation numpy-f32)
    <dir>/oracle_f64.json   <dir>/oracle_f64.safetensors   (implementation numpy-f64)

Used by the golden generator (`parity_oracle.golden`) and by
`python -m parity_oracle svf-random`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import svf
from .report import ReportWriter

COMPONENTS_FILE = "components.safetensors"
PRODUCER_NAME = "parity-oracle"

# implementation name -> report file stem
IMPLEMENTATIONS = {
    "numpy-f32": "oracle_f32",
    "numpy-f64": "oracle_f64",
}

DEFAULT_BASELINE_NOTE = "no historical hash: the case is checked stage by stage"


@dataclass
class SvfTensor:
    """One svf_apply tensor of a case: its name, f32 inputs and target layout."""

    name: str
    source: np.ndarray
    u: np.ndarray
    s: np.ndarray
    v: np.ndarray
    offsets: np.ndarray
    final_shape: tuple[int, int]
    transpose: bool | None = None

    def inputs(self) -> dict[str, np.ndarray]:
        return svf.svf_components(self.source, self.u, self.s, self.v, self.offsets)

    def op_tensor(self):
        """The same tensor as the catalog's `OpTensor` of operation svf_apply."""
        from .ops import OpTensor

        return OpTensor(self.name, svf.OPERATION, self.inputs(), svf.svf_params(self.final_shape, self.transpose))


def _case_writer(out_dir: Path, implementation: str, stem: str, note: str) -> ReportWriter:
    """The writer of one oracle report of a case: `<stem>.json` + `<stem>.safetensors`,
    sharing the case's components file."""
    return ReportWriter(
        out_dir / f"{stem}.json",
        producer={"name": PRODUCER_NAME, "implementation": implementation},
        baseline={"label": f"{PRODUCER_NAME} {implementation}", "historical_reproducible": False, "note": note},
        stage_bundle=f"{stem}.safetensors",
        components=COMPONENTS_FILE,
    )


def write_svf_case(
    out_dir: str | os.PathLike, tensors: list[SvfTensor], *, baseline_note: str | None = None
) -> dict[str, dict[str, Any]]:
    """`write_op_case` for svf_apply tensors given as `SvfTensor`s."""
    return write_op_case(out_dir, [t.op_tensor() for t in tensors], baseline_note=baseline_note)


def write_op_case(
    out_dir: str | os.PathLike, tensors: list, *, baseline_note: str | None = None
) -> dict[str, dict[str, Any]]:
    """Compute both oracle pipelines for `tensors` (`parity_oracle.ops.OpTensor`s)
    and write the case files into `out_dir`: each report holds every tensor,
    computed by its operation's f32 or f64 pipeline. The reports' baseline note
    is `baseline_note`, else the operation's own when every tensor has the same
    one, else a generic one. Returns {implementation: {tensor name: stages}} for
    callers that want to check properties of what was written."""
    from . import ops

    ops.load_all()
    if baseline_note is None:
        notes = {ops.OPS[t.operation].baseline_note for t in tensors if t.operation in ops.OPS}
        baseline_note = notes.pop() if len(notes) == 1 and None not in notes else DEFAULT_BASELINE_NOTE
    out_dir = Path(out_dir)
    results: dict[str, dict[str, Any]] = {}
    for implementation, stem in IMPLEMENTATIONS.items():
        writer = _case_writer(out_dir, implementation, stem, baseline_note)
        results[implementation] = {}
        for t in tensors:
            stages = ops.run(t.operation, implementation, t.inputs, t.params)
            # Both reports write the same components bytes to the same file; the
            # second (atomic) write is a no-op in content.
            writer.add_tensor(t.name, operation=t.operation, params=t.params, stages=stages, components=t.inputs)
            results[implementation][t.name] = stages
        writer.write()
    return results
