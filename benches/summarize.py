"""Turn a `cargo bench --bench operations` run into the tables of benches/README.md.

    python3 benches/summarize.py [target/criterion]

Reads criterion's estimates (mean) for every `<operation>/<dims>` group with
`fast` and `reference` functions, plus the error table the bench saved
(`parity-errors.md`), and prints Markdown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def mean_ns(d: Path) -> float | None:
    f = d / "new" / "estimates.json"
    return json.loads(f.read_text())["mean"]["point_estimate"] if f.is_file() else None


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    rows = []
    for group in sorted(p for p in root.iterdir() if p.is_dir()):
        fast, ref = mean_ns(group / "fast"), mean_ns(group / "reference")
        if fast is None or ref is None:
            continue
        # criterion flattens "svf_apply/256x256x256" to a directory name; its
        # own record of the group id keeps the slash.
        group_id = json.loads((group / "fast" / "new" / "benchmark.json").read_text())["group_id"]
        op, dims = group_id.rsplit("/", 1)
        rows.append((op, dims, fast / 1e6, ref / 1e6, ref / fast))
    print("| operation | dims | fast (ms) | reference (ms) | reference / fast |")
    print("|---|---|---|---|---|")
    for op, dims, f, r, x in rows:
        print(f"| {op} | {dims} | {f:.3f} | {r:.3f} | {x:.1f}× |")
    errors = root / "parity-errors.md"
    if errors.is_file():
        print("\nFast kernel error against the reference, per stage :\n")
        print(errors.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
