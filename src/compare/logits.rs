//! Token metrics of a logits stage (`check --logits GLOB`): the question a
//! language model's port is judged by is whether it predicts the same
//! tokens with the same confidence, not whether each logit is within 1e-4.
//!
//! Each position is a row of the last axis (the vocabulary). Per position:
//! whether the top-1 tokens agree, how many of the top-5 tokens both sides
//! share, and the KL divergence of softmax(right) from softmax(left),
//! `KL(P‖Q) = Σ p·(log p − log q)` with P = softmax(left) (llama.cpp's
//! `perplexity --kl-divergence` reports the same). Over positions: top-1
//! agreement and mean top-5 overlap as fractions, and KL's mean, 99th
//! percentile and maximum.
//!
//! Numerics: logits are decoded exactly to f64 and every sum is taken in
//! f64, in index order within a row (one rounding per term; a row of 128k
//! terms loses at most ~17 bits of 53, far below what a KL is read at).
//! log-softmax is `x − (m + ln Σ exp(x − m))` with `m` the row's maximum, so
//! no exp overflows and the largest term is exactly exp(0) = 1. Rows are
//! independent: computed in parallel, combined in row order, so the result
//! does not depend on the thread count.

use super::metrics::Stage;
use crate::error::Result;
use rayon::prelude::*;

/// How many tokens the overlap compares (fewer when the vocabulary is smaller).
pub const TOP_K: usize = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct LogitMetrics {
    /// Rows of the last axis compared.
    pub positions: u64,
    /// The last axis' length.
    pub vocab: usize,
    /// Positions whose top-1 tokens agree (ties: the lowest index).
    pub top1_agree: u64,
    /// `top1_agree / positions` (1 when there is no position).
    pub top1_agreement: f64,
    /// Mean over positions of |top-5(left) ∩ top-5(right)| / 5.
    pub top5_overlap: f64,
    pub kl_mean: f64,
    /// The 99th percentile (nearest rank) of the positions' KL.
    pub kl_p99: f64,
    pub kl_max: f64,
    /// Positions whose KL is NaN (a NaN logit on either side); left out of
    /// the KL statistics and counted here.
    pub kl_nan: u64,
}

/// The row's token indices ranked by logit, highest first, ties by lower
/// index; NaN ranks below every number (a NaN is never a prediction).
fn top(row: &[f64], k: usize) -> Vec<usize> {
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &x) in row.iter().enumerate() {
        let pos = best.iter().position(|&j| key(x) > key(row[j])).unwrap_or(best.len());
        if pos < k {
            best.insert(pos, i);
            best.truncate(k);
        }
    }
    best
}

/// log-softmax of a row, in f64.
fn log_softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().copied().filter(|x| !x.is_nan()).fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        // Every logit −inf (or NaN): no distribution.
        return vec![f64::NAN; row.len()];
    }
    let sum: f64 = row.iter().map(|&x| (x - m).exp()).sum();
    let lse = m + sum.ln();
    row.iter().map(|&x| x - lse).collect()
}

/// `KL(softmax(l) ‖ softmax(r))` of one row. A token LEFT gives probability
/// 0 adds nothing (0·log 0 = 0); one RIGHT gives 0 and LEFT does not makes
/// it infinite, as it is.
fn kl(l: &[f64], r: &[f64]) -> f64 {
    let (lp, rp) = (log_softmax(l), log_softmax(r));
    let mut sum = 0.0;
    for (&a, &b) in lp.iter().zip(&rp) {
        if a.is_nan() || b.is_nan() {
            return f64::NAN;
        }
        if a == f64::NEG_INFINITY {
            continue;
        }
        sum += a.exp() * (a - b);
    }
    // Rounding can leave a tiny negative sum for equal rows: KL ≥ 0.
    sum.max(0.0)
}

