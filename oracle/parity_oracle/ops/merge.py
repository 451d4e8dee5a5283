"""Model merging: task arithmetic and TIES.

τᵢ = tasksᵢ − base. Task arithmetic adds Σ λᵢ·τᵢ to the base. TIES (Yadav et
al., 2023) keeps each τᵢ's k = ⌈density·N⌉ largest magnitudes (ties to the
lower flat index), elects a sign per element (the sign of the sum of the
trimmed values; 0 where it is 0), averages the trimmed values that agree
with it (0 where none) and adds lambda times that to the base.

* ``f32`` is what a torch user computes on f32 weights: every operation an
  f32 op, sums over tasks in task order starting from 0 (``sum(...)`` or
  ``.sum(dim=0)`` over the stacked tensor), λ rounded to f32, ranking on the
  f32 |τ|.
* ``f64`` is the same in float64, ranking the exact f64 |τ|.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np

from . import OpCase, OpTensor, OracleOp, golden_case, register


def kept_count(density: float, n: int) -> int:
    """k = ⌈d·N⌉ for the exact value of the float d (0.3 of 10 keeps 3, not the
    4 that ceil(0.3 * 10) gives in floating point)."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density {density} must be in (0, 1]")
    return min(n, math.ceil(Fraction(density) * n))


def _task_vectors(inputs: dict, dtype) -> tuple[np.ndarray, np.ndarray]:
    base = np.asarray(inputs["base"]).astype(dtype)
    tasks = np.asarray(inputs["tasks"]).astype(dtype)
    if tasks.shape[1:] != base.shape:
        raise ValueError(f"tasks {tasks.shape} must be [T, *{base.shape}]")
    return base, (tasks - base).astype(dtype)


def _sum_over_tasks(x: np.ndarray, dtype) -> np.ndarray:
    """Σ over axis 0 in task order from 0, rounding after each addition."""
    acc = np.zeros(x.shape[1:], dtype)
    for t in range(x.shape[0]):
        acc = (acc + x[t]).astype(dtype)
    return acc


def _sign(x: np.ndarray) -> np.ndarray:
    """+1, −1, 0 (for ±0) or NaN, in x's dtype."""
    one = np.ones_like(x)
    return np.where(x > 0, one, np.where(x < 0, -one, np.where(x == 0, 0 * one, np.nan * one)))


# ---------------------------------------------------------------- task arithmetic


def _task_arithmetic(inputs: dict, params: dict, dtype) -> dict:
    base, tv = _task_vectors(inputs, dtype)
    weights = params["weights"]
    if len(weights) != tv.shape[0]:
        raise ValueError(f"{len(weights)} weights for {tv.shape[0]} tasks")
    merged = np.zeros(base.shape, dtype)
    for lam, tau in zip(weights, tv):
        merged = (merged + dtype(lam) * tau).astype(dtype)
    return {"task_vectors": tv, "merged_delta": merged, "output": (base + merged).astype(dtype)}


# ---------------------------------------------------------------- ties


def _ranking(tau: np.ndarray) -> np.ndarray:
    """Flat indices by |τ| descending, NaN first, equal magnitudes in index order."""
    flat = tau.reshape(-1)
    nan = np.isnan(flat)
    magnitude = np.where(nan, 0, np.abs(flat))
    # lexsort: the last key is the primary one; it is a stable sort.
    return np.lexsort((-magnitude, ~nan))


def _ties(inputs: dict, params: dict, dtype) -> dict:
    base, tv = _task_vectors(inputs, dtype)
    t_count = tv.shape[0]
    n = base.size
    k = kept_count(float(params["density"]), n)
    lam = dtype(params.get("lambda", 1.0))

    trimmed = np.zeros_like(tv)
    for t in range(t_count):
        keep = _ranking(tv[t])[:k]
        trimmed[t].reshape(-1)[keep] = tv[t].reshape(-1)[keep]

    elected = _sign(_sum_over_tasks(trimmed, dtype)).astype(dtype)
    agree = (trimmed != 0) & (_sign(trimmed) == elected)
    total = _sum_over_tasks(np.where(agree, trimmed, dtype(0)), dtype)
    count = _sum_over_tasks(agree.astype(dtype), dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.where(count > 0, count, 1), 0).astype(dtype)
    merged = np.where(np.isnan(elected), np.nan, mean).astype(dtype)
    output = (base + (lam * merged).astype(dtype)).astype(dtype)
    return {"task_vectors": tv, "trimmed": trimmed, "elected_sign": elected, "merged_delta": merged,
            "output": output}


register(OracleOp("task_arithmetic", ("base", "tasks"), ("task_vectors", "merged_delta", "output"),
                  f32=lambda i, p: _task_arithmetic(i, p, np.float32),
                  f64=lambda i, p: _task_arithmetic(i, p, np.float64)))
register(OracleOp("ties", ("base", "tasks"), ("task_vectors", "trimmed", "elected_sign", "merged_delta", "output"),
                  f32=lambda i, p: _ties(i, p, np.float32),
                  f64=lambda i, p: _ties(i, p, np.float64)))


# ---------------------------------------------------------------- golden cases
def _record(case: OpCase, line: str) -> None:
    """Note a fact the generator verified in the case's NOTE.md. Idempotent: a
    case object lives as long as the process and may be generated twice."""
    if line not in case.checks:
        case.checks.append(line)



