//! `parity ops`: the catalog as people and scripts read it.

use super::{Operation, Stage, REGISTRY};
use crate::compare::Profile;
use crate::compare::tolerance::Tolerance;
use std::fmt::Write;

/// The optional limits of a tolerance, for display ("max_ulp 1, cos ≥ 0.9999").
pub fn extra_limits(t: &Tolerance) -> String {
    let mut parts = Vec::new();
    if let Some(c) = t.min_cosine {
        parts.push(format!("cosine ≥ {c}"));
    }
    if let Some(u) = t.max_ulp {
        parts.push(format!("max_ulp {u}"));
    }
    if t.rtol.is_some() || t.atol.is_some() {
        parts.push(format!(
            "allclose rtol {:e} atol {:e} (≤ {:e} mismatched)",
            t.rtol.unwrap_or(0.0),
            t.atol.unwrap_or(0.0),
            t.max_mismatch_fraction.unwrap_or(0.0)
        ));
    }
    parts.join(", ")
}

/// A limit for people: "0", "1e-6", "inf".
fn limit(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_infinite() {
        "inf".into()
    } else {
        format!("{x:e}")
    }
}

pub fn to_text() -> String {
    let mut s = String::new();
    for op in REGISTRY {
        describe(&mut s, op);
        s.push('\n');
    }
    s
}

fn describe(s: &mut String, op: &Operation) {
    let _ = writeln!(s, "{} — {}", op.name, op.summary);
    let _ = writeln!(s, "  inputs:");
    for i in op.inputs {
        let _ = writeln!(s, "    {:<12} {}{}", i.name, i.doc, if i.optional { " (optional)" } else { "" });
    }
    if !op.params.is_empty() {
        let _ = writeln!(s, "  params:");
        for p in op.params {
            let _ = writeln!(s, "    {:<12} {}{}", p.name, p.doc, if p.required { " (required)" } else { "" });
        }
    }
    let _ = writeln!(s, "  stages, in pipeline order, with the default tolerance (gate: max_abs ≤ tol and mean_abs ≤ tol):");
    let _ = writeln!(s, "    {:<20} {:<14} {:<9} {:>8} {:>9}  {}", "stage", "dtype", "required", "max_abs", "mean_abs", "why");
    for st in op.stages {
        let t = &st.tolerance;
        let extra = extra_limits(t);
        let why = if extra.is_empty() { st.why.to_string() } else { format!("[{extra}] {}", st.why) };
        let _ = writeln!(
            s,
            "    {:<20} {:<14} {:<9} {:>8} {:>9}  {}",
            st.name,
            st.dtype.to_string(),
            if t.required { "yes" } else { "no" },
            limit(t.max_abs),
            limit(t.mean_abs),
            why
        );
    }
}

/// A tolerance as JSON; an infinite limit (a check switched off) is written
/// as the string "inf", since JSON has no infinity.
fn tolerance_json(t: &Tolerance) -> serde_json::Value {
    let mut v = serde_json::to_value(t).expect("tolerances serialize");
    for (key, limit) in [("max_abs", t.max_abs), ("mean_abs", t.mean_abs)] {
        if limit.is_infinite() {
            v[key] = "inf".into();
        }
    }
    v
}

pub fn to_json() -> String {
    let ops: Vec<serde_json::Value> = REGISTRY
        .iter()
        .map(|op| {
            serde_json::json!({
                "name": op.name,
                "summary": op.summary,
                "inputs": op.inputs.iter().map(|i| serde_json::json!({"name": i.name, "doc": i.doc, "optional": i.optional})).collect::<Vec<_>>(),
                "params": op.params.iter().map(|p| serde_json::json!({"name": p.name, "doc": p.doc, "required": p.required})).collect::<Vec<_>>(),
                "stages": op.stages.iter().map(|st| serde_json::json!({
                    "name": st.name,
                    "dtype": st.dtype.to_string(),
                    "tolerance": tolerance_json(&st.tolerance),
                    "why": st.why,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&serde_json::json!({"schema": "parity.ops.v1", "operations": ops})).unwrap();
    s.push('\n');
    s
}

/// The built-in tolerance profile: every declared stage of every catalog
/// operation with its declared tolerance. The comparer knows no operation;
/// this is how the catalog's declarations reach it.
pub fn builtin_profile() -> Profile {
    profile_mapped(|_, stage| stage.tolerance).named("built-in")
}

/// A profile over the catalog's operations with a tolerance computed for
/// each declared stage (the golden gate builds a much tighter one this way).
pub fn profile_mapped(f: impl Fn(&Operation, &Stage) -> Tolerance) -> Profile {
    Profile::declared(
        "built-in (mapped)",
        REGISTRY.iter().map(|op| (op.name, op.stages.iter().map(|s| (s.name, f(op, s))).collect::<Vec<_>>())),
    )
}
