//! One run of a plan: its state (the manifest as it grows, each action's
//! status, the stages kept for --save-stages) and each action — an
//! operation prepared (resume check, run, work file) and committed in plan
//! order, a copy, a delete, an assert.

use crate::error::{Error, Result};
use crate::format::checkpoint::Checkpoint;
use crate::format::manifest::{self, Action as Done, ActionStatus, Manifest};
use crate::format::report::write::TensorRun;
use crate::format::tensor::Tensor;
use crate::ops::{Inputs, Wanted};
use crate::plan::resolve::{self, Kind, Resolved, Source};
use crate::plan::LoadedPlan;
use std::path::PathBuf;

use super::*;
use super::asserts::{check_assert_data, check_header_assert};
use super::resume::inputs_hash;
use super::write::{read_work, write_work};

/// Where a tensor's bytes are.
pub(super) enum Data<'a> {
    Input(&'a Checkpoint, &'a crate::format::checkpoint::Located),
    Work(PathBuf),
}

pub(super) struct Run<'a> {
    pub(super) plan: &'a LoadedPlan,
    pub(super) r: &'a Resolved,
    pub(super) out: PathBuf,
    pub(super) opts: &'a ApplyOptions,
    pub(super) manifest: Manifest,
    /// Per action: applied, skipped, checked, …
    pub(super) status: Vec<String>,
    pub(super) failure: Option<(String, String)>,
    pub(super) stage_runs: Vec<TensorRun>,
    /// Work files written since the manifest was last saved, not yet synced.
    pub(super) unsynced: Vec<PathBuf>,
    pub(super) last_save: std::time::Instant,
    /// What a user should know about this run (an input changed since the recorded one).
    pub(super) notes: Vec<String>,
    /// The inputs changed since the manifest was written: a recorded
    /// action is resumed only if its inputs hash as recorded.
    pub(super) recheck_inputs: bool,
    /// The inputs as they are now: the manifest records them once the
    /// output is complete (until then it keeps what the work was done from).
    pub(super) fresh_inputs: Vec<manifest::Input>,
    /// Files an earlier complete output listed, to remove if this run's
    /// output does not write them again (an input changed its shard count).
    pub(super) stale_files: Vec<String>,
}

/// What a prepared operation action comes to, before it is recorded.
pub(super) enum Prepared {
    /// Resumed: the manifest records it and its work file verifies.
    Skipped,
    /// Its output broke the step's expectation (nothing was written).
    Failed { sha: String, message: String, inputs_xxh3: String },
    /// Its work file is written; `work` when not yet synced; the stages
    /// kept for --save-stages.
    Applied { sha: String, stages: Option<crate::format::stages::Stages>, work: Option<PathBuf>, inputs_xxh3: String },
}

/// How often the manifest is saved while actions run. Saving it after every
/// action (an fsync of a file that grows with the plan, and of the
/// directory) cost more than the actions themselves on a cast of 341
/// tensors; a manifest that lags only means a killed run redoes up to this
/// much work on resume, and the output's bytes do not change.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);


impl<'a> Run<'a> {
    pub(super) fn work_file(&self, action: usize) -> PathBuf {
        // Named by what the action is, not by its place in the plan: an
        // input that changed may change how a step expands, and a resumed
        // action must find its own work.
        let a = &self.r.actions[action];
        let key = xxhash_rust::xxh3::xxh3_64(format!("{}\0{}", a.step, a.tensor).as_bytes());
        self.out.join(WORK).join(format!("a{key:016x}.safetensors"))
    }

    pub(super) fn save_manifest(&self) -> Result<()> {
        crate::format::atomic::write_bytes(&self.out.join(manifest::FILE), self.manifest.to_json().as_bytes())
    }

    /// Make every work file the manifest is about to record durable (each
    /// file, then their directory), then save the manifest: what a saved
    /// manifest says was applied is on disk, even after a power cut.
    pub(super) fn flush(&mut self) -> Result<()> {
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
    pub(super) fn data(&self, src: &Source) -> Data<'a> {
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

    pub(super) fn load(&self, src: &Source) -> Result<Tensor> {
        match self.data(src) {
            Data::Input(ck, loc) => {
                let mut bytes = vec![0u8; loc.len];
                ck.region(loc).read_at(0, &mut bytes)?;
                Ok(Tensor::from_bytes(loc.dtype, loc.shape.clone(), bytes))
            }
            Data::Work(path) => read_work(&path),
        }
    }

    pub(super) fn record(&mut self, done: Done) -> Result<()> {
        match self.manifest.actions.iter_mut().find(|d| d.step == done.step && d.tensor == done.tensor) {
            Some(d) => *d = done,
            None => self.manifest.actions.push(done),
        }
        if self.last_save.elapsed() >= SAVE_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    pub(super) fn action(&mut self, i: usize) -> Result<String> {
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
    pub(super) fn prepare(&self, i: usize) -> Result<Prepared> {
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
    pub(super) fn commit(&mut self, i: usize, p: Prepared) -> Result<String> {
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
}
