//! The operation catalog.
//!
//! Each operation is one [`Operation`] value in its own module: its inputs,
//! parameters, ordered stages with dtypes and default tolerances, and its two
//! implementations. That one description is what `parity ops` prints, what
//! `replay` runs, what the gate and the comparer's built-in profile read, and
//! what the benches and property tests iterate over. To add an operation, add
//! its file, `src/ops/<name>.rs`, and one line in [`REGISTRY`];
//! `src/ops/README.md` lists every other place it touches. Code several
//! operations share lives in `kernels`.
//!
//! The two implementations:
//! * **reference** — computed in f64 for clarity, returning *wide* stages:
//!   stages declared F32 come back as F64 tensors, and [`Stages::narrow`]
//!   rounds them to F32 once (RNE). Stages declared narrower (bf16, fp8) are
//!   produced by the reference itself, from its own rounded F32 value when
//!   the operation says so (e.g. SVF's `final_bf16`).
//! * **fast** — what users ship: f32 compute, low-precision outputs.

use crate::compare::tolerance::Tolerance;
use crate::error::{Error, Result};
use crate::format::dtype::DType;
use crate::format::tensor::Tensor;
use std::collections::BTreeMap;

pub use crate::format::stages::{Params, Stages};
pub use params::{Param, ParamKind};

pub mod catalog;
pub use catalog::{builtin_profile, profile_mapped};
pub(crate) mod kernels;
pub mod params;

// The operations: one file each (see src/ops/README.md), in REGISTRY's order.
pub mod identity;
pub mod cast;
pub mod fp8_block_quantize;
pub mod fp8_block_dequantize;
pub mod scale;
pub mod add;
pub mod subtract;
pub mod clamp;
pub mod fill;
pub mod matmul;
pub mod svd;
pub mod phlora;
pub mod lowrank_reconstruct;
pub mod transpose;
pub mod reshape;
pub mod slice;
pub mod concat;
pub mod split;
pub mod task_arithmetic;
pub mod ties;
pub mod svf_apply;

/// Every operation parity knows. One line per operation.
pub static REGISTRY: &[&Operation] = &[
    &identity::IDENTITY,
    &cast::CAST,
    &fp8_block_quantize::FP8_BLOCK_QUANTIZE,
    &fp8_block_dequantize::FP8_BLOCK_DEQUANTIZE,
    &scale::SCALE,
    &add::ADD,
    &subtract::SUBTRACT,
    &clamp::CLAMP,
    &fill::FILL,
    &matmul::MATMUL,
    &svd::SVD,
    &phlora::PHLORA,
    &lowrank_reconstruct::LOWRANK_RECONSTRUCT,
    &transpose::TRANSPOSE,
    &reshape::RESHAPE,
    &slice::SLICE,
    &concat::CONCAT,
    &split::SPLIT,
    &task_arithmetic::TASK_ARITHMETIC,
    &ties::TIES,
    &svf_apply::SVF_APPLY,
];

pub fn find(name: &str) -> Option<&'static Operation> {
    REGISTRY.iter().copied().find(|op| op.name == name)
}

/// Weight shapes the element-wise and layout benches share: a small square
/// projection, a Qwen-MLP-like [1024, 3072] and a large 4096×4096.
pub(crate) const BENCH_WEIGHTS: &[&[usize]] = &[&[1024, 1024], &[1024, 3072], &[4096, 4096]];

pub type Inputs = BTreeMap<String, Tensor>;

/// One implementation's function: inputs and parameters in, stages in
/// pipeline order out. Called only through [`Operation::run`].
pub type Kernel = fn(&Call) -> Result<Stages>;

/// Which implementation [`Operation::run`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Implementation {
    /// f32 compute, bf16/f16/fp8 outputs: the kernel users ship.
    Fast,
    /// f64 compute, each stage rounded once to its declared dtype.
    Reference,
    /// f64 compute, F32 stages kept as F64 (to compare with an f64 oracle
    /// far tighter than any f32 tolerance).
    #[cfg_attr(feature = "cli", value(name = "reference-f64"))]
    ReferenceWide,
}

impl Implementation {
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Fast => "fast",
            Implementation::Reference => "reference",
            Implementation::ReferenceWide => "reference-f64",
        }
    }
}

