//! `task_arithmetic` — base + Σ λᵢ·(tasksᵢ − base) (Ilharco et al.): the
//! weighted sum of the task vectors added back to the base. A short sum, so
//! the two implementations stay close (how each rounds: `kernels/merge.rs`).

use super::kernels::merge::{checked, sample_inputs, task_vectors_f32, task_vectors_f64, BENCH_MERGES, INPUTS, TASK_VECTORS};
use super::{Call, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages};
use crate::compare::tolerance::Tolerance;
use super::kernels::elementwise::{zip_in_place, zip_into};
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use serde_json::json;

const F32: StageDtype = StageDtype::Fixed(DType::F32);

/// A T-term f32 sum of products accumulates at most (2T + 1)·2⁻²⁴·Σ|λᵢτᵢ|
/// of error; for T ≤ 8 terms of magnitude ≤ 1 that stays below 1e-5, and
/// its typical (random-walk) size below 1e-6.
const SHORT_SUM: Tolerance = Tolerance::gate(1e-5, 1e-6);

pub static TASK_ARITHMETIC: Operation = Operation {
    name: "task_arithmetic",
    summary: "base + Σ λᵢ·(tasksᵢ − base) (Ilharco et al., task arithmetic)",
    inputs: INPUTS,
    params: &[Param { name: "weights", kind: ParamKind::Numbers, doc: "λ: a list of T numbers, one per task", required: true }],
    stages: &[
        TASK_VECTORS,
        Stage {
            name: "merged_delta",
            dtype: F32,
            tolerance: SHORT_SUM,
            why: "a T-term sum of λᵢ·τᵢ: f32 rounds each λᵢ, each product and each partial sum, ≤ (2T+1)·2⁻²⁴·Σ|λᵢτᵢ| \
                  (absolute, since the terms may cancel); sized for T ≤ 8 weight-scale terms",
        },
        Stage {
            name: "output",
            dtype: F32,
            tolerance: SHORT_SUM,
            why: "merged_delta plus one more rounding of base + merged_delta",
        },
    ],
    reference,
    fast,
    sample,
    dims: "[T, m, n]",
    bench_dims: BENCH_MERGES,
};

/// λ, one per task.
fn weights(call: &Call, t: usize) -> Result<Vec<f64>> {
    let v = call.param("weights").ok_or_else(|| call.error("parameter 'weights' missing"))?;
    let wrong = || call.error(format!("weights must be a list of {t} numbers (one per task), got {v}"));
    let items = v.as_array().filter(|items| items.len() == t).ok_or_else(wrong)?;
    items.iter().map(|w| w.as_f64().ok_or_else(wrong)).collect()
}

/// Every stage in f64, the sum over tasks in task order.
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let lambdas = weights(call, p.t)?;
    let base = p.base.to_f64_vec();
    let tv = task_vectors_f64(&base, &p.tasks.to_f64_vec());
    let merged: Vec<f64> = (0..p.n).map(|i| (0..p.t).fold(0.0, |acc, t| acc + lambdas[t] * tv[t * p.n + i])).collect();
    let output: Vec<f64> = base.iter().zip(&merged).map(|(b, d)| b + d).collect();

    let mut out = Stages::default();
    out.push("task_vectors", Tensor::from_f64(p.tasks.shape.clone(), &tv));
    out.push("merged_delta", Tensor::from_f64(p.base.shape.clone(), &merged));
    out.push("output", Tensor::from_f64(p.base.shape.clone(), &output));
    Ok(out)
}

/// f32 throughout: each λ rounded once, each product and partial sum rounded.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let lambdas = weights(call, p.t)?;
    let base = p.base.to_f32_vec();
    let tv = task_vectors_f32(&base, &p.tasks.to_f32_vec());
    let mut merged = vec![0f32; p.n];
    for (t, &lambda) in lambdas.iter().enumerate() {
        let lambda = lambda as f32;
        zip_in_place(&mut merged, &tv[t * p.n..(t + 1) * p.n], |m, tau| m + lambda * tau);
    }
    let mut output = vec![0f32; p.n];
    zip_into(&base, &merged, &mut output, |b, d| b + d);

    let mut out = Stages::default();
    out.push("task_vectors", Tensor::from_f32(p.tasks.shape.clone(), &tv));
    out.push("merged_delta", Tensor::from_f32(p.base.shape.clone(), &merged));
    out.push("output", Tensor::from_f32(p.base.shape.clone(), &output));
    Ok(out)
}

/// Random inputs: dims = [T, m, n], λᵢ = 0.3 + 0.1·i.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let t = dims[0];
    let weights: Vec<f64> = (0..t).map(|i| 0.3 + 0.1 * i as f64).collect();
    Sample { inputs: sample_inputs(seed, dims), params: json!({ "weights": weights }).as_object().cloned().unwrap_or_default() }
}
