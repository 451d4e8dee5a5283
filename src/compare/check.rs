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

use super::gate::{self, StageResult, StageSide};
use super::metrics::{Bytes, Stage, CHUNK};
use super::numbers;
use super::profile::Profile;
use super::tolerance::Tolerance;
use crate::bundle::{Bundle, Region};
use crate::error::{Error, Result};
use crate::report::{Baseline, LoadedReport, Producer, StageEntry, TensorEntry};
use crate::tensor::TensorView;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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

/// `--stages all|a,b`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StageSelection {
    #[default]
    All,
    /// Only these stages (names checked against the selected tensors' stages).
    Named(Vec<String>),
}

impl StageSelection {
    fn includes(&self, stage: &str) -> bool {
        match self {
            StageSelection::All => true,
            StageSelection::Named(names) => names.iter().any(|n| n == stage),
        }
    }
}

impl FromStr for StageSelection {
    type Err = Error;
    fn from_str(s: &str) -> Result<StageSelection> {
        if s.trim() == "all" {
            return Ok(StageSelection::All);
        }
        let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
        if names.iter().any(String::is_empty) {
            return Err(Error::Usage(format!("--stages '{s}': expected 'all' or stage names separated by commas")));
        }
        Ok(StageSelection::Named(names))
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
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            modes: Modes::default(),
            profile: Profile::builtin(),
            select: Vec::new(),
            stages: StageSelection::All,
            top_diffs: 0,
            allow_outside_paths: false,
            verify_hashes: false,
            progress: false,
        }
    }
}

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
        self.modes.all().iter().all(|(_, m)| !m.enabled || m.holds)
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

/// The top-level entry point of the comparer: compare RIGHT (the candidate)
/// with LEFT (the baseline) as `opts` asks.
pub fn check(left: &Path, right: &Path, opts: &CheckOptions) -> Result<CheckOutcome> {
    let l = Opened::open(left, opts.allow_outside_paths)?;
    let r = Opened::open(right, opts.allow_outside_paths)?;
    let selection = crate::select::Selection::new(&opts.select)?;
    let chosen = selection.apply(&l.loaded.report.tensors, |t| t.name.as_str())?;
    let plans = chosen.iter().map(|t| plan_tensor(&l, &r, t, opts)).collect::<Result<Vec<_>>>()?;
    check_stage_selection(&opts.stages, &plans)?;

    let total: usize = plans.iter().map(|p| p.stages.len()).sum();
    let bar = crate::progress::bar(opts.progress, total as u64, "check");
    let results: Vec<Result<TensorResult>> = plans.par_iter().map(|p| run_tensor(p, opts, &bar)).collect();
    bar.finish_and_clear();
    let tensors = results.into_iter().collect::<Result<Vec<_>>>()?;

    let modes = judge_modes(&opts.modes, &tensors, &l.loaded)?;
    // The right side's tensors under the same selection, for the presence diff.
    let right_chosen: Vec<&TensorEntry> =
        r.loaded.report.tensors.iter().filter(|t| selection.matches(&t.name)).collect();
    Ok(CheckOutcome {
        provenance_diff: provenance_diff(&l, &r),
        presence_diff: presence_diff(&l, &chosen, &r, &right_chosen, &opts.stages),
        left: l.side(),
        right: r.side(),
        profile: opts.profile.origin().to_string(),
        tensors,
        modes,
        top_diffs: opts.top_diffs,
    })
}

// ---------------------------------------------------------------------------
// Setup.

/// A report and its open bundle.
struct Opened {
    loaded: LoadedReport,
    bundle_path: PathBuf,
    bundle: Bundle,
}

