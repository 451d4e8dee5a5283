//! The fused pass: one whole block of f32 or bf16 pairs (the same dtype on
//! both sides), measured straight from the stored bits, without f64 buffers,
//! masks or divisions. It gives exactly the numbers of the general pass
//! ([`super::general_block`]): the same f64 operations on the same values,
//! summed in the same [`LANES`] lanes in the same order. It declines (returns
//! false, having changed nothing) a block holding a NaN or an inf; the
//! general pass then measures it.
//!
//! Each kernel exists twice: portable Rust, which is the definition, and
//! AVX-512, chosen at run time, which computes the same lanes with one
//! `__m512d` per accumulator. IEEE arithmetic gives the same bits at any
//! width, and neither Rust nor the intrinsics contract `a * b + c` into an
//! FMA, so both give identical results (tested with [`force_kernels`]).
//!
//! A bit-identical pair of blocks — common: copied inputs, element-wise
//! stages computed alike — only needs `Σleft²`: every difference is 0, and
//! `Σleft·right = Σright² = Σleft²` term by term.

use super::{lane_max, lane_sum, BlockSums, Candidate, Codec, Limits, Partial, BLOCK, LANES};
use std::sync::atomic::{AtomicU8, Ordering};

/// The magnitude bits of an f32 (bf16 blocks are widened to f32 bits first).
const MAG: u32 = 0x7fff_ffff;
/// Magnitudes at or above this are ±inf or NaN.
const INF_BITS: u32 = 0x7f80_0000;

/// Which kernels measure whole f32/bf16 blocks (see [`force_kernels`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// AVX-512 where the CPU has it, else portable: the default.
    Best = 0,
    /// The portable fused kernels.
    Portable = 1,
    /// No fused pass: every block takes the general one.
    General = 2,
}

static KERNELS: AtomicU8 = AtomicU8::new(Kernels::Best as u8);

/// Make every later measurement use the given kernels. For tests that hold
/// them all to the same bits; results never depend on it.
#[doc(hidden)]
pub fn force_kernels(k: Kernels) {
    KERNELS.store(k as u8, Ordering::Relaxed);
}

/// Whether whole f32/bf16 blocks take the fused pass.
#[inline(always)]
pub(super) fn enabled() -> bool {
    KERNELS.load(Ordering::Relaxed) != Kernels::General as u8
}

#[inline(always)]
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        KERNELS.load(Ordering::Relaxed) == Kernels::Best as u8
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What a block contributes, as lanes (sums, maxima) and totals (counts).
#[derive(Default)]
struct Lanes {
    abs: [f64; LANES],
    sq: [f64; LANES],
    dot: [f64; LANES],
    ll: [f64; LANES],
    rr: [f64; LANES],
    max_abs: [f64; LANES],
    /// Pairs with `|d|` above the tolerance's `max_abs`.
    over: u64,
    /// Pairs outside the allclose rule.
    outside: u64,
    /// Some pair may beat the chunk's `max_rel` so far.
    rel_hit: bool,
    /// Pairs with equal stored bits.
    equal: u64,
    /// The largest magnitude bits on either side (≥ [`INF_BITS`]: not finite).
    max_mag: u32,
    /// The largest ULP distance, in f32 units.
    max_ulp: u32,
}

/// The limits the per-element counts and flags use: `[max_abs, rel_floor, rtol, atol]`.
type Bounds = [f64; 4];

