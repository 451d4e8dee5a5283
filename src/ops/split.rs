//! `split` — x cut in two along one axis at `index`: x[..index] and
//! x[index..], two stages.

use super::kernels::layout::{axis_param, gather, like, one, weight, MOVES_ONLY, SAME_AS_X};
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use serde_json::json;

pub static SPLIT: Operation = Operation {
    name: "split",
    summary: "x cut in two along one axis at `index`: x[..index] and x[index..]",
    inputs: &[Input { name: "x", doc: "any dtype, rank ≥ 1", optional: false, accepts: Accepts::Any }],
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
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

struct Checked {
    axis: usize,
    index: usize,
    first_shape: Vec<usize>,
    second_shape: Vec<usize>,
}

fn checked(call: &Call) -> Result<Checked> {
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
    Ok(Checked { axis, index, first_shape, second_shape })
}

/// Each part gathered element by element; the second's index shifted by `index`.
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    let first = gather(x, p.first_shape.clone(), |ix| ix.to_vec());
    let second = gather(x, p.second_shape.clone(), |ix| {
        let mut src = ix.to_vec();
        src[p.axis] += p.index;
        src
    });
    let mut out = Stages::default();
    out.push("first", first);
    out.push("second", second);
    Ok(out)
}

/// Each contiguous block of x cut in two at the split point.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    let es = x.dtype.size();
    let outer: usize = x.shape[..p.axis].iter().product();
    let inner: usize = x.shape[p.axis + 1..].iter().product();
    let block = x.shape[p.axis] * inner * es;
    let cut = p.index * inner * es;
    let mut first = Vec::with_capacity(outer * cut);
    let mut second = Vec::with_capacity(outer * (block - cut));
    for o in 0..outer {
        let row = &x.data[o * block..(o + 1) * block];
        first.extend_from_slice(&row[..cut]);
        second.extend_from_slice(&row[cut..]);
    }
    let mut out = Stages::default();
    out.push("first", like(x, p.first_shape, first));
    out.push("second", like(x, p.second_shape, second));
    Ok(out)
}

/// Random inputs: dims = [m, n], a weight cut at a third of its columns.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    one("x", weight(seed, dims[0], dims[1]), json!({ "axis": -1, "index": dims[1] / 3 }))
}
