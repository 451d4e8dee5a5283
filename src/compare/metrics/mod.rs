//! The comparer's metrics: every number about one stage, in one streaming pass.
//!
//! The two sides are read straight from their memory-mapped bundles in chunks
//! of [`CHUNK`] elements. Chunks are measured in parallel (rayon) and their
//! partial results are merged *sequentially, in chunk order*, so the result is
//! bit-identical whatever the number of threads. Sums are formed per fixed
//! [`BLOCK`] of elements and the block sums are added in index order, so the
//! result is also bit-identical whatever the chunk size: the chunk size is a
//! performance knob, never a numerical one. Chunks are processed a window at a
//! time, so memory stays bounded whatever the tensor's size; no tensor is ever
//! decoded into a `Vec<f64>`.
//!
//! Conventions (LEFT is the baseline, `d = right − left`):
//! * NaN and ±inf are compared by position and sign (a NaN's sign bit is
//!   ignored); a position where the sides' classes differ is a *non-finite
//!   mismatch*. Every other metric is taken over the positions where both
//!   sides are finite (`compared`).
//! * `max_rel = max |d| / |left|`; a difference against a left value of 0 is
//!   infinitely relative, as in `torch.testing`.
//! * `cosine` of two all-zero tensors is 1 (they agree), of a zero and a
//!   non-zero tensor 0. `nmse = Σd² / Σleft²`, 0 when both sums are 0, inf
//!   when only the left one is. Every metric of an empty tensor is 0 (cosine 1).
//! * `sqnr_db = 10·log10(Σleft² / Σd²)`, from the same two sums as `nmse`:
//!   +inf when every difference is 0 (an all-zero or empty pair included),
//!   −inf when LEFT is all zeros and RIGHT is not.
//! * ULP distance and bit equality are taken from the stored bits and exist
//!   only when both sides have the same dtype (ULP: in units of that dtype,
//!   -0 and +0 being 0 ULP apart; for integers, the integer distance).
//! * Two integer dtypes (I8 … I64, U8, BOOL) are compared as integers: `d`
//!   is taken in i64/u64 arithmetic, never through f64 (whose 53-bit
//!   significand calls 2⁶² and 2⁶² + 1 equal), so `max_abs` ([`Metrics::max_abs_int`]),
//!   the limit counts and `mean_abs`'s sum are exact; see [`int_block`].

use super::tolerance::Tolerance;
use crate::format::dtype::DType;
use crate::format::bundle::Region;
use crate::error::Result;
use crate::format::tensor::TensorView;
use std::cell::RefCell;

mod acc;
mod codecs;
mod fused;
mod hash;
mod pass;
mod topk;
pub mod json;
pub use hash::content_hash;
pub use acc::sqnr_db;
use acc::*;
use codecs::*;
use pass::*;
use topk::*;
pub use fused::{block_kernels, force_kernels, simd_choice, simd_path, simd_report, Kernels, SimdChoice, SimdPath};

/// Elements per parallel work item: large enough to amortise scheduling,
/// small enough to load-balance two cores on a 3M-element stage.
pub const CHUNK: usize = 1 << 16;
/// Elements per summation block. Fixed, so that sums do not depend on `CHUNK`.
pub const BLOCK: usize = 1 << 10;
/// Chunks measured per parallel window: bounds the partial results held at once.
const WINDOW: usize = 64;

/// Non-finite values on one side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NonFiniteCounts {
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
}

impl NonFiniteCounts {
    pub fn total(&self) -> u64 {
        self.nan + self.pos_inf + self.neg_inf
    }
}

/// The non-finite facts of a stage (SPEC §3).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NonFinite {
    pub left: NonFiniteCounts,
    pub right: NonFiniteCounts,
    /// Positions where the sides are not the same non-finite class
    /// (NaN vs number, +inf vs −inf, inf vs number).
    pub mismatched: u64,
    pub first_mismatch: Option<Vec<usize>>,
}

