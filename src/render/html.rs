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

use super::*;
use crate::compare::plots::{ErrorProfile, Heatmap, Histogram, StagePlots};
use crate::diff::outcome::{DiffOutcome, Status, TensorDiff};
use std::fmt::Write;

pub(super) fn render(o: &CheckOutcome) -> String {
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

/// A stage's status as the filter knows it (`data-status`), and its label.
fn status(s: &StageResult) -> (&'static str, String) {
    let key = match s.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail if s.tolerance.required => "fail",
        Verdict::Fail => "optional-fail",
        Verdict::Missing => "missing",
    };
    (key, stage_verdict(s))
}

/// A sort key the script reads as a number (`Infinity` included); empty sorts last.
fn key(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{x:e}")
    }
}

/// `parity diff`'s page: the sides, the counts per status, every pair in the
/// verdict table, and a section per `differs` pair with its plots.
pub(super) fn render_diff(o: &DiffOutcome) -> String {
    use super::diff::{f, metric_cells, side_line, summary_line, why};
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
            keyed(m.and_then(|m| f(m, "max_abs")), &cells[0]),
            keyed(m.and_then(|m| f(m, "mean_abs")), &cells[1]),
            keyed(m.and_then(|m| m.get("max_ulp")?.as_u64()).map(|u| u as f64), &cells[2]),
            keyed(m.and_then(|m| m.get("not_bit_equal")?.as_u64()).map(|u| u as f64), &cells[3]),
            keyed(m.and_then(|m| f(m, "sqnr_db")), &cells[4]),
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
fn diff_detail(t: &TensorDiff) -> String {
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

/// The verdict table's opening: its columns (numeric ones sort by value)
/// and what a row is (singular), for the filter's count.
fn table_head(w: &mut String, unit: &str, heads: &[(&str, bool)]) {
    let _ = write!(w, "<table id=\"verdicts\" data-unit=\"{unit}\">\n<thead><tr>");
    for (h, numeric) in heads {
        let _ = write!(w, "<th{} title=\"sort\">{}</th>", if *numeric { " data-num=\"1\"" } else { "" }, esc(h));
    }
    let _ = writeln!(w, "</tr></thead>\n<tbody>");
}

fn verdict_table(w: &mut String, o: &CheckOutcome) {
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
                s.explanation.as_ref().map(|e| esc(&e.sentence())).unwrap_or_default()
            );
        }
    }
    let _ = writeln!(w, "</tbody>\n</table>");
}

/// A stage gets its own section when it failed, or was plotted
/// (`--plot-stages`).
fn sectioned(s: &StageResult) -> bool {
    s.verdict == Verdict::Fail || s.plots.is_some()
}

