//! The page's charts, as inline SVG: histograms (log10|diff| and ULP
//! distance) with the limit drawn, an error heatmap with its colour scale,
//! and the row and column error profiles.

use super::*;
use crate::compare::plots::{ErrorProfile, Heatmap, Histogram};
use std::fmt::Write;

/// Bars of log-scaled height: the exactly-0 bin often holds nearly every
/// element, and a linear scale would hide the bins that matter.
pub(super) fn histogram(w: &mut String, h: &Histogram, limit: f64) {
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
pub(super) fn ulp_histogram(w: &mut String, h: &crate::compare::plots::UlpHistogram, limit: Option<u64>) {
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
pub(super) struct Bars<'a> {
    pub(super) caption: &'static str,
    pub(super) notes: &'static str,
    pub(super) bar_width: f64,
    pub(super) right_margin: f64,
    /// After each bar's label in its tooltip (` ULP`).
    pub(super) unit: &'static str,
    /// Which bars get a label under the axis.
    pub(super) labelled: &'a dyn Fn(usize) -> bool,
    /// A limit line at this position (in bars from the left) with its text.
    pub(super) limit: Option<(f64, String)>,
}

/// Labelled counts as bars of log-scaled height; the first bar is the
/// exactly-0 one, the last the non-finite one.
pub(super) fn bars(w: &mut String, c: &Bars, bins: &[(String, u64)], total: u64) {
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
pub(super) fn colour(t: f64) -> String {
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
pub(super) fn log_range(values: &[f64]) -> Option<(f64, f64)> {
    let finite = values.iter().filter(|v| v.is_finite() && **v > 0.0);
    let lo = finite.clone().fold(f64::INFINITY, |a, &b| a.min(b));
    let hi = finite.fold(0.0f64, |a, &b| a.max(b));
    (hi > 0.0).then(|| (lo.log10(), hi.log10()))
}

pub(super) fn heatmap(w: &mut String, k: usize, h: &Heatmap, rows: &str) {
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
pub(super) fn profile(w: &mut String, p: &ErrorProfile, title: &str, limit: f64) {
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


/// The relative error of every stage of a run in execution order, log
/// scale, with the onset and the first divergence marked: how the error
/// grows along the run, and where it jumps. Drawn for runs of modules (the
/// stages the onset is looked for in), when there are two or more.
pub(super) fn error_growth(w: &mut String, o: &crate::check::CheckOutcome) {
    let errors = crate::check::relative_errors(&o.tensors);
    if errors.len() < 2 {
        return;
    }
    let (x0, y0, width, height) = (60.0, 10.0, 560.0, 160.0);
    let values: Vec<f64> = errors.iter().map(|e| e.relative_error).collect();
    let (lo, hi) = log_range(&values).map(|(lo, hi)| if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) }).unwrap_or((-1.0, 1.0));
    // Zero errors (bit-identical stages) sit on the floor, infinite ones on the ceiling.
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
    let n = (errors.len() - 1) as f64;
    let x = |i: usize| x0 + width * i as f64 / n;
    let pts: Vec<String> = values.iter().enumerate().map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v))).collect();
    let _ = write!(
        w,
        "<figure><figcaption>Relative error ‖right − left‖ / ‖left‖ of each of {} stages in execution order (log scale)</figcaption>\n<svg class=\"plot\" viewBox=\"0 0 640 200\" width=\"640\" height=\"200\"><rect class=\"frame\" x=\"{x0}\" y=\"{y0}\" width=\"{width}\" height=\"{height}\"/><polyline class=\"line\" points=\"{}\"/>",
        numbers::thousands(errors.len() as u64),
        pts.join(" ")
    );
    let at = |tensor: &str, stage: &str| errors.iter().position(|e| e.tensor == tensor && e.stage == stage);
    let marks = [
        o.onset.as_ref().and_then(|n| at(&n.tensor, &n.stage)).map(|i| (i, "onset", format!("onset: {} · {}", o.onset.as_ref().unwrap().tensor, o.onset.as_ref().unwrap().stage))),
        o.first_divergence.as_ref().and_then(|d| at(&d.tensor, &d.stage)).map(|i| (i, "limit", format!("first divergence: {} · {}", o.first_divergence.as_ref().unwrap().tensor, o.first_divergence.as_ref().unwrap().stage))),
    ];
    for (i, class, title) in marks.into_iter().flatten() {
        let xi = x(i);
        let _ = write!(w, "<line class=\"{class}\" x1=\"{xi:.1}\" x2=\"{xi:.1}\" y1=\"{y0}\" y2=\"{}\"><title>{}</title></line>", y0 + height, esc(&title));
    }
    let _ = writeln!(
        w,
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></svg></figure>",
        x0 - 3.0,
        y0 + 8.0,
        esc(&short(10f64.powf(hi))),
        x0 - 3.0,
        y0 + height,
        esc(&short(10f64.powf(lo))),
    );
}
