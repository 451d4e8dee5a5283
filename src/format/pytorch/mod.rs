//! PyTorch checkpoints (`torch.save`), read without running their pickle.
//!
//! Two containers, told apart by their first bytes (never by extension):
//!
//! * **zip** (torch ≥ 1.6): `<root>/data.pkl` (the pickled object),
//!   `<root>/data/<key>` (one record per storage, stored uncompressed and
//!   64-byte aligned), `<root>/byteorder` (`little`, absent in old files),
//!   `<root>/version`. Storages are read in place at their record's offset:
//!   nothing is copied out of the archive.
//! * **legacy** (`_use_new_zipfile_serialization=False`): five pickles in a
//!   row — a magic number, the protocol version 1001, a `sys_info` dict
//!   (byte order, type sizes), the object, the list of storage keys — then,
//!   for each key in that list's order, an 8-byte little-endian element count
//!   followed by the storage's bytes.
//!
//! The object pickle is read by [`pickle`], which builds values and calls
//! nothing. Every tensor reachable through dicts, lists and tuples is named
//! by its dotted path ([`pickle::tensors`]); non-tensor leaves (an epoch, a
//! learning rate, a string) are skipped and counted.
//!
//! A tensor is a view of a storage: an element offset, a size and a stride
//! per dimension. A view laid out row-major (the usual state dict) becomes a
//! plain region of the file; any other (a transpose, a column slice) keeps
//! its strides and is gathered into logical order when read
//! ([`crate::format::bundle::Region`]). Views that share a storage (tied
//! weights) are each listed under their own name. Every view is checked to
//! lie inside its storage, and every storage inside the file, before any
//! data is read, with overflow-checked arithmetic.
//!
//! Refused, each by name: a global outside torch's weights-only allowlist,
//! big-endian files, a deflated storage record (torch never writes one; it
//! cannot be read in place), a storage record that is missing or shorter
//! than its views need, a dict key that is not a string or an integer, two
//! tensors with one name after flattening.

pub mod pickle;

use super::checkpoint::Located;
use super::dtype::DType;
use crate::error::{Error, Result};
use pickle::{StorageRef, TensorRef};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

/// The Hugging Face index of a sharded `.bin` checkpoint.
pub const INDEX: &str = "pytorch_model.bin.index.json";

/// The most a pickle (`data.pkl`, or the legacy object pickle) may hold: the
/// pickle names tensors, it holds no tensor data (a 70B model's is ~100 KiB).
const MAX_PICKLE: u64 = 256 << 20;

/// The legacy format's first pickle: `pickle.dumps(0x1950a86a20f9469cfc6c,
/// protocol=2)` (PROTO 2, LONG1 of 10 bytes, STOP).
const LEGACY_MAGIC: [u8; 15] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];

/// Which container a torch file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Zip,
    Legacy,
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Zip => "pytorch zip",
            Container::Legacy => "pytorch legacy",
        }
    }
}

/// The tensors of one torch file, placed in it (shard index left 0: the
/// checkpoint sets it), and how many non-tensor leaves were skipped.
pub struct TorchFile {
    pub container: Container,
    pub tensors: Vec<(String, Located)>,
    pub skipped: u64,
}

/// Whether `head` (a file's first bytes) starts a legacy torch file. A zip
/// (`PK\x03\x04`) may be a torch file or an `.npz`: [`is_torch_zip`] tells.
pub fn is_legacy(head: &[u8]) -> bool {
    head.len() >= 4 && head[..4] == LEGACY_MAGIC[..4]
}

/// Whether a zip archive is a `torch.save` archive: its first record is
/// `<root>/data.pkl` (torch writes that record first). Read from the first
/// local header, so a truncated archive (no central directory) is still
/// recognised, and refused as a truncated torch file.
pub fn is_torch_zip(file: &File) -> bool {
    // Local file header: signature, …, name length at 26, extra at 28, name at 30.
    let mut head = [0u8; 30 + 256];
    let n = file.read_at(&mut head, 0).unwrap_or(0);
    if n < 30 || head[..4] != *b"PK\x03\x04" {
        return false;
    }
    let name_len = u16::from_le_bytes([head[26], head[27]]) as usize;
    let name = head.get(30..30 + name_len).filter(|_| 30 + name_len <= n);
    if name.and_then(|b| std::str::from_utf8(b).ok()).is_some_and(|s| pickle_root(s).is_some()) {
        return true;
    }
    // An archive rewritten by another tool may order its records otherwise.
    let Ok(clone) = file.try_clone() else { return false };
    let Ok(archive) = zip::ZipArchive::new(clone) else { return false };
    let found = archive.file_names().any(|n| pickle_root(n).is_some());
    found
}

