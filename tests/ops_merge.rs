//! Promises of the merge operations (task_arithmetic, ties): the formulas on
//! hand-computed examples, TIES's tie-breaking and vote rules, the two ways
//! the fast kernel may legitimately part from the reference (a ranking swap
//! below f32 precision, a vote that cancels below it), refusals, and fast vs
//! reference within the default profile on random inputs.

mod proptest_support;
mod ops_support;

use ops_support::*;
use parity::compare::compare_stage;
use parity::format::dtype::DType;
use parity::ops::task_arithmetic::TASK_ARITHMETIC;
use parity::ops::ties::{kept_count, TIES};
use parity::ops::{Inputs, Operation, Stages};
use parity::format::tensor::Tensor;
use proptest::prelude::*;
use serde_json::json;

fn merge_inputs(base: &[f32], tasks: &[&[f32]]) -> Inputs {
    let n = base.len();
    let flat: Vec<f32> = tasks.iter().flat_map(|t| t.iter().copied()).collect();
    inputs(vec![("base", f32t(&[n], base)), ("tasks", f32t(&[tasks.len(), n], &flat))])
}

fn run(op: &'static Operation, ins: &Inputs, p: serde_json::Value) -> [Stages; 2] {
    let out = ok_both(op, ins, &params(p));
    for o in &out {
        assert_declared(op, ins, o);
    }
    out
}

fn stage_passes(op: &Operation, stage: &str, left: &Stages, right: &Stages) -> bool {
    let tol = op.stage(stage).unwrap().tolerance;
    compare_stage(left.get(stage).unwrap().view(), right.get(stage).unwrap().view(), &tol, 0).passed()
}

// ---------------------------------------------------------------- task arithmetic

#[test]
fn task_arithmetic_adds_the_weighted_task_vectors_to_the_base() {
    let ins = merge_inputs(&[1.0, 2.0], &[&[1.5, 2.0], &[0.0, 4.0]]);
    for out in run(&TASK_ARITHMETIC, &ins, json!({"weights": [2.0, 0.5]})) {
        assert_eq!(out.get("task_vectors").unwrap().shape, [2, 2]);
        assert_eq!(f32s(&out, "task_vectors"), [0.5, 0.0, -1.0, 2.0]);
        assert_eq!(f32s(&out, "merged_delta"), [0.5, 1.0]); // 2·0.5 + 0.5·(−1), 2·0 + 0.5·2
        assert_eq!(f32s(&out, "output"), [1.5, 3.0]);
    }
}

#[test]
fn task_vectors_agree_bit_for_bit_even_when_the_difference_is_not_an_f32() {
    // 1 − 2⁻³⁰ needs 30 bits: f32 and the reference round the same exact value once.
    let ins = merge_inputs(&[2f32.powi(-30), -3.3], &[&[1.0, 1e-3]]);
    let [fast, reference] = run(&TASK_ARITHMETIC, &ins, json!({"weights": [1.0]}));
    assert_eq!(fast.get("task_vectors"), reference.get("task_vectors"));
}

#[test]
fn with_no_tasks_the_merge_is_the_base() {
    let ins = inputs(vec![("base", f32t(&[2], &[1.0, -2.0])), ("tasks", f32t(&[0, 2], &[]))]);
    for out in run(&TASK_ARITHMETIC, &ins, json!({"weights": []})) {
        assert_eq!(f32s(&out, "merged_delta"), [0.0, 0.0]);
        assert_eq!(f32s(&out, "output"), [1.0, -2.0]);
    }
}

#[test]
fn merges_accept_bf16_weights_and_decode_them_exactly() {
    let base = typed(DType::BF16, &[2], &[1.0, -0.5]);
    let tasks = typed(DType::BF16, &[1, 2], &[1.0078125, -0.5]);
    let ins = inputs(vec![("base", base), ("tasks", tasks)]);
    for out in run(&TASK_ARITHMETIC, &ins, json!({"weights": [1.0]})) {
        assert_eq!(f32s(&out, "task_vectors"), [0.0078125, 0.0]);
    }
}

