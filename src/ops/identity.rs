//! `identity` — a copy: the output is the input, bit for bit (any dtype).
//! The smallest operation, and the shape every other one follows.

use super::kernels::layout::{gather, one, weight, MOVES_ONLY, SAME_AS_X};
use super::{Accepts, Call, Input, Operation, Sample, Stage, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use serde_json::json;

pub static IDENTITY: Operation = Operation {
    name: "identity",
    summary: "copy: the output is the input, bit for bit (any dtype)",
    inputs: &[Input { name: "x", doc: "any dtype, any shape", optional: false, accepts: Accepts::Any }],
    params: &[],
    stages: &[Stage { name: "output", dtype: SAME_AS_X, tolerance: Tolerance::exact(), why: MOVES_ONLY }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// Every element gathered through its multi-index.
fn reference(call: &Call) -> Result<Stages> {
    let x = call.input("x")?;
    let mut out = Stages::default();
    out.push("output", gather(x, x.shape.clone(), |ix| ix.to_vec()));
    Ok(out)
}

/// The input's bytes, cloned whole.
fn fast(call: &Call) -> Result<Stages> {
    let x = call.input("x")?;
    let mut out = Stages::default();
    out.push("output", x.clone());
    Ok(out)
}

/// Random inputs: dims = [m, n], a weight.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    one("x", weight(seed, dims[0], dims[1]), json!({}))
}
