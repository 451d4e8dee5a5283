//! Capturing a Rust port's forward pass as a `parity.report.v1` report,
//! while it runs: the Rust side of `parity_oracle.capture`.
//!
//! A port (plain `Vec<f32>`, ndarray, candle, burn…) records each module's
//! output as it computes it; [`Capture::finish`] writes the report. `parity
//! check torch.json rust.json` then compares it, tensor by tensor and stage
//! by stage, with what PyTorch captured for the same input.
//!
//! ```
//! use parity::capture::Capture;
//!
//! # fn main() -> parity::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let report = dir.path().join("rust.json");
//! let mut run = Capture::create(&report, "my-port", "rust-f32")?;
//! let x = vec![0.5f32; 2 * 4];
//! let h: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
//! // One module call, one stage: the common case.
//! run.output("fc1", "Linear", &h, &[2, 4])?;
//! // A module called again is recorded as `fc1#2`, as the Python side names it.
//! assert_eq!(run.output("fc1", "Linear", &h, &[2, 4])?, "fc1#2");
//! // Several stages, of any element type, and parameters.
//! let ids = vec![3i64, 1];
//! let logits = vec![half::bf16::from_f32(0.25); 2 * 3];
//! run.record("head", "LmHead")
//!     .param("vocab", 3)
//!     .stage("argmax", &ids, &[2])?
//!     .stage("output", &logits, &[2, 3])?
//!     .finish()?;
//! run.output("model", "Mlp", &h, &[2, 4])?; // the root, last: hooks fire after the children
//! let written = run.finish()?;
//! assert_eq!(written.tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["fc1", "fc1#2", "head", "model"]);
//! assert!(report.exists() && dir.path().join("rust_stages.safetensors").exists());
//! # Ok(())
//! # }
//! ```
//!
//! # What a capture promises
//!
//! * **Names.** Each record is one report tensor, named by the port's own
//!   dotted path (`encoder.layer.0.attention`), in the order recorded. A
//!   name recorded again is `name#2`, `name#3`, … — the rule
//!   `parity_oracle.capture` applies to a module called twice — so a name
//!   that already ends in `#<digits>` is refused (the two could not be told
//!   apart). The bundle key is the name with every character outside
//!   `[A-Za-z0-9_]` made `_`, suffixed `__2`, … should two names collide, as
//!   in Python.
//! * **Stages** are named `[A-Za-z0-9_]+` (the report's rule), are listed in
//!   the order given, and the last one's hash is the tensor's
//!   `final_sha256`. The dtype is the slice's element type ([`Element`]:
//!   f64, f32, bf16, f16, i64, i32, i8, u8, bool). `operation` is free text
//!   (PyTorch's capture uses the module's class name) and params are empty
//!   unless given with [`Record::param`].
//! * **Streaming.** [`Record::finish`] hashes each stage and appends its
//!   bytes to the stage bundle at once, straight from the caller's slice:
//!   a capture keeps no values, only about 200 bytes of description per
//!   stage. No copy of the values is made — on the little-endian hosts
//!   parity runs on the slice *is* its little-endian bytes ([`Element::bytes`]
//!   is a view) — beyond the file's 1 MiB write buffer, which a stage larger
//!   than it bypasses. The bundle's header is written last into room
//!   reserved up front ([`CaptureBuilder::expected_stages`]; a header that
//!   outgrows it costs one file-to-file copy at finish, never a wrong file).
//! * **All or nothing.** Until [`Capture::finish`] the bundle is a
//!   temporary beside the report's path and nothing is written under the
//!   final names; a capture dropped without finishing (a panic, an early
//!   `?`) removes its temporary and leaves an existing report and bundle as
//!   they were. Finishing replaces them as a pair (see
//!   [`super::write::write_run`]).
//! * **Errors** are [`Error`]s of one line naming the report, the tensor and
//!   the stage: `rust.json: tensor 'fc1' stage 'output': data has 10
//!   elements but shape [3, 4] needs 12`. A refused record writes nothing
//!   and the capture goes on; a record whose bytes could not be written
//!   (a full disk) breaks the capture, and [`Capture::finish`] then refuses
//!   to write a report that would miss it.
//!
//! An operation name of parity's own catalog (`parity ops`: `matmul`,
//! `add`, …) is not refused here, but `parity check` holds such a tensor to
//! the catalog's params and stages: give a port's modules their own names.
//! See `docs/capture.md`, and `examples/capture_mlp.rs` for a whole port.

