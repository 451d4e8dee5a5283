//! For scripts: `parity.check.v1`.
//!
//! Keys come in a fixed order (as written here). Every number is full
//! precision; JSON has no NaN or infinity, so non-finite floats are written
//! as the strings `"NaN"`, `"inf"` and `"-inf"`. Multi-indices are arrays.
//! Absent facts are `null` (e.g. `max_ulp` when the dtypes differ, `metrics`
//! when a stage could not be compared element by element).

use super::*;
use crate::check::{ModeResult, Side};
use crate::compare::metrics::json::{metrics, num};
use crate::compare::tolerance::Tolerance;
use serde_json::{json, Value};

pub const SCHEMA: &str = "parity.check.v1";

pub(super) fn render(o: &CheckOutcome) -> String {
    let modes: serde_json::Map<String, Value> =
        o.modes.all().iter().map(|(flag, m)| (flag.replace('-', "_"), mode(m))).collect();
    let v = json!({
        "schema": SCHEMA,
        "passed": o.passed(),
        "exit_code": o.exit_code(),
        "modes": modes,
        "left": side(&o.left),
        "right": side(&o.right),
        "tolerances": o.profile,
        "differences": {
            "provenance": o.provenance_diff,
            "presence": o.presence_diff,
        },
        "top_diffs": o.top_diffs,
        "first_divergence": o.first_divergence.as_ref().map(|d| json!({
            "tensor": d.tensor,
            "stage": d.stage,
            "failures": d.failures,
        })),
        "onset": o.onset.as_ref().map(|n| json!({
            "tensor": n.tensor,
            "stage": n.stage,
            "relative_error": num(n.relative_error),
            "median_before": n.median_before.map(num),
            "unit_roundoff": num(n.unit_roundoff),
            "factor": num(n.factor),
            "threshold": num(n.threshold),
        })),
        "onset_factor": num(o.onset_factor),
        "fail_on_onset": o.fail_on_onset,
        "tensors": o.tensors.iter().map(tensor).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values always serialize");
    s.push('\n');
    s
}

fn mode(m: &ModeResult) -> Value {
    json!({"enabled": m.enabled, "holds": m.holds, "reasons": m.reasons})
}

fn side(s: &Side) -> Value {
    json!({
        "report": s.report.display().to_string(),
        "stage_bundle": s.stage_bundle.display().to_string(),
        "producer": s.producer,
        "baseline": s.baseline,
    })
}

fn tensor(t: &TensorResult) -> Value {
    let h = &t.hashes;
    let mut v = json!({
        "name": t.name,
        "operation": t.operation,
        "verdict": if t.passed { "pass" } else { "fail" },
        "first_failing_stage": t.first_failing_stage,
        "hashes": {
            "left_final_sha256": h.left_final,
            "right_final_sha256": h.right_final,
            "equal": h.equal,
            "rehashed": h.rehashed,
            "historical_final_sha256": h.historical,
            "historical_reproducible": h.historical_reproducible,
            "left_matches_historical": h.left_matches_historical(),
            "right_matches_historical": h.right_matches_historical(),
            "bytes": h.bytes.as_ref().map(|b| json!({
                "stage": b.stage,
                "numel": b.numel,
                "not_bit_equal": b.not_bit_equal,
                "max_ulp": b.max_ulp,
                "summary": b.sentence(),
            })),
        },
        "stages": t.stages.iter().map(stage).collect::<Vec<_>>(),
    });
    // RIGHT's own name, only where --map renamed it (keys keep their order:
    // it goes right after "name").
    if let Value::Object(m) = &mut v {
        if let Some(ro) = &t.right_operation {
            m.shift_insert(2, "right_operation".into(), Value::from(ro.as_str()));
        }
        if let Some(rn) = &t.right_name {
            m.shift_insert(1, "right_name".into(), Value::from(rn.as_str()));
        }
    }
    v
}

fn stage(s: &StageResult) -> Value {
    let side = |x: &Option<crate::compare::gate::StageSide>| {
        x.as_ref().map(|x| json!({"dtype": x.dtype.name(), "shape": x.shape}))
    };
    json!({
        "stage": s.stage,
        "required": s.tolerance.required,
        "verdict": s.verdict.name(),
        "gated": s.gated(),
        "failures": s.failures,
        "left": side(&s.left),
        "right": side(&s.right),
        "tolerance": tolerance(&s.tolerance),
        "metrics": s.metrics.as_ref().map(metrics),
        "explanation": s.explanation.as_ref().map(|e| e.json()),
        "logits": s.logits.as_ref().map(logits),
    })
}

/// `--logits` token metrics: fractions as numbers in [0, 1], KL in nats.
fn logits(m: &crate::compare::logits::LogitMetrics) -> Value {
    json!({
        "positions": m.positions,
        "vocab": m.vocab,
        "top1_agree": m.top1_agree,
        "top1_agreement": num(m.top1_agreement),
        "top5_overlap": num(m.top5_overlap),
        "kl_mean": num(m.kl_mean),
        "kl_p99": num(m.kl_p99),
        "kl_max": num(m.kl_max),
        "kl_nan_positions": m.kl_nan,
    })
}

fn tolerance(t: &Tolerance) -> Value {
    json!({
        "required": t.required,
        "max_abs": num(t.max_abs),
        "mean_abs": num(t.mean_abs),
        "min_cosine": t.min_cosine.map(num),
        "max_ulp": t.max_ulp,
        "rtol": t.rtol.map(num),
        "atol": t.atol.map(num),
        "max_mismatch_fraction": t.max_mismatch_fraction.map(num),
        "min_top1": t.min_top1.map(num),
        "max_kl": t.max_kl.map(num),
    })
}

