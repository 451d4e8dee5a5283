//! parity — prove a port of an ML tensor pipeline is numerically right,
//! stage by stage.
//!
//! The modules are the product's layers, and each one imports only from the
//! layers below it; commands and runs never import a sibling
//! (`tests/layers.rs` holds them to that):
//!
//! 1. [`error`], [`numeric`] — the error type; rounding between formats,
//!    where correctness is decided.
//! 2. [`format`] — the files both sides write: dtypes, tensors, stage
//!    bundles, reports, checkpoints, manifests, atomic writes.
//! 3. [`compare`] — the comparer: two byte sources in, metrics and gate
//!    verdicts out. It knows no operation, report or flag.
//! 4. [`ops`] — the operation catalog: one declaration per operation, with a
//!    reference (f64) and a fast implementation, enforced by [`ops::Operation::run`].
//! 5. What commands share: [`select`] (which tensors, layers and stages) and
//!    [`progress`] (the progress bar).
//! 6. Runs of the catalog over files: [`replay`] (a report's components
//!    through one implementation) and [`plan`] (a surgery plan resolved from
//!    headers).
//! 7. Commands: [`check`] (a report pair), [`diff`] (a checkpoint pair),
//!    [`apply`] (a plan over a checkpoint), [`inspect`] (one checkpoint).
//! 8. [`golden`] — the gate CI runs over the shipped golden cases.
//! 9. [`render`] — text, JSON, JUnit, Markdown and HTML of every command's outcome, the gate's included.
//!
//! The command line (clap) lives in the binary, `src/main.rs` and `src/cli/`.
//!
//! A Rust port records its own side of a forward pass with [`capture`]
//! (`format::report::capture`, re-exported here): `docs/capture.md`.

pub mod error;
pub mod numeric;

pub mod format;

pub mod compare;

pub mod ops;

pub mod progress;
pub mod select;

pub mod plan;
pub mod replay;

pub mod apply;
pub mod check;
pub mod diff;
pub mod inspect;

pub mod golden;

pub mod render;

pub use error::{Error, Result};
/// Recording a Rust port's forward pass as a report, while it runs.
pub use format::report::capture;
