//! `cast`: the fast path is ml_dtypes bit for bit; the reference rounds once,
//! correctly; they differ only where ml_dtypes double-rounds f64 inputs.
//!
//! tests/fixtures/cast_ml_dtypes.safetensors holds what numpy 2.4 + ml_dtypes
//! 0.6 produce (python3 -m parity_oracle make-cast-fixture): `<src>.x` and `<src>.to_<T>` for
//! every source dtype and target. PARITY_CAST_FIXTURE=<file> runs the same
//! tests on a bigger one (`--scale 40 --exhaustive16`).

mod proptest_support;
use parity::compare::compare_stage;
use parity::format::dtype::DType;
use parity::numeric::round::{self, MiniFloat, BF16, F16, F8E4M3FN, F8E5M2};
use parity::ops::cast::CAST;
use parity::ops::{Implementation, Inputs, Params, Stages};
use parity::format::tensor::Tensor;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

const SOURCES: [(&str, DType); 4] = [("f64", DType::F64), ("f32", DType::F32), ("f16", DType::F16), ("bf16", DType::BF16)];
const TARGETS: [(&str, DType); 5] =
    [("BF16", DType::BF16), ("F16", DType::F16), ("F8_E4M3", DType::F8E4M3), ("F8_E5M2", DType::F8E5M2), ("F32", DType::F32)];

fn fixture() -> BTreeMap<String, Tensor> {
    let path = std::env::var_os("PARITY_CAST_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cast_ml_dtypes.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let dtype = DType::from_safetensors(v.dtype()).unwrap();
            (name, Tensor::from_bytes(dtype, v.shape().to_vec(), v.data().to_vec()))
        })
        .collect()
}

fn cast(x: &Tensor, to: &str) -> [parity::Result<Stages>; 2] {
    let mut inputs = Inputs::new();
    inputs.insert("x".into(), x.clone());
    let params: Params = json!({ "to": to }).as_object().unwrap().clone();
    [CAST.run(Implementation::Fast, "w", &inputs, &params), CAST.run(Implementation::Reference, "w", &inputs, &params)]
}

fn fast(x: &Tensor, to: &str) -> Tensor {
    let [f, _] = cast(x, to);
    f.unwrap().get("output").unwrap().clone()
}

fn reference(x: &Tensor, to: &str) -> Tensor {
    let [_, r] = cast(x, to);
    r.unwrap().get("output").unwrap().clone()
}

/// Element i's bits, whatever the width.
fn bits(t: &Tensor, i: usize) -> u64 {
    let s = t.dtype.size();
    let mut b = [0u8; 8];
    b[..s].copy_from_slice(&t.data[i * s..i * s + s]);
    u64::from_le_bytes(b)
}

fn is_nan(t: &Tensor, i: usize) -> bool {
    t.dtype.decode(&t.data, i).is_nan()
}

fn f32s(v: &[f32]) -> Tensor {
    Tensor::from_f32(vec![v.len()], v)
}

fn f64s(v: &[f64]) -> Tensor {
    Tensor::from_f64(vec![v.len()], v)
}

/// Every (source, target, input, ml_dtypes output) section of the fixture.
fn sections() -> Vec<(&'static str, &'static str, Tensor, Tensor)> {
    let fx = fixture();
    let mut out = Vec::new();
    for (src, sd) in SOURCES {
        let x = fx[&format!("{src}.x")].clone();
        assert_eq!(x.dtype, sd);
        for (to, td) in TARGETS {
            if let Some(want) = fx.get(&format!("{src}.to_{to}")) {
                assert_eq!(want.dtype, td);
                out.push((src, to, x.clone(), want.clone()));
            }
        }
    }
    assert_eq!(out.len(), 5 + 3 * 4, "every source × every target but itself");
    out
}

// ---------------------------------------------------------------- ml_dtypes semantics

#[test]
fn fast_cast_equals_ml_dtypes_bit_for_bit_nan_payloads_included() {
    for (src, to, x, want) in sections() {
        let got = fast(&x, to);
        assert_eq!((got.dtype, &got.shape), (want.dtype, &want.shape));
        let bad: Vec<String> = (0..x.numel())
            .filter(|&i| bits(&got, i) != bits(&want, i))
            .take(5)
            .map(|i| format!("x {:#x} → got {:#x}, ml_dtypes {:#x}", bits(&x, i), bits(&got, i), bits(&want, i)))
            .collect();
        assert!(bad.is_empty(), "{src} → {to}: {bad:?}");
    }
}

