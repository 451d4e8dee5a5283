#!/usr/bin/env python3
"""Every sample output in README.md and docs/*.md, produced by the commands the pages show.

    python3 scripts/readme_samples.py [--parity BIN]     # rewrite the pages' samples
    python3 scripts/readme_samples.py --check [--parity BIN]
                                                         # exit 1 if a page differs

Run it with a Python that has the oracle installed (`pip install ./oracle`;
`scripts/test` makes target/oracle-venv): the oracle's commands run as
`python3 -m parity_oracle` from this interpreter's directory. BIN defaults
to target/debug/parity, else target/release/parity. `tests/readme_samples.rs`
runs `--check` with the binary under test.

The pages are README.md and every docs/*.md holding a sample (or the port
file, below). A sample sits between `<!-- sample: NAME -->` and
`<!-- /sample -->`; the block in between is rewritten from the commands in
SAMPLES below, which are the pages' own command lines (`/tmp/demo` and
`/tmp/plan` stand for scratch directories made here). Every sample in
SAMPLES must be on some page, and every marker on a page must be in
SAMPLES; the samples run in SAMPLES's order, whatever page shows them, as
later ones use what earlier ones wrote. The Python file of the port example
is read from its page too (the ```python block after
`<!-- file: port.py -->`, on exactly one page), so what the page shows is
what runs.

Determinism: parity's outputs are the same bytes on every SIMD path and on
every x86-64 CPU with FMA (tests/gemm_order.rs, tests/simd_paths.rs), but
the oracle's are not: numpy's OpenBLAS picks its sgemm kernel by CPU
(SkylakeX kernels on AVX-512, Haswell/Zen ones on AVX2-only CPUs), and the
low bits of every GEMM-derived stage follow it. So the oracle runs here with
OPENBLAS_CORETYPE=Haswell (the kernel of any x86-64 CPU with AVX2 and FMA),
and the check needs such a CPU: elsewhere it says so and checks nothing
(exit 0), as it cannot tell stale samples from another BLAS kernel.
"""

from __future__ import annotations

import argparse
import difflib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"

# The oracle's numpy on every machine computes with the same BLAS kernel
# (see the module docstring); one thread, as the sizes here are tiny.
ENV = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1"}


class Run:
    """One command: `show` is the line the page prints after `$ ` (None: not
    printed), `cmd` what runs (default: `show`), `keep` abridges its output
    lines, `cwd` is relative to the repository or a scratch directory."""

    def __init__(self, show, cmd=None, keep=None, cwd=".", stderr=False):
        self.show, self.cmd, self.keep, self.cwd, self.stderr = show, cmd or show, keep, cwd, stderr


def rows_of(cases):
    """The gate's matrix kept to the rows of `cases`."""

    def keep(lines):
        out, i = [], 0
        while i < len(lines) and not lines[i].startswith("case "):
            out.append(lines[i])
            i += 1
        out.append(lines[i])
        out += [l for l in lines[i + 1:] if l.split(" ", 1)[0] in cases]
        return out + ["…", "", lines[-1]]

    return keep


def from_line(prefix, then=None):
    """From the first line starting with `prefix` on, abridged by `then`."""

    def keep(lines):
        start = next(i for i, l in enumerate(lines) if l.startswith(prefix))
        rest = lines[start:]
        return then(rest) if then else rest

    return keep


def tail(n):
    return lambda lines: lines[-n:]


def elided_tail(n):
    return lambda lines: ["…"] + lines[-n:]


def head(n):
    return lambda lines: lines[:n] + ["…"]


def port_check(lines):
    """The port's check: the table, the details of the first failing stage,
    the second's down to its explanation, then the final hash and the
    verdicts."""
    details = [i for i, l in enumerate(lines) if re.match(r"^  \w+: FAIL$", l)]
    hashes = next(i for i, l in enumerate(lines) if l.startswith("  final hash"))
    end = next(i for i in range(details[1], hashes) if lines[i].startswith("    explanation: ")) + 1
    return lines[:end] + ["  …"] + lines[hashes:]


def differs_rows(lines):
    """A diff's head, its `differs` rows, and its verdict."""
    head = lines[:5]
    rows = [l for l in lines[5:] if "  differs  " in l]
    return head + ["…"] + rows + ["…"] + lines[-2:]


def plan_check(lines):
    """The plan's stage check: layer 1's query weight, three of its stages."""
    start = next(i for i, l in enumerate(lines) if l.startswith("svf_query/bert.encoder.layer.1."))
    block = lines[start:start + 2]
    stages = [l for l in lines[start + 2:] if l.startswith("  ") and not l.startswith("  final hash")][:10]
    pick = lambda name: next(l for l in stages if l.split()[0] == name)
    hashes = next(l for l in lines[start:] if l.startswith("  final hash"))
    verdict = [l for l in lines if l.startswith("--strict-stage-tolerances")][:1]
    return ["…"] + block + ["  …", pick("normalization"), "  …", pick("final_f32"), pick("final_bf16"), "", hashes, "…"] + verdict + [lines[-1]]


