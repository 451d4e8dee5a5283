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
    #[error("{}: {}", shown_path(.path), .source)]
    Io { path: PathBuf, source: std::io::Error },
    /// A JSON file (report, tolerance profile) is not what it should be.
    #[error("{}: {}", shown_path(.path), shown(.message))]
    Json { path: PathBuf, message: String },
    /// A safetensors file is truncated, hostile or otherwise unreadable.
    #[error("{}: {}", shown_path(.path), shown(.message))]
    Bundle { path: PathBuf, message: String },
    /// One tensor (and maybe one stage of it) in a file is wrong.
    #[error("{}: tensor '{}'{}: {}", shown_path(.path), shown(.tensor), stage_part(.stage), shown(.message))]
    Tensor { path: PathBuf, tensor: String, stage: Option<String>, message: String },
    /// An operation was called with inputs or parameters it cannot accept.
    #[error("{}: tensor '{}': {}", shown(.op), shown(.tensor), shown(.message))]
    Operation { op: String, tensor: String, message: String },
    /// A parameter of an operation call is unknown, missing or of the wrong
    /// kind (see `ops::params`). `path` names the report or plan, when known.
    #[error("{}{}: tensor '{}': parameter '{}': {}", .path.as_deref().map(|p| format!("{}: ", shown_path(p))).unwrap_or_default(), shown(.op), shown(.tensor), shown(.key), shown(&.problem.to_string()))]
    Parameter { path: Option<PathBuf>, op: String, tensor: String, key: String, problem: ParamProblem },
    /// A file's bytes are not the ones its report or manifest describes.
    #[error("{}: tensor '{}'{}: sha256 of the data is {} but {} says {}: the {} does not describe this bundle", shown_path(.path), shown(.tensor), stage_part(.stage), short(.actual), shown_path(.described_by), short(.expected), .described_as)]
    HashMismatch {
        path: PathBuf,
        tensor: String,
        stage: Option<String>,
        expected: String,
        actual: String,
        described_by: PathBuf,
        /// What `described_by` is: "report", "manifest".
        described_as: &'static str,
    },
    /// A stage the comparison requires is not there.
    #[error("{}: tensor '{}' stage '{}': {}", shown_path(.path), shown(.tensor), shown(.stage), shown(.message))]
    MissingStage { path: PathBuf, tensor: String, stage: String, message: String },
    /// A path named inside a file climbs out of that file's directory.
    #[error("{}: \"{}\": '{}' escapes the {}'s directory ({})", shown_path(.path), shown(.field), shown(.target), .container, escape_hint(.container))]
    PathEscapes { path: PathBuf, field: String, target: String, container: &'static str },
    /// A checksum manifest and the files it lists disagree.
    #[error("{}: {}", shown_path(.path), shown(.message))]
    ManifestMismatch { path: PathBuf, message: String },
    /// A YAML file (a surgery plan) is not valid YAML, or holds a key twice.
    #[error("{}: not YAML: {}", shown_path(.path), shown(.message))]
    Yaml { path: PathBuf, message: String },
    /// An output directory (apply's) exists and is not a directory.
    #[error("{}: the output exists and is not a directory", shown_path(.path))]
    OutputNotDirectory { path: PathBuf },
    /// An output path that cannot be written as asked (a directory, a block
    /// device, a loop of symbolic links, a device where a seekable file is
    /// needed).
    #[error("{}: {}", shown_path(.path), shown(.message))]
    OutputNotWritable { path: PathBuf, message: String },
    /// An output path is, or links to, a file the run reads: writing it
    /// would destroy an input.
    #[error("{}: is {} ({}), an input of this run: writing {} there would overwrite it (choose another path)", shown_path(.output), .what, shown_path(.input), .written)]
    OutputIsInput { output: PathBuf, input: PathBuf, what: String, written: String },
    /// The command line asks for something impossible (e.g. `--select` matches nothing).
    #[error("{}", shown(.0))]
    Usage(String),
}

/// What is wrong with one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamProblem {
    /// Not a parameter of the operation.
    Unknown { known: Vec<String>, suggestion: Option<String> },
    /// Required and absent.
    Missing,
    /// Present with a value of the wrong JSON kind.
    WrongType { expected: String, got: String },
}

impl std::fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamProblem::Unknown { known, suggestion } => {
                write!(f, "unknown parameter")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean '{s}'?)")?;
                }
                if known.is_empty() {
                    write!(f, "; this operation takes no parameters")
                } else {
                    write!(f, "; known: {}", known.join(", "))
                }
            }
            ParamProblem::Missing => write!(f, "required but missing"),
            ParamProblem::WrongType { expected, got } => write!(f, "must be {expected}, got {got}"),
        }
    }
}

fn short(h: &str) -> String {
    // Hashes come from files: cut at a character boundary, whatever they hold.
    let cut = h.char_indices().nth(12).map_or(h.len(), |(i, _)| i);
    format!("{}…", shown(&h[..cut]))
}

/// Names and messages come from files and may hold anything: a tensor named
/// "a\nb" must not turn the one-line error into two. Control characters are
/// shown escaped, as Rust's `{:?}` shows them; everything else as it is.
fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect::<String>().into()
    } else {
        s.into()
    }
}

fn shown_path(p: &Path) -> String {
    shown(&p.display().to_string()).into_owned()
}

/// What a user can do about a path that escapes: reports and plans may
/// name files elsewhere when asked to (`--allow-outside-paths` on the
/// commands that read them); an index or a golden case may not, whatever
/// the flags (their files belong to them).
fn escape_hint(container: &str) -> &'static str {
    match container {
        "report" | "plan" => "pass --allow-outside-paths to permit it",
        "index" => "an index names shard files inside its own directory; no flag permits otherwise",
        _ => "its files must stay inside it; no flag permits otherwise",
    }
}

fn stage_part(stage: &Option<String>) -> String {
    stage.as_deref().map(|s| format!(" stage '{}'", shown(s))).unwrap_or_default()
}

impl Error {
    /// Name the file a parameter error came from (a report or plan).
    pub fn in_file(self, file: &Path) -> Self {
        match self {
            Error::Parameter { path: None, op, tensor, key, problem } => {
                Error::Parameter { path: Some(file.to_path_buf()), op, tensor, key, problem }
            }
            other => other,
        }
    }
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
    pub fn json(path: &Path, message: impl Into<String>) -> Self {
        Error::Json { path: path.to_path_buf(), message: one_line(message.into()) }
    }
    pub fn yaml(path: &Path, message: impl Into<String>) -> Self {
        Error::Yaml { path: path.to_path_buf(), message: one_line(message.into()) }
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

/// The known name closest to a misspelt one, if one is close enough to be a
/// plausible typo (at most a third of its letters edited, and at least one).
pub fn did_you_mean<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    known
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min()
        .map(|(_, k)| k.to_string())
}
