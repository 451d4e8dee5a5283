//! Bit tests, for two sides of the same float dtype: how a value was
//! *rounded* differs, not what was computed.
//!
//! Each differing element is classified once by its stored bits (sign and
//! magnitude: a float's magnitude bits count representable values, so
//! `|a| − |b| = 1` in magnitude bits means one ULP apart):
//! * **truncation**: one side is one ULP closer to zero, always the same
//!   side. Round-to-nearest-even and truncation disagree on about half of
//!   all values, always in that direction; honest rounding noise goes both ways.
//! * **double rounding** (x → wider → dtype instead of x → dtype once):
//!   the results differ only when the wider value landed exactly on a tie,
//!   which the second rounding breaks to even. So the twice-rounded side is
//!   even (last bit 0) at every difference, one ULP off, in both directions
//!   (a one-directional pattern at ties would be "half away from zero", not this)
//!   — and more often than that side's values are even anyway (see below).
//!
//! Each pattern is weighed against the same statistic where nothing changed:
//! evenness against the even share of the unchanged values (and of the next
//! bit), a flush against subnormals kept, saturation against overflows kept.
//! When they agree nothing is said. (Truncation's pattern, a direction, has
//! no value among unchanged elements; it is weighed by the binade test
//! below, over every normal element, and by the evenness of its far side.)
//! * **flushed subnormals**: one side is ±0 where the other is subnormal.
//! * **saturation vs overflow**: one side is ±(largest finite) where the
//!   other is inf or NaN (fp8 E4M3 has no inf: its overflow is NaN).

use super::*;

/// Truncation needs this many elements (by chance: 2⁻¹⁶), and enough in
/// each half of a binade for the test that tells it from a small scale.
const MIN_TRUNCATED: u64 = 16;
/// Double rounding is rare by nature (an f32 lands on a bf16 tie about once
/// in 2¹⁶ values); by chance, all even and one ULP: 2⁻⁸.
const MIN_DOUBLE_ROUNDED: u64 = 8;

const DIFF: u32 = 1;
const TRUNC_R: u32 = 1 << 1;
const TRUNC_L: u32 = 1 << 2;
const ONE_ULP: u32 = 1 << 3;
const EVEN_R: u32 = 1 << 4;
const EVEN_L: u32 = 1 << 5;
const FLUSH_R: u32 = 1 << 6;
const FLUSH_L: u32 = 1 << 7;
const SAT_R: u32 = 1 << 8;
const SAT_L: u32 = 1 << 9;
/// Both sides normal and non-zero (the binade test below counts only these).
const NORMAL: u32 = 1 << 10;
/// The larger magnitude lies in the upper half of its binade (top mantissa bit set).
const HIGH: u32 = 1 << 11;
/// One ULP apart, even on the right (left) and its next bit 0 as well: the
/// value sits on a grid four codes wide, which double rounding does not
/// explain (its ties are broken to even, the next bit is anyone's).
const COARSE_R: u32 = 1 << 12;
const COARSE_L: u32 = 1 << 13;
/// Unchanged (equal bits), finite and non-zero: the base rate of evenness …
const SAME: u32 = 1 << 14;
/// … and those of them that are even.
const SAME_EVEN: u32 = 1 << 15;
/// Unchanged and subnormal on both sides: a side that flushes keeps none.
const SAME_SUBNORMAL: u32 = 1 << 16;
/// Unchanged and overflowed on both sides (±inf; NaN in e4m3fn, which has
/// no inf): a side that saturates has none.
const SAME_OVERFLOW: u32 = 1 << 17;
/// One ULP apart and the side further from zero is even. After a truncation
/// that side is the round-to-nearest result, one code above a truncated
/// value: even half the time. Grid data nudged toward zero has it even always.
const FAR_EVEN: u32 = 1 << 18;
/// Counted flags, and the binade-half counts after them.
const FLAGS: usize = 19;

/// The chance below which a bit pattern is not coincidence: the chance of
/// [`MIN_DOUBLE_ROUNDED`] elements all even by chance at the usual rate, 1/2.
const CHANCE: f64 = 1.0 / 256.0;

/// Truncation's binade test needs this many elements in each half.
const MIN_PER_HALF: u64 = 128;
/// How far apart the two halves' shares of truncated elements may be.
const HALF_RATIO: f64 = 1.2;