SAMPLES = {
    "gate": [Run(None, "parity gate", rows_of({"cast_edge_values", "diff_two_shards", "plan_two_shards", "svd_well_separated",
                                                 "svf_minilm_query", "svf_qwen_mlp_like", "ties_three_tasks"}))],
    "replay-check": [
        Run(None, "python3 -m parity_oracle svf-random --out /tmp/demo --seed 1 --shape 96 64", keep=lambda l: []),
        Run(None, "parity replay /tmp/demo/oracle_f32.json --out /tmp/demo/rust.json", keep=lambda l: []),
        Run(None, "parity check /tmp/demo/oracle_f32.json /tmp/demo/rust.json --strict-stage-tolerances", from_line("random.0.weight")),
    ],
    "port-check": [
        Run(None, "python3 port.py", keep=lambda l: [], cwd="/tmp/demo"),
        Run("parity check /tmp/demo/oracle_f32.json /tmp/demo/port.json --strict-stage-tolerances --top-diffs 3", keep=from_line("random.0.weight", port_check)),
    ],
    "suggest": [
        Run("parity check /tmp/demo/oracle_f32.json /tmp/demo/rust.json --suggest-tolerances /tmp/demo/suggested.json > /dev/null"),
        Run("grep -A10 '\"matmul_pre_norm\"' /tmp/demo/suggested.json"),
        Run("parity check /tmp/demo/oracle_f32.json /tmp/demo/rust.json --tolerances /tmp/demo/suggested.json --strict-stage-tolerances | tail -1"),
    ],
    "suggest-port": [
        Run("parity check /tmp/demo/oracle_f32.json /tmp/demo/port.json --suggest-tolerances /tmp/demo/port_tolerances.json > /dev/null", keep=head(3), stderr=True),
    ],
    "noise-floor": [
        Run("parity check /tmp/demo/oracle_f32.json /tmp/demo/port.json --noise-floor", keep=lambda l: ["…"] + from_line("Noise floor:")(l)),
    ],
    "diff": [
        Run("parity diff golden/diff_two_shards/left golden/diff_two_shards/right --tolerances golden/diff_two_shards/tolerances.json"),
    ],
    "diff-bin": [
        Run("parity diff golden/pytorch_sharded_bin/left golden/pytorch_sharded_bin/right"),
        Run("parity inspect golden/pytorch_training_checkpoint/checkpoint.pt --headers", keep=head(6)),
    ],
    "gguf": [
        Run("parity diff golden/gguf_llama/hf golden/gguf_llama/model.gguf --map-preset llama", keep=head(12)),
        Run("parity diff golden/gguf_llama/hf golden/gguf_llama/buggy.gguf --map-preset llama", keep=differs_rows),
    ],
    "dry-run": [
        Run("cp -r golden/plan_two_shards /tmp/plan && cd /tmp/plan", cmd="cp -r golden/plan_two_shards/. /tmp/plan"),
        Run("parity apply plan.yaml --dry-run", cwd="/tmp/plan"),
    ],
    "apply": [
        Run("parity apply plan.yaml --save-stages stages.json", cwd="/tmp/plan", keep=elided_tail(1)),
        Run("parity apply plan.yaml            # again: the output is complete, so it is verified, not recomputed",
            cmd="parity apply plan.yaml", cwd="/tmp/plan", keep=elided_tail(5)),
    ],
    "plan-check": [
        Run("python3 -m parity_oracle apply plan.yaml --out oracle_run --save-stages oracle_stages.json", cwd="/tmp/plan", keep=elided_tail(1)),
        Run("parity check oracle_stages.json stages.json --strict-stage-tolerances", cwd="/tmp/plan", keep=plan_check),
        Run("parity diff oracle_run out | tail -1", cwd="/tmp/plan"),
    ],
}


PORT = re.compile(r"<!-- file: port\.py -->\s*```python\n(.*?)```", re.S)


def port_py(pages: dict[Path, str]) -> str:
    """The port example's Python file, from the one page that shows it."""
    found = [(page, m.group(1)) for page, text in pages.items() for m in PORT.finditer(text)]
    if len(found) != 1:
        where = ", ".join(name(page) for page, _ in found) or "no page"
        sys.exit(f"{len(found)} ```python blocks after <!-- file: port.py --> ({where}); there must be exactly one, in README.md or docs/*.md")
    return found[0][1]


