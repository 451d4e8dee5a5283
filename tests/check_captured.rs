//! `check` on captured runs (issue 23 point 3 and 5): tolerances without a
//! profile, the onset of the error, pairing by `--map`, and output at the
//! scale of a run. The end-to-end test on a real BERT is
//! oracle/tests/test_capture_check.py.

mod check_support;

use check_support::write_side;
use parity::check::{check, CheckOptions, DefaultTolerance};
use parity::format::report::write::TensorRun;
use parity::format::tensor::Tensor;
use parity::ops::Stages;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One module call: operation `Linear`, one f64 stage `output`.
fn module(name: &str, values: &[f64]) -> TensorRun {
    TensorRun {
        name: name.to_string(),
        key: parity::format::bundle::safe_key(name),
        operation: "Linear".into(),
        params: Default::default(),
        stages: Stages(vec![("output".into(), Tensor::from_f64(vec![values.len()], values))]),
        final_stage: "output".into(),
        historical_final_sha256: None,
    }
}

/// A run of `errors.len()` modules whose LEFT output is all ones and whose
/// RIGHT output is `1 + r`: each stage's relative error is `r` (in f64, to
/// within an ULP of 1).
fn runs_with_errors(dir: &Path, errors: &[f64]) -> (PathBuf, PathBuf) {
    let left: Vec<TensorRun> = (0..errors.len()).map(|i| module(&format!("layers.{i}"), &[1.0; 8])).collect();
    let right: Vec<TensorRun> = errors.iter().enumerate().map(|(i, r)| module(&format!("layers.{i}"), &[1.0 + r; 8])).collect();
    (write_side(dir, "torch.json", "torch-f32", None, &left), write_side(dir, "port.json", "port-f32", None, &right))
}

fn loose() -> CheckOptions {
    CheckOptions { default_tolerance: DefaultTolerance { atol: Some(1.0), rtol: Some(1.0), torch_dtype_defaults: false }, ..CheckOptions::default() }
}

#[test]
fn rounding_noise_that_grows_tenfold_along_a_run_has_no_onset() {
    let dir = tempfile::tempdir().unwrap();
    // 200 f64 stages, the error growing steadily from 1e-15 (5 ULPs of 1)
    // to 1e-14, as rounding noise does along a run.
    let errors: Vec<f64> = (0..200).map(|i| 1e-15 * 10f64.powf(i as f64 / 199.0)).collect();
    let (l, r) = runs_with_errors(dir.path(), &errors);
    let o = check(&l, &r, &loose()).unwrap();
    assert_eq!(o.onset, None);
    assert_eq!(o.first_divergence, None);
}

#[test]
fn a_jump_of_a_thousandfold_is_the_onset_even_when_every_gate_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut errors = vec![1e-15; 50];
    errors.extend([1e-12; 50]); // the bug at stage 50, inherited after it
    let (l, r) = runs_with_errors(dir.path(), &errors);
    let o = check(&l, &r, &loose()).unwrap();
    assert!(o.passed());
    let onset = o.onset.expect("an onset");
    assert_eq!((onset.tensor.as_str(), onset.stage.as_str()), ("layers.50", "output"));
    // What 1 + 1e-15 rounds to in f64, minus 1: the relative error before.
    let before = (1.0f64 + 1e-15) - 1.0;
    assert_eq!(onset.median_before, Some(before), "{onset:?}");
    assert_eq!(onset.threshold, 100.0 * before, "{onset:?}");
    // --onset-factor moves the bar: at 2000 the jump of 1000 is no onset.
    let o = check(&l, &r, &CheckOptions { onset_factor: 2000.0, ..loose() }).unwrap();
    assert_eq!(o.onset, None);
    // --fail-on-onset fails the check.
    let o = check(&l, &r, &CheckOptions { fail_on_onset: true, ..loose() }).unwrap();
    assert!(!o.passed());
}

#[test]
fn the_first_stage_is_held_to_its_dtypes_unit_roundoff() {
    let dir = tempfile::tempdir().unwrap();
    let u = f64::EPSILON / 2.0; // 2⁻⁵³
    // 64 u (2⁻⁴⁷, exact in 1 + r) is within 100 u; 8192 u (2⁻⁴⁰) at the
    // first stage, with nothing before it, is not.
    let (l, r) = runs_with_errors(dir.path(), &[2f64.powi(-47), 2f64.powi(-47)]);
    assert_eq!(check(&l, &r, &loose()).unwrap().onset, None);
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = runs_with_errors(dir.path(), &[2f64.powi(-40)]);
    let onset = check(&l, &r, &loose()).unwrap().onset.expect("an onset at the first stage");
    assert_eq!(onset.median_before, None);
    assert_eq!(onset.unit_roundoff, u);
}

#[test]
fn the_first_divergence_is_the_first_failing_stage_in_execution_order() {
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = runs_with_errors(dir.path(), &[0.0, 1e-3, 0.0, 1.0]);
    let opts = CheckOptions { default_tolerance: DefaultTolerance { atol: Some(1e-4), rtol: Some(0.0), torch_dtype_defaults: false }, ..CheckOptions::default() };
    let o = check(&l, &r, &opts).unwrap();
    let d = o.first_divergence.expect("a divergence");
    assert_eq!((d.tensor.as_str(), d.stage.as_str()), ("layers.1", "output"));
    assert!(d.failures[0].starts_with("allclose(rtol=0, atol=1e-4)"), "{:?}", d.failures);
}

