//! The fast kernels' f32 GEMM: one wrapper around `matrixmultiply::sgemm`,
//! shared by every operation that multiplies matrices (SVF, matmul, SVD
//! recomposition, low-rank reconstruction).
//!
//! Accumulation is in f32 (matrixmultiply's FMA microkernels), as torch's CPU
//! f32 matmul does. Determinism: matrixmultiply splits work over blocks of
//! output rows, never over the k dimension, so every output element sees the
//! same summation order whatever the thread count.

/// A matrix operand read in place: element (i, j) is `data[i·rs + j·cs]`, so a
/// row-major matrix and its transpose are the same data with swapped strides.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Operand { data, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Operand { data, rs: 1, cs: cols }
    }
}

/// `a · b` for `a` [m, k] and `b` [k, n], row-major [m, n] result.
pub(crate) fn sgemm(m: usize, k: usize, n: usize, a: Operand, b: Operand) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    sgemm_into(m, k, n, a, b, &mut c);
    c
}

/// `a · b` written into `c` (row-major [m, n], overwritten), so callers can
/// multiply straight into a stage's storage.
pub(crate) fn sgemm_into(m: usize, k: usize, n: usize, a: Operand, b: Operand, c: &mut [f32]) {
    assert_eq!(c.len(), m * n, "sgemm: output is not [{m}, {n}]");
    if m == 0 || n == 0 || k == 0 {
        c.fill(0.0); // an empty sum is 0
        return;
    }
    // Not a debug assertion: these bounds are what makes the call below sound.
    assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len(), "sgemm: operand a shorter than [{m}, {k}]");
    assert!((k - 1) * b.rs + (n - 1) * b.cs < b.data.len(), "sgemm: operand b shorter than [{k}, {n}]");
    // SAFETY: the asserts above keep every strided read of a and b inside
    // their slices; c is [m, n] row-major (strides n, 1) and exactly m·n long.
    unsafe {
        matrixmultiply::sgemm(
            m, k, n, 1.0,
            a.data.as_ptr(), a.rs as isize, a.cs as isize,
            b.data.as_ptr(), b.rs as isize, b.cs as isize,
            0.0,
            c.as_mut_ptr(), n as isize, 1,
        );
    }
}

/// `a @ b` for row-major `a` [m, k] and `b` [k, n].
pub(crate) fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    sgemm(m, k, n, Operand::rows(a, k), Operand::rows(b, n))
}

/// `a @ bᵀ` for row-major `a` [m, k] and `b` [n, k], f32 accumulation.
pub(crate) fn gemm_abt(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    sgemm(m, k, n, Operand::rows(a, k), Operand::transposed(b, k))
}

/// `aᵀ @ a` for row-major `a` [m, k]: the [k, k] Gram matrix of its columns.
pub(crate) fn gram(a: &[f32], m: usize, k: usize) -> Vec<f32> {
    sgemm(k, m, k, Operand::transposed(a, k), Operand::rows(a, k))
}

/// Row-major [rows, cols] → row-major [cols, rows] into `out`, in
/// cache-sized tiles.
pub(crate) fn transpose_into(a: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    const T: usize = 32;
    assert_eq!(out.len(), a.len());
    for i0 in (0..rows).step_by(T) {
        for j0 in (0..cols).step_by(T) {
            for i in i0..(i0 + T).min(rows) {
                for j in j0..(j0 + T).min(cols) {
                    out[j * rows + i] = a[i * cols + j];
                }
            }
        }
    }
}
