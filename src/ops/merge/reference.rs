//! The reference merges: every stage in f64, returned wide (`Stages::narrow`
//! rounds each to f32 once).
//!
//! TIES ranks the exact f64 |τ| — the magnitudes the math means — with a
//! stable sort, so equal magnitudes keep their index order (lower index
//! first), and NaN ranks above every number (as in torch.topk).

use super::{merge_plan, ties_params, weights};
use crate::error::Result;
use crate::ops::{Call, Stages};
use crate::format::tensor::Tensor;
use std::cmp::Ordering;

pub(super) fn task_arithmetic(call: &Call) -> Result<Stages> {
    let p = merge_plan(call)?;
    let lambdas = weights(call, p.t)?;
    let base = p.base.to_f64_vec();
    let tv = task_vectors(&base, &p.tasks.to_f64_vec());
    let merged: Vec<f64> = (0..p.n).map(|i| (0..p.t).fold(0.0, |acc, t| acc + lambdas[t] * tv[t * p.n + i])).collect();
    let output: Vec<f64> = base.iter().zip(&merged).map(|(b, d)| b + d).collect();

    let mut out = Stages::default();
    out.push("task_vectors", Tensor::from_f64(p.tasks.shape.clone(), &tv));
    out.push("merged_delta", Tensor::from_f64(p.base.shape.clone(), &merged));
    out.push("output", Tensor::from_f64(p.base.shape.clone(), &output));
    Ok(out)
}

pub(super) fn ties(call: &Call) -> Result<Stages> {
    let p = merge_plan(call)?;
    let params = ties_params(call, p.n)?;
    let (n, k) = (p.n, params.k);
    let base = p.base.to_f64_vec();
    let tv = task_vectors(&base, &p.tasks.to_f64_vec());

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
        elected[i] = sign(sum);
        merged[i] = if sum.is_nan() {
            f64::NAN
        } else if elected[i] == 0.0 {
            0.0
        } else {
            // The disjoint mean: only the values that agree with the vote.
            let agreeing: Vec<f64> = column.filter(|&v| sign(v) == elected[i]).collect();
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

/// τ[t, i] = tasks[t, i] − base[i].
fn task_vectors(base: &[f64], tasks: &[f64]) -> Vec<f64> {
    // (With no elements there are no tasks' elements either: j % 0 never runs.)
    tasks.iter().enumerate().map(|(j, x)| x - base[j % base.len()]).collect()
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
fn sign(x: f64) -> f64 {
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
