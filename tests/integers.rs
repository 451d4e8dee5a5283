//! Integer tensors are compared as integers (issue 22, item 4): `|a − b|`
//! without rounding, exact equality exact, for every integer dtype, in the
//! comparer's metrics and gate (what `check` and `diff` decide on);
//! `integers_cli.rs` takes the same cases through the binary.
//!
//! f64 has a 53-bit significand: 2⁶² and 2⁶² + 1, or 2⁵³ and 2⁵³ + 1, are
//! the same f64. Every expected value here comes from i128 arithmetic in the
//! test, never from the code under test.

mod proptest_support;
use parity::compare::metrics::{measure, measure_with, Metrics, BLOCK};
use parity::compare::tolerance::Tolerance;
use parity::compare::{compare_stage, Verdict};
use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use proptest::prelude::*;

const TWO_53: i64 = 1 << 53;
const TWO_62: i64 = 1 << 62;
/// diff's default limit, and a tolerance file's `{"max_abs": 0, "mean_abs": 0}`.
const EXACT: Tolerance = Tolerance::gate(0.0, 0.0);

fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_i64(vec![v.len()], v)
}

fn of(dtype: DType, v: &[i64]) -> Tensor {
    let data = v
        .iter()
        .flat_map(|&x| match dtype {
            DType::I64 => x.to_le_bytes().to_vec(),
            DType::I32 => (i32::try_from(x).unwrap()).to_le_bytes().to_vec(),
            DType::I8 => (i8::try_from(x).unwrap()).to_le_bytes().to_vec(),
            DType::U8 => vec![u8::try_from(x).unwrap()],
            DType::BOOL => vec![u8::try_from(x).unwrap()],
            d => panic!("{d} is not an integer dtype"),
        })
        .collect();
    Tensor::from_bytes(dtype, vec![v.len()], data)
}

fn metrics(l: &Tensor, r: &Tensor, tol: &Tolerance, top: usize) -> Metrics {
    measure(l.view(), r.view(), tol, top)
}

/// The oracle: |b − a| in i128, which holds every difference of two i64.
fn gap(a: i64, b: i64) -> u128 {
    (b as i128 - a as i128).unsigned_abs()
}

#[test]
fn i64_values_one_apart_beyond_2_53_differ_by_one() {
    for (l, r) in [(TWO_62, TWO_62 + 1), (TWO_53 + 1, TWO_53), (-TWO_62 - 1, -TWO_62)] {
        let (a, b) = (i64s(&[7, l]), i64s(&[7, r]));
        let m = metrics(&a, &b, &EXACT, 1);
        assert_eq!(m.max_abs_int, Some(1), "{l} vs {r}");
        assert_eq!(m.max_abs, 1.0);
        assert_eq!(m.max_abs_index, Some(vec![1]));
        assert_eq!(m.over_max_abs, 1);
        assert_eq!(m.not_bit_equal, Some(1));
        assert_eq!(m.max_ulp, Some(1));
        // Σ|d| = 1 over 2 elements; Σd² = 1, so NMSE is not 0 and SQNR not inf.
        assert_eq!(m.mean_abs, 0.5);
        assert!(m.nmse > 0.0 && m.sqnr_db.is_finite(), "nmse {} sqnr {}", m.nmse, m.sqnr_db);
        assert_eq!(m.top[0].exact, Some((l, r)));
        assert_eq!(m.top[0].abs_diff_int(), Some(1));
        let s = compare_stage(a.view(), b.view(), &EXACT, 0);
        assert_eq!(s.verdict, Verdict::Fail, "{l} vs {r}: {:?}", s.failures);
        assert_eq!(s.failures, vec!["max_abs 1 > 0".to_string(), "mean_abs 5e-1 > 0".to_string()]);
    }
}

#[test]
fn equal_i64_values_beyond_2_53_pass_an_exact_limit() {
    let v = [i64::MIN, i64::MAX, TWO_62 + 1, -TWO_53 - 1, 0];
    let s = compare_stage(i64s(&v).view(), i64s(&v).view(), &EXACT, 0);
    assert_eq!(s.verdict, Verdict::Pass, "{:?}", s.failures);
    let m = s.metrics.unwrap();
    assert_eq!((m.max_abs_int, m.max_abs, m.mean_abs, m.nmse, m.max_abs_index), (Some(0), 0.0, 0.0, 0.0, None));
    assert!(m.bytes_equal);
}

