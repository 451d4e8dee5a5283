//! `ties` — TIES merging (Yadav et al., 2023): *trim* each task vector
//! τᵢ = tasksᵢ − base to its largest-magnitude entries, *elect* a sign per
//! element by the sign of the trimmed sum, and average only the trimmed
//! values that agree with it (a *disjoint mean*); add λ times that to the
//! base.
//!
//! Where TIES makes a discrete choice from rounded values (which entries
//! survive the trim, which sign wins a vote that nearly cancels), the
//! reference (f64) and the fast kernel (f32, torch's sequence: see
//! `kernels/merge.rs`) can legitimately disagree about a few whole elements,
//! and the limits allow a small fraction of such elements (`FLIPS`).

use super::kernels::merge::{checked, sample_inputs, task_vectors_f32, task_vectors_f64, BENCH_MERGES, INPUTS, TASK_VECTORS};
use super::{Call, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages};
use crate::compare::tolerance::Tolerance;
use super::kernels::elementwise::{zip_in_place, zip_into};
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use serde_json::{json, Value};
use std::cmp::Ordering;

const F32: StageDtype = StageDtype::Fixed(DType::F32);

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
    inputs: INPUTS,
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
    reference,
    fast,
    sample,
    dims: "[T, m, n]",
    bench_dims: BENCH_MERGES,
};

struct TiesParams {
    /// Entries kept per task.
    k: usize,
    lambda: f64,
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

// ---------------------------------------------------------------- reference (f64)

/// Every stage in f64. The trim ranks the exact f64 |τ| — the magnitudes the
/// math means — with a stable sort, so equal magnitudes keep their index
/// order (lower index first), and NaN ranks above every number (as in
/// torch.topk).
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let params = ties_params(call, p.n)?;
    let (n, k) = (p.n, params.k);
    let base = p.base.to_f64_vec();
    let tv = task_vectors_f64(&base, &p.tasks.to_f64_vec());

    let mut trimmed = vec![0.0; tv.len()];
    for t in 0..p.t {
        let tau = &tv[t * n..(t + 1) * n];
        let mut order: Vec<usize> = (0..n).collect();
        // Largest magnitude first; sort_by is stable, so ties stay in index order.
        order.sort_by(|&i, &j| magnitude_order(tau[j], tau[i]));
        for &i in &order[..k] {
            trimmed[t * n + i] = tau[i];
        }
    }

    let mut elected = vec![0.0; n];
    let mut merged = vec![0.0; n];
    for i in 0..n {
        let column = (0..p.t).map(|t| trimmed[t * n + i]);
        let sum = column.clone().fold(0.0, |acc, v| acc + v);
        elected[i] = sign_f64(sum);
        merged[i] = if sum.is_nan() {
            f64::NAN
        } else if elected[i] == 0.0 {
            0.0
        } else {
            // The disjoint mean: only the values that agree with the vote.
            let agreeing: Vec<f64> = column.filter(|&v| sign_f64(v) == elected[i]).collect();
            agreeing.iter().fold(0.0, |acc, v| acc + v) / agreeing.len() as f64
        };
    }
    let output: Vec<f64> = base.iter().zip(&merged).map(|(b, d)| b + params.lambda * d).collect();

    let mut out = Stages::default();
    out.push("task_vectors", Tensor::from_f64(p.tasks.shape.clone(), &tv));
    out.push("trimmed", Tensor::from_f64(p.tasks.shape.clone(), &trimmed));
    out.push("elected_sign", Tensor::from_f64(p.base.shape.clone(), &elected));
    out.push("merged_delta", Tensor::from_f64(p.base.shape.clone(), &merged));
    out.push("output", Tensor::from_f64(p.base.shape.clone(), &output));
    Ok(out)
}

/// Compare |a| with |b|, NaN above everything (every NaN equal).
fn magnitude_order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.abs().total_cmp(&b.abs()),
    }
}

/// +1, −1, 0 (for ±0) or NaN.
fn sign_f64(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x == 0.0 {
        0.0
    } else {
        f64::NAN
    }
}

// ---------------------------------------------------------------- fast (f32)

