//! What differs between the two reports besides their numbers (producer,
//! baseline, which tensors and stages each has), as unified diffs.

use super::setup::*;
use super::StageSelection;
use crate::format::report::TensorEntry;
use std::path::Path;

pub(super) fn unified(a: &str, b: &str, left: &Path, right: &Path) -> Option<String> {
    if a == b {
        return None;
    }
    let diff = similar::TextDiff::from_lines(a, b);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("LEFT {}", left.display()), &format!("RIGHT {}", right.display()))
        .to_string();
    Some(text)
}

pub(super) fn provenance_diff(l: &Opened, r: &Opened) -> Option<String> {
    let text = |o: &Opened| {
        let v = serde_json::json!({"producer": o.loaded.report.producer, "baseline": o.loaded.report.baseline});
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    };
    unified(&text(l), &text(r), l.path(), r.path())
}

pub(super) fn presence_diff(
    l: &Opened,
    lt: &[&TensorEntry],
    r: &Opened,
    rt: &[&TensorEntry],
    sel: &StageSelection,
) -> Option<String> {
    let text = |ts: &[&TensorEntry]| {
        let mut ts: Vec<&&TensorEntry> = ts.iter().collect();
        ts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut s = String::new();
        for t in ts {
            s.push_str(&format!("{} ({})\n", t.name, t.operation));
            for stage in t.stages.keys().filter(|n| sel.includes(n)) {
                s.push_str(&format!("    {stage}\n"));
            }
        }
        s
    };
    unified(&text(lt), &text(rt), l.path(), r.path())
}
