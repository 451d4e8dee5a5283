"""The SVF operation (`svf_apply`, SPEC §3), computed two independent ways.

* `svf_apply_f32` is what a PyTorch user's f32 pipeline computes: every stage is
  an f32 tensor produced by f32 arithmetic (f32 elementwise ops, f32 sums, an
  f32 BLAS matmul). It is the baseline the fast Rust kernel is gated against.
* `svf_apply_f64` upcasts the f32 inputs (exactly) and computes every stage in
  f64; it is what the Rust reference implementation is compared with.

Both return a dict of stage name -> array in pipeline order (`SVF_STAGES`), ready
to be passed as `stages=` to `ReportWriter.add_tensor`.

The formula, with torch.svd's layout (W ≈ U·diag(S)·Vᵀ, `v` is V not Vᵀ):

    scaled_s       = s * (1 + offsets)
    normalization  = sum(s) / sum(scaled_s)
    adapted        = ((u * scaled_s) @ vᵀ) * normalization
    final          = adapted, oriented to final_shape, then rounded to bf16
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_dtypes
import numpy as np

from .tensorio import to_numpy

OPERATION = "svf_apply"

# Inputs in the order they are stored in a components file (`tensor.<key>.<input>`).
SVF_INPUTS: tuple[str, ...] = ("source", "u", "s", "v", "offsets")

# Stages in pipeline order; names are part of the contract.
SVF_STAGES: tuple[str, ...] = (
    "source_f32",
    "offsets_f32",
    "scaled_s",
    "normalization",
    "u_scaled",
    "matmul_pre_norm",
    "zero_source_f32",
    "adapted_source_f32",
    "final_f32",
    "final_bf16",
)


def resolve_orientation(
    source_shape: Sequence[int], final_shape: Sequence[int], transpose: bool | None = None
) -> bool:
    """Whether the result is transposed from the source's [m, n] layout.

    If `transpose` is given it decides, and `final_shape` must agree with it.
    Otherwise the result is transposed iff final_shape == [n, m] with m != n: a
    square weight is only transposed when asked explicitly, because its shape
    alone cannot tell and a silently wrong orientation is a classic porting bug.
    Any other final_shape is an error.
    """
    m, n = (int(d) for d in source_shape)
    fs = _shape2("final_shape", final_shape)
    if transpose is not None:
        if not isinstance(transpose, (bool, np.bool_)):
            raise ValueError(f"transpose must be a bool, got {transpose!r}")
        transpose = bool(transpose)
        expected = (n, m) if transpose else (m, n)
        if fs != expected:
            raise ValueError(
                f"final_shape {list(fs)} disagrees with transpose={str(transpose).lower()}: "
                f"source is [{m}, {n}], so the result must be {list(expected)}"
            )
        return transpose
    if fs == (m, n):
        return False
    if fs == (n, m):  # m != n here, otherwise the line above matched
        return True
    raise ValueError(
        f"final_shape {list(fs)} matches neither the source shape [{m}, {n}] "
        f"nor its transpose [{n}, {m}]"
    )


def svf_params(final_shape: Sequence[int], transpose: bool | None = None) -> dict[str, Any]:
    """The report's `params` for one svf_apply tensor (transpose only if given)."""
    params: dict[str, Any] = {"final_shape": [int(d) for d in final_shape]}
    if transpose is not None:
        params["transpose"] = bool(transpose)
    return params


def svf_components(source: Any, u: Any, s: Any, v: Any, offsets: Any) -> dict[str, Any]:
    """The operation's inputs keyed by their components-file names."""
    return {"source": source, "u": u, "s": s, "v": v, "offsets": offsets}


