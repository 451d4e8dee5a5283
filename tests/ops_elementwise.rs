//! Promises of the elementwise operations (scale, add, subtract, clamp,
//! fill): the formulas, torch's rounding of Python scalars in the fast
//! kernels, IEEE specials, refusals with reasons, and fast vs reference within
//! each op's default tolerance on random inputs.

mod proptest_support;
mod ops_support;

use ops_support::*;
use parity::format::dtype::DType;
use parity::ops::{add::ADD, clamp::CLAMP, fill::FILL, scale::SCALE, subtract::SUBTRACT};
use parity::ops::Operation;
use parity::format::tensor::Tensor;
use proptest::prelude::*;
use serde_json::json;

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

fn x_only(x: Tensor) -> parity::ops::Inputs {
    inputs(vec![("x", x)])
}

/// The output of both implementations as f32 values.
fn outputs(op: &'static Operation, ins: &parity::ops::Inputs, p: serde_json::Value) -> [Vec<f32>; 2] {
    let out = ok_both(op, ins, &params(p));
    for o in &out {
        assert_declared(op, ins, o);
    }
    out.map(|o| f32s(&o, "output"))
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

// ---------------------------------------------------------------- scale

#[test]
fn scale_multiplies_every_element_and_keeps_ieee_specials() {
    let x = f32t(&[2, 3], &[1.5, -2.0, 0.25, NAN, INF, -0.0]);
    for y in outputs(&SCALE, &x_only(x), json!({"factor": 2.0})) {
        assert_eq!(y[..3], [3.0, -4.0, 0.5]);
        assert!(y[3].is_nan());
        assert_eq!(y[4], INF);
        assert!(y[5] == 0.0 && y[5].is_sign_negative());
    }
}

#[test]
fn the_fast_scale_rounds_the_factor_to_f32_first_as_torch_does() {
    // x = f32(4.07): x·f32(0.1) rounds to one f32, the exact x·0.1 to its
    // neighbour. torch computes the former; the reference the latter.
    let x = f32::from_bits(0x4082_3D71);
    let [fast, reference] = outputs(&SCALE, &x_only(f32t(&[1], &[x])), json!({"factor": 0.1}));
    assert_eq!(fast[0], x * 0.1f32);
    assert_eq!(reference[0], (x as f64 * 0.1) as f32);
    assert_eq!(fast[0].to_bits(), reference[0].to_bits() + 1, "one ULP apart, within the stage's max_ulp 1");
}

#[test]
fn scale_decodes_narrow_and_wide_inputs_exactly() {
    let bf16 = typed(DType::BF16, &[2], &[1.0078125, -3.0]);
    for y in outputs(&SCALE, &x_only(bf16), json!({"factor": 3})) {
        assert_eq!(y, [3.0234375, -9.0]);
    }
    // An F64 input: the fast kernel rounds it to f32 once (like .float()),
    // the reference multiplies the exact value.
    let wide = Tensor::from_f64(vec![1], &[1.0 + 2f64.powi(-30)]);
    let [fast, reference] = outputs(&SCALE, &x_only(wide), json!({"factor": 1.0}));
    assert_eq!((fast[0], reference[0]), (1.0, 1.0));
}

#[test]
fn scale_refuses_a_missing_factor_or_a_non_float_input() {
    let x = x_only(f32t(&[1], &[1.0]));
    refused(&SCALE, &x, &params(json!({})), "parameter 'factor': required but missing");
    refused(&SCALE, &x, &params(json!({"factor": "2"})), "must be a number");
    refused(&SCALE, &x_only(typed(DType::I64, &[1], &[1.0])), &params(json!({"factor": 2})), "input 'x' is I64; scale takes a float dtype");
}

// ---------------------------------------------------------------- add / subtract

fn ab(a: &[f32], b: &[f32]) -> parity::ops::Inputs {
    inputs(vec![("a", f32t(&[a.len()], a)), ("b", f32t(&[b.len()], b))])
}

#[test]
fn add_and_subtract_compute_a_plus_or_minus_alpha_b() {
    let ins = ab(&[1.0, 2.0, -0.5], &[0.5, -4.0, 0.25]);
    for y in outputs(&ADD, &ins, json!({})) {
        assert_eq!(y, [1.5, -2.0, -0.25]);
    }
    for y in outputs(&SUBTRACT, &ins, json!({})) {
        assert_eq!(y, [0.5, 6.0, -0.75]);
    }
    for y in outputs(&ADD, &ins, json!({"alpha": 2})) {
        assert_eq!(y, [2.0, -6.0, 0.0]);
    }
    for y in outputs(&SUBTRACT, &ins, json!({"alpha": -0.5})) {
        assert_eq!(y, [1.25, 0.0, -0.375]);
    }
}

#[test]
fn a_scalar_value_can_stand_in_for_b() {
    let a = inputs(vec![("a", f32t(&[2], &[1.0, -1.0]))]);
    for y in outputs(&ADD, &a, json!({"value": 0.5})) {
        assert_eq!(y, [1.5, -0.5]);
    }
    for y in outputs(&SUBTRACT, &a, json!({"value": 0.5, "alpha": 4})) {
        assert_eq!(y, [-1.0, -3.0]);
    }
}

#[test]
fn with_alpha_one_and_a_tensor_b_fast_and_reference_agree_bit_for_bit() {
    // a + b of two f32 values is one rounding of the exact sum either way.
    let ins = ab(&[0.1, 1e8, -3.3, 1e-40], &[0.2, 1.0, 3.3, 1e-40]);
    let [fast, reference] = outputs(&ADD, &ins, json!({}));
    assert!(same_bits(&fast, &reference), "{fast:?} vs {reference:?}");
}

#[test]
fn the_fast_add_rounds_alpha_and_alpha_times_b_as_torch_does() {
    // a = 0.125, b = f32(0.9), alpha = 0.3: rounding f32(0.3)·b first lands
    // one ULP above the exact a + 0.3·b rounded once.
    let ins = ab(&[0.125], &[f32::from_bits(0x3F66_6666)]);
    let [fast, reference] = outputs(&ADD, &ins, json!({"alpha": 0.3}));
    assert_eq!(fast[0], 0.125f32 + 0.3f32 * f32::from_bits(0x3F66_6666));
    assert_eq!(fast[0].to_bits(), reference[0].to_bits() + 1);
    assert!((fast[0] - reference[0]).abs() as f64 <= ADD.stages[0].tolerance.max_abs);
}

#[test]
fn add_keeps_ieee_specials() {
    let ins = ab(&[INF, INF, NAN, -0.0], &[1.0, -INF, 0.0, -0.0]);
    for y in outputs(&ADD, &ins, json!({})) {
        assert_eq!(y[0], INF);
        assert!(y[1].is_nan() && y[2].is_nan(), "inf − inf and NaN + 0 are NaN");
        assert!(y[3] == 0.0 && y[3].is_sign_negative(), "−0 + −0 = −0");
    }
}

#[test]
fn add_refuses_both_or_neither_second_operand_and_mismatched_shapes() {
    for op in [&ADD, &SUBTRACT] {
        refused(op, &ab(&[1.0], &[1.0]), &params(json!({"value": 1})), "exactly one");
        refused(op, &inputs(vec![("a", f32t(&[1], &[1.0]))]), &params(json!({})), "neither");
        refused(op, &ab(&[1.0, 2.0], &[1.0]), &params(json!({})), "no broadcasting");
        refused(op, &ab(&[1.0], &[1.0]), &params(json!({"alpha": "1"})), "'alpha': must be a number");
    }
}

// ---------------------------------------------------------------- clamp

#[test]
fn clamp_limits_to_the_bounds_and_keeps_nan() {
    let x = || x_only(f32t(&[6], &[-2.0, -0.5, 0.5, 2.0, NAN, -INF]));
    for y in outputs(&CLAMP, &x(), json!({"min": -1, "max": 1})) {
        assert_eq!(y[..4], [-1.0, -0.5, 0.5, 1.0]);
        assert!(y[4].is_nan(), "NaN stays NaN, as torch.clamp");
        assert_eq!(y[5], -1.0);
    }
    for y in outputs(&CLAMP, &x(), json!({"min": 0})) {
        assert_eq!(y[..4], [0.0, 0.0, 0.5, 2.0]);
        assert!(y[4].is_nan());
    }
    for y in outputs(&CLAMP, &x(), json!({"min": null, "max": 0})) {
        assert_eq!(y[..4], [-2.0, -0.5, 0.0, 0.0]);
        assert_eq!(y[5], -INF);
    }
}

#[test]
fn clamp_bounds_are_rounded_to_f32_without_changing_the_result() {
    // A bound f32 cannot hold: the output holds f32(bound) in both
    // implementations (rounding is monotone, so clamp then round = round then clamp).
    let ins = x_only(f32t(&[2], &[0.0, 1.0]));
    let [fast, reference] = outputs(&CLAMP, &ins, json!({"min": 0.1, "max": 0.7}));
    assert!(same_bits(&fast, &reference));
    assert_eq!(fast, [0.1f32, 0.7f32]);
}

#[test]
fn clamp_refuses_no_bounds_and_min_above_max() {
    let x = x_only(f32t(&[1], &[1.0]));
    refused(&CLAMP, &x, &params(json!({})), "needs 'min', 'max' or both");
    refused(&CLAMP, &x, &params(json!({"min": 2, "max": 1})), "min 2 is greater than max 1");
}

// ---------------------------------------------------------------- fill

fn fill(x: Tensor, value: serde_json::Value) -> [Tensor; 2] {
    let ins = x_only(x);
    let out = ok_both(&FILL, &ins, &params(json!({ "value": value })));
    out.map(|o| {
        assert_declared(&FILL, &ins, &o);
        o.get("output").unwrap().clone()
    })
}

#[test]
fn fill_repeats_the_value_in_the_shape_and_dtype_of_x() {
    for out in fill(f32t(&[2, 2], &[9.0; 4]), json!(0.1)) {
        assert_eq!(out.shape, [2, 2]);
        assert_eq!(out.to_f32_vec(), [0.1f32; 4]);
    }
    for out in fill(typed(DType::BF16, &[3], &[0.0; 3]), json!(-0.02)) {
        assert_eq!(out.as_u16_bits(), [half::bf16::from_f64(-0.02).to_bits(); 3]);
    }
    for out in fill(f32t(&[0, 5], &[]), json!(1.0)) {
        assert_eq!((out.shape.as_slice(), out.data.len()), ([0usize, 5].as_slice(), 0));
    }
}

#[test]
fn fill_overflows_as_each_format_defines() {
    // 65520 is the tie between f16's largest finite 65504 and 2^16: RNE → +inf.
    for out in fill(typed(DType::F16, &[1], &[0.0]), json!(65520.0)) {
        assert_eq!(out.as_u16_bits(), [0x7C00]);
    }
    // fp8 e4m3fn has no inf: overflow is NaN (0x7F); e5m2 overflows to inf.
    for out in fill(Tensor::from_bytes(DType::F8E4M3, vec![1], vec![0]), json!(1000.0)) {
        assert_eq!(out.data, [0x7F]);
    }
    for out in fill(Tensor::from_bytes(DType::F8E5M2, vec![1], vec![0]), json!(-1e6)) {
        assert_eq!(out.data, [0xFC]);
    }
}

#[test]
fn the_fast_fill_rounds_through_f32_like_torch_and_the_reference_rounds_once() {
    // 1 + 2⁻⁸ + 2⁻³⁰: f32 keeps 1 + 2⁻⁸, exactly a bf16 tie, which RNE sends
    // to 1.0; the value itself is above the tie, so one RNE step gives 1 + 2⁻⁷.
    let [fast, reference] = fill(typed(DType::BF16, &[2], &[0.0; 2]), json!(1.0 + 2f64.powi(-8) + 2f64.powi(-30)));
    assert_eq!(fast.as_u16_bits(), [0x3F80; 2]);
    assert_eq!(reference.as_u16_bits(), [0x3F81; 2]);
}

#[test]
fn fill_writes_integers_into_integer_dtypes_and_refuses_what_does_not_fit() {
    for out in fill(typed(DType::I64, &[2], &[0.0; 2]), json!(-3)) {
        assert_eq!(out.to_f64_vec(), [-3.0, -3.0]);
    }
    for out in fill(Tensor::from_bytes(DType::BOOL, vec![2], vec![0, 0]), json!(true)) {
        assert_eq!(out.data, [1, 1]);
    }
    refused(&FILL, &x_only(typed(DType::I64, &[1], &[0.0])), &params(json!({"value": 2.5})), "does not fit I64");
    refused(&FILL, &x_only(typed(DType::U8, &[1], &[0.0])), &params(json!({"value": 256})), "does not fit U8");
    refused(&FILL, &x_only(typed(DType::U8, &[1], &[0.0])), &params(json!({"value": -1})), "does not fit U8");
    refused(&FILL, &x_only(f32t(&[1], &[0.0])), &params(json!({"value": true})), "must be a number");
    refused(&FILL, &x_only(typed(DType::I64, &[1], &[0.0])), &params(json!({"value": 9007199254740993i64})), "beyond 2^53");
    refused(&FILL, &x_only(f32t(&[1], &[0.0])), &params(json!({})), "parameter 'value': required but missing");
}

// ---------------------------------------------------------------- fast vs reference

/// Weight-scale values: the magnitudes the default limits are derived for.
fn weights(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-1.0f32..1.0, n)
}

