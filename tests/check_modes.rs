//! `parity check` end to end: verdicts, the first failing stage, and each
//! strictness mode passing and failing (SPEC §5).

mod check_support;

use check_support::*;
use parity::check::CheckOutcome;
use parity::check::{check, CheckOptions, Modes, StageSelection};
use parity::compare::Verdict;
use parity::render::{render, Format};
use parity::ops::Stages;

const DIMS: [usize; 3] = [16, 24, 8];

fn opts(modes: Modes) -> CheckOptions {
    CheckOptions { modes, ..CheckOptions::default() }
}

fn strict_stages() -> Modes {
    Modes { strict_stage_tolerances: true, ..Modes::default() }
}

fn strict_hash() -> Modes {
    Modes { strict_hash: true, ..Modes::default() }
}

fn strict_historical() -> Modes {
    Modes { strict_historical_hash: true, ..Modes::default() }
}

fn run_check(p: &Pair, o: &CheckOptions) -> CheckOutcome {
    check(&p.left, &p.right, o).unwrap_or_else(|e| panic!("setup error: {e}"))
}

fn final_sha() -> String {
    svf_stages(7, DIMS).0.get("final_bf16").unwrap().sha256()
}

/// Move three small final_bf16 values by one bf16 ULP: bytes differ, every
/// gate still passes (a one-ULP flip of a value below 0.06 is ≤ 2.4e-4).
fn flip_three_small_bf16(stages: &mut Stages) {
    let t = stage_mut(stages, "final_bf16");
    let values = t.to_f64_vec();
    let small: Vec<usize> = (0..values.len()).filter(|&i| values[i].abs() < 0.06 && values[i] != 0.0).take(3).collect();
    assert_eq!(small.len(), 3);
    edit_bits(stages, "final_bf16", |i, b| if small.contains(&i) { b + 1 } else { b });
}

#[test]
fn identical_runs_pass_every_mode() {
    let sha = final_sha();
    let p = pair_with(DIMS, Some((&sha, true)), |_| {});
    let all = Modes { strict_stage_tolerances: true, strict_hash: true, strict_historical_hash: true };
    let o = run_check(&p, &opts(all));
    assert!(o.passed(), "{}", render(&o, Format::Text));
    assert_eq!(o.exit_code(), 0);
    let t = &o.tensors[0];
    assert!(t.passed);
    assert_eq!(t.stages.len(), 10);
    assert!(t.stages.iter().all(|s| s.verdict == Verdict::Pass && s.metrics.as_ref().unwrap().bytes_equal));
}

#[test]
fn strict_stage_tolerances_fails_when_a_required_stage_fails() {
    let p = pair(|s| edit_f32(s, "matmul_pre_norm", |i, x| if i == 30 { x + 2e-3 } else { x }));
    let o = run_check(&p, &opts(strict_stages()));
    assert!(!o.passed());
    assert_eq!(o.exit_code(), 1);
    let t = &o.tensors[0];
    assert_eq!(t.first_failing_stage.as_deref(), Some("matmul_pre_norm"));
    let s = t.stages.iter().find(|s| s.stage == "matmul_pre_norm").unwrap();
    assert_eq!(s.metrics.as_ref().unwrap().max_abs_index, Some(vec![1, 6]));
    assert!(s.failures[0].starts_with("max_abs 2"), "{:?}", s.failures);
    assert!(o.modes.stage_tolerances.reasons[0].contains("first failing stage matmul_pre_norm"));
}

#[test]
fn the_first_failing_stage_is_the_earliest_in_pipeline_order() {
    let p = pair(|s| {
        edit_f32(s, "final_f32", |_, x| x + 1.0);
        edit_f32(s, "u_scaled", |i, x| if i == 0 { x + 1.0 } else { x });
    });
    let o = run_check(&p, &opts(strict_stages()));
    assert_eq!(o.tensors[0].first_failing_stage.as_deref(), Some("u_scaled"));
    let order: Vec<&str> = o.tensors[0].stages.iter().map(|s| s.stage.as_str()).collect();
    let registry: Vec<&str> = parity::ops::svf_apply::SVF_APPLY.stages.iter().map(|s| s.name).collect();
    assert_eq!(order, registry);
}

