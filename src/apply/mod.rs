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
use crate::format::checkpoint::{Checkpoint, INDEX};
use crate::format::manifest::{self, Action as Done, ActionStatus, Manifest, OutputFile};
use crate::format::report::write::{write_run, TensorRun};
use crate::format::safetensors_write::{self, Planned};
use crate::format::tensor::Tensor;
use crate::ops::{Implementation, Inputs, Wanted};
use crate::plan::resolve::{self, Kind, Resolved, Source};
use crate::plan::{LoadedPlan, OutputLayout};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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
        return Err(Error::bundle(&out, "the output exists and is not a directory"));
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

/// `--stages` names only stages some step's operation declares: a name
/// that none does (a typo) would save a report with no stages.
fn check_stage_names(r: &Resolved, stages: &[String]) -> Result<()> {
    let declared: Vec<&str> = {
        let mut d: Vec<&str> = Vec::new();
        for a in &r.actions {
            if let Kind::Operation { op, .. } = &a.kind {
                d.extend(op.stages.iter().map(|s| s.name).filter(|n| !d.contains(n)).collect::<Vec<_>>());
            }
        }
        d
    };
    match stages.iter().find(|s| !declared.contains(&s.as_str())) {
        None => Ok(()),
        Some(bad) if declared.is_empty() => Err(Error::Usage(format!("--stages {bad}: no step of this plan runs an operation, so there are no stages to save"))),
        Some(bad) => Err(Error::Usage(format!("--stages {bad}: not a stage of any step's operation (the plan's stages: {})", declared.join(", ")))),
    }
}

/// Every file the run reads, with what it is: the plan, and each input's
/// files (shards and index; for a directory, everything below it, since
/// `copy_files` reads the rest).
fn input_files(plan: &LoadedPlan, r: &Resolved) -> Vec<(PathBuf, String)> {
    let mut files = vec![(plan.path.clone(), "the plan".to_string())];
    for (name, ck) in &r.inputs {
        let what = format!("plan input '{name}'");
        files.extend(ck.files().into_iter().map(|f| (f, what.clone())));
        files.push((ck.path.clone(), what));
    }
    files
}

/// `apply` never writes over its input: refuse an output directory that
/// holds one of the run's input files — by its own name, or as a symbolic
/// or hard link to it (compared by device and inode). A single-file base
/// inside the output directory would be replaced by the output model, and
/// `--force` would edit the edited file again.
fn refuse_output_over_inputs(out: &Path, inputs: &[(PathBuf, String)]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(out) else { return Ok(()) };
    let ids: Vec<((u64, u64), &(PathBuf, String))> =
        inputs.iter().filter_map(|i| std::fs::metadata(&i.0).ok().filter(|m| m.is_file()).map(|m| ((m.dev(), m.ino()), i))).collect();
    for e in entries.flatten() {
        let Ok(m) = std::fs::metadata(e.path()) else { continue };
        if let Some((_, (input, what))) = ids.iter().find(|(id, _)| *id == (m.dev(), m.ino())) {
            return Err(Error::OutputIsInput {
                output: e.path(),
                input: input.clone(),
                what: what.clone(),
                written: "the output model (apply never writes over its input)".into(),
            });
        }
    }
    Ok(())
}

/// Each input's files as they are now (see [`manifest::InputFile`]).
fn fingerprint(plan: &LoadedPlan, name: &str, ck: &Checkpoint) -> Vec<manifest::InputFile> {
    use std::os::unix::fs::MetadataExt;
    let mut files: Vec<PathBuf> = ck.files();
    files.sort();
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok();
            let shown = match f.strip_prefix(&ck.path) {
                Ok(rel) if !rel.as_os_str().is_empty() => Path::new(&plan.plan.inputs[name]).join(rel),
                _ => PathBuf::from(&plan.plan.inputs[name]),
            };
            manifest::InputFile {
                path: shown.to_string_lossy().into_owned(),
                bytes: m.as_ref().map_or(0, |m| m.len()),
                mtime_ns: m.as_ref().map_or(0, |m| m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec())),
            }
        })
        .collect()
}

/// What changed between the inputs a manifest recorded and the inputs now,
/// one phrase per changed file (empty: unchanged).
fn changed_inputs(old: &[manifest::Input], now: &[manifest::Input]) -> Vec<String> {
    let mut changed = Vec::new();
    for (o, n) in old.iter().zip(now) {
        if o.files.is_empty() {
            changed.push(format!("input '{}': not recorded by the earlier run", n.name));
            continue;
        }
        for f in &n.files {
            match o.files.iter().find(|g| g.path == f.path) {
                None => changed.push(format!("{}: new", f.path)),
                Some(g) if g.bytes != f.bytes => changed.push(format!("{}: {} bytes, was {}", f.path, f.bytes, g.bytes)),
                Some(g) if g.mtime_ns != f.mtime_ns => changed.push(format!("{}: modified since", f.path)),
                Some(_) => {}
            }
        }
        changed.extend(o.files.iter().filter(|g| !n.files.iter().any(|f| f.path == g.path)).map(|g| format!("{}: gone", g.path)));
    }
    changed
}

