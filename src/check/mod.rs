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
mod outcome;
mod setup;
mod provenance;
mod run;
pub mod noise_floor;
pub mod suggest;

pub use outcome::{ByteDiff, CheckOutcome, HashFacts, ModeResult, ModeResults, Side, TensorResult};

use crate::compare::profile::Profile;
use crate::error::Result;
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
        }
    }
}


/// The top-level entry point of the comparer: compare RIGHT (the candidate)
/// with LEFT (the baseline) as `opts` asks.
pub fn check(left: &Path, right: &Path, opts: &CheckOptions) -> Result<CheckOutcome> {
    use setup::{check_stage_selection, set_up_tensor, Opened};
    let l = Opened::open(left, opts.allow_outside_paths)?;
    let r = Opened::open(right, opts.allow_outside_paths)?;
    let selection = crate::select::Selection::new(&opts.select)?;
    let chosen = selection.apply(&l.loaded.report.tensors, |t| t.name.as_str())?;
    let plans = chosen.iter().map(|t| set_up_tensor(&l, &r, t, opts)).collect::<Result<Vec<_>>>()?;
    check_stage_selection(&opts.stages, &plans)?;

    let total: usize = plans.iter().map(|p| p.stages.len()).sum();
    let bar = crate::progress::bar(opts.progress, total as u64, "check");
    let results: Vec<Result<TensorResult>> = plans.par_iter().map(|p| run::run_tensor(p, opts, &bar)).collect();
    bar.finish_and_clear();
    let mut tensors = results.into_iter().collect::<Result<Vec<_>>>()?;
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
        tensors,
        modes,
        top_diffs: opts.top_diffs,
    })
}

