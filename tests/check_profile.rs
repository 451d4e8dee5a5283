//! Tolerance profiles: the built-in one from the registry, and user files
//! (`parity.tolerances.v1`) merged over it.

mod check_support;

use check_support::*;
use parity::compare::tolerance::Tolerance;
use parity::check::{check, CheckOptions, Modes};
use parity::compare::{Profile, Verdict};
use parity::ops::svf_apply::SVF_APPLY;
use parity::ops::Stages;
use parity::format::report::write::TensorRun;
use std::path::{Path, PathBuf};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tolerances.example.json")
}

fn merged(json: &str) -> parity::Result<Profile> {
    parity::ops::builtin_profile().merge_json(Path::new("tight.json"), json.as_bytes())
}

fn file(ops: &str) -> String {
    format!(r#"{{"schema": "parity.tolerances.v1", "operations": {ops}}}"#)
}

fn builtin(stage: &str) -> Tolerance {
    SVF_APPLY.stage(stage).unwrap().tolerance
}

#[test]
fn the_builtin_profile_is_the_registrys() {
    let p = parity::ops::builtin_profile();
    assert_eq!(p.origin(), "built-in");
    for s in SVF_APPLY.stages {
        assert_eq!(p.tolerance("svf_apply", s.name), Some(s.tolerance));
    }
    assert!(!p.tolerance("svf_apply", "final_bf16").unwrap().required);
    assert_eq!(p.tolerance("svf_apply", "no_such_stage"), None);
}

#[test]
fn a_file_is_merged_field_by_field() {
    let p = merged(&file(r#"{"svf_apply": {"final_bf16": {"required": true}}}"#)).unwrap();
    assert_eq!(p.tolerance("svf_apply", "final_bf16"), Some(Tolerance { required: true, ..builtin("final_bf16") }));
    assert_eq!(p.tolerance("svf_apply", "final_f32"), Some(builtin("final_f32")));
    assert_eq!(p.origin(), "built-in + tight.json");
}

#[test]
fn a_star_entry_is_the_default_for_unlisted_stages() {
    let p = merged(&file(r#"{"svf_apply": {"*": {"max_abs": 0.5}, "final_f32": {"mean_abs": 1}}}"#)).unwrap();
    assert_eq!(p.tolerance("svf_apply", "source_f32").unwrap().max_abs, 0.5);
    assert_eq!(p.tolerance("svf_apply", "source_f32").unwrap().mean_abs, 0.0);
    let listed = p.tolerance("svf_apply", "final_f32").unwrap();
    assert_eq!((listed.max_abs, listed.mean_abs), (1e-3, 1.0));
}

#[test]
fn null_removes_an_optional_limit() {
    let tight = parity::ops::profile_mapped(|_, s| s.tolerance.with_max_ulp(1));
    let p = tight
        .merge_json(Path::new("t.json"), file(r#"{"svf_apply": {"final_bf16": {"max_ulp": null}}}"#).as_bytes())
        .unwrap();
    assert_eq!(p.tolerance("svf_apply", "final_bf16").unwrap().max_ulp, None);
    assert_eq!(p.tolerance("svf_apply", "final_f32").unwrap().max_ulp, Some(1));
}

#[test]
fn an_unknown_stage_of_a_registry_operation_is_an_error() {
    let err = merged(&file(r#"{"svf_apply": {"final_bf61": {"required": true}}}"#)).unwrap_err().to_string();
    assert!(err.contains("tight.json") && err.contains("'final_bf61' is not a stage of svf_apply"), "{err}");
}

#[test]
fn an_unknown_field_is_an_error() {
    let err = merged(&file(r#"{"svf_apply": {"final_bf16": {"max_abss": 1}}}"#)).unwrap_err().to_string();
    assert!(err.contains("unknown field `max_abss`"), "{err}");
}

#[test]
fn an_unknown_profile_schema_is_an_error() {
    let err = merged(r#"{"schema": "parity.tolerances.v2", "operations": {}}"#).unwrap_err().to_string();
    assert!(err.contains("unknown schema 'parity.tolerances.v2'"), "{err}");
}

#[test]
fn a_negative_limit_is_an_error() {
    let err = merged(&file(r#"{"svf_apply": {"scaled_s": {"max_abs": -1}}}"#)).unwrap_err().to_string();
    assert!(err.contains("operations.svf_apply.scaled_s.max_abs: must be a number ≥ 0"), "{err}");
}

#[test]
fn a_stage_of_an_unknown_operation_needs_a_complete_tolerance() {
    let err = merged(&file(r#"{"my_op": {"out": {"max_abs": 1}}}"#)).unwrap_err().to_string();
    assert!(err.contains("operations.my_op.out: incomplete tolerance: required, mean_abs missing"), "{err}");
}

#[test]
fn the_example_file_loads() {
    let p = parity::ops::builtin_profile().merge_file(&example()).unwrap();
    let bf16 = p.tolerance("svf_apply", "final_bf16").unwrap();
    assert_eq!((bf16.required, bf16.max_ulp, bf16.max_abs), (true, Some(1), 1e-3));
    let mm = p.tolerance("svf_apply", "matmul_pre_norm").unwrap();
    assert_eq!((mm.max_abs, mm.mean_abs, mm.min_cosine), (5e-4, 1e-5, Some(0.999999)));
    assert_eq!(p.tolerance("my_rmsnorm", "anything"), Some(Tolerance::gate(1e-5, 1e-7)));
    assert_eq!(p.tolerance("my_rmsnorm", "output_bf16"), Some(Tolerance::gate(1e-2, 1e-3).with_max_ulp(1)));
    assert_eq!(p.tolerance("my_rmsnorm", "debug_rstd"), Some(Tolerance::gate(1e-5, 1e-7).optional()));
}

#[test]
fn builtin_mapped_computes_every_stage_tolerance() {
    let p =
        parity::ops::profile_mapped(|op, s| {
            Tolerance { max_abs: s.tolerance.max_abs / 100.0, ..s.tolerance }
                .with_min_cosine(if op.name == "svf_apply" { 0.9 } else { 0.0 })
        });
    let t = p.tolerance("svf_apply", "final_f32").unwrap();
    assert_eq!((t.max_abs, t.min_cosine), (1e-5, Some(0.9)));
}

#[test]
fn a_tolerance_file_decides_the_verdict_of_check() {
    let p = pair(|s| edit_f32(s, "matmul_pre_norm", |i, x| if i == 0 { x + 7e-4 } else { x }));
    let strict = Modes { strict_stage_tolerances: true, ..Modes::default() };
    let with_builtin = check(&p.left, &p.right, &CheckOptions { modes: strict, ..CheckOptions::default() }).unwrap();
    assert!(with_builtin.passed());
    let tight = CheckOptions { modes: strict, profile: parity::ops::builtin_profile().merge_file(&example()).unwrap(), ..CheckOptions::default() };
    let o = check(&p.left, &p.right, &tight).unwrap();
    assert!(!o.passed());
    assert_eq!(o.tensors[0].first_failing_stage.as_deref(), Some("matmul_pre_norm"));
    assert!(o.profile.ends_with("tolerances.example.json"));
}

/// Reports of an operation parity does not know, stages in the order given.
fn custom_pair(stages: &[&str], right_offset: f32) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let side = |offset: f32| {
        let mut st = Stages::default();
        for (i, s) in stages.iter().enumerate() {
            let t = if s.ends_with("bf16") {
                bf16_tensor(&[2, 2], &[0x3F80, 0x4000, 0x4040, 0x4080])
            } else {
                f32_tensor(&[4], &[i as f32, 1.0, 2.0, 3.0 + offset])
            };
            st.push(s, t);
        }
        TensorRun {
            name: "norm.weight".into(),
            key: "norm_weight".into(),
            operation: "my_rmsnorm".into(),
            params: Default::default(),
            stages: st,
            final_stage: "output_bf16".into(),
            historical_final_sha256: None,
        }
    };
    let left = write_side(dir.path(), "python.json", "torch-f32", None, &[side(0.0)]);
    let right = write_side(dir.path(), "rust.json", "my-port", None, &[side(right_offset)]);
    Pair { dir, left, right }
}

#[test]
fn an_operation_parity_does_not_know_is_compared_in_the_left_reports_order() {
    let p = custom_pair(&["normed_f32", "debug_rstd", "output_bf16"], 2e-5);
    let o = check(
        &p.left,
        &p.right,
        &CheckOptions {
            modes: Modes { strict_stage_tolerances: true, ..Modes::default() },
            profile: parity::ops::builtin_profile().merge_file(&example()).unwrap(),
            ..CheckOptions::default()
        },
    )
    .unwrap();
    let got: Vec<(&str, Verdict, bool)> =
        o.tensors[0].stages.iter().map(|s| (s.stage.as_str(), s.verdict, s.gated())).collect();
    assert_eq!(
        got,
        vec![
            ("normed_f32", Verdict::Fail, true),
            ("debug_rstd", Verdict::Fail, false),
            ("output_bf16", Verdict::Pass, true)
        ]
    );
    assert_eq!(o.tensors[0].first_failing_stage.as_deref(), Some("normed_f32"));
}

#[test]
fn a_stage_of_an_unknown_operation_without_a_tolerance_is_a_setup_error() {
    let p = custom_pair(&["normed_f32", "output_bf16"], 0.0);
    let err = check(&p.left, &p.right, &CheckOptions::default()).unwrap_err().to_string();
    assert!(err.contains("tensor 'norm.weight' stage 'normed_f32'"), "{err}");
    assert!(err.contains("operation 'my_rmsnorm' is not in parity's registry"), "{err}");
}
