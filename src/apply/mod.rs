//! `parity apply PLAN`: run a surgery plan over a checkpoint and write a new
//! one with a manifest (SPEC §11).
//!
//! 1. Resolve the plan from headers ([`crate::plan::resolve`]); `--dry-run`
//!    stops here with a table of what would be written.
//! 2. Take the output directory's lock (a second apply into it is refused),
//!    read an earlier run's manifest if there is one.
//! 3. Run each action in plan order. An operation's written tensor goes to a
//!    work file (`OUT/.parity-apply/aNNNNN.safetensors`), durable before the
//!    manifest records it; a rerun skips every action the manifest records
//!    whose work file still has the recorded sha256. A mismatch is an error
//!    unless `--force`, which starts afresh.
//! 4. Write the output model tensor by tensor (untouched tensors copied byte
//!    for byte from their input, computed ones from their work file), each
//!    file atomically; then the index, base's other files, and the manifest,
//!    marked complete. The work files are removed.
//!
//! Memory is the inputs and stages of one action at a time. The bytes of the
//! output depend only on the plan and its inputs: tensors in name order,
//! shards cut at the plan's shard size, deterministic operations (their
//! results do not depend on the thread count), a deterministic serialiser.

use crate::error::{Error, Result};
use crate::format::manifest::{self, Manifest};
use crate::ops::Implementation;
use crate::plan::resolve::{self, Kind, Resolved};
use crate::plan::LoadedPlan;
use std::path::{Path, PathBuf};


mod asserts;
mod guard;
mod resume;
mod run;
mod schedule;
mod write;

use guard::{check_stage_names, input_files, refuse_output_over_inputs};
use run::Run;

const WORK: &str = ".parity-apply";
const LOCK: &str = ".parity-apply.lock";

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Overrides the plan's `output.path`.
    pub out: Option<PathBuf>,
    pub implementation: Implementation,
    pub dry_run: bool,
    pub force: bool,
    /// `--save-stages REPORT.json`: every applied (step, tensor) as a report tensor.
    pub save_stages: Option<PathBuf>,
    /// Which stages `--save-stages` keeps (all when empty).
    pub stages: Vec<String>,
    pub stage_layers: Option<crate::select::LayerRange>,
    pub allow_outside_paths: bool,
    pub progress: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            out: None,
            implementation: Implementation::Fast,
            dry_run: false,
            force: false,
            save_stages: None,
            stages: Vec::new(),
            stage_layers: None,
            allow_outside_paths: false,
            progress: false,
        }
    }
}

/// One row of the dry-run table (and of the surgical log).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub step: String,
    pub operation: String,
    pub tensor: String,
    pub output: Option<String>,
    pub dtype: Option<String>,
    pub shape: Option<Vec<usize>>,
    /// What happened in a run: applied, skipped (resumed), checked.
    pub status: String,
}

#[derive(Debug)]
pub struct ApplyOutcome {
    pub out: PathBuf,
    pub rows: Vec<Row>,
    /// Tensors and bytes of the output model.
    pub tensors: usize,
    pub bytes: Option<u64>,
    /// A failed assert or expectation: (step, what) — exit 1.
    pub failure: Option<(String, String)>,
    pub manifest: Option<Manifest>,
    pub dry_run: bool,
    /// What a user should know about the run (an input changed since the recorded one).
    pub notes: Vec<String>,
}

