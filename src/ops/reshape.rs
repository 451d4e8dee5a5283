//! `reshape` — the same elements in row-major order under a new shape (one
//! entry may be -1, inferred). The bytes never move; what can go wrong is the
//! shape arithmetic, which the plan checks as torch does.

use super::kernels::layout::{gather, int_list, like, one, strides, unravel, weight, MOVES_ONLY, SAME_AS_X};
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use serde_json::json;

pub static RESHAPE: Operation = Operation {
    name: "reshape",
    summary: "the same elements in row-major order under a new shape",
    inputs: &[Input { name: "x", doc: "any dtype, any shape", optional: false, accepts: Accepts::Any }],
    params: &[Param {
        name: "shape",
        kind: ParamKind::Integers,
        doc: "the new shape; one entry may be -1 (inferred); the element count must not change",
        required: true,
    }],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// The new shape, with the -1 resolved.
fn checked(call: &Call) -> Result<Vec<usize>> {
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

/// Every output element gathered from the input element with its flat index.
fn reference(call: &Call) -> Result<Stages> {
    let shape = checked(call)?;
    let x = call.input("x")?;
    // Row-major order is kept: output flat index i is input flat index i.
    let in_shape = x.shape.clone();
    let out_strides = strides(&shape);
    let output = gather(x, shape.clone(), |ix| {
        let flat: usize = ix.iter().zip(&out_strides).map(|(i, s)| i * s).sum();
        unravel(flat, &in_shape)
    });
    let mut out = Stages::default();
    out.push("output", output);
    Ok(out)
}

/// The input's bytes under the new shape.
fn fast(call: &Call) -> Result<Stages> {
    let shape = checked(call)?;
    let x = call.input("x")?;
    let mut out = Stages::default();
    out.push("output", like(x, shape, x.data.clone()));
    Ok(out)
}

/// Random inputs: dims = [m, n], a weight split into heads of 64 columns.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    // Split rows into heads of 64 columns, as attention code does.
    let (m, n) = (dims[0], dims[1]);
    let heads = if n % 64 == 0 { json!([m, -1, 64]) } else { json!([-1]) };
    one("x", weight(seed, m, n), json!({ "shape": heads }))
}
