//! Bad input to `parity check`: every case is a one-line setup error (exit 2)
//! naming the file, the tensor and what is wrong — never a panic, never a
//! silent skip (SPEC §9).

mod check_support;

use check_support::*;
use parity::check::{check, CheckOptions, StageSelection};
use std::path::Path;

/// The setup error's message; also checks it is one line.
fn setup_error(left: &Path, right: &Path, opts: &CheckOptions) -> String {
    match check(left, right, opts) {
        Ok(_) => panic!("expected a setup error"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "not one line: {msg}");
            msg
        }
    }
}

fn default_error(p: &Pair) -> String {
    setup_error(&p.left, &p.right, &CheckOptions::default())
}

fn right_bundle(p: &Pair) -> std::path::PathBuf {
    parity::format::report::write::bundle_path_for(&p.right)
}

#[test]
fn a_missing_report_is_a_setup_error() {
    let p = pair(|_| {});
    let gone = p.dir.path().join("nope.json");
    let msg = setup_error(&p.left, &gone, &CheckOptions::default());
    assert!(msg.contains("nope.json"), "{msg}");
}

#[test]
fn a_malformed_report_is_a_setup_error() {
    let p = pair(|_| {});
    std::fs::write(&p.right, "{\"schema\": \"parity.report.v1\", ").unwrap();
    let msg = default_error(&p);
    assert!(msg.contains("rust.json") && msg.contains("malformed JSON"), "{msg}");
}

#[test]
fn an_unknown_report_schema_is_a_setup_error() {
    let p = pair(|_| {});
    edit_json(&p.left, |v| v["schema"] = "parity.report.v9".into());
    let msg = default_error(&p);
    assert!(msg.contains("python.json") && msg.contains("unknown schema 'parity.report.v9'"), "{msg}");
}

#[test]
fn a_missing_bundle_is_a_setup_error() {
    let p = pair(|_| {});
    std::fs::remove_file(right_bundle(&p)).unwrap();
    let msg = default_error(&p);
    assert!(msg.contains("rust_stages.safetensors"), "{msg}");
}

#[test]
fn a_truncated_bundle_is_a_setup_error() {
    let p = pair(|_| {});
    let path = right_bundle(&p);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = default_error(&p);
    assert!(msg.contains("rust_stages.safetensors") && msg.contains("invalid safetensors"), "{msg}");
}

#[test]
fn a_bundle_shorter_than_its_header_length_is_a_setup_error() {
    let p = pair(|_| {});
    std::fs::write(right_bundle(&p), [1u8, 2, 3]).unwrap();
    let msg = default_error(&p);
    assert!(msg.contains("not a safetensors file"), "{msg}");
}

#[test]
fn a_hostile_header_length_is_a_setup_error() {
    let p = pair(|_| {});
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(right_bundle(&p), bytes).unwrap();
    let msg = default_error(&p);
    assert!(msg.contains("rust_stages.safetensors") && msg.contains("invalid safetensors"), "{msg}");
}

#[test]
fn hostile_offsets_past_the_end_are_a_setup_error() {
    let p = pair(|_| {});
    let header = br#"{"tensor.x.source_f32":{"dtype":"F32","shape":[250000],"data_offsets":[0,1000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(right_bundle(&p), bytes).unwrap();
    let msg = default_error(&p);
    assert!(msg.contains("invalid safetensors"), "{msg}");
}

#[test]
fn a_stage_the_report_lists_but_the_bundle_lacks_is_a_setup_error() {
    let p = pair(|_| {});
    let path = right_bundle(&p);
    let owned: Vec<(String, parity::format::tensor::Tensor)> = {
        let b = parity::format::bundle::Bundle::open(&path).unwrap();
        let keys: Vec<String> = b.keys().filter(|k| !k.ends_with(".u_scaled")).map(str::to_string).collect();
        keys.iter().map(|k| (k.clone(), b.get(k).unwrap().to_owned())).collect()
    };
    let entries: Vec<(String, &parity::format::tensor::Tensor)> = owned.iter().map(|(k, t)| (k.clone(), t)).collect();
    parity::format::bundle::write(&path, &entries).unwrap();
    let msg = default_error(&p);
    assert!(msg.contains("rust_stages.safetensors") && msg.contains(NAME) && msg.contains("stage 'u_scaled'"), "{msg}");
    assert!(msg.contains("missing from the bundle"), "{msg}");
}

