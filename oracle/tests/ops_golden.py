"""Helper for the operation-family tests: replay a committed golden case
with the current oracle."""

from __future__ import annotations

import json

import numpy as np
from conftest import GOLDEN_DIR

from parity_oracle import load_tensors, ops


def replay_case(case: str) -> None:
    """Run the oracle again on the committed components; every stage of both
    reports must come out with the committed bytes. Only for operations whose
    pipelines involve no BLAS or threading (their bytes cannot depend on the
    machine): layout, elementwise and merge."""
    ops.load_all()
    case_dir = GOLDEN_DIR / case
    components = load_tensors(case_dir / "components.safetensors")
    for report_name, impl in (("oracle_f32.json", "numpy-f32"), ("oracle_f64.json", "numpy-f64")):
        report = json.loads((case_dir / report_name).read_text(encoding="utf-8"))
        bundle = load_tensors(case_dir / report["stage_bundle"])
        for t in report["tensors"]:
            prefix = f"tensor.{t['key']}."
            inputs = {k[len(prefix):]: v for k, v in components.items() if k.startswith(prefix)}
            stages = ops.run(t["operation"], impl, inputs, t["params"])
            for stage, arr in stages.items():
                committed = bundle[prefix + stage]
                assert arr.dtype == committed.dtype and arr.shape == committed.shape, (t["name"], stage)
                assert np.ascontiguousarray(arr).tobytes() == committed.tobytes(), (case, t["name"], stage)
