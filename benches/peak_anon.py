"""Run a command and report its peak anonymous memory (RssAnon), sampled.

Peak RSS (`/usr/bin/time -v`) counts the pages of memory-mapped stage bundles,
which are page cache the kernel can drop at will; the comparer's promise is
about *anonymous* memory — what it allocates — so that is what this samples
from /proc/PID/status every 10 ms, together with the wall time.

    python3 benches/peak_anon.py target/release/parity check A.json B.json --strict-stage-tolerances
"""

from __future__ import annotations

import subprocess
import sys
import time


def rss_anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def main(argv: list[str]) -> int:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, rss_anon_kib(proc.pid))
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    print(f"exit {proc.returncode}, wall {wall:.2f} s, peak anonymous memory {peak / 1024:.0f} MiB (sampled every 10 ms)")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
