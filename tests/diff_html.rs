//! SPEC §12 for `parity diff --format html`: one self-contained page with
//! every tensor pair in the verdict table (sortable, filterable by status),
//! and per `differs` pair its explanation and plots — log10|diff| and ULP
//! histograms, and for 2-D pairs an error heatmap and row/column profiles.
//! The expected statuses are the golden case's, which numpy decided
//! (golden/diff_two_shards/NOTE.md), not this code.

mod browser_support;
mod checkpoint_support;

use checkpoint_support::{write_file, Model};
use parity::format::tensor::Tensor;
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/diff_two_shards")
}

/// `parity diff` (or `merge-results`) with `args`; the exit code and the page.
fn parity(args: &[&str], out: &Path, threads: &str) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(args)
        .args(["--format", "html", "--output"])
        .arg(out)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    let page = std::fs::read_to_string(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap(), page)
}

fn golden_page(out: &Path, threads: &str) -> (i32, String) {
    let g = golden();
    parity(&["diff", g.join("left").to_str().unwrap(), g.join("right").to_str().unwrap()], out, threads)
}

/// The `data-status` of the verdict table's row for `tensor`.
fn row_status<'a>(page: &'a str, tensor: &str) -> &'a str {
    let cell = format!("<td>{tensor}</td>");
    let linked = format!(">{tensor}</a></td>");
    let at = page.find(&cell).or_else(|| page.find(&linked)).unwrap_or_else(|| panic!("no row for {tensor}"));
    let row = &page[..at];
    let start = row.rfind("<tr data-status=\"").unwrap() + "<tr data-status=\"".len();
    row[start..].split('"').next().unwrap()
}

/// Plots per differing pair: 2-D: histogram, ULP histogram, heatmap, two
/// profiles; 1-D: the two histograms.
const PLOTS: usize = 5 + 2;

#[test]
fn the_page_lists_every_pair_with_the_status_numpy_expects() {
    let dir = tempfile::tempdir().unwrap();
    let (code, page) = golden_page(&dir.path().join("d.html"), "2");
    assert_eq!(code, 1, "two pairs differ: the exit code is the verdict's");
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<title>parity diff: FAIL</title>"));
    for (tensor, expected) in [
        ("bert.embeddings.word_embeddings.weight", "identical"),
        ("bert.encoder.layer.0.attention.self.query.bias", "identical"),
        ("bert.encoder.layer.0.attention.self.query.weight", "differs"),
        ("bert.encoder.layer.0.intermediate.dense.bias", "identical"),
        ("bert.encoder.layer.0.output.dense.bias", "within"),
        ("bert.encoder.layer.1.attention.self.key.weight", "within"),
        ("bert.encoder.layer.1.output.LayerNorm.weight", "differs"),
        ("bert.encoder.layer.1.output.dense.weight", "shape_mismatch"),
        ("bert.pooler.dense.weight", "only_left"),
        ("cls.predictions.bias", "only_right"),
    ] {
        assert_eq!(row_status(&page, tensor), expected, "{tensor}");
    }
    assert_eq!(page.matches("<tr data-status=").count(), 10);
    // The filter offers every status with its count.
    assert!(page.contains("<option value=\"differs\">differs (2)</option>"), "{page}");
    assert!(page.contains("<option value=\"identical\">identical (3)</option>"));
}

#[test]
fn each_differing_pair_gets_a_section_with_its_plots_and_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let (_, page) = golden_page(&dir.path().join("d.html"), "2");
    assert_eq!(page.matches("<section id=\"tensor-").count(), 2);
    assert_eq!(page.matches("<svg class=\"plot\"").count(), PLOTS);
    // The 16 × 16 query weight: a heatmap on a 16 × 16 grid, each profile 16 points.
    assert!(page.contains("16 × 16 rows × columns on a 16 × 16 grid"), "no heatmap");
    assert_eq!(page.matches("(16 points over 16 indices, log scale)").count(), 2);
    // The norm weight that gained "+1" is named, in the table and in its section.
    assert_eq!(page.matches("constant offset c = 1: right = left + c").count(), 2, "{page}");
    // The query weight's noise is not explained.
    let query = &page[page.find("<section id=\"tensor-0\">").unwrap()..page.find("<section id=\"tensor-1\">").unwrap()];
    assert!(query.contains("attention.self.query.weight") && !query.contains("explanation:"), "{query}");
}

