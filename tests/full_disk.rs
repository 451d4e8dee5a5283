//! A full disk, simulated with a file size limit (RLIMIT_FSIZE, `ulimit -f`,
//! with SIGXFSZ ignored so that a write past it fails with EFBIG as a write
//! to a full disk fails with ENOSPC): every writer stops with exit 2 and a
//! one-line error naming the file, leaves no partial file under a final
//! name, keeps an older output whole, and `apply` resumes to the bytes of an
//! uninterrupted run once there is room.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_parity");

fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(case)
}

/// parity with `args`, files limited to `kib` KiB.
fn limited(kib: u64, args: &[&str]) -> Output {
    Command::new("bash")
        .args(["-c", "trap '' XFSZ; ulimit -f \"$1\"; shift; exec \"$@\"", "bash", &kib.to_string(), BIN])
        .args(args)
        .output()
        .unwrap()
}

fn one_line_error(o: &Output, names: &Path) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&names.display().to_string()) && err.contains("File too large"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn replay_on_a_full_disk_writes_nothing_under_a_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let report = golden("svf_small").join("oracle_f32.json");
    // The bundle (3.4 KiB) does not fit in 2 KiB.
    let o = limited(2, &["replay", report.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    one_line_error(&o, dir.path());
    assert_eq!(listing(dir.path()), Vec::<String>::new(), "no report, no bundle, no temporary");
    // With room, the same command succeeds.
    let o = limited(1 << 20, &["replay", report.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(dir.path()), vec!["r.json", "r_stages.safetensors"]);
}

#[test]
fn diff_output_on_a_full_disk_keeps_the_old_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.json");
    std::fs::write(&out, b"the previous result\n").unwrap();
    let g = golden("diff_two_shards");
    let (left, right) = (g.join("left"), g.join("right"));
    let args = ["diff", left.to_str().unwrap(), right.to_str().unwrap(), "--format", "json", "--output", out.to_str().unwrap()];
    let o = limited(2, &args);
    one_line_error(&o, &out);
    assert_eq!(std::fs::read(&out).unwrap(), b"the previous result\n");
    assert_eq!(listing(dir.path()), vec!["d.json"], "no temporary left");
}

/// Every shard under its final name is a whole safetensors file.
fn assert_whole_shards(dir: &Path) {
    for name in listing(dir).iter().filter(|n| n.ends_with(".safetensors")) {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{name} is not whole: {e}"));
    }
}

#[test]
fn apply_on_a_full_disk_stops_cleanly_and_resumes_to_the_uninterrupted_bytes() {
    let plan = golden("plan_two_shards").join("plan.yaml");
    let dir = tempfile::tempdir().unwrap();
    let (out, clean) = (dir.path().join("out"), dir.path().join("clean"));
    let run = |kib: u64, to: &Path| limited(kib, &["apply", plan.to_str().unwrap(), "--out", to.to_str().unwrap()]);
    // Shards of ~18 KiB do not fit in 8 KiB; the small ones and the manifest do.
    let o = run(8, &out);
    one_line_error(&o, &out);
    assert_whole_shards(&out);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).expect("a whole manifest");
    assert_eq!(manifest["complete"], false, "the manifest does not claim a finished run");
    assert!(!out.join("model.safetensors.index.json").exists(), "no index naming shards that are not there");

    let o = run(1 << 20, &out);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(1 << 20, &clean);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let files = listing(&clean);
    assert_eq!(listing(&out), files, "the same files, no temporary left");
    for f in files.iter().filter(|f| !f.starts_with('.')) {
        assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(clean.join(f)).unwrap(), "{f} differs from the uninterrupted run's");
    }
}

#[test]
fn a_forced_rerun_that_fails_at_once_leaves_no_manifest_claiming_deleted_shards() {
    // A complete output, then `--force` on a disk that takes no byte at all:
    // the run stops before it can write anything. Whatever it removed, no
    // manifest may still call the output complete, so a plain rerun with
    // room must rebuild it (not fail on a shard the old manifest lists).
    let plan = golden("plan_two_shards").join("plan.yaml");
    let dir = tempfile::tempdir().unwrap();
    let (out, clean) = (dir.path().join("out"), dir.path().join("clean"));
    let run = |kib: u64, to: &Path, extra: &[&str]| {
        let mut args = vec!["apply", plan.to_str().unwrap(), "--out", to.to_str().unwrap()];
        args.extend_from_slice(extra);
        limited(kib, &args)
    };
    assert_eq!(run(1 << 20, &out, &[]).status.code(), Some(0));
    let o = run(0, &out, &["--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(1 << 20, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "the rerun: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(run(1 << 20, &clean, &[]).status.code(), Some(0));
    for f in listing(&clean).iter().filter(|f| !f.starts_with('.')) {
        assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(clean.join(f)).unwrap(), "{f} differs from the uninterrupted run's");
    }
}
