//! The operation catalog.
//!
//! Each operation is one [`Operation`] value in its own module: its inputs,
//! parameters, ordered stages with dtypes and default tolerances, and its two
//! implementations. That one description is what `parity ops` prints, what
//! `replay` runs, what the gate and the comparer's built-in profile read, and
//! what the benches and property tests iterate over. To add an operation, add
//! a module and one line in [`REGISTRY`].
//!
//! The two implementations:
//! * **reference** — computed in f64 for clarity, returning *wide* stages:
//!   stages declared F32 come back as F64 tensors, and [`Stages::narrow`]
//!   rounds them to F32 once (RNE). Stages declared narrower (bf16, fp8) are
//!   produced by the reference itself, from its own rounded F32 value when
//!   the operation says so (e.g. SVF's `final_bf16`).
//! * **fast** — what users ship: f32 compute, low-precision outputs.

use crate::compare::tolerance::Tolerance;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::BTreeMap;

pub mod cast;
pub mod catalog;
pub mod elementwise;
pub mod fp8;
pub mod layout;
pub mod linalg;
pub mod merge;
pub mod svf_apply;

/// Every operation parity knows. One line per operation.
pub static REGISTRY: &[&Operation] = &[
    &layout::IDENTITY,
    &cast::CAST,
    &fp8::FP8_BLOCK_QUANTIZE,
    &fp8::FP8_BLOCK_DEQUANTIZE,
    &elementwise::SCALE,
    &elementwise::ADD,
    &elementwise::SUBTRACT,
    &elementwise::CLAMP,
    &elementwise::FILL,
    &linalg::MATMUL,
    &linalg::SVD,
    &linalg::PHLORA,
    &linalg::LOWRANK_RECONSTRUCT,
    &layout::TRANSPOSE,
    &layout::RESHAPE,
    &layout::SLICE,
    &layout::CONCAT,
    &layout::SPLIT,
    &merge::TASK_ARITHMETIC,
    &merge::TIES,
    &svf_apply::SVF_APPLY,
];

pub fn find(name: &str) -> Option<&'static Operation> {
    REGISTRY.iter().copied().find(|op| op.name == name)
}

/// Weight shapes the element-wise and layout benches share: a small square
/// projection, a Qwen-MLP-like [1024, 3072] and a large 4096×4096.
pub(crate) const BENCH_WEIGHTS: &[&[usize]] = &[&[1024, 1024], &[1024, 3072], &[4096, 4096]];

pub type Inputs = BTreeMap<String, Tensor>;
pub type Params = serde_json::Map<String, serde_json::Value>;

/// One implementation: inputs and parameters in, stages in pipeline order out.
pub type Implementation = fn(&Call) -> Result<Stages>;

#[derive(Debug)]
pub struct Operation {
    pub name: &'static str,
    pub summary: &'static str,
    pub inputs: &'static [Input],
    pub params: &'static [Param],
    pub stages: &'static [Stage],
    pub reference: Implementation,
    pub fast: Implementation,
    /// Random inputs of a given size, for benches and property tests.
    pub sample: fn(seed: u64, dims: &[usize]) -> Sample,
    /// What `dims` means for `sample`, e.g. "[m, n, k]".
    pub dims: &'static str,
    /// Realistic sizes for the benches.
    pub bench_dims: &'static [&'static [usize]],
}

#[derive(Debug)]
pub struct Input {
    pub name: &'static str,
    /// Accepted dtypes and shape, for people ("F32 [m, n]").
    pub doc: &'static str,
    pub optional: bool,
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub doc: &'static str,
    pub required: bool,
}

#[derive(Debug)]
pub struct Stage {
    pub name: &'static str,
    pub dtype: StageDtype,
    pub tolerance: Tolerance,
    /// One line: why these limits (from the dtype's rounding and the op's error growth).
    pub why: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StageDtype {
    Fixed(DType),
    /// Named by a parameter (e.g. cast's `to`).
    FromParam(&'static str),
    /// The dtype of an input.
    FromInput(&'static str),
}

impl std::fmt::Display for StageDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageDtype::Fixed(d) => write!(f, "{d}"),
            StageDtype::FromParam(p) => write!(f, "<param {p}>"),
            StageDtype::FromInput(i) => write!(f, "<dtype of {i}>"),
        }
    }
}

/// What an implementation is called with.
pub struct Call<'a> {
    pub op: &'static Operation,
    /// The tensor's real name, for error messages.
    pub tensor: &'a str,
    pub inputs: &'a Inputs,
    pub params: &'a Params,
}

/// Sample inputs for one call.
pub struct Sample {
    pub inputs: Inputs,
    pub params: Params,
}

/// Stages in pipeline order.
#[derive(Debug, Default, Clone)]
pub struct Stages(pub Vec<(String, Tensor)>);

impl Stages {
    pub fn push(&mut self, name: &str, t: Tensor) {
        self.0.push((name.to_string(), t));
    }
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
    /// Round wide (F64) stages to their declared F32 dtype — the reference's
    /// single f64 → f32 rounding (RNE).
    pub fn narrow(self, op: &Operation) -> Stages {
        Stages(
            self.0
                .into_iter()
                .map(|(name, t)| {
                    let declared = op.stage(&name).map(|s| s.dtype);
                    if t.dtype == DType::F64 && declared == Some(StageDtype::Fixed(DType::F32)) {
                        let v: Vec<f32> = t.to_f64_vec().into_iter().map(crate::numeric::round::f64_to_f32).collect();
                        (name, Tensor::from_f32(t.shape, &v))
                    } else {
                        (name, t)
                    }
                })
                .collect(),
        )
    }
}

impl Operation {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
    /// The stage whose hash is the report's `final_sha256`: the last one.
    pub fn final_stage(&self) -> &'static str {
        self.stages.last().map(|s| s.name).unwrap_or("")
    }
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

impl<'a> Call<'a> {
    pub fn input(&self, name: &str) -> Result<&'a Tensor> {
        self.inputs.get(name).ok_or_else(|| self.error(format!("input '{name}' missing")))
    }
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::operation(self.op.name, self.tensor, message)
    }
    /// A 2-D input of a float dtype, as (rows, cols).
    pub fn matrix_dims(&self, name: &str) -> Result<(usize, usize)> {
        let t = self.input(name)?;
        match t.shape.as_slice() {
            [r, c] => Ok((*r, *c)),
            s => Err(self.error(format!("input '{name}' must be 2-D, got shape {s:?}"))),
        }
    }
    pub fn param(&self, name: &str) -> Option<&'a serde_json::Value> {
        self.params.get(name)
    }
}
