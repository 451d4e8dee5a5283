//! Every SIMD path gives the same bits: the codecs, casts, element-wise
//! operations, merges and every other fast kernel, and the comparer's
//! general pass (f16, fp8, mixed dtypes) and integer pass, each forced onto AVX-512, AVX2 and
//! the portable path in turn (those this CPU has), on values that include
//! NaN payloads, ±inf, subnormals, ±0 and rounding ties.
//!
//! The comparer's fused f32/bf16 block kernels are held to each other in
//! tests/check_kernels.rs.

mod proptest_support;
use parity::compare::metrics::{force_kernels, Kernels};
use parity::compare::tolerance::Tolerance;
use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use parity::numeric::simd::{force_path, SimdPath};
use parity::ops::{Implementation, REGISTRY};
use proptest::prelude::*;
use std::sync::Mutex;

/// The path is process-wide: tests in this file take turns.
static PATH: Mutex<()> = Mutex::new(());

fn paths() -> Vec<SimdPath> {
    SimdPath::ALL.into_iter().filter(|p| p.supported()).collect()
}

/// `f` on each path this CPU has; every result must equal the portable one.
fn on_every_path<T: PartialEq + std::fmt::Debug>(what: &str, f: impl Fn() -> T) -> Result<(), TestCaseError> {
    let _turn = PATH.lock().unwrap_or_else(|e| e.into_inner());
    force_path(Some(SimdPath::Portable));
    let portable = f();
    for p in paths() {
        force_path(Some(p));
        let got = f();
        force_path(None);
        if got != portable {
            let (g, w) = (format!("{got:?}"), format!("{portable:?}"));
            let at = g.bytes().zip(w.bytes()).position(|(a, b)| a != b).unwrap_or(0);
            let near = |s: &str| s.get(at.saturating_sub(150)..(at + 60).min(s.len())).unwrap_or("").to_string();
            prop_assert!(false, "{what}: the {} path differs from the portable one: …{}… vs …{}…", p.name(), near(&g), near(&w));
        }
    }
    force_path(None);
    Ok(())
}

/// f32 bit patterns: any bits (NaN payloads, subnormals, infinities), the
/// special values, and bf16/f16 rounding ties.
fn f32_bits() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        prop::sample::select(vec![
            0u32, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 0x7fc0_0000, 0xffc0_0001, 0x7f80_0001, 1, 0x8000_0001, 0x007f_ffff,
            0x7f7f_ffff, 0xff7f_ffff, 0x3f80_8000, 0x3f81_8000, 0x3f80_7fff, 0x3f80_1000, 0x4780_0000, 0x477f_f000,
        ]),
        (any::<u16>(), prop::sample::select(vec![0x8000u32, 0x1000, 0x0fff, 0x1001])).prop_map(|(hi, lo)| ((hi as u32) << 16) | lo),
    ]
}

fn f32_tensor(bits: &[u32], shape: Vec<usize>) -> Tensor {
    Tensor::from_bytes(DType::F32, shape, bits.iter().flat_map(|b| b.to_le_bytes()).collect())
}

/// A result's bytes (or its error's text), for comparing across paths.
fn outcome(r: parity::Result<parity::ops::Stages>) -> Result<Vec<(String, DType, Vec<usize>, Vec<u8>)>, String> {
    r.map(|s| s.0.into_iter().map(|(n, t)| (n, t.dtype, t.shape, t.data)).collect()).map_err(|e| e.to_string())
}

