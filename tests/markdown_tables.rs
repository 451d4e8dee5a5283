//! Every Markdown table parity writes (check, diff and merge-results,
//! inspect) stays one table whatever the names in it hold: each row has as
//! many cells as the delimiter row, as GitHub counts them.
//!
//! The oracle is GitHub's rule, written out here independently of the
//! renderer: cmark-gfm splits a row at every `|` that no backslash escapes,
//! a backslash escaping whichever character follows it; a leading and a
//! trailing `|` are dropped. When a row has more cells than the delimiter
//! row has columns, GitHub renders no table (the bug of issue 22: inspect's
//! `|x| max` header gave 16 header cells against 14 delimiter cells).

mod check_support;
mod checkpoint_support;

use checkpoint_support::{write_file, Model};
use parity::format::tensor::Tensor;
use parity::render::Format;

/// Cells of one table line, split as cmark-gfm splits them.
fn gfm_cells(line: &str) -> Vec<String> {
    let body = line.trim();
    let body = body.strip_prefix('|').unwrap_or(body);
    let mut cells = vec![String::new()];
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cells.last_mut().unwrap().push(c);
                if let Some(next) = chars.next() {
                    cells.last_mut().unwrap().push(next);
                }
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    // The trailing pipe leaves an empty last cell: not a column.
    if cells.last().is_some_and(|c| c.trim().is_empty()) && body.trim_end().ends_with('|') {
        cells.pop();
    }
    cells
}

fn is_delimiter(line: &str) -> bool {
    let cells = gfm_cells(line);
    !cells.is_empty() && cells.iter().all(|c| {
        let c = c.trim();
        !c.is_empty() && c.trim_matches(':').chars().all(|ch| ch == '-') && c.contains('-')
    })
}

/// Every table in `md`: (its header and rows, each with its cell count, and
/// the delimiter row's count). Panics naming the first row whose count is off.
fn assert_tables_hold(md: &str, what: &str) -> usize {
    let lines: Vec<&str> = md.lines().collect();
    let mut tables = 0;
    for i in 1..lines.len() {
        if !is_delimiter(lines[i]) || !lines[i - 1].trim_start().starts_with('|') {
            continue;
        }
        tables += 1;
        let columns = gfm_cells(lines[i]).len();
        let header = gfm_cells(lines[i - 1]).len();
        assert_eq!(header, columns, "{what}: the header has {header} cells, the delimiter row {columns}:\n{}\n\n{md}", lines[i - 1]);
        for row in lines[i + 1..].iter().take_while(|l| l.trim_start().starts_with('|')) {
            let n = gfm_cells(row).len();
            assert_eq!(n, columns, "{what}: a row has {n} cells, the delimiter row {columns}:\n{row}\n\n{md}");
        }
    }
    tables
}

/// Names that each break a table some way: a pipe, a backslash before a
/// pipe (escaping only the pipe leaves `\\|`, which splits), a trailing
/// backslash, markup, backticks.
const HOSTILE: [&str; 5] = ["a|b", "back\\|slash", "ends.with\\", "<b>bold</b> & co", "tick`s``"];

fn f32t(v: &[f32]) -> Tensor {
    Tensor::from_f32(vec![v.len()], v)
}

#[test]
fn the_oracle_splits_as_github_does() {
    // Hand-counted against the GFM spec's table examples (§4.10).
    assert_eq!(gfm_cells("| a | b |").len(), 2);
    assert_eq!(gfm_cells("| `\\|` | b |").len(), 2);
    assert_eq!(gfm_cells("| a \\| b |").len(), 1);
    assert_eq!(gfm_cells("| a \\\\| b |").len(), 2, "an escaped backslash leaves the pipe splitting");
    assert_eq!(gfm_cells("| |x| max | b |").len(), 4);
    assert!(is_delimiter("|---|---|") && is_delimiter("| :-- | --: |") && !is_delimiter("| a | - |"));
}

#[test]
fn inspect_markdown_is_one_table_with_the_abs_max_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut m = Model::new();
    for (i, name) in HOSTILE.iter().enumerate() {
        m.insert(name.to_string(), f32t(&[i as f32, -1.0, 2.5]));
    }
    write_file(&path, &m);
    let o = parity::inspect::inspect(&path, &Default::default()).unwrap();
    let md = parity::render::inspect::render(&o, Format::Markdown);
    assert_eq!(assert_tables_hold(&md, "inspect"), 1);
    // The header is 14 columns, `|x| max` among them, escaped.
    assert!(md.contains("| \\|x\\| max |"), "{md}");
    // And with headers only (a different table).
    let o = parity::inspect::inspect(&path, &parity::inspect::InspectOptions { headers_only: true, ..Default::default() }).unwrap();
    assert_eq!(assert_tables_hold(&parity::render::inspect::render(&o, Format::Markdown), "inspect --headers-only"), 1);
}

#[test]
fn diff_and_merge_results_markdown_hold_their_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (mut l, mut r) = (Model::new(), Model::new());
    for name in HOSTILE {
        l.insert(name.to_string(), f32t(&[1.0, 2.0]));
        r.insert(name.to_string(), f32t(&[1.0, 2.5]));
    }
    // A within pair too (its own table), and one-sided ones.
    l.insert("w|in".into(), f32t(&[1.0]));
    r.insert("w|in".into(), Tensor::from_f64(vec![1], &[1.0]));
    l.insert("only|left".into(), f32t(&[1.0]));
    let (lp, rp) = (dir.path().join("l.safetensors"), dir.path().join("r.safetensors"));
    write_file(&lp, &l);
    write_file(&rp, &r);
    let o = parity::diff::diff(&lp, &rp, &Default::default()).unwrap();
    let md = parity::render::diff::render(&o, Format::Markdown);
    assert_eq!(assert_tables_hold(&md, "diff"), 3, "counts, failing, within");

    // merge-results renders through the same code; check it end to end.
    let mut parts = Vec::new();
    for k in 1..=2 {
        let part = dir.path().join(format!("p{k}.json"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["diff", lp.to_str().unwrap(), rp.to_str().unwrap(), "--format", "json", "--partition", &format!("{k}/2"), "--output"])
            .arg(&part)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        parts.push(part);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parity")).arg("merge-results").args(&parts).args(["--format", "markdown"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8(out.stdout).unwrap();
    assert_eq!(assert_tables_hold(&md, "merge-results"), 3);
}

#[test]
fn check_markdown_holds_its_tables() {
    use check_support::*;
    let dir = tempfile::tempdir().unwrap();
    let (stages, params) = svf_stages(3, [4, 4, 2]);
    let mut spoiled = stages.clone();
    edit_f32(&mut spoiled, "matmul_pre_norm", |i, x| if i == 0 { x + 1.0 } else { x });
    let lefts: Vec<_> = HOSTILE.iter().map(|n| run(n, stages.clone(), params.clone())).collect();
    let rights: Vec<_> = HOSTILE.iter().map(|n| run(n, spoiled.clone(), params.clone())).collect();
    let left = write_side(dir.path(), "python.json", "numpy-f32", None, &lefts);
    let right = write_side(dir.path(), "rust.json", "parity-fast", None, &rights);
    let o = parity::check::check(&left, &right, &parity::check::CheckOptions { modes: parity::check::Modes { strict_stage_tolerances: true, ..Default::default() }, ..Default::default() }).unwrap();
    let md = parity::render::render(&o, Format::Markdown);
    assert_eq!(assert_tables_hold(&md, "check"), 1 + HOSTILE.len(), "the modes, then one per tensor");
}
