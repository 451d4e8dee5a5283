//! Setup, sequential and cheap: open both sides, pair the tensors, decide
//! which stages are compared with which tolerance, and refuse anything that
//! would make the comparison meaningless (exit 2) — never a silent skip.

use super::outcome::*;
use super::{CheckOptions, StageSelection};
use crate::compare::metrics::{Bytes, Stage};
use crate::compare::numbers::{self, short_hash};
use crate::compare::tolerance::Tolerance;
use crate::error::{Error, Result};
use crate::format::bundle::{Bundle, Region};
use crate::format::dtype::DType;
use crate::format::report::{LoadedReport, StageEntry, TensorEntry};
use crate::format::tensor::TensorView;
use std::path::{Path, PathBuf};

/// A report and its open bundle.
pub(super) struct Opened {
    pub(super) loaded: LoadedReport,
    pub(super) bundle_path: PathBuf,
    pub(super) bundle: Bundle,
}

impl Opened {
    pub(super) fn open(path: &Path, allow_escape: bool) -> Result<Opened> {
        let loaded = LoadedReport::load(path)?;
        let bundle_path = loaded.stage_bundle_path(allow_escape)?;
        let bundle = Bundle::open(&bundle_path)?;
        Ok(Opened { loaded, bundle_path, bundle })
    }
    pub(super) fn path(&self) -> &Path {
        &self.loaded.path
    }
    pub(super) fn side(&self) -> Side {
        Side {
            report: self.loaded.path.clone(),
            stage_bundle: self.bundle_path.clone(),
            producer: self.loaded.report.producer.clone(),
            baseline: self.loaded.report.baseline.clone(),
        }
    }
}

pub(super) struct TensorSetup<'a> {
    pub(super) left: &'a TensorEntry,
    pub(super) right: &'a TensorEntry,
    /// LEFT's `baseline.historical_reproducible`.
    pub(super) historical_reproducible: Option<bool>,
    /// Every stage this tensor has or must have, before `--stages` (for checking `--stages` names).
    pub(super) all_stages: Vec<String>,
    pub(super) stages: Vec<StageSetup<'a>>,
    /// The stage whose sha256 is `final_sha256`.
    pub(super) final_stage: Option<String>,
}

pub(super) struct StageSetup<'a> {
    pub(super) name: String,
    /// The tensor's name (LEFT's).
    pub(super) tensor: &'a str,
    /// `--logits` names it: token metrics over the last axis.
    pub(super) logits: bool,
    /// The stage whose sha256 is `final_sha256`: re-hashed when a hash mode is on.
    pub(super) is_final: bool,
    pub(super) tol: Tolerance,
    pub(super) left: Option<Present<'a>>,
    pub(super) right: Option<Present<'a>>,
}

/// A stage one side has: its view into the bundle, where its bytes lie (the
/// comparison streams them from the file), and what the report says of it.
pub(super) struct Present<'a> {
    pub(super) view: TensorView<'a>,
    pub(super) region: Region<'a>,
    pub(super) entry: &'a StageEntry,
    pub(super) bundle: &'a Path,
    /// The report that describes the bundle.
    pub(super) report: &'a Path,
    pub(super) tensor: &'a str,
    pub(super) stage: &'a str,
}

/// RIGHT's tensors by the name they pair under (after `--map`).
pub(super) type RightIndex<'a> = std::collections::HashMap<&'a str, &'a TensorEntry>;