/// xxh3-128 of what an operation reads: each input's name, dtype, shape and
/// bytes, in name order.
fn inputs_hash(inputs: &Inputs) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (name, t) in inputs {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(t.dtype.name().as_bytes());
        for d in &t.shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(&(t.data.len() as u64).to_le_bytes());
        h.update(&t.data);
    }
    format!("{:032x}", h.digest128())
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

/// Where a tensor's bytes are.
enum Data<'a> {
    Input(&'a Checkpoint, &'a crate::format::checkpoint::Located),
    Work(PathBuf),
}

struct Run<'a> {
    plan: &'a LoadedPlan,
    r: &'a Resolved,
    out: PathBuf,
    opts: &'a ApplyOptions,
    manifest: Manifest,
    /// Per action: applied, skipped, checked, …
    status: Vec<String>,
    failure: Option<(String, String)>,
    stage_runs: Vec<TensorRun>,
    /// Work files written since the manifest was last saved, not yet synced.
    unsynced: Vec<PathBuf>,
    last_save: std::time::Instant,
    /// What a user should know about this run (an input changed since the recorded one).
    notes: Vec<String>,
    /// The inputs changed since the manifest was written: a recorded
    /// action is resumed only if its inputs hash as recorded.
    recheck_inputs: bool,
}

/// What a prepared operation action comes to, before it is recorded.
enum Prepared {
    /// Resumed: the manifest records it and its work file verifies.
    Skipped,
    /// Its output broke the step's expectation (nothing was written).
    Failed { sha: String, message: String, inputs_xxh3: String },
    /// Its work file is written; `work` when not yet synced; the stages
    /// kept for --save-stages.
    Applied { sha: String, stages: Option<crate::format::stages::Stages>, work: Option<PathBuf>, inputs_xxh3: String },
}

/// The most operation actions prepared side by side at once.
const WINDOW: usize = 64;

