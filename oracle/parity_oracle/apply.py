"""`python3 -m parity_oracle apply PLAN`: the oracle's mirror of `parity apply`
(SPEC §11), computed with the oracle's own f32 (torch-like) pipelines.

    python3 -m parity_oracle apply PLAN [--out DIR] [--save-stages REPORT.json]
                                        [--stages all|a,b] [--layers A..B]
                                        [--allow-outside-paths]

The semantics are those of src/plan/resolve.rs and src/apply/mod.rs:

* `base` is the checkpoint the plan edits; the *working model* starts as its
  tensors. Steps run in order and each sees the earlier steps' results:
  `base:NAME` names the working model as it stands at that step, any other
  input `INPUT:NAME` names a tensor of that input's file(s).
* An operation step applies once per tensor its `target` matches (exact name,
  glob, or `re:REGEX`; `layers: A..B` keeps tensors whose layer number is in
  the range and those without one), in name order; matching nothing is an
  error. Its inputs are templated with `{name}`, `{key}`, `{layer}`; its
  written tensor is the `write` stage (default: the last) under `output`
  (default `{name}`). svf_apply's `final_shape` defaults to the source's
  shape, or its transpose with `transpose: true`. `expect` holds the written
  tensor's shape, dtype and sha256.
* Structural steps: `copy` and `rename` (to `output`; refusing to overwrite
  another tensor), `delete`, `merge_missing` (`inputs: {extra: INPUT}`: every
  tensor of INPUT that the model lacks; the model wins on overlap).
* Asserts: `exists`, `count`, `shape`, `dtype`, `finite`, `iszero`,
  `equal: {to: INPUT:NAME, max_abs: X}`. A failed assert or expectation stops
  the run with exit 1 and writes nothing.

The output model is written sharded (`model-0000i-of-0000N.safetensors` cut at
`output.shard_size`, name order, plus the index) or as one `model.safetensors`;
base's other files are copied when `output.copy_files` (default true). With
`--save-stages REPORT.json`, every applied catalog-operation (step, tensor) is
one tensor of a parity.report.v1 report named `STEP_ID/TENSOR_NAME` (key: its
safe name), with the operation, its params as resolved (a defaulted
`final_shape` included) and its stages — what `parity check` compares against
`parity apply --save-stages`.

Exit codes: 0 done; 1 an assert or expectation failed; 2 a plan or setup error.
The oracle keeps no manifest and does not resume: it is the reference run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PRODUCER = "parity-oracle"
IMPLEMENTATION = "numpy-f32"
MANIFEST = "manifest.json"  # parity apply's, never copied from base
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


class AssertFailed(Exception):
    """An assert or expectation that does not hold (exit 1)."""

    def __init__(self, step: str, message: str):
        super().__init__(f"step '{step}': {message}")
        self.step, self.message = step, message


@dataclass
class Applied:
    """What one run did."""

    out: Path
    tensors: dict[str, Any]  # the output model, name -> array
    files: list[str]
    report: dict | None
    log: list[str] = field(default_factory=list)


class _Stored:
    """A tensor of an input checkpoint, read on first use."""

    __slots__ = ("ck", "name")

    def __init__(self, ck, name: str):
        self.ck, self.name = ck, name

    def array(self):
        return self.ck.get(self.name)


def _array(value):
    return value.array() if isinstance(value, _Stored) else value


def _dtype_name(arr) -> str:
    from .tensorio import safetensors_dtype, to_numpy

    return safetensors_dtype(to_numpy(arr))


def _values(arr):
    import numpy as np

    return np.asarray(arr).astype(np.float64)


def _equal_worst(a, b) -> float:
    """max |a − b| in f64; NaN against NaN and an infinity against the same
    infinity count as equal (SPEC §3: non-finite values compare by position
    and sign); anything else non-finite makes the result NaN."""
    import numpy as np

    a, b = _values(a).ravel(), _values(b).ravel()
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
    same = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    d[same] = 0.0
    return float("nan") if np.isnan(d).any() else float(d.max())


class _Run:
    def __init__(self, plan, inputs: dict, stage_filter: list[str] | None, stage_layers, log: Callable[[str], None]):
        self.plan, self.inputs, self.log = plan, inputs, log
        self.model: dict[str, Any] = {n: _Stored(inputs["base"], n) for n in inputs["base"].names()}
        self.stage_filter, self.stage_layers = stage_filter, stage_layers
        self.report_tensors: list[tuple[str, str, dict, dict]] = []  # (name, operation, params, stages)

    # ------------------------------------------------------------ references

    def reference(self, step: dict, text: str, target: str):
        from .plan import PlanError, template

        input_name, _, tpl = text.partition(":")
        try:
            name = template(tpl, target)
        except PlanError as e:
            raise self.error(step, f"tensor '{target}': {e}") from None
        if input_name == "base":
            if name not in self.model:
                raise self.error(step, f"tensor '{target}': '{text}' → base:{name}: no such tensor in the model "
                                 "(at this step)")
            return _array(self.model[name])
        ck = self.inputs[input_name]
        if name not in ck:
            raise self.error(step, f"{ck.path}: tensor '{name}': named by step '{step['id']}' ('{text}' for "
                             f"'{target}') but not in this file")
        return ck.get(name)

    def error(self, step: dict, message: str):
        from .plan import PlanError

        return PlanError(f"{self.plan.path}: step '{step['id']}': {message}")

    def targets(self, step: dict, spec: dict) -> list[str]:
        from .plan import PlanError, matching

        try:
            return matching(self.model, spec["match"], spec.get("layers"))
        except PlanError as e:
            raise self.error(step, str(e)) from None

    # ------------------------------------------------------------ steps

    def step(self, step: dict) -> None:
        if step.get("assert") is not None:
            return self.assert_step(step, step["assert"])
        op = step["operation"]
        if op == "merge_missing":
            return self.merge_missing(step)
        from .plan import PlanError, template

        for t in self.targets(step, step["target"]):
            try:
                out_name = template(step["output"], t) if step.get("output") is not None else t
            except PlanError as e:
                raise self.error(step, str(e)) from None
            if op == "delete":
                del self.model[t]
                self.log(f"{step['id']}: delete {t}")
            elif op in ("copy", "rename"):
                if out_name != t and out_name in self.model:
                    raise self.error(step, f"{op} of '{t}' would overwrite '{out_name}'")
                value = self.model.pop(t) if op == "rename" else self.model[t]
                self.model[out_name] = value
                self.expect(step, t, _array(value))
                self.log(f"{step['id']}: {op} {t} -> {out_name}")
            else:
                self.operation(step, op, t, out_name)

    def merge_missing(self, step: dict) -> None:
        extra = step["inputs"]["extra"].rstrip(":")
        ck = self.inputs[extra]
        taken = [n for n in ck.names() if n not in self.model]
        for n in taken:
            self.model[n] = _Stored(ck, n)
        kept = [n for n in ck.names() if n not in taken]
        self.log(f"{step['id']}: merge_missing took {len(taken)} tensor(s) from '{extra}'"
                 + (f": {', '.join(taken)}" if taken else "")
                 + (f"; kept the model's {len(kept)}: {', '.join(kept)}" if kept else ""))

    def operation(self, step: dict, name: str, target: str, out_name: str) -> None:
        from . import ops
        from .plan import OPTIONAL_INPUTS, check_params
        from .tensorio import sha256_hex, to_numpy

        op = ops.OPS[name]
        given = step.get("inputs") or {}
        arrays = {}
        for input_name, text in given.items():
            if input_name not in op.inputs:
                raise self.error(step, f"tensor '{target}': '{input_name}' is not an input of {name} "
                                 f"(its inputs: {', '.join(op.inputs)})")
            arrays[input_name] = self.reference(step, text, target)
        for input_name in op.inputs:
            if input_name not in given and input_name not in OPTIONAL_INPUTS.get(name, ()):
                raise self.error(step, f"tensor '{target}': input '{input_name}' of {name} is not given "
                                 f"(inputs: {{{input_name}: \"INPUT:NAME\"}})")
        params = dict(step.get("params") or {})
        # A parameter derivable from the target may be omitted: svf_apply's
        # final_shape is the source's shape, or its transpose with transpose: true.
        if name == "svf_apply" and "final_shape" not in params and "source" in arrays:
            shape = list(arrays["source"].shape)
            if params.get("transpose") is True:
                shape.reverse()
            params["final_shape"] = shape
        problem = check_params(name, params)
        if problem:
            raise self.error(step, f"{name}: tensor '{target}': {problem}")
        write = step.get("write") or op.stages[-1]
        if write not in op.stages:
            raise self.error(step, f"tensor '{target}': write: '{write}' is not a stage of {name} "
                             f"(its stages: {', '.join(op.stages)})")
        try:
            stages = ops.run(name, IMPLEMENTATION, arrays, params)
            stages = {k: to_numpy(v, f"{name} stage {k}") for k, v in stages.items()}
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise self.error(step, f"tensor '{target}': {name}: {e}") from None
        result = stages[write]
        self.expect(step, target, result)
        self.model[out_name] = result
        if self.stage_layers is None or self.stage_layers.keeps(target):
            kept = {k: v for k, v in stages.items() if self.stage_filter is None or k in self.stage_filter}
            self.report_tensors.append((f"{step['id']}/{target}", name, params, kept))
        self.log(f"{step['id']}: {name}{'' if write == op.stages[-1] else f' ({write})'} {target}"
                 + (f" -> {out_name}" if out_name != target else "")
                 + f" [{_dtype_name(result)} {list(result.shape)}] sha256 {sha256_hex(result)[:16]}")

    def expect(self, step: dict, target: str, arr) -> None:
        from .tensorio import sha256_hex

        e = step.get("expect")
        if not e:
            return
        dtype, shape = _dtype_name(arr), list(arr.shape)
        problem = None
        if e.get("dtype") is not None and e["dtype"].upper() != dtype:
            problem = f"dtype {dtype}, expected {e['dtype']}"
        elif e.get("shape") is not None and list(e["shape"]) != shape:
            problem = f"shape {shape}, expected {list(e['shape'])}"
        elif e.get("sha256") is not None and e["sha256"].lower() != sha256_hex(arr):
            problem = f"sha256 {sha256_hex(arr)}, expected {e['sha256']}"
        if problem:
            raise AssertFailed(step["id"], f"tensor '{target}': expect: {problem}")

    def assert_step(self, step: dict, spec: dict) -> None:
        import numpy as np

        from .plan import PlanError, matching

        sid, pattern = step["id"], spec["match"]
        try:
            targets = matching(self.model, pattern, spec.get("layers"))
        except PlanError as e:
            # Matching nothing is what `exists: false` / `count: 0` ask for.
            if spec.get("exists") is False or spec.get("count") == 0:
                targets = []
            elif spec.get("exists") is True or spec.get("count") is not None:
                raise AssertFailed(sid, str(e)) from None
            else:
                raise self.error(step, str(e)) from None
        if spec.get("exists") is False and targets:
            raise AssertFailed(sid, f"'{pattern}' matches {len(targets)} tensor(s), expected none")
        if spec.get("count") is not None and len(targets) != spec["count"]:
            raise AssertFailed(sid, f"'{pattern}' matches {len(targets)} tensor(s), expected {spec['count']}")
        for t in targets:
            arr = _array(self.model[t])
            if spec.get("shape") is not None and list(arr.shape) != list(spec["shape"]):
                raise AssertFailed(sid, f"'{t}' has shape {list(arr.shape)}, expected {list(spec['shape'])}")
            dtype = _dtype_name(arr)
            if spec.get("dtype") is not None and spec["dtype"].upper() != dtype:
                raise AssertFailed(sid, f"'{t}' is {dtype}, expected {spec['dtype']}")
        for t in targets:
            arr = _array(self.model[t])
            if spec.get("finite") is not None:
                finite = _dtype_name(arr) not in _FLOAT_DTYPES or bool(np.isfinite(_values(arr)).all())
                if finite != spec["finite"]:
                    raise AssertFailed(sid, f"'{t}': finite is {str(finite).lower()}, expected "
                                       f"{str(spec['finite']).lower()}")
            if spec.get("iszero") is not None:
                zero = bool((_values(arr) == 0.0).all())  # -0.0 == 0.0
                if zero != spec["iszero"]:
                    raise AssertFailed(sid, f"'{t}': iszero is {str(zero).lower()}, expected "
                                       f"{str(spec['iszero']).lower()}")
            if spec.get("equal") is not None:
                eq = spec["equal"]
                other = self.reference(step, eq["to"], t)
                if tuple(other.shape) != tuple(arr.shape):
                    raise AssertFailed(sid, f"'{t}': shape {list(arr.shape)} vs {list(other.shape)} of '{eq['to']}'")
                worst, limit = _equal_worst(arr, other), float(eq.get("max_abs", 0.0))
                if not worst <= limit:
                    raise AssertFailed(sid, f"'{t}': max |diff| {worst:e} against '{eq['to']}' > {limit:e}")
        self.log(f"{sid}: assert held for {len(targets)} tensor(s) matching '{pattern}'")


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.resolve() == b.resolve()
    except OSError:
        return False


def _remove_stale(out: Path, written: list[str]) -> None:
    """Model files of an earlier layout that this run did not write: a stale
    index or shard would otherwise be read in place of what was written."""
    from .checkpoint import INDEX

    for p in out.iterdir():
        name = p.name
        ours = name in ("model.safetensors", INDEX) or (name.startswith("model-") and name.endswith(".safetensors")
                                                         and "-of-" in name)
        if ours and name not in written and p.is_file():
            p.unlink()


def run(plan_path: str | Path, out: str | Path | None = None, save_stages: str | Path | None = None, *,
        stages: list[str] | None = None, stage_layers: str | None = None, allow_outside_paths: bool = False,
        stage_bundle: str | None = None, log: Callable[[str], None] | None = None) -> Applied:
    """Run a plan; raise PlanError (setup: exit 2) or AssertFailed (exit 1).

    `stage_bundle` names the report's bundle (relative to the report; default
    `<report stem>_stages.safetensors`, as parity apply names it)."""
    from . import ops
    from .checkpoint import CheckpointError, open_checkpoint, write_checkpoint
    from .plan import LayerRange, PlanError, load_plan
    from .report import ReportWriter, dumps_report
    from .tensorio import atomic_write_bytes, serialize_tensors

    lines: list[str] = []
    emit = (lambda s: (lines.append(s), log(s))) if log is not None else lines.append
    plan = load_plan(plan_path, allow_outside_paths)
    if out is not None:
        out = Path(out)
    elif plan.output.get("path") is not None:
        out = plan.dir / plan.output["path"]
    else:
        raise PlanError(f"{plan.path}: output.path is not set: give one in the plan or --out DIR")
    shard_size = plan.shard_size()
    layers = LayerRange.parse(stage_layers) if stage_layers is not None else None
    inputs = {}
    for name in plan.inputs:
        try:
            inputs[name] = open_checkpoint(plan.input_path(name))
        except (CheckpointError, OSError) as e:
            raise PlanError(f"inputs.{name}: {e}") from None
    if save_stages is not None:
        save_stages = Path(save_stages)
        if not save_stages.parent.is_dir():
            raise PlanError(f"{save_stages}: --save-stages: its directory does not exist")
    if out.exists() and not out.is_dir():
        raise PlanError(f"{out}: the output exists and is not a directory")
    if _same_path(out, inputs["base"].path):
        raise PlanError(f"{out}: the output directory is the base checkpoint: apply never writes over its input")

    ops.load_all()
    r = _Run(plan, inputs, stages, layers, emit)
    for step in plan.steps:
        r.step(step)

    report = None
    if save_stages is not None:
        writer = ReportWriter(
            save_stages,
            producer={"name": PRODUCER, "implementation": IMPLEMENTATION, "versions": _extra_versions()},
            baseline={"label": f"{PRODUCER} apply ({IMPLEMENTATION})", "historical_reproducible": False,
                      "note": f"stages of every applied operation of plan {plan.path.name} (sha256 {plan.sha256})"},
            stage_bundle=stage_bundle,
        )
        for name, operation, params, st in r.report_tensors:
            writer.add_tensor(name, operation=operation, params=params, stages=st)
        if r.report_tensors:
            report = writer.write()
        else:  # nothing applied: an empty report, as parity apply writes one
            report = writer.report()
            atomic_write_bytes(save_stages.parent / writer.stage_bundle, serialize_tensors({}))
            atomic_write_bytes(save_stages, dumps_report(report).encode("utf-8"))

    tensors = {n: _array(r.model[n]) for n in sorted(r.model)}
    out.mkdir(parents=True, exist_ok=True)
    if plan.layout() == "single":
        files = write_checkpoint(out, tensors, None)
    else:
        files = write_checkpoint(out, tensors, None, shard_size=shard_size)
    _remove_stale(out, files)
    base = inputs["base"].path
    if plan.copy_files() and base.is_dir():
        from .checkpoint import INDEX

        for p in sorted(base.iterdir()):
            n = p.name
            if not p.is_file() or n.endswith(".safetensors") or n == INDEX or n.startswith(".") or n == MANIFEST:
                continue
            atomic_write_bytes(out / n, p.read_bytes())
            files.append(n)
    emit(f"wrote {out}: {len(tensors)} tensor(s) in {sum(f.endswith('.safetensors') for f in files)} file(s)"
         + (f"; stages of {len(r.report_tensors)} (step, tensor) pair(s) in {save_stages}" if save_stages else ""))
    return Applied(out=out, tensors=tensors, files=files, report=report, log=lines)


def _extra_versions() -> dict[str, str]:
    try:
        import yaml

        return {"pyyaml": yaml.__version__}
    except ImportError:  # pragma: no cover - a runtime dependency
        return {}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The top-level entry point of `python -m parity_oracle apply`."""
    parser = argparse.ArgumentParser(prog=prog, description="Run a parity.plan.v1 plan with the oracle's f32 "
                                     "pipelines: the Python mirror of `parity apply`.")
    parser.add_argument("plan", type=Path, help="the plan (JSON, or YAML when it ends in .yaml/.yml)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (overrides output.path)")
    parser.add_argument("--save-stages", type=Path, default=None, metavar="REPORT.json",
                        help="write a parity.report.v1 of every applied (step, tensor) and its stage bundle")
    parser.add_argument("--stages", default="all", help="with --save-stages: all, or a comma-separated list")
    parser.add_argument("--layers", default=None, metavar="A..B", help="with --save-stages: only these layers")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow inputs outside the plan's directory (absolute or with ..)")
    args = parser.parse_args(argv)
    from .checkpoint import CheckpointError
    from .plan import PlanError

    stage_filter = None if args.stages == "all" else [s.strip() for s in args.stages.split(",") if s.strip()]
    try:
        applied = run(args.plan, args.out, args.save_stages, stages=stage_filter, stage_layers=args.layers,
                      allow_outside_paths=args.allow_outside_paths, log=print)
    except AssertFailed as e:
        print(f"parity_oracle apply: FAILED: {e}", file=sys.stderr)
        return 1
    except (PlanError, CheckpointError, ValueError, KeyError, OSError) as e:
        print(f"parity_oracle apply: error: {e}", file=sys.stderr)
        return 2
    del applied
    return 0


if __name__ == "__main__":
    sys.exit(main())
