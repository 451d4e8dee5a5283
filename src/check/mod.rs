//! `parity check LEFT RIGHT`: every selected tensor, stage by stage, against
//! a tolerance profile, and the verdict of each strictness mode.
//!
//! The work is split in two:
//! 1. **Setup**, sequential and cheap: read both reports, open both bundles,
//!    pair the tensors, decide which stages are compared with which tolerance,
//!    and refuse anything that would make the comparison meaningless (a setup
//!    error, exit 2) — never a silent skip.
//! 2. **Comparison**, parallel: tensors, their stages and each stage's chunks
//!    all run on rayon; the sha256s a verdict rests on are verified against
//!    their reports beside the metric pass (see [`CheckOptions::verify_hashes`]). Results are collected in selection and
//!    pipeline order, so the outcome is the same whatever the thread count.

mod modes;
mod onset;
mod outcome;
mod setup;
mod provenance;
mod run;
pub mod noise_floor;
pub mod suggest;

pub use onset::{relative_errors, Divergence, Onset, StageError, DEFAULT_ONSET_FACTOR};
pub use outcome::{ByteDiff, CheckOutcome, HashFacts, ModeResult, ModeResults, Side, TensorResult};

use crate::compare::profile::Profile;
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::report::TensorEntry;
use rayon::prelude::*;
use std::path::Path;

/// Which gates decide the exit code. With none, the outcome is printed and
/// only setup errors fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Modes {
    /// Every required stage of every selected tensor passes its gate (and
    /// there is at least one such check). Hash differences never fail it.
    pub strict_stage_tolerances: bool,
    /// Every selected tensor's `final_sha256` is equal on both sides.
    pub strict_hash: bool,
    /// Both sides' final hashes equal LEFT's `historical_final_sha256`.
    pub strict_historical_hash: bool,
}

pub use crate::select::StageSelection;

/// Tolerances for the stages no profile names (a captured run's module
/// classes are no catalog operation): torch.testing's per-element rule
/// `|right − left| ≤ atol + rtol·|left|`, every element (no mismatch allowed).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DefaultTolerance {
    /// `--atol`, `--rtol`: for every dtype.
    pub atol: Option<f64>,
    pub rtol: Option<f64>,
    /// `--dtype-defaults torch`: `torch.testing.assert_close`'s defaults per
    /// dtype, for whichever of atol/rtol was not given.
    pub torch_dtype_defaults: bool,
}

impl DefaultTolerance {
    pub fn is_set(&self) -> bool {
        self.atol.is_some() || self.rtol.is_some() || self.torch_dtype_defaults
    }

    /// The (rtol, atol) of `torch.testing.assert_close` for a dtype: floats
    /// by their precision, integers and bool exact. FP8 has no torch default
    /// (assert_close refuses it): parity uses its unit roundoff as rtol and
    /// its smallest normal as atol, the rule torch's own defaults follow.
    pub fn torch_defaults(dtype: DType) -> (f64, f64) {
        match dtype {
            DType::F64 => (1e-7, 1e-7),
            DType::F32 => (1.3e-6, 1e-5),
            DType::F16 => (1e-3, 1e-5),
            DType::BF16 => (1.6e-2, 1e-5),
            DType::F8E4M3 => (0.0625, 2f64.powi(-6)),
            DType::F8E5M2 => (0.125, 2f64.powi(-14)),
            DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8 | DType::BOOL => (0.0, 0.0),
        }
    }

    /// The tolerance of a stage whose values are `dtype` (the narrower of the
    /// two sides'), or None when no default was asked for.
    pub fn for_dtype(&self, dtype: DType) -> Option<Tolerance> {
        if !self.is_set() {
            return None;
        }
        let (rtol, atol) = if self.torch_dtype_defaults { Self::torch_defaults(dtype) } else { (0.0, 0.0) };
        let (rtol, atol) = (self.rtol.unwrap_or(rtol), self.atol.unwrap_or(atol));
        Some(Tolerance::unlimited().with_allclose(rtol, atol, 0.0))
    }

