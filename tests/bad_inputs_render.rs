//! More rows of the bad-input matrix (SPEC §9, the style of
//! `tests/bad_inputs.rs`): what a report names and what `merge-results` is
//! given. Each row spoils a fresh copy of small valid fixtures, runs the real
//! binary and must end with exit 2, exactly one line on stderr holding every
//! needle (the file to fix, and what is wrong with it), no panic, and
//! nothing created, changed or removed on disk.

use parity::format::bundle;
use parity::format::tensor::Tensor;
use serde_json::Value;
use std::path::{Path, PathBuf};

mod matrix_support;
use matrix_support::{run_with_timeout, snapshot};
use std::process::Command;

/// One class of bad input: how to spoil the fixture, the arguments to run,
/// and the needles the one line on stderr must hold.
struct Row {
    class: &'static str,
    setup: fn(&Fx) -> Vec<String>,
    needles: &'static [&'static str],
    /// Needles the line must not hold (Debug formatting leaking out).
    absent: &'static [&'static str],
}

fn row(class: &'static str, needles: &'static [&'static str], setup: fn(&Fx) -> Vec<String>) -> Row {
    Row { class, setup, needles, absent: &["Some(", "None", "\\\""] }
}

// ---------------------------------------------------------------------------
// The fixture.
//
//   left.json + left.safetensors      svf_small's f32 oracle
//   right.json + right.safetensors    the same
//   components.safetensors            both reports' inputs
//   a.safetensors, b.safetensors      two small checkpoints for diff

struct Fx {
    dir: tempfile::TempDir,
}

const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/svf_small");

impl Fx {
    fn new() -> Fx {
        let fx = Fx { dir: tempfile::tempdir().unwrap() };
        let small = Path::new(SMALL);
        std::fs::copy(small.join("components.safetensors"), fx.path("components.safetensors")).unwrap();
        for side in ["left", "right"] {
            std::fs::copy(small.join("oracle_f32.safetensors"), fx.path(&format!("{side}.safetensors"))).unwrap();
            let mut r: Value = serde_json::from_slice(&std::fs::read(small.join("oracle_f32.json")).unwrap()).unwrap();
            r["stage_bundle"] = format!("{side}.safetensors").into();
            std::fs::write(fx.path(&format!("{side}.json")), serde_json::to_vec_pretty(&r).unwrap()).unwrap();
        }
        for (name, last) in [("a", 4.0f32), ("b", 5.0)] {
            let t = |v: &[f32]| Tensor::from_f32(vec![v.len()], v);
            let (w, x, y) = (t(&[1.0, 2.0, 3.0, last]), t(&[0.5, 0.25]), t(&[7.0]));
            bundle::write(&fx.path(&format!("{name}.safetensors")), &[("w".to_string(), &w), ("x".to_string(), &x), ("y".to_string(), &y)]).unwrap();
        }
        fx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn arg(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    fn edit_json(&self, rel: &str, f: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::from_slice(&std::fs::read(self.path(rel)).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(self.path(rel), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    fn check(&self) -> Vec<String> {
        vec!["check".into(), self.arg("left.json"), self.arg("right.json")]
    }

    /// `parity diff a b --format json --output OUT` and more arguments, run
    /// now (part of the setup); exit 0 or 1 both mean it was written.
    fn diff_json(&self, out: &str, more: &[&str]) {
        let o = Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["diff", &self.arg("a.safetensors"), &self.arg("b.safetensors"), "--format", "json", "--output", &self.arg(out)])
            .args(more)
            .output()
            .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1)), "setup: {}", String::from_utf8_lossy(&o.stderr));
    }

    fn merge(&self, parts: &[&str]) -> Vec<String> {
        let mut a = vec!["merge-results".to_string()];
        a.extend(parts.iter().map(|p| self.arg(p)));
        a
    }
}

// ---------------------------------------------------------------------------
// Running a row (as tests/bad_inputs.rs runs one).

fn run_row(r: &Row) -> Result<(), String> {
    let fx = Fx::new();
    let args = (r.setup)(&fx);
    let root = fx.dir.path().to_string_lossy().into_owned();
    let shown = args.iter().map(|a| a.replace(&root, "$DIR")).collect::<Vec<_>>().join(" ");
    let before = snapshot(fx.dir.path());
    // Run from the fixture's directory: a report's relative paths resolve
    // against the report's own directory, whatever the working directory.
    let out = run_with_timeout(Command::new(env!("CARGO_BIN_EXE_parity")).args(&args).current_dir(fx.dir.path()))
        .map_err(|e| format!("{e}\n    parity {shown}"))?;
    let after = snapshot(fx.dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().ok_or_else(|| format!("killed by a signal: {:?}", out.status))?;
    let mut problems = Vec::new();
    if stderr.contains("panicked") {
        problems.push("panicked".to_string());
    }
    if code != 2 {
        problems.push(format!("exit {code}, expected 2"));
    }
    if stderr.lines().count() != 1 {
        problems.push(format!("{} lines on stderr, expected one", stderr.lines().count()));
    }
    for n in r.needles {
        if !stderr.contains(n) {
            problems.push(format!("{n:?} not in the message"));
        }
    }
    for n in r.absent {
        if stderr.contains(n) {
            problems.push(format!("{n:?} in the message (Debug formatting)"));
        }
    }
    if before != after {
        let changed: std::collections::BTreeSet<String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| k.strip_prefix(fx.dir.path()).unwrap().display().to_string())
            .collect();
        problems.push(format!("files created, changed or removed: {changed:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n    parity {shown}\n    stderr: {}", problems.join("; "), stderr.trim_end()))
    }
}

// ---------------------------------------------------------------------------
// The table.

fn rows() -> Vec<Row> {
    vec![
        // ---- a file a report names ----
        row("check: stage_bundle names a directory", &["right.json", "\"stage_bundle\"", "a directory"], |fx| {
            fx.edit_json("right.json", |v| v["stage_bundle"] = ".".into());
            fx.check()
        }),
        row("check: stage_bundle names a file that is not there", &["right.json", "\"stage_bundle\"", "nope.safetensors", "No such file"], |fx| {
            fx.edit_json("right.json", |v| v["stage_bundle"] = "nope.safetensors".into());
            fx.check()
        }),
        row("inspect: a report whose stage_bundle names a directory", &["right.json", "\"stage_bundle\"", "a directory"], |fx| {
            fx.edit_json("right.json", |v| v["stage_bundle"] = ".".into());
            vec!["inspect".into(), fx.arg("right.json")]
        }),
        row("replay: components names a directory", &["right.json", "\"components\"", "a directory"], |fx| {
            fx.edit_json("right.json", |v| v["components"] = ".".into());
            vec!["replay".into(), fx.arg("right.json"), "--out".into(), fx.arg("out.json")]
        }),
        // ---- merge-results ----
        row("merge-results: partitions run with different --top-diffs", &["p2.json", "p1.json", "--top-diffs", "3", "7"], |fx| {
            fx.diff_json("p1.json", &["--partition", "1/2", "--top-diffs", "7"]);
            fx.diff_json("p2.json", &["--partition", "2/2", "--top-diffs", "3"]);
            fx.merge(&["p1.json", "p2.json"])
        }),
        row("merge-results: partitions run with different --select", &["p2.json", "p1.json", "--select"], |fx| {
            fx.diff_json("p1.json", &["--partition", "1/2"]);
            fx.diff_json("p2.json", &["--partition", "2/2", "--select", "w"]);
            fx.merge(&["p1.json", "p2.json"])
        }),
        row("merge-results: a JSON of another schema", &["i.json", "'parity.inspect.v1'", "parity.diff.v1"], |fx| {
            std::fs::write(fx.path("i.json"), r#"{"schema": "parity.inspect.v1"}"#).unwrap();
            fx.merge(&["i.json"])
        }),
        row("merge-results: a JSON without a schema", &["i.json", "no \"schema\"", "parity.diff.v1"], |fx| {
            std::fs::write(fx.path("i.json"), r#"{"tensors": []}"#).unwrap();
            fx.merge(&["i.json"])
        }),
    ]
}

#[test]
fn every_bad_input_is_refused_naming_the_file_to_fix() {
    let rows = rows();
    let failures: Vec<String> = rows.iter().filter_map(|r| run_row(r).err().map(|e| format!("{}: {e}", r.class))).collect();
    assert!(failures.is_empty(), "{} of {} rows failed:\n\n{}", failures.len(), rows.len(), failures.join("\n\n"));
}
