//! Model-merging operations: `task_arithmetic` and `ties`.
//!
//! Both start from task vectors τᵢ = tasksᵢ − base (the fine-tuned weights
//! minus the base they were tuned from) and add a combination of them back
//! to the base. `task_arithmetic` takes the weighted sum Σ λᵢ·τᵢ; TIES
//! (Yadav et al., 2023) first *trims* each τᵢ to its largest-magnitude
//! entries, *elects* a sign per element by the sign of the trimmed sum, and
//! averages only the trimmed values that agree with it (a *disjoint mean*).
//!
//! Numerically, merges are short sums (T terms, T = the number of tasks),
//! so errors stay small — except where TIES makes a discrete choice from
//! rounded values (which entries survive the trim, which sign wins a vote
//! that nearly cancels). There the reference (f64) and the fast kernel (f32,
//! torch's sequence) can legitimately disagree about a few whole elements,
//! and TIES's limits allow a small fraction of such elements (see
//! [`TIES`]'s stages).
//!
//! Inputs of any float width decode exactly. The limits are derived for
//! inputs f32 holds exactly (every dtype but F64): the difference of two f32
//! values is then the same value in f64 or f32, rounded once.

mod fast;
mod reference;

use super::{Call, Input, Inputs, Operation, Param, ParamKind, Sample, Stage, StageDtype};
use crate::compare::tolerance::Tolerance;
use crate::format::dtype::DType;
use crate::error::Result;
use crate::numeric::rng::SplitMix64;
use crate::format::tensor::Tensor;
use serde_json::{json, Value};

const F32: StageDtype = StageDtype::Fixed(DType::F32);
const BENCH_MERGES: &[&[usize]] = &[&[3, 1024, 1024], &[3, 1024, 3072], &[2, 4096, 4096]];

const MERGE_INPUTS: &[Input] = &[
    Input { name: "base", doc: "a float dtype, any shape [..]: the weight the tasks were tuned from", optional: false },
    Input { name: "tasks", doc: "a float dtype, [T, ..]: the T fine-tuned weights stacked", optional: false },
];

const TASK_VECTORS: Stage = Stage {
    name: "task_vectors",
    dtype: F32,
    tolerance: Tolerance::exact(),
    why: "tasks − base is computed exactly in f64 and rounded once, and an f32 subtraction rounds the same exact \
          difference once: bit-identical",
};

/// A T-term f32 sum of products accumulates at most (2T + 1)·2⁻²⁴·Σ|λᵢτᵢ|
/// of error; for T ≤ 8 terms of magnitude ≤ 1 that stays below 1e-5, and
/// its typical (random-walk) size below 1e-6.
const SHORT_SUM: Tolerance = Tolerance::gate(1e-5, 1e-6);

pub static TASK_ARITHMETIC: Operation = Operation {
    name: "task_arithmetic",
    summary: "base + Σ λᵢ·(tasksᵢ − base) (Ilharco et al., task arithmetic)",
    inputs: MERGE_INPUTS,
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
    reference: reference::task_arithmetic,
    fast: fast::task_arithmetic,
    sample: sample_task_arithmetic,
    dims: "[T, m, n]",
    bench_dims: BENCH_MERGES,
};

/// The fraction of elements allowed to differ outright in TIES's stages
/// after the trim: a boundary entry swapped by the ranking (≤ 2 per task, a
/// fraction ≤ 2/N) or a vote flipped by a sum that cancels to below its f32
/// rounding error (about T·2⁻²⁴ of the elements where ≥ 3 trimmed values of
/// mixed sign meet). 1e-5 covers both from N ≈ 10⁶ on (one weight matrix);
/// on a small tensor a single such element already fails, as it should be
/// looked at.
const FLIPS: f64 = 1e-5;

pub static TIES: Operation = Operation {
    name: "ties",
    summary: "TIES merging: trim each task vector to its largest |τ|, elect a sign per element, average the agreeing values",
    inputs: MERGE_INPUTS,
    params: &[
        Param {
            name: "density",
 kind: ParamKind::Number,
            doc: "the fraction of each task vector kept, 0 < d ≤ 1: k = ⌈d·N⌉ entries of N (computed exactly from d)",
            required: true,
        },
        Param { name: "lambda", kind: ParamKind::Number, doc: "number, default 1: the multiplier of the merged delta", required: false },
    ],
    stages: &[
        TASK_VECTORS,
        Stage {
            name: "trimmed",
            dtype: F32,
            // max_abs: a swapped entry differs by its whole value, |τ| ≲ 1 for weight deltas.
            tolerance: Tolerance::gate(1.0, 1e-5).with_allclose(0.0, 0.0, FLIPS),
            why: "per task the k largest |τ| (ties to the lower index); the reference ranks exact f64 |τ|, the fast \
                  kernel the f32 ones, so two |τ| that differ only below f32 precision can swap across the k-th \
                  place: every other element bit-identical, a fraction ≤ 1e-5 may differ by a whole value",
        },
        Stage {
            name: "elected_sign",
            dtype: F32,
            tolerance: Tolerance::gate(2.0, 2e-5).with_allclose(0.0, 0.0, FLIPS),
            why: "sign (+1/−1/0) of the trimmed sum: the f32 sum can cancel to the other sign where the exact sum is \
                  within its rounding error of 0 (and follows any swapped entry): a fraction ≤ 1e-5 of votes may flip, \
                  by at most 2",
        },
        Stage {
            name: "merged_delta",
            dtype: F32,
            tolerance: Tolerance::gate(1.0, 1e-5).with_allclose(1e-6, 1e-38, FLIPS),
            why: "mean of same-signed values: no cancellation, so f32 stays within (T+1)·2⁻²⁴ relative (rtol 1e-6 \
                  for T ≤ 15; atol covers f32 underflow) except where a vote flipped (≤ 1e-5 of elements, by ≤ |τ|)",
        },
        Stage {
            name: "output",
            dtype: F32,
            tolerance: Tolerance::gate(1.0, 1e-5).with_allclose(1e-6, 1e-6, FLIPS),
            why: "base + λ·merged_delta: λ, the product and the sum rounded once more — ≤ (T+3)·2⁻²⁴·|λ·merged| \
                  absolute where base and the delta cancel (atol 1e-6 for |λ·merged| ≲ 1), relative otherwise — and \
                  the flipped votes of merged_delta",
        },
    ],
    reference: reference::ties,
    fast: fast::ties,
    sample: sample_ties,
    dims: "[T, m, n]",
    bench_dims: BENCH_MERGES,
};

