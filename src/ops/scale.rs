//! `scale` — x · factor, with torch's rounding of the Python scalar: the
//! factor becomes an f32, then one f32 multiply. (How the elementwise
//! operations round: `kernels/elementwise.rs`.)

use super::kernels::elementwise::{float_input, map_tensor, output, required_number, sample_of, weight, ONE_ROUNDING};
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages, BENCH_WEIGHTS};
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use serde_json::json;

pub static SCALE: Operation = Operation {
    name: "scale",
    summary: "x · factor (torch: the Python scalar becomes an f32, then one f32 multiply)",
    inputs: &[Input { name: "x", doc: "a float dtype, any shape", optional: false, accepts: Accepts::Float }],
    params: &[Param { name: "factor", kind: ParamKind::Number, doc: "number", required: true }],
    stages: &[Stage {
        name: "output",
        dtype: StageDtype::Fixed(DType::F32),
        tolerance: ONE_ROUNDING.with_max_ulp(1),
        why: "one rounding of x·factor each side; torch also rounds the factor to f32 first (relative 2⁻²⁴), \
              so the two results are at most 1 f32 ULP apart",
    }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// x · factor in f64, the factor exactly as given.
fn reference(call: &Call) -> Result<Stages> {
    let x = float_input(call, "x")?;
    let factor = required_number(call, "factor")?;
    let y: Vec<f64> = x.to_f64_vec().into_iter().map(|v| v * factor).collect();
    Ok(output(Tensor::from_f64(x.shape.clone(), &y)))
}

/// The factor rounded to f32, then one f32 multiply per element.
fn fast(call: &Call) -> Result<Stages> {
    let x = float_input(call, "x")?;
    let factor = required_number(call, "factor")? as f32;
    Ok(output(map_tensor(x, |v| v * factor)))
}

/// Random inputs: dims = [m, n], a weight and a factor in [0.1, 1.1).
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    let x = weight(&mut rng, dims[0], dims[1]);
    // A factor f32 cannot hold, so the scalar's own rounding is exercised.
    sample_of(vec![("x", x)], json!({ "factor": 0.1 + rng.uniform() }))
}
