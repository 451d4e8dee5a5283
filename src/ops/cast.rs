//! `cast` — a tensor rounded into another float format.
//!
//! **Reference**: one correctly rounded RNE step from the exact input value
//! (f64 → bf16/f16 through round-to-odd, fp8 by [`MiniFloat::encode`]);
//! overflow gives ±inf, or NaN where the format has no inf (e4m3fn); NaN gives
//! the target's quiet NaN with the input's sign; a cast to the input's own
//! dtype copies the bits.
//!
//! **Fast**: bit for bit what `x.astype(to)` does with numpy 2.4 and ml_dtypes
//! 0.6, the conversions a PyTorch/JAX user's tensors go through. Found by
//! exhaustive and edge-sampled runs of ml_dtypes (oracle/make_cast_fixture.py,
//! checked against tests/fixtures/cast_ml_dtypes.safetensors):
//!
//! * From f32, f16 and bf16 (exact in f32): one RNE step from the exact value,
//!   subnormals kept (no flush to zero), -0 kept. Overflow: ±inf for bf16, f16
//!   and e5m2; **NaN with the input's sign for e4m3fn** (no saturation: 464 is
//!   the tie between 448 and the NaN pattern and goes to 448, anything above
//!   is NaN); ±inf → ±inf, or signed NaN for e4m3fn.
//! * **From f64 to bf16, e4m3fn and e5m2 ml_dtypes rounds through f32**: RNE
//!   to f32 first, then RNE to the target — a double rounding that can land
//!   one ULP away from the correctly rounded result (e.g. 1 + 2⁻⁸ + 2⁻⁴⁰ →
//!   bf16 1.0, not 1.0078125), and at the overflow threshold can turn a
//!   finite result into inf/NaN (an f64 a hair below the tie between bf16's
//!   largest value and 2¹²⁸ rounds to that tie in f32, then up to inf). From
//!   f64 to f16 numpy rounds directly (correctly); f64 → f32 is the IEEE cast.
//! * NaN: ml_dtypes writes the target's quiet NaN with the input's sign
//!   (bf16 0x7FC0, e4m3fn 0x7F, e5m2 0x7E — not 0x7F); numpy's f16 and f32
//!   casts keep the payload's top bits instead (f32 → f16: `sign | 0x7C00 |
//!   mantissa >> 13`, or `| 1` if that would read as inf, so a signalling NaN
//!   stays signalling; f64 → f32 sets the quiet bit; f16 → f32 shifts the
//!   payload up unchanged); bf16 → f16 (ml_dtypes) writes the quiet NaN.
//!
//! The two agree bit for bit except on f64 inputs to bf16/e4m3fn/e5m2, where
//! the double rounding differs by at most one ULP — or, within half an f32 ULP
//! of the overflow threshold, by finite vs inf/NaN (the comparer then reports
//! a non-finite mismatch, which is the truth: ml_dtypes overflows there).
//! NaN payloads differ, which the comparer ignores (NaN is matched by position).

use super::{Accepts, Call, Input, Operation, Param, ParamKind, Sample, Stage, StageDtype, Stages};
use crate::compare::tolerance::Tolerance;
use crate::format::dtype::DType;
use crate::error::Result;
use crate::numeric::rng::SplitMix64;
use crate::numeric::round::{self, MiniFloat, BF16, F16, F8E4M3FN, F8E5M2};
use crate::format::tensor::Tensor;
use rayon::prelude::*;

