//! Fixtures for the comparer's tests: small SVF runs written with the real
//! report writer, and ways to spoil them.
#![allow(dead_code)]

use parity::format::dtype::DType;
use parity::ops::svf_apply::SVF_APPLY;
use parity::ops::{Implementation, Stages};
use parity::format::report::write::{write_run, TensorRun};
use parity::format::report::{Baseline, Producer};
use parity::format::tensor::Tensor;
use std::path::{Path, PathBuf};

pub const NAME: &str = "model.layers.0.mlp.down_proj.weight";

/// The stages the fast SVF produces for sample inputs of `dims` = [m, n, k].
pub fn svf_stages(seed: u64, dims: [usize; 3]) -> (Stages, parity::ops::Params) {
    let sample = (SVF_APPLY.sample)(seed, &dims);
    let stages = SVF_APPLY.run(Implementation::Fast, NAME, &sample.inputs, &sample.params).expect("sample inputs run");
    (stages, sample.params)
}

pub fn run(name: &str, stages: Stages, params: parity::ops::Params) -> TensorRun {
    TensorRun {
        name: name.to_string(),
        key: parity::format::bundle::safe_key(name),
        operation: SVF_APPLY.name.to_string(),
        params,
        stages,
        final_stage: "final_bf16".into(),
        historical_final_sha256: None,
    }
}

pub fn producer(implementation: &str) -> Producer {
    Producer { name: "parity-tests".into(), implementation: implementation.into(), versions: Default::default() }
}

pub fn baseline(reproducible: bool) -> Baseline {
    Baseline {
        label: "python readback".into(),
        historical_reproducible: reproducible,
        note: Some("the historical run used a different LAPACK build".into()),
    }
}

/// Write one side's report (and its bundle next to it).
pub fn write_side(
    dir: &Path,
    file: &str,
    implementation: &str,
    baseline: Option<Baseline>,
    runs: &[TensorRun],
) -> PathBuf {
    let path = dir.join(file);
    write_run(&path, producer(implementation), None, baseline, runs).expect("fixture written");
    path
}

/// A left and a right report of the same SVF tensor; `spoil` edits the
/// right side's stages before they are written.
pub struct Pair {
    pub dir: tempfile::TempDir,
    pub left: PathBuf,
    pub right: PathBuf,
}

pub fn pair(spoil: impl FnOnce(&mut Stages)) -> Pair {
    pair_with([16, 24, 8], None, spoil)
}

pub fn pair_with(dims: [usize; 3], historical: Option<(&str, bool)>, spoil: impl FnOnce(&mut Stages)) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (stages, params) = svf_stages(7, dims);
    let mut right_stages = stages.clone();
    spoil(&mut right_stages);
    let mut l = run(NAME, stages, params.clone());
    let mut r = run(NAME, right_stages, params);
    let base = historical.map(|(_, reproducible)| baseline(reproducible));
    if let Some((h, _)) = historical {
        l.historical_final_sha256 = Some(h.to_string());
        r.historical_final_sha256 = Some(h.to_string());
    }
    let left = write_side(dir.path(), "python.json", "numpy-f32", base, &[l]);
    let right = write_side(dir.path(), "rust.json", "parity-fast", None, &[r]);
    Pair { dir, left, right }
}

/// Edit an F32 stage element by element.
pub fn edit_f32(stages: &mut Stages, stage: &str, f: impl Fn(usize, f32) -> f32) {
    let t = stage_mut(stages, stage);
    assert_eq!(t.dtype, DType::F32);
    let v: Vec<f32> = t.to_f32_vec().into_iter().enumerate().map(|(i, x)| f(i, x)).collect();
    *t = Tensor::from_f32(t.shape.clone(), &v);
}

/// Edit a BF16 (or F16) stage's bit patterns.
pub fn edit_bits(stages: &mut Stages, stage: &str, f: impl Fn(usize, u16) -> u16) {
    let t = stage_mut(stages, stage);
    let v: Vec<u16> = t.as_u16_bits().into_iter().enumerate().map(|(i, x)| f(i, x)).collect();
    *t = Tensor::from_u16_bits(t.dtype, t.shape.clone(), &v);
}

pub fn stage_mut<'a>(stages: &'a mut Stages, stage: &str) -> &'a mut Tensor {
    &mut stages.0.iter_mut().find(|(n, _)| n == stage).unwrap_or_else(|| panic!("no stage {stage}")).1
}

pub fn f32_tensor(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v)
}

pub fn bf16_tensor(shape: &[usize], bits: &[u16]) -> Tensor {
    Tensor::from_u16_bits(DType::BF16, shape.to_vec(), bits)
}

/// Read a JSON file, change it, write it back.
pub fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}
