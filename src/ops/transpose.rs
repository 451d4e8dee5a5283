//! `transpose` — x.permute(dims) made contiguous; `dims` makes it a general
//! permute (default: reverse the axes, i.e. a matrix transpose). The classic
//! porting bug here is a permutation read as its inverse.

use super::kernels::layout::{axis, gather, int_list, like, one, strides, weight, MOVES_ONLY, SAME_AS_X};
use super::kernels::strided::strided_copy;
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use serde_json::{json, Value};

pub static TRANSPOSE: Operation = Operation {
    name: "transpose",
    summary: "x.permute(dims) made contiguous; `dims` makes it a general permute (default: reverse the axes)",
    inputs: &[Input { name: "x", doc: "any dtype, any shape", optional: false, accepts: Accepts::Any }],
    params: &[Param {
        name: "dims",
        kind: ParamKind::Integers,
        doc: "a permutation of the axes (negative axes count from the end); default: reversed, i.e. a matrix transpose",
        required: false,
    }],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// Output axis `i` is input axis `perm[i]`.
struct Checked {
    perm: Vec<usize>,
    out_shape: Vec<usize>,
}

fn checked(call: &Call) -> Result<Checked> {
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
    Ok(Checked { perm, out_shape })
}

/// Every output element gathered from the input index the permutation names.
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    // Output axis i is input axis perm[i]: input index[perm[i]] = output index[i].
    let output = gather(x, p.out_shape, |ix| {
        let mut src = vec![0; ix.len()];
        for (i, &p) in p.perm.iter().enumerate() {
            src[p] = ix[i];
        }
        src
    });
    let mut out = Stages::default();
    out.push("output", output);
    Ok(out)
}

/// The permuted view copied out in runs and 32×32 tiles.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    let in_strides = strides(&x.shape);
    let steps: Vec<usize> = p.perm.iter().map(|&a| in_strides[a]).collect();
    let bytes = strided_copy(&x.data, x.dtype.size(), &p.out_shape, &steps, 0);
    let mut out = Stages::default();
    out.push("output", like(x, p.out_shape, bytes));
    Ok(out)
}

/// Random inputs: dims = [m, n], a weight (transposed with the default dims).
fn sample(seed: u64, dims: &[usize]) -> Sample {
    one("x", weight(seed, dims[0], dims[1]), json!({}))
}