pub(super) fn set_up_tensor<'a>(
    l: &'a Opened,
    r: &'a Opened,
    right: &RightIndex<'a>,
    lt: &'a TensorEntry,
    opts: &CheckOptions,
) -> Result<TensorSetup<'a>> {
    let name = lt.name.as_str();
    let rt = *right.get(name).ok_or_else(|| {
        Error::tensor(r.path(), name, None, format!("missing from this report (selected from {})", l.path().display()))
    })?;
    // A catalog operation's params and stages are declared by its name, so
    // the names must agree. A captured run's operations are module classes:
    // a port's may be named otherwise (SelfAttention for BertSelfAttention),
    // and are paired by tensor name; the JSON records RIGHT's.
    let catalog = crate::ops::find(&lt.operation).is_some() || crate::ops::find(&rt.operation).is_some();
    if rt.operation != lt.operation && catalog {
        return Err(Error::tensor(
            r.path(),
            name,
            None,
            format!("operation '{}' here but '{}' in {}", rt.operation, lt.operation, l.path().display()),
        ));
    }
    // A report's params are held to the operation's declaration as a replay
    // would hold them: a misspelt key compared equal on both sides is still
    // a call the catalog would refuse.
    if let Some(o) = crate::ops::find(&lt.operation) {
        for (side, t) in [(l, lt), (r, rt)] {
            crate::ops::params::validate(o.name, &t.name, o.params, &t.params).map_err(|e| e.in_file(side.path()))?;
        }
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
        let le = lt.stages.get_key_value(stage.as_str());
        let re = rt.stages.get_key_value(stage.as_str());
        // The profile first; then --atol/--rtol/--dtype-defaults, by the
        // dtype of the values compared (the narrower side's).
        let narrower = compared_dtype(le.map(|(_, e)| e.dtype), re.map(|(_, e)| e.dtype));
        let tol = opts.profile.tolerance(op, stage).or_else(|| narrower.and_then(|d| opts.default_tolerance.for_dtype(d))).ok_or_else(|| {
            let why = match (registry_op, opts.profile.star_missing(op)) {
                (_, Some(missing)) => format!(
                    "the tolerance profile ({}) has a \"*\" entry for {op} that lacks {} (a \"*\" entry stands for every stage the profile does not name, so it needs required, max_abs and mean_abs), and no --atol/--rtol or --dtype-defaults was given",
                    opts.profile.origin(),
                    missing.join(", ")
                ),
                (Some(o), None) => format!(
                    "not a stage of {op} (its stages: {}) and the tolerance profile has no complete \"*\" entry (required, max_abs, mean_abs) for it: add one with --tolerances, give --atol/--rtol or --dtype-defaults torch, or leave the stage out with --stages",
                    o.stages.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                ),
                (None, None) => format!(
                    "operation '{op}' is not in parity's registry and the tolerance profile ({}) has no tolerance for this stage (give operations.{op}.{stage} or \"*\" in --tolerances, or --atol/--rtol or --dtype-defaults torch)",
                    opts.profile.origin()
                ),
            };
            Error::tensor(l.path(), name, Some(stage), why)
        })?;
        if tol.required {
            for (side, e) in [(l, le), (r, re)] {
                if e.is_none() {
                    return Err(Error::MissingStage {
                        path: side.path().to_path_buf(),
                        tensor: name.to_string(),
                        stage: stage.clone(),
                        message: "required stage missing from the report".into(),
                    });
                }
            }
        }
        if le.is_none() && re.is_none() {
            continue; // an optional stage neither side produced
        }
        let logits = opts.logits.iter().any(|g| logits_glob_matches(g, name, stage));
        let mut tol = tol;
        if logits {
            // --min-top1/--max-kl win over the profile: the flags are what
            // this run was asked to hold.
            tol.min_top1 = opts.logit_limits.min_top1.or(tol.min_top1);
            tol.max_kl = opts.logit_limits.max_kl.or(tol.max_kl);
        }
        stages.push(StageSetup {
            is_final: false,
            tensor: name,
            logits,
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
    Ok(TensorSetup { left: lt, right: rt, historical_reproducible, all_stages: names, stages, final_stage })
}

/// Whether a `--logits` glob names this stage: the tensor (all its stages)
/// or `TENSOR.STAGE`.
pub(super) fn logits_glob_matches(g: &glob::Pattern, tensor: &str, stage: &str) -> bool {
    g.matches(tensor) || g.matches(&format!("{tensor}.{stage}"))
}

/// The dtype whose tolerance a stage pair is held to: the narrower float of
/// the two (a bf16 port of an f32 run is held to bf16's limits), else
/// whichever side has the stage.
pub(super) fn compared_dtype(left: Option<DType>, right: Option<DType>) -> Option<DType> {
    match (left, right) {
        (Some(l), Some(r)) => match (l.unit_roundoff(), r.unit_roundoff()) {
            (Some(ul), Some(ur)) if ur > ul => Some(r),
            _ => Some(l),
        },
        (l, r) => l.or(r),
    }
}

/// The bundle must hold the stage the report lists, with the report's dtype and shape.
pub(super) fn present<'a>(side: &'a Opened, t: &'a TensorEntry, stage: &'a str, entry: &'a StageEntry) -> Result<Present<'a>> {
    let view = side.bundle.get_named(&t.key, stage).ok_or_else(|| {
        Error::MissingStage {
            path: side.bundle_path.clone(),
            tensor: t.name.clone(),
            stage: stage.to_string(),
            message: format!(
                "listed in {} but missing from the bundle (no key '{}')",
                side.path().display(),
                crate::format::bundle::tensor_key(&t.key, stage)
            ),
        }
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
    Ok(Present { view, region, entry, bundle: &side.bundle_path, report: side.path(), tensor: &t.name, stage })
}

impl<'a> Present<'a> {
    /// The stage for the metric pass, streamed from the bundle file.
    pub(super) fn stage(&self) -> Stage<'a> {
        Stage { dtype: self.view.dtype, shape: self.view.shape, bytes: Bytes::File(self.region) }
    }
}

/// A report whose `final_sha256` is not its own final stage's hash
/// contradicts itself: every hash verdict built on it would be wrong.
pub(super) fn check_final_hash(report: &Path, t: &TensorEntry, final_stage: Option<&str>) -> Result<()> {
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

pub(super) fn params_diff(l: &TensorEntry, r: &TensorEntry) -> String {
    let mut keys: Vec<&String> = l.params.keys().collect();
    keys.extend(r.params.keys().filter(|k| !l.params.contains_key(*k)));
    let show = |v: Option<&serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
    keys.into_iter()
        .filter(|k| l.params.get(*k) != r.params.get(*k))
        .map(|k| format!("{k}: {} (left) vs {} (right)", show(l.params.get(k)), show(r.params.get(k))))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn check_stage_selection(sel: &StageSelection, plans: &[TensorSetup]) -> Result<()> {
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
