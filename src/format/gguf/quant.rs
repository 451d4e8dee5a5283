//! ggml's tensor types, and dequantization of the block types to f32.
//!
//! Each block type stores a run of values (32, or 256 for the K-quants and
//! IQ4_XS) as small integers with one or more f16 scales. Dequantizing is,
//! per value, an integer decoded from packed bits, turned into f32 (exact:
//! every such integer is small), then one f32 multiplication by a scale —
//! and for the types with a minimum, one more f32 operation (`d·q + m` for
//! Q4_1/Q5_1; `(d·sc)·q − dmin·m` for the K-quants). These are exactly the
//! operations, in the same order, that ggml's reference C code
//! (`dequantize_row_*`) and the `gguf` Python package's
//! `gguf.quants.dequantize` perform: each product or difference is one
//! IEEE round-to-nearest-even step, never fused (no `mul_add`), so the
//! result is the same bits on every path. f16 scales widen to f32 exactly.
//!
//! The kernels are [`crate::simd_kernel!`] functions: compiled for AVX-512,
//! AVX2 and portable code and run on the one in use; they hold no
//! reassociation or fused operation, so every path gives the same bits
//! (tests/gguf.rs runs each path).

use super::super::dtype::DType;
use half::f16;

/// A ggml tensor type (`ggml_type`), by the id GGUF stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq3Xxs,
    Iq1S,
    Iq4Nl,
    Iq3S,
    Iq2S,
    Iq4Xs,
    I8,
    I16,
    I32,
    I64,
    F64,
    Iq1M,
    BF16,
    Tq1_0,
    Tq2_0,
    Mxfp4,
}

const QK_K: u64 = 256;

impl GgmlType {
    pub fn from_id(id: u32) -> Option<GgmlType> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            16 => Iq2Xxs,
            17 => Iq2Xs,
            18 => Iq3Xxs,
            19 => Iq1S,
            20 => Iq4Nl,
            21 => Iq3S,
            22 => Iq2S,
            23 => Iq4Xs,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => Iq1M,
            30 => BF16,
            34 => Tq1_0,
            35 => Tq2_0,
            39 => Mxfp4,
            _ => return None,
        })
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            Iq2Xxs => "IQ2_XXS",
            Iq2Xs => "IQ2_XS",
            Iq3Xxs => "IQ3_XXS",
            Iq1S => "IQ1_S",
            Iq4Nl => "IQ4_NL",
            Iq3S => "IQ3_S",
            Iq2S => "IQ2_S",
            Iq4Xs => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            Iq1M => "IQ1_M",
            BF16 => "BF16",
            Tq1_0 => "TQ1_0",
            Tq2_0 => "TQ2_0",
            Mxfp4 => "MXFP4",
        }
    }

    /// (values per block, bytes per block), as ggml's type traits give them.
    pub fn block(self) -> (u64, u64) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            F64 | I64 => (1, 8),
            I8 => (1, 1),
            Q4_0 | Iq4Nl => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 40),
            Q2K => (QK_K, 84),
            Q3K => (QK_K, 110),
            Q4K => (QK_K, 144),
            Q5K => (QK_K, 176),
            Q6K => (QK_K, 210),
            Q8K => (QK_K, 292),
            Iq2Xxs => (QK_K, 66),
            Iq2Xs => (QK_K, 74),
            Iq3Xxs => (QK_K, 98),
            Iq1S => (QK_K, 50),
            Iq3S => (QK_K, 110),
            Iq2S => (QK_K, 82),
            Iq4Xs => (QK_K, 136),
            Iq1M => (QK_K, 56),
            Tq1_0 => (QK_K, 54),
            Tq2_0 => (QK_K, 66),
            Mxfp4 => (32, 17),
        }
    }

    /// Bits per value, as `inspect` shows it.
    pub fn bits_per_weight(self) -> f64 {
        let (b, s) = self.block();
        (s * 8) as f64 / b as f64
    }

    /// The dtype of a type that is stored as plain values, if it is one.
    pub fn plain_dtype(self) -> Option<DType> {
        use GgmlType::*;
        Some(match self {
            F32 => DType::F32,
            F16 => DType::F16,
            BF16 => DType::BF16,
            F64 => DType::F64,
            I8 => DType::I8,
            I16 => DType::I16,
            I32 => DType::I32,
            I64 => DType::I64,
            _ => return None,
        })
    }

    /// Whether parity dequantizes this block type.
    pub fn dequantizes(self) -> bool {
        use GgmlType::*;
        matches!(self, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K | Iq4Nl | Iq4Xs)
    }
}

