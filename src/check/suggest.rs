//! `parity check --suggest-tolerances FILE`: the tightest profile that what
//! was observed passes, with a stated margin, and where each number came from.
//!
//! Per (operation, stage), over every selected tensor: the largest observed
//! `max_abs`, `mean_abs` and (for float stages of one dtype) ULP distance,
//! times the margin, rounded **up** to one significant digit (`6.2e-5` →
//! `7e-5`, ULPs to a whole number first). A limit looser than the built-in
//! profile's is kept at the built-in value unless the caller allows looser
//! limits; either way it is reported, one line each. Other limits
//! (`min_cosine`, the allclose rule) are left as the profile has them; one
//! that what was observed breaks is reported, not changed.

use super::CheckOutcome;
use crate::compare::numbers::{short, thousands, value};
use crate::compare::profile::{Profile, SCHEMA};
use crate::compare::tolerance::Tolerance;
use crate::error::{Error, Result};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

/// How limits are suggested.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuggestOptions {
    /// Observed values are multiplied by this (≥ 1) before rounding up.
    pub margin: f64,
    /// Write limits looser than the built-in profile's (else keep the built-in ones).
    pub allow_looser: bool,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        SuggestOptions { margin: 2.0, allow_looser: false }
    }
}

/// A suggested profile: the file's text, and what a reader must be told.
#[derive(Clone, Debug)]
pub struct Suggestion {
    /// A `parity.tolerances.v1` document, keys in pipeline order.
    pub json: String,
    /// One line per limit looser than the built-in one (written or kept),
    /// and per limit the observation breaks that no suggestion changes.
    pub notes: Vec<String>,
}

/// The largest observations of one (operation, stage).
#[derive(Default)]
struct Observed {
    tensors: usize,
    max_abs: f64,
    mean_abs: f64,
    max_ulp: Option<u64>,
    /// Why no limit can pass it (a shape or dtype mismatch, non-finite mismatches).
    unpassable: Option<String>,
    /// Limits outside this suggestion's reach that were broken.
    other_broken: Vec<String>,
    applied: Option<Tolerance>,
}

/// The smallest number with one significant digit that is ≥ `x` (`x ≥ 0`):
/// 6.2e-5 → 7e-5, 3e-5 → 3e-5, 9.5 → 10. The result is checked against `x`
/// as the JSON writer will spell it, so decimal spelling can never round it
/// below what was observed.
pub fn round_up_one_digit(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return x.max(0.0);
    }
    let mut e = x.log10().floor() as i32;
    // The leading digit, with the slack of log10's own rounding.
    let mut d = (x / 10f64.powi(e)).ceil().max(1.0) as i64;
    loop {
        if d >= 10 {
            d = 1;
            e += 1;
        }
        let v: f64 = format!("{d}e{e}").parse().expect("a formatted number parses");
        if v >= x {
            return v;
        }
        d += 1;
    }
}

/// A margin below 1 (or not a number) would suggest limits what was observed breaks.
pub fn validate(opts: &SuggestOptions) -> Result<()> {
    if opts.margin.is_finite() && opts.margin >= 1.0 {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--tolerance-margin {}: must be a number ≥ 1 (a smaller one suggests limits that what was observed breaks)",
            opts.margin
        )))
    }
}

