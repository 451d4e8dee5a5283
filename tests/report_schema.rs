//! The shipped JSON Schema is the contract: every report parity writes, and
//! every golden report the oracle wrote, validates against it — and reports
//! that break the contract do not.

use parity::ops::Implementation;
use parity::replay::{replay, ReplayOptions};
use parity::format::report::{Report, SCHEMA_JSON};
use std::path::Path;

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn golden_reports() -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for case in std::fs::read_dir("golden").unwrap() {
        let case = case.unwrap().path();
        for f in ["oracle_f32.json", "oracle_f64.json"] {
            if case.join(f).is_file() {
                v.push(case.join(f));
            }
        }
    }
    assert!(!v.is_empty(), "golden reports present");
    v
}

#[test]
fn every_golden_report_validates_against_the_schema() {
    let v = validator();
    for path in golden_reports() {
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        Report::from_json(&path, &std::fs::read(&path).unwrap()).unwrap();
    }
}

#[test]
fn reports_written_by_replay_validate_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let v = validator();
    for (i, implementation) in [Implementation::Fast, Implementation::Reference, Implementation::ReferenceWide].into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}.json"));
        let opts = ReplayOptions { implementation, select: vec![], allow_outside_paths: false, progress: false };
        replay(Path::new("golden/svf_small/oracle_f32.json"), &out, &opts).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}

#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let v = validator();
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read("golden/svf_small/oracle_f32.json").unwrap()).unwrap();
    assert!(v.is_valid(&good));
    let breakages: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>)> = vec![
        ("wrong schema name", Box::new(|r| r["schema"] = "parity.report.v2".into())),
        ("no tensors", Box::new(|r| drop(r.as_object_mut().unwrap().remove("tensors")))),
        ("bad key", Box::new(|r| r["tensors"][0]["key"] = "a.b".into())),
        ("short sha", Box::new(|r| r["tensors"][0]["final_sha256"] = "abc".into())),
        ("unknown dtype", Box::new(|r| r["tensors"][0]["stages"]["source_f32"]["dtype"] = "F31".into())),
        ("negative dim", Box::new(|r| r["tensors"][0]["stages"]["source_f32"]["shape"][0] = (-1).into())),
    ];
    for (what, brk) in breakages {
        let mut bad = good.clone();
        brk(&mut bad);
        assert!(!v.is_valid(&bad), "schema must reject: {what}");
    }
}

#[test]
fn readers_ignore_unknown_fields() {
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read("golden/svf_small/oracle_f32.json").unwrap()).unwrap();
    r["future_field"] = serde_json::json!({"anything": 1});
    r["tensors"][0]["another"] = serde_json::json!([1, 2]);
    let text = serde_json::to_vec(&r).unwrap();
    Report::from_json(Path::new("x.json"), &text).expect("unknown fields are ignored");
}
