//! The order actions run in: plan order, with independent operation
//! actions prepared side by side a window at a time and recorded in plan
//! order (so the manifest and output are those of one-at-a-time execution).

use crate::error::Result;
use crate::format::manifest::Manifest;
use crate::format::report::write::write_run;
use crate::plan::resolve::{Kind, Source};

use super::*;
use super::run::{Data, Prepared, Run};

/// The most operation actions prepared side by side at once.
const WINDOW: usize = 64;


impl<'a> Run<'a> {
    pub(super) fn execute(&mut self, shard_size: u64) -> Result<Manifest> {
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

    /// The action whose work file `src` reads, if it reads one.
    pub(super) fn source_action(&self, src: &Source) -> Option<usize> {
        match src {
            Source::Input { .. } => None,
            Source::Computed(i) => match &self.r.actions[*i].kind {
                Kind::Copy { from, .. } | Kind::Take { from } => self.source_action(from),
                _ => Some(*i),
            },
        }
    }

    /// The bytes an action's inputs occupy (what it holds in memory at least).
    pub(super) fn input_bytes(&self, i: usize) -> u64 {
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
    pub(super) fn window(&self, start: usize, budget: u64) -> std::ops::Range<usize> {
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
}
