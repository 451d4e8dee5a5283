//! Number formats: where rounding happens and how it is made correct.

pub mod int;
pub mod rng;
pub mod round;
pub mod simd;
pub mod stats;
pub(crate) mod strided;
