//! One thin SVD for both precisions, shared by `svd` and `phlora`, and the
//! sign convention that makes an SVD comparable at all.
//!
//! Reference: nalgebra's SVD in f64, every stage in f64. Fast: the same
//! decomposition of the f32 input, rounded to f32 (see [`thin_svd_f32`] for
//! why not nalgebra's f32 iteration), the recompositions on the f32 GEMM,
//! every later stage in f32. Neither is LAPACK's
//! divide and conquer (what numpy and torch call), so the two only agree on
//! what the mathematics fixes — which is what the required stages are.
//!
//! An SVD is unique only up to the sign of each pair of singular vectors (and
//! a rotation within a repeated singular value). The sign is fixed here —
//! **each column of V has its largest-magnitude entry positive (ties: the
//! lowest index), and U's column flips with it** — so two correct SVDs of the
//! same matrix agree vector by vector whenever the singular values are well
//! separated. What no convention can fix (near-repeated singular values) is
//! why only the invariants (singular values, reconstruction, orthogonality,
//! residual) are required stages and the vectors are reported.

use super::matrix::float_matrix;
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use crate::ops::{Call, Inputs};
use nalgebra::{DMatrix, RealField};

/// Singular values of an f32 SVD: backward stable, so by Weyl's theorem each
/// is within ‖ΔX‖₂ ≈ c·√n·2⁻²⁴·σ_max of the exact one.
pub(crate) const S_TOLERANCE: Tolerance = Tolerance::gate(1e-4, 1e-5);
pub(crate) const S_WHY: &str = "backward-stable f32 SVD: |Δσ| ≤ ‖ΔX‖₂ ≈ c·√n·2⁻²⁴·σ_max (Weyl), ≲ 1e-5 for σ_max ≲ 10 and n ≲ 1024";
/// Singular vectors: reported, not required.
pub(crate) const VECTORS_TOLERANCE: Tolerance = Tolerance::gate(1e-3, 1e-5).optional();

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

/// The fast kernels' SVD of an f32 matrix: decomposed in f64, each factor
/// rounded once to f32 (round to nearest even, so every output is within
/// half an f32 ULP of the f64 SVD of the same f32 input).
///
/// Why not nalgebra's SVD in f32: its iteration is not backward stable
/// there. Measured (tests/ops_linalg.rs, seed 9324091984096631994): on a
/// 19 × 10 weight, σ₉ = 0.0571 where the f64 SVD of the same f32 values
/// gives 0.0569 — 2.5e-4 off, 1000× the Weyl bound an f32 LAPACK SVD keeps
/// (what torch calls); tightening its tolerance from 5ε to ε moved the
/// failures to other inputs. The decomposition is O(m·n·min(m, n)) either
/// way and not where these operations spend their time for weight shapes;
/// the recompositions stay on the f32 GEMM.
pub(crate) fn thin_svd_f32(x: &[f32], m: usize, n: usize) -> Option<ThinSvd<f32>> {
    let wide: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let d = thin_svd(&wide, m, n)?;
    let narrow = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let mut out = ThinSvd { r: d.r, s: narrow(d.s), u: narrow(d.u), v: narrow(d.v) };
    // Two entries of a column of V that differ by less than half an f32 ULP
    // round to one magnitude: the sign rule (ties: the lowest index) is
    // applied again to the f32 factors, as the oracle applies it to its own.
    canonicalise_signs(&mut out.u, &mut out.v, m, n, out.r);
    // An f64 value beyond f32's range becomes inf: refused like an overflow.
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    (finite(&out.s) && finite(&out.u) && finite(&out.v)).then_some(out)
}

/// The input `x` checked and read exactly: (m, n, values in f64).
pub(crate) fn svd_input(call: &Call) -> Result<(usize, usize, Vec<f64>)> {
    let (m, n) = float_matrix(call, "x")?;
    let x = call.input("x")?.to_f64_vec();
    finite_input(call, "x", &x)?;
    Ok((m, n, x))
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

pub(crate) fn svd_failed(call: &Call, precision: &str) -> crate::Error {
    call.error(format!("the {precision} SVD did not converge or overflowed (values too large for {precision}?)"))
}

/// Sample input `x`: a weight-like [m, n] matrix, N(0, 0.02²) entries plus a
/// decaying low-rank part, so the top singular values are spread out as in
/// trained weights.
pub(crate) fn sample_x(seed: u64, m: usize, n: usize) -> Inputs {
    let mut rng = SplitMix64::new(seed);
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
    let x: Vec<f32> = x.into_iter().map(|v| v as f32).collect();
    let mut inputs = Inputs::new();
    inputs.insert("x".into(), Tensor::from_f32(vec![m, n], &x));
    inputs
}
