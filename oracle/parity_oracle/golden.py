"""Regenerate golden/ deterministically (SPEC §6).

    python3 -m parity_oracle make-golden [--out DIR] [--case NAME]...
    python3 -m parity_oracle.golden [--out DIR] [--case NAME]...

Every case directory is rebuilt from scratch with fixed seeds, then README.md
and MANIFEST.sha256 are rewritten. Running it twice on one machine gives
byte-identical files. On another CPU or library version the SVD and BLAS bits
may differ (that is what "provenance-bound" means); the committed files are the
reference, and `parity gate` checks implementations against them.

The cases are the catalog's (`parity_oracle.ops`, svf_apply included): every
family module registers its own with `golden_case`. A case that `needs` a
package it reads data from (svf_minilm_query: `pip install './oracle[golden]'`)
is skipped without it, unless asked for by name.

Without --out, it writes golden/ of the parity checkout the current directory
is in, and refuses to run outside one.
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy is imported: a thread-count-dependent
# partition of a product could otherwise change the low bits run to run.
# (Importing the parity_oracle package itself loads no numpy, so this runs
# first under `python -m parity_oracle make-golden` and `-m parity_oracle.golden`.)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import diff_case  # noqa: E402
from . import plan_case  # noqa: E402
from . import pytorch_case  # noqa: E402
from . import gguf_case  # noqa: E402
from . import ops as catalog  # noqa: E402
from .case import write_op_case  # noqa: E402
from .checkout import NotACheckout, find_checkout  # noqa: E402
from .report import library_versions  # noqa: E402

# The command NOTE.md and README.md name. The script it names is a shim for
# `python3 -m parity_oracle make-golden`; changing the text would change every
# committed golden file, so it stays until golden/ is regenerated for a reason.
COMMAND = "python3 oracle/make_golden.py"

catalog.load_all()
CASES: list[catalog.OpCase] = list(catalog.CASES)
CASES_BY_NAME = {c.name: c for c in CASES}

GENERIC_FILES = """- files: `components.safetensors` (the inputs, keys `tensor.<key>.<input>`); `oracle_f32.json` +
  `oracle_f32.safetensors` (numpy-f32: the torch-like pipeline in the dtype users run);
  `oracle_f64.json` + `oracle_f64.safetensors` (numpy-f64: float stages computed and stored in F64)"""


# ---------------------------------------------------------------- writing

def versions_line() -> str:
    v = library_versions()
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        v["blas"] = f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except Exception:  # pragma: no cover - show_config layout differs by numpy build
        pass
    return ", ".join(f"{k} {val}" for k, val in v.items())


def _sole_operation(tensors: list) -> catalog.OracleOp | None:
    """The operation of the case's tensors if they all share one."""
    names = {t.operation for t in tensors}
    return catalog.OPS.get(names.pop()) if len(names) == 1 else None


def _generic_tensors(tensors: list) -> str:
    rows = []
    for t in tensors:
        shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in t.inputs.items())
        rows.append(f"| `{t.name}` | `{t.operation}` | {shapes} | `{json.dumps(t.params, sort_keys=True)}` |")
    return "## Tensors\n\n| name | operation | inputs | params |\n|---|---|---|---|\n" + "\n".join(rows)


def write_note(case: catalog.OpCase, tensors: list, case_dir: Path) -> None:
    """NOTE.md: what the case proves, its tensors, how it was made, what the
    generator checked. An operation may word the tensors and files its own way."""
    op = _sole_operation(tensors)
    section = (op.note_tensors if op is not None and op.note_tensors is not None else _generic_tensors)(tensors)
    files = op.note_files if op is not None and op.note_files is not None else GENERIC_FILES
    checks = "\n".join(f"- {c}" for c in case.checks) or "- (none beyond the files' own hashes)"
    text = f"""# {case.name}

What it proves: {case.proves}.

{section}

## How it was made

- command: `{COMMAND} --case {case.name}` (from the repository root)
- seed: {'none (no random numbers)' if case.seed is None else f'`numpy.random.default_rng({case.seed})`'}
- data: {case.data}
- versions: {versions_line()}
{files}

## Checked by the generator

{checks}
"""
    (case_dir / "NOTE.md").write_text(text, encoding="utf-8")