pub static CAST: Operation = Operation {
    name: "cast",
    summary: "round a tensor into another float format (bf16, f16, fp8 e4m3fn/e5m2, f32), RNE",
    inputs: &[Input { name: "x", doc: "F64, F32, F16 or BF16, any shape", optional: false, accepts: Accepts::NonFp8Float }],
    params: &[Param { name: "to", kind: ParamKind::OneOf(&["BF16", "F16", "F8_E4M3", "F8_E5M2", "F32"]), doc: "\"BF16\", \"F16\", \"F8_E4M3\" (e4m3fn), \"F8_E5M2\" or \"F32\"", required: true }],
    stages: &[Stage {
        name: "output",
        dtype: StageDtype::FromParam("to"),
        tolerance: Tolerance {
            max_ulp: Some(1),
            ..Tolerance::gate(f64::INFINITY, f64::INFINITY)
        },
        why: "bit-exact from f32/f16/bf16; from f64, rounding through f32 (ml_dtypes, torch) instead of once can land 1 ULP off — \
              one ULP's size depends on the value and the format, so the ULP limit is the gate and the absolute limits are off",
    }],
    reference,
    fast,
    sample,
    dims: "[m, n]",
    bench_dims: &[&[1024, 1024], &[1024, 3072], &[4096, 4096]],
};

/// The formats `to` may name.
const TARGETS: [DType; 5] = [DType::BF16, DType::F16, DType::F8E4M3, DType::F8E5M2, DType::F32];
const SOURCES: [DType; 4] = [DType::F64, DType::F32, DType::F16, DType::BF16];

/// (source dtype, target dtype), checked.
fn checked(call: &Call) -> Result<(DType, DType)> {
    let x = call.input("x")?;
    if !SOURCES.contains(&x.dtype) {
        return Err(call.error(format!("input 'x' is {}; cast reads F64, F32, F16 or BF16", x.dtype)));
    }
    let to = match call.param("to") {
        None => return Err(call.error("parameter 'to' missing (one of BF16, F16, F8_E4M3, F8_E5M2, F32)")),
        Some(v) => v.as_str().and_then(DType::parse).filter(|d| TARGETS.contains(d)).ok_or_else(|| {
            call.error(format!("parameter 'to' must be one of \"BF16\", \"F16\", \"F8_E4M3\", \"F8_E5M2\", \"F32\", got {v}"))
        })?,
    };
    Ok((x.dtype, to))
}

/// The minifloat description of a narrow target.
fn format_of(d: DType) -> Option<MiniFloat> {
    match d {
        DType::BF16 => Some(BF16),
        DType::F16 => Some(F16),
        DType::F8E4M3 => Some(F8E4M3FN),
        DType::F8E5M2 => Some(F8E5M2),
        _ => None,
    }
}

/// The target's quiet NaN with the given sign, as the reference writes it.
fn quiet_nan(to: DType, negative: bool) -> u64 {
    let positive = match format_of(to) {
        Some(f) => f.quiet_nan_bits() as u64,
        None => 0x7FC0_0000, // F32
    };
    positive | ((negative as u64) << (8 * to.size() - 1))
}

fn reference(call: &Call) -> Result<Stages> {
    let (from, to) = checked(call)?;
    let x = call.input("x")?;
    let out = if from == to {
        x.clone()
    } else {
        convert(x, to, |b| {
            let v = from.decode(&b.to_le_bytes(), 0);
            if v.is_nan() {
                return quiet_nan(to, (b >> (8 * from.size() - 1)) & 1 == 1);
            }
            match to {
                DType::F32 => round::f64_to_f32(v).to_bits() as u64,
                DType::BF16 => round::f64_to_bf16_bits(v) as u64,
                DType::F16 => round::f64_to_f16_bits(v) as u64,
                DType::F8E4M3 | DType::F8E5M2 => {
                    let f = format_of(to).unwrap();
                    let r = f.encode(v) as u64;
                    // `encode` writes e4m3fn's overflow NaN unsigned; keep the sign.
                    if f.decode(r as u32).is_nan() {
                        quiet_nan(to, v < 0.0)
                    } else {
                        r
                    }
                }
                _ => unreachable!("checked admits only the TARGETS"),
            }
        })
    };
    Ok(Stages(vec![("output".into(), out)]))
}

fn fast(call: &Call) -> Result<Stages> {
    let (from, to) = checked(call)?;
    let x = call.input("x")?;
    let out = if from == to { x.clone() } else { fast_convert(x, from, to) };
    Ok(Stages(vec![("output".into(), out)]))
}

