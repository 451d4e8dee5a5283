//! The reference SVF: every stage computed in f64, for clarity over speed.
//!
//! Returns wide stages (F64 where SPEC declares F32); `Stages::narrow` rounds
//! each to f32 once. `final_bf16` is rounded from the f32-rounded final value
//! — f64 → f32 → bf16, both RNE — because that is the contract's definition
//! (a port writes bf16 from its own f32 result), even though it is a double
//! rounding compared with f64 → bf16 directly.

use super::plan;
use crate::error::Result;
use crate::numeric::round;
use crate::ops::{Call, Stages};
use crate::format::tensor::Tensor;
use nalgebra::DMatrix;

pub(super) fn run(call: &Call) -> Result<Stages> {
    let p = plan(call)?;
    let (m, n, k) = (p.m, p.n, p.k);
    let source = call.input("source")?;
    let offsets = call.input("offsets")?;
    let s = call.input("s")?.to_f64_vec();
    let off = offsets.to_f64_vec();

    let scaled_s: Vec<f64> = s.iter().zip(&off).map(|(s, o)| s * (1.0 + o)).collect();
    // IEEE division as torch does it: sum(scaled_s) == 0 gives ±inf or NaN,
    // which then propagates through the later stages. That is the defined
    // result (a port must reproduce it), not an error.
    let normalization = s.iter().sum::<f64>() / scaled_s.iter().sum::<f64>();

    // Row-major [m, k] and [n, k] into nalgebra (column-major) matrices.
    let u = DMatrix::from_row_slice(m, k, &call.input("u")?.to_f64_vec());
    let v = DMatrix::from_row_slice(n, k, &call.input("v")?.to_f64_vec());
    let u_scaled = DMatrix::from_fn(m, k, |i, j| u[(i, j)] * scaled_s[j]);
    let u_s = DMatrix::from_fn(m, k, |i, j| u[(i, j)] * s[j]);
    let matmul = &u_scaled * v.transpose();
    let zero_source = &u_s * v.transpose();
    let adapted = &matmul * normalization;
    let final_ = if p.transpose { adapted.transpose() } else { adapted.clone() };

    let final_f32: Vec<f32> = row_major(&final_).into_iter().map(round::f64_to_f32).collect();
    let final_bf16: Vec<u16> = final_f32.iter().map(|&x| round::f32_to_bf16_bits(x)).collect();

    let mut out = Stages::default();
    out.push("source_f32", Tensor::from_f64(vec![m, n], &source.to_f64_vec()));
    out.push("offsets_f32", Tensor::from_f64(vec![k], &off));
    out.push("scaled_s", Tensor::from_f64(vec![k], &scaled_s));
    out.push("normalization", Tensor::from_f64(vec![1], &[normalization]));
    out.push("u_scaled", Tensor::from_f64(vec![m, k], &row_major(&u_scaled)));
    out.push("matmul_pre_norm", Tensor::from_f64(vec![m, n], &row_major(&matmul)));
    out.push("zero_source_f32", Tensor::from_f64(vec![m, n], &row_major(&zero_source)));
    out.push("adapted_source_f32", Tensor::from_f64(vec![m, n], &row_major(&adapted)));
    out.push("final_f32", Tensor::from_f64(vec![final_.nrows(), final_.ncols()], &row_major(&final_)));
    out.push("final_bf16", Tensor::from_u16_bits(crate::format::dtype::DType::BF16, vec![final_.nrows(), final_.ncols()], &final_bf16));
    Ok(out)
}

fn row_major(a: &DMatrix<f64>) -> Vec<f64> {
    a.transpose().as_slice().to_vec()
}