/// [`outcome`] with every NaN written as one pattern. Arithmetic on two
/// NaNs returns one of them, and which one (payload and sign) follows the
/// instruction's operand order, which the compiler may choose differently
/// per path: IEEE 754 leaves it open and Rust does not fix it. Everything
/// else, NaN or not, must be the same bits.
fn outcome_nan_as_nan(r: parity::Result<parity::ops::Stages>) -> Result<Vec<(String, DType, Vec<usize>, Vec<u8>)>, String> {
    outcome(r).map(|stages| {
        stages
            .into_iter()
            .map(|(n, dtype, shape, mut data)| {
                match dtype {
                    DType::F32 => data.chunks_exact_mut(4).for_each(|c| {
                        if f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_nan() {
                            c.copy_from_slice(&f32::NAN.to_le_bytes());
                        }
                    }),
                    DType::F64 => data.chunks_exact_mut(8).for_each(|c| {
                        if f64::from_le_bytes(c.try_into().unwrap()).is_nan() {
                            c.copy_from_slice(&f64::NAN.to_le_bytes());
                        }
                    }),
                    DType::BF16 | DType::F16 => data.chunks_exact_mut(2).for_each(|c| {
                        if dtype.decode(c, 0).is_nan() {
                            c.copy_from_slice(&[0, 0]);
                            c[1] = 0x7f;
                            c[0] = 0xff;
                        }
                    }),
                    DType::F8E4M3 | DType::F8E5M2 => data.iter_mut().for_each(|b| {
                        if dtype.decode(std::slice::from_ref(b), 0).is_nan() {
                            *b = 0x7f;
                        }
                    }),
                    _ => {}
                }
                (n, dtype, shape, data)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(proptest_support::cases(48))]

    #[test]
    fn the_codecs_give_the_same_bits_on_every_path(bits in prop::collection::vec(f32_bits(), 0..300)) {
        let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        on_every_path("f32 → bf16", || {
            let mut out = vec![0u16; x.len()];
            parity::numeric::round::f32s_to_bf16(&x, &mut out);
            out
        })?;
        let halves: Vec<u16> = bits.iter().map(|&b| (b >> 16) as u16 ^ b as u16).collect();
        on_every_path("bf16 → f32", || {
            let mut out = vec![0f32; halves.len()];
            parity::numeric::round::bf16s_to_f32(&halves, &mut out);
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        })?;
        let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        for dtype in [DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::F8E5M2] {
            on_every_path(&format!("decode {dtype}"), || {
                let mut out = vec![0f64; bytes.len() / dtype.size()];
                dtype.decode_into(&bytes, &mut out);
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            })?;
        }
    }

    #[test]
    fn every_cast_gives_the_same_bits_on_every_path(bits in prop::collection::vec(f32_bits(), 1..200)) {
        let cast = parity::ops::find("cast").unwrap();
        let f32x = f32_tensor(&bits, vec![bits.len()]);
        let sources = [
            Tensor::from_f64(vec![bits.len()], &bits.iter().map(|&b| f32::from_bits(b) as f64 * 1.000_000_1).collect::<Vec<_>>()),
            f32x.clone(),
            Tensor::from_bytes(DType::BF16, vec![bits.len()], bits.iter().flat_map(|b| ((b >> 16) as u16).to_le_bytes()).collect()),
            Tensor::from_bytes(DType::F16, vec![bits.len()], bits.iter().flat_map(|b| (*b as u16).to_le_bytes()).collect()),
        ];
        for x in &sources {
            for to in ["BF16", "F16", "F8_E4M3", "F8_E5M2", "F32"] {
                let inputs = [("x".to_string(), x.clone())].into_iter().collect();
                let params = serde_json::json!({ "to": to }).as_object().unwrap().clone();
                on_every_path(&format!("cast {} → {to}", x.dtype), || outcome(cast.run(Implementation::Fast, "w", &inputs, &params)))?;
            }
        }
    }

    /// Every operation's fast kernel, its sample's f32 inputs replaced by
    /// values with specials in them (an operation that refuses them must
    /// refuse alike); a NaN is a NaN whatever its payload (see
    /// [`outcome_nan_as_nan`]).
    #[test]
    fn every_fast_kernel_gives_the_same_bits_on_every_path(
        bits in prop::collection::vec(f32_bits(), 64), a in 1usize..9, b in 1usize..9, seed in any::<u64>(), specials in any::<bool>(),
    ) {
        for op in REGISTRY {
            let dims = match op.dims {
                d if d.starts_with("[T") => vec![2, a, b],
                d if d.matches(',').count() == 2 => vec![a, b, a.min(b)],
                _ => vec![a, b],
            };
            let mut sample = (op.sample)(seed, &dims);
            if specials {
                for t in sample.inputs.values_mut().filter(|t| t.dtype == DType::F32) {
                    let n = t.numel();
                    let cycled: Vec<u32> = bits.iter().cycle().take(n).copied().collect();
                    *t = f32_tensor(&cycled, t.shape.clone());
                }
            }
            on_every_path(op.name, || outcome_nan_as_nan(op.run(Implementation::Fast, "w", &sample.inputs, &sample.params)))?;
        }
    }

    /// The comparer's general pass (every pair but same-dtype f32/bf16
    /// blocks): the same metrics, to the bit, on every compilation.
    #[test]
    fn the_comparer_s_general_pass_gives_the_same_bits_on_every_path(
        l in prop::collection::vec(any::<u16>(), 0..3000), r in prop::collection::vec(any::<u16>(), 0..3000),
    ) {
        let n = l.len().min(r.len());
        let bytes = |v: &[u16]| v[..n].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (lb, rb) = (bytes(&l), bytes(&r));
        let tol = Tolerance::gate(1e-3, 1e-5).with_max_ulp(4);
        // Integers (their own exact pass, any widths) too.
        let pairs = [(DType::F16, DType::F16), (DType::BF16, DType::F16), (DType::F8E4M3, DType::F8E4M3), (DType::I64, DType::I64), (DType::I32, DType::I64), (DType::U8, DType::I8)];
        for (ld, rd) in pairs {
            let shape_l = [lb.len() / ld.size()];
            let shape_r = [rb.len() / rd.size()];
            let len = shape_l[0].min(shape_r[0]);
            let lv = parity::format::tensor::TensorView { dtype: ld, shape: &[len], data: &lb[..len * ld.size()] };
            let rv = parity::format::tensor::TensorView { dtype: rd, shape: &[len], data: &rb[..len * rd.size()] };
            let _turn = PATH.lock().unwrap_or_else(|e| e.into_inner());
            force_kernels(Kernels::Portable);
            let portable = format!("{:?}", parity::compare::compare_stage(lv, rv, &tol, 3));
            for (k, p) in [(Kernels::Avx2, SimdPath::Avx2), (Kernels::Avx512, SimdPath::Avx512)] {
                if p.supported() {
                    force_kernels(k);
                    let got = format!("{:?}", parity::compare::compare_stage(lv, rv, &tol, 3));
                    force_kernels(Kernels::Best);
                    prop_assert_eq!(&got, &portable, "{}/{}: the {} path differs", ld, rd, p.name());
                }
            }
            force_kernels(Kernels::Best);
        }
    }
}

/// The branch-free f16 decoder gives half's value for every one of the
/// 65,536 bit patterns (NaN for each NaN), on every path.
#[test]
fn every_f16_decodes_as_half_does_on_every_path() {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let want: Vec<f64> = (0..=u16::MAX).map(|h| half::f16::from_bits(h).to_f64()).collect();
    on_every_path("decode every f16", || {
        let mut out = vec![0f64; want.len()];
        DType::F16.decode_into(&bytes, &mut out);
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    })
    .unwrap();
    let _turn = PATH.lock().unwrap_or_else(|e| e.into_inner());
    for p in paths() {
        force_path(Some(p));
        let mut out = vec![0f64; want.len()];
        DType::F16.decode_into(&bytes, &mut out);
        force_path(None);
        for (h, (got, want)) in out.iter().zip(&want).enumerate() {
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{}: f16 {h:#06x} → {got} (half: {want})", p.name());
        }
    }
}

proptest! {
    #![proptest_config(proptest_support::cases(64))]

    /// The reference quantizer's vectorised types (Q8_0, Q4_0, Q5_0) write
    /// the same blocks on every path, for any f32 bits (the caller uses
    /// only finite blocks; the others must still not differ).
    #[test]
    fn the_reference_quantizer_writes_the_same_blocks_on_every_path(bits in prop::collection::vec(f32_bits(), 32..=256)) {
        use parity::format::gguf::quant::{quantize_reference, GgmlType};
        let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).take(bits.len() / 32 * 32).collect();
        let finite: Vec<f32> = x.iter().map(|v| if v.is_finite() { *v } else { 0.5 }).collect();
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0] {
            on_every_path(&format!("quantize {}", ty.name()), || (quantize_reference(ty, &x), quantize_reference(ty, &finite)))?;
        }
    }

    /// `inspect`'s block statistics: the same bits on every path, for any
    /// length (whole lanes and a tail) and any f32 bits (NaN, ±inf,
    /// subnormals, ±0).
    #[test]
    fn inspect_s_block_moments_give_the_same_bits_on_every_path(bits in prop::collection::vec(f32_bits(), 0..300)) {
        let x: Vec<f64> = bits.iter().map(|&b| f32::from_bits(b) as f64).collect();
        on_every_path("block_moments", || {
            let m = parity::inspect::moments::block_moments(&x, f32::MIN_POSITIVE as f64);
            format!("{:?} {:x} {:x} {:x}", m, m.mean.to_bits(), m.m2.to_bits(), m.min.to_bits())
        })?;
    }
}

#[test]
fn the_x86_paths_are_tested_where_the_cpu_has_them() {
    // On an x86-64 CI machine at least AVX2 is expected; a machine without it
    // tests only the portable path, and says so here rather than pass quietly.
    #[cfg(target_arch = "x86_64")]
    assert!(
        SimdPath::Avx2.supported() || std::env::var_os("PARITY_ALLOW_NO_AVX2").is_some(),
        "this x86-64 CPU has no AVX2: the tests above compared the portable path with itself (set PARITY_ALLOW_NO_AVX2=1 to accept that)"
    );
}
