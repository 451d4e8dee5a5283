//! What a new user does, through the real binary: the oracle writes a
//! `python.json` for fresh random data (not a golden case), parity replays it
//! with both implementations, and `parity check` decides — with the exit
//! codes of SPEC §5. Needs `python3` with the oracle installed (`pip install
//! ./oracle`; `scripts/test` does it in a venv and puts it first on PATH).

use std::path::Path;
use std::process::Command;

fn parity(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().expect("parity runs");
    (
        out.status.code().expect("exited normally, not by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn oracle_random(dir: &Path, seed: &str) {
    let status = Command::new("python3")
        .args(["-m", "parity_oracle", "svf-random", "--out"])
        .arg(dir)
        .args(["--seed", seed, "--shape", "96", "64", "--tensors", "2"])
        .status()
        .expect("python3 is installed (README setup)");
    assert!(status.success(), "the oracle wrote a random case");
}

#[test]
fn a_python_report_for_new_data_passes_against_both_implementations() {
    for seed in ["1", "20261123"] {
        let dir = tempfile::tempdir().unwrap();
        oracle_random(dir.path(), seed);
        let python = dir.path().join("oracle_f32.json");
        let python = python.to_str().unwrap();
        for implementation in ["fast", "reference"] {
            let out = dir.path().join(format!("rust_{implementation}.json"));
            let (code, stdout, stderr) = parity(&["replay", python, "--out", out.to_str().unwrap(), "--impl", implementation]);
            assert_eq!(code, 0, "{stdout}{stderr}");
            let (code, stdout, stderr) = parity(&["check", python, out.to_str().unwrap(), "--strict-stage-tolerances"]);
            assert_eq!(code, 0, "seed {seed}, {implementation}: {stdout}{stderr}");
            assert!(stdout.contains("PASS"), "{stdout}");
        }
    }
}

#[test]
fn spec_s_absolute_table_fails_the_f64_reference_on_scaled_s() {
    // Why the built-in profile gates scaled_s in ULPs: with SPEC §3's absolute
    // limits (shipped as a tolerance file) the correctly rounded reference
    // fails against torch's two-rounding f32 pipeline on ordinary data.
    let dir = tempfile::tempdir().unwrap();
    oracle_random(dir.path(), "1");
    let python = dir.path().join("oracle_f32.json");
    let out = dir.path().join("ref.json");
    let (code, ..) = parity(&["replay", python.to_str().unwrap(), "--out", out.to_str().unwrap(), "--impl", "reference"]);
    assert_eq!(code, 0);
    let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/svf_spec_table.tolerances.json");
    let (code, stdout, _) = parity(&[
        "check",
        python.to_str().unwrap(),
        out.to_str().unwrap(),
        "--strict-stage-tolerances",
        "--tolerances",
        table.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("first failing stage: scaled_s"), "{stdout}");
}

#[test]
fn a_broken_port_fails_with_exit_1_and_names_the_first_failing_stage() {
    let dir = tempfile::tempdir().unwrap();
    oracle_random(dir.path(), "7");
    let python = dir.path().join("oracle_f32.json");
    let out = dir.path().join("rust.json");
    let (code, ..) = parity(&["replay", python.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0);

    // Break one element of the candidate's matmul stage in its bundle.
    let bundle = dir.path().join("rust_stages.safetensors");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let (header_len, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let key = meta.tensors().keys().find(|k| k.ends_with(".matmul_pre_norm")).unwrap().clone();
    let (start, end) = meta.info(&key).unwrap().data_offsets;
    let (start, end) = (8 + header_len + start, 8 + header_len + end);
    let v = f32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()) + 0.5;
    bytes[start..start + 4].copy_from_slice(&v.to_le_bytes());
    std::fs::write(&bundle, &bytes).unwrap();

    // With --verify-hashes the report's sha256 no longer describes its bundle: a setup error (2).
    let (code, _, stderr) =
        parity(&["check", python.to_str().unwrap(), out.to_str().unwrap(), "--strict-stage-tolerances", "--verify-hashes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("matmul_pre_norm"), "{stderr}");

    // Describe the bundle honestly, as a buggy port would: a gate failure (1).
    let mut report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let tensor_key = key.trim_start_matches("tensor.").trim_end_matches(".matmul_pre_norm");
    for t in report["tensors"].as_array_mut().unwrap() {
        if t["key"] == tensor_key {
            t["stages"]["matmul_pre_norm"]["sha256"] = parity::format::tensor::sha256_hex(&bytes[start..end]).into();
        }
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    let (code, stdout, stderr) = parity(&["check", python.to_str().unwrap(), out.to_str().unwrap(), "--strict-stage-tolerances"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("matmul_pre_norm"), "first failing stage named: {stdout}");

    // Without a strictness mode the result is printed and only setup errors fail.
    let (code, ..) = parity(&["check", python.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0);
}

#[test]
fn usage_and_setup_errors_exit_2_with_one_line() {
    let (code, _, stderr) = parity(&["check", "no/such/left.json", "no/such/right.json"]);
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no/such/left.json"), "{stderr}");
    let (code, ..) = parity(&["check", "--no-such-flag"]);
    assert_eq!(code, 2, "clap usage errors are exit 2 too");
}

#[test]
fn parity_ops_lists_every_registered_operation_with_its_stages() {
    let (code, stdout, _) = parity(&["ops"]);
    assert_eq!(code, 0);
    for op in parity::ops::REGISTRY {
        assert!(stdout.contains(op.name), "{} listed", op.name);
        for stage in op.stages {
            assert!(stdout.contains(stage.name), "{}.{} listed", op.name, stage.name);
        }
    }
    let (code, stdout, _) = parity(&["ops", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["operations"].as_array().unwrap().len(), parity::ops::REGISTRY.len());
}