/// How often the manifest is saved while actions run. Saving it after every
/// action (an fsync of a file that grows with the plan, and of the
/// directory) cost more than the actions themselves on a cast of 341
/// tensors; a manifest that lags only means a killed run redoes up to this
/// much work on resume, and the output's bytes do not change.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl<'a> Run<'a> {
    fn new(plan: &'a LoadedPlan, r: &'a Resolved, out: &Path, opts: &'a ApplyOptions) -> Result<Run<'a>> {
        let mut notes = Vec::new();
        let mut recheck_inputs = false;
        let fresh = Manifest {
            schema: manifest::SCHEMA.into(),
            plan_sha256: plan.sha256.clone(),
            parity_version: env!("CARGO_PKG_VERSION").into(),
            implementation: opts.implementation.name().into(),
            inputs: r
                .inputs
                .iter()
                .map(|(n, c)| manifest::Input {
                    name: n.clone(),
                    path: plan.plan.inputs[n].clone(),
                    layout: c.layout.name().into(),
                    files: fingerprint(plan, n, c),
                })
                .collect(),
            actions: Vec::new(),
            files: Vec::new(),
            complete: false,
        };
        let path = out.join(manifest::FILE);
        let manifest = match std::fs::metadata(&path) {
            Err(_) => fresh,
            Ok(_) if opts.force => {
                // The new, empty manifest replaces the old one first (durably):
                // once anything the old one lists is gone, no manifest on disk
                // may still claim it.
                let old_bytes = std::fs::read(&path).unwrap_or_default();
                crate::format::atomic::write_bytes(&path, fresh.to_json().as_bytes())?;
                // The files an earlier run wrote go too: a different shard
                // count must not leave stale shards beside the new index.
                if let Ok(old) = serde_json::from_slice::<Manifest>(&old_bytes) {
                    for f in old.files {
                        if !f.path.contains('/') && !f.path.starts_with('.') {
                            let _ = std::fs::remove_file(out.join(&f.path));
                        }
                    }
                }
                let _ = std::fs::remove_dir_all(out.join(WORK));
                std::fs::create_dir_all(out.join(WORK)).map_err(|e| Error::io(out, e))?;
                fresh
            }
            Ok(_) => {
                let bytes = crate::format::checkpoint::read_small(&path, 256 << 20)?;
                let mut old = Manifest::from_json(&path, &bytes)?;
                let named = |m: &Manifest| m.inputs.iter().map(|i| (i.name.clone(), i.path.clone(), i.layout.clone())).collect::<Vec<_>>();
                if old.plan_sha256 != fresh.plan_sha256 || old.implementation != fresh.implementation || named(&old) != named(&fresh) {
                    return Err(Error::json(&path, "records a run of another plan, implementation or inputs: --force rewrites the output"));
                }
                let changed = changed_inputs(&old.inputs, &fresh.inputs);
                if !changed.is_empty() {
                    // The recorded work was computed from other bytes: each
                    // operation is kept only if what it reads hashes as it
                    // did, and the output is written again.
                    notes.push(format!("inputs changed since the recorded run ({}): actions whose inputs changed are redone, the output rewritten", changed.join("; ")));
                    recheck_inputs = true;
                    old.inputs = fresh.inputs;
                    old.complete = false;
                    old.files.clear();
                }
                old
            }
        };
        Ok(Run {
            plan,
            r,
            out: out.to_path_buf(),
            opts,
            manifest,
            status: Vec::new(),
            failure: None,
            stage_runs: Vec::new(),
            unsynced: Vec::new(),
            last_save: std::time::Instant::now(),
            notes,
            recheck_inputs,
        })
    }

    fn work_file(&self, action: usize) -> PathBuf {
        self.out.join(WORK).join(format!("a{action:05}.safetensors"))
    }

    fn save_manifest(&self) -> Result<()> {
        crate::format::atomic::write_bytes(&self.out.join(manifest::FILE), self.manifest.to_json().as_bytes())
    }

    /// Make every work file the manifest is about to record durable (each
    /// file, then their directory), then save the manifest: what a saved
    /// manifest says was applied is on disk, even after a power cut.
    fn flush(&mut self) -> Result<()> {
        if !self.unsynced.is_empty() {
            for path in &self.unsynced {
                std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))?;
            }
            crate::format::atomic::sync_dir(&self.out.join(WORK))?;
            self.unsynced.clear();
        }
        self.save_manifest()?;
        self.last_save = std::time::Instant::now();
        Ok(())
    }

    /// Follow copies and takes to the bytes themselves.
    fn data(&self, src: &Source) -> Data<'a> {
        match src {
            Source::Input { input, name } => {
                let ck = &self.r.inputs[input];
                Data::Input(ck, ck.get(name).expect("resolved"))
            }
            Source::Computed(i) => match &self.r.actions[*i].kind {
                Kind::Copy { from, .. } | Kind::Take { from } => self.data(from),
                _ => Data::Work(self.work_file(*i)),
            },
        }
    }

    fn load(&self, src: &Source) -> Result<Tensor> {
        match self.data(src) {
            Data::Input(ck, loc) => {
                let mut bytes = vec![0u8; loc.len];
                ck.region(loc).read_at(0, &mut bytes)?;
                Ok(Tensor::from_bytes(loc.dtype, loc.shape.clone(), bytes))
            }
            Data::Work(path) => read_work(&path),
        }
    }

    fn execute(&mut self, shard_size: u64) -> Result<Manifest> {
        if self.manifest.complete && self.opts.save_stages.is_none() {
            self.verify_complete()?;
            // A run killed after its manifest was complete may have left these.
            let _ = std::fs::remove_dir_all(self.out.join(WORK));
            // Nothing recomputed: every output file was just verified
            // against the manifest's sha256, and the asserts held when that
            // output was written (they are not re-run on the same bytes).
            self.status = self.r.actions.iter().map(|a| if matches!(a.kind, Kind::Assert { .. }) { "held (recorded)".into() } else { "verified".into() }).collect();
            return Ok(self.manifest.clone());
        }
        let bar = crate::progress::bar(self.opts.progress, self.r.actions.len() as u64, "apply");
        // Independent operation actions run side by side, a window at a
        // time, and are recorded in plan order: the manifest and the output
        // are those of one-at-a-time execution. The window's inputs stay
        // within the largest action's (or 256 MiB), so running several at
        // once does not raise the peak memory one large action sets.
        let budget = (0..self.r.actions.len()).map(|i| self.input_bytes(i)).max().unwrap_or(0).max(256 << 20);
        let mut i = 0;
        'actions: while i < self.r.actions.len() {
            let window = self.window(i, budget);
            if window.len() > 1 {
                let prepared: Vec<Result<Prepared>> = {
                    use rayon::prelude::*;
                    let this = &*self;
                    window.clone().into_par_iter().map(|k| this.prepare(k)).collect()
                };
                for (k, p) in window.clone().zip(prepared) {
                    bar.set_message(self.r.actions[k].tensor.clone());
                    let status = self.commit(k, p?)?;
                    self.status.push(status);
                    bar.inc(1);
                    if self.failure.is_some() {
                        break 'actions;
                    }
                }
                i = window.end;
                continue;
            }
            bar.set_message(self.r.actions[i].tensor.clone());
            let status = self.action(i)?;
            self.status.push(status);
            bar.inc(1);
            if self.failure.is_some() {
                break;
            }
            i += 1;
        }
        bar.finish_and_clear();
        self.flush()?;
        if self.failure.is_some() {
            return Ok(self.manifest.clone());
        }
        self.manifest.complete = false;
        if let Some(report) = &self.opts.save_stages {
            let mut versions = indexmap::IndexMap::new();
            versions.insert("parity".to_string(), env!("CARGO_PKG_VERSION").into());
            let producer = crate::format::report::Producer {
                name: "parity".into(),
                implementation: format!("parity-apply-{}", self.opts.implementation.name()),
                versions,
            };
            write_run(report, producer, None, None, &self.stage_runs)?;
        }
        // Last: the manifest is marked complete only when every file is there.
        self.write_output(shard_size)?;
        let _ = std::fs::remove_dir_all(self.out.join(WORK));
        Ok(self.manifest.clone())
    }

    /// Every file the complete manifest lists must still be what it says.
    fn verify_complete(&self) -> Result<()> {
        for f in &self.manifest.files {
            let path = self.out.join(&f.path);
            let actual = sha256_file(&path)?;
            if actual != f.sha256 {
                return Err(Error::HashMismatch {
                    path,
                    tensor: "(whole file)".into(),
                    stage: None,
                    expected: f.sha256.clone(),
                    actual,
                    described_by: self.out.join(manifest::FILE),
                    described_as: "manifest",
                });
            }
        }
        Ok(())
    }

    fn record(&mut self, done: Done) -> Result<()> {
        match self.manifest.actions.iter_mut().find(|d| d.step == done.step && d.tensor == done.tensor) {
            Some(d) => *d = done,
            None => self.manifest.actions.push(done),
        }
        if self.last_save.elapsed() >= SAVE_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn action(&mut self, i: usize) -> Result<String> {
        let a = &self.r.actions[i];
        match &a.kind {
            Kind::Copy { from, .. } if a.expect.as_ref().is_some_and(|e| e.sha256.is_some()) => {
                // Only a hash needs the bytes; dtype and shape were checked from headers.
                let t = self.load(from)?;
                let sha = t.sha256();
                if let Err(m) = resolve::check_expect_known(a.expect.as_ref().unwrap(), t.dtype, &t.shape, &sha) {
                    self.failure = Some((a.step.clone(), format!("tensor '{}': expect: {m}", a.tensor)));
                    return Ok("failed".into());
                }
                self.record(Done { step: a.step.clone(), tensor: a.tensor.clone(), output: a.output.clone(), status: ActionStatus::Applied, sha256: Some(sha), error: None, inputs_xxh3: None })?;
                Ok("applied".into())
            }
            Kind::Delete | Kind::Copy { .. } | Kind::Take { .. } => {
                self.record(Done { step: a.step.clone(), tensor: a.tensor.clone(), output: a.output.clone(), status: ActionStatus::Applied, sha256: None, error: None, inputs_xxh3: None })?;
                Ok("applied".into())
            }
            Kind::Assert { sources, spec, equal_to } => {
                // Only what headers could not decide needs the bytes.
                let needs_data = spec.finite.is_some() || spec.iszero.is_some() || spec.equal.is_some() || spec.shape.is_some() || spec.dtype.is_some();
                if !needs_data {
                    return Ok("checked".into());
                }
                for ((name, src), to) in sources.iter().zip(equal_to) {
                    if spec.finite.is_none() && spec.iszero.is_none() && spec.equal.is_none() {
                        // shape/dtype: a header answers unless the tensor was computed.
                        if let Data::Input(_, loc) = self.data(src) {
                            if let Some(m) = check_header_assert(spec, name, loc.dtype, &loc.shape) {
                                self.failure = Some((a.step.clone(), m));
                                return Ok("failed".into());
                            }
                            continue;
                        }
                    }
                    let t = self.load(src)?;
                    if let Some(m) = check_assert_data(spec, name, &t, to.as_ref().map(|s| self.load(s)).transpose()?.as_ref()) {
                        self.failure = Some((a.step.clone(), m));
                        return Ok("failed".into());
                    }
                }
                Ok("checked".into())
            }
            Kind::Operation { .. } => {
                let p = self.prepare(i)?;
                self.commit(i, p)
            }
        }
    }

    /// The part of an operation action that only reads `self`, so that
    /// independent actions can run side by side: the resume check, the
    /// operation, the output's sha256 and its expectation, and the work file.
    fn prepare(&self, i: usize) -> Result<Prepared> {
        let a = &self.r.actions[i];
        let Kind::Operation { op, inputs, params, write } = &a.kind else { unreachable!("prepare is for operations") };
        let work = self.work_file(i);
        let previous = self.manifest.actions.iter().find(|d| d.step == a.step && d.tensor == a.tensor);
        let want_stages = self.opts.save_stages.is_some() && self.opts.stage_layers.is_none_or(|l| l.keeps(&a.tensor));
        let load_inputs = || -> Result<Inputs> {
            let mut call_inputs = Inputs::new();
            for (name, src) in inputs {
                call_inputs.insert(name.clone(), self.load(src)?);
            }
            Ok(call_inputs)
        };
        // A plain resume skips recorded work without reading its inputs;
        // after an input changed, recorded work counts only if it was
        // computed from the same bytes, so they are read and hashed first.
        let mut loaded = if self.recheck_inputs { Some(load_inputs()?) } else { None };
        if let (Some(prev), false) = (previous, want_stages) {
            let same_inputs = loaded.as_ref().is_none_or(|i| prev.inputs_xxh3.as_deref() == Some(inputs_hash(i).as_str()));
            if prev.status == ActionStatus::Applied && same_inputs && work.is_file() {
                let t = read_work(&work)?;
                let sha = t.sha256();
                if Some(&sha) == prev.sha256.as_ref() {
                    return Ok(Prepared::Skipped);
                }
                if !self.opts.force {
                    return Err(Error::HashMismatch {
                        path: work,
                        tensor: a.tensor.clone(),
                        stage: Some(write.clone()),
                        expected: prev.sha256.clone().unwrap_or_default(),
                        actual: sha,
                        described_by: self.out.join(manifest::FILE),
                        described_as: "manifest",
                    });
                }
            }
        }
        let call_inputs = match loaded.take() {
            Some(i) => i,
            None => load_inputs()?,
        };
        let inputs_xxh3 = inputs_hash(&call_inputs);
        let err_ctx = |e: Error| match e {
            Error::Parameter { .. } => e.in_file(&self.plan.path),
            other => Error::json(&self.plan.path, format!("step '{}': tensor '{}': {other}", a.step, a.tensor)),
        };
        // Only the written stage, and those --save-stages keeps: the
        // operation may skip the rest of its work (svf_apply skips a GEMM).
        let mut wanted: Vec<&str> = vec![write.as_str()];
        if want_stages {
            let keeps = |n: &str| self.opts.stages.is_empty() || self.opts.stages.iter().any(|s| s == n);
            wanted.extend(op.stages.iter().map(|s| s.name).filter(|n| keeps(n) && *n != write.as_str()));
        }
        let stages = op.run_for(Wanted::Only(&wanted), self.opts.implementation, &a.tensor, &call_inputs, params).map_err(err_ctx)?;
        drop(call_inputs);
        let t = stages.get(write).expect("run checks the declared stages").clone();
        let sha = t.sha256();
        if let Some(e) = &a.expect {
            if let Err(m) = resolve::check_expect_known(e, t.dtype, &t.shape, &sha) {
                return Ok(Prepared::Failed { sha, message: m, inputs_xxh3 });
            }
        }
        let durable = previous.is_some();
        if durable {
            // A saved manifest may already record this action (a rerun with
            // --save-stages, or after --force): the file it names is
            // replaced durably, not left to the next flush.
            crate::format::bundle::write(&work, &[("t".to_string(), &t)])?;
        } else {
            write_work(&work, &t)?;
        }
        let kept = want_stages.then(|| {
            let mut kept = crate::format::stages::Stages::default();
            for (n, st) in stages.0 {
                if self.opts.stages.is_empty() || self.opts.stages.iter().any(|s| *s == n) {
                    kept.push(&n, st);
                }
            }
            kept
        });
        Ok(Prepared::Applied { sha, stages: kept, work: (!durable).then_some(work), inputs_xxh3 })
    }

    /// Record a prepared operation action, in plan order.
    fn commit(&mut self, i: usize, p: Prepared) -> Result<String> {
        let a = &self.r.actions[i];
        let Kind::Operation { op, params, .. } = &a.kind else { unreachable!("commit is for operations") };
        match p {
            Prepared::Skipped => Ok("skipped".into()),
            Prepared::Failed { sha, message, inputs_xxh3 } => {
                self.failure = Some((a.step.clone(), format!("tensor '{}': expect: {message}", a.tensor)));
                self.record(Done { step: a.step.clone(), tensor: a.tensor.clone(), output: a.output.clone(), status: ActionStatus::Failed, sha256: Some(sha), error: Some(message), inputs_xxh3: Some(inputs_xxh3) })?;
                Ok("failed".into())
            }
            Prepared::Applied { sha, stages, work, inputs_xxh3 } => {
                if let Some(work) = work {
                    self.unsynced.push(work);
                }
                if let Some(kept) = stages {
                    let name = format!("{}/{}", a.step, a.tensor);
                    self.stage_runs.push(TensorRun {
                        key: crate::format::bundle::safe_key(&name),
                        name,
                        operation: op.name.to_string(),
                        params: params.clone(),
                        stages: kept,
                        final_stage: op.final_stage().to_string(),
                        historical_final_sha256: None,
                    });
                }
                self.record(Done { step: a.step.clone(), tensor: a.tensor.clone(), output: a.output.clone(), status: ActionStatus::Applied, sha256: Some(sha), error: None, inputs_xxh3: Some(inputs_xxh3) })?;
                Ok("applied".into())
            }
        }
    }

    /// The action whose work file `src` reads, if it reads one.
    fn source_action(&self, src: &Source) -> Option<usize> {
        match src {
            Source::Input { .. } => None,
            Source::Computed(i) => match &self.r.actions[*i].kind {
                Kind::Copy { from, .. } | Kind::Take { from } => self.source_action(from),
                _ => Some(*i),
            },
        }
    }

    /// The bytes an action's inputs occupy (what it holds in memory at least).
    fn input_bytes(&self, i: usize) -> u64 {
        let Kind::Operation { inputs, .. } = &self.r.actions[i].kind else { return 0 };
        inputs
            .iter()
            .map(|(_, src)| match self.data(src) {
                Data::Input(_, loc) => loc.len as u64,
                Data::Work(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
            })
            .sum()
    }

    /// The operation actions from `start` that can run side by side: one
    /// after another in the plan, none reading another's output, their
    /// inputs together within `budget` bytes (so that what runs at once
    /// stays within the memory one large action needs), at most WINDOW.
    fn window(&self, start: usize, budget: u64) -> std::ops::Range<usize> {
        let mut end = start;
        let mut bytes = 0u64;
        while end < self.r.actions.len() && end - start < WINDOW {
            let Kind::Operation { inputs, .. } = &self.r.actions[end].kind else { break };
            if inputs.iter().any(|(_, src)| self.source_action(src).is_some_and(|j| j >= start)) {
                break;
            }
            let b = self.input_bytes(end);
            if end > start && bytes + b > budget {
                break;
            }
            bytes += b;
            end += 1;
        }
        start..end
    }

    /// The output model: shards (or one file), the index, base's other files.
    fn write_output(&mut self, shard_size: u64) -> Result<()> {
        // Every output tensor with its final dtype and shape (computed ones
        // from their work files' headers).
        let mut planned: Vec<(Planned, Data<'a>)> = Vec::new();
        for (name, e) in &self.r.model {
            let data = self.data(&e.source);
            let (dtype, shape) = match &data {
                Data::Input(_, loc) => (loc.dtype, loc.shape.clone()),
                Data::Work(p) => {
                    let ck = Checkpoint::open(p)?;
                    let (_, loc) = ck.tensors().next().ok_or_else(|| Error::bundle(p, "empty work file"))?;
                    (loc.dtype, loc.shape.clone())
                }
            };
            planned.push((Planned { name: name.clone(), dtype, shape }, data));
        }
        let layout = self.plan.plan.output.layout;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut size = 0u64;
        for (i, (p, _)) in planned.iter().enumerate() {
            let b = p.bytes() as u64;
            if groups.is_empty() || (layout == OutputLayout::Sharded && size > 0 && size + b > shard_size) {
                groups.push(Vec::new());
                size = 0;
            }
            groups.last_mut().unwrap().push(i);
            size += b;
        }
        if groups.is_empty() {
            groups.push(Vec::new());
        }
        let n = groups.len();
        let mut files = Vec::new();
        let mut weight_map = serde_json::Map::new();
        let mut tensor_sha: BTreeMap<String, String> = BTreeMap::new();
        // Per-tensor hashes only where the manifest records one (an action's output).
        let wanted: std::collections::BTreeSet<String> =
            self.manifest.actions.iter().filter(|d| d.sha256.is_none()).filter_map(|d| d.output.clone()).collect();
        let mut total = 0u64;
        // Shards are independent files: written in parallel (the sha256 of
        // each file, taken while writing, is most of the CPU time), collected
        // in shard order, so the result does not depend on the thread count.
        let written: Vec<Result<(OutputFile, Vec<(String, String)>)>> = {
            use rayon::prelude::*;
            groups
                .par_iter()
                .enumerate()
                .map(|(g, members)| {
                    let file = match layout {
                        OutputLayout::Single => "model.safetensors".to_string(),
                        OutputLayout::Sharded => format!("model-{:05}-of-{n:05}.safetensors", g + 1),
                    };
                    let path = self.out.join(&file);
                    let tensors: Vec<Planned> = members.iter().map(|&i| planned[i].0.clone()).collect();
                    let by_name: BTreeMap<&str, &Data> = members.iter().map(|&i| (planned[i].0.name.as_str(), &planned[i].1)).collect();
                    let mut hasher = HashingWriter::default();
                    let mut shas = Vec::new();
                    crate::format::atomic::write_with(&path, |w| {
                        let mut tee = Tee { a: w, b: &mut hasher };
                        safetensors_write::write(&mut tee, &tensors, |t, w| {
                            let mut h = wanted.contains(&t.name).then(Sha256::new);
                            copy_tensor(by_name[t.name.as_str()], t, w, h.as_mut())?;
                            if let Some(h) = h {
                                shas.push((t.name.clone(), crate::format::tensor::hex(&h.finalize())));
                            }
                            Ok(())
                        })
                    })?;
                    Ok((OutputFile { path: file, bytes: hasher.bytes, sha256: crate::format::tensor::hex(&hasher.h.finalize()) }, shas))
                })
                .collect()
        };
        for (g, w) in written.into_iter().enumerate() {
            let (file, shas) = w?;
            for &i in &groups[g] {
                weight_map.insert(planned[i].0.name.clone(), file.path.clone().into());
                total += planned[i].0.bytes() as u64;
            }
            tensor_sha.extend(shas);
            files.push(file);
        }
        if layout == OutputLayout::Sharded {
            let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
            let text = serde_json::to_string_pretty(&index).expect("serialises") + "\n";
            crate::format::atomic::write_bytes(&self.out.join(INDEX), text.as_bytes())?;
            files.push(OutputFile { path: INDEX.into(), bytes: text.len() as u64, sha256: crate::format::tensor::sha256_hex(text.as_bytes()) });
        }
        if self.plan.plan.output.copy_files {
            files.extend(self.copy_base_files()?);
        }
        // The sha256 of every action's written tensor, as it stands in the output.
        for d in &mut self.manifest.actions {
            if let Some(o) = &d.output {
                if let Some(s) = tensor_sha.get(o) {
                    if d.sha256.is_none() {
                        d.sha256 = Some(s.clone());
                    }
                }
            }
        }
        self.manifest.files = files;
        self.manifest.complete = true;
        self.save_manifest()
    }

    /// `copy_files: true`: base's other files (config, tokenizer, …) and
    /// its subdirectories (a sentence-transformers repo's `1_Pooling/`),
    /// byte for byte. Hidden entries, the manifest and base's own weights
    /// and index (top level) are not copied: the output has its own.
    fn copy_base_files(&self) -> Result<Vec<OutputFile>> {
        let base = &self.r.inputs["base"].path;
        if !base.is_dir() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.copy_dir(base, Path::new(""), 0, &mut out)?;
        Ok(out)
    }

    fn copy_dir(&self, dir: &Path, rel: &Path, depth: usize, out: &mut Vec<OutputFile>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel_name = rel.join(&name);
            if p.is_dir() {
                // Deep enough for any model repository; a link loop stops here.
                if depth < 8 {
                    let target = self.out.join(&rel_name);
                    std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
                    self.copy_dir(&p, &rel_name, depth + 1, out)?;
                }
                continue;
            }
            let top = depth == 0;
            if !p.is_file() || (top && (name.ends_with(".safetensors") || name == INDEX || name == manifest::FILE)) {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            crate::format::atomic::write_bytes(&self.out.join(&rel_name), &bytes)?;
            let shown = rel_name.to_string_lossy().into_owned();
            out.push(OutputFile { path: shown, bytes: bytes.len() as u64, sha256: crate::format::tensor::sha256_hex(&bytes) });
        }
        Ok(())
    }
}

fn copy_tensor(data: &Data, t: &Planned, w: &mut dyn Write, mut h: Option<&mut Sha256>) -> std::io::Result<()> {
    let to_io = |e: Error| std::io::Error::other(e.to_string());
    match data {
        Data::Input(ck, loc) => {
            let region = ck.region(loc);
            let mut buf = vec![0u8; (4 << 20).min(loc.len.max(1))];
            let mut at = 0;
            while at < loc.len {
                let n = buf.len().min(loc.len - at);
                region.read_at(at, &mut buf[..n]).map_err(to_io)?;
                if let Some(h) = h.as_mut() {
                    h.update(&buf[..n]);
                }
                w.write_all(&buf[..n])?;
                at += n;
            }
        }
        Data::Work(p) => {
            let tensor = read_work(p).map_err(to_io)?;
            debug_assert_eq!(tensor.data.len(), t.bytes());
            if let Some(h) = h {
                h.update(&tensor.data);
            }
            w.write_all(&tensor.data)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct HashingWriter {
    h: Sha256,
    bytes: u64,
}

struct Tee<'w> {
    a: &'w mut dyn Write,
    b: &'w mut HashingWriter,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.a.write(buf)?;
        self.b.h.update(&buf[..n]);
        self.b.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.a.flush()
    }
}

/// A work file: one tensor, key `t`, written atomically; synced in a batch
/// before the manifest records it ([`Run::flush`]).
fn write_work(path: &Path, t: &Tensor) -> Result<()> {
    crate::format::bundle::write_unsynced(path, &[("t".to_string(), t)])
}

fn read_work(path: &Path) -> Result<Tensor> {
    let ck = Checkpoint::open(path)?;
    let (_, loc) = ck.tensors().next().ok_or_else(|| Error::bundle(path, "empty work file"))?;
    let mut bytes = vec![0u8; loc.len];
    ck.region(loc).read_at(0, &mut bytes)?;
    Ok(Tensor::from_bytes(loc.dtype, loc.shape.clone(), bytes))
}

fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::format::tensor::hex(&h.finalize()))
}

/// shape and dtype asserts from a header.
fn check_header_assert(spec: &crate::plan::Assert, name: &str, dtype: crate::format::dtype::DType, shape: &[usize]) -> Option<String> {
    if let Some(want) = &spec.shape {
        if want.as_slice() != shape {
            return Some(format!("'{name}' has shape {shape:?}, expected {want:?}"));
        }
    }
    if let Some(want) = &spec.dtype {
        if !want.eq_ignore_ascii_case(dtype.name()) {
            return Some(format!("'{name}' is {dtype}, expected {want}"));
        }
    }
    None
}

/// max |a − b| of two integer tensors of the same shape, exactly; None
/// unless both dtypes are integers.
fn int_max_abs(a: &Tensor, b: &Tensor) -> Option<u64> {
    if !(a.dtype.is_integer() && b.dtype.is_integer()) {
        return None;
    }
    let int = |t: &Tensor, i: usize| t.dtype.int(&t.data, i).expect("an integer dtype");
    Some((0..a.numel()).map(|i| crate::numeric::int::abs_diff(int(a, i), int(b, i))).max().unwrap_or(0))
}

/// The asserts that need data: finite, iszero, equal.
fn check_assert_data(spec: &crate::plan::Assert, name: &str, t: &Tensor, to: Option<&Tensor>) -> Option<String> {
    // Shape and dtype again: headers could not tell them for every operation.
    if let Some(m) = check_header_assert(spec, name, t.dtype, &t.shape) {
        return Some(m);
    }
    let float = t.dtype.is_float();
    let values = || t.to_f64_vec();
    if let Some(want) = spec.finite {
        let all = !float || values().iter().all(|v| v.is_finite());
        if all != want {
            return Some(format!("'{name}': finite is {all}, expected {want}"));
        }
    }
    if let Some(want) = spec.iszero {
        // -0.0 == 0.0: a zero tensor may hold negative zeros.
        let all = values().iter().all(|v| *v == 0.0);
        if all != want {
            return Some(format!("'{name}': iszero is {all}, expected {want}"));
        }
    }
    if let (Some(e), Some(other)) = (&spec.equal, to) {
        if other.shape != t.shape {
            return Some(format!("'{name}': shape {:?} vs {:?} of '{}'", t.shape, other.shape, e.to));
        }
        if let Some(worst) = int_max_abs(t, other) {
            // Integers as integers: f64 would call 2⁶² and 2⁶² + 1 equal.
            if crate::numeric::int::exceeds(worst, e.max_abs) {
                let (w, l) = crate::compare::numbers::versus_int(worst, e.max_abs);
                return Some(format!("'{name}': max |diff| {w} against '{}' > {l}", e.to));
            }
            return None;
        }
        let (a, b) = (values(), other.to_f64_vec());
        // Non-finite values compare by position and sign (SPEC §3): NaN with
        // NaN and an infinity with the same infinity are no difference; any
        // other pairing with a non-finite value is an infinite one.
        let gap = |x: f64, y: f64| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs()
            } else if (x.is_nan() && y.is_nan()) || x == y {
                0.0
            } else {
                f64::INFINITY
            }
        };
        let worst = a.iter().zip(&b).map(|(x, y)| gap(*x, *y)).fold(0.0, f64::max);
        if !(worst <= e.max_abs) {
            return Some(format!("'{name}': max |diff| {worst:e} against '{}' > {:e}", e.to, e.max_abs));
        }
    }
    None
}
