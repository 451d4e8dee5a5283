//! GGUF files (llama.cpp's format, versions 2 and 3), read from their
//! header: every metadata value, every tensor's type, shape and offset;
//! the data is read in place, a block range at a time.
//!
//! Layout: `GGUF`, a u32 version, a u64 tensor count, a u64 metadata count;
//! the metadata (a string key, a u32 value type, the value — arrays hold a
//! u32 element type, a u64 count, the elements); the tensor infos (a name,
//! a u32 dimension count, that many u64 dimensions, a u32 ggml type, a u64
//! offset from the start of the data); then the data, which starts at the
//! first multiple of `general.alignment` (default 32) after the infos, and
//! every tensor's offset is a multiple of it too. Everything little-endian.
//!
//! **Shapes.** GGUF lists `ne[0]`, the fastest-varying dimension, first;
//! parity's shapes are row-major (slowest first), so a GGUF shape is the
//! list reversed ([`Tensor::shape`]): a `[4096, 11008]` (ne) weight is the
//! `[11008, 4096]` tensor PyTorch and safetensors hold.
//!
//! **Types.** F32, F16, BF16, F64, I8, I16, I32 and I64 tensors are plain
//! regions of that dtype. Quantized tensors (the block types of
//! [`quant::GgmlType`]) are read as F32, dequantized block by block as
//! ggml's reference C code does ([`quant`]). A type parity does not
//! dequantize is refused when a command reads the tensor, naming it.
//!
//! Bounds: every count and string length is checked against the bytes left
//! in the file before anything is allocated; more than 4 dimensions, a
//! dimension product that overflows, a row length that is not a whole
//! number of blocks, an offset that is misaligned or runs past the end, and
//! duplicate names are refused, naming the file and tensor.

pub mod quant;

use super::checkpoint::{Encoding, Located};
use super::dtype::DType;
use crate::error::{Error, Result};
use quant::GgmlType;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// The most header bytes read (metadata and infos): a vocabulary of 256k
/// tokens with scores and types is ~10 MiB; this is far above any real one.
const MAX_HEADER: u64 = 1 << 30;
const MAX_DIMS: u32 = 4;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Vec<Value>),
}

impl Value {
    /// An integer value, whatever its width (for counts such as head counts).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A short rendering for `inspect`'s metadata table: arrays by their
    /// length and first elements.
    pub fn short(&self) -> String {
        match self {
            Value::Str(s) if s.chars().count() > 60 => format!("{:?}…", s.chars().take(60).collect::<String>()),
            Value::Str(s) => format!("{s:?}"),
            Value::Array(a) => {
                let head: Vec<String> = a.iter().take(4).map(Value::short).collect();
                format!("[{}{}] ({} values)", head.join(", "), if a.len() > 4 { ", …" } else { "" }, a.len())
            }
            Value::U8(v) => v.to_string(),
            Value::I8(v) => v.to_string(),
            Value::U16(v) => v.to_string(),
            Value::I16(v) => v.to_string(),
            Value::U32(v) => v.to_string(),
            Value::I32(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::F32(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
        }
    }
}

/// One tensor's info.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// `ne`, fastest dimension first, as the file lists it.
    pub ne: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Absolute offset of the tensor's first byte in the file.
    pub offset: u64,
    /// Bytes the tensor occupies in the file.
    pub bytes: u64,
}

impl Tensor {
    /// The row-major shape: `ne` reversed (see the module's doc).
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().map(|&d| d as usize).collect()
    }

    pub fn numel(&self) -> u64 {
        // Checked at read: 0 when a dimension is, else a product that fits.
        if self.ne.contains(&0) {
            0
        } else {
            self.ne.iter().product()
        }
    }
}

/// A parsed GGUF header.
#[derive(Debug)]
pub struct Header {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<Tensor>,
    pub data_start: u64,
}