#[test]
fn merges_refuse_mismatched_shapes_and_bad_weights() {
    let ins = merge_inputs(&[1.0, 2.0], &[&[1.0, 2.0]]);
    refused(&TASK_ARITHMETIC, &ins, &params(json!({"weights": [1.0, 2.0]})), "list of 1 numbers");
    refused(&TASK_ARITHMETIC, &ins, &params(json!({"weights": ["1"]})), "'weights': must be a list of numbers");
    refused(&TASK_ARITHMETIC, &ins, &params(json!({})), "parameter 'weights': required but missing");
    let wrong = inputs(vec![("base", f32t(&[2], &[1.0, 2.0])), ("tasks", f32t(&[2], &[1.0, 2.0]))]);
    refused(&TASK_ARITHMETIC, &wrong, &params(json!({"weights": [1.0, 1.0]})), "expected [T, 2]");
    refused(&TIES, &wrong, &params(json!({"density": 0.5})), "expected [T, 2]");
    let ints = inputs(vec![("base", typed(DType::I64, &[1], &[1.0])), ("tasks", f32t(&[1, 1], &[1.0]))]);
    refused(&TASK_ARITHMETIC, &ints, &params(json!({"weights": [1.0]})), "input 'base' is I64; task_arithmetic takes a float dtype");
}

// ---------------------------------------------------------------- ties

#[test]
fn ties_trims_elects_and_averages_the_agreeing_values() {
    let ins = merge_inputs(
        &[0.0; 4],
        &[&[3.0, -1.0, 0.5, 2.0], &[-2.0, 1.0, 4.0, -1.0], &[1.0, -5.0, -0.5, 0.25]],
    );
    for out in run(&TIES, &ins, json!({"density": 0.5, "lambda": 0.5})) {
        // k = 2 per task: the two largest |τ| of each.
        assert_eq!(f32s(&out, "trimmed"), [3.0, 0.0, 0.0, 2.0, -2.0, 0.0, 4.0, 0.0, 1.0, -5.0, 0.0, 0.0]);
        // Sums 2, −5, 4, 2.
        assert_eq!(f32s(&out, "elected_sign"), [1.0, -1.0, 1.0, 1.0]);
        // Element 0: the disjoint mean of 3 and 1 (the −2 disagrees) is 2.
        assert_eq!(f32s(&out, "merged_delta"), [2.0, -5.0, 4.0, 2.0]);
        assert_eq!(f32s(&out, "output"), [1.0, -2.5, 2.0, 1.0]);
    }
}

#[test]
fn equal_magnitudes_are_kept_in_index_order() {
    // Three entries of magnitude 1, two places: indices 0 and 1 win.
    let ins = merge_inputs(&[0.0; 4], &[&[1.0, -1.0, 1.0, 0.5]]);
    for out in run(&TIES, &ins, json!({"density": 0.5})) {
        assert_eq!(f32s(&out, "trimmed"), [1.0, -1.0, 0.0, 0.0]);
    }
}

#[test]
fn a_sum_that_cancels_elects_no_sign_and_merges_nothing() {
    let ins = merge_inputs(&[0.25], &[&[1.25], &[-0.75]]);
    for out in run(&TIES, &ins, json!({"density": 1.0, "lambda": 3.0})) {
        assert_eq!(f32s(&out, "elected_sign"), [0.0]);
        assert_eq!(f32s(&out, "merged_delta"), [0.0]);
        assert_eq!(f32s(&out, "output"), [0.25]);
    }
}

#[test]
fn the_kept_count_is_the_ceiling_of_density_times_n_for_the_exact_density() {
    // 0.3 · 10 is 3.0000000000000004 in f64, but the f64 nearest 0.3 is below 0.3.
    assert_eq!(kept_count(0.3, 10), 3);
    assert_eq!(kept_count(0.7, 10), 7); // 0.7 · 10 = 7.000000000000001 in f64
    assert_eq!(kept_count(0.25, 10), 3);
    assert_eq!(kept_count(1e-12, 10), 1);
    assert_eq!(kept_count(1.0, 10), 10);
    assert_eq!(kept_count(0.5, 0), 0);
    let tau: Vec<f32> = (1..=10).map(|i| i as f32).collect();
    for out in run(&TIES, &merge_inputs(&[0.0; 10], &[&tau]), json!({"density": 0.3})) {
        assert_eq!(f32s(&out, "trimmed").iter().filter(|v| **v != 0.0).count(), 3);
    }
}

