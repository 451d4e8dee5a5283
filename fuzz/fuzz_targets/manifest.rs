//! `parity.manifest.v1`, as `apply`'s resume reads it: a manifest that
//! parses writes back to the same manifest.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::format::manifest::Manifest;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/manifest.json");
    let Ok(m) = Manifest::from_json(path, data) else { return };
    let again = Manifest::from_json(path, m.to_json().as_bytes()).expect("a written manifest reads back");
    assert_eq!(again, m, "manifest round trip");
});
