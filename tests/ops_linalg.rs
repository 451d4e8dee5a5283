//! `matmul`, `svd`, `phlora`, `lowrank_reconstruct`: the formulas on
//! hand-computed matrices, the SVD's invariants and sign convention, errors,
//! and fast vs reference through the comparer's gate.

mod proptest_support;
use parity::compare::compare_stage;
use parity::format::dtype::DType;
use parity::numeric::rng::SplitMix64;
use parity::ops::{lowrank_reconstruct::LOWRANK_RECONSTRUCT, matmul::MATMUL, phlora::PHLORA, svd::SVD};
use parity::ops::{Implementation, Inputs, Operation, Params, Stages};
use parity::format::tensor::Tensor;
use proptest::prelude::*;
use serde_json::{json, Value};

fn run(op: &'static Operation, inputs: &[(&str, Tensor)], p: Value) -> [parity::Result<Stages>; 2] {
    let inputs: Inputs = inputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let params: Params = p.as_object().unwrap().clone();
    [op.run(Implementation::Fast, "w", &inputs, &params), op.run(Implementation::Reference, "w", &inputs, &params)]
}

/// Both implementations' stages (fast, reference narrowed to f32).
fn ok(op: &'static Operation, inputs: &[(&str, Tensor)], p: Value) -> [Stages; 2] {
    run(op, inputs, p).map(|r| r.unwrap())
}

/// The reference with its stages kept in f64.
fn wide(op: &'static Operation, inputs: &[(&str, Tensor)], p: Value) -> Stages {
    let inputs: Inputs = inputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let params: Params = p.as_object().unwrap().clone();
    op.run(Implementation::ReferenceWide, "w", &inputs, &params).unwrap()
}

fn m(rows: usize, cols: usize, v: &[f32]) -> Tensor {
    Tensor::from_f32(vec![rows, cols], v)
}

