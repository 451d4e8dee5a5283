//! What the per-block fp8 operations (`fp8_block_quantize`,
//! `fp8_block_dequantize`) share: the block grid over a matrix, the check
//! that inputs are exact in f32, and the decode table of a format.
//!
//! The layout is FP8 checkpoints' (DeepSeek-V3 style): 128×128 blocks of fp8
//! values and one f32 `weight_scale_inv` per block, the dequantization
//! multiplier. The last blocks of a row or column are cut short when the
//! block does not divide the shape.

use crate::error::Result;
use crate::format::dtype::DType;
use crate::numeric::round::MiniFloat;
use crate::ops::Call;

pub(crate) const BLOCK_DOC: &str = "[bm, bn] block size, positive integers (default [128, 128])";

/// The block grid over an [m, n] matrix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub m: usize,
    pub n: usize,
    pub bm: usize,
    pub bn: usize,
}

impl Grid {
    pub fn rows(&self) -> usize {
        self.m.div_ceil(self.bm)
    }
    pub fn cols(&self) -> usize {
        self.n.div_ceil(self.bn)
    }
    /// The flat index, in the [rows, cols] scale grid, of element (i, j)'s block.
    #[inline]
    pub fn block_of(&self, i: usize, j: usize) -> usize {
        (i / self.bm) * self.cols() + j / self.bn
    }
}

/// The grid of the 2-D input `matrix` in the blocks the `block` parameter names.
pub(crate) fn grid(call: &Call, matrix: &str) -> Result<Grid> {
    let (m, n) = call.matrix_dims(matrix)?;
    let (bm, bn) = match call.param("block") {
        None | Some(serde_json::Value::Null) => (128, 128),
        Some(v) => match serde_json::from_value::<Vec<usize>>(v.clone()).ok().as_deref() {
            Some(&[bm, bn]) if bm > 0 && bn > 0 => (bm, bn),
            _ => return Err(call.error(format!("parameter 'block' must be [bm, bn] with two positive integers, got {v}"))),
        },
    };
    Ok(Grid { m, n, bm, bn })
}

/// Inputs read here must be exact in f32, so that both implementations start
/// from the same values (an f64 amax would make the scale depend on where
/// the rounding to f32 happens).
pub(crate) fn exact_in_f32(call: &Call, name: &str) -> Result<()> {
    let t = call.input(name)?;
    match t.dtype {
        DType::F32 | DType::BF16 | DType::F16 => Ok(()),
        d => Err(call.error(format!("input '{name}' is {d}; expected F32 (or BF16/F16) — round wider inputs to F32 first"))),
    }
}

/// All 256 codes decoded once (exact: fp8 values are f32 values).
pub(crate) fn decode_table(fmt: MiniFloat) -> [f32; 256] {
    std::array::from_fn(|b| fmt.decode(b as u32) as f32)
}
