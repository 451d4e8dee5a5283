//! The sample outputs in README.md and docs/*.md are what their commands
//! print now: `scripts/readme_samples.py --check` reruns every sample's
//! commands with the binary under test and fails on any difference in any
//! of those pages (rewrite them with `python3 scripts/readme_samples.py`).
//! Needs `python3` with the oracle installed, as tests/end_to_end.rs does
//! (`scripts/test` puts its venv first on PATH). On a CPU where the samples' pinned BLAS kernel cannot run
//! (not x86-64 with AVX2 and FMA) the script says so and checks nothing.

use std::process::Command;

#[test]
fn readme_samples_are_what_the_commands_print() {
    let out = Command::new("python3")
        .arg("scripts/readme_samples.py")
        .arg("--check")
        .arg("--parity")
        .arg(env!("CARGO_BIN_EXE_parity"))
        .output()
        .expect("python3 is installed (README setup)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}");
    assert!(out.status.success(), "a sample in README.md or docs/ is stale or failed to run:\n{stdout}{stderr}");
}
