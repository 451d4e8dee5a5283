//! The comparer's metrics and the stage gate, against hand-computed values.

mod proptest_support;
mod check_support;

use check_support::{bf16_tensor, f32_tensor};
use parity::compare::metrics::{measure, measure_with, Metrics, BLOCK};
use parity::compare::tolerance::Tolerance;
use parity::compare::{compare_stage, compare_stage_chunked, Verdict};
use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use proptest::prelude::*;

const LOOSE: Tolerance = Tolerance::gate(1.0, 1.0);

fn metrics(l: &Tensor, r: &Tensor) -> Metrics {
    measure(l.view(), r.view(), &LOOSE, 0)
}

#[test]
fn max_abs_is_reported_with_its_multi_index() {
    let l = f32_tensor(&[2, 3], &[0.0; 6]);
    let r = f32_tensor(&[2, 3], &[0.0, 0.5, 0.0, 0.0, 0.0, -2.0]);
    let m = metrics(&l, &r);
    assert_eq!(m.max_abs, 2.0);
    assert_eq!(m.max_abs_index, Some(vec![1, 2]));
}

#[test]
fn mean_abs_rms_and_max_rel_match_hand_computed_values() {
    let l = f32_tensor(&[4], &[1.0, 2.0, 4.0, -8.0]);
    let r = f32_tensor(&[4], &[1.0, 2.5, 3.0, -8.0]);
    let m = metrics(&l, &r);
    // |d| = 0, 0.5, 1, 0
    assert_eq!(m.mean_abs, 1.5 / 4.0);
    assert_eq!(m.rms, (1.25f64 / 4.0).sqrt());
    // rel = 0.5/2 = 0.25, 1/4 = 0.25: the first one wins the tie.
    assert_eq!(m.max_rel, 0.25);
    assert_eq!(m.max_rel_index, Some(vec![1]));
    assert_eq!(m.compared, 4);
}

