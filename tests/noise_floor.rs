//! `parity check --noise-floor` (SPEC §12): RIGHT's RMS error against the
//! f64 reference replayed on LEFT's inputs must be at most m · LEFT's + ε.
//! A port worse than its baseline fails, one better passes; the errors are
//! recomputed here by hand from the reference's bundle; m and ε come from
//! the profile; bad setups are one-line errors.

mod check_support;
use check_support::{edit_f32, run, svf_stages, NAME};
use parity::format::bundle::{self, Bundle};
use parity::ops::svf_apply::SVF_APPLY;
use parity::ops::{Implementation, Stages};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_parity");
const DIMS: [usize; 3] = [24, 32, 8];
const SEED: u64 = 11;

/// LEFT and RIGHT reports of one SVF tensor, both naming the components
/// the stages were computed from; `spoil_left` / `spoil_right` edit stages.
fn case(dir: &Path, spoil_left: impl FnOnce(&mut Stages), spoil_right: impl FnOnce(&mut Stages)) -> (PathBuf, PathBuf) {
    let sample = (SVF_APPLY.sample)(SEED, &DIMS);
    let key = bundle::safe_key(NAME);
    let comps: Vec<(String, &parity::format::tensor::Tensor)> =
        sample.inputs.iter().map(|(input, t)| (bundle::tensor_key(&key, input), t)).collect();
    bundle::write(&dir.join("components.safetensors"), &comps).unwrap();
    let (stages, params) = svf_stages(SEED, DIMS);
    let (mut l, mut r) = (stages.clone(), stages);
    spoil_left(&mut l);
    spoil_right(&mut r);
    let write = |file: &str, implementation: &str, s: Stages| {
        let path = dir.join(file);
        parity::format::report::write::write_run(
            &path,
            check_support::producer(implementation),
            Some("components.safetensors".into()),
            None,
            &[run(NAME, s, params.clone())],
        )
        .unwrap();
        path
    };
    (write("left.json", "numpy-f32", l), write("right.json", "port", r))
}

/// Add a deterministic error of relative size `rel` to an F32 stage.
fn noisy(stage: &'static str, rel: f32) -> impl FnOnce(&mut Stages) {
    move |s: &mut Stages| edit_f32(s, stage, |i, x| x * (1.0 + rel * (((i * 7919) % 13) as f32 - 6.0) / 6.0))
}

fn check(left: &Path, right: &Path, more: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(BIN).arg("check").args([left, right]).args(["--noise-floor"]).args(more).output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn floor_json(left: &Path, right: &Path, more: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(more);
    let (code, out, err) = check(left, right, &args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v["noise_floor"].clone())
}

fn stage<'a>(floor: &'a Value, name: &str) -> &'a Value {
    floor["stages"].as_array().unwrap().iter().find(|s| s["stage"] == name).unwrap_or_else(|| panic!("{name}: {floor}"))
}

/// RMS of `a − ref` over an F32 stage, by hand (f64 sums in index order).
fn rms_against(a: &[f32], reference: &[f64]) -> f64 {
    let s: f64 = a.iter().zip(reference).map(|(&x, &r)| (x as f64 - r).powi(2)).sum();
    (s / a.len() as f64).sqrt()
}

#[test]
fn a_port_worse_than_its_baseline_fails_and_one_better_passes() {
    let dir = tempfile::tempdir().unwrap();
    // RIGHT's adapted source carries a 1e-4 relative error: far above f32
    // rounding, so far over twice LEFT's error against the f64 reference.
    let (left, right) = case(dir.path(), |_| {}, noisy("adapted_source_f32", 1e-4));
    let (code, floor) = floor_json(&left, &right, &[]);
    assert_eq!(code, Some(1), "{floor}");
    assert_eq!(floor["passed"], false);
    let s = stage(&floor, "adapted_source_f32");
    assert_eq!(s["verdict"], "FAIL", "{s}");
    assert!(s["ratio"].as_f64().unwrap() > 2.0, "{s}");
    // Untouched stages are no worse than themselves.
    assert_eq!(stage(&floor, "scaled_s")["verdict"], "PASS");

    // The other way round: the baseline is the noisy one, the port is not.
    let dir2 = tempfile::tempdir().unwrap();
    let (left, right) = case(dir2.path(), noisy("adapted_source_f32", 1e-4), |_| {});
    let (code, floor) = floor_json(&left, &right, &[]);
    let s = stage(&floor, "adapted_source_f32");
    assert_eq!(s["verdict"], "PASS", "{s}");
    assert!(s["ratio"].as_f64().unwrap() < 0.1, "{s}");
    assert_eq!(floor["passed"], true);
    assert_eq!(code, Some(0), "the check itself passes without a strict mode, and so does the floor");
}