def _fine_tunes(rng: np.random.Generator, shape, t: int, step: float | None = None):
    """A base weight N(0, 0.05²) and t fine-tunes that moved it by N(0, 0.01²).
    With `step`, both are rounded to multiples of it: then every τ is exact in
    f32 and many magnitudes are exactly equal (the tie-breaking rule decides)."""
    base = rng.standard_normal(shape) * 0.05
    tasks = base + rng.standard_normal((t, *shape)) * 0.01
    if step is not None:
        base, tasks = np.round(base / step) * step, np.round(tasks / step) * step
    return base.astype(np.float32), tasks.astype(np.float32)


def _task_arithmetic_case():
    rng = np.random.default_rng(21)
    base, tasks = _fine_tunes(rng, (12, 16), 3)
    base_b, tasks_b = _fine_tunes(rng, (8, 8), 2)
    return [
        OpTensor("merge.q_proj", "task_arithmetic", {"base": base, "tasks": tasks},
                 {"weights": [0.5, 0.3, -0.2]}),
        OpTensor("merge.bf16_sum", "task_arithmetic",
                 {"base": base_b.astype(ml_dtypes.bfloat16), "tasks": tasks_b.astype(ml_dtypes.bfloat16)},
                 {"weights": [1.0, 1.0]}),
    ]


golden_case(OpCase(
    name="task_arithmetic_three_tasks",
    proves="task arithmetic: task vectors tasks − base, the λ-weighted sum (with a negative λ) and base + it, "
           "on F32 and on BF16 weights",
    build=_task_arithmetic_case,
    seed=21,
    data="random base N(0, 0.05²) and fine-tunes base + N(0, 0.01²) (f64 → f32 once; the second tensor then "
         "→ bf16)",
))


def _ties_case():
    rng = np.random.default_rng(22)
    base, tasks = _fine_tunes(rng, (12, 16), 3, step=2.0**-10)
    base_c, tasks_c = _fine_tunes(rng, (10, 10), 2)
    return [
        OpTensor("ties.grid", "ties", {"base": base, "tasks": tasks}, {"density": 0.3, "lambda": 1.0}),
        OpTensor("ties.continuous", "ties", {"base": base_c, "tasks": tasks_c}, {"density": 0.5, "lambda": 0.8}),
    ]


def _verify_ties(results: dict) -> None:
    f32, f64 = results["numpy-f32"]["ties.grid"], results["numpy-f64"]["ties.grid"]
    n = f32["elected_sign"].size
    k = kept_count(0.3, n)
    assert k == math.ceil(0.3 * n - 1e-9), (k, n)
    boundary_ties = 0
    for t in range(f32["trimmed"].shape[0]):
        kept = f32["trimmed"][t] != 0
        assert int(kept.sum()) <= k
        mags = np.abs(f32["task_vectors"][t])
        kth = np.sort(mags.reshape(-1))[::-1][k - 1]
        # The k-th magnitude occurs both kept and dropped: the index rule decided.
        boundary_ties += int(np.any((mags == kth) & kept) and np.any((mags == kth) & ~kept))
    assert boundary_ties >= 2, boundary_ties
    some_kept = np.any(f32["trimmed"] != 0, axis=0)
    cancelled = int(np.sum((f32["elected_sign"] == 0) & some_kept))
    mixed = int(np.sum(np.any(f32["trimmed"] > 0, axis=0) & np.any(f32["trimmed"] < 0, axis=0)))
    assert cancelled >= 1 and mixed >= 5, (cancelled, mixed)
    # τ is exact in f32 on the grid, so both pipelines trim identically.
    assert np.array_equal(f32["trimmed"], f64["trimmed"].astype(np.float32))
    assert np.array_equal(f32["elected_sign"], f64["elected_sign"].astype(np.float32))
    cont32, cont64 = results["numpy-f32"]["ties.continuous"], results["numpy-f64"]["ties.continuous"]
    assert np.array_equal(cont32["elected_sign"], cont64["elected_sign"].astype(np.float32))
    _record(_TIES, (
        f"ties.grid: k = {k} of {n} per task; in {boundary_ties} of 3 tasks the k-th largest |τ| is shared by "
        f"kept and dropped entries (the lower-index rule decides); {mixed} elements have kept values of both "
        f"signs (the disjoint mean drops the minority), {cancelled} of them cancel to exactly 0 (elected sign "
        f"0); trimmed and elected_sign agree bit for bit between the f32 and f64 pipelines in both tensors"))


_TIES = golden_case(OpCase(
    name="ties_three_tasks",
    proves="TIES: trim to ⌈density·N⌉ largest |τ| per task with ties broken by the lower index, elect the "
           "sign of the trimmed sum (0 where it cancels exactly), average the agreeing values, add lambda times "
           "that to the base",
    build=_ties_case,
    seed=22,
    data="ties.grid: base N(0, 0.05²) and fine-tunes base + N(0, 0.01²), all rounded to multiples of 2⁻¹⁰ "
         "(exact τ, many equal magnitudes); ties.continuous: the same without rounding",
    verify=_verify_ties,
))