/// IQ4_NL's and IQ4_XS's 16 non-linear levels.
const KVALUES: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// `p + m`, where both may be NaN: an addition commutes, so the compiler
/// may swap its operands on one path and not another, and x86 returns the
/// first operand's NaN. ggml's scalar code (and numpy) compute `d·q + m`
/// with `d·q` first: its NaN is the one kept, on every path.
#[inline(always)]
fn scale_add(p: f32, m: f32) -> f32 {
    if p.is_nan() {
        p
    } else {
        p + m
    }
}

#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    // f16 → f32 is exact.
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Dequantize whole blocks of `ty` from `raw` into `out` (one f32 per
/// value). `raw` holds `out.len() / block` blocks. Panics on a type that
/// does not dequantize (callers check [`GgmlType::dequantizes`]).
pub fn dequantize(ty: GgmlType, raw: &[u8], out: &mut [f32]) {
    let (block, size) = ty.block();
    let (block, size) = (block as usize, size as usize);
    assert_eq!(out.len() % block, 0, "whole blocks");
    assert_eq!(raw.len(), out.len() / block * size, "raw bytes of those blocks");
    match ty {
        GgmlType::Q4_0 => q4_0(raw, out),
        GgmlType::Q4_1 => q4_1(raw, out),
        GgmlType::Q5_0 => q5_0(raw, out),
        GgmlType::Q5_1 => q5_1(raw, out),
        GgmlType::Q8_0 => q8_0(raw, out),
        GgmlType::Q2K => q2_k(raw, out),
        GgmlType::Q3K => q3_k(raw, out),
        GgmlType::Q4K => q4_k(raw, out),
        GgmlType::Q5K => q5_k(raw, out),
        GgmlType::Q6K => q6_k(raw, out),
        GgmlType::Iq4Nl => iq4_nl(raw, out),
        GgmlType::Iq4Xs => iq4_xs(raw, out),
        t => panic!("{} does not dequantize", t.name()),
    }
}

crate::simd_kernel! {
    /// Q4_0: d (f16), 16 bytes of nibbles; value = (nibble − 8)·d. Low
    /// nibbles are values 0–15, high nibbles 16–31.
    fn q4_0(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
            let d = f16_at(b, 0);
            for j in 0..16 {
                y[j] = ((b[2 + j] & 0x0F) as i32 - 8) as f32 * d;
                y[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
            }
        }
    }
}

crate::simd_kernel! {
    /// Q4_1: d, m (f16), nibbles; value = d·nibble + m (two roundings).
    fn q4_1(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(20).zip(out.chunks_exact_mut(32)) {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                y[j] = scale_add(d * (b[4 + j] & 0x0F) as f32, m);
                y[j + 16] = scale_add(d * (b[4 + j] >> 4) as f32, m);
            }
        }
    }
}