/// Measure one whole block; false when it holds a NaN or an inf.
///
/// `max_rel` costs a multiplication here: a pair whose `|d| / |left|` could
/// beat the chunk's maximum so far only raises a flag, and a flagged block is
/// looked at again with the exact division (rare once the maximum settles).
#[inline(always)]
pub(super) fn block<C: Codec, const CLOSE: bool>(
    c: C,
    p: &mut Partial,
    b0: usize,
    lbytes: &[u8],
    rbytes: &[u8],
    lim: &Limits,
) -> bool {
    debug_assert!(C::FAST && lbytes.len() == BLOCK * c.size() && rbytes.len() == lbytes.len());
    let (rtol, atol) = lim.allclose.unwrap_or((0.0, 0.0));
    // A zero difference breaks no non-negative limit, so a bit-identical
    // block changes nothing but the sums and `compared`.
    let zero_passes = lim.max_abs >= 0.0 && rtol >= 0.0 && atol >= 0.0;
    if zero_passes && lbytes == rbytes {
        let (ll, max_mag) = if avx512() {
            // SAFETY: the CPU has AVX-512F/DQ, checked by `avx512()`.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                x86::equal::<C>(lbytes)
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!()
        } else {
            equal_portable(c, lbytes)
        };
        if max_mag >= INF_BITS {
            return false;
        }
        let s = lane_sum(&ll);
        // The lanes of Σ|d| and Σd² stay +0, and lane_sum(+0…) is +0.
        p.blocks.push(BlockSums { abs: 0.0, sq: 0.0, dot: s, ll: s, rr: s });
        p.tally.compared += BLOCK as u64;
        return true;
    }

    // fl(a / b) > M implies a > M·b exactly; lowering M by 2^-20 relative
    // absorbs the rounding of fl(M'·b), so no pair that beats M is missed
    // (differences of f32 values are 0 or ≥ 2^-149, far above underflow).
    // M = inf gives inf·b ≥ a or NaN: never flagged, and rightly so.
    let rel_floor = p.tally.max_rel * (1.0 - 1.0 / (1u64 << 20) as f64);
    let bounds = [lim.max_abs, rel_floor, rtol, atol];
    let f = if avx512() {
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::values::<C, CLOSE>(lbytes, rbytes, bounds)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!()
    } else {
        values_portable::<C, CLOSE>(c, lbytes, rbytes, bounds)
    };
    if f.max_mag >= INF_BITS {
        return false;
    }

    p.blocks.push(BlockSums {
        abs: lane_sum(&f.abs),
        sq: lane_sum(&f.sq),
        dot: lane_sum(&f.dot),
        ll: lane_sum(&f.ll),
        rr: lane_sum(&f.rr),
    });
    p.tally.compared += BLOCK as u64;
    p.tally.over_max_abs += f.over;
    p.tally.outside_allclose += f.outside;
    p.tally.not_bit_equal += BLOCK as u64 - f.equal;
    p.tally.max_ulp = p.tally.max_ulp.max((f.max_ulp >> C::ULP_SHIFT) as u64);

    // A second look, only where this block changes an index.
    let block_max_abs = lane_max(&f.max_abs);
    if block_max_abs > p.tally.max_abs {
        // The same operations on the same values give the same bits, so the
        // lanes' maximum is found again exactly (first occurrence).
        if let Some(j) = find_abs(c, lbytes, rbytes, block_max_abs) {
            (p.tally.max_abs, p.tally.max_abs_at) = (block_max_abs, Some(b0 + j));
        }
    }
    if f.rel_hit {
        // The first occurrence of the block's largest exact ratio, taken
        // only if strictly greater: what a scan in index order finds.
        let (m, j) = max_rel(c, lbytes, rbytes);
        if m > p.tally.max_rel {
            (p.tally.max_rel, p.tally.max_rel_at) = (m, Some(b0 + j));
        }
    }
    if block_max_abs > p.top.floor {
        for j in 0..BLOCK {
            let (lv, rv) = value_at(c, lbytes, rbytes, j);
            let a = (rv - lv).abs();
            if a > p.top.floor {
                p.top.offer(Candidate { key: a, index: b0 + j, left: lv, right: rv });
            }
        }
    }
    true
}

#[inline(always)]
fn value_at<C: Codec>(c: C, lbytes: &[u8], rbytes: &[u8], j: usize) -> (f64, f64) {
    let s = c.size();
    (c.value(&lbytes[j * s..j * s + s]), c.value(&rbytes[j * s..j * s + s]))
}

