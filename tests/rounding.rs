//! Rounding is correct by construction: every narrowing parity performs is
//! checked against an independent encoder (`MiniFloat`, which rounds by exact
//! scaling and `round_ties_even` instead of bit manipulation), with ties,
//! subnormals, exponent edges, NaN and ±inf over-sampled.

mod proptest_support;
use parity::numeric::round::{self, BF16, F16, F8E4M3FN, F8E5M2};
use proptest::prelude::*;

/// f32 values where rounding to bf16 is interesting: exact ties (low 16 bits
/// 0x8000), one ULP either side of a tie, subnormals, the largest finite
/// values, and arbitrary bit patterns (including NaN and ±inf).
fn f32_edges() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(|b| f32::from_bits((b & 0xFFFF_0000) | 0x8000)),
        any::<u32>().prop_map(|b| f32::from_bits((b & 0xFFFF_0000) | 0x7FFF)),
        any::<u32>().prop_map(|b| f32::from_bits((b & 0xFFFF_0000) | 0x8001)),
        any::<u32>().prop_map(|b| f32::from_bits(b & 0x807F_FFFF)), // subnormals and zeros
        any::<u32>().prop_map(|b| f32::from_bits((b & 0x8000_FFFF) | 0x7F7F_0000)), // near max
        any::<u32>().prop_map(f32::from_bits),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::NAN),
        Just(-0.0f32),
    ]
}

/// f64 values around bf16/f16 ties where only bits below f32's precision
/// (the sticky bits a truncating conversion loses) decide the direction.
fn f64_edges() -> impl Strategy<Value = f64> {
    prop_oneof![
        (f32_edges(), -3i64..=3).prop_map(|(x, nudge)| {
            let b = (x as f64).to_bits() as i64;
            f64::from_bits(b.wrapping_add(nudge) as u64)
        }),
        (f32_edges(), any::<u32>()).prop_map(|(x, low)| f64::from_bits((x as f64).to_bits() ^ low as u64)),
        any::<u64>().prop_map(f64::from_bits),
        (-30i32..30, any::<u16>()).prop_map(|(e, m)| (1.0 + m as f64 / 65536.0) * 2f64.powi(e)),
    ]
}

fn same(a: u32, b: u32, nan_a: bool, nan_b: bool) -> bool {
    (nan_a && nan_b) || a == b
}

proptest! {
    #![proptest_config(proptest_support::cases(20_000))]

    #[test]
    fn f32_to_bf16_is_round_to_nearest_even(x in f32_edges()) {
        let got = round::f32_to_bf16_bits(x) as u32;
        let want = BF16.encode(x as f64);
        prop_assert!(same(got, want, BF16.decode(got).is_nan(), x.is_nan()), "{x:e}: got {got:#06x} want {want:#06x}");
    }

    #[test]
    fn f64_to_bf16_is_correctly_rounded_in_one_step(x in f64_edges()) {
        let got = round::f64_to_bf16_bits(x) as u32;
        let want = BF16.encode(x);
        prop_assert!(same(got, want, BF16.decode(got).is_nan(), x.is_nan()), "{x:e}: got {got:#06x} want {want:#06x}");
    }

    #[test]
    fn f64_to_f16_is_correctly_rounded_in_one_step(x in f64_edges()) {
        let got = round::f64_to_f16_bits(x) as u32;
        let want = F16.encode(x);
        prop_assert!(same(got, want, F16.decode(got).is_nan(), x.is_nan()), "{x:e}: got {got:#06x} want {want:#06x}");
    }

    #[test]
    fn f32_to_f16_is_round_to_nearest_even(x in f32_edges()) {
        let got = round::f32_to_f16_bits(x) as u32;
        let want = F16.encode(x as f64);
        prop_assert!(same(got, want, F16.decode(got).is_nan(), x.is_nan()), "{x:e}: got {got:#06x} want {want:#06x}");
    }

    #[test]
    fn f64_to_f32_round_odd_brackets_the_value(x in f64_edges()) {
        if !(x.is_finite() && x.abs() <= f32::MAX as f64) {
            // Overflow: truncation to odd gives ±f32::MAX.
            prop_assert!(!x.is_finite() || round::f64_to_f32_round_odd(x).abs() == f32::MAX || x.is_nan());
            return Ok(());
        }
        let r = round::f64_to_f32_round_odd(x);
        // Exact values are kept; inexact ones land on an odd neighbour within one ULP.
        if (x as f32) as f64 == x {
            prop_assert_eq!(r as f64, x);
        } else {
            // Inexact: an odd pattern whose two neighbours strictly bracket |x|,
            // i.e. the truncation of x with the sticky bit set.
            prop_assert_eq!(r.to_bits() & 1, 1);
            let m = r.abs().to_bits();
            let below = f32::from_bits(m - 1) as f64;
            let above = if m + 1 >= 0x7F80_0000 { f64::INFINITY } else { f32::from_bits(m + 1) as f64 };
            prop_assert!(below < x.abs() && x.abs() < above, "{x:e} -> {r:e}");
        }
    }

    #[test]
    fn fp8_encoding_is_monotone(a in -600.0f64..600.0, b in -600.0f64..600.0) {
        for fmt in [F8E4M3FN, F8E5M2] {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (dl, dh) = (fmt.decode(fmt.encode(lo)), fmt.decode(fmt.encode(hi)));
            if !dl.is_nan() && !dh.is_nan() {
                prop_assert!(dl <= dh, "{fmt:?}: {lo} -> {dl}, {hi} -> {dh}");
            }
        }
    }
}

