//! `parity apply`'s table: what would be written (`--dry-run`), or what was
//! done (the "surgical log").

use crate::apply::ApplyOutcome;
use crate::compare::numbers;
use std::fmt::Write;

pub fn text(o: &ApplyOutcome) -> String {
    let mut s = String::new();
    let head = ["step", "operation", "tensor", "→ output", "dtype", "shape", if o.dry_run { "" } else { "status" }];
    let rows: Vec<[String; 7]> = o
        .rows
        .iter()
        .map(|r| {
            [
                r.step.clone(),
                r.operation.clone(),
                r.tensor.clone(),
                match &r.output {
                    Some(_) if r.operation == "merge_missing" => "(added)".into(),
                    Some(out) if *out == r.tensor => "(in place)".into(),
                    Some(out) => out.clone(),
                    None => "-".into(),
                },
                r.dtype.clone().unwrap_or_else(|| if r.output.is_some() { "(at run)".into() } else { "-".into() }),
                r.shape.as_deref().map(numbers::shape).unwrap_or_else(|| if r.output.is_some() { "(at run)".into() } else { "-".into() }),
                if o.dry_run { String::new() } else { r.status.clone() },
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([head[i].chars().count()]).max().unwrap()).collect();
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(s, "{}", line(&head.map(String::from)));
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
    let bytes = o.bytes.map(crate::render::diff::bytes).unwrap_or_else(|| "size known at run".into());
    if o.dry_run {
        let _ = writeln!(
            s,
            "\ndry run: {}; the output would hold {} ({bytes}) in {}; no weights were read",
            numbers::count(o.rows.len() as u64, "action"),
            numbers::count(o.tensors as u64, "tensor"),
            o.out.display()
        );
    } else if let (Some(m), None) = (&o.manifest, &o.failure) {
        let applied = o.rows.iter().filter(|r| r.status == "applied").count();
        let skipped = o.rows.iter().filter(|r| r.status == "skipped").count();
        let verified = o.rows.iter().any(|r| r.status == "verified" || r.status == "held (recorded)");
        if verified {
            let _ = writeln!(
                s,
                "\n{} is complete and unchanged: every file's sha256 matches manifest.json ({}, {bytes}, {}); nothing recomputed, asserts held when it was written; manifest.json: plan {}",
                o.out.display(),
                numbers::count(o.tensors as u64, "tensor"),
                numbers::count(m.files.len() as u64, "file"),
                numbers::short_hash(&m.plan_sha256)
            );
        } else {
            let _ = writeln!(
                s,
                "\nwrote {} ({}, {bytes}, {}); {} applied, {skipped} resumed from the manifest; manifest.json: plan {}",
                o.out.display(),
                numbers::count(o.tensors as u64, "tensor"),
                numbers::count(m.files.len() as u64, "file"),
                numbers::count(applied as u64, "action"),
                numbers::short_hash(&m.plan_sha256)
            );
        }
    }
    for note in &o.notes {
        let _ = writeln!(s, "note: {note}");
    }
    if let Some((step, what)) = &o.failure {
        let _ = writeln!(s, "\nFAIL: step '{step}': {what}");
    }
    s
}