/// The first index whose `|right − left|` is `target`.
fn find_abs<C: Codec>(c: C, lbytes: &[u8], rbytes: &[u8], target: f64) -> Option<usize> {
    if avx512() {
        // SAFETY: the CPU has AVX-512F/DQ, checked by `avx512()`.
        #[cfg(target_arch = "x86_64")]
        return unsafe { x86::find_abs::<C>(lbytes, rbytes, target) };
    }
    (0..BLOCK).find(|&j| {
        let (lv, rv) = value_at(c, lbytes, rbytes, j);
        (rv - lv).abs() == target
    })
}

/// The block's largest `|right − left| / |left|` and its first index
/// (0/0 is NaN and never wins; x/0 is inf, "infinitely relative").
fn max_rel<C: Codec>(c: C, lbytes: &[u8], rbytes: &[u8]) -> (f64, usize) {
    if avx512() {
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        return unsafe { x86::max_rel::<C>(lbytes, rbytes) };
    }
    let (mut m, mut at) = (0.0f64, 0);
    for j in 0..BLOCK {
        let (lv, rv) = value_at(c, lbytes, rbytes, j);
        let rel = (rv - lv).abs() / lv.abs();
        if rel > m {
            (m, at) = (rel, j);
        }
    }
    (m, at)
}

/// The portable definition of [`x86::equal`]: `Σleft²` in lanes, and the
/// largest magnitude.
fn equal_portable<C: Codec>(c: C, bytes: &[u8]) -> ([f64; LANES], u32) {
    let (mut ll, mut mag) = ([0.0f64; LANES], 0u32);
    for b in bytes.chunks_exact(LANES * c.size()) {
        let x = c.load8(b);
        for k in 0..LANES {
            mag = mag.max(x[k] & MAG);
            let v = f32::from_bits(x[k]) as f64;
            ll[k] += v * v;
        }
    }
    (ll, mag)
}

/// The portable definition of [`x86::values`]: every lane and count of a
/// block, eight pairs (one per lane) at a time.
#[allow(clippy::needless_range_loop)] // index loops over lanes are what vectorises
fn values_portable<C: Codec, const CLOSE: bool>(c: C, lbytes: &[u8], rbytes: &[u8], bounds: Bounds) -> Lanes {
    let [max_abs, rel_floor, rtol, atol] = bounds;
    let mut f = Lanes::default();
    let step = LANES * c.size();
    for (lx, rx) in lbytes.chunks_exact(step).zip(rbytes.chunks_exact(step)) {
        let (x, y) = (c.load8(lx), c.load8(rx));
        for k in 0..LANES {
            f.equal += (x[k] == y[k]) as u64;
            let (mx, my) = (x[k] & MAG, y[k] & MAG);
            f.max_mag = f.max_mag.max(mx).max(my);
            // Sign-magnitude → monotone integer (−0 and +0 both 0), as
            // `DType::ordered_key`; the distance of two finite f32 keys is
            // below 2^32, so max − min wraps into the right u32.
            let kx = if (x[k] as i32) < 0 { (mx as i32).wrapping_neg() } else { mx as i32 };
            let ky = if (y[k] as i32) < 0 { (my as i32).wrapping_neg() } else { my as i32 };
            f.max_ulp = f.max_ulp.max(kx.max(ky).wrapping_sub(kx.min(ky)) as u32);
        }
        // f32 → f64 is exact.
        let lv: [f64; LANES] = std::array::from_fn(|k| f32::from_bits(x[k]) as f64);
        let rv: [f64; LANES] = std::array::from_fn(|k| f32::from_bits(y[k]) as f64);
        for k in 0..LANES {
            let d = rv[k] - lv[k];
            let a = d.abs();
            f.abs[k] += a;
            f.sq[k] += d * d;
            f.dot[k] += lv[k] * rv[k];
            f.ll[k] += lv[k] * lv[k];
            f.rr[k] += rv[k] * rv[k];
            f.max_abs[k] = if a > f.max_abs[k] { a } else { f.max_abs[k] };
            f.over += (a > max_abs) as u64;
            f.rel_hit |= a > rel_floor * lv[k].abs();
            if CLOSE {
                f.outside += (a > atol + rtol * lv[k].abs()) as u64;
            }
        }
    }
    f
}

