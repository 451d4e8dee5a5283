//! `parity merge-results A.json B.json …`: the JSON outputs of the N
//! partitions of one `parity diff --partition K/N` run, combined into the
//! outcome (and so the JSON, byte for byte) of the unpartitioned run.

use super::outcome::{DiffOutcome, SCHEMA};
use crate::compare::numbers;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Read and combine. Refused: a file that is not `parity.diff.v1`, an
/// unpartitioned result, partitions of different runs or different N, a
/// partition given twice, and a missing partition.
pub fn merge(paths: &[PathBuf]) -> Result<DiffOutcome> {
    if paths.is_empty() {
        return Err(Error::Usage("merge-results: give the JSON output of every partition".into()));
    }
    let mut parts: Vec<(PathBuf, DiffOutcome)> = Vec::new();
    for p in paths {
        let text = crate::format::checkpoint::read_small(p, 1 << 30)?;
        let v: serde_json::Value = crate::format::strict_json::parse(&text).map_err(|e| Error::json(p, format!("not JSON: {e}")))?;
        match v.get("schema") {
            Some(serde_json::Value::String(s)) if s == SCHEMA => {}
            Some(serde_json::Value::String(s)) => {
                return Err(Error::json(p, format!("schema '{s}': not a {SCHEMA} result of parity diff --format json")))
            }
            Some(other) => return Err(Error::json(p, format!("\"schema\" is {other}, not a string: not a {SCHEMA} result of parity diff --format json"))),
            None => return Err(Error::json(p, format!("no \"schema\": not a {SCHEMA} result of parity diff --format json"))),
        }
        let o: DiffOutcome = serde_json::from_value(v).map_err(|e| Error::json(p, format!("not a {SCHEMA} result: {e}")))?;
        parts.push((p.clone(), o));
    }
    let (first_path, first) = &parts[0];
    let Some(n) = first.partition.map(|p| p.n) else {
        return Err(Error::json(first_path, "not a partition (no \"partition\": it was run without --partition K/N)"));
    };
    let mut seen: Vec<Option<&Path>> = vec![None; n];
    for (p, o) in &parts {
        let Some(part) = o.partition else {
            return Err(Error::json(p, "not a partition (no \"partition\": it was run without --partition K/N)"));
        };
        if let Some(what) = difference(first, n, o, part.n) {
            return Err(Error::json(p, format!("partition {}/{} of another run than {}: {what}", part.k, part.n, first_path.display())));
        }
        if let Some(prev) = seen[part.k - 1] {
            return Err(Error::json(p, format!("partition {}/{n} given twice (also {})", part.k, prev.display())));
        }
        seen[part.k - 1] = Some(p.as_path());
    }
    if let Some(k) = seen.iter().position(Option::is_none) {
        return Err(Error::Usage(format!("merge-results: partition {}/{n} is missing", k + 1)));
    }
    let mut merged = first.clone();
    merged.partition = None;
    merged.tensors = parts.into_iter().flat_map(|(_, o)| o.tensors).collect();
    merged.tensors.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = merged.tensors.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(Error::Usage(format!("merge-results: tensor '{}' appears in two partitions", w[0].name)));
    }
    merged.settle();
    Ok(merged)
}

/// What makes `o` (a partition of `n_o`) part of another run than `first`
/// (of `n`), named as the user set it: the flag, or the side, with the two
/// values. Options first (the usual slip is one job run with a different
/// flag), then the sides, then the fingerprint of the headers.
fn difference(first: &DiffOutcome, n: usize, o: &DiffOutcome, n_o: usize) -> Option<String> {
    let (a, b) = (&o.options, &first.options);
    let differs = |flag: &str, here: String, there: String| Some(format!("{flag} is {here} here, {there} there"));
    let list = |v: &[String]| if v.is_empty() { "not given".to_string() } else { v.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ") };
    let given = |v: Option<String>| v.unwrap_or_else(|| "not recorded".into());
    if n_o != n {
        return differs("--partition N", n_o.to_string(), n.to_string());
    }
    if a.top_diffs != b.top_diffs {
        return differs("--top-diffs", given(a.top_diffs.map(|t| t.to_string())), given(b.top_diffs.map(|t| t.to_string())));
    }
    if a.tolerance != b.tolerance {
        return differs("the limits (--atol/--rtol, --tolerances)", format!("'{}'", a.tolerance), format!("'{}'", b.tolerance));
    }
    if a.select != b.select {
        return differs("--select", list(&a.select), list(&b.select));
    }
    if a.layers != b.layers {
        let layers = |l: &Option<String>| l.clone().unwrap_or_else(|| "not given".into());
        return differs("--layers", layers(&a.layers), layers(&b.layers));
    }
    if a.map != b.map {
        return differs("--map", list(&a.map), list(&b.map));
    }
    for (side, here, there) in [("LEFT", &o.left, &first.left), ("RIGHT", &o.right, &first.right)] {
        if here != there {
            let show = |s: &super::outcome::Side| format!("{} ({}, {}, {})", s.path, s.layout, numbers::count(s.tensors as u64, "tensor"), numbers::count(s.bytes, "byte"));
            return differs(side, show(here), show(there));
        }
    }
    if o.run != first.run {
        return Some("the checkpoints' tensor headers differ (the run fingerprints do not match)".into());
    }
    None
}
