#!/usr/bin/env bash
# Side-by-side timings for the issue-5 targets, alternating the contenders so
# that machine noise hits both alike; prints every run and the medians.
#
#   bash benches/side_by_side.sh DIR [RUNS]
#
# DIR must hold the 8-tensor Qwen-MLP case (python.json + bundles) written by
#   python3 benches/qwen_case.py DIR
# The bundles are read from the page cache either way (written just before);
# run it twice first, or put DIR on tmpfs, so that no run waits on the disk.
# Needs a release build (cargo build --release) and a `python3` with the
# oracle and, for the PyTorch line, torch installed: `pip install ./oracle torch`
# (torch is not part of CI).
set -euo pipefail
dir=${1:?usage: side_by_side.sh DIR [RUNS]}
runs=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
# PARITY_BIN: another build, e.g. one whose GEMM is held to AVX2 (see
# benches/README.md, "On an AVX2 machine").
parity="${PARITY_BIN:-$here/target/release/parity}"
# The comparers run under `python3` from PATH, which needs the oracle's
# dependencies (numpy, ml_dtypes, safetensors) and torch.
python3 -c 'import numpy, ml_dtypes, safetensors, torch' 2>/dev/null \
  || { echo "side_by_side.sh: python3 lacks numpy/ml_dtypes/safetensors/torch: pip install ./oracle torch" >&2; exit 2; }

# Wall time of a whole process, to the 0.1 ms (its exit status is not the point:
# --strict-hash fails on this case, whose final hashes differ by design).
seconds() {
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN {printf "%.4f", e - s}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

"$parity" replay "$dir/python.json" --out "$dir/rust.json" >/dev/null   # the candidate side for `check`
# Two loops, each alternating its own pair: the numpy comparer churns
# gigabytes of memory, and on a VM the next process to touch fresh memory
# pays for it, so it must not sit between the two replays.
declare -a rep tor chk npn hsh npf ver npa
for i in $(seq "$runs"); do
  rep+=("$(seconds "$parity" replay "$dir/python.json" --out "$dir/rust.json")")
  tor+=("$(python3 "$here/benches/torch_replay.py" "$dir/python.json" "$dir/torch.safetensors" | sed -E 's/.* in ([0-9.]+) s.*/\1/')")
  echo "run $i: parity replay ${rep[-1]} s, torch ${tor[-1]} s"
done
# Each parity mode against the numpy comparer hashing what that mode hashes:
# nothing (--strict-stage-tolerances: no verdict rests on a hash), the final
# stages (--strict-hash), every stage (--verify-hashes).
for i in $(seq "$runs"); do
  chk+=("$(seconds "$parity" check "$dir/python.json" "$dir/rust.json" --strict-stage-tolerances)")
  npn+=("$(python3 "$here/benches/numpy_comparer.py" "$dir/python.json" "$dir/rust.json" --hash none | sed -E 's/.* in ([0-9.]+) s/\1/')")
  hsh+=("$(seconds "$parity" check "$dir/python.json" "$dir/rust.json" --strict-stage-tolerances --strict-hash)")
  npf+=("$(python3 "$here/benches/numpy_comparer.py" "$dir/python.json" "$dir/rust.json" --hash final | sed -E 's/.* in ([0-9.]+) s/\1/')")
  ver+=("$(seconds "$parity" check "$dir/python.json" "$dir/rust.json" --strict-stage-tolerances --verify-hashes)")
  npa+=("$(python3 "$here/benches/numpy_comparer.py" "$dir/python.json" "$dir/rust.json" --hash all | sed -E 's/.* in ([0-9.]+) s/\1/')")
  echo "run $i: check ${chk[-1]} s vs numpy ${npn[-1]} s; --strict-hash ${hsh[-1]} s vs numpy hashing final stages ${npf[-1]} s; --verify-hashes ${ver[-1]} s vs numpy hashing all ${npa[-1]} s"
done
r=$(printf '%s\n' "${rep[@]}" | median); t=$(printf '%s\n' "${tor[@]}" | median)
c=$(printf '%s\n' "${chk[@]}" | median); n=$(printf '%s\n' "${npn[@]}" | median)
h=$(printf '%s\n' "${hsh[@]}" | median); nf=$(printf '%s\n' "${npf[@]}" | median)
v=$(printf '%s\n' "${ver[@]}" | median); na=$(printf '%s\n' "${npa[@]}" | median)
bytes=$(python3 -c "import json,os,sys; d=sys.argv[1]; r=json.load(open(d+'/python.json')); print(os.path.getsize(d+'/'+r['stage_bundle'])*2)" "$dir")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a/b}'; }
gbs() { awk -v b="$bytes" -v s="$1" 'BEGIN {printf "%.2f", b/s/1e9}'; }
echo "medians over $runs runs:"
echo "  parity replay --impl fast                      $r s   vs PyTorch (time inside the script) $t s: $(awk -v a="$r" -v b="$t" 'BEGIN {printf "%.2f", a/b}')x"
echo "  parity check --strict-stage-tolerances         $c s   vs numpy comparer $n s: $(ratio "$n" "$c")x faster, $(gbs "$c") GB/s"
echo "  parity check ... --strict-hash                 $h s   vs numpy hashing the final stages $nf s: $(ratio "$nf" "$h")x faster, $(gbs "$h") GB/s"
echo "  parity check ... --verify-hashes               $v s   vs numpy hashing every stage $na s: $(ratio "$na" "$v")x faster, $(gbs "$v") GB/s"
echo "  (throughput over both bundles, $bytes bytes)"
