//! Layout operations: `identity`, `transpose` (permute), `reshape`, `slice`,
//! `concat` and `split`.
//!
//! They only move elements, so every stage keeps the input's dtype and must
//! be bit-identical between any two correct implementations: there is no
//! rounding to forgive. What a port gets wrong here is *which* element goes
//! where — a permutation read as its inverse, a numpy slice bound off by one,
//! a concatenation along the wrong axis — and a bit-exact gate says where.
//!
//! Both implementations share the argument checks in this file ([`plan`]s),
//! so they can only differ in how they move bytes:
//! * [`reference`] maps every output element to its input element through
//!   explicit multi-indices, one element at a time;
//! * [`fast`] copies contiguous runs and transposes in cache-sized tiles.

mod fast;
mod reference;

use super::{Call, Input, Inputs, Operation, Param, ParamKind, Sample, Stage, StageDtype};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::ops::BENCH_WEIGHTS;
use crate::numeric::rng::SplitMix64;
use crate::format::tensor::{numel, Tensor};
use serde_json::{json, Value};

const SAME_AS_X: StageDtype = StageDtype::FromInput("x");
const MOVES_ONLY: &str = "elements are only moved, never computed: bit-identical or a real layout bug";

pub static IDENTITY: Operation = Operation {
    name: "identity",
    summary: "copy: the output is the input, bit for bit (any dtype)",
    inputs: &[Input { name: "x", doc: "any dtype, any shape", optional: false }],
    params: &[],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference: reference::identity,
    fast: fast::identity,
    sample: sample_matrix,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static TRANSPOSE: Operation = Operation {
    name: "transpose",
    summary: "x.permute(dims) made contiguous; `dims` makes it a general permute (default: reverse the axes)",
    inputs: &[Input { name: "x", doc: "any dtype, any shape", optional: false }],
    params: &[Param {
        name: "dims",
 kind: ParamKind::Integers,
        doc: "a permutation of the axes (negative axes count from the end); default: reversed, i.e. a matrix transpose",
        required: false,
    }],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference: reference::transpose,
    fast: fast::transpose,
    sample: sample_matrix,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static RESHAPE: Operation = Operation {
    name: "reshape",
    summary: "the same elements in row-major order under a new shape",
    inputs: &[Input { name: "x", doc: "any dtype, any shape", optional: false }],
    params: &[Param {
        name: "shape",
 kind: ParamKind::Integers,
        doc: "the new shape; one entry may be -1 (inferred); the element count must not change",
        required: true,
    }],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference: reference::reshape,
    fast: fast::reshape,
    sample: sample_reshape,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static SLICE: Operation = Operation {
    name: "slice",
    summary: "x[start:stop:step, …] with numpy semantics over the leading axes",
    inputs: &[Input { name: "x", doc: "any dtype, rank ≥ 1", optional: false }],
    params: &[Param {
        name: "ranges",
 kind: ParamKind::Ranges,
        doc: "one [start, stop, step] per leading axis (numpy semantics: negative indices count from the end, \
              out-of-range bounds clamp, null = default, step > 0); axes not listed are kept whole",
        required: true,
    }],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference: reference::slice,
    fast: fast::slice,
    sample: sample_slice,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static CONCAT: Operation = Operation {
    name: "concat",
    summary: "a and b joined along one axis (torch.cat([a, b], dim=axis))",
    inputs: &[
        Input { name: "a", doc: "any dtype, rank ≥ 1", optional: false },
        Input { name: "b", doc: "a's dtype; a's shape except along axis", optional: false },
    ],
    params: &[Param { name: "axis", kind: ParamKind::Integer, doc: "the axis to join along (default 0; negative counts from the end)", required: false }],
    stages: &[Stage { name: "output", dtype: StageDtype::FromInput("a"), tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference: reference::concat,
    fast: fast::concat,
    sample: sample_concat,
    dims: "[m, n] (each input)",
    bench_dims: BENCH_WEIGHTS,
};

pub static SPLIT: Operation = Operation {
    name: "split",
    summary: "x cut in two along one axis at `index`: x[..index] and x[index..]",
    inputs: &[Input { name: "x", doc: "any dtype, rank ≥ 1", optional: false }],
    params: &[
        Param { name: "axis", kind: ParamKind::Integer, doc: "the axis to cut (default 0; negative counts from the end)", required: false },
        Param {
            name: "index",
 kind: ParamKind::Integer,
            doc: "the split point, 0 ≤ index ≤ size of the axis (negative counts from the end)",
            required: true,
        },
    ],
    stages: &[
        Stage { name: "first", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY },
        Stage { name: "second", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY },
    ],
    reference: reference::split,
    fast: fast::split,
    sample: sample_split,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

// ---------------------------------------------------------------- plans
//
// The argument checks both implementations share: they turn parameters into
// plain numbers (or a one-line error naming what is wrong).

/// `transpose`: output axis `i` is input axis `perm[i]`.
pub(crate) struct TransposePlan {
    pub perm: Vec<usize>,
    pub out_shape: Vec<usize>,
}

pub(crate) fn transpose_plan(call: &Call) -> Result<TransposePlan> {
    let x = call.input("x")?;
    let rank = x.shape.len();
    let perm: Vec<usize> = match call.param("dims") {
        None | Some(Value::Null) => (0..rank).rev().collect(),
        Some(v) => {
            let dims = int_list(call, "dims", v)?;
            if dims.len() != rank {
                return Err(call.error(format!("dims {v} has {} entries but x has rank {rank} (shape {:?})", dims.len(), x.shape)));
            }
            let mut perm = Vec::with_capacity(rank);
            for d in dims {
                perm.push(axis(call, "dims", d, rank)?);
            }
            let mut seen = vec![false; rank];
            for &p in &perm {
                if std::mem::replace(&mut seen[p], true) {
                    return Err(call.error(format!("dims {v} is not a permutation: axis {p} appears twice")));
                }
            }
            perm
        }
    };
    let out_shape = perm.iter().map(|&p| x.shape[p]).collect();
    Ok(TransposePlan { perm, out_shape })
}

pub(crate) fn reshape_plan(call: &Call) -> Result<Vec<usize>> {
    let x = call.input("x")?;
    let v = call.param("shape").ok_or_else(|| call.error("parameter 'shape' missing"))?;
    let entries = int_list(call, "shape", v)?;
    let mut inferred = None;
    let mut known = 1usize;
    // The product of the non-zero sizes must fit in memory's index range,
    // or even a zero-size shape like [2⁴⁰, 2⁴⁰, 0] cannot be counted.
    let mut nonzero = Some(1usize);
    for (i, &e) in entries.iter().enumerate() {
        match e {
            -1 if inferred.is_some() => return Err(call.error(format!("shape {v}: only one entry may be -1"))),
            -1 => inferred = Some(i),
            e if e < 0 => return Err(call.error(format!("shape {v}: entry {e} is negative (only -1 is allowed)"))),
            e => {
                known = known.saturating_mul(e as usize);
                if e > 0 {
                    nonzero = nonzero.and_then(|p| p.checked_mul(e as usize));
                }
            }
        }
    }
    if nonzero.is_none() {
        return Err(call.error(format!("shape {v}: the sizes multiply beyond any tensor's element count")));
    }
    let total = x.numel();
    let mut shape: Vec<usize> = entries.iter().map(|&e| e.max(0) as usize).collect();
    if let Some(i) = inferred {
        // Like torch: with a zero among the given sizes the -1 could be anything.
        if known == 0 {
            return Err(call.error(format!("shape {v}: -1 is ambiguous when another entry is 0")));
        }
        if total % known != 0 {
            return Err(call.error(format!("shape {v} does not fit {total} elements (x has shape {:?})", x.shape)));
        }
        shape[i] = total / known;
    } else if known != total {
        return Err(call.error(format!("shape {v} holds {known} elements but x has {total} (shape {:?})", x.shape)));
    }
    Ok(shape)
}

/// `slice`: per axis, the first input index, the step and the output length.
pub(crate) struct SlicePlan {
    pub start: Vec<usize>,
    pub step: Vec<usize>,
    pub out_shape: Vec<usize>,
}

pub(crate) fn slice_plan(call: &Call) -> Result<SlicePlan> {
    let x = call.input("x")?;
    let rank = x.shape.len();
    let v = call.param("ranges").ok_or_else(|| call.error("parameter 'ranges' missing"))?;
    let ranges = v.as_array().ok_or_else(|| call.error(format!("ranges must be a list of [start, stop, step], got {v}")))?;
    if rank == 0 {
        return Err(call.error("x is a scalar (rank 0): there is no axis to slice"));
    }
    if ranges.len() > rank {
        return Err(call.error(format!("ranges has {} entries but x has rank {rank} (shape {:?})", ranges.len(), x.shape)));
    }
    let mut plan = SlicePlan { start: vec![0; rank], step: vec![1; rank], out_shape: x.shape.clone() };
    for (d, r) in ranges.iter().enumerate() {
        let parts = match r.as_array() {
            Some(p) if p.len() == 3 => p,
            _ => return Err(call.error(format!("ranges[{d}] must be [start, stop, step] (null for a default), got {r}"))),
        };
        let bound = |i: usize, what: &str| -> Result<Option<i64>> {
            match &parts[i] {
                Value::Null => Ok(None),
                p => p.as_i64().map(Some).ok_or_else(|| call.error(format!("ranges[{d}]: {what} must be an integer or null, got {p}"))),
            }
        };
        let (start, stop, step) = (bound(0, "start")?, bound(1, "stop")?, bound(2, "step")?);
        let step = step.unwrap_or(1);
        if step <= 0 {
            return Err(call.error(format!("ranges[{d}]: step {step} must be positive")));
        }
        // numpy's slice.indices for a positive step: negative bounds count
        // from the end, then both clamp into [0, len].
        let len = x.shape[d] as i64;
        let clamp = |b: i64| if b < 0 { (b + len).max(0) } else { b.min(len) };
        let start = start.map(clamp).unwrap_or(0);
        let stop = stop.map(clamp).unwrap_or(len);
        // ⌈(stop − start) / step⌉, written so a huge step cannot overflow.
        let count = if stop > start { (stop - start - 1) / step + 1 } else { 0 };
        plan.start[d] = start as usize;
        plan.step[d] = step as usize;
        plan.out_shape[d] = count as usize;
    }
    Ok(plan)
}

pub(crate) struct ConcatPlan {
    pub axis: usize,
    pub out_shape: Vec<usize>,
}

pub(crate) fn concat_plan(call: &Call) -> Result<ConcatPlan> {
    let (a, b) = (call.input("a")?, call.input("b")?);
    if a.dtype != b.dtype {
        return Err(call.error(format!("a is {} but b is {}: concat joins tensors of one dtype", a.dtype, b.dtype)));
    }
    let rank = a.shape.len();
    if rank == 0 || b.shape.len() != rank {
        return Err(call.error(format!("a {:?} and b {:?} must have the same rank ≥ 1", a.shape, b.shape)));
    }
    let axis = axis_param(call, "axis", rank)?;
    for d in 0..rank {
        if d != axis && a.shape[d] != b.shape[d] {
            return Err(call.error(format!(
                "a {:?} and b {:?} differ on axis {d}, but may only differ along axis {axis}",
                a.shape, b.shape
            )));
        }
    }
    let mut out_shape = a.shape.clone();
    out_shape[axis] += b.shape[axis];
    Ok(ConcatPlan { axis, out_shape })
}

pub(crate) struct SplitPlan {
    pub axis: usize,
    pub index: usize,
    pub first_shape: Vec<usize>,
    pub second_shape: Vec<usize>,
}

pub(crate) fn split_plan(call: &Call) -> Result<SplitPlan> {
    let x = call.input("x")?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(call.error("x is a scalar (rank 0): there is no axis to split"));
    }
    let axis = axis_param(call, "axis", rank)?;
    let len = x.shape[axis] as i64;
    let v = call.param("index").ok_or_else(|| call.error("parameter 'index' missing"))?;
    let index = v.as_i64().ok_or_else(|| call.error(format!("index must be an integer, got {v}")))?;
    let resolved = if index < 0 { index + len } else { index };
    if !(0..=len).contains(&resolved) {
        return Err(call.error(format!("index {index} is outside [0, {len}] for axis {axis} of shape {:?}", x.shape)));
    }
    let index = resolved as usize;
    let mut first_shape = x.shape.clone();
    first_shape[axis] = index;
    let mut second_shape = x.shape.clone();
    second_shape[axis] = x.shape[axis] - index;
    Ok(SplitPlan { axis, index, first_shape, second_shape })
}

// ---------------------------------------------------------------- helpers

/// Row-major strides in elements.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

fn int_list(call: &Call, name: &str, v: &Value) -> Result<Vec<i64>> {
    let items = v.as_array().ok_or_else(|| call.error(format!("{name} must be a list of integers, got {v}")))?;
    items
        .iter()
        .map(|i| i.as_i64().ok_or_else(|| call.error(format!("{name} must be a list of integers, got {v}"))))
        .collect()
}

/// An axis number, negative counting from the end (torch/numpy).
fn axis(call: &Call, name: &str, a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let resolved = if a < 0 { a + r } else { a };
    if !(0..r).contains(&resolved) {
        return Err(call.error(format!("{name}: axis {a} is out of range for rank {rank}")));
    }
    Ok(resolved as usize)
}

/// An optional axis parameter (default 0).
fn axis_param(call: &Call, name: &str, rank: usize) -> Result<usize> {
    match call.param(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => {
            let a = v.as_i64().ok_or_else(|| call.error(format!("{name} must be an integer, got {v}")))?;
            axis(call, name, a, rank)
        }
    }
}

/// A tensor of the same dtype holding `bytes`.
fn like(x: &Tensor, shape: Vec<usize>, bytes: Vec<u8>) -> Tensor {
    debug_assert_eq!(bytes.len(), numel(&shape) * x.dtype.size());
    Tensor { dtype: x.dtype, shape, data: bytes }
}

// ---------------------------------------------------------------- samples

/// A weight-like F32 matrix, N(0, 0.02²).
fn weight(seed: u64, m: usize, n: usize) -> Tensor {
    Tensor::from_f32(vec![m, n], &SplitMix64::new(seed).normal_vec_f32(m * n, 0.02))
}

fn one(name: &str, t: Tensor, params: Value) -> Sample {
    let mut inputs = Inputs::new();
    inputs.insert(name.into(), t);
    Sample { inputs, params: params.as_object().cloned().unwrap_or_default() }
}

fn sample_matrix(seed: u64, dims: &[usize]) -> Sample {
    one("x", weight(seed, dims[0], dims[1]), json!({}))
}

fn sample_reshape(seed: u64, dims: &[usize]) -> Sample {
    // Split rows into heads of 64 columns, as attention code does.
    let (m, n) = (dims[0], dims[1]);
    let heads = if n % 64 == 0 { json!([m, -1, 64]) } else { json!([-1]) };
    one("x", weight(seed, m, n), json!({ "shape": heads }))
}

fn sample_slice(seed: u64, dims: &[usize]) -> Sample {
    // Every other row of the lower half, all columns from the second on.
    one("x", weight(seed, dims[0], dims[1]), json!({ "ranges": [[dims[0] / 2, null, 2], [1, null, null]] }))
}

fn sample_concat(seed: u64, dims: &[usize]) -> Sample {
    let mut inputs = Inputs::new();
    inputs.insert("a".into(), weight(seed, dims[0], dims[1]));
    inputs.insert("b".into(), weight(seed ^ 0x5EED, dims[0], dims[1]));
    // Joining along columns is the strided case (axis 0 is one memcpy per input).
    Sample { inputs, params: json!({ "axis": 1 }).as_object().cloned().unwrap_or_default() }
}

fn sample_split(seed: u64, dims: &[usize]) -> Sample {
    one("x", weight(seed, dims[0], dims[1]), json!({ "axis": -1, "index": dims[1] / 3 }))
}
