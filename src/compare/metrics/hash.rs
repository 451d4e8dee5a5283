//! The content hash of a tensor: its dtype, shape and the digest of its
//! blocks, so that equal bytes are seen without a second read.

use crate::format::dtype::DType;


/// A tensor's content hash: xxh3-128 over its dtype, its shape and the
/// xxh3-128 digests of its bytes taken block by block ([`BLOCK`] elements)
/// in order. Equal for equal (dtype, shape, bytes) wherever the bytes are
/// stored; blocks make it computable in parallel, in the metric pass.
/// Not a cryptographic hash: it recognises copies, it does not authenticate.
pub fn content_hash(dtype: DType, shape: &[usize], blocks_digest: u128) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(dtype.name().as_bytes());
    h.update(&(shape.len() as u64).to_le_bytes());
    for d in shape {
        h.update(&(*d as u64).to_le_bytes());
    }
    h.update(&blocks_digest.to_le_bytes());
    h.digest128()
}
