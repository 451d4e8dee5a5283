//! A `parity diff` outcome for its reader: a terminal (text), a script
//! (JSON, `parity.diff.v1`), a CI test viewer (JUnit, one testcase per
//! tensor) or a CI step summary (Markdown: counts, then failing tensors first).

use super::{md, Format};
use crate::compare::numbers;
use crate::diff::outcome::{DiffOutcome, Status, TensorDiff};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use std::fmt::Write;

/// The outcome in one format. Every format carries the same verdicts.
pub fn render(o: &DiffOutcome, format: Format) -> String {
    match format {
        Format::Text => text(o),
        Format::Json => o.to_json(),
        Format::Junit => junit(o),
        Format::Markdown => markdown(o),
        Format::Html => super::html::render_diff(o),
    }
}

fn index(ix: &Option<Vec<usize>>) -> String {
    match ix {
        Some(ix) => format!(" at {}", numbers::index(ix)),
        None => String::new(),
    }
}

pub(super) fn dtype_cell(t: &TensorDiff) -> String {
    // A quantized RIGHT: its stored type, not the F32 of its values.
    if let (Some(q), Some(l)) = (&t.quantization, &t.dtype_left) {
        return format!("{l}→{}", q.ty);
    }
    match (&t.dtype_left, &t.dtype_right) {
        (Some(l), Some(r)) if l == r => l.clone(),
        (Some(l), Some(r)) => format!("{l}→{r}"),
        (Some(l), None) => l.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => "-".into(),
    }
}

pub(super) fn shape_cell(t: &TensorDiff) -> String {
    match (&t.shape_left, &t.shape_right) {
        (Some(l), Some(r)) if l == r => numbers::shape(l),
        (Some(l), Some(r)) => format!("{}→{}", numbers::shape(l), numbers::shape(r)),
        (Some(s), None) | (None, Some(s)) => numbers::shape(s),
        (None, None) => "-".into(),
    }
}

/// The metric cells of a compared pair: max_abs (at), mean_abs, max ULP,
/// elements not bit-equal, SQNR.
pub(super) fn metric_cells(t: &TensorDiff) -> [String; 5] {
    let Some(m) = &t.metrics else { return Default::default() };
    // An integer tensor's max_abs is exact: shown in full.
    let x = m.max_abs.as_f64();
    let max_abs = format!("{}{}", numbers::diff(x, m.max_abs.exact_u64()), if x > 0.0 { index(&m.max_abs_index) } else { String::new() });
    // ULPs of a quantized RIGHT's dequantized F32 values say nothing.
    let quantized = t.quantization.is_some();
    let ulp = m.max_ulp.filter(|_| !quantized).map(numbers::thousands).unwrap_or_else(|| "-".into());
    let neq = m.not_bit_equal.filter(|_| !quantized).map(numbers::thousands).unwrap_or_else(|| "-".into());
    [max_abs, numbers::short(m.mean_abs.0), ulp, neq, numbers::db(m.sqnr_db.0)]
}

