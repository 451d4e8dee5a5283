//! `parity check`'s page: the verdict table of every stage, then a section
//! per failing (or `--plot-stages`) stage with its plots.

use super::*;
use crate::compare::plots::StagePlots;
use std::fmt::Write;
use super::charts::*;

pub(in crate::render) fn render(o: &CheckOutcome) -> String {
    let any_mode = o.modes.all().iter().any(|(_, m)| m.enabled);
    let headline = match (any_mode, o.passed()) {
        (false, _) => "reported only",
        (true, true) => "PASS",
        (true, false) => "FAIL",
    };
    let mut out = String::new();
    let w = &mut out;
    let _ = write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>parity check: {headline}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>parity check: {headline}</h1>\n"
    );
    let _ = writeln!(
        w,
        "<p>LEFT <code>{}</code> ({}) · RIGHT <code>{}</code> ({}) · tolerances: {}</p>\n<p><b>{}</b></p>",
        esc(&o.left.report.display().to_string()),
        esc(&producer_phrase(&o.left.producer)),
        esc(&o.right.report.display().to_string()),
        esc(&producer_phrase(&o.right.producer)),
        esc(&o.profile),
        esc(&overall_line(o))
    );
    let _ = writeln!(w, "<table class=\"modes\"><tr><th>mode</th><th>verdict</th><th>reasons</th></tr>");
    for (flag, m) in o.modes.all() {
        let _ = writeln!(
            w,
            "<tr><td><code>--{flag}</code></td><td>{}</td><td>{}</td></tr>",
            mode_state(m.enabled, m.holds),
            esc(&m.reasons.join("; "))
        );
    }
    let _ = writeln!(w, "</table>");
    for line in where_lines(o) {
        let _ = writeln!(w, "<p class=\"where\">{}</p>", esc(&line));
    }
    error_growth(w, o);
    verdict_table(w, o);
    let failing: Vec<(&TensorResult, &StageResult)> =
        o.tensors.iter().flat_map(|t| t.stages.iter().map(move |s| (t, s))).filter(|(_, s)| sectioned(s)).collect();
    if !failing.is_empty() {
        let _ = writeln!(w, "<h2>Failing and chosen stages</h2>");
    }
    for (k, (t, s)) in failing.iter().enumerate() {
        stage_section(w, k, t, s);
    }
    let _ = write!(w, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

pub(super) fn verdict_table(w: &mut String, o: &CheckOutcome) {
    let _ = writeln!(
        w,
        "<h2>Stages</h2>\n<p><label>Show <select id=\"filter\"><option value=\"\">all</option><option value=\"fail\">FAIL</option><option value=\"optional-fail\">fail (optional)</option><option value=\"missing\">missing</option><option value=\"pass\">pass</option></select></label> <span id=\"shown\"></span></p>"
    );
    let heads = [
        ("tensor", false),
        ("stage", false),
        ("status", false),
        ("dtype", false),
        ("shape", false),
        ("max_abs", true),
        ("mean_abs", true),
        ("max ULP", true),
        ("SQNR dB", true),
        (TOLERANCE_HEADER, false),
        ("explanation", false),
    ];
    table_head(w, "stage", &heads);
    let mut failing = 0;
    for t in &o.tensors {
        for s in &t.stages {
            let (k, label) = status(s);
            let stage = if sectioned(s) {
                failing += 1;
                format!("<a href=\"#stage-{}\">{}</a>", failing - 1, esc(&s.stage))
            } else {
                esc(&s.stage)
            };
            let m = s.metrics.as_ref();
            let num = |x: Option<f64>, shown: String| match x {
                Some(x) => format!("<td data-v=\"{}\">{}</td>", key(x), esc(&shown)),
                None => "<td data-v=\"\">-</td>".into(),
            };
            let _ = writeln!(
                w,
                "<tr data-status=\"{k}\"><td>{}</td><td>{stage}</td><td class=\"{k}\">{}</td><td>{}</td><td>{}</td>{}{}{}{}<td>{}</td><td>{}</td></tr>",
                esc(&t.name),
                esc(&label),
                esc(&dtype_cell(s)),
                esc(&shape_cell(s)),
                num(m.map(|m| m.max_abs), m.map(|m| numbers::diff(m.max_abs, m.max_abs_int)).unwrap_or_default()),
                num(m.map(|m| m.mean_abs), m.map(|m| short(m.mean_abs)).unwrap_or_default()),
                match m.and_then(|m| m.max_ulp) {
                    Some(u) => format!("<td data-v=\"{u}\">{}</td>", numbers::thousands(u)),
                    None => "<td data-v=\"\">n/a</td>".into(),
                },
                num(m.map(|m| m.sqnr_db), m.map(|m| numbers::db(m.sqnr_db)).unwrap_or_default()),
                esc(&tolerance_cell(s)),
                // The explanation column also carries a --logits stage's token metrics.
                [s.explanation.as_ref().map(|e| e.sentence()), s.logits.as_ref().map(crate::compare::logits::line)]
                    .into_iter()
                    .flatten()
                    .map(|t| esc(&t))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
    }
    let _ = writeln!(w, "</tbody>\n</table>");
}

/// A stage gets its own section when it failed, or was plotted
/// (`--plot-stages`).
pub(super) fn sectioned(s: &StageResult) -> bool {
    s.verdict == Verdict::Fail || s.plots.is_some()
}

pub(super) fn stage_section(w: &mut String, k: usize, t: &TensorResult, s: &StageResult) {
    let _ = writeln!(
        w,
        "<section id=\"stage-{k}\">\n<h3><code>{}</code> · <code>{}</code> · {}</h3>",
        esc(&t.name),
        esc(&s.stage),
        esc(&stage_verdict(s))
    );
    let _ = writeln!(w, "<pre>{}</pre>", esc(&detail_lines(s, 0).join("\n")));
    let Some(p) = &s.plots else {
        let _ = writeln!(
            w,
            "<p class=\"note\">Not plotted: the sides differ in shape, or the stage is empty.</p>\n</section>"
        );
        return;
    };
    let flattened = s.left.as_ref().is_some_and(|l| l.shape.len() > 2);
    let _ = writeln!(w, "<div class=\"plots\">");
    histogram(w, &p.histogram, s.tolerance.max_abs);
    if let Some(u) = &p.ulp {
        ulp_histogram(w, u, s.tolerance.max_ulp);
    }
    plots_2d(w, k, p, flattened, s.tolerance.max_abs);
    let _ = writeln!(w, "</div>\n</section>");
}

pub(super) fn plots_2d(w: &mut String, k: usize, p: &StagePlots, flattened: bool, limit: f64) {
    let rows = if flattened { "row (leading axes flattened)" } else { "row" };
    if let Some(h) = &p.heatmap {
        heatmap(w, k, h, rows);
    }
    if let Some(r) = &p.row_profile {
        profile(w, r, &format!("max |diff| per {rows}"), limit);
    }
    if let Some(c) = &p.column_profile {
        profile(w, c, "max |diff| per column (last axis)", limit);
    }
}