#[test]
fn a_bundle_stage_whose_shape_disagrees_with_the_report_is_a_setup_error() {
    let p = pair(|_| {});
    edit_json(&p.right, |v| v["tensors"][0]["stages"]["matmul_pre_norm"]["shape"] = serde_json::json!([384]));
    let msg = default_error(&p);
    assert!(
        msg.contains("stage 'matmul_pre_norm'")
            && msg.contains("bundle holds F32 [16, 24]")
            && msg.contains("says F32 [384]"),
        "{msg}"
    );
}

#[test]
fn a_bundle_stage_whose_dtype_disagrees_with_the_report_is_a_setup_error() {
    let p = pair(|_| {});
    edit_json(&p.left, |v| v["tensors"][0]["stages"]["scaled_s"]["dtype"] = "F16".into());
    let msg = default_error(&p);
    assert!(
        msg.contains("python_stages.safetensors")
            && msg.contains("bundle holds F32 [8]")
            && msg.contains("says F16 [8]"),
        "{msg}"
    );
}

#[test]
fn with_verify_hashes_a_bundle_stage_whose_sha256_differs_from_the_report_is_a_setup_error() {
    let p = pair(|_| {});
    edit_json(&p.right, |v| v["tensors"][0]["stages"]["scaled_s"]["sha256"] = "0".repeat(64).into());
    let msg = setup_error(&p.left, &p.right, &CheckOptions { verify_hashes: true, ..CheckOptions::default() });
    assert!(msg.contains("stage 'scaled_s'") && msg.contains("the report does not describe this bundle"), "{msg}");
}

#[test]
fn a_final_sha256_that_is_not_the_final_stage_hash_is_a_setup_error() {
    let p = pair(|_| {});
    edit_json(&p.right, |v| v["tensors"][0]["final_sha256"] = "1".repeat(64).into());
    let msg = default_error(&p);
    assert!(msg.contains("final_sha256 111111111111… is not this stage's sha256"), "{msg}");
}

#[test]
fn a_stage_bundle_path_escaping_the_report_directory_is_refused_unless_allowed() {
    let p = pair(|_| {});
    let sub = p.dir.path().join("reports");
    std::fs::create_dir(&sub).unwrap();
    let moved = sub.join("rust.json");
    std::fs::rename(&p.right, &moved).unwrap();
    edit_json(&moved, |v| v["stage_bundle"] = "../rust_stages.safetensors".into());
    let msg = setup_error(&p.left, &moved, &CheckOptions::default());
    assert!(msg.contains("escapes the report's directory"), "{msg}");
    let allowed = CheckOptions { allow_outside_paths: true, ..CheckOptions::default() };
    assert!(check(&p.left, &moved, &allowed).is_ok());
}

#[test]
fn a_required_stage_missing_from_a_report_is_a_setup_error() {
    let p = pair(|s| s.0.retain(|(n, _)| n != "scaled_s"));
    let msg = default_error(&p);
    assert!(
        msg.contains("rust.json") && msg.contains(NAME) && msg.contains("stage 'scaled_s': required stage missing"),
        "{msg}"
    );
}

#[test]
fn a_select_matching_nothing_is_a_setup_error() {
    let p = pair(|_| {});
    let msg =
        setup_error(&p.left, &p.right, &CheckOptions { select: vec!["layers.99.".into()], ..CheckOptions::default() });
    assert!(msg.contains("layers.99.") && msg.contains("matches no tensor"), "{msg}");
}

#[test]
fn an_unknown_stage_in_stages_is_a_setup_error() {
    let p = pair(|_| {});
    let msg = setup_error(
        &p.left,
        &p.right,
        &CheckOptions { stages: StageSelection::Named(vec!["final_bf61".into()]), ..CheckOptions::default() },
    );
    assert!(msg.contains("'final_bf61' is not a stage of any selected tensor"), "{msg}");
}

#[test]
fn a_selected_tensor_missing_on_the_right_is_a_setup_error() {
    let p = pair(|_| {});
    edit_json(&p.right, |v| v["tensors"][0]["name"] = "something.else".into());
    let msg = default_error(&p);
    assert!(msg.contains("rust.json") && msg.contains(NAME) && msg.contains("missing from this report"), "{msg}");
}

