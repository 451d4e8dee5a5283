//! `svd` — the thin SVD in torch.svd's layout, with its reconstruction and
//! orthogonality: the invariants two correct SVDs must agree on, and the
//! vectors (reported, since they are defined only up to sign and rotation).
//!
//! Both implementations run the same decomposition (nalgebra's, in f64; the
//! fast one rounds it to f32 and recomposes in f32); why, and the sign convention, are in `kernels/svd.rs`.

use super::kernels::gemm;
use super::kernels::matrix::matmul_f64;
use super::kernels::svd::{sample_x, svd_failed, svd_input, thin_svd, thin_svd_f32, S_TOLERANCE, S_WHY, VECTORS_TOLERANCE};
use super::{Accepts, Call, Input, Operation, Params, Sample, Stage, StageDtype, Stages};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;

const F32: StageDtype = StageDtype::Fixed(DType::F32);

pub static SVD: Operation = Operation {
    name: "svd",
    summary: "thin SVD x = u·diag(s)·vᵀ (torch.svd layout, signs canonicalised), its reconstruction and orthogonality",
    inputs: &[Input { name: "x", doc: "F32 [m, n] (F64/F16/BF16 read exactly), finite", optional: false, accepts: Accepts::NonFp8Float }],
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
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: &[&[128, 128], &[256, 512], &[512, 512]],
};

/// The SVD in f64, every stage in f64.
fn reference(call: &Call) -> Result<Stages> {
    let (m, n, x) = svd_input(call)?;
    let d = thin_svd(&x, m, n).ok_or_else(|| svd_failed(call, "f64"))?;
    let r = d.r;
    let us: Vec<f64> = (0..m * r).map(|i| d.u[i] * d.s[i % r]).collect();
    let recon = matmul_f64(&us, &transpose_f64(&d.v, n, r), m, r, n);
    let ortho = [orthogonality_f64(&d.u, m, r), orthogonality_f64(&d.v, n, r)];
    let mut out = Stages::default();
    out.push("s", Tensor::from_f64(vec![r], &d.s));
    out.push("u", Tensor::from_f64(vec![m, r], &d.u));
    out.push("v", Tensor::from_f64(vec![n, r], &d.v));
    out.push("reconstruction", Tensor::from_f64(vec![m, n], &recon));
    out.push("orthogonality", Tensor::from_f64(vec![2], &ortho));
    Ok(out)
}

/// The same SVD in f32, the reconstruction and Gram matrices on the f32 GEMM.
fn fast(call: &Call) -> Result<Stages> {
    let (m, n, _) = svd_input(call)?;
    let x = call.input("x")?.to_f32_vec();
    let d = thin_svd_f32(&x, m, n).ok_or_else(|| svd_failed(call, "f32"))?;
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
    let g = matmul_f64(&transpose_f64(q, rows, r), q, r, rows, r);
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

/// Random inputs: dims = [m, n], a weight-like x (see [`sample_x`]).
fn sample(seed: u64, dims: &[usize]) -> Sample {
    Sample { inputs: sample_x(seed, dims[0], dims[1]), params: Params::new() }
}
