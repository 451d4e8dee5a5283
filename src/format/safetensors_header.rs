//! Reading a safetensors header — only the header, by positional reads — and
//! holding every entry to the format's rules, naming the tensor at fault.
//!
//! The `safetensors` crate validates the same rules but its errors name no
//! tensor ("invalid offset", "validation overflow", "unknown variant"), and
//! our contract is one line naming the file, the tensor and what is wrong. So
//! the entries are checked here one by one, in the header's own order:
//!
//! * `dtype` is a safetensors type parity reads;
//! * `shape` holds element counts whose product (× the element size) fits;
//! * `data_offsets` is `[start, end]` with `start ≤ end ≤` the data's length,
//!   and `end - start` is exactly shape × element size;
//! * no name is listed twice;
//!
//! then, in offset order, the entries must tile the data from byte 0 to its
//! last byte without gap or overlap. The crate's own validation runs last, so
//! a rule missed here is still enforced (without a tensor name).

use super::dtype::DType;
use crate::error::{Error, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Headers larger than this are refused before they are read: a hostile
/// length must not make parity allocate gigabytes (safetensors' own limit).
pub const MAX_HEADER: u64 = 100_000_000;

/// One tensor as the header describes it; offsets relative to the data.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub start: usize,
    pub end: usize,
}

/// A validated header: where the data starts in the file, and the tensors
/// in offset order.
#[derive(Clone, Debug)]
pub struct Header {
    pub data_start: u64,
    pub entries: Vec<HeaderEntry>,
}

/// Read and validate the header of the open safetensors file `file` (of
/// `file_len` bytes); `path` names it in errors.
pub fn read(file: &File, path: &Path, file_len: u64) -> Result<Header> {
    if file_len < 8 {
        return Err(Error::bundle(path, format!("not a safetensors file: {file_len} bytes, shorter than the 8-byte header length")));
    }
    let mut n = [0u8; 8];
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
    let data_start = 8 + header_len;
    let entries = parse(path, &header, file_len - data_start)?;
    Ok(Header { data_start, entries })
}

/// Validate a header's JSON against `data_len` bytes of data.
pub fn parse(path: &Path, header: &[u8], data_len: u64) -> Result<Vec<HeaderEntry>> {
    let text = std::str::from_utf8(header)
        .map_err(|e| Error::bundle(path, format!("invalid safetensors header: not UTF-8 ({e})")))?;
    let raw = RawHeader::parse(text).map_err(|e| Error::bundle(path, format!("invalid safetensors header: {e}")))?;
    let data_len = usize::try_from(data_len).unwrap_or(usize::MAX);

    let mut entries: Vec<HeaderEntry> = Vec::with_capacity(raw.0.len());
    let mut seen = std::collections::HashSet::new();
    for (name, value) in raw.0 {
        if name == "__metadata__" {
            let strings = value.as_object().is_some_and(|m| m.values().all(serde_json::Value::is_string));
            if !strings {
                return Err(Error::bundle(path, "invalid safetensors header: \"__metadata__\" must map strings to strings"));
            }
            continue;
        }
        let bad = |what: String| Error::tensor(path, &name, None, format!("invalid safetensors header: {what}"));
        if !seen.insert(name.clone()) {
            return Err(bad("listed twice".into()));
        }
        let entry = entry(&name, &value, data_len).map_err(bad)?;
        entries.push(entry);
    }

    // In offset order the tensors tile the data exactly. Empty tensors
    // (start == end) sort before a non-empty one at the same start.
    entries.sort_by(|a, b| (a.start, a.end, &a.name).cmp(&(b.start, b.end, &b.name)));
    let mut at = 0usize;
    for e in &entries {
        if e.start != at {
            let why = if e.start > at {
                format!("starts at data byte {} but the tensor before it ends at {at}: a gap", e.start)
            } else {
                format!("starts at data byte {} but the tensor before it ends at {at}: an overlap", e.start)
            };
            return Err(Error::tensor(path, &e.name, None, format!("invalid safetensors header: {why} (tensors must tile the data)")));
        }
        at = e.end;
    }
    if at != data_len {
        return Err(Error::bundle(
            path,
            format!("invalid safetensors: the header describes {at} bytes of data but the file holds {data_len} (truncated or padded)"),
        ));
    }

    // Belt and braces: the crate's own rules, should ours have missed one.
    serde_json::from_str::<safetensors::tensor::Metadata>(text)
        .map_err(|e| Error::bundle(path, format!("invalid safetensors header: {e}")))?;
    Ok(entries)
}

fn entry(name: &str, value: &serde_json::Value, data_len: usize) -> std::result::Result<HeaderEntry, String> {
    let obj = value.as_object().ok_or_else(|| format!("entry must be an object, got {}", kind(value)))?;
    let field = |k: &str| obj.get(k).ok_or_else(|| format!("no \"{k}\""));

    let dtype = match field("dtype")? {
        serde_json::Value::String(s) => match serde_json::from_value::<safetensors::Dtype>(serde_json::Value::String(s.clone())) {
            Ok(d) => DType::from_safetensors(d).ok_or_else(|| format!("dtype {s} is not one parity reads"))?,
            Err(_) => return Err(format!("unknown dtype '{s}'")),
        },
        other => return Err(format!("\"dtype\" must be a string, got {}", kind(other))),
    };
    let shape: Vec<usize> = match field("shape")? {
        serde_json::Value::Array(dims) => dims
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| format!("\"shape\" must hold non-negative integers, got {}", compact(field("shape").unwrap())))?,
        other => return Err(format!("\"shape\" must be an array, got {}", kind(other))),
    };
    let offsets = field("data_offsets")?;
    let (start, end) = match offsets.as_array().map(Vec::as_slice) {
        Some([s, e]) => match (s.as_u64().and_then(|s| usize::try_from(s).ok()), e.as_u64().and_then(|e| usize::try_from(e).ok())) {
            (Some(s), Some(e)) => (s, e),
            _ => return Err(format!("\"data_offsets\" {} must be two non-negative integers", compact(offsets))),
        },
        _ => return Err(format!("\"data_offsets\" must be [start, end], got {}", compact(offsets))),
    };
    let bytes = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| format!("shape {shape:?} of {dtype} overflows: more bytes than any file can hold"))?;
    if end < start {
        return Err(format!("data_offsets [{start}, {end}] end before they start"));
    }
    if end > data_len {
        return Err(format!(
            "data_offsets [{start}, {end}] run past the end of the data ({data_len} bytes): the file is truncated or the offsets are wrong"
        ));
    }
    if end - start != bytes {
        return Err(format!("shape {shape:?} of {dtype} needs {bytes} bytes but data_offsets [{start}, {end}] hold {}", end - start));
    }
    Ok(HeaderEntry { name: name.to_string(), dtype, shape, start, end })
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A JSON value shown briefly in an error.
fn compact(v: &serde_json::Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// The header's top-level object with every key kept, duplicates included
/// (a JSON map would keep only the last of two equal keys).
struct RawHeader(Vec<(String, serde_json::Value)>);

impl RawHeader {
    fn parse(text: &str) -> serde_json::Result<RawHeader> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = (&mut de).deserialize_map(RawVisitor)?;
        de.end()?;
        Ok(raw)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawHeader;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object of tensor entries")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawHeader, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            out.push((k, v));
        }
        Ok(RawHeader(out))
    }
}
