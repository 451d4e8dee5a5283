#!/usr/bin/env bash
# The fast kernels and the comparer on each SIMD path this CPU has, side by
# side in one run (criterion medians; each path in its own process, since
# PARITY_SIMD is read once per process):
#
#   bash benches/simd_paths.sh [ROUNDS] [FILTER]
#
# FILTER (a criterion regex) defaults to the element-wise, cast and merge
# kernels at the Qwen-MLP shape, SVF, and the comparer. Prints one line per
# benchmark and path: the median time (criterion's estimate).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
filter=${2:-'^((cast|scale|add|subtract|clamp|fill)/1024x3072|(task_arithmetic|ties)/[^/]+|svf_apply/1024x3072x1024)/fast$|^comparer/'}
cargo bench --bench operations --no-run >/dev/null 2>&1
paths=$(target/release/parity doctor | sed -n 's/^paths *//p' | tr ',' '\n' | awk '$2 == "yes" {print $1}')
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); paths: $(echo $paths)"
for round in $(seq "$rounds"); do
  for p in $paths; do
    echo "== round $round, PARITY_SIMD=$p (load $(cut -d' ' -f1 /proc/loadavg))"
    PARITY_SIMD=$p cargo bench --bench operations -- "$filter" --warm-up-time 1 --measurement-time 3 --noplot 2>/dev/null \
      | awk -v p="$p" '/^[a-z_0-9]+\/[^ ]+/ && NF == 1 {name=$1} /^[a-z_0-9]+\/[^ ]+ +time:/ {name=$1} /time:/ {
          for (i = 1; i <= NF; i++) if ($i == "time:") { printf "%-55s %-9s %s %s\n", name, p, $(i+3), $(i+4) } }'
  done
done
