//! SPEC §12: `parity check --suggest-tolerances FILE` writes a
//! `parity.tolerances.v1` profile with, per stage, the smallest limits that
//! pass what was observed × a stated margin (rounded up to one significant
//! digit), where each number came from, and never a limit looser than the
//! built-in one unless `--allow-looser` says so.

mod check_support;

use check_support::{edit_f32, pair, stage_mut, write_side};
use parity::check::suggest::round_up_one_digit;
use parity::format::report::write::TensorRun;
use parity::format::tensor::Tensor;
use parity::ops::Stages;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn parity(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().expect("parity runs");
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// 2⁻¹⁴: 1 + D is exact in f32, 512 f32 ULPs above 1.
const D: f64 = 1.0 / 16384.0;

fn identity_run(name: &str, t: Tensor) -> TensorRun {
    let mut stages = Stages::default();
    stages.push("output", t);
    TensorRun {
        name: name.into(),
        key: parity::format::bundle::safe_key(name),
        operation: "identity".into(),
        params: Default::default(),
        stages,
        final_stage: "output".into(),
        historical_final_sha256: None,
    }
}

/// An identity pair (built-in gate: bit for bit) of [4, 4] ones whose right
/// side is `1 + D·m` at element 5 of tensor `i` for each multiple `m` given:
/// the observation is known exactly.
struct Fixture {
    dir: tempfile::TempDir,
    left: PathBuf,
    right: PathBuf,
}

fn identity_pair(multiples: &[f32]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for (i, &m) in multiples.iter().enumerate() {
        let name = format!("model.norm{i}.weight");
        let mut v = vec![1.0f32; 16];
        l.push(identity_run(&name, Tensor::from_f32(vec![4, 4], &v)));
        v[5] = 1.0 + m * D as f32;
        assert_eq!(v[5] as f64 - 1.0, m as f64 * D, "exact in f32");
        r.push(identity_run(&name, Tensor::from_f32(vec![4, 4], &v)));
    }
    let left = write_side(dir.path(), "python.json", "numpy-f32", None, &l);
    let right = write_side(dir.path(), "rust.json", "parity-fast", None, &r);
    Fixture { dir, left, right }
}

impl Fixture {
    fn out(&self) -> PathBuf {
        self.dir.path().join("suggested.json")
    }
    /// `check L R --strict-stage-tolerances` with `extra` flags.
    fn check(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["check", self.left.to_str().unwrap(), self.right.to_str().unwrap(), "--strict-stage-tolerances"];
        args.extend_from_slice(extra);
        parity(&args)
    }
    fn suggest(&self, extra: &[&str]) -> (i32, Value, String) {
        let out = self.out();
        let mut args = vec!["--suggest-tolerances", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, _, stderr) = self.check(&args);
        let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        (code, serde_json::from_str(&text).unwrap(), stderr)
    }
}

fn limits(profile: &Value, op: &str, stage: &str) -> (f64, f64, Option<u64>) {
    let e = &profile["operations"][op][stage];
    (e["max_abs"].as_f64().unwrap(), e["mean_abs"].as_f64().unwrap(), e["max_ulp"].as_u64())
}

#[test]
fn observed_values_times_the_margin_are_rounded_up_to_one_significant_digit() {
    // By hand: 6.2e-5 × 2 = 1.24e-4 → 2e-4; 3.1e-5 × 2 = 6.2e-5 → 7e-5.
    assert_eq!(round_up_one_digit(6.2e-5 * 2.0), 2e-4);
    assert_eq!(round_up_one_digit(6.2e-5), 7e-5);
    assert_eq!(round_up_one_digit(3.1e-5 * 2.0), 7e-5);
    // Already one digit: kept, not pushed to the next.
    assert_eq!(round_up_one_digit(3e-5), 3e-5);
    assert_eq!(round_up_one_digit(1e-3), 1e-3);
    assert_eq!(round_up_one_digit(0.0), 0.0);
    // A hair above: the next digit up; 9.x carries into the next decade.
    assert_eq!(round_up_one_digit(1e-3 * (1.0 + 1e-12)), 2e-3);
    assert_eq!(round_up_one_digit(9.5), 10.0);
    assert_eq!(round_up_one_digit(0.095), 0.1);
    assert_eq!(round_up_one_digit(26.0), 30.0);
    assert_eq!(round_up_one_digit(1024.0), 2000.0);
    // Never below what it rounds, over many magnitudes.
    let mut x = 1.2345e-30;
    while x < 1e30 {
        let r = round_up_one_digit(x);
        assert!(r >= x && r <= 10.0 * x, "{x} → {r}");
        x *= 7.3;
    }
}

#[test]
fn the_suggested_limits_are_what_was_observed_times_the_margin() {
    let f = identity_pair(&[1.0]);
    // Observed: max_abs D = 6.103515625e-5, mean_abs D/16 = 3.814697265625e-6, 512 ULPs.
    let cases: [(&[&str], (f64, f64, Option<u64>)); 3] = [
        // × 2: 1.220703125e-4 → 2e-4; 7.62939453125e-6 → 8e-6; 1024 → 2000.
        (&[], (2e-4, 8e-6, Some(2000))),
        // × 1: 6.103515625e-5 → 7e-5; 3.814697265625e-6 → 4e-6; 512 → 600.
        (&["--tolerance-margin", "1"], (7e-5, 4e-6, Some(600))),
        // × 3: 1.8310546875e-4 → 2e-4; 1.1444091796875e-5 → 2e-5; 1536 → 2000.
        (&["--tolerance-margin", "3"], (2e-4, 2e-5, Some(2000))),
    ];
    for (margin, expected) in cases {
        let mut flags = margin.to_vec();
        flags.push("--allow-looser");
        let (code, profile, _) = f.suggest(&flags);
        assert_eq!(code, 1, "the pair fails its built-in (bit-for-bit) gate");
        assert_eq!(limits(&profile, "identity", "output"), expected, "{margin:?}");
    }
}

#[test]
fn checking_again_with_the_suggested_profile_passes() {
    let f = identity_pair(&[1.0]);
    let (code, _, _) = f.suggest(&["--allow-looser"]);
    assert_eq!(code, 1);
    let (code, stdout, stderr) = f.check(&["--tolerances", f.out().to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // An SVF pair that fails matmul_pre_norm by 2e-3 (built-in limit 1e-3).
    let p = pair(|s| edit_f32(s, "matmul_pre_norm", |i, x| if i == 30 { x + 2e-3 } else { x }));
    let out = p.dir.path().join("svf.tolerances.json");
    let (l, r, o) = (p.left.to_str().unwrap(), p.right.to_str().unwrap(), out.to_str().unwrap());
    let (code, _, stderr) = parity(&["check", l, r, "--strict-stage-tolerances", "--suggest-tolerances", o, "--allow-looser"]);
    assert_eq!(code, 1, "{stderr}");
    let (code, stdout, stderr) = parity(&["check", l, r, "--strict-stage-tolerances", "--tolerances", o]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_passing_pair_gets_limits_no_looser_than_the_built_in_ones() {
    // matmul_pre_norm off by D (built-in 1e-3 / 1e-5): suggested 2e-4, the
    // stages that agree bit for bit get 0, and nothing loosens anything.
    let p = pair(|s| {
        let t = stage_mut(s, "matmul_pre_norm");
        let mut v = t.to_f32_vec();
        let k = v.iter().position(|x| x.abs() < 1.0 && ((*x as f64 + D) as f32 as f64 - *x as f64) == D).unwrap();
        v[k] += D as f32;
        *t = Tensor::from_f32(t.shape.clone(), &v);
    });
    let out = p.dir.path().join("tight.json");
    let (l, r, o) = (p.left.to_str().unwrap(), p.right.to_str().unwrap(), out.to_str().unwrap());
    let (code, _, stderr) = parity(&["check", l, r, "--strict-stage-tolerances", "--suggest-tolerances", o]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("loosen"), "{stderr}");
    let profile: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let (max_abs, mean_abs, _) = limits(&profile, "svf_apply", "matmul_pre_norm");
    assert_eq!(max_abs, 2e-4);
    assert!(mean_abs > 0.0 && mean_abs <= 1e-5, "{mean_abs}");
    assert_eq!(limits(&profile, "svf_apply", "source_f32"), (0.0, 0.0, Some(0)));
    let (code, stdout, stderr) = parity(&["check", l, r, "--strict-stage-tolerances", "--tolerances", o]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_looser_limit_is_kept_and_named_unless_allow_looser() {
    let f = identity_pair(&[1.0]);
    let (code, profile, stderr) = f.suggest(&[]);
    assert_eq!(code, 1);
    // The built-in identity gate is bit for bit: all three limits are kept.
    assert_eq!(limits(&profile, "identity", "output"), (0.0, 0.0, Some(0)));
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("would loosen")).collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(stderr.contains("identity.output: max_abs would loosen the built-in 0 to 2e-4"), "{stderr}");
    assert!(stderr.contains("identity.output: mean_abs would loosen the built-in 0 to 8e-6"), "{stderr}");
    assert!(stderr.contains("identity.output: max_ulp would loosen the built-in 0 to 2,000"), "{stderr}");
    assert!(profile["operations"]["identity"]["output"]["why"]["max_abs"].as_str().unwrap().contains("the built-in is kept"));
    // So checking again still fails.
    let (code, _, _) = f.check(&["--tolerances", f.out().to_str().unwrap()]);
    assert_eq!(code, 1);

    let (_, profile, stderr) = f.suggest(&["--allow-looser"]);
    assert_eq!(limits(&profile, "identity", "output"), (2e-4, 8e-6, Some(2000)));
    assert!(stderr.contains("identity.output: max_abs 2e-4 loosens the built-in 0 (--allow-looser)"), "{stderr}");
    assert!(profile["description"].as_str().unwrap().contains("looser than the built-in profile allowed"));
}

#[test]
fn every_stage_says_why() {
    let f = identity_pair(&[1.0, 2.0]);
    let (_, profile, _) = f.suggest(&["--allow-looser"]);
    // Two tensors, the larger observation wins: 2D = 1.220703125e-4 × 2 → 3e-4.
    let entry = &profile["operations"]["identity"]["output"];
    assert_eq!(entry["max_abs"], 3e-4);
    let why = entry["why"].as_object().unwrap();
    assert_eq!(why.keys().collect::<Vec<_>>(), ["max_abs", "mean_abs", "max_ulp"]);
    let max_abs = why["max_abs"].as_str().unwrap();
    assert!(max_abs.starts_with("largest of 2 tensors 1.22e-4 × margin 2 = 2.44e-4"), "{max_abs}");
    assert!(max_abs.contains("rounded up to one significant digit: 3e-4"), "{max_abs}");

    // The SVF profile: every stage entry has a why for each limit it sets.
    let p = pair(|s| edit_f32(s, "matmul_pre_norm", |i, x| if i == 3 { x + 1e-4 } else { x }));
    let out = p.dir.path().join("svf.json");
    parity(&["check", p.left.to_str().unwrap(), p.right.to_str().unwrap(), "--suggest-tolerances", out.to_str().unwrap()]);
    let profile: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let stages = profile["operations"]["svf_apply"].as_object().unwrap();
    assert!(stages.len() >= 8, "{stages:?}");
    for (stage, e) in stages {
        for limit in ["max_abs", "mean_abs"] {
            assert!(e["why"][limit].as_str().is_some_and(|w| w.contains("× margin 2")), "{stage}: {e}");
        }
        if e.get("max_ulp").is_some() {
            assert!(e["why"]["max_ulp"].is_string(), "{stage}");
        }
    }
}

#[test]
fn the_file_is_a_tolerance_profile() {
    let f = identity_pair(&[1.0]);
    let (_, profile, _) = f.suggest(&["--allow-looser"]);
    assert_eq!(profile["schema"], "parity.tolerances.v1");
    let text = std::fs::read(f.out()).unwrap();
    let merged = parity::ops::builtin_profile().merge_json(&f.out(), &text).expect("the profile reader accepts it");
    let t = merged.tolerance("identity", "output").unwrap();
    assert_eq!((t.max_abs, t.mean_abs, t.max_ulp, t.required), (2e-4, 8e-6, Some(2000), true));
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn the_file_is_written_atomically() {
    let f = identity_pair(&[1.0]);
    // A longer file already there is replaced whole, and no temporary is left behind.
    std::fs::write(f.out(), "x".repeat(100_000)).unwrap();
    let before = entries(f.dir.path());
    let (code, profile, _) = f.suggest(&["--allow-looser"]);
    assert_eq!(code, 1);
    assert_eq!(profile["schema"], "parity.tolerances.v1");
    assert_eq!(entries(f.dir.path()), before);
    assert!(std::fs::read_to_string(f.out()).unwrap().ends_with("}\n"));

    // Into a directory that does not exist: a setup error, nothing written.
    let missing = f.dir.path().join("no/such/dir/suggested.json");
    let (code, _, stderr) = f.check(&["--suggest-tolerances", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!missing.exists());
}

#[test]
fn a_margin_below_one_or_not_a_number_is_a_usage_error() {
    let f = identity_pair(&[1.0]);
    let out = f.out();
    for margin in ["0.5", "0", "-2", "NaN", "inf"] {
        let margin_flag = format!("--tolerance-margin={margin}");
        let (code, stdout, stderr) = f.check(&["--suggest-tolerances", out.to_str().unwrap(), &margin_flag]);
        assert_eq!(code, 2, "{margin}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{margin}: one line: {stderr}");
        assert!(stderr.contains("--tolerance-margin") && stderr.contains("≥ 1"), "{stderr}");
        assert!(stdout.is_empty(), "refused before the comparison: {stdout}");
        assert!(!out.exists(), "{margin}: nothing written");
    }
    // The margin and --allow-looser mean nothing without a file to write.
    let (code, _, _) = f.check(&["--tolerance-margin", "3"]);
    assert_eq!(code, 2);
    let (code, _, _) = f.check(&["--allow-looser"]);
    assert_eq!(code, 2);
}
