//! `svd` — the thin SVD in torch.svd's layout — and `phlora`, its rank-r
//! factorization `x ≈ b @ a` with `a = sqrt(s_r)·Vhᵣ`, `b = Uᵣ·sqrt(s_r)`.
//!
//! Reference: nalgebra's SVD in f64, every stage in f64. Fast: the same
//! algorithm in f32, the recompositions on the f32 GEMM. Neither is LAPACK's
//! divide and conquer (what numpy and torch call), so the two only agree on
//! what the mathematics fixes — which is what the required stages are.

use super::gemm;
use super::matmul::GEMM_TOLERANCE;
use super::{finite_input, thin_svd, ThinSvd};
use crate::compare::tolerance::Tolerance;
use crate::format::dtype::DType;
use crate::error::Result;
use crate::numeric::rng::SplitMix64;
use crate::ops::{Call, Input, Inputs, Operation, Param, ParamKind, Params, Sample, Stage, StageDtype, Stages};
use crate::format::tensor::Tensor;

const F32: StageDtype = StageDtype::Fixed(DType::F32);

/// Singular values of an f32 SVD: backward stable, so by Weyl's theorem each
/// is within ‖ΔX‖₂ ≈ c·√n·2⁻²⁴·σ_max of the exact one.
const S_TOLERANCE: Tolerance = Tolerance::gate(1e-4, 1e-5);
const S_WHY: &str = "backward-stable f32 SVD: |Δσ| ≤ ‖ΔX‖₂ ≈ c·√n·2⁻²⁴·σ_max (Weyl), ≲ 1e-5 for σ_max ≲ 10 and n ≲ 1024";
/// Singular vectors: reported, not required.
const VECTORS_TOLERANCE: Tolerance = Tolerance::gate(1e-3, 1e-5).optional();

pub static SVD: Operation = Operation {
    name: "svd",
    summary: "thin SVD x = u·diag(s)·vᵀ (torch.svd layout, signs canonicalised), its reconstruction and orthogonality",
    inputs: &[Input { name: "x", doc: "F32 [m, n] (F64/F16/BF16 read exactly), finite", optional: false }],
    params: &[],
    stages: &[
        Stage { name: "s", dtype: F32, tolerance: S_TOLERANCE, why: S_WHY },
        Stage {
            name: "u",
            dtype: F32,
            tolerance: VECTORS_TOLERANCE,
            why: "left vectors, sign-canonicalised with v; defined only up to rotation within near-repeated singular values \
                  (their error grows like 2⁻²⁴·σ_max / gap), so report, don't require",
        },
        Stage {
            name: "v",
            dtype: F32,
            tolerance: VECTORS_TOLERANCE,
            why: "V, not Vᵀ; each column's largest-magnitude entry positive; defined only up to rotation within \
                  near-repeated singular values, so report, don't require",
        },
        Stage {
            name: "reconstruction",
            dtype: F32,
            tolerance: Tolerance::gate(1e-3, 1e-4),
            why: "u·diag(s)·vᵀ is invariant under the vectors' ambiguity; its error is the f32 SVD's backward error \
                  c·n·2⁻²⁴·‖x‖₂ (≈1e-5 per element at n = 11, ‖x‖₂ ≈ 5, measured with nalgebra's f32 SVD) plus an r-term \
                  f32 GEMM: mean ≤ 1e-4 for n ≲ 64 and ‖x‖₂ ≲ 10",
        },
        Stage {
            name: "orthogonality",
            dtype: F32,
            tolerance: Tolerance::gate(1e-4, 1e-4),
            why: "[max|uᵀu − I|, max|vᵀv − I|]: an f32 SVD loses orthogonality like c·n·2⁻²⁴ (≈ 6e-5 at n = 1024, c = 1); \
                  the f64 one is ≈ 1e-15, so this gates the f32 side's own loss",
        },
    ],
    reference: svd_reference,
    fast: svd_fast,
    sample: sample_svd,
    dims: "[m, n]",
    bench_dims: &[&[128, 128], &[256, 512], &[512, 512]],
};

pub static PHLORA: Operation = Operation {
    name: "phlora",
    summary: "rank-r factorization from the SVD (PHLoRA): a = sqrt(s_r)·Vhᵣ, b = Uᵣ·sqrt(s_r), x ≈ b @ a",
    inputs: &[Input { name: "x", doc: "F32 [m, n] (F64/F16/BF16 read exactly), finite", optional: false }],
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
    reference: phlora_reference,
    fast: phlora_fast,
    sample: sample_phlora,
    dims: "[m, n, r]",
    bench_dims: &[&[128, 128, 16], &[256, 512, 32], &[512, 512, 64]],
};

fn svd_input(call: &Call) -> Result<(usize, usize, Vec<f64>)> {
    let (m, n) = super::float_matrix(call, "x")?;
    let x = call.input("x")?.to_f64_vec();
    finite_input(call, "x", &x)?;
    Ok((m, n, x))
}

fn svd_failed(call: &Call, precision: &str) -> crate::Error {
    call.error(format!("the {precision} SVD did not converge or overflowed (values too large for {precision}?)"))
}

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

// ---------------------------------------------------------------- reference (f64)

