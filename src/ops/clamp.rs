//! `clamp` — x limited to [min, max]; NaN stays NaN (torch.clamp). It only
//! selects x or a bound, so the two implementations agree bit for bit.

use super::kernels::elementwise::{float_input, map_tensor, number, output, sample_of, weight};
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use serde_json::json;

pub static CLAMP: Operation = Operation {
    name: "clamp",
    summary: "x limited to [min, max]; NaN stays NaN (torch.clamp)",
    inputs: &[Input { name: "x", doc: "a float dtype, any shape", optional: false, accepts: Accepts::Float }],
    params: &[
        Param { name: "min", kind: ParamKind::Number, doc: "number or null: the lower bound", required: false },
        Param { name: "max", kind: ParamKind::Number, doc: "number or null: the upper bound (at least one bound; min ≤ max)", required: false },
    ],
    stages: &[Stage {
        name: "output",
        dtype: StageDtype::Fixed(DType::F32),
        tolerance: Tolerance::exact(),
        why: "clamp only selects x or a bound, and rounding is monotone, so clamping the f32 values by f32 bounds \
              gives the f32 rounding of the exact clamp: bit-identical",
    }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

struct Checked {
    min: Option<f64>,
    max: Option<f64>,
}

fn checked(call: &Call) -> Result<Checked> {
    float_input(call, "x")?;
    let (min, max) = (number(call, "min")?, number(call, "max")?);
    match (min, max) {
        (None, None) => Err(call.error("clamp needs 'min', 'max' or both")),
        (Some(lo), Some(hi)) if lo > hi => Err(call.error(format!("min {lo} is greater than max {hi}"))),
        _ => Ok(Checked { min, max }),
    }
}

/// The clamp in f64 by the bounds as given.
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    let y: Vec<f64> = x
        .to_f64_vec()
        .into_iter()
        .map(|v| {
            // Comparisons with NaN are false, so NaN passes through both tests.
            let v = match p.min {
                Some(lo) if v < lo => lo,
                _ => v,
            };
            match p.max {
                Some(hi) if v > hi => hi,
                _ => v,
            }
        })
        .collect();
    Ok(output(Tensor::from_f64(x.shape.clone(), &y)))
}

/// The clamp in f32 by the bounds rounded to f32, as torch does.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let x = call.input("x")?;
    let lo = p.min.map(|v| v as f32);
    let hi = p.max.map(|v| v as f32);
    // Not f32::max/min: those return the bound for a NaN x, torch keeps the
    // NaN (and leave the sign of a zero bound to the instruction chosen).
    let (lo, hi) = (lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY));
    let y = map_tensor(x, |v| {
        let v = if v < lo { lo } else { v };
        if v > hi { hi } else { v }
    });
    Ok(output(y))
}

/// Random inputs: dims = [m, n], a weight clamped to ±0.03.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    sample_of(vec![("x", weight(&mut rng, dims[0], dims[1]))], json!({ "min": -0.03, "max": 0.03 }))
}
