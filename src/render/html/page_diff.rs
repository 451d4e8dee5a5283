//! `parity diff`'s page: the verdict table of every tensor pair, opening on
//! what is not identical, then a section per differing pair with its plots.

use super::*;
use crate::diff::outcome::{DiffOutcome, Status, TensorDiff};
use std::fmt::Write;
use super::charts::*;
use super::page_check::plots_2d;

/// `parity diff`'s page: the sides, the counts per status, every pair in the
/// verdict table, and a section per `differs` pair with its plots.
pub(in crate::render) fn render_diff(o: &DiffOutcome) -> String {
    use super::diff::{metric_cells, side_line, summary_line, why};
    let mut out = String::new();
    let w = &mut out;
    let _ = write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>parity diff: {r}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>parity diff: {r}</h1>\n",
        r = esc(&o.result)
    );
    let _ = writeln!(
        w,
        "<p><code>{}</code><br><code>{}</code><br>limits: {}</p>\n<p><b>{}</b></p>",
        esc(&side_line("LEFT ", &o.left)),
        esc(&side_line("RIGHT", &o.right)),
        esc(&o.options.tolerance),
        esc(&summary_line(o))
    );
    if let Some(p) = o.partition {
        let _ = writeln!(w, "<p>partition {}/{}: {} of the pairs</p>", p.k, p.n, o.tensors.len());
    }
    // The page opens on what is not identical, as the text output lists it:
    // among a hundred identical tensors the few that differ are what a reader
    // came for; "all" is one click away. Sorted failures first too, so that
    // without the script (which applies the filter) they still lead.
    let identical = o.summary.count(Status::Identical);
    let rest = o.tensors.len() - identical;
    let open_on_rest = identical > 0 && rest > 0;
    let mut options = format!("<option value=\"\">all ({})</option>", o.tensors.len());
    if open_on_rest {
        let _ = write!(options, "<option value=\"!identical\" selected>all but identical ({rest})</option>");
    }
    for st in Status::ALL {
        let _ = write!(options, "<option value=\"{0}\">{0} ({1})</option>", st.name(), o.summary.count(st));
    }
    let _ = writeln!(w, "<h2>Tensors</h2>\n<p><label>Show <select id=\"filter\">{options}</select></label> <span id=\"shown\"></span></p>");
    let heads = [
        ("tensor", false),
        ("status", false),
        ("dtype", false),
        ("shape", false),
        ("max_abs", true),
        ("mean_abs", true),
        ("max ULP", true),
        ("≠bits", true),
        ("SQNR dB", true),
        ("why", false),
    ];
    table_head(w, "tensor", &heads);
    let differing: Vec<&TensorDiff> = o.tensors.iter().filter(|t| t.status == Status::Differs).collect();
    // Names are unique in an outcome: each differing pair's section number.
    let section_of: std::collections::HashMap<&str, usize> = differing.iter().enumerate().map(|(k, t)| (t.name.as_str(), k)).collect();
    // Failing pairs, then within, then identical; by name inside each (a
    // stable sort of the name-ordered tensors).
    let mut rows: Vec<&TensorDiff> = o.tensors.iter().collect();
    rows.sort_by_key(|t| (t.status.ok(), t.status == Status::Identical));
    for t in rows {
        let k = t.status.name();
        let class = if t.status.ok() { "pass" } else { "fail" };
        let name = if let Some(section) = section_of.get(t.name.as_str()) {
            format!("<a href=\"#tensor-{section}\">{}</a>", esc(&t.name))
        } else {
            esc(&t.name)
        };
        let m = t.metrics.as_ref();
        let cells = metric_cells(t);
        let keyed = |v: Option<f64>, shown: &str| match v {
            Some(x) => format!("<td data-v=\"{}\">{}</td>", key(x), esc(shown)),
            None => "<td data-v=\"\"></td>".into(),
        };
        let _ = writeln!(
            w,
            "<tr data-status=\"{k}\"><td>{name}</td><td class=\"{class}\">{k}</td><td>{}</td><td>{}</td>{}{}{}{}{}<td>{}</td></tr>",
            esc(&super::diff::dtype_cell(t)),
            esc(&super::diff::shape_cell(t)),
            keyed(m.map(|m| m.max_abs.as_f64()), &cells[0]),
            keyed(m.map(|m| m.mean_abs.0), &cells[1]),
            keyed(m.and_then(|m| m.max_ulp).map(|u| u as f64), &cells[2]),
            keyed(m.and_then(|m| m.not_bit_equal).map(|u| u as f64), &cells[3]),
            keyed(m.map(|m| m.sqnr_db.0), &cells[4]),
            esc(&why(t))
        );
    }
    let _ = writeln!(w, "</tbody>\n</table>");
    if !differing.is_empty() {
        let _ = writeln!(w, "<h2>Differing tensors</h2>");
    }
    for (k, t) in differing.iter().enumerate() {
        let _ = writeln!(
            w,
            "<section id=\"tensor-{k}\">\n<h3><code>{}</code> · differs</h3>\n<pre>{}</pre>",
            esc(&t.name),
            esc(&diff_detail(t))
        );
        let Some(p) = &t.plots else {
            let _ = writeln!(
                w,
                "<p class=\"note\">Not plotted: {}.</p>\n</section>",
                if t.metrics.is_none() {
                    "no values were compared"
                } else {
                    "these are results merged from partitions (plots are drawn by parity diff itself, not carried in its JSON)"
                }
            );
            continue;
        };
        let limits = t.limits.as_ref();
        let max_abs = limits.and_then(|l| match &l.max_abs {
            serde_json::Value::Number(n) => n.as_f64(),
            _ => None,
        });
        let flattened = t.shape_left.as_ref().is_some_and(|s| s.len() > 2);
        let _ = writeln!(w, "<div class=\"plots\">");
        histogram(w, &p.histogram, max_abs.unwrap_or(0.0));
        if let Some(u) = &p.ulp {
            ulp_histogram(w, u, limits.and_then(|l| l.max_ulp));
        }
        plots_2d(w, k, p, flattened, max_abs.unwrap_or(0.0));
        let _ = writeln!(w, "</div>\n</section>");
    }
    let _ = write!(w, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

/// A differing pair in a few lines: its limits, what broke them, the
/// metrics, and the explanation.
pub(super) fn diff_detail(t: &TensorDiff) -> String {
    use super::diff::{dtype_cell, metric_cells, shape_cell};
    let mut lines = vec![format!("dtype {} · shape {}", dtype_cell(t), shape_cell(t))];
    if let Some(l) = &t.limits {
        lines.push(format!("limits from {}", l.source));
    }
    for f in &t.failures {
        lines.push(format!("failed: {f}"));
    }
    let [max_abs, mean_abs, ulp, neq, sqnr] = metric_cells(t);
    lines.push(format!("max_abs {max_abs} · mean_abs {mean_abs} · max ULP {ulp} · {neq} elements not bit-equal · SQNR {sqnr} dB"));
    if let Some(e) = t.explanation_summary() {
        lines.push(format!("explanation: {e}"));
    }
    lines.join("\n")
}