#[test]
fn nan_ranks_first_and_propagates_to_the_merge() {
    let ins = merge_inputs(&[0.0; 3], &[&[f32::NAN, 5.0, 1.0]]);
    for out in run(&TIES, &ins, json!({"density": 0.3})) {
        let trimmed = f32s(&out, "trimmed");
        assert!(trimmed[0].is_nan() && trimmed[1..] == [0.0, 0.0], "{trimmed:?}");
        assert!(f32s(&out, "elected_sign")[0].is_nan());
        assert!(f32s(&out, "output")[0].is_nan());
        assert_eq!(f32s(&out, "output")[1..], [0.0, 0.0]);
    }
}

#[test]
fn ties_refuses_a_density_outside_zero_to_one() {
    let ins = merge_inputs(&[0.0], &[&[1.0]]);
    for d in [json!(0.0), json!(-0.5), json!(1.5)] {
        refused(&TIES, &ins, &params(json!({ "density": d })), "must be in (0, 1]");
    }
    refused(&TIES, &ins, &params(json!({})), "parameter 'density': required but missing");
    refused(&TIES, &ins, &params(json!({"density": 0.5, "lambda": "1"})), "'lambda': must be a number");
}

#[test]
fn the_ranking_can_swap_entries_whose_magnitudes_differ_only_below_f32_precision() {
    // τ₁ = 1 − (−2⁻³⁰) = 1 + 2⁻³⁰ exactly, which f32 rounds to 1 = τ₀. With
    // one place to fill, the fast kernel sees a tie and keeps index 0; the
    // reference sees τ₁ larger and keeps index 1. Both are right about what
    // they see; the stage's limit allows such swaps only as a small fraction
    // of a large tensor, so on two elements the gate fails, as it should.
    let ins = merge_inputs(&[0.0, -(2f32.powi(-30))], &[&[1.0, 1.0]]);
    let [fast, reference] = run(&TIES, &ins, json!({"density": 0.5}));
    assert_eq!(f32s(&fast, "trimmed"), [1.0, 0.0]);
    assert_eq!(f32s(&reference, "trimmed"), [0.0, 1.0]);
    assert!(stage_passes(&TIES, "task_vectors", &reference, &fast));
    assert!(!stage_passes(&TIES, "trimmed", &reference, &fast));
}

#[test]
fn a_vote_that_cancels_below_f32_precision_can_flip() {
    // (1 + 2⁻²⁵) − 1 is 0 in f32 (1 + 2⁻²⁵ rounds to 1), 2⁻²⁵ exactly.
    let ins = merge_inputs(&[0.0], &[&[1.0], &[2f32.powi(-25)], &[-1.0]]);
    let [fast, reference] = run(&TIES, &ins, json!({"density": 1.0}));
    assert_eq!(f32s(&fast, "elected_sign"), [0.0]);
    assert_eq!(f32s(&reference, "elected_sign"), [1.0]);
    assert_eq!(f32s(&fast, "merged_delta"), [0.0]);
    assert_eq!(f32s(&reference, "merged_delta"), [0.5 + 2f32.powi(-26)]);
    assert!(!stage_passes(&TIES, "elected_sign", &reference, &fast), "one element of one: above the allowed fraction");
}

#[test]
fn the_flip_allowance_is_a_fraction_of_the_elements() {
    // One flipped vote among 2·10⁵ elements (5e-6 < 1e-5) passes every
    // stage; eleven (5.5e-5) do not.
    let n = 200_000;
    let base: Vec<f32> = vec![0.0; n];
    let mut t0 = vec![0.5f32; n];
    let mut t1 = vec![0.25f32; n];
    let mut t2 = vec![-0.5f32; n];
    (t0[7], t1[7], t2[7]) = (1.0, 2f32.powi(-25), -1.0);
    let ins = merge_inputs(&base, &[&t0, &t1, &t2]);
    let [fast, reference] = run(&TIES, &ins, json!({"density": 1.0}));
    for stage in ["trimmed", "elected_sign", "merged_delta", "output"] {
        assert!(stage_passes(&TIES, stage, &reference, &fast), "{stage}");
    }
    for i in 0..10 {
        (t0[i], t1[i], t2[i]) = (1.0, 2f32.powi(-25), -1.0);
    }
    let ins = merge_inputs(&base, &[&t0, &t1, &t2]);
    let [fast, reference] = run(&TIES, &ins, json!({"density": 1.0}));
    assert!(!stage_passes(&TIES, "elected_sign", &reference, &fast), "11 flips in 2·10⁵ (5.5e-5) exceed 1e-5");
}

