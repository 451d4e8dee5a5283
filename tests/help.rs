//! What `--help` tells a user is true of the command it is shown for (issue
//! 22, defects 12 and 14): `diff` names its own JSON schema and writes a
//! page, and each command's exit-code footer says what 1 means for it.

use std::process::Command;

fn help(command: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args([command, "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn diff_help_names_its_own_schema_and_its_page() {
    let h = help("diff");
    assert!(h.contains("parity.diff.v1"), "{h}");
    assert!(!h.contains("check only"), "{h}");
    assert!(!h.contains("For scripts: `parity.check.v1`"), "{h}");
}

#[test]
fn each_command_says_what_exit_1_means_for_it() {
    for (command, one) in [
        ("diff", "1  a pair differs"),
        ("merge-results", "1  a pair differs"),
        ("inspect", "1  a --check failed"),
        ("apply", "1  an assert or expectation failed"),
        ("check", "1  a gate failed: parity is broken"),
    ] {
        let h = help(command);
        assert!(h.contains(one), "{command}: {h}");
        assert!(h.contains("2  the run could not be made"), "{command}: {h}");
    }
    for command in ["diff", "inspect", "apply"] {
        assert!(!help(command).contains("a gate failed"), "{command}");
    }
}

/// Every command's definition is sound: clap checks it (unique argument
/// ids, valid `requires`) when the command is built, in debug builds.
#[test]
fn every_command_builds_its_help() {
    for command in ["check", "replay", "gate", "diff", "merge-results", "apply", "inspect", "ops", "doctor"] {
        assert!(help(command).contains("Usage: parity"), "{command}");
    }
}
