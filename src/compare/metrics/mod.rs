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
use rayon::prelude::*;

mod fused;
pub mod json;
pub use fused::{block_kernels, force_kernels, simd_choice, simd_path, simd_report, Kernels, SimdChoice, SimdPath};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

// ---------------------------------------------------------------------------
// Decoders: one per dtype fast path, plus a general one.

trait Codec: Copy + Send + Sync {
    fn dtype(self) -> DType;
    #[inline(always)]
    fn size(self) -> usize {
        self.dtype().size()
    }
    /// The element's value as f64 (exactly, but for an I64 beyond 2⁵³,
    /// which [`Codec::INT`] codecs never decide on).
    fn value(self, e: &[u8]) -> f64;
    /// The element's stored bits.
    fn bits(self, e: &[u8]) -> u64;
    /// Whether [`Codec::load8`] is available: the dtype widens exactly to f32
    /// and takes the fused block pass.
    const FAST: bool = false;
    /// Bits by which an f32 ULP count of the widened values exceeds the
    /// dtype's own (bf16 is the top half of an f32).
    const ULP_SHIFT: u32 = 0;
    /// Eight elements (`8 * size` bytes), widened to the bits of the f32 with
    /// the same value.
    #[inline(always)]
    fn load8(self, _b: &[u8]) -> [u32; 8] {
        unreachable!("load8 on a dtype without a fused pass")
    }
    /// Whether [`Codec::int`] is available: an integer dtype, measured by
    /// [`int_block`].
    const INT: bool = false;
    /// The element's value, exactly, as an integer.
    #[inline(always)]
    fn int(self, _e: &[u8]) -> i64 {
        unreachable!("int on a float dtype")
    }
}

#[derive(Clone, Copy)]
struct F32Codec;
#[derive(Clone, Copy)]
struct Bf16Codec;
#[derive(Clone, Copy)]
struct F16Codec;
#[derive(Clone, Copy)]
struct F64Codec;
#[derive(Clone, Copy)]
struct AnyCodec(DType);
/// An integer dtype (I8 … I64, U8, BOOL), read as an integer.
#[derive(Clone, Copy)]
struct IntCodec(DType);

impl Codec for F32Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::F32
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        f32::from_bits(self.bits(e) as u32) as f64
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as u64
    }
    const FAST: bool = true;
    #[inline(always)]
    fn load8(self, b: &[u8]) -> [u32; 8] {
        let b: &[u8; 32] = b.try_into().expect("8 f32");
        // SAFETY: 32 readable bytes; any bits are a valid [u32; 8].
        let w: [u32; 8] = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        w.map(u32::from_le)
    }
}

impl Codec for Bf16Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::BF16
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        // bf16 is the top half of an f32: widening is a shift, exact.
        f32::from_bits((self.bits(e) as u32) << 16) as f64
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u16::from_le_bytes([e[0], e[1]]) as u64
    }
    const FAST: bool = true;
    // Widening appends 16 zero bits: one bf16 ULP is 2^16 f32 ULPs.
    const ULP_SHIFT: u32 = 16;
    #[inline(always)]
    fn load8(self, b: &[u8]) -> [u32; 8] {
        let b: &[u8; 16] = b.try_into().expect("8 bf16");
        // SAFETY: 16 readable bytes; any bits are a valid [u16; 8].
        let w: [u16; 8] = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        w.map(|h| (u16::from_le(h) as u32) << 16)
    }
}

impl Codec for F16Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::F16
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        half::f16::from_bits(self.bits(e) as u16).to_f64()
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u16::from_le_bytes([e[0], e[1]]) as u64
    }
}

impl Codec for F64Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::F64
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        f64::from_bits(self.bits(e))
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]])
    }
}

impl Codec for IntCodec {
    fn dtype(self) -> DType {
        self.0
    }
    fn value(self, e: &[u8]) -> f64 {
        self.0.decode(e, 0)
    }
    fn bits(self, e: &[u8]) -> u64 {
        AnyCodec(self.0).bits(e)
    }
    const INT: bool = true;
    #[inline(always)]
    fn int(self, e: &[u8]) -> i64 {
        self.0.int(e, 0).expect("IntCodec holds an integer dtype")
    }
}

impl Codec for AnyCodec {
    fn dtype(self) -> DType {
        self.0
    }
    fn value(self, e: &[u8]) -> f64 {
        self.0.decode(e, 0)
    }
    fn bits(self, e: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b[..e.len()].copy_from_slice(e);
        u64::from_le_bytes(b)
    }
}

// ---------------------------------------------------------------------------
// The pass.