fn float_dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::BF16), Just(DType::F16), Just(DType::F8E4M3), Just(DType::F8E5M2)]
}

fn ulp_distance(a: f32, b: f32) -> u32 {
    let key = |x: f32| if x.is_sign_negative() { -((x.to_bits() & 0x7FFF_FFFF) as i64) } else { x.to_bits() as i64 };
    (key(a) - key(b)).unsigned_abs() as u32
}

proptest! {
    #![proptest_config(proptest_support::cases(96))]

    #[test]
    fn fast_scale_passes_the_default_profile_against_the_reference(x in weights(24), factor in -2.0f64..2.0) {
        let [fast, reference] = ok_both(&SCALE, &x_only(f32t(&[4, 6], &x)), &params(json!({ "factor": factor })));
        within_default_profile(&SCALE, &reference, &fast).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fast_scale_is_within_one_ulp_at_any_magnitude(x in prop::collection::vec(-1e30f32..1e30, 16), factor in -1e5f64..1e5) {
        let [fast, reference] = outputs(&SCALE, &x_only(f32t(&[16], &x)), json!({ "factor": factor }));
        for (f, r) in fast.iter().zip(&reference) {
            prop_assert!(ulp_distance(*f, *r) <= 1, "{f} vs {r}");
        }
    }

    #[test]
    fn fast_add_and_subtract_pass_the_default_profile(a in weights(24), b in weights(24), alpha in -2.0f64..2.0, value in -1.0f64..1.0) {
        let ins = inputs(vec![("a", f32t(&[24], &a)), ("b", f32t(&[24], &b))]);
        let scalar = inputs(vec![("a", f32t(&[24], &a))]);
        for op in [&ADD, &SUBTRACT] {
            let [fast, reference] = ok_both(op, &ins, &params(json!({ "alpha": alpha })));
            within_default_profile(op, &reference, &fast).map_err(TestCaseError::fail)?;
            let [fast, reference] = ok_both(op, &scalar, &params(json!({ "value": value, "alpha": alpha })));
            within_default_profile(op, &reference, &fast).map_err(TestCaseError::fail)?;
            // alpha = 1 with a tensor b: one rounding of the exact result on both sides.
            let [fast, reference] = ok_both(op, &ins, &params(json!({})));
            prop_assert!(same_bits(&f32s(&fast, "output"), &f32s(&reference, "output")));
        }
    }

    #[test]
    fn fast_clamp_equals_the_reference_bit_for_bit(
        x in prop::collection::vec(prop_oneof![-1e30f32..1e30, Just(f32::NAN), Just(f32::INFINITY), Just(-0.0f32)], 16),
        lo in prop::option::of(-1e30f64..0.0),
        hi in prop::option::of(0.0f64..1e30),
    ) {
        prop_assume!(lo.is_some() || hi.is_some());
        let [fast, reference] = ok_both(&CLAMP, &x_only(f32t(&[16], &x)), &params(json!({ "min": lo, "max": hi })));
        within_default_profile(&CLAMP, &reference, &fast).map_err(TestCaseError::fail)?;
        prop_assert!(same_bits(&f32s(&fast, "output"), &f32s(&reference, "output")));
    }

    #[test]
    fn fast_fill_equals_the_reference_unless_torch_double_rounds(
        dtype in float_dtype(),
        mantissa in -2.0f64..2.0,
        exponent in -20i32..20,
    ) {
        let value = mantissa * 2f64.powi(exponent);
        let x = Tensor { dtype, shape: vec![3], data: vec![0; 3 * dtype.size()] };
        let [fast, reference] = fill(x, json!(value));
        if fast != reference {
            // Only a value f32 cannot hold can be double-rounded, and then by one step.
            prop_assert!((value as f32) as f64 != value);
            let ulps = (dtype.ordered_key(&fast.data, 0) - dtype.ordered_key(&reference.data, 0)).abs();
            prop_assert_eq!(ulps, 1);
        } else {
            within_default_profile(&FILL, &reference_stages(reference), &reference_stages(fast)).map_err(TestCaseError::fail)?;
        }
    }
}

fn reference_stages(t: Tensor) -> parity::ops::Stages {
    let mut s = parity::ops::Stages::default();
    s.push("output", t);
    s
}

#[test]
fn the_samples_run_and_agree_within_the_default_profile() {
    // The bench inputs, shrunk: every op's own sample passes its own profile.
    for op in [&SCALE, &ADD, &SUBTRACT, &CLAMP, &FILL] {
        let s = (op.sample)(3, &[16, 24]);
        let [fast, reference] = ok_both(op, &s.inputs, &s.params);
        within_default_profile(op, &reference, &fast).unwrap_or_else(|e| panic!("{e}"));
    }
}
