//! `Operation::run_for`: a caller that keeps only some stages (a plan that
//! writes one) gets exactly those, in declared order, each the same bits as
//! when every stage is wanted — whatever the operation skips to get there.

mod proptest_support;
use parity::ops::{Implementation, Operation, Stages, Wanted, REGISTRY};
use proptest::prelude::*;

/// Small inputs for `op`, from its own sampler: `a`, `b` the matrix sides,
/// `c` a third size (k, r or n) no larger than either, `t` a task count.
fn small_dims(op: &Operation, a: usize, b: usize, c: usize, t: usize) -> Vec<usize> {
    match op.dims {
        d if d.starts_with("[T") => vec![t, a, b],
        d if d.matches(',').count() == 2 => vec![a, b, c.min(a).min(b)],
        _ => vec![a, b],
    }
}

fn same_bits(op: &str, stage: &str, wanted: &str, all: &Stages, some: &Stages) -> Result<(), TestCaseError> {
    let (l, r) = (all.get(stage).unwrap(), some.get(stage).unwrap());
    prop_assert_eq!(l.dtype, r.dtype, "{} {} ({}): dtype", op, stage, wanted);
    prop_assert_eq!(&l.shape, &r.shape, "{} {} ({}): shape", op, stage, wanted);
    prop_assert!(l.data == r.data, "{} {} with only {} wanted: different bits than with every stage wanted", op, stage, wanted);
    Ok(())
}

proptest! {
    #![proptest_config(proptest_support::cases(12))]

    #[test]
    fn a_wanted_stage_is_the_same_bits_whatever_else_is_wanted(
        a in 1usize..10, b in 1usize..10, c in 1usize..10, t in 1usize..4, seed in any::<u64>(), pick in any::<u64>(),
    ) {
        for op in REGISTRY {
            let sample = (op.sample)(seed, &small_dims(op, a, b, c, t));
            for imp in [Implementation::Fast, Implementation::Reference] {
                let all = match op.run(imp, "w", &sample.inputs, &sample.params) {
                    Ok(s) => s,
                    Err(e) => return Err(TestCaseError::fail(format!("{} {}: {e}", op.name, imp.name()))),
                };
                // Each stage alone …
                for stage in op.stages {
                    let some = op.run_for(Wanted::Only(&[stage.name]), imp, "w", &sample.inputs, &sample.params)
                        .map_err(|e| TestCaseError::fail(format!("{} {} only {}: {e}", op.name, imp.name(), stage.name)))?;
                    prop_assert_eq!(some.names().collect::<Vec<_>>(), vec![stage.name]);
                    same_bits(op.name, stage.name, stage.name, &all, &some)?;
                }
                // … and a random subset, which comes back in declared order.
                let subset: Vec<&str> = op.stages.iter().enumerate().filter(|(i, _)| pick >> (i % 64) & 1 == 1).map(|(_, s)| s.name).collect();
                let some = op.run_for(Wanted::Only(&subset), imp, "w", &sample.inputs, &sample.params)
                    .map_err(|e| TestCaseError::fail(format!("{} {} only {subset:?}: {e}", op.name, imp.name())))?;
                prop_assert_eq!(some.names().collect::<Vec<_>>(), subset.clone());
                for stage in &subset {
                    same_bits(op.name, stage, &subset.join(","), &all, &some)?;
                }
            }
        }
    }
}

#[test]
fn a_stage_the_operation_does_not_declare_is_refused_before_any_work() {
    let op = parity::ops::find("svf_apply").unwrap();
    let sample = (op.sample)(1, &[4, 6, 3]);
    let err = op.run_for(Wanted::Only(&["final_bf16", "final_fp8"]), Implementation::Fast, "w", &sample.inputs, &sample.params).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("'final_fp8' is not a stage of svf_apply") && msg.contains("final_bf16"), "{msg}");
    assert!(msg.starts_with("svf_apply: tensor 'w'"), "{msg}");
}

#[test]
fn nothing_wanted_gives_no_stages() {
    for op in REGISTRY {
        let sample = (op.sample)(3, &small_dims(op, 4, 5, 3, 2));
        let none = op.run_for(Wanted::Only(&[]), Implementation::Fast, "w", &sample.inputs, &sample.params).unwrap();
        assert!(none.is_empty(), "{}: {:?}", op.name, none.names().collect::<Vec<_>>());
    }
}

/// svf_apply computes a transposed final directly (v · u_scaledᵀ) when no
/// untransposed stage is kept: the same bits as transposing the product,
/// on shapes that are not multiples of the GEMM's tiles and with k over
/// several of its k blocks (matrixmultiply's are 256 or fewer deep).
#[test]
fn svf_s_final_computed_in_the_target_layout_is_the_transpose_bit_for_bit() {
    let op = parity::ops::find("svf_apply").unwrap();
    for (m, n, k, seed) in [(37, 53, 700, 1), (130, 70, 513, 2), (9, 300, 1030, 3), (257, 31, 64, 4)] {
        let sample = (op.sample)(seed, &[m, n, k]);
        assert_eq!(sample.params["final_shape"], serde_json::json!([n, m]), "the sample asks for the transposed layout");
        let all = op.run(Implementation::Fast, "w", &sample.inputs, &sample.params).unwrap();
        for wanted in [&["final_f32"][..], &["final_bf16"], &["final_f32", "final_bf16"], &["u_scaled", "final_bf16"], &["zero_source_f32", "final_f32"]] {
            let some = op.run_for(Wanted::Only(wanted), Implementation::Fast, "w", &sample.inputs, &sample.params).unwrap();
            for stage in wanted {
                let (a, b) = (all.get(stage).unwrap(), some.get(stage).unwrap());
                assert!(a.shape == b.shape && a.data == b.data, "[{m}, {n}, {k}] {stage} with only {wanted:?} wanted differs");
            }
        }
    }
}
