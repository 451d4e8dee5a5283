//! `concat` — a and b joined along one axis (torch.cat([a, b], dim=axis)).
//! Both inputs must share dtype and rank, and every size but the axis's.

use super::kernels::layout::{axis_param, like, strides, unravel, weight, MOVES_ONLY};
use super::{Accepts, Call, Input, Inputs, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::tensor::numel;
use serde_json::json;

pub static CONCAT: Operation = Operation {
    name: "concat",
    summary: "a and b joined along one axis (torch.cat([a, b], dim=axis))",
    inputs: &[
        Input { name: "a", doc: "any dtype, rank ≥ 1", optional: false, accepts: Accepts::Any },
        Input { name: "b", doc: "a's dtype; a's shape except along axis", optional: false, accepts: Accepts::Any },
    ],
    params: &[Param { name: "axis", kind: ParamKind::Integer, doc: "the axis to join along (default 0; negative counts from the end)", required: false }],
    stages: &[Stage { name: "output", dtype: StageDtype::FromInput("a"), tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference,
    fast,
    sample,
    dims: "[m, n] (each input)",
    bench_dims: BENCH_WEIGHTS,
};

struct Checked {
    axis: usize,
    out_shape: Vec<usize>,
}

fn checked(call: &Call) -> Result<Checked> {
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
    Ok(Checked { axis, out_shape })
}

/// Every output element found in a or b through its multi-index.
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let (a, b) = (call.input("a")?, call.input("b")?);
    let es = a.dtype.size();
    let a_len = a.shape[p.axis];
    let (a_strides, b_strides) = (strides(&a.shape), strides(&b.shape));
    let mut bytes = Vec::with_capacity(numel(&p.out_shape) * es);
    for flat in 0..numel(&p.out_shape) {
        let mut ix = unravel(flat, &p.out_shape);
        let (src, src_strides) = if ix[p.axis] < a_len {
            (a, &a_strides)
        } else {
            ix[p.axis] -= a_len;
            (b, &b_strides)
        };
        let at: usize = ix.iter().zip(src_strides).map(|(i, s)| i * s).sum();
        bytes.extend_from_slice(&src.data[at * es..(at + 1) * es]);
    }
    let mut out = Stages::default();
    out.push("output", like(a, p.out_shape, bytes));
    Ok(out)
}

/// Alternate contiguous blocks of a and b.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let (a, b) = (call.input("a")?, call.input("b")?);
    // Below the axis both inputs are contiguous blocks: one block of a, then
    // one of b, for every index of the axes before it.
    let es = a.dtype.size();
    let outer: usize = p.out_shape[..p.axis].iter().product();
    let inner: usize = p.out_shape[p.axis + 1..].iter().product();
    let (block_a, block_b) = (a.shape[p.axis] * inner * es, b.shape[p.axis] * inner * es);
    let mut bytes = Vec::with_capacity(numel(&p.out_shape) * es);
    for o in 0..outer {
        bytes.extend_from_slice(&a.data[o * block_a..(o + 1) * block_a]);
        bytes.extend_from_slice(&b.data[o * block_b..(o + 1) * block_b]);
    }
    let mut out = Stages::default();
    out.push("output", like(a, p.out_shape, bytes));
    Ok(out)
}

/// Random inputs: dims = [m, n] for each of two weights, joined along columns.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let mut inputs = Inputs::new();
    inputs.insert("a".into(), weight(seed, dims[0], dims[1]));
    inputs.insert("b".into(), weight(seed ^ 0x5EED, dims[0], dims[1]));
    // Joining along columns is the strided case (axis 0 is one memcpy per input).
    Sample { inputs, params: json!({ "axis": 1 }).as_object().cloned().unwrap_or_default() }
}
