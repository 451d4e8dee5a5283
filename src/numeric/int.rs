//! Integers held against float limits, without rounding.
//!
//! Integer tensors (I8 … I64, U8, BOOL) are compared as integers: `|a − b|`
//! of two i64 is at most 2⁶⁴ − 1, which a u64 holds exactly, whereas f64
//! has a 53-bit significand and would call 2⁶² and 2⁶² + 1 equal. Limits
//! (a tolerance's `max_abs`, an allclose threshold) stay f64: a limit is a
//! real number a person wrote, and [`exceeds`] compares an exact integer
//! against it exactly.

/// `|a − b|`, exactly (`i64::MIN` vs `i64::MAX` is 2⁶⁴ − 1).
#[inline(always)]
pub fn abs_diff(a: i64, b: i64) -> u64 {
    a.abs_diff(b)
}

/// Whether the integer `d` is strictly greater than `limit`, decided exactly
/// (no rounding of `d` to f64): IEEE `d > limit` on the real values, so a
/// NaN limit is exceeded by nothing, as the float path's `a > limit` says.
#[inline(always)]
pub fn exceeds(d: u64, limit: f64) -> bool {
    if limit.is_nan() {
        return false;
    }
    if limit < 0.0 {
        return true;
    }
    // 2⁶⁴ is an f64; every u64 is below it.
    if limit >= 18_446_744_073_709_551_616.0 {
        return false;
    }
    // 0 ≤ limit < 2⁶⁴: its floor is a u64, exactly (the cast truncates a
    // non-negative f64 toward zero, which is the floor), and an integer is
    // above a real limit iff it is above the limit's floor.
    d > limit as u64
}

/// The smallest f64 ≥ `d`: a limit derived from an observed integer must
/// not round below it (10¹⁶ + 1 rounds to 10¹⁶, which it exceeds).
pub fn f64_at_least(d: u64) -> f64 {
    let f = d as f64; // nearest, ties to even; ≤ 2⁶⁴, so exact in a u128
    if (f as u128) < d as u128 {
        f.next_up()
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeds_is_exact_where_f64_rounds() {
        // 2⁵³ + 1 rounds to 2⁵³ in f64: `d as f64 > limit` would say no.
        assert!(exceeds((1 << 53) + 1, 9_007_199_254_740_992.0));
        assert!(!exceeds(1 << 53, 9_007_199_254_740_992.0));
        assert!(exceeds(1, 0.0));
        assert!(!exceeds(0, 0.0));
        assert!(!exceeds(0, -0.0));
        assert!(exceeds(0, -1.0));
        assert!(exceeds(1, 0.5) && !exceeds(0, 0.5));
        assert!(!exceeds(u64::MAX, f64::INFINITY));
        assert!(!exceeds(u64::MAX, 18_446_744_073_709_551_616.0));
        // The largest f64 below 2⁶⁴ is 2⁶⁴ − 2¹¹.
        assert!(exceeds(u64::MAX, 18_446_744_073_709_549_568.0));
        assert!(!exceeds(u64::MAX - 2047, 18_446_744_073_709_549_568.0));
        assert!(!exceeds(u64::MAX, f64::NAN));
        assert!(exceeds(0, f64::NEG_INFINITY));
        assert_eq!(abs_diff(i64::MIN, i64::MAX), u64::MAX);
        assert_eq!(f64_at_least(10_000_000_000_000_001), 10_000_000_000_000_002.0);
        assert_eq!(f64_at_least(1 << 53), 9_007_199_254_740_992.0);
        assert_eq!(f64_at_least(u64::MAX), 18_446_744_073_709_551_616.0);
        assert!(!exceeds(10_000_000_000_000_001, f64_at_least(10_000_000_000_000_001)));
    }
}
