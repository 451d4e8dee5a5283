//! PyTorch checkpoints (`torch.save`, zip and legacy) and their restricted
//! unpickler. Even first bytes feed the rest to the unpickler alone, in
//! memory (fast: most of the hostile surface is the pickle): it must never
//! panic, and naming the tensors of what it builds must stay bounded. Odd
//! first bytes write the rest as a file and open it as a checkpoint, as the
//! commands do: every tensor it locates must lie inside its file, its
//! logical length must match its shape, and reading it (strided views
//! gathered) must succeed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::format::checkpoint::Checkpoint;
use parity::format::pytorch::pickle;
use parity::format::tensor::numel;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        if let Ok(v) = pickle::load(rest) {
            let _ = pickle::tensors(&v);
        }
        return;
    }
    // One file, rewritten each run (a fresh directory per run costs more
    // than the parse).
    let path = common::scratch().join("model.pt");
    std::fs::write(&path, rest).unwrap();
    let Ok(ck) = Checkpoint::open(&path) else { return };
    let file_len = rest.len() as u64;
    for (name, loc) in ck.tensors() {
        assert_eq!(loc.len, numel(&loc.shape) * loc.dtype.size(), "{name}: located length");
        if loc.is_contiguous() {
            assert!(loc.offset + loc.len as u64 <= file_len, "{name}: located past the end of its file");
        }
        let mut bytes = vec![0u8; loc.len];
        ck.region(loc).read_at(0, &mut bytes).expect("a located tensor reads");
    }
});