impl Header {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Reads the header from the file's first bytes, fetched as needed (a
/// MiB, then doubling; never past `MAX_HEADER`), so a large file's data is
/// never read to parse its header.
struct Cursor<'a> {
    bytes: Vec<u8>,
    at: usize,
    path: &'a Path,
    file: &'a File,
    /// How far the header may reach: the file's length, at most `MAX_HEADER`.
    limit: usize,
}

impl Cursor<'_> {
    fn fail<T>(&self, what: impl std::fmt::Display) -> Result<T> {
        Err(Error::bundle(self.path, format!("GGUF header at byte {}: {what}", self.at)))
    }

    /// Bytes left before the header's limit.
    fn left(&self) -> u64 {
        (self.limit - self.at) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&[u8]> {
        let left = self.left();
        if n > left {
            return self.fail(format!("{what} needs {n} bytes but {left} are left (truncated, or a count past the end)"));
        }
        let end = self.at + n as usize;
        if end > self.bytes.len() {
            let want = end.max(2 * self.bytes.len()).max(1 << 20).min(self.limit);
            let from = self.bytes.len();
            self.bytes.resize(want, 0);
            self.file.read_exact_at(&mut self.bytes[from..], from as u64).map_err(|e| Error::io(self.path, e))?;
        }
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4")))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8")))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let at = self.at;
        let b = self.take(n, what)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => {
                self.at = at;
                self.fail(format!("{what} is not UTF-8"))
            }
        }
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.take(1, key)?[0]),
            1 => Value::I8(self.take(1, key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.take(2, key)?.try_into().expect("2"))),
            3 => Value::I16(i16::from_le_bytes(self.take(2, key)?.try_into().expect("2"))),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(self.u32(key)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(key)?)),
            7 => match self.take(1, key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return self.fail(format!("'{key}': a bool stored as {b}")),
            },
            8 => Value::Str(self.string(key)?),
            9 => {
                if depth > 0 {
                    return self.fail(format!("'{key}': an array of arrays nested deeper than llama.cpp writes"));
                }
                let elem = self.u32(key)?;
                let count = self.u64(key)?;
                // Every element takes at least one byte: a count past the
                // bytes left is refused before anything is allocated.
                let left = self.left();
                if count > left {
                    return self.fail(format!("'{key}': an array of {count} values, more than the {left} bytes left"));
                }
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    out.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(out)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(self.u64(key)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(key)?)),
            t => return self.fail(format!("'{key}': unknown metadata value type {t}")),
        })
    }
}