#[test]
fn the_page_fetches_nothing_and_does_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let (_, one) = golden_page(&dir.path().join("one.html"), "1");
    let (_, two) = golden_page(&dir.path().join("two.html"), "2");
    assert!(one == two, "the pages differ between 1 and 2 threads");
    for fetch in ["src=", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!one.contains(fetch), "the page fetches something: {fetch}");
    }
}

#[test]
fn names_from_checkpoints_are_escaped() {
    let hostile = "layers.0.<b>\"q\" & 'k'</b>.weight";
    let (l, r) = (Tensor::from_f32(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), Tensor::from_f32(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0]));
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = (dir.path().join("l.safetensors"), dir.path().join("r.safetensors"));
    write_file(&left, &Model::from([(hostile.to_string(), l)]));
    write_file(&right, &Model::from([(hostile.to_string(), r)]));
    let (code, page) = parity(&["diff", left.to_str().unwrap(), right.to_str().unwrap()], &dir.path().join("d.html"), "2");
    assert_eq!(code, 1);
    assert!(!page.contains("<b>\"q\""), "a name was written as markup");
    assert!(page.contains("layers.0.&lt;b&gt;&quot;q&quot; &amp; &#39;k&#39;&lt;/b&gt;.weight"));
}

#[test]
fn merged_partitions_make_a_page_without_plots() {
    let g = golden();
    let dir = tempfile::tempdir().unwrap();
    let mut parts = Vec::new();
    for k in 1..=2 {
        let part = dir.path().join(format!("p{k}.json"));
        let o = Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["diff", g.join("left").to_str().unwrap(), g.join("right").to_str().unwrap(), "--format", "json", "--partition", &format!("{k}/2"), "--output"])
            .arg(&part)
            .output()
            .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&o.stderr));
        parts.push(part.to_str().unwrap().to_string());
    }
    let mut args = vec!["merge-results"];
    args.extend(parts.iter().map(String::as_str));
    let (code, page) = parity(&args, &dir.path().join("m.html"), "2");
    assert_eq!(code, 1);
    assert_eq!(page.matches("<tr data-status=").count(), 10);
    assert_eq!(page.matches("<section id=\"tensor-").count(), 2);
    assert_eq!(page.matches("<svg class=\"plot\"").count(), 0);
    assert_eq!(page.matches("merged from partitions").count(), 2);
    // The explanation travels in the partitions' JSON.
    assert!(page.contains("constant offset c = 1"));
}

/// The page's script runs in a real browser: it counts the plots drawn with
/// content into `data-rendered`, and the filter says how many rows it shows.
#[test]
fn a_browser_runs_the_page_script() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("d.html");
    golden_page(&page, "2");
    let Some(dom) = browser_support::dump_dom(&page) else { return };
    assert_eq!(browser_support::rendered(&dom), Some(PLOTS), "the script did not count {PLOTS} plots");
    // It opens on the 7 pairs that are not identical; the 3 identical rows hidden.
    assert!(dom.contains("7 of 10 tensors"), "{dom}");
    assert_eq!(dom.matches("<tr data-status=\"identical\" style=\"display: none;\">").count(), 3, "{dom}");
}

