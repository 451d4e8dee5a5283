#!/usr/bin/env bash
# A short run of every fuzz target on the committed seed corpus — the CI
# smoke (scripts/test calls it). New inputs go to a scratch corpus, never
# into fuzz/corpus/; a crash fails the run and leaves its input in
# fuzz/artifacts/TARGET/.
#
#   bash fuzz/smoke.sh [SECONDS_PER_TARGET]     (default 20)
#
# Needs the nightly toolchain and cargo-fuzz (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz smoke: no nightly toolchain (rustup toolchain install nightly); set PARITY_SKIP_FUZZ=1 to skip it knowingly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "   installing cargo-fuzz 0.13.2"
  cargo install --quiet --locked cargo-fuzz --version 0.13.2
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo +nightly fuzz build 2>&1 | tail -1
for t in $(cargo fuzz list); do
  mkdir -p "$scratch/$t"
  line=$(cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$secs" 2>&1 | tee "$scratch/$t.log" | grep -E '^Done [0-9]+ runs' || true)
  if [ -z "$line" ]; then
    echo "fuzz smoke: target $t failed:" >&2
    grep -E 'panicked|SUMMARY|ERROR|==[0-9]+==' "$scratch/$t.log" | head -20 >&2
    exit 1
  fi
  printf '   %-12s %s\n' "$t" "$line"
done
