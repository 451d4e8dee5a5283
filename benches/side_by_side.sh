#!/usr/bin/env bash
# Side-by-side timings for the issue-5 targets, alternating the contenders so
# that machine noise hits both alike; prints every run and the medians.
#
#   bash benches/side_by_side.sh DIR [RUNS]
#
# DIR must hold the 8-tensor Qwen-MLP case (python.json + bundles) written by
#   PYTHONPATH=oracle python3 benches/qwen_case.py DIR
# Put DIR on tmpfs (/dev/shm) to time compute rather than this disk.
# Needs a release build (cargo build --release) and, for the PyTorch line,
# `pip install torch` (not part of CI).
set -euo pipefail
dir=${1:?usage: side_by_side.sh DIR [RUNS]}
runs=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
parity="$here/target/release/parity"
export PYTHONPATH="$here/oracle"

seconds() { /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

"$parity" replay "$dir/python.json" --out "$dir/rust.json" >/dev/null   # the candidate side for `check`
# Two loops, each alternating its own pair: the numpy comparer churns
# gigabytes of memory, and on a VM the next process to touch fresh memory
# pays for it, so it must not sit between the two replays.
declare -a rep tor chk ver npf npa
for i in $(seq "$runs"); do
  rep+=("$(seconds "$parity" replay "$dir/python.json" --out "$dir/rust.json")")
  tor+=("$(python3 "$here/benches/torch_replay.py" "$dir/python.json" "$dir/torch.safetensors" | sed -E 's/.* in ([0-9.]+) s.*/\1/')")
  echo "run $i: parity replay ${rep[-1]} s, torch ${tor[-1]} s"
done
# Each parity mode against a numpy comparer hashing the same stages: only the
# final one (parity's default) or every one (--verify-hashes).
for i in $(seq "$runs"); do
  chk+=("$(seconds "$parity" check "$dir/python.json" "$dir/rust.json" --strict-stage-tolerances)")
  npf+=("$(python3 "$here/benches/numpy_comparer.py" "$dir/python.json" "$dir/rust.json" --hash final | sed -E 's/.* in ([0-9.]+) s/\1/')")
  ver+=("$(seconds "$parity" check "$dir/python.json" "$dir/rust.json" --strict-stage-tolerances --verify-hashes)")
  npa+=("$(python3 "$here/benches/numpy_comparer.py" "$dir/python.json" "$dir/rust.json" --hash all | sed -E 's/.* in ([0-9.]+) s/\1/')")
  echo "run $i: parity check ${chk[-1]} s vs numpy ${npf[-1]} s; with --verify-hashes ${ver[-1]} s vs numpy hashing all ${npa[-1]} s"
done
r=$(printf '%s\n' "${rep[@]}" | median); t=$(printf '%s\n' "${tor[@]}" | median)
c=$(printf '%s\n' "${chk[@]}" | median); n=$(printf '%s\n' "${npf[@]}" | median)
v=$(printf '%s\n' "${ver[@]}" | median); na=$(printf '%s\n' "${npa[@]}" | median)
bytes=$(python3 -c "import json,os,sys; d=sys.argv[1]; r=json.load(open(d+'/python.json')); print(os.path.getsize(d+'/'+r['stage_bundle'])*2)" "$dir")
echo "medians over $runs runs:"
echo "  parity replay --impl fast  $r s   vs PyTorch (time inside the script) $t s: $(awk -v a="$r" -v b="$t" 'BEGIN {printf "%.2f", a/b}')x"
echo "  parity check                  $c s   vs numpy comparer $n s: $(awk -v a="$n" -v b="$c" 'BEGIN {printf "%.1f", a/b}')x faster"
echo "  parity check --verify-hashes  $v s   vs numpy comparer hashing every stage $na s: $(awk -v a="$na" -v b="$v" 'BEGIN {printf "%.1f", a/b}')x faster"
echo "  check throughput              $(awk -v b="$bytes" -v s="$c" 'BEGIN {printf "%.2f", b/s/1e9}') GB/s ($(awk -v b="$bytes" -v s="$v" 'BEGIN {printf "%.2f", b/s/1e9}') GB/s re-hashing every stage) over both bundles ($bytes bytes)"
