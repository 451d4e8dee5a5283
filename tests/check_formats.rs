//! Every output format of `parity check` carries the verdicts and numbers,
//! and parses back as what it claims to be.

mod check_support;

use check_support::*;
use parity::check::CheckOutcome;
use parity::check::{check, CheckOptions, Modes};
use parity::render::{render, Format};
use quick_xml::events::Event;
use serde_json::Value;

/// A failing check: matmul_pre_norm off by 2e-3 at (1, 6), a NaN on the
/// right of u_scaled at (0, 0).
fn failing() -> (Pair, CheckOutcome) {
    let p = pair(|s| {
        edit_f32(s, "matmul_pre_norm", |i, x| if i == 30 { x + 2e-3 } else { x });
        edit_f32(s, "u_scaled", |i, x| if i == 0 { f32::NAN } else { x });
    });
    let o = check(
        &p.left,
        &p.right,
        &CheckOptions {
            modes: Modes { strict_stage_tolerances: true, strict_hash: true, ..Modes::default() },
            top_diffs: 2,
            ..CheckOptions::default()
        },
    )
    .unwrap();
    (p, o)
}

fn passing() -> (Pair, CheckOutcome) {
    let p = pair(|_| {});
    let o = check(
        &p.left,
        &p.right,
        &CheckOptions { modes: Modes { strict_stage_tolerances: true, ..Modes::default() }, ..CheckOptions::default() },
    )
    .unwrap();
    (p, o)
}

#[test]
fn formats_are_named_as_on_the_command_line() {
    // The flag is parsed by clap's ValueEnum on the library's own enum.
    use clap::ValueEnum;
    for f in Format::ALL {
        assert_eq!(Format::from_str(f.name(), false).unwrap(), f);
    }
    assert_eq!(Format::value_variants().len(), Format::ALL.len());
    assert!(Format::from_str("yaml", false).is_err());
}

#[test]
fn text_reads_like_torch_testing() {
    let (_p, o) = failing();
    let text = render(&o, Format::Text);
    println!("{text}");
    assert!(text.contains(&format!("{NAME}  svf_apply  FAIL  first failing stage: u_scaled")), "{text}");
    assert!(text.contains("Mismatched elements: 1 / 384 (0.26%): |diff| > 1e-3"), "{text}");
    assert!(text.contains("Greatest absolute difference: 2e-3 at index (1, 6) (up to 1e-3 allowed)"), "{text}");
    assert!(text.contains("Greatest relative difference: "), "{text}");
    assert!(text.contains("Mean absolute difference: "), "{text}");
    assert!(text.contains("FAIL: max_abs 2e-3 > 1e-3"), "{text}");
    assert!(text.contains("--strict-stage-tolerances  FAIL"), "{text}");
    assert!(text.contains("Result: FAIL (exit 1)"), "{text}");
}

#[test]
fn text_counts_each_sides_non_finite_values() {
    let (_p, o) = failing();
    let text = render(&o, Format::Text);
    assert!(
        text.contains("Non-finite values: left none; right 1 NaN; 1 mismatched position, first at (0, 0)"),
        "{text}"
    );
}

#[test]
fn text_of_a_passing_check_is_one_table_and_the_modes() {
    let (_p, o) = passing();
    let text = render(&o, Format::Text);
    println!("{text}");
    assert!(text.contains(&format!("{NAME}  svf_apply  PASS\n")), "{text}");
    assert!(!text.contains("Mismatched elements"), "{text}");
    assert!(text.contains("final hash: equal ("), "{text}");
    assert!(text.contains("Result: PASS (exit 0)"), "{text}");
}

#[test]
fn text_shows_a_unified_diff_of_the_producers() {
    let (_p, o) = passing();
    let text = render(&o, Format::Text);
    assert!(text.contains("-    \"implementation\": \"numpy-f32\","), "{text}");
    assert!(text.contains("+    \"implementation\": \"parity-fast\","), "{text}");
}

#[test]
fn text_shows_a_unified_diff_of_the_stages_present_when_they_differ() {
    let p = pair(|s| s.0.retain(|(n, _)| n != "final_bf16"));
    let o = check(&p.left, &p.right, &CheckOptions::default()).unwrap();
    let diff = o.presence_diff.as_deref().unwrap();
    assert!(diff.contains("-    final_bf16"), "{diff}");
    assert!(render(&o, Format::Text).contains("tensors and stages present differ"));
}