fn vals(st: &Stages, name: &str) -> Vec<f64> {
    st.get(name).unwrap().to_f64_vec()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

fn err(r: &parity::Result<Stages>) -> String {
    r.as_ref().unwrap_err().to_string()
}

/// Every required stage of `op` passes its default tolerance, fast vs reference.
fn gate_passes(op: &Operation, fast: &Stages, reference: &Stages) -> Result<(), String> {
    for stage in op.stages.iter().filter(|s| s.tolerance.required) {
        let r = compare_stage(reference.get(stage.name).unwrap().view(), fast.get(stage.name).unwrap().view(), &stage.tolerance, 0);
        if !r.passed() {
            return Err(format!("{}: {:?}", stage.name, r.failures));
        }
    }
    Ok(())
}

/// A random orthonormal [n, k] (Gram–Schmidt on normal vectors, in f64).
fn orthonormal(rng: &mut SplitMix64, n: usize, k: usize) -> Vec<f64> {
    let mut cols: Vec<Vec<f64>> = Vec::new();
    while cols.len() < k {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        for c in &cols {
            let d: f64 = v.iter().zip(c).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(c).for_each(|(a, b)| *a -= d * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            cols.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    (0..n * k).map(|i| cols[i % k][i / k]).collect()
}

/// An f32 [rows, cols] matrix with the given singular values.
fn with_singular_values(seed: u64, rows: usize, cols: usize, s: &[f64]) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let k = s.len();
    let (u, v) = (orthonormal(&mut rng, rows, k), orthonormal(&mut rng, cols, k));
    let x: Vec<f32> = (0..rows * cols)
        .map(|idx| (0..k).map(|p| u[(idx / cols) * k + p] * s[p] * v[(idx % cols) * k + p]).sum::<f64>() as f32)
        .collect();
    m(rows, cols, &x)
}

// ---------------------------------------------------------------- matmul

#[test]
fn matmul_is_a_times_b() {
    let a = m(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = m(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    for st in ok(&MATMUL, &[("a", a), ("b", b)], json!({})) {
        assert_eq!(st.get("output").unwrap().shape, vec![2, 2]);
        assert_eq!(vals(&st, "output"), vec![4.0, 5.0, 10.0, 11.0]);
    }
}

#[test]
fn matmul_with_an_empty_inner_dimension_is_zero_and_empty_outer_ones_are_empty() {
    for st in ok(&MATMUL, &[("a", m(2, 0, &[])), ("b", m(0, 3, &[]))], json!({})) {
        assert_eq!(vals(&st, "output"), vec![0.0; 6]);
    }
    for st in ok(&MATMUL, &[("a", m(0, 4, &[])), ("b", m(4, 3, &[0.0; 12]))], json!({})) {
        assert_eq!(st.get("output").unwrap().shape, vec![0, 3]);
    }
}

#[test]
fn matmul_propagates_nan_and_inf_as_ieee_does() {
    // NaN·0 and inf·0 are NaN: the row is NaN, as in torch.
    let a = m(2, 2, &[f32::NAN, 1.0, f32::INFINITY, 1.0]);
    let b = m(2, 1, &[0.0, 1.0]);
    for st in ok(&MATMUL, &[("a", a), ("b", b)], json!({})) {
        assert!(vals(&st, "output").iter().all(|v| v.is_nan()));
    }
}

#[test]
fn matmul_reads_bf16_and_f64_inputs_exactly() {
    let a = Tensor::from_u16_bits(DType::BF16, vec![1, 2], &[0x3FC0, 0x4000]); // 1.5, 2
    let b = Tensor::from_f64(vec![2, 1], &[2.0, 0.25]);
    for st in ok(&MATMUL, &[("a", a), ("b", b)], json!({})) {
        assert_eq!(vals(&st, "output"), vec![3.5]);
    }
}

#[test]
fn matmul_errors_name_the_shapes() {
    let msg = err(&run(&MATMUL, &[("a", m(2, 3, &[0.0; 6])), ("b", m(2, 3, &[0.0; 6]))], json!({}))[0]);
    assert!(msg.contains("a is [2, 3] but b is [2, 3]"), "{msg}");
    let msg = err(&run(&MATMUL, &[("a", Tensor::from_f32(vec![3], &[0.0; 3])), ("b", m(3, 1, &[0.0; 3]))], json!({}))[1]);
    assert!(msg.contains("must be 2-D"), "{msg}");
    let msg = err(&run(&MATMUL, &[("a", Tensor::from_i64(vec![1, 1], &[1])), ("b", m(1, 1, &[0.0]))], json!({}))[0]);
    assert!(msg.contains("input 'a' is I64"), "{msg}");
}

// ---------------------------------------------------------------- svd

#[test]
fn svd_of_a_scaled_permutation_is_read_off_by_hand() {
    // x = [[3, 0], [0, -2], [0, 0]]: s = [3, 2]; v = I (largest entries
    // positive), so u's second column carries the minus sign.
    let x = m(3, 2, &[3.0, 0.0, 0.0, -2.0, 0.0, 0.0]);
    for st in ok(&SVD, &[("x", x)], json!({})) {
        assert!(close(&vals(&st, "s"), &[3.0, 2.0], 1e-6));
        assert!(close(&vals(&st, "v"), &[1.0, 0.0, 0.0, 1.0], 1e-6));
        assert!(close(&vals(&st, "u"), &[1.0, 0.0, 0.0, -1.0, 0.0, 0.0], 1e-6));
        assert!(close(&vals(&st, "reconstruction"), &[3.0, 0.0, 0.0, -2.0, 0.0, 0.0], 1e-6));
        assert_eq!(st.get("u").unwrap().shape, vec![3, 2]);
        assert_eq!(st.get("v").unwrap().shape, vec![2, 2]);
    }
}

#[test]
fn each_column_of_v_has_its_largest_magnitude_entry_positive() {
    // x = [[3, -4]]: s = 5 and v = ±[0.6, -0.8]; the largest entry (0.8) must be
    // positive, so v = [-0.6, 0.8] and u = [-1].
    for st in ok(&SVD, &[("x", m(1, 2, &[3.0, -4.0]))], json!({})) {
        assert!(close(&vals(&st, "s"), &[5.0], 1e-6));
        assert!(close(&vals(&st, "v"), &[-0.6, 0.8], 1e-6));
        assert!(close(&vals(&st, "u"), &[-1.0], 1e-6));
    }
}

#[test]
fn sign_canonicalisation_makes_the_vectors_of_x_and_minus_x_agree() {
    let x = with_singular_values(7, 6, 4, &[4.0, 2.5, 1.2, 0.4]);
    let neg = Tensor::from_f32(vec![6, 4], &x.to_f32_vec().iter().map(|v| -v).collect::<Vec<_>>());
    let [fx, rx] = ok(&SVD, &[("x", x.clone())], json!({}));
    let [fn_, rn] = ok(&SVD, &[("x", neg)], json!({}));
    for (a, b, tol) in [(&fx, &fn_, 1e-5), (&rx, &rn, 1e-12)] {
        assert!(close(&vals(a, "s"), &vals(b, "s"), tol));
        assert!(close(&vals(a, "v"), &vals(b, "v"), tol));
        let flipped: Vec<f64> = vals(b, "u").iter().map(|v| -v).collect();
        assert!(close(&vals(a, "u"), &flipped, tol));
    }
    // And a rerun is bit-identical.
    let [again, _] = ok(&SVD, &[("x", x)], json!({}));
    assert_eq!(again.0, fx.0);
}

#[test]
fn svd_invariants_hold_for_tall_and_wide_matrices() {
    for (rows, cols, seed) in [(9, 5, 1), (5, 9, 2), (7, 7, 3)] {
        let mut rng = SplitMix64::new(seed);
        let x = m(rows, cols, &rng.normal_vec_f32(rows * cols, 1.0));
        let xs = x.to_f64_vec();
        let [fast, _] = ok(&SVD, &[("x", x.clone())], json!({}));
        let reference = wide(&SVD, &[("x", x)], json!({}));
        for (st, tol) in [(&fast, 1e-5), (&reference, 1e-13)] {
            let s = vals(st, "s");
            assert_eq!(s.len(), rows.min(cols));
            assert!(s.windows(2).all(|w| w[0] >= w[1]) && s.iter().all(|&v| v >= 0.0), "{s:?}");
            assert!(close(&vals(st, "reconstruction"), &xs, tol * 10.0), "reconstruction ≈ x");
            assert!(vals(st, "orthogonality").iter().all(|&o| o <= tol), "{:?}", vals(st, "orthogonality"));
            // The orthogonality stage is what it says: recompute max|vᵀv − I|.
            let (v, r) = (vals(st, "v"), s.len());
            let mut worst = 0f64;
            for i in 0..r {
                for j in 0..r {
                    let g: f64 = (0..cols).map(|p| v[p * r + i] * v[p * r + j]).sum();
                    worst = worst.max((g - if i == j { 1.0 } else { 0.0 }).abs());
                }
            }
            assert!((worst - vals(st, "orthogonality")[1]).abs() <= tol);
        }
    }
}

#[test]
fn a_rank_deficient_matrix_has_zero_singular_values_and_still_orthonormal_vectors() {
    // An outer product: rank 1.
    let x: Vec<f32> = (0..12).map(|i| ((i / 3) as f32 + 1.0) * ((i % 3) as f32 - 0.5)).collect();
    for st in ok(&SVD, &[("x", m(4, 3, &x))], json!({})) {
        let s = vals(&st, "s");
        assert!(s[0] > 1.0 && s[1..].iter().all(|&v| (0.0..1e-5).contains(&v)), "{s:?}");
        assert!(vals(&st, "orthogonality").iter().all(|&o| o < 1e-5));
        assert!(close(&vals(&st, "reconstruction"), &x.iter().map(|&v| v as f64).collect::<Vec<_>>(), 1e-5));
    }
}

#[test]
fn svd_of_an_empty_matrix_is_empty() {
    for st in ok(&SVD, &[("x", m(0, 3, &[]))], json!({})) {
        let shapes: Vec<Vec<usize>> = st.0.iter().map(|(_, t)| t.shape.clone()).collect();
        assert_eq!(shapes, vec![vec![0], vec![0, 0], vec![3, 0], vec![0, 3], vec![2]]);
        assert_eq!(vals(&st, "orthogonality"), vec![0.0, 0.0]);
    }
}

#[test]
fn svd_refuses_nan_and_inf_and_non_matrices() {
    for bad in [m(2, 2, &[1.0, f32::NAN, 0.0, 1.0]), m(1, 2, &[f32::INFINITY, 0.0])] {
        for out in run(&SVD, &[("x", bad)], json!({})) {
            assert!(err(&out).contains("NaN/inf value(s): its SVD is undefined"), "{}", err(&out));
        }
    }
    assert!(err(&run(&SVD, &[("x", Tensor::from_f32(vec![4], &[0.0; 4]))], json!({}))[0]).contains("must be 2-D"));
}

#[test]
fn f64_svd_agrees_with_the_construction_to_1e_13() {
    // Singular values we chose, recovered by the f64 reference from the f32 matrix
    // (whose own rounding moves them by ~1e-7, hence compare with an f64 matrix's).
    let s = [5.0, 3.0, 1.5, 0.7, 0.2];
    let x = with_singular_values(11, 8, 5, &s);
    let st = wide(&SVD, &[("x", x)], json!({}));
    assert!(close(&vals(&st, "s"), &s, 1e-6));
    assert!(vals(&st, "orthogonality").iter().all(|&o| o < 1e-13));
}

// ---------------------------------------------------------------- phlora

#[test]
fn phlora_factors_are_the_square_roots_split_between_a_and_b() {
    // x = [[3, 0], [0, -2], [0, 0]], rank 1: s = [3], a = [[√3, 0]], b = [[√3], [0], [0]],
    // b @ a keeps the 3, residual = ‖(0, -2)‖ / ‖(3, -2)‖ = 2/√13.
    let x = m(3, 2, &[3.0, 0.0, 0.0, -2.0, 0.0, 0.0]);
    let r3 = 3f64.sqrt();
    for st in ok(&PHLORA, &[("x", x)], json!({"rank": 1})) {
        assert!(close(&vals(&st, "s"), &[3.0], 1e-6));
        assert!(close(&vals(&st, "a"), &[r3, 0.0], 1e-6));
        assert!(close(&vals(&st, "b"), &[r3, 0.0, 0.0], 1e-6));
        assert!(close(&vals(&st, "reconstruction"), &[3.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1e-6));
        assert!(close(&vals(&st, "residual"), &[2.0 / 13f64.sqrt()], 1e-6));
        assert_eq!(st.get("a").unwrap().shape, vec![1, 2]);
        assert_eq!(st.get("b").unwrap().shape, vec![3, 1]);
    }
}

#[test]
fn phlora_factors_are_svds_vectors_scaled_and_b_at_a_is_the_reconstruction() {
    let x = with_singular_values(5, 7, 6, &[3.0, 2.0, 1.0, 0.5, 0.25, 0.1]);
    let svd = wide(&SVD, &[("x", x.clone())], json!({}));
    let st = wide(&PHLORA, &[("x", x)], json!({"rank": 2}));
    let (s, v, u) = (vals(&svd, "s"), vals(&svd, "v"), vals(&svd, "u"));
    let (a, b) = (vals(&st, "a"), vals(&st, "b"));
    for i in 0..2 {
        for j in 0..6 {
            assert!((a[i * 6 + j] - s[i].sqrt() * v[j * 6 + i]).abs() < 1e-14);
        }
        for row in 0..7 {
            assert!((b[row * 2 + i] - u[row * 6 + i] * s[i].sqrt()).abs() < 1e-14);
        }
    }
    for (idx, got) in vals(&st, "reconstruction").iter().enumerate() {
        let (row, col) = (idx / 6, idx % 6);
        let want: f64 = (0..2).map(|p| b[row * 2 + p] * a[p * 6 + col]).sum();
        assert!((got - want).abs() < 1e-14);
    }
    // residual = √(Σ_{i>2} s_i² / Σ s_i²).
    let expected = (s[2..].iter().map(|v| v * v).sum::<f64>() / s.iter().map(|v| v * v).sum::<f64>()).sqrt();
    assert!((vals(&st, "residual")[0] - expected).abs() < 1e-12);
}

#[test]
fn full_rank_phlora_reconstructs_x() {
    let mut rng = SplitMix64::new(9);
    let x = m(5, 4, &rng.normal_vec_f32(20, 1.0));
    let xs = x.to_f64_vec();
    for st in ok(&PHLORA, &[("x", x)], json!({"rank": 4})) {
        assert!(close(&vals(&st, "reconstruction"), &xs, 1e-5));
        assert!(vals(&st, "residual")[0] < 1e-6);
    }
}

#[test]
fn phlora_of_a_zero_matrix_has_residual_nan_as_in_torch() {
    for st in ok(&PHLORA, &[("x", m(2, 2, &[0.0; 4]))], json!({"rank": 1})) {
        assert_eq!(vals(&st, "s"), vec![0.0]);
        assert!(vals(&st, "residual")[0].is_nan());
    }
}

#[test]
fn phlora_rank_must_be_between_1_and_min_m_n() {
    let x = m(3, 2, &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    for (p, needle) in [
        (json!({}), "'rank': required but missing"),
        (json!({"rank": 0}), "rank 0 is outside 1..=2"),
        (json!({"rank": 3}), "rank 3 is outside 1..=2"),
        (json!({"rank": 1.5}), "'rank': must be a whole number"),
        (json!({"rank": "2"}), "'rank': must be a whole number"),
    ] {
        for out in run(&PHLORA, &[("x", x.clone())], p.clone()) {
            assert!(err(&out).contains(needle), "{p}: {}", err(&out));
        }
    }
    assert!(err(&run(&PHLORA, &[("x", m(0, 2, &[]))], json!({"rank": 1}))[0]).contains("outside 1..=0"));
}

// ---------------------------------------------------------------- lowrank_reconstruct

#[test]
fn lowrank_delta_is_scale_times_b_at_a_and_output_adds_base() {
    let a = m(1, 2, &[1.0, 2.0]);
    let b = m(2, 1, &[3.0, 4.0]);
    let base = m(2, 2, &[1.0; 4]);
    for st in ok(&LOWRANK_RECONSTRUCT, &[("a", a.clone()), ("b", b.clone()), ("base", base)], json!({"scale": 0.5})) {
        assert_eq!(vals(&st, "delta"), vec![1.5, 3.0, 2.0, 4.0]);
        assert_eq!(vals(&st, "output"), vec![2.5, 4.0, 3.0, 5.0]);
    }
    // No base: output = delta; scale defaults to 1.
    for st in ok(&LOWRANK_RECONSTRUCT, &[("a", a), ("b", b)], json!({})) {
        assert_eq!(vals(&st, "delta"), vec![3.0, 6.0, 4.0, 8.0]);
        assert_eq!(vals(&st, "output"), vals(&st, "delta"));
    }
}

#[test]
fn the_fast_path_rounds_the_scale_to_f32_first_as_torch_does() {
    let [fast, reference] = ok(&LOWRANK_RECONSTRUCT, &[("a", m(1, 1, &[3.0])), ("b", m(1, 1, &[1.0]))], json!({"scale": 0.1}));
    assert_eq!(fast.get("delta").unwrap().to_f32_vec(), vec![0.1f32 * 3.0]);
    assert_eq!(reference.get("delta").unwrap().to_f32_vec(), vec![(0.1f64 * 3.0) as f32]);
}

#[test]
fn lowrank_errors_name_the_shapes_and_the_scale() {
    let (a, b) = (m(2, 3, &[0.0; 6]), m(4, 2, &[0.0; 8]));
    let msg = err(&run(&LOWRANK_RECONSTRUCT, &[("a", a.clone()), ("b", m(4, 3, &[0.0; 12]))], json!({}))[0]);
    assert!(msg.contains("b is [4, 3] but a is [2, 3]"), "{msg}");
    let msg = err(&run(&LOWRANK_RECONSTRUCT, &[("a", a.clone()), ("b", b.clone()), ("base", m(3, 4, &[0.0; 12]))], json!({}))[1]);
    assert!(msg.contains("base is [3, 4] but b @ a is [4, 3]"), "{msg}");
    let msg = err(&run(&LOWRANK_RECONSTRUCT, &[("a", a), ("b", b)], json!({"scale": "big"}))[0]);
    assert!(msg.contains("parameter 'scale': must be a number"), "{msg}");
}

// ---------------------------------------------------------------- fast vs reference

fn matrix(max: usize) -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (1..max, 1..max).prop_flat_map(|(r, c)| (Just(r), Just(c), prop::collection::vec(-2.0f32..2.0, r * c)))
}

proptest! {
    #![proptest_config(proptest_support::cases(64))]

    #[test]
    fn matmul_fast_vs_reference_passes_the_default_profile(m_ in 1usize..24, k in 0usize..300, n in 1usize..24, seed in any::<u64>()) {
        // O(1) outputs: a ~ N(0, 1), b ~ N(0, 1/k), as a linear layer.
        let s = (MATMUL.sample)(seed, &[m_, k, n]);
        let a = s.inputs["a"].clone();
        let b = s.inputs["b"].clone();
        let [f, r] = ok(&MATMUL, &[("a", a), ("b", b)], json!({}));
        prop_assert!(gate_passes(&MATMUL, &f, &r).is_ok(), "{:?}", gate_passes(&MATMUL, &f, &r));
    }

    #[test]
    fn svd_invariants_fast_vs_reference_pass_the_default_profile((rows, cols, x) in matrix(24)) {
        let [f, r] = ok(&SVD, &[("x", m(rows, cols, &x))], json!({}));
        prop_assert!(gate_passes(&SVD, &f, &r).is_ok(), "{:?}", gate_passes(&SVD, &f, &r));
    }

    /// With well-separated singular values the canonical signs make even the
    /// vectors (reported, not required) agree within their reporting limits.
    #[test]
    fn with_separated_singular_values_the_vectors_agree_too(seed in any::<u64>(), rows in 3usize..12, cols in 3usize..12) {
        let k = rows.min(cols);
        let s: Vec<f64> = (0..k).map(|i| 4.0 * 0.6f64.powi(i as i32)).collect();
        let [f, r] = ok(&SVD, &[("x", with_singular_values(seed, rows, cols, &s))], json!({}));
        for stage in SVD.stages {
            let res = compare_stage(r.get(stage.name).unwrap().view(), f.get(stage.name).unwrap().view(), &stage.tolerance, 0);
            prop_assert!(res.passed(), "{}: {:?}", stage.name, res.failures);
        }
    }

    #[test]
    fn phlora_fast_vs_reference_passes_the_default_profile(seed in any::<u64>(), rows in 2usize..20, cols in 2usize..20, pick in 0usize..100) {
        let rank = 1 + pick % rows.min(cols);
        let s = (PHLORA.sample)(seed, &[rows, cols, rank]);
        let [f, r] = ok(&PHLORA, &[("x", s.inputs["x"].clone())], Value::Object(s.params.clone()));
        prop_assert!(gate_passes(&PHLORA, &f, &r).is_ok(), "{:?}", gate_passes(&PHLORA, &f, &r));
    }

    #[test]
    fn lowrank_fast_vs_reference_passes_the_default_profile(seed in any::<u64>(), rows in 1usize..30, cols in 1usize..30, rank in 1usize..9, base in any::<bool>(), scale in -4.0f64..4.0) {
        let s = (LOWRANK_RECONSTRUCT.sample)(seed, &[rows, cols, rank]);
        let mut inputs = vec![("a", s.inputs["a"].clone()), ("b", s.inputs["b"].clone())];
        if base {
            inputs.push(("base", s.inputs["base"].clone()));
        }
        let [f, r] = ok(&LOWRANK_RECONSTRUCT, &inputs, json!({"scale": scale}));
        prop_assert!(gate_passes(&LOWRANK_RECONSTRUCT, &f, &r).is_ok(), "{:?}", gate_passes(&LOWRANK_RECONSTRUCT, &f, &r));
    }
}