/// Why a tensor is not identical, in one phrase.
pub(super) fn why(t: &TensorDiff) -> String {
    let mut parts: Vec<String> = t.failures.clone();
    if let Some(tr) = &t.transposed {
        if tr.matches {
            parts.push("RIGHT holds LEFT transposed: the values match transposed".into());
        } else if tr.metrics.is_some() {
            parts.push(format!("RIGHT's shape is LEFT's transposed, but the values do not match transposed either ({})", tr.failures.join("; ")));
        } else {
            parts.extend(tr.failures.iter().cloned());
        }
    }
    if let Some(q) = &t.quantization {
        if t.status == Status::Within {
            parts.push(match (q.matches_reference, q.reference_sqnr_db, q.floor_db) {
                (Some(true), _, _) if q.ty == "F16" || q.ty == "BF16" => format!("{}: LEFT rounded to nearest even", q.ty),
                (Some(true), _, _) => format!("{}: the reference quantizer's blocks", q.ty),
                (Some(false), Some(r), _) => format!(
                    "{}: not the reference quantizer's blocks, SQNR {} dB where it gets {} dB (within {}× its RMS error)",
                    q.ty,
                    numbers::short(q.sqnr_db),
                    numbers::short(r),
                    q.margin.unwrap_or(2.0)
                ),
                (_, _, Some(f)) => format!("{}: SQNR {} dB ≥ the type's {} dB floor", q.ty, numbers::short(q.sqnr_db), numbers::short(f)),
                _ => q.ty.clone(),
            });
        }
    } else if t.status == Status::Within && t.dtype_left != t.dtype_right {
        parts.push("compared by value across dtypes".into());
    }
    // (A quantized pair's "worse than quantization" is its failure already.)
    if let Some(e) = t.explanation_summary().filter(|e| !t.failures.iter().any(|f| f == e)) {
        parts.push(format!("explanation: {e}"));
    }
    if let Some(rn) = &t.right_name {
        parts.push(format!("RIGHT's name: {rn}"));
    }
    match t.status {
        Status::OnlyLeft => parts.push("only in LEFT".into()),
        Status::OnlyRight => parts.push("only in RIGHT".into()),
        _ => {}
    }
    parts.join("; ")
}

pub(super) fn summary_line(o: &DiffOutcome) -> String {
    Status::ALL.iter().map(|s| format!("{} {}", numbers::thousands(o.summary.count(*s) as u64), s.name())).collect::<Vec<_>>().join(", ")
}

pub(super) fn side_line(which: &str, s: &crate::diff::outcome::Side) -> String {
    format!(
        "{which} {} ({}, {}, {}, {})",
        s.path,
        s.layout,
        numbers::count(s.files as u64, "file"),
        numbers::count(s.tensors as u64, "tensor"),
        bytes(s.bytes)
    )
}

pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut i = 0;
    while x >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{x:.1} {}", UNITS[i])
    }
}

fn text(o: &DiffOutcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", side_line("LEFT ", &o.left));
    let _ = writeln!(s, "{}", side_line("RIGHT", &o.right));
    let _ = writeln!(s, "limits: {}", o.options.tolerance);
    if let Some(p) = o.partition {
        let _ = writeln!(s, "partition {}/{} ({} of the pairs; combine the JSON of all {} with `parity merge-results`)", p.k, p.n, o.tensors.len(), p.n);
    }
    let shown: Vec<&TensorDiff> = o.tensors.iter().filter(|t| t.status != Status::Identical).collect();
    if !shown.is_empty() {
        let head = ["tensor", "status", "dtype", "shape", "max_abs", "mean_abs", "ulp", "≠bits", "sqnr_db", "why"];
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|t| {
                let [a, b, c, d, e] = metric_cells(t);
                vec![t.name.clone(), t.status.name().into(), dtype_cell(t), shape_cell(t), a, b, c, d, e, why(t)]
            })
            .collect();
        let widths: Vec<usize> =
            (0..head.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([head[i].chars().count()]).max().unwrap()).collect();
        let line = |cells: Vec<String>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(s, "\n{}", line(head.iter().map(|h| h.to_string()).collect()));
        for r in rows {
            let _ = writeln!(s, "{}", line(r));
        }
    }
    let identical = o.summary.identical;
    if identical > 0 {
        let _ = writeln!(s, "\n{} (same dtype, shape and bytes) not listed", numbers::count(identical as u64, "identical tensor"));
    }
    let _ = writeln!(s, "\nsummary: {}", summary_line(o));
    let _ = writeln!(s, "Result: {} (exit {})", o.result, if o.passed() { 0 } else { 1 });
    s
}

