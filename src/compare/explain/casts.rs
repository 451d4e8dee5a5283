//! Narrowing casts: one side is exactly the other cast to a narrower float
//! dtype, either rounded to nearest even — the difference is the cast and
//! nothing else — or truncated toward zero, the porting bug
//! (`bits & 0xFFFF0000`, `bits >> 16`). The narrow side may be stored in its
//! own dtype (F32 against BF16) or widened back (bf16 values stored as F32,
//! both sides F32 or F64).
//!
//! A candidate (target dtype, which side is the cast, which rounding) fits
//! when, of the elements the cast concerns — those that differ, and those
//! the cast would have moved but that are unchanged — at least
//! [`PATTERN_SHARE`] are the cast exactly, and at least [`MIN_CAST`] of them.
//! That weighs the differing elements against the unchanged ones: a cast
//! leaves alone only the values already on its grid.
//!
//! One more statistic guards against data that was on the target's grid
//! already: a cast moves generic values by amounts spread over its step
//! (RNE: uniform in [0, ½] of the step; truncation: [0, 1)), so at least
//! half of the matched elements must have moved by an eighth of a step or
//! more (expected: 3/4 and 7/8). f16-representable weights with one f32 ULP
//! of noise "round back" to themselves exactly, but each by 2⁻¹³ of a step:
//! that is noise on grid data, not a cast, and nothing is said. (A real cast
//! fails this by chance below 2·10⁻⁴ at 32 elements, less with more.)

use super::*;
use crate::numeric::round::{self, MiniFloat};

/// A cast is named with at least this many elements that it moved, matched.
const MIN_CAST: u64 = 32;
/// A matched element "moved" when its residual is at least this share of the step …
const MOVED: f64 = 1.0 / 8.0;
/// … and at least this share of the matched elements must have.
const MOVED_SHARE: f64 = 0.5;

/// The grid of a narrower float dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Grid {
    F32,
    Mini(MiniFloat),
}

fn grid(d: DType) -> Option<Grid> {
    match d {
        DType::F32 => Some(Grid::F32),
        DType::BF16 => Some(Grid::Mini(round::BF16)),
        DType::F16 => Some(Grid::Mini(round::F16)),
        DType::F8E4M3 => Some(Grid::Mini(round::F8E4M3FN)),
        DType::F8E5M2 => Some(Grid::Mini(round::F8E5M2)),
        _ => None,
    }
}

impl Grid {
    /// The finite `x` rounded onto the grid: to nearest even as parity's
    /// `cast` (one correct RNE step from the exact value, overflow to ±inf,
    /// or NaN in e4m3fn), or toward zero (never overflows: ±largest finite).
    fn cast(self, x: f64, toward_zero: bool) -> f64 {
        let nearest = match self {
            Grid::F32 => x as f32 as f64, // Rust's `as` rounds to nearest even
            Grid::Mini(f) => f.decode(f.encode(x)),
        };
        if !toward_zero || (nearest.is_finite() && nearest.abs() <= x.abs()) {
            return nearest;
        }
        // RNE went away from zero (or overflowed): the grid value one step
        // toward zero is the truncation.
        match self {
            Grid::F32 => {
                if nearest.is_finite() {
                    f32::from_bits((nearest as f32).to_bits() - 1) as f64
                } else {
                    f32::MAX as f64 * x.signum()
                }
            }
            Grid::Mini(f) => {
                if nearest.is_finite() {
                    f.decode(f.encode(nearest) - 1)
                } else {
                    f.max_finite() * x.signum()
                }
            }
        }
    }

    /// Whether the finite `v` is on the grid. A value off the grid cannot
    /// be anything's cast onto it, so this cheap test (half's bit-level
    /// conversions for bf16 and f16; a representable value converts exactly
    /// under any rounding) rules a pair out before the full [`Grid::cast`].
    fn holds(self, v: f64) -> bool {
        match self {
            Grid::F32 => v as f32 as f64 == v,
            Grid::Mini(f) if f == round::BF16 => half::bf16::from_f64(v).to_f64() == v,
            Grid::Mini(f) if f == round::F16 => half::f16::from_f64(v).to_f64() == v,
            Grid::Mini(f) => f.decode(f.encode(v)) == v,
        }
    }

