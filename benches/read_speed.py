#!/usr/bin/env python3
"""parity's streamed commands against `cat` of the same files, warm and cold.

    python3 benches/read_speed.py diff LEFT RIGHT [--runs 7] [--cold] [-- EXTRA PARITY ARGS]
    python3 benches/read_speed.py inspect PATH [--runs 7] [--cold]
    python3 benches/read_speed.py check LEFT.json RIGHT.json [--runs 7] [--cold]

For each run, alternating the contenders so machine noise hits both alike:
  * the parity command (`diff LEFT RIGHT --atol 1e-5`, `inspect PATH`,
    `check LEFT RIGHT --strict-stage-tolerances`), output to /dev/null;
  * `cat` of the same bytes: one `cat` of every file for `inspect`, two
    `cat`s in parallel (one per side) for `diff` and `check` — what reading
    the files costs with nothing else done.
Warm: the files are read once first, so both read from the page cache.
Cold (--cold): before every timed command each file is evicted from the page
cache with posix_fadvise(POSIX_FADV_DONTNEED) (after a sync; no root
needed), so both read from the disk. On tmpfs (/dev/shm) nothing can be
evicted, and the script refuses --cold there.

Prints every run, the medians, and parity's share: cat's time / parity's time
(1.0 = as fast as reading the files). The CPU model and the SIMD path
(`PARITY_SIMD`, or the best the CPU has) head the output. Set PARITY_BIN to
time another build.
"""

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def files_of(path):
    """Every file a checkpoint path stands for (a file, or a directory's files)."""
    if os.path.isdir(path):
        return sorted(f for f in glob.glob(os.path.join(path, "*")) if os.path.isfile(f))
    return [path]


def bundle_files(report):
    """A check report and the stage bundle it names."""
    import json

    with open(report) as f:
        r = json.load(f)
    return [report, os.path.join(os.path.dirname(report), r["stage_bundle"])]


def evict(files):
    os.sync()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(cmd, shell=False):
    start = time.perf_counter()
    subprocess.run(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def cat_command(sides):
    """`cat` of each side, the sides in parallel."""
    parts = ["cat " + " ".join(f"'{f}'" for f in side) + " >/dev/null" for side in sides]
    return " & ".join(parts) + " & wait"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["diff", "inspect", "check"])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cold", action="store_true", help="evict the files before every timed command")
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]
    parity = os.environ.get("PARITY_BIN", os.path.join(HERE, "target", "release", "parity"))

    if args.command == "inspect":
        (path,) = args.paths
        sides = [files_of(path)]
        cmd = [parity, "inspect", path] + extra
    elif args.command == "diff":
        left, right = args.paths
        sides = [files_of(left), files_of(right)]
        cmd = [parity, "diff", left, right, "--atol", "1e-5"] + extra
    else:
        left, right = args.paths
        sides = [bundle_files(left), bundle_files(right)]
        cmd = [parity, "check", left, right, "--strict-stage-tolerances"] + extra
    every = [f for side in sides for f in side]
    if args.cold:
        fs = subprocess.run(["stat", "-f", "-c", "%T", every[0]], capture_output=True, text=True).stdout.strip()
        if fs == "tmpfs":
            sys.exit(f"read_speed.py: {every[0]} is on tmpfs: nothing can be evicted, so --cold would time the page cache")
    size = sum(os.path.getsize(f) for f in every)
    simd = os.environ.get("PARITY_SIMD") or "best (see `parity doctor`)"
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; PARITY_SIMD={simd}")
    print(f"{' '.join(cmd)}  ({size / 2**30:.2f} GiB in {len(every)} files, {'cold' if args.cold else 'warm'})")
    cat = cat_command(sides)
    if not args.cold:
        timed(cat, shell=True)  # into the page cache
    ours, cats = [], []
    for i in range(args.runs):
        if args.cold:
            evict(every)
        ours.append(timed(cmd))
        if args.cold:
            evict(every)
        cats.append(timed(cat, shell=True))
        print(f"run {i + 1}: parity {ours[-1]:.3f} s, cat {cats[-1]:.3f} s")
    p, c = statistics.median(ours), statistics.median(cats)
    print(f"medians of {args.runs}: parity {p:.3f} s ({size / p / 2**30:.2f} GiB/s), cat {c:.3f} s ({size / c / 2**30:.2f} GiB/s): parity at {100 * c / p:.0f}% of cat")


if __name__ == "__main__":
    main()
