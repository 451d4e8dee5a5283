//! The files both sides write, and the plain types they hold — the bottom
//! layer: nothing here imports the comparer, the catalog or a command.
//!
//! * [`dtype`], [`tensor`] — element types and tensors (owned or viewed);
//! * [`bundle`] — safetensors stage bundles and components files;
//! * [`checkpoint`], [`npy`] — whole models: safetensors files, HF sharded
//!   directories, numpy arrays;
//! * [`report`] — `parity.report.v1` and its writer;
//! * [`stages`] — stages in pipeline order, and operation parameters;
//! * [`manifest`], [`safetensors_write`] — what `parity apply` writes: its
//!   manifest, and models streamed tensor by tensor;
//! * [`safetensors_header`] — safetensors headers, validated entry by entry;
//! * [`file`] — opening inputs: regular files only, small ones bounded;
//! * [`strict_json`] — JSON that refuses an object holding a key twice;
//! * [`atomic`] — writes that never leave a half-written file under a final name.

pub mod atomic;
pub mod bundle;
pub mod checkpoint;
pub mod dtype;
pub mod file;
pub mod gguf;
pub mod manifest;
pub mod npy;
pub mod pytorch;
pub mod report;
pub mod safetensors_header;
pub mod safetensors_write;
pub mod stages;
pub mod strict_json;
pub mod tensor;
