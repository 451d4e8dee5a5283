//! `fp8_block_dequantize` — per-block fp8 dequantization, as a loader of an
//! FP8 checkpoint does it: `decode(quantized) · scale` of the element's block,
//! in f32 (the block grid is `kernels/fp8_block.rs`).
//!
//! An fp8 value has at most 4 significant bits, so its product with an f32
//! scale is exact before its one f32 rounding: the two implementations agree
//! bit for bit.

use super::fp8_block_quantize::FP8_BLOCK_QUANTIZE;
use super::kernels::fp8_block::{decode_table, exact_in_f32, grid, Grid, BLOCK_DOC};
use super::{Accepts, Call, Implementation, Input, Inputs, Operation, Param, ParamKind, Params, Sample, Stage, StageDtype, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::round::{MiniFloat, F8E4M3FN, F8E5M2};
use rayon::prelude::*;

pub static FP8_BLOCK_DEQUANTIZE: Operation = Operation {
    name: "fp8_block_dequantize",
    summary: "per-block fp8 dequantization: decode(quantized) · scale of the element's block, in f32",
    inputs: &[
        Input { name: "quantized", doc: "F8_E4M3 (e4m3fn) or F8_E5M2 [m, n]", optional: false, accepts: Accepts::Fp8 },
        Input { name: "scale", doc: "F32 [ceil(m/bm), ceil(n/bn)] (BF16/F16 read exactly): weight_scale_inv", optional: false, accepts: Accepts::NonFp8Float },
    ],
    params: &[Param { name: "block", kind: ParamKind::Sizes, doc: BLOCK_DOC, required: false }],
    stages: &[Stage {
        name: "output",
        dtype: StageDtype::Fixed(DType::F32),
        tolerance: Tolerance::exact(),
        why: "an fp8 value (≤ 4 significant bits) times an f32 scale is exact before its one f32 rounding: bit-identical",
    }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// The checked inputs of a dequantization: the grid, the fp8 format, and the scale.
fn checked(call: &Call) -> Result<(Grid, MiniFloat)> {
    let g = grid(call, "quantized")?;
    let q = call.input("quantized")?;
    let fmt = match q.dtype {
        DType::F8E4M3 => F8E4M3FN,
        DType::F8E5M2 => F8E5M2,
        d => return Err(call.error(format!("input 'quantized' is {d}; expected F8_E4M3 or F8_E5M2"))),
    };
    exact_in_f32(call, "scale")?;
    let scale = call.input("scale")?;
    if scale.shape != [g.rows(), g.cols()] {
        return Err(call.error(format!(
            "scale has shape {:?}, expected [{}, {}] for a [{}, {}] matrix in [{}, {}] blocks",
            scale.shape,
            g.rows(),
            g.cols(),
            g.m,
            g.n,
            g.bm,
            g.bn
        )));
    }
    Ok((g, fmt))
}

/// decode · scale in f64, element by element.
fn reference(call: &Call) -> Result<Stages> {
    let (g, fmt) = checked(call)?;
    let q = &call.input("quantized")?.data;
    let scale = call.input("scale")?.to_f64_vec();
    let mut out = vec![0f64; g.m * g.n];
    for i in 0..g.m {
        for j in 0..g.n {
            out[i * g.n + j] = fmt.decode(q[i * g.n + j] as u32) * scale[g.block_of(i, j)];
        }
    }
    Ok(Stages(vec![("output".into(), Tensor::from_f64(vec![g.m, g.n], &out))]))
}

/// The decode table times the f32 scale, one row per rayon task.
fn fast(call: &Call) -> Result<Stages> {
    let (g, fmt) = checked(call)?;
    let q = &call.input("quantized")?.data;
    let scale = call.input("scale")?.to_f32_vec();
    let table = decode_table(fmt);
    let cols = g.cols();
    let mut out = vec![0f32; g.m * g.n];
    if g.n > 0 {
        out.par_chunks_mut(g.n).enumerate().for_each(|(i, row)| {
            let srow = &scale[(i / g.bm) * cols..(i / g.bm + 1) * cols];
            for ((os, qs), &s) in row.chunks_mut(g.bn).zip(q[i * g.n..(i + 1) * g.n].chunks(g.bn)).zip(srow) {
                for (o, &c) in os.iter_mut().zip(qs) {
                    *o = table[c as usize] * s;
                }
            }
        });
    }
    Ok(Stages(vec![("output".into(), Tensor::from_f32(vec![g.m, g.n], &out))]))
}

/// Random inputs: a random weight quantized by the fast quantizer, so the
/// codes and scales look like a real FP8 checkpoint's.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let s = (FP8_BLOCK_QUANTIZE.sample)(seed, dims);
    let stages = FP8_BLOCK_QUANTIZE.run(Implementation::Fast, "sample", &s.inputs, &s.params).expect("the sample is well formed");
    let mut inputs = Inputs::new();
    inputs.insert("quantized".into(), stages.get("quantized").unwrap().clone());
    inputs.insert("scale".into(), stages.get("scale").unwrap().clone());
    let mut params = Params::new();
    params.insert("block".into(), serde_json::json!([128, 128]));
    Sample { inputs, params }
}