def render(parity: Path, port: str) -> dict[str, str]:
    """Each sample's block, from running its commands now."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scratch = {"/tmp/demo": tmp / "demo", "/tmp/plan": tmp / "plan"}
        for d in scratch.values():
            d.mkdir()
        shim = tmp / "bin"
        shim.mkdir()
        (shim / "parity").symlink_to(parity.resolve())
        # This interpreter's own directory (a venv's bin, not resolved) so
        # that `python3` is the one with the oracle installed.
        env = dict(os.environ, **ENV, PATH=f"{shim}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        (scratch["/tmp/demo"] / "port.py").write_text(port.replace("/tmp/demo", str(scratch["/tmp/demo"])))

        def real(text: str) -> str:
            for shown, path in scratch.items():
                text = text.replace(shown, str(path))
            return text

        def shown(text: str) -> str:
            for name, path in scratch.items():
                text = text.replace(str(path), name)
            return text

        for name, runs in SAMPLES.items():
            lines = []
            for r in runs:
                cwd = Path(real(r.cwd)) if r.cwd.startswith("/tmp/") else REPO / r.cwd
                p = subprocess.run(["bash", "-c", real(r.cmd)], cwd=cwd, env=env, capture_output=True, text=True)
                text = p.stderr if r.stderr else p.stdout
                if p.returncode not in (0, 1) or (p.returncode == 1 and "Result:" not in p.stdout + p.stderr and not r.stderr):
                    sys.exit(f"sample {name}: `{r.cmd}` exited {p.returncode}:\n{p.stdout}{p.stderr}")
                got = shown(text).rstrip("\n").split("\n") if text.strip() else []
                got = [l.rstrip() for l in got]
                if r.keep:
                    got = r.keep(got)
                if r.show is not None:
                    lines.append(f"$ {r.show}")
                lines += got
            out[name] = "```\n" + "\n".join(lines) + "\n```\n"
    return out


MARK = re.compile(r"(<!-- sample: ([\w-]+) -->\n)(.*?)(<!-- /sample -->)", re.S)


def name(page: Path) -> str:
    return str(page.relative_to(REPO))


def pages() -> dict[Path, str]:
    """README.md and every docs/*.md holding a sample or the port file, with their text."""
    out = {README: README.read_text()}
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        if MARK.search(text) or PORT.search(text):
            out[page] = text
    return out


def rewrite(page: Path, text: str, blocks: dict[str, str], found: set[str]) -> str:
    """`text` with each of its samples' blocks replaced; adds their names to `found`."""

    def sub(m):
        found.add(m.group(2))
        if m.group(2) not in blocks:
            sys.exit(f"{name(page)}: sample '{m.group(2)}' has no commands in scripts/readme_samples.py")
        return m.group(1) + blocks[m.group(2)] + m.group(4)

    return MARK.sub(sub, text)


def rewrite_all(texts: dict[Path, str], blocks: dict[str, str]) -> dict[Path, str]:
    """Every page rewritten; every sample must be on one page or more."""
    found: set[str] = set()
    new = {page: rewrite(page, text, blocks, found) for page, text in texts.items()}
    missing = set(blocks) - found
    if missing:
        sys.exit(f"README.md, docs/*.md: no <!-- sample: NAME --> marker for {', '.join(sorted(missing))}")
    return new


def cpu_runs_the_pinned_blas() -> str | None:
    """Why the samples cannot be reproduced here, or None."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"a {platform.machine()} CPU: numpy's BLAS kernels differ from the x86-64 Haswell ones the samples pin"
    try:
        flags = set(next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split())
    except (OSError, StopIteration):
        return "no /proc/cpuinfo to tell whether the CPU has AVX2 and FMA"
    if not {"avx2", "fma"} <= flags:
        return "a CPU without AVX2 and FMA: OpenBLAS's Haswell kernels cannot run, and parity's GEMM rounds differently"
    # A machine may pin OpenBLAS to another core type on purpose (older
    # OpenBLAS builds compute wrong results or crash on some processors):
    # that setting is never overridden here, so the samples cannot be
    # reproduced on such a machine.
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    if pinned is not None and pinned.lower() != "haswell":
        return f"OPENBLAS_CORETYPE={pinned} is set here, and the samples are pinned to Haswell (it is not overridden)"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if a page's samples are stale")
    ap.add_argument("--parity", type=Path, help="the parity binary (default target/debug/parity, else target/release/parity)")
    args = ap.parse_args()
    parity = args.parity or next((p for p in (REPO / "target/debug/parity", REPO / "target/release/parity") if p.is_file()), None)
    if parity is None or not parity.is_file():
        sys.exit("no parity binary: build one (cargo build) or pass --parity BIN")
    why_not = cpu_runs_the_pinned_blas()
    if why_not:
        print(f"readme samples NOT CHECKED: {why_not}")
        return 0 if args.check else 2
    texts = pages()
    new = rewrite_all(texts, render(parity, port_py(texts)))
    changed = [page for page in texts if new[page] != texts[page]]
    names = ", ".join(name(page) for page in texts)
    if not args.check:
        for page in changed:
            page.write_text(new[page])
            print(f"{name(page)}: samples rewritten")
        if not changed:
            print(f"{names}: samples already current")
        return 0
    if changed:
        for page in changed:
            diff = difflib.unified_diff(texts[page].splitlines(), new[page].splitlines(), name(page), f"{name(page)} (commands now)", lineterm="", n=1)
            print("\n".join(diff))
        print(f"{', '.join(name(page) for page in changed)}: samples differ from what the commands print now: run python3 scripts/readme_samples.py")
        return 1
    print(f"{names}: {len(SAMPLES)} samples match what the commands print")
    return 0


if __name__ == "__main__":
    sys.exit(main())
