//! `parity.manifest.v1`: what `parity apply` did, written beside its output
//! (`manifest.json`) after every completed piece of work, atomically — so a
//! run killed at any moment leaves a manifest that describes only finished,
//! durable work, and a rerun can verify and skip it.

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "parity.manifest.v1";
pub const FILE: &str = "manifest.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Computed (or resumed and verified) and part of the output.
    Applied,
    /// Verified from an earlier run and not recomputed.
    Skipped,
    Failed,
}

/// One (step, tensor) of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub step: String,
    /// The target tensor (or, for merge_missing, the tensor taken).
    pub tensor: String,
    /// The tensor written (after `output:` renaming), if any.
    pub output: Option<String>,
    pub status: ActionStatus,
    /// sha256 of the written tensor's bytes.
    pub sha256: Option<String>,
    /// xxh3-128 of the bytes, dtypes and shapes of the tensors an operation
    /// read (in input-name order): a rerun after an input changed redoes
    /// exactly the actions whose inputs hash differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_xxh3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// One output file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Relative to the output directory.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    pub path: String,
    pub layout: String,
    /// Every file the input was read from, as it was when the run began: a
    /// rerun compares them to tell a changed input (a checkpoint saved
    /// again) from the one the recorded work was computed from. Absent in
    /// manifests written before parity recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<InputFile>,
}

/// What a file was, by the facts a rewrite changes (as make and git's
/// index tell a file changed): its size and its modification time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// As the input names it, then the file within it (`a/model-00001-of-00002.safetensors`).
    pub path: String,
    pub bytes: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    /// sha256 of the plan file's bytes.
    pub plan_sha256: String,
    pub parity_version: String,
    /// `fast`, `reference`.
    pub implementation: String,
    pub inputs: Vec<Input>,
    pub actions: Vec<Action>,
    /// Filled when every file is written: the run is complete.
    pub files: Vec<OutputFile>,
    pub complete: bool,
}

impl Manifest {
    /// Parse a manifest's bytes (read from `path`, named in errors) and
    /// check its schema. The one reader of manifests: `apply`'s resume and
    /// the fuzz target go through it.
    pub fn from_json(path: &std::path::Path, bytes: &[u8]) -> crate::Result<Manifest> {
        use crate::Error;
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::json(path, format!("not a {SCHEMA} manifest: {e} (--force starts afresh)")))?;
        if m.schema != SCHEMA {
            return Err(Error::json(path, format!("schema '{}', expected '{SCHEMA}'", m.schema)));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a manifest serialises");
        s.push('\n');
        s
    }
}
