//! `phlora` — the rank-r factorization of PHLoRA from the thin SVD:
//! `x ≈ b @ a` with `a = sqrt(s_r)·Vhᵣ`, `b = Uᵣ·sqrt(s_r)`.
//!
//! Both implementations take the same SVD as `svd` (nalgebra's f64 one; the
//! fast one rounds it to f32: see `kernels/svd.rs`); the factors carry its sign convention, so
//! only the invariants — singular values, the best rank-r reconstruction and
//! its residual — are required stages.

use super::kernels::gemm;
use super::kernels::matrix::{matmul_f64, GEMM_TOLERANCE};
use super::kernels::svd::{sample_x, svd_failed, svd_input, thin_svd, thin_svd_f32, ThinSvd, S_TOLERANCE, S_WHY, VECTORS_TOLERANCE};
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Params, Sample, Stage, StageDtype, Stages};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;

const F32: StageDtype = StageDtype::Fixed(DType::F32);

pub static PHLORA: Operation = Operation {
    name: "phlora",
    summary: "rank-r factorization from the SVD (PHLoRA): a = sqrt(s_r)·Vhᵣ, b = Uᵣ·sqrt(s_r), x ≈ b @ a",
    inputs: &[Input { name: "x", doc: "F32 [m, n] (F64/F16/BF16 read exactly), finite", optional: false, accepts: Accepts::NonFp8Float }],
    params: &[Param { name: "rank", kind: ParamKind::Integer, doc: "r, an integer with 1 ≤ r ≤ min(m, n)", required: true }],
    stages: &[
        Stage { name: "s", dtype: F32, tolerance: S_TOLERANCE, why: S_WHY },
        Stage {
            name: "a",
            dtype: F32,
            tolerance: VECTORS_TOLERANCE,
            why: "[r, n] = sqrt(s_r)·Vhᵣ, signs canonicalised as svd's v: defined only up to rotation within near-repeated \
                  singular values, so report, don't require",
        },
        Stage {
            name: "b",
            dtype: F32,
            tolerance: VECTORS_TOLERANCE,
            why: "[m, r] = Uᵣ·sqrt(s_r), flipped with a: defined only up to rotation within near-repeated singular values, \
                  so report, don't require",
        },
        Stage {
            name: "reconstruction",
            dtype: F32,
            tolerance: GEMM_TOLERANCE,
            why: "b @ a, the best rank-r approximation: invariant when σ_r > σ_(r+1) (its error grows like 2⁻²⁴·σ_max² / \
                  (σ_r − σ_(r+1))); limits as SVF's zero_source_f32",
        },
        Stage {
            name: "residual",
            dtype: F32,
            tolerance: Tolerance::gate(1e-5, 1e-5),
            why: "‖x − b@a‖_F / ‖x‖_F, a ratio in [0, 1]: the f32 reconstruction's error relative to ‖x‖_F is c·√r·2⁻²⁴ \
                  (< 1e-5 for r ≲ 1000); 0 / 0 is NaN, as in torch",
        },
    ],
    reference,
    fast,
    sample,
    dims: "[m, n, r]",
    bench_dims: &[&[128, 128, 16], &[256, 512, 32], &[512, 512, 64]],
};

fn rank_param(call: &Call, m: usize, n: usize) -> Result<usize> {
    let r = match call.param("rank") {
        None => return Err(call.error("parameter 'rank' missing")),
        Some(v) => v.as_u64().ok_or_else(|| call.error(format!("parameter 'rank' must be a positive integer, got {v}")))?,
    };
    if r == 0 || r as usize > m.min(n) {
        return Err(call.error(format!("rank {r} is outside 1..={} for a [{m}, {n}] matrix", m.min(n))));
    }
    Ok(r as usize)
}

/// The SVD, the factors, their product and the residual, all in f64.
fn reference(call: &Call) -> Result<Stages> {
    let (m, n, x) = svd_input(call)?;
    let r = rank_param(call, m, n)?;
    let d = thin_svd(&x, m, n).ok_or_else(|| svd_failed(call, "f64"))?;
    let (a, b, s) = factors(&d, m, n, r, f64::sqrt);
    let recon = matmul_f64(&b, &a, m, r, n);
    let diff: f64 = x.iter().zip(&recon).map(|(x, y)| (x - y) * (x - y)).sum();
    let norm: f64 = x.iter().map(|x| x * x).sum();
    let residual = diff.sqrt() / norm.sqrt();
    let mut out = Stages::default();
    out.push("s", Tensor::from_f64(vec![r], &s));
    out.push("a", Tensor::from_f64(vec![r, n], &a));
    out.push("b", Tensor::from_f64(vec![m, r], &b));
    out.push("reconstruction", Tensor::from_f64(vec![m, n], &recon));
    out.push("residual", Tensor::from_f64(vec![1], &[residual]));
    Ok(out)
}

/// The same in f32, the product on the f32 GEMM.
fn fast(call: &Call) -> Result<Stages> {
    let (m, n, _) = svd_input(call)?;
    let r = rank_param(call, m, n)?;
    let x = call.input("x")?.to_f32_vec();
    let d = thin_svd_f32(&x, m, n).ok_or_else(|| svd_failed(call, "f32"))?;
    let (a, b, s) = factors(&d, m, n, r, f32::sqrt);
    let recon = gemm::matmul(&b, &a, m, r, n);
    // torch.linalg.norm(x - b @ a) / torch.linalg.norm(x): the difference in
    // f32; the two sums of squares accumulate in f64 and each norm rounds
    // once to f32 (more exact than an f32 sum, independent of vector width).
    let diff: f64 = x.iter().zip(&recon).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = x.iter().map(|&x| (x as f64).powi(2)).sum();
    let residual = diff.sqrt() as f32 / norm.sqrt() as f32;
    let mut out = Stages::default();
    out.push("s", Tensor::from_f32(vec![r], &s));
    out.push("a", Tensor::from_f32(vec![r, n], &a));
    out.push("b", Tensor::from_f32(vec![m, r], &b));
    out.push("reconstruction", Tensor::from_f32(vec![m, n], &recon));
    out.push("residual", Tensor::from_f32(vec![1], &[residual]));
    Ok(out)
}

/// (a [r, n], b [m, r], s_r) from a thin SVD: a[i, j] = sqrt(s_i)·v[j, i],
/// b[i, j] = u[i, j]·sqrt(s_j), in the SVD's own precision.
fn factors<T: Copy + std::ops::Mul<Output = T>>(d: &ThinSvd<T>, m: usize, n: usize, r: usize, sqrt: fn(T) -> T) -> (Vec<T>, Vec<T>, Vec<T>) {
    let k = d.r;
    let root: Vec<T> = d.s[..r].iter().map(|&s| sqrt(s)).collect();
    let a = (0..r * n).map(|idx| root[idx / n] * d.v[(idx % n) * k + idx / n]).collect();
    let b = (0..m * r).map(|idx| d.u[(idx / r) * k + idx % r] * root[idx % r]).collect();
    (a, b, d.s[..r].to_vec())
}

/// Random inputs: dims = [m, n, r], svd's weight-like x and rank r.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let mut params = Params::new();
    params.insert("rank".into(), serde_json::json!(dims[2]));
    Sample { inputs: sample_x(seed, dims[0], dims[1]), params }
}