    /// Where a stage's limits came from, for a reader.
    pub fn origin(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.atol {
            parts.push(format!("--atol {}", crate::compare::numbers::short(a)));
        }
        if let Some(r) = self.rtol {
            parts.push(format!("--rtol {}", crate::compare::numbers::short(r)));
        }
        if self.torch_dtype_defaults {
            parts.push("--dtype-defaults torch".into());
        }
        parts.join(" ")
    }
}


#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub modes: Modes,
    pub profile: Profile,
    /// `--select`: substrings, or globs when they contain `*?[`; empty = all.
    pub select: Vec<String>,
    pub stages: StageSelection,
    /// `--top-diffs N`: keep the N largest divergences per stage.
    pub top_diffs: usize,
    /// Let a report name a bundle outside its own directory.
    pub allow_outside_paths: bool,
    /// Show a progress bar (only ever drawn when stderr is a terminal).
    pub progress: bool,
    /// Re-hash every stage and refuse a bundle its report does not describe
    /// (`--verify-hashes`). Off by default, when the final stage — whose hash
    /// the hash modes rely on — is re-hashed only if a hash mode is on.
    /// Without one, no verdict depends on a hash: the metrics are taken from
    /// the bundles' bytes, and every stage's dtype and shape are still checked
    /// against its report; the reports' final hashes are then checked against
    /// the bytes for free instead — hashes claimed equal for final stages
    /// that differ, or claimed different for identical ones, are refused.
    /// Re-hashing costs more than all the metrics together (SHA-256 runs at
    /// ~1.7 GiB/s per core with SHA-NI; the metrics at several times that).
    pub verify_hashes: bool,
    /// Test every failing stage for the classic porting bugs (see
    /// [`crate::compare::explain`]): one more read of each failing stage.
    pub explain: bool,
    /// Summarise each failing stage's differences for `--format html`
    /// (histogram, heatmap, profiles; see [`crate::compare::plots`]), from
    /// the read the explanations make.
    pub plots: bool,
    /// With `plots`: also plot the stages whose names match one of these
    /// globs (`--plot-stages`), passing ones included.
    pub plot_stages: Vec<glob::Pattern>,
    /// `--atol/--rtol/--dtype-defaults`: the limits of stages no profile names.
    pub default_tolerance: DefaultTolerance,
    /// `--map REGEX=REPLACEMENT`: rename RIGHT's tensors before pairing.
    pub map: Vec<crate::select::NameMap>,
    /// `--onset-factor F`: a stage whose relative error exceeds F × the
    /// median of those before it (and F × its dtype's unit roundoff) is the
    /// onset (see [`onset`]).
    pub onset_factor: f64,
    /// `--fail-on-onset`: an onset fails the check even when every gate passes.
    pub fail_on_onset: bool,
    /// `--logits GLOB`: stages (`TENSOR` for all its stages, or
    /// `TENSOR.STAGE`) that also get token metrics over their last axis.
    pub logits: Vec<glob::Pattern>,
    /// `--min-top1`/`--max-kl`: limits of the `--logits` stages, over the profile's.
    pub logit_limits: LogitLimits,
}

/// Token limits given on the command line for every `--logits` stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LogitLimits {
    /// The share of positions (0..1) whose top-1 tokens must agree.
    pub min_top1: Option<f64>,
    /// The largest mean KL divergence (nats) of softmax(right) from softmax(left).
    pub max_kl: Option<f64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            modes: Modes::default(),
            profile: crate::ops::builtin_profile(),
            select: Vec::new(),
            stages: StageSelection::All,
            top_diffs: 0,
            allow_outside_paths: false,
            verify_hashes: false,
            progress: false,
            explain: true,
            plots: false,
            plot_stages: Vec::new(),
            default_tolerance: DefaultTolerance::default(),
            map: Vec::new(),
            onset_factor: DEFAULT_ONSET_FACTOR,
            fail_on_onset: false,
            logits: Vec::new(),
            logit_limits: LogitLimits::default(),
        }
    }
}


