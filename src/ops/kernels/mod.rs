//! Code several operations share: plain functions, plans (parameter readers)
//! and the declaration pieces (limits, inputs, texts) that several operations
//! repeat word for word, kept in one place so they cannot drift apart.
//!
//! No [`Operation`](super::Operation) is declared here: each operation is one
//! file, `src/ops/<name>.rs`, that imports what it needs from these modules.
//!
//! * [`gemm`] — the fast kernels' f32 GEMM (matrixmultiply) and tiled transpose;
//! * [`matrix`] — a float-matrix input, the references' f64 product, a GEMM stage's limits;
//! * [`svd`] — one thin SVD for both precisions, and its sign convention;
//! * [`elementwise`] — how the elementwise operations round, their scalar readers;
//! * [`add_subtract`] — `a + sign·alpha·b` in both precisions, for `add` and `subtract`;
//! * [`layout`] — axes, strides, multi-indices and the reference's gather;
//! * [`strided`] — the fast layout copy: strided views copied in runs and tiles;
//! * [`merge`] — the merges' inputs and task vectors, and how they round;
//! * [`fp8_block`] — the block grid of per-block fp8, and a format's decode table.

pub(crate) mod add_subtract;
pub(crate) mod elementwise;
pub(crate) mod fp8_block;
pub(crate) mod gemm;
pub(crate) mod layout;
pub(crate) mod matrix;
pub(crate) mod merge;
// The layout kernel lives with the numerics (the checkpoint readers gather
// PyTorch views with it too); the operations reach it here.
pub(crate) use crate::numeric::strided;
pub(crate) mod svd;
