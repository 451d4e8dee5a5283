//! The AVX-512 kernels: sixteen pairs per step, as two sets of the eight
//! lanes (pairs 0–7, then 8–15: the portable order). bf16 is widened to the
//! f32 bits of the same value (a 16-bit shift) on load.

use super::{Bounds, Codec, Lanes, BLOCK, LANES, MAG};
use std::arch::x86_64::*;

const _: () = assert!(LANES == 8 && BLOCK.is_multiple_of(16));

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