#[derive(Debug)]
pub struct Operation {
    pub name: &'static str,
    pub summary: &'static str,
    pub inputs: &'static [Input],
    pub params: &'static [Param],
    pub stages: &'static [Stage],
    pub(crate) reference: Kernel,
    pub(crate) fast: Kernel,
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
    /// The dtypes the operation takes here, enforced by [`Operation::run`]
    /// and checked from headers by a plan's dry run. A family, not the
    /// kernel's last word: a kernel may refine it (fp8 dequantization's
    /// scale must be exact in f32).
    pub accepts: Accepts,
}

/// Which dtypes an input takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepts {
    Any,
    /// Any float: F64, F32, F16, BF16, F8_E4M3, F8_E5M2.
    Float,
    /// F64, F32, F16 or BF16 (not fp8: a matrix or a value cast from).
    NonFp8Float,
    /// F8_E4M3 or F8_E5M2.
    Fp8,
}

impl Accepts {
    pub fn allows(self, d: DType) -> bool {
        match self {
            Accepts::Any => true,
            Accepts::Float => d.is_float(),
            Accepts::NonFp8Float => matches!(d, DType::F64 | DType::F32 | DType::F16 | DType::BF16),
            Accepts::Fp8 => matches!(d, DType::F8E4M3 | DType::F8E5M2),
        }
    }

    /// For errors: "a float dtype", "F64, F32, F16 or BF16", ….
    pub fn describe(self) -> &'static str {
        match self {
            Accepts::Any => "any dtype",
            Accepts::Float => "a float dtype (F64, F32, F16, BF16, F8_E4M3, F8_E5M2)",
            Accepts::NonFp8Float => "F64, F32, F16 or BF16",
            Accepts::Fp8 => "F8_E4M3 or F8_E5M2",
        }
    }
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

impl StageDtype {
    /// The dtype this declaration names for one call; None where the call
    /// leaves it to the implementation (a parameter left at its default).
    pub fn resolve(self, call: &Call) -> Option<DType> {
        match self {
            StageDtype::Fixed(d) => Some(d),
            StageDtype::FromInput(i) => call.inputs.get(i).map(|t| t.dtype),
            StageDtype::FromParam(p) => call.params.get(p).and_then(|v| v.as_str()).and_then(DType::parse),
        }
    }
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
    /// The stages the caller keeps; see [`Call::wants`].
    pub wanted: Wanted<'a>,
}

/// The stages a caller keeps from one run.
///
/// A plan that writes one stage of a ten-stage operation need not pay for
/// the other nine: an implementation may skip the work of a stage nobody
/// wants ([`Call::wants`]), and [`Operation::run_for`] drops any unwanted stage
/// it computed anyway. What a kept stage holds never depends on what else
/// was wanted (tests/ops_wanted.rs holds every operation to that).
#[derive(Clone, Copy, Debug)]
pub enum Wanted<'a> {
    /// Every declared stage: replay, the gate, stage dumps.
    All,
    /// Only the stages named (each a declared stage of the operation).
    Only(&'a [&'a str]),
}

impl Wanted<'_> {
    pub fn contains(&self, stage: &str) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Only(names) => names.contains(&stage),
        }
    }
}

/// Sample inputs for one call.
pub struct Sample {
    pub inputs: Inputs,
    pub params: Params,
}

impl Operation {
    /// The one way to run an operation — every caller (replay, the gate,
    /// plans, benches, tests) goes through here, so the declaration is
    /// enforced, not merely documented:
    /// 1. `params` are held to the declared parameters (unknown, missing or
    ///    ill-typed keys are refused before any work);
    /// 2. every required input is present, and no undeclared one is given;
    /// 3. the chosen implementation runs;
    /// 4. the reference's wide (F64) stages are rounded once, RNE, to their
    ///    declared F32 — unless `ReferenceWide` asks to keep them;
    /// 5. the stages must be exactly the declared ones (the wanted ones, for
    ///    [`Operation::run_for`]), in declared order, each of its declared dtype.
    pub fn run(&'static self, implementation: Implementation, tensor: &str, inputs: &Inputs, params: &Params) -> Result<Stages> {
        self.run_for(Wanted::All, implementation, tensor, inputs, params)
    }

