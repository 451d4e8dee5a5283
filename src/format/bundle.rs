//! Stage bundles and component files: safetensors, read by positional reads.
//!
//! Keys are `tensor.<key>.<name>` (name = a stage, or an input for component
//! files). A bundle whose keys are all `stage.<name>` is a *single-tensor*
//! bundle and answers for whichever one tensor its report describes.
//!
//! The comparer, which streams every byte once, and `replay`, which copies
//! each input out, read [`Region`]s: positional reads of the open file into
//! buffers cost less than mapping the pages (measured: 21 GB/s vs 14 GB/s for
//! two threads reading two page-cached bundles), and a file truncated under
//! them is an I/O error naming it rather than a SIGBUS. [`Bundle::get`] still
//! offers zero-copy views over a memory map, for callers that hold the file
//! still. The header is read and validated before any tensor is touched (see
//! [`super::safetensors_header`]): a truncated or hostile file is refused
//! naming the tensor at fault.
//!
//! Writing is deterministic — tensors ordered by (alignment, name) as the
//! `safetensors` crate orders them, no metadata, so equal content gives equal
//! bytes whatever produced it — and atomic (see [`crate::format::atomic`]):
//! the file is written, synced and renamed by parity itself. A run's stage
//! bundle is instead streamed tensor by tensor ([`BundleWriter`]), in the
//! order computed, so that `replay` never holds more than one tensor's stages.

use crate::format::atomic::{self, Staged};
use crate::format::dtype::DType;
use crate::error::{Error, Result};
use crate::format::tensor::{Tensor, TensorView};
use memmap2::Mmap;
use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
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
    file: File,
    /// Only [`Bundle::get`]'s views touch it; every other read is positional.
    map: Mmap,
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
        let (file, len) = crate::format::file::open_regular(path)?;
        let header = crate::format::safetensors_header::read(&file, path, len)?;
        // SAFETY: the map is read-only and its pages are touched only through
        // `get`'s views, whose callers hold the file still (tests, tools);
        // the commands read through `Region`, which survives truncation.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let entries = header
            .entries
            .into_iter()
            .map(|e| (e.name, Entry { dtype: e.dtype, shape: e.shape, start: e.start, end: e.end }))
            .collect();
        Ok(Bundle { path: path.to_path_buf(), file, map, data_start: header.data_start as usize, entries })
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
        let data = &self.map[self.data_start + e.start..self.data_start + e.end];
        Some(TensorView { dtype: e.dtype, shape: &e.shape, data })
    }

    /// The entry for `tensor.<key>.<name>`, or `stage.<name>` in a
    /// single-tensor bundle.
    fn entry_named(&self, key: &str, name: &str) -> Option<&Entry> {
        self.entries.get(&tensor_key(key, name)).or_else(|| {
            if self.is_single_tensor() {
                self.entries.get(&format!("stage.{name}"))
            } else {
                None
            }
        })
    }

    /// Where a tensor's bytes lie in the file, for streaming reads, by the
    /// same names as [`Bundle::get_named`].
    pub fn region_named(&self, key: &str, name: &str) -> Option<Region<'_>> {
        let e = self.entry_named(key, name)?;
        Some(Region {
            file: &self.file,
            path: &self.path,
            offset: (self.data_start + e.start) as u64,
            len: e.end - e.start,
            gather: None,
            ggml: None,
        })
    }

    /// A tensor copied out of the file by positional reads (never through
    /// the map: a file truncated meanwhile is an error naming it, not a
    /// SIGBUS), by the same names as [`Bundle::get_named`]; `None` when
    /// absent. `tensor` is the tensor's real name, for errors.
    pub fn read_named(&self, tensor: &str, key: &str, name: &str) -> Result<Option<Tensor>> {
        let Some(e) = self.entry_named(key, name) else { return Ok(None) };
        let mut data = vec![0u8; e.end - e.start];
        let offset = (self.data_start + e.start) as u64;
        self.file
            .read_exact_at(&mut data, offset)
            .map_err(|err| Error::tensor(&self.path, tensor, None, format!("'{name}': {}", read_failure(data.len(), offset, &err))))?;
        Ok(Some(Tensor { dtype: e.dtype, shape: e.shape.clone(), data }))
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

/// One tensor's bytes in an open bundle file (validated against the header
/// when the bundle was opened).
#[derive(Clone, Copy, Debug)]
pub struct Region<'a> {
    file: &'a File,
    path: &'a Path,
    /// Absolute file offset of the tensor's first byte.
    offset: u64,
    len: usize,
    /// A view that is not row-major: its values are gathered.
    gather: Option<Gather<'a>>,
    /// ggml blocks (GGUF): `len` is the dequantized F32 values' bytes, and
    /// `offset` the first block's.
    ggml: Option<crate::format::gguf::quant::GgmlType>,
}

