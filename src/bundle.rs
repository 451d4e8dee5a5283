//! Stage bundles and component files: safetensors over a memory map.
//!
//! Keys are `tensor.<key>.<name>` (name = a stage, or an input for component
//! files). A bundle whose keys are all `stage.<name>` is a *single-tensor*
//! bundle and answers for whichever one tensor its report describes.
//!
//! Reading never copies tensor data: views borrow the map. The header is
//! parsed and validated by the `safetensors` crate (size limits, offsets that
//! tile the data exactly, sizes that match shape × dtype), so a truncated or
//! hostile file is refused before any tensor is touched.
//!
//! Writing is deterministic — the `safetensors` crate orders tensors by
//! (alignment, name) and we attach no metadata, so equal content gives equal
//! bytes whatever produced it — and atomic (see [`crate::atomic`]).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorView};
use memmap2::Mmap;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// An open, validated safetensors file.
pub struct Bundle {
    path: PathBuf,
    map: Option<Mmap>, // None for an empty (zero-length data) mapping
    data_start: usize,
    entries: BTreeMap<String, Entry>,
}

pub fn tensor_key(key: &str, name: &str) -> String {
    format!("tensor.{key}.{name}")
}

/// The safe name of a tensor: every character outside `[A-Za-z0-9_]` → `_`.
pub fn safe_key(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

impl Bundle {
    pub fn open(path: &Path) -> Result<Bundle> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < 8 {
            return Err(Error::bundle(path, format!("not a safetensors file: {len} bytes, shorter than the 8-byte header length")));
        }
        // SAFETY: the map is read-only. Like every mmap reader, we rely on the
        // file not being truncated by another process while we read it.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| Error::bundle(path, format!("invalid safetensors: {e}")))?;
        let data_start = 8 + header_len;
        let mut entries = BTreeMap::new();
        for (name, info) in metadata.tensors() {
            let dtype = DType::from_safetensors(info.dtype).ok_or_else(|| {
                Error::tensor(path, &name, None, format!("unsupported dtype {:?}", info.dtype))
            })?;
            entries.insert(
                name,
                Entry { dtype, shape: info.shape.clone(), start: info.data_offsets.0, end: info.data_offsets.1 },
            );
        }
        Ok(Bundle { path: path.to_path_buf(), map: Some(map), data_start, entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key in the file, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// True when every key is `stage.<name>`.
    pub fn is_single_tensor(&self) -> bool {
        !self.entries.is_empty() && self.entries.keys().all(|k| k.starts_with("stage."))
    }

    /// A tensor by its full key.
    pub fn get(&self, full_key: &str) -> Option<TensorView<'_>> {
        let e = self.entries.get(full_key)?;
        let data = match &self.map {
            Some(m) => &m[self.data_start + e.start..self.data_start + e.end],
            None => &[][..],
        };
        Some(TensorView { dtype: e.dtype, shape: &e.shape, data })
    }

    /// `tensor.<key>.<name>`, or `stage.<name>` in a single-tensor bundle.
    pub fn get_named(&self, key: &str, name: &str) -> Option<TensorView<'_>> {
        self.get(&tensor_key(key, name)).or_else(|| {
            if self.is_single_tensor() {
                self.get(&format!("stage.{name}"))
            } else {
                None
            }
        })
    }

    /// The names (stages or inputs) present for one tensor key.
    pub fn names_for(&self, key: &str) -> Vec<String> {
        let prefix = format!("tensor.{key}.");
        let mut v: Vec<String> =
            self.entries.keys().filter_map(|k| k.strip_prefix(&prefix).map(str::to_string)).collect();
        if v.is_empty() && self.is_single_tensor() {
            v = self.entries.keys().filter_map(|k| k.strip_prefix("stage.").map(str::to_string)).collect();
        }
        v
    }

    /// Like [`Bundle::get_named`], but a missing entry is a setup error naming
    /// the file, the tensor and what is missing.
    pub fn require(&self, tensor_name: &str, key: &str, name: &str, what: &str) -> Result<TensorView<'_>> {
        self.get_named(key, name).ok_or_else(|| {
            Error::tensor(&self.path, tensor_name, Some(name), format!("{what} missing (no key '{}')", tensor_key(key, name)))
        })
    }
}

impl safetensors::View for &Tensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype.to_safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Write tensors (full key → tensor) deterministically and atomically.
pub fn write(path: &Path, tensors: &[(String, &Tensor)]) -> Result<()> {
    crate::atomic::write_via_path(path, |tmp| {
        safetensors::serialize_to_file(tensors.iter().map(|(k, t)| (k.as_str(), *t)), None, tmp)
            .map_err(|e| Error::bundle(path, format!("cannot write safetensors: {e}")))
    })
}
