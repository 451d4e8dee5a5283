//! Where parity's outputs land (issue 22, defects 0–2): a symbolic link is
//! followed (the file it names is replaced, the link stays a link), a FIFO
//! or character device is written through (never renamed over), and
//! `apply` notices an input that changed since the run its manifest
//! records. Refusals of outputs that would land on an input are rows of the
//! bad-input matrix (`tests/bad_inputs.rs`), which also checks that nothing
//! on disk changed.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Output};

mod checkpoint_support;
use checkpoint_support::{write_sharded, Model};
use parity::format::tensor::Tensor;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");

fn parity(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parity")).args(args).current_dir(dir).output().unwrap()
}

/// A working directory with the golden diff pair (`left/`, `right/`) and
/// the svf_small report pair (`left.json`, `right.json` and their bundles).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for side in ["left", "right"] {
        let from = Path::new(GOLDEN).join("diff_two_shards").join(side);
        std::fs::create_dir_all(dir.path().join(side)).unwrap();
        for f in std::fs::read_dir(from).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join(side).join(f.file_name().unwrap())).unwrap();
        }
    }
    let small = Path::new(GOLDEN).join("svf_small");
    std::fs::copy(small.join("components.safetensors"), dir.path().join("components.safetensors")).unwrap();
    for side in ["left", "right"] {
        std::fs::copy(small.join("oracle_f32.safetensors"), dir.path().join(format!("{side}.safetensors"))).unwrap();
        let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(small.join("oracle_f32.json")).unwrap()).unwrap();
        r["stage_bundle"] = format!("{side}.safetensors").into();
        std::fs::write(dir.path().join(format!("{side}.json")), serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    }
    dir
}

/// Every command that writes one file, given that file's path: its
/// arguments and the exit code it ends with on the workspace.
fn writers(out: &str) -> Vec<(&'static str, Vec<String>, i32)> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        // The golden diff pair differs by design: exit 1.
        ("diff --output", v(&["diff", "left", "right", "--output", out]), 1),
        ("inspect --output", v(&["inspect", "left", "--output", out]), 0),
        ("check --output", v(&["check", "left.json", "right.json", "--strict-stage-tolerances", "--output", out]), 0),
        ("check --suggest-tolerances", v(&["check", "left.json", "right.json", "--suggest-tolerances", out]), 0),
        ("check --format html --output", v(&["check", "left.json", "right.json", "--format", "html", "--output", out]), 0),
    ]
}

#[test]
fn an_output_that_is_a_symbolic_link_replaces_the_file_it_names_and_stays_a_link() {
    for (what, args, code) in writers("link.out") {
        let ws = workspace();
        let dir = ws.path();
        std::fs::create_dir(dir.join("elsewhere")).unwrap();
        std::fs::write(dir.join("elsewhere/target.out"), "old").unwrap();
        std::os::unix::fs::symlink("elsewhere/target.out", dir.join("link.out")).unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = parity(&args, dir);
        assert_eq!(o.status.code(), Some(code), "{what}: {}", String::from_utf8_lossy(&o.stderr));
        let meta = std::fs::symlink_metadata(dir.join("link.out")).unwrap();
        assert!(meta.file_type().is_symlink(), "{what}: the link was replaced");
        let written = std::fs::read_to_string(dir.join("elsewhere/target.out")).unwrap();
        assert!(written.len() > 3 && written != "old", "{what}: the linked file was not written");
        // Nothing left beside the link: no temporary under another name.
        let names: Vec<String> = std::fs::read_dir(dir.join("elsewhere")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["target.out"], "{what}");
    }
}

#[test]
fn a_dangling_symbolic_link_creates_the_file_it_names() {
    let ws = workspace();
    let dir = ws.path();
    std::os::unix::fs::symlink("made.txt", dir.join("dangling.txt")).unwrap();
    let o = parity(&["inspect", "left", "--output", "dangling.txt"], dir);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::symlink_metadata(dir.join("dangling.txt")).unwrap().file_type().is_symlink());
    let text = std::fs::read_to_string(dir.join("made.txt")).unwrap();
    assert!(text.contains("tensors"), "{text}");
}