use super::write::{RunWriter, TensorRunView};
use super::{Producer, Report};
use crate::error::{Error, Result};
use crate::format::bundle;
use crate::format::dtype::DType;
use crate::format::stages::Params;
use crate::format::tensor::TensorView;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

mod sealed {
    pub trait Sealed {}
}

/// An element type a stage can be recorded from; the stage's dtype is the
/// slice's. Sealed: each type's dtype and byte layout are parity's promise.
pub trait Element: sealed::Sealed + Sized {
    /// The dtype the report and the bundle give it.
    const DTYPE: DType;
    /// The values' bytes as the bundle stores them (little-endian): a view
    /// of the slice, not a copy, on the little-endian hosts parity builds
    /// for (`format::tensor` refuses to compile elsewhere).
    fn bytes(values: &[Self]) -> &[u8];
}

macro_rules! pod_elements {
    ($($t:ty => $dtype:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$dtype;
            fn bytes(values: &[$t]) -> &[u8] {
                bytemuck::cast_slice(values)
            }
        }
    )*};
}
pod_elements!(f64 => F64, f32 => F32, i64 => I64, i32 => I32, i8 => I8, u8 => U8);

macro_rules! half_elements {
    ($($t:ty => $dtype:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$dtype;
            fn bytes(values: &[$t]) -> &[u8] {
                use half::slice::HalfFloatSliceExt;
                // Stored as their 16 bits, as safetensors (and torch) do.
                bytemuck::cast_slice(values.reinterpret_cast())
            }
        }
    )*};
}
half_elements!(half::bf16 => BF16, half::f16 => F16);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::BOOL;
    fn bytes(values: &[bool]) -> &[u8] {
        // SAFETY: a bool is one byte (size 1, align 1) holding 0 or 1, both
        // valid u8s; the view covers exactly the slice's `len` bytes and
        // borrows it for its lifetime, so it can neither dangle nor alias a
        // write.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), values.len()) }
    }
}

/// A run of a port being recorded into a report and its stage bundle (see
/// the module's documentation).
pub struct Capture {
    writer: RunWriter,
    /// The report's path as given, for errors.
    path: PathBuf,
    producer: Producer,
    /// Calls recorded so far, per name as given: the next one's `#n`.
    calls: HashMap<String, usize>,
    keys: HashSet<String>,
    /// Why the bundle can no longer be whole (a write failed), if it cannot.
    broken: Option<String>,
    /// Files the port reads, which finish must not replace.
    reads: Vec<PathBuf>,
}

/// Options of a [`Capture`] beyond [`Capture::create`]'s.
#[must_use = "a builder does nothing until .create()"]
pub struct CaptureBuilder {
    path: PathBuf,
    producer: Producer,
    expected_stages: usize,
    reads: Vec<PathBuf>,
}

/// Header room reserved by default: the stages of a small transformer's
/// modules (a header that outgrows it costs one copy at finish).
const DEFAULT_EXPECTED_STAGES: usize = 256;
/// A typical full bundle key, `tensor.<dotted path>.<stage>`, for room.
const TYPICAL_KEY: &str = "tensor.model_encoder_layer_11_attention_output_dense.output";

impl CaptureBuilder {
    /// Record a library's version in the report's `producer.versions`
    /// (`candle`, `ndarray`, the port's own…); `parity` is recorded already.
    pub fn version(mut self, library: &str, version: &str) -> Self {
        self.producer.versions.insert(library.to_string(), version.into());
        self
    }

    /// How many stages the run will record, all tensors together: header
    /// room is reserved for that many (default 256). Too few costs one copy
    /// of the bundle at finish; too many, about 360 bytes of padding each.
    pub fn expected_stages(mut self, n: usize) -> Self {
        self.expected_stages = n;
        self
    }

    /// A file (or directory) the port reads, such as its weights: the
    /// capture refuses to write its report or bundle over it, by path or
    /// through a link (checked at create and again at finish).
    pub fn reads(mut self, input: impl AsRef<Path>) -> Self {
        self.reads.push(input.as_ref().to_path_buf());
        self
    }

    /// Start the capture: the bundle's temporary is created beside the
    /// report's path, which must be a file in an existing directory.
    pub fn create(self) -> Result<Capture> {
        for (field, value) in [("name", &self.producer.name), ("implementation", &self.producer.implementation)] {
            if value.is_empty() {
                return Err(Error::json(&self.path, format!("producer.{field} must not be empty (the report names who computed it)")));
            }
        }
        refuse_inputs(&self.path, &self.reads)?;
        let keys = std::iter::repeat_n(TYPICAL_KEY, self.expected_stages);
        let writer = RunWriter::create(&self.path, keys)?;
        Ok(Capture {
            writer,
            path: self.path,
            producer: self.producer,
            calls: HashMap::new(),
            keys: HashSet::new(),
            broken: None,
            reads: self.reads,
        })
    }
}

