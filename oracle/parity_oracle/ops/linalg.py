"""Linear algebra: matmul, svd, phlora, lowrank_reconstruct.

* ``f32``: numpy in float32 — ``np.matmul`` (an sgemm) and ``np.linalg.svd``
  (LAPACK sgesdd, the routine torch.linalg.svd calls on CPU) — with torch's
  order of operations.
* ``f64``: the same formulas in float64 (dgesdd).

SVD conventions (the contract): thin SVD in torch.svd's layout — ``v`` is V,
not Vᵀ — with singular values descending, and each pair of singular vectors
sign-canonicalised: V's column has its largest-magnitude entry positive (the
lowest index on ties) and U's column flips with it. Golden cases have well
separated singular values and unambiguous largest entries, so that two
correct SVDs agree vector by vector; the profile gates only the invariants.
"""

from __future__ import annotations

import numpy as np

from . import OpCase, OpTensor, OracleOp, golden_case, register


def _matrix(x, dtype, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    return x.astype(dtype)


# ---------------------------------------------------------------- matmul


def _matmul(inputs: dict, dtype) -> dict:
    a, b = _matrix(inputs["a"], dtype, "a"), _matrix(inputs["b"], dtype, "b")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a is {a.shape} but b is {b.shape}")
    return {"output": a @ b}


register(OracleOp("matmul", ("a", "b"), ("output",),
                  f32=lambda i, p: _matmul(i, np.float32), f64=lambda i, p: _matmul(i, np.float64)))


# ---------------------------------------------------------------- svd


def canonical_signs(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip each singular pair so V's column has its largest-|·| entry positive
    (np.argmax returns the first maximum: the lowest index on ties)."""
    if v.shape[1] == 0:
        return u, v
    at = np.argmax(np.abs(v), axis=0)
    signs = np.where(v[at, np.arange(v.shape[1])] < 0, -1, 1).astype(v.dtype)
    return u * signs, v * signs


def thin_svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u [m, r], s [r], v [n, r]) in x's dtype, canonical signs."""
    m, n = x.shape
    r = min(m, n)
    if r == 0:
        return np.zeros((m, 0), x.dtype), np.zeros(0, x.dtype), np.zeros((n, 0), x.dtype)
    if not np.all(np.isfinite(x)):
        raise ValueError("x holds NaN/inf: its SVD is undefined")
    u, s, vh = np.linalg.svd(x, full_matrices=False)  # s descending (LAPACK)
    u, v = canonical_signs(u, vh.T)
    return np.ascontiguousarray(u), s, np.ascontiguousarray(v)


def _orthogonality(q: np.ndarray) -> np.ndarray:
    r = q.shape[1]
    if r == 0:
        return q.dtype.type(0)
    return np.max(np.abs(q.T @ q - np.eye(r, dtype=q.dtype)))


def _svd(inputs: dict, dtype) -> dict:
    x = _matrix(inputs["x"], dtype, "x")
    u, s, v = thin_svd(x)
    reconstruction = (u * s) @ v.T
    ortho = np.array([_orthogonality(u), _orthogonality(v)], dtype=dtype)
    return {"s": s, "u": u, "v": v, "reconstruction": reconstruction, "orthogonality": ortho}


register(OracleOp("svd", ("x",), ("s", "u", "v", "reconstruction", "orthogonality"),
                  f32=lambda i, p: _svd(i, np.float32), f64=lambda i, p: _svd(i, np.float64)))


# ---------------------------------------------------------------- phlora


def _phlora(inputs: dict, params: dict, dtype) -> dict:
    x = _matrix(inputs["x"], dtype, "x")
    r = params.get("rank")
    if not isinstance(r, int) or not 1 <= r <= min(x.shape):
        raise ValueError(f"rank must be an integer in 1..={min(x.shape)}, got {r!r}")
    u, s, v = thin_svd(x)
    root = np.sqrt(s[:r])
    a = root[:, None] * v[:, :r].T  # sqrt(s_r) · Vhᵣ
    b = u[:, :r] * root[None, :]  # Uᵣ · sqrt(s_r)
    reconstruction = b @ a
    with np.errstate(invalid="ignore"):  # 0 / 0 is NaN, as in torch
        residual = np.linalg.norm(x - reconstruction) / np.linalg.norm(x)
    return {"s": s[:r].copy(), "a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b),
            "reconstruction": reconstruction, "residual": np.array([residual], dtype=dtype)}


register(OracleOp("phlora", ("x",), ("s", "a", "b", "reconstruction", "residual"),
                  f32=lambda i, p: _phlora(i, p, np.float32), f64=lambda i, p: _phlora(i, p, np.float64)))


# ---------------------------------------------------------------- lowrank_reconstruct


def _lowrank(inputs: dict, params: dict, dtype) -> dict:
    a, b = _matrix(inputs["a"], dtype, "a"), _matrix(inputs["b"], dtype, "b")
    if b.shape[1] != a.shape[0]:
        raise ValueError(f"b is {b.shape} but a is {a.shape}")
    # torch: a Python scalar times an f32 tensor is an f32 product.
    scale = dtype(params.get("scale", 1.0))
    delta = scale * (b @ a)
    base = inputs.get("base")
    output = delta.copy() if base is None else _matrix(base, dtype, "base") + delta
    return {"delta": delta, "output": output}


register(OracleOp("lowrank_reconstruct", ("a", "b", "base"), ("delta", "output"),
                  f32=lambda i, p: _lowrank(i, p, np.float32), f64=lambda i, p: _lowrank(i, p, np.float64)))


# ---------------------------------------------------------------- golden cases


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def designed_matrix(rng: np.random.Generator, m: int, n: int, s: list[float]) -> np.ndarray:
    """An f32 [m, n] matrix U·diag(s)·Vᵀ with random orthonormal U, V and the
    given singular values (rounding to f32 moves them by ~1e-7)."""
    k = len(s)
    x = _orthonormal(rng, m, k) @ np.diag(s) @ _orthonormal(rng, n, k).T
    return x.astype(np.float32)


def _assert_well_posed(x: np.ndarray, columns: int, gap: float = 0.1, margin: float = 1e-2) -> str:
    """The first `columns` singular values at least `gap` apart (and from the
    next one), and each of those columns of V with a largest entry clear of the
    runner-up by `margin`: their vectors and signs are then determined to far
    better than 1e-12 in f64, and to ~1e-6 in f32."""
    u, s, v = thin_svd(x.astype(np.float64))
    assert np.min(-np.diff(s[:columns + 1])) >= gap, s
    mags = np.sort(np.abs(v[:, :columns]), axis=0)
    assert np.min(mags[-1] - mags[-2]) >= margin, mags[-2:]
    return (f"singular values {np.array2string(s, precision=3)}: the first {columns} at least {gap} apart, "
            f"their largest |v| entries clear of the next by ≥ {margin}")


def build_matmul() -> list[OpTensor]:
    rng = np.random.default_rng(31)
    a = rng.standard_normal((7, 5)).astype(np.float32)
    b = (rng.standard_normal((5, 9)) / np.sqrt(5)).astype(np.float32)
    return [OpTensor("small", "matmul", {"a": a, "b": b}, {})]


golden_case(OpCase(
    name="matmul_small",
    proves="a @ b for a [7, 5] by [5, 9] product of O(1) values",
    build=build_matmul,
    seed=31,
    data="a ~ N(0, 1), b ~ N(0, 1/5), in f32",
))

SVD_S = {"tall": [4.0, 3.0, 2.2, 1.5, 1.0, 0.6, 0.35, 0.2], "wide": [3.0, 2.0, 1.2, 0.7, 0.3, 0.1]}


def build_svd() -> list[OpTensor]:
    # Seed chosen so that every column's largest |v| entry is clear of the next
    # by ≥ 0.05 (checked by _verify_svd); most seeds give only ~1e-3.
    rng = np.random.default_rng(45)
    tall = designed_matrix(rng, 12, 8, SVD_S["tall"])
    wide = designed_matrix(rng, 6, 10, SVD_S["wide"])
    return [OpTensor("tall", "svd", {"x": tall}, {}), OpTensor("wide", "svd", {"x": wide}, {})]


def _verify_svd(results: dict) -> None:
    lines = []
    for t in build_svd():  # deterministic: the same inputs the results came from
        lines.append(f"`{t.name}`: " + _assert_well_posed(t.inputs["x"], min(t.inputs["x"].shape)))
        assert np.all(results["numpy-f64"][t.name]["orthogonality"] < 1e-14), t.name
    SVD_CASE.checks[:] = lines


SVD_CASE = golden_case(OpCase(
    name="svd_well_separated",
    proves="the thin SVD in torch.svd layout with canonical signs, tall and wide, on matrices whose singular "
    "values are well separated — so vectors, not only invariants, agree across implementations",
    build=build_svd,
    seed=45,
    data=f"U·diag(s)·Vᵀ with random orthonormal U, V (QR of N(0, 1)), s = {SVD_S}, rounded to f32",
    verify=_verify_svd,
))

PHLORA_S = [5.0, 3.0, 2.0, 0.5, 0.4, 0.25, 0.15, 0.1, 0.05, 0.02]


def build_phlora() -> list[OpTensor]:
    rng = np.random.default_rng(33)
    x = designed_matrix(rng, 16, 10, PHLORA_S)
    return [OpTensor("rank3", "phlora", {"x": x}, {"rank": 3})]


def _verify_phlora(results: dict) -> None:
    st = results["numpy-f64"]["rank3"]
    s = np.asarray(st["s"])
    expected = np.sqrt(np.sum(np.square(PHLORA_S[3:])) / np.sum(np.square(PHLORA_S)))
    assert abs(st["residual"][0] - expected) < 1e-6, (st["residual"], expected)
    assert np.allclose(s, PHLORA_S[:3], atol=1e-6), s
    x = build_phlora()[0].inputs["x"]
    PHLORA_CASE.checks[:] = [
        _assert_well_posed(x, 3, gap=0.5),
        f"residual {st['residual'][0]:.6f} equals √(Σ_{{i>3}} s_i² / Σ s_i²) = {expected:.6f} of the designed "
        "singular values (to 1e-6, the f32 rounding of x)",
    ]


PHLORA_CASE = golden_case(OpCase(
    name="phlora_rank3",
    proves="the rank-3 PHLoRA factorization a = sqrt(s)·Vh, b = U·sqrt(s), its reconstruction and relative "
    "residual, on a matrix with a clear gap after σ_3",
    build=build_phlora,
    seed=33,
    data=f"[16, 10] U·diag(s)·Vᵀ with random orthonormal U, V, s = {PHLORA_S}, rounded to f32",
    verify=_verify_phlora,
))


def build_lowrank() -> list[OpTensor]:
    rng = np.random.default_rng(34)
    a = (rng.standard_normal((4, 10)) / np.sqrt(10)).astype(np.float32)
    b = rng.standard_normal((12, 4)).astype(np.float32)
    base = rng.standard_normal((12, 10)).astype(np.float32)
    return [
        OpTensor("with_base", "lowrank_reconstruct", {"a": a, "b": b, "base": base}, {"scale": 0.5}),
        OpTensor("no_base", "lowrank_reconstruct", {"a": a, "b": b}, {}),
    ]


golden_case(OpCase(
    name="lowrank_reconstruct_with_base",
    proves="delta = scale·(b @ a) and output = base + delta, with a base and scale 0.5, and without a base "
    "(output = delta, scale defaulting to 1)",
    build=build_lowrank,
    seed=34,
    data="a ~ N(0, 1/10) [4, 10], b ~ N(0, 1) [12, 4], base ~ N(0, 1) [12, 10], in f32",
))
