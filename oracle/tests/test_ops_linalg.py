"""matmul, svd, phlora, lowrank_reconstruct: the oracle's pipelines against
hand-computed values and the SVD's invariants."""

from __future__ import annotations

import numpy as np
import pytest

from parity_oracle import ops
from parity_oracle.ops import linalg

ops.load_all()


def test_matmul_in_both_precisions():
    a = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    b = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    for impl, dtype in (("numpy-f32", np.float32), ("numpy-f64", np.float64)):
        out = ops.run("matmul", impl, {"a": a, "b": b}, {})["output"]
        assert out.dtype == dtype and out.tolist() == [[4, 5], [10, 11]]


def test_canonical_signs_make_the_largest_entry_of_each_v_column_positive():
    st = ops.run("svd", "numpy-f64", {"x": np.array([[3, -4]], np.float32)}, {})
    assert np.allclose(st["s"], [5]) and np.allclose(st["v"], [[-0.6], [0.8]]) and np.allclose(st["u"], [[-1]])


def test_svd_by_hand_and_its_invariants():
    x = np.array([[3, 0], [0, -2], [0, 0]], np.float32)
    for impl in ("numpy-f32", "numpy-f64"):
        st = ops.run("svd", impl, {"x": x}, {})
        assert np.allclose(st["s"], [3, 2]) and np.allclose(st["v"], np.eye(2))
        assert np.allclose(st["u"], [[1, 0], [0, -1], [0, 0]])
        assert np.allclose(st["reconstruction"], x) and np.all(st["orthogonality"] < 1e-6)


@pytest.mark.parametrize("shape", [(9, 5), (5, 9)])
def test_svd_of_random_matrices_is_descending_orthonormal_and_reconstructs(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    st = ops.run("svd", "numpy-f64", {"x": x}, {})
    assert np.all(np.diff(st["s"]) <= 0) and np.all(st["s"] >= 0)
    assert np.max(np.abs(st["reconstruction"] - x)) < 1e-13 and np.all(st["orthogonality"] < 1e-14)
    assert st["u"].shape == (shape[0], min(shape)) and st["v"].shape == (shape[1], min(shape))


def test_svd_of_an_empty_matrix_and_of_nan():
    st = ops.run("svd", "numpy-f32", {"x": np.zeros((0, 3), np.float32)}, {})
    assert [v.shape for v in st.values()] == [(0,), (0, 0), (3, 0), (0, 3), (2,)]
    with pytest.raises(ValueError, match="NaN/inf"):
        ops.run("svd", "numpy-f64", {"x": np.array([[np.nan, 1.0]], np.float32)}, {})


def test_phlora_by_hand():
    x = np.array([[3, 0], [0, -2], [0, 0]], np.float32)
    st = ops.run("phlora", "numpy-f64", {"x": x}, {"rank": 1})
    r3 = np.sqrt(3)
    assert np.allclose(st["a"], [[r3, 0]]) and np.allclose(st["b"], [[r3], [0], [0]])
    assert np.allclose(st["reconstruction"], [[3, 0], [0, 0], [0, 0]])
    assert np.isclose(st["residual"][0], 2 / np.sqrt(13))


def test_phlora_residual_is_the_tail_of_the_designed_singular_values():
    s = [4.0, 2.0, 1.0, 0.5, 0.25]
    x = linalg.designed_matrix(np.random.default_rng(2), 8, 6, s)
    st = ops.run("phlora", "numpy-f64", {"x": x}, {"rank": 2})
    assert np.isclose(st["residual"][0], np.sqrt(sum(v * v for v in s[2:]) / sum(v * v for v in s)), atol=1e-6)
    with pytest.raises(ValueError, match="rank"):
        ops.run("phlora", "numpy-f64", {"x": x}, {"rank": 7})


def test_lowrank_with_and_without_base():
    a, b = np.array([[1, 2]], np.float32), np.array([[3], [4]], np.float32)
    st = ops.run("lowrank_reconstruct", "numpy-f32", {"a": a, "b": b, "base": np.ones((2, 2), np.float32)},
                 {"scale": 0.5})
    assert st["delta"].tolist() == [[1.5, 3], [2, 4]] and st["output"].tolist() == [[2.5, 4], [3, 5]]
    st = ops.run("lowrank_reconstruct", "numpy-f64", {"a": a, "b": b}, {})
    assert st["output"].tolist() == st["delta"].tolist() == [[3, 6], [4, 8]]


def test_designed_matrices_have_the_singular_values_asked_for():
    s = [3.0, 2.0, 1.0]
    x = linalg.designed_matrix(np.random.default_rng(3), 7, 4, s)
    assert np.allclose(np.linalg.svd(x.astype(np.float64), compute_uv=False)[:3], s, atol=1e-6)
