//! Promises of the layout operations (identity, transpose, reshape, slice,
//! concat, split): elements land where numpy/torch put them, every bit
//! survives in every dtype, bad arguments are refused with the reason, and
//! the fast kernels equal the reference bit for bit on random layouts.

mod proptest_support;
mod ops_support;

use ops_support::*;
use parity::format::dtype::DType;
use parity::ops::{concat::CONCAT, identity::IDENTITY, reshape::RESHAPE, slice::SLICE, split::SPLIT, transpose::TRANSPOSE};
use parity::ops::Operation;
use parity::format::tensor::Tensor;
use proptest::prelude::*;
use serde_json::json;

/// 0, 1, 2, … as F32 in `shape`: a value names its own input position.
fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f32t(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
}

fn output_of(op: &'static Operation, x: Tensor, p: serde_json::Value) -> (Vec<usize>, Vec<f64>) {
    let ins = inputs(vec![("x", x)]);
    let [fast, reference] = ok_both(op, &ins, &params(p));
    assert_eq!(fast.0, reference.0, "{}: fast and reference differ", op.name);
    assert_declared(op, &ins, &fast);
    let t = fast.get("output").unwrap();
    (t.shape.clone(), t.to_f64_vec())
}

// ---------------------------------------------------------------- identity

#[test]
fn identity_returns_the_input_bit_for_bit_in_every_dtype() {
    // A NaN with a payload and a signalling bit pattern, −0, a subnormal, ±inf.
    let specials = [f32::from_bits(0x7FA0_1234), -0.0, 1e-40, f32::INFINITY, f32::NEG_INFINITY, 1.5];
    let cases = [
        f32t(&[2, 3], &specials),
        typed(DType::BF16, &[3], &[1.0, -0.0078125, 65280.0]),
        Tensor::from_bytes(DType::F8E4M3, vec![2], vec![0x7F, 0x01]),
        typed(DType::I64, &[2], &[-7.0, 9e15]),
        Tensor::from_bytes(DType::BOOL, vec![3], vec![1, 0, 1]),
        f32t(&[0, 4], &[]),
        f32t(&[], &[2.5]),
    ];
    for x in cases {
        let ins = inputs(vec![("x", x.clone())]);
        for out in ok_both(&IDENTITY, &ins, &params(json!({}))) {
            assert_eq!(out.get("output").unwrap(), &x, "{}", x.dtype);
        }
    }
}

// ---------------------------------------------------------------- transpose