    /// The grid step above the finite, on-grid |y| (below it at the largest
    /// finite value): what a residual is measured in.
    fn step(self, y: f64) -> f64 {
        let a = y.abs();
        let (up, down) = match self {
            Grid::F32 => {
                let b = (a as f32).to_bits();
                (f32::from_bits(b + 1) as f64, if b > 0 { f32::from_bits(b - 1) as f64 } else { 0.0 })
            }
            Grid::Mini(f) => {
                let b = f.encode(a);
                (f.decode(b + 1), if b > 0 { f.decode(b - 1) } else { 0.0 })
            }
        };
        if up.is_finite() {
            up - a
        } else {
            a - down
        }
    }
}

/// One candidate: the `side` holds the other side cast onto `grid` (of `dtype`).
#[derive(Clone, Copy, Debug)]
struct Candidate {
    dtype: DType,
    grid: Grid,
    side: Which,
    toward_zero: bool,
}

/// The candidates for a pair of dtypes: for equal wide dtypes, each side
/// narrowed to each narrower 16-bit (and, from f64, 32-bit) dtype; for
/// different float dtypes, the narrower side (fewer mantissa bits) as the
/// cast of the wider one.
fn candidates(ld: DType, rd: DType) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut add = |dtype: DType, side: Which| {
        if let Some(grid) = grid(dtype) {
            for toward_zero in [false, true] {
                out.push(Candidate { dtype, grid, side, toward_zero });
            }
        }
    };
    let (Some(lm), Some(rm)) = (ld.mantissa_bits(), rd.mantissa_bits()) else { return Vec::new() };
    if ld == rd {
        let targets: &[DType] = match ld {
            DType::F64 => &[DType::F32, DType::BF16, DType::F16],
            DType::F32 => &[DType::BF16, DType::F16],
            _ => &[],
        };
        for &t in targets {
            add(t, Which::Right);
            add(t, Which::Left);
        }
    } else if rm < lm {
        add(rd, Which::Right);
    } else if lm < rm {
        add(ld, Which::Left);
    }
    out
}

/// Whether two values are the same (finite and equal, or the same non-finite class).
fn same(a: f64, b: f64) -> bool {
    if a.is_finite() && b.is_finite() {
        a == b
    } else {
        class(a) == class(b)
    }
}

