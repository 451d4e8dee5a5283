//! `subtract` — a − alpha·b, or a − alpha·value (torch.sub semantics): `add`
//! with −alpha, which is exact. The computation is shared with `add`: see
//! `kernels/add_subtract.rs`.

use super::kernels::add_subtract::{self, INPUTS, PARAMS, WHY};
use super::kernels::elementwise::ONE_ROUNDING;
use super::{Call, Operation, Sample, Stage, StageDtype, Stages, BENCH_WEIGHTS};
use crate::error::Result;
use crate::format::dtype::DType;

pub static SUBTRACT: Operation = Operation {
    name: "subtract",
    summary: "a − alpha·b, or a − alpha·value (torch.sub semantics)",
    inputs: INPUTS,
    params: PARAMS,
    stages: &[Stage { name: "output", dtype: StageDtype::Fixed(DType::F32), tolerance: ONE_ROUNDING, why: WHY }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: BENCH_WEIGHTS,
};

/// a − alpha·b in f64.
fn reference(call: &Call) -> Result<Stages> {
    add_subtract::reference(call, -1.0)
}

/// a + (−alpha)·b in torch's f32 sequence.
fn fast(call: &Call) -> Result<Stages> {
    add_subtract::fast(call, true)
}

/// Random inputs: dims = [m, n], two weights and alpha 0.3.
fn sample(seed: u64, dims: &[usize]) -> Sample {
    add_subtract::sample(seed, dims)
}
