//! SPEC §12: `parity check --format html` writes one self-contained page —
//! the verdict table, and per failing stage a log10|diff| histogram, an
//! error heatmap and row/column profiles (stages of two or more axes) —
//! with bounded, thread-count-independent plot data and every name escaped.

mod browser_support;
mod check_support;

use check_support::write_side;
use parity::check::{check, CheckOptions, CheckOutcome};
use parity::compare::plots::{BINS, GRID};
use parity::format::report::write::TensorRun;
use parity::format::tensor::Tensor;
use parity::ops::Stages;
use parity::render::{render, Format};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A name a report may hold and a page must not interpret.
const HOSTILE: &str = "layers.0.<b>\"q\" & 'k'</b>.weight";
const PLAIN: &str = "model.layers.1.mlp.up_proj.weight";
const VECTOR: &str = "model.norm.weight";

struct Pair {
    _dir: tempfile::TempDir,
    left: PathBuf,
    right: PathBuf,
}

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

fn write_pair(tensors: Vec<(&str, Tensor, Tensor)>) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (l, r): (Vec<_>, Vec<_>) =
        tensors.into_iter().map(|(name, a, b)| (identity_run(name, a), identity_run(name, b))).unzip();
    let left = write_side(dir.path(), "python.json", "numpy-f32", None, &l);
    let right = write_side(dir.path(), "rust.json", "parity-fast", None, &r);
    Pair { _dir: dir, left, right }
}

/// Smooth values with a pattern of small and large errors on the right.
fn spoiled(rows: usize, cols: usize) -> (Tensor, Tensor) {
    let n = rows * cols;
    let l: Vec<f32> = (0..n).map(|k| ((k as f32) * 0.37).sin()).collect();
    let r: Vec<f32> = l
        .iter()
        .enumerate()
        .map(|(k, &x)| match k % 7 {
            0 => x + 1e-3 * ((k / cols) as f32 + 1.0),
            3 => x - 2e-6,
            _ => x,
        })
        .collect();
    (Tensor::from_f32(vec![rows, cols], &l), Tensor::from_f32(vec![rows, cols], &r))
}

/// A failing 2-D stage (named to need escaping), a passing one, a failing 1-D one.
fn mixed(rows: usize, cols: usize) -> Pair {
    let (a, b) = spoiled(rows, cols);
    let same = Tensor::from_f32(vec![4, 5], &[0.25; 20]);
    let v: Vec<f32> = (0..50).map(|k| k as f32).collect();
    let mut w = v.clone();
    w[7] += 0.5;
    write_pair(vec![
        (HOSTILE, a, b),
        (PLAIN, same.clone(), same),
        (VECTOR, Tensor::from_f32(vec![50], &v), Tensor::from_f32(vec![50], &w)),
    ])
}

fn checked(p: &Pair) -> CheckOutcome {
    check(&p.left, &p.right, &CheckOptions { plots: true, ..CheckOptions::default() }).unwrap()
}

fn page(p: &Pair) -> String {
    render(&checked(p), Format::Html)
}

/// Plots a failing F32 stage gets: the log10 |diff| and ULP histograms, and
/// for two or more axes the heatmap and both profiles.
const PLOTS_2D: usize = 5;
const PLOTS_1D: usize = 2;

#[test]
fn the_page_has_a_row_per_stage() {
    let p = mixed(100, 300);
    let o = checked(&p);
    let html = render(&o, Format::Html);
    let stages: usize = o.tensors.iter().map(|t| t.stages.len()).sum();
    assert_eq!(stages, 3);
    assert_eq!(html.matches("<tr data-status=").count(), stages, "{html}");
    assert_eq!(html.matches("<tr data-status=\"fail\">").count(), 2);
    assert_eq!(html.matches("<tr data-status=\"pass\">").count(), 1);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
}

#[test]
fn a_failing_2d_stage_gets_its_plots_with_a_bounded_heatmap() {
    let html = page(&mixed(100, 300));
    assert_eq!(html.matches("<svg class=\"plot\"").count(), PLOTS_2D + PLOTS_1D, "{html}");
    // 100 × 300 elements on a grid of at most 64 × 64.
    let cells = html.matches("h1v1h-1z").count();
    assert_eq!(cells, GRID * GRID);
    assert!(html.contains("max |diff| per row"));
    assert!(html.contains("max |diff| per column (last axis)"));
    // The row profile keeps every row (100 ≤ 256), the column one is downsampled.
    assert!(html.contains("(100 points over 100 indices"), "{html}");
    assert!(html.contains("(256 points over 300 indices"), "{html}");
}

