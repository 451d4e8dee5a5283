//! `parity check --noise-floor`: is the port no worse than the code it is
//! checked against?
//!
//! A fixed tolerance asks "are RIGHT and LEFT close?"; it cannot tell a port
//! that is *less accurate* than the baseline from one that is merely
//! *differently* rounded (often more accurate). The noise floor asks the
//! question of torch's dynamo accuracy check, per stage: with REF the f64
//! reference replayed on LEFT's own inputs (its components),
//!
//! ```text
//!   err(RIGHT, REF) ≤ m · err(LEFT, REF) + ε        err = RMS of the difference
//! ```
//!
//! `m` and `ε` come from the tolerance profile (`noise_floor_m`,
//! `noise_floor_eps`; defaults
//! [`crate::compare::tolerance::NOISE_FLOOR_M`] and [`crate::compare::tolerance::NOISE_FLOOR_EPS`]).
//!
//! Two allowances keep the rule from judging noise by noise, where LEFT's
//! own error is one rounding or a few rare events (an honest replay failed
//! 4 of 390 MiniLM stages without them):
//! * **The rounding floor**, added to the limit: [`FLOOR_ELEMENTS`] elements
//!   one ULP of the stage's dtype off (at most 2u·|x|, u its unit roundoff)
//!   at the reference's RMS magnitude, as an RMS over the stage:
//!   `2u · rms(REF) · √(min(n, 4) / n)`. On a one-element stage it is one
//!   ULP (LEFT's error, one rounding, may be near 0 by luck); on a large one
//!   it vanishes and `m` alone decides, where the RMS is a steady average.
//! * **Flip counts**, for a stage stored in the reference's own dtype,
//!   narrower than f32, whose differences on the right are roundings that
//!   went the other way (bf16 outputs of an f32 computation: an element
//!   lands on the other neighbour when its f32 value is within the f32
//!   error of a tie — rare, and counted by chance; see [`flips`]).
//!   With `l` and `r` such elements, an honest RIGHT flips at most `m` times
//!   as often as LEFT, so given `l + r` flips, `r` is at most
//!   Binomial(l + r, m / (1 + m)). The stage fails only when `r` is so large
//!   that this has chance below [`FLIP_ALPHA`] (a Chernoff bound, so an honest
//!   stage fails by chance less often than that).
//!
//! The reference is `replay --impl reference-f64` (f64 compute, F32 stages
//! kept in F64), written to a temporary directory that is removed
//! afterwards; the two errors are the comparer's RMS over the positions
//! both sides hold finite values (the same streaming pass, merged in block
//! order, as every check: deterministic whatever the thread count). Stages
//! whose shapes differ from the reference's, or that one side lacks, get
//! no verdict and say why.

use super::{check, CheckOptions, CheckOutcome};
use crate::compare::gate::StageResult;
use crate::compare::metrics::Metrics;
use crate::format::dtype::DType;
use crate::numeric::stats::binomial_tail_bound;
use crate::error::{Error, Result};
use crate::ops::Implementation;
use crate::replay::{replay, ReplayOptions};
use std::collections::BTreeMap;
use std::path::Path;

/// One stage's errors against the f64 reference.
#[derive(Clone, Debug, PartialEq)]
pub struct StageNoise {
    pub tensor: String,
    pub stage: String,
    /// RMS of LEFT − REF (the baseline's own error).
    pub left_err: f64,
    /// RMS of RIGHT − REF.
    pub right_err: f64,
    pub m: f64,
    pub eps: f64,
    /// The rounding floor (see the module notes).
    pub floor: f64,
    /// `m · left_err + ε + floor`.
    pub limit: f64,
    /// `right_err / left_err` (+inf when only RIGHT errs; NaN when neither does).
    pub ratio: f64,
    /// For a rounded stage whose differences are rounding flips: the counts.
    pub flips: Option<Flips>,
    pub passed: bool,
    /// Why no verdict was given (the stage is then not gated).
    pub skipped: Option<String>,
}

/// One-ULP differences from the reference ("flips"), counted per side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flips {
    pub left: u64,
    pub right: u64,
    /// An upper bound on the chance of `right` or more of `left + right`
    /// flips on the right when an honest RIGHT flips at most `m` times as often.
    pub chance: f64,
}

/// The rounding floor counts this many elements one ULP off.
pub const FLOOR_ELEMENTS: u64 = 4;
/// A stage judged by its flip counts fails only below this chance: with
/// ~400 stages a run, an honest run fails by chance less than once in 2,500.
pub const FLIP_ALPHA: f64 = 1e-6;

/// Every selected stage's noise-floor verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseFloor {
    pub stages: Vec<StageNoise>,
}

impl NoiseFloor {
    pub fn passed(&self) -> bool {
        self.stages.iter().all(|s| s.passed || s.skipped.is_some())
    }
}

/// Replay the f64 reference on LEFT's inputs and judge every stage of RIGHT
/// against LEFT by the noise-floor rule. `opts` selects tensors and stages
/// and gives the profile (for `m` and `ε`).
pub fn noise_floor(left: &Path, right: &Path, opts: &CheckOptions) -> Result<NoiseFloor> {
    let dir = tempfile::Builder::new()
        .prefix(".parity-noise-floor-")
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    let reference = dir.path().join("reference_f64.json");
    let ropts = ReplayOptions {
        implementation: Implementation::ReferenceWide,
        select: opts.select.clone(),
        allow_outside_paths: opts.allow_outside_paths,
        progress: false,
    };
    replay(left, &reference, &ropts)?;
    // Metrics only: no explanation, no hash mode, the one largest difference.
    let against = CheckOptions {
        profile: opts.profile.clone(),
        select: opts.select.clone(),
        stages: opts.stages.clone(),
        allow_outside_paths: true, // the reference sits in a temporary directory
        top_diffs: 1, // the largest difference: is it a flip (see `flips`)?
        explain: false,
        ..CheckOptions::default()
    };
    let of_left = check(&reference, left, &against)?;
    let of_right = check(&reference, right, &against)?;
    Ok(judge(&of_left, &of_right))
}

