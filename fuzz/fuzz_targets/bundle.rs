//! Stage bundles (safetensors): the header parser and every tensor view of
//! a bundle that opens. An opened bundle's views must cover exactly their
//! shape's bytes, and reading them (in place and through `Region`) must not
//! fail or panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::format::bundle::Bundle;
use parity::format::tensor::numel;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch().join("stages.safetensors");
    std::fs::write(&path, data).unwrap();
    let Ok(bundle) = Bundle::open(&path) else { return };
    let keys: Vec<String> = bundle.keys().map(str::to_string).collect();
    for key in &keys {
        let view = bundle.get(key).expect("a listed key has a view");
        assert_eq!(view.data.len(), numel(view.shape) * view.dtype.size(), "{key}: view length");
        let values = view.to_f64_vec();
        assert_eq!(values.len(), numel(view.shape));
        let _ = view.sha256();
    }
});
