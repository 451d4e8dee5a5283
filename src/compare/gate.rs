//! The gate of one stage: measure both sides, hold the metrics against the
//! stage's tolerance, and say which limit broke.

use super::metrics::{self, Metrics, Stage, CHUNK};
use crate::error::Result;
use super::numbers::{self, short, versus};
use super::tolerance::Tolerance;
use crate::format::dtype::DType;
use crate::format::tensor::TensorView;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// An optional stage present on one side only: reported, not gated.
    Missing,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Missing => "missing",
        }
    }
}

/// What one side holds for a stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageSide {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// The gate of one stage of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct StageResult {
    pub stage: String,
    /// The tolerance applied (its `required` says whether the verdict is gated).
    pub tolerance: Tolerance,
    /// None: the stage is absent on that side (only ever an optional stage).
    pub left: Option<StageSide>,
    pub right: Option<StageSide>,
    /// None when the sides cannot be compared element by element (a side is
    /// missing, or the shapes differ).
    pub metrics: Option<Metrics>,
    pub verdict: Verdict,
    /// Which limits failed, one phrase each: `max_abs 3.1e-3 > 1e-3`.
    pub failures: Vec<String>,
    /// For a failing stage, the porting bug that explains it, when one fits
    /// (filled in by the caller with [`super::explain::explain`]: the gate
    /// itself reads each stage once).
    pub explanation: Option<super::explain::Explanation>,
    /// For a failing stage, what its differences look like (filled in beside
    /// the explanation, from the same read, when the caller asks for plots).
    pub plots: Option<super::plots::StagePlots>,
    /// Token metrics, for a stage `check --logits` names.
    pub logits: Option<super::logits::LogitMetrics>,
}

impl StageResult {
    /// Whether this stage's verdict decides `--strict-stage-tolerances`.
    pub fn gated(&self) -> bool {
        self.tolerance.required && self.verdict != Verdict::Missing
    }
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// An optional stage that one side does not have.
    pub fn missing(stage: &str, tol: &Tolerance, left: Option<StageSide>, right: Option<StageSide>) -> StageResult {
        let side = if left.is_none() { "left" } else { "right" };
        StageResult {
            stage: stage.to_string(),
            tolerance: *tol,
            left,
            right,
            metrics: None,
            verdict: Verdict::Missing,
            failures: vec![format!("missing on the {side} (optional stage: reported, not gated)")],
            explanation: None,
            plots: None,
            logits: None,
        }
    }
}

/// Compare one stage of two tensors against a tolerance, keeping the
/// `top_diffs` largest divergences. The result's `stage` name is empty; the
/// caller knows it.
pub fn compare_stage(left: TensorView, right: TensorView, tol: &Tolerance, top_diffs: usize) -> StageResult {
    compare_stage_chunked(left, right, tol, top_diffs, CHUNK)
}

/// [`compare_stage`] with an explicit chunk size (a performance knob only:
/// the result is the same for every chunk size).
pub fn compare_stage_chunked(
    left: TensorView,
    right: TensorView,
    tol: &Tolerance,
    top_diffs: usize,
    chunk: usize,
) -> StageResult {
    judge("", left, right, tol, top_diffs, chunk, &|_| {})
}

