//! The shipped JSON Schema is the contract: every report parity writes, and
//! every golden report the oracle wrote, validates against it — and reports
//! that break the contract do not.

mod proptest_support;
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

/// A report's parameter text, with `value` spelled as `text`, read back as f64.
fn param_read_back(text: &str) -> f64 {
    let golden = std::fs::read_to_string("golden/svf_small/oracle_f32.json").unwrap();
    let mut r: serde_json::Value = serde_json::from_str(&golden).unwrap();
    r["tensors"][0]["params"] = serde_json::json!({"value": "SLOT"});
    let json = serde_json::to_string(&r).unwrap().replace("\"SLOT\"", text);
    let report = Report::from_json(Path::new("x.json"), json.as_bytes()).unwrap();
    report.tensors[0].params["value"].as_f64().unwrap()
}

/// Found by the report fuzz target: serde_json's default float parser is
/// not correctly rounded, so `1.0039042509313226` (as Python's repr writes
/// it) read as a neighbouring f64, and a replay would run with a parameter
/// one ULP off the oracle's. The expected value is Rust's own literal
/// (std's parser rounds correctly).
#[test]
fn parameters_read_as_the_nearest_f64_of_their_decimal_text() {
    assert_eq!(param_read_back("1.0039042509313226").to_bits(), 1.0039042509313226f64.to_bits());
}

proptest::proptest! {
    #![proptest_config(proptest_support::cases(256))]
    /// Any finite f64, written shortest-round-trip (as Python's repr and
    /// Rust's `{:?}` do), reads back to the same bits.
    #[test]
    fn every_shortest_decimal_reads_back_to_its_f64(bits in proptest::num::u64::ANY) {
        let x = f64::from_bits(bits);
        proptest::prop_assume!(x.is_finite());
        proptest::prop_assert_eq!(param_read_back(&format!("{x:?}")).to_bits(), x.to_bits(), "{:?}", x);
    }
}