impl Opened {
    fn open(path: &Path, allow_escape: bool) -> Result<Opened> {
        let loaded = LoadedReport::load(path)?;
        let bundle_path = loaded.stage_bundle_path(allow_escape)?;
        let bundle = Bundle::open(&bundle_path)?;
        Ok(Opened { loaded, bundle_path, bundle })
    }
    fn path(&self) -> &Path {
        &self.loaded.path
    }
    fn side(&self) -> Side {
        Side {
            report: self.loaded.path.clone(),
            stage_bundle: self.bundle_path.clone(),
            producer: self.loaded.report.producer.clone(),
            baseline: self.loaded.report.baseline.clone(),
        }
    }
}

struct TensorPlan<'a> {
    left: &'a TensorEntry,
    right: &'a TensorEntry,
    /// LEFT's `baseline.historical_reproducible`.
    historical_reproducible: Option<bool>,
    /// Every stage this tensor has or must have, before `--stages` (for checking `--stages` names).
    all_stages: Vec<String>,
    stages: Vec<StagePlan<'a>>,
    /// The stage whose sha256 is `final_sha256`.
    final_stage: Option<String>,
}

struct StagePlan<'a> {
    name: String,
    /// The stage whose sha256 is `final_sha256`: re-hashed when a hash mode is on.
    is_final: bool,
    tol: Tolerance,
    left: Option<Present<'a>>,
    right: Option<Present<'a>>,
}

/// A stage one side has: its view into the bundle, where its bytes lie (the
/// comparison streams them from the file), and what the report says of it.
struct Present<'a> {
    view: TensorView<'a>,
    region: Region<'a>,
    entry: &'a StageEntry,
    bundle: &'a Path,
    tensor: &'a str,
    stage: &'a str,
}

fn plan_tensor<'a>(l: &'a Opened, r: &'a Opened, lt: &'a TensorEntry, opts: &CheckOptions) -> Result<TensorPlan<'a>> {
    let name = lt.name.as_str();
    let rt = r.loaded.report.tensor(name).ok_or_else(|| {
        Error::tensor(r.path(), name, None, format!("missing from this report (selected from {})", l.path().display()))
    })?;
    if rt.operation != lt.operation {
        return Err(Error::tensor(
            r.path(),
            name,
            None,
            format!("operation '{}' here but '{}' in {}", rt.operation, lt.operation, l.path().display()),
        ));
    }
    if rt.params != lt.params {
        return Err(Error::tensor(
            r.path(),
            name,
            None,
            format!("params differ from {}: {}", l.path().display(), params_diff(lt, rt)),
        ));
    }
    let op = lt.operation.as_str();
    let registry_op = crate::ops::find(op);
    for (side, t) in [(l, lt), (r, rt)] {
        check_final_hash(side.path(), t, registry_op.map(|o| o.final_stage()))?;
    }

    // Pipeline order: the registry's (or the profile's, which is the same for
    // registry operations), then LEFT's report, RIGHT's, and any stage the
    // profile names that neither report has.
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    };
    if opts.profile.has_registry_order(op) {
        opts.profile.stages(op).into_iter().for_each(&mut add);
    }
    lt.stages.keys().for_each(|n| add(n));
    rt.stages.keys().for_each(|n| add(n));
    opts.profile.stages(op).into_iter().for_each(&mut add);

    let mut stages = Vec::new();
    for stage in &names {
        if !opts.stages.includes(stage) {
            continue;
        }
        let tol = opts.profile.tolerance(op, stage).ok_or_else(|| {
            let why = match registry_op {
                Some(o) => format!(
                    "not a stage of {op} (its stages: {}) and the tolerance profile has no complete \"*\" entry (required, max_abs, mean_abs) for it: add one with --tolerances, or leave the stage out with --stages",
                    o.stages.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                ),
                None => format!(
                    "operation '{op}' is not in parity's registry and the tolerance profile ({}) has no tolerance for this stage (give operations.{op}.{stage} or \"*\" in --tolerances)",
                    opts.profile.origin()
                ),
            };
            Error::tensor(l.path(), name, Some(stage), why)
        })?;
        let le = lt.stages.get_key_value(stage.as_str());
        let re = rt.stages.get_key_value(stage.as_str());
        if tol.required {
            for (side, e) in [(l, le), (r, re)] {
                if e.is_none() {
                    return Err(Error::tensor(
                        side.path(),
                        name,
                        Some(stage),
                        "required stage missing from the report",
                    ));
                }
            }
        }
        if le.is_none() && re.is_none() {
            continue; // an optional stage neither side produced
        }
        stages.push(StagePlan {
            is_final: false,
            name: stage.clone(),
            tol,
            left: le.map(|(k, e)| present(l, lt, k, e)).transpose()?,
            right: re.map(|(k, e)| present(r, rt, k, e)).transpose()?,
        });
    }
    let final_stage = match registry_op {
        Some(o) => Some(o.final_stage().to_string()),
        None => lt
            .final_sha256
            .as_ref()
            .and_then(|h| lt.stages.iter().find(|(_, e)| e.sha256.eq_ignore_ascii_case(h)).map(|(n, _)| n.clone()))
            .or_else(|| lt.stages.keys().last().cloned()),
    };
    let historical_reproducible = l.loaded.report.baseline.as_ref().map(|b| b.historical_reproducible);
    for s in &mut stages {
        s.is_final = final_stage.as_deref() == Some(s.name.as_str());
    }
    Ok(TensorPlan { left: lt, right: rt, historical_reproducible, all_stages: names, stages, final_stage })
}

