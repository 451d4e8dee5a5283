//! The AVX2 kernels: eight pairs per step, each accumulator two `__m256d`
//! (lanes 0–3, then 4–7), so lane `k` adds pair `8s + k` at step `s`, as the
//! portable loop does (`values` takes the two halves in turn). bf16 is widened to the f32 bits of the same value (a
//! 16-bit shift) on load. Counts are kept per lane in vectors (subtracting
//! a comparison's mask, −1 where true, adds 1) and summed at the end:
//! integers, so in any order.
//!
//! Compiled with FMA enabled (the path is chosen on AVX2+FMA CPUs) but no
//! FMA intrinsic is used, and Rust never contracts `a * b + c`: every
//! product is rounded before its sum, as on the other paths.
//!
//! Every function here is `unsafe` for one reason, the caller's to uphold:
//! the CPU has AVX2 and FMA. Memory safety is argued inside: loads read only
//! `[i, i + step)` with `i + step ≤ len`.

use super::{Bounds, Codec, Lanes, BLOCK, LANES, MAG};
use std::arch::x86_64::*;

const _: () = assert!(LANES == 8 && BLOCK.is_multiple_of(8));

/// The bytes of eight elements: 32 for f32, 16 for bf16.
#[inline(always)]
fn bytes8<C: Codec>() -> usize {
    debug_assert!(C::FAST);
    if C::ULP_SHIFT == 16 {
        16
    } else {
        32
    }
}

/// Eight elements at `p`, as the bits of the f32 with the same value.
/// The caller guarantees `bytes8::<C>()` readable bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load8<C: Codec>(p: *const u8) -> __m256i {
    // SAFETY: unaligned loads of exactly `bytes8::<C>()` bytes.
    unsafe {
        if C::ULP_SHIFT == 16 {
            _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())))
        } else {
            _mm256_loadu_si256(p.cast())
        }
    }
}

/// Eight f32 bits widened exactly to f64: lanes 0–3 and 4–7.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn widen(x: __m256i) -> [__m256d; 2] {
    let f = _mm256_castsi256_ps(x);
    [_mm256_cvtps_pd(_mm256_castps256_ps128(f)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(f))]
}

/// `|v|`: the sign bit cleared, as `f64::abs`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn abs(v: __m256d) -> __m256d {
    _mm256_andnot_pd(_mm256_set1_pd(-0.0), v)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn lanes_f64(v: [__m256d; 2]) -> [f64; LANES] {
    let mut o = [0.0; LANES];
    let (lo, hi) = o.split_at_mut(4);
    // SAFETY: each half of `o` holds four f64, the 32 bytes stored.
    unsafe {
        _mm256_storeu_pd(lo.as_mut_ptr(), v[0]);
        _mm256_storeu_pd(hi.as_mut_ptr(), v[1]);
    }
    o
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn words(v: __m256i) -> [u32; 8] {
    let mut o = [0u32; 8];
    // SAFETY: `o` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), v) };
    o
}

/// The sum of four u64 counts.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn count64(v: __m256i) -> u64 {
    let w = words(v);
    (0..4).map(|i| w[2 * i] as u64 | (w[2 * i + 1] as u64) << 32).sum()
}

/// [`super::equal_portable`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn equal<C: Codec>(bytes: &[u8]) -> ([f64; LANES], u32) {
    let step = bytes8::<C>();
    debug_assert!(bytes.len().is_multiple_of(step));
    let mut ll = [_mm256_setzero_pd(); 2];
    let mut mag = _mm256_setzero_si256();
    let mag_bits = _mm256_set1_epi32(MAG as i32);
    for i in (0..bytes.len()).step_by(step) {
        // SAFETY: i < len and len is a multiple of step, so
        // [i, i + step) lies inside `bytes`.
        let x = unsafe { load8::<C>(bytes.as_ptr().add(i)) };
        mag = _mm256_max_epu32(mag, _mm256_and_si256(x, mag_bits));
        let v = widen(x);
        for h in 0..2 {
            ll[h] = _mm256_add_pd(ll[h], _mm256_mul_pd(v[h], v[h]));
        }
    }
    (lanes_f64(ll), words(mag).into_iter().max().unwrap_or(0))
}

