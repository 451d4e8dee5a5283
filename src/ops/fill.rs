//! `fill` — a tensor shaped like x with every element `value`, rounded RNE
//! into x's dtype (torch.full_like). Any dtype: the value is checked against
//! integer dtypes, and rounded once (reference) or through f32 (fast, as
//! torch does) into float ones.

use super::kernels::elementwise::{output, sample_of, weight};
use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use crate::numeric::round;
use serde_json::{json, Value};

pub static FILL: Operation = Operation {
    name: "fill",
    summary: "a tensor shaped like x with every element `value`, rounded RNE into x's dtype (torch.full_like)",
    inputs: &[Input { name: "x", doc: "any dtype, any shape: gives the shape and dtype only", optional: false, accepts: Accepts::Any }],
    params: &[Param {
        name: "value",
        kind: ParamKind::Scalar,
        doc: "number (an integer in range for integer dtypes; true/false or 0/1 for BOOL)",
        required: true,
    }],
    stages: &[Stage {
        name: "output",
        dtype: StageDtype::FromInput("x"),
        tolerance: Tolerance::exact(),
        why: "one scalar rounded into the dtype and repeated: bit-identical. (torch, like the fast kernel, rounds \
              through f32 first; for bf16/f16/fp8 that differs from one RNE step only when f32(value) is exactly \
              a tie of the narrow format — a value with more than 24 significant bits — and every element then differs)",
    }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// The value, checked against x's dtype where only some values fit.
fn value(call: &Call) -> Result<f64> {
    let x = call.input("x")?;
    let raw = call.param("value").ok_or_else(|| call.error("parameter 'value' missing"))?;
    let v = match raw {
        Value::Bool(b) if x.dtype == DType::BOOL => *b as u8 as f64,
        v => v.as_f64().ok_or_else(|| call.error(format!("parameter 'value' must be a number, got {v}")))?,
    };
    // Integer dtypes hold only integers in [lo, end): refuse 2.5, or 300 for
    // U8, rather than guess a conversion. (The ends are powers of two, exact in f64.)
    let range = match x.dtype {
        DType::I64 => Some((-(2f64.powi(63)), 2f64.powi(63))),
        DType::I32 => Some((-(2f64.powi(31)), 2f64.powi(31))),
        DType::I16 => Some((-32768.0, 32768.0)),
        DType::I8 => Some((-128.0, 128.0)),
        DType::U8 => Some((0.0, 256.0)),
        DType::BOOL => Some((0.0, 2.0)),
        _ => None,
    };
    // The value travels as an f64: an integer beyond 2⁵³ would arrive changed.
    if raw.as_i64().is_some_and(|i| i.unsigned_abs() > 1 << 53) || raw.as_u64().is_some_and(|u| u > 1 << 53) {
        return Err(call.error(format!("value {raw}: integers beyond 2^53 are not supported (they do not survive as a number)")));
    }
    if let Some((lo, end)) = range {
        if v.fract() != 0.0 || v < lo || v >= end {
            return Err(call.error(format!("value {raw} does not fit {} (an integer from {lo} up to, not including, {end})", x.dtype)));
        }
    }
    Ok(v)
}

/// The output in x's dtype, with one correctly rounded (RNE) step from the
/// f64 value (`numeric::round`'s round-to-odd path for the 16-bit formats,
/// `MiniFloat` for fp8).
fn reference(call: &Call) -> Result<Stages> {
    let v = value(call)?;
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

/// torch's `full_like`: the Python float becomes an f32 first, then the
/// target format (bf16, f16, fp8) by RNE from that f32.
fn fast(call: &Call) -> Result<Stages> {
    let v = value(call)?;
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

/// Bytes of one element of an integer dtype holding the integral `v`.
fn integer_bytes(dtype: DType, v: f64) -> Vec<u8> {
    match dtype {
        DType::I64 => (v as i64).to_le_bytes().to_vec(),
        DType::I32 => (v as i32).to_le_bytes().to_vec(),
        DType::I16 => (v as i16).to_le_bytes().to_vec(),
        DType::I8 => (v as i8).to_le_bytes().to_vec(),
        DType::U8 | DType::BOOL => vec![v as u8],
        d => unreachable!("{d} is not an integer dtype"),
    }
}

/// `n` copies of one element.
fn repeat(dtype: DType, shape: Vec<usize>, element: &[u8]) -> Tensor {
    let n = crate::format::tensor::numel(&shape);
    Tensor { dtype, shape, data: element.repeat(n) }
}

/// Random inputs: dims = [m, n], a weight (for its shape and dtype) and 0.02.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    sample_of(vec![("x", weight(&mut rng, dims[0], dims[1]))], json!({ "value": 0.02 }))
}
