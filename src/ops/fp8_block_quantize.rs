//! `fp8_block_quantize` — per-block fp8 quantization as FP8 checkpoints
//! store it (DeepSeek-V3 style: 128×128 blocks of fp8 values and one f32
//! `weight_scale_inv` per block, the dequantization multiplier; the block
//! grid is `kernels/fp8_block.rs`).
//!
//! The formulas, per block B of x (the last blocks of a row or column are
//! cut short when the block does not divide the shape):
//!
//! ```text
//! amax[B]      = max |x| over B            (NaN if B holds a NaN)
//! scale[B]     = amax[B] / max_finite       (1 when amax[B] == 0)
//! quantized    = RNE_fp8(x / scale[B])      (e4m3fn: max_finite 448; e5m2: 57344)
//! dequantized  = decode(quantized) · scale[B]
//! ```
//!
//! Both implementations quantize with the scale as stored, rounded to f32 —
//! the one a loader multiplies by. The **fast** one divides in f32 and rounds
//! that quotient to fp8, as `(x / s).to(torch.float8_e4m3fn)` does; the
//! **reference** rounds the exact quotient once. That is the only place they
//! can differ: an f32 quotient that lands exactly on an fp8 tie. Everything
//! else is bit-identical by construction (see each stage's `why`).
//!
//! IEEE results are the defined ones, as in torch: a block holding ±inf has
//! scale inf, so its finite values quantize to 0 and dequantize to NaN
//! (0 · inf); a block of tiny subnormals whose scale underflows to 0 quantizes
//! to NaN/inf.

use super::kernels::fp8_block::{decode_table, exact_in_f32, grid, BLOCK_DOC};
use super::{Accepts, Call, Input, Inputs, Operation, Param, ParamKind, Params, Sample, Stage, StageDtype, Stages, BENCH_WEIGHTS};
use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use crate::numeric::round::{self, MiniFloat, F8E4M3FN, F8E5M2};
use rayon::prelude::*;

const F32: StageDtype = StageDtype::Fixed(DType::F32);

