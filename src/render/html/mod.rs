//! For a person looking into a failure: one self-contained page — the verdict
//! table of every stage (`check`) or tensor pair (`diff`), sortable and
//! filterable by status, then per failing stage or differing pair a
//! histogram of log10|diff| (and of ULP distance), and for two or more axes
//! an error heatmap and the row and column error profiles.
//!
//! Self-contained because it is opened from disk, attached to a CI run or
//! mailed: CSS, SVG and the small script are inline and nothing is fetched.
//! Every name comes from a report and can hold anything, so every piece of
//! text goes through [`esc`]. The script only sorts, filters and counts the
//! plots it finds drawn (`data-rendered` on `<body>`, which a headless
//! browser test reads); the page reads fine without it.

mod charts;
mod page_check;
mod page_diff;

use super::*;
use std::fmt::Write;

pub(super) use page_check::render;
pub(super) use page_diff::render_diff;

/// A stage's status as the filter knows it (`data-status`), and its label.
pub(super) fn status(s: &StageResult) -> (&'static str, String) {
    let key = match s.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail if s.tolerance.required => "fail",
        Verdict::Fail => "optional-fail",
        Verdict::Missing => "missing",
    };
    (key, stage_verdict(s))
}

/// A sort key the script reads as a number (`Infinity` included); empty sorts last.
pub(super) fn key(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{x:e}")
    }
}

/// The verdict table's opening: its columns (numeric ones sort by value)
/// and what a row is (singular), for the filter's count.
pub(super) fn table_head(w: &mut String, unit: &str, heads: &[(&str, bool)]) {
    let _ = write!(w, "<table id=\"verdicts\" data-unit=\"{unit}\">\n<thead><tr>");
    for (h, numeric) in heads {
        let _ = write!(w, "<th{} title=\"sort\">{}</th>", if *numeric { " data-num=\"1\"" } else { "" }, esc(h));
    }
    let _ = writeln!(w, "</tr></thead>\n<tbody>");
}

/// Escaped for text and for double-quoted attributes alike.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's style sheet (`page.css`), inlined into every page.
const CSS: &str = include_str!("page.css");

/// Sort on a header click (numbers by `data-v`, text otherwise; again to
/// reverse), filter by status, and count the plots drawn with content.
const SCRIPT: &str = include_str!("page.js");