def generate_case(case: catalog.OpCase, out: Path) -> None:
    # `verify` hooks append to `checks`: start each generation from the
    # case's own list, so regenerating in one process gives the same NOTE.md.
    if not hasattr(case, "_initial_checks"):
        case._initial_checks = list(case.checks)
    case.checks[:] = case._initial_checks
    tensors = case.build()
    case_dir = out / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)  # no stale file may survive into the manifest
    case_dir.mkdir(parents=True)
    results = write_op_case(case_dir, tensors)
    if case.verify is not None:
        case.verify(results)
    write_note(case, tensors, case_dir)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def write_readme(out: Path, skipped: dict[str, str]) -> None:
    rows = []
    for c in CASES:
        present = (out / c.name).is_dir()
        note = "" if present else f" **(not generated: {skipped.get(c.name, 'missing')})**"
        rows.append(f"| [`{c.name}`]({c.name}/NOTE.md) | {c.proves}{note} |")
    rows.append(f"| [`{diff_case.NAME}`]({diff_case.NAME}/NOTE.md) | {diff_case.PROVES} |")
    rows.append(f"| [`{plan_case.NAME}`]({plan_case.NAME}/NOTE.md) | {plan_case.PROVES} |")
    for name in pytorch_case.NAMES:
        present = (out / name).is_dir()
        note = "" if present else f" **(not generated: {skipped.get(name, 'missing')})**"
        rows.append(f"| [`{name}`]({name}/NOTE.md) | {pytorch_case.PROVES[name]}{note} |")
    rows.append(f"| [`{gguf_case.NAME}`]({gguf_case.NAME}/NOTE.md) | {gguf_case.PROVES} |")
    text = f"""# Golden stage bundles

Produced by the independent Python oracle (`oracle/`, numpy + ml_dtypes + safetensors),
regenerated with `{COMMAND}`, checked by `parity gate` in CI.

| case | what it proves |
|---|---|
{chr(10).join(rows)}

Every case directory holds:

- `NOTE.md` — what the case proves, how it was made (command, seed, versions, data source);
- `components.safetensors` — the inputs of `svf_apply` (`tensor.<key>.source|u|s|v|offsets`);
- `oracle_f32.json` + `oracle_f32.safetensors` — report (`numpy-f32`) and stage bundle of the
  torch-like f32 pipeline: F32 stages, BF16 `final_bf16`;
- `oracle_f64.json` + `oracle_f64.safetensors` — report (`numpy-f64`) and stage bundle of the
  same tensors computed in f64: float stages stored as F64, `final_bf16` = bf16(f32(final)).

A checkpoint-diff case (`{diff_case.NAME}`) holds instead `left/` and `right/` (Hugging Face
sharded layouts), `tolerances.json` and `diff_case.json`: the `parity diff` runs `parity gate`
makes and the status of every tensor that numpy expects.

A plan case (`{plan_case.NAME}`) holds a model (`base/`), the files its plan reads, `plan.yaml`
(parity.plan.v1), the oracle's run of it (`python3 -m parity_oracle apply`): `oracle_f32.json` +
`oracle_f32.safetensors` (its `--save-stages` report) and `oracle_out/` (its output model), and
`plan_case.json`: `parity gate` runs `parity apply` on the plan and checks its stages and its
output model against the oracle's.

Empty tensors are representable (safetensors stores zero-size tensors), so `svf_empty` is
included. Its NaN/inf results, like those of `svf_offsets_minus_one`, are the defined IEEE
results of SPEC §3.

`MANIFEST.sha256` lists the sha256 of every other file under `golden/` (`<hex>  <path>`,
sorted by path). Regeneration is byte-reproducible on one machine and set of library
versions; on another CPU the SVD and BLAS low bits may differ, which is why the files are
committed rather than recomputed.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def write_manifest(out: Path) -> None:
    lines = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel == "MANIFEST.sha256":
            continue
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
    (out / "MANIFEST.sha256").write_text("".join(sorted(lines, key=lambda l: l.split("  ", 1)[1])),
                                         encoding="utf-8")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The top-level entry point: rebuild the selected cases, README and manifest."""
    parser = argparse.ArgumentParser(prog=prog, description="Regenerate golden/ deterministically.")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: golden/ of the parity checkout around the "
                        "current directory)")
    parser.add_argument("--case", action="append", choices=sorted([*CASES_BY_NAME, diff_case.NAME, plan_case.NAME, *pytorch_case.NAMES, gguf_case.NAME]),
                        help="only this case (repeatable); default all")
    args = parser.parse_args(argv)

    out: Path | None = args.out
    if out is None:
        try:
            out = find_checkout() / "golden"
        except NotACheckout as e:
            print(f"make-golden: {e}; run it from a parity checkout or pass --out DIR", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    selected = [CASES_BY_NAME[n] for n in args.case if n in CASES_BY_NAME] if args.case else CASES
    skipped: dict[str, str] = {}
    for case in selected:
        if case.needs and not _installed(case.needs) and not args.case:
            skipped[case.name] = f"package {case.needs} not installed"
            print(f"skip {case.name}: {skipped[case.name]}", file=sys.stderr)
            continue
        try:
            generate_case(case, out)
        except (FileNotFoundError, KeyError, ValueError) as e:  # missing or unexpected source data
            print(f"make-golden: {case.name}: {e}", file=sys.stderr)
            return 2
        print(f"wrote {out / case.name}")
    if not args.case or diff_case.NAME in args.case:
        diff_case.generate(out, versions_line(), COMMAND)
        print(f"wrote {out / diff_case.NAME}")
    if not args.case or plan_case.NAME in args.case:
        plan_case.generate(out, versions_line(), COMMAND)
        print(f"wrote {out / plan_case.NAME}")
    torch_cases = [n for n in pytorch_case.NAMES if not args.case or n in args.case]
    if torch_cases and not args.case and not _installed("torch"):
        for n in torch_cases:
            skipped[n] = "package torch not installed"
            print(f"skip {n}: {skipped[n]}", file=sys.stderr)
    elif torch_cases:
        pytorch_case.generate(out, torch_cases, versions_line(), COMMAND)
        for n in torch_cases:
            print(f"wrote {out / n}")
    if not args.case or gguf_case.NAME in args.case:
        gguf_case.generate(out, versions_line(), COMMAND)
        print(f"wrote {out / gguf_case.NAME}")
    write_readme(out, skipped)
    write_manifest(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