#[derive(Clone, Copy)]
struct Limits {
    max_abs: f64,
    allclose: Option<(f64, f64)>,
    top_k: usize,
    /// Take each side's content hash in the pass.
    hash: bool,
}

impl Limits {
    fn from(tol: &Tolerance, top_k: usize) -> Limits {
        let allclose = match (tol.rtol, tol.atol) {
            (None, None) => None,
            (r, a) => Some((r.unwrap_or(0.0), a.unwrap_or(0.0))),
        };
        Limits { max_abs: tol.max_abs, allclose, top_k, hash: false }
    }
}

struct Pass<'a> {
    left: Stage<'a>,
    right: Stage<'a>,
    limits: Limits,
    chunk: usize,
}

/// Sums of one block. f64 throughout: the inputs are f64-exact decodes and
/// an f32 accumulator would lose the very differences being measured (a sum
/// over 3M elements in f32 carries ~0.2 relative error). In f64 the error of
/// a 1024-term block sum is ~1e-13 relative, of the whole sum ~n/1024·1e-16.
#[derive(Clone, Copy, Default)]
struct BlockSums {
    abs: f64,
    sq: f64,
    dot: f64,
    ll: f64,
    rr: f64,
}

/// The counts and maxima that a chunk contributes and the running total
/// keeps, merged chunk by chunk in index order by [`Tally::merge`].
#[derive(Default)]
struct Tally {
    compared: u64,
    max_abs: f64,
    /// Integer dtypes: the exact `max_abs` (`max_abs` is its nearest f64,
    /// and rounding is monotone, so ordering by (`max_abs`, `max_abs_int`)
    /// is ordering by the exact value; floats leave it 0).
    max_abs_int: u64,
    /// Integer dtypes: Σ|d|, exactly (at most n·(2⁶⁴ − 1), well inside a u128).
    abs_sum_int: u128,
    max_abs_at: Option<usize>,
    max_rel: f64,
    max_rel_at: Option<usize>,
    max_ulp: u64,
    not_bit_equal: u64,
    over_max_abs: u64,
    outside_allclose: u64,
    nf: NonFiniteState,
}

impl Tally {
    /// Add a later chunk's tally. Maxima move only when strictly greater: on
    /// a tie the earlier chunk (the lower index) keeps its index.
    fn merge(&mut self, later: &Tally) {
        self.compared += later.compared;
        self.abs_sum_int += later.abs_sum_int;
        if (later.max_abs, later.max_abs_int) > (self.max_abs, self.max_abs_int) {
            (self.max_abs, self.max_abs_int, self.max_abs_at) = (later.max_abs, later.max_abs_int, later.max_abs_at);
        }
        if later.max_rel > self.max_rel {
            (self.max_rel, self.max_rel_at) = (later.max_rel, later.max_rel_at);
        }
        self.max_ulp = self.max_ulp.max(later.max_ulp);
        self.not_bit_equal += later.not_bit_equal;
        self.over_max_abs += later.over_max_abs;
        self.outside_allclose += later.outside_allclose;
        add_counts(&mut self.nf.left, &later.nf.left);
        add_counts(&mut self.nf.right, &later.nf.right);
        self.nf.mismatched += later.nf.mismatched;
        if self.nf.first.is_none() {
            self.nf.first = later.nf.first;
        }
    }
}

/// What one chunk contributes; merged in chunk order by [`Acc::merge`].
struct Partial {
    blocks: Vec<BlockSums>,
    tally: Tally,
    top: TopK,
    /// Per block, each side's xxh3-128 of its bytes (when hashing).
    digests: Vec<(u128, u128)>,
}

impl Partial {
    fn new(top_k: usize) -> Partial {
        Partial { blocks: Vec::new(), tally: Tally::default(), top: TopK::new(top_k), digests: Vec::new() }
    }
}

impl<'a> Pass<'a> {
    fn run<L: Codec, R: Codec>(&self, l: L, r: R, progress: &(dyn Fn(u64) + Sync)) -> Result<Acc> {
        let n = self.left.numel();
        let chunks = n.div_ceil(self.chunk);
        let mut acc = Acc::new(&self.limits, L::INT && R::INT);
        let mut start = 0;
        while start < chunks {
            let end = (start + WINDOW).min(chunks);
            let parts: Vec<Result<Partial>> = (start..end).into_par_iter().map(|c| self.read_chunk(l, r, c)).collect();
            for p in parts {
                acc.merge(p?);
            }
            progress(((end * self.chunk).min(n) - start * self.chunk) as u64);
            start = end;
        }
        Ok(acc)
    }

