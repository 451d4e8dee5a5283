"""Command line of the oracle.

    python -m parity_oracle svf-random --out DIR --seed N [--shape M N] [--k K]
                                       [--tensors T] [--orientation source|transposed]
                                       [--offset-scale X]
    python -m parity_oracle make-golden [--out DIR] [--case NAME]...
    python -m parity_oracle make-cast-fixture [--out FILE] [--scale N] [--exhaustive16]
    python -m parity_oracle apply PLAN [--out DIR] [--save-stages REPORT.json]

svf-random writes a golden-style case directory (components.safetensors,
oracle_f32.json + .safetensors, oracle_f64.json + .safetensors) for random
svf_apply tensors; make-golden regenerates golden/ (`parity_oracle.golden`);
make-cast-fixture the Rust cast tests' fixture (`parity_oracle.cast_fixture`);
apply runs a parity.plan.v1 surgery plan the way `parity apply` does, with the
oracle's f32 pipelines (`parity_oracle.apply`).
The `parity-oracle` command installed with the package is the same.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .case import SvfTensor

# Subcommands that are whole programs of their own: their arguments are
# theirs, and numpy is not imported before they start (make-golden sets
# single-threaded BLAS first).
DELEGATED = {
    "make-golden": ("golden", "regenerate golden/ deterministically"),
    "make-cast-fixture": ("cast_fixture", "write tests/fixtures/cast_ml_dtypes.safetensors"),
    "apply": ("apply", "run a parity.plan.v1 plan (the mirror of `parity apply`)"),
}
PROG = "python -m parity_oracle"


def random_svf_tensors(
    seed: int,
    shape: tuple[int, int],
    k: int | None,
    count: int,
    orientation: str = "source",
    offset_scale: float = 0.05,
) -> list[SvfTensor]:
    """`count` random weights (N(0, 0.05²), a typical weight scale) with their
    f32 SVD and N(0, offset_scale²) offsets, all from one seeded generator."""
    import numpy as np

    from .case import SvfTensor
    from .svf import decompose_f32

    rng = np.random.default_rng(seed)
    m, n = shape
    tensors = []
    for i in range(count):
        # Drawn in f64 then rounded once: the f32 values do not depend on how
        # numpy generates f32 normals.
        source = (rng.standard_normal((m, n)) * 0.05).astype(np.float32)
        u, s, v = decompose_f32(source, k)
        offsets = (rng.standard_normal(s.shape[0]) * offset_scale).astype(np.float32)
        if orientation == "transposed":
            final_shape, transpose = (n, m), True
        else:
            final_shape, transpose = (m, n), None
        tensors.append(SvfTensor(f"random.{i}.weight", source, u, s, v, offsets, final_shape, transpose))
    return tensors


def main(argv: list[str] | None = None) -> int:
    """The top-level entry point: parse arguments, run the subcommand."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        module = importlib.import_module(f"parity_oracle.{DELEGATED[argv[0]][0]}")
        return module.main(argv[1:], prog=f"{PROG} {argv[0]}")

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=f"{help_text} (see {PROG} {name} --help)", add_help=False)
    rnd = sub.add_parser("svf-random", help="write a case directory for random svf_apply tensors")
    rnd.add_argument("--out", required=True, help="output directory (created if missing)")
    rnd.add_argument("--seed", type=int, default=0, help="seed of numpy's default_rng (default 0)")
    rnd.add_argument("--shape", type=int, nargs=2, metavar=("M", "N"), default=(64, 48),
                     help="source shape [m, n] (default 64 48)")
    rnd.add_argument("--k", type=int, default=None, help="rank kept (default min(m, n))")
    rnd.add_argument("--tensors", type=int, default=1, help="number of tensors (default 1)")
    rnd.add_argument("--orientation", choices=("source", "transposed"), default="source",
                     help="final layout: the source's [m, n], or [n, m] with transpose: true")
    rnd.add_argument("--offset-scale", type=float, default=0.05,
                     help="standard deviation of the offsets (default 0.05)")
    args = parser.parse_args(argv)

    try:
        m, n = args.shape
        if m < 0 or n < 0 or args.tensors < 1:
            raise ValueError("--shape must be non-negative and --tensors at least 1")
        from .case import write_svf_case

        tensors = random_svf_tensors(args.seed, (m, n), args.k, args.tensors, args.orientation, args.offset_scale)
        write_svf_case(args.out, tensors)
    except (ValueError, TypeError, OSError) as e:
        print(f"parity_oracle: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(tensors)} tensor(s) to {args.out}: components.safetensors, "
          "oracle_f32.json, oracle_f32.safetensors, oracle_f64.json, oracle_f64.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
