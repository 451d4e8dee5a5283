//! `inspect`'s statistics of floating-point values, one vectorised pass per
//! block.
//!
//! A piece of a tensor is decoded block by block ([`BLOCK`] values, exactly,
//! into an f64 buffer that stays in L1) and each block is measured by
//! [`block_moments`]: a [`simd_kernel!`](crate::simd_kernel) compiled for
//! AVX-512, AVX2 and the baseline, which gives the same bits on each (plain
//! IEEE operations in a fixed order; no FMA, no reassociation). The blocks'
//! moments are then merged in block order by Chan et al.'s pairwise update
//! ([`Moments::merge`]): one division per block, none per value.
//!
//! Where rounding happens, and why it is good enough:
//! * decoding f32, f16, bf16 and fp8 into f64 is exact;
//! * the block's sum is taken in [`LANES`] interleaved f64 lanes (value `i`
//!   goes to lane `i % LANES`, the lanes are added in a fixed tree), each
//!   addition rounding once: relative error ≲ (BLOCK/LANES)·2⁻⁵³ of Σ|x|;
//! * the block's M2 = Σ(x − mean_b)² is taken in a second pass over the
//!   same L1-resident block (two-pass, not Σx² − (Σx)²/n, so values far
//!   from zero with a tiny spread keep their variance: the one-pass formula
//!   would lose it to cancellation);
//! * the merge rounds a few times per block, as Welford's per-value update
//!   did per value, with the same stability (Chan, Golub & LeVeque 1979).
//!
//! Min, max and max |x| take the first value in lane order that is strictly
//! smaller (larger); min and max of a block holding both −0 and +0 may be
//! either zero, the same one on every path and thread count.

/// Values per block: 2 Ki f64 = 16 KiB, which stays in L1 between the two
/// passes.
pub const BLOCK: usize = 2048;

/// Interleaved accumulators: eight f64 fill one AVX-512 vector (two AVX2
/// vectors) and break the addition's latency chain.
const LANES: usize = 8;

/// The moments and counts of a set of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    /// Finite values.
    pub n: u64,
    /// Their mean (0 when `n` is 0).
    pub mean: f64,
    /// Σ(x − mean)² over them.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub abs_max: f64,
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    pub zeros: u64,
    /// Non-zero values below `min_normal` in magnitude.
    pub subnormals: u64,
}

impl Default for Moments {
    fn default() -> Moments {
        Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            abs_max: 0.0,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            zeros: 0,
            subnormals: 0,
        }
    }
}

impl Moments {
    /// Add the moments of a later, disjoint set (Chan et al.): with
    /// δ = mean_b − mean_a, mean = mean_a + δ·n_b/n and
    /// M2 = M2_a + M2_b + δ²·n_a·n_b/n. Extremes move only when strictly
    /// beyond, so the earlier set keeps a tie.
    pub fn merge(&mut self, o: &Moments) {
        if o.n > 0 && self.n == 0 {
            // Nothing to merge with: take the other's figures as they are
            // (the formula would give inf·0 = NaN for a mean beyond 1e154).
            (self.n, self.mean, self.m2) = (o.n, o.mean, o.m2);
            (self.min, self.max, self.abs_max) = (o.min, o.max, o.abs_max);
        } else if o.n > 0 {
            let n = self.n + o.n;
            let d = o.mean - self.mean;
            self.mean += d * (o.n as f64 / n as f64);
            self.m2 += o.m2 + d * d * (self.n as f64 * o.n as f64 / n as f64);
            self.n = n;
            if o.min < self.min {
                self.min = o.min;
            }
            if o.max > self.max {
                self.max = o.max;
            }
            if o.abs_max > self.abs_max {
                self.abs_max = o.abs_max;
            }
        }
        self.nan += o.nan;
        self.pos_inf += o.pos_inf;
        self.neg_inf += o.neg_inf;
        self.zeros += o.zeros;
        self.subnormals += o.subnormals;
    }
}

/// The lanes' sums in a fixed tree: the same additions in the same order on
/// every path.
#[inline(always)]
fn tree(s: [f64; LANES]) -> f64 {
    ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
}

/// Each lane's running figures in the first pass.
struct Lanes {
    sum: [f64; LANES],
    n: [u64; LANES],
    min: [f64; LANES],
    max: [f64; LANES],
    abs_max: [f64; LANES],
    nan: [u64; LANES],
    pos_inf: [u64; LANES],
    neg_inf: [u64; LANES],
    zeros: [u64; LANES],
    subnormals: [u64; LANES],
}