crate::simd_kernel! {
    /// Q5_0: d (f16), qh (u32: each value's fifth bit), nibbles; value =
    /// (nibble | bit·16 − 16)·d.
    fn q5_0(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(22).zip(out.chunks_exact_mut(32)) {
            let d = f16_at(b, 0);
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            for j in 0..16 {
                let lo = (b[6 + j] & 0x0F) as u32 | ((qh >> j) & 1) << 4;
                let hi = (b[6 + j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
                y[j] = (lo as i32 - 16) as f32 * d;
                y[j + 16] = (hi as i32 - 16) as f32 * d;
            }
        }
    }
}

crate::simd_kernel! {
    /// Q5_1: d, m (f16), qh, nibbles; value = d·q + m.
    fn q5_1(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(24).zip(out.chunks_exact_mut(32)) {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            for j in 0..16 {
                let lo = (b[8 + j] & 0x0F) as u32 | ((qh >> j) & 1) << 4;
                let hi = (b[8 + j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
                y[j] = scale_add(d * lo as f32, m);
                y[j + 16] = scale_add(d * hi as f32, m);
            }
        }
    }
}

crate::simd_kernel! {
    /// Q8_0: d (f16), 32 i8; value = q·d.
    fn q8_0(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
            let d = f16_at(b, 0);
            for j in 0..32 {
                y[j] = (b[2 + j] as i8) as f32 * d;
            }
        }
    }
}

crate::simd_kernel! {
    /// Q2_K: 16 scale bytes (low nibble a 16-value group's scale, high its
    /// min), 64 bytes of 2-bit values, d and dmin (f16). Value =
    /// (d·scale)·q − dmin·min. Bytes 32g..32g+32 hold values 128g + 32s + l
    /// at bit 2s.
    fn q2_k(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(84).zip(out.chunks_exact_mut(256)) {
            let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
            let (scales, qs) = (&b[0..16], &b[16..80]);
            for e in 0..256 {
                let (g, s, l) = (e / 128, (e / 32) % 4, e % 32);
                let q = (qs[g * 32 + l] >> (2 * s)) & 3;
                let sc = scales[e / 16];
                let dl = d * (sc & 0x0F) as f32;
                let ml = dmin * (sc >> 4) as f32;
                y[e] = dl * q as f32 - ml;
            }
        }
    }
}

crate::simd_kernel! {
    /// Q3_K: 32 bytes of high bits (value 32i + l at bit i of byte l; the
    /// offset 4 applies where the bit is 0), 64 bytes of 2-bit values (as
    /// Q2_K), 12 bytes of 6-bit scales (minus 32), d (f16). Value =
    /// (d·scale)·(q − 4·(1 − hbit)).
    fn q3_k(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(110).zip(out.chunks_exact_mut(256)) {
            let (hmask, qs, sc, d) = (&b[0..32], &b[32..96], &b[96..108], f16_at(b, 108));
            let mut dl = [0f32; 16];
            for (k, dl) in dl.iter_mut().enumerate() {
                let low = if k < 8 { sc[k] & 0x0F } else { sc[k - 8] >> 4 };
                let high = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
                let scale = (low | high << 4) as i32 - 32;
                *dl = d * scale as f32;
            }
            for e in 0..256 {
                let (g, s, l) = (e / 128, (e / 32) % 4, e % 32);
                let ql = ((qs[g * 32 + l] >> (2 * s)) & 3) as i32;
                let hbit = ((hmask[e % 32] >> (e / 32)) & 1) as i32;
                let q = ql - ((hbit ^ 1) << 2);
                y[e] = dl[e / 16] * q as f32;
            }
        }
    }
}

/// The K-quants' eight 6-bit scales and mins from their 12 bytes.
#[inline(always)]
fn scale_min_k4(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 0x3F;
        mn[j] = s[4 + j] & 0x3F;
        sc[4 + j] = (s[8 + j] & 0x0F) | ((s[j] >> 2) & 0x30);
        mn[4 + j] = (s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30);
    }
    (sc, mn)
}

crate::simd_kernel! {
    /// Q4_K: d, dmin (f16), 12 scale bytes, 128 bytes of nibbles (bytes
    /// 32g..32g+32: low nibbles values 64g + l, high 64g + 32 + l). Value =
    /// (d·sc)·q − dmin·min per 32-value group.
    fn q4_k(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(144).zip(out.chunks_exact_mut(256)) {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (sc, mn) = scale_min_k4(&b[4..16]);
            let qs = &b[16..144];
            for e in 0..256 {
                let (g, h, l) = (e / 64, (e / 32) % 2, e % 32);
                let q = (qs[g * 32 + l] >> (4 * h)) & 0x0F;
                let j = e / 32;
                y[e] = (d * sc[j] as f32) * q as f32 - dmin * mn[j] as f32;
            }
        }
    }
}

crate::simd_kernel! {
    /// Q5_K: Q4_K with a fifth bit per value (32 bytes: value 32i + l at
    /// bit i of byte l).
    fn q5_k(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(176).zip(out.chunks_exact_mut(256)) {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (sc, mn) = scale_min_k4(&b[4..16]);
            let (qh, qs) = (&b[16..48], &b[48..176]);
            for e in 0..256 {
                let (g, h, l) = (e / 64, (e / 32) % 2, e % 32);
                let q = ((qs[g * 32 + l] >> (4 * h)) & 0x0F) | (((qh[e % 32] >> (e / 32)) & 1) << 4);
                let j = e / 32;
                y[e] = (d * sc[j] as f32) * q as f32 - dmin * mn[j] as f32;
            }
        }
    }
}

crate::simd_kernel! {
    /// Q6_K: 128 bytes of low nibbles (bytes 64g..64g+64: low nibbles values
    /// 128g + l, high 128g + 64 + l), 64 bytes of high 2 bits (bytes
    /// 32g..32g+32: value 128g + 32s + l at bit 2s), 16 i8 scales, d (f16).
    /// Value = (d·scale)·(q − 32) per 16-value group.
    fn q6_k(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(210).zip(out.chunks_exact_mut(256)) {
            let (ql, qh, scales, d) = (&b[0..128], &b[128..192], &b[192..208], f16_at(b, 208));
            for e in 0..256 {
                let g = e / 128;
                let r = e % 128;
                let lo = (ql[g * 64 + r % 64] >> (4 * (r / 64))) & 0x0F;
                let hi = (qh[g * 32 + r % 32] >> (2 * (r / 32))) & 3;
                let q = (lo | hi << 4) as i32 - 32;
                y[e] = (d * (scales[e / 16] as i8) as f32) * q as f32;
            }
        }
    }
}

crate::simd_kernel! {
    /// IQ4_NL: Q4_0's layout, each nibble an index into 16 non-linear
    /// levels; value = d·level.
    fn iq4_nl(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
            let d = f16_at(b, 0);
            for j in 0..16 {
                y[j] = d * KVALUES[(b[2 + j] & 0x0F) as usize] as f32;
                y[j + 16] = d * KVALUES[(b[2 + j] >> 4) as usize] as f32;
            }
        }
    }
}

crate::simd_kernel! {
    /// IQ4_XS: d (f16), the scales' high 2 bits (u16), their low nibbles (4
    /// bytes), 128 bytes of level indices (bytes 16j..16j+16: low nibbles
    /// values 32j + l, high 32j + 16 + l). Value = (d·(scale − 32))·level.
    fn iq4_xs(raw: &[u8], out: &mut [f32]) {
        for (b, y) in raw.chunks_exact(136).zip(out.chunks_exact_mut(256)) {
            let d = f16_at(b, 0);
            let scales_h = u16::from_le_bytes([b[2], b[3]]);
            let (scales_l, qs) = (&b[4..8], &b[8..136]);
            for j in 0..8 {
                let low = (scales_l[j / 2] >> (4 * (j % 2))) & 0x0F;
                let high = ((scales_h >> (2 * j)) & 3) as u8;
                let dl = d * ((low | high << 4) as i32 - 32) as f32;
                for l in 0..16 {
                    y[32 * j + l] = dl * KVALUES[(qs[16 * j + l] & 0x0F) as usize] as f32;
                    y[32 * j + 16 + l] = dl * KVALUES[(qs[16 * j + l] >> 4) as usize] as f32;
                }
            }
        }
    }
}

/// Whether [`quantize_reference`] knows the type: the types ggml's
/// reference quantizer has a bit-exact twin for in `gguf.quants.quantize`.
pub fn has_reference_quantizer(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0)
}

