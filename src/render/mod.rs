//! A check's outcome, written for its reader: a terminal (`text`), a script
//! (`json`, schema `parity.check.v1`), a CI test viewer (`junit`) or a CI
//! step summary (`markdown`), or a person looking into a failure (`html`:
//! one self-contained page with plots of each failing stage).

use crate::check::{CheckOutcome, TensorResult};
use crate::compare::gate::{StageResult, Verdict};
use crate::compare::metrics::NonFiniteCounts;
use crate::compare::numbers::{self, short};

mod html;
mod json;
pub mod apply;
pub mod diff;
pub mod gate;
pub mod inspect;
mod junit;
mod markdown;
mod md;
pub mod noise_floor;
mod text;

pub use json::SCHEMA as JSON_SCHEMA;

/// `--format`: who reads the outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// For terminals: tables, and torch.testing-style detail for failures.
    #[default]
    Text,
    /// For scripts: the command's schema (check: parity.check.v1, diff and merge-results: parity.diff.v1, inspect: parity.inspect.v1).
    Json,
    /// For CI test viewers: one testcase per tensor.
    Junit,
    /// For CI step summaries.
    Markdown,
    /// For people looking into a failure: one self-contained page with plots (check, diff, merge-results).
    Html,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::Text, Format::Json, Format::Junit, Format::Markdown, Format::Html];
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Junit => "junit",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }
}

/// The outcome in one format. Every format carries the same facts.
pub fn render(outcome: &CheckOutcome, format: Format) -> String {
    render_listing(outcome, format, Listing::Auto)
}

/// How much text and Markdown list: a captured run has thousands of tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listing {
    /// Every tensor's table when there are at most [`LIST_EVERY_UP_TO`];
    /// beyond that, the tensors that fail or need a detail block in full and
    /// the rest as a count, and a mode's reasons grouped by what they say.
    #[default]
    Auto,
    /// `--verbose`: every table and every reason.
    Every,
}

/// Up to this many tensors, text and Markdown list every one (a report of a
/// pipeline's few weight tensors reads best whole); a captured forward pass
/// has thousands, and a reader needs the failures, not 3 MB of passes.
pub const LIST_EVERY_UP_TO: usize = 32;

/// [`render`] with `--verbose`'s choice. JSON, JUnit and HTML always hold everything.
pub fn render_listing(outcome: &CheckOutcome, format: Format, listing: Listing) -> String {
    match format {
        Format::Text => text::render(outcome, listing),
        Format::Json => json::render(outcome),
        Format::Junit => junit::render(outcome),
        Format::Markdown => markdown::render(outcome, listing),
        Format::Html => html::render(outcome),
    }
}

/// Whether a tensor gets its table in text and Markdown.
fn listed(o: &CheckOutcome, t: &TensorResult, listing: Listing) -> bool {
    listing == Listing::Every
        || o.tensors.len() <= LIST_EVERY_UP_TO
        || !t.passed
        || t.stages.iter().any(|s| s.verdict == Verdict::Fail || s.logits.is_some() || wants_detail(s, o.top_diffs))
}

/// The line that counts the tensors not listed (None when all are).
fn unlisted_line(o: &CheckOutcome, listing: Listing) -> Option<String> {
    let n = o.tensors.iter().filter(|t| !listed(o, t, listing)).count();
    (n > 0).then(|| {
        format!(
            "{} {} every stage (not listed: --verbose lists them)",
            numbers::count(n as u64, "tensor"),
            if n == 1 { "passes" } else { "pass" }
        )
    })
}