#[test]
fn without_a_mode_a_failing_gate_is_reported_and_exits_zero() {
    let p = pair(|s| edit_f32(s, "scaled_s", |_, x| x * 2.0));
    let o = run_check(&p, &opts(Modes::default()));
    assert!(!o.tensors[0].passed);
    assert!(o.passed());
    assert_eq!(o.exit_code(), 0);
    assert!(render(&o, Format::Text).contains("Result: reported only, no strictness mode enabled (exit 0)"));
}

#[test]
fn strict_stage_tolerances_fails_when_there_are_no_stage_checks() {
    let p = pair(|_| {});
    let o = run_check(
        &p,
        &CheckOptions { stages: StageSelection::Named(vec!["final_bf16".into()]), ..opts(strict_stages()) },
    );
    assert_eq!(o.tensors[0].stages.len(), 1);
    assert!(!o.passed());
    assert!(o.modes.stage_tolerances.reasons[0].starts_with("no stage checks at all"));
}

#[test]
fn hash_differences_alone_never_fail_strict_stage_tolerances() {
    let p = pair(flip_three_small_bf16);
    let o = run_check(&p, &opts(strict_stages()));
    assert!(o.passed(), "{}", render(&o, Format::Text));
    assert!(!o.tensors[0].hashes.equal);
}

#[test]
fn when_hashes_differ_but_stages_pass_the_output_says_how_the_bytes_differ() {
    let p = pair(flip_three_small_bf16);
    let o = run_check(&p, &opts(Modes { strict_stage_tolerances: true, strict_hash: true, ..Modes::default() }));
    assert!(o.tensors[0].stages.iter().all(|s| s.passed()));
    println!("{}", render(&o, Format::Text));
    let sentence = "final_bf16: 3 / 384 elements differ (0.78%), at most 1 ULP";
    assert_eq!(o.tensors[0].hashes.bytes.as_ref().unwrap().sentence(), sentence);
    assert!(render(&o, Format::Text).contains(sentence));
    assert!(o.modes.hash.reasons[0].contains(sentence));
    // strict-hash fails while strict-stage-tolerances holds.
    assert!(o.modes.stage_tolerances.holds);
    assert!(!o.modes.hash.holds);
    assert_eq!(o.exit_code(), 1);
}

#[test]
fn strict_hash_passes_when_the_final_hashes_are_equal() {
    let p = pair(|_| {});
    assert!(run_check(&p, &opts(strict_hash())).passed());
}

#[test]
fn strict_historical_hash_passes_when_both_sides_equal_it() {
    let sha = final_sha();
    let p = pair_with(DIMS, Some((&sha, true)), |_| {});
    assert!(run_check(&p, &opts(strict_historical())).passed());
}

#[test]
fn strict_historical_hash_fails_on_a_mismatch() {
    let p = pair_with(DIMS, Some((&"ab".repeat(32), true)), |_| {});
    let o = run_check(&p, &opts(strict_historical()));
    assert!(!o.passed());
    let reason = &o.modes.historical_hash.reasons[0];
    assert!(
        reason.contains("does not equal historical_final_sha256 abababababab… (left differs, right differs)"),
        "{reason}"
    );
}

#[test]
fn a_historical_hash_that_is_not_reproducible_fails_with_the_explanation() {
    let p = pair_with(DIMS, Some((&"ab".repeat(32), false)), |_| {});
    let o = run_check(&p, &opts(strict_historical()));
    assert_eq!(o.exit_code(), 1);
    let reason = &o.modes.historical_hash.reasons[0];
    assert!(reason.contains("is not reproducible with these components"), "{reason}");
    assert!(
        reason.contains("baseline 'python readback' says so: the historical run used a different LAPACK build"),
        "{reason}"
    );
    assert!(render(&o, Format::Text).contains("the historical run used a different LAPACK build"));
}

