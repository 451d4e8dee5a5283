//! What `apply` refuses before it writes anything: `--stages` naming no
//! stage of the plan, and an output directory that holds one of the run's
//! input files (apply never writes over its input).

use crate::error::{Error, Result};
use crate::plan::resolve::{Kind, Resolved};
use crate::plan::LoadedPlan;
use std::path::{Path, PathBuf};


/// `--stages` names only stages some step's operation declares: a name
/// that none does (a typo) would save a report with no stages.
pub(super) fn check_stage_names(r: &Resolved, stages: &[String]) -> Result<()> {
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
pub(super) fn input_files(plan: &LoadedPlan, r: &Resolved) -> Vec<(PathBuf, String)> {
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
pub(super) fn refuse_output_over_inputs(out: &Path, inputs: &[(PathBuf, String)]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(out) else { return Ok(()) };
    // In name order, so the file named is the same on every run.
    let mut entries: Vec<std::fs::DirEntry> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    let ids: Vec<((u64, u64), &(PathBuf, String))> =
        inputs.iter().filter_map(|i| std::fs::metadata(&i.0).ok().filter(|m| m.is_file()).map(|m| ((m.dev(), m.ino()), i))).collect();
    for e in entries {
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

