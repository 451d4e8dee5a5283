//! PyTorch checkpoints (`torch.save`), read without running their pickle
//! (issue 24, groundwork: the restricted unpickler only; the zip and legacy
//! containers, in-place storages and the commands come next).
pub mod pickle;