/// numpy/ml_dtypes' conversion from `from` to `to`, one element rule per pair
/// (each arm its own monomorphised loop: no call through a pointer per element).
fn fast_convert(x: &Tensor, from: DType, to: DType) -> Tensor {
    use DType as D;
    match (from, to) {
        (D::F64, D::F32) => convert(x, to, |b| numpy_f64_to_f32(b).to_bits() as u64),
        (D::F64, D::F16) => convert(x, to, numpy_f64_to_f16),
        (D::F64, D::BF16) => convert(x, to, |b| BF16.encode_f32(numpy_f64_to_f32(b)) as u64),
        (D::F64, D::F8E4M3) => convert(x, to, |b| F8E4M3FN.encode_f32(numpy_f64_to_f32(b)) as u64),
        (D::F64, D::F8E5M2) => convert(x, to, |b| F8E5M2.encode_f32(numpy_f64_to_f32(b)) as u64),
        (D::F32, D::F16) => convert(x, to, |b| numpy_f32_to_f16(b as u32) as u64),
        (D::F32, D::BF16) => convert(x, to, |b| BF16.encode_f32(f32::from_bits(b as u32)) as u64),
        (D::F32, D::F8E4M3) => convert(x, to, |b| F8E4M3FN.encode_f32(f32::from_bits(b as u32)) as u64),
        (D::F32, D::F8E5M2) => convert(x, to, |b| F8E5M2.encode_f32(f32::from_bits(b as u32)) as u64),
        (D::F16, D::F32) => convert(x, to, |b| numpy_f16_to_f32(b as u16) as u64),
        (D::F16, D::BF16) => convert(x, to, |b| BF16.encode_f32(f16_value(b)) as u64),
        (D::F16, D::F8E4M3) => convert(x, to, |b| F8E4M3FN.encode_f32(f16_value(b)) as u64),
        (D::F16, D::F8E5M2) => convert(x, to, |b| F8E5M2.encode_f32(f16_value(b)) as u64),
        // bf16 → f32 is a shift, payload and all.
        (D::BF16, D::F32) => convert(x, to, |b| b << 16),
        (D::BF16, D::F16) => convert(x, to, |b| F16.encode_f32(f32::from_bits((b as u32) << 16)) as u64),
        (D::BF16, D::F8E4M3) => convert(x, to, |b| F8E4M3FN.encode_f32(f32::from_bits((b as u32) << 16)) as u64),
        (D::BF16, D::F8E5M2) => convert(x, to, |b| F8E5M2.encode_f32(f32::from_bits((b as u32) << 16)) as u64),
        _ => unreachable!("checked admits only SOURCES × TARGETS, and a dtype to itself is a copy"),
    }
}

/// An f16's value as f32 (exact; any NaN stays a NaN, which is all the
/// ml_dtypes targets look at).
fn f16_value(b: u64) -> f32 {
    half::f16::from_bits(b as u16).to_f32()
}

/// numpy's f64 → f32: IEEE RNE; a NaN gets the quiet bit and keeps its
/// payload's top 22 bits.
fn numpy_f64_to_f32(b: u64) -> f32 {
    let x = f64::from_bits(b);
    if x.is_nan() {
        let sign = ((b >> 63) as u32) << 31;
        return f32::from_bits(sign | 0x7FC0_0000 | ((b & 0x000F_FFFF_FFFF_FFFF) >> 29) as u32);
    }
    x as f32
}

/// numpy's f32 → f16: RNE, overflow to ±inf; a NaN keeps its payload's top
/// 10 bits (made non-zero, so it stays a NaN) and is not quieted.
fn numpy_f32_to_f16(b: u32) -> u16 {
    let x = f32::from_bits(b);
    if x.is_nan() {
        return nan_payload_f16((b >> 31) as u16, (b & 0x7F_FFFF) >> 13);
    }
    F16.encode_f32(x) as u16
}

