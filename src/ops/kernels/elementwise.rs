//! Elementwise operations: `scale`, `add`, `subtract`, `clamp` and `fill`.
//!
//! Each output element depends on one element of each input, so the only
//! numerical question is how many times, and where, a result is rounded —
//! and in torch that includes the Python scalars: `x * 0.1` first turns 0.1
//! into an f32, then multiplies and rounds. The reference computes each
//! formula in f64 from the parameters as given and rounds once; the fast
//! kernels follow torch's f32 sequence. The limits below say how far apart
//! those two can land.
//!
//! Float inputs of any width are accepted (F64, F32, BF16, F16, fp8): they
//! decode exactly; the fast kernels round an F64 input to f32 once, as
//! `.float()` does. The limits are derived for inputs that f32 holds exactly
//! (every dtype but F64) — an F64 input brings its own f32 rounding.

mod fast;
mod reference;

use super::{Call, Input, Inputs, Operation, Param, ParamKind, Sample, Stage, StageDtype};
use crate::compare::tolerance::Tolerance;
use crate::format::dtype::DType;
use crate::error::Result;
use crate::ops::BENCH_WEIGHTS;
use crate::numeric::rng::SplitMix64;
use crate::format::tensor::Tensor;
use serde_json::{json, Value};

const F32: StageDtype = StageDtype::Fixed(DType::F32);

/// Limits for one f32 rounding of the result plus torch's roundings of the
/// scalars, on weight-scale values: for |y| < 16 one f32 ULP is ≤ 9.5e-7.
/// The mean gets the same limit as the max because a scalar's rounding is
/// shared by every element — on a constant tensor, or with a scalar `value`,
/// every element legitimately carries the same error.
const ONE_ROUNDING: Tolerance = Tolerance::gate(1e-6, 1e-6);

pub static SCALE: Operation = Operation {
    name: "scale",
    summary: "x · factor (torch: the Python scalar becomes an f32, then one f32 multiply)",
    inputs: &[Input { name: "x", doc: "a float dtype, any shape", optional: false }],
    params: &[Param { name: "factor", kind: ParamKind::Number, doc: "number", required: true }],
    stages: &[Stage {
        name: "output",
        dtype: F32,
        tolerance: ONE_ROUNDING.with_max_ulp(1),
        why: "one rounding of x·factor each side; torch also rounds the factor to f32 first (relative 2⁻²⁴), \
              so the two results are at most 1 f32 ULP apart",
    }],
    reference: reference::scale,
    fast: fast::scale,
    sample: sample_scale,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

const ADD_INPUTS: &[Input] = &[
    Input { name: "a", doc: "a float dtype, any shape", optional: false },
    Input { name: "b", doc: "a float dtype, a's shape (or give `value` instead)", optional: true },
];

const ADD_WHY: &str = "one f32 rounding of the result, and when alpha ≠ 1 or a scalar `value` is used torch also rounds \
                       alpha, value and alpha·b to f32: ≤ 1 ULP of the result + 1.5·2⁻²³·|alpha·b| (< 1e-6 for |y|, \
                       |alpha·b| < 4), absolute because the sum may cancel; bit-exact with alpha = 1 and a tensor b";

const ADD_PARAMS: &[Param] = &[
    Param { name: "value", kind: ParamKind::Number, doc: "number: a scalar in place of the input b (exactly one of b and value)", required: false },
    Param { name: "alpha", kind: ParamKind::Number, doc: "number, default 1: the multiplier of b (or value)", required: false },
];

pub static ADD: Operation = Operation {
    name: "add",
    summary: "a + alpha·b, or a + alpha·value (torch.add semantics)",
    inputs: ADD_INPUTS,
    params: ADD_PARAMS,
    stages: &[Stage { name: "output", dtype: F32, tolerance: ONE_ROUNDING, why: ADD_WHY }],
    reference: reference::add,
    fast: fast::add,
    sample: sample_add,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static SUBTRACT: Operation = Operation {
    name: "subtract",
    summary: "a − alpha·b, or a − alpha·value (torch.sub semantics)",
    inputs: ADD_INPUTS,
    params: ADD_PARAMS,
    stages: &[Stage { name: "output", dtype: F32, tolerance: ONE_ROUNDING, why: ADD_WHY }],
    reference: reference::subtract,
    fast: fast::subtract,
    sample: sample_add,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static CLAMP: Operation = Operation {
    name: "clamp",
    summary: "x limited to [min, max]; NaN stays NaN (torch.clamp)",
    inputs: &[Input { name: "x", doc: "a float dtype, any shape", optional: false }],
    params: &[
        Param { name: "min", kind: ParamKind::Number, doc: "number or null: the lower bound", required: false },
        Param { name: "max", kind: ParamKind::Number, doc: "number or null: the upper bound (at least one bound; min ≤ max)", required: false },
    ],
    stages: &[Stage {
        name: "output",
        dtype: F32,
        tolerance: Tolerance::exact(),
        why: "clamp only selects x or a bound, and rounding is monotone, so clamping the f32 values by f32 bounds \
              gives the f32 rounding of the exact clamp: bit-identical",
    }],
    reference: reference::clamp,
    fast: fast::clamp,
    sample: sample_clamp,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static FILL: Operation = Operation {
    name: "fill",
    summary: "a tensor shaped like x with every element `value`, rounded RNE into x's dtype (torch.full_like)",
    inputs: &[Input { name: "x", doc: "any dtype, any shape: gives the shape and dtype only", optional: false }],
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
    reference: reference::fill,
    fast: fast::fill,
    sample: sample_fill,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

// ---------------------------------------------------------------- plans

/// A required or optional number parameter.
fn number(call: &Call, name: &str) -> Result<Option<f64>> {
    match call.param(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| call.error(format!("parameter '{name}' must be a number, got {v}"))),
    }
}

fn required_number(call: &Call, name: &str) -> Result<f64> {
    number(call, name)?.ok_or_else(|| call.error(format!("parameter '{name}' missing")))
}

/// A float input (any width): the elementwise operations compute on values.
fn float_input<'a>(call: &Call<'a>, name: &str) -> Result<&'a Tensor> {
    let t = call.input(name)?;
    if !t.dtype.is_float() {
        return Err(call.error(format!("input '{name}' must be a float tensor, got {}", t.dtype)));
    }
    Ok(t)
}

/// `add`/`subtract`: the second operand, a tensor or a scalar.
pub(crate) enum Other<'a> {
    Tensor(&'a Tensor),
    Value(f64),
}

pub(crate) struct AddPlan<'a> {
    pub a: &'a Tensor,
    pub other: Other<'a>,
    pub alpha: f64,
}

fn add_plan<'a>(call: &Call<'a>) -> Result<AddPlan<'a>> {
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
    Ok(AddPlan { a, other, alpha })
}

