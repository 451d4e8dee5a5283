//! Tensors as parity sees them: a dtype, a shape, and little-endian bytes.
//!
//! [`TensorView`] borrows (from a memory-mapped bundle); [`Tensor`] owns (what
//! an implementation produces). Both hash the same way: sha256 over the raw
//! little-endian bytes as stored (bf16/f16 as their u16 bits).

use crate::format::dtype::DType;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

// Tensors are little-endian bytes and kernels view them in place as f32/u16.
#[cfg(target_endian = "big")]
compile_error!("parity views little-endian tensor bytes in place; big-endian hosts are not supported");

#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Lowercase hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    let mut s = String::with_capacity(2 * digest.len());
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl<'a> TensorView<'a> {
    pub fn numel(&self) -> usize {
        numel(self.shape)
    }
    #[inline]
    pub fn get_f64(&self, i: usize) -> f64 {
        self.dtype.decode(self.data, i)
    }
    pub fn to_f64_vec(&self) -> Vec<f64> {
        (0..self.numel()).map(|i| self.get_f64(i)).collect()
    }
    pub fn sha256(&self) -> String {
        sha256_hex(self.data)
    }
    pub fn to_owned(&self) -> Tensor {
        Tensor { dtype: self.dtype, shape: self.shape.to_vec(), data: self.data.to_vec() }
    }
}

impl Tensor {
    pub fn view(&self) -> TensorView<'_> {
        TensorView { dtype: self.dtype, shape: &self.shape, data: &self.data }
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn sha256(&self) -> String {
        sha256_hex(&self.data)
    }
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.view().to_f64_vec()
    }

    pub fn from_f64(shape: Vec<usize>, values: &[f64]) -> Tensor {
        debug_assert_eq!(numel(&shape), values.len());
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor { dtype: DType::F64, shape, data }
    }
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Tensor {
        debug_assert_eq!(numel(&shape), values.len());
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor { dtype: DType::F32, shape, data }
    }
    /// A 16-bit float tensor (BF16 or F16) from its bit patterns.
    pub fn from_u16_bits(dtype: DType, shape: Vec<usize>, bits: &[u16]) -> Tensor {
        debug_assert_eq!(dtype.size(), 2);
        let data = bits.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor { dtype, shape, data }
    }
    /// A one-byte tensor (fp8, u8, i8, bool) from its bytes.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> Tensor {
        debug_assert_eq!(dtype.size() * numel(&shape), bytes.len());
        Tensor { dtype, shape, data: bytes }
    }
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Tensor {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor { dtype: DType::I64, shape, data }
    }

    /// The values as f32. Exact for every type narrower than f32; f64 values
    /// are rounded to nearest-even (callers that need f64 use `to_f64_vec`).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => self.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            DType::BF16 => {
                let bits: Vec<u16> = self.data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                let mut out = vec![0f32; bits.len()];
                crate::numeric::round::bf16s_to_f32(&bits, &mut out);
                out
            }
            _ => (0..self.numel()).map(|i| self.dtype.decode(&self.data, i) as f32).collect(),
        }
    }
    /// The values as f32, borrowed in place when the tensor is F32 and its
    /// storage is 4-byte aligned (always, in practice: allocators align
    /// large blocks to 16 bytes), converted otherwise.
    pub fn f32s(&self) -> Cow<'_, [f32]> {
        if self.dtype == DType::F32 {
            if let Ok(values) = bytemuck::try_cast_slice::<u8, f32>(&self.data) {
                return Cow::Borrowed(values);
            }
        }
        Cow::Owned(self.to_f32_vec())
    }

    /// The values of an F32 tensor, in place, to be changed where they lie;
    /// None for another dtype or (never, in practice) misaligned storage.
    pub fn f32s_mut(&mut self) -> Option<&mut [f32]> {
        if self.dtype != DType::F32 {
            return None;
        }
        bytemuck::try_cast_slice_mut::<u8, f32>(&mut self.data).ok()
    }

    /// An F32 tensor whose values `fill` writes straight into its storage
    /// (through a temporary only if the storage were misaligned).
    pub fn f32_with(shape: Vec<usize>, fill: impl FnOnce(&mut [f32])) -> Tensor {
        let n = numel(&shape);
        let mut data = vec![0u8; n * 4];
        match bytemuck::try_cast_slice_mut::<u8, f32>(&mut data) {
            Ok(values) => fill(values),
            Err(_) => {
                let mut values = vec![0f32; n];
                fill(&mut values);
                data.copy_from_slice(bytemuck::cast_slice(&values));
            }
        }
        Tensor { dtype: DType::F32, shape, data }
    }

    /// A 16-bit tensor (BF16/F16) whose bit patterns `fill` writes in place.
    pub fn u16_with(dtype: DType, shape: Vec<usize>, fill: impl FnOnce(&mut [u16])) -> Tensor {
        debug_assert_eq!(dtype.size(), 2);
        let n = numel(&shape);
        let mut data = vec![0u8; n * 2];
        match bytemuck::try_cast_slice_mut::<u8, u16>(&mut data) {
            Ok(bits) => fill(bits),
            Err(_) => {
                let mut bits = vec![0u16; n];
                fill(&mut bits);
                data.copy_from_slice(bytemuck::cast_slice(&bits));
            }
        }
        Tensor { dtype, shape, data }
    }

    pub fn as_u16_bits(&self) -> Vec<u16> {
        self.data.chunks_exact(2).map(|c| u16::from_le_bytes(c.try_into().unwrap())).collect()
    }
}
