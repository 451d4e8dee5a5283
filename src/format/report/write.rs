//! Writing one side's run: a stage bundle and the report that describes it.

use super::{Baseline, Producer, Report, StageEntry, TensorEntry, SCHEMA};
use crate::format::bundle;
use crate::error::Result;
use crate::format::stages::{Params, Stages};
use crate::format::tensor::Tensor;
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

/// The bundle path that goes with a report: `x.json` → `x_stages.safetensors`.
pub fn bundle_path_for(report_path: &Path) -> PathBuf {
    let stem = report_path.file_stem().and_then(|s| s.to_str()).unwrap_or("report");
    report_path.with_file_name(format!("{stem}_stages.safetensors"))
}

/// Write the stage bundle, then the report (both atomically). The bundle is
/// written first so that a report never names a bundle that is not there.
pub fn write_run(
    report_path: &Path,
    producer: Producer,
    components: Option<String>,
    baseline: Option<Baseline>,
    runs: &[TensorRun],
) -> Result<Report> {
    let bundle_path = bundle_path_for(report_path);
    // Hash every stage in parallel (sha256 is the costly part of writing a
    // report; each hash is independent, so the order of work cannot matter).
    let all: Vec<&Tensor> = runs.iter().flat_map(|r| r.stages.0.iter().map(|(_, t)| t)).collect();
    let hashes: Vec<String> = {
        use rayon::prelude::*;
        all.par_iter().map(|t| t.sha256()).collect()
    };
    let mut hashes = hashes.into_iter();
    let mut entries: Vec<(String, &Tensor)> = Vec::new();
    let mut tensors = Vec::new();
    for run in runs {
        let mut stages = IndexMap::new();
        for (stage, t) in &run.stages.0 {
            entries.push((bundle::tensor_key(&run.key, stage), t));
            let sha256 = hashes.next().expect("one hash per stage");
            stages.insert(stage.clone(), StageEntry { dtype: t.dtype, shape: t.shape.clone(), sha256 });
        }
        let final_sha256 = stages.get(&run.final_stage).map(|e| e.sha256.clone());
        tensors.push(TensorEntry {
            name: run.name.clone(),
            key: run.key.clone(),
            operation: run.operation.clone(),
            params: run.params.clone(),
            stages,
            final_sha256,
            historical_final_sha256: run.historical_final_sha256.clone(),
        });
    }
    bundle::write(&bundle_path, &entries)?;
    let report = Report {
        schema: SCHEMA.to_string(),
        producer,
        stage_bundle: bundle_path.file_name().unwrap().to_string_lossy().into_owned(),
        components,
        baseline,
        tensors,
    };
    crate::format::atomic::write_bytes(report_path, report.to_json_pretty().as_bytes())?;
    Ok(report)
}