/// `"archive/data.pkl"` → `"archive/"`: the root of a torch zip.
fn pickle_root(name: &str) -> Option<&str> {
    let root = name.strip_suffix("data.pkl")?;
    (root.ends_with('/') && !root[..root.len() - 1].contains('/')).then_some(root)
}

/// Read a torch file's tensors (zip or legacy, by content).
pub fn read(path: &Path, file: &File, len: u64) -> Result<TorchFile> {
    let mut head = [0u8; 4];
    let n = (len as usize).min(4);
    file.read_exact_at(&mut head[..n], 0).map_err(|e| Error::io(path, e))?;
    if is_legacy(&head[..n]) {
        read_legacy(path, file, len)
    } else {
        read_zip(path, file, len)
    }
}

fn refused(path: &Path, r: pickle::Refused) -> Error {
    Error::bundle(path, format!("not read as a PyTorch checkpoint: {r}"))
}

fn read_zip(path: &Path, file: &File, len: u64) -> Result<TorchFile> {
    let clone = file.try_clone().map_err(|e| Error::io(path, e))?;
    let mut archive =
        zip::ZipArchive::new(clone).map_err(|e| Error::bundle(path, format!("not a readable PyTorch zip archive (truncated?): {e}")))?;
    let roots: Vec<String> = archive.file_names().filter_map(pickle_root).map(str::to_string).collect();
    let root = match roots.as_slice() {
        [one] => one.clone(),
        [] => return Err(Error::bundle(path, "a zip archive without <root>/data.pkl: not a torch.save file")),
        _ => return Err(Error::bundle(path, format!("{} data.pkl records in one archive ({})", roots.len(), roots.join(", ")))),
    };
    if let Some(i) = archive.index_for_name(&format!("{root}byteorder")) {
        let order = read_record(&mut archive, i, path, 16)?;
        if order != b"little" {
            let shown = String::from_utf8_lossy(&order).into_owned();
            return Err(Error::bundle(path, format!("byteorder '{shown}': only little-endian checkpoints are read")));
        }
    }
    let pkl_index = archive.index_for_name(&format!("{root}data.pkl")).expect("found above");
    let pkl = read_record(&mut archive, pkl_index, path, MAX_PICKLE)?;
    let value = pickle::load(&pkl).map_err(|r| refused(path, r))?;
    let (named, skipped) = pickle::tensors(&value).map_err(|r| refused(path, r))?;

    // Each storage's record, located once: (byte offset, bytes available).
    let mut records: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut tensors = Vec::with_capacity(named.len());
    for (name, t) in &named {
        let key = &t.storage.key;
        let (start, avail) = match records.get(key) {
            Some(r) => *r,
            None => {
                let record = format!("{root}data/{key}");
                let i = archive.index_for_name(&record).ok_or_else(|| {
                    Error::tensor(path, name, None, format!("its storage record '{record}' is missing from the archive"))
                })?;
                let member = archive.by_index_raw(i).map_err(|e| Error::tensor(path, name, None, format!("storage record '{record}': {e}")))?;
                if member.compression() != zip::CompressionMethod::Stored {
                    return Err(Error::tensor(
                        path,
                        name,
                        None,
                        format!("storage record '{record}' is compressed ({}): parity reads storages in place, as torch.save writes them (stored)", member.compression()),
                    ));
                }
                let r = (member.data_start(), member.size());
                if r.0.checked_add(r.1).is_none_or(|end| end > len) {
                    return Err(Error::tensor(path, name, None, format!("storage record '{record}' runs past the end of the file (truncated?)")));
                }
                records.insert(key.clone(), r);
                r
            }
        };
        tensors.push((name.clone(), place(path, name, t, start, avail)?));
    }
    Ok(TorchFile { container: Container::Zip, tensors: unique(path, tensors)?, skipped })
}