/// Neither the report nor its bundle may be a file the port reads.
fn refuse_inputs(report: &Path, reads: &[PathBuf]) -> Result<()> {
    let inputs: Vec<(&Path, &str)> = reads.iter().map(|p| (p.as_path(), "a file the port reads")).collect();
    crate::format::atomic::refuse_input(report, &inputs, "the capture's report")?;
    let bundle = super::write::bundle_path_for(report);
    crate::format::atomic::refuse_input(&bundle, &inputs, "the capture's stage bundle")
}

impl Capture {
    /// Start capturing into `report_path` (its bundle is
    /// `<stem>_stages.safetensors` beside it), as `producer_name` running
    /// `implementation` (e.g. `"my-port"`, `"rust-f32"`).
    pub fn create(report_path: impl AsRef<Path>, producer_name: &str, implementation: &str) -> Result<Capture> {
        Capture::builder(report_path, producer_name, implementation).create()
    }

    /// [`Capture::create`] with options: library versions, header room.
    pub fn builder(report_path: impl AsRef<Path>, producer_name: &str, implementation: &str) -> CaptureBuilder {
        let mut versions = indexmap::IndexMap::new();
        versions.insert("parity".to_string(), env!("CARGO_PKG_VERSION").into());
        CaptureBuilder {
            path: report_path.as_ref().to_path_buf(),
            producer: Producer { name: producer_name.to_string(), implementation: implementation.to_string(), versions },
            expected_stages: DEFAULT_EXPECTED_STAGES,
            reads: Vec::new(),
        }
    }

    /// The report's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Start recording one call named `name` (the port's dotted path) that
    /// ran `operation`; give its stages with [`Record::stage`] and write it
    /// with [`Record::finish`]. A bad name or operation is reported by the
    /// first of those.
    pub fn record<'d>(&mut self, name: &str, operation: &str) -> Record<'_, 'd> {
        let n = self.calls.get(name).map_or(1, |c| c + 1);
        let recorded = if n == 1 { name.to_string() } else { format!("{name}#{n}") };
        let problem = name_problem(name, operation).map(|m| Error::tensor(&self.path, name, None, m));
        let call = Call { base: name.to_string(), name: recorded, operation: operation.to_string(), params: Params::new(), stages: Vec::new() };
        Record { capture: self, call, problem }
    }

    /// Record one call with one stage, `output`: the common case, and what
    /// `parity_oracle.capture` records of a module. Returns the name it was
    /// recorded under (`name`, or `name#2`… when called again).
    pub fn output<T: Element>(&mut self, name: &str, operation: &str, data: &[T], shape: &[usize]) -> Result<String> {
        self.record(name, operation).stage("output", data, shape)?.finish()
    }

    /// Write the report and put it and its bundle in place, replacing any
    /// pair already there. Returns the report written.
    pub fn finish(self) -> Result<Report> {
        let Capture { writer, path, producer, keys, broken, reads, .. } = self;
        refuse_inputs(&path, &reads)?;
        if let Some(why) = broken {
            return Err(Error::OutputNotWritable { path, message: format!("not written: {why}, so the run is incomplete") });
        }
        if keys.is_empty() {
            return Err(Error::OutputNotWritable { path, message: "not written: no tensor was recorded".into() });
        }
        writer.finish(producer, None, None)
    }

    /// Write one checked call's stages and describe it.
    fn write(&mut self, record: &Call<'_>) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(Error::tensor(&self.path, &record.name, None, format!("not recorded: {why}")));
        }
        let key = unique_key(bundle::safe_key(&record.name), &self.keys);
        let stages: Vec<(&str, TensorView<'_>)> = record
            .stages
            .iter()
            .map(|s| (s.name.as_str(), TensorView { dtype: s.dtype, shape: &s.shape, data: s.bytes }))
            .collect();
        let last = stages.last().expect("finish refuses a record without stages").0;
        let pushed = self.writer.push_view(&TensorRunView {
            name: &record.name,
            key: &key,
            operation: &record.operation,
            params: &record.params,
            stages: &stages,
            final_stage: last,
            historical_final_sha256: None,
        });
        if let Err(e) = pushed {
            // Some of its stages may be in the bundle already: a report
            // written now would not describe what the run computed.
            self.broken = Some(format!("writing tensor '{}' failed ({e})", record.name));
            return Err(e);
        }
        self.keys.insert(key);
        *self.calls.entry(record.base.clone()).or_default() += 1;
        Ok(())
    }
}

