//! Golden plan cases: `plan_case.json` names a plan, the oracle's stage
//! report of its run (`python3 -m parity_oracle apply --save-stages`) and the
//! oracle's output model. The gate runs `parity apply` with both
//! implementations, checks the stages against the oracle's in lockstep
//! (`--strict-stage-tolerances`, built-in profile) and diffs the output model
//! against the oracle's with the case's tolerances.

use super::{GateFailure, GateRow};
use crate::apply::{self, ApplyOptions};
use crate::check::{self, CheckOptions, Modes};
use crate::diff::{self, DiffOptions};
use crate::error::{Error, Result};
use crate::ops::Implementation;
use serde::Deserialize;
use std::path::Path;

pub const FILE: &str = "plan_case.json";
pub const SCHEMA: &str = "parity.plan_case.v1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    schema: String,
    plan: String,
    oracle_report: String,
    oracle_model: String,
    #[serde(default)]
    diff_args: Vec<String>,
}

pub fn gate(dir: &Path, case: &str, work: &Path) -> Result<Vec<GateRow>> {
    let path = dir.join(FILE);
    let text = crate::format::checkpoint::read_small(&path, 1 << 20)?;
    let c: Case = serde_json::from_slice(&text).map_err(|e| Error::json(&path, format!("not a {SCHEMA} case: {e}")))?;
    if c.schema != SCHEMA {
        return Err(Error::json(&path, format!("schema '{}', expected '{SCHEMA}'", c.schema)));
    }
    for p in [&c.plan, &c.oracle_report, &c.oracle_model] {
        if Path::new(p).is_absolute() || p.contains("..") {
            return Err(Error::PathEscapes { path: path.clone(), field: "plan_case".into(), target: p.clone(), container: "case" });
        }
    }
    let mut diff_opts = DiffOptions::default();
    let mut args = c.diff_args.iter();
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--tolerances", Some(f)) => diff_opts.profile = Some(crate::ops::builtin_profile().merge_file(&dir.join(f))?),
            (other, _) => return Err(Error::json(&path, format!("diff_args: '{other}' is not a flag a golden plan case takes"))),
        }
    }
    let mut rows = Vec::new();
    for implementation in [Implementation::Fast, Implementation::Reference] {
        let out = work.join(format!("{case}.{}", implementation.name()));
        let stages = work.join(format!("{case}.{}.stages.json", implementation.name()));
        let opts = ApplyOptions { out: Some(out.clone()), implementation, save_stages: Some(stages.clone()), ..ApplyOptions::default() };
        let applied = apply::apply(&dir.join(&c.plan), &opts)?;
        let mut problems = Vec::new();
        if let Some((step, what)) = &applied.failure {
            problems.push(format!("apply failed at step '{step}': {what}"));
        }
        let checked = check::check(
            &dir.join(&c.oracle_report),
            &stages,
            &CheckOptions { modes: Modes { strict_stage_tolerances: true, ..Modes::default() }, ..CheckOptions::default() },
        )?;
        if !checked.passed() {
            problems.push(format!("stages: {}", checked.tightest_summary()));
        }
        let diffed = diff::diff(&dir.join(&c.oracle_model), &out, &diff_opts)?;
        if !diffed.passed() {
            let bad: Vec<String> = diffed.tensors.iter().filter(|t| !t.status.ok()).map(|t| format!("{} {}", t.name, t.status.name())).collect();
            problems.push(format!("model: {}", bad.join(", ")));
        }
        let passed = problems.is_empty();
        rows.push(GateRow {
            case: case.to_string(),
            implementation: format!("apply {}", implementation.name()),
            against: "numpy-f32 plan".into(),
            tensors: checked.tensor_count(),
            passed,
            summary: match problems.first() {
                None => format!("stages: {}; model: {} as the oracle's", checked.tightest_summary(), crate::compare::numbers::count(diffed.tensors.len() as u64, "tensor")),
                Some(p) => p.clone(),
            },
            failure: (!passed).then(|| GateFailure { problems, check: Some(Box::new(checked)), diff: Some(Box::new(diffed)) }),
        });
    }
    Ok(rows)
}