#[test]
fn reference_rounds_once_and_differs_from_ml_dtypes_only_on_f64_through_f32() {
    for (src, to, x, want) in sections() {
        let got = reference(&x, to);
        let double_rounded = src == "f64" && matches!(to, "BF16" | "F8_E4M3" | "F8_E5M2");
        let mut differing = 0;
        for i in 0..x.numel() {
            if is_nan(&want, i) && is_nan(&got, i) {
                continue; // NaN payloads differ by design; the comparer matches NaN by position
            }
            if bits(&got, i) == bits(&want, i) {
                continue;
            }
            differing += 1;
            assert!(double_rounded, "{src} → {to}: x {:#x}: reference {:#x}, ml_dtypes {:#x}", bits(&x, i), bits(&got, i), bits(&want, i));
            // ml_dtypes' result is the correct rounding of f32(x): one ULP from ours
            // in the same binade, or the neighbour across the overflow threshold.
            let (g, w) = (got.dtype.ordered_key(&got.data, i), want.dtype.ordered_key(&want.data, i));
            let across_overflow = is_nan(&want, i) || want.dtype.decode(&want.data, i).is_infinite();
            assert!(g.abs_diff(w) == 1 || across_overflow, "{src} → {to}: x {:#x}: {g} vs {w}", bits(&x, i));
        }
        if double_rounded {
            assert!(differing > 0, "{src} → {to}: the fixture should show ml_dtypes' double rounding");
        }
    }
}

#[test]
fn f64_to_bf16_rounds_through_f32_in_ml_dtypes_but_once_in_the_reference() {
    // 1 + 2⁻⁸ is the tie between bf16 1.0 and 1.0078125; 2⁻⁴⁰ above it rounds
    // up when rounded once, but f32 drops the 2⁻⁴⁰ first and the tie goes to even.
    let x = f64s(&[1.0 + 2f64.powi(-8) + 2f64.powi(-40), 1.0 + 3.0 * 2f64.powi(-8) - 2f64.powi(-40)]);
    assert_eq!(fast(&x, "BF16").as_u16_bits(), vec![0x3F80, 0x3F82]);
    assert_eq!(reference(&x, "BF16").as_u16_bits(), vec![0x3F81, 0x3F81]);
}

#[test]
fn f64_to_f16_is_rounded_once_by_numpy_too() {
    // The same kind of sticky-bit case one level down: numpy's f64 → f16 is direct.
    let x = f64s(&[1.0 + 2f64.powi(-11) + 2f64.powi(-40)]);
    assert_eq!(fast(&x, "F16").as_u16_bits(), vec![0x3C01]);
    assert_eq!(reference(&x, "F16").as_u16_bits(), vec![0x3C01]);
}

#[test]
fn e4m3fn_overflows_to_nan_with_the_sign_and_never_saturates() {
    let x = f32s(&[448.0, 464.0, 465.0, 480.0, -465.0, 1e6, f32::INFINITY, f32::NEG_INFINITY, -464.0]);
    let want = vec![0x7E, 0x7E, 0x7F, 0x7F, 0xFF, 0x7F, 0x7F, 0xFF, 0xFE];
    assert_eq!(fast(&x, "F8_E4M3").data, want);
    // The reference agrees up to NaN sign, which the comparer ignores; here it keeps it too.
    assert_eq!(reference(&x, "F8_E4M3").data, want);
}

#[test]
fn e5m2_overflows_to_inf_and_writes_nan_as_0x7e() {
    let x = f32s(&[57344.0, 61439.0, 61440.0, -61440.0, f32::NAN, -f32::NAN, f32::from_bits(0x7F80_0001)]);
    assert_eq!(fast(&x, "F8_E5M2").data, vec![0x7B, 0x7B, 0x7C, 0xFC, 0x7E, 0xFE, 0x7E]);
}

#[test]
fn bf16_and_f16_nan_bits_follow_ml_dtypes_and_numpy() {
    let nans = [0x7FC0_0000u32, 0xFFC0_0000, 0x7F80_0001, 0x7FE0_0000, 0xFFFF_FFFF];
    let x = Tensor::from_f32(vec![5], &nans.map(f32::from_bits));
    // ml_dtypes: the canonical quiet NaN with the sign.
    assert_eq!(fast(&x, "BF16").as_u16_bits(), vec![0x7FC0, 0xFFC0, 0x7FC0, 0x7FC0, 0xFFC0]);
    // numpy: the payload's top 10 bits, made non-zero; a signalling NaN stays signalling.
    assert_eq!(fast(&x, "F16").as_u16_bits(), vec![0x7E00, 0xFE00, 0x7C01, 0x7F00, 0xFFFF]);
}