#[test]
fn the_i64_extremes_are_2_64_minus_1_apart() {
    let m = metrics(&i64s(&[i64::MIN, i64::MAX]), &i64s(&[i64::MAX, i64::MIN]), &Tolerance::unlimited(), 2);
    assert_eq!(m.max_abs_int, Some(u64::MAX));
    assert_eq!(m.max_ulp, Some(u64::MAX));
    assert_eq!(m.max_abs_index, Some(vec![0]));
    assert_eq!(m.over_max_abs, 0, "an unlimited gate");
    assert_eq!(m.top.iter().map(|d| d.abs_diff_int()).collect::<Vec<_>>(), vec![Some(u64::MAX); 2]);
    // (2⁶⁴ − 1)·2 / 2, rounded once to f64: 2⁶⁴.
    assert_eq!(m.mean_abs, 18_446_744_073_709_551_616.0);
}

#[test]
fn a_limit_is_held_against_the_exact_difference() {
    // 2⁵³ + 1 and 2⁵³ are the same f64: rounded, the difference would pass a limit of 2⁵³.
    let (a, b) = (i64s(&[0, 0]), i64s(&[TWO_53 + 1, TWO_53]));
    let s = compare_stage(a.view(), b.view(), &Tolerance::gate(TWO_53 as f64, f64::INFINITY), 0);
    assert_eq!(s.failures, vec!["max_abs 9007199254740993 > 9007199254740992".to_string()]);
    let m = s.metrics.unwrap();
    assert_eq!(m.over_max_abs, 1);
    // The first element holds the maximum, though both round to the same f64.
    assert_eq!(m.max_abs_index, Some(vec![0]));
    let within = compare_stage(a.view(), b.view(), &Tolerance::gate((TWO_53 + 2) as f64, f64::INFINITY), 0);
    assert!(within.passed(), "{:?}", within.failures);
}

#[test]
fn allclose_counts_integers_against_the_threshold_exactly() {
    // |d| = 2⁵³ + 1 against atol = 2⁵³: outside, though f64(|d|) = atol.
    let tol = Tolerance::unlimited().with_allclose(0.0, TWO_53 as f64, 0.0);
    let m = metrics(&i64s(&[0, 0, 5]), &i64s(&[TWO_53 + 1, TWO_53, 5]), &tol, 0);
    assert_eq!(m.outside_allclose, Some(1));
}

#[test]
fn top_diffs_rank_by_the_exact_difference() {
    // Indices 0 and 1 differ by 2⁵³ and 2⁵³ + 1: one f64, but 1 ranks first.
    let m = metrics(&i64s(&[0, 0, 0]), &i64s(&[TWO_53, TWO_53 + 1, 3]), &Tolerance::unlimited(), 2);
    let got: Vec<_> = m.top.iter().map(|d| (d.index.clone(), d.exact)).collect();
    assert_eq!(got, vec![(vec![1], Some((0, TWO_53 + 1))), (vec![0], Some((0, TWO_53)))]);
    assert_eq!(m.max_abs_int, Some(TWO_53 as u64 + 1));
    assert_eq!(m.max_abs_index, Some(vec![1]));
}

#[test]
fn every_integer_dtype_is_compared_as_integers() {
    // Each width's extremes; the expected gaps come from i128.
    let cases: [(DType, &[i64], &[i64]); 5] = [
        (DType::I64, &[i64::MIN, 0, i64::MAX], &[i64::MAX, 0, i64::MIN + 1]),
        (DType::I32, &[i32::MIN as i64, 0, i32::MAX as i64], &[i32::MAX as i64, 1, i32::MIN as i64]),
        (DType::I8, &[-128, 0, 127], &[127, -1, -128]),
        (DType::U8, &[0, 255, 7], &[255, 0, 7]),
        (DType::BOOL, &[0, 1, 1], &[1, 1, 0]),
    ];
    for (dtype, l, r) in cases {
        let m = metrics(&of(dtype, l), &of(dtype, r), &EXACT, 0);
        let want = l.iter().zip(r).map(|(a, b)| gap(*a, *b)).max().unwrap();
        assert_eq!(m.max_abs_int.map(u128::from), Some(want), "{dtype}");
        assert_eq!(m.max_ulp.map(u128::from), Some(want), "{dtype}");
    }
    // Mixed integer widths: by value (the dtypes fail the gate on their own).
    let m = metrics(&of(DType::I32, &[-5, 7]), &of(DType::I64, &[TWO_62, 7]), &EXACT, 0);
    assert_eq!(m.max_abs_int, Some(TWO_62 as u64 + 5));
    assert_eq!(m.not_bit_equal, None);
}

