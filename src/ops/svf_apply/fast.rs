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
//!
//! Memory: inputs are read in place and every stage is computed straight
//! into its own storage — on large weights, fresh memory (which the kernel
//! must zero) costs more than the arithmetic around the GEMMs.

use super::plan;
use crate::format::dtype::{DType, DType::F32};
use crate::error::Result;
use crate::numeric::round;
use crate::ops::linalg::gemm::{sgemm_into, transpose_into, Operand};
use crate::ops::{Call, Stages};
use crate::format::tensor::Tensor;

pub(super) fn run(call: &Call) -> Result<Stages> {
    let p = plan(call)?;
    let (m, n, k) = (p.m, p.n, p.k);
    let source = call.input("source")?;
    let (u, v) = (call.input("u")?.f32s(), call.input("v")?.f32s());
    let (s, off) = (call.input("s")?.f32s(), call.input("offsets")?.f32s());

    let scaled_s: Vec<f32> = s.iter().zip(off.iter()).map(|(s, o)| s * (1.0 + o)).collect();
    // IEEE division, as torch: a zero denominator gives ±inf/NaN by design.
    let normalization =
        (s.iter().map(|&x| x as f64).sum::<f64>() as f32) / (scaled_s.iter().map(|&x| x as f64).sum::<f64>() as f32);

    let u_scaled = Tensor::f32_with(vec![m, k], |out| scale_columns(&u, &scaled_s, k, out));
    let u_s = Tensor::f32_with(vec![m, k], |out| scale_columns(&u, &s, k, out));
    let vt = Operand::transposed(&v, k);
    let matmul = Tensor::f32_with(vec![m, n], |c| sgemm_into(m, k, n, Operand::rows(&u_scaled.f32s(), k), vt, c));
    let zero_source = Tensor::f32_with(vec![m, n], |c| sgemm_into(m, k, n, Operand::rows(&u_s.f32s(), k), vt, c));
    drop(u_s);
    let adapted = Tensor::f32_with(vec![m, n], |out| {
        for (o, x) in out.iter_mut().zip(matmul.f32s().iter()) {
            *o = x * normalization;
        }
    });
    let final_f32 = if p.transpose {
        Tensor::f32_with(vec![n, m], |out| transpose_into(&adapted.f32s(), m, n, out))
    } else {
        adapted.clone()
    };
    let final_bf16 = Tensor::u16_with(DType::BF16, final_f32.shape.clone(), |bits| {
        for (b, &x) in bits.iter_mut().zip(final_f32.f32s().iter()) {
            *b = round::f32_to_bf16_bits(x);
        }
    });

    let mut out = Stages::default();
    let source_f32 = if source.dtype == F32 { source.clone() } else { Tensor::from_f32(vec![m, n], &source.to_f32_vec()) };
    out.push("source_f32", source_f32);
    out.push("offsets_f32", Tensor::from_f32(vec![k], &off));
    out.push("scaled_s", Tensor::from_f32(vec![k], &scaled_s));
    out.push("normalization", Tensor::from_f32(vec![1], &[normalization]));
    out.push("u_scaled", u_scaled);
    out.push("matmul_pre_norm", matmul);
    out.push("zero_source_f32", zero_source);
    out.push("adapted_source_f32", adapted);
    out.push("final_f32", final_f32);
    out.push("final_bf16", final_bf16);
    Ok(out)
}

/// `out[i, j] = u[i, j] · by[j]` for row-major [·, k]: one f32 rounding each.
fn scale_columns(u: &[f32], by: &[f32], k: usize, out: &mut [f32]) {
    for (row_out, row_u) in out.chunks_exact_mut(k.max(1)).zip(u.chunks_exact(k.max(1))) {
        for ((o, x), c) in row_out.iter_mut().zip(row_u).zip(by) {
            *o = x * c;
        }
    }
}
