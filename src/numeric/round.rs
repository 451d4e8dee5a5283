//! Rounding between floating-point formats.
//!
//! Every narrowing in parity is round-to-nearest, ties-to-even (RNE), applied
//! exactly once per declared conversion:
//!
//! * f64 → f32: Rust's `as` cast is IEEE-754 RNE (overflow to ±inf, NaN kept).
//! * f32 → bf16 / f16: `half`'s conversions, which are RNE on the f32 bits.
//! * f64 → bf16 / f16 / fp8: **not** `half::bf16::from_f64`, which drops the
//!   low 32 mantissa bits before rounding (losing sticky bits, so a value just
//!   above a tie rounds down). We round f64 → f32 *to odd* first and then RNE
//!   to the target. Round-to-odd into a format with at least two more bits
//!   than the target, followed by RNE, is exactly the correctly rounded result
//!   (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums: proved
//!   algorithms using rounding to odd", 2008); f32 carries 16 more bits than
//!   bf16 and 13 more than f16, also through the subnormal range.
//! * fp8 (e4m3fn, e5m2) use [`MiniFloat`]: an exact encoder from f64 (one
//!   correct RNE step) and a bit-level one from f32 that matches ml_dtypes
//!   bit for bit (see [`MiniFloat::encode`] and `MiniFloat::encode_f32`).

/// f64 → f32, round-to-nearest-even (the IEEE default; what Rust's `as` does).
#[inline]
pub fn f64_to_f32(x: f64) -> f32 {
    x as f32
}

/// f32 → bf16 bits, RNE. NaN stays NaN (quiet bit set), ±inf stays ±inf.
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

crate::simd_kernel! {
    /// [`f32_to_bf16_bits`] of every value, compiled for each SIMD path.
    pub fn f32s_to_bf16(x: &[f32], out: &mut [u16]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f32_to_bf16_bits(v);
        }
    }
}

crate::simd_kernel! {
    /// bf16 bits → f32, exact (the top half of an f32: a shift, NaN
    /// payloads kept), compiled for each SIMD path.
    pub fn bf16s_to_f32(bits: &[u16], out: &mut [f32]) {
        for (o, &b) in out.iter_mut().zip(bits) {
            *o = f32::from_bits((b as u32) << 16);
        }
    }
}

/// f32 → f16 bits, RNE, overflow to ±inf.
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// f64 → f32 rounding to odd: truncate toward zero, and if anything was lost
/// set the lowest mantissa bit. Overflow truncates to ±f32::MAX (whose last
/// bit is already odd), which a following RNE step sends on to ±inf exactly
/// when the true value would have rounded there.
#[inline]
pub fn f64_to_f32_round_odd(x: f64) -> f32 {
    if !x.is_finite() {
        return x as f32;
    }
    let mut r = x as f32;
    if r.is_infinite() || (r as f64).abs() > x.abs() {
        // Step one ULP toward zero (bit patterns of same-signed floats are monotone).
        r = f32::from_bits(r.to_bits() - 1);
    }
    if r as f64 != x {
        r = f32::from_bits(r.to_bits() | 1);
    }
    r
}

/// f64 → bf16 bits, correctly rounded (RNE) in one step.
#[inline]
pub fn f64_to_bf16_bits(x: f64) -> u16 {
    f32_to_bf16_bits(f64_to_f32_round_odd(x))
}

/// f64 → f16 bits, correctly rounded (RNE) in one step.
#[inline]
pub fn f64_to_f16_bits(x: f64) -> u16 {
    f32_to_f16_bits(f64_to_f32_round_odd(x))
}

/// A small binary floating-point format (fp8 and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MiniFloat {
    pub exp_bits: u32,
    pub man_bits: u32,
    pub bias: i32,
    /// IEEE-like (top exponent holds ±inf and NaNs) or "fn" (finite-only: no
    /// inf; only the all-ones pattern is NaN, the rest of the top exponent is finite).
    pub finite_only: bool,
}

