//! `schemas/parity.plan.v1.schema.json` describes what the plan parser
//! (src/plan/mod.rs) accepts: every plan the project ships validates against
//! it and parses; plans that break the format are refused by both, an
//! unknown key at any level first among them; and the schema's list of
//! operations is the catalog's.

use parity::format::strict_json;
use parity::plan::{LoadedPlan, STRUCTURAL};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string("schemas/parity.plan.v1.schema.json").expect("the plan schema is shipped");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn schema_errors(v: &jsonschema::Validator, plan: &Value) -> Vec<String> {
    v.iter_errors(plan).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// The parser's verdict on a plan given as a JSON value (as if read from
/// `plan.json` in the current directory: inputs are not opened).
fn parses(plan: &Value) -> parity::Result<LoadedPlan> {
    LoadedPlan::parse(Path::new("plan.json"), plan.to_string().as_bytes(), false)
}

/// Every plan the project ships as text: the golden case's file, every
/// complete plan (a code block holding `schema: parity.plan.v1` or
/// `"schema": "parity.plan.v1"`) in README.md and docs/plan.md, and every
/// excerpt of steps there (a ```yaml block starting with `- id:`), wrapped
/// into a plan whose inputs are the ones its steps name.
fn shipped_plans() -> Vec<(String, Value)> {
    let mut plans = Vec::new();
    let golden = PathBuf::from("golden/plan_two_shards/plan.yaml");
    plans.push((golden.display().to_string(), strict_json::parse_yaml(&std::fs::read(&golden).unwrap()).unwrap()));
    for doc in ["README.md", "docs/plan.md"] {
        let text = std::fs::read_to_string(doc).unwrap();
        let mut block: Option<(String, usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            match &mut block {
                None => {
                    if let Some(lang) = line.trim_start().strip_prefix("```") {
                        block = Some((lang.trim().to_string(), n + 1, String::new()));
                    }
                }
                Some((lang, start, body)) => {
                    if line.trim_start().starts_with("```") {
                        let is_plan = body.contains("schema: parity.plan.v1") || body.contains("\"schema\": \"parity.plan.v1\"");
                        if is_plan {
                            let value = match lang.as_str() {
                                "yaml" => strict_json::parse_yaml(body.as_bytes()).unwrap_or_else(|e| panic!("{doc}:{start}: not YAML: {e}")),
                                "json" => serde_json::from_str(body).unwrap_or_else(|e| panic!("{doc}:{start}: not JSON: {e}")),
                                other => panic!("{doc}:{start}: a plan in a ```{other} block"),
                            };
                            plans.push((format!("{doc}:{start}"), value));
                        } else if lang == "yaml" && body.trim_start().starts_with("- id:") {
                            let steps = strict_json::parse_yaml(body.as_bytes()).unwrap_or_else(|e| panic!("{doc}:{start}: not YAML: {e}"));
                            plans.push((format!("{doc}:{start} (steps)"), wrapped(steps)));
                        }
                        block = None;
                    } else {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
            }
        }
    }
    plans
}

/// A plan around an excerpt of steps: `base` and every input its references
/// name (`INPUT:` in inputs and `equal.to`, merge_missing's `extra`).
fn wrapped(steps: Value) -> Value {
    let mut inputs = serde_json::Map::new();
    inputs.insert("base".into(), json!("base/"));
    let text = steps.to_string();
    for m in regex::Regex::new(r#""([A-Za-z_][A-Za-z0-9_]*):[^"]*""#).unwrap().captures_iter(&text) {
        inputs.insert(m[1].to_string(), json!(format!("{}.safetensors", &m[1])));
    }
    for step in steps.as_array().expect("a list of steps") {
        if let Some(extra) = step.pointer("/inputs/extra").and_then(Value::as_str) {
            inputs.insert(extra.trim_end_matches(':').to_string(), json!("extra.safetensors"));
        }
    }
    json!({"schema": "parity.plan.v1", "inputs": inputs, "steps": steps})
}

#[test]
fn every_shipped_plan_validates_against_the_schema_and_parses() {
    let v = validator();
    let plans = shipped_plans();
    assert!(plans.len() >= 5, "the golden plan and the docs' plans and excerpts were found: {:?}", plans.iter().map(|p| &p.0).collect::<Vec<_>>());
    for (where_, plan) in plans {
        let errors = schema_errors(&v, &plan);
        assert!(errors.is_empty(), "{where_}: {errors:?}");
        if let Err(e) = parses(&plan) {
            panic!("{where_}: the schema accepts it but the parser does not: {e}");
        }
    }
}

/// A small valid plan that every breakage below starts from.
fn good() -> Value {
    json!({
        "schema": "parity.plan.v1",
        "inputs": {"base": "base/", "extra": "extra.safetensors"},
        "output": {"path": "out/", "layout": "single", "shard_size": "4GiB", "copy_files": false},
        "steps": [
            {"id": "halve", "operation": "scale", "target": {"match": "*.bias", "layers": "0..2"},
             "inputs": {"x": "base:{name}"}, "params": {"factor": 0.5}, "expect": {"dtype": "F32"}},
            {"id": "tie", "operation": "copy", "target": {"match": "a.weight"}, "output": "b.weight"},
            {"id": "take", "operation": "merge_missing", "inputs": {"extra": "extra"}},
            {"id": "tied", "assert": {"match": "b.weight", "count": 1, "equal": {"to": "base:a.weight", "max_abs": 0}}}
        ]
    })
}

#[test]
fn the_small_plan_is_valid_for_both() {
    let v = validator();
    assert!(schema_errors(&v, &good()).is_empty(), "{:?}", schema_errors(&v, &good()));
    parses(&good()).unwrap();
}

#[test]
fn an_unknown_key_is_refused_at_every_level() {
    let v = validator();
    let places: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        ("top", Box::new(|p| p["steps_"] = json!([]))),
        ("output", Box::new(|p| p["output"]["sharding"] = json!("4GiB"))),
        ("step", Box::new(|p| p["steps"][0]["param"] = json!({"factor": 2}))),
        ("target", Box::new(|p| p["steps"][0]["target"]["layer"] = json!("0..1"))),
        ("expect", Box::new(|p| p["steps"][0]["expect"]["dtypes"] = json!("F32"))),
        ("assert", Box::new(|p| p["steps"][3]["assert"]["exist"] = json!(true))),
        ("equal", Box::new(|p| p["steps"][3]["assert"]["equal"]["atol"] = json!(0))),
    ];
    for (where_, change) in places {
        let mut plan = good();
        change(&mut plan);
        assert!(!v.is_valid(&plan), "{where_}: the schema accepted an unknown key");
        assert!(parses(&plan).is_err(), "{where_}: the parser accepted an unknown key");
    }
}

#[test]
fn what_the_parser_refuses_without_a_model_the_schema_refuses_too() {
    let v = validator();
    let breakages: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        ("another schema", Box::new(|p| p["schema"] = json!("parity.plan.v2"))),
        ("no base input", Box::new(|p| p["inputs"] = json!({"extra": "extra.safetensors"}))),
        ("no steps", Box::new(|p| p.as_object_mut().unwrap().remove("steps").map(drop).unwrap_or(()))),
        ("an unknown layout", Box::new(|p| p["output"]["layout"] = json!("sharded_by_layer"))),
        ("copy_files not a boolean", Box::new(|p| p["output"]["copy_files"] = json!("yes"))),
        ("an unknown operation", Box::new(|p| p["steps"][0]["operation"] = json!("scale_by"))),
        ("both operation and assert", Box::new(|p| p["steps"][0]["assert"] = json!({"match": "*"}))),
        ("neither operation nor assert", Box::new(|p| p["steps"][0].as_object_mut().unwrap().remove("operation").map(drop).unwrap_or(()))),
        ("an operation without a target", Box::new(|p| p["steps"][0].as_object_mut().unwrap().remove("target").map(drop).unwrap_or(()))),
        ("copy without an output", Box::new(|p| p["steps"][1].as_object_mut().unwrap().remove("output").map(drop).unwrap_or(()))),
        ("merge_missing with another input", Box::new(|p| p["steps"][2]["inputs"]["x"] = json!("base:{name}"))),
        ("merge_missing without inputs", Box::new(|p| p["steps"][2].as_object_mut().unwrap().remove("inputs").map(drop).unwrap_or(()))),
        ("an input reference without INPUT:", Box::new(|p| p["steps"][0]["inputs"]["x"] = json!("{name}"))),
        ("equal.to without INPUT:", Box::new(|p| p["steps"][3]["assert"]["equal"]["to"] = json!("a.weight"))),
        ("a target without match", Box::new(|p| p["steps"][0]["target"] = json!({"layers": "0..2"}))),
        ("a negative count", Box::new(|p| p["steps"][3]["assert"]["count"] = json!(-1))),
        ("a shape with a negative axis", Box::new(|p| p["steps"][0]["expect"]["shape"] = json!([16, -1]))),
        ("a step without an id", Box::new(|p| p["steps"][0].as_object_mut().unwrap().remove("id").map(drop).unwrap_or(()))),
        ("params not an object", Box::new(|p| p["steps"][0]["params"] = json!([0.5]))),
    ];
    for (what, change) in breakages {
        let mut plan = good();
        change(&mut plan);
        assert!(!v.is_valid(&plan), "{what}: the schema accepted it");
        assert!(parses(&plan).is_err(), "{what}: the parser accepted it (the schema should describe the parser)");
    }
}

#[test]
fn what_the_parser_accepts_the_schema_accepts_nulls_and_defaults_included() {
    // serde reads null for every optional key as "not given".
    let v = validator();
    let variants: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        ("no output section", Box::new(|p| p.as_object_mut().unwrap().remove("output").map(drop).unwrap_or(()))),
        ("a byte count as shard_size", Box::new(|p| p["output"]["shard_size"] = json!(16384))),
        ("description null", Box::new(|p| p["description"] = json!(null))),
        ("an assert with operation null", Box::new(|p| p["steps"][3]["operation"] = json!(null))),
        ("write and expect on an operation", Box::new(|p| {
            p["steps"][0]["write"] = json!("output");
            p["steps"][0]["expect"] = json!({"shape": [16], "dtype": "f32", "sha256": null});
        })),
        ("merge_missing naming its input with a colon", Box::new(|p| p["steps"][2]["inputs"]["extra"] = json!("extra:"))),
        ("every assert condition", Box::new(|p| {
            p["steps"][3]["assert"] = json!({"match": "re:^b\\.", "layers": null, "exists": true, "count": 1, "shape": [2],
                                            "dtype": "BF16", "finite": true, "iszero": false, "equal": {"to": "extra:{name}"}});
        })),
    ];
    for (what, change) in variants {
        let mut plan = good();
        change(&mut plan);
        assert!(parses(&plan).is_ok(), "{what}: {:?}", parses(&plan).err());
        assert!(schema_errors(&v, &plan).is_empty(), "{what}: {:?}", schema_errors(&v, &plan));
    }
}

#[test]
fn the_schema_lists_exactly_the_operations_a_plan_can_run() {
    let text = std::fs::read_to_string("schemas/parity.plan.v1.schema.json").unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let mut listed: Vec<String> =
        schema["$defs"]["operation"]["enum"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect();
    let mut known: Vec<String> = parity::ops::REGISTRY.iter().map(|o| o.name.to_string()).chain(STRUCTURAL.iter().map(|s| s.to_string())).collect();
    listed.sort();
    known.sort();
    assert_eq!(listed, known, "schemas/parity.plan.v1.schema.json's operation list and the catalog (+ structural) differ");
}
