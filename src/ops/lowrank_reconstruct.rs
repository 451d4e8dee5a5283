//! `lowrank_reconstruct` — merge a low-rank update into a weight:
//! `delta = scale·(b @ a)`, `output = base + delta` (LoRA's `W + (α/r)·B·A`,
//! PHLoRA's reconstruction).

use super::kernels::gemm;
use super::kernels::matrix::{float_matrix, matmul_f64, GEMM_TOLERANCE};
use super::{Accepts, Call, Input, Inputs, Operation, Param, ParamKind, Params, Sample, Stage, StageDtype, Stages};
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;

const F32: StageDtype = StageDtype::Fixed(DType::F32);

pub static LOWRANK_RECONSTRUCT: Operation = Operation {
    name: "lowrank_reconstruct",
    summary: "delta = scale·(b @ a), output = base + delta (a LoRA/PHLoRA merge)",
    inputs: &[
        Input { name: "a", doc: "F32 [r, n] (F64/F16/BF16 read exactly)", optional: false, accepts: Accepts::NonFp8Float },
        Input { name: "b", doc: "F32 [m, r] (F64/F16/BF16 read exactly)", optional: false, accepts: Accepts::NonFp8Float },
        Input { name: "base", doc: "F32 [m, n]; without it output = delta", optional: true, accepts: Accepts::NonFp8Float },
    ],
    params: &[Param {
        name: "scale",
        kind: ParamKind::Number,
        doc: "a number (default 1); the fast path rounds it to f32 first, as torch does with a Python scalar",
        required: false,
    }],
    stages: &[
        Stage {
            name: "delta",
            dtype: F32,
            tolerance: GEMM_TOLERANCE,
            why: "r-term f32 dot products and one product with the f32 scale: ≲ √r·2⁻²⁴ relative to |b||a|; limits as \
                  SVF's GEMM stages",
        },
        Stage {
            name: "output",
            dtype: F32,
            tolerance: GEMM_TOLERANCE,
            why: "delta plus base: one more f32 rounding (half an ULP of the output)",
        },
    ],
    reference,
    fast,
    sample,
    dims: "[m, n, r]",
    bench_dims: &[&[1024, 1024, 16], &[1024, 3072, 64], &[4096, 4096, 64]],
};

struct Checked {
    m: usize,
    n: usize,
    r: usize,
    scale: f64,
    has_base: bool,
}

fn checked(call: &Call) -> Result<Checked> {
    let (r, n) = float_matrix(call, "a")?;
    let (m, rb) = float_matrix(call, "b")?;
    if rb != r {
        return Err(call.error(format!("b is [{m}, {rb}] but a is [{r}, {n}]: b must be [m, r] and a [r, n]")));
    }
    let has_base = call.inputs.contains_key("base");
    if has_base {
        let (bm, bn) = float_matrix(call, "base")?;
        if (bm, bn) != (m, n) {
            return Err(call.error(format!("base is [{bm}, {bn}] but b @ a is [{m}, {n}]")));
        }
    }
    let scale = match call.param("scale") {
        None | Some(serde_json::Value::Null) => 1.0,
        Some(v) => v.as_f64().ok_or_else(|| call.error(format!("parameter 'scale' must be a number, got {v}")))?,
    };
    Ok(Checked { m, n, r, scale, has_base })
}

/// `scale·(b @ a)` and the sum in f64.
fn reference(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let ba = matmul_f64(&call.input("b")?.to_f64_vec(), &call.input("a")?.to_f64_vec(), p.m, p.r, p.n);
    let delta: Vec<f64> = ba.iter().map(|v| p.scale * v).collect();
    let output: Vec<f64> = match p.has_base {
        true => call.input("base")?.to_f64_vec().iter().zip(&delta).map(|(b, d)| b + d).collect(),
        false => delta.clone(),
    };
    let mut out = Stages::default();
    out.push("delta", Tensor::from_f64(vec![p.m, p.n], &delta));
    out.push("output", Tensor::from_f64(vec![p.m, p.n], &output));
    Ok(out)
}

/// `b @ a` on the f32 GEMM, then torch's sequence: the scale rounded to f32,
/// one f32 product and one f32 sum per element.
fn fast(call: &Call) -> Result<Stages> {
    let p = checked(call)?;
    let ba = gemm::matmul(&call.input("b")?.to_f32_vec(), &call.input("a")?.to_f32_vec(), p.m, p.r, p.n);
    let scale = p.scale as f32;
    let delta: Vec<f32> = ba.iter().map(|v| scale * v).collect();
    let output: Vec<f32> = match p.has_base {
        true => call.input("base")?.to_f32_vec().iter().zip(&delta).map(|(b, d)| b + d).collect(),
        false => delta.clone(),
    };
    let mut out = Stages::default();
    out.push("delta", Tensor::from_f32(vec![p.m, p.n], &delta));
    out.push("output", Tensor::from_f32(vec![p.m, p.n], &output));
    Ok(out)
}

/// Random inputs: a weight `base` ~ N(0, 0.02²) and a trained-LoRA-like update
/// (a ~ N(0, 1/n), b ~ N(0, 0.01²)) with scale α/r = 2.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let (m, n, r) = (dims[0], dims[1], dims[2]);
    let mut rng = SplitMix64::new(seed);
    let mut inputs = Inputs::new();
    inputs.insert("a".into(), Tensor::from_f32(vec![r, n], &rng.normal_vec_f32(r * n, 1.0 / (n.max(1) as f64).sqrt())));
    inputs.insert("b".into(), Tensor::from_f32(vec![m, r], &rng.normal_vec_f32(m * r, 0.01)));
    inputs.insert("base".into(), Tensor::from_f32(vec![m, n], &rng.normal_vec_f32(m * n, 0.02)));
    let mut params = Params::new();
    params.insert("scale".into(), serde_json::json!(2.0));
    Sample { inputs, params }
}