/// The bundle must hold the stage the report lists, with the report's dtype and shape.
fn present<'a>(side: &'a Opened, t: &'a TensorEntry, stage: &'a str, entry: &'a StageEntry) -> Result<Present<'a>> {
    let view = side.bundle.get_named(&t.key, stage).ok_or_else(|| {
        Error::tensor(
            &side.bundle_path,
            &t.name,
            Some(stage),
            format!(
                "listed in {} but missing from the bundle (no key '{}')",
                side.path().display(),
                crate::bundle::tensor_key(&t.key, stage)
            ),
        )
    })?;
    if view.dtype != entry.dtype || view.shape != entry.shape.as_slice() {
        return Err(Error::tensor(
            &side.bundle_path,
            &t.name,
            Some(stage),
            format!(
                "bundle holds {} {} but {} says {} {}",
                view.dtype,
                numbers::shape(view.shape),
                side.path().display(),
                entry.dtype,
                numbers::shape(&entry.shape)
            ),
        ));
    }
    let region = side.bundle.region_named(&t.key, stage).expect("a key with a view has a region");
    Ok(Present { view, region, entry, bundle: &side.bundle_path, tensor: &t.name, stage })
}

impl<'a> Present<'a> {
    /// The stage for the metric pass, streamed from the bundle file.
    fn stage(&self) -> Stage<'a> {
        Stage { dtype: self.view.dtype, shape: self.view.shape, bytes: Bytes::File(self.region) }
    }
}

/// A report whose `final_sha256` is not its own final stage's hash
/// contradicts itself: every hash verdict built on it would be wrong.
fn check_final_hash(report: &Path, t: &TensorEntry, final_stage: Option<&str>) -> Result<()> {
    let (Some(fin), Some(stage)) = (&t.final_sha256, final_stage) else { return Ok(()) };
    match t.stages.get(stage) {
        Some(e) if !e.sha256.eq_ignore_ascii_case(fin) => Err(Error::tensor(
            report,
            &t.name,
            Some(stage),
            format!("final_sha256 {} is not this stage's sha256 {}", short_hash(fin), short_hash(&e.sha256)),
        )),
        _ => Ok(()),
    }
}

fn params_diff(l: &TensorEntry, r: &TensorEntry) -> String {
    let mut keys: Vec<&String> = l.params.keys().collect();
    keys.extend(r.params.keys().filter(|k| !l.params.contains_key(*k)));
    let show = |v: Option<&serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
    keys.into_iter()
        .filter(|k| l.params.get(*k) != r.params.get(*k))
        .map(|k| format!("{k}: {} (left) vs {} (right)", show(l.params.get(k)), show(r.params.get(k))))
        .collect::<Vec<_>>()
        .join("; ")
}

