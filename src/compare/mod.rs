//! The comparer: two byte sources in, metrics and verdicts out.
//!
//! It knows no operation, report or command line: callers hand it two stages
//! (dtype, shape and bytes, in memory or streamed from a file) and a
//! [`Tolerance`]; it measures them in one streaming pass and judges the gate.
//!
//! * [`metrics`] — every number about one stage pair, in one streaming pass;
//! * [`gate`] — one stage's metrics held against its [`tolerance`];
//! * [`profile`] — which tolerance each stage of each operation gets, built
//!   from declarations the caller supplies (the catalog's, for the built-in
//!   profile) with tolerance files merged over them;
//! * [`explain`] — which classic porting bug turns LEFT into RIGHT, for a
//!   failing stage (one more read of it, tests in memory);
//! * [`plots`] — bounded summaries of a failing stage's differences for the
//!   HTML page (histogram, heatmap, row/column profiles), from the same read;
//! * [`logits`] — token metrics of a logits stage (top-1, top-5, KL);
//! * [`numbers`] — how the comparer's numbers are written for people.

pub mod explain;
pub mod gate;
pub mod logits;
pub mod metrics;
pub mod numbers;
pub mod plots;
pub mod profile;
pub mod tolerance;

pub use gate::{compare_stage, compare_stage_chunked, StageResult, Verdict};
pub use profile::Profile;
pub use tolerance::Tolerance;
