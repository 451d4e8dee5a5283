//! parity — prove a port of an ML tensor pipeline is numerically right,
//! stage by stage.
//!
//! The modules are the product's layers, and each one imports only from the
//! layers below it (`tests/layers.rs` holds them to that):
//!
//! 1. [`error`], [`numeric`] — the error type; rounding between formats,
//!    where correctness is decided.
//! 2. [`format`] — the files both sides write: dtypes, tensors, stage
//!    bundles, reports, atomic writes, ordered stages and parameters.
//! 3. [`compare`] — the comparer: two byte sources in, metrics and gate
//!    verdicts out. It knows no operation, report or flag.
//! 4. [`ops`] — the operation catalog: one declaration per operation, with a
//!    reference (f64) and a fast implementation, enforced by [`ops::Operation::run`].
//! 5. Commands: [`check`] (a report pair), [`replay`], [`golden`] (the gate
//!    CI runs), and [`render`] (text, JSON, JUnit, Markdown), shared by them.
//!
//! The command line (clap) lives in the binary, `src/main.rs` and `src/cli/`.

pub mod error;
pub mod numeric;

pub mod format;

pub mod compare;

pub mod ops;

pub mod apply;
pub mod check;
pub mod diff;
pub mod plan;
pub mod golden;
pub mod inspect;
pub mod progress;
pub mod render;
pub mod replay;
pub mod select;

pub use error::{Error, Result};
