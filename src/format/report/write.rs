//! Writing one side's run: a stage bundle and the report that describes it.

use super::{Baseline, Producer, Report, StageEntry, TensorEntry, SCHEMA};
use crate::format::{atomic, bundle};
use crate::error::{Error, Result};
use crate::format::stages::{Params, Stages};
use crate::format::tensor::TensorView;
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// One tensor's run: who it is, what ran, and the stages it produced.
pub struct TensorRun {
    pub name: String,
    pub key: String,
    pub operation: String,
    pub params: Params,
    pub stages: Stages,
    /// The stage whose hash becomes `final_sha256` (the operation's last stage).
    pub final_stage: String,
    pub historical_final_sha256: Option<String>,
}

/// One tensor's run with its stages borrowed (a port's own buffers, or a
/// [`TensorRun`]'s tensors): what [`RunWriter::push_view`] writes.
pub struct TensorRunView<'a> {
    pub name: &'a str,
    pub key: &'a str,
    pub operation: &'a str,
    pub params: &'a Params,
    /// Stages in pipeline order.
    pub stages: &'a [(&'a str, TensorView<'a>)],
    /// The stage whose hash becomes `final_sha256`.
    pub final_stage: &'a str,
    pub historical_final_sha256: Option<&'a str>,
}

/// The bundle path that goes with a report: `x.json` → `x_stages.safetensors`.
pub fn bundle_path_for(report_path: &Path) -> PathBuf {
    let stem = report_path.file_stem().and_then(|s| s.to_str()).unwrap_or("report");
    report_path.with_file_name(format!("{stem}_stages.safetensors"))
}

/// Refuse an output that cannot be written as a report and bundle pair,
/// before anything is computed or written: `out` (or the bundle beside it) a
/// directory or some other non-regular file, or the same file as one of
/// `inputs` (which writing would overwrite — a baseline report, its bundle,
/// the components being read; each with what it is, for the error).
///
/// Returns where the report goes: `out` with its symbolic links followed
/// (the link stays, the file it names is replaced, and the bundle goes
/// beside that file, where the report's relative `stage_bundle` finds it).
/// A device or FIFO is refused here, unlike for a single output file: a
/// report is only readable with its bundle beside it.
pub fn check_outputs(report_path: &Path, inputs: &[(&Path, &str)]) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    if report_path.file_name().is_none() || report_path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(Error::Usage(format!("{}: --out must name a file (the report), not a directory", report_path.display())));
    }
    let report_path = match atomic::resolve(report_path)? {
        atomic::Dest::Replace(p) => p,
        atomic::Dest::Through(_) => {
            return Err(Error::OutputNotWritable {
                path: report_path.to_path_buf(),
                message: "is a device, FIFO or socket: a report is written as a file with its stage bundle beside it".into(),
            })
        }
    };
    let bundle_path = bundle_path_for(&report_path);
    let dir = atomic::dir_of(&report_path);
    if !dir.is_dir() {
        return Err(Error::Usage(format!("{}: no such directory to write {} in", dir.display(), report_path.display())));
    }
    let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    // A bundle path that is (a link to) the report itself would have the
    // report renamed over the bundle just written.
    if let (Ok(r), Ok(b)) = (std::fs::metadata(&report_path), std::fs::metadata(&bundle_path)) {
        if same(&r, &b) {
            return Err(Error::OutputNotWritable {
                path: bundle_path.clone(),
                message: format!("is the report {} itself: the report and its stage bundle must be two files", report_path.display()),
            });
        }
    }
    for (out, what) in [(report_path.as_path(), "the report"), (bundle_path.as_path(), "the report's stage bundle")] {
        let Ok(meta) = std::fs::metadata(out) else { continue };
        if meta.is_dir() {
            return Err(Error::OutputNotWritable { path: out.to_path_buf(), message: format!("is a directory; --out must name a file ({what} to write)") });
        }
        if !meta.is_file() {
            return Err(Error::OutputNotWritable { path: out.to_path_buf(), message: format!("not a regular file; refusing to replace it with {what}") });
        }
        for (input, is) in inputs {
            if std::fs::metadata(input).is_ok_and(|m| same(&m, &meta)) {
                return Err(Error::OutputIsInput {
                    output: out.to_path_buf(),
                    input: input.to_path_buf(),
                    what: is.to_string(),
                    written: what.to_string(),
                });
            }
        }
    }
    Ok(report_path)
}

