//! Integer tensors are compared as integers (issue 22, item 4), through the
//! binary: `diff` says differs, `check` fails under an exact limit, `inspect`
//! prints i64 extremes exactly and apply's `assert equal` with `max_abs: 0`
//! fails, for I64 values one apart beyond 2⁵³ (the same f64).

mod checkpoint_support;

use checkpoint_support::{write_file, Model};
use parity::format::tensor::Tensor;
use std::path::Path;
use std::process::Command;

const TWO_53: i64 = 1 << 53;
const TWO_62: i64 = 1 << 62;

fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_i64(vec![v.len()], v)
}

fn parity(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn model(tensors: &[(&str, Tensor)]) -> Model {
    tensors.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn diff_says_differs_for_i64_one_apart_at_2_62() {
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = (dir.path().join("l.safetensors"), dir.path().join("r.safetensors"));
    // One apart, the same f64: differs under the default exact limit.
    write_file(&l, &model(&[("ids", i64s(&[TWO_62]))]));
    write_file(&r, &model(&[("ids", i64s(&[TWO_62 + 1]))]));
    let (code, out) = parity(&["diff", s(&l), s(&r)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("differs") && out.contains("max_abs 1 > 0"), "{out}");
    write_file(&l, &model(&[("ids", i64s(&[TWO_62, TWO_53 + 1, i64::MIN])), ("same", i64s(&[i64::MAX]))]));
    write_file(&r, &model(&[("ids", i64s(&[TWO_62 + 1, TWO_53, i64::MAX])), ("same", i64s(&[i64::MAX]))]));
    let (code, out) = parity(&["diff", s(&l), s(&r), "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let ids = j["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "ids").unwrap();
    assert_eq!(ids["status"], "differs", "{ids}");
    assert_eq!(ids["metrics"]["max_abs"].as_u64(), Some(u64::MAX));
    let same = j["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "same").unwrap();
    assert_eq!(same["status"], "identical");
    // The text table prints the integer in full.
    let (code, out) = parity(&["diff", s(&l), s(&r)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("18446744073709551615"), "{out}");
}

#[test]
fn check_fails_an_i64_stage_one_apart_at_2_62_under_an_exact_limit() {
    use parity::format::report::write::{write_run, TensorRun};
    use parity::format::report::Producer;
    use parity::format::stages::Stages;
    let dir = tempfile::tempdir().unwrap();
    let side = |file: &str, ids: &[i64]| {
        let run = TensorRun {
            name: "model.tokens".into(),
            key: "model_tokens".into(),
            operation: "my_tokenizer".into(),
            params: Default::default(),
            stages: Stages(vec![("ids".into(), i64s(ids))]),
            final_stage: "ids".into(),
            historical_final_sha256: None,
        };
        let producer = Producer { name: "tests".into(), implementation: file.into(), versions: Default::default() };
        let path = dir.path().join(file);
        write_run(&path, producer, None, None, &[run]).unwrap();
        path
    };
    let l = side("left.json", &[1, TWO_62, -TWO_53 - 1]);
    let r = side("right.json", &[1, TWO_62 + 1, -TWO_53 - 1]);
    let tol = dir.path().join("tol.json");
    std::fs::write(
        &tol,
        r#"{"schema": "parity.tolerances.v1", "operations": {"my_tokenizer": {"*": {"required": true, "max_abs": 0, "mean_abs": 0}}}}"#,
    )
    .unwrap();
    let (code, out) = parity(&["check", s(&l), s(&r), "--tolerances", s(&tol), "--strict-stage-tolerances", "--top-diffs", "2"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("max_abs 1 > 0"), "{out}");
    // The top differences in full: as f64 both values print 4.6116860e18.
    assert!(out.contains("(1,): 4611686018427387904, 4611686018427387905, 1"), "{out}");
    // The same report against itself passes.
    let (code, out) = parity(&["check", s(&l), s(&l), "--tolerances", s(&tol), "--strict-stage-tolerances"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn inspect_prints_i64_extremes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    write_file(&p, &model(&[("ids", i64s(&[i64::MIN, TWO_62 + 1, i64::MAX - 1])), ("near", i64s(&[TWO_53 + 1, TWO_53 + 3]))]));
    let (code, out) = parity(&["inspect", s(&p), "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let t = |name: &str| j["tensors"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["stats"].clone();
    let ids = t("ids");
    assert_eq!(ids["min"].as_i64(), Some(i64::MIN), "{ids}");
    assert_eq!(ids["max"].as_i64(), Some(i64::MAX - 1), "{ids}");
    // |i64::MIN| = 2⁶³ is beyond i64: a u64.
    assert_eq!(ids["abs_max"].as_u64(), Some(1 << 63), "{ids}");
    let near = t("near");
    assert_eq!((near["min"].as_i64(), near["max"].as_i64()), (Some(TWO_53 + 1), Some(TWO_53 + 3)), "{near}");
    let (code, out) = parity(&["inspect", s(&p)]);
    assert_eq!(code, 0, "{out}");
    for want in ["-9223372036854775808", "9223372036854775806", "9223372036854775808", "9007199254740993", "9007199254740995"] {
        assert!(out.contains(want), "{want}: {out}");
    }
}

#[test]
fn apply_assert_equal_with_max_abs_0_fails_i64_one_apart_at_2_62() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("base.safetensors"), &model(&[("ids", i64s(&[5, TWO_62 + 1]))]));
    write_file(&dir.path().join("other.safetensors"), &model(&[("ids", i64s(&[5, TWO_62])), ("twin", i64s(&[5, TWO_62 + 1]))]));
    let plan = |to: &str| {
        format!(
            "schema: parity.plan.v1\ninputs: {{base: base.safetensors, other: other.safetensors}}\noutput: {{path: out/}}\nsteps:\n  - id: same\n    assert: {{match: ids, equal: {{to: 'other:{to}', max_abs: 0}}}}\n"
        )
    };
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, plan("ids")).unwrap();
    let (code, out) = parity(&["apply", s(&path), "--out", s(&dir.path().join("out"))]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL: step 'same'") && out.contains("max |diff| 1 against 'other:ids' > 0"), "{out}");
    std::fs::write(&path, plan("twin")).unwrap();
    let (code, out) = parity(&["apply", s(&path), "--out", s(&dir.path().join("out2"))]);
    assert_eq!(code, 0, "{out}");
}