/// One call being recorded: its stages, borrowed until [`Record::finish`]
/// writes them. Made by [`Capture::record`].
#[must_use = "a record is written by .finish()"]
pub struct Record<'c, 'd> {
    capture: &'c mut Capture,
    call: Call<'d>,
    /// A fault found before any stage (the name, the operation, a param).
    problem: Option<Error>,
}

/// What a record has gathered.
struct Call<'d> {
    /// The name as given, whose calls are counted.
    base: String,
    /// The name it will be recorded under (`base`, or `base#n`).
    name: String,
    operation: String,
    params: Params,
    stages: Vec<StageRef<'d>>,
}

struct StageRef<'d> {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    bytes: &'d [u8],
}

impl<'d> Record<'_, 'd> {
    /// The name this call will be recorded under (`name`, or `name#n`).
    pub fn name(&self) -> &str {
        &self.call.name
    }

    /// Add a parameter of the call (reports' `params`; empty by default).
    pub fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if self.problem.is_none() && self.call.params.insert(key.to_string(), value.into()).is_some() {
            self.problem = Some(Error::tensor(&self.capture.path, &self.call.name, None, format!("parameter '{key}' given twice")));
        }
        self
    }

    /// Add a stage: `data` in row-major order, of `shape`. Refused (naming
    /// the report, tensor and stage) when the name is not `[A-Za-z0-9_]+` or
    /// given twice, or `data` does not have the shape's element count.
    pub fn stage<T: Element>(mut self, stage: &str, data: &'d [T], shape: &[usize]) -> Result<Self> {
        if let Some(e) = self.problem.take() {
            return Err(e);
        }
        let fail = |message: String| Error::tensor(&self.capture.path, &self.call.name, Some(stage), message);
        if stage.is_empty() || !stage.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(fail("a stage name must be letters, digits and '_' only ([A-Za-z0-9_]+), as the report's keys are".into()));
        }
        if self.call.stages.iter().any(|s| s.name == stage) {
            return Err(fail("stage given twice for this call".into()));
        }
        match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
            None => return Err(fail(format!("shape {shape:?} has more elements than a usize can count"))),
            Some(n) if n != data.len() => {
                return Err(fail(format!("data has {} elements but shape {shape:?} needs {n}", data.len())))
            }
            Some(_) => {}
        }
        self.call.stages.push(StageRef { name: stage.to_string(), dtype: T::DTYPE, shape: shape.to_vec(), bytes: T::bytes(data) });
        Ok(self)
    }

    /// Hash the stages and append them to the bundle. Returns the name the
    /// call was recorded under.
    pub fn finish(mut self) -> Result<String> {
        if let Some(e) = self.problem.take() {
            return Err(e);
        }
        if self.call.stages.is_empty() {
            return Err(Error::tensor(&self.capture.path, &self.call.name, None, "no stages: give at least one with .stage(name, data, shape)"));
        }
        // `write` needs the capture mutably and the record's stages at once.
        self.capture.write(&self.call)?;
        Ok(self.call.name)
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("path", &self.path).field("tensors", &self.keys.len()).field("broken", &self.broken).finish()
    }
}

impl std::fmt::Debug for Record<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages: Vec<String> = self.call.stages.iter().map(|s| format!("{} {} {:?}", s.name, s.dtype.name(), s.shape)).collect();
        f.debug_struct("Record")
            .field("name", &self.call.name)
            .field("operation", &self.call.operation)
            .field("params", &self.call.params)
            .field("stages", &stages)
            .field("problem", &self.problem)
            .finish()
    }
}

/// Why a call cannot be recorded under this name and operation, if it cannot.
fn name_problem(name: &str, operation: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name must not be empty (the root module is named too, e.g. \"model\")".into());
    }
    if let Some((_, n)) = name.rsplit_once('#') {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return Some("the name ends like a repeated call (#<n>), which the report could not tell apart from one".into());
        }
    }
    if operation.is_empty() {
        return Some("the operation must not be empty (e.g. the module's class name)".into());
    }
    None
}

/// `key`, or `key__2`, `key__3`… if taken: safe keys are lossy (`fc#2` and
/// `fc.2` are both `fc_2`), and keys only address the bundle (reports are
/// matched by name), so the later one takes a suffix — as in Python.
fn unique_key(key: String, taken: &HashSet<String>) -> String {
    if !taken.contains(&key) {
        return key;
    }
    (2..).map(|n| format!("{key}__{n}")).find(|k| !taken.contains(k)).expect("a free suffix exists")
}
