#!/usr/bin/env bash
# A long fuzzing run of one target, for the per-target totals in
# fuzz/README.md (the CI smoke is fuzz/smoke.sh). No sanitizer (`-s none`):
# the targets are safe Rust but for the SIMD kernels, and without ASan they
# run 2-5x more executions per second; the smoke runs with ASan.
#
#   bash fuzz/long.sh TARGET SECONDS [RUNS]     (RUNS default 10,000,000)
#
# The working corpus lives in ${PARITY_FUZZ_WORK:-/tmp/parity-fuzz}/TARGET
# (kept between runs, seeded from fuzz/corpus/TARGET, never written back
# into the repository); one summary line per run is appended to
# ${PARITY_FUZZ_WORK}/runs.log: target, executions, seconds, exec/s,
# coverage (cov), features (ft), corpus units, crashes found.
set -euo pipefail
cd "$(dirname "$0")"
t="$1"; secs="$2"; runs="${3:-10000000}"
work="${PARITY_FUZZ_WORK:-/tmp/parity-fuzz}"
mkdir -p "$work/$t" "$work/artifacts/$t"
cargo +nightly fuzz build -s none "$t" 2>&1 | tail -1
log="$work/$t.$(date +%s).log"
start=$(date +%s)
set +e
cargo +nightly fuzz run -s none "$t" "$work/$t" "corpus/$t" -- \
  -max_total_time="$secs" -runs="$runs" -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1
rc=$?
set -e
took=$(( $(date +%s) - start ))
execs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
last=$(grep -E '#[0-9]+' "$log" | tail -1)
cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
units=$(ls "$work/$t" | wc -l)
crashes=$(ls "$work/artifacts/$t" | wc -l)
printf '%s %-11s execs=%s secs=%s exec/s=%s cov=%s ft=%s corpus=%s crashes=%s rc=%s\n' \
  "$(date -u +%FT%TZ)" "$t" "$execs" "$took" "$(( execs / (took > 0 ? took : 1) ))" "$cov" "$ft" "$units" "$crashes" "$rc" \
  | tee -a "$work/runs.log"
[ "$rc" = 0 ] || { grep -E 'panicked|SUMMARY|ERROR|deadly' "$log" | head -5; exit "$rc"; }
