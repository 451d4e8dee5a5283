"""The oracle's merges against hand-computed task arithmetic and TIES: the
trim's tie-breaking, the vote, the disjoint mean, the exact kept count, and
where the f32 and f64 pipelines may part (a ranking below f32 precision, a
vote that cancels below it)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from ops_golden import replay_case

from parity_oracle import ops
from parity_oracle.ops.merge import kept_count

ops.load_all()


def merge_inputs(base, *tasks):
    return {"base": np.array(base, np.float32), "tasks": np.array(tasks, np.float32)}


def both(name, inputs, params):
    return [ops.run(name, impl, inputs, params) for impl in ("numpy-f32", "numpy-f64")]


def test_task_arithmetic_adds_the_weighted_task_vectors():
    for out in both("task_arithmetic", merge_inputs([1.0, 2.0], [1.5, 2.0], [0.0, 4.0]), {"weights": [2.0, 0.5]}):
        assert out["task_vectors"].tolist() == [[0.5, 0.0], [-1.0, 2.0]]
        assert out["merged_delta"].tolist() == [0.5, 1.0]
        assert out["output"].tolist() == [1.5, 3.0]


def test_the_pipelines_keep_their_dtypes():
    f32, f64 = both("task_arithmetic", merge_inputs([1.0], [2.0]), {"weights": [1.0]})
    assert all(v.dtype == np.float32 for v in f32.values())
    assert all(v.dtype == np.float64 for v in f64.values())


def test_ties_trims_elects_and_averages_the_agreeing_values():
    inputs = merge_inputs([0.0] * 4, [3.0, -1.0, 0.5, 2.0], [-2.0, 1.0, 4.0, -1.0], [1.0, -5.0, -0.5, 0.25])
    for out in both("ties", inputs, {"density": 0.5, "lambda": 0.5}):
        assert out["trimmed"].tolist() == [[3, 0, 0, 2], [-2, 0, 4, 0], [1, -5, 0, 0]]
        assert out["elected_sign"].tolist() == [1, -1, 1, 1]
        assert out["merged_delta"].tolist() == [2, -5, 4, 2]
        assert out["output"].tolist() == [1, -2.5, 2, 1]


def test_equal_magnitudes_are_kept_in_index_order_and_nan_ranks_first():
    for out in both("ties", merge_inputs([0.0] * 4, [1.0, -1.0, 1.0, 0.5]), {"density": 0.5}):
        assert out["trimmed"].tolist() == [[1, -1, 0, 0]]
    for out in both("ties", merge_inputs([0.0] * 3, [np.nan, 5.0, 1.0]), {"density": 0.3}):
        assert np.isnan(out["trimmed"][0, 0]) and out["trimmed"][0, 1:].tolist() == [0, 0]
        assert np.isnan(out["elected_sign"][0]) and np.isnan(out["output"][0])


def test_a_cancelling_vote_elects_zero_and_merges_nothing():
    for out in both("ties", merge_inputs([0.25], [1.25], [-0.75]), {"density": 1.0, "lambda": 3.0}):
        assert out["elected_sign"].tolist() == [0] and out["merged_delta"].tolist() == [0]
        assert out["output"].tolist() == [0.25]


@pytest.mark.parametrize("density, n, k", [(0.3, 10, 3), (0.7, 10, 7), (0.25, 10, 3), (1e-12, 10, 1), (1.0, 7, 7),
                                           (0.5, 0, 0)])
def test_kept_count_is_the_exact_ceiling(density, n, k):
    assert kept_count(density, n) == k == min(n, math.ceil(Fraction(density) * n))


def test_kept_count_refuses_densities_outside_zero_to_one():
    for d in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="density"):
            kept_count(d, 10)


def test_the_pipelines_rank_in_their_own_precision():
    # τ₁ = 1 + 2⁻³⁰ exactly, 1 in f32 (= τ₀): f32 keeps index 0 (tie), f64 index 1.
    f32, f64 = both("ties", merge_inputs([0.0, -(2.0**-30)], [1.0, 1.0]), {"density": 0.5})
    assert f32["trimmed"].tolist() == [[1, 0]]
    assert f64["trimmed"].tolist() == [[0, 1 + 2.0**-30]]


def test_a_vote_that_cancels_below_f32_precision_flips_in_f32():
    f32, f64 = both("ties", merge_inputs([0.0], [1.0], [2.0**-25], [-1.0]), {"density": 1.0})
    assert f32["elected_sign"].tolist() == [0] and f64["elected_sign"].tolist() == [1]
    assert f64["merged_delta"].tolist() == [0.5 + 2.0**-26]


@pytest.mark.parametrize("case", ["task_arithmetic_three_tasks", "ties_three_tasks"])
def test_golden_merge_cases_replay_bit_for_bit(case):
    replay_case(case)