/// (largest finite, smallest normal) of a float dtype.
fn range(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (f64::MAX, f64::MIN_POSITIVE),
        DType::F32 => (f32::MAX as f64, f32::MIN_POSITIVE as f64),
        DType::BF16 => (half::bf16::MAX.to_f64(), half::bf16::MIN_POSITIVE.to_f64()),
        DType::F16 => (half::f16::MAX.to_f64(), half::f16::MIN_POSITIVE.to_f64()),
        DType::F8E4M3 => (448.0, 2f64.powi(-6)),
        DType::F8E5M2 => (57344.0, 2f64.powi(-14)),
        _ => (f64::INFINITY, 0.0),
    }
}

/// The stored bits of element `k`, little-endian.
fn stored(raw: &[u8], size: usize, k: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..size].copy_from_slice(&raw[k * size..k * size + size]);
    u64::from_le_bytes(b)
}

pub(super) fn explain(dtype: DType, lraw: &[u8], rraw: &[u8], l: &[f64], r: &[f64], before: Residual) -> Option<Explanation> {
    let size = dtype.size();
    let sign = 1u64 << (size * 8 - 1);
    let top_mantissa_bit = 1u64 << (dtype.mantissa_bits().unwrap_or(1) - 1);
    let (max, min_normal) = range(dtype);
    let flags = |k: usize| -> u32 {
        let (a, b) = (l[k], r[k]);
        if !(a.is_finite() && b.is_finite()) {
            if class(a) == class(b) {
                let overflowed = a.is_infinite() || (a.is_nan() && dtype == DType::F8E4M3);
                return if overflowed { SAME_OVERFLOW } else { 0 };
            }
            // inf keeps its sign through a saturating cast; NaN has none to keep.
            let saturated = |over: f64, sat: f64| {
                !over.is_finite() && sat.abs() == max && (over.is_nan() || over.signum() == sat.signum())
            };
            return DIFF
                | if saturated(a, b) {
                    SAT_R
                } else if saturated(b, a) {
                    SAT_L
                } else {
                    0
                };
        }
        let (bl, br) = (stored(lraw, size, k), stored(rraw, size, k));
        let (ml, mr) = (bl & !sign, br & !sign);
        let mut f = 0;
        let normal = |x: f64| x.abs() >= min_normal;
        if normal(a) && normal(b) {
            f |= NORMAL;
            if ml.max(mr) & top_mantissa_bit != 0 {
                f |= HIGH;
            }
        }
        if bl == br {
            if a != 0.0 {
                f |= SAME | if bl & 1 == 0 { SAME_EVEN } else { 0 };
            }
            if a.abs() < min_normal && a != 0.0 {
                f |= SAME_SUBNORMAL;
            }
            return f;
        }
        if a == b {
            return f; // ±0 against ∓0
        }
        f |= DIFF;
        if bl & sign == br & sign {
            if ml == mr + 1 {
                f |= TRUNC_R | ONE_ULP;
            } else if mr == ml + 1 {
                f |= TRUNC_L | ONE_ULP;
            }
            if f & ONE_ULP != 0 {
                let (even, coarse, m) = if mr & 1 == 0 { (EVEN_R, COARSE_R, mr) } else { (EVEN_L, COARSE_L, ml) };
                f |= even | if m & 2 == 0 { coarse } else { 0 } | if ml.max(mr) & 1 == 0 { FAR_EVEN } else { 0 };
            }
        }
        let subnormal = |x: f64| x != 0.0 && x.abs() < min_normal;
        if subnormal(a) && b == 0.0 {
            f |= FLUSH_R;
        } else if subnormal(b) && a == 0.0 {
            f |= FLUSH_L;
        }
        f
    };
    let n = l.len();
    // Every test needs PATTERN_SHARE of the differing elements to show one
    // of the patterns, and every pattern is a one-ULP step, a flush or a
    // saturation. So once more than the rest of the differing elements show
    // none of these, nothing can fit: the pass stops there. On a noisy
    // pair, many ULPs apart, that is within its first span. Exact: whether
    // the limit is passed depends on the values alone.
    let differing_total = (0..n.div_ceil(SPAN))
        .into_par_iter()
        .map(|c| {
            (c * SPAN..n.min((c + 1) * SPAN))
                .filter(|&k| {
                    let (a, b) = (l[k], r[k]);
                    if a.is_finite() && b.is_finite() {
                        a != b
                    } else {
                        class(a) != class(b)
                    }
                })
                .count() as u64
        })
        .sum::<u64>();
    let hopeless = |unpatterned: u64| ((differing_total - unpatterned.min(differing_total)) as f64) < PATTERN_SHARE * differing_total as f64;
    let unpatterned = std::sync::atomic::AtomicU64::new(0);
    // Per flag, then per binade half (low, high): normal elements, and
    // those truncated on the right, on the left.
    const HALVES: usize = 6;
    let counts: Vec<[u64; FLAGS + HALVES]> = (0..n.div_ceil(SPAN))
        .into_par_iter()
        .map(|c| {
            let mut t = [0u64; FLAGS + HALVES];
            if hopeless(unpatterned.load(std::sync::atomic::Ordering::Relaxed)) {
                return t;
            }
            let mut plain = 0;
            for k in c * SPAN..n.min((c + 1) * SPAN) {
                let f = flags(k);
                for (bit, slot) in t.iter_mut().take(FLAGS).enumerate() {
                    *slot += u64::from(f >> bit & 1);
                }
                plain += u64::from(f & DIFF != 0 && f & (SAT_R | SAT_L | FLUSH_R | FLUSH_L | ONE_ULP) == 0);
                if f & NORMAL != 0 {
                    let half = usize::from(f & HIGH != 0);
                    t[FLAGS + half] += 1;
                    t[FLAGS + 2 + half] += u64::from(f & TRUNC_R != 0);
                    t[FLAGS + 4 + half] += u64::from(f & TRUNC_L != 0);
                }
            }
            unpatterned.fetch_add(plain, std::sync::atomic::Ordering::Relaxed);
            t
        })
        .collect();
    if hopeless(unpatterned.load(std::sync::atomic::Ordering::Relaxed)) {
        return None;
    }
    let mut t = [0u64; FLAGS + HALVES];
    for c in counts {
        for (a, b) in t.iter_mut().zip(c) {
            *a += b;
        }
    }
    let count = |bit: u32| t[bit.trailing_zeros() as usize];
    let differing = count(DIFF);
    if differing == 0 {
        return None;
    }
    let enough = |k: u64, min: u64| k >= min && k as f64 >= PATTERN_SHARE * differing as f64;

    // Saturation and flushing first: their patterns are the most specific.
    // Each pattern is weighed against the elements that did not change: a
    // side that saturates has no overflow left among them, one that flushes
    // no subnormal (at most the share a fit allows anyway).
    let kept = |k: u64, against: u64| k as f64 >= PATTERN_SHARE * (k + against) as f64;
    for (bit, side) in [(SAT_R, Which::Right), (SAT_L, Which::Left)] {
        let k = count(bit);
        if enough(k, 1) && kept(k, count(SAME_OVERFLOW)) {
            return Some(found(
                Bug::Saturation { dtype, saturating: side, max, count: k, differing },
                format!(
                    "{} of {} differing elements are ±{} ({dtype}'s largest finite) on the {} and inf or NaN on the {}",
                    numbers::thousands(k),
                    numbers::thousands(differing),
                    numbers::value(max),
                    side.name(),
                    side.other().name()
                ),
                "matching those elements",
                "a cast mode: saturating (clamp to the largest finite) on one side, IEEE overflow on the other?",
                n,
                &flags,
                bit,
                l,
                r,
                before,
            ));
        }
    }
    for (bit, side) in [(FLUSH_R, Which::Right), (FLUSH_L, Which::Left)] {
        let k = count(bit);
        if enough(k, 1) && kept(k, count(SAME_SUBNORMAL)) {
            return Some(found(
                Bug::FlushedSubnormals { dtype, side, count: k, differing },
                format!(
                    "{} of {} differing elements are subnormal on the {} and ±0 on the {}",
                    numbers::thousands(k),
                    numbers::thousands(differing),
                    side.other().name(),
                    side.name()
                ),
                "restoring the subnormals",
                "flush-to-zero / denormals-are-zero on (-ffast-math, MXCSR, an accelerator's default)?",
                n,
                &flags,
                bit,
                l,
                r,
                before,
            ));
        }
    }
    // A truncating cast disagrees with round-to-nearest on about half the
    // values wherever they lie in their binade; a small scale (c = 1.001:
    // every value a little larger) moves values across a rounding boundary
    // in proportion to their size, so more often in a binade's upper half
    // (about 1.75/1.25 = 1.4 times). The two halves must agree.
    let uniform = |side: usize| {
        let (all_low, all_high) = (t[FLAGS], t[FLAGS + 1]);
        let (low, high) = (t[FLAGS + 2 + 2 * side], t[FLAGS + 3 + 2 * side]);
        if all_low < MIN_PER_HALF || all_high < MIN_PER_HALF || low == 0 || high == 0 {
            return false;
        }
        let ratio = (high as f64 / all_high as f64) / (low as f64 / all_low as f64);
        (1.0 / HALF_RATIO..=HALF_RATIO).contains(&ratio)
    };
    // And the side further from zero must be even no more often than by
    // chance at 1/2 (its rate after a real truncation, whatever the base
    // rate of the unchanged values): data on a coarser grid nudged one ULP
    // toward zero is even there always. A real truncation is refused by this
    // less often than CHANCE.
    let on_grid = |k: u64| crate::numeric::stats::binomial_tail_bound(k, count(FAR_EVEN).min(k), 0.5) < CHANCE;
    for (bit, side, half) in [(TRUNC_R, Which::Right, 0), (TRUNC_L, Which::Left, 1)] {
        let k = count(bit);
        if enough(k, MIN_TRUNCATED) && uniform(half) && !on_grid(k) {
            return Some(found(
                Bug::CastTruncates { dtype, side, count: k, differing },
                format!(
                    "{} of {} differing elements are one ULP closer to zero on the {}",
                    numbers::thousands(k),
                    numbers::thousands(differing),
                    side.name()
                ),
                "rounding those to nearest even",
                if dtype == DType::BF16 {
                    "a cast that drops the low bits (bits >> 16) instead of rounding?"
                } else {
                    "a cast that rounds toward zero (drops the low bits) instead of to nearest even?"
                },
                n,
                &flags,
                bit,
                l,
                r,
                before,
            ));
        }
    }
    // Both directions must occur (else truncation above, or ties rounded
    // away from zero, which is not this).
    //
    // "Even on one side" is evidence only against the rate at which that
    // side's values are even anyway. Data on a coarser grid than its dtype
    // (f16 values stored as f32: 13 trailing zero bits) is even everywhere,
    // and one ULP of noise on it is "even on the left" at every difference.
    // So the evenness is weighed against a base rate: the larger of the share
    // of even values among the unchanged non-zero elements, and the share of
    // the even differing values whose next bit is 0 too (about 1/2 after a
    // tie broken to even; about 1 on a coarse grid, even when every element
    // changed). The pattern fits only when its count is improbable at that
    // rate (below [`CHANCE`], a Chernoff bound on the binomial tail), and the
    // evidence names the rate.
    let one_ulp = count(ONE_ULP);
    if dtype != DType::F64 && count(TRUNC_R) > 0 && count(TRUNC_L) > 0 && enough(one_ulp, MIN_DOUBLE_ROUNDED) {
        let smoothed = |k: u64, of: u64| (k as f64 + 1.0) / (of as f64 + 2.0);
        for (bit, coarse, side) in [(EVEN_R, COARSE_R, Which::Right), (EVEN_L, COARSE_L, Which::Left)] {
            let k = count(bit);
            let unchanged = smoothed(count(SAME_EVEN), count(SAME));
            let base = unchanged.max(smoothed(count(coarse), k));
            let beyond_chance = crate::numeric::stats::binomial_tail_bound(differing, k, base) <= CHANCE;
            if enough(k, MIN_DOUBLE_ROUNDED) && beyond_chance {
                let via = if dtype == DType::F32 { "an extended intermediate".to_string() } else { format!("f64 → f32 → {dtype}") };
                return Some(found(
                    Bug::DoubleRounding { dtype, side, count: k, differing },
                    format!(
                        "{} of {} differing elements are one ULP apart, both ways, and even on the {} (against {:.0}% even among the unchanged elements): ties of a wider value broken to even (e.g. {via})",
                        numbers::thousands(k),
                        numbers::thousands(differing),
                        side.name(),
                        100.0 * count(SAME_EVEN) as f64 / count(SAME).max(1) as f64
                    ),
                    "rounding those once",
                    "a cast through an intermediate dtype? Round once, from the widest value",
                    n,
                    &flags,
                    bit | ONE_ULP,
                    l,
                    r,
                    before,
                ));
            }
        }
    }
    None
}

/// The explanation of a bit pattern: the residual is what is left once the
/// elements showing it (all of `bits`) are taken as LEFT has them.
#[allow(clippy::too_many_arguments)]
fn found(
    bug: Bug,
    evidence: String,
    fixup: &'static str,
    hint: &'static str,
    n: usize,
    flags: &(dyn Fn(usize) -> u32 + Sync),
    bits: u32,
    l: &[f64],
    r: &[f64],
    before: Residual,
) -> Explanation {
    let after = residual(n, |k| Some((l[k], if flags(k) & bits == bits { l[k] } else { r[k] })));
    let (count, differing) = match &bug {
        Bug::CastTruncates { count, differing, .. }
        | Bug::DoubleRounding { count, differing, .. }
        | Bug::FlushedSubnormals { count, differing, .. }
        | Bug::Saturation { count, differing, .. } => (*count, *differing),
        _ => (0, 1),
    };
    Explanation { bug, evidence, fixup, before, residual: after, confidence: count as f64 / differing as f64, hint }
}
