//! What the elementwise operations (`scale`, `add`, `subtract`, `clamp`,
//! `fill`) share: how they round, their parameter readers, and their samples.
//!
//! Each output element depends on one element of each input, so the only
//! numerical question is how many times, and where, a result is rounded —
//! and in torch that includes the Python scalars: `x * 0.1` first turns 0.1
//! into an f32, then multiplies and rounds. The reference computes each
//! formula in f64 from the parameters as given and rounds once (it returns
//! wide stages; `Stages::narrow` rounds each F32 stage once); the fast
//! kernels follow torch's f32 sequence, where every scalar parameter (factor,
//! alpha, value, min, max) is rounded to f32 once. The limits each operation
//! declares say how far apart those two can land. Loops are plain slices
//! that the compiler vectorises.
//!
//! Float inputs of any width are accepted (F64, F32, BF16, F16, fp8): they
//! decode exactly; the fast kernels round an F64 input to f32 once, as
//! `.float()` does. The limits are derived for inputs that f32 holds exactly
//! (every dtype but F64) — an F64 input brings its own f32 rounding.

use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use crate::ops::{Call, Inputs, Sample, Stages};
use serde_json::Value;

/// Limits for one f32 rounding of the result plus torch's roundings of the
/// scalars, on weight-scale values: for |y| < 16 one f32 ULP is ≤ 9.5e-7.
/// The mean gets the same limit as the max because a scalar's rounding is
/// shared by every element — on a constant tensor, or with a scalar `value`,
/// every element legitimately carries the same error.
pub(crate) const ONE_ROUNDING: Tolerance = Tolerance::gate(1e-6, 1e-6);

/// A required or optional number parameter.
pub(crate) fn number(call: &Call, name: &str) -> Result<Option<f64>> {
    match call.param(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| call.error(format!("parameter '{name}' must be a number, got {v}"))),
    }
}

pub(crate) fn required_number(call: &Call, name: &str) -> Result<f64> {
    number(call, name)?.ok_or_else(|| call.error(format!("parameter '{name}' missing")))
}

/// A float input (any width): the elementwise operations compute on values.
pub(crate) fn float_input<'a>(call: &Call<'a>, name: &str) -> Result<&'a Tensor> {
    let t = call.input(name)?;
    if !t.dtype.is_float() {
        return Err(call.error(format!("input '{name}' must be a float tensor, got {}", t.dtype)));
    }
    Ok(t)
}

/// The one stage of an elementwise operation.
pub(crate) fn output(t: Tensor) -> Stages {
    let mut out = Stages::default();
    out.push("output", t);
    out
}

// ---------------------------------------------------------------- samples

/// A weight-like F32 matrix, N(0, 0.02²).
pub(crate) fn weight(rng: &mut SplitMix64, m: usize, n: usize) -> Tensor {
    Tensor::from_f32(vec![m, n], &rng.normal_vec_f32(m * n, 0.02))
}

/// A sample of these inputs and these parameters (a JSON object).
pub(crate) fn sample_of(inputs: Vec<(&str, Tensor)>, params: Value) -> Sample {
    let mut map = Inputs::new();
    for (name, t) in inputs {
        map.insert(name.into(), t);
    }
    Sample { inputs: map, params: params.as_object().cloned().unwrap_or_default() }
}

// The element-wise loops of the fast kernels, each compiled for every SIMD
// path (`simd_kernel!`): one f32 rounding per arithmetic operation, in the
// order written, on every path.

crate::simd_kernel! {
    /// `out[i] = f(x[i])`.
    pub(crate) fn map_into[F: Fn(f32) -> f32](x: &[f32], out: &mut [f32], f: F) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f(v);
        }
    }
}

crate::simd_kernel! {
    /// `x[i] = f(x[i])`, in place.
    pub(crate) fn map_in_place[F: Fn(f32) -> f32](x: &mut [f32], f: F) {
        for v in x.iter_mut() {
            *v = f(*v);
        }
    }
}

crate::simd_kernel! {
    /// `out[i] = f(a[i], b[i])`.
    pub(crate) fn zip_into[F: Fn(f32, f32) -> f32](a: &[f32], b: &[f32], out: &mut [f32], f: F) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    }
}

crate::simd_kernel! {
    /// `acc[i] = f(acc[i], b[i])`, in place.
    pub(crate) fn zip_in_place[F: Fn(f32, f32) -> f32](acc: &mut [f32], b: &[f32], f: F) {
        for (a, &y) in acc.iter_mut().zip(b) {
            *a = f(*a, y);
        }
    }
}

/// An F32 tensor of `x`'s shape holding `f` of each value (`x` read in place
/// when it is F32, decoded to f32 once otherwise).
pub(crate) fn map_tensor(x: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    let xs = x.f32s();
    Tensor::f32_with(x.shape.clone(), |out| map_into(&xs, out, f))
}