#[test]
fn bf16_ties_round_to_even_in_both_directions() {
    // 1 + 2^-8 lies halfway between bf16 1.0 (even mantissa) and 1 + 2^-7 (odd): down.
    assert_eq!(round::f32_to_bf16_bits(1.0 + 2f32.powi(-8)), 0x3F80);
    // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
    assert_eq!(round::f32_to_bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3F82);
    // Negative ties mirror positive ones.
    assert_eq!(round::f32_to_bf16_bits(-(1.0 + 3.0 * 2f32.powi(-8))), 0xBF82);
}

#[test]
fn bf16_specials_keep_their_meaning() {
    assert_eq!(round::f32_to_bf16_bits(0.0), 0x0000);
    assert_eq!(round::f32_to_bf16_bits(-0.0), 0x8000);
    assert_eq!(round::f32_to_bf16_bits(f32::INFINITY), 0x7F80);
    assert_eq!(round::f32_to_bf16_bits(f32::NEG_INFINITY), 0xFF80);
    let nan = round::f32_to_bf16_bits(f32::NAN);
    assert_eq!(nan & 0x7F80, 0x7F80);
    assert_ne!(nan & 0x007F, 0, "NaN must not become inf");
    // f32::MAX is past bf16's max + half an ULP: overflows to inf under RNE.
    assert_eq!(round::f32_to_bf16_bits(f32::MAX), 0x7F80);
    // The smallest f32 subnormal is below half of bf16's smallest subnormal: 0.
    assert_eq!(round::f32_to_bf16_bits(f32::from_bits(1)), 0x0000);
    // bf16's smallest subnormal (2^-133) survives.
    assert_eq!(round::f32_to_bf16_bits(2f32.powi(-133)), 0x0001);
}

#[test]
fn fp8_codes_round_trip_through_f64() {
    for fmt in [F8E4M3FN, F8E5M2] {
        for bits in 0u32..256 {
            let v = fmt.decode(bits);
            if v.is_nan() {
                assert!(fmt.decode(fmt.encode(v)).is_nan());
            } else if v == 0.0 {
                assert_eq!(fmt.encode(v) & 0x7F, 0);
            } else {
                assert_eq!(fmt.encode(v), bits, "{fmt:?} code {bits:#04x} = {v}");
            }
        }
    }
}

proptest! {
    #![proptest_config(proptest_support::cases(2_000))]

    /// The bulk decoder (vectorised loops for f32 and bf16) gives what the
    /// element decoder gives, bit for bit, on any bytes of any dtype —
    /// NaN payloads, infinities, subnormals and -0 included.
    #[test]
    fn bulk_decoding_is_element_decoding(bytes in prop::collection::vec(any::<u8>(), 0..256), which in 0usize..11) {
        use parity::format::dtype::DType;
        let all = [DType::F64, DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::F8E5M2, DType::I64, DType::I32, DType::I8, DType::U8, DType::BOOL];
        let dtype = all[which];
        let n = bytes.len() / dtype.size();
        let mut bulk = vec![0.0f64; n];
        dtype.decode_into(&bytes[..n * dtype.size()], &mut bulk);
        for (k, x) in bulk.iter().enumerate() {
            let one = dtype.decode(&bytes, k);
            prop_assert!(x.to_bits() == one.to_bits() || (x.is_nan() && one.is_nan()), "{dtype:?} element {k}: {x} vs {one}");
        }
    }
}
