//! Tolerance profiles (`parity.tolerances.v1`) merged over the built-in
//! profile, then queried for every catalog stage and for tensor rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = parity::ops::builtin_profile().merge_json(Path::new("fuzz/tolerances.json"), data) else { return };
    for op in parity::ops::REGISTRY {
        for stage in profile.stages(op.name) {
            let _ = profile.tolerance(op.name, stage);
        }
    }
    for name in ["encoder.layer.0.attention.self.query.weight", "lm_head.weight", ""] {
        let _ = profile.tensor_tolerance(name);
    }
});
