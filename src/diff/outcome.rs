//! What `parity diff` found, as the `parity.diff.v1` JSON it writes and reads
//! back (`merge-results` combines partitions' JSON into one outcome).
//!
//! The JSON is this module's types serialised by serde, keys in declaration
//! order: the same outcome always gives the same bytes, which is what makes
//! a merge of N partitions byte-identical to one unpartitioned run.

use super::pairing::Partition;
use crate::compare::metrics::json::MetricsRecord;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "parity.diff.v1";

/// A tensor pair's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Same dtype, same shape, same bytes.
    Identical,
    /// Values within the tolerance.
    Within,
    /// Values outside the tolerance.
    Differs,
    /// Shapes differ (RIGHT may hold LEFT transposed: see `transposed`).
    ShapeMismatch,
    OnlyLeft,
    OnlyRight,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Identical, Status::Within, Status::Differs, Status::ShapeMismatch, Status::OnlyLeft, Status::OnlyRight];

    pub fn name(self) -> &'static str {
        match self {
            Status::Identical => "identical",
            Status::Within => "within",
            Status::Differs => "differs",
            Status::ShapeMismatch => "shape_mismatch",
            Status::OnlyLeft => "only_left",
            Status::OnlyRight => "only_right",
        }
    }

    /// Whether this status keeps the exit code at 0.
    pub fn ok(self) -> bool {
        matches!(self, Status::Identical | Status::Within)
    }
}

/// One side of the diff.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// As given on the command line.
    pub path: String,
    pub layout: String,
    pub files: usize,
    pub tensors: usize,
    pub bytes: u64,
}

/// The options that decide the outcome (recorded so that merge-results can
/// refuse partitions of different runs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// `exact`, `allclose(rtol=…, atol=…)`, or the tolerance file's origin.
    pub tolerance: String,
    pub select: Vec<String>,
    pub layers: Option<String>,
    pub map: Vec<String>,
    /// `--top-diffs`: how many divergences each compared pair's metrics
    /// list. Absent from results written before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub top_diffs: Option<usize>,
}

/// The limits one tensor was judged by, and where they came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// `exact`, `--atol/--rtol`, or `tensors."GLOB"` of the tolerance file.
    pub source: String,
    pub max_abs: serde_json::Value,
    pub mean_abs: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rtol: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub atol: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_mismatch_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_cosine: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_ulp: Option<u64>,
}

/// When RIGHT's shape is LEFT's transposed: did the values match that way?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transposed {
    /// The values match (within the tolerance) with RIGHT read transposed.
    pub matches: bool,
    /// Metrics of LEFT against RIGHT transposed, when they were taken.
    pub metrics: Option<MetricsRecord>,
    pub failures: Vec<String>,
}

/// One tensor pair (or a tensor on one side only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorDiff {
    /// The name both sides are paired under (LEFT's name; RIGHT's after `--map`).
    pub name: String,
    /// RIGHT's own name, when `--map` renamed it, or when each side was one
    /// unnamed array (`a.npy` vs `b.npy`) and the two were paired.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub right_name: Option<String>,
    pub status: Status,
    pub dtype_left: Option<String>,
    pub dtype_right: Option<String>,
    pub shape_left: Option<Vec<usize>>,
    pub shape_right: Option<Vec<usize>>,
    pub bytes_left: Option<u64>,
    pub bytes_right: Option<u64>,
    /// xxh3-128 over dtype, shape and bytes (hex), taken in the metric pass.
    pub content_hash_left: Option<String>,
    pub content_hash_right: Option<String>,
    pub limits: Option<Limits>,
    /// `check`'s metrics (plus `sqnr_db`), for every compared pair.
    pub metrics: Option<MetricsRecord>,
    /// Which limits failed, one phrase each.
    pub failures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transposed: Option<Transposed>,
    /// The porting bug that turns LEFT into RIGHT, for a `differs` pair
    /// where one fits: `check`'s explanation JSON (`bug`, `summary`,
    /// `evidence`, `params`, `residual`, `confidence`, …).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub explanation: Option<serde_json::Value>,
    /// The quantization-aware verdict of a pair whose RIGHT is quantized (a
    /// GGUF conversion): see `diff::quantization`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quantization: Option<super::quantization::Verdict>,
    /// What the HTML page draws for a `differs` pair; gathered only for that
    /// page and never part of the JSON (merged partitions carry none).
    #[serde(skip)]
    pub plots: Option<crate::compare::plots::StagePlots>,
}

impl TensorDiff {
    /// The explanation's one-line summary, when there is one.
    pub fn explanation_summary(&self) -> Option<&str> {
        self.explanation.as_ref()?.get("summary")?.as_str()
    }
}

/// How many tensors got each status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub identical: usize,
    pub within: usize,
    pub differs: usize,
    pub shape_mismatch: usize,
    pub only_left: usize,
    pub only_right: usize,
    pub total: usize,
}

impl Summary {
    pub fn of(tensors: &[TensorDiff]) -> Summary {
        let mut s = Summary { total: tensors.len(), ..Summary::default() };
        for t in tensors {
            *s.slot(t.status) += 1;
        }
        s
    }
    fn slot(&mut self, st: Status) -> &mut usize {
        match st {
            Status::Identical => &mut self.identical,
            Status::Within => &mut self.within,
            Status::Differs => &mut self.differs,
            Status::ShapeMismatch => &mut self.shape_mismatch,
            Status::OnlyLeft => &mut self.only_left,
            Status::OnlyRight => &mut self.only_right,
        }
    }
    pub fn count(&self, st: Status) -> usize {
        let mut c = self.clone();
        *c.slot(st)
    }
}

/// Everything `parity diff` found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffOutcome {
    pub schema: String,
    pub left: Side,
    pub right: Side,
    pub options: Options,
    /// A fingerprint of both sides' headers and the options: partitions of
    /// one run share it.
    pub run: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub partition: Option<Partition>,
    /// In name order.
    pub tensors: Vec<TensorDiff>,
    pub summary: Summary,
    /// `PASS` or `FAIL`.
    pub result: String,
}

impl DiffOutcome {
    /// Every pair identical or within, nothing on one side only.
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(|t| t.status.ok())
    }

    /// Summary and result recomputed from the tensors.
    pub fn settle(&mut self) {
        self.summary = Summary::of(&self.tensors);
        self.result = if self.passed() { "PASS" } else { "FAIL" }.to_string();
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a diff outcome serialises");
        s.push('\n');
        s
    }
}
