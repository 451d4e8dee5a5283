//! Reports, profiles, plans, indexes and diff results are read strictly: an
//! object holding one key twice is refused, naming the key by its path;
//! anything else parses to exactly what serde_json gives.

mod proptest_support;
use parity::format::strict_json::parse;
use proptest::prelude::*;
use serde_json::Value;

#[test]
fn a_repeated_key_is_named_by_its_path_at_any_depth() {
    let cases = [
        (r#"{"schema": "a", "schema": "b"}"#, "key 'schema' appears twice"),
        (r#"{"tensors": [{"name": "x"}, {"name": "y", "name": "z"}]}"#, "key 'tensors[1].name' appears twice"),
        (r#"{"a": {"b": {"c": 1, "d": 2, "c": 1}}}"#, "key 'a.b.c' appears twice"),
    ];
    for (text, needle) in cases {
        let e = parse(text.as_bytes()).expect_err(text).to_string();
        assert!(e.contains(needle), "{text}: {e}");
        assert!(e.contains("line 1"), "the position is given: {e}");
    }
    // The same key in two objects is no repetition.
    assert!(parse(br#"{"a": {"k": 1}, "b": {"k": 1}, "c": [{"k": 1}, {"k": 2}]}"#).is_ok());
}

#[test]
fn every_reader_refuses_a_repeated_key() {
    use parity::compare::Profile;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tol.json");
    std::fs::write(&p, br#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_bf16": {"max_abs": 1e-3, "max_abs": 10}}}}"#).unwrap();
    let e = parity::ops::builtin_profile().merge_file(&p).map(|_: Profile| ()).expect_err("a repeated limit").to_string();
    assert!(e.contains("tol.json") && e.contains("operations.svf_apply.final_bf16.max_abs' appears twice"), "{e}");
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Value::from),
        "[a-z\u{e9}\"\\\\\n]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]{1,2}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(proptest_support::cases(500))]

    #[test]
    fn without_repeated_keys_strict_parsing_is_serde_json_s(v in json(), pretty: bool) {
        let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
        let strict = parse(text.as_bytes()).unwrap();
        let plain: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&strict, &plain);
        // Same keys in the same order (the reports' order is meaningful).
        prop_assert_eq!(serde_json::to_string(&strict).unwrap(), serde_json::to_string(&plain).unwrap());
    }
}