    /// Chunk `c`'s bytes on both sides, borrowed or read into the thread's
    /// buffers, then measured.
    fn read_chunk<L: Codec, R: Codec>(&self, l: L, r: R, c: usize) -> Result<Partial> {
        let n = self.left.numel();
        let (first, last) = (c * self.chunk, ((c + 1) * self.chunk).min(n));
        let (ls, rs) = (l.size(), r.size());
        CHUNK_BUFFERS.with(|cell| {
            // Never re-entered: measuring a chunk starts no other parallel work.
            let (lbuf, rbuf) = &mut *cell.borrow_mut();
            let lbytes = self.left.bytes.read(first * ls..last * ls, lbuf)?;
            let rbytes = self.right.bytes.read(first * rs..last * rs, rbuf)?;
            let mut p = self.chunk(l, r, first, lbytes, rbytes);
            if self.limits.hash {
                // Block by block, while the chunk is still in cache. Blocks
                // are fixed by element position, so the digests do not depend
                // on the chunk size.
                p.digests = lbytes
                    .chunks(BLOCK * ls)
                    .zip(rbytes.chunks(BLOCK * rs))
                    .map(|(a, b)| {
                        // Equal bytes have equal digests: hash once (a
                        // memcmp costs a fraction of a hash, and most blocks
                        // of a diffed checkpoint are identical).
                        let da = xxhash_rust::xxh3::xxh3_128(a);
                        (da, if a == b { da } else { xxhash_rust::xxh3::xxh3_128(b) })
                    })
                    .collect();
            }
            Ok(p)
        })
    }

    /// Measure chunk `c`, block by block. Whole f32/bf16 blocks without NaN
    /// or inf take [`fused::block`]; every other block is decoded once into two
    /// small f64 buffers (L1-resident, [`general_block`]), then summed in [`LANES`] interleaved
    /// lanes: independent accumulators that break the add-latency chain and
    /// let the compiler use SIMD. Lanes and blocks are fixed by element
    /// position, so the sums do not depend on the chunk size. Indices (of
    /// the maxima, of the top divergences) are found by a second look at a
    /// block only when that block can change them.
    fn chunk<L: Codec, R: Codec>(&self, l: L, r: R, first: usize, lchunk: &[u8], rchunk: &[u8]) -> Partial {
        #[cfg(target_arch = "x86_64")]
        {
            match fused::chunk_path() {
                // SAFETY: a path is only chosen or forced where the CPU has it.
                SimdPath::Avx512 => return unsafe { self.chunk_avx512(l, r, first, lchunk, rchunk) },
                SimdPath::Avx2 => return unsafe { self.chunk_avx2(l, r, first, lchunk, rchunk) },
                SimdPath::Portable => {}
            }
        }
        self.chunk_body(l, r, first, lchunk, rchunk)
    }

    /// The same code compiled for AVX-512 (decoding, ULP distances and the
    /// general pass's lanes eight f64 wide), as [`Self::chunk_avx2`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
    unsafe fn chunk_avx512<L: Codec, R: Codec>(&self, l: L, r: R, first: usize, lchunk: &[u8], rchunk: &[u8]) -> Partial {
        self.chunk_body(l, r, first, lchunk, rchunk)
    }

    /// The same code compiled for AVX2, chosen at run time: the default
    /// x86-64 target only has SSE2, which halves the lanes' SIMD width.
    /// IEEE arithmetic gives the same bits at any width, and Rust never
    /// contracts `a * b + c` into an FMA, so results are identical on every CPU.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn chunk_avx2<L: Codec, R: Codec>(&self, l: L, r: R, first: usize, lchunk: &[u8], rchunk: &[u8]) -> Partial {
        self.chunk_body(l, r, first, lchunk, rchunk)
    }

    #[inline(always)]
    fn chunk_body<L: Codec, R: Codec>(&self, l: L, r: R, first: usize, lchunk: &[u8], rchunk: &[u8]) -> Partial {
        let (ls, rs) = (l.size(), r.size());
        let last = first + lchunk.len() / ls;
        let same = l.dtype() == r.dtype();
        let lim = self.limits;
        let mut p = Partial::new(lim.top_k);
        p.blocks.reserve((last - first).div_ceil(BLOCK));
        let mut lb = [0f64; BLOCK];
        let mut rb = [0f64; BLOCK];
        let fused = L::FAST && R::FAST && same && fused::enabled();
        let mut b0 = first;
        while b0 < last {
            let len = (b0 + BLOCK).min(last) - b0;
            let (at, end) = (b0 - first, b0 - first + len);
            let lbytes = &lchunk[at * ls..end * ls];
            let rbytes = &rchunk[at * rs..end * rs];
            // Integers take their own pass (a constant per instantiation:
            // the float instantiations compile without it).
            if L::INT && R::INT {
                int_block(l, r, &mut p, b0, lbytes, rbytes, &lim);
                b0 += len;
                continue;
            }
            // Whole blocks of f32 or bf16 take the fused pass; it declines a
            // block holding a NaN or an inf, which the general pass then
            // measures (both give the same numbers on a finite block).
            // (Same dtype: `l` decodes both sides.)
            let done = fused
                && len == BLOCK
                && if lim.allclose.is_some() {
                    fused::block::<L, true>(l, &mut p, b0, lbytes, rbytes, &lim)
                } else {
                    fused::block::<L, false>(l, &mut p, b0, lbytes, rbytes, &lim)
                };
            if !done {
                general_block(l, r, &mut p, b0, lbytes, rbytes, &lim, (&mut lb, &mut rb));
            }
            b0 += len;
        }
        p
    }
}