fn parity(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn flags_that_make_no_sense_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = runs_with_errors(dir.path(), &[0.0]);
    for (flags, says) in [
        (vec!["--onset-factor", "1"], "--onset-factor 1: must be a number > 1"),
        (vec!["--onset-factor", "NaN"], "--onset-factor NaN: must be a number > 1"),
        (vec!["--atol=-1"], "--atol -1 --rtol 0: both must be numbers ≥ 0"),
        (vec!["--rtol", "NaN"], "--atol 0 --rtol NaN: both must be numbers ≥ 0"),
    ] {
        let mut args = vec!["check", s(&l), s(&r)];
        args.extend(flags.iter());
        let out = parity(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_tolerance_given_is_a_tolerance_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = runs_with_errors(dir.path(), &[1e-3]);
    // Without a tolerance, a module class has none: a setup error that says how to give one.
    let out = parity(&["check", s(&l), s(&r)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("or --atol/--rtol or --dtype-defaults torch"));
    // --atol alone gates (no --strict-stage-tolerances needed): 1e-3 > 1e-4 fails.
    assert_eq!(parity(&["check", s(&l), s(&r), "--atol", "1e-4"]).status.code(), Some(1));
    assert_eq!(parity(&["check", s(&l), s(&r), "--atol", "1e-2"]).status.code(), Some(0));
    // torch's f64 defaults (1e-7 / 1e-7) fail an error of 1e-3.
    assert_eq!(parity(&["check", s(&l), s(&r), "--dtype-defaults", "torch"]).status.code(), Some(1));
}

#[test]
fn a_star_entry_lacking_required_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = runs_with_errors(dir.path(), &[0.0]);
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"schema": "parity.tolerances.v1", "operations": {"Linear": {"*": {"max_abs": 1e-3, "mean_abs": 1e-4}}}}"#,
    )
    .unwrap();
    let out = parity(&["check", s(&l), s(&r), "--tolerances", s(&profile)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has a \"*\" entry for Linear that lacks required"), "{err}");
}

#[test]
fn map_renames_right_and_refuses_two_tensors_under_one_name() {
    let dir = tempfile::tempdir().unwrap();
    let left = vec![module("layers.0", &[1.0]), module("layers.1", &[2.0])];
    let right = vec![module("blocks.0", &[1.0]), module("blocks.1", &[2.0])];
    let (l, r) = (
        write_side(dir.path(), "torch.json", "torch", None, &left),
        write_side(dir.path(), "port.json", "port", None, &right),
    );
    let out = parity(&["check", s(&l), s(&r), "--atol", "0", "--map", r"^blocks\.=layers.", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tensors"][1]["name"], "layers.1");
    assert_eq!(v["tensors"][1]["right_name"], "blocks.1");
    let out = parity(&["check", s(&l), s(&r), "--atol", "0", "--map", r"^blocks\.\d=layers.0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--map renames both 'blocks.0' and this tensor to 'layers.0'") && err.contains("blocks.1"), "{err}");
}

#[test]
fn thousands_of_passing_tensors_are_counted_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = runs_with_errors(dir.path(), &vec![0.0; 2000]);
    let out = parity(&["check", s(&l), s(&r), "--atol", "1e-6"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("\n2,000 tensors pass every stage (not listed: --verbose lists them)\n"), "{text}");
    assert!(
        text.contains("(not met: 2,000 tensors: no historical_final_sha256 (first: layers.0, layers.1, layers.2, …; --verbose lists each))"),
        "{text}"
    );
    assert!(text.len() < 2_000, "{} bytes", text.len());
    let verbose = parity(&["check", s(&l), s(&r), "--atol", "1e-6", "--verbose"]);
    let all = String::from_utf8_lossy(&verbose.stdout);
    assert!(all.contains("\nlayers.1999  Linear  PASS\n") && all.contains("; layers.1999: no historical_final_sha256)"), "{}", &all[all.len() - 500..]);
    // Markdown counts the same way.
    let md = parity(&["check", s(&l), s(&r), "--atol", "1e-6", "--format", "markdown"]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("2,000 tensors pass every stage") && !md.contains("### ✅"), "{md}");
}

#[test]
fn logits_named_on_a_stage_that_is_not_float_logits_fail_it_rather_than_pass_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    let mut sides = Vec::new();
    for side in ["left", "right"] {
        let path = dir.path().join(format!("{side}.json"));
        let mut run = parity::capture::Capture::create(&path, side, "rust").unwrap();
        // Token ids past 2^53, equal on both sides: an integer stage.
        let ids = [(1i64 << 53) + 1, i64::MAX];
        run.output("argmax", "Argmax", &ids, &[2]).unwrap();
        run.output("lm_head", "Linear", &[0.5f32, 1.0, 2.0, 0.0], &[2, 2]).unwrap();
        run.finish().unwrap();
        sides.push(path);
    }
    let base = ["check", s(&sides[0]), s(&sides[1]), "--atol", "0", "--rtol", "0", "--min-top1", "1"];
    let ok = parity(&[&base[..], &["--logits", "lm_head"]].concat());
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    let out = parity(&[&base[..], &["--logits", "argmax"]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--logits names this stage but it is not float logits"), "{text}");
}
