"""Layout operations: identity, transpose (permute), reshape, slice, concat, split.

They only move elements, so the f32 and f64 pipelines are the same numpy
indexing, returning arrays in the input's dtype (bf16/f16/fp8 bits pass
through unchanged). numpy is the independent definition here: its
transpose, reshape, basic slicing and concatenate are what the Rust side's
index arithmetic must reproduce bit for bit.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from . import OpCase, OpTensor, OracleOp, golden_case, register


def identity(inputs: dict, params: dict) -> dict:
    return {"output": np.array(inputs["x"], copy=True)}


def transpose(inputs: dict, params: dict) -> dict:
    x = inputs["x"]
    dims = params.get("dims")
    # numpy's default (None) reverses the axes, as the contract says.
    return {"output": np.ascontiguousarray(np.transpose(x, None if dims is None else tuple(dims)))}


def reshape(inputs: dict, params: dict) -> dict:
    return {"output": np.ascontiguousarray(inputs["x"]).reshape(tuple(params["shape"]))}


def slice_(inputs: dict, params: dict) -> dict:
    index = tuple(slice(*r) for r in params["ranges"])
    return {"output": np.ascontiguousarray(inputs["x"][index])}


def concat(inputs: dict, params: dict) -> dict:
    return {"output": np.concatenate([inputs["a"], inputs["b"]], axis=params.get("axis", 0))}


def split(inputs: dict, params: dict) -> dict:
    x = inputs["x"]
    axis = params.get("axis", 0) % x.ndim
    index = params["index"]
    before = (slice(None),) * axis
    return {
        "first": np.ascontiguousarray(x[before + (slice(None, index),)]),
        "second": np.ascontiguousarray(x[before + (slice(index, None),)]),
    }


for _name, _inputs, _stages, _fn in (
    ("identity", ("x",), ("output",), identity),
    ("transpose", ("x",), ("output",), transpose),
    ("reshape", ("x",), ("output",), reshape),
    ("slice", ("x",), ("output",), slice_),
    ("concat", ("a", "b"), ("output",), concat),
    ("split", ("x",), ("first", "second"), split),
):
    register(OracleOp(_name, _inputs, _stages, f32=_fn, f64=_fn))


# ---------------------------------------------------------------- golden cases


def _grid(shape, dtype=np.float32) -> np.ndarray:
    """Distinct, exactly representable values (0.25·index − 3): any misplaced
    element shows up as a wrong value, in every dtype used here."""
    n = int(np.prod(shape))
    return ((np.arange(n, dtype=np.float64) * 0.25 - 3.0).reshape(shape)).astype(dtype)


def _specials() -> np.ndarray:
    x = _grid((3, 5))
    x[0, 1] = np.nan
    x[1, 2] = np.inf
    x[1, 3] = -np.inf
    x[2, 0] = -0.0
    x[2, 4] = np.float32(1e-40)  # an f32 subnormal
    return x


def _verify_moves_only(expected: dict):
    """A verify hook: each tensor's stages equal an independent construction
    (plain Python loops over indices), in both pipelines."""

    def verify(results: dict) -> None:
        for impl, tensors in results.items():
            for name, build in expected.items():
                for stage, want in build().items():
                    got = tensors[name][stage]
                    assert got.dtype == want.dtype and got.shape == want.shape, (impl, name, stage)
                    assert got.tobytes() == want.tobytes(), (impl, name, stage)

    return verify


def _by_loops(x: np.ndarray, out_shape, source) -> np.ndarray:
    out = np.empty(out_shape, dtype=x.dtype)
    for ix in np.ndindex(*out_shape):
        out[ix] = x[source(ix)]
    return out


golden_case(OpCase(
    name="identity_dtypes",
    proves="identity passes every bit through in the input's dtype: F32 with NaN, ±inf, −0 and a "
           "subnormal, BF16 and F16",
    build=lambda: [
        OpTensor("copy.f32_specials", "identity", {"x": _specials()}, {}),
        OpTensor("copy.bf16", "identity", {"x": _grid((4, 4), ml_dtypes.bfloat16)}, {}),
        OpTensor("copy.f16", "identity", {"x": _grid((2, 3, 2), np.float16)}, {}),
    ],
    data="constructed: distinct values 0.25·i − 3 (exact in every dtype used) plus IEEE specials",
))


def _transpose_cases():
    a = _grid((5, 7))
    b = _grid((2, 3, 4))
    c = _grid((3, 4, 5), ml_dtypes.bfloat16)
    return [
        OpTensor("transpose.matrix", "transpose", {"x": a}, {}),
        OpTensor("transpose.permute_201", "transpose", {"x": b}, {"dims": [2, 0, 1]}),
        OpTensor("transpose.batched_bf16", "transpose", {"x": c}, {"dims": [0, -1, 1]}),
    ]


golden_case(OpCase(
    name="transpose_permute",
    proves="transpose reverses the axes by default and follows `dims` as a permute (output axis i is input "
           "axis dims[i], negative axes allowed): a matrix, a 3-D permutation that is not its own inverse, and "
           "a batched BF16 transpose",
    build=_transpose_cases,
    data="constructed: distinct values 0.25·i − 3",
    verify=_verify_moves_only({
        "transpose.matrix": lambda: {"output": _by_loops(_grid((5, 7)), (7, 5), lambda ix: (ix[1], ix[0]))},
        "transpose.permute_201": lambda: {
            "output": _by_loops(_grid((2, 3, 4)), (4, 2, 3), lambda ix: (ix[1], ix[2], ix[0]))
        },
    }),
))

golden_case(OpCase(
    name="reshape_heads",
    proves="reshape keeps row-major order under a new shape, with one inferred -1 entry (splitting rows "
           "into heads) and a flattening to 1-D",
    build=lambda: [
        OpTensor("reshape.heads", "reshape", {"x": _grid((6, 8))}, {"shape": [6, -1, 4]}),
        OpTensor("reshape.flatten_bf16", "reshape", {"x": _grid((3, 5), ml_dtypes.bfloat16)}, {"shape": [-1]}),
    ],
    data="constructed: distinct values 0.25·i − 3",
))

golden_case(OpCase(
    name="slice_numpy",
    proves="slice follows numpy: negative start/stop count from the end, null takes the default, steps > 1, "
           "out-of-range bounds clamp, unlisted trailing axes are kept whole, and an empty range gives a "
           "zero-size stage",
    build=lambda: [
        OpTensor("slice.steps", "slice", {"x": _grid((9, 10))}, {"ranges": [[1, -1, 2], [None, None, 3]]}),
        OpTensor("slice.leading_only", "slice", {"x": _grid((4, 5, 6))}, {"ranges": [[-3, 100, None]]}),
        OpTensor("slice.empty", "slice", {"x": _grid((4, 5))}, {"ranges": [[3, 1, 1], [None, None, None]]}),
    ],
    data="constructed: distinct values 0.25·i − 3",
    verify=_verify_moves_only({
        "slice.steps": lambda: {
            "output": _by_loops(_grid((9, 10)), (4, 4), lambda ix: (1 + 2 * ix[0], 3 * ix[1]))
        },
    }),
))

golden_case(OpCase(
    name="concat_axes",
    proves="concat joins a then b along the axis: rows (axis 0) and, in BF16, a middle axis given as -2",
    build=lambda: [
        OpTensor("concat.rows", "concat", {"a": _grid((3, 4)), "b": _grid((2, 4)) + np.float32(100)},
                 {"axis": 0}),
        OpTensor("concat.middle_bf16", "concat",
                 {"a": _grid((2, 3, 2), ml_dtypes.bfloat16),
                  "b": (_grid((2, 1, 2)) + np.float32(50)).astype(ml_dtypes.bfloat16)},
                 {"axis": -2}),
    ],
    data="constructed: distinct values 0.25·i − 3 in a, shifted by +100 / +50 in b",
))

golden_case(OpCase(
    name="split_point",
    proves="split cuts at `index` along the axis into first = x[..index] and second = x[index..]: columns, "
           "and rows at index 0 (an empty first part)",
    build=lambda: [
        OpTensor("split.columns", "split", {"x": _grid((4, 10))}, {"axis": 1, "index": 3}),
        OpTensor("split.rows_at_0", "split", {"x": _grid((5, 2))}, {"index": 0}),
    ],
    data="constructed: distinct values 0.25·i − 3",
))
