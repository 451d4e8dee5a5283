//! One stage pair's streaming pass: the limits, chunks measured a window at
//! a time in parallel and merged in chunk order, and the general and
//! integer block kernels (the SIMD paths are in `fused`).

use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use rayon::prelude::*;

use super::*;


#[derive(Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_abs: f64,
    pub(super) allclose: Option<(f64, f64)>,
    pub(super) top_k: usize,
    /// Take each side's content hash in the pass.
    pub(super) hash: bool,
}

impl Limits {
    pub(super) fn from(tol: &Tolerance, top_k: usize) -> Limits {
        let allclose = match (tol.rtol, tol.atol) {
            (None, None) => None,
            (r, a) => Some((r.unwrap_or(0.0), a.unwrap_or(0.0))),
        };
        Limits { max_abs: tol.max_abs, allclose, top_k, hash: false }
    }
}

pub(super) struct Pass<'a> {
    pub(super) left: Stage<'a>,
    pub(super) right: Stage<'a>,
    pub(super) limits: Limits,
    pub(super) chunk: usize,
}

/// Sums of one block. f64 throughout: the inputs are f64-exact decodes and
/// an f32 accumulator would lose the very differences being measured (a sum
/// over 3M elements in f32 carries ~0.2 relative error). In f64 the error of
/// a 1024-term block sum is ~1e-13 relative, of the whole sum ~n/1024·1e-16.
#[derive(Clone, Copy, Default)]
pub(super) struct BlockSums {
    pub(super) abs: f64,
    pub(super) sq: f64,
    pub(super) dot: f64,
    pub(super) ll: f64,
    pub(super) rr: f64,
}

/// The counts and maxima that a chunk contributes and the running total
/// keeps, merged chunk by chunk in index order by [`Tally::merge`].
#[derive(Default)]
pub(super) struct Tally {
    pub(super) compared: u64,
    pub(super) max_abs: f64,
    /// Integer dtypes: the exact `max_abs` (`max_abs` is its nearest f64,
    /// and rounding is monotone, so ordering by (`max_abs`, `max_abs_int`)
    /// is ordering by the exact value; floats leave it 0).
    pub(super) max_abs_int: u64,
    /// Integer dtypes: Σ|d|, exactly (at most n·(2⁶⁴ − 1), well inside a u128).
    pub(super) abs_sum_int: u128,
    pub(super) max_abs_at: Option<usize>,
    pub(super) max_rel: f64,
    pub(super) max_rel_at: Option<usize>,
    pub(super) max_ulp: u64,
    pub(super) not_bit_equal: u64,
    pub(super) over_max_abs: u64,
    pub(super) outside_allclose: u64,
    pub(super) nf: NonFiniteState,
}

impl Tally {
    /// Add a later chunk's tally. Maxima move only when strictly greater: on
    /// a tie the earlier chunk (the lower index) keeps its index.
    pub(super) fn merge(&mut self, later: &Tally) {
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
pub(super) struct Partial {
    pub(super) blocks: Vec<BlockSums>,
    pub(super) tally: Tally,
    pub(super) top: TopK,
    /// Per block, each side's xxh3-128 of its bytes (when hashing).
    pub(super) digests: Vec<(u128, u128)>,
}

impl Partial {
    pub(super) fn new(top_k: usize) -> Partial {
        Partial { blocks: Vec::new(), tally: Tally::default(), top: TopK::new(top_k), digests: Vec::new() }
    }
}

impl<'a> Pass<'a> {
    pub(super) fn run<L: Codec, R: Codec>(&self, l: L, r: R, progress: &(dyn Fn(u64) + Sync)) -> Result<Acc> {
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
    pub(super) fn read_chunk<L: Codec, R: Codec>(&self, l: L, r: R, c: usize) -> Result<Partial> {
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
    pub(super) fn chunk<L: Codec, R: Codec>(&self, l: L, r: R, first: usize, lchunk: &[u8], rchunk: &[u8]) -> Partial {
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
    pub(super) fn chunk_body<L: Codec, R: Codec>(&self, l: L, r: R, first: usize, lchunk: &[u8], rchunk: &[u8]) -> Partial {
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
pub(super) fn general_block<L: Codec, R: Codec>(
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
    // 1. Decode each side in bulk (the dtype's vectorised loop: f32, bf16,
    // f16, f64; the same values as `Codec::value`, NaN for NaN), then the
    // bit-level facts from the stored bits.
    l.dtype().decode_into(lbytes, &mut lb[..len]);
    r.dtype().decode_into(rbytes, &mut rb[..len]);
    let (mut not_bit_equal, mut max_ulp, mut non_finite) = (0u64, 0u64, false);
    for (&lv, &rv) in lb[..len].iter().zip(&rb[..len]) {
        non_finite |= !(lv.is_finite() & rv.is_finite());
    }
    if same {
        let pairs = lbytes.chunks_exact(ls).zip(rbytes.chunks_exact(rs));
        for ((le, re), (&lv, &rv)) in pairs.zip(lb[..len].iter().zip(rb[..len].iter())) {
            let finite = lv.is_finite() & rv.is_finite();
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
pub(super) fn int_block<L: Codec, R: Codec>(l: L, r: R, p: &mut Partial, b0: usize, lbytes: &[u8], rbytes: &[u8], lim: &Limits) {
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
