//! `fp8_block_quantize` and `fp8_block_dequantize` — per-block fp8 as FP8
//! checkpoints store it (DeepSeek-V3 style: 128×128 blocks of fp8 values and
//! one f32 `weight_scale_inv` per block, the dequantization multiplier).
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

use super::{Call, Input, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages};
use super::BENCH_WEIGHTS;
use crate::compare::tolerance::Tolerance;
use crate::format::dtype::DType;
use crate::error::Result;
use crate::numeric::rng::SplitMix64;
use crate::numeric::round::{self, MiniFloat, F8E4M3FN, F8E5M2};
use crate::format::tensor::Tensor;
use rayon::prelude::*;

const F32: StageDtype = StageDtype::Fixed(DType::F32);
const BLOCK_DOC: &str = "[bm, bn] block size, positive integers (default [128, 128])";

pub static FP8_BLOCK_QUANTIZE: Operation = Operation {
    name: "fp8_block_quantize",
    summary: "per-block fp8 quantization: amax and f32 scale per block, RNE(x / scale) in fp8, and the dequantized check",
    inputs: &[Input { name: "x", doc: "F32 [m, n] (BF16/F16 read exactly)", optional: false }],
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
    reference: quantize_reference,
    fast: quantize_fast,
    sample: sample_quantize,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

pub static FP8_BLOCK_DEQUANTIZE: Operation = Operation {
    name: "fp8_block_dequantize",
    summary: "per-block fp8 dequantization: decode(quantized) · scale of the element's block, in f32",
    inputs: &[
        Input { name: "quantized", doc: "F8_E4M3 (e4m3fn) or F8_E5M2 [m, n]", optional: false },
        Input { name: "scale", doc: "F32 [ceil(m/bm), ceil(n/bn)] (BF16/F16 read exactly): weight_scale_inv", optional: false },
    ],
    params: &[Param { name: "block", kind: ParamKind::Sizes, doc: BLOCK_DOC, required: false }],
    stages: &[Stage {
        name: "output",
        dtype: F32,
        tolerance: Tolerance::exact(),
        why: "an fp8 value (≤ 4 significant bits) times an f32 scale is exact before its one f32 rounding: bit-identical",
    }],
    reference: dequantize_reference,
    fast: dequantize_fast,
    sample: sample_dequantize,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// The block grid over an [m, n] matrix.
#[derive(Clone, Copy, Debug)]
struct Grid {
    m: usize,
    n: usize,
    bm: usize,
    bn: usize,
}

impl Grid {
    fn rows(&self) -> usize {
        self.m.div_ceil(self.bm)
    }
    fn cols(&self) -> usize {
        self.n.div_ceil(self.bn)
    }
    /// The flat index, in the [rows, cols] scale grid, of element (i, j)'s block.
    #[inline]
    fn block_of(&self, i: usize, j: usize) -> usize {
        (i / self.bm) * self.cols() + j / self.bn
    }
}

fn grid(call: &Call, matrix: &str) -> Result<Grid> {
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

/// Inputs read here must be exact in f32, so that both implementations start
/// from the same values (an f64 amax would make the scale depend on where
/// the rounding to f32 happens).
fn exact_in_f32(call: &Call, name: &str) -> Result<()> {
    let t = call.input(name)?;
    match t.dtype {
        DType::F32 | DType::BF16 | DType::F16 => Ok(()),
        d => Err(call.error(format!("input '{name}' is {d}; expected F32 (or BF16/F16) — round wider inputs to F32 first"))),
    }
}

fn max_abs_nan(acc: f64, v: f64) -> f64 {
    if acc.is_nan() || v.is_nan() {
        f64::NAN
    } else {
        acc.max(v.abs())
    }
}

fn quantize_reference(call: &Call) -> Result<Stages> {
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

fn quantize_fast(call: &Call) -> Result<Stages> {
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

/// The checked inputs of a dequantization: the grid, the fp8 format, and the scale.
fn dequantize_plan(call: &Call) -> Result<(Grid, MiniFloat)> {
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

fn dequantize_reference(call: &Call) -> Result<Stages> {
    let (g, fmt) = dequantize_plan(call)?;
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

fn dequantize_fast(call: &Call) -> Result<Stages> {
    let (g, fmt) = dequantize_plan(call)?;
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

/// All 256 codes decoded once (exact: fp8 values are f32 values).
fn decode_table(fmt: MiniFloat) -> [f32; 256] {
    std::array::from_fn(|b| fmt.decode(b as u32) as f32)
}

/// Random inputs: an f32 weight [m, n] with N(0, 0.02²) entries, e4m3fn in
/// 128×128 blocks (the DeepSeek-V3 checkpoint layout).
fn sample_quantize(seed: u64, dims: &[usize]) -> Sample {
    let (m, n) = (dims[0], dims[1]);
    let mut rng = SplitMix64::new(seed);
    let mut inputs = super::Inputs::new();
    inputs.insert("x".into(), Tensor::from_f32(vec![m, n], &rng.normal_vec_f32(m * n, 0.02)));
    let mut params = super::Params::new();
    params.insert("format".into(), serde_json::json!("F8_E4M3"));
    params.insert("block".into(), serde_json::json!([128, 128]));
    Sample { inputs, params }
}

/// Random inputs: a random weight quantized by the fast quantizer, so the
/// codes and scales look like a real FP8 checkpoint's.
fn sample_dequantize(seed: u64, dims: &[usize]) -> Sample {
    let s = sample_quantize(seed, dims);
    let call = Call { op: &FP8_BLOCK_QUANTIZE, tensor: "sample", inputs: &s.inputs, params: &s.params };
    let stages = quantize_fast(&call).expect("the sample is well formed");
    let mut inputs = super::Inputs::new();
    inputs.insert("quantized".into(), stages.get("quantized").unwrap().clone());
    inputs.insert("scale".into(), stages.get("scale").unwrap().clone());
    let mut params = super::Params::new();
    params.insert("block".into(), serde_json::json!([128, 128]));
    Sample { inputs, params }
}
