//! `parity replay`: run one of this project's implementations on the inputs
//! a report names, and write a report and stage bundle of our own.

use crate::format::bundle::Bundle;
use crate::error::{Error, Result};
use crate::ops::{self, Inputs};
use crate::ops::Implementation;
use crate::format::report::write::{RunWriter, TensorRun};
use crate::format::report::{LoadedReport, Producer, Report};
use crate::select::Selection;
use std::path::Path;

pub struct ReplayOptions {
    pub implementation: Implementation,
    pub select: Vec<String>,
    pub allow_outside_paths: bool,
    pub progress: bool,
}

pub fn producer(implementation: Implementation) -> Producer {
    let mut versions = indexmap::IndexMap::new();
    versions.insert("parity".to_string(), env!("CARGO_PKG_VERSION").into());
    versions.insert("gemm".to_string(), "matrixmultiply 0.3".into());
    versions.insert("reference_linalg".to_string(), "nalgebra 0.35".into());
    Producer { name: "parity".into(), implementation: format!("parity-{}", implementation.name()), versions }
}

/// Replay `report_path`'s selected tensors with one implementation; write
/// `out` and its bundle (`<out stem>_stages.safetensors`) next to it.
pub fn replay(report_path: &Path, out: &Path, opts: &ReplayOptions) -> Result<Report> {
    let loaded = LoadedReport::load(report_path)?;
    let components_path = loaded.components_path(opts.allow_outside_paths)?;
    // Refuse an --out that would overwrite what this run reads, or that
    // cannot be written, before any work (and before any file is written).
    // Resolved only: a baseline bundle that is not there cannot be overwritten.
    let baseline_bundle = loaded.resolve("stage_bundle", &loaded.report.stage_bundle, true).ok();
    let mut inputs = vec![(report_path, "the report being replayed"), (components_path.as_path(), "its components")];
    if let Some(b) = &baseline_bundle {
        inputs.push((b.as_path(), "its stage bundle"));
    }
    crate::format::report::write::check_outputs(out, &inputs)?;
    let components = Bundle::open(&components_path)?;
    let selected = Selection::new(&opts.select)?.apply(&loaded.report.tensors, |t| t.name.as_str())?;

    // Stages are written as each tensor's are computed, then dropped: the
    // run holds one tensor's stages, not the bundle's (RunWriter).
    let keys: Vec<String> = selected
        .iter()
        .filter_map(|e| ops::find(&e.operation).map(|op| op.stages.iter().map(|s| crate::format::bundle::tensor_key(&e.key, s.name))))
        .flatten()
        .collect();
    let mut writer = RunWriter::create(out, keys.iter().map(String::as_str))?;
    let bar = crate::progress::bar(opts.progress, selected.len() as u64, "replay");
    for entry in selected {
        bar.set_message(entry.name.clone());
        let op = ops::find(&entry.operation).ok_or_else(|| {
            Error::tensor(&loaded.path, &entry.name, None, format!("unknown operation '{}' (see `parity ops`)", entry.operation))
        })?;
        let mut inputs = Inputs::new();
        for input in op.inputs {
            // Copied out by positional reads: a components file truncated
            // while we run is an error naming it, never a SIGBUS.
            match components.read_named(&entry.name, &entry.key, input.name)? {
                Some(tensor) => {
                    inputs.insert(input.name.to_string(), tensor);
                }
                None if input.optional => {}
                None => {
                    components.require(&entry.name, &entry.key, input.name, "input")?;
                }
            }
        }
        let stages = op.run(opts.implementation, &entry.name, &inputs, &entry.params).map_err(|e| match e {
            // An operation refusing its inputs or parameters: name the files
            // they came from (the report describes the call, the components
            // hold the inputs).
            Error::Operation { op, tensor, message } => Error::tensor(
                &loaded.path,
                &tensor,
                None,
                format!("{op}: {message} (inputs from {})", components_path.display()),
            ),
            e => e.in_file(&loaded.path),
        })?;
        writer.push(&TensorRun {
            name: entry.name.clone(),
            key: entry.key.clone(),
            operation: op.name.to_string(),
            params: entry.params.clone(),
            stages,
            final_stage: op.final_stage().to_string(),
            historical_final_sha256: None,
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    // Name the components relative to OUT when they sit at or below OUT's
    // directory, so the new report can itself be replayed; otherwise leave
    // them out rather than write a path that escapes.
    let out_dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let components_rel = relative_below(out_dir, &components_path);
    writer.finish(producer(opts.implementation), components_rel, None)
}

fn relative_below(dir: &Path, target: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let target = std::fs::canonicalize(target).ok()?;
    let rel = target.strip_prefix(&dir).ok()?;
    Some(rel.to_string_lossy().into_owned())
}