/// Read and validate a GGUF file's header (no tensor data is read).
pub fn read_header(file: &File, path: &Path, len: u64) -> Result<Header> {
    let mut c = Cursor { bytes: Vec::new(), at: 0, path, file, limit: len.min(MAX_HEADER) as usize };
    if c.take(4, "the magic")? != MAGIC {
        return Err(Error::bundle(path, "not a GGUF file (no GGUF magic)"));
    }
    let version = c.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(Error::bundle(path, format!("GGUF version {version}: parity reads versions 2 and 3")));
    }
    let tensor_count = c.u64("the tensor count")?;
    let kv_count = c.u64("the metadata count")?;
    let mut metadata = Vec::new();
    for _ in 0..kv_count {
        let key = c.string("a metadata key")?;
        let ty = c.u32(&key)?;
        let v = c.value(ty, &key, 0)?;
        metadata.push((key, v));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if *a > 0 && a.is_power_of_two() => *a as u64,
        Some((_, v)) => return Err(Error::bundle(path, format!("general.alignment is {v:?}: a power of two (u32) is required"))),
    };
    let mut infos = Vec::new();
    // Each info is at least 8 + 4 + 4 + 8 bytes.
    if tensor_count > c.left() / 24 {
        return c.fail(format!("{tensor_count} tensors claimed: more than the header's bytes can hold"));
    }
    for _ in 0..tensor_count {
        let name = c.string("a tensor name")?;
        let dims = c.u32(&name)?;
        if dims > MAX_DIMS {
            return Err(Error::tensor(path, &name, None, format!("{dims} dimensions: GGUF tensors have at most {MAX_DIMS}")));
        }
        let mut ne = Vec::with_capacity(dims as usize);
        for _ in 0..dims {
            ne.push(c.u64(&name)?);
        }
        let type_id = c.u32(&name)?;
        let offset = c.u64(&name)?;
        infos.push((name, ne, type_id, offset));
    }
    let data_start = (c.at as u64).div_ceil(alignment) * alignment;
    let mut tensors = Vec::with_capacity(infos.len());
    let mut seen = std::collections::HashSet::new();
    for (name, ne, type_id, offset) in infos {
        let bad = |m: String| Error::tensor(path, &name, None, m);
        if !seen.insert(name.clone()) {
            return Err(bad("two tensors have this name".into()));
        }
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| bad(format!("unknown ggml type id {type_id}")))?;
        // The product of the non-zero dimensions must fit: with a zero among
        // them the count is 0, but a product taken in another order (the
        // row-major shape's, a sub-shape's) would still overflow.
        let nonzero = ne.iter().filter(|&&d| d != 0).try_fold(1u64, |a, &d| a.checked_mul(d)).filter(|&n| usize::try_from(n).is_ok());
        let nonzero = nonzero.ok_or_else(|| bad(format!("dimensions {ne:?} overflow")))?;
        let numel = if ne.contains(&0) { 0 } else { nonzero };
        let (block, type_size) = ggml_type.block();
        let row = ne.first().copied().unwrap_or(1);
        if row % block != 0 {
            return Err(bad(format!("{} rows of {row} values are not whole {block}-value blocks", ggml_type.name())));
        }
        let bytes = (numel / block)
            .checked_mul(type_size)
            .filter(|b| b.checked_mul(4).is_some())
            .ok_or_else(|| bad(format!("dimensions {ne:?} overflow")))?;
        if offset % alignment != 0 {
            return Err(bad(format!("data offset {offset} is not a multiple of the alignment {alignment}")));
        }
        let start = data_start.checked_add(offset).filter(|s| s.checked_add(bytes).is_some_and(|e| e <= len));
        let start = start.ok_or_else(|| bad(format!("{bytes} bytes at data offset {offset} run past the end of the file ({len} bytes)")))?;
        tensors.push(Tensor { name, ne, ggml_type, offset: start, bytes });
    }
    Ok(Header { version, alignment, metadata, tensors, data_start })
}

/// The tensors of a GGUF file, placed (shard index left 0).
pub fn tensors(path: &Path, header: &Header) -> Result<Vec<(String, Located)>> {
    let mut out = Vec::with_capacity(header.tensors.len());
    for t in &header.tensors {
        if t.ggml_type.plain_dtype().is_none() && !t.ggml_type.dequantizes() {
            return Err(Error::tensor(
                path,
                &t.name,
                None,
                format!(
                    "ggml type {} is not one parity dequantizes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K–Q6_K, IQ4_NL, IQ4_XS)",
                    t.ggml_type.name()
                ),
            ));
        }
        let shape = t.shape();
        let numel = t.numel() as usize;
        let loc = match t.ggml_type.plain_dtype() {
            Some(dtype) => Located { dtype, shape, shard: 0, offset: t.offset, len: t.bytes as usize, strides: None, encoding: None },
            None => Located {
                dtype: DType::F32,
                shape,
                shard: 0,
                offset: t.offset,
                len: numel * 4,
                strides: None,
                encoding: Some(Encoding::Ggml { ggml_type: t.ggml_type, bytes: t.bytes }),
            },
        };
        out.push((t.name.clone(), loc));
    }
    Ok(out)
}

/// `{key: value}` of the metadata, for JSON output.
pub fn metadata_map(header: &Header) -> BTreeMap<String, String> {
    header.metadata.iter().map(|(k, v)| (k.clone(), v.short())).collect()
}
