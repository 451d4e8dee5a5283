#!/usr/bin/env bash
# parity apply on a big checkpoint (outside CI): peak anonymous memory against
# the largest tensor, and a pure copy plan and a cast plan against `cp`.
#
#   bash benches/apply_bench.sh DIR [GIB]        (default 4 GiB; needs ~3.5 × GIB free in DIR)
#
# DIR/left is a GIB-GiB sharded F32 checkpoint of Qwen-MLP-shaped tensors
# (12 MiB each) plus a vocabulary embedding [131072, 1024] (512 MiB, the
# largest tensor: "peak anonymous memory ≤ 3× the largest tensor touched"
# is about it, not about parity's fixed ~25 MiB), from
# benches/diff_checkpoints.py. Each command
# runs three times, side by side: `cp -r` + `sync` (what the copy costs the
# disk), `parity apply` of a plan with no steps (every tensor copied byte for
# byte into new shards, every file fsynced, a manifest with sha256 of every
# tensor and file), and of a plan casting every tensor to BF16. Peak
# anonymous memory is sampled by benches/peak_anon.py. Reports the CPU and
# the SIMD path, as the other benchmarks do.
set -euo pipefail
dir="$1"; gib="${2:-4}"
here="$(cd "$(dirname "$0")" && pwd)"
parity="$here/../target/release/parity"
py="${PYTHON:-python3}"
[ -x "$parity" ] || (cd "$here/.." && cargo build --release --quiet)
mkdir -p "$dir"
if [ ! -f "$dir/left/model.safetensors.index.json" ]; then
  "$py" "$here/diff_checkpoints.py" "$dir" --gib "$gib" --embedding-rows 131072 --left-only >/dev/null
fi
cat > "$dir/copy.yaml" <<'PLAN'
schema: parity.plan.v1
inputs: {base: left/}
output: {path: out/, layout: sharded, shard_size: 1GiB}
steps: []
PLAN
cat > "$dir/cast.yaml" <<'PLAN'
schema: parity.plan.v1
inputs: {base: left/}
output: {path: out/, layout: sharded, shard_size: 1GiB}
steps:
  - id: to_bf16
    operation: cast
    target: {match: "*"}
    inputs: {x: "base:{name}"}
    params: {to: BF16}
PLAN
"$parity" doctor
echo "checkpoint: $(du -sh "$dir/left" | cut -f1) in $(ls "$dir/left"/*.safetensors | wc -l) shards"
cd "$dir"
for i in 1 2 3; do
  rm -rf cp_out out; sync
  t0=$(date +%s.%N); cp -r left cp_out; sync; t1=$(date +%s.%N)
  echo "cp -r + sync: $(echo "$t1 - $t0" | bc) s"
  rm -rf cp_out; sync
  printf 'apply copy.yaml: '; "$py" "$here/peak_anon.py" "$parity" apply copy.yaml
  rm -rf out; sync
  printf 'apply cast.yaml: '; "$py" "$here/peak_anon.py" "$parity" apply cast.yaml
done
rm -rf cp_out out
