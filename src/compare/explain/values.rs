//! Value tests: RIGHT is LEFT negated, scaled by a constant, or shifted by one.

use super::*;

pub(super) fn explain(l: &[f64], r: &[f64], before: Residual) -> Option<Explanation> {
    let n = l.len();
    let both = |k: usize| l[k].is_finite() && r[k].is_finite();

    // A constant LEFT cannot tell a scale from an offset; the offset is named
    // then (a norm weight of ones that became twos is the "+1" bug).
    let first = (0..n).find(|&k| both(k)).map(|k| l[k]);
    let varies = first.is_some_and(|f| (0..n).any(|k| both(k) && l[k] != f));

    let flipped = candidate(n, |k| Some((l[k], -r[k])), &before);
    let mut scale = None;
    if varies {
        // Least squares: c minimises Σ(r − c·l)² over the finite pairs.
        let lr = ordered_sum(n, |k| if both(k) { l[k] * r[k] } else { 0.0 });
        let ll = ordered_sum(n, |k| if both(k) { l[k] * l[k] } else { 0.0 });
        let c = lr / ll;
        // c = −1 exactly is the sign flip, named as such.
        if c.is_finite() && c != 0.0 && c != -1.0 {
            // The fix-up divides RIGHT by c, so the residual is in LEFT's units.
            scale = candidate(n, |k| Some((l[k], r[k] / c)), &before).map(|scaled| (c, scaled));
        }
    }
    // More than one test can fit — a norm weight near 1 that gained "+1" is
    // also roughly doubled; c = −1.02 also "fits" a sign flip — so each
    // fitting test is a candidate and the one leaving the smallest residual
    // is named (`best`: on a tie, the first).
    let flip = flipped.map(|flipped| Explanation {
        bug: Bug::SignFlipped,
        evidence: "right = −left".into(),
        fixup: "negating right",
        before,
        residual: flipped,
        confidence: removed(&flipped, &before),
        hint: "a subtraction the wrong way round, or a negated weight?",
    });
    let scale = scale.map(|(c, scaled)| Explanation {
        bug: Bug::ConstantScale { c },
        evidence: "right = c · left".into(),
        fixup: "dividing by c",
        before,
        residual: scaled,
        confidence: removed(&scaled, &before),
        hint: "a missing (or doubled) normalisation?",
    });

    // The mean difference minimises Σ(r − l − c)².
    let count = (0..n).filter(|&k| both(k)).count();
    let c = ordered_sum(n, |k| if both(k) { r[k] - l[k] } else { 0.0 }) / count.max(1) as f64;
    let mut offset = None;
    if c.is_finite() && c != 0.0 {
        if let Some(shifted) = candidate(n, |k| Some((l[k], r[k] - c)), &before) {
            let plus_one = (c.abs() - 1.0).abs() < 1e-3;
            offset = Some(Explanation {
                bug: Bug::ConstantOffset { c },
                evidence: if varies { "right = left + c".into() } else { "right = left + c (left is constant: a scale fits as well)".into() },
                fixup: "subtracting c",
                before,
                residual: shifted,
                confidence: removed(&shifted, &before),
                hint: if plus_one {
                    "the norm-weight \"+1\" bug (a weight stored as w, applied as 1 + w)?"
                } else {
                    "a missing bias, or a mean not subtracted?"
                },
            });
        }
    }
    best(best(flip, scale), offset)
}