// ---------------------------------------------------------------- fast vs reference

/// T tasks over a [2, n] base with weight-scale values; on `grid`, all values
/// are multiples of 2⁻⁸, so τ is exact and many magnitudes tie.
fn merge_case(grid: bool) -> impl Strategy<Value = Inputs> {
    (1usize..=4, 1usize..=6, any::<u64>()).prop_map(move |(t, n, seed)| {
        let mut rng = parity::numeric::rng::SplitMix64::new(seed);
        let mut draw = |count: usize| -> Vec<f32> {
            (0..count)
                .map(|_| {
                    let v = rng.uniform() * 2.0 - 1.0;
                    (if grid { (v * 256.0).round() / 256.0 } else { v }) as f32
                })
                .collect()
        };
        let base = draw(2 * n);
        let tasks = draw(t * 2 * n);
        inputs(vec![("base", Tensor::from_f32(vec![2, n], &base)), ("tasks", Tensor::from_f32(vec![t, 2, n], &tasks))])
    })
}

proptest! {
    #![proptest_config(proptest_support::cases(96))]

    #[test]
    fn fast_task_arithmetic_passes_the_default_profile(ins in merge_case(false), seed: u64) {
        let t = ins["tasks"].shape[0];
        let mut rng = parity::numeric::rng::SplitMix64::new(seed);
        let weights: Vec<f64> = (0..t).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        let [fast, reference] = ok_both(&TASK_ARITHMETIC, &ins, &params(json!({ "weights": weights })));
        within_default_profile(&TASK_ARITHMETIC, &reference, &fast).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fast_ties_passes_the_default_profile(ins in merge_case(false), density in 0.05f64..=1.0, lambda in -2.0f64..2.0) {
        let [fast, reference] = ok_both(&TIES, &ins, &params(json!({ "density": density, "lambda": lambda })));
        within_default_profile(&TIES, &reference, &fast).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn with_exact_task_vectors_fast_ties_trims_and_votes_exactly_as_the_reference(ins in merge_case(true), density in 0.05f64..=1.0) {
        // On the grid every τ and every partial sum is an f32: the ranking
        // (with its many exact ties) and the votes must match bit for bit.
        let [fast, reference] = ok_both(&TIES, &ins, &params(json!({ "density": density })));
        for stage in ["task_vectors", "trimmed", "elected_sign"] {
            prop_assert_eq!(fast.get(stage), reference.get(stage), "{}", stage);
        }
        within_default_profile(&TIES, &reference, &fast).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn the_kept_count_matches_exact_rational_arithmetic(density in 1e-6f64..=1.0, n in 0usize..100_000) {
        // density = m·2^e exactly (m < 2⁵³, e < 0): ⌈m·n / 2^−e⌉ in integers.
        let bits = density.to_bits();
        let exp = ((bits >> 52) & 0x7FF) as i32 - 1075;
        let m = ((bits & ((1u64 << 52) - 1)) | (1u64 << 52)) as u128;
        let num = m * n as u128;
        let den = 1u128 << (-exp) as u32;
        let exact = num.div_ceil(den) as usize;
        prop_assert_eq!(kept_count(density, n), exact.min(n));
    }
}

#[test]
fn the_samples_run_and_agree_within_the_default_profile() {
    for op in [&TASK_ARITHMETIC, &TIES] {
        let s = (op.sample)(5, &[3, 16, 24]);
        let [fast, reference] = ok_both(op, &s.inputs, &s.params);
        within_default_profile(op, &reference, &fast).unwrap_or_else(|e| panic!("{e}"));
    }
}