#[test]
fn subnormals_round_to_nearest_even_and_are_never_flushed() {
    let x = f32s(&[2f32.powi(-9), 2f32.powi(-10), 1.5 * 2f32.powi(-9), 2.5 * 2f32.powi(-9), 2f32.powi(-10) * 1.001]);
    // e4m3fn's smallest subnormal is 2⁻⁹: half of it ties to even (0), 1.5 and 2.5 steps tie to 2.
    assert_eq!(fast(&x, "F8_E4M3").data, vec![0x01, 0x00, 0x02, 0x02, 0x01]);
    // An f32 subnormal stays a bf16 subnormal.
    let tiny = f32s(&[1e-40, -1e-40]);
    assert_eq!(fast(&tiny, "BF16").as_u16_bits(), vec![round::f32_to_bf16_bits(1e-40), 0x8000 | round::f32_to_bf16_bits(1e-40)]);
    assert_ne!(fast(&tiny, "BF16").as_u16_bits()[0], 0);
}

#[test]
fn negative_zero_and_infinities_keep_their_sign() {
    let x = f32s(&[-0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY]);
    assert_eq!(fast(&x, "BF16").as_u16_bits(), vec![0x8000, 0x0000, 0x7F80, 0xFF80]);
    assert_eq!(fast(&x, "F16").as_u16_bits(), vec![0x8000, 0x0000, 0x7C00, 0xFC00]);
    assert_eq!(fast(&x, "F8_E5M2").data, vec![0x80, 0x00, 0x7C, 0xFC]);
}

#[test]
fn f16_overflow_threshold_is_the_tie_above_65504() {
    let x = f32s(&[65504.0, 65519.996, 65520.0]);
    assert_eq!(fast(&x, "F16").as_u16_bits(), vec![0x7BFF, 0x7BFF, 0x7C00]);
}

#[test]
fn a_cast_to_the_same_dtype_copies_the_bits() {
    let x = Tensor::from_f32(vec![3], &[1.5, f32::from_bits(0x7F80_0001), -0.0]);
    for out in [fast(&x, "F32"), reference(&x, "F32")] {
        assert_eq!(out, x);
    }
}

