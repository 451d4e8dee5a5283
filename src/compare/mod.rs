//! The comparer: stage-by-stage metrics, tolerance gates and verdicts.
//!
//! * [`metrics`] — every number about one stage, in one streaming pass;
//! * [`gate`] — one stage's metrics held against its [`tolerance`];
//! * [`profile`] — which tolerance each stage of each operation gets;
//! * [`check`] — `parity check`: pair two reports, compare, judge the modes;
//! * [`render`] — the outcome as text, JSON, JUnit XML or Markdown.

pub mod check;
pub mod gate;
pub mod metrics;
pub mod numbers;
pub mod profile;
pub mod render;
pub mod tolerance;

pub use check::{check, CheckOptions, CheckOutcome, Modes, StageSelection};
pub use gate::{compare_stage, compare_stage_chunked, StageResult, Verdict};
pub use profile::Profile;
pub use render::{render, Format};
