#!/usr/bin/env python3
"""Write the fuzz targets' seed corpus (fuzz/corpus/TARGET/) from the
shipped golden data and a few hand-made inputs. Deterministic; rerun it to
refresh the seeds after a format changes:

    python3 fuzz/seeds.py [--manifest PATH]   # from the repository root

--manifest: a manifest.json written by `parity apply` (the golden plan's),
to seed the manifest target; without it the committed seed is kept.
"""
import json, os, struct, sys, hashlib, io, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
GOLDEN = ROOT / "golden"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def part(data):
    """One file of a multi-file input (see common::parts)."""
    return struct.pack("<H", len(data)) + data


def safetensors(tensors):
    """A safetensors file of (name, dtype, shape, bytes), in the given order."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def npy(descr, shape, raw, fortran=False):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", "".join(f"{s}," for s in shape))
    total = 10 + len(d) + 1
    d += " " * (-total % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode() + raw


def small_files(pattern, limit=6000):
    return sorted(p for p in GOLDEN.glob(pattern) if p.stat().st_size <= limit)


def main():
    manifest = None
    if "--manifest" in sys.argv:
        manifest = Path(sys.argv[sys.argv.index("--manifest") + 1])

    f32 = struct.pack("<4f", 1.0, -0.5, float("inf"), float("nan"))
    tiny = safetensors([("a", "F32", [2, 2], f32), ("b", "BF16", [2], b"\x80\x3f\x00\xc0"), ("empty", "F16", [0, 3], b"")])

    # Stage bundles: the small golden bundles and a hand-made one.
    for p in small_files("*/*.safetensors", 4200):
        put("bundle", f"{p.parent.name}_{p.name}", p.read_bytes())
    put("bundle", "tiny.safetensors", tiny)

    # Reports and tolerance profiles.
    for p in small_files("*/oracle_f*.json", 4200):
        put("report", f"{p.parent.name}_{p.name}", p.read_bytes())
    for p in [GOLDEN / "diff_two_shards/tolerances.json", GOLDEN / "plan_two_shards/model_tolerances.json",
              ROOT / "tests/fixtures/tolerances.example.json", ROOT / "tests/fixtures/svf_spec_table.tolerances.json"]:
        put("tolerances", p.name, p.read_bytes())

    # Checkpoints, one seed per layout (first byte: the layout).
    left = GOLDEN / "diff_two_shards/left"
    put("checkpoint", "file", b"\x00" + tiny)
    put("checkpoint", "indexed", b"\x01" + part((left / "model.safetensors.index.json").read_bytes())
        + part((left / "model-00001-of-00002.safetensors").read_bytes())
        + (left / "model-00002-of-00002.safetensors").read_bytes())
    put("checkpoint", "shards", b"\x02" + part(tiny) + safetensors([("c", "I64", [1], struct.pack("<q", 7))]))
    one = npy("<f4", [2, 2], f32)
    put("checkpoint", "npy", b"\x03" + one)
    put("checkpoint", "npy_dir", b"\x04" + part(one) + npy(">f8", [3], struct.pack(">3d", 1, 2, 3)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("w.npy", one)
        z.writestr("b.npy", npy("|u1", [2], b"\x01\x02"))
    put("checkpoint", "npz", b"\x05" + buf.getvalue())

    # Plans over the target's fixed checkpoint (base.safetensors, svf.safetensors).
    plan = {
        "schema": "parity.plan.v1",
        "inputs": {"base": "base.safetensors", "svf": "svf.safetensors"},
        "output": {"path": "out/", "layout": "sharded", "shard_size": "1KiB"},
        "steps": [
            {"id": "svf", "operation": "svf_apply",
             "target": {"match": "encoder.layer.*.attention.self.query.weight", "layers": "0..1"},
             "inputs": {"source": "base:{name}", "u": "svf:tensor.{key}.u", "s": "svf:tensor.{key}.s", "v": "svf:tensor.{key}.v",
                        "offsets": "svf:tensor.{key}.offsets"},
             "write": "final_bf16", "expect": {"dtype": "BF16", "shape": [4, 3]}},
            {"id": "half", "operation": "scale", "target": {"match": "re:bias$"}, "inputs": {"x": "base:{name}"},
             "params": {"factor": 0.5}},
            {"id": "cast", "operation": "cast", "target": {"match": "encoder.layer.1.*.weight"},
             "inputs": {"x": "base:encoder.layer.{layer}.attention.self.query.weight"}, "params": {"to": "F16"}},
            {"id": "mv", "operation": "rename", "target": {"match": "*LayerNorm.weight"}, "output": "{name}.gamma"},
            {"id": "cp", "operation": "copy", "target": {"match": "encoder.layer.0.attention.self.query.bias"}, "output": "x.bias"},
            {"id": "rm", "operation": "delete", "target": {"match": "x.bias"}},
            {"id": "take", "operation": "merge_missing", "inputs": {"extra": "svf"}},
            {"id": "ok", "assert": {"match": "*", "finite": True, "exists": True}},
            {"id": "eq", "assert": {"match": "encoder.layer.1.attention.self.query.weight", "count": 1, "shape": [4, 3],
                                    "dtype": "F16", "equal": {"to": "base:{name}", "max_abs": 0.01}}},
        ],
    }
    put("plan", "json", b"\x00" + json.dumps(plan, indent=1).encode())
    yaml_lines = ["schema: parity.plan.v1", "inputs: {base: base.safetensors, svf: svf.safetensors}",
                  "output: {path: out, layout: single}", "steps:"]
    for s in plan["steps"]:
        yaml_lines.append("  - " + json.dumps(s))
    put("plan", "yaml", b"\x01" + ("\n".join(yaml_lines) + "\n").encode())
    put("plan", "golden_yaml", b"\x01" + (GOLDEN / "plan_two_shards/plan.yaml").read_bytes())

    # Manifests: one written by parity apply on the golden plan.
    if manifest is not None:
        put("manifest", "golden_plan", manifest.read_bytes())

    # The comparer: [dtype pair][size][tolerance][top] then seed | mask.
    ones = struct.pack("<8f", 1, 2, 3, 4, -1, -2, 0.0, -0.0)
    put("comparer", "f32_equal", bytes([1, 1, 0, 0]) + ones + bytes(len(ones)))
    put("comparer", "f32_sparse", bytes([1, 2, 2, 3]) + ones + bytes(28) + b"\x01\x00\x00\x00")
    put("comparer", "f32_nan_inf", bytes([1, 6, 3, 1]) + struct.pack("<4f", float("nan"), float("inf"), -float("inf"), 1e-40) + b"\x00\x00\x80\x00" * 4)
    put("comparer", "bf16_ties", bytes([2, 5, 1, 2]) + b"\x80\x3f\x00\x40\x01\x00\x80\x80" + b"\x01\x00\x00\x00\x00\x00\x00\x00")
    for i, d in enumerate(["F64", "F16", "F8_E4M3", "F8_E5M2", "I64", "I32", "I8", "U8", "BOOL"]):
        put("comparer", f"dtype_{d}", bytes([[0, 3, 4, 5, 6, 7, 8, 9, 10][i], 3, 0, 1]) + bytes(range(32)) + bytes(range(1, 33)))
    put("comparer", "mixed", bytes([0xf3, 2, 0, 0]) + bytes(range(64)))

    # GGUF: the dequantization fixture and small headers of each kind.
    put("gguf", "blocks", (ROOT / "tests/fixtures/gguf/blocks.gguf").read_bytes())
    def gguf_file(ne, ty, nbytes, kv=True):
        b = b"GGUF" + struct.pack("<IQQ", 3, 1, 1 if kv else 0)
        if kv:
            key = b"llama.attention.head_count"
            b += struct.pack("<Q", len(key)) + key + struct.pack("<II", 4, 4)
        b += struct.pack("<Q", 1) + b"w" + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        b += struct.pack("<IQ", ty, 0)
        b += bytes(-len(b) % 32) + bytes(range(256)) * (nbytes // 256 + 1)
        return b
    put("gguf", "f32", gguf_file([8, 2], 0, 64))
    put("gguf", "q8_0", gguf_file([32, 2], 8, 68))
    put("gguf", "q4_k", gguf_file([256, 1], 12, 144, kv=False))
    put("gguf", "iq4_xs", gguf_file([256, 1], 23, 136))

    # PyTorch: odd first byte = a whole file (the golden torch.save files and
    # the refused ones), even = a pickle alone (each zip's data.pkl).
    torch_files = sorted(GOLDEN.glob("pytorch_*/*.pt")) + sorted(GOLDEN.glob("pytorch_*/*/*.bin"))
    torch_files += sorted((ROOT / "tests/fixtures/pytorch/bad").glob("*.pt"))
    for f in torch_files:
        raw = f.read_bytes()
        tag = f"{f.parent.name}_{f.stem}"
        put("pytorch", f"file_{tag}", b"\x01" + raw)
        if raw[:2] == b"PK":
            try:
                z = zipfile.ZipFile(io.BytesIO(raw))
                pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
                put("pytorch", f"pickle_{tag}", b"\x00" + z.read(pkl))
            except (zipfile.BadZipFile, StopIteration, NotImplementedError):
                pass


if __name__ == "__main__":
    main()
