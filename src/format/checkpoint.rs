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
use super::pytorch;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

pub const INDEX: &str = "model.safetensors.index.json";

use super::safetensors_header::MAX_HEADER;

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
    /// A `torch.save` file (zip or legacy), or a directory with
    /// `pytorch_model.bin.index.json` and its `.bin` shards.
    PyTorch,
    /// A GGUF file (llama.cpp).
    Gguf,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::File => "single file",
            Layout::Indexed => "sharded (index)",
            Layout::Shards => "shards (no index)",
            Layout::Numpy => "numpy",
            Layout::PyTorch => "pytorch",
            Layout::Gguf => "gguf",
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
    /// Bytes of the tensor's values in logical (row-major) order.
    pub len: usize,
    /// Element strides of a view that is not row-major (a PyTorch
    /// transpose or column slice): `offset` is then its first element's, and
    /// reads gather the values into logical order. None for a plain region.
    pub strides: Option<Vec<usize>>,
    /// Values stored encoded (GGUF quantized blocks): `dtype` and `len`
    /// are then those of the decoded (F32) values. None for plain values.
    pub encoding: Option<Encoding>,
}

/// How a tensor's stored bytes encode its values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    /// ggml blocks of `ggml_type`, `bytes` long in the file, dequantized
    /// to F32 as they are read.
    Ggml { ggml_type: super::gguf::quant::GgmlType, bytes: u64 },
}

impl Located {
    /// Whether the values lie row-major from `offset` on (a plain region).
    pub fn is_contiguous(&self) -> bool {
        self.strides.is_none()
    }

    /// Bytes the tensor occupies in its file (its quantized blocks, for a
    /// GGUF quantized tensor; else its values).
    pub fn stored_bytes(&self) -> u64 {
        match self.encoding {
            Some(Encoding::Ggml { bytes, .. }) => bytes,
            None => self.len as u64,
        }
    }
}

/// An open checkpoint: every header read and validated, no data read.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub layout: Layout,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, Located>,
    /// Non-tensor values in PyTorch files (an epoch, a learning rate),
    /// skipped: `inspect` counts them.
    pub skipped_leaves: u64,
    /// The container of its PyTorch files, when it has any.
    pub container: Option<pytorch::Container>,
    /// A GGUF file's header (its metadata, for `inspect` and name presets).
    pub gguf: Option<super::gguf::Header>,
}

/// What a file is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Safetensors,
    Npy,
    Npz,
    Torch,
    Gguf,
}

impl Kind {
    pub(crate) fn sniff(file: &File, len: u64, path: &Path) -> Result<Kind> {
        use std::os::unix::fs::FileExt;
        let mut head = [0u8; 8];
        let n = (len as usize).min(head.len());
        file.read_exact_at(&mut head[..n], 0).map_err(|e| Error::io(path, e))?;
        let head = &head[..n];
        Ok(if head.starts_with(b"\x93NUMPY") {
            Kind::Npy
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            if pytorch::is_torch_zip(file) {
                Kind::Torch
            } else {
                Kind::Npz
            }
        } else if pytorch::is_legacy(head) {
            Kind::Torch
        } else if head.starts_with(super::gguf::MAGIC) {
            Kind::Gguf
        } else {
            Kind::Safetensors
        })
    }
}