/// One of the largest divergences (`--top-diffs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    pub index: Vec<usize>,
    pub left: f64,
    pub right: f64,
    /// `|right − left|` (NaN or inf at a non-finite mismatch; those rank first).
    pub abs_diff: f64,
    /// Integer dtypes: the two values exactly (`left`, `right` and
    /// `abs_diff` above are their nearest f64s).
    pub exact: Option<(i64, i64)>,
}

impl Divergence {
    /// `|right − left|` exactly, for integer dtypes.
    pub fn abs_diff_int(&self) -> Option<u64> {
        self.exact.map(|(l, r)| crate::numeric::int::abs_diff(l, r))
    }
}

/// Every number about one stage. Indices are multi-indices into the shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub numel: u64,
    /// Positions where both sides are finite: what the metrics below are over.
    pub compared: u64,
    /// The largest `|d|` (for integer dtypes, the nearest f64 to
    /// [`Metrics::max_abs_int`], which is what limits are held against).
    pub max_abs: f64,
    /// Integer dtypes on both sides: the largest `|d|`, exactly (None for
    /// floats).
    pub max_abs_int: Option<u64>,
    /// Where `max_abs` is reached first (None when every difference is 0).
    pub max_abs_index: Option<Vec<usize>>,
    pub mean_abs: f64,
    /// Root mean square of the difference.
    pub rms: f64,
    pub max_rel: f64,
    pub max_rel_index: Option<Vec<usize>>,
    pub cosine: f64,
    pub nmse: f64,
    /// Signal-to-quantisation-noise ratio in dB, LEFT being the signal:
    /// `10·log10(Σleft² / Σd²)` (see [`sqnr_db`] for the edge cases).
    pub sqnr_db: f64,
    /// Σleft² and Σd² over the compared pairs, the sums `nmse` and
    /// `sqnr_db` are made of (f64, in the pass's fixed order).
    pub signal_sq: f64,
    pub error_sq: f64,
    /// Max ULP distance, in units of the (shared) float dtype; None otherwise.
    pub max_ulp: Option<u64>,
    /// Elements whose stored bits differ; None when the dtypes differ.
    pub not_bit_equal: Option<u64>,
    /// Same dtype, same shape, same bytes.
    pub bytes_equal: bool,
    /// Finite positions with `|d|` above the tolerance's `max_abs`.
    pub over_max_abs: u64,
    /// Finite positions breaking `|d| ≤ atol + rtol·|left|`, when the
    /// tolerance has an allclose rule.
    pub outside_allclose: Option<u64>,
    pub non_finite: NonFinite,
    /// The largest divergences, largest first, ties by lower index.
    pub top: Vec<Divergence>,
    /// Each side's content hash (see [`content_hash`]), when asked for.
    pub content_hash: Option<(u128, u128)>,
}

/// One side of a stage comparison: its dtype and shape, and where its bytes are.
#[derive(Clone, Copy, Debug)]
pub struct Stage<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    pub bytes: Bytes<'a>,
}

/// Where a stage's bytes are read from, chunk by chunk.
#[derive(Clone, Copy, Debug)]
pub enum Bytes<'a> {
    /// Already in memory (a tensor, a mapped file): chunks are borrowed.
    Memory(&'a [u8]),
    /// In a bundle file: each chunk is read into a buffer of the worker
    /// thread's, reused, so memory stays bounded and no page is mapped.
    File(Region<'a>),
}

impl<'a> From<TensorView<'a>> for Stage<'a> {
    fn from(v: TensorView<'a>) -> Stage<'a> {
        Stage { dtype: v.dtype, shape: v.shape, bytes: Bytes::Memory(v.data) }
    }
}

impl Stage<'_> {
    pub fn numel(&self) -> usize {
        crate::format::tensor::numel(self.shape)
    }

    /// The whole stage's bytes, copied out in one read (the explanations of
    /// a failing stage need random access: a transpose, a row permutation).
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let len = self.numel() * self.dtype.size();
        let mut buf = Vec::new();
        match self.bytes {
            Bytes::Memory(d) => buf.extend_from_slice(&d[..len]),
            Bytes::File(region) => {
                buf.resize(len, 0);
                region.read_at(0, &mut buf)?;
            }
        }
        Ok(buf)
    }
}