fn markdown(o: &DiffOutcome) -> String {
    let mut s = String::new();
    let mark = if o.passed() { "✅ PASS" } else { "❌ FAIL" };
    let _ = writeln!(s, "## parity diff: {mark}\n");
    let _ = writeln!(s, "{}  \n{}  \nlimits: {}\n", md::cell(&side_line("LEFT", &o.left)), md::cell(&side_line("RIGHT", &o.right)), md::cell(&o.options.tolerance));
    let counts: Vec<Vec<String>> = Status::ALL.iter().map(|st| vec![st.name().to_string(), numbers::thousands(o.summary.count(*st) as u64)]).collect();
    let _ = write!(s, "{}", md::table(&["status", "tensors"], &counts));
    let failing: Vec<&TensorDiff> = o.tensors.iter().filter(|t| !t.status.ok()).collect();
    let within: Vec<&TensorDiff> = o.tensors.iter().filter(|t| t.status == Status::Within).collect();
    for (title, list) in [("Failing tensors", failing), ("Within the limits", within)] {
        if list.is_empty() {
            continue;
        }
        let head = ["tensor", "status", "dtype", "shape", "max_abs", "mean_abs", "ulp", "≠bits", "sqnr_db", "why"];
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|t| {
                let [a, b, c, d, e] = metric_cells(t);
                let mut row = vec![md::code(&t.name)];
                row.extend([t.status.name().to_string(), dtype_cell(t), shape_cell(t), a, b, c, d, e, why(t)].iter().map(|c| md::cell(c)));
                row
            })
            .collect();
        let _ = write!(s, "\n### {title}\n\n{}", md::table(&head, &rows));
    }
    s
}

/// XML 1.0 cannot carry most control characters even escaped.
fn xml_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).collect()
}

fn junit(o: &DiffOutcome) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let failures = o.tensors.iter().filter(|t| !t.status.ok()).count();
    // Writing to a Vec cannot fail.
    let ok: std::io::Result<()> = (|| {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let mut suites = BytesStart::new("testsuites");
        suites.push_attribute(("name", "parity diff"));
        suites.push_attribute(("tests", o.tensors.len().to_string().as_str()));
        suites.push_attribute(("failures", failures.to_string().as_str()));
        w.write_event(Event::Start(suites))?;
        let mut suite = BytesStart::new("testsuite");
        let name = xml_safe(&format!("{} vs {}", o.left.path, o.right.path));
        suite.push_attribute(("name", name.as_str()));
        suite.push_attribute(("tests", o.tensors.len().to_string().as_str()));
        suite.push_attribute(("failures", failures.to_string().as_str()));
        w.write_event(Event::Start(suite))?;
        for t in &o.tensors {
            let mut case = BytesStart::new("testcase");
            let n = xml_safe(&t.name);
            case.push_attribute(("name", n.as_str()));
            case.push_attribute(("classname", "parity.diff"));
            w.write_event(Event::Start(case))?;
            let mut props = vec![("status", t.status.name().to_string()), ("dtype", dtype_cell(t)), ("shape", shape_cell(t))];
            let [a, b, c, d, e] = metric_cells(t);
            for (k, v) in [("max_abs", a), ("mean_abs", b), ("max_ulp", c), ("not_bit_equal", d), ("sqnr_db", e)] {
                if !v.is_empty() {
                    props.push((k, v));
                }
            }
            w.write_event(Event::Start(BytesStart::new("properties")))?;
            for (k, v) in props {
                let mut p = BytesStart::new("property");
                p.push_attribute(("name", k));
                let v = xml_safe(&v);
                p.push_attribute(("value", v.as_str()));
                w.write_event(Event::Empty(p))?;
            }
            w.write_event(Event::End(BytesEnd::new("properties")))?;
            if !t.status.ok() {
                let mut fail = BytesStart::new("failure");
                let msg = xml_safe(&format!("{}: {}", t.status.name(), why(t)));
                fail.push_attribute(("message", msg.as_str()));
                w.write_event(Event::Start(fail))?;
                w.write_event(Event::Text(BytesText::new(&msg)))?;
                w.write_event(Event::End(BytesEnd::new("failure")))?;
            }
            w.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))?;
        w.write_event(Event::End(BytesEnd::new("testsuites")))?;
        Ok(())
    })();
    ok.expect("writing XML to memory");
    let mut s = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    s.push('\n');
    s
}
