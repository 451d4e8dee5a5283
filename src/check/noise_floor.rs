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
//! The reference is `replay --impl reference-f64` (f64 compute, F32 stages
//! kept in F64), written to a temporary directory that is removed
//! afterwards; the two errors are the comparer's RMS over the positions
//! both sides hold finite values (the same streaming pass, merged in block
//! order, as every check: deterministic whatever the thread count). Stages
//! whose shapes differ from the reference's, or that one side lacks, get
//! no verdict and say why.

use super::{check, CheckOptions, CheckOutcome};
use crate::compare::gate::StageResult;
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
    /// `m · left_err + ε`.
    pub limit: f64,
    /// `right_err / left_err` (+inf when only RIGHT errs; NaN when neither does).
    pub ratio: f64,
    pub passed: bool,
    /// Why no verdict was given (the stage is then not gated).
    pub skipped: Option<String>,
}

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
    // Metrics only: no explanation, no hash mode, no top differences.
    let against = CheckOptions {
        profile: opts.profile.clone(),
        select: opts.select.clone(),
        stages: opts.stages.clone(),
        allow_outside_paths: true, // the reference sits in a temporary directory
        top_diffs: 0,
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
                limit: f64::NAN,
                ratio: f64::NAN,
                passed: false,
                skipped: None,
            };
            let r = right.get(&(t.name.as_str(), l.stage.as_str()));
            match (l.metrics.as_ref(), r.and_then(|r| r.metrics.as_ref())) {
                (Some(lm), Some(rm)) => {
                    n.left_err = lm.rms;
                    n.right_err = rm.rms;
                    // One rounding in the product and one in the sum: far
                    // below the difference between a port and its baseline
                    // that the rule exists to catch.
                    n.limit = m * lm.rms + eps;
                    n.ratio = if lm.rms > 0.0 { rm.rms / lm.rms } else if rm.rms > 0.0 { f64::INFINITY } else { f64::NAN };
                    n.passed = rm.rms <= n.limit;
                }
                (None, _) => n.skipped = Some("LEFT's stage cannot be compared with the reference's (shape or presence)".into()),
                (_, None) => n.skipped = Some("RIGHT's stage cannot be compared with the reference's (shape or presence)".into()),
            }
            stages.push(n);
        }
    }
    NoiseFloor { stages }
}