/// The top-level entry point of the comparer: compare RIGHT (the candidate)
/// with LEFT (the baseline) as `opts` asks.
pub fn check(left: &Path, right: &Path, opts: &CheckOptions) -> Result<CheckOutcome> {
    use setup::{check_stage_selection, set_up_tensor, Opened};
    let l = Opened::open(left, opts.allow_outside_paths)?;
    let mut r = Opened::open(right, opts.allow_outside_paths)?;
    // --map: RIGHT's tensors take the names they pair under; their bundle
    // keys stay as written.
    let right_names = rename_right(&mut r, &opts.map)?;
    let selection = crate::select::Selection::new(&opts.select)?;
    let chosen = selection.apply(&l.loaded.report.tensors, |t| t.name.as_str())?;
    let right_index: setup::RightIndex = r.loaded.report.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let plans = chosen.iter().map(|t| set_up_tensor(&l, &r, &right_index, t, opts)).collect::<Result<Vec<_>>>()?;
    check_stage_selection(&opts.stages, &plans)?;
    for g in &opts.logits {
        if !plans.iter().flat_map(|p| &p.stages).any(|s| s.logits && setup::logits_glob_matches(g, s.tensor, &s.name)) {
            return Err(crate::error::Error::Usage(format!(
                "--logits '{g}': matches no compared stage (a glob over TENSOR or TENSOR.STAGE, e.g. 'lm_head' or 'model.output_logits')"
            )));
        }
    }

    let total: usize = plans.iter().map(|p| p.stages.len()).sum();
    let bar = crate::progress::bar(opts.progress, total as u64, "check");
    let results: Vec<Result<TensorResult>> = plans.par_iter().map(|p| run::run_tensor(p, opts, &bar)).collect();
    bar.finish_and_clear();
    let mut tensors = results.into_iter().collect::<Result<Vec<_>>>()?;
    for t in &mut tensors {
        t.right_name = right_names.get(&t.name).cloned();
    }
    if opts.explain || opts.plots {
        for (p, t) in plans.iter().zip(tensors.iter_mut()) {
            run::explain_failures(p, t, opts)?;
        }
    }

    let modes = modes::judge_modes(&opts.modes, &tensors, &l.loaded, r.path())?;
    // The right side's tensors under the same selection, for the presence diff.
    let right_chosen: Vec<&TensorEntry> =
        r.loaded.report.tensors.iter().filter(|t| selection.matches(&t.name)).collect();
    Ok(CheckOutcome {
        provenance_diff: provenance::provenance_diff(&l, &r),
        presence_diff: provenance::presence_diff(&l, &chosen, &r, &right_chosen, &opts.stages),
        left: l.side(),
        right: r.side(),
        profile: opts.profile.origin().to_string(),
        first_divergence: onset::first_divergence(&tensors),
        onset: onset::onset(&tensors, opts.onset_factor),
        onset_factor: opts.onset_factor,
        fail_on_onset: opts.fail_on_onset,
        tensors,
        modes,
        top_diffs: opts.top_diffs,
    })
}

/// Apply `--map` to RIGHT's tensor names; returns new name → RIGHT's own
/// name for each renamed tensor. Two of RIGHT's tensors under one name
/// could not be paired: refused, naming both.
fn rename_right(r: &mut setup::Opened, map: &[crate::select::NameMap]) -> Result<std::collections::HashMap<String, String>> {
    let mut renamed = std::collections::HashMap::new();
    if map.is_empty() {
        return Ok(renamed);
    }
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let path = r.path().to_path_buf();
    for t in &mut r.loaded.report.tensors {
        let new = map.iter().fold(t.name.clone(), |n, m| m.apply(&n));
        if let Some(other) = seen.insert(new.clone(), t.name.clone()) {
            return Err(crate::error::Error::tensor(
                &path,
                &t.name,
                None,
                format!("--map renames both '{other}' and this tensor to '{new}': each name must pair with one tensor"),
            ));
        }
        if new != t.name {
            renamed.insert(new.clone(), std::mem::replace(&mut t.name, new));
        }
    }
    Ok(renamed)
}