pub(crate) fn judge(
    stage: &str,
    left: TensorView,
    right: TensorView,
    tol: &Tolerance,
    top_diffs: usize,
    chunk: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> StageResult {
    judge_stages(stage, left.into(), right.into(), tol, top_diffs, chunk, progress).expect("reading memory cannot fail")
}

/// [`judge`] for stages wherever their bytes are (see [`metrics::Bytes`]).
pub(crate) fn judge_stages(
    stage: &str,
    left: Stage,
    right: Stage,
    tol: &Tolerance,
    top_diffs: usize,
    chunk: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StageResult> {
    let mut failures = Vec::new();
    // Floats of different widths (a bf16 port of an f32 run) are compared by
    // value, as `diff` does: each side decodes exactly to f64. Only a limit
    // counted in one dtype's units (max_ulp) cannot apply; any other pair of
    // dtypes (an integer against a float) is a different kind of value.
    if left.dtype != right.dtype {
        if !(left.dtype.is_float() && right.dtype.is_float()) {
            failures.push(format!("dtype {} (left) vs {} (right)", left.dtype, right.dtype));
        } else if let Some(ulp) = tol.max_ulp {
            failures.push(format!("dtype {} (left) vs {} (right): max_ulp {ulp} counts units of one dtype", left.dtype, right.dtype));
        }
    }
    let metrics = if left.shape == right.shape {
        Some(metrics::measure_stages(left, right, tol, top_diffs, chunk, progress)?)
    } else {
        let transposed = left.shape.len() == 2 && left.shape.iter().rev().eq(right.shape.iter());
        failures.push(format!(
            "shape {} (left) vs {} (right){}",
            numbers::shape(left.shape),
            numbers::shape(right.shape),
            if transposed { ": transposed layout?" } else { "" }
        ));
        None
    };
    if let Some(m) = &metrics {
        failures.extend(limits_broken(m, tol));
    }
    Ok(StageResult {
        stage: stage.to_string(),
        tolerance: *tol,
        left: Some(StageSide { dtype: left.dtype, shape: left.shape.to_vec() }),
        right: Some(StageSide { dtype: right.dtype, shape: right.shape.to_vec() }),
        metrics,
        verdict: if failures.is_empty() { Verdict::Pass } else { Verdict::Fail },
        failures,
        explanation: None,
        plots: None,
        logits: None,
    })
}

/// Every limit of `tol` that `m` breaks, in the order a reader checks them.
pub fn limits_broken(m: &Metrics, tol: &Tolerance) -> Vec<String> {
    let mut out = Vec::new();
    let nf = &m.non_finite;
    if nf.mismatched > 0 {
        let at = nf.first_mismatch.as_deref().map(numbers::index).unwrap_or_default();
        out.push(format!(
            "non-finite mismatch at {} position{} (first at {at})",
            numbers::thousands(nf.mismatched),
            if nf.mismatched == 1 { "" } else { "s" }
        ));
    }
    match m.max_abs_int {
        // Integers: the exact |d| against the limit, never its rounded f64
        // (2⁵³ + 1 would pass a limit of 2⁵³).
        Some(d) if crate::numeric::int::exceeds(d, tol.max_abs) => {
            let (v, l) = numbers::versus_int(d, tol.max_abs);
            out.push(format!("max_abs {v} > {l}"));
        }
        Some(_) => {}
        None if m.max_abs > tol.max_abs => {
            let (v, l) = versus(m.max_abs, tol.max_abs);
            out.push(format!("max_abs {v} > {l}"));
        }
        None => {}
    }
    if m.mean_abs > tol.mean_abs {
        let (v, l) = versus(m.mean_abs, tol.mean_abs);
        out.push(format!("mean_abs {v} > {l}"));
    }
    if let Some(min) = tol.min_cosine {
        // A NaN cosine (sums overflowed) must not pass silently.
        if m.cosine.is_nan() || m.cosine < min {
            // Cosines read best as decimals (0.99999994), unless nine
            // decimals cannot tell the two apart.
            let (mut v, mut l) = (numbers::cosine(m.cosine), numbers::cosine(min));
            if v == l {
                (v, l) = versus(m.cosine, min);
            }
            out.push(format!("cosine {v} < {l}"));
        }
    }
    if let Some(limit) = tol.max_ulp {
        match m.max_ulp {
            Some(u) if u > limit => out.push(format!("max_ulp {u} > {limit}")),
            Some(_) => {}
            // Differing dtypes already failed above.
            None => {}
        }
    }
    if let Some(outside) = m.outside_allclose {
        let allowed = tol.max_mismatch_fraction.unwrap_or(0.0);
        let fraction = if m.numel == 0 { 0.0 } else { outside as f64 / m.numel as f64 };
        if fraction > allowed {
            out.push(format!(
                "allclose(rtol={}, atol={}): {} / {} elements outside ({}) > {} allowed",
                short(tol.rtol.unwrap_or(0.0)),
                short(tol.atol.unwrap_or(0.0)),
                numbers::thousands(outside),
                numbers::thousands(m.numel),
                numbers::percent(outside, m.numel),
                format_fraction(allowed)
            ));
        }
    }
    out
}

/// An allowed share as a percentage: `0%`, `20%`, `0.001%`.
fn format_fraction(f: f64) -> String {
    let s = format!("{:.4}", f * 100.0);
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}
