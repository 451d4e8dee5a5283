//! What the layout operations (`identity`, `transpose`, `reshape`, `slice`,
//! `concat`, `split`) share: axes, strides and multi-indices, the reference's
//! element-by-element gather, and their samples.
//!
//! They only move elements, so every stage keeps the input's dtype and must
//! be bit-identical between any two correct implementations: there is no
//! rounding to forgive. What a port gets wrong here is *which* element goes
//! where — a permutation read as its inverse, a numpy slice bound off by one,
//! a concatenation along the wrong axis — and a bit-exact gate says where.
//!
//! In each operation both implementations share one argument check (its
//! `checked`, which turns parameters into plain numbers or a one-line error
//! naming what is wrong), so they can only differ in how they move bytes:
//! * the reference maps every output element to its input element through
//!   explicit multi-indices, one element at a time ([`gather`]);
//! * the fast one copies contiguous runs and transposes in cache-sized tiles
//!   ([`strided_copy`](super::strided::strided_copy)).

use crate::error::Result;
use crate::format::tensor::{numel, Tensor};
use crate::numeric::rng::SplitMix64;
use crate::ops::{Call, Inputs, Sample, StageDtype};
use serde_json::Value;

pub(crate) const SAME_AS_X: StageDtype = StageDtype::FromInput("x");
pub(crate) const MOVES_ONLY: &str = "elements are only moved, never computed: bit-identical or a real layout bug";

/// Row-major strides in elements.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

pub(crate) fn int_list(call: &Call, name: &str, v: &Value) -> Result<Vec<i64>> {
    let items = v.as_array().ok_or_else(|| call.error(format!("{name} must be a list of integers, got {v}")))?;
    items
        .iter()
        .map(|i| i.as_i64().ok_or_else(|| call.error(format!("{name} must be a list of integers, got {v}"))))
        .collect()
}

/// An axis number, negative counting from the end (torch/numpy).
pub(crate) fn axis(call: &Call, name: &str, a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let resolved = if a < 0 { a + r } else { a };
    if !(0..r).contains(&resolved) {
        return Err(call.error(format!("{name}: axis {a} is out of range for rank {rank}")));
    }
    Ok(resolved as usize)
}

/// An optional axis parameter (default 0).
pub(crate) fn axis_param(call: &Call, name: &str, rank: usize) -> Result<usize> {
    match call.param(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => {
            let a = v.as_i64().ok_or_else(|| call.error(format!("{name} must be an integer, got {v}")))?;
            axis(call, name, a, rank)
        }
    }
}

/// A tensor of the same dtype holding `bytes`.
pub(crate) fn like(x: &Tensor, shape: Vec<usize>, bytes: Vec<u8>) -> Tensor {
    debug_assert_eq!(bytes.len(), numel(&shape) * x.dtype.size());
    Tensor { dtype: x.dtype, shape, data: bytes }
}

// ---------------------------------------------------------------- the reference's gather

/// A tensor of `out_shape` whose element at multi-index `ix` is `x`'s element
/// at `source(ix)`.
///
/// Written to be read against the definitions, not to be fast: output flat
/// index → output multi-index → input multi-index → input flat index. The
/// element bytes are copied as stored, so any dtype (and any NaN payload)
/// passes through unchanged.
pub(crate) fn gather(x: &Tensor, out_shape: Vec<usize>, source: impl Fn(&[usize]) -> Vec<usize>) -> Tensor {
    let es = x.dtype.size();
    let in_strides = strides(&x.shape);
    let n = numel(&out_shape);
    let mut bytes = Vec::with_capacity(n * es);
    for flat in 0..n {
        let src = source(&unravel(flat, &out_shape));
        let at: usize = src.iter().zip(&in_strides).map(|(i, s)| i * s).sum();
        bytes.extend_from_slice(&x.data[at * es..(at + 1) * es]);
    }
    like(x, out_shape, bytes)
}

/// Row-major flat index → multi-index.
pub(crate) fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut ix = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        ix[d] = flat % shape[d];
        flat /= shape[d];
    }
    ix
}

// ---------------------------------------------------------------- samples

/// A weight-like F32 matrix, N(0, 0.02²).
pub(crate) fn weight(seed: u64, m: usize, n: usize) -> Tensor {
    Tensor::from_f32(vec![m, n], &SplitMix64::new(seed).normal_vec_f32(m * n, 0.02))
}

/// A sample with one input.
pub(crate) fn one(name: &str, t: Tensor, params: Value) -> Sample {
    let mut inputs = Inputs::new();
    inputs.insert(name.into(), t);
    Sample { inputs, params: params.as_object().cloned().unwrap_or_default() }
}
