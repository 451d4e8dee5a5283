//! `parity merge-results A.json B.json …`: the JSON outputs of the N
//! partitions of one `parity diff --partition K/N` run, combined into the
//! outcome (and so the JSON, byte for byte) of the unpartitioned run.

use super::outcome::{DiffOutcome, SCHEMA};
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
        match v.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            other => return Err(Error::json(p, format!("schema {other:?}: not a {SCHEMA} result of parity diff --format json"))),
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
        if o.run != first.run || part.n != n || o.left != first.left || o.right != first.right || o.options != first.options {
            return Err(Error::json(
                p,
                format!("partition {}/{} of another run than {} (different checkpoints, options or N)", part.k, part.n, first_path.display()),
            ));
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