/// The general pass over one block: decode into two f64 buffers, then sum
/// in lanes; non-finite pairs are masked out and classified.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn general_block<L: Codec, R: Codec>(
    l: L,
    r: R,
    p: &mut Partial,
    b0: usize,
    lbytes: &[u8],
    rbytes: &[u8],
    lim: &Limits,
    (lb, rb): (&mut [f64; BLOCK], &mut [f64; BLOCK]),
) {
    let (ls, rs) = (l.size(), r.size());
    let len = lbytes.len() / ls;
    let same = l.dtype() == r.dtype();
    // Integers step by 1, so their "ULP" distance is the integer distance.
    let ulp = same;
    // 1. Decode; bit-level facts come from the stored bits.
    let (mut not_bit_equal, mut max_ulp, mut non_finite) = (0u64, 0u64, false);
    let pairs = lbytes.chunks_exact(ls).zip(rbytes.chunks_exact(rs));
    for ((le, re), (lo, ro)) in pairs.zip(lb[..len].iter_mut().zip(rb[..len].iter_mut())) {
        let (lv, rv) = (l.value(le), r.value(re));
        (*lo, *ro) = (lv, rv);
        let finite = lv.is_finite() & rv.is_finite();
        non_finite |= !finite;
        if same {
            not_bit_equal += (l.bits(le) != r.bits(re)) as u64;
            if ulp {
                // NaN keys are meaningless: ULPs are over finite pairs only.
                let dist = l.dtype().ordered_key(le, 0).abs_diff(r.dtype().ordered_key(re, 0));
                max_ulp = max_ulp.max(if finite { dist } else { 0 });
            }
        }
    }
    p.tally.not_bit_equal += not_bit_equal;
    p.tally.max_ulp = p.tally.max_ulp.max(max_ulp);

    // 2. Sums, counts and block maxima, in lanes.
    let (lbl, rbl) = (&lb[..len], &rb[..len]);
    let mut lanes = Lanes::default();
    let (mut lc, mut rc) = (lbl.chunks_exact(LANES), rbl.chunks_exact(LANES));
    for (x, y) in (&mut lc).zip(&mut rc) {
        lanes.add(x.try_into().expect("LANES"), y.try_into().expect("LANES"), lim);
    }
    let rem = lc.remainder().len();
    if rem > 0 {
        // Padding lanes hold 0 vs 0: they add zeros and, being
        // "finite", one `compared` each, taken back below.
        let (mut x, mut y) = ([0.0; LANES], [0.0; LANES]);
        x[..rem].copy_from_slice(lc.remainder());
        y[..rem].copy_from_slice(rc.remainder());
        lanes.add(&x, &y, lim);
    }
    let (sums, block_max_abs, block_max_rel) = lanes.fold(p);
    if rem > 0 {
        p.tally.compared -= (LANES - rem) as u64;
    }
    p.blocks.push(sums);

    // 3. A second look, only where this block changes an index.
    let abs_at = |j: usize| (rbl[j] - lbl[j]).abs();
    let finite_at = |j: usize| lbl[j].is_finite() & rbl[j].is_finite();
    // The same operations on the same values give the same bits, so
    // the lanes' maximum is found again exactly (first occurrence).
    if block_max_abs > p.tally.max_abs {
        if let Some(j) = (0..len).find(|&j| finite_at(j) && abs_at(j) == block_max_abs) {
            (p.tally.max_abs, p.tally.max_abs_at) = (block_max_abs, Some(b0 + j));
        }
    }
    if block_max_rel > p.tally.max_rel {
        if let Some(j) = (0..len).find(|&j| finite_at(j) && abs_at(j) / lbl[j].abs() == block_max_rel) {
            (p.tally.max_rel, p.tally.max_rel_at) = (block_max_rel, Some(b0 + j));
        }
    }
    if non_finite || block_max_abs > p.top.floor {
        for j in 0..len {
            let (lv, rv) = (lbl[j], rbl[j]);
            if !finite_at(j) {
                non_finite_pair(&mut p.tally.nf, &mut p.top, b0 + j, lv, rv);
            } else if abs_at(j) > p.top.floor {
                p.top.offer(Candidate { key: abs_at(j), key_int: 0, index: b0 + j, left: lv, right: rv, exact: None });
            }
        }
    }
}

