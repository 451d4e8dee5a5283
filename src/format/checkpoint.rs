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
        let mut c = Checkpoint { path: dir.to_path_buf(), layout: Layout::Indexed, shards: Vec::new(), tensors: BTreeMap::new() };
        for name in &shard_names {
            let shard_path = dir.join(name);
            // Present but not a regular file (a directory, a FIFO) is refused
            // as such when opened below.
            if !shard_path.exists() {
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
        let (file, file_len) = super::file::open_regular(path)?;
        let header = super::safetensors_header::read(&file, path, file_len)?;
        let shard = self.shards.len();
        let mut entries = header.entries;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            if let Some(prev) = self.tensors.get(&e.name) {
                let other = &self.shards[prev.shard].path;
                let why = if index.is_some() { "" } else { " (a directory of shards must hold each tensor once)" };
                return Err(Error::tensor(path, &e.name, None, format!("also in {}{why}", other.display())));
            }
            let loc = Located { dtype: e.dtype, shape: e.shape, shard, offset: header.data_start + e.start as u64, len: e.end - e.start };
            self.tensors.insert(e.name, loc);
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
        if self.layout == Layout::Indexed {
            files.push(self.path.join(INDEX));
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
pub use super::file::read_small;
