//! Each kind of failure is its own error variant (what a caller of the
//! library matches on), whatever its message says: the outputs that would
//! land on an input or cannot be written, and a YAML plan that is not one.

use parity::apply::{apply, ApplyOptions};
use parity::format::atomic;
use parity::plan::LoadedPlan;
use parity::Error;
use std::path::Path;

#[test]
fn a_yaml_plan_holding_a_key_twice_is_a_yaml_error_naming_the_key() {
    let plan = b"schema: parity.plan.v1\ninputs: {base: a/}\nsteps:\n  - {id: x, operation: scale, target: {match: w}, inputs: {x: 'base:{name}'}, params: {factor: 2.0, factor: 3.0}}\n";
    match LoadedPlan::parse(Path::new("plan.yaml"), plan, false) {
        Err(Error::Yaml { path, message }) => {
            assert_eq!(path, Path::new("plan.yaml"));
            assert!(message.contains("steps[0].params.factor"), "{message}");
        }
        other => panic!("expected Error::Yaml, got {other:?}"),
    }
}

#[test]
fn an_output_that_is_an_input_is_output_is_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.safetensors");
    std::fs::write(&input, b"x").unwrap();
    std::fs::hard_link(&input, dir.path().join("other.json")).unwrap();
    match atomic::refuse_input(&dir.path().join("other.json"), &[(dir.path(), "the checkpoint")], "the result") {
        Err(Error::OutputIsInput { input: hit, what, .. }) => {
            assert!(hit == input || hit == dir.path().join("other.json"), "{hit:?}");
            assert_eq!(what, "the checkpoint");
        }
        other => panic!("expected Error::OutputIsInput, got {other:?}"),
    }
    // A new file, or a FIFO, is never an input.
    assert!(atomic::refuse_input(&dir.path().join("new.json"), &[(input.as_path(), "x")], "the result").is_ok());
}

#[test]
fn a_directory_as_output_file_is_output_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(atomic::resolve(dir.path()), Err(Error::OutputNotWritable { .. })));
    assert!(matches!(atomic::write_bytes(dir.path(), b"x"), Err(Error::OutputNotWritable { .. })));
}

#[test]
fn apply_into_a_file_is_output_not_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), b"x").unwrap();
    let base = dir.path().join("base.safetensors");
    parity::format::bundle::write(&base, &[("w".to_string(), &parity::format::tensor::Tensor::from_f32(vec![1], &[1.0]))]).unwrap();
    std::fs::write(dir.path().join("plan.yaml"), "schema: parity.plan.v1\ninputs: {base: base.safetensors}\noutput: {path: afile}\nsteps: []\n").unwrap();
    let r = apply(&dir.path().join("plan.yaml"), &ApplyOptions::default());
    assert!(matches!(r, Err(Error::OutputNotDirectory { .. })), "{r:?}");
}