#[test]
fn shape_is_kept_and_empty_tensors_cast_to_empty_tensors() {
    let x = Tensor::from_f32(vec![2, 0, 3], &[]);
    for out in [fast(&x, "F8_E5M2"), reference(&x, "F8_E5M2")] {
        assert_eq!((out.dtype, out.shape.clone(), out.data.len()), (DType::F8E5M2, vec![2, 0, 3], 0));
    }
    let y = Tensor::from_f32(vec![2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(fast(&y, "BF16").shape, vec![2, 1, 2]);
}

#[test]
fn the_output_dtype_is_the_one_to_names() {
    let x = f32s(&[1.0]);
    for (name, dtype) in TARGETS {
        for out in cast(&x, name) {
            assert_eq!(out.unwrap().get("output").unwrap().dtype, dtype, "{name}");
        }
    }
}

#[test]
fn bad_parameters_and_dtypes_are_errors_naming_what_is_wrong() {
    let x = f32s(&[1.0]);
    for (params, needle) in [
        (json!({}), "'to': required but missing"),
        (json!({"to": "F8"}), "'to': must be one of"),
        (json!({"to": 5}), "'to': must be one of"),
        (json!({"to": "I32"}), "'to': must be one of"),
    ] {
        let mut inputs = Inputs::new();
        inputs.insert("x".into(), x.clone());
        let params: Params = params.as_object().unwrap().clone();
        for out in [CAST.run(Implementation::Fast, "w", &inputs, &params), CAST.run(Implementation::Reference, "w", &inputs, &params)] {
            let msg = out.unwrap_err().to_string();
            assert!(msg.contains(needle) && msg.contains("cast"), "{msg}");
        }
    }
    let ints = Tensor::from_i64(vec![1], &[3]);
    for out in cast(&ints, "BF16") {
        assert!(out.unwrap_err().to_string().contains("input 'x' is I64"));
    }
    let fp8 = Tensor::from_bytes(DType::F8E4M3, vec![1], vec![0x38]);
    assert!(cast(&fp8, "BF16")[0].is_err());
}

// ---------------------------------------------------------------- the encoders in numeric::round

/// `MiniFloat::encode` (the clear, slow definition) against ml_dtypes on every
/// f32, f16 and bf16 input of the fixture: the same value everywhere, and the
/// same bits except NaN's. It writes every NaN positive (ml_dtypes keeps the
/// sign: e4m3fn overflow of a negative value is 0xFF) and e5m2's NaN as 0x7F
/// (ml_dtypes: 0x7E); the comparer matches NaN by position, so both are NaN
/// for every purpose of a gate.
#[test]
fn minifloat_encode_matches_ml_dtypes_up_to_the_nan_bit_pattern() {
    for (src, to, x, want) in sections() {
        if src == "f64" || to == "F32" {
            continue; // ml_dtypes double-rounds f64 (above); f32 is not a MiniFloat
        }
        let fmt = minifloat(to);
        for i in 0..x.numel() {
            let v = x.dtype.decode(&x.data, i);
            let (got, w) = (fmt.encode(v) as u64, bits(&want, i));
            if is_nan(&want, i) {
                assert!(fmt.decode(got as u32).is_nan(), "{src} → {to}: {v:e}");
            } else {
                assert_eq!(got, w, "{src} → {to}: {v:e}");
            }
        }
    }
}

/// `MiniFloat::encode_f32`, the bit-level encoder the fast kernels use, is
/// exactly ml_dtypes from f32 (NaN bits included for bf16 and both fp8).
#[test]
fn encode_f32_is_ml_dtypes_from_f32() {
    for (src, to, x, want) in sections() {
        if src != "f32" || to == "F16" || to == "F32" {
            continue; // f32 → f16 is numpy's cast, with its own NaN payload rule (tested through the op)
        }
        let fmt = minifloat(to);
        let xs = x.to_f32_vec();
        for (i, &v) in xs.iter().enumerate() {
            assert_eq!(fmt.encode_f32(v) as u64, bits(&want, i), "{to}: {:#x}", v.to_bits());
        }
    }
    assert_eq!(round::f32_to_f8e4m3fn(-500.0), 0xFF);
    assert_eq!(round::f32_to_f8e5m2(f32::NAN), 0x7E);
}

fn minifloat(to: &str) -> MiniFloat {
    match to {
        "BF16" => BF16,
        "F16" => F16,
        "F8_E4M3" => F8E4M3FN,
        "F8_E5M2" => F8E5M2,
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(proptest_support::cases(20_000))]

    /// `encode_f32` against `MiniFloat::encode` on every bit pattern class:
    /// the two encoders share nothing but the format description.
    #[test]
    fn encode_f32_agrees_with_the_exact_encoder(b in any::<u32>(), which in 0usize..4, tie in any::<bool>(), nudge in -1i64..=1) {
        let fmt = [BF16, F16, F8E4M3FN, F8E5M2][which];
        // Half the cases at (or one ULP off) an exact tie of the format's
        // rounding point in a normal f32: random bits almost never are.
        let low = 23 - fmt.man_bits;
        let b = if tie { (((b & !((1u32 << low) - 1)) | (1 << (low - 1))) as i64 + nudge) as u32 } else { b };
        let x = f32::from_bits(b);
        let (fast, exact) = (fmt.encode_f32(x), fmt.encode(x as f64));
        if x.is_nan() || fmt.decode(exact).is_nan() {
            prop_assert!(fmt.decode(fast).is_nan());
        } else {
            prop_assert_eq!(fast, exact, "{:#x}", b);
        }
    }
}

// ---------------------------------------------------------------- fast vs reference

/// Values a weight holds, plus every hard class: ties of the narrow formats,
/// subnormals, huge values, ±0, ±inf, NaN.
fn f32_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => (-3.0f64..3.0).prop_map(|v| (v * 0.05) as f32),
        2 => any::<u32>().prop_map(|b| f32::from_bits((b & 0xFFFF_0000) | 0x8000)),
        2 => any::<u32>().prop_map(|b| f32::from_bits((b & 0xFFF8_0000) | 0x4_0000)),
        1 => any::<u32>().prop_map(|b| f32::from_bits(b & 0x807F_FFFF)),
        2 => any::<u32>().prop_map(f32::from_bits),
        1 => prop_oneof![Just(0.0f32), Just(-0.0), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(f32::NAN), Just(464.0), Just(61440.0)],
    ]
}