/// A strided view (PyTorch): `shape`, element `strides`, element size.
#[derive(Clone, Copy, Debug)]
struct Gather<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    elem: usize,
}

impl<'a> Region<'a> {
    /// The `len` bytes at `offset` of an open file (whose header the caller
    /// has validated against the file's length).
    pub fn new(file: &'a File, path: &'a Path, offset: u64, len: usize) -> Region<'a> {
        Region { file, path, offset, len, gather: None, ggml: None }
    }

    /// A view whose element `[i, j, …]` lies at `offset + (i·strides[0] +
    /// j·strides[1] + …)·elem` (the caller has checked every reachable
    /// element lies in the file): its `len` logical bytes are gathered in
    /// row-major order when read.
    pub fn strided(
        file: &'a File,
        path: &'a Path,
        offset: u64,
        len: usize,
        shape: &'a [usize],
        strides: &'a [usize],
        elem: usize,
    ) -> Region<'a> {
        Region { file, path, offset, len, gather: Some(Gather { shape, strides, elem }), ggml: None }
    }

    /// A GGUF quantized tensor at `offset`: its `len` bytes of F32 values
    /// are dequantized from the blocks that hold them as they are read, so
    /// any byte range reads only its own blocks.
    pub fn ggml(file: &'a File, path: &'a Path, offset: u64, len: usize, ty: crate::format::gguf::quant::GgmlType) -> Region<'a> {
        Region { file, path, offset, len, gather: None, ggml: Some(ty) }
    }

    /// Whether reads gather a strided view (each read then reads the
    /// view's whole span: read it once, whole, and keep it).
    pub fn is_strided(&self) -> bool {
        self.gather.is_some()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fill `buf` with the tensor's bytes from `start` on. A file that has
    /// shrunk since it was opened is an error naming it.
    pub fn read_at(&self, start: usize, buf: &mut [u8]) -> Result<()> {
        assert!(start + buf.len() <= self.len, "read past the tensor's region");
        if let Some(g) = self.gather {
            return self.gather_at(g, start, buf);
        }
        if let Some(ty) = self.ggml {
            return self.dequantize_at(ty, start, buf);
        }
        let at = self.offset + start as u64;
        self.file.read_exact_at(buf, at).map_err(|e| Error::bundle(self.path, read_failure(buf.len(), at, &e)))
    }

    /// A quantized tensor's F32 bytes `start..start + buf.len()`: the blocks
    /// holding those values are read and dequantized ([`crate::format::gguf::quant`]).
    fn dequantize_at(&self, ty: crate::format::gguf::quant::GgmlType, start: usize, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let (block, size) = ty.block();
        let (block, size) = (block as usize, size as usize);
        let (first, last) = (start / 4 / block, (start + buf.len()).div_ceil(4 * block));
        // The worker thread's buffers, reused: a fresh MiB per read costs more
        // in page faults than the dequantization itself.
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        SCRATCH.with(|s| -> Result<()> {
        let (raw, values) = &mut *s.borrow_mut();
        raw.resize((last - first) * size, 0);
        let at = self.offset + (first * size) as u64;
        self.file.read_exact_at(raw, at).map_err(|e| Error::bundle(self.path, read_failure(raw.len(), at, &e)))?;
        values.resize((last - first) * block, 0.0);
        crate::format::gguf::quant::dequantize(ty, raw, values);
        let skip = start - first * block * 4;
        if skip % 4 == 0 && buf.len() % 4 == 0 {
            for (out, v) in buf.chunks_exact_mut(4).zip(&values[skip / 4..]) {
                out.copy_from_slice(&v.to_le_bytes());
            }
        } else {
            for (k, b) in buf.iter_mut().enumerate() {
                let i = skip + k;
                *b = values[i / 4].to_le_bytes()[i % 4];
            }
        }
        Ok(())
        })
    }

    /// A strided view's logical bytes `start..start + buf.len()`: the span
    /// of the file the view reaches is read once, then its elements are
    /// copied out in row-major order.
    fn gather_at(&self, g: Gather<'_>, start: usize, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        // The span from the first element to the last reachable one; the
        // checkpoint reader checked it lies in the file without overflow.
        let span_elems = 1 + g.shape.iter().zip(g.strides).map(|(&d, &s)| d.saturating_sub(1) * s).sum::<usize>();
        let mut span = vec![0u8; span_elems * g.elem];
        self.file
            .read_exact_at(&mut span, self.offset)
            .map_err(|e| Error::bundle(self.path, read_failure(span.len(), self.offset, &e)))?;
        // The whole view, in logical order (the layout kernel: runs copied
        // whole, transposes in tiles); then the bytes asked for. Every
        // command reads a strided view whole, once (`Checkpoint::gathered`).
        let whole = crate::numeric::strided::strided_copy(&span, g.elem, g.shape, g.strides, 0);
        buf.copy_from_slice(&whole[start..start + buf.len()]);
        Ok(())
    }

    /// The sha256 of the tensor's bytes, read a MiB at a time.
    pub fn sha256_hex(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut buf = vec![0u8; (1 << 20).min(self.len)];
        let mut at = 0;
        while at < self.len {
            let n = buf.len().min(self.len - at);
            self.read_at(at, &mut buf[..n])?;
            h.update(&buf[..n]);
            at += n;
        }
        Ok(crate::format::tensor::hex(&h.finalize()))
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

/// Why `n` bytes at `offset` could not be read.
fn read_failure(n: usize, offset: u64, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        format!("cannot read {n} bytes at offset {offset}: the file ends before them (truncated since it was opened?)")
    } else {
        format!("cannot read {n} bytes at offset {offset}: {e}")
    }
}

/// A bundle written one tensor at a time, so a writer holds one tensor's
/// stages, not the whole bundle (`replay`; `apply --save-stages` writes
/// through it too, from the stages it kept).
///
/// A safetensors header, which names every tensor's offsets, comes before
/// the data. So room for it is reserved first ([`header_room`], from the keys
/// the bundle will hold), tensors are appended after that room in the order
/// they come, and the header is written into the room last, padded with
/// spaces (JSON whitespace, which every safetensors reader accepts, as it
/// accepts the crate's own padding to 8 bytes). Should a header outgrow its
/// room (a shape of very high rank), the data is copied once into a file
/// with room enough: slower, never wrong.
///
/// Deterministic: the same tensors appended in the same order give the same
/// bytes. Tensors lie in the order appended, with header entries in that
/// order too. Unlike [`write`]'s layout they are not grouped by alignment
/// across the whole file: [`crate::format::report::write::RunWriter`]
/// appends each tensor's stages widest dtype first, so a tensor's own
/// stages stay aligned to their element size whenever the stages before
/// them end on a multiple of 8 bytes — all but odd-sized narrow stages.
/// safetensors requires no alignment (parity's readers copy values out;
/// a loader that views storage in place may need a copy for such a stage).
pub struct BundleWriter {
    staged: Staged,
    file: std::io::BufWriter<File>,
    room: u64,
    at: u64,
    entries: Vec<(String, DType, Vec<usize>, u64, u64)>,
    keys: std::collections::HashSet<String>,
}

/// Header room for a bundle holding `keys`: each entry's key as JSON
/// writes it (escapes included) and up to 300 bytes of dtype, shape (rank
/// ≤ 8 at full width) and offsets, plus the braces; a multiple of 8 so the
/// data starts 8-aligned, and never more than safetensors allows (a header
/// that outgrows it then costs a copy, or is refused if it is itself too big).
pub fn header_room<'k>(keys: impl IntoIterator<Item = &'k str>) -> u64 {
    let json_len = |k: &str| serde_json::to_string(k).map_or(6 * k.len() + 2, |s| s.len()) as u64;
    let entries: u64 = keys.into_iter().map(|k| json_len(k) + 300).sum();
    (entries + 64).next_multiple_of(8).min(crate::format::safetensors_header::MAX_HEADER / 8 * 8)
}