fn stage_section(w: &mut String, k: usize, t: &TensorResult, s: &StageResult) {
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

fn plots_2d(w: &mut String, k: usize, p: &StagePlots, flattened: bool, limit: f64) {
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

/// Escaped for text and for double-quoted attributes alike.
fn esc(s: &str) -> String {
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

/// Bars of log-scaled height: the exactly-0 bin often holds nearly every
/// element, and a linear scale would hide the bins that matter.
fn histogram(w: &mut String, h: &Histogram, limit: f64) {
    // The stage's max_abs limit, where it falls among the log bins (after
    // the `0` and `below` bins).
    let marked = (limit > 0.0 && limit.is_finite())
        .then(|| (limit.log10() - Histogram::edge(0)) * crate::compare::plots::PER_DECADE as f64)
        .filter(|at| *at >= 0.0 && *at <= h.bins.len() as f64)
        .map(|at| (2.0 + at, format!("max_abs limit {}", esc(&short(limit)))));
    let bins = h.labelled();
    let n = bins.len();
    let chart = Bars {
        caption: "log10 |diff| histogram",
        notes: "bar height: log scale of the count",
        bar_width: 16.0,
        right_margin: 10.0,
        unit: "",
        // Labels at the ends and on whole decades, so they do not overlap.
        labelled: &|i| i < 2 || i + 2 >= n || (i - 2) % 4 == 0,
        limit: marked,
    };
    bars(w, &chart, &bins, h.total());
}

/// The ULP distances, one bar per power of two, log-scaled heights as above;
/// the stage's max_ulp limit marked in the bucket that holds it.
fn ulp_histogram(w: &mut String, h: &crate::compare::plots::UlpHistogram, limit: Option<u64>) {
    let bins = h.labelled();
    // Bucket of the limit: 0, or 1 + floor(log2(limit)); the line at its right edge.
    let marked = limit
        .map(|limit| (if limit == 0 { 0 } else { 64 - limit.leading_zeros() as usize }, limit))
        .filter(|(bucket, _)| bucket + 1 < bins.len())
        .map(|(bucket, limit)| ((bucket + 1) as f64, format!("max_ulp limit {limit}")));
    let chart = Bars {
        caption: "ULP distance histogram",
        notes: "buckets of powers of two; bar height: log scale of the count",
        bar_width: 22.0,
        right_margin: 120.0,
        unit: " ULP",
        labelled: &|_| true,
        limit: marked,
    };
    bars(w, &chart, &bins, h.total());
}

/// How one bar chart of counts is drawn.
struct Bars<'a> {
    caption: &'static str,
    notes: &'static str,
    bar_width: f64,
    right_margin: f64,
    /// After each bar's label in its tooltip (` ULP`).
    unit: &'static str,
    /// Which bars get a label under the axis.
    labelled: &'a dyn Fn(usize) -> bool,
    /// A limit line at this position (in bars from the left) with its text.
    limit: Option<(f64, String)>,
}

/// Labelled counts as bars of log-scaled height; the first bar is the
/// exactly-0 one, the last the non-finite one.
fn bars(w: &mut String, c: &Bars, bins: &[(String, u64)], total: u64) {
    let (bw, x0, top, height) = (c.bar_width, 40.0, 10.0, 150.0);
    let width = x0 + bw * bins.len() as f64 + c.right_margin;
    let most = bins.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        w,
        "<figure><figcaption>{}: {} elements ({})</figcaption>\n<svg class=\"plot\" viewBox=\"0 0 {width} 230\" width=\"{width}\" height=\"230\">",
        c.caption,
        numbers::thousands(total),
        c.notes
    );
    for (i, (label, count)) in bins.iter().enumerate() {
        let x = x0 + bw * i as f64;
        let bh = if *count == 0 { 0.0 } else { (height * (1.0 + *count as f64).ln() / (1.0 + most).ln()).max(1.0) };
        let class = if i == 0 { "zero" } else if i + 1 == bins.len() { "nonfinite" } else { "bar" };
        let _ = write!(
            w,
            "<rect class=\"{class}\" x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{bh:.1}\"><title>{}{}: {}</title></rect>",
            top + height - bh,
            bw - 2.0,
            esc(label),
            c.unit,
            numbers::thousands(*count)
        );
        if (c.labelled)(i) {
            let (lx, ly) = (x + bw / 2.0, top + height + 8.0);
            let _ = write!(w, "<text class=\"tick\" x=\"{lx}\" y=\"{ly}\" transform=\"rotate(60 {lx} {ly})\">{}</text>", esc(label));
        }
    }
    if let Some((at, text)) = &c.limit {
        let x = x0 + bw * at;
        let _ = write!(
            w,
            "<line class=\"limit\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{}\">{text}</text>",
            top + height,
            x + 3.0,
            top + 8.0
        );
    }
    let _ = writeln!(w, "</svg></figure>");
}

/// Light yellow (smallest nonzero) to dark red (largest), on log10 of the value.
fn colour(t: f64) -> String {
    let stops = [(255.0, 255.0, 204.0), (253.0, 141.0, 60.0), (128.0, 0.0, 38.0)];
    // 64 levels: plenty for the eye, and cells of one level share a path.
    let t = (t.clamp(0.0, 1.0) * 63.0).round() / 63.0 * 2.0;
    let i = (t.floor() as usize).min(1);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let c = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    format!("#{:02x}{:02x}{:02x}", c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// The log10 range of the finite, nonzero values: what the colour (or the
/// profile's height) spans.
fn log_range(values: &[f64]) -> Option<(f64, f64)> {
    let finite = values.iter().filter(|v| v.is_finite() && **v > 0.0);
    let lo = finite.clone().fold(f64::INFINITY, |a, &b| a.min(b));
    let hi = finite.fold(0.0f64, |a, &b| a.max(b));
    (hi > 0.0).then(|| (lo.log10(), hi.log10()))
}

fn heatmap(w: &mut String, k: usize, h: &Heatmap, rows: &str) {
    let side = 384.0;
    let (cw, ch) = (side / h.grid_cols as f64, side / h.grid_rows as f64);
    let (x0, y0) = (60.0, 40.0);
    let range = log_range(&h.cells);
    let _ = write!(
        w,
        "<figure><figcaption>max |diff| per cell: {} × {} {}s × columns on a {} × {} grid</figcaption>\n<svg class=\"plot\" viewBox=\"0 0 560 {}\" width=\"560\" height=\"{}\">",
        numbers::thousands(h.rows as u64),
        numbers::thousands(h.cols as u64),
        esc(rows.split(' ').next().unwrap_or("row")),
        h.grid_rows,
        h.grid_cols,
        y0 + side + 20.0,
        y0 + side + 20.0
    );
    let _ = write!(
        w,
        "<text class=\"axis\" x=\"{x0}\" y=\"12\">column (last axis) →</text><text class=\"axis\" x=\"12\" y=\"{y0}\" transform=\"rotate(90 12 {y0})\">{} →</text>",
        esc(rows)
    );
    // One path per colour, a unit square per cell in grid coordinates: a
    // 64 × 64 grid of separate <rect>s with tooltips weighs ~0.5 MB per stage.
    let mut by_fill: std::collections::BTreeMap<String, String> = Default::default();
    for (g, c) in h.cells.chunks(h.grid_cols).enumerate() {
        for (j, &v) in c.iter().enumerate() {
            let fill = match (v, range) {
                (v, _) if !v.is_finite() => "#000000".to_string(),
                (v, _) if v == 0.0 => "#ffffff".to_string(),
                (v, Some((lo, hi))) => colour(if hi > lo { (v.log10() - lo) / (hi - lo) } else { 1.0 }),
                (_, None) => "#ffffff".to_string(),
            };
            let _ = write!(by_fill.entry(fill).or_default(), "M{j} {g}h1v1h-1z");
        }
    }
    let _ = write!(
        w,
        "<g transform=\"translate({x0} {y0}) scale({cw:.4} {ch:.4})\" shape-rendering=\"crispEdges\">"
    );
    for (fill, d) in &by_fill {
        let _ = write!(w, "<path class=\"cells\" fill=\"{fill}\" d=\"{d}\"/>");
    }
    let _ = write!(w, "</g>");
    // Ticks in tensor indices: the first row (column) of every fourth of the grid.
    for q in 0..4 {
        let (g, j) = (q * h.grid_rows / 4, q * h.grid_cols / 4);
        let _ = write!(
            w,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x0 - 3.0,
            y0 + g as f64 * ch + 8.0,
            Heatmap::first_index(g, h.grid_rows, h.rows),
            x0 + j as f64 * cw,
            y0 - 4.0,
            Heatmap::first_index(j, h.grid_cols, h.cols)
        );
    }
    let _ = write!(
        w,
        "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        x0 - 3.0,
        y0 + side,
        h.rows - 1
    );
    // The legend: the colour scale with its ends, then 0 and non-finite.
    let lx = x0 + side + 20.0;
    let _ = write!(
        w,
        "<defs><linearGradient id=\"scale-{k}\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\"><stop offset=\"0\" stop-color=\"{}\"/><stop offset=\"0.5\" stop-color=\"{}\"/><stop offset=\"1\" stop-color=\"{}\"/></linearGradient></defs><rect x=\"{lx}\" y=\"{y0}\" width=\"16\" height=\"200\" fill=\"url(#scale-{k})\"/>",
        colour(0.0),
        colour(0.5),
        colour(1.0)
    );
    let (lo, hi) = range.map(|(lo, hi)| (short(10f64.powf(lo)), short(10f64.powf(hi)))).unwrap_or(("-".into(), "-".into()));
    let _ = writeln!(
        w,
        "<text class=\"tick\" x=\"{}\" y=\"{}\">{}</text><text class=\"tick\" x=\"{}\" y=\"{}\">{}</text><rect x=\"{lx}\" y=\"{}\" width=\"16\" height=\"12\" fill=\"#ffffff\" stroke=\"#999\"/><text class=\"tick\" x=\"{}\" y=\"{}\">0</text><rect x=\"{lx}\" y=\"{}\" width=\"16\" height=\"12\" fill=\"#000000\"/><text class=\"tick\" x=\"{}\" y=\"{}\">non-finite</text></svg></figure>",
        lx + 20.0,
        y0 + 8.0,
        esc(&hi),
        lx + 20.0,
        y0 + 200.0,
        esc(&lo),
        y0 + 215.0,
        lx + 20.0,
        y0 + 225.0,
        y0 + 235.0,
        lx + 20.0,
        y0 + 245.0
    );
}

/// A polyline on a log10 scale; a point whose |diff| is 0 sits on the floor,
/// a non-finite one on the ceiling.
fn profile(w: &mut String, p: &ErrorProfile, title: &str, limit: f64) {
    let (x0, y0, width, height) = (60.0, 10.0, 560.0, 120.0);
    let (lo, hi) = log_range(&p.points).map(|(lo, hi)| if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) }).unwrap_or((-1.0, 1.0));
    let y = |v: f64| {
        let t = if !v.is_finite() {
            1.0
        } else if v <= 0.0 {
            0.0
        } else {
            (v.log10() - lo) / (hi - lo)
        };
        y0 + height * (1.0 - t)
    };
    let n = p.points.len().max(2) - 1;
    let pts: Vec<String> =
        p.points.iter().enumerate().map(|(i, &v)| format!("{:.1},{:.1}", x0 + width * i as f64 / n as f64, y(v))).collect();
    let _ = write!(
        w,
        "<figure><figcaption>{} ({} points over {} indices, log scale)</figcaption>\n<svg class=\"plot\" viewBox=\"0 0 640 160\" width=\"640\" height=\"160\"><rect class=\"frame\" x=\"{x0}\" y=\"{y0}\" width=\"{width}\" height=\"{height}\"/><polyline class=\"line\" points=\"{}\"/>",
        esc(title),
        p.points.len(),
        numbers::thousands(p.extent as u64),
        pts.join(" ")
    );
    if limit > 0.0 && limit.is_finite() && limit.log10() >= lo && limit.log10() <= hi {
        let ly = y(limit);
        let _ = write!(w, "<line class=\"limit\" x1=\"{x0}\" x2=\"{}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\"/>", x0 + width);
    }
    let _ = writeln!(
        w,
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text class=\"tick\" x=\"{x0}\" y=\"{}\">0</text><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></svg></figure>",
        x0 - 3.0,
        y0 + 8.0,
        esc(&short(10f64.powf(hi))),
        x0 - 3.0,
        y0 + height,
        esc(&short(10f64.powf(lo))),
        y0 + height + 14.0,
        x0 + width,
        y0 + height + 14.0,
        p.extent.saturating_sub(1)
    );
}

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}th{background:#f3f3f3;cursor:pointer}#verdicts td:nth-child(n+6):nth-child(-n+9){text-align:right;font-variant-numeric:tabular-nums}.fail{color:#b00;font-weight:bold}.optional-fail{color:#b60}.missing{color:#777}.pass{color:#070}section{border-top:1px solid #ddd;margin-top:1.5em}pre{background:#f8f8f8;padding:.5em;overflow-x:auto}.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:12px;color:#444}svg text{font:10px sans-serif;fill:#333}svg .axis{font-size:11px}.bar{fill:#4a78b5}.zero{fill:#9c9}.nonfinite{fill:#000}.limit{stroke:#c00;stroke-dasharray:4 3}.frame{fill:none;stroke:#ccc}.line{fill:none;stroke:#4a78b5;stroke-width:1.2}.note{color:#777}";

/// Sort on a header click (numbers by `data-v`, text otherwise; again to
/// reverse), filter by status, and count the plots drawn with content.
const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById('verdicts');
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var numeric = th.dataset.num === '1';
      var dir = th.dataset.dir === 'asc' ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (numeric) {
          var p = x.dataset.v, q = y.dataset.v;
          if (p === '' || q === '') { return (p === '') - (q === ''); }
          return dir * (parseFloat(p) - parseFloat(q));
        }
        return dir * x.textContent.localeCompare(y.textContent);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var filter = document.getElementById('filter');
  var shown = document.getElementById('shown');
  function apply() {
    var n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      // "!identical": every status but that one.
      var v = filter.value;
      var on = v === '' || r.dataset.status === v || (v.charAt(0) === '!' && r.dataset.status !== v.slice(1));
      r.style.display = on ? '' : 'none';
      n += on ? 1 : 0;
    });
    var total = body.rows.length;
    shown.textContent = n + ' of ' + total + ' ' + (table.dataset.unit || 'row') + (total === 1 ? '' : 's');
  }
  filter.addEventListener('change', apply);
  apply();
  var drawn = 0;
  document.querySelectorAll('svg.plot').forEach(function (s) { if (s.childElementCount > 0) { drawn++; } });
  document.body.dataset.rendered = String(drawn);
})();
"#;