/// The pass over one block of two integer dtypes: every decision in
/// integers, the real-valued sums in f64.
///
/// Exact: `d = right − left` in i128 (|d| ≤ 2⁶⁴ − 1, a u64), so the maximum
/// and its index, `over_max_abs` (the integer against the f64 limit, by
/// [`crate::numeric::int::exceeds`]), the allclose count (the integer against
/// the f64 threshold `atol + rtol·|left|`, computed as the float path
/// computes it), Σ|d| (u128, for `mean_abs`), bit equality and the
/// integer (ULP) distance, and the top divergences' ranking and values.
///
/// Rounded, as for floats: Σd², Σleft·right, Σleft², Σright² (cosine, NMSE,
/// SQNR, RMS) and `max_rel`, real-valued by nature. Each term is formed from
/// the nearest f64 of the exact `d` (one rounding, none below 2⁵³), so a
/// difference of 1 at 2⁶² still makes Σd² = 1 and NMSE > 0; the values
/// themselves are rounded to f64 (relative error ≤ 2⁻⁵³). The sums run in
/// element order within the fixed block, so they do not depend on the chunk
/// size or the SIMD path (the same scalar code on each).
///
/// Integers are always finite: every pair is `compared`.
#[inline(always)]
fn int_block<L: Codec, R: Codec>(l: L, r: R, p: &mut Partial, b0: usize, lbytes: &[u8], rbytes: &[u8], lim: &Limits) {
    use crate::numeric::int::exceeds;
    let (ls, rs) = (l.size(), r.size());
    let same = l.dtype() == r.dtype();
    let mut sums = BlockSums::default();
    let pairs = lbytes.chunks_exact(ls).zip(rbytes.chunks_exact(rs));
    for (j, (le, re)) in pairs.enumerate() {
        let (a, b) = (l.int(le), r.int(re));
        let d = b as i128 - a as i128;
        let abs = d.unsigned_abs() as u64;
        let (lv, rv, df) = (a as f64, b as f64, d as f64);
        let t = &mut p.tally;
        t.compared += 1;
        if same {
            t.not_bit_equal += (l.bits(le) != r.bits(re)) as u64;
            // Integers step by 1: their ULP distance is |d|.
            t.max_ulp = t.max_ulp.max(abs);
        }
        // Σ|d| exactly (`mean_abs` takes it, not `sums.abs`, which stays 0).
        t.abs_sum_int += abs as u128;
        sums.sq += df * df;
        sums.dot += lv * rv;
        sums.ll += lv * lv;
        sums.rr += rv * rv;
        if abs > t.max_abs_int {
            (t.max_abs_int, t.max_abs, t.max_abs_at) = (abs, abs as f64, Some(b0 + j));
        }
        // As the float path: 0/0 is NaN and never wins, d/0 is inf.
        let rel = df.abs() / lv.abs();
        if rel > t.max_rel {
            (t.max_rel, t.max_rel_at) = (rel, Some(b0 + j));
        }
        t.over_max_abs += exceeds(abs, lim.max_abs) as u64;
        if let Some((rtol, atol)) = lim.allclose {
            t.outside_allclose += exceeds(abs, atol + rtol * lv.abs()) as u64;
        }
        // `>=`: a rounded key equal to the floor may still rank above it by
        // its exact key; `offer` decides by the full order.
        if abs > 0 && abs as f64 >= p.top.floor {
            p.top.offer(Candidate { key: abs as f64, key_int: abs, index: b0 + j, left: lv, right: rv, exact: Some((a, b)) });
        }
    }
    p.blocks.push(sums);
}

/// Interleaved accumulators: element `j` of a block goes to lane `j % LANES`.
/// Eight f64 lanes are one AVX-512 register ([`fused`] uses the same lanes).
const LANES: usize = 8;

