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
        "{}{} ({}, {}, {}, {}{})\n",
        if md { "## parity inspect: " } else { "" },
        if md { super::md::cell(&o.path) } else { o.path.clone() },
        o.layout,
        numbers::count(o.files as u64, "file"),
        numbers::count(o.tensors.len() as u64, "tensor"),
        super::diff::bytes(o.total_bytes),
        if o.skipped_values > 0 { format!("; {} skipped", numbers::count(o.skipped_values, "non-tensor value")) } else { String::new() }
    );
    if !o.metadata.is_empty() {
        let _ = writeln!(s, "{}metadata:", if md { "### " } else { "" });
        for (k, v) in &o.metadata {
            let line = format!("{k} = {v}");
            let _ = writeln!(s, "{}{}", if md { "- " } else { "  " }, if md { super::md::cell(&line) } else { line });
        }
        let _ = writeln!(s);
    }
    let quantized = o.tensors.iter().any(|t| t.stored_as.is_some());
    let mut head: Vec<&str> = if o.headers_only {
        vec!["tensor", "dtype", "shape", "bytes", "file", "offset"]
    } else {
        vec!["tensor", "dtype", "shape", "bytes", "min", "max", "mean", "std", "|x| max", "nan", "+inf", "-inf", "zeros", "subnormal"]
    };
    if quantized {
        head.insert(4, "bpw");
    }
    let rows: Vec<Vec<String>> = o
        .tensors
        .iter()
        .map(|t| {
            let dtype = t.stored_as.clone().unwrap_or_else(|| t.dtype.clone());
            let mut r = vec![t.name.clone(), dtype, numbers::shape(&t.shape), numbers::thousands(t.bytes)];
            if quantized {
                // Bits per weight: the blocks' for a quantized tensor, the dtype's otherwise.
                let bpw = t.bits_per_weight.unwrap_or_else(|| crate::format::dtype::DType::parse(&t.dtype).map_or(0.0, |d| 8.0 * d.size() as f64));
                r.insert(4, format!("{bpw}"));
            }
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
        // Names are code, as in every other command's Markdown; the rest is text.
        let rows: Vec<Vec<String>> =
            rows.iter().map(|r| r.iter().enumerate().map(|(i, c)| if i == 0 { super::md::code(c) } else { super::md::cell(c) }).collect()).collect();
        let _ = write!(s, "{}", super::md::table(&head, &rows));
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
        let _ = writeln!(s, "{}{name}: {}, {}", if md { "- " } else { "  " }, numbers::count(l.tensors as u64, "tensor"), super::diff::bytes(l.bytes));
    }
    // Names come from files: in Markdown they must not become markup.
    let prose = |x: String| if md { super::md::cell(&x) } else { x };
    for g in &o.identical_groups {
        let _ = writeln!(s, "\nbyte-identical: {}", prose(g.join(", ")));
    }
    for t in &o.tensors {
        if let Some(st) = &t.stats {
            for ov in st.overflow.iter().filter(|ov| ov.count > 0) {
                let line = format!("{}: {} would not fit {} (largest |x| {})", t.name, numbers::count(ov.count, "value"), ov.format, extreme(ov.largest));
                let _ = writeln!(s, "{}", prose(line));
            }
        }
    }
    if !o.failures.is_empty() {
        let _ = writeln!(s, "\nFAIL:");
        for f in &o.failures {
            let _ = writeln!(s, "  {}", prose(f.clone()));
        }
    }
    s
}