pub(super) fn explain(ld: DType, rd: DType, l: &[f64], r: &[f64], before: Residual) -> Option<Explanation> {
    let list = candidates(ld, rd);
    if list.is_empty() {
        return None;
    }
    let n = l.len();
    // Counted, not collected: an index list could be as large as the
    // decoded stage (the memory bound is two f64 per element).
    let total = (0..n.div_ceil(SPAN))
        .into_par_iter()
        .map(|s| (s * SPAN..n.min((s + 1) * SPAN)).filter(|&k| !same(l[k], r[k])).count() as u64)
        .sum::<u64>();
    if total < MIN_CAST {
        return None;
    }
    // A fit needs PATTERN_SHARE of the differing elements matched (the
    // unchanged ones only add to what must be matched), so a candidate is
    // dropped as soon as more than the rest of them are not: a wrong one
    // within its first few elements. Exact: it depends on the values alone.
    let allowed = ((1.0 - PATTERN_SHARE) * total as f64).floor() as u64;
    let mut best: Option<(Candidate, u64, u64)> = None;
    for c in list {
        let (narrow, wide) = match c.side {
            Which::Right => (r, l),
            Which::Left => (l, r),
        };
        let cast = |x: f64| if x.is_finite() { c.grid.cast(x, c.toward_zero) } else { x };
        let (mut matched, mut missed, mut moved) = (0u64, 0u64, 0u64);
        for k in (0..n).filter(|&k| !same(l[k], r[k])) {
            // A finite value off the grid is a miss without casting (the
            // usual case for a candidate that does not fit: it then costs
            // a few ns per element until it is dropped).
            if narrow[k].is_finite() && !c.grid.holds(narrow[k]) {
                missed += 1;
                if missed > allowed {
                    break;
                }
                continue;
            }
            let y = cast(wide[k]);
            if same(y, narrow[k]) {
                matched += 1;
                if y.is_finite() && (wide[k] - y).abs() >= MOVED * c.grid.step(y) {
                    moved += 1;
                }
            } else {
                missed += 1;
                if missed > allowed {
                    break;
                }
            }
        }
        if missed > allowed || matched < MIN_CAST || (moved as f64) < MOVED_SHARE * matched as f64 {
            continue;
        }
        // The unchanged elements the cast would have moved count against it.
        let kept = (0..n.div_ceil(SPAN))
            .into_par_iter()
            .map(|s| {
                (s * SPAN..n.min((s + 1) * SPAN))
                    .filter(|&k| wide[k].is_finite() && same(l[k], r[k]) && cast(wide[k]) != wide[k])
                    .count() as u64
            })
            .sum::<u64>();
        let concerned = total + kept;
        if (matched as f64) < PATTERN_SHARE * concerned as f64 {
            continue;
        }
        if best.as_ref().is_none_or(|b| matched > b.1) {
            best = Some((c, matched, concerned));
        }
    }
    let (c, count, concerned) = best?;
    let cast = |x: f64| if x.is_finite() { c.grid.cast(x, c.toward_zero) } else { x };
    let after = match c.side {
        Which::Right => residual(n, |k| Some((cast(l[k]), r[k]))),
        Which::Left => residual(n, |k| Some((l[k], cast(r[k])))),
    };
    let how = if c.toward_zero { "truncated (rounded toward zero)" } else { "rounded to nearest even" };
    Some(Explanation {
        bug: Bug::Narrowed { dtype: c.dtype, side: c.side, toward_zero: c.toward_zero, count, concerned },
        evidence: format!(
            "{} of {} elements the cast concerns (those that differ, and those it would move) are the {}'s values {how} to {}",
            numbers::thousands(count),
            numbers::thousands(concerned),
            c.side.other().name(),
            c.dtype.name()
        ),
        fixup: if c.toward_zero { "truncating the other side the same way" } else { "rounding the other side the same way" },
        before,
        residual: after,
        confidence: count as f64 / concerned as f64,
        hint: if c.toward_zero {
            "a cast that drops the low bits (bits & 0xFFFF0000, bits >> 16) instead of rounding to nearest even?"
        } else {
            "the difference is this cast and nothing else: compare against the same cast, or keep the wider dtype"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cheap on-grid test agrees with the grid's own rounding (the
    /// definition: on the grid when rounding changes nothing) on values
    /// near every binade edge, subnormals, ties, zeros and beyond the range.
    #[test]
    fn the_on_grid_test_agrees_with_rounding_onto_the_grid() {
        let mut values = vec![0.0, -0.0, 1.0, 65504.0, 65520.0, 3.0e38, f32::MAX as f64, 1e-45, 2f64.powi(-24), 2f64.powi(-25), 2f64.powi(-133)];
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // f32 bits of every exponent, and f64s just off them.
            let v = f32::from_bits((s >> 32) as u32) as f64;
            values.extend([v, v * (1.0 + f64::EPSILON)]);
            // bf16- and f16-exact patterns too (low bits cleared).
            values.push(f32::from_bits((s >> 32) as u32 & 0xFFFF_0000) as f64);
            values.push(half::f16::from_bits((s >> 16) as u16).to_f64());
        }
        for grid in [Grid::F32, Grid::Mini(round::BF16), Grid::Mini(round::F16), Grid::Mini(round::F8E4M3FN), Grid::Mini(round::F8E5M2)] {
            for &v in values.iter().filter(|v| v.is_finite()) {
                let on = grid.cast(v, false) == v;
                assert_eq!(grid.holds(v), on, "{grid:?} {v:e}");
            }
        }
    }
}