#[test]
fn strict_historical_hash_without_a_historical_hash_is_a_setup_error() {
    let p = pair(|_| {});
    let err = check(&p.left, &p.right, &opts(strict_historical())).unwrap_err().to_string();
    assert!(err.contains("no historical_final_sha256"), "{err}");
    assert!(err.contains(NAME), "{err}");
}

#[test]
fn an_optional_stage_missing_on_one_side_is_reported_not_gated() {
    let p = pair(|s| s.0.retain(|(n, _)| n != "final_bf16"));
    let o = run_check(&p, &opts(strict_stages()));
    assert!(o.passed());
    let s = o.tensors[0].stages.last().unwrap();
    assert_eq!((s.stage.as_str(), s.verdict), ("final_bf16", Verdict::Missing));
    assert!(!s.gated());
    assert!(render(&o, Format::Text).contains("missing on right (optional)"));
}

#[test]
fn a_shape_mismatch_is_a_gate_failure_not_a_setup_error() {
    let p = pair(|s| stage_mut(s, "final_f32").shape = vec![16, 24]);
    let o = run_check(&p, &opts(strict_stages()));
    assert_eq!(o.exit_code(), 1);
    let s = o.tensors[0].stages.iter().find(|s| s.stage == "final_f32").unwrap();
    assert_eq!(s.failures, vec!["shape [24, 16] (left) vs [16, 24] (right): transposed layout?".to_string()]);
    assert_eq!(o.tensors[0].first_failing_stage.as_deref(), Some("final_f32"));
}

#[test]
fn a_float_dtype_differing_between_the_sides_is_compared_by_value() {
    let p = pair(|s| {
        let t = stage_mut(s, "final_f32");
        let v: Vec<f64> = t.to_f64_vec();
        *t = parity::format::tensor::Tensor::from_f64(t.shape.clone(), &v);
    });
    let o = run_check(&p, &opts(strict_stages()));
    let s = o.tensors[0].stages.iter().find(|s| s.stage == "final_f32").unwrap();
    // f32 values widened to f64 are the same values: no failure, no ULP
    // distance (it counts units of one dtype).
    assert_eq!(s.failures, Vec::<String>::new());
    let m = s.metrics.as_ref().unwrap();
    assert_eq!((m.max_abs, m.max_ulp, m.not_bit_equal), (0.0, None, None));
}

#[test]
fn select_matches_by_substring_or_glob() {
    let dir = tempfile::tempdir().unwrap();
    let (stages, params) = svf_stages(3, [4, 4, 2]);
    let runs: Vec<_> = ["model.layers.0.q.weight", "model.layers.1.q.weight", "model.layers.10.k.weight"]
        .iter()
        .map(|n| run(n, stages.clone(), params.clone()))
        .collect();
    let left = write_side(dir.path(), "python.json", "numpy-f32", None, &runs);
    let right = write_side(dir.path(), "rust.json", "parity-fast", None, &runs);
    let names = |select: &[&str]| {
        let o = check(
            &left,
            &right,
            &CheckOptions { select: select.iter().map(|s| s.to_string()).collect(), ..CheckOptions::default() },
        )
        .unwrap();
        o.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&["layers.1."]), vec!["model.layers.1.q.weight"]);
    assert_eq!(names(&["*.k.*"]), vec!["model.layers.10.k.weight"]);
    assert_eq!(names(&["layers.0.", "*.k.*"]), vec!["model.layers.0.q.weight", "model.layers.10.k.weight"]);
    assert_eq!(names(&[]).len(), 3);
}

