//! Checkpoints: whole models as users hold them (SPEC §10).
//!
//! A checkpoint is one of
//! * a `.safetensors` file;
//! * a directory with `model.safetensors.index.json` — the Hugging Face
//!   sharded layout, whose `weight_map` names each tensor's shard;
//! * a directory of `*.safetensors` shards without an index;
//! * a `.npy` file (one tensor, named by the file's stem), a directory of
//!   `.npy` files, or an uncompressed `.npz` archive (one tensor per member) —
//!   see [`super::npy`].
//!
//! [`Checkpoint::open`] reads and validates every header (and the index)
//! before any tensor data is touched: an index naming a missing shard or one
//! outside the directory, a tensor absent from its shard, a tensor in two
//! shards, a header whose offsets do not tile the file — each is a setup error
//! naming the file and the tensor. Data is then read lazily, one region at a
//! time ([`Region`]), never the whole model into memory.

use super::bundle::Region;
use super::dtype::DType;
use super::npy;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

pub const INDEX: &str = "model.safetensors.index.json";

/// Headers larger than this are refused before they are read: a hostile
/// length must not make parity allocate gigabytes (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

/// How a checkpoint is laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One `.safetensors` file.
    File,
    /// A directory with `model.safetensors.index.json`.
    Indexed,
    /// A directory of `*.safetensors` files, no index.
    Shards,
    /// `.npy` file(s) or an `.npz` archive.
    Numpy,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::File => "single file",
            Layout::Indexed => "sharded (index)",
            Layout::Shards => "shards (no index)",
            Layout::Numpy => "numpy",
        }
    }
}

/// One file holding tensors.
#[derive(Debug)]
pub struct Shard {
    pub path: PathBuf,
    file: File,
}

/// Where one tensor is.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Index into [`Checkpoint::shards`].
    pub shard: usize,
    /// Absolute offset of the first byte in the shard file.
    pub offset: u64,
    pub len: usize,
}

/// An open checkpoint: every header read and validated, no data read.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub layout: Layout,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, Located>,
}