/// OCP fp8 E4M3 as `ml_dtypes.float8_e4m3fn`: bias 7, no inf, NaN = S.1111.111, max 448.
pub const F8E4M3FN: MiniFloat = MiniFloat { exp_bits: 4, man_bits: 3, bias: 7, finite_only: true };
/// OCP fp8 E5M2 as `ml_dtypes.float8_e5m2`: bias 15, IEEE inf/NaN, max 57344.
pub const F8E5M2: MiniFloat = MiniFloat { exp_bits: 5, man_bits: 2, bias: 15, finite_only: false };

impl MiniFloat {
    fn top_exp(self) -> u32 {
        (1 << self.exp_bits) - 1
    }
    fn nan_bits(self) -> u32 {
        // Positive quiet NaN: all exponent and mantissa bits set (e4m3fn's only
        // NaN; for e5m2 ml_dtypes also produces 0x7F).
        (self.top_exp() << self.man_bits) | ((1 << self.man_bits) - 1)
    }
    fn inf_bits(self) -> u32 {
        self.top_exp() << self.man_bits
    }

    /// Largest finite value.
    pub fn max_finite(self) -> f64 {
        let (e, m) = if self.finite_only {
            // Top exponent is finite except the all-ones mantissa.
            (self.top_exp() as i32, (1u32 << self.man_bits) - 2)
        } else {
            (self.top_exp() as i32 - 1, (1u32 << self.man_bits) - 1)
        };
        (1.0 + m as f64 / (1u64 << self.man_bits) as f64) * 2f64.powi(e - self.bias)
    }

    /// Decode bits to f64 (exact).
    pub fn decode(self, bits: u32) -> f64 {
        let sign = if bits >> (self.exp_bits + self.man_bits) & 1 == 1 { -1.0 } else { 1.0 };
        let e = (bits >> self.man_bits) & self.top_exp();
        let m = bits & ((1 << self.man_bits) - 1);
        if self.finite_only {
            if e == self.top_exp() && m == (1 << self.man_bits) - 1 {
                return f64::NAN;
            }
        } else if e == self.top_exp() {
            return if m == 0 { sign * f64::INFINITY } else { f64::NAN };
        }
        let frac = m as f64 / (1u64 << self.man_bits) as f64;
        if e == 0 {
            sign * frac * 2f64.powi(1 - self.bias)
        } else {
            sign * (1.0 + frac) * 2f64.powi(e as i32 - self.bias)
        }
    }

    /// Encode f64 with one correctly rounded RNE step (ml_dtypes' semantics
    /// from f32/f16/bf16 inputs; from f64, ml_dtypes rounds through f32 first
    /// for bf16 and fp8 — see `ops::cast`): NaN → the quiet NaN of the format
    /// with the input's sign; values whose rounded magnitude exceeds the
    /// largest finite value → ±inf where the format has inf, ±NaN where it
    /// does not (e4m3fn, no saturation); ±inf likewise; below half the
    /// smallest subnormal → ±0.
    pub fn encode(self, x: f64) -> u32 {
        let sign_bit = (x.is_sign_negative() as u32) << (self.exp_bits + self.man_bits);
        // NaN keeps its sign and becomes the format's quiet NaN, as in
        // ml_dtypes (e4m3fn 0x7F/0xFF, e5m2 0x7E/0xFE, bf16 0x7FC0/0xFFC0).
        if x.is_nan() {
            return sign_bit | self.quiet_nan_bits();
        }
        let overflow = sign_bit | if self.finite_only { self.nan_bits() } else { self.inf_bits() };
        let a = x.abs();
        if a.is_infinite() {
            return overflow;
        }
        if a == 0.0 {
            return sign_bit;
        }
        let emin = 1 - self.bias; // exponent of the smallest normal
        // Exponent of a (exact, from the bits; f64 subnormals are far below
        // any fp8 subnormal and simply round to zero through emin).
        let e = ((a.to_bits() >> 52) as i32 - 1023).max(emin);
        // Quantum at that exponent; a / quantum is exact (scaling by 2^k).
        let quantum = 2f64.powi(e - self.man_bits as i32);
        let r = (a / quantum).round_ties_even() * quantum;
        if r > self.max_finite() {
            return overflow;
        }
        if r == 0.0 {
            return sign_bit;
        }
        // Re-derive exponent field and mantissa from the rounded value
        // (rounding may have carried into the next binade).
        let re = ((r.to_bits() >> 52) as i32 - 1023).max(emin);
        let field = if r < 2f64.powi(emin) { 0 } else { (re + self.bias) as u32 };
        let scale = 2f64.powi(re - self.man_bits as i32);
        let mant_total = (r / scale) as u32; // includes the hidden bit for normals
        let man = mant_total & ((1 << self.man_bits) - 1);
        sign_bit | (field << self.man_bits) | man
    }
}