/// Run `args` with `fifo` read by another thread; what the reader got.
fn through_fifo(args: &[&str], dir: &Path, fifo: &Path) -> (Output, Vec<u8>) {
    let reader = {
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = parity(args, dir);
    // The reader ends at the writer's close; give it time to see it.
    let start = std::time::Instant::now();
    while !reader.is_finished() && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A command that never opened the FIFO leaves the reader waiting in its
    // open: open it for writing once, without blocking (O_NONBLOCK: a
    // blocking open with no reader left would wait forever), so the reader
    // sees an end and the test fails on what it read instead of hanging.
    if !reader.is_finished() {
        use std::os::unix::fs::OpenOptionsExt;
        const O_NONBLOCK: i32 = 0o4000; // Linux
        let _ = std::fs::OpenOptions::new().write(true).custom_flags(O_NONBLOCK).open(fifo);
    }
    (o, reader.join().unwrap())
}

#[test]
fn an_output_that_is_a_fifo_is_written_through_and_stays_a_fifo() {
    for (what, args, code) in writers("pipe") {
        let ws = workspace();
        let dir = ws.path();
        assert!(Command::new("mkfifo").arg(dir.join("pipe")).status().unwrap().success());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (o, got) = through_fifo(&args, dir, &dir.join("pipe"));
        assert_eq!(o.status.code(), Some(code), "{what}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(!got.is_empty(), "{what}: nothing came through the FIFO");
        assert!(std::fs::symlink_metadata(dir.join("pipe")).unwrap().file_type().is_fifo(), "{what}: the FIFO was replaced");
        let stray: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.contains("parity-tmp")).collect();
        assert!(stray.is_empty(), "{what}: {stray:?}");
    }
}

/// What `diff --output` wrote through the FIFO is the same text it writes
/// to a regular file.
#[test]
fn what_goes_through_a_fifo_is_what_a_file_would_hold() {
    let ws = workspace();
    let dir = ws.path();
    parity(&["diff", "left", "right", "--format", "json", "--output", "file.json"], dir);
    assert!(Command::new("mkfifo").arg(dir.join("pipe")).status().unwrap().success());
    let (_, got) = through_fifo(&["diff", "left", "right", "--format", "json", "--output", "pipe"], dir, &dir.join("pipe"));
    assert_eq!(got, std::fs::read(dir.join("file.json")).unwrap());
}

/// A report and its bundle are a pair of files: a FIFO (or device) as
/// `--out`/`--save-stages` is refused; a link is followed and the bundle
/// goes beside the file it names.
#[test]
fn a_report_pair_follows_a_link_and_refuses_a_fifo() {
    let ws = workspace();
    let dir = ws.path();
    std::fs::create_dir(dir.join("real")).unwrap();
    std::os::unix::fs::symlink("real/replayed.json", dir.join("out.json")).unwrap();
    let o = parity(&["replay", "right.json", "--out", "out.json"], dir);
    assert_eq!(o.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::symlink_metadata(dir.join("out.json")).unwrap().file_type().is_symlink());
    assert!(dir.join("real/replayed_stages.safetensors").is_file());
    // The pair is readable through the link.
    let o = parity(&["check", "right.json", "out.json", "--strict-stage-tolerances"], dir);
    assert_eq!(o.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    assert!(Command::new("mkfifo").arg(dir.join("pipe.json")).status().unwrap().success());
    let o = parity(&["replay", "right.json", "--out", "pipe.json"], dir);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pipe.json") && err.contains("FIFO"), "{err}");
    assert!(std::fs::symlink_metadata(dir.join("pipe.json")).unwrap().file_type().is_fifo());
}

/// As root (CI, containers), a character device made with mknod stands in
/// for /dev/null: it is written through and stays a device. Without root
/// there is no device to make, and the test says so.
#[test]
fn a_character_device_as_output_is_written_through_not_replaced() {
    let ws = workspace();
    let dir = ws.path();
    let made = Command::new("mknod").arg(dir.join("null")).args(["c", "1", "3"]).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: mknod needs root here; the FIFO tests cover the write-through path");
        return;
    }
    for (what, args, code) in writers("null") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = parity(&args, dir);
        assert_eq!(o.status.code(), Some(code), "{what}: {}", String::from_utf8_lossy(&o.stderr));
        let meta = std::fs::symlink_metadata(dir.join("null")).unwrap();
        assert!(meta.file_type().is_char_device(), "{what}: the device node was replaced by a {:?}", meta.file_type());
    }
}