/// Write the stage bundle and the report as a pair: a report under its
/// final name always describes the bundle beside it.
///
/// Both are first written in full to synced temporaries. Then the old
/// report (if any) is removed, the bundle renamed into place, and the new
/// report renamed last, the directory synced after each step. A run killed
/// at any point leaves the old pair, a bundle with no report, or the new
/// pair — never a report beside a bundle it does not describe (the bundle's
/// name is fixed, so renaming it first under the old report would do just
/// that).
pub fn write_run(
    report_path: &Path,
    producer: Producer,
    components: Option<String>,
    baseline: Option<Baseline>,
    runs: &[TensorRun],
) -> Result<Report> {
    let keys: Vec<String> = runs.iter().flat_map(|r| r.stages.names().map(|s| bundle::tensor_key(&r.key, s))).collect();
    let mut writer = RunWriter::create(report_path, keys.iter().map(String::as_str))?;
    for run in runs {
        writer.push(run)?;
    }
    writer.finish(producer, components, baseline)
}

/// A run written tensor by tensor (see [`write_run`] for the pair's rules):
/// each [`push`](RunWriter::push) hashes a tensor's stages and appends them
/// to the bundle, so the caller may drop them at once — `replay` holds one
/// tensor's stages at a time, not the bundle's, and a capture
/// ([`super::capture`]) none at all: [`push_view`](RunWriter::push_view)
/// writes from the port's own buffers.
pub struct RunWriter {
    report_path: PathBuf,
    bundle: bundle::BundleWriter,
    tensors: Vec<TensorEntry>,
}

impl RunWriter {
    /// Start the bundle beside `report_path`, with header room for `keys`
    /// (every full key it will hold: a guess too small costs one copy).
    pub fn create<'k>(report_path: &Path, keys: impl IntoIterator<Item = &'k str>) -> Result<RunWriter> {
        let report_path = check_outputs(report_path, &[])?;
        let bundle = bundle::BundleWriter::create(&bundle_path_for(&report_path), bundle::header_room(keys))?;
        Ok(RunWriter { report_path, bundle, tensors: Vec::new() })
    }

    /// Hash one tensor's stages and append them to the bundle.
    pub fn push(&mut self, run: &TensorRun) -> Result<()> {
        let stages: Vec<(&str, TensorView<'_>)> = run.stages.0.iter().map(|(s, t)| (s.as_str(), t.view())).collect();
        self.push_view(&TensorRunView {
            name: &run.name,
            key: &run.key,
            operation: &run.operation,
            params: &run.params,
            stages: &stages,
            final_stage: &run.final_stage,
            historical_final_sha256: run.historical_final_sha256.as_deref(),
        })
    }

    /// Hash one tensor's borrowed stages and append them to the bundle,
    /// straight from where they lie (no copy of the values is made). The
    /// stages are hashed on every core while this thread writes them
    /// (sha256 is the costly part; each hash is independent, so the order
    /// cannot matter).
    pub fn push_view(&mut self, run: &TensorRunView<'_>) -> Result<()> {
        use rayon::prelude::*;
        let (hashes, written) = rayon::join(
            || run.stages.par_iter().map(|(_, t)| t.sha256()).collect::<Vec<String>>(),
            || -> Result<()> {
                // Widest dtype first (stable: declared order among equals),
                // so this tensor's F64/F32 stages stay aligned to their
                // element size after a previous tensor's whole-word stages.
                let mut order: Vec<&(&str, TensorView<'_>)> = run.stages.iter().collect();
                order.sort_by_key(|(_, t)| std::cmp::Reverse(t.dtype.size()));
                for (stage, t) in order {
                    self.bundle.append_view(&bundle::tensor_key(run.key, stage), *t)?;
                }
                Ok(())
            },
        );
        written?;
        let mut stages = IndexMap::new();
        for ((stage, t), sha256) in run.stages.iter().zip(hashes) {
            stages.insert(stage.to_string(), StageEntry { dtype: t.dtype, shape: t.shape.to_vec(), sha256 });
        }
        let final_sha256 = stages.get(run.final_stage).map(|e| e.sha256.clone());
        self.tensors.push(TensorEntry {
            name: run.name.to_string(),
            key: run.key.to_string(),
            operation: run.operation.to_string(),
            params: run.params.clone(),
            stages,
            final_sha256,
            historical_final_sha256: run.historical_final_sha256.map(str::to_string),
        });
        Ok(())
    }

    /// Finish the bundle, write the report, and put the pair in place.
    pub fn finish(self, producer: Producer, components: Option<String>, baseline: Option<Baseline>) -> Result<Report> {
        let RunWriter { report_path, bundle, tensors } = self;
        let bundle_path = bundle_path_for(&report_path);
        let staged_bundle = bundle.finish()?;
        let report = Report {
            schema: SCHEMA.to_string(),
            producer,
            stage_bundle: bundle_path.file_name().unwrap().to_string_lossy().into_owned(),
            components,
            baseline,
            tensors,
        };
        let staged_report = atomic::stage(&report_path, |w| w.write_all(report.to_json_pretty().as_bytes()))?;
        atomic::remove_durably(&report_path)?;
        staged_bundle.rename()?;
        atomic::sync_dir(atomic::dir_of(&report_path))?;
        staged_report.commit()?;
        Ok(report)
    }
}
