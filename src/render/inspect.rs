//! `parity inspect` for its reader: a table per tensor grouped by layer (text,
//! Markdown), or `parity.inspect.v1` JSON.

use super::Format;
use crate::compare::numbers::{self, short};
use crate::inspect::{Extreme, InspectOutcome};
use std::fmt::Write;

pub fn render(o: &InspectOutcome, format: Format) -> String {
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(o).expect("serialises");
            s.push('\n');
            s
        }
        Format::Markdown => table(o, true),
        // No page for inspect (the command line refuses it).
        Format::Text | Format::Junit | Format::Html => table(o, false),
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(short).unwrap_or_else(|| "-".into())
}

/// An integer tensor's min, max and |x| max in full; a float's in short.
fn extreme(x: Option<Extreme>) -> String {
    x.map(Extreme::text).unwrap_or_else(|| "-".into())
}

fn table(o: &InspectOutcome, md: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}{} ({}, {} file(s), {} tensors, {})\n",
        if md { "## parity inspect: " } else { "" },
        o.path,
        o.layout,
        o.files,
        numbers::thousands(o.tensors.len() as u64),
        super::diff::bytes(o.total_bytes)
    );
    let head: Vec<&str> = if o.headers_only {
        vec!["tensor", "dtype", "shape", "bytes", "file", "offset"]
    } else {
        vec!["tensor", "dtype", "shape", "bytes", "min", "max", "mean", "std", "|x| max", "nan", "+inf", "-inf", "zeros", "subnormal"]
    };
    let rows: Vec<Vec<String>> = o
        .tensors
        .iter()
        .map(|t| {
            let mut r = vec![t.name.clone(), t.dtype.clone(), numbers::shape(&t.shape), numbers::thousands(t.bytes)];
            match &t.stats {
                None => r.extend([t.file.clone(), t.offset.to_string()]),
                Some(st) => r.extend([
                    extreme(st.min),
                    extreme(st.max),
                    opt(st.mean),
                    opt(st.std),
                    extreme(st.abs_max),
                    st.nan.to_string(),
                    st.pos_inf.to_string(),
                    st.neg_inf.to_string(),
                    numbers::thousands(st.zeros),
                    numbers::thousands(st.subnormals),
                ]),
            }
            r
        })
        .collect();
    if md {
        let _ = writeln!(s, "| {} |\n|{}", head.join(" | "), "---|".repeat(head.len()));
        for r in &rows {
            let _ = writeln!(s, "| {} |", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
        }
    } else {
        let widths: Vec<usize> = (0..head.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([head[i].len()]).max().unwrap()).collect();
        let line = |cells: Vec<String>| {
            cells.iter().enumerate().map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - c.chars().count()))).collect::<Vec<_>>().join("  ").trim_end().to_string()
        };
        let _ = writeln!(s, "{}", line(head.iter().map(|h| h.to_string()).collect()));
        for r in rows {
            let _ = writeln!(s, "{}", line(r));
        }
    }
    let _ = writeln!(s, "\n{}bytes by layer:", if md { "### " } else { "" });
    for l in &o.layers {
        let name = l.layer.map(|n| format!("layer {n}")).unwrap_or_else(|| "no layer".into());
        let _ = writeln!(s, "{}{name}: {} tensors, {}", if md { "- " } else { "  " }, l.tensors, super::diff::bytes(l.bytes));
    }
    for g in &o.identical_groups {
        let _ = writeln!(s, "\nbyte-identical: {}", g.join(", "));
    }
    for t in &o.tensors {
        if let Some(st) = &t.stats {
            for ov in st.overflow.iter().filter(|ov| ov.count > 0) {
                let _ = writeln!(s, "{}: {} value(s) would not fit {} (largest |x| {})", t.name, numbers::thousands(ov.count), ov.format, extreme(ov.largest));
            }
        }
    }
    if !o.failures.is_empty() {
        let _ = writeln!(s, "\nFAIL:");
        for f in &o.failures {
            let _ = writeln!(s, "  {f}");
        }
    }
    s
}
