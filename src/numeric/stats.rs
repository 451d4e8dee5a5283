//! Chance bounds for the statistical rules: the noise floor's flip counts
//! and the explanations' base rates. Each rule acts when an observation is
//! improbable by chance; these bounds say how improbable, from above, so a
//! rule that acts below α acts on chance alone less often than α.

/// An upper bound on P(X ≥ k) for X ~ Binomial(n, p): the Chernoff–Hoeffding
/// bound `exp(−n·D(k/n ‖ p))`, D the Kullback–Leibler divergence between
/// Bernoulli(k/n) and Bernoulli(p). 1 when k ≤ n·p (no evidence above the
/// mean); exact when k = n (`pⁿ`).
pub fn binomial_tail_bound(n: u64, k: u64, p: f64) -> f64 {
    let (nf, kf) = (n as f64, k as f64);
    if n == 0 || kf <= nf * p {
        return 1.0;
    }
    if p <= 0.0 {
        return 0.0; // a success that cannot happen, seen
    }
    let q = kf / nf;
    // 0·ln 0 = 0: the second term vanishes when every trial succeeded.
    let second = if q < 1.0 { (1.0 - q) * ((1.0 - q) / (1.0 - p)).ln() } else { 0.0 };
    (-nf * (q * (q / p).ln() + second)).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact upper tail, summed term by term (small n only).
    fn exact(n: u64, k: u64, p: f64) -> f64 {
        let choose = |n: u64, j: u64| (0..j).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64);
        (k..=n).map(|j| choose(n, j) * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32)).sum()
    }

    #[test]
    fn the_bound_is_above_the_exact_tail_and_exact_when_every_trial_succeeds() {
        for n in 1..40u64 {
            for k in 0..=n {
                for p in [0.01, 0.3, 0.5, 2.0 / 3.0, 0.9] {
                    let (b, e) = (binomial_tail_bound(n, k, p), exact(n, k, p));
                    assert!(b >= e * (1.0 - 1e-12), "n {n} k {k} p {p}: bound {b} < exact {e}");
                }
            }
            assert!((binomial_tail_bound(n, n, 0.5) - 0.5f64.powi(n as i32)).abs() <= 1e-12 * 0.5f64.powi(n as i32));
        }
        assert_eq!(binomial_tail_bound(0, 0, 0.5), 1.0);
        assert_eq!(binomial_tail_bound(10, 3, 0.5), 1.0, "below the mean: no evidence");
        assert_eq!(binomial_tail_bound(10, 1, 0.0), 0.0);
        assert_eq!(binomial_tail_bound(10, 10, 1.0), 1.0);
    }
}