/// A small record's bytes (the pickle, the byte order), bounded.
fn read_record(archive: &mut zip::ZipArchive<File>, i: usize, path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut member = archive.by_index(i).map_err(|e| Error::bundle(path, format!("zip record {i}: {e}")))?;
    let name = member.name().to_string();
    if member.size() > limit {
        return Err(Error::bundle(path, format!("record '{name}' holds {} bytes, over the {limit}-byte limit", member.size())));
    }
    let mut out = Vec::with_capacity(member.size() as usize);
    (&mut member).take(limit + 1).read_to_end(&mut out).map_err(|e| Error::bundle(path, format!("record '{name}': {e}")))?;
    Ok(out)
}

fn read_legacy(path: &Path, file: &File, len: u64) -> Result<TorchFile> {
    // The pickles come first and are small; the storages follow. Read a
    // bounded prefix and parse pickle by pickle within it.
    let prefix_len = len.min(MAX_PICKLE);
    let mut prefix = vec![0u8; prefix_len as usize];
    file.read_exact_at(&mut prefix, 0).map_err(|e| Error::io(path, e))?;
    if !prefix.starts_with(&LEGACY_MAGIC) {
        return Err(Error::bundle(path, "not a legacy torch.save file: wrong magic number"));
    }
    let mut at = LEGACY_MAGIC.len();
    let next = |at: &mut usize, what: &str| -> Result<pickle::Tree> {
        let (v, used) = pickle::load_prefix(&prefix[*at..]).map_err(|r| Error::bundle(path, format!("legacy {what} pickle: {r}")))?;
        *at += used;
        Ok(v)
    };
    match &*next(&mut at, "protocol version")? {
        pickle::Value::Int(1001) => {}
        pickle::Value::Int(v) => return Err(Error::bundle(path, format!("legacy protocol version {v}, expected 1001"))),
        v => return Err(Error::bundle(path, format!("legacy protocol version is a {}, expected the integer 1001", pickle::kind(v)))),
    }
    let sys_info = next(&mut at, "sys_info")?;
    if pickle::dict_get(&sys_info, "little_endian").is_some_and(|v| !matches!(v, pickle::Value::Bool(true))) {
        return Err(Error::bundle(path, "a big-endian legacy checkpoint: only little-endian ones are read (re-save it on a little-endian machine)"));
    }
    let value = next(&mut at, "object")?;
    let keys = next(&mut at, "storage keys")?;
    let keys: Vec<String> = match &*keys {
        pickle::Value::List(l) => l
            .borrow()
            .iter()
            .map(|k| match k {
                pickle::Value::Str(s) => Ok(s.to_string()),
                _ => Err(Error::bundle(path, "legacy storage keys: a key that is not a string")),
            })
            .collect::<Result<_>>()?,
        _ => return Err(Error::bundle(path, "legacy storage keys: not a list")),
    };
    let (named, skipped) = pickle::tensors(&value).map_err(|r| refused(path, r))?;
    // Element sizes of the storages, from the tensors that name them.
    let mut storages: BTreeMap<&str, &Rc<StorageRef>> = BTreeMap::new();
    for (_, t) in &named {
        storages.entry(t.storage.key.as_str()).or_insert(&t.storage);
    }
    // Walk the storages in the file: a count, then count × element bytes.
    let mut records: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut pos = at as u64;
    for key in &keys {
        let mut count = [0u8; 8];
        if pos.checked_add(8).is_none_or(|end| end > len) {
            return Err(Error::bundle(path, format!("storage '{key}': the file ends before its size (truncated?)")));
        }
        file.read_exact_at(&mut count, pos).map_err(|e| Error::io(path, e))?;
        let count = u64::from_le_bytes(count);
        // A storage no tensor names still occupies its bytes: its element
        // size is unknown, so it must be the last one (nothing to skip past).
        let elem = storages.get(key.as_str()).map(|s| storage_element_size(&s.storage_type)).unwrap_or(1);
        let bytes = count.checked_mul(elem).filter(|&b| b <= len - (pos + 8)).ok_or_else(|| {
            Error::bundle(path, format!("storage '{key}': {count} elements of {elem} bytes run past the end of the file (truncated?)"))
        })?;
        records.insert(key.clone(), (pos + 8, bytes));
        pos += 8 + bytes;
    }
    let mut tensors = Vec::with_capacity(named.len());
    for (name, t) in &named {
        let (start, avail) = *records
            .get(&t.storage.key)
            .ok_or_else(|| Error::tensor(path, name, None, format!("its storage '{}' is not among the file's storages", t.storage.key)))?;
        tensors.push((name.clone(), place(path, name, t, start, avail)?));
    }
    Ok(TorchFile { container: Container::Legacy, tensors: unique(path, tensors)?, skipped })
}

