//! The strictness modes: which gates decide the exit code, and why one
//! does not hold.

use super::outcome::*;
use super::Modes;
use crate::compare::numbers::short_hash;
use crate::error::{Error, Result};
use crate::format::report::LoadedReport;

/// `left` is the baseline report; `right` names the candidate report in errors.
pub(super) fn judge_modes(modes: &Modes, tensors: &[TensorResult], left: &LoadedReport, right: &std::path::Path) -> Result<ModeResults> {
    let baseline = left.report.baseline.as_ref();
    // Stage tolerances.
    let checks: usize = tensors.iter().map(TensorResult::gated_checks).sum();
    let mut reasons: Vec<String> = tensors
        .iter()
        .filter(|t| !t.passed)
        .map(|t| {
            let stage = t.first_failing_stage.as_deref().unwrap_or("?");
            let why = t.stages.iter().find(|s| s.stage == stage).map(|s| s.failures.join("; ")).unwrap_or_default();
            format!("{}: first failing stage {stage}: {why}", t.name)
        })
        .collect();
    if checks == 0 {
        reasons.push("no stage checks at all: no required stage was compared (check --select and --stages)".into());
    }
    let stage_tolerances = ModeResult { enabled: modes.strict_stage_tolerances, holds: reasons.is_empty(), reasons };

    // Current hash.
    let mut reasons = Vec::new();
    for t in tensors {
        let h = &t.hashes;
        match (&h.left_final, &h.right_final) {
            (Some(_), Some(_)) if h.equal => {}
            (Some(a), Some(b)) => {
                let how = h.bytes.as_ref().map(|b| format!(": {}", b.sentence())).unwrap_or_default();
                reasons.push(format!(
                    "{}: final_sha256 differs (left {}, right {}){how}",
                    t.name,
                    short_hash(a),
                    short_hash(b)
                ));
            }
            (a, _) => {
                let (side, report) = if a.is_none() { ("left", left.path.as_path()) } else { ("right", right) };
                let msg = format!("no final_sha256 in the {side} report");
                if modes.strict_hash {
                    return Err(Error::tensor(report, &t.name, None, format!("--strict-hash: {msg}")));
                }
                reasons.push(format!("{}: {msg}", t.name));
            }
        }
    }
    if tensors.is_empty() {
        reasons.push("no tensors to check".into());
    }
    let hash = ModeResult { enabled: modes.strict_hash, holds: reasons.is_empty(), reasons };

    // Historical hash.
    let mut reasons = Vec::new();
    for t in tensors {
        let h = &t.hashes;
        let Some(hist) = &h.historical else {
            if modes.strict_historical_hash {
                return Err(Error::tensor(
                    &left.path,
                    &t.name,
                    None,
                    "--strict-historical-hash: no historical_final_sha256 for this tensor: nothing to compare against",
                ));
            }
            reasons.push(format!("{}: no historical_final_sha256", t.name));
            continue;
        };
        if h.left_matches_historical() && h.right_matches_historical() {
            continue;
        }
        let sides = format!(
            "left {}, right {}",
            if h.left_matches_historical() { "matches" } else { "differs" },
            if h.right_matches_historical() { "matches" } else { "differs" }
        );
        match baseline {
            Some(b) if !b.historical_reproducible => {
                let note = b.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
                reasons.push(format!(
                    "{}: historical hash {} is not reproducible with these components ({sides}); baseline '{}' says so{note}",
                    t.name,
                    short_hash(hist),
                    b.label
                ));
            }
            _ => reasons.push(format!(
                "{}: final hash does not equal historical_final_sha256 {} ({sides})",
                t.name,
                short_hash(hist)
            )),
        }
    }
    if tensors.is_empty() {
        reasons.push("no tensors to check".into());
    }
    let historical_hash = ModeResult { enabled: modes.strict_historical_hash, holds: reasons.is_empty(), reasons };
    Ok(ModeResults { stage_tolerances, hash, historical_hash })
}
