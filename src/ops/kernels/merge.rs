//! What the model-merging operations (`task_arithmetic`, `ties`) share: their
//! inputs, the task vectors they start from, and their samples.
//!
//! Both start from task vectors τᵢ = tasksᵢ − base (the fine-tuned weights
//! minus the base they were tuned from) and add a combination of them back
//! to the base. Numerically, merges are short sums (T terms, T = the number
//! of tasks), so errors stay small — except where TIES makes a discrete
//! choice from rounded values (see `ties`).
//!
//! The reference computes every stage in f64 and returns it wide
//! (`Stages::narrow` rounds each to f32 once). The fast kernels run f32
//! throughout, in the order a torch pipeline computes: τ = tasks − base (one
//! f32 subtraction); λ and the TIES multiplier are rounded to f32 once; sums
//! over tasks run in task order from 0, rounding after every product and
//! every addition (what `sum(l * tv for ...)` or a `.sum(dim=0)` over a
//! stacked tensor does). No FMA: torch and numpy round the product first.
//!
//! Inputs of any float width decode exactly. The limits are derived for
//! inputs f32 holds exactly (every dtype but F64): the difference of two f32
//! values is then the same value in f64 or f32, rounded once.

use crate::compare::tolerance::Tolerance;
use crate::error::Result;
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use crate::numeric::rng::SplitMix64;
use crate::ops::{Accepts, Call, Input, Inputs, Stage, StageDtype};

pub(crate) const BENCH_MERGES: &[&[usize]] = &[&[3, 1024, 1024], &[3, 1024, 3072], &[2, 4096, 4096]];

pub(crate) const INPUTS: &[Input] = &[
    Input { name: "base", doc: "a float dtype, any shape [..]: the weight the tasks were tuned from", optional: false, accepts: Accepts::Float },
    Input { name: "tasks", doc: "a float dtype, [T, ..]: the T fine-tuned weights stacked", optional: false, accepts: Accepts::Float },
];

pub(crate) const TASK_VECTORS: Stage = Stage {
    name: "task_vectors",
    dtype: StageDtype::Fixed(DType::F32),
    tolerance: Tolerance::exact(),
    why: "tasks − base is computed exactly in f64 and rounded once, and an f32 subtraction rounds the same exact \
          difference once: bit-identical",
};

/// The shapes both implementations work from: T tasks of N elements each.
pub(crate) struct Checked<'a> {
    pub base: &'a Tensor,
    pub tasks: &'a Tensor,
    pub t: usize,
    pub n: usize,
}

pub(crate) fn checked<'a>(call: &Call<'a>) -> Result<Checked<'a>> {
    let base = call.input("base")?;
    let tasks = call.input("tasks")?;
    for (name, x) in [("base", base), ("tasks", tasks)] {
        if !x.dtype.is_float() {
            return Err(call.error(format!("input '{name}' must be a float tensor, got {}", x.dtype)));
        }
    }
    if tasks.shape.is_empty() || tasks.shape[1..] != base.shape[..] {
        return Err(call.error(format!(
            "tasks has shape {:?}, expected [T, {}] (the base's shape {:?} with the tasks stacked in front)",
            tasks.shape,
            base.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
            base.shape
        )));
    }
    Ok(Checked { base, tasks, t: tasks.shape[0], n: base.numel() })
}

/// τ[t, i] = tasks[t, i] − base[i], in f64 (the reference).
pub(crate) fn task_vectors_f64(base: &[f64], tasks: &[f64]) -> Vec<f64> {
    // (With no elements there are no tasks' elements either: j % 0 never runs.)
    tasks.iter().enumerate().map(|(j, x)| x - base[j % base.len()]).collect()
}

/// τ[t, i] = tasks[t, i] − base[i], one f32 rounding each (the fast kernels).
pub(crate) fn task_vectors_f32(base: &[f32], tasks: &[f32]) -> Vec<f32> {
    let mut tv = vec![0f32; tasks.len()];
    for (out, task) in tv.chunks_exact_mut(base.len().max(1)).zip(tasks.chunks_exact(base.len().max(1))) {
        super::elementwise::zip_into(task, base, out, |x, b| x - b);
    }
    tv
}

/// Sample inputs, dims = [T, m, n]: a base weight N(0, 0.02²) and T
/// fine-tunes that moved it by N(0, 0.002²).
pub(crate) fn sample_inputs(seed: u64, dims: &[usize]) -> Inputs {
    let (t, m, n) = (dims[0], dims[1], dims[2]);
    let mut rng = SplitMix64::new(seed);
    let base = rng.normal_vec_f32(m * n, 0.02);
    let mut tasks = Vec::with_capacity(t * m * n);
    for _ in 0..t {
        tasks.extend(base.iter().map(|&b| (b as f64 + 0.002 * rng.normal()) as f32));
    }
    let mut inputs = Inputs::new();
    inputs.insert("base".into(), Tensor::from_f32(vec![m, n], &base));
    inputs.insert("tasks".into(), Tensor::from_f32(vec![t, m, n], &tasks));
    inputs
}