/// bf16 and f16 described the same way: used in tests as an independent
/// encoder to check the round-to-odd path above.
pub const BF16: MiniFloat = MiniFloat { exp_bits: 8, man_bits: 7, bias: 127, finite_only: false };
pub const F16: MiniFloat = MiniFloat { exp_bits: 5, man_bits: 10, bias: 15, finite_only: false };

#[inline]
pub fn f8e4m3fn_to_f64(bits: u8) -> f64 {
    F8E4M3FN.decode(bits as u32)
}
#[inline]
pub fn f8e5m2_to_f64(bits: u8) -> f64 {
    F8E5M2.decode(bits as u32)
}
/// f64 → fp8 e4m3fn bits, RNE, ml_dtypes semantics (overflow → NaN).
#[inline]
pub fn f64_to_f8e4m3fn(x: f64) -> u8 {
    F8E4M3FN.encode(x) as u8
}
/// f64 → fp8 e5m2 bits, RNE, ml_dtypes semantics (overflow → ±inf).
#[inline]
pub fn f64_to_f8e5m2(x: f64) -> u8 {
    F8E5M2.encode(x) as u8
}

/// Bit-level encoders from f32, for the kernels that cast whole tensors (the
/// cast and fp8 operations). [`MiniFloat::encode`] stays the clear, slow
/// definition these are tested against.
impl MiniFloat {
    /// The canonical quiet NaN, positive: what ml_dtypes writes for every NaN
    /// (with the input's sign). IEEE-like formats set the top mantissa bit
    /// (bf16 0x7FC0, f16 0x7E00, e5m2 0x7E); e4m3fn has only the all-ones pattern (0x7F).
    #[inline]
    pub fn quiet_nan_bits(self) -> u32 {
        if self.finite_only {
            self.nan_bits()
        } else {
            self.inf_bits() | (1 << (self.man_bits - 1))
        }
    }