pub static FP8_BLOCK_QUANTIZE: Operation = Operation {
    name: "fp8_block_quantize",
    summary: "per-block fp8 quantization: amax and f32 scale per block, RNE(x / scale) in fp8, and the dequantized check",
    inputs: &[Input { name: "x", doc: "F32 [m, n] (BF16/F16 read exactly)", optional: false, accepts: Accepts::NonFp8Float }],
    params: &[
        Param { name: "format", kind: ParamKind::OneOf(&["F8_E4M3", "F8_E5M2"]), doc: "\"F8_E4M3\" (e4m3fn, default) or \"F8_E5M2\"", required: false },
        Param { name: "block", kind: ParamKind::Sizes, doc: BLOCK_DOC, required: false },
    ],
    stages: &[
        Stage {
            name: "amax",
            dtype: F32,
            tolerance: Tolerance::exact(),
            why: "a maximum of magnitudes rounds nothing: bit-identical (NaN where the block holds one)",
        },
        Stage {
            name: "scale",
            dtype: F32,
            tolerance: Tolerance::exact(),
            why: "amax / max_finite rounded once to f32; an f32 division and an f64 one rounded to f32 agree (53 ≥ 2·24 + 2 bits)",
        },
        Stage {
            name: "quantized",
            dtype: StageDtype::FromParam("format"),
            tolerance: Tolerance { max_ulp: Some(1), ..Tolerance::gate(f64::INFINITY, f64::INFINITY) },
            why: "torch rounds x / scale to f32 before fp8: landing on an fp8 tie flips one ULP (rare, ~2⁻²⁰ of elements); \
                  an ULP's size depends on format and magnitude, so the ULP limit is the gate",
        },
        Stage {
            name: "dequantized",
            dtype: F32,
            tolerance: Tolerance::exact().optional(),
            why: "decode(quantized) · scale is exact before one f32 rounding: bit-identical wherever quantized is; \
                  a quantized flip moves it a whole fp8 step and is judged there, so report, don't require",
        },
    ],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

fn format(call: &Call) -> Result<(DType, MiniFloat)> {
    match call.param("format") {
        None | Some(serde_json::Value::Null) => Ok((DType::F8E4M3, F8E4M3FN)),
        Some(v) => match v.as_str() {
            Some("F8_E4M3") => Ok((DType::F8E4M3, F8E4M3FN)),
            Some("F8_E5M2") => Ok((DType::F8E5M2, F8E5M2)),
            _ => Err(call.error(format!("parameter 'format' must be \"F8_E4M3\" or \"F8_E5M2\", got {v}"))),
        },
    }
}

fn max_abs_nan(acc: f64, v: f64) -> f64 {
    if acc.is_nan() || v.is_nan() {
        f64::NAN
    } else {
        acc.max(v.abs())
    }
}

/// Amax, scale and the dequantized check in f64; the quotient by the stored
/// (f32) scale rounded to fp8 once.
fn reference(call: &Call) -> Result<Stages> {
    let g = grid(call, "x")?;
    let (dtype, fmt) = format(call)?;
    exact_in_f32(call, "x")?;
    let x = call.input("x")?.to_f64_vec();
    let blocks = g.rows() * g.cols();
    let mut amax = vec![0f64; blocks];
    for i in 0..g.m {
        for j in 0..g.n {
            let b = g.block_of(i, j);
            amax[b] = max_abs_nan(amax[b], x[i * g.n + j]);
        }
    }
    let scale: Vec<f64> = amax.iter().map(|&a| if a == 0.0 { 1.0 } else { a / fmt.max_finite() }).collect();
    // What a loader multiplies by is the scale as stored: rounded to f32.
    let stored: Vec<f64> = scale.iter().map(|&s| round::f64_to_f32(s) as f64).collect();
    let mut q = vec![0u8; g.m * g.n];
    let mut deq = vec![0f64; g.m * g.n];
    for i in 0..g.m {
        for j in 0..g.n {
            let s = stored[g.block_of(i, j)];
            // The f64 quotient of two f32 values is never within 2⁻⁵³ of an
            // fp8 tie it is not on, so rounding it is rounding the exact quotient.
            let bits = encode_signed_nan(fmt, x[i * g.n + j] / s);
            q[i * g.n + j] = bits as u8;
            deq[i * g.n + j] = fmt.decode(bits) * s;
        }
    }
    let mut out = Stages::default();
    out.push("amax", Tensor::from_f64(vec![g.rows(), g.cols()], &amax));
    out.push("scale", Tensor::from_f64(vec![g.rows(), g.cols()], &scale));
    out.push("quantized", Tensor::from_bytes(dtype, vec![g.m, g.n], q));
    out.push("dequantized", Tensor::from_f64(vec![g.m, g.n], &deq));
    Ok(out)
}

/// [`MiniFloat::encode`] with NaN keeping its sign, as ml_dtypes writes it.
fn encode_signed_nan(fmt: MiniFloat, v: f64) -> u32 {
    let r = fmt.encode(v);
    if fmt.decode(r).is_nan() {
        fmt.quiet_nan_bits() | ((v.is_sign_negative() as u32) << 7)
    } else {
        r
    }
}

/// torch's sequence: f32 amax and scale, `(x / s)` divided in f32 and rounded
/// to fp8, one block row per rayon task.
fn fast(call: &Call) -> Result<Stages> {
    let g = grid(call, "x")?;
    let (dtype, fmt) = format(call)?;
    exact_in_f32(call, "x")?;
    let x = call.input("x")?.to_f32_vec();
    let (rows, cols) = (g.rows(), g.cols());

    // One block row per task: its bm rows of x, its `cols` maxima.
    let amax: Vec<f32> = (0..rows)
        .into_par_iter()
        .flat_map_iter(|bi| {
            let mut acc = vec![0f32; cols];
            for i in bi * g.bm..((bi + 1) * g.bm).min(g.m) {
                for (a, block) in acc.iter_mut().zip(x[i * g.n..(i + 1) * g.n].chunks(g.bn)) {
                    for &v in block {
                        *a = if a.is_nan() || v.is_nan() { f32::NAN } else { a.max(v.abs()) };
                    }
                }
            }
            acc
        })
        .collect();
    let max_finite = fmt.max_finite() as f32; // 448 or 57344: exact in f32
    let scale: Vec<f32> = amax.iter().map(|&a| if a == 0.0 { 1.0 } else { a / max_finite }).collect();

    let table = decode_table(fmt);
    let mut q = vec![0u8; g.m * g.n];
    let mut deq = vec![0f32; g.m * g.n];
    if g.n > 0 {
        q.par_chunks_mut(g.n).zip(deq.par_chunks_mut(g.n)).enumerate().for_each(|(i, (qrow, drow))| {
            let srow = &scale[(i / g.bm) * cols..(i / g.bm + 1) * cols];
            let blocks = x[i * g.n..(i + 1) * g.n].chunks(g.bn).zip(qrow.chunks_mut(g.bn)).zip(drow.chunks_mut(g.bn));
            for (((xs, qs), ds), &s) in blocks.zip(srow) {
                for ((&v, q), d) in xs.iter().zip(qs).zip(ds) {
                    let code = fmt.encode_f32(v / s) as u8;
                    *q = code;
                    *d = table[code as usize] * s;
                }
            }
        });
    }
    let mut out = Stages::default();
    out.push("amax", Tensor::from_f32(vec![rows, cols], &amax));
    out.push("scale", Tensor::from_f32(vec![rows, cols], &scale));
    out.push("quantized", Tensor::from_bytes(dtype, vec![g.m, g.n], q));
    out.push("dequantized", Tensor::from_f32(vec![g.m, g.n], &deq));
    Ok(out)
}

/// Random inputs: an f32 weight [m, n] with N(0, 0.02²) entries, e4m3fn in
/// 128×128 blocks (the DeepSeek-V3 checkpoint layout).
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let (m, n) = (dims[0], dims[1]);
    let mut rng = SplitMix64::new(seed);
    let mut inputs = Inputs::new();
    inputs.insert("x".into(), Tensor::from_f32(vec![m, n], &rng.normal_vec_f32(m * n, 0.02)));
    let mut params = Params::new();
    params.insert("format".into(), serde_json::json!("F8_E4M3"));
    params.insert("block".into(), serde_json::json!([128, 128]));
    Sample { inputs, params }
}