/// Suggest a profile from what a check observed. `builtin` is the profile
/// limits must not loosen.
pub fn suggest(o: &CheckOutcome, builtin: &Profile, opts: &SuggestOptions) -> Result<Suggestion> {
    validate(opts)?;
    let mut seen: IndexMap<(String, String), Observed> = IndexMap::new();
    for t in &o.tensors {
        for s in &t.stages {
            let ob = seen.entry((t.operation.clone(), s.stage.clone())).or_default();
            ob.applied.get_or_insert(s.tolerance);
            let (Some(l), Some(r)) = (&s.left, &s.right) else { continue };
            ob.tensors += 1;
            let Some(m) = &s.metrics else {
                ob.unpassable.get_or_insert_with(|| format!("{}: the shapes differ", t.name));
                continue;
            };
            if l.dtype != r.dtype {
                ob.unpassable.get_or_insert_with(|| format!("{}: the dtypes differ ({} vs {})", t.name, l.dtype, r.dtype));
            }
            if m.non_finite.mismatched > 0 {
                ob.unpassable.get_or_insert_with(|| format!("{}: NaN/inf at different positions", t.name));
            }
            // Integers: the gate holds the exact |d| against the limit, so the
            // observation is rounded up, never to nearest (10¹⁶ + 1 → 10¹⁶
            // would suggest a limit the pair breaks).
            ob.max_abs = ob.max_abs.max(m.max_abs_int.map_or(m.max_abs, crate::numeric::int::f64_at_least));
            ob.mean_abs = ob.mean_abs.max(m.mean_abs);
            if let Some(u) = m.max_ulp {
                ob.max_ulp = Some(ob.max_ulp.unwrap_or(0).max(u));
            }
            for f in &s.failures {
                if f.starts_with("cosine") || f.starts_with("allclose") {
                    ob.other_broken.push(format!("{}: {f}", t.name));
                }
            }
        }
    }

    let mut notes = Vec::new();
    let mut operations: Map<String, Value> = Map::new();
    for ((op, stage), ob) in &seen {
        let at = format!("{op}.{stage}");
        if let Some(why) = &ob.unpassable {
            notes.push(format!("{at}: no limit passes what was observed ({why}); left as the profile has it"));
            continue;
        }
        if ob.tensors == 0 {
            continue; // an optional stage only one side has: nothing observed
        }
        for b in &ob.other_broken {
            notes.push(format!("{at}: {b}: not a limit --suggest-tolerances sets (max_abs, mean_abs, max_ulp); left as the profile has it"));
        }
        let base = builtin.tolerance(op, stage);
        let from = if ob.tensors == 1 { "observed".to_string() } else { format!("largest of {} tensors", ob.tensors) };
        let mut entry = Map::new();
        let mut why = Map::new();
        entry.insert("required".into(), json!(ob.applied.map_or(true, |t| t.required)));
        let mut limit = |name: &str, observed: f64, suggested: f64, built_in: Option<f64>, show: &dyn Fn(f64) -> String| {
            // The margin as the user typed it (`2`), not in `short`'s limit style (`2e0`).
            let explained = format!(
                "{from} {} × margin {} = {}, rounded up to one significant digit: {}",
                show(observed),
                value(opts.margin),
                show(observed * opts.margin),
                show(suggested)
            );
            match built_in {
                Some(b) if suggested > b => {
                    if opts.allow_looser {
                        notes.push(format!("{at}: {name} {} loosens the built-in {} (--allow-looser)", show(suggested), show(b)));
                        (suggested, format!("{explained}; looser than the built-in {} (--allow-looser)", show(b)))
                    } else {
                        notes.push(format!(
                            "{at}: {name} would loosen the built-in {} to {} (observed {}): kept {}; --allow-looser writes it",
                            show(b),
                            show(suggested),
                            show(observed),
                            show(b)
                        ));
                        (b, format!("{explained}; that would loosen the built-in {}, so the built-in is kept", show(b)))
                    }
                }
                _ => (suggested, explained),
            }
        };
        let (v, w) = limit("max_abs", ob.max_abs, round_up_one_digit(ob.max_abs * opts.margin), base.map(|t| t.max_abs), &short);
        entry.insert("max_abs".into(), json!(v));
        why.insert("max_abs".into(), json!(w));
        let (v, w) =
            limit("mean_abs", ob.mean_abs, round_up_one_digit(ob.mean_abs * opts.margin), base.map(|t| t.mean_abs), &short);
        entry.insert("mean_abs".into(), json!(v));
        why.insert("mean_abs".into(), json!(w));
        if let Some(u) = ob.max_ulp {
            // Whole ULPs first, then one significant digit: 13 × 2 = 26 → 30.
            // Rounded up from the count, never to nearest: a count beyond
            // 2⁵³ (integers, f64) must not be suggested a limit below it.
            let observed = crate::numeric::int::f64_at_least(u);
            let suggested = round_up_one_digit((observed * opts.margin).ceil());
            let show_ulp = |x: f64| thousands(x.ceil() as u64);
            let (v, w) = limit("max_ulp", observed, suggested, base.and_then(|t| t.max_ulp).map(|b| b as f64), &show_ulp);
            entry.insert("max_ulp".into(), json!(v as u64));
            why.insert("max_ulp".into(), json!(w));
        }
        entry.insert("why".into(), Value::Object(why));
        operations.entry(op.clone()).or_insert_with(|| json!({})).as_object_mut().expect("an object").insert(stage.clone(), Value::Object(entry));
    }
    let doc = json!({
        "schema": SCHEMA,
        "description": format!(
            "suggested by parity check from {} (left) vs {} (right): per stage, the largest value observed × margin {}, rounded up to one significant digit{}",
            o.left.report.display(),
            o.right.report.display(),
            value(opts.margin),
            if opts.allow_looser { "; limits looser than the built-in profile allowed" } else { "; never looser than the built-in profile" }
        ),
        "operations": operations,
    });
    let mut json = serde_json::to_string_pretty(&doc).expect("JSON values always serialize");
    json.push('\n');
    Ok(Suggestion { json, notes })
}
