//! `matmul` — `a @ b`.

use super::kernels::gemm;
use super::kernels::matrix::{float_matrix, matmul_f64, GEMM_TOLERANCE};
use super::{Accepts, Call, Input, Inputs, Operation, Params, Sample, Stage, StageDtype, Stages};
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;

pub static MATMUL: Operation = Operation {
    name: "matmul",
    summary: "a @ b, f32 (the fast kernel is a real sgemm)",
    inputs: &[
        Input { name: "a", doc: "F32 [m, k] (F64/F16/BF16 read exactly)", optional: false, accepts: Accepts::NonFp8Float },
        Input { name: "b", doc: "F32 [k, n] (F64/F16/BF16 read exactly)", optional: false, accepts: Accepts::NonFp8Float },
    ],
    params: &[],
    stages: &[Stage {
        name: "output",
        dtype: StageDtype::Fixed(DType::F32),
        tolerance: GEMM_TOLERANCE,
        why: "k-term f32 dot products: the error grows like √k·2⁻²⁴·Σ|a||b| with the summation order (≈1e-6 for O(1) \
              outputs at k = 4096); 1e-3 / 1e-5 as for SVF's GEMM stages, which a bf16-computed product (≈2⁻⁹ relative) fails",
    }],
    reference,
    fast,
    sample,
    dims: "[m, k, n]",
    // 512 tokens through a projection of each weight shape.
    bench_dims: &[&[512, 1024, 1024], &[512, 1024, 3072], &[512, 4096, 1024]],
};

fn checked(call: &Call) -> Result<(usize, usize, usize)> {
    let (m, k) = float_matrix(call, "a")?;
    let (kb, n) = float_matrix(call, "b")?;
    if kb != k {
        return Err(call.error(format!("a is [{m}, {k}] but b is [{kb}, {n}]: inner dimensions differ")));
    }
    Ok((m, k, n))
}

/// The product in f64 (nalgebra).
fn reference(call: &Call) -> Result<Stages> {
    let (m, k, n) = checked(call)?;
    let c = matmul_f64(&call.input("a")?.to_f64_vec(), &call.input("b")?.to_f64_vec(), m, k, n);
    Ok(Stages(vec![("output".into(), Tensor::from_f64(vec![m, n], &c))]))
}

/// The product on the f32 GEMM (matrixmultiply's sgemm).
fn fast(call: &Call) -> Result<Stages> {
    let (m, k, n) = checked(call)?;
    let c = gemm::matmul(&call.input("a")?.to_f32_vec(), &call.input("b")?.to_f32_vec(), m, k, n);
    Ok(Stages(vec![("output".into(), Tensor::from_f32(vec![m, n], &c))]))
}

/// Random inputs: activations `a` ~ N(0, 1) and a weight `b` ~ N(0, 1/k), so
/// the output is O(1) whatever k — a linear layer's forward pass.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let (m, k, n) = (dims[0], dims[1], dims[2]);
    let mut rng = SplitMix64::new(seed);
    let mut inputs = Inputs::new();
    inputs.insert("a".into(), Tensor::from_f32(vec![m, k], &rng.normal_vec_f32(m * k, 1.0)));
    inputs.insert("b".into(), Tensor::from_f32(vec![k, n], &rng.normal_vec_f32(k * n, 1.0 / (k.max(1) as f64).sqrt())));
    Sample { inputs, params: Params::new() }
}
