//! numpy checkpoints: a `.npy` file, a directory of `.npy` files, or an
//! `.npz` archive whose members are stored uncompressed (`np.savez`).
//!
//! Only the headers are parsed here — the magic, the version, and the small
//! Python-literal dict `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}`
//! — so that the data can be streamed from its file offset like a
//! safetensors region (a crate that hands out readers would force a copy).
//! The `.npz` container is read with the `zip` crate, which gives each
//! member's data offset. Compressed members (`np.savez_compressed`),
//! Fortran order, big-endian and object arrays are refused by name: parity
//! never executes pickled code (`allow_pickle` arrays have descr `|O`).

use super::checkpoint::{Checkpoint, Located};
use super::dtype::DType;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Open `path` (a .npy, a .npz, or a directory of .npy files).
pub fn open(path: &Path) -> Result<Checkpoint> {
    let mut files = Vec::new();
    let mut tensors = BTreeMap::new();
    if path.is_dir() {
        let mut npys: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "npy"))
            .collect();
        npys.sort();
        for p in npys {
            add_npy(&p, &mut files, &mut tensors)?;
        }
    } else if is_zip(path)? {
        add_npz(path, &mut files, &mut tensors)?;
    } else {
        add_npy(path, &mut files, &mut tensors)?;
    }
    Ok(Checkpoint::from_parts(path, files, tensors))
}

/// A zip (an `.npz`) by its first bytes, whatever its name.
fn is_zip(path: &Path) -> Result<bool> {
    let (file, len) = super::file::open_regular(path)?;
    let mut head = [0u8; 4];
    if len < 4 {
        return Ok(false);
    }
    file.read_exact_at(&mut head, 0).map_err(|e| Error::io(path, e))?;
    Ok(&head[..2] == b"PK")
}

fn add_npy(path: &Path, files: &mut Vec<(PathBuf, File)>, tensors: &mut BTreeMap<String, Located>) -> Result<()> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let (dtype, shape, header_end) = header(&file, 0, len, path, &name)?;
    let loc = located(path, &name, dtype, shape, files.len(), header_end, len)?;
    tensors.insert(name, loc);
    files.push((path.to_path_buf(), file));
    Ok(())
}

fn add_npz(path: &Path, files: &mut Vec<(PathBuf, File)>, tensors: &mut BTreeMap<String, Located>) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = zip::ZipArchive::new(file.try_clone().map_err(|e| Error::io(path, e))?)
        .map_err(|e| Error::bundle(path, format!("not a readable zip archive (an .npz, or a torch.save file): {e}")))?;
    let shard = files.len();
    for i in 0..archive.len() {
        let member = archive.by_index_raw(i).map_err(|e| Error::bundle(path, format!("zip member {i}: {e}")))?;
        let member_name = member.name().to_string();
        let Some(name) = member_name.strip_suffix(".npy") else { continue };
        let name = name.to_string();
        if member.compression() != zip::CompressionMethod::Stored {
            return Err(Error::tensor(
                path,
                &name,
                None,
                "compressed member (np.savez_compressed): parity streams arrays from their offset; save with np.savez",
            ));
        }
        let start = member.data_start();
        let end = start + member.size();
        let (dtype, shape, header_end) = header(&file, start, end, path, &name)?;
        let loc = located(path, &name, dtype, shape, shard, header_end, end)?;
        if tensors.insert(name.clone(), loc).is_some() {
            return Err(Error::tensor(path, &name, None, "two members with this name"));
        }
    }
    files.push((path.to_path_buf(), file));
    Ok(())
}

fn located(path: &Path, name: &str, dtype: DType, shape: Vec<usize>, shard: usize, start: u64, end: u64) -> Result<Located> {
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let bytes = numel.and_then(|n| n.checked_mul(dtype.size()));
    match bytes {
        Some(b) if b as u64 == end.saturating_sub(start) => Ok(Located { dtype, shape, shard, offset: start, len: b, strides: None, encoding: None }),
        Some(b) => Err(Error::tensor(path, name, None, format!("header describes {b} bytes of data but {} follow it", end.saturating_sub(start)))),
        None => Err(Error::tensor(path, name, None, format!("shape {shape:?} overflows"))),
    }
}

/// Parse the header of an array whose file bytes are `[start, end)`:
/// (dtype, shape, offset of the first data byte).
fn header(file: &File, start: u64, end: u64, path: &Path, name: &str) -> Result<(DType, Vec<usize>, u64)> {
    let bad = |m: String| Error::tensor(path, name, None, m);
    let mut pre = [0u8; 12];
    if end < start + 10 {
        return Err(bad("not a .npy array: too short".into()));
    }
    let n = ((end - start) as usize).min(12);
    file.read_exact_at(&mut pre[..n], start).map_err(|e| Error::io(path, e))?;
    if &pre[..6] != MAGIC {
        return Err(bad("not a .npy array (no \\x93NUMPY magic)".into()));
    }
    let (len, at) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as u64, 10u64),
        2 | 3 if n == 12 => (u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as u64, 12u64),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    if start + at + len > end || len > 1 << 20 {
        return Err(bad(format!("header length {len} runs past the array")));
    }
    let mut text = vec![0u8; len as usize];
    file.read_exact_at(&mut text, start + at).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(text).map_err(|_| bad("header is not text".into()))?;
    let descr = field(&text, "descr").ok_or_else(|| bad(format!("no 'descr' in header {}", text.trim())))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let dtype = match descr {
        "<f8" => DType::F64,
        "<f4" => DType::F32,
        "<f2" => DType::F16,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "<i2" => DType::I16,
        "|i1" | "<i1" => DType::I8,
        "|u1" | "<u1" => DType::U8,
        "|b1" => DType::BOOL,
        other => {
            return Err(bad(format!(
                "dtype '{other}' is not supported (little-endian f64/f32/f16, i64/i32/i8, u8, bool; object arrays are never unpickled)"
            )))
        }
    };
    let fortran = field(&text, "fortran_order").map(|v| v.trim().to_string()).unwrap_or_default();
    if fortran != "False" {
        return Err(bad(format!("fortran_order is {fortran}: only C-order arrays are read")));
    }
    let shape_text = field(&text, "shape").ok_or_else(|| bad("no 'shape' in header".into()))?;
    let shape = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| bad(format!("shape entry '{s}' is not a size"))))
        .collect::<Result<Vec<usize>>>()?;
    Ok((dtype, shape, start + at + len))
}

/// The value text of `'key': value` in the header dict (up to the next
/// top-level comma, or the closing parenthesis for the shape tuple).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?;
    if let Some(open) = rest.trim_start().strip_prefix('(') {
        let close = open.find(')')?;
        return Some(&open[..close]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}