/// f32 throughout, in torch's order. The trim picks each task's k largest
/// f32 |τ| in linear time: a selection finds the k-th largest magnitude, then
/// one pass keeps every larger entry and, among entries equal to it, the
/// lowest indices. Ranking works on the f32 bits: for non-negative floats the
/// bit pattern orders like the value, and every NaN is mapped to one key
/// above +inf.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let params = ties_params(call, p.n)?;
    let (n, k) = (p.n, params.k);
    let base = p.base.to_f32_vec();
    let tv = task_vectors_f32(&base, &p.tasks.to_f32_vec());

    let mut trimmed = vec![0f32; tv.len()];
    for t in 0..p.t {
        let range = t * n..(t + 1) * n;
        keep_largest(&tv[range.clone()], k, &mut trimmed[range]);
    }

    // The vote: the f32 sum over tasks, in task order.
    let mut sum = vec![0f32; n];
    for t in 0..p.t {
        zip_in_place(&mut sum, &trimmed[t * n..(t + 1) * n], |s, v| s + v);
    }
    let elected: Vec<f32> = sum.iter().map(|&s| sign_f32(s)).collect();

    // The disjoint mean: sum and count the values that agree with the vote.
    let mut agree_sum = vec![0f32; n];
    let mut agree_count = vec![0f32; n];
    for t in 0..p.t {
        for i in 0..n {
            let v = trimmed[t * n + i];
            if v != 0.0 && sign_f32(v) == elected[i] {
                agree_sum[i] += v;
                agree_count[i] += 1.0;
            }
        }
    }
    let merged: Vec<f32> = (0..n)
        .map(|i| {
            if elected[i].is_nan() {
                f32::NAN
            } else if agree_count[i] > 0.0 {
                agree_sum[i] / agree_count[i]
            } else {
                0.0
            }
        })
        .collect();
    let lambda = params.lambda as f32;
    let mut output = vec![0f32; n];
    zip_into(&base, &merged, &mut output, |b, d| b + lambda * d);

    let mut out = Stages::default();
    out.push("task_vectors", Tensor::from_f32(p.tasks.shape.clone(), &tv));
    out.push("trimmed", Tensor::from_f32(p.tasks.shape.clone(), &trimmed));
    out.push("elected_sign", Tensor::from_f32(p.base.shape.clone(), &elected));
    out.push("merged_delta", Tensor::from_f32(p.base.shape.clone(), &merged));
    out.push("output", Tensor::from_f32(p.base.shape.clone(), &output));
    Ok(out)
}

/// Copy into `out` the `k` entries of `tau` with the largest magnitude (ties
/// to the lower index); leave the rest 0.
fn keep_largest(tau: &[f32], k: usize, out: &mut [f32]) {
    if k == 0 {
        return;
    }
    if k >= tau.len() {
        out.copy_from_slice(tau);
        return;
    }
    let keys: Vec<u32> = tau.iter().map(|&v| magnitude_key(v)).collect();
    let mut scratch = keys.clone();
    // Descending: the k-th largest key lands at k − 1.
    let (_, &mut kth, _) = scratch.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    let larger = keys.iter().filter(|&&key| key > kth).count();
    let mut equal_left = k - larger;
    for (i, &key) in keys.iter().enumerate() {
        if key > kth || (key == kth && equal_left > 0) {
            if key == kth {
                equal_left -= 1;
            }
            out[i] = tau[i];
        }
    }
}

/// A key that orders like |v|: the f32 bits without the sign. Every NaN gets
/// one key just above +inf, so NaNs rank first and tie with each other.
fn magnitude_key(v: f32) -> u32 {
    let bits = v.to_bits() & 0x7FFF_FFFF;
    if bits > 0x7F80_0000 {
        0x7F80_0001
    } else {
        bits
    }
}

/// +1, −1, 0 (for ±0) or NaN.
fn sign_f32(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x == 0.0 {
        0.0
    } else {
        f32::NAN
    }
}

/// Random inputs: dims = [T, m, n], density 0.2 and λ 1.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    Sample { inputs: sample_inputs(seed, dims), params: json!({ "density": 0.2, "lambda": 1.0 }).as_object().cloned().unwrap_or_default() }
}
