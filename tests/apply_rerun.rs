//! `apply` rerun over a changed input, and what a rerun must not leave
//! behind (found by reviewing issue 22's fixes): the manifest keeps the
//! fingerprints the recorded work was computed from until the output is
//! complete; files an earlier output wrote and this one does not are
//! removed; another parity version's work is not resumed; `copy_files` never
//! copies the output directory into itself.

use std::path::Path;
use std::process::{Command, Output};

mod checkpoint_support;
use checkpoint_support::{write_sharded, Model};
use parity::format::tensor::Tensor;

fn parity(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parity")).args(args).current_dir(dir).output().unwrap()
}

fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v)
}

fn model(k: f32, norm: [f32; 2], extra: bool) -> Model {
    let mut m = Model::new();
    for l in 0..2 {
        m.insert(format!("model.layers.{l}.mlp.up_proj.weight"), f32t(&[2, 2], &[k, 2.0 * k, 3.0 * k, 4.0 * k]));
    }
    m.insert("model.norm.weight".into(), f32t(&[2], &norm));
    if extra {
        m.insert("model.extra.bias".into(), f32t(&[3], &[7.0, 8.0, 9.0]));
    }
    m
}

const PLAN: &str = "schema: parity.plan.v1\ninputs: {base: base/}\noutput: {path: out/}\nsteps:\n  - {id: double, operation: scale, target: {match: 'model.layers.*.mlp.up_proj.weight'}, inputs: {x: 'base:{name}'}, params: {factor: 2.0}}\n  - {id: norm_zero, assert: {match: model.norm.weight, iszero: true}}\n";

fn manifest(d: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.join("out/manifest.json")).unwrap()).unwrap()
}

fn recorded_bytes(d: &Path) -> u64 {
    manifest(d)["inputs"][0]["files"].as_array().unwrap().iter().map(|f| f["bytes"].as_u64().unwrap()).sum()
}

fn rewrite_base(d: &Path, m: &Model) {
    std::fs::remove_dir_all(d.join("base")).unwrap();
    write_sharded(&d.join("base"), m, 1);
}

/// A run that saw the input change and stopped before its output was
/// complete leaves the old fingerprints in the manifest: the next run still
/// knows the recorded work may be from the old bytes, and checks it.
#[test]
fn the_manifest_keeps_the_old_fingerprints_until_the_output_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_sharded(&d.join("base"), &model(1.0, [0.0, 0.0], false), 1);
    std::fs::write(d.join("plan.yaml"), PLAN).unwrap();
    assert_eq!(parity(&["apply", "plan.yaml"], d).status.code(), Some(0));
    let v1 = recorded_bytes(d);

    // Changed (other values, one more tensor) and the assert now fails:
    // the scales are redone and recorded, the output is not written.
    rewrite_base(d, &model(10.0, [1.0, 1.0], true));
    let o = parity(&["apply", "plan.yaml"], d);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(recorded_bytes(d), v1, "the manifest took the new fingerprints before the output was complete");

    // Fixed; the scales' inputs are those of the stopped run: resumed.
    rewrite_base(d, &model(10.0, [0.0, 0.0], true));
    let o = parity(&["apply", "plan.yaml"], d);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("0 actions applied, 2 resumed"), "{stdout}");
    assert_ne!(recorded_bytes(d), v1);
    assert!(manifest(d)["complete"].as_bool().unwrap());
}

/// An input that changed its size changes the output's shard count: the
/// earlier output's shards do not stay beside the new index.
#[test]
fn shards_an_earlier_output_wrote_and_this_one_does_not_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_sharded(&d.join("base"), &model(1.0, [0.0, 0.0], false), 1);
    // Each tensor of 16 bytes: a 40-byte shard holds two.
    let plan = PLAN.replace("output: {path: out/}", "output: {path: out/, shard_size: 40}");
    std::fs::write(d.join("plan.yaml"), plan).unwrap();
    assert_eq!(parity(&["apply", "plan.yaml"], d).status.code(), Some(0));
    let mut m = model(1.0, [0.0, 0.0], false);
    for l in 2..6 {
        m.insert(format!("model.layers.{l}.norm.weight"), f32t(&[4], &[1.0; 4]));
    }
    rewrite_base(d, &m);
    let o = parity(&["apply", "plan.yaml"], d);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Vec<String> = manifest(d)["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect();
    let shards: Vec<String> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert!(!shards.is_empty());
    for s in &shards {
        assert!(listed.contains(s), "{s} is left over from the earlier output (listed: {listed:?})");
    }
}

#[test]
fn a_manifest_of_another_parity_version_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_sharded(&d.join("base"), &model(1.0, [0.0, 0.0], false), 1);
    std::fs::write(d.join("plan.yaml"), PLAN).unwrap();
    assert_eq!(parity(&["apply", "plan.yaml"], d).status.code(), Some(0));
    let mut m = manifest(d);
    m["parity_version"] = "0.0.0".into();
    std::fs::write(d.join("out/manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let o = parity(&["apply", "plan.yaml"], d);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("parity 0.0.0") && err.contains("--force"), "{err}");
    assert_eq!(parity(&["apply", "plan.yaml", "--force"], d).status.code(), Some(0));
}

/// `base: .` with the output inside it: the output is not copied into itself.
#[test]
fn copy_files_never_copies_the_output_into_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("model");
    write_sharded(&d, &model(1.0, [0.0, 0.0], false), 1);
    std::fs::write(d.join("plan.yaml"), PLAN.replace("base: base/", "base: .")).unwrap();
    for _ in 0..2 {
        let o = parity(&["apply", "plan.yaml", "--force"], &d);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(!d.join("out/out").exists(), "the output was copied into itself");
    assert!(d.join("out/plan.yaml").is_file(), "base's other files are copied");
}

/// A report's bundle that is a link to the report itself is refused
/// before anything is written.
#[test]
fn a_bundle_path_that_is_the_report_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let small = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/svf_small");
    for f in ["components.safetensors", "oracle_f32.json", "oracle_f32.safetensors"] {
        std::fs::copy(small.join(f), d.join(f)).unwrap();
    }
    std::fs::write(d.join("x.json"), "{}").unwrap();
    std::os::unix::fs::symlink("x.json", d.join("x_stages.safetensors")).unwrap();
    let o = parity(&["replay", "oracle_f32.json", "--out", "x.json"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be two files"));
    assert_eq!(std::fs::read_to_string(d.join("x.json")).unwrap(), "{}");
}