/// The token metrics of two logits stages of the same shape (at least one
/// axis; the last is the vocabulary).
pub fn measure(left: Stage, right: Stage) -> Result<LogitMetrics> {
    let vocab = left.shape.last().copied().unwrap_or(1);
    let n = left.numel();
    let positions = if vocab == 0 { 0 } else { n / vocab };
    let (lraw, rraw) = rayon::join(|| left.read_all(), || right.read_all());
    let (lraw, rraw) = (lraw?, rraw?);
    let (ls, rs) = (left.dtype.size(), right.dtype.size());
    let k = TOP_K.min(vocab);
    // Per row: (top-1 agrees, shared of the top k, KL).
    let rows: Vec<(bool, usize, f64)> = (0..positions)
        .into_par_iter()
        .map(|p| {
            let mut l = vec![0.0; vocab];
            let mut r = vec![0.0; vocab];
            left.dtype.decode_into(&lraw[p * vocab * ls..(p + 1) * vocab * ls], &mut l);
            right.dtype.decode_into(&rraw[p * vocab * rs..(p + 1) * vocab * rs], &mut r);
            let (tl, tr) = (top(&l, k), top(&r, k));
            let shared = tl.iter().filter(|i| tr.contains(i)).count();
            (tl.first() == tr.first(), shared, kl(&l, &r))
        })
        .collect();
    let agree = rows.iter().filter(|r| r.0).count();
    let shared: usize = rows.iter().map(|r| r.1).sum();
    let mut kls: Vec<f64> = rows.iter().map(|r| r.2).filter(|x| !x.is_nan()).collect();
    let kl_nan = (rows.len() - kls.len()) as u64;
    kls.sort_by(f64::total_cmp);
    let fraction = |num: usize, den: usize| if den == 0 { 1.0 } else { num as f64 / den as f64 };
    let kl_mean = if kls.is_empty() { 0.0 } else { kls.iter().sum::<f64>() / kls.len() as f64 };
    // Nearest rank: the smallest value with at least 99% of the positions at or below it.
    let kl_p99 = if kls.is_empty() { 0.0 } else { kls[((kls.len() as f64 * 0.99).ceil() as usize).max(1) - 1] };
    Ok(LogitMetrics {
        positions: positions as u64,
        vocab,
        top1_agree: agree as u64,
        top1_agreement: fraction(agree, positions),
        top5_overlap: fraction(shared, positions * k),
        kl_mean,
        kl_p99,
        kl_max: kls.last().copied().unwrap_or(0.0),
        kl_nan,
    })
}

/// One line for people: `128 positions × 1,000 tokens: top-1 agrees at 127
/// (99.2%), top-5 overlap 98.4%, KL mean 1.2e-4, p99 3e-3, max 4e-3 nats`.
pub fn line(m: &LogitMetrics) -> String {
    use super::numbers::short;
    let pct = |f: f64| if f == 1.0 { "100%".to_string() } else { format!("{:.2}%", f * 100.0) };
    let nan = if m.kl_nan > 0 { format!(" ({} positions with a NaN logit left out)", m.kl_nan) } else { String::new() };
    format!(
        "{} positions × {} tokens: top-1 agrees at {} ({}), top-5 overlap {}, KL mean {}, p99 {}, max {} nats{nan}",
        m.positions,
        m.vocab,
        m.top1_agree,
        pct(m.top1_agreement),
        pct(m.top5_overlap),
        short(m.kl_mean),
        short(m.kl_p99),
        short(m.kl_max)
    )
}

/// The token limits of `tol` that `m` breaks.
pub fn limits_broken(m: &LogitMetrics, tol: &super::tolerance::Tolerance) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(min) = tol.min_top1 {
        if m.top1_agreement.is_nan() || m.top1_agreement < min {
            out.push(format!("top-1 agreement {} of {} positions = {} < {}", m.top1_agree, m.positions, super::numbers::short(m.top1_agreement), super::numbers::short(min)));
        }
    }
    if let Some(max) = tol.max_kl {
        if m.kl_nan > 0 || !(m.kl_mean <= max) {
            out.push(format!(
                "mean KL {} > {}{}",
                super::numbers::short(m.kl_mean),
                super::numbers::short(max),
                if m.kl_nan > 0 { format!(" ({} positions with a NaN logit)", m.kl_nan) } else { String::new() }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_ranks_by_value_ties_by_lower_index_and_nan_last() {
        assert_eq!(top(&[1.0, 3.0, 3.0, f64::NAN, 2.0], 3), vec![1, 2, 4]);
        assert_eq!(top(&[f64::NAN, f64::NEG_INFINITY], 2), vec![0, 1]);
        assert_eq!(top(&[], 5), Vec::<usize>::new());
    }

    #[test]
    fn kl_is_zero_for_equal_rows_and_the_textbook_value_otherwise() {
        assert_eq!(kl(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        // Shifting every logit leaves the softmax unchanged, up to the
        // rounding of x − lse at magnitude ~100 (one ULP there is 1.4e-14).
        assert!(kl(&[1.0, 2.0, 3.0], &[101.0, 102.0, 103.0]) < 1e-13);
        // P = (1/2, 1/2), Q = (1/(1+e), e/(1+e)): KL = ln((1+e)/2) + ln((1+e)/(2e)).
        let e = std::f64::consts::E;
        let want = 0.5 * ((1.0 + e) / 2.0).ln() + 0.5 * ((1.0 + e) / (2.0 * e)).ln();
        assert!((kl(&[0.0, 0.0], &[0.0, 1.0]) - want).abs() < 1e-15);
        // A token only LEFT deems possible: infinite; only RIGHT: finite.
        assert_eq!(kl(&[0.0, 0.0], &[0.0, f64::NEG_INFINITY]), f64::INFINITY);
        assert!(kl(&[0.0, f64::NEG_INFINITY], &[0.0, 0.0]).is_finite());
        assert!(kl(&[f64::NAN, 0.0], &[0.0, 0.0]).is_nan());
        // Huge logits do not overflow.
        assert_eq!(kl(&[1e308, 1e308], &[1e308, 1e308]), 0.0);
    }
}