// ---------------------------------------------------------------------------
// apply: the output directory and a changed input.

fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v)
}

fn base_model(k: f32) -> Model {
    let mut m = Model::new();
    for l in 0..2 {
        m.insert(format!("model.layers.{l}.mlp.up_proj.weight"), f32t(&[2, 2], &[k, 2.0 * k, 3.0 * k, 4.0 * k]));
    }
    m.insert("model.norm.weight".into(), f32t(&[2], &[1.0, 1.0]));
    m
}

const DOUBLE_PLAN: &str = "schema: parity.plan.v1\ninputs: {base: base/}\noutput: {path: out/}\nsteps:\n  - {id: double, operation: scale, target: {match: 'model.layers.*.mlp.up_proj.weight'}, inputs: {x: 'base:{name}'}, params: {factor: 2.0}}\n";

fn read_output(out: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let ck = parity::format::checkpoint::Checkpoint::open(out).unwrap();
    let names: Vec<String> = ck.names().map(str::to_string).collect();
    names
        .into_iter()
        .map(|n| {
            let loc = ck.get(&n).unwrap().clone();
            let mut bytes = vec![0u8; loc.len];
            ck.region(&loc).read_at(0, &mut bytes).unwrap();
            (n, bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
        })
        .collect()
}

#[test]
fn apply_into_a_symbolic_link_to_a_directory_writes_into_that_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_sharded(&dir.path().join("base"), &base_model(1.0), 2);
    std::fs::create_dir(dir.path().join("real_out")).unwrap();
    std::os::unix::fs::symlink("real_out", dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("plan.yaml"), DOUBLE_PLAN).unwrap();
    let o = parity(&["apply", "plan.yaml"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::symlink_metadata(dir.path().join("out")).unwrap().file_type().is_symlink());
    assert_eq!(read_output(&dir.path().join("real_out"))["model.layers.0.mlp.up_proj.weight"], [2.0, 4.0, 6.0, 8.0]);
}

/// Defect 2: the base saved again with other values and one more tensor;
/// a plain rerun must not keep the old values or miss the new tensor.
#[test]
fn a_rerun_after_an_input_changed_redoes_the_work_and_writes_what_the_input_now_holds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_sharded(&d.join("base"), &base_model(1.0), 2);
    std::fs::write(d.join("plan.yaml"), DOUBLE_PLAN).unwrap();
    let o = parity(&["apply", "plan.yaml"], d);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_output(&d.join("out"))["model.layers.1.mlp.up_proj.weight"], [2.0, 4.0, 6.0, 8.0]);

    // Saved again: other values, one more tensor (and a different size, so
    // the change is visible even where mtimes are coarse).
    let mut changed = base_model(10.0);
    changed.insert("model.extra.bias".into(), f32t(&[3], &[7.0, 8.0, 9.0]));
    std::fs::remove_dir_all(d.join("base")).unwrap();
    write_sharded(&d.join("base"), &changed, 2);
    let o = parity(&["apply", "plan.yaml"], d);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    let out = read_output(&d.join("out"));
    assert_eq!(out["model.layers.1.mlp.up_proj.weight"], [20.0, 40.0, 60.0, 80.0]);
    assert_eq!(out["model.extra.bias"], [7.0, 8.0, 9.0]);
    assert_eq!(out.len(), 4);
    assert!(stdout.contains("(4 tensors"), "{stdout}");
    assert!(stdout.contains("inputs changed since the recorded run"), "{stdout}");
    assert!(stdout.contains("2 actions applied, 0 resumed"), "{stdout}");
    // And the manifest now records the new input: a third run verifies.
    let o = parity(&["apply", "plan.yaml"], d);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout.contains("complete and unchanged"), "{stdout}");
    assert!(!stdout.contains("inputs changed"), "{stdout}");
}

