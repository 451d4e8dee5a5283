//! Checkpoints in every SPEC §10 layout, opened from headers: one
//! safetensors file, a Hugging Face index with its shards, a directory of
//! shards, a .npy, a directory of .npy files, an .npz. The first byte picks
//! the layout; the rest is split into files (see `common::parts`). A
//! checkpoint that opens must locate every tensor inside its file, and
//! reading every tensor's bytes must succeed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::format::checkpoint::Checkpoint;
use parity::format::tensor::numel;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let dir = common::fresh_dir("checkpoint");
    let parts = common::parts(rest, 4);
    let path = match mode % 6 {
        0 => {
            let p = dir.join("model.safetensors");
            std::fs::write(&p, rest).unwrap();
            p
        }
        1 => {
            // The index first, then up to three shards it may name.
            std::fs::write(dir.join("model.safetensors.index.json"), parts[0]).unwrap();
            for (i, shard) in parts.iter().skip(1).enumerate() {
                std::fs::write(dir.join(format!("model-0000{}-of-00003.safetensors", i + 1)), shard).unwrap();
            }
            dir.clone()
        }
        2 => {
            for (i, shard) in parts.iter().enumerate() {
                std::fs::write(dir.join(format!("part{i}.safetensors")), shard).unwrap();
            }
            dir.clone()
        }
        3 => {
            let p = dir.join("weights.npy");
            std::fs::write(&p, rest).unwrap();
            p
        }
        4 => {
            for (i, npy) in parts.iter().enumerate() {
                std::fs::write(dir.join(format!("t{i}.npy")), npy).unwrap();
            }
            dir.clone()
        }
        _ => {
            let p = dir.join("weights.npz");
            std::fs::write(&p, rest).unwrap();
            p
        }
    };
    let Ok(ck) = Checkpoint::open(&path) else { return };
    for (name, loc) in ck.tensors() {
        assert_eq!(loc.len, numel(&loc.shape) * loc.dtype.size(), "{name}: located length");
        let file_len = std::fs::metadata(ck.shard_path(loc)).unwrap().len();
        assert!(loc.offset + loc.len as u64 <= file_len, "{name}: located past the end of its file");
        let mut bytes = vec![0u8; loc.len];
        ck.region(loc).read_at(0, &mut bytes).expect("a located tensor reads");
    }
});