/// Two paths that flatten to one dotted name (`{"a.b": x, "a": {"b": y}}`)
/// would make one of the tensors unreachable: refused.
fn unique(path: &Path, tensors: Vec<(String, Located)>) -> Result<Vec<(String, Located)>> {
    let mut seen = std::collections::HashSet::with_capacity(tensors.len());
    for (name, _) in &tensors {
        if !seen.insert(name.as_str()) {
            return Err(Error::tensor(path, name, None, "two tensors have this name once nested keys are joined with '.'"));
        }
    }
    Ok(tensors)
}

/// Bytes per element of a storage type (an untyped storage counts bytes).
fn storage_element_size(storage_type: &str) -> u64 {
    match storage_type {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        _ => 1,
    }
}

fn storage_dtype(storage_type: &str) -> Option<DType> {
    Some(match storage_type {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::BOOL,
        _ => return None,
    })
}

fn torch_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "float64" => DType::F64,
        "float32" => DType::F32,
        "float16" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "int16" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "bool" => DType::BOOL,
        "float8_e4m3fn" => DType::F8E4M3,
        "float8_e5m2" => DType::F8E5M2,
        _ => return None,
    })
}

/// Where a view's values lie: checked against its storage (which the
/// pickle sizes) and the storage against its record in the file (`start`,
/// `avail` bytes), all in overflow-checked arithmetic.
fn place(path: &Path, name: &str, t: &TensorRef, start: u64, avail: u64) -> Result<Located> {
    let bad = |m: String| Error::tensor(path, name, None, m);
    let dtype = match &t.dtype {
        Some(d) => torch_dtype(d).ok_or_else(|| bad(format!("dtype torch.{d} is not read by parity")))?,
        None => storage_dtype(&t.storage.storage_type)
            .ok_or_else(|| bad(format!("a {} with no dtype: cannot tell its element type", t.storage.storage_type)))?,
    };
    let storage_bytes = t
        .storage
        .numel
        .checked_mul(storage_element_size(&t.storage.storage_type))
        .ok_or_else(|| bad(format!("storage '{}' claims {} elements: the size overflows", t.storage.key, t.storage.numel)))?;
    if storage_bytes > avail {
        return Err(bad(format!(
            "storage '{}' claims {storage_bytes} bytes but its record holds {avail} (truncated?)",
            t.storage.key
        )));
    }
    let elem = dtype.size() as u64;
    let too_big = || bad(format!("size {:?} with stride {:?} at offset {} overflows", t.size, t.stride, t.offset));
    let shape: Vec<usize> = t.size.iter().map(|&d| usize::try_from(d).map_err(|_| too_big())).collect::<Result<_>>()?;
    // The non-zero sizes' product must fit too: an empty tensor's other
    // dimensions are multiplied in other orders downstream.
    shape.iter().filter(|&&d| d != 0).try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(too_big)?;
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(too_big)?;
    let len = numel.checked_mul(elem as usize).ok_or_else(too_big)?;
    if numel == 0 {
        // An empty view reads nothing; torch accepts any offset for it.
        return Ok(Located { dtype, shape, shard: 0, offset: start, len: 0, strides: None, encoding: None });
    }
    // The last element the view reaches, in elements of its dtype.
    let mut last = t.offset;
    for (&d, &s) in t.size.iter().zip(&t.stride) {
        last = (d - 1).checked_mul(s).and_then(|x| last.checked_add(x)).ok_or_else(too_big)?;
    }
    let end = last.checked_add(1).and_then(|e| e.checked_mul(elem)).ok_or_else(too_big)?;
    if end > storage_bytes {
        return Err(bad(format!(
            "view (offset {}, size {:?}, stride {:?}) needs {end} bytes of storage '{}', which holds {storage_bytes}",
            t.offset, t.size, t.stride, t.storage.key
        )));
    }
    let offset = start + t.offset * elem;
    let contiguous = {
        let mut want = 1u64;
        let mut ok = true;
        for (&d, &s) in t.size.iter().zip(&t.stride).rev() {
            if d != 1 && s != want {
                ok = false;
            }
            want *= d;
        }
        ok
    };
    let strides = if contiguous {
        None
    } else {
        Some(t.stride.iter().map(|&s| usize::try_from(s).map_err(|_| too_big())).collect::<Result<Vec<_>>>()?)
    };
    Ok(Located { dtype, shape, shard: 0, offset, len, strides, encoding: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_magic_is_pickles_long1_of_torchs_magic_number() {
        // 0x1950a86a20f9469cfc6c as LONG1's little-endian bytes.
        let n: u128 = 0x1950a86a20f9469cfc6c;
        assert_eq!(&LEGACY_MAGIC[4..14], &n.to_le_bytes()[..10]);
        assert!(is_legacy(&LEGACY_MAGIC));
        assert!(!is_legacy(b"PK\x03\x04"));
    }

    #[test]
    fn the_root_of_a_torch_zip_is_one_directory_deep() {
        assert_eq!(pickle_root("archive/data.pkl"), Some("archive/"));
        assert_eq!(pickle_root("my_model/data.pkl"), Some("my_model/"));
        assert_eq!(pickle_root("data.pkl"), None);
        assert_eq!(pickle_root("a/b/data.pkl"), None);
        assert_eq!(pickle_root("archive/xdata.pkl"), None);
    }

    fn view(numel: u64, offset: u64, size: &[u64], stride: &[u64]) -> TensorRef {
        TensorRef {
            storage: Rc::new(StorageRef { storage_type: "FloatStorage".into(), key: "0".into(), numel }),
            dtype: None,
            offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
        }
    }

    #[test]
    fn views_are_placed_in_their_storage_or_refused() {
        let p = Path::new("m.pt");
        // Row-major: a plain region.
        let l = place(p, "w", &view(6, 0, &[2, 3], &[3, 1]), 64, 24).unwrap();
        assert_eq!((l.offset, l.len, l.strides.clone()), (64, 24, None));
        // Size-1 dimensions may carry any stride.
        assert_eq!(place(p, "w", &view(6, 2, &[1, 3], &[99, 1]), 64, 24).unwrap().strides, None);
        // A transpose keeps its strides; a column its offset.
        assert_eq!(place(p, "t", &view(6, 0, &[3, 2], &[1, 3]), 64, 24).unwrap().strides, Some(vec![1, 3]));
        let c = place(p, "c", &view(6, 1, &[2], &[3]), 64, 24).unwrap();
        assert_eq!((c.offset, c.len, c.strides), (68, 8, Some(vec![3])));
        // Past the storage, past the record, overflowing.
        let e = place(p, "w", &view(6, 1, &[2, 3], &[3, 1]), 64, 24).unwrap_err().to_string();
        assert!(e.contains("tensor 'w'") && e.contains("needs 28 bytes of storage '0', which holds 24"), "{e}");
        let e = place(p, "w", &view(7, 0, &[2, 3], &[3, 1]), 64, 24).unwrap_err().to_string();
        assert!(e.contains("claims 28 bytes but its record holds 24"), "{e}");
        let e = place(p, "w", &view(6, 0, &[2, u64::MAX], &[3, 1]), 64, 24).unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        let e = place(p, "w", &view(u64::MAX, 0, &[1], &[1]), 64, 24).unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        // Empty, but its other sizes overflow when multiplied in another order.
        let e = place(p, "w", &view(6, 0, &[0, 1 << 40, 1 << 40], &[1, 1, 1]), 64, 24).unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        // Empty: any offset, no bytes.
        assert_eq!(place(p, "e", &view(0, 5, &[0, 4], &[4, 1]), 64, 0).unwrap().len, 0);
    }
}
