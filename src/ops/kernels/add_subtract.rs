//! What `add` and `subtract` share: their inputs and parameters (the second
//! operand is a tensor `b` or a scalar `value`, times `alpha`), their limits,
//! and `a + sign·alpha·b` in both precisions — torch.sub is torch.add with
//! −alpha, and so is this.

use super::elementwise::{float_input, map_tensor, number, output, sample_of, weight, zip_into};
use crate::error::Result;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use crate::ops::{Accepts, Call, Input, Param, ParamKind, Sample, Stages};
use serde_json::json;

pub(crate) const INPUTS: &[Input] = &[
    Input { name: "a", doc: "a float dtype, any shape", optional: false, accepts: Accepts::Float },
    Input { name: "b", doc: "a float dtype, a's shape (or give `value` instead)", optional: true, accepts: Accepts::Float },
];

pub(crate) const PARAMS: &[Param] = &[
    Param { name: "value", kind: ParamKind::Number, doc: "number: a scalar in place of the input b (exactly one of b and value)", required: false },
    Param { name: "alpha", kind: ParamKind::Number, doc: "number, default 1: the multiplier of b (or value)", required: false },
];

pub(crate) const WHY: &str = "one f32 rounding of the result, and when alpha ≠ 1 or a scalar `value` is used torch also rounds \
                              alpha, value and alpha·b to f32: ≤ 1 ULP of the result + 1.5·2⁻²³·|alpha·b| (< 1e-6 for |y|, \
                              |alpha·b| < 4), absolute because the sum may cancel; bit-exact with alpha = 1 and a tensor b";

/// The second operand, a tensor or a scalar.
enum Other<'a> {
    Tensor(&'a Tensor),
    Value(f64),
}

struct Checked<'a> {
    a: &'a Tensor,
    other: Other<'a>,
    alpha: f64,
}

fn checked<'a>(call: &Call<'a>) -> Result<Checked<'a>> {
    let a = float_input(call, "a")?;
    let value = number(call, "value")?;
    let alpha = number(call, "alpha")?.unwrap_or(1.0);
    let other = match (call.inputs.get("b"), value) {
        (Some(_), Some(_)) => return Err(call.error("both input 'b' and parameter 'value' given: exactly one is the second operand")),
        (None, None) => return Err(call.error("neither input 'b' nor parameter 'value' given: one is the second operand")),
        (None, Some(v)) => Other::Value(v),
        (Some(_), None) => {
            let b = float_input(call, "b")?;
            if b.shape != a.shape {
                return Err(call.error(format!("b has shape {:?} but a has {:?} (no broadcasting)", b.shape, a.shape)));
            }
            Other::Tensor(b)
        }
    };
    Ok(Checked { a, other, alpha })
}

/// The reference: a + sign·alpha·b in f64, from the parameters as given.
/// Subtracting is adding the negated multiple, exactly.
pub(crate) fn reference(call: &Call, sign: f64) -> Result<Stages> {
    let p = checked(call)?;
    let a = p.a.to_f64_vec();
    let alpha = sign * p.alpha;
    let y: Vec<f64> = match p.other {
        Other::Tensor(b) => a.iter().zip(b.to_f64_vec()).map(|(a, b)| a + alpha * b).collect(),
        Other::Value(v) => a.iter().map(|a| a + alpha * v).collect(),
    };
    Ok(output(Tensor::from_f64(p.a.shape.clone(), &y)))
}

/// The fast kernel, in torch's sequence: alpha (and value) rounded to f32;
/// `alpha·b` (or `alpha·value`) an f32 product, rounded, and the sum rounded
/// again. (torch's AVX2 kernel for `add(a, b, alpha)` fuses the two into one
/// FMA; with alpha = 1 the product is exact and the two agree bit for bit,
/// otherwise they differ by at most one rounding of alpha·b, inside the
/// stage's limits.)
pub(crate) fn fast(call: &Call, negate: bool) -> Result<Stages> {
    let p = checked(call)?;
    // torch.sub is torch.add with −alpha; negation is exact, so this is also
    // a − alpha·b bit for bit.
    let alpha = if negate { -(p.alpha as f32) } else { p.alpha as f32 };
    let y = match p.other {
        Other::Tensor(b) => {
            let (a, b) = (p.a.f32s(), b.f32s());
            Tensor::f32_with(p.a.shape.clone(), |out| zip_into(&a, &b, out, |a, b| a + alpha * b))
        }
        Other::Value(v) => {
            let c = alpha * v as f32;
            map_tensor(p.a, |a| a + c)
        }
    };
    Ok(output(y))
}

/// Random inputs: dims = [m, n], two weights and alpha 0.3.
pub(crate) fn sample(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    let a = weight(&mut rng, dims[0], dims[1]);
    let b = weight(&mut rng, dims[0], dims[1]);
    sample_of(vec![("a", a), ("b", b)], json!({ "alpha": 0.3 }))
}