#[test]
fn integer_metrics_in_json_are_exact_integers() {
    let m = metrics(&i64s(&[i64::MIN, TWO_62]), &i64s(&[i64::MAX, TWO_62 + 1]), &EXACT, 2);
    let j = parity::compare::metrics::json::metrics(&m);
    assert_eq!(j["max_abs"].as_u64(), Some(u64::MAX), "{}", j["max_abs"]);
    assert_eq!(j["top_diffs"][0]["left"].as_i64(), Some(i64::MIN));
    assert_eq!(j["top_diffs"][0]["right"].as_i64(), Some(i64::MAX));
    assert_eq!(j["top_diffs"][0]["abs_diff"].as_u64(), Some(u64::MAX));
    assert_eq!(j["top_diffs"][1]["abs_diff"].as_u64(), Some(1));
    assert!(serde_json::to_string(&j).unwrap().contains("\"max_abs\":18446744073709551615"));
    // Floats keep writing floats.
    let f = parity::compare::metrics::json::metrics(&measure(
        Tensor::from_f64(vec![1], &[1.0]).view(),
        Tensor::from_f64(vec![1], &[3.0]).view(),
        &EXACT,
        0,
    ));
    assert_eq!(f["max_abs"].as_u64(), None);
    assert_eq!(f["max_abs"].as_f64(), Some(2.0));
}

/// i64 values where f64 rounds: near ±2⁵³, ±2⁶², and the extremes.
fn near_edges() -> impl Strategy<Value = i64> {
    prop_oneof![
        (-3i64..=3).prop_map(|k| TWO_53 + k),
        (-3i64..=3).prop_map(|k| -TWO_53 + k),
        (-3i64..=3).prop_map(|k| TWO_62 + k),
        (-3i64..=3).prop_map(|k| -TWO_62 + k),
        (0i64..=3).prop_map(|k| i64::MAX - k),
        (0i64..=3).prop_map(|k| i64::MIN + k),
        -3i64..=3,
        any::<i64>(),
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((near_edges(), near_edges()), 1..40)
}

proptest! {
    #![proptest_config(proptest_support::cases(256))]

    /// max |d|, its first index, the count over a limit and the bit facts,
    /// all against i128 arithmetic; and `limits_broken` agrees.
    #[test]
    fn integer_metrics_match_i128_arithmetic(v in pairs(), limit in prop_oneof![Just(0u64), Just(1), Just(TWO_53 as u64), any::<u64>()]) {
        let (l, r): (Vec<i64>, Vec<i64>) = v.iter().copied().unzip();
        let limit_f = limit as f64; // the limit a person wrote; may round, it is what is held against
        let tol = Tolerance::gate(limit_f, f64::INFINITY);
        let m = metrics(&i64s(&l), &i64s(&r), &tol, 3);
        let gaps: Vec<u128> = v.iter().map(|&(a, b)| gap(a, b)).collect();
        let max = *gaps.iter().max().unwrap();
        prop_assert_eq!(m.max_abs_int.map(u128::from), Some(max));
        prop_assert_eq!(m.max_ulp.map(u128::from), Some(max));
        let at = gaps.iter().position(|&g| g == max).unwrap();
        prop_assert_eq!(m.max_abs_index, (max > 0).then(|| vec![at]));
        // The limit as a real number: i128 holds every f64 below 2⁶⁴ exactly.
        let over = |g: u128| limit_f < 18_446_744_073_709_551_616.0 && g > limit_f as u128;
        prop_assert_eq!(m.over_max_abs as usize, gaps.iter().filter(|&&g| over(g)).count());
        prop_assert_eq!(m.not_bit_equal, Some(gaps.iter().filter(|&&g| g > 0).count() as u64));
        let sum: u128 = gaps.iter().sum();
        prop_assert_eq!(m.mean_abs == 0.0, sum == 0);
        let failed = compare_stage(i64s(&l).view(), i64s(&r).view(), &tol, 0).failures.iter().any(|f| f.starts_with("max_abs"));
        prop_assert_eq!(failed, over(max));
        // The top list: largest exact gap first, ties to the lower index.
        let mut want: Vec<(u128, usize)> = gaps.iter().enumerate().filter(|(_, &g)| g > 0).map(|(i, &g)| (g, i)).collect();
        want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        want.truncate(3);
        let got: Vec<(u128, usize)> = m.top.iter().map(|d| (u128::from(d.abs_diff_int().unwrap()), d.index[0])).collect();
        prop_assert_eq!(got, want);
    }

    /// The exact fields do not depend on the chunk size (blocks are fixed).
    #[test]
    fn integer_metrics_do_not_depend_on_the_chunk_size(v in prop::collection::vec((near_edges(), near_edges()), 1..(3 * BLOCK)), chunk in 1usize..4) {
        let (l, r): (Vec<i64>, Vec<i64>) = v.iter().copied().unzip();
        let (l, r) = (i64s(&l), i64s(&r));
        let one = measure_with(l.view(), r.view(), &EXACT, 4, BLOCK, &|_| {});
        let other = measure_with(l.view(), r.view(), &EXACT, 4, chunk * BLOCK, &|_| {});
        prop_assert_eq!(one, other);
    }
}