#[test]
fn json_is_parity_check_v1_with_every_number() {
    let (_p, o) = failing();
    let v: Value = serde_json::from_str(&render(&o, Format::Json)).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "schema",
            "passed",
            "exit_code",
            "modes",
            "left",
            "right",
            "tolerances",
            "differences",
            "top_diffs",
            "first_divergence",
            "onset",
            "onset_factor",
            "fail_on_onset",
            "tensors"
        ]
    );
    assert_eq!(v["schema"], "parity.check.v1");
    assert_eq!((v["passed"].clone(), v["exit_code"].clone()), (Value::from(false), Value::from(1)));
    assert_eq!(v["modes"]["strict_stage_tolerances"]["holds"], false);
    assert_eq!(v["modes"]["strict_hash"]["holds"], true);
    let t = &v["tensors"][0];
    assert_eq!((t["verdict"].as_str(), t["first_failing_stage"].as_str()), (Some("fail"), Some("u_scaled")));
    let stages = t["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 10);
    let mm = stages.iter().find(|s| s["stage"] == "matmul_pre_norm").unwrap();
    assert_eq!(mm["verdict"], "fail");
    assert_eq!(mm["tolerance"]["max_abs"], 1e-3);
    let m = &mm["metrics"];
    for key in ["max_abs", "mean_abs", "rms", "max_rel", "cosine", "nmse", "sqnr_db", "max_ulp", "not_bit_equal", "bytes_equal"] {
        assert!(!m[key].is_null(), "{key} missing");
    }
    assert_eq!(m["max_abs_index"], serde_json::json!([1, 6]));
    assert_eq!(m["not_bit_equal"], 1);
    assert!(mm["failures"][0].as_str().unwrap().starts_with("max_abs 2"));
    // Non-finite floats are strings.
    let us = stages.iter().find(|s| s["stage"] == "u_scaled").unwrap();
    assert_eq!(us["metrics"]["non_finite"]["right"]["nan"], 1);
    assert_eq!(us["metrics"]["top_diffs"][0]["right"], "NaN");
    assert_eq!(us["metrics"]["top_diffs"][0]["index"], serde_json::json!([0, 0]));
}

fn junit_counts(xml: &str) -> (usize, usize, usize, Vec<String>) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut suites, mut cases, mut failures, mut names) = (0, 0, 0, Vec::new());
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                "testsuite" => {
                    suites += 1;
                    let name = e.try_get_attribute("name").unwrap().unwrap();
                    names.push(name.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned());
                }
                "testcase" => cases += 1,
                "failure" => failures += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    (suites, cases, failures, names)
}