#[test]
fn transpose_reverses_the_axes_by_default() {
    let (shape, v) = output_of(&TRANSPOSE, iota(&[2, 3]), json!({}));
    assert_eq!(shape, [3, 2]);
    assert_eq!(v, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    // Rank 3: reversed axes, out[k][j][i] = x[i][j][k].
    let (shape, v) = output_of(&TRANSPOSE, iota(&[2, 3, 4]), json!({"dims": null}));
    assert_eq!(shape, [4, 3, 2]);
    assert_eq!(&v[..4], [0.0, 12.0, 4.0, 16.0]);
}

#[test]
fn dims_makes_transpose_a_permute_where_output_axis_i_is_input_axis_dims_i() {
    // [2, 3, 4] with dims [2, 0, 1] → [4, 2, 3], out[k][i][j] = x[i][j][k] = 12i + 4j + k.
    // (Reading dims as its inverse permutation would give shape [3, 4, 2].)
    let (shape, v) = output_of(&TRANSPOSE, iota(&[2, 3, 4]), json!({"dims": [2, 0, 1]}));
    assert_eq!(shape, [4, 2, 3]);
    for k in 0..4 {
        for i in 0..2 {
            for j in 0..3 {
                assert_eq!(v[k * 6 + i * 3 + j], (12 * i + 4 * j + k) as f64);
            }
        }
    }
    // Negative axes count from the end: [0, -1, 1] transposes the last two.
    let (shape, v) = output_of(&TRANSPOSE, iota(&[2, 2, 3]), json!({"dims": [0, -1, 1]}));
    assert_eq!(shape, [2, 3, 2]);
    assert_eq!(&v[..6], [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

#[test]
fn transpose_keeps_zero_size_axes_and_scalars() {
    assert_eq!(output_of(&TRANSPOSE, f32t(&[0, 3], &[]), json!({})), (vec![3, 0], vec![]));
    assert_eq!(output_of(&TRANSPOSE, f32t(&[], &[7.0]), json!({})), (vec![], vec![7.0]));
}

#[test]
fn transpose_refuses_dims_that_are_not_a_permutation() {
    let ins = inputs(vec![("x", iota(&[2, 3]))]);
    refused(&TRANSPOSE, &ins, &params(json!({"dims": [0, 0]})), "not a permutation");
    refused(&TRANSPOSE, &ins, &params(json!({"dims": [0]})), "has 1 entries but x has rank 2");
    refused(&TRANSPOSE, &ins, &params(json!({"dims": [0, 2]})), "axis 2 is out of range");
    refused(&TRANSPOSE, &ins, &params(json!({"dims": "1,0"})), "list of whole numbers");
}

// ---------------------------------------------------------------- reshape

#[test]
fn reshape_keeps_row_major_order_and_infers_one_minus_one() {
    let (shape, v) = output_of(&RESHAPE, iota(&[2, 6]), json!({"shape": [3, -1, 2]}));
    assert_eq!(shape, [3, 2, 2]);
    assert_eq!(v, (0..12).map(|i| i as f64).collect::<Vec<_>>());
    assert_eq!(output_of(&RESHAPE, iota(&[2, 3]), json!({"shape": [-1]})).0, [6]);
    assert_eq!(output_of(&RESHAPE, f32t(&[0, 3], &[]), json!({"shape": [3, 0]})).0, [3, 0]);
    assert_eq!(output_of(&RESHAPE, f32t(&[1], &[4.0]), json!({"shape": []})), (vec![], vec![4.0]));
}

#[test]
fn reshape_refuses_a_shape_that_does_not_hold_the_elements() {
    let ins = inputs(vec![("x", iota(&[2, 3]))]);
    refused(&RESHAPE, &ins, &params(json!({"shape": [4, 2]})), "holds 8 elements but x has 6");
    refused(&RESHAPE, &ins, &params(json!({"shape": [4, -1]})), "does not fit 6 elements");
    refused(&RESHAPE, &ins, &params(json!({"shape": [-1, -1]})), "only one entry may be -1");
    refused(&RESHAPE, &ins, &params(json!({"shape": [-2, -3]})), "only -1 is allowed");
    let huge = 1i64 << 40;
    refused(&RESHAPE, &inputs(vec![("x", f32t(&[0], &[]))]), &params(json!({"shape": [huge, huge, 0]})), "multiply beyond");
    refused(&RESHAPE, &ins, &params(json!({})), "parameter 'shape': required but missing");
    let empty = inputs(vec![("x", f32t(&[0, 3], &[]))]);
    refused(&RESHAPE, &empty, &params(json!({"shape": [0, -1]})), "ambiguous");
}

// ---------------------------------------------------------------- slice

#[test]
fn slice_follows_numpy_semantics() {
    let x = || iota(&[10]);
    let cases: [(serde_json::Value, Vec<f64>); 8] = [
        (json!([[1, -1, 2]]), vec![1.0, 3.0, 5.0, 7.0]),
        (json!([[-3, null, null]]), vec![7.0, 8.0, 9.0]),
        (json!([[null, null, 3]]), vec![0.0, 3.0, 6.0, 9.0]),
        (json!([[5, 2, 1]]), vec![]),
        (json!([[-100, 100, 4]]), vec![0.0, 4.0, 8.0]),
        (json!([[9, 10, 5]]), vec![9.0]),
        (json!([[2, null, i64::MAX]]), vec![2.0]),
        (json!([]), (0..10).map(f64::from).collect()),
    ];
    for (ranges, want) in cases {
        let (shape, v) = output_of(&SLICE, x(), json!({ "ranges": ranges }));
        assert_eq!(v, want, "ranges {ranges}");
        assert_eq!(shape, [want.len()], "ranges {ranges}");
    }
}

#[test]
fn slice_keeps_unlisted_trailing_axes_whole() {
    // x[1:3] of a [4, 3] matrix: rows 1 and 2, all columns.
    let (shape, v) = output_of(&SLICE, iota(&[4, 3]), json!({"ranges": [[1, 3, null]]}));
    assert_eq!(shape, [2, 3]);
    assert_eq!(v, [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    // x[::2, 1::2] of a [3, 4] matrix.
    let (shape, v) = output_of(&SLICE, iota(&[3, 4]), json!({"ranges": [[null, null, 2], [1, null, 2]]}));
    assert_eq!(shape, [2, 2]);
    assert_eq!(v, [1.0, 3.0, 9.0, 11.0]);
}

#[test]
fn slice_refuses_bad_ranges() {
    let ins = inputs(vec![("x", iota(&[4, 3]))]);
    refused(&SLICE, &ins, &params(json!({"ranges": [[0, 2, 0]]})), "step 0 must be positive");
    refused(&SLICE, &ins, &params(json!({"ranges": [[2, 0, -1]]})), "step -1 must be positive");
    refused(&SLICE, &ins, &params(json!({"ranges": [[0, 2]]})), "must be [start, stop, step]");
    refused(&SLICE, &ins, &params(json!({"ranges": [[0, 1.5, 1]]})), "'ranges': must be a list of [start, stop, step] lists (integers or null)");
    refused(&SLICE, &ins, &params(json!({"ranges": [[0, 1, 1], [0, 1, 1], [0, 1, 1]]})), "3 entries but x has rank 2");
    refused(&SLICE, &ins, &params(json!({})), "parameter 'ranges': required but missing");
    refused(&SLICE, &inputs(vec![("x", f32t(&[], &[1.0]))]), &params(json!({"ranges": []})), "rank 0");
}

// ---------------------------------------------------------------- concat

fn concat(a: Tensor, b: Tensor, p: serde_json::Value) -> (Vec<usize>, Vec<f64>) {
    let ins = inputs(vec![("a", a), ("b", b)]);
    let [fast, reference] = ok_both(&CONCAT, &ins, &params(p));
    assert_eq!(fast.0, reference.0);
    assert_declared(&CONCAT, &ins, &fast);
    let t = fast.get("output").unwrap();
    (t.shape.clone(), t.to_f64_vec())
}

#[test]
fn concat_puts_a_then_b_along_the_axis() {
    let b = || f32t(&[1, 2], &[10.0, 11.0]);
    assert_eq!(concat(iota(&[2, 2]), b(), json!({})), (vec![3, 2], vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0]));
    let b = || f32t(&[2, 1], &[10.0, 11.0]);
    let want = (vec![2, 3], vec![0.0, 1.0, 10.0, 2.0, 3.0, 11.0]);
    assert_eq!(concat(iota(&[2, 2]), b(), json!({"axis": 1})), want);
    assert_eq!(concat(iota(&[2, 2]), b(), json!({"axis": -1})), want);
    // A zero-size side contributes nothing.
    assert_eq!(concat(iota(&[2, 2]), f32t(&[0, 2], &[]), json!({})).1, [0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn concat_refuses_mismatched_shapes_dtypes_and_axes() {
    let a = iota(&[2, 2]);
    refused(&CONCAT, &inputs(vec![("a", a.clone()), ("b", iota(&[2, 3]))]), &params(json!({})), "differ on axis 1");
    refused(&CONCAT, &inputs(vec![("a", a.clone()), ("b", iota(&[2]))]), &params(json!({})), "same rank");
    let bf16 = typed(DType::BF16, &[1, 2], &[1.0, 2.0]);
    refused(&CONCAT, &inputs(vec![("a", a.clone()), ("b", bf16)]), &params(json!({})), "one dtype");
    refused(&CONCAT, &inputs(vec![("a", a.clone()), ("b", a.clone())]), &params(json!({"axis": 2})), "out of range");
    refused(&CONCAT, &inputs(vec![("a", a)]), &params(json!({})), "input 'b' missing");
}

// ---------------------------------------------------------------- split

fn split(x: Tensor, p: serde_json::Value) -> [(Vec<usize>, Vec<f64>); 2] {
    let ins = inputs(vec![("x", x)]);
    let [fast, reference] = ok_both(&SPLIT, &ins, &params(p));
    assert_eq!(fast.0, reference.0);
    assert_declared(&SPLIT, &ins, &fast);
    ["first", "second"].map(|s| {
        let t = fast.get(s).unwrap();
        (t.shape.clone(), t.to_f64_vec())
    })
}

#[test]
fn split_cuts_at_index_into_first_and_second() {
    let [first, second] = split(iota(&[2, 3]), json!({"axis": 1, "index": 1}));
    assert_eq!(first, (vec![2, 1], vec![0.0, 3.0]));
    assert_eq!(second, (vec![2, 2], vec![1.0, 2.0, 4.0, 5.0]));
    // Default axis 0; a negative index counts from the end.
    let [first, second] = split(iota(&[3, 2]), json!({"index": -1}));
    assert_eq!(first, (vec![2, 2], vec![0.0, 1.0, 2.0, 3.0]));
    assert_eq!(second, (vec![1, 2], vec![4.0, 5.0]));
    // At either end one part is empty.
    let [first, second] = split(iota(&[3, 2]), json!({"index": 0}));
    assert_eq!((first.0, second.0), (vec![0, 2], vec![3, 2]));
    let [first, second] = split(iota(&[3, 2]), json!({"index": 3}));
    assert_eq!((first.0, second.0), (vec![3, 2], vec![0, 2]));
}

#[test]
fn split_refuses_an_index_outside_the_axis() {
    let ins = inputs(vec![("x", iota(&[3, 2]))]);
    refused(&SPLIT, &ins, &params(json!({"index": 4})), "outside [0, 3]");
    refused(&SPLIT, &ins, &params(json!({"index": -4})), "outside [0, 3]");
    refused(&SPLIT, &ins, &params(json!({"index": 1, "axis": 2})), "out of range");
    refused(&SPLIT, &ins, &params(json!({"index": "1"})), "'index': must be a whole number");
    refused(&SPLIT, &ins, &params(json!({})), "parameter 'index': required but missing");
}

// ---------------------------------------------------------------- fast vs reference

fn dtype_strategy() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::BF16), Just(DType::F64), Just(DType::F16), Just(DType::U8)]
}

/// A tensor of `dtype` and `shape` with distinct-ish bit patterns: random
/// bytes, so NaN payloads and every other pattern must survive too.
fn random_tensor(dtype: DType, shape: Vec<usize>, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = parity::numeric::rng::SplitMix64::new(seed);
    let data = (0..n * dtype.size()).map(|_| rng.next_u64() as u8).collect();
    Tensor { dtype, shape, data }
}

fn shape_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..5, 1..=4)
}

/// Fast equals reference byte for byte, and (for float stages) passes the
/// op's built-in profile through the comparer.
fn agree(op: &'static Operation, ins: &parity::ops::Inputs, p: &parity::ops::Params) -> Result<(), TestCaseError> {
    let [fast, reference] = both(op, ins, p);
    match (fast, reference) {
        (Ok(f), Ok(r)) => {
            prop_assert_eq!(&f.0, &r.0);
            if f.0.iter().all(|(_, t)| t.dtype.is_float()) {
                within_default_profile(op, &r, &f).map_err(TestCaseError::fail)?;
            }
        }
        (Err(f), Err(r)) => prop_assert_eq!(f.to_string(), r.to_string()),
        (f, r) => prop_assert!(false, "one implementation failed: fast {:?}, reference {:?}", f.err(), r.err()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_support::cases(64))]

    #[test]
    fn fast_transpose_equals_the_reference(dtype in dtype_strategy(), shape in shape_strategy(), seed: u64, perm_seed: u64) {
        let rank = shape.len();
        // A random permutation (Fisher–Yates from perm_seed), sometimes with negative axes.
        let mut perm: Vec<i64> = (0..rank as i64).collect();
        let mut rng = parity::numeric::rng::SplitMix64::new(perm_seed);
        for i in (1..rank).rev() {
            perm.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        if perm_seed % 2 == 1 {
            perm[0] -= rank as i64;
        }
        let ins = inputs(vec![("x", random_tensor(dtype, shape, seed))]);
        agree(&TRANSPOSE, &ins, &params(json!({ "dims": perm })))?;
    }

    #[test]
    fn fast_slice_equals_the_reference(
        dtype in dtype_strategy(),
        shape in shape_strategy(),
        seed: u64,
        bounds in prop::collection::vec((prop::option::of(-6i64..7), prop::option::of(-6i64..7), prop::option::of(1i64..4)), 0..=4),
    ) {
        let ranges: Vec<serde_json::Value> = bounds.iter().take(shape.len()).map(|(a, b, s)| json!([a, b, s])).collect();
        let ins = inputs(vec![("x", random_tensor(dtype, shape, seed))]);
        agree(&SLICE, &ins, &params(json!({ "ranges": ranges })))?;
    }

    #[test]
    fn fast_concat_and_split_equal_the_reference(
        dtype in dtype_strategy(),
        shape in shape_strategy(),
        extra in 0usize..4,
        axis_seed: usize,
        index in -5i64..6,
        seed: u64,
    ) {
        let axis = axis_seed % shape.len();
        let mut b_shape = shape.clone();
        b_shape[axis] = extra;
        let a = random_tensor(dtype, shape.clone(), seed);
        let b = random_tensor(dtype, b_shape, seed ^ 1);
        let ins = inputs(vec![("a", a), ("b", b)]);
        agree(&CONCAT, &ins, &params(json!({ "axis": axis })))?;
        let ins = inputs(vec![("x", random_tensor(dtype, shape, seed))]);
        agree(&SPLIT, &ins, &params(json!({ "axis": axis as i64 - 4, "index": index })))?;
    }

    #[test]
    fn fast_reshape_and_identity_equal_the_reference(dtype in dtype_strategy(), shape in shape_strategy(), seed: u64) {
        let x = random_tensor(dtype, shape.clone(), seed);
        let n: usize = shape.iter().product();
        let ins = inputs(vec![("x", x)]);
        agree(&IDENTITY, &ins, &params(json!({})))?;
        agree(&RESHAPE, &ins, &params(json!({ "shape": [n] })))?;
        agree(&RESHAPE, &ins, &params(json!({ "shape": shape.iter().rev().collect::<Vec<_>>() })))?;
    }
}

#[test]
fn a_large_transpose_is_tiled_correctly() {
    // Sizes that are not multiples of the 32-element tile, in two dtypes.
    for dtype in [DType::F32, DType::BF16] {
        let x = random_tensor(dtype, vec![3, 70, 45], 9);
        let ins = inputs(vec![("x", x)]);
        for dims in [json!([0, 2, 1]), json!([2, 1, 0]), json!([1, 2, 0])] {
            let [fast, reference] = ok_both(&TRANSPOSE, &ins, &params(json!({ "dims": dims })));
            assert_eq!(fast.0, reference.0, "{dtype} {dims}");
        }
    }
}
