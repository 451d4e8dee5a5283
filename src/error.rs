//! The one error type of the library: every way an input can be wrong.
//!
//! Every variant is a *setup* error (exit code 2): the comparison could not be
//! made as asked. A broken parity is not an error — it is a gate verdict. Each
//! message is one line naming the file, the tensor and the stage where known.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{}: {}", .path.display(), .source)]
    Io { path: PathBuf, source: std::io::Error },
    /// A JSON file (report, tolerance profile) is not what it should be.
    #[error("{}: {}", .path.display(), .message)]
    Json { path: PathBuf, message: String },
    /// A safetensors file is truncated, hostile or otherwise unreadable.
    #[error("{}: {}", .path.display(), .message)]
    Bundle { path: PathBuf, message: String },
    /// One tensor (and maybe one stage of it) in a file is wrong.
    #[error("{}: tensor '{}'{}: {}", .path.display(), .tensor, .stage.as_deref().map(|s| format!(" stage '{s}'")).unwrap_or_default(), .message)]
    Tensor { path: PathBuf, tensor: String, stage: Option<String>, message: String },
    /// An operation was called with inputs or parameters it cannot accept.
    #[error("{op}: tensor '{tensor}': {message}")]
    Operation { op: String, tensor: String, message: String },
    /// The command line asks for something impossible (e.g. `--select` matches nothing).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
    pub fn json(path: &Path, message: impl Into<String>) -> Self {
        Error::Json { path: path.to_path_buf(), message: one_line(message.into()) }
    }
    pub fn bundle(path: &Path, message: impl Into<String>) -> Self {
        Error::Bundle { path: path.to_path_buf(), message: one_line(message.into()) }
    }
    pub fn tensor(path: &Path, tensor: &str, stage: Option<&str>, message: impl Into<String>) -> Self {
        Error::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            stage: stage.map(str::to_string),
            message: one_line(message.into()),
        }
    }
    pub fn operation(op: &str, tensor: &str, message: impl Into<String>) -> Self {
        Error::Operation { op: op.to_string(), tensor: tensor.to_string(), message: one_line(message.into()) }
    }
}

/// Messages from libraries sometimes span lines; our contract is one line.
fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}