def svf_apply_f32(
    source: Any,
    u: Any,
    s: Any,
    v: Any,
    offsets: Any,
    *,
    final_shape: Sequence[int],
    transpose: bool | None = None,
) -> dict[str, np.ndarray]:
    """svf_apply as a PyTorch f32 pipeline computes it; every stage is float32
    except final_bf16 (bfloat16).

    Summation order of the sums and of the matmul is numpy's (pairwise sums,
    OpenBLAS sgemm), which may differ from torch's by a few ulps: that is what
    the stage tolerances of SPEC §3 absorb, and why final hashes are
    provenance-bound.
    """
    source, u, s, v, offsets, transposed = _validate(source, u, s, v, offsets, final_shape, transpose)
    one = np.float32(1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled_s = s * (one + offsets)  # two f32 roundings, as torch: (1 + offsets) first
        # f32 accumulation on both sides of the division, as torch's S.sum().
        # sum(scaled_s) == 0 (e.g. every offset is -1) divides by zero: the IEEE
        # result (inf, or nan for 0/0 and for empty tensors) is the *defined*
        # result here, exactly like torch; the Rust side mirrors it.
        normalization = np.array(
            [np.sum(s, dtype=np.float32) / np.sum(scaled_s, dtype=np.float32)], dtype=np.float32
        )
        u_scaled = u * scaled_s[np.newaxis, :]
        matmul_pre_norm = u_scaled @ v.T  # f32 BLAS (sgemm)
        zero_source = (u * s[np.newaxis, :]) @ v.T
        adapted = matmul_pre_norm * normalization[0]
    final_f32 = np.ascontiguousarray(adapted.T if transposed else adapted)
    return {
        "source_f32": source,
        "offsets_f32": offsets,
        "scaled_s": scaled_s,
        "normalization": normalization,
        "u_scaled": u_scaled,
        "matmul_pre_norm": np.ascontiguousarray(matmul_pre_norm),
        "zero_source_f32": np.ascontiguousarray(zero_source),
        "adapted_source_f32": np.ascontiguousarray(adapted),
        "final_f32": final_f32,
        # ml_dtypes rounds f32 -> bf16 to nearest, ties to even (NaN stays NaN).
        "final_bf16": final_f32.astype(ml_dtypes.bfloat16),
    }


def svf_apply_f64(
    source: Any,
    u: Any,
    s: Any,
    v: Any,
    offsets: Any,
    *,
    final_shape: Sequence[int],
    transpose: bool | None = None,
) -> dict[str, np.ndarray]:
    """svf_apply computed in f64 from the (f32) inputs; float stages are float64
    (stage names keep their contract names, e.g. `final_f32`, even though they
    hold f64 values), final_bf16 is bfloat16.
    """
    source, u, s, v, offsets, transposed = _validate(source, u, s, v, offsets, final_shape, transpose)
    # f32 -> f64 is exact, so every stage below is the f64 result of the
    # mathematically same inputs the f32 pipeline sees.
    source, u, s, v, offsets = (a.astype(np.float64) for a in (source, u, s, v, offsets))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled_s = s * (1.0 + offsets)
        # Same IEEE division-by-zero semantics as the f32 pipeline (see there).
        normalization = np.array([np.sum(s) / np.sum(scaled_s)], dtype=np.float64)
        u_scaled = u * scaled_s[np.newaxis, :]
        matmul_pre_norm = u_scaled @ v.T
        zero_source = (u * s[np.newaxis, :]) @ v.T
        adapted = matmul_pre_norm * normalization[0]
        final_f64 = np.ascontiguousarray(adapted.T if transposed else adapted)
        # Contract (SPEC §3): the reference rounds f64 -> f32 once (RNE), then
        # f32 -> bf16 (RNE). Two roundings on purpose: it is the definition the
        # Rust reference follows, and it can differ from a direct f64 -> bf16
        # rounding when the f32 value lands exactly on a bf16 tie.
        final_bf16 = final_f64.astype(np.float32).astype(ml_dtypes.bfloat16)
    return {
        "source_f32": source,
        "offsets_f32": offsets,
        "scaled_s": scaled_s,
        "normalization": normalization,
        "u_scaled": u_scaled,
        "matmul_pre_norm": np.ascontiguousarray(matmul_pre_norm),
        "zero_source_f32": np.ascontiguousarray(zero_source),
        "adapted_source_f32": np.ascontiguousarray(adapted),
        "final_f32": final_f64,
        "final_bf16": final_bf16,
    }


def decompose_f32(source: Any, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, s, v) of an f32 source the torch way, in torch.svd's layout.

    Reduced SVD in f32 (LAPACK sgesdd, like torch.linalg.svd on CPU); v = Vhᵀ.
    `k` keeps the k largest singular triplets (rank truncation). The basis is
    unique only up to signs, so these components are provenance-bound: that is
    why golden cases store them instead of recomputing them.
    """
    source = _as_f32("source", source)
    if source.ndim != 2:
        raise ValueError(f"source must be 2-D, got shape {list(source.shape)}")
    full_k = min(source.shape)
    if k is None:
        k = full_k
    if not 0 <= k <= full_k:
        raise ValueError(f"k={k} must be between 0 and min(m, n) = {full_k}")
    uu, ss, vh = np.linalg.svd(source, full_matrices=False)
    return (
        np.ascontiguousarray(uu[:, :k], dtype=np.float32),
        np.ascontiguousarray(ss[:k], dtype=np.float32),
        np.ascontiguousarray(vh[:k, :].T, dtype=np.float32),
    )


def _as_f32(name: str, x: Any) -> np.ndarray:
    arr = to_numpy(x, name)
    if arr.dtype != np.float32:
        raise TypeError(f"{name} must be float32 (svf_apply's inputs are F32), got {arr.dtype}")
    return arr


def _shape2(what: str, shape: Sequence[int]) -> tuple[int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{what} must be a list of two integers, got {shape!r}") from None
    if len(dims) != 2 or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 0 for d in dims
    ):
        raise ValueError(f"{what} must be a list of two non-negative integers, got {list(dims)}")
    return int(dims[0]), int(dims[1])


def _validate(source, u, s, v, offsets, final_shape, transpose):
    source, u, s, v, offsets = (
        _as_f32(name, x) for name, x in zip(SVF_INPUTS, (source, u, s, v, offsets))
    )
    if source.ndim != 2:
        raise ValueError(f"source must be 2-D [m, n], got shape {list(source.shape)}")
    m, n = source.shape
    if s.ndim != 1:
        raise ValueError(f"s must be 1-D [k], got shape {list(s.shape)}")
    (k,) = s.shape
    for name, arr, expected in (
        ("u", u, (m, k)),
        ("v", v, (n, k)),
        ("offsets", offsets, (k,)),
    ):
        if arr.shape != expected:
            hint = " (v is V in torch.svd's layout, not Vᵀ)" if name == "v" and arr.shape == (k, n) else ""
            raise ValueError(
                f"{name} has shape {list(arr.shape)}, expected {list(expected)} "
                f"for source [{m}, {n}] and k = {k}{hint}"
            )
    transposed = resolve_orientation((m, n), final_shape, transpose)
    return source, u, s, v, offsets, transposed