/// The lanes' sum, in a fixed pairwise order.
#[inline(always)]
fn lane_sum(x: &[f64; LANES]) -> f64 {
    ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))
}

/// The lanes' maximum (lanes start at 0 and never hold NaN).
#[inline(always)]
fn lane_max(x: &[f64; LANES]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| if v > m { v } else { m })
}

#[derive(Default)]
struct Lanes {
    abs: [f64; LANES],
    sq: [f64; LANES],
    dot: [f64; LANES],
    ll: [f64; LANES],
    rr: [f64; LANES],
    max_abs: [f64; LANES],
    max_rel: [f64; LANES],
    compared: [u64; LANES],
    over: [u64; LANES],
    outside: [u64; LANES],
}

impl Lanes {
    /// LANES elements, one per lane. Branch-free, and written as one small
    /// loop per operation so that each becomes a SIMD instruction: a pair
    /// with a non-finite side contributes zeros (the non-finite rules handle it).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // index loops over lanes are what vectorises
    fn add(&mut self, x: &[f64; LANES], y: &[f64; LANES], lim: &Limits) {
        let mut finite = [false; LANES];
        let (mut lv, mut rv, mut d, mut a) = ([0.0; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
        for k in 0..LANES {
            finite[k] = x[k].abs() < f64::INFINITY && y[k].abs() < f64::INFINITY;
        }
        for k in 0..LANES {
            lv[k] = if finite[k] { x[k] } else { 0.0 };
            rv[k] = if finite[k] { y[k] } else { 0.0 };
        }
        for k in 0..LANES {
            d[k] = rv[k] - lv[k];
            a[k] = d[k].abs();
        }
        for k in 0..LANES {
            self.abs[k] += a[k];
        }
        for k in 0..LANES {
            self.sq[k] += d[k] * d[k];
        }
        for k in 0..LANES {
            self.dot[k] += lv[k] * rv[k];
        }
        for k in 0..LANES {
            self.ll[k] += lv[k] * lv[k];
        }
        for k in 0..LANES {
            self.rr[k] += rv[k] * rv[k];
        }
        for k in 0..LANES {
            self.max_abs[k] = if a[k] > self.max_abs[k] { a[k] } else { self.max_abs[k] };
        }
        // 0/0 (equal zeros, or a masked pair) is NaN and never wins;
        // a difference against a zero left value is inf, "infinitely relative".
        for k in 0..LANES {
            let rel = a[k] / lv[k].abs();
            self.max_rel[k] = if rel > self.max_rel[k] { rel } else { self.max_rel[k] };
        }
        for k in 0..LANES {
            self.compared[k] += finite[k] as u64;
        }
        for k in 0..LANES {
            self.over[k] += (finite[k] & (a[k] > lim.max_abs)) as u64;
        }
        if let Some((rtol, atol)) = lim.allclose {
            for k in 0..LANES {
                self.outside[k] += (finite[k] & (a[k] > atol + rtol * lv[k].abs())) as u64;
            }
        }
    }

    /// The block's sums (lanes added pairwise, a fixed order), its maxima,
    /// and its counts added into `p`.
    fn fold(&self, p: &mut Partial) -> (BlockSums, f64, f64) {
        p.tally.compared += self.compared.iter().sum::<u64>();
        p.tally.over_max_abs += self.over.iter().sum::<u64>();
        p.tally.outside_allclose += self.outside.iter().sum::<u64>();
        let sums = BlockSums {
            abs: lane_sum(&self.abs),
            sq: lane_sum(&self.sq),
            dot: lane_sum(&self.dot),
            ll: lane_sum(&self.ll),
            rr: lane_sum(&self.rr),
        };
        (sums, lane_max(&self.max_abs), lane_max(&self.max_rel))
    }
}

/// The non-finite facts of one chunk.
#[derive(Default)]
struct NonFiniteState {
    left: NonFiniteCounts,
    right: NonFiniteCounts,
    mismatched: u64,
    first: Option<usize>,
}

/// The cold path: at least one side is NaN or ±inf at index `i`.
#[cold]
#[inline(never)]
fn non_finite_pair(nf: &mut NonFiniteState, top: &mut TopK, i: usize, lv: f64, rv: f64) {
    fn class(v: f64, counts: &mut NonFiniteCounts) -> u8 {
        if v.is_nan() {
            counts.nan += 1;
            1
        } else if v == f64::INFINITY {
            counts.pos_inf += 1;
            2
        } else if v == f64::NEG_INFINITY {
            counts.neg_inf += 1;
            3
        } else {
            0
        }
    }
    let (lc, rc) = (class(lv, &mut nf.left), class(rv, &mut nf.right));
    if lc != rc {
        nf.mismatched += 1;
        nf.first.get_or_insert(i);
        // A non-finite mismatch outranks every finite difference in the top list.
        top.offer(Candidate { key: f64::INFINITY, key_int: 0, index: i, left: lv, right: rv, exact: None });
    }
}

/// The running total, merged chunk by chunk in index order.
struct Acc {
    sums: BlockSums,
    tally: Tally,
    top: Vec<Candidate>,
    top_k: usize,
    allclose: bool,
    /// Both dtypes are integers: the exact fields of the tally hold.
    int: bool,
    /// Each side's block digests, streamed in block order (when hashing).
    hashers: Option<Box<(xxhash_rust::xxh3::Xxh3, xxhash_rust::xxh3::Xxh3)>>,
}

impl Acc {
    fn new(limits: &Limits, int: bool) -> Acc {
        Acc {
            sums: BlockSums::default(),
            tally: Tally::default(),
            top: Vec::new(),
            top_k: limits.top_k,
            allclose: limits.allclose.is_some(),
            int,
            hashers: limits.hash.then(|| Box::new((xxhash_rust::xxh3::Xxh3::new(), xxhash_rust::xxh3::Xxh3::new()))),
        }
    }

    fn merge(&mut self, p: Partial) {
        // Block sums are added one by one in index order: the same additions in
        // the same order whatever the chunk size and the thread count.
        for b in &p.blocks {
            self.sums.abs += b.abs;
            self.sums.sq += b.sq;
            self.sums.dot += b.dot;
            self.sums.ll += b.ll;
            self.sums.rr += b.rr;
        }
        self.tally.merge(&p.tally);
        if let Some(h) = &mut self.hashers {
            for (a, b) in &p.digests {
                h.0.update(&a.to_le_bytes());
                h.1.update(&b.to_le_bytes());
            }
        }
        if self.top_k > 0 {
            self.top.extend(p.top.heap.into_vec());
            self.top.sort_unstable();
            self.top.truncate(self.top_k);
        }
    }

    fn finish(self, left: Stage, right: Stage) -> Metrics {
        let content_hash = self.hashers.as_ref().map(|h| {
            (content_hash(left.dtype, left.shape, h.0.digest128()), content_hash(right.dtype, right.shape, h.1.digest128()))
        });
        let t = &self.tally;
        let shape = left.shape;
        let n = t.compared as f64;
        let s = self.sums;
        let same = left.dtype == right.dtype;
        // The true mean (and rms) cannot exceed the max; rounding in the sum
        // can push the computed one a hair above it, so clamp.
        // Integers: the exact Σ|d| rounded once to f64, then divided (two
        // roundings, so a mean of equal integers is exactly 0 and of any
        // differing one is ≥ 1/n > 0).
        let abs_sum = if self.int { t.abs_sum_int as f64 } else { s.abs };
        let mean_abs = if t.compared > 0 { (abs_sum / n).min(t.max_abs) } else { 0.0 };
        let rms = if t.compared > 0 { (s.sq / n).sqrt().min(t.max_abs) } else { 0.0 };
        let nmse = if s.ll > 0.0 {
            s.sq / s.ll
        } else if s.sq == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        Metrics {
            numel: left.numel() as u64,
            compared: t.compared,
            max_abs: t.max_abs,
            max_abs_int: self.int.then_some(t.max_abs_int),
            max_abs_index: t.max_abs_at.map(|i| unravel(i, shape)),
            mean_abs,
            rms,
            max_rel: t.max_rel,
            max_rel_index: t.max_rel_at.map(|i| unravel(i, shape)),
            cosine: cosine(s.dot, s.ll, s.rr),
            nmse,
            sqnr_db: sqnr_db(s.ll, s.sq),
            max_ulp: same.then_some(t.max_ulp),
            not_bit_equal: same.then_some(t.not_bit_equal),
            bytes_equal: same && left.shape == right.shape && t.not_bit_equal == 0,
            over_max_abs: t.over_max_abs,
            outside_allclose: self.outside_allclose_opt(),
            non_finite: NonFinite {
                left: t.nf.left,
                right: t.nf.right,
                mismatched: t.nf.mismatched,
                first_mismatch: t.nf.first.map(|i| unravel(i, shape)),
            },
            top: self
                .top
                .iter()
                .map(|c| Divergence {
                    index: unravel(c.index, shape),
                    left: c.left,
                    right: c.right,
                    // Integers: the exact |d|'s nearest f64, not the
                    // difference of two rounded values.
                    abs_diff: if c.exact.is_some() { c.key_int as f64 } else { (c.right - c.left).abs() },
                    exact: c.exact,
                })
                .collect(),
            content_hash,
        }
    }

    fn outside_allclose_opt(&self) -> Option<u64> {
        self.allclose.then_some(self.tally.outside_allclose)
    }
}

/// A tensor's content hash: xxh3-128 over its dtype, its shape and the
/// xxh3-128 digests of its bytes taken block by block ([`BLOCK`] elements)
/// in order. Equal for equal (dtype, shape, bytes) wherever the bytes are
/// stored; blocks make it computable in parallel, in the metric pass.
/// Not a cryptographic hash: it recognises copies, it does not authenticate.
pub fn content_hash(dtype: DType, shape: &[usize], blocks_digest: u128) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(dtype.name().as_bytes());
    h.update(&(shape.len() as u64).to_le_bytes());
    for d in shape {
        h.update(&(*d as u64).to_le_bytes());
    }
    h.update(&blocks_digest.to_le_bytes());
    h.digest128()
}

fn add_counts(into: &mut NonFiniteCounts, from: &NonFiniteCounts) {
    into.nan += from.nan;
    into.pos_inf += from.pos_inf;
    into.neg_inf += from.neg_inf;
}

/// SQNR in dB from the merged block sums `ll = Σleft²` and `sq = Σd²`.
///
/// Both sums are the f64 block sums every other metric uses (gathered in
/// the one streaming pass, by every SIMD path alike, and merged in block
/// order), so SQNR is bit-identical whatever the thread count, chunk size
/// or kernel. Their relative error is that of an f64 sum (~n/1024·1e-16),
/// which moves the result by ~4.3·that in dB: far below the one decimal
/// people are shown. The ratio is taken directly when it is a normal f64;
/// when it would overflow or underflow (f64 stages with extreme ranges) the
/// logarithms are subtracted instead, so a tiny difference is a large
/// finite SQNR rather than a spurious +inf.
pub fn sqnr_db(ll: f64, sq: f64) -> f64 {
    if sq == 0.0 {
        return f64::INFINITY;
    }
    if ll == 0.0 {
        return f64::NEG_INFINITY;
    }
    let ratio = ll / sq;
    if ratio.is_finite() && ratio >= f64::MIN_POSITIVE {
        10.0 * ratio.log10()
    } else {
        10.0 * (ll.log10() - sq.log10())
    }
}

/// `dot / sqrt(ll·rr)`, with the degenerate cases defined (see module doc).
/// Taking one square root of the product (rather than the product of two
/// roots) makes a tensor's cosine with itself exactly 1: `sqrt(fl(x²)) = x`
/// for every x whose square neither overflows nor underflows.
fn cosine(dot: f64, ll: f64, rr: f64) -> f64 {
    if ll == 0.0 && rr == 0.0 {
        return 1.0;
    }
    if ll == 0.0 || rr == 0.0 {
        return 0.0;
    }
    let p = ll * rr;
    let c = if p.is_finite() && p >= f64::MIN_POSITIVE { dot / p.sqrt() } else { dot / (ll.sqrt() * rr.sqrt()) };
    c.clamp(-1.0, 1.0)
}

// ---------------------------------------------------------------------------
// Top-K divergences.

#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// |d|, or +inf for a non-finite mismatch.
    key: f64,
    /// Integer dtypes: |d| exactly, breaking the ties of its rounded `key`
    /// (0 for floats).
    key_int: u64,
    index: usize,
    left: f64,
    right: f64,
    /// Integer dtypes: the two values exactly.
    exact: Option<(i64, i64)>,
}

/// "Less" is "ranks higher": larger key first (the exact integer key
/// breaking ties of the rounded one), then lower index. The heap (a
/// max-heap) therefore keeps the lowest-ranked kept candidate on top.
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.total_cmp(&self.key).then(o.key_int.cmp(&self.key_int)).then(self.index.cmp(&o.index))
    }
}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Candidate {}

struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
    /// A candidate must beat this key to enter (0 until full, then the
    /// lowest kept key: within a chunk indices only grow, so a tie never wins).
    floor: f64,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK { k, heap: BinaryHeap::new(), floor: if k == 0 { f64::INFINITY } else { 0.0 } }
    }
    fn offer(&mut self, c: Candidate) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if c < *self.heap.peek().expect("full heap") {
            self.heap.pop();
            self.heap.push(c);
        }
        if self.heap.len() == self.k {
            self.floor = self.heap.peek().expect("full heap").key;
        }
    }
}
