//! For a terminal: one table line per stage, a detail block (in the words of
//! `torch.testing`) for each stage that needs explaining, then the modes.

use super::*;
use std::fmt::Write;

pub(super) fn render(o: &CheckOutcome, listing: Listing) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "parity check");
    let _ = writeln!(w, "  LEFT   {}  ({})", o.left.report.display(), producer_phrase(&o.left.producer));
    let _ = writeln!(w, "  RIGHT  {}  ({})", o.right.report.display(), producer_phrase(&o.right.producer));
    let _ = writeln!(w, "  tolerances: {}", o.profile);
    if let Some(d) = &o.provenance_diff {
        let _ = writeln!(w, "\nproducer and baseline differ:");
        push_indented(w, d, "  ");
    }
    if let Some(d) = &o.presence_diff {
        let _ = writeln!(w, "\ntensors and stages present differ:");
        push_indented(w, d, "  ");
    }
    for t in o.tensors.iter().filter(|t| listed(o, t, listing)) {
        let op = match &t.right_operation {
            Some(ro) => format!("{} (RIGHT: {ro})", t.operation),
            None => t.operation.clone(),
        };
        let _ = write!(w, "\n{}  {op}  {}", t.name, tensor_verdict(t));
        match &t.first_failing_stage {
            Some(s) => {
                let _ = writeln!(w, "  first failing stage: {s}");
            }
            None => {
                let _ = writeln!(w);
            }
        }
        let mut rows = vec![{
            let mut h = vec!["stage".to_string(), "dtype".into(), "shape".into()];
            h.extend(METRIC_HEADERS.iter().map(|s| s.to_string()));
            h.extend([TOLERANCE_HEADER.to_string(), "verdict".into()]);
            h
        }];
        for s in &t.stages {
            let mut row = vec![s.stage.clone(), dtype_cell(s), shape_cell(s)];
            row.extend(metric_cells(s));
            let mut verdict = stage_verdict(s);
            if s.verdict == Verdict::Fail {
                verdict = format!("{verdict}: {}", s.failures.join("; "));
            }
            row.extend([tolerance_cell(s), verdict]);
            rows.push(row);
        }
        for line in table(&rows) {
            let _ = writeln!(w, "  {line}");
        }
        for s in &t.stages {
            if let Some(line) = logits_line(s) {
                let _ = writeln!(w, "  {}: {line}", s.stage);
            }
        }
        for s in t.stages.iter().filter(|s| wants_detail(s, o.top_diffs)) {
            let _ = writeln!(w, "\n  {}: {}", s.stage, stage_verdict(s));
            for line in detail_lines(s, o.top_diffs) {
                let _ = writeln!(w, "    {line}");
            }
        }
        let _ = writeln!(w, "\n  {}", hash_line(t));
    }
    if let Some(line) = unlisted_line(o, listing) {
        let _ = writeln!(w, "\n{line}");
    }
    let _ = writeln!(w);
    for (flag, m) in o.modes.all() {
        let reasons = grouped_reasons(&m.reasons, listing);
        let _ = write!(w, "--{flag:<24} {}", mode_state(m.enabled, m.holds));
        match (m.enabled, reasons.as_slice()) {
            (_, []) => {
                let _ = writeln!(w);
            }
            (true, reasons) => {
                let _ = writeln!(w);
                for r in reasons {
                    let _ = writeln!(w, "    {r}");
                }
            }
            (false, reasons) => {
                let _ = writeln!(w, "  (not met: {})", reasons.join("; "));
            }
        }
    }
    for line in where_lines(o) {
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w, "{}", overall_line(o));
    out
}

fn push_indented(w: &mut String, text: &str, indent: &str) {
    for line in text.lines() {
        w.push_str(indent);
        w.push_str(line);
        w.push('\n');
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < r.len() {
                    line.extend(std::iter::repeat(' ').take(width[c] - cell.chars().count() + 2));
                }
            }
            line
        })
        .collect()
}
