//! `parity gate`'s outcome for a terminal: one row per case and
//! implementation, then the full text of each failing row.

use crate::compare::numbers;
use crate::golden::{GateFailure, GateOutcome, GateRow};
use crate::render::Format;
use std::collections::BTreeSet;
use std::fmt::Write;

pub fn render(o: &GateOutcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "golden gate: {} — {}, manifest OK ({} verified)\n",
        o.dir.display(),
        numbers::count(o.rows.iter().map(|r| r.case.as_str()).collect::<BTreeSet<_>>().len() as u64, "case"),
        numbers::count(o.files_verified as u64, "file")
    );
    let w = o.rows.iter().map(|r| r.case.len()).max().unwrap_or(4).max(4);
    let a = o.rows.iter().map(|r| r.against.chars().count()).max().unwrap_or(7).max(10);
    let _ = writeln!(s, "{:<w$} {:<15} {:<a$} {:>7}  {:<7}  {}", "case", "implementation", "against", "tensors", "verdict", "closest to its limit");
    for r in &o.rows {
        let _ = writeln!(
            s,
            "{:<w$} {:<15} {:<a$} {:>7}  {:<7}  {}",
            r.case,
            r.implementation,
            r.against,
            r.tensors,
            if r.passed { "PASS" } else { "FAIL" },
            r.summary
        );
    }
    let failed: Vec<&GateRow> = o.rows.iter().filter(|r| !r.passed).collect();
    for r in &failed {
        let _ = writeln!(s, "\n── {} / {} ──\n{}", r.case, r.implementation, r.failure.as_ref().map(detail).unwrap_or_default());
    }
    let _ = writeln!(
        s,
        "\n{} of {} passed",
        o.rows.len() - failed.len(),
        numbers::count(o.rows.len() as u64, "gate")
    );
    s
}

/// A failing row in full: what disagreed with the oracle, then the text of
/// each command that ran, one block per line.
fn detail(f: &GateFailure) -> String {
    let mut blocks = Vec::new();
    if !f.problems.is_empty() {
        blocks.push(f.problems.join("\n"));
    }
    if let Some(c) = &f.check {
        blocks.push(super::render(c, Format::Text));
    }
    if let Some(d) = &f.diff {
        blocks.push(super::diff::render(d, Format::Text));
    }
    blocks.join("\n")
}