impl BundleWriter {
    /// Start a bundle for `path`, as a temporary beside it, with `room`
    /// bytes reserved for the header.
    pub fn create(path: &Path, room: u64) -> Result<BundleWriter> {
        use std::io::{Seek, SeekFrom};
        let (staged, file) = atomic::create(path)?;
        let room = room.max(8).next_multiple_of(8);
        let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
        file.seek(SeekFrom::Start(8 + room)).map_err(|e| Error::io(path, e))?;
        Ok(BundleWriter { staged, file, room, at: 0, entries: Vec::new(), keys: Default::default() })
    }

    /// Append one tensor under its full key.
    pub fn append(&mut self, key: &str, t: &Tensor) -> Result<()> {
        self.append_view(key, t.view())
    }

    /// Append one tensor, borrowed, under its full key: its bytes go from
    /// where they lie to the file (through the 1 MiB write buffer, which a
    /// tensor larger than it bypasses).
    pub fn append_view(&mut self, key: &str, t: TensorView<'_>) -> Result<()> {
        use std::io::Write;
        let dest = self.staged.dest().to_path_buf();
        if !self.keys.insert(key.to_string()) {
            return Err(Error::bundle(&dest, format!("tensor '{key}' written twice")));
        }
        self.file.write_all(t.data).map_err(|e| Error::io(&dest, e))?;
        let end = self.at + t.data.len() as u64;
        self.entries.push((key.to_string(), t.dtype, t.shape.to_vec(), self.at, end));
        self.at = end;
        Ok(())
    }