#[test]
fn cosine_and_nmse_match_hand_computed_values() {
    let l = f32_tensor(&[2], &[1.0, 0.0]);
    let r = f32_tensor(&[2], &[1.0, 1.0]);
    let m = metrics(&l, &r);
    assert!((m.cosine - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
    // Σd² / Σl² = 1 / 1
    assert_eq!(m.nmse, 1.0);
    let opposite = metrics(&l, &f32_tensor(&[2], &[-3.0, 0.0]));
    assert_eq!(opposite.cosine, -1.0);
    assert_eq!(opposite.nmse, 16.0);
}

#[test]
fn sqnr_matches_a_hand_computed_value() {
    let l = Tensor::from_f64(vec![4], &[1.0, 2.0, 3.0, 4.0]);
    let r = Tensor::from_f64(vec![4], &[1.1, 2.0, 3.0, 4.0]);
    // Σleft² = 1 + 4 + 9 + 16 = 30, Σd² = 0.1² = 0.01.
    let by_hand = 10.0 * (30.0f64 / 0.01).log10();
    let m = metrics(&l, &r);
    assert!((m.sqnr_db - by_hand).abs() < 1e-9, "{} vs {by_hand}", m.sqnr_db);
    // 10·log10(3000) = 30 + 10·log10(3).
    assert!((m.sqnr_db - 34.771212547).abs() < 1e-8, "{}", m.sqnr_db);
}

#[test]
fn sqnr_of_identical_stages_is_infinite() {
    let t = f32_tensor(&[3], &[1.0, -2.0, 0.5]);
    assert_eq!(metrics(&t, &t).sqnr_db, f64::INFINITY);
    // No signal and no noise: they agree, so +inf as well.
    let z = f32_tensor(&[3], &[0.0; 3]);
    assert_eq!(metrics(&z, &z).sqnr_db, f64::INFINITY);
    let e = f32_tensor(&[0], &[]);
    assert_eq!(metrics(&e, &e).sqnr_db, f64::INFINITY);
}

#[test]
fn sqnr_against_an_all_zero_signal_is_minus_infinity() {
    let z = f32_tensor(&[3], &[0.0; 3]);
    let m = metrics(&z, &f32_tensor(&[3], &[0.0, 1e-3, 0.0]));
    assert_eq!(m.sqnr_db, f64::NEG_INFINITY);
}

#[test]
fn sqnr_stays_finite_when_its_ratio_overflows() {
    // Σleft² = 1e200 + 1e-200, Σd² = 1e-200: the ratio 1e400 is no f64, its log is.
    let l = Tensor::from_f64(vec![2], &[1e100, 1e-100]);
    let r = Tensor::from_f64(vec![2], &[1e100, 2e-100]);
    let m = metrics(&l, &r);
    assert!((m.sqnr_db - 4000.0).abs() < 1e-9, "{}", m.sqnr_db);
}

#[test]
fn sqnr_ignores_positions_where_a_side_is_not_finite() {
    let l = Tensor::from_f64(vec![5], &[1.0, 2.0, f64::NAN, 3.0, 4.0]);
    let r = Tensor::from_f64(vec![5], &[1.1, 2.0, 7.0, 3.0, 4.0]);
    let by_hand = 10.0 * (30.0f64 / 0.01).log10();
    assert!((metrics(&l, &r).sqnr_db - by_hand).abs() < 1e-9);
}

#[test]
fn a_difference_against_zero_is_infinitely_relative() {
    let m = metrics(&f32_tensor(&[2], &[0.0, 1.0]), &f32_tensor(&[2], &[1e-3, 1.0]));
    assert_eq!(m.max_rel, f64::INFINITY);
}

#[test]
fn bf16_neighbours_are_one_ulp_apart() {
    // 1.0 = 0x3F80, its upper neighbour 1.0078125 = 0x3F81, lower 0x3F7F.
    let l = bf16_tensor(&[3], &[0x3F80, 0x3F80, 0xBF80]);
    let r = bf16_tensor(&[3], &[0x3F81, 0x3F7F, 0xBF82]);
    let m = metrics(&l, &r);
    assert_eq!(m.max_ulp, Some(2));
    let one = metrics(&bf16_tensor(&[1], &[0x3F80]), &bf16_tensor(&[1], &[0x3F81]));
    assert_eq!(one.max_ulp, Some(1));
    assert_eq!(one.max_abs, 2f64.powi(-7));
}

#[test]
fn subnormals_are_counted_in_ulps_through_zero() {
    // Smallest positive and negative bf16 subnormals are 2 ULPs apart (via ±0).
    let m = metrics(&bf16_tensor(&[2], &[0x0001, 0x0001]), &bf16_tensor(&[2], &[0x8001, 0x0002]));
    assert_eq!(m.max_ulp, Some(2));
    assert_eq!(m.not_bit_equal, Some(2));
    // The largest subnormal and the smallest normal are neighbours.
    let edge = metrics(&bf16_tensor(&[1], &[0x007F]), &bf16_tensor(&[1], &[0x0080]));
    assert_eq!(edge.max_ulp, Some(1));
}

#[test]
fn negative_zero_and_positive_zero_are_zero_ulp_apart_but_not_bit_equal() {
    let m = metrics(&f32_tensor(&[1], &[0.0]), &f32_tensor(&[1], &[-0.0]));
    assert_eq!(m.max_ulp, Some(0));
    assert_eq!(m.max_abs, 0.0);
    assert_eq!(m.not_bit_equal, Some(1));
    assert!(!m.bytes_equal);
}

#[test]
fn f16_and_f64_stages_take_their_own_units() {
    let f16 = |bits: &[u16]| Tensor::from_u16_bits(DType::F16, vec![bits.len()], bits);
    // f16 1.0 = 0x3C00; +3 ULPs = 1 + 3·2^-10
    let m = metrics(&f16(&[0x3C00]), &f16(&[0x3C03]));
    assert_eq!(m.max_ulp, Some(3));
    assert_eq!(m.max_abs, 3.0 * 2f64.powi(-10));
    let m =
        metrics(&Tensor::from_f64(vec![1], &[1.0]), &Tensor::from_f64(vec![1], &[f64::from_bits(1f64.to_bits() + 5)]));
    assert_eq!(m.max_ulp, Some(5));
}

#[test]
fn empty_tensors_give_defined_metrics() {
    let e = f32_tensor(&[0, 4], &[]);
    let m = metrics(&e, &e);
    assert_eq!((m.numel, m.compared, m.max_abs, m.mean_abs, m.rms, m.max_rel, m.nmse), (0, 0, 0.0, 0.0, 0.0, 0.0, 0.0));
    assert_eq!(m.cosine, 1.0);
    assert_eq!(m.max_abs_index, None);
    assert!(m.bytes_equal);
    assert_eq!(compare_stage(e.view(), e.view(), &Tolerance::exact(), 3).verdict, Verdict::Pass);
}

#[test]
fn all_zero_tensors_have_cosine_one_and_zero_against_non_zero_has_cosine_zero() {
    let z = f32_tensor(&[3], &[0.0; 3]);
    assert_eq!(metrics(&z, &z).cosine, 1.0);
    let m = metrics(&z, &f32_tensor(&[3], &[0.0, 1.0, 0.0]));
    assert_eq!(m.cosine, 0.0);
    assert_eq!(m.nmse, f64::INFINITY);
}

#[test]
fn the_max_abs_half_of_the_gate_fails_alone() {
    // One element off by 2e-3 among 400: mean_abs 5e-6 stays under 1e-5.
    let l = f32_tensor(&[20, 20], &[0.0; 400]);
    let mut v = vec![0.0f32; 400];
    v[21] = 2e-3;
    let r = f32_tensor(&[20, 20], &v);
    let s = compare_stage(l.view(), r.view(), &Tolerance::gate(1e-3, 1e-5), 0);
    assert_eq!(s.verdict, Verdict::Fail);
    assert_eq!(s.failures, vec!["max_abs 2e-3 > 1e-3".to_string()]);
    assert_eq!(s.metrics.unwrap().max_abs_index, Some(vec![1, 1]));
}

#[test]
fn the_mean_abs_half_of_the_gate_fails_alone() {
    let l = f32_tensor(&[8], &[0.0; 8]);
    let r = f32_tensor(&[8], &[5e-4; 8]);
    let s = compare_stage(l.view(), r.view(), &Tolerance::gate(1e-3, 1e-5), 0);
    assert_eq!(s.verdict, Verdict::Fail);
    assert_eq!(s.failures.len(), 1);
    assert!(s.failures[0].starts_with("mean_abs 5"), "{:?}", s.failures);
    assert!(s.failures[0].ends_with("> 1e-5"), "{:?}", s.failures);
}

#[test]
fn a_limit_just_broken_is_shown_with_enough_digits_to_see_it() {
    let l = Tensor::from_f64(vec![1], &[0.0]);
    let r = Tensor::from_f64(vec![1], &[1.0004e-3]);
    let s = compare_stage(l.view(), r.view(), &Tolerance::gate(1e-3, 1.0), 0);
    assert_eq!(s.failures, vec!["max_abs 1.0004e-3 > 1e-3".to_string()]);
}

#[test]
fn nan_on_one_side_only_fails_the_gate() {
    let l = f32_tensor(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let r = f32_tensor(&[2, 2], &[1.0, f32::NAN, 3.0, 4.0]);
    let s = compare_stage(l.view(), r.view(), &LOOSE, 0);
    assert_eq!(s.verdict, Verdict::Fail);
    let m = s.metrics.as_ref().unwrap();
    assert_eq!(m.non_finite.mismatched, 1);
    assert_eq!(m.non_finite.first_mismatch, Some(vec![0, 1]));
    assert_eq!((m.non_finite.left.nan, m.non_finite.right.nan), (0, 1));
    assert!(s.failures[0].contains("non-finite mismatch at 1 position (first at (0, 1))"), "{:?}", s.failures);
}

#[test]
fn nan_at_the_same_index_on_both_sides_passes() {
    let l = f32_tensor(&[3], &[1.0, f32::NAN, 3.0]);
    let r = f32_tensor(&[3], &[1.0, -f32::NAN, 3.0]);
    let s = compare_stage(l.view(), r.view(), &Tolerance::gate(0.0, 0.0), 0);
    assert_eq!(s.verdict, Verdict::Pass, "{:?}", s.failures);
    let m = s.metrics.unwrap();
    assert_eq!((m.non_finite.left.nan, m.non_finite.right.nan, m.compared), (1, 1, 2));
}

#[test]
fn infinities_of_the_same_sign_pass() {
    let l = f32_tensor(&[2], &[f32::INFINITY, f32::NEG_INFINITY]);
    let s = compare_stage(l.view(), l.view(), &Tolerance::exact(), 0);
    assert_eq!(s.verdict, Verdict::Pass, "{:?}", s.failures);
    let m = s.metrics.unwrap();
    assert_eq!((m.non_finite.left.pos_inf, m.non_finite.left.neg_inf), (1, 1));
}

#[test]
fn infinities_of_opposite_sign_fail() {
    let l = f32_tensor(&[2], &[f32::INFINITY, 1.0]);
    let r = f32_tensor(&[2], &[f32::NEG_INFINITY, 1.0]);
    let s = compare_stage(l.view(), r.view(), &LOOSE, 0);
    assert_eq!(s.verdict, Verdict::Fail);
    assert_eq!(s.metrics.unwrap().non_finite.mismatched, 1);
}

#[test]
fn metrics_are_taken_where_both_sides_are_finite() {
    let l = f32_tensor(&[3], &[f32::NAN, 1.0, 2.0]);
    let r = f32_tensor(&[3], &[5.0, 1.5, 2.0]);
    let m = metrics(&l, &r);
    assert_eq!(m.compared, 2);
    assert_eq!(m.max_abs, 0.5);
    assert_eq!(m.mean_abs, 0.25);
}

#[test]
fn a_shape_mismatch_fails_the_gate_without_metrics() {
    let l = f32_tensor(&[2, 3], &[0.0; 6]);
    let r = f32_tensor(&[3, 2], &[0.0; 6]);
    let s = compare_stage(l.view(), r.view(), &LOOSE, 0);
    assert_eq!(s.verdict, Verdict::Fail);
    assert!(s.metrics.is_none());
    assert_eq!(s.failures, vec!["shape [2, 3] (left) vs [3, 2] (right): transposed layout?".to_string()]);
}

#[test]
fn floats_of_different_dtypes_are_compared_by_value_with_no_ulp() {
    // A bf16 port of an f32 run: the values decode exactly, and are equal.
    let l = f32_tensor(&[2], &[1.0, 2.0]);
    let r = bf16_tensor(&[2], &[0x3F80, 0x4000]);
    let s = compare_stage(l.view(), r.view(), &LOOSE, 0);
    assert_eq!(s.verdict, Verdict::Pass, "{:?}", s.failures);
    // A limit in ULPs counts units of one dtype: it cannot hold across two.
    let by_ulp = compare_stage(l.view(), r.view(), &LOOSE.with_max_ulp(4), 0);
    assert_eq!(by_ulp.failures, vec!["dtype F32 (left) vs BF16 (right): max_ulp 4 counts units of one dtype".to_string()]);
    // Beyond the limits by value, it fails by value.
    let r = bf16_tensor(&[2], &[0x3F80, 0x4040]); // 1.0, 3.0
    let far = compare_stage(l.view(), r.view(), &Tolerance::gate(0.5, 1.0), 0);
    assert_eq!(far.failures, vec!["max_abs 1 > 5e-1".to_string()]);
    let m = s.metrics.unwrap();
    assert_eq!(m.max_abs, 0.0);
    assert_eq!(m.max_ulp, None);
    assert_eq!(m.not_bit_equal, None);
    assert!(!m.bytes_equal);
}

#[test]
fn optional_limits_cosine_ulp_and_allclose_each_fail_with_their_name() {
    let l = bf16_tensor(&[4], &[0x3F80, 0x3F80, 0x3F80, 0x3F80]);
    let r = bf16_tensor(&[4], &[0x3F80, 0x3F80, 0x3F80, 0x3F83]);
    let ulp = compare_stage(l.view(), r.view(), &LOOSE.with_max_ulp(2), 0);
    assert_eq!(ulp.failures, vec!["max_ulp 3 > 2".to_string()]);
    let cos = compare_stage(l.view(), r.view(), &LOOSE.with_min_cosine(1.0), 0);
    assert!(cos.failures[0].starts_with("cosine 0.99"), "{:?}", cos.failures);
    let close = compare_stage(l.view(), r.view(), &LOOSE.with_allclose(1e-3, 0.0, 0.2), 0);
    assert_eq!(close.metrics.as_ref().unwrap().outside_allclose, Some(1));
    assert!(
        close.failures[0].starts_with("allclose(rtol=1e-3, atol=0): 1 / 4 elements outside (25.0%) > 20% allowed"),
        "{:?}",
        close.failures
    );
    let tolerated = compare_stage(l.view(), r.view(), &LOOSE.with_allclose(1e-3, 0.0, 0.25), 0);
    assert_eq!(tolerated.verdict, Verdict::Pass);
}

#[test]
fn top_diffs_are_the_largest_first_with_ties_to_the_lower_index() {
    let l = f32_tensor(&[2, 3], &[0.0; 6]);
    let r = f32_tensor(&[2, 3], &[1.0, 3.0, 2.0, 3.0, 0.5, 0.0]);
    let m = measure(l.view(), r.view(), &LOOSE, 3);
    let got: Vec<(Vec<usize>, f64)> = m.top.iter().map(|d| (d.index.clone(), d.abs_diff)).collect();
    assert_eq!(got, vec![(vec![0, 1], 3.0), (vec![1, 0], 3.0), (vec![0, 2], 2.0)]);
    assert_eq!((m.top[0].left, m.top[0].right), (0.0, 3.0));
}

#[test]
fn top_diffs_put_non_finite_mismatches_first() {
    let l = f32_tensor(&[3], &[0.0, 0.0, 0.0]);
    let r = f32_tensor(&[3], &[5.0, 0.0, f32::NAN]);
    let m = measure(l.view(), r.view(), &LOOSE, 2);
    assert_eq!(m.top[0].index, vec![2]);
    assert!(m.top[0].right.is_nan());
    assert_eq!(m.top[1].index, vec![0]);
}

// ---------------------------------------------------------------------------
// Properties.

fn f32s(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![
            8 => -4.0f32..4.0,
            1 => Just(0.0f32),
            1 => Just(-0.0f32),
            1 => prop::num::f32::ANY,
        ],
        len,
    )
}

proptest! {
    #![proptest_config(proptest_support::cases(24))]

    #[test]
    fn metrics_do_not_depend_on_chunk_size_or_thread_count(
        (l, r) in (1usize..5000).prop_flat_map(|n| (f32s(n..n + 1), f32s(n..n + 1))),
        chunk_blocks in 1usize..4,
        top in 0usize..6,
    ) {
        let (lt, rt) = (f32_tensor(&[l.len()], &l), f32_tensor(&[r.len()], &r));
        let tol = Tolerance::gate(1e-3, 1e-5).with_allclose(1e-3, 1e-6, 0.0);
        let reference = measure_with(lt.view(), rt.view(), &tol, top, BLOCK, &|_| {});
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let m = pool.install(|| measure_with(lt.view(), rt.view(), &tol, top, chunk_blocks * BLOCK, &|_| {}));
            // Bit-identical, NaN-safe: compare the debug forms (SQNR included:
            // it comes from the same merged block sums).
            prop_assert_eq!(format!("{m:?}"), format!("{reference:?}"));
        }
    }

    #[test]
    fn max_abs_is_at_least_mean_abs_and_rms(l in f32s(1..300), r in f32s(1..300)) {
        let n = l.len().min(r.len());
        let m = metrics(&f32_tensor(&[n], &l[..n]), &f32_tensor(&[n], &r[..n]));
        prop_assert!(m.max_abs >= m.mean_abs);
        prop_assert!(m.max_abs >= m.rms || m.rms.is_nan());
    }

    #[test]
    fn a_tensor_compared_with_itself_has_cosine_one_and_every_difference_zero(v in f32s(0..300)) {
        let t = f32_tensor(&[v.len()], &v);
        let s = compare_stage(t.view(), t.view(), &Tolerance::exact(), 4);
        let m = s.metrics.unwrap();
        prop_assert_eq!(s.verdict, Verdict::Pass);
        prop_assert_eq!(m.cosine, 1.0);
        prop_assert_eq!((m.max_abs, m.mean_abs, m.rms, m.max_rel, m.nmse), (0.0, 0.0, 0.0, 0.0, 0.0));
        prop_assert_eq!(m.sqnr_db, f64::INFINITY);
        prop_assert_eq!((m.max_ulp, m.not_bit_equal, m.non_finite.mismatched), (Some(0), Some(0), 0));
        prop_assert!(m.bytes_equal);
        prop_assert!(m.top.is_empty());
    }

    #[test]
    fn ulp_distance_is_symmetric(a in prop::collection::vec(any::<u16>(), 1..64), b in prop::collection::vec(any::<u16>(), 1..64)) {
        let n = a.len().min(b.len());
        let (x, y) = (bf16_tensor(&[n], &a[..n]), bf16_tensor(&[n], &b[..n]));
        let there = compare_stage_chunked(x.view(), y.view(), &LOOSE, 0, BLOCK).metrics.unwrap();
        let back = compare_stage_chunked(y.view(), x.view(), &LOOSE, 0, BLOCK).metrics.unwrap();
        prop_assert_eq!(there.max_ulp, back.max_ulp);
        prop_assert_eq!(there.not_bit_equal, back.not_bit_equal);
        prop_assert_eq!(there.max_abs, back.max_abs);
    }
}

#[test]
fn integer_stages_measure_ulps_as_integer_steps() {
    use parity::compare::tolerance::Tolerance;
    use parity::format::tensor::Tensor;
    let a = Tensor::from_i64(vec![3], &[1, -5, 1 << 60]);
    let b = Tensor::from_i64(vec![3], &[1, -2, 1 << 60]);
    let same = parity::compare::compare_stage(a.view(), a.view(), &Tolerance::exact(), 0);
    assert!(same.passed(), "{:?}", same.failures);
    let differ = parity::compare::compare_stage(a.view(), b.view(), &Tolerance::exact(), 0);
    assert_eq!(differ.metrics.as_ref().unwrap().max_ulp, Some(3));
    assert!(!differ.passed());
}
