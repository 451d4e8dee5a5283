//! Resuming from an earlier run's manifest: what it recorded of the inputs
//! (each file's size and mtime, each operation's input hash), what changed
//! since, and whether a complete output still is what it says.

use crate::error::{Error, Result};
use crate::format::checkpoint::Checkpoint;
use crate::format::manifest::{self, Manifest};
use crate::ops::Inputs;
use crate::plan::resolve::Resolved;
use crate::plan::LoadedPlan;
use std::path::{Path, PathBuf};

use super::*;
use super::run::Run;
use super::write::sha256_file;

/// Each input's files as they are now (see [`manifest::InputFile`]).
pub(super) fn fingerprint(plan: &LoadedPlan, name: &str, ck: &Checkpoint) -> Vec<manifest::InputFile> {
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
pub(super) fn changed_inputs(old: &[manifest::Input], now: &[manifest::Input]) -> Vec<String> {
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
pub(super) fn inputs_hash(inputs: &Inputs) -> String {
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


impl<'a> Run<'a> {
    pub(super) fn new(plan: &'a LoadedPlan, r: &'a Resolved, out: &Path, opts: &'a ApplyOptions) -> Result<Run<'a>> {
        let mut notes = Vec::new();
        let mut recheck_inputs = false;
        let mut stale_files = Vec::new();
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
                    layout: c.layout_name().into(),
                    files: fingerprint(plan, n, c),
                })
                .collect(),
            actions: Vec::new(),
            files: Vec::new(),
            complete: false,
        };
        let fresh_inputs = fresh.inputs.clone();
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
                        if written_here(&f.path) {
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
                // Another parity may compute other bits for the same inputs:
                // its recorded work is not this version's to resume.
                if old.parity_version != fresh.parity_version {
                    return Err(Error::json(
                        &path,
                        format!("records a run of parity {}, this is parity {}: --force rewrites the output", old.parity_version, fresh.parity_version),
                    ));
                }
                let changed = changed_inputs(&old.inputs, &fresh.inputs);
                if !changed.is_empty() {
                    // The recorded work was computed from other bytes: each
                    // operation is kept only if what it reads hashes as it
                    // did, and the output is written again.
                    notes.push(format!("inputs changed since the recorded run ({}): actions whose inputs changed are redone, the output rewritten", changed.join("; ")));
                    recheck_inputs = true;
                    // The recorded fingerprints stay until the output is
                    // complete (`fresh_inputs` then replaces them): a run
                    // killed before that leaves a manifest that still tells
                    // the next run the inputs changed, so that it rechecks
                    // the work recorded before the change too.
                    old.complete = false;
                    // The earlier output's files stay listed (a run stopped
                    // before completion must still know them) and go once
                    // this output is written, unless it writes them again.
                    stale_files = old.files.iter().map(|f| f.path.clone()).filter(|p| written_here(p)).collect();
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
            fresh_inputs,
            notes,
            recheck_inputs,
            stale_files,
        })
    }

    /// Every file the complete manifest lists must still be what it says.
    pub(super) fn verify_complete(&self) -> Result<()> {
        for f in &self.manifest.files {
            let path = self.out.join(&f.path);
            if !path.exists() {
                return Err(Error::json(
                    &self.out.join(manifest::FILE),
                    format!("lists '{}', which is gone from the output: --force rewrites the output", f.path),
                ));
            }
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
}

/// Whether a path a manifest lists is one this output directory's writer
/// put there (a shard, the index, a copied file, in a subdirectory too) and
/// may remove: relative, plain components only, nothing hidden.
pub(super) fn written_here(path: &str) -> bool {
    let p = std::path::Path::new(path);
    !path.is_empty()
        && p.components().all(|c| matches!(c, std::path::Component::Normal(n) if !n.to_string_lossy().starts_with('.')))
}