/// Four elements at `p` (lanes `4h..4h + 4` of a step), widened exactly
/// to f64. The caller guarantees `bytes8::<C>() / 2` readable bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load4_f64<C: Codec>(p: *const u8) -> __m256d {
    // SAFETY: unaligned loads of exactly half a step: 8 bytes (bf16) or 16 (f32).
    unsafe {
        if C::ULP_SHIFT == 16 {
            let w = _mm_slli_epi32::<16>(_mm_cvtepu16_epi32(_mm_loadl_epi64(p.cast())));
            _mm256_cvtps_pd(_mm_castsi128_ps(w))
        } else {
            _mm256_cvtps_pd(_mm_loadu_ps(p.cast()))
        }
    }
}

/// [`super::values_portable`], in three passes over the block (it is in
/// L1): the bit-level facts eight pairs at a time, then lanes 0–3, then
/// lanes 4–7. Each lane still adds pair `8s + k` at step `s`, in order
/// of `s`: the portable order. (Sixteen AVX2 registers cannot hold the
/// twelve f64 accumulators of both halves and the counters at once;
/// one half at a time they stay in registers instead of spilling.)
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn values<C: Codec, const CLOSE: bool>(lbytes: &[u8], rbytes: &[u8], bounds: Bounds) -> Lanes {
    let step = bytes8::<C>();
    debug_assert!(lbytes.len().is_multiple_of(step) && rbytes.len() == lbytes.len());
    let zi = _mm256_setzero_si256();
    let mag_bits = _mm256_set1_epi32(MAG as i32);
    // Per lane: equal pairs (i32, at most BLOCK / 8), the largest
    // magnitude and ULP distance (u32).
    let (mut equal, mut mag, mut ulp) = (zi, zi, zi);
    for i in (0..lbytes.len()).step_by(step) {
        // SAFETY: i < len, len a multiple of step, both sides len bytes.
        let (x, y) = unsafe { (load8::<C>(lbytes.as_ptr().add(i)), load8::<C>(rbytes.as_ptr().add(i))) };
        equal = _mm256_sub_epi32(equal, _mm256_cmpeq_epi32(x, y));
        let (mx, my) = (_mm256_and_si256(x, mag_bits), _mm256_and_si256(y, mag_bits));
        mag = _mm256_max_epu32(mag, _mm256_max_epu32(mx, my));
        // Keys: −magnitude where the sign bit is set (x < 0 as i32), the
        // magnitude otherwise (where x is 0 the magnitude is 0 anyway).
        let (kx, ky) = (_mm256_sign_epi32(mx, x), _mm256_sign_epi32(my, y));
        ulp = _mm256_max_epu32(ulp, _mm256_sub_epi32(_mm256_max_epi32(kx, ky), _mm256_min_epi32(kx, ky)));
    }
    let [max_abs, rel_floor, rtol, atol] = bounds.map(|b| _mm256_set1_pd(b));
    let zd = [_mm256_setzero_pd(); 2];
    let (mut sum_abs, mut sq, mut dot, mut ll, mut rr, mut max) = (zd, zd, zd, zd, zd, zd);
    // Per lane: pairs over max_abs and outside allclose (u64).
    let (mut over, mut outside) = (zi, zi);
    let mut hit = _mm256_setzero_pd();
    let half = step / 2;
    for h in 0..2 {
        let (mut s_abs, mut s_sq, mut s_dot, mut s_ll, mut s_rr, mut s_max) = (zd[h], zd[h], zd[h], zd[h], zd[h], zd[h]);
        for i in (h * half..lbytes.len()).step_by(step) {
            // SAFETY: i + half ≤ len: i = s·step + h·half with s·step < len.
            let (lv, rv) = unsafe { (load4_f64::<C>(lbytes.as_ptr().add(i)), load4_f64::<C>(rbytes.as_ptr().add(i))) };
            let d = _mm256_sub_pd(rv, lv);
            let a = abs(d);
            s_abs = _mm256_add_pd(s_abs, a);
            s_sq = _mm256_add_pd(s_sq, _mm256_mul_pd(d, d));
            s_dot = _mm256_add_pd(s_dot, _mm256_mul_pd(lv, rv));
            s_ll = _mm256_add_pd(s_ll, _mm256_mul_pd(lv, lv));
            s_rr = _mm256_add_pd(s_rr, _mm256_mul_pd(rv, rv));
            // maxpd(a, m) is `if a > m { a } else { m }`.
            s_max = _mm256_max_pd(a, s_max);
            over = _mm256_sub_epi64(over, _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_GT_OQ>(a, max_abs)));
            let la = abs(lv);
            hit = _mm256_or_pd(hit, _mm256_cmp_pd::<_CMP_GT_OQ>(a, _mm256_mul_pd(rel_floor, la)));
            if CLOSE {
                let bound = _mm256_add_pd(atol, _mm256_mul_pd(rtol, la));
                outside = _mm256_sub_epi64(outside, _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_GT_OQ>(a, bound)));
            }
        }
        (sum_abs[h], sq[h], dot[h], ll[h], rr[h], max[h]) = (s_abs, s_sq, s_dot, s_ll, s_rr, s_max);
    }
    Lanes {
        abs: lanes_f64(sum_abs),
        sq: lanes_f64(sq),
        dot: lanes_f64(dot),
        ll: lanes_f64(ll),
        rr: lanes_f64(rr),
        max_abs: lanes_f64(max),
        over: count64(over),
        outside: count64(outside),
        rel_hit: _mm256_movemask_pd(hit) != 0,
        equal: words(equal).iter().map(|&e| e as u64).sum(),
        max_mag: words(mag).into_iter().max().unwrap_or(0),
        max_ulp: words(ulp).into_iter().max().unwrap_or(0),
    }
}

