//! Golden checkpoint-diff cases: `diff_case.json` names a left and a right
//! checkpoint and the `parity diff` runs to make, each with the status (and
//! max |right − left|) the numpy oracle expects for every tensor. The gate
//! runs each and holds parity's answer to the oracle's.

use super::{GateFailure, GateRow};
use crate::diff::outcome::DiffOutcome;
use crate::diff::{self, DiffOptions, Limit};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const FILE: &str = "diff_case.json";
pub const SCHEMA: &str = "parity.diff_case.v1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    schema: String,
    left: String,
    right: String,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    /// RIGHT for this run, when not the case's (relative to the case).
    #[serde(default)]
    right: Option<String>,
    /// `parity diff` flags: `--tolerances FILE` (relative to the case), `--atol X`, `--rtol Y`,
    /// `--map-preset NAME`.
    args: Vec<String>,
    expected: BTreeMap<String, Expected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    status: String,
    #[serde(default)]
    max_abs: Option<f64>,
    /// For a quantized RIGHT: whether its blocks are the reference
    /// quantizer's (numpy's `gguf.quants.quantize` of LEFT).
    #[serde(default)]
    matches_reference: Option<bool>,
    /// What the explanation's summary must contain, where one is expected.
    #[serde(default)]
    explanation: Option<String>,
}

/// One gate row per run of the case.
pub fn gate(dir: &Path, case: &str) -> Result<Vec<GateRow>> {
    let path = dir.join(FILE);
    let text = crate::format::checkpoint::read_small(&path, 16 << 20)?;
    let c: Case = serde_json::from_slice(&text).map_err(|e| Error::json(&path, format!("not a {SCHEMA} case: {e}")))?;
    if c.schema != SCHEMA {
        return Err(Error::json(&path, format!("schema '{}', expected '{SCHEMA}'", c.schema)));
    }
    for p in [&c.left, &c.right].into_iter().chain(c.runs.iter().filter_map(|r| r.right.as_ref())) {
        if Path::new(p).is_absolute() || p.contains("..") {
            return Err(Error::PathEscapes { path: path.clone(), field: "left/right".into(), target: p.clone(), container: "case" });
        }
    }
    let mut rows = Vec::new();
    for run in &c.runs {
        let opts = options(dir, &path, &run.args)?;
        let right = run.right.as_ref().unwrap_or(&c.right);
        let outcome = diff::diff(&dir.join(&c.left), &dir.join(right), &opts)?;
        let problems = disagreements(&outcome, &run.expected);
        let mut against = if run.args.is_empty() { "numpy exact".to_string() } else { format!("numpy {}", run.args.join(" ")) };
        if let Some(r) = &run.right {
            against = format!("{against} (vs {r})");
        }
        let passed = problems.is_empty();
        rows.push(GateRow {
            case: case.to_string(),
            implementation: "diff".into(),
            against,
            tensors: outcome.tensors.len(),
            passed,
            summary: match problems.first() {
                None => format!("statuses as expected: {}", summary(&outcome)),
                Some(p) => p.clone(),
            },
            failure: (!passed).then(|| GateFailure { problems, check: None, diff: Some(Box::new(outcome)) }),
        });
    }
    Ok(rows)
}

fn summary(o: &DiffOutcome) -> String {
    crate::diff::outcome::Status::ALL
        .iter()
        .filter(|s| o.summary.count(**s) > 0)
        .map(|s| format!("{} {}", o.summary.count(*s), s.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn options(dir: &Path, path: &Path, args: &[String]) -> Result<DiffOptions> {
    let mut opts = DiffOptions::default();
    let (mut atol, mut rtol) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| Error::json(path, format!("run args: {flag} needs a value")))?;
        let number = || value.parse::<f64>().map_err(|_| Error::json(path, format!("run args: {flag} {value}: not a number")));
        match flag.as_str() {
            "--tolerances" => opts.profile = Some(crate::ops::builtin_profile().merge_file(&dir.join(value))?),
            "--atol" => atol = Some(number()?),
            "--map-preset" => opts.name_map = Some(crate::diff::name_map::MapFile::preset(value)?),
            "--rtol" => rtol = Some(number()?),
            other => return Err(Error::json(path, format!("run args: '{other}' is not a flag a golden diff run takes"))),
        }
    }
    if atol.is_some() || rtol.is_some() {
        opts.limit = Limit::AllClose { atol: atol.unwrap_or(0.0), rtol: rtol.unwrap_or(0.0) };
    }
    Ok(opts)
}

/// Every way parity's outcome differs from the oracle's expectation.
fn disagreements(o: &DiffOutcome, expected: &BTreeMap<String, Expected>) -> Vec<String> {
    let mut out = Vec::new();
    let got: BTreeMap<&str, _> = o.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for (name, e) in expected {
        let Some(t) = got.get(name.as_str()) else {
            out.push(format!("{name}: expected {}, parity did not list it", e.status));
            continue;
        };
        if t.status.name() != e.status {
            out.push(format!("{name}: expected {}, parity says {}", e.status, t.status.name()));
        }
        if let Some(want) = e.matches_reference {
            let got = t.quantization.as_ref().and_then(|q| q.matches_reference);
            if got != Some(want) {
                out.push(format!("{name}: matches_reference {got:?}, numpy says {want}"));
            }
        }
        if let Some(want) = &e.explanation {
            if !t.explanation_summary().is_some_and(|s| s.contains(want.as_str())) {
                out.push(format!("{name}: explanation {:?}, expected one saying {want:?}", t.explanation_summary()));
            }
        }
        // A non-finite max_abs (NaN, ±inf) counts as infinitely far.
        let max_abs = t.metrics.as_ref().map(|m| m.max_abs.as_f64()).map(|x| if x.is_finite() { x } else { f64::INFINITY });
        if let (Some(want), Some(got)) = (e.max_abs, max_abs) {
            // Both are |r − l| of f64-exact decodes, taken in f64: equal but
            // for the last bit where a subtraction rounds.
            if (want - got).abs() > 1e-12 * want.abs().max(f64::MIN_POSITIVE) && !(want.is_infinite() && got.is_infinite()) {
                out.push(format!("{name}: max_abs {got:e}, numpy says {want:e}"));
            }
        }
    }
    for name in got.keys().filter(|n| !expected.contains_key(**n)) {
        out.push(format!("{name}: listed by parity, not expected"));
    }
    out
}