#[test]
fn junit_has_a_testsuite_per_tensor_and_a_testcase_per_stage() {
    let (_p, o) = failing();
    let xml = render(&o, Format::Junit);
    let (suites, cases, failures, names) = junit_counts(&xml);
    // The tensor's suite: 10 stages + the strict-hash case; then the modes
    // suite; then where the run went wrong (properties only, no case).
    assert_eq!(names, vec![NAME.to_string(), "parity modes".to_string(), "where the run went wrong".to_string()]);
    assert_eq!(suites, 3);
    assert!(xml.contains("<property name=\"first_divergence\" value=\"model.layers.0.mlp.down_proj.weight · u_scaled: "), "{xml}");
    assert_eq!(cases, 10 + 1 + 2);
    // u_scaled, matmul_pre_norm, and --strict-stage-tolerances.
    assert_eq!(failures, 3);
    assert!(xml.contains(r#"<testsuites name="parity check" tests="13" failures="3""#), "{xml}");
    assert!(xml.contains("message=\"max_abs 2e-3 &gt; 1e-3\""), "{xml}");
}

#[test]
fn junit_escapes_names_from_user_files() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "w<eight>&\"q'\u{1}";
    let (stages, params) = svf_stages(3, [4, 4, 2]);
    let runs = [run(hostile, stages, params)];
    let left = write_side(dir.path(), "python.json", "numpy-f32", None, &runs);
    let right = write_side(dir.path(), "rust.json", "parity-fast", None, &runs);
    let o = check(&left, &right, &CheckOptions::default()).unwrap();
    let (_, cases, failures, names) = junit_counts(&render(&o, Format::Junit));
    assert_eq!(names, vec!["w<eight>&\"q'".to_string()]);
    assert_eq!((cases, failures), (10, 0));
}

#[test]
fn markdown_has_a_table_per_tensor() {
    let (_p, o) = failing();
    let md = render(&o, Format::Markdown);
    println!("{md}");
    assert!(md.starts_with("## parity check: FAIL"), "{md}");
    assert!(md.contains(&format!("### ❌ `{NAME}` · `svf_apply` · FAIL, first failing stage `u_scaled`")), "{md}");
    assert!(md.contains("| stage | dtype | shape | max_abs | mean_abs | rms | max_rel | cosine | nmse | sqnr_db | ulp | ≠bits | bytes | tolerance (max/mean) | verdict |"), "{md}");
    assert!(md.contains("|---|---|"), "{md}");
    let rows = md.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(rows, 3 + 10, "{md}"); // three mode rows, ten stage rows
    assert!(md.contains("**FAIL**: max_abs 2e-3 &gt; 1e-3"), "{md}");
    assert!(md.contains("```diff"), "{md}");
}

#[test]
fn a_stage_failing_on_mean_abs_says_so_before_the_element_counts() {
    // Every element of final_f32 moved by 5e-5: under max_abs (1e-3), over mean_abs (1e-5).
    let p = pair(|s| {
        for name in ["adapted_source_f32", "final_f32"] {
            let t = s.0.iter_mut().find(|(n, _)| n == name).unwrap();
            let v: Vec<f32> = t.1.to_f32_vec().iter().map(|x| x + 5e-5).collect();
            t.1 = parity::format::tensor::Tensor::from_f32(t.1.shape.clone(), &v);
        }
    });
    let o = check(&p.left, &p.right, &CheckOptions { modes: Modes { strict_stage_tolerances: true, ..Modes::default() }, ..CheckOptions::default() }).unwrap();
    let text = render(&o, Format::Text);
    let failed = text.find("Failed: mean_abs").unwrap_or_else(|| panic!("{text}"));
    let counts = text[failed..].find("Mismatched elements: 0 /").map(|i| i + failed);
    assert!(counts.is_some_and(|c| c > failed), "the failed limit comes first: {text}");
}

/// SQNR (dB, LEFT the signal) of `matmul_pre_norm` in [`failing`], and the
/// stage's metrics: one element moved by 2e-3, so Σd² is that one square.
fn failing_sqnr(o: &CheckOutcome) -> f64 {
    let m = o.tensors[0].stages.iter().find(|s| s.stage == "matmul_pre_norm").unwrap().metrics.clone().unwrap();
    assert!(m.sqnr_db.is_finite() && m.sqnr_db > 0.0, "{}", m.sqnr_db);
    m.sqnr_db
}

#[test]
fn sqnr_in_db_appears_in_every_format() {
    let (_p, o) = failing();
    let db = parity::compare::numbers::db(failing_sqnr(&o));
    let text = render(&o, Format::Text);
    assert!(text.contains("sqnr_db"), "{text}");
    assert!(text.contains(&format!(", SQNR: {db} dB")), "{text}");
    let md = render(&o, Format::Markdown);
    assert!(md.lines().any(|l| l.starts_with("| `matmul_pre_norm`") && l.contains(&format!(" | {db} | "))), "{md}");
    let xml = render(&o, Format::Junit);
    assert!(xml.contains(&format!(r#"<property name="sqnr_db" value="{db}"/>"#)), "{xml}");
    let v: Value = serde_json::from_str(&render(&o, Format::Json)).unwrap();
    let stages = v["tensors"][0]["stages"].as_array().unwrap();
    let sqnr = |name: &str| stages.iter().find(|s| s["stage"] == name).unwrap()["metrics"]["sqnr_db"].clone();
    assert_eq!(sqnr("matmul_pre_norm").as_f64(), Some(failing_sqnr(&o)));
    // Identical stages: +inf, written as JSON writes every non-finite number.
    assert_eq!(sqnr("source_f32"), "inf");
}
