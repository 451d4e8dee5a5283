//! parity — prove a port of an ML tensor pipeline is numerically right,
//! stage by stage.
//!
//! The library is laid out as the product is:
//! * [`report`], [`bundle`], [`tensor`], [`dtype`] — the files both sides write;
//! * [`compare`] — metrics, tolerance gates and the `check` verdict;
//! * [`ops`] — the operation catalog, each with a reference (f64) and a fast
//!   implementation;
//! * [`replay`] — run an implementation on a report's components;
//! * [`golden`] — the golden-bundle gate CI runs;
//! * [`numeric`] — rounding between formats, where correctness is decided.

pub mod atomic;
pub mod bundle;
pub mod cli;
pub mod compare;
pub mod dtype;
pub mod error;
pub mod golden;
pub mod numeric;
pub mod ops;
pub mod progress;
pub mod replay;
pub mod report;
pub mod select;
pub mod tensor;

pub use error::{Error, Result};