impl Checkpoint {
    /// Open any layout of SPEC §10, validating every header before returning.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            if path.join(INDEX).is_file() {
                return Self::open_indexed(path);
            }
            return Self::open_directory(path);
        }
        if !meta.is_file() {
            return Err(Error::bundle(path, "not a regular file or directory (a FIFO or device cannot be a checkpoint)"));
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("npy") | Some("npz") => npy::open(path),
            _ => {
                let mut c = Checkpoint { path: path.to_path_buf(), layout: Layout::File, shards: Vec::new(), tensors: BTreeMap::new() };
                c.add_safetensors(path, None)?;
                Ok(c)
            }
        }
    }

    /// A numpy checkpoint assembled by [`super::npy`].
    pub(crate) fn from_parts(path: &Path, files: Vec<(PathBuf, File)>, tensors: BTreeMap<String, Located>) -> Checkpoint {
        let shards = files.into_iter().map(|(path, file)| Shard { path, file }).collect();
        Checkpoint { path: path.to_path_buf(), layout: Layout::Numpy, shards, tensors }
    }

    fn open_indexed(dir: &Path) -> Result<Checkpoint> {
        let index_path = dir.join(INDEX);
        let text = read_small(&index_path, MAX_HEADER)?;
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::json(&index_path, format!("not JSON: {e}")))?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::json(&index_path, "no \"weight_map\" object (tensor name → shard file)"))?;
        // Shards in order of first mention, each opened once.
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        let mut shard_names: Vec<String> = Vec::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().ok_or_else(|| {
                Error::tensor(&index_path, tensor, None, format!("weight_map value must be a shard file name, got {shard}"))
            })?;
            let rel = Path::new(shard);
            let escapes = shard.is_empty()
                || rel.is_absolute()
                || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
            if escapes {
                return Err(Error::PathEscapes {
                    path: index_path.clone(),
                    field: format!("weight_map.{tensor}"),
                    target: shard.to_string(),
                    container: "index",
                });
            }
            if !shard_names.iter().any(|s| s == shard) {
                shard_names.push(shard.to_string());
            }
            wanted.insert(tensor.clone(), shard.to_string());
        }
        shard_names.sort();
        let mut c = Checkpoint { path: dir.to_path_buf(), layout: Layout::Indexed, shards: Vec::new(), tensors: BTreeMap::new() };
        for name in &shard_names {
            let shard_path = dir.join(name);
            if !shard_path.is_file() {
                let tensor = wanted.iter().find(|(_, s)| *s == name).map(|(t, _)| t.as_str()).unwrap_or("?");
                return Err(Error::tensor(&index_path, tensor, None, format!("its shard '{name}' does not exist")));
            }
            c.add_safetensors(&shard_path, Some(&index_path))?;
        }
        // Every tensor the index names is in the shard it names, and every
        // tensor of those shards is in the index.
        for (tensor, shard) in &wanted {
            match c.tensors.get(tensor) {
                None => {
                    return Err(Error::tensor(&dir.join(shard), tensor, None, format!("named by {INDEX} but absent from this shard")))
                }
                Some(loc) if c.shards[loc.shard].path != dir.join(shard) => {
                    return Err(Error::tensor(
                        &c.shards[loc.shard].path,
                        tensor,
                        None,
                        format!("{INDEX} places it in '{shard}' but it is in this shard"),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some((tensor, loc)) = c.tensors.iter().find(|(t, _)| !wanted.contains_key(*t)) {
            return Err(Error::tensor(&c.shards[loc.shard].path, tensor, None, format!("in this shard but not in {INDEX}")));
        }
        Ok(c)
    }

    fn open_directory(dir: &Path) -> Result<Checkpoint> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let safetensors: Vec<&PathBuf> = files.iter().filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
        if safetensors.is_empty() {
            if files.iter().any(|p| p.extension().is_some_and(|e| e == "npy")) {
                return npy::open(dir);
            }
            return Err(Error::bundle(dir, format!("not a checkpoint: no {INDEX}, no *.safetensors and no *.npy files")));
        }
        let mut c = Checkpoint { path: dir.to_path_buf(), layout: Layout::Shards, shards: Vec::new(), tensors: BTreeMap::new() };
        for f in safetensors {
            c.add_safetensors(f, None)?;
        }
        Ok(c)
    }

    /// Read one safetensors file's header (only the header) and add its
    /// tensors; a name already present in another shard is an error.
    fn add_safetensors(&mut self, path: &Path, index: Option<&Path>) -> Result<()> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::bundle(path, "not a regular file"));
        }
        let file_len = meta.len();
        let mut n = [0u8; 8];
        if file_len < 8 {
            return Err(Error::bundle(path, format!("not a safetensors file: {file_len} bytes, shorter than the 8-byte header length")));
        }
        file.read_exact_at(&mut n, 0).map_err(|e| Error::io(path, e))?;
        let header_len = u64::from_le_bytes(n);
        if header_len > MAX_HEADER || header_len > file_len - 8 {
            return Err(Error::bundle(
                path,
                format!("invalid safetensors: header length {header_len} exceeds the file ({file_len} bytes) or the {MAX_HEADER}-byte limit"),
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact_at(&mut header, 8).map_err(|e| Error::io(path, e))?;
        // The safetensors crate's own header type validates the entries:
        // offsets that tile the data from 0 without gaps or overlaps, and
        // sizes equal to shape × dtype.
        let metadata: safetensors::tensor::Metadata =
            serde_json::from_slice(&header).map_err(|e| Error::bundle(path, format!("invalid safetensors header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        if metadata.data_len() as u64 != data_len {
            return Err(Error::bundle(
                path,
                format!(
                    "invalid safetensors: the header describes {} bytes of data but the file holds {data_len} (truncated or padded)",
                    metadata.data_len()
                ),
            ));
        }
        let shard = self.shards.len();
        let mut entries: Vec<(String, &safetensors::tensor::TensorInfo)> = metadata.tensors().into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, info) in entries {
            let dtype = DType::from_safetensors(info.dtype)
                .ok_or_else(|| Error::tensor(path, &name, None, format!("unsupported dtype {:?}", info.dtype)))?;
            if let Some(prev) = self.tensors.get(&name) {
                let other = &self.shards[prev.shard].path;
                let why = if index.is_some() { "" } else { " (a directory of shards must hold each tensor once)" };
                return Err(Error::tensor(path, &name, None, format!("also in {}{why}", other.display())));
            }
            let (s, e) = info.data_offsets;
            self.tensors.insert(
                name,
                Located { dtype, shape: info.shape.clone(), shard, offset: data_start + s as u64, len: e - s },
            );
        }
        self.shards.push(Shard { path: path.to_path_buf(), file });
        Ok(())
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Located> {
        self.tensors.get(name)
    }

    pub fn tensors(&self) -> impl Iterator<Item = (&str, &Located)> {
        self.tensors.iter().map(|(n, l)| (n.as_str(), l))
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The file a tensor is in.
    pub fn shard_path(&self, loc: &Located) -> &Path {
        &self.shards[loc.shard].path
    }

    /// A tensor's bytes, for streaming reads.
    pub fn region(&self, loc: &Located) -> Region<'_> {
        let shard = &self.shards[loc.shard];
        Region::new(&shard.file, &shard.path, loc.offset, loc.len)
    }

    /// Bytes of tensor data in the whole checkpoint.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.values().map(|l| l.len as u64).sum()
    }
}

/// Read a small file (an index) whole, refusing one larger than `limit`
/// and anything that is not a regular file (a FIFO would block forever).
pub fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::bundle(path, "not a regular file"));
    }
    if meta.len() > limit {
        return Err(Error::bundle(path, format!("{} bytes: larger than the {limit}-byte limit for this kind of file", meta.len())));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