/// Among many identical pairs the few that differ are what a reader came
/// for: the page opens on every pair but the identical ones (as the text
/// output lists them), failures first, and "all" is one click away.
#[test]
fn the_page_opens_on_what_is_not_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (mut left, mut right) = (Model::new(), Model::new());
    for i in 0..40 {
        let t = Tensor::from_f32(vec![2], &[i as f32, 1.0]);
        left.insert(format!("layers.{i:02}.w"), t.clone());
        right.insert(format!("layers.{i:02}.w"), t);
    }
    // Two changed pairs, in the middle and at the end of the name order.
    right.insert("layers.17.w".into(), Tensor::from_f32(vec![2], &[17.0, 2.0]));
    right.insert("layers.39.w".into(), Tensor::from_f32(vec![2], &[39.0, 2.0]));
    let (l, r) = (dir.path().join("l.safetensors"), dir.path().join("r.safetensors"));
    write_file(&l, &left);
    write_file(&r, &right);
    let (code, page) = parity(&["diff", l.to_str().unwrap(), r.to_str().unwrap()], &dir.path().join("d.html"), "2");
    assert_eq!(code, 1);
    // The filter is set to everything but identical when the page loads.
    assert!(page.contains("<option value=\"\">all (40)</option><option value=\"!identical\" selected>all but identical (2)</option>"), "{page}");
    assert_eq!(page.matches(" selected>").count(), 1);
    // The two differing rows lead the table, in name order, then the 38 identical ones.
    let rows: Vec<&str> = page.match_indices("<tr data-status=\"").map(|(at, _)| page[at + 17..].split('"').next().unwrap()).collect();
    assert_eq!(rows.len(), 40);
    assert_eq!(&rows[..2], ["differs", "differs"]);
    assert!(rows[2..].iter().all(|s| *s == "identical"));
    assert!(page.find(">layers.17.w</a>").unwrap() < page.find(">layers.39.w</a>").unwrap());
    assert!(page.find(">layers.39.w</a>").unwrap() < page.find("<td>layers.00.w</td>").unwrap());
    // Each link still leads to its own section.
    assert!(page.contains("<a href=\"#tensor-0\">layers.17.w</a>") && page.contains("<a href=\"#tensor-1\">layers.39.w</a>"));

    // All identical: nothing to open on but all.
    let (code, page) = parity(&["diff", l.to_str().unwrap(), l.to_str().unwrap()], &dir.path().join("same.html"), "2");
    assert_eq!(code, 0);
    assert!(!page.contains("value=\"!identical\"") && !page.contains(" selected>"), "{page}");
}

/// A pair too large for the explainer to hold decoded (over 2²⁵ elements)
/// still gets its plots, streamed piece by piece; it gets no explanation.
#[test]
fn a_pair_over_the_explainers_limit_is_plotted_from_a_streaming_read() {
    let (rows, cols) = (8193usize, 4096usize);
    assert!(rows * cols > parity::compare::explain::MAX_ELEMENTS);
    let one = parity::numeric::round::f32_to_bf16_bits(1.0);
    let left = vec![one; rows * cols];
    let mut right = left.clone();
    // |diff| 1 at the last element: the last cell, row point and column point.
    right[rows * cols - 1] = parity::numeric::round::f32_to_bf16_bits(2.0);
    let dir = tempfile::tempdir().unwrap();
    let (l, r) = (dir.path().join("l.safetensors"), dir.path().join("r.safetensors"));
    let tensor = |bits: &[u16]| Tensor::from_u16_bits(parity::format::dtype::DType::BF16, vec![rows, cols], bits);
    write_file(&l, &Model::from([("w".to_string(), tensor(&left))]));
    write_file(&r, &Model::from([("w".to_string(), tensor(&right))]));
    drop((left, right));
    let opts = parity::diff::DiffOptions { plots: true, ..Default::default() };
    let o = parity::diff::diff(&l, &r, &opts).unwrap();
    let t = &o.tensors[0];
    assert_eq!(t.status, parity::diff::outcome::Status::Differs);
    assert!(t.explanation.is_none(), "over the limit nothing is explained");
    let p = t.plots.as_ref().expect("plots, streamed");
    assert_eq!((p.histogram.zero, p.histogram.total()), ((rows * cols - 1) as u64, (rows * cols) as u64));
    let h = p.heatmap.as_ref().unwrap();
    assert_eq!((h.grid_rows, h.grid_cols), (64, 64));
    assert_eq!(h.cells.iter().filter(|&&c| c != 0.0).count(), 1);
    assert_eq!(h.cells[64 * 64 - 1], 1.0);
    assert_eq!(p.row_profile.as_ref().unwrap().points.last(), Some(&1.0));
    assert_eq!(p.column_profile.as_ref().unwrap().points.last(), Some(&1.0));
    assert_eq!(p.ulp.as_ref().unwrap().buckets[0], (rows * cols - 1) as u64);
}
