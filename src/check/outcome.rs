//! What `parity check` found: per tensor, per stage, per strictness mode.

use crate::compare::gate::StageResult;
use crate::compare::numbers;
use crate::format::report::{Baseline, Producer};
use std::path::PathBuf;

/// One side of the comparison, as its report describes it.
#[derive(Clone, Debug)]
pub struct Side {
    pub report: PathBuf,
    pub stage_bundle: PathBuf,
    pub producer: Producer,
    pub baseline: Option<Baseline>,
}

/// How the final stage's bytes differ when the final hashes do.
#[derive(Clone, Debug, PartialEq)]
pub struct ByteDiff {
    pub stage: String,
    pub numel: u64,
    pub not_bit_equal: u64,
    pub max_ulp: Option<u64>,
}

impl ByteDiff {
    /// `final_bf16: 1,234 / 3,145,728 elements differ (0.04%), at most 1 ULP`.
    pub fn sentence(&self) -> String {
        let mut s = format!(
            "{}: {} / {} elements differ ({})",
            self.stage,
            numbers::thousands(self.not_bit_equal),
            numbers::thousands(self.numel),
            numbers::percent(self.not_bit_equal, self.numel)
        );
        if let (Some(u), true) = (self.max_ulp, self.not_bit_equal > 0) {
            s.push_str(&format!(", at most {} ULP", numbers::thousands(u)));
        }
        s
    }
}

/// The hash facts of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct HashFacts {
    pub left_final: Option<String>,
    pub right_final: Option<String>,
    /// Both present and equal.
    pub equal: bool,
    /// LEFT's `historical_final_sha256`.
    pub historical: Option<String>,
    /// LEFT's `baseline.historical_reproducible` (None without a baseline).
    pub historical_reproducible: Option<bool>,
    /// When the final hashes differ: how the final stage's bytes differ
    /// (None when that stage was not compared element by element).
    pub bytes: Option<ByteDiff>,
    /// The final stages were re-hashed and match their reports' `final_sha256`
    /// (a hash mode or `--verify-hashes` was on); otherwise the hashes are as
    /// the reports claim, checked only for consistency with the bytes.
    pub rehashed: bool,
}

impl HashFacts {
    pub fn left_matches_historical(&self) -> bool {
        matches!((&self.left_final, &self.historical), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }
    pub fn right_matches_historical(&self) -> bool {
        matches!((&self.right_final, &self.historical), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }
}

/// One selected tensor, stage by stage.
#[derive(Clone, Debug)]
pub struct TensorResult {
    pub name: String,
    /// RIGHT's own name, when `--map` renamed it to pair with LEFT's.
    pub right_name: Option<String>,
    /// RIGHT's operation, when it is named otherwise than LEFT's (module
    /// classes of a port; catalog operations must agree).
    pub right_operation: Option<String>,
    pub operation: String,
    /// Stages in pipeline order.
    pub stages: Vec<StageResult>,
    /// Every gated (required, compared) stage passed.
    pub passed: bool,
    /// The first gated stage that failed, in pipeline order: where the port
    /// starts to diverge.
    pub first_failing_stage: Option<String>,
    pub hashes: HashFacts,
}

impl TensorResult {
    pub fn gated_checks(&self) -> usize {
        self.stages.iter().filter(|s| s.gated()).count()
    }
}

/// Whether one strictness mode holds, and why not.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeResult {
    pub enabled: bool,
    pub holds: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModeResults {
    pub stage_tolerances: ModeResult,
    pub hash: ModeResult,
    pub historical_hash: ModeResult,
}

impl ModeResults {
    /// (flag name, result) in the order the command line lists them.
    pub fn all(&self) -> [(&'static str, &ModeResult); 3] {
        [
            ("strict-stage-tolerances", &self.stage_tolerances),
            ("strict-hash", &self.hash),
            ("strict-historical-hash", &self.historical_hash),
        ]
    }
}

/// Everything `parity check` found.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    pub left: Side,
    pub right: Side,
    /// Where the tolerances came from (`built-in`, `built-in + FILE`).
    pub profile: String,
    /// Unified diff of the two reports' producer and baseline, when they differ.
    pub provenance_diff: Option<String>,
    /// Unified diff of the tensors and stages each side has, when they differ.
    pub presence_diff: Option<String>,
    pub tensors: Vec<TensorResult>,
    pub modes: ModeResults,
    pub top_diffs: usize,
    /// The first gated stage that fails, in execution order.
    pub first_divergence: Option<super::onset::Divergence>,
    /// The first stage whose relative error jumps (reported even when every
    /// gate passes).
    pub onset: Option<super::onset::Onset>,
    /// The `--onset-factor` the onset was looked for with.
    pub onset_factor: f64,
    /// `--fail-on-onset`: an onset fails the check.
    pub fail_on_onset: bool,
}

impl CheckOutcome {
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// One phrase for a summary table (the golden gate's matrix): the first
    /// gated failure, else the gated stage closest to one of its absolute
    /// limits — `final_f32: max_abs 3.1e-5 of 1e-3 (3.1%)` — or `bit-exact`.
    pub fn tightest_summary(&self) -> String {
        if let Some((t, s)) = self
            .tensors
            .iter()
            .flat_map(|t| t.stages.iter().map(move |s| (t, s)))
            .find(|(_, s)| s.gated() && !s.passed())
        {
            return format!("{}: {}: {}", t.name, s.stage, s.failures.join("; "));
        }
        let share = |v: f64, limit: f64| {
            if v == 0.0 {
                0.0
            } else if limit > 0.0 {
                v / limit
            } else {
                f64::INFINITY
            }
        };
        let mut tightest: Option<(f64, &TensorResult, &StageResult, &str, f64, f64)> = None;
        for t in &self.tensors {
            for s in t.stages.iter().filter(|s| s.gated()) {
                let Some(m) = &s.metrics else { continue };
                for (what, v, limit) in
                    [("max_abs", m.max_abs, s.tolerance.max_abs), ("mean_abs", m.mean_abs, s.tolerance.mean_abs)]
                {
                    let r = share(v, limit);
                    if r > 0.0 && tightest.as_ref().map_or(true, |x| r > x.0) {
                        tightest = Some((r, t, s, what, v, limit));
                    }
                }
            }
        }
        match tightest {
            Some((r, t, s, what, v, limit)) => {
                let tensor = if self.tensors.len() > 1 { format!("{}: ", t.name) } else { String::new() };
                format!(
                    "{tensor}{}: {what} {} of {} ({})",
                    s.stage,
                    numbers::short(v),
                    numbers::short(limit),
                    numbers::share(r)
                )
            }
            None if self.tensors.iter().any(|t| t.gated_checks() > 0) => "bit-exact".into(),
            None => "no gated stage".into(),
        }
    }

    /// Every enabled strictness mode holds.
    pub fn passed(&self) -> bool {
        self.modes.all().iter().all(|(_, m)| !m.enabled || m.holds) && !(self.fail_on_onset && self.onset.is_some())
    }
    /// 0 when [`passed`](Self::passed), else 1 (setup errors never get here: they are `Err`).
    pub fn exit_code(&self) -> i32 {
        if self.passed() {
            0
        } else {
            1
        }
    }
}