/// numpy's f64 → f16: correctly rounded in one step (round to odd into f32,
/// then RNE, is exactly that); NaN as in [`numpy_f32_to_f16`] from the top of
/// the 52-bit payload.
fn numpy_f64_to_f16(b: u64) -> u64 {
    let x = f64::from_bits(b);
    if x.is_nan() {
        return nan_payload_f16((b >> 63) as u16, ((b & 0x000F_FFFF_FFFF_FFFF) >> 42) as u32) as u64;
    }
    F16.encode_f32(round::f64_to_f32_round_odd(x)) as u64
}

fn nan_payload_f16(sign: u16, top10: u32) -> u16 {
    let payload = if top10 == 0 { 1 } else { top10 as u16 };
    (sign << 15) | 0x7C00 | payload
}

/// numpy's f16 → f32: exact, a NaN's payload shifted up unchanged.
fn numpy_f16_to_f32(b: u16) -> u32 {
    if b & 0x7C00 == 0x7C00 && b & 0x03FF != 0 {
        return ((b as u32 & 0x8000) << 16) | 0x7F80_0000 | ((b as u32 & 0x03FF) << 13);
    }
    half::f16::from_bits(b).to_f32().to_bits()
}

/// Apply an element rule (input bits → output bits) to a whole tensor, in
/// parallel over fixed chunks (the result does not depend on the thread count:
/// every element is independent).
fn convert(x: &Tensor, to: DType, rule: impl Fn(u64) -> u64 + Sync) -> Tensor {
    let mut out = vec![0u8; x.numel() * to.size()];
    // Element widths as constants, so each element is moved by a few
    // instructions rather than a memcpy call.
    match (x.dtype.size(), to.size()) {
        (8, 4) => convert_sized::<8, 4>(&x.data, &mut out, &rule),
        (8, 2) => convert_sized::<8, 2>(&x.data, &mut out, &rule),
        (8, 1) => convert_sized::<8, 1>(&x.data, &mut out, &rule),
        (4, 2) => convert_sized::<4, 2>(&x.data, &mut out, &rule),
        (4, 1) => convert_sized::<4, 1>(&x.data, &mut out, &rule),
        (2, 4) => convert_sized::<2, 4>(&x.data, &mut out, &rule),
        (2, 2) => convert_sized::<2, 2>(&x.data, &mut out, &rule),
        (2, 1) => convert_sized::<2, 1>(&x.data, &mut out, &rule),
        (si, so) => unreachable!("no cast from {si}-byte to {so}-byte elements"),
    }
    Tensor::from_bytes(to, x.shape.clone(), out)
}

fn convert_sized<const SI: usize, const SO: usize>(input: &[u8], out: &mut [u8], rule: &(impl Fn(u64) -> u64 + Sync)) {
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK * SO).zip(input.par_chunks(CHUNK * SI)).for_each(|(o, i)| {
        convert_chunk(i.as_chunks::<SI>().0, o.as_chunks_mut::<SO>().0, rule);
    });
}

crate::simd_kernel! {
    /// One chunk's elements through `rule`, compiled for each SIMD path
    /// (the same integer and IEEE operations on each: the same bits).
    fn convert_chunk[const SI: usize, const SO: usize, F: Fn(u64) -> u64](input: &[[u8; SI]], out: &mut [[u8; SO]], rule: &F) {
        for (oc, ic) in out.iter_mut().zip(input) {
            let mut b = [0u8; 8];
            b[..SI].copy_from_slice(ic);
            oc.copy_from_slice(&rule(u64::from_le_bytes(b)).to_le_bytes()[..SO]);
        }
    }
}

/// Random inputs: an f32 weight of shape `dims` with N(0, 0.02²) entries (a
/// typical weight scale), cast to bf16 — the everyday "save as bf16".
fn sample(seed: u64, dims: &[usize]) -> Sample {
    let mut rng = SplitMix64::new(seed);
    let n: usize = dims.iter().product();
    let mut inputs = super::Inputs::new();
    inputs.insert("x".into(), Tensor::from_f32(dims.to_vec(), &rng.normal_vec_f32(n, 0.02)));
    let mut params = super::Params::new();
    params.insert("to".into(), serde_json::json!("BF16"));
    Sample { inputs, params }
}