/// Eight values into the eight lanes, with selects, not branches, so the
/// compiler turns the step into a few vector instructions.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lane by lane is what vectorises
fn first_pass(a: &mut Lanes, c: &[f64; LANES], min_normal: f64) {
    for l in 0..LANES {
        let v = c[l];
        let m = v.abs();
        let finite = m < f64::INFINITY; // false for NaN and ±inf
        // A non-finite value becomes the identity of each figure (0 for
        // the sums, +inf for min, -inf for max): a blend, then plain
        // min/max steps.
        let (lo, hi) = if finite { (v, v) } else { (f64::INFINITY, f64::NEG_INFINITY) };
        a.sum[l] += if finite { v } else { 0.0 };
        a.n[l] += finite as u64;
        a.min[l] = if lo < a.min[l] { lo } else { a.min[l] };
        a.max[l] = if hi > a.max[l] { hi } else { a.max[l] };
        let m = if finite { m } else { 0.0 };
        a.abs_max[l] = if m > a.abs_max[l] { m } else { a.abs_max[l] };
        a.nan[l] += v.is_nan() as u64;
        a.pos_inf[l] += (v == f64::INFINITY) as u64;
        a.neg_inf[l] += (v == f64::NEG_INFINITY) as u64;
        a.zeros[l] += (v == 0.0) as u64;
        a.subnormals[l] += (m != 0.0 && m < min_normal) as u64;
    }
}

/// Σ(x − mean)² of eight values into the eight lanes (finite values only).
#[inline(always)]
fn second_pass(m2: &mut [f64; LANES], c: &[f64; LANES], mean: f64) {
    for l in 0..LANES {
        let d = c[l] - mean;
        m2[l] += if c[l].abs() < f64::INFINITY { d * d } else { 0.0 };
    }
}

