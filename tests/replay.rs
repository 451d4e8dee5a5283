//! `parity replay`: our implementations run on the inputs a report names.

use parity::ops::Implementation;
use parity::replay::{replay, ReplayOptions};
use parity::format::report::LoadedReport;
use std::path::Path;

fn opts(implementation: Implementation) -> ReplayOptions {
    ReplayOptions { implementation, select: vec![], allow_outside_paths: false, progress: false }
}

const SMALL: &str = "golden/svf_small/oracle_f32.json";

#[test]
fn replay_writes_a_report_and_its_bundle_next_to_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rust.json");
    let report = replay(Path::new(SMALL), &out, &opts(Implementation::Fast)).unwrap();
    assert_eq!(report.stage_bundle, "rust_stages.safetensors");
    assert!(dir.path().join("rust_stages.safetensors").is_file());
    assert_eq!(report.producer.implementation, "parity-fast");
    assert!(report.producer.versions.contains_key("parity"));
    let loaded = LoadedReport::load(&out).unwrap();
    assert_eq!(loaded.report, report);
    for t in &report.tensors {
        let stages: Vec<&str> = t.stages.keys().map(String::as_str).collect();
        assert_eq!(stages.first(), Some(&"source_f32"));
        assert_eq!(stages.last(), Some(&"final_bf16"));
        assert_eq!(t.final_sha256.as_ref(), Some(&t.stages["final_bf16"].sha256));
    }
}

#[test]
fn replay_is_deterministic_to_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    for implementation in [Implementation::Fast, Implementation::Reference] {
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        replay(Path::new("golden/svf_qwen_mlp_like/oracle_f32.json"), &a, &opts(implementation)).unwrap();
        replay(Path::new("golden/svf_qwen_mlp_like/oracle_f32.json"), &b, &opts(implementation)).unwrap();
        let bytes = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
        assert_eq!(bytes("a_stages.safetensors"), bytes("b_stages.safetensors"));
        let (ra, rb) = (std::fs::read_to_string(&a).unwrap(), std::fs::read_to_string(&b).unwrap());
        assert_eq!(ra.replace("a_stages", "x"), rb.replace("b_stages", "x"));
    }
}

#[test]
fn replay_leaves_no_temporary_files_and_replaces_outputs_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rust.json");
    std::fs::write(&out, "old content").unwrap();
    replay(Path::new(SMALL), &out, &opts(Implementation::Fast)).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(std::fs::read_to_string(&out).unwrap().starts_with('{'));
}

#[test]
fn a_failed_replay_leaves_existing_outputs_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // A report whose components lack an input: replay must fail before writing.
    let case = dir.path().join("case");
    std::fs::create_dir(&case).unwrap();
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(SMALL).unwrap()).unwrap();
    r["components"] = "missing.safetensors".into();
    std::fs::write(case.join("r.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    let out = case.join("out.json");
    std::fs::write(&out, "precious").unwrap();
    let err = replay(&case.join("r.json"), &out, &opts(Implementation::Fast)).unwrap_err();
    assert!(err.to_string().contains("missing.safetensors"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
}

#[test]
fn select_limits_the_replayed_tensors_and_must_match_something() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let mut o = opts(Implementation::Fast);
    o.select = vec!["gate_proj".into()];
    let r = replay(Path::new("golden/svf_qwen_mlp_like/oracle_f32.json"), &out, &o).unwrap();
    assert_eq!(r.tensors.len(), 1);
    assert!(r.tensors[0].name.contains("gate_proj"));
    o.select = vec!["*.gate_proj.*".into()];
    let r = replay(Path::new("golden/svf_qwen_mlp_like/oracle_f32.json"), &out, &o).unwrap();
    assert_eq!(r.tensors.len(), 1, "globs match whole names");
    // Every pattern must match: a second pattern that matches nothing is a
    // typo, not a no-op.
    o.select = vec!["model.*.up_proj.*".into(), "*.gate_proj.*".into()];
    let err = replay(Path::new("golden/svf_qwen_mlp_like/oracle_f32.json"), &out, &o).unwrap_err();
    assert!(err.to_string().contains("--select 'model.*.up_proj.*' matches no tensor"), "{err}");
    o.select = vec!["no_such_tensor".into()];
    let err = replay(Path::new("golden/svf_qwen_mlp_like/oracle_f32.json"), &out, &o).unwrap_err();
    assert!(err.to_string().contains("matches no tensor"));
}

#[test]
fn a_components_path_escaping_the_report_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case");
    std::fs::create_dir(&case).unwrap();
    std::fs::copy("golden/svf_small/components.safetensors", dir.path().join("components.safetensors")).unwrap();
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(SMALL).unwrap()).unwrap();
    r["components"] = "../components.safetensors".into();
    std::fs::write(case.join("r.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    let out = dir.path().join("out.json");
    let err = replay(&case.join("r.json"), &out, &opts(Implementation::Fast)).unwrap_err().to_string();
    assert!(err.contains("escapes the report's directory"), "{err}");
    let mut o = opts(Implementation::Fast);
    o.allow_outside_paths = true;
    replay(&case.join("r.json"), &out, &o).expect("explicitly allowed");
}

#[test]
fn an_unknown_operation_is_a_setup_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["components.safetensors", "oracle_f32.safetensors"] {
        std::fs::copy(Path::new("golden/svf_small").join(f), dir.path().join(f)).unwrap();
    }
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(SMALL).unwrap()).unwrap();
    r["tensors"][0]["operation"] = "svf_aply".into();
    std::fs::write(dir.path().join("r.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    let err = replay(&dir.path().join("r.json"), &dir.path().join("o.json"), &opts(Implementation::Fast)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown operation 'svf_aply'") && msg.contains("small.a.weight"), "{msg}");
}

#[test]
fn the_wide_reference_keeps_f64_stages_and_the_narrow_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let wide = replay(Path::new(SMALL), &dir.path().join("w.json"), &opts(Implementation::ReferenceWide)).unwrap();
    let narrow = replay(Path::new(SMALL), &dir.path().join("n.json"), &opts(Implementation::Reference)).unwrap();
    assert_eq!(wide.tensors[0].stages["matmul_pre_norm"].dtype, parity::format::dtype::DType::F64);
    assert_eq!(narrow.tensors[0].stages["matmul_pre_norm"].dtype, parity::format::dtype::DType::F32);
    assert_eq!(wide.tensors[0].stages["final_bf16"].sha256, narrow.tensors[0].stages["final_bf16"].sha256);
}