#[test]
fn the_page_fetches_nothing() {
    let html = page(&mixed(20, 30));
    for needle in ["http://", "https://", "src=", "<link", "@import", "url(http"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
}

#[test]
fn names_from_the_reports_are_escaped() {
    let html = page(&mixed(20, 30));
    assert!(!html.contains(HOSTILE));
    assert!(!html.contains("<b>\"q\""));
    let escaped = "layers.0.&lt;b&gt;&quot;q&quot; &amp; &#39;k&#39;&lt;/b&gt;.weight";
    assert!(html.contains(escaped), "{html}");
}

#[test]
fn histogram_counts_add_up_to_the_element_count() {
    // Left all 0, so |diff| is the right value, chosen away from bin edges:
    // 0 ×2 (the exactly-0 bin), 1e-14 (below 1e-12), 2e-3 ×2 (the bin
    // [1e-3, 3.16e-3): index (−3 + 12) · 2 = 18), 5e-7 (the bin
    // [3.16e-7, 1e-6): index (−6.5 + 12) · 2 = 11), 1e5 (at or above 1e4), NaN.
    let right = [0.0, 1e-14, 2e-3, 5e-7, 1e5, f32::NAN, 0.0, 2e-3];
    let p = write_pair(vec![(PLAIN, Tensor::from_f32(vec![2, 4], &[0.0; 8]), Tensor::from_f32(vec![2, 4], &right))]);
    let o = checked(&p);
    let plots = o.tensors[0].stages[0].plots.as_ref().expect("the failing stage is plotted");
    let h = &plots.histogram;
    let mut bins = vec![0u64; BINS];
    bins[18] = 2;
    bins[11] = 1;
    assert_eq!((h.zero, h.below, &h.bins, h.above, h.non_finite), (2, 1, &bins, 1, 1));
    assert_eq!(h.total(), 8);
    // The heatmap holds each element (2 × 4 fits the grid), NaN as +inf.
    let m = plots.heatmap.as_ref().unwrap();
    assert_eq!((m.grid_rows, m.grid_cols), (2, 4));
    assert_eq!(m.cells[4], 1e5);
    assert_eq!(m.cells[5], f64::INFINITY);
    assert_eq!(plots.row_profile.as_ref().unwrap().points, vec![2e-3f32 as f64, f64::INFINITY]);
    assert_eq!(plots.column_profile.as_ref().unwrap().points[2], 2e-3f32 as f64);
}

#[test]
fn ulp_histogram_counts_by_hand() {
    // f32 neighbours of 1.0 by bit pattern: distances 0, 1, 3, 1000, and a
    // NaN, an inf against a finite value, equal infinities (distance 0),
    // and −0 against +0 (one value: distance 0).
    let one = 1.0f32.to_bits();
    let left = [1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, f32::INFINITY, 0.0];
    let right = [
        1.0f32,
        f32::from_bits(one + 1),
        f32::from_bits(one - 3),
        f32::from_bits(one + 1000),
        f32::NAN,
        f32::INFINITY,
        f32::INFINITY,
        -0.0,
    ];
    let p = write_pair(vec![(PLAIN, Tensor::from_f32(vec![2, 4], &left), Tensor::from_f32(vec![2, 4], &right))]);
    let o = checked(&p);
    let u = o.tensors[0].stages[0].plots.as_ref().unwrap().ulp.as_ref().expect("an F32 pair gets a ULP histogram");
    let mut buckets = vec![0u64; parity::compare::plots::ULP_BUCKETS];
    buckets[0] = 3; // 0, equal infinities, ±0
    buckets[1] = 1; // [1, 2)
    buckets[2] = 1; // [2, 4): 3
    buckets[10] = 1; // [512, 1024): 1000
    assert_eq!((&u.buckets, u.non_finite), (&buckets, 2));
    assert_eq!(u.total(), 8);
    let labels: Vec<String> = u.labelled().into_iter().map(|(l, _)| l).collect();
    assert_eq!(labels.first().map(String::as_str), Some("0"));
    assert_eq!(labels[10], "512–1023");
    assert_eq!(labels.len(), 12, "up to the last non-empty bucket, then non-finite: {labels:?}");
    assert!(page(&p).contains("ULP distance histogram: 8 elements"));
}

fn parity_html(p: &Pair, out: &Path, threads: &str) -> Vec<u8> {
    let status = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["check", p.left.to_str().unwrap(), p.right.to_str().unwrap(), "--format", "html", "--output"])
        .arg(out)
        .env("RAYON_NUM_THREADS", threads)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "no strictness mode: reported only");
    std::fs::read(out).unwrap()
}

#[test]
fn the_page_does_not_depend_on_the_thread_count() {
    // 300 × 700: several spans of parallel work, a downsampled grid and profiles.
    let p = mixed(300, 700);
    let dir = tempfile::tempdir().unwrap();
    let one = parity_html(&p, &dir.path().join("one.html"), "1");
    let two = parity_html(&p, &dir.path().join("two.html"), "2");
    assert!(one == two, "the pages differ between 1 and 2 threads");
    assert_eq!(String::from_utf8(one).unwrap().matches("<svg class=\"plot\"").count(), PLOTS_2D + PLOTS_1D);
}

#[test]
fn inspect_writes_no_page() {
    let p = mixed(4, 5);
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(["inspect", p.left.to_str().unwrap(), "--format", "html"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inspect --format html: inspect writes text, json or markdown"));
}

/// The page's script runs in a real browser: it counts the plots drawn with
/// content into `data-rendered`, which only exists once it ran.
#[test]
fn a_browser_runs_the_page_script() {
    let p = mixed(100, 300);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    parity_html(&p, &report, "2");
    let Some(dom) = browser_support::dump_dom(&report) else { return };
    let expected = PLOTS_2D + PLOTS_1D;
    assert_eq!(browser_support::rendered(&dom), Some(expected), "the script did not count {expected} plots");
    // The filter ran too: it says how many rows it shows.
    assert!(dom.contains("3 of 3 stages"), "{dom}");
}

#[test]
fn plot_stages_draws_chosen_passing_stages_too() {
    // mixed(): two failing stages and one passing one.
    let p = mixed(20, 30);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let run = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["check", p.left.to_str().unwrap(), p.right.to_str().unwrap(), "--format", "html", "--output", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(&out).unwrap()
    };
    let failing_only = run(&[]);
    let all = run(&["--plot-stages", "*"]);
    assert_eq!(failing_only.matches("<section id=\"stage-").count(), 2);
    assert_eq!(all.matches("<section id=\"stage-").count(), 3, "the passing stage gets its section");
    assert!(all.matches("<svg class=\"plot\"").count() > failing_only.matches("<svg class=\"plot\"").count());
    // Without html it is a usage error, not a silently ignored flag.
    let o = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["check", p.left.to_str().unwrap(), p.right.to_str().unwrap(), "--plot-stages", "*"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--plot-stages"));
}
