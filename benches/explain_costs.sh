#!/usr/bin/env bash
# What seeing and explaining a difference costs (SPEC §12), on the benches'
# Qwen case (outside CI). Each line is the median of 3 runs of one command:
#
#   python3 benches/qwen_case.py /dev/shm/qwen8      # once: 8 tensors, ~0.6 GB of stages per side
#   bash benches/explain_costs.sh /dev/shm/qwen8
#
# - check: python.json against parity's replay, the built-in profile (passes);
# - --suggest-tolerances, --noise-floor: the same check with each feature;
# - exact: a profile whose limits are all 0, so every differing stage fails
#   and is examined for an explanation; then the same with --format html
#   (plots of every failing stage).
set -euo pipefail
dir="$1"
parity="$(cd "$(dirname "$0")/.." && pwd)/target/release/parity"
[ -f "$dir/rust.json" ] || "$parity" replay "$dir/python.json" --out "$dir/rust.json" >/dev/null
cat > "$dir/exact.tolerances.json" <<'JSON'
{"schema": "parity.tolerances.v1", "description": "every stage exact: every differing stage fails",
 "operations": {"svf_apply": {"*": {"required": true, "max_abs": 0, "mean_abs": 0}}}}
JSON
"$parity" doctor | sed -n '1p;4p'
median() { sort -n | sed -n 2p; }
run() {
  local label="$1"; shift
  local t=()
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N); "$parity" "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc)")
  done
  printf '%-52s %6.2f s\n' "$label" "$(printf '%s\n' "${t[@]}" | median)"
}
L="$dir/python.json"; R="$dir/rust.json"
run "check --strict-stage-tolerances" check "$L" "$R" --strict-stage-tolerances
run "  + --suggest-tolerances" check "$L" "$R" --strict-stage-tolerances --suggest-tolerances "$dir/suggested.json"
run "  + --noise-floor" check "$L" "$R" --noise-floor
run "exact profile: every differing stage fails, explained" check "$L" "$R" --strict-stage-tolerances --tolerances "$dir/exact.tolerances.json"
run "  + --format html (plots of every failing stage)" check "$L" "$R" --strict-stage-tolerances --tolerances "$dir/exact.tolerances.json" --format html --output "$dir/exact.html"
echo "failing stages: $("$parity" check "$L" "$R" --strict-stage-tolerances --tolerances "$dir/exact.tolerances.json" --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for t in d["tensors"] for s in t["stages"] if s["verdict"]=="fail"))')"