#[test]
fn stages_restricts_the_compared_stages() {
    let p = pair(|s| edit_f32(s, "matmul_pre_norm", |_, x| x + 1.0));
    let o = run_check(&p, &CheckOptions { stages: "scaled_s,final_f32".parse().unwrap(), ..opts(strict_stages()) });
    let names: Vec<&str> = o.tensors[0].stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, vec!["scaled_s", "final_f32"]);
    assert!(o.passed());
}

#[test]
fn top_diffs_lists_the_largest_divergences_per_stage() {
    let p = pair(|s| edit_f32(s, "final_f32", |i, x| x + (i % 7) as f32 * 1e-6));
    let o = run_check(&p, &CheckOptions { top_diffs: 3, ..CheckOptions::default() });
    let s = o.tensors[0].stages.iter().find(|s| s.stage == "final_f32").unwrap();
    let top = &s.metrics.as_ref().unwrap().top;
    assert_eq!(top.len(), 3);
    assert!(top[0].abs_diff >= top[1].abs_diff && top[1].abs_diff >= top[2].abs_diff);
    assert!(render(&o, Format::Text).contains("Largest differences (index: left, right, |diff|):"));
}

#[test]
fn single_tensor_stage_bundles_are_accepted() {
    let p = pair(|_| {});
    // Rewrite RIGHT's bundle with `stage.<name>` keys; its report is unchanged.
    let bundle_path = parity::format::report::write::bundle_path_for(&p.right);
    let owned: Vec<(String, parity::format::tensor::Tensor)> = {
        let b = parity::format::bundle::Bundle::open(&bundle_path).unwrap();
        let keys: Vec<String> = b.keys().map(str::to_string).collect();
        keys.iter()
            .map(|k| (format!("stage.{}", k.rsplit('.').next().unwrap()), b.get(k).unwrap().to_owned()))
            .collect()
    };
    let entries: Vec<(String, &parity::format::tensor::Tensor)> = owned.iter().map(|(k, t)| (k.clone(), t)).collect();
    parity::format::bundle::write(&bundle_path, &entries).unwrap();
    assert!(parity::format::bundle::Bundle::open(&bundle_path).unwrap().is_single_tensor());
    let o = run_check(&p, &opts(Modes { strict_stage_tolerances: true, strict_hash: true, ..Modes::default() }));
    assert!(o.passed(), "{}", render(&o, Format::Text));
    assert_eq!(o.tensors[0].stages.len(), 10);
}

#[test]
fn results_are_identical_with_one_or_two_threads() {
    // final_f32 has 76,800 elements: more than one chunk.
    let p = pair_with([256, 300, 8], None, |s| {
        edit_f32(s, "final_f32", |i, x| x + ((i * 7919) % 1000) as f32 * 1e-7);
        edit_f32(s, "matmul_pre_norm", |i, x| if i % 1000 == 3 { f32::NAN } else { x });
    });
    let o = CheckOptions {
        top_diffs: 5,
        ..opts(Modes { strict_stage_tolerances: true, strict_hash: true, ..Modes::default() })
    };
    let json = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| render(&run_check(&p, &o), Format::Json))
    };
    let one = json(1);
    assert_eq!(one, json(2));
    assert!(one.contains("\"top_diffs\": ["));
}

#[test]
fn the_summary_names_the_gated_stage_closest_to_its_limit() {
    let same = run_check(&pair(|_| {}), &opts(strict_stages()));
    assert_eq!(same.tightest_summary(), "bit-exact");
    let p = pair(|s| edit_f32(s, "matmul_pre_norm", |i, x| if i == 30 { x + 5e-4 } else { x }));
    let o = run_check(&p, &CheckOptions { progress: true, ..opts(strict_stages()) });
    assert!(o.tightest_summary().starts_with("matmul_pre_norm: max_abs 5"), "{}", o.tightest_summary());
    assert!(o.tightest_summary().ends_with("of 1e-3 (50%)"), "{}", o.tightest_summary());
}