#[test]
fn the_errors_are_the_rms_against_the_f64_reference_computed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = case(dir.path(), noisy("final_f32", 3e-6), noisy("final_f32", 1e-5));
    let (_, floor) = floor_json(&left, &right, &[]);
    let s = stage(&floor, "final_f32");
    // The reference, replayed here independently of the check.
    let reference = dir.path().join("ref.json");
    let opts = parity::replay::ReplayOptions { implementation: Implementation::ReferenceWide, select: vec![], allow_outside_paths: false, progress: false };
    parity::replay::replay(&left, &reference, &opts).unwrap();
    let stage_of = |report: &Path, name: &str| -> Vec<f64> {
        let b = Bundle::open(&parity::format::report::LoadedReport::load(report).unwrap().stage_bundle_path(false).unwrap()).unwrap();
        let v = b.get_named(&bundle::safe_key(NAME), name).unwrap();
        (0..v.numel()).map(|i| v.dtype.decode(v.data, i)).collect()
    };
    let r = stage_of(&reference, "final_f32");
    let f32s = |p: &Path| stage_of(p, "final_f32").into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let (le, re) = (rms_against(&f32s(&left), &r), rms_against(&f32s(&right), &r));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
    assert!(close(s["left_err"].as_f64().unwrap(), le), "{s} vs {le}");
    assert!(close(s["right_err"].as_f64().unwrap(), re), "{s} vs {re}");
    assert!(close(s["limit"].as_f64().unwrap(), 2.0 * le), "default m = 2, ε = 0: {s}");
    assert_eq!(s["verdict"], if re <= 2.0 * le { "PASS" } else { "FAIL" });
}

#[test]
fn m_and_eps_come_from_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = case(dir.path(), |_| {}, noisy("adapted_source_f32", 1e-4));
    let tol = dir.path().join("tol.json");
    std::fs::write(&tol, r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"adapted_source_f32": {"noise_floor_m": 1e6, "noise_floor_eps": 1e-3}}}}"#).unwrap();
    let (_, floor) = floor_json(&left, &right, &["--tolerances", tol.to_str().unwrap()]);
    let s = stage(&floor, "adapted_source_f32");
    assert_eq!((s["m"].as_f64(), s["eps"].as_f64()), (Some(1e6), Some(1e-3)), "{s}");
    assert_eq!(s["verdict"], "PASS", "{s}");
    // A negative m is refused when the profile is read.
    std::fs::write(&tol, r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_f32": {"noise_floor_m": -1}}}}"#).unwrap();
    let (code, _, err) = check(&left, &right, &["--tolerances", tol.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("noise_floor_m") && err.contains("tol.json"), "{err}");
}

#[test]
fn text_and_markdown_show_both_errors_and_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = case(dir.path(), |_| {}, noisy("adapted_source_f32", 1e-4));
    let (code, out, _) = check(&left, &right, &[]);
    assert_eq!(code, Some(1));
    assert!(out.contains("Noise floor: FAIL"), "{out}");
    let line = out.lines().find(|l| l.contains("adapted_source_f32: RIGHT")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("vs LEFT") && line.contains("ratio") && line.ends_with("FAIL"), "{line}");
    assert_eq!(out.lines().last(), Some("Result with the noise floor: FAIL (exit 1)"), "{out}");
    let (_, md, _) = check(&left, &right, &["--format", "markdown"]);
    assert!(md.contains("| RIGHT err | LEFT err | ratio |"), "{md}");
}

#[test]
fn without_components_the_floor_is_a_one_line_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = case(dir.path(), |_| {}, |_| {});
    std::fs::remove_file(dir.path().join("components.safetensors")).unwrap();
    let (code, _, err) = check(&left, &right, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("components.safetensors"), "{err}");
}

#[test]
fn the_html_page_carries_the_noise_floor_section() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = case(dir.path(), |_| {}, noisy("adapted_source_f32", 1e-4));
    let page = dir.path().join("r.html");
    let (code, _, err) = check(&left, &right, &["--format", "html", "--output", page.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    let html = std::fs::read_to_string(&page).unwrap();
    let at = html.find("<section id=\"noise-floor\">").expect("a noise-floor section");
    assert!(at < html.rfind("</body>").unwrap());
    assert!(html[at..].contains("adapted_source_f32: RIGHT") && html[at..].contains("FAIL (exit 1)"));
}
