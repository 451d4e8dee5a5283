//! The reference elementwise operations: each formula in f64, from the
//! parameters exactly as given (no f32 rounding of scalars), returned wide —
//! `Stages::narrow` rounds each F32 stage once.
//!
//! `fill` produces its output in x's dtype itself, with one correctly rounded
//! (RNE) step from the f64 value (`numeric::round`'s round-to-odd path for the
//! 16-bit formats, `MiniFloat` for fp8).

use super::{add_plan, clamp_plan, fill_value, float_input, integer_bytes, repeat, required_number, Other};
use crate::format::dtype::DType;
use crate::error::Result;
use crate::numeric::round;
use crate::ops::{Call, Stages};
use crate::format::tensor::Tensor;

pub(super) fn scale(call: &Call) -> Result<Stages> {
    let x = float_input(call, "x")?;
    let factor = required_number(call, "factor")?;
    let y: Vec<f64> = x.to_f64_vec().into_iter().map(|v| v * factor).collect();
    Ok(output(Tensor::from_f64(x.shape.clone(), &y)))
}

pub(super) fn add(call: &Call) -> Result<Stages> {
    a_plus_signed_b(call, 1.0)
}

pub(super) fn subtract(call: &Call) -> Result<Stages> {
    a_plus_signed_b(call, -1.0)
}

/// a + sign·alpha·b: subtracting is adding the negated multiple, exactly.
fn a_plus_signed_b(call: &Call, sign: f64) -> Result<Stages> {
    let p = add_plan(call)?;
    let a = p.a.to_f64_vec();
    let alpha = sign * p.alpha;
    let y: Vec<f64> = match p.other {
        Other::Tensor(b) => a.iter().zip(b.to_f64_vec()).map(|(a, b)| a + alpha * b).collect(),
        Other::Value(v) => a.iter().map(|a| a + alpha * v).collect(),
    };
    Ok(output(Tensor::from_f64(p.a.shape.clone(), &y)))
}

pub(super) fn clamp(call: &Call) -> Result<Stages> {
    let p = clamp_plan(call)?;
    let x = call.input("x")?;
    let y: Vec<f64> = x
        .to_f64_vec()
        .into_iter()
        .map(|v| {
            // Comparisons with NaN are false, so NaN passes through both tests.
            let v = match p.min {
                Some(lo) if v < lo => lo,
                _ => v,
            };
            match p.max {
                Some(hi) if v > hi => hi,
                _ => v,
            }
        })
        .collect();
    Ok(output(Tensor::from_f64(x.shape.clone(), &y)))
}

pub(super) fn fill(call: &Call) -> Result<Stages> {
    let v = fill_value(call)?;
    let x = call.input("x")?;
    let element: Vec<u8> = match x.dtype {
        DType::F64 => v.to_le_bytes().to_vec(),
        DType::F32 => round::f64_to_f32(v).to_le_bytes().to_vec(),
        DType::BF16 => round::f64_to_bf16_bits(v).to_le_bytes().to_vec(),
        DType::F16 => round::f64_to_f16_bits(v).to_le_bytes().to_vec(),
        DType::F8E4M3 => vec![round::f64_to_f8e4m3fn(v)],
        DType::F8E5M2 => vec![round::f64_to_f8e5m2(v)],
        d => integer_bytes(d, v),
    };
    Ok(output(repeat(x.dtype, x.shape.clone(), &element)))
}

fn output(t: Tensor) -> Stages {
    let mut out = Stages::default();
    out.push("output", t);
    out
}