/// f64 values, including sticky-bit cases a hair off a tie. Excluded: values
/// within half an f32 ULP below a format's overflow tie, where ml_dtypes'
/// double rounding overflows and the correct rounding does not (a non-finite
/// mismatch by design; see `the_overflow_window_of_f64_inputs_is_a_real_difference`).
fn f64_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (f32_value(), -4i64..=4).prop_map(|(x, d)| f64::from_bits(((x as f64).to_bits() as i64).wrapping_add(d) as u64)),
        (f32_value(), prop_oneof![Just(2f64.powi(-30)), Just(-(2f64.powi(-30))), Just(2f64.powi(-45))]).prop_map(|(x, r)| x as f64 * (1.0 + r)),
        any::<u64>().prop_map(f64::from_bits),
    ]
    .prop_filter("not in an overflow window", |v| !in_overflow_window(*v))
}

fn in_overflow_window(v: f64) -> bool {
    let a = v.abs();
    // (tie − half an f32 ULP at the tie, tie + half an f32 ULP): bf16's tie is (2 − 2⁻⁸)·2¹²⁷,
    // e4m3fn's 464 (ties to 448 from below), e5m2's 61440.
    [((2.0 - 2f64.powi(-8)) * 2f64.powi(127), 2f64.powi(103)), (464.0, 2f64.powi(-16)), (61440.0, 2f64.powi(-9))]
        .iter()
        .any(|&(tie, half)| (a - tie).abs() <= half)
}

fn tensor_of(dtype: DType, values: &[f64]) -> Tensor {
    match dtype {
        DType::F64 => Tensor::from_f64(vec![values.len()], values),
        DType::F32 => Tensor::from_f32(vec![values.len()], &values.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DType::F16 => Tensor::from_u16_bits(dtype, vec![values.len()], &values.iter().map(|&v| round::f64_to_f16_bits(v)).collect::<Vec<_>>()),
        DType::BF16 => Tensor::from_u16_bits(dtype, vec![values.len()], &values.iter().map(|&v| round::f64_to_bf16_bits(v)).collect::<Vec<_>>()),
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(proptest_support::cases(300))]

    /// From f32, f16 and bf16 the two implementations are bit-identical
    /// (NaN payloads aside), so the default tolerance passes trivially.
    #[test]
    fn fast_equals_reference_from_f32_f16_and_bf16(
        values in prop::collection::vec(f32_value(), 0..64), src in 1usize..4, to in 0usize..5,
    ) {
        let x = tensor_of(SOURCES[src].1, &values.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let (f, r) = (fast(&x, TARGETS[to].0), reference(&x, TARGETS[to].0));
        let tol = CAST.stages[0].tolerance;
        prop_assert!(compare_stage(r.view(), f.view(), &tol, 0).passed());
        for i in 0..x.numel() {
            prop_assert!(bits(&f, i) == bits(&r, i) || (is_nan(&f, i) && is_nan(&r, i)));
        }
    }

    /// From f64 they pass the default profile: at most 1 ULP apart.
    #[test]
    fn fast_vs_reference_from_f64_passes_the_default_profile(
        values in prop::collection::vec(f64_value(), 0..64), to in 0usize..5,
    ) {
        let x = f64s(&values);
        let (f, r) = (fast(&x, TARGETS[to].0), reference(&x, TARGETS[to].0));
        let res = compare_stage(r.view(), f.view(), &CAST.stages[0].tolerance, 0);
        prop_assert!(res.passed(), "{:?}", res.failures);
    }
}

#[test]
fn the_overflow_window_of_f64_inputs_is_a_real_difference() {
    // A hair below bf16's overflow tie: correct rounding gives the largest
    // bf16 (0x7F7F); ml_dtypes rounds to f32 first, lands on the tie, and
    // ties-to-even sends it to inf. The comparer calls that a non-finite mismatch.
    let x = f64s(&[(2.0 - 2f64.powi(-8)) * 2f64.powi(127) - 2f64.powi(90)]);
    let (f, r) = (fast(&x, "BF16"), reference(&x, "BF16"));
    assert_eq!((f.as_u16_bits()[0], r.as_u16_bits()[0]), (0x7F80, 0x7F7F));
    let res = compare_stage(r.view(), f.view(), &CAST.stages[0].tolerance, 0);
    assert!(!res.passed() && res.failures[0].contains("non-finite mismatch"), "{:?}", res.failures);
}
