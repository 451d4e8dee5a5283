//! The fast SVF: f32 compute on a real GEMM, bf16 output.
//!
//! Rounding, in order: inputs are f32 (wider inputs are rounded to f32 once,
//! RNE); `1 + offsets`, `s · (1 + offsets)`, `u · scaled_s` and
//! `matmul · normalization` each round to f32 as torch's f32 kernels do; the
//! two sums of `normalization` accumulate in f64 and round once (more exact
//! than an f32 sum and independent of vector width or thread count); the GEMM
//! accumulates in f32 (matrixmultiply's FMA microkernels). `final_bf16` is
//! f32 → bf16 RNE of `final_f32`.
//!
//! Determinism: matrixmultiply splits work over blocks of output rows, never
//! over the k dimension, so every output element sees the same summation
//! order whatever the thread count.

use super::plan;
use crate::dtype::DType;
use crate::error::Result;
use crate::numeric::round;
use crate::ops::linalg::gemm::{gemm_abt, transpose};
use crate::ops::{Call, Stages};
use crate::tensor::Tensor;

pub(super) fn run(call: &Call) -> Result<Stages> {
    let p = plan(call)?;
    let (m, n, k) = (p.m, p.n, p.k);
    let source = call.input("source")?;
    let u = call.input("u")?.to_f32_vec();
    let v = call.input("v")?.to_f32_vec();
    let s = call.input("s")?.to_f32_vec();
    let off = call.input("offsets")?.to_f32_vec();

    let scaled_s: Vec<f32> = s.iter().zip(&off).map(|(s, o)| s * (1.0 + o)).collect();
    // IEEE division, as torch: a zero denominator gives ±inf/NaN by design.
    let normalization =
        (s.iter().map(|&x| x as f64).sum::<f64>() as f32) / (scaled_s.iter().map(|&x| x as f64).sum::<f64>() as f32);

    let mut u_scaled = vec![0f32; m * k];
    let mut u_s = vec![0f32; m * k];
    for i in 0..m {
        for j in 0..k {
            u_scaled[i * k + j] = u[i * k + j] * scaled_s[j];
            u_s[i * k + j] = u[i * k + j] * s[j];
        }
    }
    let matmul = gemm_abt(&u_scaled, &v, m, n, k);
    let zero_source = gemm_abt(&u_s, &v, m, n, k);
    let adapted: Vec<f32> = matmul.iter().map(|x| x * normalization).collect();
    let (final_shape, final_f32) = if p.transpose { (vec![n, m], transpose(&adapted, m, n)) } else { (vec![m, n], adapted.clone()) };
    let final_bf16: Vec<u16> = final_f32.iter().map(|&x| round::f32_to_bf16_bits(x)).collect();

    let mut out = Stages::default();
    out.push("source_f32", Tensor::from_f32(vec![m, n], &source.to_f32_vec()));
    out.push("offsets_f32", Tensor::from_f32(vec![k], &off));
    out.push("scaled_s", Tensor::from_f32(vec![k], &scaled_s));
    out.push("normalization", Tensor::from_f32(vec![1], &[normalization]));
    out.push("u_scaled", Tensor::from_f32(vec![m, k], &u_scaled));
    out.push("matmul_pre_norm", Tensor::from_f32(vec![m, n], &matmul));
    out.push("zero_source_f32", Tensor::from_f32(vec![m, n], &zero_source));
    out.push("adapted_source_f32", Tensor::from_f32(vec![m, n], &adapted));
    out.push("final_f32", Tensor::from_f32(final_shape.clone(), &final_f32));
    out.push("final_bf16", Tensor::from_u16_bits(DType::BF16, final_shape, &final_bf16));
    Ok(out)
}
