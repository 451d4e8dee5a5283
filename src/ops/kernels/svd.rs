//! Linear algebra: `matmul`, `svd`, `phlora` (the rank-r factorization of
//! PHLoRA) and `lowrank_reconstruct`, with what they share: the f32 GEMM of
//! the fast kernels ([`gemm`]), one thin SVD for both precisions, and the
//! sign convention that makes an SVD comparable at all.
//!
//! An SVD is unique only up to the sign of each pair of singular vectors (and
//! a rotation within a repeated singular value). The sign is fixed here —
//! **each column of V has its largest-magnitude entry positive (ties: the
//! lowest index), and U's column flips with it** — so two correct SVDs of the
//! same matrix agree vector by vector whenever the singular values are well
//! separated. What no convention can fix (near-repeated singular values) is
//! why only the invariants (singular values, reconstruction, orthogonality,
//! residual) are required stages and the vectors are reported.

pub(crate) mod gemm;
mod lowrank;
mod matmul;
mod svd;

pub use lowrank::LOWRANK_RECONSTRUCT;
pub use matmul::MATMUL;
pub use svd::{PHLORA, SVD};

use super::Call;
use crate::format::dtype::DType;
use crate::error::Result;
use nalgebra::{DMatrix, RealField};

/// A 2-D float input as (rows, cols).
fn float_matrix(call: &Call, name: &str) -> Result<(usize, usize)> {
    let dims = call.matrix_dims(name)?;
    let t = call.input(name)?;
    if !t.dtype.is_float() || matches!(t.dtype, DType::F8E4M3 | DType::F8E5M2) {
        return Err(call.error(format!("input '{name}' is {}; expected F32 (or F64/F16/BF16)", t.dtype)));
    }
    Ok(dims)
}

/// `a @ b` in f64 for row-major `a` [m, k] and `b` [k, n] (nalgebra).
fn matmul_f64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    if m == 0 || n == 0 {
        return Vec::new();
    }
    let c = DMatrix::from_row_slice(m, k, a) * DMatrix::from_row_slice(k, n, b);
    c.transpose().as_slice().to_vec() // column-major → row-major
}

/// A thin SVD `x = u · diag(s) · vᵀ` in torch.svd's layout, row-major:
/// `s` [r] descending and ≥ 0, `u` [m, r], `v` [n, r] (V, not Vᵀ), r = min(m, n),
/// signs canonicalised (see the module doc).
pub(crate) struct ThinSvd<T> {
    pub r: usize,
    pub s: Vec<T>,
    pub u: Vec<T>,
    pub v: Vec<T>,
}

/// nalgebra's SVD (Householder bidiagonalization, implicit-shift QR) in the
/// precision `T`, sorted and sign-canonicalised. None if it does not converge
/// or produces non-finite values (an f32 matrix near f32::MAX can overflow).
/// The caller rejects non-finite input first.
pub(crate) fn thin_svd<T: RealField + Copy>(x: &[T], m: usize, n: usize) -> Option<ThinSvd<T>> {
    let r = m.min(n);
    if r == 0 {
        return Some(ThinSvd { r, s: vec![], u: vec![], v: vec![] });
    }
    let eps = T::default_epsilon() * nalgebra::convert(5.0); // nalgebra's own default
    // An iteration budget instead of nalgebra's "until convergence": a
    // pathological input becomes an error, never a hang.
    let max_niter = 1000 * (r + 1);
    let svd = nalgebra::linalg::SVD::try_new_unordered(DMatrix::from_row_slice(m, n, x), true, true, eps, max_niter)?;
    let (uu, vt, sv) = (svd.u?, svd.v_t?, svd.singular_values);

    // Descending by magnitude; a stable sort keeps equal values in
    // nalgebra's order, so the result is deterministic.
    let mut order: Vec<usize> = (0..r).collect();
    order.sort_by(|&a, &b| sv[b].abs().partial_cmp(&sv[a].abs()).unwrap_or(std::cmp::Ordering::Equal));
    let mut out = ThinSvd { r, s: vec![T::zero(); r], u: vec![T::zero(); m * r], v: vec![T::zero(); n * r] };
    for (j, &o) in order.iter().enumerate() {
        // nalgebra returns non-negative values; a negative one would carry its
        // sign into u.
        let flip = if sv[o] < T::zero() { -T::one() } else { T::one() };
        out.s[j] = sv[o] * flip;
        for i in 0..m {
            out.u[i * r + j] = uu[(i, o)] * flip;
        }
        for i in 0..n {
            out.v[i * r + j] = vt[(o, i)];
        }
    }
    canonicalise_signs(&mut out.u, &mut out.v, m, n, r);
    let finite = |v: &[T]| v.iter().all(|x| x.is_finite());
    (finite(&out.s) && finite(&out.u) && finite(&out.v)).then_some(out)
}

/// Flip each singular pair so that V's column has its largest-magnitude entry
/// positive (the first such entry on ties).
pub(crate) fn canonicalise_signs<T: RealField + Copy>(u: &mut [T], v: &mut [T], m: usize, n: usize, r: usize) {
    for j in 0..r {
        let mut at = 0;
        for i in 1..n {
            if v[i * r + j].abs() > v[at * r + j].abs() {
                at = i;
            }
        }
        if v[at * r + j] < T::zero() {
            for i in 0..n {
                v[i * r + j] = -v[i * r + j];
            }
            for i in 0..m {
                u[i * r + j] = -u[i * r + j];
            }
        }
    }
}

/// Refuse NaN/inf: an SVD of such a matrix is undefined (LAPACK reports
/// non-convergence, nalgebra would not terminate).
fn finite_input(call: &Call, name: &str, values: &[f64]) -> Result<()> {
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(call.error(format!("input '{name}' holds {bad} NaN/inf value(s): its SVD is undefined")));
    }
    Ok(())
}
