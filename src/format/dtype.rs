//! Element types of stage tensors, as safetensors names them.
//!
//! Metrics are computed on values decoded to f64 (every float type widens
//! to f64 exactly; an I64 beyond 2⁵³ does not, so integer types are also
//! read as integers, [`DType::int`], wherever a decision is taken). Bit-level facts — byte equality, ULP distance — are taken
//! from the stored bits, never from decoded values.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DType {
    F64,
    F32,
    BF16,
    F16,
    #[serde(rename = "F8_E4M3")]
    F8E4M3,
    #[serde(rename = "F8_E5M2")]
    F8E5M2,
    I64,
    I32,
    I16,
    I8,
    U8,
    BOOL,
}

impl DType {
    pub const ALL: [DType; 12] = [
        DType::F64,
        DType::F32,
        DType::BF16,
        DType::F16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
        DType::BOOL,
    ];

    /// The name used in safetensors headers and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::BF16 => "BF16",
            DType::F16 => "F16",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E5M2 => "F8_E5M2",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U8 => "U8",
            DType::BOOL => "BOOL",
        }
    }

    pub fn parse(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::BF16 | DType::F16 | DType::I16 => 2,
            DType::F8E4M3 | DType::F8E5M2 | DType::I8 | DType::U8 | DType::BOOL => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::BF16 | DType::F16 | DType::F8E4M3 | DType::F8E5M2)
    }

    /// Integer types (BOOL included: 0 and 1), compared as integers (see
    /// [`DType::int`]): every one of them fits an i64.
    pub fn is_integer(self) -> bool {
        matches!(self, DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8 | DType::BOOL)
    }

    /// Explicit mantissa (fraction) bits of a float dtype; None for integers.
    pub fn mantissa_bits(self) -> Option<u32> {
        match self {
            DType::F64 => Some(52),
            DType::F32 => Some(23),
            DType::F16 => Some(10),
            DType::BF16 => Some(7),
            DType::F8E4M3 => Some(3),
            DType::F8E5M2 => Some(2),
            _ => None,
        }
    }

    /// The unit roundoff u = 2^−(p+1) of a float dtype (p its mantissa bits):
    /// one round-to-nearest step moves a normal value x by at most u·|x|.
    /// None for integers.
    pub fn unit_roundoff(self) -> Option<f64> {
        self.mantissa_bits().map(|p| 2f64.powi(-(p as i32) - 1))
    }

    /// Types narrower than f32, where "how many ULPs apart" is the question users ask.
    pub fn is_low_precision_float(self) -> bool {
        matches!(self, DType::BF16 | DType::F16 | DType::F8E4M3 | DType::F8E5M2)
    }

    pub fn from_safetensors(d: safetensors::Dtype) -> Option<DType> {
        use safetensors::Dtype as S;
        Some(match d {
            S::F64 => DType::F64,
            S::F32 => DType::F32,
            S::BF16 => DType::BF16,
            S::F16 => DType::F16,
            S::F8_E4M3 => DType::F8E4M3,
            S::F8_E5M2 => DType::F8E5M2,
            S::I64 => DType::I64,
            S::I32 => DType::I32,
            S::I16 => DType::I16,
            S::I8 => DType::I8,
            S::U8 => DType::U8,
            S::BOOL => DType::BOOL,
            _ => return None,
        })
    }

    pub fn to_safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            DType::F64 => S::F64,
            DType::F32 => S::F32,
            DType::BF16 => S::BF16,
            DType::F16 => S::F16,
            DType::F8E4M3 => S::F8_E4M3,
            DType::F8E5M2 => S::F8_E5M2,
            DType::I64 => S::I64,
            DType::I32 => S::I32,
            DType::I16 => S::I16,
            DType::I8 => S::I8,
            DType::U8 => S::U8,
            DType::BOOL => S::BOOL,
        }
    }

    /// Decode element `i` of little-endian `bytes` to f64: exact for every
    /// type but I64, which is rounded to nearest beyond ±2⁵³ (use
    /// [`DType::int`] for a decision about integers).
    #[inline]
    pub fn decode(self, bytes: &[u8], i: usize) -> f64 {
        use crate::numeric::round;
        let s = self.size();
        let b = &bytes[i * s..i * s + s];
        match self {
            DType::F64 => f64::from_le_bytes(b.try_into().unwrap()),
            DType::F32 => f32::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::BF16 => half::bf16::from_bits(u16::from_le_bytes(b.try_into().unwrap())).to_f64(),
            DType::F16 => half::f16::from_bits(u16::from_le_bytes(b.try_into().unwrap())).to_f64(),
            DType::F8E4M3 => round::f8e4m3fn_to_f64(b[0]),
            DType::F8E5M2 => round::f8e5m2_to_f64(b[0]),
            DType::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::I32 => i32::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::I16 => i16::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::I8 => b[0] as i8 as f64,
            DType::U8 => b[0] as f64,
            DType::BOOL => (b[0] != 0) as u8 as f64,
        }
    }

    /// Element `i` of an integer type, exactly (f64 holds integers exactly
    /// only up to 2⁵³: [`DType::decode`] rounds an I64 beyond that). A BOOL
    /// is 0 or 1 whatever non-zero byte it stores. None for a float type.
    #[inline(always)]
    pub fn int(self, bytes: &[u8], i: usize) -> Option<i64> {
        let s = self.size();
        let b = &bytes[i * s..i * s + s];
        Some(match self {
            DType::I64 => i64::from_le_bytes(b.try_into().unwrap()),
            DType::I32 => i32::from_le_bytes(b.try_into().unwrap()) as i64,
            DType::I16 => i16::from_le_bytes(b.try_into().unwrap()) as i64,
            DType::I8 => b[0] as i8 as i64,
            DType::U8 => b[0] as i64,
            DType::BOOL => (b[0] != 0) as i64,
            _ => return None,
        })
    }

    /// Every element of `bytes` decoded into `out` (one per element,
    /// as [`DType::decode`]). The common float dtypes get a loop of their
    /// own, which the compiler vectorises; the rest go element by element.
    pub fn decode_into(self, bytes: &[u8], out: &mut [f64]) {
        let s = self.size();
        match self {
            DType::F32 => f32s_to_f64(bytes.as_chunks::<4>().0, out),
            DType::BF16 => bf16s_to_f64(bytes.as_chunks::<2>().0, out),
            DType::F16 => f16s_to_f64(bytes.as_chunks::<2>().0, out),
            DType::F64 => {
                for (x, b) in out.iter_mut().zip(bytes.as_chunks::<8>().0) {
                    *x = f64::from_le_bytes(*b);
                }
            }
            _ => {
                for (k, x) in out.iter_mut().enumerate().take(bytes.len() / s) {
                    *x = self.decode(bytes, k);
                }
            }
        }
    }

    /// The element's bits as an integer that is monotone in the value it
    /// encodes, so that `|key(a) - key(b)|` counts the representable values
    /// between them (the ULP distance). -0 and +0 share a key. For integers
    /// it is the value itself. NaN keys are meaningless: callers handle NaN first.
    // Always inlined: called per element in the ULP histogram and the
    // comparer, where a call per element cost ~14% of the plots' time.
    #[inline(always)]
    pub fn ordered_key(self, bytes: &[u8], i: usize) -> i64 {
        let s = self.size();
        let b = &bytes[i * s..i * s + s];
        // Sign-magnitude → monotone integer: negative values map below zero.
        fn sm(bits: u64, sign: u64) -> i64 {
            if bits & sign != 0 {
                -((bits & !sign) as i64)
            } else {
                bits as i64
            }
        }
        match self {
            DType::F64 => {
                // f64 magnitudes use 63 bits; fits i64 without overflow.
                sm(u64::from_le_bytes(b.try_into().unwrap()), 1 << 63)
            }
            DType::F32 => sm(u32::from_le_bytes(b.try_into().unwrap()) as u64, 1 << 31),
            DType::BF16 | DType::F16 => sm(u16::from_le_bytes(b.try_into().unwrap()) as u64, 1 << 15),
            DType::F8E4M3 | DType::F8E5M2 => sm(b[0] as u64, 1 << 7),
            DType::I64 => i64::from_le_bytes(b.try_into().unwrap()),
            _ => self.decode(bytes, i) as i64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

crate::simd_kernel! {
    /// Little-endian f32s widened to f64 (exact), for each SIMD path.
    fn f32s_to_f64(bytes: &[[u8; 4]], out: &mut [f64]) {
        for (x, b) in out.iter_mut().zip(bytes) {
            *x = f32::from_le_bytes(*b) as f64;
        }
    }
}

crate::simd_kernel! {
    /// Little-endian f16s widened to f64, exactly, without a branch (so the
    /// loop vectorises): the f16's exponent and mantissa, shifted into an
    /// f32's, make an f32 2¹¹² times too small for a normal or subnormal
    /// f16 (the f32 exponent bias is 112 more than the f16's), and the one
    /// multiplication by 2¹¹² is exact — a subnormal f16 becomes a
    /// subnormal f32 first, still exact. Exponent 31 (inf, NaN) maps to the
    /// f32's 255 instead, mantissa (NaN payload) kept. The sign is put back
    /// last. The same values as `half::f16::to_f64` (tests: every bit pattern).
    fn f16s_to_f64(bytes: &[[u8; 2]], out: &mut [f64]) {
        const SCALE: f32 = f32::from_bits((127 + 112) << 23); // 2¹¹²
        for (x, b) in out.iter_mut().zip(bytes) {
            let h = u16::from_le_bytes(*b) as u32;
            let a = (h & 0x7FFF) << 13;
            let m = if a >= 0x7C00 << 13 { f32::from_bits(a | 0x7F80_0000) } else { f32::from_bits(a) * SCALE };
            let v = f32::from_bits(m.to_bits() | ((h & 0x8000) << 16));
            *x = v as f64;
        }
    }
}

crate::simd_kernel! {
    /// Little-endian bf16s widened to f64: bf16 is the top half of an f32,
    /// so widening is a shift, then an exact f32 → f64; for each SIMD path.
    fn bf16s_to_f64(bytes: &[[u8; 2]], out: &mut [f64]) {
        for (x, b) in out.iter_mut().zip(bytes) {
            *x = f32::from_bits((u16::from_le_bytes(*b) as u32) << 16) as f64;
        }
    }
}
