//! `cargo test` runs the golden gate: every shipped case, both
//! implementations, against the oracle — and the gate refuses golden data
//! whose files no longer match their manifest.

use parity::golden::{gate, verify_manifest, MANIFEST};
use std::path::Path;

#[test]
fn every_golden_case_passes_for_both_implementations() {
    let outcome = gate(Path::new("golden"), &[]).expect("golden data is intact and readable");
    let failed: Vec<String> = outcome
        .rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{} / {}: {}", r.case, r.implementation, r.summary))
        .collect();
    assert!(failed.is_empty(), "failing gates:\n{}\n\n{}", failed.join("\n"), parity::render::gate::render(&outcome));
    let cases: std::collections::BTreeSet<&str> = outcome.rows.iter().map(|r| r.case.as_str()).collect();
    // Operation cases (an oracle report) are gated for fast and for
    // reference; checkpoint-diff cases once per run of their diff_case.json.
    for case in &cases {
        let rows = outcome.rows.iter().filter(|r| r.case == *case).count();
        if Path::new("golden").join(case).join("oracle_f32.json").is_file() {
            assert_eq!(rows, 2, "{case}: each operation case is gated for fast and for reference");
        } else {
            let runs = std::fs::read_to_string(Path::new("golden").join(case).join("diff_case.json"))
                .map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap()["runs"].as_array().unwrap().len())
                .unwrap_or(1);
            assert_eq!(rows, runs, "{case}: one gate row per run");
        }
    }
    assert!(cases.len() >= 34, "every golden case is gated: {cases:?}");
    assert!(cases.contains("svf_minilm_query"), "the real-model case is gated");
}

#[test]
fn every_registered_operation_has_a_golden_case() {
    let mut covered = std::collections::BTreeSet::new();
    for case in std::fs::read_dir("golden").unwrap() {
        let report = case.unwrap().path().join("oracle_f32.json");
        if let Ok(loaded) = parity::format::report::LoadedReport::load(&report) {
            covered.extend(loaded.report.tensors.into_iter().map(|t| t.operation));
        }
    }
    let missing: Vec<&str> = parity::ops::REGISTRY.iter().map(|op| op.name).filter(|n| !covered.contains(*n)).collect();
    assert!(missing.is_empty(), "operations without a golden case: {missing:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// A copy of golden/ holding only the manifest lines of one small case.
fn small_golden_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new("golden/svf_small"), &dir.path().join("svf_small"));
    let manifest: String = std::fs::read_to_string(Path::new("golden").join(MANIFEST))
        .unwrap()
        .lines()
        .filter(|l| l.contains("  svf_small/"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join(MANIFEST), manifest).unwrap();
    dir
}

#[test]
fn an_intact_copy_verifies() {
    let dir = small_golden_copy();
    assert_eq!(verify_manifest(dir.path()).unwrap(), 6);
}

#[test]
fn a_changed_golden_file_is_refused_naming_it() {
    let dir = small_golden_copy();
    let target = dir.path().join("svf_small/oracle_f32.safetensors");
    let mut bytes = std::fs::read(&target).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&target, bytes).unwrap();
    let err = match gate(dir.path(), &[]) {
        Ok(_) => panic!("a changed file must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("oracle_f32.safetensors") && err.contains("sha256 differs"), "{err}");
}

#[test]
fn a_file_missing_from_the_manifest_is_refused() {
    let dir = small_golden_copy();
    std::fs::write(dir.path().join("svf_small/extra.json"), "{}").unwrap();
    let err = verify_manifest(dir.path()).unwrap_err().to_string();
    assert!(err.contains("extra.json") && err.contains("not covered"), "{err}");
}

#[test]
fn a_listed_file_that_is_gone_is_refused() {
    let dir = small_golden_copy();
    std::fs::remove_file(dir.path().join("svf_small/NOTE.md")).unwrap();
    let err = verify_manifest(dir.path()).unwrap_err().to_string();
    assert!(err.contains("NOTE.md"), "{err}");
}
