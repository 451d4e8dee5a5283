//! The `parity.report.v1` JSON report: one side's run, described.
//!
//! Readers ignore unknown fields (serde's default); writers emit keys in a
//! stable order — struct field order, and stages in pipeline order (an
//! insertion-ordered map). The JSON Schema shipped beside this file,
//! [`SCHEMA_JSON`], is the published contract and is validated in tests.

use crate::format::dtype::DType;
use crate::error::{Error, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

pub mod capture;
pub mod write;

pub const SCHEMA: &str = "parity.report.v1";
/// The JSON Schema of a report, as shipped in the repository.
pub const SCHEMA_JSON: &str = include_str!("../../../schemas/parity.report.v1.schema.json");

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Report {
    pub schema: String,
    pub producer: Producer,
    /// Path of the stage bundle, relative to the report's directory.
    pub stage_bundle: String,
    /// Path of the components (operation inputs), relative to the report's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    pub tensors: Vec<TensorEntry>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Producer {
    pub name: String,
    pub implementation: String,
    #[serde(default)]
    pub versions: IndexMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Baseline {
    pub label: String,
    #[serde(default)]
    pub historical_reproducible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TensorEntry {
    /// The tensor's real name (e.g. `model.layers.26.mlp.gate_proj.weight`).
    pub name: String,
    /// Its safe name, used in bundle keys.
    pub key: String,
    pub operation: String,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Stages in pipeline order.
    pub stages: IndexMap<String, StageEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub historical_final_sha256: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StageEntry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub sha256: String,
}

/// A report read from disk, with the directory its paths are relative to.
#[derive(Clone, Debug)]
pub struct LoadedReport {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub report: Report,
}

impl Report {
    /// Parse and check a report's JSON. `path` only names the file in errors.
    pub fn from_json(path: &Path, text: &[u8]) -> Result<Report> {
        let value: serde_json::Value =
            crate::format::strict_json::parse(text).map_err(|e| Error::json(path, format!("malformed JSON: {e}")))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => return Err(Error::json(path, format!("unknown schema '{other}' (expected '{SCHEMA}')"))),
            None => return Err(Error::json(path, format!("not a parity report: no \"schema\": \"{SCHEMA}\" field"))),
        }
        let report = Report::deserialize(&value).map_err(|e| invalid_where(path, &value, e))?;
        report.check(path)?;
        Ok(report)
    }

    /// Rules JSON types alone cannot express.
    fn check(&self, path: &Path) -> Result<()> {
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for t in &self.tensors {
            if !names.insert(&t.name) {
                return Err(Error::tensor(path, &t.name, None, "listed twice"));
            }
            if t.key.is_empty() || !t.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::tensor(path, &t.name, None, format!("key '{}' is not a safe name ([A-Za-z0-9_]+)", t.key)));
            }
            if !keys.insert(&t.key) {
                return Err(Error::tensor(path, &t.name, None, format!("key '{}' is used by two tensors", t.key)));
            }
            let hashes = t.stages.iter().map(|(s, e)| (Some(s.as_str()), &e.sha256));
            let finals = [&t.final_sha256, &t.historical_final_sha256].into_iter().flatten().map(|h| (None, h));
            for (stage, h) in hashes.chain(finals) {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::tensor(path, &t.name, stage, format!("sha256 '{h}' is not 64 hex digits")));
                }
            }
        }
        Ok(())
    }

    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("reports always serialize");
        s.push('\n');
        s
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// A report JSON types refuse, with the tensor (and stage) at fault named
/// when the fault is inside one: serde's own message names only the field.
fn invalid_where(path: &Path, value: &serde_json::Value, e: serde_json::Error) -> Error {
    let tensors = value.get("tensors").and_then(|t| t.as_array()).map(Vec::as_slice).unwrap_or_default();
    for (i, t) in tensors.iter().enumerate() {
        let Err(e) = TensorEntry::deserialize(t) else { continue };
        let name = t.get("name").and_then(|n| n.as_str()).map_or_else(|| format!("#{}", i + 1), str::to_string);
        let stages = t.get("stages").and_then(|s| s.as_object());
        let stage = stages.and_then(|m| m.iter().find(|(_, s)| StageEntry::deserialize(*s).is_err()));
        return match stage {
            Some((stage, s)) => {
                let e = StageEntry::deserialize(s).expect_err("found failing");
                Error::tensor(path, &name, Some(stage), format!("invalid report: {e}"))
            }
            None => Error::tensor(path, &name, None, format!("invalid report: {e}")),
        };
    }
    Error::json(path, format!("invalid report: {e}"))
}