// ---------------------------------------------------------------- plans

/// The shapes both implementations work from: T tasks of N elements each.
pub(crate) struct MergePlan<'a> {
    pub base: &'a Tensor,
    pub tasks: &'a Tensor,
    pub t: usize,
    pub n: usize,
}

fn merge_plan<'a>(call: &Call<'a>) -> Result<MergePlan<'a>> {
    let base = call.input("base")?;
    let tasks = call.input("tasks")?;
    for (name, x) in [("base", base), ("tasks", tasks)] {
        if !x.dtype.is_float() {
            return Err(call.error(format!("input '{name}' must be a float tensor, got {}", x.dtype)));
        }
    }
    if tasks.shape.is_empty() || tasks.shape[1..] != base.shape[..] {
        return Err(call.error(format!(
            "tasks has shape {:?}, expected [T, {}] (the base's shape {:?} with the tasks stacked in front)",
            tasks.shape,
            base.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
            base.shape
        )));
    }
    Ok(MergePlan { base, tasks, t: tasks.shape[0], n: base.numel() })
}

/// `task_arithmetic`'s λ, one per task.
fn weights(call: &Call, t: usize) -> Result<Vec<f64>> {
    let v = call.param("weights").ok_or_else(|| call.error("parameter 'weights' missing"))?;
    let wrong = || call.error(format!("weights must be a list of {t} numbers (one per task), got {v}"));
    let items = v.as_array().filter(|items| items.len() == t).ok_or_else(wrong)?;
    items.iter().map(|w| w.as_f64().ok_or_else(wrong)).collect()
}

pub(crate) struct TiesParams {
    /// Entries kept per task.
    pub k: usize,
    pub lambda: f64,
}

fn ties_params(call: &Call, n: usize) -> Result<TiesParams> {
    let v = call.param("density").ok_or_else(|| call.error("parameter 'density' missing"))?;
    let density = v.as_f64().ok_or_else(|| call.error(format!("density must be a number, got {v}")))?;
    if !(density > 0.0 && density <= 1.0) {
        return Err(call.error(format!("density {density} must be in (0, 1]")));
    }
    let lambda = match call.param("lambda") {
        None | Some(Value::Null) => 1.0,
        Some(v) => v.as_f64().ok_or_else(|| call.error(format!("lambda must be a number, got {v}")))?,
    };
    Ok(TiesParams { k: kept_count(density, n), lambda })
}

/// k = ⌈d·N⌉ for the exact value of d. A rounded product would keep one
/// entry too many whenever d·N lands just above an integer: 0.3 · 10 is
/// 3.0000000000000004 in f64, but the f64 nearest 0.3 times 10 is just
/// *below* 3. The fused multiply-add recovers the product's rounding error
/// exactly, and its sign decides.
pub fn kept_count(density: f64, n: usize) -> usize {
    let nf = n as f64; // exact for any tensor that fits in memory (n < 2⁵³)
    let r = density * nf;
    let err = density.mul_add(nf, -r); // exactly d·N − r
    let k = if r.fract() != 0.0 {
        // An integer between r and the exact product would be nearer to it than r.
        r.ceil()
    } else if err > 0.0 {
        r + 1.0
    } else {
        r
    };
    (k as usize).min(n)
}

// ---------------------------------------------------------------- samples

/// A base weight N(0, 0.02²) and T fine-tunes that moved it by N(0, 0.002²).
fn merge_inputs(seed: u64, dims: &[usize]) -> Inputs {
    let (t, m, n) = (dims[0], dims[1], dims[2]);
    let mut rng = SplitMix64::new(seed);
    let base = rng.normal_vec_f32(m * n, 0.02);
    let mut tasks = Vec::with_capacity(t * m * n);
    for _ in 0..t {
        tasks.extend(base.iter().map(|&b| (b as f64 + 0.002 * rng.normal()) as f32));
    }
    let mut inputs = Inputs::new();
    inputs.insert("base".into(), Tensor::from_f32(vec![m, n], &base));
    inputs.insert("tasks".into(), Tensor::from_f32(vec![t, m, n], &tasks));
    inputs
}

fn sample_task_arithmetic(seed: u64, dims: &[usize]) -> Sample {
    let t = dims[0];
    let weights: Vec<f64> = (0..t).map(|i| 0.3 + 0.1 * i as f64).collect();
    Sample { inputs: merge_inputs(seed, dims), params: json!({ "weights": weights }).as_object().cloned().unwrap_or_default() }
}

fn sample_ties(seed: u64, dims: &[usize]) -> Sample {
    Sample { inputs: merge_inputs(seed, dims), params: json!({ "density": 0.2, "lambda": 1.0 }).as_object().cloned().unwrap_or_default() }
}
