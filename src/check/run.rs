//! Comparison, parallel: every stage pair streamed through the metric
//! kernel, the hashes a verdict rests on verified beside it.

use super::outcome::*;
use super::setup::*;
use super::CheckOptions;
use crate::compare::gate::{self, StageResult, StageSide};
use crate::compare::metrics::CHUNK;
use crate::compare::numbers;
use crate::error::{Error, Result};
use rayon::prelude::*;

pub(super) fn run_tensor(p: &TensorSetup, opts: &CheckOptions, bar: &indicatif::ProgressBar) -> Result<TensorResult> {
    let results: Vec<Result<StageResult>> = p
        .stages
        .par_iter()
        .map(|s| {
            let r = run_stage(s, opts.top_diffs, opts.verify_hashes || (s.is_final && rehash_final(opts)));
            bar.inc(1);
            r
        })
        .collect();
    // The first error in pipeline order, whichever thread met it first.
    let stages = results.into_iter().collect::<Result<Vec<_>>>()?;
    let first_failing_stage = stages.iter().find(|s| s.gated() && !s.passed()).map(|s| s.stage.clone());
    let final_result = p.final_stage.as_ref().and_then(|f| stages.iter().find(|s| &s.stage == f));
    let bytes = final_result.and_then(|s| {
        let m = s.metrics.as_ref()?;
        Some(ByteDiff { stage: s.stage.clone(), numel: m.numel, not_bit_equal: m.not_bit_equal?, max_ulp: m.max_ulp })
    });
    let (lf, rf) = (p.left.final_sha256.clone(), p.right.final_sha256.clone());
    let equal = matches!((&lf, &rf), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
    if let (Some(fin), true) = (final_result, lf.is_some() && rf.is_some()) {
        claims_match_bytes(p, fin, equal)?;
    }
    Ok(TensorResult {
        name: p.left.name.clone(),
        right_name: None,
        right_operation: (p.right.operation != p.left.operation).then(|| p.right.operation.clone()),
        operation: p.left.operation.clone(),
        passed: first_failing_stage.is_none(),
        first_failing_stage,
        hashes: HashFacts {
            left_final: lf,
            right_final: rf,
            equal,
            historical: p.left.historical_final_sha256.clone(),
            historical_reproducible: p.historical_reproducible,
            bytes: if equal { None } else { bytes },
            rehashed: rehash_final(opts) && final_result.is_some(),
        },
        stages,
    })
}

/// Name the porting bug behind each failing stage, when one fits, and with
/// `opts.plots` summarise its differences for the page, from the same read.
/// The stages are examined one at a time (each test is parallel inside), so
/// at most one failing stage pair is held in memory.
pub(super) fn explain_failures(p: &TensorSetup, t: &mut TensorResult, opts: &CheckOptions) -> Result<()> {
    let chosen = |stage: &str| opts.plots && opts.plot_stages.iter().any(|g| g.matches(stage));
    for s in t.stages.iter_mut() {
        let failing = s.verdict == crate::compare::gate::Verdict::Fail;
        if !failing && !chosen(&s.stage) {
            continue;
        }
        let Some(setup) = p.stages.iter().find(|x| x.name == s.stage) else { continue };
        if let (Some(l), Some(r)) = (&setup.left, &setup.right) {
            let (explanation, plots) = crate::compare::explain::examine(l.stage(), r.stage(), &setup.tol, opts.plots)?;
            // A passing stage needs no explanation (nor is one looked for in a
            // difference the tolerance allows).
            if opts.explain && failing {
                s.explanation = explanation;
            }
            s.plots = plots;
        }
    }
    Ok(())
}

/// Whether the final stages are re-hashed: the hash modes' verdicts rest on them.
pub(super) fn rehash_final(opts: &CheckOptions) -> bool {
    opts.verify_hashes || opts.modes.strict_hash || opts.modes.strict_historical_hash
}

pub(super) fn run_stage(s: &StageSetup, top_diffs: usize, rehash: bool) -> Result<StageResult> {
    let side = |p: &Present| StageSide { dtype: p.view.dtype, shape: p.view.shape.to_vec() };
    let verify_sha = |p: &Present| if rehash { verify_sha(p) } else { Ok(()) };
    match (&s.left, &s.right) {
        (Some(l), Some(r)) => {
            // The hashes are verified beside the metric pass, not after it:
            // both read the same mapped pages.
            let ((lh, rh), result) = rayon::join(
                || rayon::join(|| verify_sha(l), || verify_sha(r)),
                || gate::judge_stages(&s.name, l.stage(), r.stage(), &s.tol, top_diffs, CHUNK, &|_| {}),
            );
            lh?;
            rh?;
            let mut result = result?;
            if s.logits {
                with_logits(&mut result, l, r)?;
            }
            Ok(result)
        }
        (Some(l), None) => {
            verify_sha(l)?;
            Ok(StageResult::missing(&s.name, &s.tol, Some(side(l)), None))
        }
        (None, Some(r)) => {
            verify_sha(r)?;
            Ok(StageResult::missing(&s.name, &s.tol, None, Some(side(r))))
        }
        (None, None) => unreachable!("planned stages exist on at least one side"),
    }
}

/// `--logits`: token metrics of a stage whose sides have one shape of at
/// least one axis and float values; their limits (`min_top1`, `max_kl`)
/// join the stage's gate.
fn with_logits(result: &mut StageResult, l: &Present, r: &Present) -> Result<()> {
    let (ls, rs) = (l.stage(), r.stage());
    if ls.shape != rs.shape {
        return Ok(()); // the shape mismatch already fails the stage
    }
    if ls.shape.is_empty() || !ls.dtype.is_float() || !rs.dtype.is_float() {
        // Named by --logits but not logits: its token limits cannot be held,
        // so the stage fails rather than pass them unchecked.
        result.failures.push(format!(
            "--logits names this stage but it is not float logits with a vocabulary axis ({} {:?} vs {} {:?}): no token metrics",
            ls.dtype.name(),
            ls.shape,
            rs.dtype.name(),
            rs.shape
        ));
        result.verdict = gate::Verdict::Fail;
        return Ok(());
    }
    let m = crate::compare::logits::measure(ls, rs)?;
    let broken = crate::compare::logits::limits_broken(&m, &result.tolerance);
    if !broken.is_empty() {
        result.failures.extend(broken);
        result.verdict = gate::Verdict::Fail;
    }
    result.logits = Some(m);
    Ok(())
}

/// Equal final hashes claim equal final stages, and different ones different
/// stages; the metric pass knows which is true without hashing anything.
/// A contradiction means a report does not describe its bundle.
pub(super) fn claims_match_bytes(p: &TensorSetup, fin: &StageResult, claimed_equal: bool) -> Result<()> {
    let identical = fin.metrics.as_ref().is_some_and(|m| m.bytes_equal);
    if claimed_equal == identical {
        return Ok(());
    }
    let (Some(l), Some(r)) = p.stages.iter().find(|s| s.name == fin.stage).map(|s| (&s.left, &s.right)).unwrap_or((&None, &None))
    else {
        return Ok(());
    };
    let how = match (&fin.metrics, identical) {
        (_, true) => "are byte-identical".to_string(),
        (Some(m), false) => match m.not_bit_equal {
            Some(n) => format!("differ in {} of {} elements", numbers::thousands(n), numbers::thousands(m.numel)),
            None => "differ in dtype".to_string(),
        },
        (None, false) => "differ in shape".to_string(),
    };
    Err(Error::tensor(
        r.bundle,
        p.left.name.as_str(),
        Some(fin.stage.as_str()),
        format!(
            "the reports' final_sha256 are {} but this stage and the one in {} {how}: a report does not describe its bundle (--verify-hashes re-hashes every stage and names which)",
            if claimed_equal { "equal" } else { "different" },
            l.bundle.display()
        ),
    ))
}

/// The bundle's bytes must be the ones the report describes.
pub(super) fn verify_sha(p: &Present) -> Result<()> {
    let actual = p.region.sha256_hex()?;
    if actual.eq_ignore_ascii_case(&p.entry.sha256) {
        Ok(())
    } else {
        Err(Error::HashMismatch {
            path: p.bundle.to_path_buf(),
            tensor: p.tensor.to_string(),
            stage: Some(p.stage.to_string()),
            expected: p.entry.sha256.clone(),
            actual,
            described_by: p.report.to_path_buf(),
            described_as: "report",
        })
    }
}