#[test]
fn operations_differing_between_the_sides_are_a_setup_error() {
    let p = pair(|_| {});
    edit_json(&p.right, |v| v["tensors"][0]["operation"] = "svf_apply_v2".into());
    let msg = default_error(&p);
    assert!(msg.contains("operation 'svf_apply_v2' here but 'svf_apply'"), "{msg}");
}

#[test]
fn params_differing_between_the_sides_are_a_setup_error_showing_the_diff() {
    let p = pair(|_| {});
    edit_json(&p.right, |v| {
        v["tensors"][0]["params"]["final_shape"] = serde_json::json!([16, 24]);
        v["tensors"][0]["params"]["transpose"] = false.into();
    });
    let msg = default_error(&p);
    assert!(
        msg.contains("final_shape: [24,16] (left) vs [16,24] (right); transpose: absent (left) vs false (right)"),
        "{msg}"
    );
}

#[test]
fn by_default_hashes_are_held_to_the_bytes_instead_of_re_hashed() {
    // A stale intermediate hash passes by default — the metrics come from the
    // bundle's bytes, and no mode is about hashes.
    let p = pair(|_| {});
    edit_json(&p.right, |v| v["tensors"][0]["stages"]["scaled_s"]["sha256"] = "0".repeat(64).into());
    let outcome = check(&p.left, &p.right, &CheckOptions::default()).expect("intermediate hashes are not re-verified");
    let scaled = outcome.tensors[0].stages.iter().find(|s| s.stage == "scaled_s").unwrap();
    assert!(scaled.passed(), "the data itself is identical");
    assert!(!outcome.tensors[0].hashes.rehashed);

    // Final hashes claimed different for byte-identical final stages.
    let p = pair(|_| {});
    let fake = "0".repeat(64);
    edit_json(&p.right, |v| {
        v["tensors"][0]["stages"]["final_bf16"]["sha256"] = fake.clone().into();
        v["tensors"][0]["final_sha256"] = fake.clone().into();
    });
    let msg = default_error(&p);
    assert!(
        msg.contains("stage 'final_bf16'") && msg.contains("are different but") && msg.contains("are byte-identical: a report does not describe its bundle"),
        "{msg}"
    );

    // Final hashes claimed equal for final stages that differ.
    let p = pair(|st| edit_bits(st, "final_bf16", |i, b| if i == 3 { b ^ 1 } else { b }));
    let left_final = std::fs::read_to_string(&p.left).unwrap();
    let left_final: serde_json::Value = serde_json::from_str(&left_final).unwrap();
    let h = left_final["tensors"][0]["final_sha256"].clone();
    edit_json(&p.right, |v| {
        v["tensors"][0]["stages"]["final_bf16"]["sha256"] = h.clone();
        v["tensors"][0]["final_sha256"] = h.clone();
    });
    let msg = default_error(&p);
    assert!(msg.contains("are equal but") && msg.contains("differ in 1 of 384 elements"), "{msg}");
}

#[test]
fn a_hash_mode_re_hashes_the_final_stages() {
    // The claims are consistent with the bytes (they differ, and so do the
    // hashes) but one is false: only re-hashing finds it, and the hash
    // modes' verdicts rest on it.
    let p = pair(|st| edit_bits(st, "final_bf16", |i, b| if i == 3 { b ^ 1 } else { b }));
    let fake = "ab".repeat(32);
    edit_json(&p.right, |v| {
        v["tensors"][0]["stages"]["final_bf16"]["sha256"] = fake.clone().into();
        v["tensors"][0]["final_sha256"] = fake.clone().into();
    });
    let outcome = check(&p.left, &p.right, &CheckOptions::default()).expect("no hash mode: claims only held to the bytes");
    assert!(!outcome.tensors[0].hashes.rehashed);
    let mut opts = CheckOptions::default();
    opts.modes.strict_hash = true;
    let msg = setup_error(&p.left, &p.right, &opts);
    assert!(msg.contains("stage 'final_bf16'") && msg.contains("the report does not describe this bundle"), "{msg}");

    let p = pair(|_| {});
    let outcome = check(&p.left, &p.right, &opts).expect("true hashes");
    assert!(outcome.tensors[0].hashes.rehashed);
}
