//! Integer tensors beyond the gate (issue 22, item 4, the same class): the
//! plots of a failing integer stage, its explanations and the tolerances
//! suggested from it take the integers, not their f64 decodes, wherever a
//! value beyond 2⁵³ would round.

mod check_support;

use check_support::write_side;
use parity::compare::explain::explain;
use parity::compare::metrics::Stage;
use parity::compare::plots::{gather, gather_in_pieces};
use parity::compare::Tolerance;
use parity::format::dtype::DType;
use parity::format::report::write::TensorRun;
use parity::format::tensor::Tensor;
use parity::ops::Stages;
use std::process::Command;

const TWO_53: i64 = 1 << 53;
const TWO_62: i64 = 1 << 62;

#[test]
fn plots_of_i64_one_apart_beyond_2_53_show_the_difference() {
    let l = Tensor::from_i64(vec![2, 2], &[TWO_62, 0, 5, TWO_53 + 1]);
    let r = Tensor::from_i64(vec![2, 2], &[TWO_62 + 1, 0, 5, TWO_53]);
    let p = gather_in_pieces(Stage::from(l.view()), Stage::from(r.view()), 1).unwrap();
    // |d| = 1, 0, 0, 1: two zeros and two in the bin of [1, 10^0.5), whose
    // index is (0 − MIN_DECADE)·PER_DECADE = 24.
    assert_eq!(p.histogram.zero, 2);
    assert_eq!(p.histogram.bins[24], 2, "{:?}", p.histogram);
    assert_eq!(p.heatmap.as_ref().unwrap().cells, vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(p.row_profile.as_ref().unwrap().points, vec![1.0, 1.0]);
    assert!(p.ulp.is_none(), "the ULP histogram is for float stages");
    // In memory, the same plots.
    let g = gather(&[2, 2], &l.to_f64_vec(), &r.to_f64_vec(), Some((DType::I64, &l.data, &r.data)));
    assert_eq!(g, p);
}

fn transpose(v: &[i64], rows: usize, cols: usize) -> Vec<i64> {
    (0..cols * rows).map(|k| v[(k % rows) * cols + k / rows]).collect()
}

#[test]
fn an_i64_stage_beyond_2_53_is_not_explained_by_rounded_values() {
    // Distinct in f64 (1024 apart at 2⁶², one f64 ULP), so "transposed" is a
    // real candidate; RIGHT is LEFT transposed but for one element off by
    // 1, which the f64 decodes cannot see.
    let left: Vec<i64> = (0..6).map(|k| TWO_62 + 1024 * k).collect();
    let mut right = transpose(&left, 2, 3);
    right[4] += 1;
    let (l, r) = (Tensor::from_i64(vec![2, 3], &left), Tensor::from_i64(vec![3, 2], &right));
    let exact = Tolerance::gate(0.0, 0.0);
    let e = explain(Stage::from(l.view()), Stage::from(r.view()), &exact).unwrap();
    assert!(e.is_none(), "{e:?}");
    // Below 2⁵³ the same layout is explained: integers decode exactly there.
    let small: Vec<i64> = (0..6).map(|k| 1000 + 7 * k).collect();
    let (l, r) = (Tensor::from_i64(vec![2, 3], &small), Tensor::from_i64(vec![3, 2], &transpose(&small, 2, 3)));
    let e = explain(Stage::from(l.view()), Stage::from(r.view()), &exact).unwrap();
    assert!(e.is_some(), "a true transpose of small integers is explained");
}

#[test]
fn a_suggested_max_abs_passes_the_integer_pair_it_came_from() {
    // |d| = 10¹⁶ + 1, whose nearest f64 is 10¹⁶: one significant digit
    // already, so "× margin 1, rounded up" kept 10¹⁶, which the pair breaks.
    let d: i64 = 10_000_000_000_000_001;
    assert_eq!(d as f64, 1e16, "the premise: d rounds down to a one-digit number");
    let dir = tempfile::tempdir().unwrap();
    let side = |file: &str, v: &[i64]| {
        let mut stages = Stages::default();
        stages.push("ids", Tensor::from_i64(vec![v.len()], v));
        let run = TensorRun {
            name: "model.tokens".into(),
            key: "model_tokens".into(),
            operation: "my_tokenizer".into(),
            params: Default::default(),
            stages,
            final_stage: "ids".into(),
            historical_final_sha256: None,
        };
        write_side(dir.path(), file, file, None, &[run])
    };
    let (l, r) = (side("left.json", &[0, 0]), side("right.json", &[d, 0]));
    let tol = dir.path().join("tol.json");
    std::fs::write(&tol, r#"{"schema": "parity.tolerances.v1", "operations": {"my_tokenizer": {"*": {"required": true, "max_abs": 0, "mean_abs": 0}}}}"#).unwrap();
    let suggested = dir.path().join("suggested.json");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run = |args: &[String]| {
        let o = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().unwrap();
        (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let (code, out) = run(&["check".into(), s(&l), s(&r), "--tolerances".into(), s(&tol), "--suggest-tolerances".into(), s(&suggested), "--tolerance-margin".into(), "1".into()]);
    assert_eq!(code, Some(0), "{out}");
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&suggested).unwrap()).unwrap();
    let max_abs = written["operations"]["my_tokenizer"]["ids"]["max_abs"].as_f64().unwrap();
    assert!(max_abs > d as f64, "suggested max_abs {max_abs} is not above {d}");
    let (code, out) = run(&["check".into(), s(&l), s(&r), "--tolerances".into(), s(&suggested), "--strict-stage-tolerances".into()]);
    assert_eq!(code, Some(0), "the suggestion passes what it was suggested from: {out}");
}