thread_local! {
    /// The worker thread's chunk buffers (left, right) for [`Bytes::File`].
    static CHUNK_BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl<'a> Bytes<'a> {
    /// Bytes `range` of the stage: borrowed, or read into `buf`.
    fn read<'b>(&self, range: std::ops::Range<usize>, buf: &'b mut Vec<u8>) -> Result<&'b [u8]>
    where
        'a: 'b,
    {
        match *self {
            Bytes::Memory(d) => Ok(&d[range]),
            Bytes::File(region) => {
                let n = range.len();
                if buf.len() < n {
                    // Grown once per thread to a chunk's size, then reused.
                    buf.resize(n, 0);
                }
                region.read_at(range.start, &mut buf[..n])?;
                Ok(&buf[..n])
            }
        }
    }
}

/// Measure two views of the same number of elements (the caller checks the
/// shapes; differing element counts are a bug in the caller and panic). `tol` only decides the per-element counts (`over_max_abs`,
/// `outside_allclose`); judging happens elsewhere.
pub fn measure(left: TensorView, right: TensorView, tol: &Tolerance, top_k: usize) -> Metrics {
    measure_with(left, right, tol, top_k, CHUNK, &|_| {})
}

/// [`measure`] with an explicit chunk size (rounded up to a whole number of
/// blocks) and a callback told how many elements each window covered.
pub fn measure_with(
    left: TensorView,
    right: TensorView,
    tol: &Tolerance,
    top_k: usize,
    chunk: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Metrics {
    measure_stages(left.into(), right.into(), tol, top_k, chunk, progress).expect("reading memory cannot fail")
}

/// [`measure_with`] for stages wherever their bytes are; fails only when a
/// file cannot be read.
pub fn measure_stages(
    left: Stage,
    right: Stage,
    tol: &Tolerance,
    top_k: usize,
    chunk: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Metrics> {
    measure_stages_hashed(left, right, tol, top_k, chunk, false, progress)
}

/// [`measure_stages`] that also takes each side's [`content_hash`] in the
/// same pass (`parity diff`: identical tensors are recognised by content,
/// whatever the file they are in).
pub fn measure_stages_hashed(
    left: Stage,
    right: Stage,
    tol: &Tolerance,
    top_k: usize,
    chunk: usize,
    hash: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Metrics> {
    assert_eq!(left.numel(), right.numel(), "measure: callers compare equal shapes only");
    let chunk = chunk.div_ceil(BLOCK).max(1) * BLOCK;
    let mut limits = Limits::from(tol, top_k);
    limits.hash = hash;
    // The dtype decides the decoder once, outside the loop; the loop itself is
    // monomorphised per pair. Mixed or rare dtypes take the general decoder:
    // mixed dtypes fail the gate anyway, so their speed matters little.
    use DType::*;
    let pass = Pass { left, right, limits, chunk };
    let acc = match (left.dtype, right.dtype) {
        (F32, F32) => pass.run(F32Codec, F32Codec, progress),
        (BF16, BF16) => pass.run(Bf16Codec, Bf16Codec, progress),
        (F16, F16) => pass.run(F16Codec, F16Codec, progress),
        (F64, F64) => pass.run(F64Codec, F64Codec, progress),
        // Integers as integers, whatever their widths (see [`int_block`]).
        (l, r) if l.is_integer() && r.is_integer() => pass.run(IntCodec(l), IntCodec(r), progress),
        (l, r) => pass.run(AnyCodec(l), AnyCodec(r), progress),
    }?;
    Ok(acc.finish(left, right))
}

/// Row-major flat index → multi-index.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        if dim > 0 {
            *slot = flat % dim;
            flat /= dim;
        }
    }
    index
}