/// A run killed part-way, then an input changed: the recorded actions
/// whose inputs still hash the same are resumed, the others redone.
#[test]
fn after_an_input_changed_only_the_actions_whose_inputs_changed_are_redone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_sharded(&d.join("base"), &base_model(1.0), 1);
    // An expectation that fails stops the run after both scales are
    // recorded (their work files kept): a stand-in for a killed run.
    let plan = format!("{DOUBLE_PLAN}  - {{id: stop, assert: {{match: model.norm.weight, iszero: true}}}}\n");
    std::fs::write(d.join("plan.yaml"), &plan).unwrap();
    let o = parity(&["apply", "plan.yaml"], d);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    // Layer 1's weight changes; layer 0's bytes stay.
    let mut m = base_model(1.0);
    m.insert("model.layers.1.mlp.up_proj.weight".into(), f32t(&[2, 2], &[5.0, 5.0, 5.0, 5.0]));
    m.insert("model.norm.weight".into(), f32t(&[2], &[0.0, 0.0]));
    std::fs::remove_dir_all(d.join("base")).unwrap();
    write_sharded(&d.join("base"), &m, 1);
    let o = parity(&["apply", "plan.yaml"], d);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("1 action applied, 1 resumed"), "{stdout}");
    assert_eq!(read_output(&d.join("out"))["model.layers.1.mlp.up_proj.weight"], [10.0, 10.0, 10.0, 10.0]);
    assert_eq!(read_output(&d.join("out"))["model.layers.0.mlp.up_proj.weight"], [2.0, 4.0, 6.0, 8.0]);
}

/// Defect 14 (apply's rerun): a complete output is verified, not
/// "skipped", and the summary says what was verified.
#[test]
fn a_rerun_of_a_complete_apply_says_what_it_verified() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_sharded(&d.join("base"), &base_model(1.0), 2);
    let plan = format!("{DOUBLE_PLAN}  - {{id: norm_ok, assert: {{match: model.norm.weight, finite: true}}}}\n");
    std::fs::write(d.join("plan.yaml"), plan).unwrap();
    assert_eq!(parity(&["apply", "plan.yaml"], d).status.code(), Some(0));
    let o = parity(&["apply", "plan.yaml"], d);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stdout.contains("skipped"), "{stdout}");
    assert!(stdout.contains("held (recorded)") && stdout.contains("verified"), "{stdout}");
    assert!(stdout.contains("every file's sha256 matches manifest.json"), "{stdout}");
}

/// Defect 13: `copy_files: true` copies base's subdirectories too (a
/// sentence-transformers repository's `1_Pooling/config.json`).
#[test]
fn copy_files_copies_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_sharded(&d.join("base"), &base_model(1.0), 2);
    std::fs::write(d.join("base/config.json"), "{\"a\": 1}").unwrap();
    std::fs::create_dir_all(d.join("base/1_Pooling")).unwrap();
    std::fs::write(d.join("base/1_Pooling/config.json"), "{\"pooling_mode_mean_tokens\": true}").unwrap();
    let plan = DOUBLE_PLAN.replace("output: {path: out/}", "output: {path: out/, copy_files: true}");
    std::fs::write(d.join("plan.yaml"), plan).unwrap();
    let o = parity(&["apply", "plan.yaml"], d);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(d.join("out/1_Pooling/config.json")).unwrap(), "{\"pooling_mode_mean_tokens\": true}");
    assert_eq!(std::fs::read_to_string(d.join("out/config.json")).unwrap(), "{\"a\": 1}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("out/manifest.json")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(listed.contains(&"1_Pooling/config.json"), "{listed:?}");
    // And a rerun verifies the copied subdirectory's file too.
    std::fs::write(d.join("out/1_Pooling/config.json"), "tampered").unwrap();
    let o = parity(&["apply", "plan.yaml"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1_Pooling/config.json"));
}


/// `--output /dev/stdout` while standard output is a pipe: /dev/stdout is a
/// link to `/proc/self/fd/1`, a link to `pipe:[…]`, which names no path; the
/// kernel follows it and the result comes out on the pipe.
#[test]
fn output_to_dev_stdout_through_a_pipe_comes_out_on_the_pipe() {
    let ws = workspace();
    let o = parity(&["inspect", "left", "--output", "/dev/stdout"], ws.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("tensors"), "{}", String::from_utf8_lossy(&o.stdout));
}
