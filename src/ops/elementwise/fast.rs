//! The fast elementwise operations: f32 compute in torch's rounding sequence.
//!
//! Rounding, in order, as torch's CPU kernels do for an f32 tensor and Python
//! scalars: every scalar parameter (factor, alpha, value, min, max) is
//! rounded to f32 once; `alpha·b` (or `alpha·value`) is an f32 product,
//! rounded, and the sum is rounded again. (torch's AVX2 kernel for
//! `add(a, b, alpha)` fuses the two into one FMA; with alpha = 1 the product
//! is exact and the two agree bit for bit, otherwise they differ by at most
//! one rounding of alpha·b, inside the stage's limits.) Loops are plain
//! slices that the compiler vectorises.
//!
//! `fill` follows torch's `full_like`: the Python float becomes an f32 first,
//! then the target format (bf16, f16, fp8) by RNE from that f32.

use super::{add_plan, clamp_plan, fill_value, float_input, integer_bytes, repeat, required_number, Other};
use crate::format::dtype::DType;
use crate::error::Result;
use crate::numeric::round;
use crate::ops::{Call, Stages};
use crate::format::tensor::Tensor;

pub(super) fn scale(call: &Call) -> Result<Stages> {
    let x = float_input(call, "x")?;
    let factor = required_number(call, "factor")? as f32;
    let y: Vec<f32> = x.to_f32_vec().into_iter().map(|v| v * factor).collect();
    Ok(output(Tensor::from_f32(x.shape.clone(), &y)))
}

pub(super) fn add(call: &Call) -> Result<Stages> {
    a_plus_signed_b(call, false)
}

pub(super) fn subtract(call: &Call) -> Result<Stages> {
    a_plus_signed_b(call, true)
}

fn a_plus_signed_b(call: &Call, negate: bool) -> Result<Stages> {
    let p = add_plan(call)?;
    let a = p.a.to_f32_vec();
    // torch.sub is torch.add with −alpha; negation is exact, so this is also
    // a − alpha·b bit for bit.
    let alpha = if negate { -(p.alpha as f32) } else { p.alpha as f32 };
    let y: Vec<f32> = match p.other {
        Other::Tensor(b) => {
            let b = b.to_f32_vec();
            a.iter().zip(&b).map(|(a, b)| a + alpha * b).collect()
        }
        Other::Value(v) => {
            let c = alpha * v as f32;
            a.iter().map(|a| a + c).collect()
        }
    };
    Ok(output(Tensor::from_f32(p.a.shape.clone(), &y)))
}

pub(super) fn clamp(call: &Call) -> Result<Stages> {
    let p = clamp_plan(call)?;
    let x = call.input("x")?;
    let lo = p.min.map(|v| v as f32);
    let hi = p.max.map(|v| v as f32);
    // Not f32::max/min: those return the bound for a NaN x, torch keeps the NaN.
    let y: Vec<f32> = x
        .to_f32_vec()
        .into_iter()
        .map(|v| {
            let v = match lo {
                Some(lo) if v < lo => lo,
                _ => v,
            };
            match hi {
                Some(hi) if v > hi => hi,
                _ => v,
            }
        })
        .collect();
    Ok(output(Tensor::from_f32(x.shape.clone(), &y)))
}

pub(super) fn fill(call: &Call) -> Result<Stages> {
    let v = fill_value(call)?;
    let x = call.input("x")?;
    let v32 = v as f32;
    let element: Vec<u8> = match x.dtype {
        DType::F64 => v.to_le_bytes().to_vec(),
        DType::F32 => v32.to_le_bytes().to_vec(),
        DType::BF16 => round::f32_to_bf16_bits(v32).to_le_bytes().to_vec(),
        DType::F16 => round::f32_to_f16_bits(v32).to_le_bytes().to_vec(),
        // f32 → f64 is exact, so this is RNE from the f32 value.
        DType::F8E4M3 => vec![round::f64_to_f8e4m3fn(v32 as f64)],
        DType::F8E5M2 => vec![round::f64_to_f8e5m2(v32 as f64)],
        d => integer_bytes(d, v),
    };
    Ok(output(repeat(x.dtype, x.shape.clone(), &element)))
}

fn output(t: Tensor) -> Stages {
    let mut out = Stages::default();
    out.push("output", t);
    out
}
