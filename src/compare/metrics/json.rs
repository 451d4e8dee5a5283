//! The comparer's numbers as JSON values, shared by every command that
//! writes JSON (`check`, `diff`). JSON has no infinity or NaN: those are
//! written as the strings "inf", "-inf" and "NaN". Integer tensors' `max_abs`
//! and top divergences are JSON integers, exact (a u64 / i64; a reader that
//! parses them as f64 rounds them, as it would any integer above 2⁵³).

use super::{Metrics, NonFiniteCounts};
use serde_json::{json, Value};

/// A float as JSON: a number, or "NaN" / "inf" / "-inf".
pub fn num(x: f64) -> Value {
    if x.is_nan() {
        Value::from("NaN")
    } else if x.is_infinite() {
        Value::from(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        Value::from(x)
    }
}

fn counts(c: &NonFiniteCounts) -> Value {
    json!({"nan": c.nan, "pos_inf": c.pos_inf, "neg_inf": c.neg_inf})
}

/// Every metric of a stage pair.
pub fn metrics(m: &Metrics) -> Value {
    json!({
        "numel": m.numel,
        "compared": m.compared,
        // Integers: the exact u64 (a JSON integer), not its rounded f64.
        "max_abs": m.max_abs_int.map_or_else(|| num(m.max_abs), Value::from),
        "max_abs_index": m.max_abs_index,
        "mean_abs": num(m.mean_abs),
        "rms": num(m.rms),
        "max_rel": num(m.max_rel),
        "max_rel_index": m.max_rel_index,
        "cosine": num(m.cosine),
        "nmse": num(m.nmse),
        "sqnr_db": num(m.sqnr_db),
        "max_ulp": m.max_ulp,
        "not_bit_equal": m.not_bit_equal,
        "bytes_equal": m.bytes_equal,
        "over_max_abs": m.over_max_abs,
        "outside_allclose": m.outside_allclose,
        "non_finite": {
            "left": counts(&m.non_finite.left),
            "right": counts(&m.non_finite.right),
            "mismatched": m.non_finite.mismatched,
            "first_mismatch_index": m.non_finite.first_mismatch,
        },
        "top_diffs": m.top.iter().map(|d| match d.exact {
            // Integers as JSON integers, exactly.
            Some((l, r)) => json!({
                "index": d.index,
                "left": l,
                "right": r,
                "abs_diff": crate::numeric::int::abs_diff(l, r),
            }),
            None => json!({
                "index": d.index,
                "left": num(d.left),
                "right": num(d.right),
                "abs_diff": num(d.abs_diff),
            }),
        }).collect::<Vec<_>>(),
    })
}