/// ggml's reference quantizer (`quantize_row_*_ref`), bit for bit as the
/// `gguf` package's `gguf.quants.quantize` does it: every step in f32, in
/// its order — the scale from the block's largest magnitude (Q4_0, Q5_0:
/// the first value of largest magnitude, signed, over −8 or −16; Q8_0:
/// max |x| / 127) or its range (Q4_1, Q5_1: (max − min) / 15 or 31), its
/// reciprocal (0 for a zero scale), each value times that, offset and
/// truncated (Q4/Q5; Q8_0 rounds half away from zero), clipped; the scale
/// (and min) stored as f16 by round-to-nearest-even. `values` holds whole
/// blocks; None for a type without a reference quantizer.
pub fn quantize_reference(ty: GgmlType, values: &[f32]) -> Option<Vec<u8>> {
    let (block, size) = ty.block();
    let (block, size) = (block as usize, size as usize);
    if !has_reference_quantizer(ty) || values.len() % block != 0 {
        return None;
    }
    let mut out = vec![0u8; values.len() / block * size];
    if matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0) {
        quantize_symmetric(ty, values, &mut out, block, size);
        return Some(out);
    }
    quantize_blocks(ty, values, &mut out, block, size);
    Some(out)
}

crate::simd_kernel! {
    /// [`quantize_blocks`] for the types whose every step gives the same
    /// bits whatever the instructions (Q8_0, Q4_0, Q5_0: maxima of
    /// magnitudes and strict comparisons, `round` and `trunc`, which are
    /// exact), compiled for each SIMD path: on the baseline x86-64 target
    /// `f32::round` is a call into libm per value, on AVX2 a few
    /// instructions.
    fn quantize_symmetric(ty: GgmlType, values: &[f32], out: &mut [u8], block: usize, size: usize) {
        quantize_blocks(ty, values, out, block, size)
    }
}