    /// [`Operation::run`], keeping only the `wanted` stages (in declared
    /// order): an implementation may skip the others' work. A name that is
    /// not a declared stage is refused before any work.
    pub fn run_for(
        &'static self,
        wanted: Wanted,
        implementation: Implementation,
        tensor: &str,
        inputs: &Inputs,
        params: &Params,
    ) -> Result<Stages> {
        params::validate(self.name, tensor, self.params, params)?;
        let call = Call { op: self, tensor, inputs, params, wanted };
        if let Wanted::Only(names) = wanted {
            if let Some(unknown) = names.iter().find(|n| self.stage(n).is_none()) {
                let declared: Vec<&str> = self.stages.iter().map(|s| s.name).collect();
                return Err(call.error(format!("'{unknown}' is not a stage of {} (its stages: {})", self.name, declared.join(", "))));
            }
        }
        for input in self.inputs.iter().filter(|i| !i.optional) {
            call.input(input.name)?;
        }
        for input in self.inputs {
            if let Some(t) = inputs.get(input.name) {
                if !input.accepts.allows(t.dtype) {
                    return Err(call.error(format!("input '{}' is {}; {} takes {} there", input.name, t.dtype, self.name, input.accepts.describe())));
                }
            }
        }
        if let Some(extra) = inputs.keys().find(|k| !self.inputs.iter().any(|i| i.name == k.as_str())) {
            let known: Vec<&str> = self.inputs.iter().map(|i| i.name).collect();
            return Err(call.error(format!("input '{extra}' is not an input of {} (its inputs: {})", self.name, known.join(", "))));
        }
        // An implementation that computed every stage regardless: keep what
        // was asked for (the check below then holds it to exactly that).
        let keep = |s: Stages| Stages(s.0.into_iter().filter(|(name, _)| wanted.contains(name)).collect());
        let stages = match implementation {
            Implementation::Fast => keep((self.fast)(&call)?),
            Implementation::Reference => self.narrow(&call, keep((self.reference)(&call)?)),
            Implementation::ReferenceWide => keep((self.reference)(&call)?),
        };
        self.check_stages(&call, &stages, implementation)?;
        Ok(stages)
    }

    /// Round wide (F64) stages to their declared F32 dtype — the reference's
    /// single f64 → f32 rounding (RNE, see `numeric::round::f64_to_f32`).
    fn narrow(&self, call: &Call, stages: Stages) -> Stages {
        Stages(
            stages
                .0
                .into_iter()
                .map(|(name, t)| {
                    let declared = self.stage(&name).and_then(|s| s.dtype.resolve(call));
                    if t.dtype == DType::F64 && declared == Some(DType::F32) {
                        let v: Vec<f32> = t.to_f64_vec().into_iter().map(crate::numeric::round::f64_to_f32).collect();
                        (name, Tensor::from_f32(t.shape, &v))
                    } else {
                        (name, t)
                    }
                })
                .collect(),
        )
    }

    /// An implementation that drifts from its declaration is a bug in parity,
    /// reported as an error naming the stage rather than written to a bundle.
    fn check_stages(&self, call: &Call, stages: &Stages, implementation: Implementation) -> Result<()> {
        let produced: Vec<&str> = stages.names().collect();
        let declared: Vec<&str> = self.stages.iter().map(|s| s.name).filter(|n| call.wanted.contains(n)).collect();
        if produced != declared {
            return Err(call.error(format!(
                "the {} implementation produced stages [{}] but {} declares [{}]",
                implementation.name(),
                produced.join(", "),
                self.name,
                declared.join(", ")
            )));
        }
        for ((name, t), st) in stages.0.iter().zip(self.stages.iter().filter(|s| call.wanted.contains(s.name))) {
            let want = st.dtype.resolve(call);
            let wide_ok = implementation == Implementation::ReferenceWide && t.dtype == DType::F64 && want == Some(DType::F32);
            if let (Some(want), false) = (want, wide_ok) {
                if t.dtype != want {
                    return Err(call.error(format!("stage '{name}' came out as {} but is declared {want}", t.dtype)));
                }
            }
        }
        Ok(())
    }

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
    /// Whether the caller keeps `stage`: an implementation may skip the
    /// work of one it does not (and must still compute what wanted ones
    /// depend on, bit for bit as when every stage is wanted).
    pub fn wants(&self, stage: &str) -> bool {
        self.wanted.contains(stage)
    }
}
