//! For CI step summaries (GitHub's `$GITHUB_STEP_SUMMARY` and the like):
//! the modes, then a table per tensor, then failing stages' details and the
//! report diffs folded away in `<details>`.

use super::md::{cell, code, html, table};
use super::*;
use std::fmt::Write;

pub(super) fn render(o: &CheckOutcome, listing: Listing) -> String {
    let mut out = String::new();
    let w = &mut out;
    let any_mode = o.modes.all().iter().any(|(_, m)| m.enabled);
    let headline = match (any_mode, o.passed()) {
        (false, _) => "reported only",
        (true, true) => "PASS",
        (true, false) => "FAIL",
    };
    let _ = writeln!(w, "## parity check: {headline}\n");
    let _ = writeln!(
        w,
        "LEFT {} ({}) · RIGHT {} ({}) · tolerances: {}\n",
        code(&o.left.report.display().to_string()),
        cell(&producer_phrase(&o.left.producer)),
        code(&o.right.report.display().to_string()),
        cell(&producer_phrase(&o.right.producer)),
        cell(&o.profile)
    );
    let _ = writeln!(w, "| mode | verdict | reasons |\n|---|---|---|");
    for (flag, m) in o.modes.all() {
        let _ = writeln!(w, "| `--{flag}` | {} | {} |", mode_state(m.enabled, m.holds), cell(&grouped_reasons(&m.reasons, listing).join("; ")));
    }
    let where_went_wrong = where_lines(o);
    if !where_went_wrong.is_empty() {
        let _ = writeln!(w);
        for line in where_went_wrong {
            let _ = writeln!(w, "- {}", cell(&line));
        }
    }
    for t in o.tensors.iter().filter(|t| listed(o, t, listing)) {
        let mark = if t.passed { "✅" } else { "❌" };
        let first =
            t.first_failing_stage.as_deref().map(|s| format!(", first failing stage {}", code(s))).unwrap_or_default();
        let _ = writeln!(w, "\n### {mark} {} · {} · {}{first}\n", code(&t.name), code(&t.operation), tensor_verdict(t));
        let mut head = vec!["stage", "dtype", "shape"];
        head.extend(METRIC_HEADERS);
        head.extend([TOLERANCE_HEADER, "verdict"]);
        let rows: Vec<Vec<String>> = t
            .stages
            .iter()
            .map(|s| {
                let mut row = vec![dtype_cell(s), shape_cell(s)];
                row.extend(metric_cells(s));
                row.push(tolerance_cell(s));
                let mut row: Vec<String> = row.iter().map(|c| cell(c)).collect();
                row.insert(0, code(&s.stage));
                // The bold marks are Markdown: only the text inside is escaped.
                row.push(match s.verdict {
                    Verdict::Fail => format!("**{}**: {}", cell(&stage_verdict(s)), cell(&s.failures.join("; "))),
                    _ => cell(&stage_verdict(s)),
                });
                row
            })
            .collect();
        let _ = write!(w, "{}", table(&head, &rows));
        let _ = writeln!(w, "\n{}", cell(&hash_line(t)));
        for s in &t.stages {
            if let Some(line) = logits_line(s) {
                let _ = writeln!(w, "\n**{}** {}", cell(&s.stage), cell(&line));
            }
        }
        // Outside the folded details: the explanation is what a reader came for.
        for s in t.stages.iter().filter(|s| s.explanation.is_some()) {
            if let Some(line) = explanation_line(s) {
                let _ = writeln!(w, "\n**{}** {}", cell(&s.stage), cell(&line));
            }
        }
        for s in t.stages.iter().filter(|s| wants_detail(s, o.top_diffs)) {
            let _ = writeln!(w, "\n<details><summary>{}: {}</summary>\n\n```", html(&s.stage), html(&stage_verdict(s)));
            for line in detail_lines(s, o.top_diffs) {
                let _ = writeln!(w, "{}", line.replace("```", "'''"));
            }
            let _ = writeln!(w, "```\n</details>");
        }
    }
    for (title, diff) in
        [("producer and baseline differ", &o.provenance_diff), ("tensors and stages present differ", &o.presence_diff)]
    {
        if let Some(d) = diff {
            let _ = writeln!(
                w,
                "\n<details><summary>{title}</summary>\n\n```diff\n{}```\n</details>",
                d.replace("```", "'''")
            );
        }
    }
    if let Some(line) = unlisted_line(o, listing) {
        let _ = writeln!(w, "\n{line}");
    }
    let _ = writeln!(w, "\n{}", overall_line(o));
    out
}
