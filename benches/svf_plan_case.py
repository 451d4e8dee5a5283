"""The benches' Qwen case as a checkpoint and a plan, for `parity apply` against
PyTorch (outside CI).

    python3 benches/qwen_case.py /dev/shm/qwen8          # first: the 8 tensors and their components
    python3 benches/svf_plan_case.py /dev/shm/qwen8      # then: base.safetensors and svf_all.yaml

base.safetensors holds each tensor's source weight under its name (F32,
[3072, 1024] or [1024, 3072]); svf_all.yaml applies svf_apply to every tensor
with the components the report names, writes final_bf16, and shards the
output at 1 GiB. benches/torch_apply.py does the same work plainly in PyTorch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.numpy import load_file, save_file


def main(argv: list[str]) -> int:
    d = Path(argv[0])
    report = json.loads((d / "python.json").read_text())
    comps = load_file(str(d / report["components"]))
    base = {t["name"]: comps[f"tensor.{t['key']}.source"] for t in report["tensors"]}
    save_file(base, str(d / "base.safetensors"))
    shapes = {tuple(t["params"]["final_shape"]) for t in report["tensors"]}
    assert len(shapes) == 1, "one final_shape for every tensor, so one step"
    (d / "svf_all.yaml").write_text(f"""schema: parity.plan.v1
inputs: {{base: base.safetensors, svf: {report['components']}}}
output: {{path: plan_out/, layout: sharded, shard_size: 1GiB}}
steps:
  - id: svf_all
    operation: svf_apply
    target: {{match: "*"}}
    inputs: {{source: "base:{{name}}", u: "svf:tensor.{{key}}.u", s: "svf:tensor.{{key}}.s",
             v: "svf:tensor.{{key}}.v", offsets: "svf:tensor.{{key}}.offsets"}}
    params: {{final_shape: {list(shapes.pop())}}}
    write: final_bf16
""")
    print(f"{len(base)} tensors in {d / 'base.safetensors'}, plan {d / 'svf_all.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