/// The top-level entry point of `parity apply`.
pub fn apply(plan_path: &Path, opts: &ApplyOptions) -> Result<ApplyOutcome> {
    let plan = LoadedPlan::load(plan_path, opts.allow_outside_paths)?;
    let out = match (&opts.out, &plan.plan.output.path) {
        (Some(o), _) => o.clone(),
        (None, Some(p)) => plan.dir.join(p),
        (None, None) => return Err(Error::json(&plan.path, "output.path is not set: give one in the plan or --out DIR")),
    };
    let shard_size = plan.shard_size()?;
    let resolved = resolve::resolve(&plan)?;
    check_stage_names(&resolved, &opts.stages)?;
    let inputs = input_files(&plan, &resolved);
    refuse_output_over_inputs(&out, &inputs)?;
    if let Some(report) = &opts.save_stages {
        let named: Vec<(&Path, &str)> = inputs.iter().map(|(p, w)| (p.as_path(), w.as_str())).collect();
        crate::format::report::write::check_outputs(report, &named)?;
    }
    let rows = rows_of(&resolved);
    let known_bytes: Option<u64> = resolved
        .model
        .values()
        .map(|e| Some(crate::format::tensor::numel(e.shape.as_ref()?) as u64 * e.dtype?.size() as u64))
        .sum();
    if opts.dry_run || resolved.failure.is_some() {
        return Ok(ApplyOutcome {
            out,
            rows,
            tensors: resolved.model.len(),
            bytes: known_bytes,
            failure: resolved.failure.clone(),
            manifest: None,
            dry_run: opts.dry_run,
            notes: Vec::new(),
        });
    }
    if std::fs::metadata(&out).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::OutputNotDirectory { path: out.clone() });
    }
    let base = &resolved.inputs["base"].path;
    if same_file(&out, base) {
        return Err(Error::bundle(&out, "the output directory is the base checkpoint: apply never writes over its input"));
    }
    // A manifest that cannot be read is refused before anything is created
    // (Run::new reads it again under the lock, where it counts).
    let existing = out.join(manifest::FILE);
    if !opts.force && existing.is_file() {
        Manifest::from_json(&existing, &crate::format::checkpoint::read_small(&existing, 256 << 20)?)?;
    }
    // What this run creates before it knows the output's manifest is sound:
    // a refusal (a corrupt manifest, another plan's run) removes it again, so
    // bad input leaves the disk as it found it.
    let created: Vec<(PathBuf, bool)> =
        [out.clone(), out.join(WORK), out.join(LOCK)].into_iter().map(|p| { let new = !p.exists(); (p, new) }).collect();
    let undo = || {
        for (p, _) in created.iter().rev().filter(|(_, new)| *new) {
            // remove_dir, not remove_dir_all: only what is still empty goes.
            let _ = if p.is_dir() { std::fs::remove_dir(p) } else { std::fs::remove_file(p) };
        }
    };
    std::fs::create_dir_all(out.join(WORK)).map_err(|e| Error::io(&out, e))?;
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(out.join(LOCK)).map_err(|e| Error::io(&out.join(LOCK), e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Usage(format!("{}: another parity apply is writing this output directory (its lock is held)", out.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&out.join(LOCK), e)),
    }
    let mut run = match Run::new(&plan, &resolved, &out, opts) {
        Ok(run) => run,
        Err(e) => {
            // Still holding the lock: no other apply can be using what goes.
            undo();
            return Err(e);
        }
    };
    let result = run.execute(shard_size);
    drop(lock);
    let manifest = result?;
    let mut rows = rows;
    for (row, done) in rows.iter_mut().zip(&run.status) {
        row.status = done.clone();
    }
    Ok(ApplyOutcome {
        out,
        rows,
        tensors: resolved.model.len(),
        bytes: Some(manifest.files.iter().filter(|f| f.path.ends_with(".safetensors")).map(|f| f.bytes).sum()),
        failure: run.failure.clone(),
        manifest: Some(manifest),
        dry_run: false,
        notes: run.notes.clone(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn rows_of(r: &Resolved) -> Vec<Row> {
    r.actions
        .iter()
        .map(|a| Row {
            step: a.step.clone(),
            operation: match &a.kind {
                Kind::Operation { op, write, .. } if *write != op.final_stage() => format!("{} ({write})", op.name),
                Kind::Operation { op, .. } => op.name.to_string(),
                Kind::Copy { rename: true, .. } => "rename".into(),
                Kind::Copy { .. } => "copy".into(),
                Kind::Delete => "delete".into(),
                Kind::Take { .. } => "merge_missing".into(),
                Kind::Assert { sources, .. } => format!("assert ({})", crate::compare::numbers::count(sources.len() as u64, "tensor")),
            },
            tensor: a.tensor.clone(),
            output: a.output.clone(),
            dtype: a.dtype.map(|d| d.name().to_string()),
            shape: a.shape.clone(),
            status: "planned".into(),
        })
        .collect()
}