/// The AVX-512 kernels: sixteen pairs per step, as two sets of the eight
/// lanes (pairs 0–7, then 8–15: the portable order). bf16 is widened to the
/// f32 bits of the same value (a 16-bit shift) on load.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Bounds, Codec, Lanes, BLOCK, LANES, MAG};
    use std::arch::x86_64::*;

    const _: () = assert!(LANES == 8 && BLOCK % 16 == 0);

    /// The bytes of sixteen elements: 64 for f32, 32 for bf16.
    #[inline(always)]
    fn bytes16<C: Codec>() -> usize {
        if C::ULP_SHIFT == 16 {
            32
        } else {
            64
        }
    }

    /// Sixteen elements at `p`, as the bits of the f32 with the same value.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn load16<C: Codec>(p: *const u8) -> __m512i {
        if C::ULP_SHIFT == 16 {
            _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())))
        } else {
            _mm512_loadu_si512(p.cast())
        }
    }

    /// The two halves of sixteen f32 bits, widened exactly to f64.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn widen(x: __m512i) -> [__m512d; 2] {
        let lo = _mm512_castsi512_si256(x);
        let hi = _mm512_extracti64x4_epi64::<1>(x);
        [_mm512_cvtps_pd(_mm256_castsi256_ps(lo)), _mm512_cvtps_pd(_mm256_castsi256_ps(hi))]
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn lanes_f64(v: __m512d) -> [f64; LANES] {
        let mut o = [0.0; LANES];
        _mm512_storeu_pd(o.as_mut_ptr(), v);
        o
    }

    /// [`super::equal_portable`].
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn equal<C: Codec>(bytes: &[u8]) -> ([f64; LANES], u32) {
        let step = bytes16::<C>();
        let (mut ll, mut mag) = (_mm512_setzero_pd(), _mm512_setzero_si512());
        let mag_bits = _mm512_set1_epi32(MAG as i32);
        for i in (0..bytes.len()).step_by(step) {
            let x = load16::<C>(bytes.as_ptr().add(i));
            mag = _mm512_max_epu32(mag, _mm512_and_si512(x, mag_bits));
            for v in widen(x) {
                ll = _mm512_add_pd(ll, _mm512_mul_pd(v, v));
            }
        }
        (lanes_f64(ll), _mm512_reduce_max_epu32(mag))
    }

    /// [`super::values_portable`].
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn values<C: Codec, const CLOSE: bool>(lbytes: &[u8], rbytes: &[u8], bounds: Bounds) -> Lanes {
        let step = bytes16::<C>();
        let [max_abs, rel_floor, rtol, atol] = bounds.map(|b| _mm512_set1_pd(b));
        let zd = _mm512_setzero_pd();
        let zi = _mm512_setzero_si512();
        let mag_bits = _mm512_set1_epi32(MAG as i32);
        let (mut abs, mut sq, mut dot, mut ll, mut rr, mut max) = (zd, zd, zd, zd, zd, zd);
        let (mut mag, mut ulp) = (zi, zi);
        let (mut equal, mut over, mut outside, mut hit) = (0u64, 0u64, 0u64, 0u8);
        for i in (0..lbytes.len()).step_by(step) {
            let x = load16::<C>(lbytes.as_ptr().add(i));
            let y = load16::<C>(rbytes.as_ptr().add(i));
            equal += _mm512_cmpeq_epi32_mask(x, y).count_ones() as u64;
            let (mx, my) = (_mm512_and_si512(x, mag_bits), _mm512_and_si512(y, mag_bits));
            mag = _mm512_max_epu32(mag, _mm512_max_epu32(mx, my));
            // Negative values' keys are −magnitude: 0 − m where the sign bit is set.
            let kx = _mm512_mask_sub_epi32(mx, _mm512_movepi32_mask(x), zi, mx);
            let ky = _mm512_mask_sub_epi32(my, _mm512_movepi32_mask(y), zi, my);
            ulp = _mm512_max_epu32(ulp, _mm512_sub_epi32(_mm512_max_epi32(kx, ky), _mm512_min_epi32(kx, ky)));
            let (xs, ys) = (widen(x), widen(y));
            for h in 0..2 {
                let (lv, rv) = (xs[h], ys[h]);
                let d = _mm512_sub_pd(rv, lv);
                let a = _mm512_abs_pd(d);
                abs = _mm512_add_pd(abs, a);
                sq = _mm512_add_pd(sq, _mm512_mul_pd(d, d));
                dot = _mm512_add_pd(dot, _mm512_mul_pd(lv, rv));
                ll = _mm512_add_pd(ll, _mm512_mul_pd(lv, lv));
                rr = _mm512_add_pd(rr, _mm512_mul_pd(rv, rv));
                // maxpd(a, m) is `if a > m { a } else { m }`.
                max = _mm512_max_pd(a, max);
                over += _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, max_abs).count_ones() as u64;
                let la = _mm512_abs_pd(lv);
                hit |= _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, _mm512_mul_pd(rel_floor, la));
                if CLOSE {
                    let bound = _mm512_add_pd(atol, _mm512_mul_pd(rtol, la));
                    outside += _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, bound).count_ones() as u64;
                }
            }
        }
        Lanes {
            abs: lanes_f64(abs),
            sq: lanes_f64(sq),
            dot: lanes_f64(dot),
            ll: lanes_f64(ll),
            rr: lanes_f64(rr),
            max_abs: lanes_f64(max),
            over,
            outside,
            rel_hit: hit != 0,
            equal,
            max_mag: _mm512_reduce_max_epu32(mag),
            max_ulp: _mm512_reduce_max_epu32(ulp),
        }
    }

    /// [`super::find_abs`].
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn find_abs<C: Codec>(lbytes: &[u8], rbytes: &[u8], target: f64) -> Option<usize> {
        let step = bytes16::<C>();
        let t = _mm512_set1_pd(target);
        for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
            let xs = widen(load16::<C>(lbytes.as_ptr().add(i)));
            let ys = widen(load16::<C>(rbytes.as_ptr().add(i)));
            for h in 0..2 {
                let a = _mm512_abs_pd(_mm512_sub_pd(ys[h], xs[h]));
                let m = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(a, t);
                if m != 0 {
                    return Some(16 * s + 8 * h + m.trailing_zeros() as usize);
                }
            }
        }
        None
    }

    /// [`super::max_rel`]: the maximum first (maxpd skips NaN, as `>` does),
    /// then its first index.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn max_rel<C: Codec>(lbytes: &[u8], rbytes: &[u8]) -> (f64, usize) {
        let step = bytes16::<C>();
        let mut m = _mm512_setzero_pd();
        for i in (0..lbytes.len()).step_by(step) {
            for h in 0..2 {
                m = _mm512_max_pd(rel::<C>(lbytes, rbytes, i, h), m);
            }
        }
        let best = _mm512_reduce_max_pd(m);
        if best <= 0.0 {
            return (0.0, 0);
        }
        let t = _mm512_set1_pd(best);
        for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
            for h in 0..2 {
                let hit = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(rel::<C>(lbytes, rbytes, i, h), t);
                if hit != 0 {
                    return (best, 16 * s + 8 * h + hit.trailing_zeros() as usize);
                }
            }
        }
        unreachable!("the block's maximum ratio occurs in the block")
    }

    /// `|right − left| / |left|` of half `h` of the sixteen pairs at byte `i`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn rel<C: Codec>(lbytes: &[u8], rbytes: &[u8], i: usize, h: usize) -> __m512d {
        let (xs, ys) = (widen(load16::<C>(lbytes.as_ptr().add(i))), widen(load16::<C>(rbytes.as_ptr().add(i))));
        _mm512_div_pd(_mm512_abs_pd(_mm512_sub_pd(ys[h], xs[h])), _mm512_abs_pd(xs[h]))
    }

}
