//! How each dtype's bytes become values for the comparer: a `Codec` per
//! float dtype (decoded in bulk on the SIMD paths), integers kept as
//! integers, and a general decoder for any pair of dtypes.

use crate::format::dtype::DType;



pub(super) trait Codec: Copy + Send + Sync {
    fn dtype(self) -> DType;
    #[inline(always)]
    fn size(self) -> usize {
        self.dtype().size()
    }
    /// The element's value as f64 (exactly, but for an I64 beyond 2⁵³,
    /// which [`Codec::INT`] codecs never decide on).
    fn value(self, e: &[u8]) -> f64;
    /// The element's stored bits.
    fn bits(self, e: &[u8]) -> u64;
    /// Whether [`Codec::load8`] is available: the dtype widens exactly to f32
    /// and takes the fused block pass.
    const FAST: bool = false;
    /// Bits by which an f32 ULP count of the widened values exceeds the
    /// dtype's own (bf16 is the top half of an f32).
    const ULP_SHIFT: u32 = 0;
    /// Eight elements (`8 * size` bytes), widened to the bits of the f32 with
    /// the same value.
    #[inline(always)]
    fn load8(self, _b: &[u8]) -> [u32; 8] {
        unreachable!("load8 on a dtype without a fused pass")
    }
    /// Whether [`Codec::int`] is available: an integer dtype, measured by
    /// [`int_block`].
    const INT: bool = false;
    /// The element's value, exactly, as an integer.
    #[inline(always)]
    fn int(self, _e: &[u8]) -> i64 {
        unreachable!("int on a float dtype")
    }
}

#[derive(Clone, Copy)]
pub(super) struct F32Codec;
#[derive(Clone, Copy)]
pub(super) struct Bf16Codec;
#[derive(Clone, Copy)]
pub(super) struct F16Codec;
#[derive(Clone, Copy)]
pub(super) struct F64Codec;
#[derive(Clone, Copy)]
pub(super) struct AnyCodec(pub(super) DType);
/// An integer dtype (I8 … I64, U8, BOOL), read as an integer.
#[derive(Clone, Copy)]
pub(super) struct IntCodec(pub(super) DType);

impl Codec for F32Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::F32
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        f32::from_bits(self.bits(e) as u32) as f64
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as u64
    }
    const FAST: bool = true;
    #[inline(always)]
    fn load8(self, b: &[u8]) -> [u32; 8] {
        let b: &[u8; 32] = b.try_into().expect("8 f32");
        // SAFETY: 32 readable bytes; any bits are a valid [u32; 8].
        let w: [u32; 8] = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        w.map(u32::from_le)
    }
}

impl Codec for Bf16Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::BF16
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        // bf16 is the top half of an f32: widening is a shift, exact.
        f32::from_bits((self.bits(e) as u32) << 16) as f64
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u16::from_le_bytes([e[0], e[1]]) as u64
    }
    const FAST: bool = true;
    // Widening appends 16 zero bits: one bf16 ULP is 2^16 f32 ULPs.
    const ULP_SHIFT: u32 = 16;
    #[inline(always)]
    fn load8(self, b: &[u8]) -> [u32; 8] {
        let b: &[u8; 16] = b.try_into().expect("8 bf16");
        // SAFETY: 16 readable bytes; any bits are a valid [u16; 8].
        let w: [u16; 8] = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        w.map(|h| (u16::from_le(h) as u32) << 16)
    }
}

impl Codec for F16Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::F16
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        half::f16::from_bits(self.bits(e) as u16).to_f64()
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u16::from_le_bytes([e[0], e[1]]) as u64
    }
}

impl Codec for F64Codec {
    #[inline(always)]
    fn dtype(self) -> DType {
        DType::F64
    }
    #[inline(always)]
    fn value(self, e: &[u8]) -> f64 {
        f64::from_bits(self.bits(e))
    }
    #[inline(always)]
    fn bits(self, e: &[u8]) -> u64 {
        u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]])
    }
}

impl Codec for IntCodec {
    fn dtype(self) -> DType {
        self.0
    }
    fn value(self, e: &[u8]) -> f64 {
        self.0.decode(e, 0)
    }
    fn bits(self, e: &[u8]) -> u64 {
        AnyCodec(self.0).bits(e)
    }
    const INT: bool = true;
    #[inline(always)]
    fn int(self, e: &[u8]) -> i64 {
        self.0.int(e, 0).expect("IntCodec holds an integer dtype")
    }
}

impl Codec for AnyCodec {
    fn dtype(self) -> DType {
        self.0
    }
    fn value(self, e: &[u8]) -> f64 {
        self.0.decode(e, 0)
    }
    fn bits(self, e: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b[..e.len()].copy_from_slice(e);
        u64::from_le_bytes(b)
    }
}
