"""Issue 23's speed and memory targets for captured runs, on a BERT-base-shaped
model (12 layers, hidden 768, 12 heads, intermediate 3072; random init, no
download), batch 1 × 128 tokens, every module captured:

1. capture overhead: the forward with `parity_oracle.capture` against the
   same forward without it (target ≤ 1.5×), medians of N alternating runs;
2. memory: the most stage bytes the capture held at once
   (`run.peak_held_bytes`) against the largest activation (target ≤ 2×),
   and the peak resident set of a process that captures against one that
   does not (each in a fresh subprocess, the same model and input);
3. `parity check` of two captured runs (the model and a copy whose every
   weight moved by ±1 ULP) against `cat` of both bundles from the page
   cache (target ≥ 50%: cat's time / check's time), medians of N
   alternating runs.

    python3 benches/capture_bench.py [--dir /dev/shm/capture-bench] [--runs 7] [--parity target/release/parity]

Needs torch and transformers (`pip install './oracle[test]'`) and a release
build. Writes two ~200 MB report pairs into --dir (tmpfs by default, so no
write waits for a disk).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The tests' ±1 ULP copy of a model (oracle/tests/honest_noise.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "oracle" / "tests"))
from honest_noise import honest_noise  # noqa: E402

SEQ = 128


def build():
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(attn_implementation="eager")  # bert-base's shape
    model = transformers.BertModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, SEQ), generator=torch.Generator().manual_seed(1))
    return model, ids


def capture_to(model, ids, path):
    import torch

    from parity_oracle import capture

    with torch.no_grad(), capture(model, path, producer={"name": "transformers", "implementation": "torch-f32"}) as run:
        model(input_ids=ids)
    return run


def forward(model, ids):
    import torch

    with torch.no_grad():
        model(input_ids=ids)


def rss_child(mode: str, path: str) -> None:
    """One forward (after a warm-up), plain or captured; prints the peak RSS in KiB."""
    model, ids = build()
    forward(model, ids)
    if mode == "capture":
        capture_to(model, ids, Path(path))
    else:
        forward(model, ids)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/dev/shm/capture-bench"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--parity", default="target/release/parity")
    ap.add_argument("--rss-child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return

    import torch

    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; dir {args.dir}")
    model, ids = build()
    forward(model, ids)  # warm-up
    plain, captured = [], []
    run = None
    for _ in range(args.runs):
        plain.append(timed(lambda: forward(model, ids)))
        t = time.perf_counter()
        run = capture_to(model, ids, args.dir / "reference.json")
        captured.append(time.perf_counter() - t)
    p, c = statistics.median(plain), statistics.median(captured)
    report = json.loads((args.dir / "reference.json").read_text())
    stages = sum(len(t["stages"]) for t in report["tensors"])
    bundle = args.dir / "reference_stages.safetensors"
    print(f"\n1. capture overhead ({len(report['tensors'])} module calls, {stages} stages, bundle {bundle.stat().st_size / 2**20:.1f} MiB)")
    print(f"   forward {p * 1e3:.1f} ms, captured {c * 1e3:.1f} ms (medians of {args.runs}): {c / p:.2f}x  (target <= 1.5x)")

    print("\n2. memory")
    print(
        f"   stage bytes held at once {run.peak_held_bytes / 2**20:.2f} MiB, largest activation "
        f"{run.largest_stage_bytes / 2**20:.2f} MiB: {run.peak_held_bytes / run.largest_stage_bytes:.2f}x  (target <= 2x)"
    )
    rss = {}
    for mode in ("plain", "capture"):
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", mode, str(args.dir / "rss.json")],
            capture_output=True, text=True, check=True,
        )
        rss[mode] = int(out.stdout.split()[-1])
    extra = (rss["capture"] - rss["plain"]) / 1024
    print(f"   peak RSS: plain {rss['plain'] / 1024:.1f} MiB, captured {rss['capture'] / 1024:.1f} MiB: {extra:+.1f} MiB")

    noisy = honest_noise(model, 1)
    capture_to(noisy, ids, args.dir / "noisy.json")
    left, right = args.dir / "reference.json", args.dir / "noisy.json"
    bundles = [args.dir / "reference_stages.safetensors", args.dir / "noisy_stages.safetensors"]
    check_cmd = [args.parity, "check", str(left), str(right), "--atol", "1e-4", "--rtol", "1e-4"]
    first = subprocess.run(check_cmd, capture_output=True, text=True)
    last = first.stdout.strip().splitlines()[-1] if first.stdout.strip() else first.stderr.strip()
    checks, cats = [], []
    for _ in range(args.runs):
        checks.append(timed(lambda: subprocess.run(check_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        cats.append(timed(lambda: subprocess.run(["cat", *map(str, bundles)], stdout=subprocess.DEVNULL)))
    k, r = statistics.median(checks), statistics.median(cats)
    size = sum(b.stat().st_size for b in bundles) / 2**20
    print(f"\n3. parity check of the two runs ({size:.0f} MiB of bundles; {last})")
    print(f"   check {k * 1e3:.1f} ms, cat of both bundles {r * 1e3:.1f} ms (medians of {args.runs}): {r / k:.0%} of the read  (target >= 50%)")
    print(f"   command: {' '.join(check_cmd)}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
