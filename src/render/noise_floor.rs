//! The noise-floor verdicts (`check --noise-floor`), after the check's own
//! output: a section of text or Markdown, a `noise_floor` key in JSON.

use crate::check::noise_floor::{NoiseFloor, StageNoise};
use crate::compare::metrics::json::num;
use crate::compare::numbers::{short, thousands, value};
use serde_json::{json, Value};

fn verdict(s: &StageNoise) -> &'static str {
    match (&s.skipped, s.passed) {
        (Some(_), _) => "SKIP",
        (None, true) => "PASS",
        (None, false) => "FAIL",
    }
}

fn ratio(s: &StageNoise) -> String {
    if s.ratio.is_nan() {
        "-".into()
    } else {
        value(s.ratio)
    }
}

/// One line per stage: `tensor stage: RIGHT 3.1e-8 vs LEFT 1.2e-8 (ratio 2.6) against 2.4e-8 = 2·LEFT + 0 + rounding floor 0: FAIL`.
fn lines(n: &NoiseFloor) -> Vec<String> {
    n.stages
        .iter()
        .map(|s| match &s.skipped {
            Some(why) => format!("{} {}: SKIP ({why})", s.tensor, s.stage),
            None => format!(
                "{} {}: RIGHT {} vs LEFT {} (ratio {}) against {} = {}·LEFT + {} + rounding floor {}{}: {}",
                s.tensor,
                s.stage,
                short(s.right_err),
                short(s.left_err),
                ratio(s),
                short(s.limit),
                value(s.m),
                value(s.eps),
                short(s.floor),
                s.flips.map_or(String::new(), |f| format!(
                    "; one-ULP flips RIGHT {} vs LEFT {} (chance {})",
                    thousands(f.right),
                    thousands(f.left),
                    short(f.chance)
                )),
                verdict(s)
            ),
        })
        .collect()
}

fn summary(n: &NoiseFloor) -> String {
    let failed = n.stages.iter().filter(|s| s.skipped.is_none() && !s.passed).count();
    format!(
        "Noise floor: {} — RMS error against the f64 reference replayed on LEFT's inputs, RIGHT ≤ m · LEFT + ε; {} of {} over it",
        if n.passed() { "PASS" } else { "FAIL" },
        failed,
        crate::compare::numbers::count(n.stages.len() as u64, "stage")
    )
}

/// The section, and the exit code's line again: the check's own `Result:`
/// line above it does not know the floor.
pub fn text(n: &NoiseFloor, check_passed: bool) -> String {
    let mut out = format!("\n{}\n", summary(n));
    for l in lines(n) {
        out.push_str("  ");
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(if check_passed && n.passed() {
        "Result with the noise floor: PASS (exit 0)\n"
    } else {
        "Result with the noise floor: FAIL (exit 1)\n"
    });
    out
}

pub fn markdown(n: &NoiseFloor) -> String {
    let head = ["tensor", "stage", "RIGHT err", "LEFT err", "ratio", "limit", "verdict"];
    let rows: Vec<Vec<String>> = n
        .stages
        .iter()
        .map(|s| {
            let mut row = vec![super::md::code(&s.tensor), super::md::code(&s.stage)];
            row.extend([short(s.right_err), short(s.left_err), ratio(s), short(s.limit), verdict(s).to_string()].iter().map(|c| super::md::cell(c)));
            row
        })
        .collect();
    format!("\n### {}\n\n{}", super::md::cell(&summary(n)), super::md::table(&head, &rows))
}

pub fn json(n: &NoiseFloor) -> Value {
    json!({
        "passed": n.passed(),
        "rule": "rms(right - ref) <= m * rms(left - ref) + eps + floor, floor = 2u * rms(ref) * sqrt(min(n, 4) / n); or, on a stage narrower than f32 whose right differences are rounding flips, right's count of differing elements not improbably many (chance >= 1e-6) for at most m times left's rate; ref = f64 reference replayed on left's components",
        "stages": n.stages.iter().map(|s| json!({
            "tensor": s.tensor,
            "stage": s.stage,
            "left_err": num(s.left_err),
            "right_err": num(s.right_err),
            "ratio": num(s.ratio),
            "m": num(s.m),
            "eps": num(s.eps),
            "floor": num(s.floor),
            "limit": num(s.limit),
            "flips": s.flips.map(|f| json!({"left": f.left, "right": f.right, "chance": num(f.chance)})),
            "verdict": verdict(s),
            "skipped": s.skipped,
        })).collect::<Vec<_>>(),
    })
}

/// The check's rendered output with the noise floor added in its format
/// (JUnit: no test suite is added for it; the exit code still holds it).
pub fn with_check(rendered: String, n: &NoiseFloor, check_passed: bool, format: super::Format) -> String {
    match format {
        super::Format::Json => match serde_json::from_str::<Value>(&rendered) {
            Ok(Value::Object(mut o)) => {
                o.insert("noise_floor".into(), json(n));
                let mut s = serde_json::to_string_pretty(&Value::Object(o)).expect("JSON values serialise");
                s.push('\n');
                s
            }
            _ => rendered,
        },
        super::Format::Markdown => rendered + &markdown(n),
        super::Format::Text => rendered + &text(n, check_passed),
        // The page gets the text section, escaped, before its end.
        super::Format::Html => {
            let escaped = text(n, check_passed).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            let section = format!("<section id=\"noise-floor\"><h2>Noise floor</h2><pre>{}</pre></section>\n", escaped.trim());
            match rendered.rfind("</body>") {
                Some(at) => format!("{}{section}{}", &rendered[..at], &rendered[at..]),
                None => rendered + &section,
            }
        }
        super::Format::Junit => rendered,
    }
}
