//! Shared helpers for the operation-family tests (`ops_layout`,
//! `ops_elementwise`, `ops_merge`): call both implementations the way
//! `replay` does, and hold fast against reference with the op's own profile.
#![allow(dead_code)]

use parity::compare::compare_stage;
use parity::format::dtype::DType;
use parity::ops::{Implementation, Inputs, Operation, Params, Stages};
use parity::format::tensor::Tensor;

pub fn params(v: serde_json::Value) -> Params {
    v.as_object().expect("params are a JSON object").clone()
}

pub fn inputs(pairs: Vec<(&str, Tensor)>) -> Inputs {
    pairs.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

pub fn f32t(shape: &[usize], values: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), values)
}

/// The fast stages and the reference's, narrowed to their declared dtypes
/// (what `parity replay --impl fast|reference` writes).
pub fn both(op: &'static Operation, inputs: &Inputs, params: &Params) -> [parity::Result<Stages>; 2] {
    [op.run(Implementation::Fast, "w", inputs, params), op.run(Implementation::Reference, "w", inputs, params)]
}

/// Both implementations, which must succeed.
pub fn ok_both(op: &'static Operation, inputs: &Inputs, params: &Params) -> [Stages; 2] {
    both(op, inputs, params).map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", op.name)))
}

/// Both implementations must refuse, with a message containing `needle`.
pub fn refused(op: &'static Operation, inputs: &Inputs, params: &Params, needle: &str) {
    for r in both(op, inputs, params) {
        let msg = r.expect_err("must be refused").to_string();
        assert!(msg.contains(needle), "{msg:?} does not say {needle:?}");
        assert!(msg.starts_with(&format!("{}: tensor 'w'", op.name)), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

pub fn values(stages: &Stages, name: &str) -> Vec<f64> {
    stages.get(name).unwrap_or_else(|| panic!("no stage {name}")).to_f64_vec()
}

pub fn f32s(stages: &Stages, name: &str) -> Vec<f32> {
    stages.get(name).unwrap_or_else(|| panic!("no stage {name}")).to_f32_vec()
}

/// Every stage of `right` passes the op's default tolerance against `left`;
/// the first failure is returned as text.
pub fn within_default_profile(op: &Operation, left: &Stages, right: &Stages) -> Result<(), String> {
    for stage in op.stages {
        let (l, r) = (left.get(stage.name).unwrap(), right.get(stage.name).unwrap());
        let result = compare_stage(l.view(), r.view(), &stage.tolerance, 3);
        if !result.passed() {
            return Err(format!("{} stage {}: {:?}", op.name, stage.name, result.failures));
        }
    }
    Ok(())
}

/// Stage names in pipeline order, and each stage's dtype as declared
/// (`FromInput` resolved against the inputs).
pub fn assert_declared(op: &Operation, inputs: &Inputs, stages: &Stages) {
    let names: Vec<&str> = stages.0.iter().map(|(n, _)| n.as_str()).collect();
    let declared: Vec<&str> = op.stages.iter().map(|s| s.name).collect();
    assert_eq!(names, declared, "{}", op.name);
    for (stage, (_, t)) in op.stages.iter().zip(&stages.0) {
        let want = match stage.dtype {
            parity::ops::StageDtype::Fixed(d) => d,
            parity::ops::StageDtype::FromInput(i) => inputs[i].dtype,
            parity::ops::StageDtype::FromParam(_) => continue,
        };
        assert_eq!(t.dtype, want, "{} stage {}", op.name, stage.name);
    }
}

/// A tensor of `dtype` holding `values` (each exactly representable).
pub fn typed(dtype: DType, shape: &[usize], values: &[f64]) -> Tensor {
    let shape = shape.to_vec();
    match dtype {
        DType::F64 => Tensor::from_f64(shape, values),
        DType::F32 => Tensor::from_f32(shape, &values.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DType::BF16 => Tensor::from_u16_bits(dtype, shape, &values.iter().map(|&v| half::bf16::from_f64(v).to_bits()).collect::<Vec<_>>()),
        DType::F16 => Tensor::from_u16_bits(dtype, shape, &values.iter().map(|&v| half::f16::from_f64(v).to_bits()).collect::<Vec<_>>()),
        DType::U8 => Tensor::from_bytes(dtype, shape, values.iter().map(|&v| v as u8).collect()),
        DType::I64 => Tensor::from_i64(shape, &values.iter().map(|&v| v as i64).collect::<Vec<_>>()),
        d => panic!("typed(): {d} not needed by these tests"),
    }
}
