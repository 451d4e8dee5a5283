//! The comparer: stage-by-stage metrics, tolerance gates and verdicts.

pub mod tolerance;
