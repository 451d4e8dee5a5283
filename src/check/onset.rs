//! Where a run went wrong, not only which stages fail.
//!
//! A captured forward pass is thousands of stages in execution order (LEFT's
//! tensor order, each tensor's stages in pipeline order). Two places answer
//! "where does my port start to diverge?":
//!
//! * the **first divergence**: the first gated stage that fails its gate;
//! * the **onset**: the first stage whose relative error
//!   `‖right − left‖₂ / ‖left‖₂` jumps above `F` × max(the median relative
//!   error of the stages before it, the unit roundoff of its dtype). Honest
//!   rounding noise grows slowly along a run (each stage adds a few ULPs to
//!   what it was given), so its relative error stays within a small factor
//!   of the typical error before it; a bug multiplies it by orders of
//!   magnitude at the stage where it sits, and every later stage inherits
//!   it. The onset is found whatever the tolerances: a bug that loose gates
//!   let pass still shows as a jump, and it points at the cause, not at the
//!   later stage where the error grew large enough to fail a gate.
//!
//! Only stages whose values are floats on both sides count: an integer
//! stage (token ids, masks) has no rounding to compare against. Nor do the
//! stages of parity's own catalog operations (svf_apply, svd, …): each has
//! tolerances designed for it, and some are residuals whose values are
//! rounding noise themselves (an SVD's orthogonality error is ~1e-16 in f64
//! and ~1e-8 in f32: a relative error of 10⁸ between two honest sides). The
//! onset is for runs of modules: a captured forward pass, a port's own
//! operations.

use super::outcome::TensorResult;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// `--onset-factor`'s default: two decimal orders of magnitude above the
/// typical error so far. Rounding noise along a transformer run grows by a
/// few times at most from one stage to the next (measured on BERT: see
/// tests/onset.rs); a planted bug moves it by 10³ or more.
pub const DEFAULT_ONSET_FACTOR: f64 = 100.0;

/// The first gated stage that fails, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    pub tensor: String,
    pub stage: String,
    /// The limits it broke, one phrase each.
    pub failures: Vec<String>,
}

/// The first stage whose relative error jumps (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Onset {
    pub tensor: String,
    pub stage: String,
    /// `‖right − left‖₂ / ‖left‖₂` of this stage.
    pub relative_error: f64,
    /// The median relative error of the float stages before it (None for
    /// the first one).
    pub median_before: Option<f64>,
    /// Of the dtype compared (the narrower side's).
    pub unit_roundoff: f64,
    pub factor: f64,
    /// `factor × max(median_before, unit_roundoff)`: what was exceeded.
    pub threshold: f64,
}

/// One float stage's relative error, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct StageError<'a> {
    pub tensor: &'a str,
    pub stage: &'a str,
    pub relative_error: f64,
    pub unit_roundoff: f64,
}

pub fn first_divergence(tensors: &[TensorResult]) -> Option<Divergence> {
    tensors.iter().find_map(|t| {
        let s = t.stages.iter().find(|s| s.gated() && !s.passed())?;
        Some(Divergence { tensor: t.name.clone(), stage: s.stage.clone(), failures: s.failures.clone() })
    })
}

/// `‖d‖₂ / ‖left‖₂` from the metric pass's `nmse = Σd² / Σleft²` (0 when
/// both are 0, inf when only LEFT is): the square root is the only rounding
/// added here, half an ULP of a value compared against thresholds that are
/// powers of ten apart.
pub fn relative_errors(tensors: &[TensorResult]) -> Vec<StageError<'_>> {
    let mut out = Vec::new();
    for t in tensors.iter().filter(|t| crate::ops::find(&t.operation).is_none()) {
        for s in &t.stages {
            let (Some(m), Some(l), Some(r)) = (&s.metrics, &s.left, &s.right) else { continue };
            let (Some(ul), Some(ur)) = (l.dtype.unit_roundoff(), r.dtype.unit_roundoff()) else { continue };
            if m.nmse.is_nan() {
                continue;
            }
            out.push(StageError { tensor: &t.name, stage: &s.stage, relative_error: m.nmse.sqrt(), unit_roundoff: ul.max(ur) });
        }
    }
    out
}

pub fn onset(tensors: &[TensorResult], factor: f64) -> Option<Onset> {
    let mut before = RunningMedian::default();
    for e in relative_errors(tensors) {
        let median_before = before.median();
        let threshold = factor * median_before.unwrap_or(0.0).max(e.unit_roundoff);
        if e.relative_error > threshold {
            return Some(Onset {
                tensor: e.tensor.to_string(),
                stage: e.stage.to_string(),
                relative_error: e.relative_error,
                median_before,
                unit_roundoff: e.unit_roundoff,
                factor,
                threshold,
            });
        }
        before.push(e.relative_error);
    }
    None
}

/// A total order on the non-NaN f64s the heaps hold.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
struct Ordered(f64);
impl Eq for Ordered {}
impl Ord for Ordered {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// The median of the values pushed so far, in O(log n) per push: the lower
/// half in a max-heap, the upper half in a min-heap, sizes within one. An
/// even count's median is the mean of the two middle values (that sum of
/// two rounds once; both are ≥ 0, so it cannot cancel).
#[derive(Default)]
struct RunningMedian {
    low: BinaryHeap<Ordered>,
    high: BinaryHeap<Reverse<Ordered>>,
}

impl RunningMedian {
    fn push(&mut self, x: f64) {
        if self.low.peek().is_none_or(|m| x <= m.0) {
            self.low.push(Ordered(x));
        } else {
            self.high.push(Reverse(Ordered(x)));
        }
        if self.low.len() > self.high.len() + 1 {
            let m = self.low.pop().expect("non-empty");
            self.high.push(Reverse(m));
        } else if self.high.len() > self.low.len() {
            let Reverse(m) = self.high.pop().expect("non-empty");
            self.low.push(m);
        }
    }

    fn median(&self) -> Option<f64> {
        let lo = self.low.peek()?.0;
        if self.low.len() > self.high.len() {
            Some(lo)
        } else {
            let hi = self.high.peek().expect("sizes within one").0 .0;
            Some(lo / 2.0 + hi / 2.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RunningMedian;

    fn naive(v: &[f64]) -> Option<f64> {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(s[n / 2]),
            _ => Some(s[n / 2 - 1] / 2.0 + s[n / 2] / 2.0),
        }
    }

    #[test]
    fn the_running_median_is_the_sorted_middle_after_every_push() {
        // Ties, zeros, an infinity, and a descending then ascending run.
        let values = [3.0, 1.0, 1.0, 0.0, 7.0, f64::INFINITY, 2.0, 2.0, 1e-300, 5.0, 4.0, 0.0];
        let mut m = RunningMedian::default();
        assert_eq!(m.median(), None);
        for (i, &x) in values.iter().enumerate() {
            m.push(x);
            assert_eq!(m.median(), naive(&values[..=i]), "after {} values", i + 1);
        }
    }
}