/// The rule over two checks against one reference: REF vs LEFT, REF vs RIGHT.
pub fn judge(of_left: &CheckOutcome, of_right: &CheckOutcome) -> NoiseFloor {
    let right: BTreeMap<(&str, &str), &StageResult> = of_right
        .tensors
        .iter()
        .flat_map(|t| t.stages.iter().map(move |s| ((t.name.as_str(), s.stage.as_str()), s)))
        .collect();
    let mut stages = Vec::new();
    for t in &of_left.tensors {
        for l in &t.stages {
            let (m, eps) = l.tolerance.noise_floor();
            let mut n = StageNoise {
                tensor: t.name.clone(),
                stage: l.stage.clone(),
                left_err: f64::NAN,
                right_err: f64::NAN,
                m,
                eps,
                floor: f64::NAN,
                limit: f64::NAN,
                ratio: f64::NAN,
                flips: None,
                passed: false,
                skipped: None,
            };
            let r = right.get(&(t.name.as_str(), l.stage.as_str()));
            match (l.metrics.as_ref(), r.and_then(|r| r.metrics.as_ref())) {
                (Some(lm), Some(rm)) => {
                    n.left_err = lm.rms;
                    n.right_err = rm.rms;
                    let sides = [l.right.as_ref(), r.and_then(|r| r.right.as_ref())];
                    n.floor = rounding_floor(sides.iter().flatten().map(|s| s.dtype), lm, rm);
                    // One rounding in the product and two in the sums: far
                    // below the difference between a port and its baseline
                    // that the rule exists to catch.
                    n.limit = m * lm.rms + eps + n.floor;
                    n.ratio = if lm.rms > 0.0 { rm.rms / lm.rms } else if rm.rms > 0.0 { f64::INFINITY } else { f64::NAN };
                    // Both sides in the reference's dtype, or no flip counts.
                    let same = sides.iter().flatten().all(|s| Some(s.dtype) == l.left.as_ref().map(|r| r.dtype));
                    n.flips = flips(l.left.as_ref().map(|r| r.dtype).filter(|_| same), lm, rm, m);
                    n.passed = rm.rms <= n.limit || n.flips.is_some_and(|f| f.chance >= FLIP_ALPHA);
                }
                (None, _) => n.skipped = Some("LEFT's stage cannot be compared with the reference's (shape or presence)".into()),
                (_, None) => n.skipped = Some("RIGHT's stage cannot be compared with the reference's (shape or presence)".into()),
            }
            stages.push(n);
        }
    }
    NoiseFloor { stages }
}

/// The rounding floor of a stage: `2u · rms(REF) · √(min(n, 4) / n)`, u the
/// unit roundoff of the coarser of the two sides' dtypes (0 for integers).
/// rms(REF) comes from the comparer's own sums: `nmse = Σd² / ΣREF²` and
/// `rms = √(Σd² / n)` give `rms(REF) = rms / √nmse` — from LEFT's comparison,
/// or RIGHT's when LEFT's differences are all zero (the reference is the
/// same on both); when neither side differs, nothing needs a floor.
fn rounding_floor(dtypes: impl Iterator<Item = crate::format::dtype::DType>, lm: &Metrics, rm: &Metrics) -> f64 {
    let u = dtypes.filter_map(|d| d.unit_roundoff()).fold(0.0, f64::max);
    let magnitude = [lm, rm].into_iter().find(|x| x.nmse > 0.0 && x.nmse.is_finite()).map_or(0.0, |x| x.rms / x.nmse.sqrt());
    let n = lm.compared;
    if n == 0 || u == 0.0 {
        return 0.0;
    }
    2.0 * u * magnitude * (n.min(FLOOR_ELEMENTS) as f64 / n as f64).sqrt()
}

/// The flip counts of a stage stored in a dtype narrower than f32 on all
/// three sides (so "differs" is a bit comparison), when RIGHT's largest
/// difference is at most two ULPs of the reference's value there (4u·|ref|):
/// then every difference of RIGHT is of that size or smaller, a rounding
/// that went the other way, not a wrong value. (Near zero an f32 error can
/// be many bf16 ULPs of a tiny value, but is then tiny itself: it is the
/// largest difference, among the largest values, that tells a flip from a bug.)
fn flips(dtype: Option<DType>, lm: &Metrics, rm: &Metrics, m: f64) -> Option<Flips> {
    let u = dtype.filter(|d| d.is_low_precision_float())?.unit_roundoff()?;
    let (Some(left), Some(right)) = (lm.not_bit_equal, rm.not_bit_equal) else { return None };
    let rounding = rm.top.first().is_none_or(|d| d.abs_diff <= 4.0 * u * d.left.abs());
    if !rounding || lm.non_finite.mismatched + rm.non_finite.mismatched > 0 || !m.is_finite() {
        return None;
    }
    Some(Flips { left, right, chance: binomial_tail_bound(left + right, right, m / (1.0 + m)) })
}
