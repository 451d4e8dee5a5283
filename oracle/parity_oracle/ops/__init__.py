"""The oracle's operation catalog (SPEC §3, §7), svf_apply included.

Each family of operations is one module in this package (``svf.py``,
``layout.py``, ``cast.py``, …). A module calls :func:`register` once per
operation and :func:`golden_case` once per golden case; :func:`load_all`
imports every module here, so adding a family needs no edit anywhere else —
the golden generator (:mod:`parity_oracle.golden`), the report writer and the
CLI find it.

An operation is two pipelines over the same inputs:

* ``f32`` — what a user's PyTorch/numpy pipeline computes, in the dtype it
  runs (f32 compute, bf16/f16/fp8 outputs, torch's rounding sequence);
* ``f64`` — the same formulas in f64: float stages returned as float64,
  narrow outputs (bf16, fp8, …) as the operation's contract defines them.

Both take ``(inputs: dict[str, np.ndarray], params: dict)`` and return the
stages as a dict in pipeline order.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import report as _report

Pipeline = Callable[[dict, dict], dict]


@dataclass(frozen=True)
class OracleOp:
    name: str
    inputs: tuple[str, ...]  # input names as stored in components (tensor.<key>.<input>)
    stages: tuple[str, ...]  # pipeline order; the last one is the final stage
    f32: Pipeline
    f64: Pipeline
    # Optional wording of a golden case whose tensors all use this operation
    # (the generic wording otherwise): the NOTE.md section that lists the
    # tensors, given them; the NOTE.md bullet that describes the files; the
    # reports' baseline note.
    note_tensors: Callable[[list["OpTensor"]], str] | None = None
    note_files: str | None = None
    baseline_note: str | None = None


@dataclass
class OpTensor:
    """One tensor of a golden case: its name, operation, inputs and params."""

    name: str
    operation: str
    inputs: dict[str, np.ndarray]
    params: dict


@dataclass
class OpCase:
    """A golden case for catalog operations.

    ``build`` returns the tensors; ``verify`` (optional) receives
    ``{implementation: {tensor name: stages}}`` and raises if the case does not
    prove what it claims (it may append to ``checks``).
    """

    name: str
    proves: str
    build: Callable[[], list[OpTensor]]
    seed: int | None = None
    data: str = "seeded random numbers"
    checks: list[str] = field(default_factory=list)
    verify: Callable[[dict], None] | None = None
    # A distribution the case reads its data from; without it the generator
    # skips the case unless it is asked for by name.
    needs: str | None = None
    # The family module that defined the case (set by golden_case).
    family: str = ""


OPS: dict[str, OracleOp] = {}
CASES: list[OpCase] = []


def register(op: OracleOp) -> OracleOp:
    if op.name in OPS:
        raise ValueError(f"operation {op.name!r} registered twice")
    OPS[op.name] = op
    # The report writer then checks stage names and order for this operation.
    _report.KNOWN_OPERATIONS[op.name] = op.stages
    return op


def golden_case(case: OpCase) -> OpCase:
    if any(c.name == case.name for c in CASES):
        raise ValueError(f"golden case {case.name!r} defined twice")
    if not case.family:
        case.family = case.build.__module__
    CASES.append(case)
    return case


_loaded = False


def _family_order(case: OpCase) -> tuple[int, str]:
    # A family module may set GOLDEN_ORDER (default 100) to place its cases in
    # golden/README.md; ties keep the family name's order, then definition order.
    module = sys.modules.get(case.family)
    return getattr(module, "GOLDEN_ORDER", 100), case.family


def load_all() -> None:
    """Import every family module of this package (once)."""
    global _loaded
    if _loaded:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")
    CASES.sort(key=_family_order)  # stable: a family's cases keep their order
    _loaded = True


def run(operation: str, implementation: str, inputs: dict, params: dict) -> dict:
    """Run one pipeline ("numpy-f32" or "numpy-f64") of a registered operation."""
    load_all()
    op = OPS[operation]
    stages = (op.f32 if implementation == "numpy-f32" else op.f64)(inputs, params)
    if tuple(stages) != op.stages:
        raise ValueError(f"{operation}: pipeline returned stages {tuple(stages)}, declared {op.stages}")
    return stages
