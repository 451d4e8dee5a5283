#!/usr/bin/env bash
# A fingerprint of what parity prints on the shipped golden data: one line
# per (command, case, format) with the sha256 of its output and its exit code.
# Run it with the binary before and after a change that must not change
# behaviour (a refactor), and diff the two files:
#
#   bash scripts/fingerprint.sh target/release/parity > before.txt
#   … change, rebuild …
#   bash scripts/fingerprint.sh target/release/parity > after.txt && diff before.txt after.txt
set -uo pipefail
cd "$(dirname "$0")/.."
P="$(realpath "${1:-target/release/parity}")"
# A fixed scratch path: outputs that name it are then the same bytes each run.
scratch="${TMPDIR:-/tmp}/parity-fingerprint"
rm -rf "$scratch" && mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
line() { # NAME CMD…: run, print "NAME exit sha256" (stdout, then stderr)
  local name="$1"; shift
  local out err rc
  out="$("$@" 2>"$scratch/err")"; rc=$?
  printf '%s %s %s %s\n' "$name" "$rc" "$(printf '%s' "$out" | sha256sum | cut -c1-16)" "$(sha256sum < "$scratch/err" | cut -c1-16)"
}
formats="text json junit markdown html"
for case in golden/*/; do
  c="$(basename "$case")"
  if [ -f "$case/oracle_f32.json" ]; then
    for f in $formats; do
      line "check:$c:$f" "$P" check "$case/oracle_f32.json" "$case/oracle_f32.json" --strict-stage-tolerances --format "$f"
    done
    [ -f "$case/oracle_f64.json" ] && line "check-f64:$c:text" "$P" check "$case/oracle_f64.json" "$case/oracle_f32.json" --strict-stage-tolerances
    line "replay:$c" "$P" replay "$case/oracle_f32.json" --out "$scratch/r.json"
    line "replayed:$c" sha256sum "$scratch/r_stages.safetensors"
    line "check-replay:$c:json" "$P" check "$case/oracle_f32.json" "$scratch/r.json" --format json
    for f in text json markdown; do
      line "inspect:$c:$f" "$P" inspect "$case/oracle_f32.json" --format "$f"
    done
  fi
done
for f in $formats; do
  line "diff:two_shards:$f" "$P" diff golden/diff_two_shards/left golden/diff_two_shards/right --format "$f"
  line "diff-tol:two_shards:$f" "$P" diff golden/diff_two_shards/left golden/diff_two_shards/right --tolerances golden/diff_two_shards/tolerances.json --format "$f"
done
for f in text json markdown; do
  line "inspect:two_shards:$f" "$P" inspect golden/diff_two_shards/left --format "$f"
done
cp -r golden/plan_two_shards "$scratch/plan"
plan="$scratch/plan/plan.yaml"
if [ -n "$plan" ]; then
  line "apply:dry" "$P" apply "$plan" --dry-run --out "$scratch/out"
  line "apply" "$P" apply "$plan" --out "$scratch/out"
  line "apply:out" bash -c "cd '$scratch/out' && find . -type f ! -name manifest.json | sort | xargs sha256sum"
  line "apply:rerun" "$P" apply "$plan" --out "$scratch/out"
fi
line "gate" "$P" gate golden
line "ops" "$P" ops
line "ops:json" "$P" ops --json