pub(crate) struct ClampPlan {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

fn clamp_plan(call: &Call) -> Result<ClampPlan> {
    float_input(call, "x")?;
    let (min, max) = (number(call, "min")?, number(call, "max")?);
    match (min, max) {
        (None, None) => Err(call.error("clamp needs 'min', 'max' or both")),
        (Some(lo), Some(hi)) if lo > hi => Err(call.error(format!("min {lo} is greater than max {hi}"))),
        _ => Ok(ClampPlan { min, max }),
    }
}

/// `fill`: the value, checked against x's dtype where only some values fit.
fn fill_value(call: &Call) -> Result<f64> {
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

/// Bytes of one element of an integer dtype holding the integral `v`.
fn integer_bytes(dtype: DType, v: f64) -> Vec<u8> {
    match dtype {
        DType::I64 => (v as i64).to_le_bytes().to_vec(),
        DType::I32 => (v as i32).to_le_bytes().to_vec(),
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

// ---------------------------------------------------------------- samples

fn weight(rng: &mut SplitMix64, m: usize, n: usize) -> Tensor {
    Tensor::from_f32(vec![m, n], &rng.normal_vec_f32(m * n, 0.02))
}

fn sample(inputs: Vec<(&str, Tensor)>, params: Value) -> Sample {
    let mut map = Inputs::new();
    for (name, t) in inputs {
        map.insert(name.into(), t);
    }
    Sample { inputs: map, params: params.as_object().cloned().unwrap_or_default() }
}

fn sample_scale(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    let x = weight(&mut rng, dims[0], dims[1]);
    // A factor f32 cannot hold, so the scalar's own rounding is exercised.
    sample(vec![("x", x)], json!({ "factor": 0.1 + rng.uniform() }))
}

fn sample_add(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    let a = weight(&mut rng, dims[0], dims[1]);
    let b = weight(&mut rng, dims[0], dims[1]);
    sample(vec![("a", a), ("b", b)], json!({ "alpha": 0.3 }))
}

fn sample_clamp(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    sample(vec![("x", weight(&mut rng, dims[0], dims[1]))], json!({ "min": -0.03, "max": 0.03 }))
}

fn sample_fill(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    sample(vec![("x", weight(&mut rng, dims[0], dims[1]))], json!({ "value": 0.02 }))
}
