//! Every operation's declared parameters are enforced in one place
//! (`Operation::run`, and `check` on both reports): an unknown key is refused
//! naming the known ones and the nearest, a missing required key and a value
//! of the wrong kind are refused — exit 2 through the binary, one line naming
//! the file, the tensor and the key.

use parity::error::{Error, ParamProblem};
use parity::ops::{self, Implementation, Inputs, Params};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn params(v: Value) -> Params {
    v.as_object().unwrap().clone()
}

/// A golden case's own inputs and params for its first tensor, so only the
/// parameter under test is wrong.
fn sample(op: &str) -> Inputs {
    let o = ops::find(op).unwrap();
    let dims: Vec<usize> = o.bench_dims[0].to_vec();
    (o.sample)(1, &dims).inputs
}

fn problem(op: &str, p: Value) -> (String, ParamProblem) {
    let o = ops::find(op).unwrap();
    for implementation in [Implementation::Fast, Implementation::Reference] {
        let err = o.run(implementation, "w", &sample(op), &params(p.clone())).expect_err("must be refused");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        match err {
            Error::Parameter { op: got_op, tensor, key, problem, path: None } => {
                assert_eq!((got_op.as_str(), tensor.as_str()), (op, "w"));
                if implementation == Implementation::Reference {
                    return (key, problem);
                }
            }
            other => panic!("{op} {p}: expected a parameter error, got {other:?}"),
        }
    }
    unreachable!()
}

#[test]
fn a_misspelt_parameter_is_refused_with_the_nearest_known_one() {
    for (op, p, key, near) in [
        ("svf_apply", json!({"final_shape": [256, 256], "tranpose": true}), "tranpose", "transpose"),
        ("cast", json!({"too": "BF16"}), "too", "to"),
        ("scale", json!({"factr": 0.5}), "factr", "factor"),
        ("clamp", json!({"min": 0.0, "mx": 1.0}), "mx", "max"),
        ("ties", json!({"density": 0.5, "lamda": 1.0}), "lamda", "lambda"),
        ("transpose", json!({"dim": [1, 0]}), "dim", "dims"),
        ("fp8_block_quantize", json!({"blocks": [4, 4]}), "blocks", "block"),
    ] {
        let (got, problem) = problem(op, p);
        assert_eq!(got, key, "{op}");
        match problem {
            ParamProblem::Unknown { known, suggestion } => {
                assert_eq!(suggestion.as_deref(), Some(near), "{op}");
                let declared: Vec<String> = ops::find(op).unwrap().params.iter().map(|p| p.name.to_string()).collect();
                assert_eq!(known, declared, "{op}: the error lists the known keys");
            }
            other => panic!("{op}: {other:?}"),
        }
    }
}

#[test]
fn an_unknown_parameter_far_from_any_known_one_is_refused_without_a_guess() {
    let (key, problem) = problem("matmul", json!({"precision": "high"}));
    assert_eq!(key, "precision");
    assert_eq!(problem, ParamProblem::Unknown { known: vec![], suggestion: None });
    assert!(problem.to_string().contains("takes no parameters"));
}

#[test]
fn a_missing_required_parameter_is_refused() {
    for (op, key) in [("svf_apply", "final_shape"), ("cast", "to"), ("scale", "factor"), ("reshape", "shape"), ("phlora", "rank")] {
        assert_eq!(problem(op, json!({})), (key.to_string(), ParamProblem::Missing), "{op}");
    }
}

#[test]
fn a_parameter_of_the_wrong_kind_is_refused() {
    for (op, p, key) in [
        ("svf_apply", json!({"final_shape": [256, 256], "transpose": "yes"}), "transpose"),
        ("svf_apply", json!({"final_shape": "256x256"}), "final_shape"),
        ("cast", json!({"to": "I32"}), "to"),
        ("scale", json!({"factor": "0.5"}), "factor"),
        ("split", json!({"index": 1.5}), "index"),
        ("task_arithmetic", json!({"weights": [1, "2"]}), "weights"),
        ("slice", json!({"ranges": [[0, "1"]]}), "ranges"),
    ] {
        let (got, problem) = problem(op, p.clone());
        assert_eq!(got, key, "{op} {p}");
        assert!(matches!(problem, ParamProblem::WrongType { .. }), "{op} {p}: {problem:?}");
    }
}

#[test]
fn null_means_default_for_an_optional_parameter_only() {
    let o = ops::find("svf_apply").unwrap();
    let inputs = sample("svf_apply");
    let shape = inputs["source"].shape.clone();
    assert!(o.run(Implementation::Fast, "w", &inputs, &params(json!({"final_shape": shape, "transpose": null}))).is_ok());
    assert_eq!(problem("svf_apply", json!({"final_shape": null})), ("final_shape".into(), ParamProblem::WrongType {
        expected: "a list of whole numbers ≥ 0".into(),
        got: "null".into()
    }));
}

#[test]
fn an_undeclared_input_is_refused() {
    let o = ops::find("scale").unwrap();
    let mut inputs = sample("scale");
    inputs.insert("y".into(), inputs["x"].clone());
    let msg = o.run(Implementation::Fast, "w", &inputs, &params(json!({"factor": 2.0}))).unwrap_err().to_string();
    assert!(msg.contains("input 'y' is not an input of scale"), "{msg}");
}

// ---------------------------------------------------------------------------
// Through the binary, on a golden case whose report was edited.

fn golden_copy(case: &str, edit: impl Fn(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(case);
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let report = dir.path().join("oracle_f32.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&report, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    (dir, report)
}

fn parity(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn replay_and_check_refuse_a_report_whose_params_are_misspelt() {
    // The square MiniLM query weight: without `transpose` it is not transposed,
    // so a silently ignored `tranpose: true` would be exactly the porting bug.
    let (dir, report) = golden_copy("svf_minilm_query", |v| {
        v["tensors"][0]["params"]["tranpose"] = json!(true);
    });
    let out = dir.path().join("rust.json");
    let (code, stderr) = parity(&["replay", report.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in ["oracle_f32.json", "svf_apply", "parameter 'tranpose'", "did you mean 'transpose'?", "final_shape, transpose"] {
        assert!(stderr.contains(needle), "{needle:?} missing from {stderr}");
    }
    assert!(!out.exists(), "nothing written");

    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/svf_minilm_query/oracle_f32.json");
    let (code, stderr) = parity(&["check", report.to_str().unwrap(), golden.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("parameter 'tranpose'") && stderr.contains(report.to_str().unwrap()), "{stderr}");
}

#[test]
fn replay_refuses_a_missing_and_an_ill_typed_parameter() {
    for (case, edit, needle) in [
        ("scale_weight", json!({}), "parameter 'factor': required but missing"),
        ("cast_edge_values", json!({"to": 16}), "parameter 'to': must be one of"),
        ("split_point", json!({"axis": 1, "index": "3"}), "parameter 'index': must be a whole number"),
    ] {
        let (dir, report) = golden_copy(case, |v| v["tensors"][0]["params"] = edit.clone());
        let out = dir.path().join("rust.json");
        let (code, stderr) = parity(&["replay", report.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(code, 2, "{case}: {stderr}");
        assert!(stderr.contains(needle) && stderr.lines().count() == 1, "{case}: {stderr}");
    }
}
