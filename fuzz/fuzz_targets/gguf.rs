//! GGUF files: any bytes written as a file and opened as a checkpoint, as
//! the commands do. An opened file must locate every tensor inside it with
//! the length its shape and type give (F32 values for a quantized one), and
//! reading each — dequantizing its blocks — must succeed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::format::checkpoint::Checkpoint;
use parity::format::tensor::numel;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    // One file, rewritten each run.
    let path = common::scratch().join("model.gguf");
    std::fs::write(&path, data).unwrap();
    let Ok(ck) = Checkpoint::open(&path) else { return };
    for (name, loc) in ck.tensors() {
        assert_eq!(loc.len, numel(&loc.shape) * loc.dtype.size(), "{name}: located length");
        assert!(loc.offset + loc.stored_bytes() <= data.len() as u64, "{name}: located past the end of its file");
        let mut bytes = vec![0u8; loc.len];
        ck.region(loc).read_at(0, &mut bytes).expect("a located tensor reads");
    }
});