/// A mode's reasons as a reader takes them in: beyond a few, reasons that
/// say the same of many tensors (`NAME: no historical_final_sha256`) become
/// one line, `5,000 tensors: no historical_final_sha256 (first: a, b, c)`.
fn grouped_reasons(reasons: &[String], listing: Listing) -> Vec<String> {
    const FEW: usize = 8;
    if listing == Listing::Every || reasons.len() <= FEW {
        return reasons.to_vec();
    }
    // Grouped by what follows the tensor name, in order of first appearance.
    let mut groups: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    let mut whole: Vec<&str> = Vec::new();
    for r in reasons {
        // "NAME: what (details): more" is grouped by "what": the details
        // (hashes, counts) differ from tensor to tensor.
        match r.split_once(": ") {
            Some((name, why)) => {
                let what = why.split(" (").next().unwrap_or(why).split(": ").next().unwrap_or(why);
                match groups.iter_mut().find(|(w, _)| *w == what) {
                    Some((_, names)) => names.push((name, why)),
                    None => groups.push((what, vec![(name, why)])),
                }
            }
            None => whole.push(r),
        }
    }
    let mut out: Vec<String> = whole.into_iter().map(str::to_string).collect();
    for (what, names) in groups {
        if names.len() == 1 {
            out.push(format!("{}: {}", names[0].0, names[0].1));
        } else {
            let first: Vec<&str> = names.iter().take(3).map(|(n, _)| *n).collect();
            out.push(format!(
                "{}: {what} (first: {}{}; --verbose lists each)",
                numbers::count(names.len() as u64, "tensor"),
                first.join(", "),
                if names.len() > 3 { ", …" } else { "" }
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Phrases shared by the human-readable formats.

/// `PASS` / `FAIL` for a tensor.
fn tensor_verdict(t: &TensorResult) -> &'static str {
    if t.passed {
        "PASS"
    } else {
        "FAIL"
    }
}

/// A stage's verdict as a reader needs it: whether it counts, and against which side.
fn stage_verdict(s: &StageResult) -> String {
    match s.verdict {
        Verdict::Pass => "pass".into(),
        Verdict::Fail if s.tolerance.required => "FAIL".into(),
        Verdict::Fail => "fail (optional, not gated)".into(),
        Verdict::Missing => format!("missing on {} (optional)", if s.left.is_none() { "left" } else { "right" }),
    }
}

/// `dtype` column: one value, or `left/right` when they differ.
fn dtype_cell(s: &StageResult) -> String {
    match (&s.left, &s.right) {
        (Some(l), Some(r)) if l.dtype == r.dtype => l.dtype.to_string(),
        (l, r) => format!(
            "{}/{}",
            l.as_ref().map(|x| x.dtype.to_string()).unwrap_or_else(|| "-".into()),
            r.as_ref().map(|x| x.dtype.to_string()).unwrap_or_else(|| "-".into())
        ),
    }
}

fn shape_cell(s: &StageResult) -> String {
    match (&s.left, &s.right) {
        (Some(l), Some(r)) if l.shape == r.shape => numbers::shape(&l.shape),
        (l, r) => format!(
            "{}/{}",
            l.as_ref().map(|x| numbers::shape(&x.shape)).unwrap_or_else(|| "-".into()),
            r.as_ref().map(|x| numbers::shape(&x.shape)).unwrap_or_else(|| "-".into())
        ),
    }
}

/// `1e-3 / 1e-5`, plus the optional limits that are set.
fn tolerance_cell(s: &StageResult) -> String {
    let t = &s.tolerance;
    let mut out = format!("{} / {}", short(t.max_abs), short(t.mean_abs));
    if let Some(c) = t.min_cosine {
        out.push_str(&format!(", cos≥{}", numbers::cosine(c)));
    }
    if let Some(u) = t.max_ulp {
        out.push_str(&format!(", ulp≤{u}"));
    }
    if t.rtol.is_some() || t.atol.is_some() {
        out.push_str(&format!(", rtol {} atol {}", short(t.rtol.unwrap_or(0.0)), short(t.atol.unwrap_or(0.0))));
    }
    out
}

/// The tolerance column: `max_abs / mean_abs` limits, then any optional ones.
const TOLERANCE_HEADER: &str = "tolerance (max/mean)";

/// The metric cells of the stage table, in the order of [`METRIC_HEADERS`]
/// (`max_abs` with the index where it is reached).
const METRIC_HEADERS: [&str; 10] =
    ["max_abs", "mean_abs", "rms", "max_rel", "cosine", "nmse", "sqnr_db", "ulp", "≠bits", "bytes"];

fn metric_cells(s: &StageResult) -> Vec<String> {
    let Some(m) = &s.metrics else { return vec!["-".into(); METRIC_HEADERS.len()] };
    let max_abs = match &m.max_abs_index {
        Some(ix) => format!("{} at {}", numbers::diff(m.max_abs, m.max_abs_int), numbers::index(ix)),
        None => numbers::diff(m.max_abs, m.max_abs_int),
    };
    vec![
        max_abs,
        short(m.mean_abs),
        short(m.rms),
        short(m.max_rel),
        numbers::cosine(m.cosine),
        short(m.nmse),
        numbers::db(m.sqnr_db),
        m.max_ulp.map(numbers::thousands).unwrap_or_else(|| "n/a".into()),
        m.not_bit_equal.map(numbers::thousands).unwrap_or_else(|| "n/a".into()),
        if m.bytes_equal { "same" } else { "differ" }.into(),
    ]
}

fn counts_phrase(c: &NonFiniteCounts) -> String {
    if c.total() == 0 {
        return "none".into();
    }
    let mut parts = Vec::new();
    for (n, what) in [(c.nan, "NaN"), (c.pos_inf, "+inf"), (c.neg_inf, "-inf")] {
        if n > 0 {
            parts.push(format!("{} {what}", numbers::thousands(n)));
        }
    }
    parts.join(", ")
}

/// The torch.testing-style lines that explain a stage (its detail block).
fn detail_lines(s: &StageResult, top_diffs: usize) -> Vec<String> {
    let mut out = Vec::new();
    let t = &s.tolerance;
    let Some(m) = &s.metrics else {
        out.extend(s.failures.iter().cloned());
        out.extend(explanation_line(s));
        return out;
    };
    // Which limit broke comes first: a stage can fail on mean_abs with no
    // single element over max_abs ("Mismatched elements: 0 / …"); then the
    // porting bug that explains it, when one fits.
    if !s.failures.is_empty() {
        out.push(format!("Failed: {}", s.failures.join("; ")));
    }
    out.extend(explanation_line(s));
    let (mismatched, rule) = match m.outside_allclose {
        Some(o) => (
            o,
            format!("outside allclose(rtol={}, atol={})", short(t.rtol.unwrap_or(0.0)), short(t.atol.unwrap_or(0.0))),
        ),
        None => (m.over_max_abs, format!("|diff| > {}", short(t.max_abs))),
    };
    let rule = if m.non_finite.mismatched > 0 { format!("{rule} or non-finite mismatch") } else { rule };
    let mismatched = mismatched + m.non_finite.mismatched;
    out.push(format!(
        "Mismatched elements: {} / {} ({}): {rule}",
        numbers::thousands(mismatched),
        numbers::thousands(m.numel),
        numbers::percent(mismatched, m.numel)
    ));
    let at =
        |ix: &Option<Vec<usize>>| ix.as_deref().map(|i| format!(" at index {}", numbers::index(i))).unwrap_or_default();
    out.push(format!(
        "Greatest absolute difference: {}{} (up to {} allowed)",
        numbers::diff(m.max_abs, m.max_abs_int),
        at(&m.max_abs_index),
        short(t.max_abs)
    ));
    let rel_allowed = t.rtol.map(|r| format!(" (up to {} allowed)", short(r))).unwrap_or_default();
    out.push(format!("Greatest relative difference: {}{}{rel_allowed}", short(m.max_rel), at(&m.max_rel_index)));
    out.push(format!("Mean absolute difference: {} (up to {} allowed)", short(m.mean_abs), short(t.mean_abs)));
    out.push(format!(
        "RMS difference: {}, cosine similarity: {}, NMSE: {}, SQNR: {} dB",
        short(m.rms),
        numbers::cosine(m.cosine),
        short(m.nmse),
        numbers::db(m.sqnr_db)
    ));
    let bits = match (m.not_bit_equal, m.max_ulp) {
        (Some(n), Some(u)) => format!(
            "Elements not bit-equal: {} / {}, at most {} ULP",
            numbers::thousands(n),
            numbers::thousands(m.numel),
            numbers::thousands(u)
        ),
        (Some(n), None) => {
            format!("Elements not bit-equal: {} / {}", numbers::thousands(n), numbers::thousands(m.numel))
        }
        _ => "Elements not bit-equal: n/a (the dtypes differ)".into(),
    };
    out.push(bits);
    let nf = &m.non_finite;
    if nf.left.total() + nf.right.total() > 0 {
        let mut line =
            format!("Non-finite values: left {}; right {}", counts_phrase(&nf.left), counts_phrase(&nf.right));
        if nf.mismatched > 0 {
            line.push_str(&format!(
                "; {} mismatched position{}, first at {}",
                numbers::thousands(nf.mismatched),
                if nf.mismatched == 1 { "" } else { "s" },
                nf.first_mismatch.as_deref().map(numbers::index).unwrap_or_default()
            ));
        } else {
            line.push_str("; all at the same positions");
        }
        out.push(line);
    }
    if top_diffs > 0 && !m.top.is_empty() {
        out.push("Largest differences (index: left, right, |diff|):".into());
        for d in &m.top {
            let line = match d.exact {
                // Integers in full: their rounded f64s could print equal.
                Some((l, r)) => format!("  {}: {l}, {r}, {}", numbers::index(&d.index), crate::numeric::int::abs_diff(l, r)),
                None => format!(
                    "  {}: {}, {}, {}",
                    numbers::index(&d.index),
                    numbers::value(d.left),
                    numbers::value(d.right),
                    short(d.abs_diff)
                ),
            };
            out.push(line);
        }
    }
    out
}

/// `tokens: 128 positions × 1,000 tokens: top-1 agrees at …`, for a
/// `--logits` stage.
fn logits_line(s: &StageResult) -> Option<String> {
    s.logits.as_ref().map(|m| format!("tokens: {}", crate::compare::logits::line(m)))
}

/// `explanation: constant scale c = 0.5: …`, one line, when a bug fits.
fn explanation_line(s: &StageResult) -> Option<String> {
    s.explanation.as_ref().map(|e| format!("explanation: {}", e.sentence()))
}

/// A stage gets a detail block when it failed, has non-finite values, or
/// has top differences to show.
fn wants_detail(s: &StageResult, top_diffs: usize) -> bool {
    s.verdict == Verdict::Fail
        || s.metrics.as_ref().is_some_and(|m| {
            m.non_finite.left.total() + m.non_finite.right.total() > 0 || (top_diffs > 0 && !m.top.is_empty())
        })
}

/// Says so when the final hashes are the reports' claims, not re-hashed
/// (no hash mode on; they were still checked against the bytes' equality).
fn as_reported(h: &crate::check::HashFacts) -> &'static str {
    if h.rehashed {
        ""
    } else {
        ", as reported"
    }
}

/// The one-line hash summary of a tensor.
fn hash_line(t: &TensorResult) -> String {
    let h = &t.hashes;
    let mut s = match (&h.left_final, &h.right_final) {
        (Some(a), Some(_)) if h.equal => format!("final hash: equal ({}…){}", &a[..a.len().min(12)], as_reported(h)),
        (Some(_), Some(_)) => match &h.bytes {
            Some(b) => format!("final hash: differs: {}{}", b.sentence(), as_reported(h)),
            None => "final hash: differs (the final stage was not compared element by element)".into(),
        },
        (None, _) => "final hash: none in the left report".into(),
        (_, None) => "final hash: none in the right report".into(),
    };
    if let Some(hist) = &h.historical {
        let mark = |b: bool| if b { "matches" } else { "differs" };
        s.push_str(&format!(
            "; historical {}…: left {}, right {}",
            &hist[..hist.len().min(12)],
            mark(h.left_matches_historical()),
            mark(h.right_matches_historical())
        ));
        if h.historical_reproducible == Some(false) {
            s.push_str(" (baseline: not reproducible)");
        }
    }
    s
}

/// How a mode line reads: `PASS`, `FAIL`, or `off` when not enabled.
fn mode_state(enabled: bool, holds: bool) -> &'static str {
    match (enabled, holds) {
        (false, _) => "off",
        (true, true) => "PASS",
        (true, false) => "FAIL",
    }
}

/// Where the run went wrong, one line each: the first gated stage that
/// fails, and the onset of the error (a warning when every gate passes).
/// None of either: no line.
fn where_lines(o: &CheckOutcome) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = &o.first_divergence {
        out.push(format!("first divergence: {} · {}: {}", d.tensor, d.stage, d.failures.join("; ")));
    }
    if let Some(n) = &o.onset {
        let base = match n.median_before {
            Some(m) if m > n.unit_roundoff => format!("the median relative error {} of the stages before it", short(m)),
            _ => format!("the unit roundoff {} of its dtype", short(n.unit_roundoff)),
        };
        let warn = if o.passed() && o.first_divergence.is_none() { "warning: " } else { "" };
        out.push(format!(
            "{warn}onset: {} · {}: relative error {} > {} × {base}",
            n.tensor,
            n.stage,
            short(n.relative_error),
            short(n.factor)
        ));
    }
    out
}

fn overall_line(o: &CheckOutcome) -> String {
    let any = o.modes.all().iter().any(|(_, m)| m.enabled);
    if !any {
        return "Result: reported only, no strictness mode enabled (exit 0)".into();
    }
    format!("Result: {} (exit {})", if o.passed() { "PASS" } else { "FAIL" }, o.exit_code())
}

fn producer_phrase(p: &crate::format::report::Producer) -> String {
    format!("{}, {}", p.name, p.implementation)
}