    /// Write the header into its room and sync: the bundle, staged, to be
    /// renamed into place by the caller.
    pub fn finish(self) -> Result<Staged> {
        use std::io::{Seek, SeekFrom, Write};
        let BundleWriter { staged, file, room, entries, .. } = self;
        let dest = staged.dest().to_path_buf();
        let mut file = file.into_inner().map_err(|e| Error::io(&dest, e.into_error()))?;
        let mut map = serde_json::Map::new();
        for (key, dtype, shape, start, end) in &entries {
            map.insert(key.clone(), serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [start, end]}));
        }
        let mut header = serde_json::to_vec(&serde_json::Value::Object(map)).expect("a header serialises");
        if header.len().next_multiple_of(8) as u64 > crate::format::safetensors_header::MAX_HEADER {
            return Err(Error::bundle(&dest, "cannot write safetensors: header larger than the safetensors limit"));
        }
        if header.len() as u64 > room {
            // Outgrown: a second temporary with room enough, the data copied
            // across once (the kernel copies file to file).
            header.resize(header.len().next_multiple_of(8), b' ');
            let (bigger, mut out) = atomic::create(&dest)?;
            out.write_all(&(header.len() as u64).to_le_bytes()).map_err(|e| Error::io(&dest, e))?;
            out.write_all(&header).map_err(|e| Error::io(&dest, e))?;
            drop(file);
            let mut data = File::open(staged.temporary().expect("atomic::create always makes a temporary")).map_err(|e| Error::io(&dest, e))?;
            data.seek(SeekFrom::Start(8 + room)).map_err(|e| Error::io(&dest, e))?;
            std::io::copy(&mut data, &mut out).map_err(|e| Error::io(&dest, e))?;
            out.sync_all().map_err(|e| Error::io(&dest, e))?;
            return Ok(bigger);
        }
        header.resize(room as usize, b' ');
        file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(&dest, e))?;
        file.write_all(&room.to_le_bytes()).map_err(|e| Error::io(&dest, e))?;
        file.write_all(&header).map_err(|e| Error::io(&dest, e))?;
        file.sync_all().map_err(|e| Error::io(&dest, e))?;
        Ok(staged)
    }
}

/// Write tensors (full key → tensor) deterministically and atomically.
pub fn write(path: &Path, tensors: &[(String, &Tensor)]) -> Result<()> {
    stage(path, tensors)?.commit()
}

/// Write tensors to a synced temporary beside `path`, to be renamed into
/// place by [`Staged::commit`] (or with [`Staged::rename`] by a caller that
/// orders several renames itself).
///
/// The bytes are those of `safetensors::serialize` (tests hold us to it):
/// tensors sorted by descending dtype alignment, then name; offsets tiling
/// the data from 0; the header the crate's own `Metadata` serialises, padded
/// with spaces to a multiple of 8. Data is streamed from the tensors, never
/// copied into one buffer.
pub fn stage(path: &Path, tensors: &[(String, &Tensor)]) -> Result<Staged> {
    stage_with(path, true, tensors)
}

/// [`write`], renamed into place but not synced (see [`atomic::stage_with`]):
/// the caller syncs the file, and its directory, before it relies on it.
pub fn write_unsynced(path: &Path, tensors: &[(String, &Tensor)]) -> Result<()> {
    stage_with(path, false, tensors)?.rename()
}

fn stage_with(path: &Path, sync: bool, tensors: &[(String, &Tensor)]) -> Result<Staged> {
    let mut sorted: Vec<&(String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by(|(ln, lt), (rn, rt)| rt.dtype.to_safetensors().cmp(&lt.dtype.to_safetensors()).then(ln.cmp(rn)));
    let mut infos = Vec::with_capacity(sorted.len());
    let mut at = 0usize;
    for (name, t) in &sorted {
        let info = safetensors::tensor::TensorInfo {
            dtype: t.dtype.to_safetensors(),
            shape: t.shape.clone(),
            data_offsets: (at, at + t.data.len()),
        };
        at += t.data.len();
        infos.push((name.clone(), info));
    }
    let invalid = |e: &dyn std::fmt::Display| Error::bundle(path, format!("cannot write safetensors: {e}"));
    let metadata = safetensors::tensor::Metadata::new(None, infos).map_err(|e| invalid(&e))?;
    let mut header = serde_json::to_vec(&metadata).map_err(|e| invalid(&e))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    if header.len() as u64 > crate::format::safetensors_header::MAX_HEADER {
        return Err(invalid(&"header larger than the safetensors limit"));
    }
    atomic::stage_with(path, sync, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for (_, t) in &sorted {
            w.write_all(&t.data)?;
        }
        Ok(())
    })
}