fn svd_reference(call: &Call) -> Result<Stages> {
    let (m, n, x) = svd_input(call)?;
    let d = thin_svd(&x, m, n).ok_or_else(|| svd_failed(call, "f64"))?;
    let r = d.r;
    let us: Vec<f64> = (0..m * r).map(|i| d.u[i] * d.s[i % r]).collect();
    let recon = super::matmul_f64(&us, &transpose_f64(&d.v, n, r), m, r, n);
    let ortho = [orthogonality_f64(&d.u, m, r), orthogonality_f64(&d.v, n, r)];
    let mut out = Stages::default();
    out.push("s", Tensor::from_f64(vec![r], &d.s));
    out.push("u", Tensor::from_f64(vec![m, r], &d.u));
    out.push("v", Tensor::from_f64(vec![n, r], &d.v));
    out.push("reconstruction", Tensor::from_f64(vec![m, n], &recon));
    out.push("orthogonality", Tensor::from_f64(vec![2], &ortho));
    Ok(out)
}

fn phlora_reference(call: &Call) -> Result<Stages> {
    let (m, n, x) = svd_input(call)?;
    let r = rank_param(call, m, n)?;
    let d = thin_svd(&x, m, n).ok_or_else(|| svd_failed(call, "f64"))?;
    let (a, b, s) = factors(&d, m, n, r, f64::sqrt);
    let recon = super::matmul_f64(&b, &a, m, r, n);
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

fn transpose_f64(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0f64; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = a[i * cols + j];
        }
    }
    out
}

/// max |qᵀq − I| for row-major q [rows, r] (0 for r = 0).
fn orthogonality_f64(q: &[f64], rows: usize, r: usize) -> f64 {
    let g = super::matmul_f64(&transpose_f64(q, rows, r), q, r, rows, r);
    max_off_identity(&g, r, |x| x)
}

fn max_off_identity<T: Copy>(g: &[T], r: usize, widen: impl Fn(T) -> f64) -> f64 {
    let mut worst = 0f64;
    for i in 0..r {
        for j in 0..r {
            let want = if i == j { 1.0 } else { 0.0 };
            worst = worst.max((widen(g[i * r + j]) - want).abs());
        }
    }
    worst
}

// ---------------------------------------------------------------- fast (f32)

fn svd_fast(call: &Call) -> Result<Stages> {
    let (m, n, _) = svd_input(call)?;
    let x = call.input("x")?.to_f32_vec();
    let d = thin_svd(&x, m, n).ok_or_else(|| svd_failed(call, "f32"))?;
    let r = d.r;
    let us: Vec<f32> = (0..m * r).map(|i| d.u[i] * d.s[i % r]).collect();
    let recon = gemm::gemm_abt(&us, &d.v, m, n, r);
    // The deviation from I is formed in f32, from the f32 Gram matrix.
    let f32_dev = |q: &[f32], rows: usize| max_off_identity(&gemm::gram(q, rows, r), r, |g: f32| g as f64) as f32;
    let ortho = [f32_dev(&d.u, m), f32_dev(&d.v, n)];
    let mut out = Stages::default();
    out.push("s", Tensor::from_f32(vec![r], &d.s));
    out.push("u", Tensor::from_f32(vec![m, r], &d.u));
    out.push("v", Tensor::from_f32(vec![n, r], &d.v));
    out.push("reconstruction", Tensor::from_f32(vec![m, n], &recon));
    out.push("orthogonality", Tensor::from_f32(vec![2], &ortho));
    Ok(out)
}

fn phlora_fast(call: &Call) -> Result<Stages> {
    let (m, n, _) = svd_input(call)?;
    let r = rank_param(call, m, n)?;
    let x = call.input("x")?.to_f32_vec();
    let d = thin_svd(&x, m, n).ok_or_else(|| svd_failed(call, "f32"))?;
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

// ---------------------------------------------------------------- samples

/// A weight-like [m, n] matrix: N(0, 0.02²) entries plus a decaying low-rank
/// part, so the top singular values are spread out as in trained weights.
fn weight_like(rng: &mut SplitMix64, m: usize, n: usize) -> Vec<f32> {
    let noise = rng.normal_vec_f32(m * n, 0.02);
    let rank = m.min(n).min(8);
    let mut x: Vec<f64> = noise.iter().map(|&v| v as f64).collect();
    for p in 0..rank {
        let weight = 1.0 / (p + 1) as f64;
        let left: Vec<f64> = (0..m).map(|_| rng.normal() / (m as f64).sqrt()).collect();
        let right: Vec<f64> = (0..n).map(|_| rng.normal() / (n as f64).sqrt()).collect();
        for i in 0..m {
            for j in 0..n {
                x[i * n + j] += weight * left[i] * right[j];
            }
        }
    }
    x.into_iter().map(|v| v as f32).collect()
}

fn sample_svd(seed: u64, dims: &[usize]) -> Sample {
    let (m, n) = (dims[0], dims[1]);
    let mut rng = SplitMix64::new(seed);
    let mut inputs = Inputs::new();
    inputs.insert("x".into(), Tensor::from_f32(vec![m, n], &weight_like(&mut rng, m, n)));
    Sample { inputs, params: Params::new() }
}

fn sample_phlora(seed: u64, dims: &[usize]) -> Sample {
    let mut s = sample_svd(seed, &dims[..2]);
    s.params.insert("rank".into(), serde_json::json!(dims[2]));
    s
}
