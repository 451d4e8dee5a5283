//! The reference layout operations: every output element found through its
//! multi-index, one element at a time.
//!
//! Written to be read against the definitions, not to be fast: output flat
//! index → output multi-index → input multi-index → input flat index. The
//! element bytes are copied as stored, so any dtype (and any NaN payload)
//! passes through unchanged.

use super::{concat_plan, like, reshape_plan, slice_plan, split_plan, strides, transpose_plan};
use crate::error::Result;
use crate::ops::{Call, Stages};
use crate::format::tensor::{numel, Tensor};

pub(super) fn identity(call: &Call) -> Result<Stages> {
    let x = call.input("x")?;
    let mut out = Stages::default();
    out.push("output", gather(x, x.shape.clone(), |ix| ix.to_vec()));
    Ok(out)
}

pub(super) fn transpose(call: &Call) -> Result<Stages> {
    let p = transpose_plan(call)?;
    let x = call.input("x")?;
    // Output axis i is input axis perm[i]: input index[perm[i]] = output index[i].
    let output = gather(x, p.out_shape, |ix| {
        let mut src = vec![0; ix.len()];
        for (i, &p) in p.perm.iter().enumerate() {
            src[p] = ix[i];
        }
        src
    });
    let mut out = Stages::default();
    out.push("output", output);
    Ok(out)
}

pub(super) fn reshape(call: &Call) -> Result<Stages> {
    let shape = reshape_plan(call)?;
    let x = call.input("x")?;
    // Row-major order is kept: output flat index i is input flat index i.
    let in_shape = x.shape.clone();
    let out_strides = strides(&shape);
    let output = gather(x, shape.clone(), |ix| {
        let flat: usize = ix.iter().zip(&out_strides).map(|(i, s)| i * s).sum();
        unravel(flat, &in_shape)
    });
    let mut out = Stages::default();
    out.push("output", output);
    Ok(out)
}

pub(super) fn slice(call: &Call) -> Result<Stages> {
    let p = slice_plan(call)?;
    let x = call.input("x")?;
    let output = gather(x, p.out_shape.clone(), |ix| ix.iter().enumerate().map(|(d, &i)| p.start[d] + i * p.step[d]).collect());
    let mut out = Stages::default();
    out.push("output", output);
    Ok(out)
}

pub(super) fn concat(call: &Call) -> Result<Stages> {
    let p = concat_plan(call)?;
    let (a, b) = (call.input("a")?, call.input("b")?);
    let es = a.dtype.size();
    let a_len = a.shape[p.axis];
    let (a_strides, b_strides) = (strides(&a.shape), strides(&b.shape));
    let mut bytes = Vec::with_capacity(numel(&p.out_shape) * es);
    for flat in 0..numel(&p.out_shape) {
        let mut ix = unravel(flat, &p.out_shape);
        let (src, src_strides) = if ix[p.axis] < a_len {
            (a, &a_strides)
        } else {
            ix[p.axis] -= a_len;
            (b, &b_strides)
        };
        let at: usize = ix.iter().zip(src_strides).map(|(i, s)| i * s).sum();
        bytes.extend_from_slice(&src.data[at * es..(at + 1) * es]);
    }
    let mut out = Stages::default();
    out.push("output", like(a, p.out_shape, bytes));
    Ok(out)
}

pub(super) fn split(call: &Call) -> Result<Stages> {
    let p = split_plan(call)?;
    let x = call.input("x")?;
    let first = gather(x, p.first_shape.clone(), |ix| ix.to_vec());
    let second = gather(x, p.second_shape.clone(), |ix| {
        let mut src = ix.to_vec();
        src[p.axis] += p.index;
        src
    });
    let mut out = Stages::default();
    out.push("first", first);
    out.push("second", second);
    Ok(out)
}

/// A tensor of `out_shape` whose element at multi-index `ix` is `x`'s element
/// at `source(ix)`.
fn gather(x: &Tensor, out_shape: Vec<usize>, source: impl Fn(&[usize]) -> Vec<usize>) -> Tensor {
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
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut ix = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        ix[d] = flat % shape[d];
        flat /= shape[d];
    }
    ix
}
