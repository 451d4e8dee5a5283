//! The fast merges: f32 throughout, in the order a torch pipeline computes.
//!
//! Rounding, in order: τ = tasks − base (one f32 subtraction); λ and the TIES
//! multiplier are rounded to f32 once; sums over tasks run in task order
//! from 0, rounding after every product and every addition (what
//! `sum(l * tv for ...)` or a `.sum(dim=0)` over a stacked tensor does). No
//! FMA: torch and numpy round the product first.
//!
//! TIES's trim picks each task's k largest f32 |τ| in linear time: a
//! selection finds the k-th largest magnitude, then one pass keeps every
//! larger entry and, among entries equal to it, the lowest indices. Ranking
//! works on the f32 bits: for non-negative floats the bit pattern orders like
//! the value, and every NaN is mapped to one key above +inf.

use super::{merge_plan, ties_params, weights};
use crate::error::Result;
use crate::ops::{Call, Stages};
use crate::format::tensor::Tensor;

pub(super) fn task_arithmetic(call: &Call) -> Result<Stages> {
    let p = merge_plan(call)?;
    let lambdas = weights(call, p.t)?;
    let base = p.base.to_f32_vec();
    let tv = task_vectors(&base, &p.tasks.to_f32_vec());
    let mut merged = vec![0f32; p.n];
    for (t, &lambda) in lambdas.iter().enumerate() {
        let lambda = lambda as f32;
        for (m, &tau) in merged.iter_mut().zip(&tv[t * p.n..(t + 1) * p.n]) {
            *m += lambda * tau;
        }
    }
    let output: Vec<f32> = base.iter().zip(&merged).map(|(b, d)| b + d).collect();

    let mut out = Stages::default();
    out.push("task_vectors", Tensor::from_f32(p.tasks.shape.clone(), &tv));
    out.push("merged_delta", Tensor::from_f32(p.base.shape.clone(), &merged));
    out.push("output", Tensor::from_f32(p.base.shape.clone(), &output));
    Ok(out)
}

pub(super) fn ties(call: &Call) -> Result<Stages> {
    let p = merge_plan(call)?;
    let params = ties_params(call, p.n)?;
    let (n, k) = (p.n, params.k);
    let base = p.base.to_f32_vec();
    let tv = task_vectors(&base, &p.tasks.to_f32_vec());

    let mut trimmed = vec![0f32; tv.len()];
    for t in 0..p.t {
        let range = t * n..(t + 1) * n;
        keep_largest(&tv[range.clone()], k, &mut trimmed[range]);
    }

    // The vote: the f32 sum over tasks, in task order.
    let mut sum = vec![0f32; n];
    for t in 0..p.t {
        for (s, &v) in sum.iter_mut().zip(&trimmed[t * n..(t + 1) * n]) {
            *s += v;
        }
    }
    let elected: Vec<f32> = sum.iter().map(|&s| sign(s)).collect();

    // The disjoint mean: sum and count the values that agree with the vote.
    let mut agree_sum = vec![0f32; n];
    let mut agree_count = vec![0f32; n];
    for t in 0..p.t {
        for i in 0..n {
            let v = trimmed[t * n + i];
            if v != 0.0 && sign(v) == elected[i] {
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
    let output: Vec<f32> = base.iter().zip(&merged).map(|(b, d)| b + lambda * d).collect();

    let mut out = Stages::default();
    out.push("task_vectors", Tensor::from_f32(p.tasks.shape.clone(), &tv));
    out.push("trimmed", Tensor::from_f32(p.tasks.shape.clone(), &trimmed));
    out.push("elected_sign", Tensor::from_f32(p.base.shape.clone(), &elected));
    out.push("merged_delta", Tensor::from_f32(p.base.shape.clone(), &merged));
    out.push("output", Tensor::from_f32(p.base.shape.clone(), &output));
    Ok(out)
}

/// τ[t, i] = tasks[t, i] − base[i], one f32 rounding each.
fn task_vectors(base: &[f32], tasks: &[f32]) -> Vec<f32> {
    let mut tv = Vec::with_capacity(tasks.len());
    for task in tasks.chunks_exact(base.len().max(1)) {
        tv.extend(task.iter().zip(base).map(|(x, b)| x - b));
    }
    tv
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
fn sign(x: f32) -> f32 {
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
