//! What the linear-algebra operations (`matmul`, `svd`, `phlora`,
//! `lowrank_reconstruct`) share besides the f32 GEMM: the check of a matrix
//! input, the references' f64 product, and the limits of a GEMM's stage.

use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::ops::Call;
use nalgebra::DMatrix;

/// A GEMM's output: k-term f32 dot products. The limits are the SVF
/// profile's for its GEMM stages (SPEC §3), which comes from the workflow
/// this project replaces and fits the error growth `matmul`'s stage states.
pub(crate) const GEMM_TOLERANCE: Tolerance = Tolerance::gate(1e-3, 1e-5);

/// A 2-D float input as (rows, cols).
pub(crate) fn float_matrix(call: &Call, name: &str) -> Result<(usize, usize)> {
    let dims = call.matrix_dims(name)?;
    let t = call.input(name)?;
    if !t.dtype.is_float() || matches!(t.dtype, DType::F8E4M3 | DType::F8E5M2) {
        return Err(call.error(format!("input '{name}' is {}; expected F32 (or F64/F16/BF16)", t.dtype)));
    }
    Ok(dims)
}

/// `a @ b` in f64 for row-major `a` [m, k] and `b` [k, n] (nalgebra).
pub(crate) fn matmul_f64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    if m == 0 || n == 0 {
        return Vec::new();
    }
    let c = DMatrix::from_row_slice(m, k, a) * DMatrix::from_row_slice(k, n, b);
    c.transpose().as_slice().to_vec() // column-major → row-major
}