/// Quantize whole blocks of `values` into `out` as ggml's reference
/// quantizer does (see [`quantize_reference`]).
#[inline(always)]
fn quantize_blocks(ty: GgmlType, values: &[f32], out: &mut [u8], block: usize, size: usize) {
    let f16_bytes = |v: f32| f16::from_f32(v).to_bits().to_le_bytes();
    let recip = |d: f32| if d == 0.0 { 0.0 } else { 1.0 / d };
    for (x, b) in values.chunks_exact(block).zip(out.chunks_exact_mut(size)) {
        match ty {
            GgmlType::Q8_0 => {
                // max |x| as the largest magnitude's bits (for non-NaN
                // floats the bits order as the values; a NaN counts as 0,
                // as f32::max skips it): an integer maximum, which the
                // compiler vectorises where a float one it may not reorder.
                let mut top = 0u32;
                for &v in x {
                    let m = v.to_bits() & 0x7FFF_FFFF;
                    top = top.max(if m > 0x7F80_0000 { 0 } else { m });
                }
                let amax = f32::from_bits(top);
                let d = amax / 127.0;
                let id = recip(d);
                b[0..2].copy_from_slice(&f16_bytes(d));
                let mut q = [0i8; 32];
                for (q, &v) in q.iter_mut().zip(x) {
                    // np_roundf: half away from zero, as f32::round; the
                    // clamp is what `as i8` saturates to anyway (NaN → 0 both ways).
                    let r = (v * id).round();
                    let r = if r.is_nan() { 0.0 } else { r.clamp(-128.0, 127.0) };
                    // SAFETY: r is a whole number in [-128, 127], not NaN.
                    *q = unsafe { r.to_int_unchecked::<i32>() } as i8;
                }
                for (o, q) in b[2..34].iter_mut().zip(q) {
                    *o = q as u8;
                }
            }
            GgmlType::Q4_0 | GgmlType::Q5_0 => {
                let (levels, offset, top) = if ty == GgmlType::Q4_0 { (-8f32, 8.5f32, 15u8) } else { (-16.0, 16.5, 31) };
                // The first value of largest magnitude, with its sign.
                let mut max = 0f32;
                let mut amax = 0f32;
                for &v in x {
                    if v.abs() > amax {
                        amax = v.abs();
                        max = v;
                    }
                }
                let d = max / levels;
                let id = recip(d);
                let mut q = [0u8; 32];
                for (q, &v) in q.iter_mut().zip(x) {
                    *q = ((v * id + offset).trunc() as u8).min(top);
                }
                b[0..2].copy_from_slice(&f16_bytes(d));
                pack(ty, &q, b);
            }
            _ => {
                // Q4_1, Q5_1
                let top = if ty == GgmlType::Q4_1 { 15u8 } else { 31 };
                let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let min = x.iter().fold(f32::INFINITY, |m, &v| m.min(v));
                let d = (max - min) / top as f32;
                let id = recip(d);
                let mut q = [0u8; 32];
                for (q, &v) in q.iter_mut().zip(x) {
                    *q = (((v - min) * id + 0.5).trunc() as u8).min(top);
                }
                b[0..2].copy_from_slice(&f16_bytes(d));
                b[2..4].copy_from_slice(&f16_bytes(min));
                pack(ty, &q, b);
            }
        }
    }
}

/// Pack 32 quantized values after a block's scale fields: nibbles (value j
/// low, value j + 16 high), and for Q5 a u32 of fifth bits before them.
fn pack(ty: GgmlType, q: &[u8], b: &mut [u8]) {
    let at = match ty {
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 4,
        GgmlType::Q5_0 => 6,
        _ => 8,
    };
    if matches!(ty, GgmlType::Q5_0 | GgmlType::Q5_1) {
        let qh: u32 = q.iter().enumerate().map(|(i, &v)| ((v >> 4) as u32 & 1) << i).sum();
        b[at - 4..at].copy_from_slice(&qh.to_le_bytes());
    }
    for j in 0..16 {
        b[at + j] = (q[j] & 0x0F) | (q[j + 16] << 4);
    }
}