    /// f32 → this format, RNE, by integer arithmetic on the f32 bits: bit for
    /// bit what ml_dtypes 0.6 `astype` does from float32 (checked against it in
    /// tests/ops_cast.rs):
    /// * the rounding is one RNE step from the exact f32 value, subnormals
    ///   included (no flush to zero); -0 stays -0;
    /// * a value whose rounded magnitude exceeds the largest finite one
    ///   overflows to ±inf, or to NaN with the input's sign where the format has
    ///   no inf (e4m3fn: 464 → 448 by ties-to-even, anything above → NaN);
    ///   ±inf likewise;
    /// * NaN (any payload) → the sign-preserving [`quiet_nan_bits`](Self::quiet_nan_bits).
    ///
    /// Valid for formats with at most 22 mantissa bits and an exponent range
    /// inside f32's (bf16, f16, both fp8 formats). Inlined so that, called on
    /// one of the constants below, the format folds away.
    #[inline]
    pub fn encode_f32(self, x: f32) -> u32 {
        debug_assert!(self.man_bits <= 22 && 1 - self.bias >= -126 && self.top_exp() as i32 - self.bias <= 128);
        let bits = x.to_bits();
        let mb = self.man_bits as i32;
        let sign = (bits >> 31) << (self.exp_bits + self.man_bits);
        let overflow = sign | if self.finite_only { self.nan_bits() } else { self.inf_bits() };
        let abs = bits & 0x7FFF_FFFF;
        if abs > 0x7F80_0000 {
            return sign | self.quiet_nan_bits();
        }
        if abs == 0x7F80_0000 {
            return overflow;
        }
        if abs == 0 {
            return sign;
        }
        let max_mag = if self.finite_only { self.nan_bits() - 1 } else { self.inf_bits() - 1 };
        let e32 = (abs >> 23) as i32;
        if e32 >= 128 - self.bias {
            // At or above the target's smallest normal: RNE on the bits (add
            // just under half an ULP, plus the lowest kept bit for ties), then
            // re-bias the exponent. A carry out of the mantissa moves into the
            // exponent field, which is the right result.
            let shift = 23 - self.man_bits;
            let rounded = abs + ((1 << (shift - 1)) - 1) + ((abs >> shift) & 1);
            let mag = (rounded >> shift) - (((127 - self.bias) as u32) << self.man_bits);
            return if mag > max_mag { overflow } else { sign | mag };
        }
        // Target subnormals: abs = sig · 2^exp exactly, sig < 2^24.
        let (sig, exp) = if e32 == 0 { (abs, -149) } else { ((abs & 0x7F_FFFF) | 0x80_0000, e32 - 150) };
        let log2 = exp + 31 - sig.leading_zeros() as i32; // floor(log2 |x|)
        let e = log2.max(1 - self.bias); // the target binade (the subnormal one at the bottom)
        // Bits of sig below the target's quantum 2^(e - mb); at least 23 - mb ≥ 1.
        let shift = e - mb - exp;
        if shift >= 25 {
            return sign; // below half the smallest subnormal: sig < 2^24 ≤ half a quantum
        }
        let half = 1u32 << (shift - 1);
        let rem = sig & ((half << 1) - 1);
        let mut q = sig >> shift;
        if rem > half || (rem == half && q & 1 == 1) {
            q += 1;
        }
        // value = q · 2^(e - mb), q ≤ 2^(mb+1). With the hidden bit counted in q,
        // ((e + bias − 1) << mb) + q is the magnitude's encoding in every case:
        // subnormal (e at the bottom, q < 2^mb), normal, and a carry into the
        // next binade (q = 2^(mb+1)).
        let mag = (((e + self.bias - 1) as u32) << mb) + q;
        if mag > max_mag {
            return overflow;
        }
        sign | mag
    }
}

/// f32 → fp8 e4m3fn bits, ml_dtypes semantics (see [`MiniFloat::encode_f32`]).
#[inline]
pub fn f32_to_f8e4m3fn(x: f32) -> u8 {
    F8E4M3FN.encode_f32(x) as u8
}
/// f32 → fp8 e5m2 bits, ml_dtypes semantics (see [`MiniFloat::encode_f32`]).
#[inline]
pub fn f32_to_f8e5m2(x: f32) -> u8 {
    F8E5M2.encode_f32(x) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_to_bf16_keeps_sticky_bits_that_half_drops() {
        // 1 + 2^-8 is the tie between bf16 1.0 and 1.0078125; a hair above it
        // (in the low 32 bits of the f64 mantissa) must round up.
        let x = 1.0 + 2f64.powi(-8) + 2f64.powi(-40);
        assert_eq!(f64_to_bf16_bits(x), 0x3F81);
        // The exact tie rounds to even (down).
        assert_eq!(f64_to_bf16_bits(1.0 + 2f64.powi(-8)), 0x3F80);
    }

    #[test]
    fn fp8_formats_have_the_documented_extremes() {
        assert_eq!(F8E4M3FN.max_finite(), 448.0);
        assert_eq!(F8E5M2.max_finite(), 57344.0);
        assert_eq!(F8E4M3FN.encode(448.0), 0x7E);
        assert!(F8E4M3FN.decode(F8E4M3FN.encode(1e6)).is_nan());
        assert_eq!(F8E5M2.encode(1e6), 0x7C);
        assert_eq!(F8E5M2.encode(-1e6), 0xFC);
        // Smallest subnormals.
        assert_eq!(F8E4M3FN.decode(1), 2f64.powi(-9));
        assert_eq!(F8E5M2.decode(1), 2f64.powi(-16));
    }
}
