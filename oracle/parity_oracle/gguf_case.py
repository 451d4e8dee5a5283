"""The golden GGUF case (issue 25): a small Llama-shaped checkpoint (GQA: 4
query heads, 2 key/value heads), its GGUF conversion written with the `gguf`
package the way llama.cpp's convert_hf_to_gguf.py writes it (its names, its
RoPE permutation of Q and K, its metadata, a mix of types), a buggy
conversion, and the verdicts `parity diff --map-preset llama` must reach —
computed here with numpy, independently of parity:

* a tensor of a type with a reference quantizer (Q4_0, Q4_1, Q5_0, Q5_1,
  Q8_0) whose blocks are `gguf.quants.quantize`'s: `within`,
  `matches_reference: true`;
* blocks that are not the reference's but whose RMS error against LEFT is
  at most 2× the reference's: `within`, `matches_reference: false`;
* worse: `differs`;
* a K-quant (no reference quantizer): `within` when its SQNR reaches the
  type's floor (6.02 dB per bit of its value code, less 10 dB);
* a plain tensor stored as LEFT holds it: `identical`.

The buggy conversion holds the bugs users met: K of layer 0 permuted with
the query head count (GQA), the final norm stored as w + 1 (llama.cpp#5631's
Gemma norm), a Q8_0 tensor quantized twice (through Q4_0 first).

Needs the `gguf` package (the oracle's test extra).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .checkpoint import serialize_tensors
from .tensorio import atomic_write_bytes

NAME = "gguf_llama"
PROVES = ("a GGUF conversion checked tensor by tensor with `--map-preset llama`: names, the RoPE permutation of "
          "Q/K undone with the metadata's head counts, quantization-aware verdicts (reference blocks, within 2× the "
          "reference's error, a K-quant's SQNR floor), and a buggy conversion — K permuted with the query head count, "
          "the final norm stored +1, a tensor quantized twice — each `differs` with its explanation")

LAYERS, HIDDEN, HEADS, KV_HEADS, FFN, VOCAB = 2, 256, 4, 2, 256, 32
HEAD_DIM = HIDDEN // HEADS
MARGIN = 2.0


def hf_model(seed: int = 25) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = lambda *s: (rng.standard_normal(s) * 0.02).astype(np.float32)  # noqa: E731
    m = {"model.embed_tokens.weight": w(VOCAB, HIDDEN), "lm_head.weight": w(VOCAB, HIDDEN),
         "model.norm.weight": (1 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)}
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        m[f"{p}.self_attn.q_proj.weight"] = w(HEADS * HEAD_DIM, HIDDEN)
        m[f"{p}.self_attn.k_proj.weight"] = w(KV_HEADS * HEAD_DIM, HIDDEN)
        m[f"{p}.self_attn.v_proj.weight"] = w(KV_HEADS * HEAD_DIM, HIDDEN)
        m[f"{p}.self_attn.o_proj.weight"] = w(HIDDEN, HEADS * HEAD_DIM)
        m[f"{p}.mlp.gate_proj.weight"] = w(FFN, HIDDEN)
        m[f"{p}.mlp.up_proj.weight"] = w(FFN, HIDDEN)
        m[f"{p}.mlp.down_proj.weight"] = w(HIDDEN, FFN)
        m[f"{p}.input_layernorm.weight"] = (1 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)
        m[f"{p}.post_attention_layernorm.weight"] = (1 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)
    return m


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute (for RoPE), on rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf: str) -> str:
    table = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in table:
        return table[hf]
    parts = hf.split(".")
    i, rest = parts[2], ".".join(parts[3:])
    sub = {"self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
           "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
           "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
           "mlp.down_proj.weight": "ffn_down.weight", "input_layernorm.weight": "attn_norm.weight",
           "post_attention_layernorm.weight": "ffn_norm.weight"}[rest]
    return f"blk.{i}.{sub}"


# Each tensor's GGUF type in the conversion (F32 norms as the converter keeps them).
TYPES = {
    "model.embed_tokens.weight": "Q8_0", "lm_head.weight": "F16", "model.norm.weight": "F32",
    "model.layers.0.self_attn.q_proj.weight": "Q4_0", "model.layers.1.self_attn.q_proj.weight": "Q5_0",
    "model.layers.0.self_attn.k_proj.weight": "Q4_1", "model.layers.1.self_attn.k_proj.weight": "Q5_1",
    "model.layers.0.self_attn.v_proj.weight": "Q8_0", "model.layers.1.self_attn.v_proj.weight": "Q8_0",
    "model.layers.0.self_attn.o_proj.weight": "BF16", "model.layers.1.self_attn.o_proj.weight": "F16",
    "model.layers.0.mlp.gate_proj.weight": "Q4_K", "model.layers.1.mlp.gate_proj.weight": "Q4_K",
    "model.layers.0.mlp.up_proj.weight": "Q8_0", "model.layers.1.mlp.up_proj.weight": "Q8_0",
    "model.layers.0.mlp.down_proj.weight": "Q4_0", "model.layers.1.mlp.down_proj.weight": "Q5_1",
}


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """A plain Q4_K quantizer (not llama.cpp's search): per 32-value group a
    scale (range / 15) and a min, both coded in 6 bits against the block's
    f16 `d` and `dmin`; values rounded to the nearest of 16 levels."""
    blocks = x.reshape(-1, 8, 32).astype(np.float32)
    n = blocks.shape[0]
    mn = np.minimum(blocks.min(axis=-1), 0).astype(np.float32)
    mx = blocks.max(axis=-1)
    s = ((mx - mn) / 15).astype(np.float32)
    m = (-mn).astype(np.float32)
    d = (s.max(axis=-1) / 63).astype(np.float16)
    dmin = (m.max(axis=-1) / 63).astype(np.float16)
    df, dmf = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(df > 0, np.clip(np.round(s / df), 0, 63), 0).astype(np.uint8)
        mq = np.where(dmf > 0, np.clip(np.round(m / dmf), 0, 63), 0).astype(np.uint8)
        scale = (df * sc.astype(np.float32))[..., None]
        mins = (dmf * mq.astype(np.float32))[..., None]
        q = np.where(scale > 0, np.clip(np.round((blocks + mins) / scale), 0, 15), 0).astype(np.uint8)
    scales = np.zeros((n, 12), np.uint8)
    for j in range(4):
        scales[:, j] = (sc[:, j] & 0x3F) | ((sc[:, 4 + j] >> 4) << 6)
        scales[:, 4 + j] = (mq[:, j] & 0x3F) | ((mq[:, 4 + j] >> 4) << 6)
        scales[:, 8 + j] = (sc[:, 4 + j] & 0x0F) | ((mq[:, 4 + j] & 0x0F) << 4)
    q = q.reshape(n, 256)
    qs = np.zeros((n, 128), np.uint8)
    for g in range(4):
        qs[:, g * 32:(g + 1) * 32] = q[:, g * 64:g * 64 + 32] | (q[:, g * 64 + 32:g * 64 + 64] << 4)
    out = np.concatenate([d.reshape(n, 1).view(np.uint8), dmin.reshape(n, 1).view(np.uint8), scales, qs], axis=1)
    return out.reshape(x.shape[0], -1)


def encode(values: np.ndarray, ty: str) -> np.ndarray:
    import gguf
    from gguf.quants import quantize

    if ty == "F32":
        return values.astype(np.float32)
    if ty == "F16":
        return values.astype(np.float16)
    if ty == "Q4_K":
        return quantize_q4_k(values)
    return quantize(values.astype(np.float32), gguf.GGMLQuantizationType[ty])


def decode(raw: np.ndarray, ty: str) -> np.ndarray:
    import gguf
    from gguf.quants import dequantize

    if ty in ("F32", "F16"):
        return raw.astype(np.float32)
    return dequantize(raw, gguf.GGMLQuantizationType[ty]).astype(np.float32)


def sqnr_db(left: np.ndarray, right: np.ndarray) -> float:
    l, r = left.astype(np.float64), right.astype(np.float64)
    err = float(((r - l) ** 2).sum())
    return float("inf") if err == 0 else 10 * np.log10(float((l * l).sum()) / err)


FLOOR_BITS = {"Q4_K": 4}


def verdict(left: np.ndarray, ty: str, raw_hf_order: np.ndarray) -> dict:
    """The expected diff entry of one tensor, in HF row order."""
    import gguf

    if ty == "F32":
        same = raw_hf_order.astype(np.float32).tobytes() == left.astype(np.float32).tobytes()
        return {"status": "identical" if same else "differs"}
    right = decode(raw_hf_order, ty)
    if ty in FLOOR_BITS:
        floor = 6.02 * FLOOR_BITS[ty] - 10
        return {"status": "within" if sqnr_db(left, right) >= floor else "differs"}
    if ty == "F16":
        reference = left.astype(np.float16)
    elif ty == "BF16":
        from gguf.quants import quantize
        reference = quantize(left.astype(np.float32), gguf.GGMLQuantizationType.BF16)
    else:
        reference = encode(left, ty)
    matches = reference.tobytes() == raw_hf_order.tobytes()
    if ty == "BF16":
        ref_values = (reference.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(left.shape)
    else:
        ref_values = decode(reference, ty)
    err_ref = float(((ref_values.astype(np.float64) - left.astype(np.float64)) ** 2).sum())
    err_right = float(((right.astype(np.float64) - left.astype(np.float64)) ** 2).sum())
    ok = matches or err_right <= MARGIN * MARGIN * err_ref
    return {"status": "within" if ok else "differs", "matches_reference": matches}


def convert(hf: dict[str, np.ndarray], path: Path, bugs: bool) -> dict[str, dict]:
    """Write the GGUF; return each HF name's expected diff entry."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(LAYERS)
    w.add_context_length(128)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_layer_norm_rms_eps(1e-6)
    expected: dict[str, dict] = {}
    for name in sorted(hf):
        values = hf[name]
        ty = TYPES.get(name, "F32")
        stored = values
        note = None
        if name.endswith("q_proj.weight"):
            stored = permute(values, HEADS)
        elif name.endswith("k_proj.weight"):
            # The bug: a GQA model's K permuted with the query head count.
            heads = HEADS if (bugs and name == "model.layers.0.self_attn.k_proj.weight") else KV_HEADS
            stored = permute(values, heads)
            if heads != KV_HEADS:
                note = f"with {HEADS} heads"
        if name == "model.layers.1.self_attn.q_proj.weight":
            # Another quantizer's blocks (its values 2% small): not the
            # reference's bytes, but no worse than 2× its error.
            stored = (stored * np.float32(0.98)).astype(np.float32)
        if bugs and name == "model.norm.weight":
            stored = values + np.float32(1)  # llama.cpp#5631: the norm stored as w + 1
            note = "constant offset c = 1"
        if bugs and name == "model.layers.1.mlp.up_proj.weight":
            # Quantized twice: through Q4_0, then to Q8_0.
            stored = decode(encode(values, "Q4_0"), "Q4_0")
            note = "worse than quantization"
        if ty == "BF16":
            from gguf.quants import quantize
            raw = quantize(stored.astype(np.float32), gguf.GGMLQuantizationType.BF16)
        else:
            raw = encode(stored, ty)
        w.add_tensor(gguf_name(name), raw, raw_dtype=gguf.GGMLQuantizationType[ty])
        # What parity compares: RIGHT with its rows put back with the metadata's head count.
        if name.endswith("q_proj.weight"):
            hf_order = unpermute(raw, HEADS)
        elif name.endswith("k_proj.weight"):
            hf_order = unpermute(raw, KV_HEADS)
        else:
            hf_order = raw
        e = verdict(values, ty, hf_order)
        if note is not None:
            assert e["status"] == "differs", (name, e)
            e["explanation"] = note
        expected[name] = e
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


def unpermute(raw: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of `permute` on rows (of values or of whole blocks)."""
    return raw.reshape(n_head, raw.shape[0] // n_head // 2, 2, *raw.shape[1:]).swapaxes(1, 2).reshape(raw.shape)


def generate(out: Path, versions: str, command: str) -> None:
    case = out / NAME
    if case.exists():
        shutil.rmtree(case)
    (case / "hf").mkdir(parents=True)
    hf = hf_model()
    atomic_write_bytes(case / "hf" / "model.safetensors", serialize_tensors(hf))
    good = convert(hf, case / "model.gguf", bugs=False)
    bad = convert(hf, case / "buggy.gguf", bugs=True)
    assert all(e["status"] != "differs" for e in good.values()), good
    assert good["model.layers.1.self_attn.q_proj.weight"] == {"status": "within", "matches_reference": False}
    args = ["--map-preset", "llama"]
    doc = {"schema": "parity.diff_case.v1", "left": "hf", "right": "model.gguf",
           "runs": [{"args": args, "expected": good}, {"right": "buggy.gguf", "args": args, "expected": bad}]}
    atomic_write_bytes(case / "diff_case.json", (json.dumps(doc, indent=2) + "\n").encode())
    rows = "\n".join(f"| `{n}` | {TYPES.get(n, 'F32')} | {good[n]['status']} | {bad[n]['status']}{' — ' + bad[n]['explanation'] if 'explanation' in bad[n] else ''} |"
                     for n in sorted(hf))
    note = f"""# {NAME}

What it proves: {PROVES}.

`hf/model.safetensors` is a Llama-shaped model ({LAYERS} layers, hidden {HIDDEN}, {HEADS} query heads and {KV_HEADS}
key/value heads of {HEAD_DIM}, FFN {FFN}, vocabulary {VOCAB}; F32). `model.gguf` is its conversion as
convert_hf_to_gguf.py writes it (GGUF names, Q and K rows permuted for RoPE with 4 and 2 heads, llama metadata),
each tensor in the type below — reference blocks from `gguf.quants.quantize`, a plain Q4_K quantizer of this
module's for the K-quant. `buggy.gguf` is the same conversion with three bugs. `parity gate` runs
`parity diff hf model.gguf --map-preset llama` and the same against `buggy.gguf`, and expects:

| tensor | type | model.gguf | buggy.gguf |
|---|---|---|---|
{rows}

## How it was made

- command: `{command} --case {NAME}` (from the repository root; needs the `gguf` package: `pip install './oracle[test]'`)
- seed: `numpy.random.default_rng(25)`
- versions: {versions}
"""
    (case / "NOTE.md").write_text(note, encoding="utf-8")