impl Checkpoint {
    /// Open any layout of SPEC §10 (and PyTorch files, issue 24),
    /// validating every header before returning. A file's kind is told by
    /// its first bytes, never by its extension.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            if path.join(INDEX).is_file() {
                return Self::open_indexed(path, INDEX, Layout::Indexed);
            }
            if path.join(pytorch::INDEX).is_file() {
                return Self::open_indexed(path, pytorch::INDEX, Layout::PyTorch);
            }
            return Self::open_directory(path);
        }
        if !meta.is_file() {
            return Err(Error::bundle(path, "not a regular file or directory (a FIFO or device cannot be a checkpoint)"));
        }
        let (file, len) = super::file::open_regular(path)?;
        match Kind::sniff(&file, len, path)? {
            Kind::Npy | Kind::Npz => npy::open(path),
            kind => {
                let layout = match kind {
                    Kind::Torch => Layout::PyTorch,
                    Kind::Gguf => Layout::Gguf,
                    _ => Layout::File,
                };
                let mut c = Checkpoint::empty(path, layout);
                c.add_file(path, file, len, kind, None)?;
                Ok(c)
            }
        }
    }

    /// The layout as users say it: a PyTorch file by its container.
    pub fn layout_name(&self) -> &'static str {
        match (self.layout, self.container) {
            (Layout::PyTorch, Some(c)) if self.path.is_file() => c.name(),
            (Layout::PyTorch, _) if self.path.join(pytorch::INDEX).is_file() => "pytorch sharded (index)",
            (Layout::PyTorch, _) => "pytorch shards",
            (Layout::Gguf, _) => match self.gguf.as_ref().map(|h| h.version) {
                Some(2) => "gguf v2",
                _ => "gguf v3",
            },
            (l, _) => l.name(),
        }
    }

    fn empty(path: &Path, layout: Layout) -> Checkpoint {
        Checkpoint { path: path.to_path_buf(), layout, shards: Vec::new(), tensors: BTreeMap::new(), skipped_leaves: 0, container: None, gguf: None }
    }

    /// A numpy checkpoint assembled by [`super::npy`].
    pub(crate) fn from_parts(path: &Path, files: Vec<(PathBuf, File)>, tensors: BTreeMap<String, Located>) -> Checkpoint {
        let shards = files.into_iter().map(|(path, file)| Shard { path, file }).collect();
        Checkpoint { path: path.to_path_buf(), layout: Layout::Numpy, shards, tensors, skipped_leaves: 0, container: None, gguf: None }
    }

    /// A Hugging Face sharded layout: `index` (`model.safetensors.index.json`
    /// or `pytorch_model.bin.index.json`) maps each tensor to its shard.
    fn open_indexed(dir: &Path, index: &str, layout: Layout) -> Result<Checkpoint> {
        let index_path = dir.join(index);
        let text = read_small(&index_path, MAX_HEADER)?;
        let value: serde_json::Value =
            crate::format::strict_json::parse(&text).map_err(|e| Error::json(&index_path, format!("not JSON: {e}")))?;
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
        let mut c = Checkpoint::empty(dir, layout);
        for name in &shard_names {
            let shard_path = dir.join(name);
            // Present but not a regular file (a directory, a FIFO) is refused
            // as such when opened below.
            if !shard_path.exists() {
                let tensor = wanted.iter().find(|(_, s)| *s == name).map(|(t, _)| t.as_str()).unwrap_or("?");
                return Err(Error::tensor(&index_path, tensor, None, format!("its shard '{name}' does not exist")));
            }
            let (file, len) = super::file::open_regular(&shard_path)?;
            let kind = Kind::sniff(&file, len, &shard_path)?;
            c.add_file(&shard_path, file, len, kind, Some(&index_path))?;
        }
        // Every tensor the index names is in the shard it names, and every
        // tensor of those shards is in the index.
        for (tensor, shard) in &wanted {
            match c.tensors.get(tensor) {
                None => {
                    return Err(Error::tensor(&dir.join(shard), tensor, None, format!("named by {index} but absent from this shard")))
                }
                Some(loc) if c.shards[loc.shard].path != dir.join(shard) => {
                    return Err(Error::tensor(
                        &c.shards[loc.shard].path,
                        tensor,
                        None,
                        format!("{index} places it in '{shard}' but it is in this shard"),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some((tensor, loc)) = c.tensors.iter().find(|(t, _)| !wanted.contains_key(*t)) {
            return Err(Error::tensor(&c.shards[loc.shard].path, tensor, None, format!("in this shard but not in {index}")));
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
            // Which files of a directory are shards can only be told by name.
            let torch: Vec<&PathBuf> =
                files.iter().filter(|p| p.extension().is_some_and(|e| e == "bin" || e == "pt" || e == "pth")).collect();
            if torch.is_empty() {
                return Err(Error::bundle(
                    dir,
                    format!("not a checkpoint: no {INDEX}, no {}, no *.safetensors, *.bin, *.pt or *.npy files", pytorch::INDEX),
                ));
            }
            let mut c = Checkpoint::empty(dir, Layout::PyTorch);
            for f in torch {
                let (file, len) = super::file::open_regular(f)?;
                c.add_file(f, file, len, Kind::Torch, None)?;
            }
            return Ok(c);
        }
        let mut c = Checkpoint::empty(dir, Layout::Shards);
        for f in safetensors {
            let (file, len) = super::file::open_regular(f)?;
            c.add_file(f, file, len, Kind::Safetensors, None)?;
        }
        Ok(c)
    }

    /// Read one file's header (a safetensors header, or a PyTorch file's
    /// pickle: never the data) and add its tensors; a name already present
    /// in another shard is an error. A `Kind::Npy`/`Npz` file is read as
    /// safetensors here, and refused as such: numpy files are not shards.
    fn add_file(&mut self, path: &Path, file: File, file_len: u64, kind: Kind, index: Option<&Path>) -> Result<()> {
        let shard = self.shards.len();
        let mut found: Vec<(String, Located)> = if kind == Kind::Torch {
            let t = pytorch::read(path, &file, file_len)?;
            self.skipped_leaves += t.skipped;
            self.container = Some(t.container);
            t.tensors
        } else if kind == Kind::Gguf {
            let header = super::gguf::read_header(&file, path, file_len)?;
            let tensors = super::gguf::tensors(path, &header)?;
            self.gguf = Some(header);
            tensors
        } else {
            let header = super::safetensors_header::read(&file, path, file_len)?;
            header
                .entries
                .into_iter()
                .map(|e| {
                    let offset = header.data_start + e.start as u64;
                    (e.name, Located { dtype: e.dtype, shape: e.shape, shard, offset, len: e.end - e.start, strides: None, encoding: None })
                })
                .collect()
        };
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut loc) in found {
            if let Some(prev) = self.tensors.get(&name) {
                let other = &self.shards[prev.shard].path;
                let why = if index.is_some() { "" } else { " (a directory of shards must hold each tensor once)" };
                return Err(Error::tensor(path, &name, None, format!("also in {}{why}", other.display())));
            }
            loc.shard = shard;
            self.tensors.insert(name, loc);
        }
        self.shards.push(Shard { path: path.to_path_buf(), file });
        Ok(())
    }

    /// The name of this checkpoint's one array when that name is parity's
    /// invention, not the data's: a lone `.npy` file holds one nameless array
    /// (parity names it after the file), and `np.savez(f, x)` names a
    /// positional array `arr_0`. Two such arrays are the same thing under
    /// two file names, so `diff` pairs them whatever they are called.
    pub fn single_unnamed(&self) -> Option<&str> {
        if self.layout != Layout::Numpy || self.tensors.len() != 1 {
            return None;
        }
        let name = self.tensors.keys().next()?;
        // A directory of one .npy is not this: its shard is a file inside it.
        let lone_npy = self.path.extension().is_some_and(|e| e == "npy") && self.shards.len() == 1 && self.shards[0].path == self.path;
        (lone_npy || name == "arr_0").then_some(name.as_str())
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

    /// Every file this checkpoint was read from: its shards, and its index
    /// when it has one (what a writer must never land on).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.shards.iter().map(|s| s.path.clone()).collect();
        for index in [INDEX, pytorch::INDEX] {
            if self.path.is_dir() && self.path.join(index).is_file() {
                files.push(self.path.join(index));
            }
        }
        files
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The file a tensor is in.
    pub fn shard_path(&self, loc: &Located) -> &Path {
        &self.shards[loc.shard].path
    }

    /// A tensor's bytes, for streaming reads (a strided view's are
    /// gathered into logical order as they are read).
    pub fn region<'a>(&'a self, loc: &'a Located) -> Region<'a> {
        let shard = &self.shards[loc.shard];
        match (&loc.strides, loc.encoding) {
            (Some(strides), _) => Region::strided(&shard.file, &shard.path, loc.offset, loc.len, &loc.shape, strides, loc.dtype.size()),
            (None, Some(Encoding::Ggml { ggml_type, .. })) => Region::ggml(&shard.file, &shard.path, loc.offset, loc.len, ggml_type),
            (None, None) => Region::new(&shard.file, &shard.path, loc.offset, loc.len),
        }
    }

    /// A tensor's bytes as stored in its file (a quantized tensor's blocks;
    /// otherwise the same bytes as [`Checkpoint::region`] reads).
    pub fn stored_region<'a>(&'a self, loc: &'a Located) -> Region<'a> {
        match loc.encoding {
            Some(Encoding::Ggml { bytes, .. }) => {
                let shard = &self.shards[loc.shard];
                Region::new(&shard.file, &shard.path, loc.offset, bytes as usize)
            }
            None => self.region(loc),
        }
    }

    /// A strided view's values gathered into memory, once, for a reader
    /// that streams a tensor piece by piece (each read of a strided region
    /// reads the view's whole span); None for a plain region, which is
    /// streamed from the file.
    pub fn gathered(&self, loc: &Located) -> Result<Option<Vec<u8>>> {
        if loc.is_contiguous() {
            return Ok(None);
        }
        let mut bytes = vec![0u8; loc.len];
        self.region(loc).read_at(0, &mut bytes)?;
        Ok(Some(bytes))
    }

    /// Bytes of tensor data in the whole checkpoint.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.values().map(|l| l.len as u64).sum()
    }
}

/// Read a small file (an index) whole, refusing one larger than `limit`
/// and anything that is not a regular file (a FIFO would block forever).
pub use super::file::read_small;