fn check_stage_selection(sel: &StageSelection, plans: &[TensorPlan]) -> Result<()> {
    let StageSelection::Named(names) = sel else { return Ok(()) };
    for n in names {
        if !plans.iter().any(|p| p.all_stages.contains(n)) {
            let mut known: Vec<&str> = Vec::new();
            for s in plans.iter().flat_map(|p| &p.all_stages) {
                if !known.contains(&s.as_str()) {
                    known.push(s);
                }
            }
            return Err(Error::Usage(format!(
                "--stages: '{n}' is not a stage of any selected tensor (stages: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Comparison.

fn run_tensor(p: &TensorPlan, opts: &CheckOptions, bar: &indicatif::ProgressBar) -> Result<TensorResult> {
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

/// Whether the final stages are re-hashed: the hash modes' verdicts rest on them.
fn rehash_final(opts: &CheckOptions) -> bool {
    opts.verify_hashes || opts.modes.strict_hash || opts.modes.strict_historical_hash
}

fn run_stage(s: &StagePlan, top_diffs: usize, rehash: bool) -> Result<StageResult> {
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
            result
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

/// Equal final hashes claim equal final stages, and different ones different
/// stages; the metric pass knows which is true without hashing anything.
/// A contradiction means a report does not describe its bundle.
fn claims_match_bytes(p: &TensorPlan, fin: &StageResult, claimed_equal: bool) -> Result<()> {
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
fn verify_sha(p: &Present) -> Result<()> {
    let actual = p.region.sha256_hex()?;
    if actual.eq_ignore_ascii_case(&p.entry.sha256) {
        Ok(())
    } else {
        Err(Error::tensor(
            p.bundle,
            p.tensor,
            Some(p.stage),
            format!(
                "sha256 of the bundle's data is {} but the report says {}: the report does not describe this bundle",
                short_hash(&actual),
                short_hash(&p.entry.sha256)
            ),
        ))
    }
}

fn short_hash(h: &str) -> String {
    format!("{}…", &h[..h.len().min(12)])
}

// ---------------------------------------------------------------------------
// Modes.

fn judge_modes(modes: &Modes, tensors: &[TensorResult], left: &LoadedReport) -> Result<ModeResults> {
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
                let side = if a.is_none() { "left" } else { "right" };
                let msg = format!("no final_sha256 in the {side} report");
                if modes.strict_hash {
                    return Err(Error::tensor(left.path.as_path(), &t.name, None, format!("--strict-hash: {msg}")));
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

// ---------------------------------------------------------------------------
// What differs between the two reports, as unified diffs.

fn unified(a: &str, b: &str, left: &Path, right: &Path) -> Option<String> {
    if a == b {
        return None;
    }
    let diff = similar::TextDiff::from_lines(a, b);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("LEFT {}", left.display()), &format!("RIGHT {}", right.display()))
        .to_string();
    Some(text)
}

fn provenance_diff(l: &Opened, r: &Opened) -> Option<String> {
    let text = |o: &Opened| {
        let v = serde_json::json!({"producer": o.loaded.report.producer, "baseline": o.loaded.report.baseline});
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    };
    unified(&text(l), &text(r), l.path(), r.path())
}

fn presence_diff(
    l: &Opened,
    lt: &[&TensorEntry],
    r: &Opened,
    rt: &[&TensorEntry],
    sel: &StageSelection,
) -> Option<String> {
    let text = |ts: &[&TensorEntry]| {
        let mut ts: Vec<&&TensorEntry> = ts.iter().collect();
        ts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut s = String::new();
        for t in ts {
            s.push_str(&format!("{} ({})\n", t.name, t.operation));
            for stage in t.stages.keys().filter(|n| sel.includes(n)) {
                s.push_str(&format!("    {stage}\n"));
            }
        }
        s
    };
    unified(&text(lt), &text(rt), l.path(), r.path())
}
