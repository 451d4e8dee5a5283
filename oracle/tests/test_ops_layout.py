"""The oracle's layout operations against hand-computed layouts, and the
committed golden cases against a fresh run of the oracle (bit for bit: these
operations only move elements, so nothing depends on the machine)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from ops_golden import replay_case

from parity_oracle import ops
from parity_oracle.ops import layout

ops.load_all()

LAYOUT_CASES = ["identity_dtypes", "transpose_permute", "reshape_heads", "slice_numpy", "concat_axes", "split_point"]


def iota(*shape, dtype=np.float32):
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(dtype)


def both(name, inputs, params):
    """Both pipelines, which must agree bit for bit for a layout operation."""
    f32 = ops.run(name, "numpy-f32", inputs, params)
    f64 = ops.run(name, "numpy-f64", inputs, params)
    for stage in f32:
        assert f32[stage].dtype == f64[stage].dtype and f32[stage].tobytes() == f64[stage].tobytes()
    return f32


def test_identity_keeps_every_bit_and_the_dtype():
    x = np.array([np.nan, -0.0, 1e-40, np.inf], np.float32)
    x.view(np.uint32)[0] = 0x7FA01234  # a NaN payload
    out = both("identity", {"x": x}, {})["output"]
    assert out.dtype == np.float32 and out.tobytes() == x.tobytes()
    b = iota(2, 2, dtype=ml_dtypes.bfloat16)
    assert both("identity", {"x": b}, {})["output"].dtype == ml_dtypes.bfloat16


def test_transpose_reverses_axes_by_default_and_dims_makes_it_a_permute():
    assert both("transpose", {"x": iota(2, 3)}, {})["output"].tolist() == [[0, 3], [1, 4], [2, 5]]
    out = both("transpose", {"x": iota(2, 3, 4)}, {"dims": [2, 0, 1]})["output"]
    assert out.shape == (4, 2, 3)
    assert out[3, 1, 2] == 12 * 1 + 4 * 2 + 3  # out[k][i][j] = x[i][j][k]
    assert out.flags["C_CONTIGUOUS"]
    assert both("transpose", {"x": iota(2, 2, 3)}, {"dims": [0, -1, 1]})["output"].shape == (2, 3, 2)


def test_reshape_infers_minus_one_in_row_major_order():
    out = both("reshape", {"x": iota(2, 6)}, {"shape": [3, -1, 2]})["output"]
    assert out.shape == (3, 2, 2) and out.reshape(-1).tolist() == list(range(12))


@pytest.mark.parametrize("ranges, want", [
    ([[1, -1, 2]], [1, 3, 5, 7]),
    ([[-3, None, None]], [7, 8, 9]),
    ([[None, None, 3]], [0, 3, 6, 9]),
    ([[5, 2, 1]], []),
    ([[-100, 100, 4]], [0, 4, 8]),
])
def test_slice_has_numpy_semantics(ranges, want):
    assert both("slice", {"x": iota(10)}, {"ranges": ranges})["output"].tolist() == want


def test_slice_keeps_unlisted_axes_whole():
    out = both("slice", {"x": iota(4, 3)}, {"ranges": [[1, 3, None]]})["output"]
    assert out.tolist() == [[3, 4, 5], [6, 7, 8]]


def test_concat_puts_a_then_b_along_the_axis():
    a, b = iota(2, 2), np.array([[10], [11]], np.float32)
    assert both("concat", {"a": a, "b": b}, {"axis": -1})["output"].tolist() == [[0, 1, 10], [2, 3, 11]]
    assert both("concat", {"a": a, "b": a}, {})["output"].shape == (4, 2)


def test_split_cuts_at_index():
    out = both("split", {"x": iota(2, 3)}, {"axis": 1, "index": 1})
    assert out["first"].tolist() == [[0], [3]] and out["second"].tolist() == [[1, 2], [4, 5]]
    out = both("split", {"x": iota(3, 2)}, {"index": 0})
    assert out["first"].shape == (0, 2) and out["second"].shape == (3, 2)


def test_the_loop_check_used_by_the_generator_agrees_with_numpy():
    x = iota(2, 3, 4)
    loops = layout._by_loops(x, (4, 2, 3), lambda ix: (ix[1], ix[2], ix[0]))
    assert np.array_equal(loops, np.transpose(x, (2, 0, 1)))


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_golden_layout_cases_replay_bit_for_bit(case):
    replay_case(case)