crate::simd_kernel! {
    #[allow(clippy::needless_range_loop)] // lane by lane is what vectorises
    /// The [`Moments`] of `x` (at most [`BLOCK`] values; any length works),
    /// counting as subnormal the non-zero values below `min_normal`. Value
    /// `i` goes to lane `i % LANES`; the tail (fewer than LANES values) is
    /// padded with NaN, which is then taken off the NaN count.
    pub fn block_moments(x: &[f64], min_normal: f64) -> Moments {
        let mut a = Lanes {
            sum: [0.0; LANES],
            n: [0; LANES],
            min: [f64::INFINITY; LANES],
            max: [f64::NEG_INFINITY; LANES],
            abs_max: [0.0; LANES],
            nan: [0; LANES],
            pos_inf: [0; LANES],
            neg_inf: [0; LANES],
            zeros: [0; LANES],
            subnormals: [0; LANES],
        };
        let (whole, tail) = x.as_chunks::<LANES>();
        let mut rest = [f64::NAN; LANES];
        rest[..tail.len()].copy_from_slice(tail);
        for c in whole {
            first_pass(&mut a, c, min_normal);
        }
        first_pass(&mut a, &rest, min_normal);
        let count: u64 = a.n.iter().sum();
        let mut mean = if count > 0 { tree(a.sum) / count as f64 } else { 0.0 };
        if !mean.is_finite() && count > 0 {
            // The sum of finite f64s overflowed (values near f64::MAX):
            // sum them scaled by 2⁻¹¹ — exact for all but values below
            // 2⁻¹⁰¹¹, which cannot move a mean that large — so a block of
            // at most 2¹¹ values stays finite, then scale the mean back.
            const DOWN: f64 = 1.0 / 2048.0;
            let mut scaled = [0f64; LANES];
            for c in whole.iter().chain(std::iter::once(&rest)) {
                for l in 0..LANES {
                    scaled[l] += if c[l].abs() < f64::INFINITY { c[l] * DOWN } else { 0.0 };
                }
            }
            mean = tree(scaled) / count as f64 * 2048.0;
        }
        // Second pass over the same (cached) values: Σ(x − mean)².
        let mut m2 = [0f64; LANES];
        if count == x.len() as u64 {
            // Every value finite (the usual block): no mask. The same bits
            // as the masked pass, which adds +0 where this one adds nothing.
            let means = [mean; LANES];
            for c in whole {
                let mut d = [0f64; LANES];
                for l in 0..LANES {
                    d[l] = c[l] - means[l];
                }
                for l in 0..LANES {
                    d[l] *= d[l];
                }
                for l in 0..LANES {
                    m2[l] += d[l];
                }
            }
        } else {
            for c in whole {
                second_pass(&mut m2, c, mean);
            }
        }
        second_pass(&mut m2, &rest, mean);
        let mut m = Moments {
            n: count,
            mean,
            m2: if count > 0 { tree(m2) } else { 0.0 },
            nan: a.nan.iter().sum::<u64>() - (LANES - tail.len()) as u64,
            pos_inf: a.pos_inf.iter().sum(),
            neg_inf: a.neg_inf.iter().sum(),
            zeros: a.zeros.iter().sum(),
            subnormals: a.subnormals.iter().sum(),
            ..Moments::default()
        };
        for l in 0..LANES {
            if a.min[l] < m.min {
                m.min = a.min[l];
            }
            if a.max[l] > m.max {
                m.max = a.max[l];
            }
            if a.abs_max[l] > m.abs_max {
                m.abs_max = a.abs_max[l];
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_of_specials_is_counted_and_its_moments_are_exact() {
        let sub = f64::from_bits(1);
        let x = [1.0, -3.0, 0.0, -0.0, 2.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, sub, 4.0];
        let m = block_moments(&x, f64::MIN_POSITIVE);
        assert_eq!((m.n, m.nan, m.pos_inf, m.neg_inf, m.zeros, m.subnormals), (7, 1, 1, 1, 2, 1));
        assert_eq!((m.min, m.max, m.abs_max), (-3.0, 4.0, 4.0));
        // Σ = 4 + sub; mean = (4 + 2⁻¹⁰⁷⁴)/7 rounds to 4/7.
        assert_eq!(m.mean, 4.0 / 7.0);
        let exact: f64 = [1.0, -3.0, 0.0, 0.0, 2.0, 0.0, 4.0].iter().map(|v: &f64| (v - 4.0 / 7.0) * (v - 4.0 / 7.0)).sum();
        assert!((m.m2 - exact).abs() <= 1e-15 * exact, "{} vs {exact}", m.m2);
    }

    #[test]
    fn empty_and_all_non_finite_blocks_have_no_moments() {
        assert_eq!(block_moments(&[], 1.0), Moments::default());
        let m = block_moments(&[f64::NAN, f64::INFINITY], 1.0);
        assert_eq!((m.n, m.mean, m.m2, m.min, m.max), (0, 0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
    }

    /// Found in review: f64 values near the top of the range overflowed the
    /// block's sum (mean inf), and a first merge into nothing with a mean
    /// beyond 1e154 made the variance inf·0 = NaN.
    #[test]
    fn huge_f64_values_keep_a_finite_mean_and_a_lone_value_has_no_spread() {
        let m = block_moments(&[1e308, 1e308], f64::MIN_POSITIVE);
        assert_eq!((m.mean, m.m2), (1e308, 0.0));
        let m = block_moments(&[f64::MAX, f64::MAX, -f64::MAX], f64::MIN_POSITIVE);
        assert!((m.mean - f64::MAX / 3.0).abs() <= f64::MAX * 1e-15, "{}", m.mean);
        let mut total = Moments::default();
        total.merge(&block_moments(&[1e200], f64::MIN_POSITIVE));
        assert_eq!((total.n, total.mean, total.m2), (1, 1e200, 0.0));
        total.merge(&block_moments(&[1e200], f64::MIN_POSITIVE));
        assert_eq!((total.n, total.mean, total.m2), (2, 1e200, 0.0));
    }

    #[test]
    fn merging_blocks_gives_the_moments_of_the_whole() {
        // A large offset with a tiny spread: the one-pass formula would lose it.
        let x: Vec<f64> = (0..10_000).map(|i| 1e8 + (i % 7) as f64 * 1e-3).collect();
        let mut m = Moments::default();
        for b in x.chunks(BLOCK) {
            m.merge(&block_moments(b, f64::MIN_POSITIVE));
        }
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let m2: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
        assert_eq!(m.n, 10_000);
        assert!((m.mean - mean).abs() <= 1e-13 * mean, "{} vs {mean}", m.mean);
        // Means near 1e8 are held to an ulp of 1.5e-8, which bounds how well
        // the blocks' means (and so their merge) are known: ~1e-8 relative
        // here. The one-pass formula would be off by orders of magnitude.
        assert!((m.m2 - m2).abs() <= 1e-6 * m2, "{} vs {m2}", m.m2);
    }
}
