//! Surgery plans (`parity.plan.v1`, YAML when the first byte is odd, else
//! JSON) parsed, checked and resolved against a small fixed checkpoint,
//! as `parity apply --dry-run` does: every target, template, input,
//! parameter and expectation, from headers alone.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::apply::{apply, ApplyOptions};
use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "common.rs"]
mod common;

/// A directory holding `base.safetensors` (two layers of a BERT-like
/// encoder, f32 and bf16) and `svf.safetensors` (components), written once.
fn plan_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use parity::format::tensor::Tensor;
        let dir = common::fresh_dir("plan");
        let w = Tensor::from_f32(vec![4, 3], &[0.5; 12]);
        let b = Tensor::from_f32(vec![4], &[1.0; 4]);
        let h = Tensor::from_u16_bits(parity::format::dtype::DType::BF16, vec![2, 2], &[0x3f80; 4]);
        let base = vec![
            ("encoder.layer.0.attention.self.query.weight".to_string(), &w),
            ("encoder.layer.0.attention.self.query.bias".to_string(), &b),
            ("encoder.layer.1.attention.self.query.weight".to_string(), &w),
            ("encoder.layer.1.output.LayerNorm.weight".to_string(), &h),
        ];
        parity::format::bundle::write(&dir.join("base.safetensors"), &base).unwrap();
        let u = Tensor::from_f32(vec![4, 3], &[0.1; 12]);
        let s = Tensor::from_f32(vec![3], &[1.0, 0.5, 0.25]);
        let v = Tensor::from_f32(vec![3, 3], &[0.2; 9]);
        let offsets = Tensor::from_f32(vec![3], &[0.0, 0.1, -0.1]);
        let svf = vec![
            ("tensor.encoder_layer_0_attention_self_query_weight.u".to_string(), &u),
            ("tensor.encoder_layer_0_attention_self_query_weight.s".to_string(), &s),
            ("tensor.encoder_layer_0_attention_self_query_weight.v".to_string(), &v),
            ("tensor.encoder_layer_0_attention_self_query_weight.offsets".to_string(), &offsets),
        ];
        parity::format::bundle::write(&dir.join("svf.safetensors"), &svf).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else { return };
    let path = plan_dir().join(if kind % 2 == 1 { "plan.yaml" } else { "plan.json" });
    std::fs::write(&path, text).unwrap();
    let opts = ApplyOptions { dry_run: true, out: Some(plan_dir().join("out")), ..ApplyOptions::default() };
    let outcome = apply(&path, &opts);
    // PARITY_FUZZ_SHOW=1 prints what each input resolves to (to see that a
    // seed gets past parsing, e.g. `cargo fuzz run plan SEED`).
    if std::env::var_os("PARITY_FUZZ_SHOW").is_some() {
        eprintln!("{outcome:?}");
    }
    // A dry run never writes: no output directory may appear.
    assert!(!plan_dir().join("out").exists(), "a dry run created the output directory");
});