impl LoadedReport {
    pub fn load(path: &Path) -> Result<LoadedReport> {
        let text = crate::format::file::read_small(path, crate::format::file::MAX_JSON)?;
        let report = Report::from_json(path, &text)?;
        // Paths in a report are relative to where the report file is: read
        // through a symbolic link, that is the directory of the file it
        // names (where its writer put the bundle), not the link's.
        let real = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => crate::format::atomic::resolve(path).map(|d| d.path().to_path_buf()).unwrap_or_else(|_| path.to_path_buf()),
            _ => path.to_path_buf(),
        };
        let dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        Ok(LoadedReport { path: path.to_path_buf(), dir, report })
    }

    /// Resolve a path the report names. Paths are relative to the report's
    /// directory; one that is absolute or climbs out with `..` is refused
    /// unless `allow_escape` — a report from elsewhere must not make parity
    /// read (or, on replay, write next to) files the user did not point at.
    pub fn resolve(&self, field: &str, rel: &str, allow_escape: bool) -> Result<PathBuf> {
        let p = Path::new(rel);
        if rel.is_empty() {
            return Err(Error::json(&self.path, format!("\"{field}\" is empty")));
        }
        let escapes = p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)));
        if escapes && !allow_escape {
            return Err(Error::PathEscapes {
                path: self.path.clone(),
                field: field.to_string(),
                target: rel.to_string(),
                container: "report",
            });
        }
        Ok(if p.is_absolute() { p.to_path_buf() } else { self.dir.join(p) })
    }

    /// The stage bundle this report describes: a file that must be there.
    pub fn stage_bundle_path(&self, allow_escape: bool) -> Result<PathBuf> {
        let p = self.resolve("stage_bundle", &self.report.stage_bundle, allow_escape)?;
        self.named_file("stage_bundle", p)
    }

    /// The components file replay reads: a file that must be there.
    pub fn components_path(&self, allow_escape: bool) -> Result<PathBuf> {
        match &self.report.components {
            Some(c) => {
                let p = self.resolve("components", c, allow_escape)?;
                self.named_file("components", p)
            }
            None => Err(Error::json(&self.path, "no \"components\" file named: nothing to replay from")),
        }
    }

    /// A file this report names, looked at before anyone opens it, so that
    /// a wrong one is refused naming the report and the field that sent
    /// parity there: `"stage_bundle": "."` is the report's mistake, and
    /// "./.: is a directory" alone does not say which file to fix. (The
    /// open that follows still checks again: this only words the error.)
    fn named_file(&self, field: &str, p: PathBuf) -> Result<PathBuf> {
        let problem = match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => return Ok(p),
            Ok(m) if m.is_dir() => ", which is a directory, not a file".to_string(),
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                let t = m.file_type();
                let what = if t.is_fifo() {
                    "a FIFO (named pipe)"
                } else if t.is_socket() {
                    "a socket"
                } else if t.is_char_device() || t.is_block_device() {
                    "a device"
                } else {
                    "something else"
                };
                format!(", which is {what}, not a regular file")
            }
            Err(e) => format!(": {e}"),
        };
        Err(Error::json(&self.path, format!("\"{field}\" names {}{problem}", p.display())))
    }
}