/// `|right − left|` of the eight pairs at byte `i`, as lanes 0–3, 4–7.
/// The caller guarantees `i + bytes8::<C>() ≤ len` on both sides.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn abs_diff<C: Codec>(lbytes: &[u8], rbytes: &[u8], i: usize) -> ([__m256d; 2], [__m256d; 2]) {
    // SAFETY: the caller's bound.
    let (x, y) = unsafe { (load8::<C>(lbytes.as_ptr().add(i)), load8::<C>(rbytes.as_ptr().add(i))) };
    let (xs, ys) = (widen(x), widen(y));
    ([abs(_mm256_sub_pd(ys[0], xs[0])), abs(_mm256_sub_pd(ys[1], xs[1]))], xs)
}

/// [`super::find_abs`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn find_abs<C: Codec>(lbytes: &[u8], rbytes: &[u8], target: f64) -> Option<usize> {
    let step = bytes8::<C>();
    debug_assert!(lbytes.len().is_multiple_of(step) && rbytes.len() == lbytes.len());
    let t = _mm256_set1_pd(target);
    for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
        // SAFETY: i < len, len a multiple of step, both sides len bytes.
        let (a, _) = unsafe { abs_diff::<C>(lbytes, rbytes, i) };
        for (h, a) in a.into_iter().enumerate() {
            let m = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(a, t));
            if m != 0 {
                return Some(8 * s + 4 * h + m.trailing_zeros() as usize);
            }
        }
    }
    None
}

/// [`super::max_rel`]: the maximum first (maxpd skips NaN, as `>` does),
/// then its first index.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn max_rel<C: Codec>(lbytes: &[u8], rbytes: &[u8]) -> (f64, usize) {
    let step = bytes8::<C>();
    debug_assert!(lbytes.len().is_multiple_of(step) && rbytes.len() == lbytes.len());
    // SAFETY (both loops): i < len, len a multiple of step, both sides len bytes.
    let rel = |i: usize| {
        let (a, xs) = unsafe { abs_diff::<C>(lbytes, rbytes, i) };
        [_mm256_div_pd(a[0], abs(xs[0])), _mm256_div_pd(a[1], abs(xs[1]))]
    };
    let mut m = _mm256_setzero_pd();
    for i in (0..lbytes.len()).step_by(step) {
        for r in rel(i) {
            m = _mm256_max_pd(r, m);
        }
    }
    let best = lanes_f64([m, m])[..4].iter().fold(0.0f64, |b, &v| if v > b { v } else { b });
    if best <= 0.0 {
        return (0.0, 0);
    }
    let t = _mm256_set1_pd(best);
    for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
        for (h, r) in rel(i).into_iter().enumerate() {
            let hit = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(r, t));
            if hit != 0 {
                return (best, 8 * s + 4 * h + hit.trailing_zeros() as usize);
            }
        }
    }
    unreachable!("the block's maximum ratio occurs in the block")
}
