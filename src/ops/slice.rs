//! `slice` — x[start:stop:step, …] with numpy semantics over the leading
//! axes: negative indices count from the end, out-of-range bounds clamp, a
//! null bound is the default. A bound off by one is the bug this catches.

use super::kernels::layout::{gather, like, one, strides, weight, MOVES_ONLY, SAME_AS_X};
use super::kernels::strided::strided_copy;
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use serde_json::{json, Value};

pub static SLICE: Operation = Operation {
    name: "slice",
    summary: "x[start:stop:step, …] with numpy semantics over the leading axes",
    inputs: &[Input { name: "x", doc: "any dtype, rank ≥ 1", optional: false, accepts: Accepts::Any }],
    params: &[Param {
        name: "ranges",
        kind: ParamKind::Ranges,
        doc: "one [start, stop, step] per leading axis (numpy semantics: negative indices count from the end, \
              out-of-range bounds clamp, null = default, step > 0); axes not listed are kept whole",
        required: true,
    }],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// Per axis, the first input index, the step and the output length.
struct Checked {
    start: Vec<usize>,
    step: Vec<usize>,
    out_shape: Vec<usize>,
}

fn checked(call: &Call) -> Result<Checked> {
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
    let mut c = Checked { start: vec![0; rank], step: vec![1; rank], out_shape: x.shape.clone() };
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
        c.start[d] = start as usize;
        c.step[d] = step as usize;
        c.out_shape[d] = count as usize;
    }
    Ok(c)
}

/// Output index i on axis d is input index start[d] + i·step[d].
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    let output = gather(x, p.out_shape.clone(), |ix| ix.iter().enumerate().map(|(d, &i)| p.start[d] + i * p.step[d]).collect());
    let mut out = Stages::default();
    out.push("output", output);
    Ok(out)
}

/// The sliced view (an offset and a step per axis) copied out in runs.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    let in_strides = strides(&x.shape);
    let offset = p.start.iter().zip(&in_strides).map(|(s, st)| s * st).sum();
    let steps: Vec<usize> = p.step.iter().zip(&in_strides).map(|(s, st)| s * st).collect();
    let bytes = strided_copy(&x.data, x.dtype.size(), &p.out_shape, &steps, offset);
    let mut out = Stages::default();
    out.push("output", like(x, p.out_shape, bytes));
    Ok(out)
}

/// Random inputs: dims = [m, n], a weight; every other row of the lower
/// half, all columns from the second on.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    one("x", weight(seed, dims[0], dims[1]), json!({ "ranges": [[dims[0] / 2, null, 2], [1, null, null]] }))
}
