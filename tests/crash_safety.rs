//! Writes that survive SIGKILL (issue 14): `parity replay` killed at any
//! point leaves no report beside a bundle it does not describe, no
//! half-written file under a final name, and no temporary the next run does
//! not clean up; outputs are synced before they are renamed, and the
//! directory after; they get the umask's mode; and a components file
//! truncated under a running replay is an error naming it, not a SIGBUS.
//!
//! The kill tests run the real binary. Two kinds of kill:
//! * at random moments (a seeded generator picks the delays), over a case big
//!   enough that writing takes a good share of the run;
//! * exactly at each rename, unlink and fsync of the write, with strace's
//!   fault injection (skipped, saying so, where strace cannot run).

use parity::format::bundle::{self, Bundle};
use parity::format::report::LoadedReport;
use parity::format::tensor::Tensor;
use parity::numeric::rng::SplitMix64;
use parity::ops::svf_apply::SVF_APPLY;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_parity");

/// A replayable SVF case of `count` tensors of `dims` = [m, n, k]: its
/// components and a report naming them (no stages: replay needs none).
fn write_case(dir: &Path, count: usize, dims: [usize; 3]) -> PathBuf {
    let mut components: Vec<(String, Tensor)> = Vec::new();
    let mut tensors = Vec::new();
    for i in 0..count {
        let name = format!("model.layers.{i}.mlp.up_proj.weight");
        let key = bundle::safe_key(&name);
        let sample = (SVF_APPLY.sample)(100 + i as u64, &dims);
        for (input, t) in sample.inputs {
            components.push((bundle::tensor_key(&key, &input), t));
        }
        tensors.push(serde_json::json!({
            "name": name, "key": key, "operation": "svf_apply", "params": sample.params, "stages": {}
        }));
    }
    let entries: Vec<(String, &Tensor)> = components.iter().map(|(k, t)| (k.clone(), t)).collect();
    bundle::write(&dir.join("components.safetensors"), &entries).unwrap();
    let report = serde_json::json!({
        "schema": "parity.report.v1",
        "producer": {"name": "crash-safety test", "implementation": "none"},
        "stage_bundle": "case_stages.safetensors",
        "components": "components.safetensors",
        "tensors": tensors,
    });
    let path = dir.join("case.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    path
}

fn replay(case: &Path, out: &Path, implementation: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["replay", case.to_str().unwrap(), "--out", out.to_str().unwrap(), "--impl", implementation])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn run_to_completion(case: &Path, out: &Path, implementation: &str) {
    let o = replay(case, out, implementation).output().unwrap();
    assert!(o.status.success(), "rerun failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Every final-named file in `dir` is complete, and a report there
/// describes its bundle byte for byte: dtype, shape and sha256 of every
/// stage, and `final_sha256` of the final one.
fn assert_consistent(dir: &Path, report: &Path, when: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with('.') && name.ends_with(".safetensors") {
            if let Err(e) = Bundle::open(&p) {
                panic!("{when}: {name} under its final name is not a complete safetensors file: {e}");
            }
        }
    }
    if !report.exists() {
        return;
    }
    let loaded = LoadedReport::load(report).unwrap_or_else(|e| panic!("{when}: the final-named report is not complete: {e}"));
    let bundle_path = loaded.stage_bundle_path(false).unwrap();
    let b = Bundle::open(&bundle_path).unwrap_or_else(|e| panic!("{when}: the report names a bundle that cannot be opened: {e}"));
    for t in &loaded.report.tensors {
        for (stage, e) in &t.stages {
            let region = b.region_named(&t.key, stage).unwrap_or_else(|| panic!("{when}: {} {stage} listed but absent", t.name));
            let view = b.get_named(&t.key, stage).unwrap();
            assert_eq!((view.dtype, view.shape), (e.dtype, e.shape.as_slice()), "{when}: {} {stage}: dtype/shape", t.name);
            let actual = region.sha256_hex().unwrap();
            assert_eq!(actual, e.sha256, "{when}: {} {stage}: the report does not describe the bundle beside it", t.name);
        }
        assert_eq!(t.final_sha256.as_ref(), Some(&t.stages["final_bf16"].sha256), "{when}: {}", t.name);
    }
}

/// Hidden temporaries in `dir`: parity's, and any other writer's (`.tmp*`).
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && (n.contains(".parity-tmp-") || n.starts_with(".tmp")))
        .collect()
}

/// A temporary named as parity names its own: `.<final name>.parity-tmp-<pid>-<16 hex>`.
fn is_parity_temporary(name: &str, finals: &[&str]) -> bool {
    finals.iter().any(|f| {
        name.strip_prefix(&format!(".{f}.parity-tmp-")).is_some_and(|rest| {
            rest.split_once('-').is_some_and(|(pid, r)| pid.parse::<u32>().is_ok() && r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    })
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_report_beside_a_bundle_it_does_not_describe() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // 8 tensors: a ~40 MB bundle, so writing is a good share of each run.
    let case = write_case(dir.path(), 8, [384, 512, 16]);
    let out = dir.path().join("out.json");
    let finals = ["out.json", "out_stages.safetensors"];

    // A first pair (f64 stages: every fast run's bundle differs from it, and
    // the other way round), and the time a run of each kind takes.
    let timed = |implementation: &str| {
        let t0 = Instant::now();
        run_to_completion(&case, &out, implementation);
        t0.elapsed().max(Duration::from_millis(20))
    };
    let fast = timed("fast");
    let wide = timed("reference-f64");
    assert_consistent(dir.path(), &out, "first runs");

    let mut rng = SplitMix64::new(14);
    let wanted = 24;
    // Delays are drawn over the last run's length; a run that ended before
    // its kill (a busy machine makes runs and sleeps uneven) shrinks them, so
    // the kills keep landing inside runs whatever the machine's speed.
    let mut took = [fast, wide];
    let mut scale = 1.0;
    let (mut killed, mut finished, mut left_temporaries) = (0, 0, 0);
    let mut attempt = 0;
    while killed < wanted {
        assert!(attempt < 4 * wanted, "only {killed} of {attempt} kills landed inside a run");
        let which = attempt % 2;
        let implementation = ["fast", "reference-f64"][which];
        // From a fifth of the way in to just past the end: the writes (a few
        // tens of MB, synced) come last.
        let delay = took[which].mul_f64(scale * (0.2 + 0.9 * rng.uniform()));
        let mut child = replay(&case, &out, implementation).spawn().unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL; the child is not yet reaped, so this cannot miss
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        } else {
            finished += 1;
            scale *= 0.75;
        }
        let when = format!("attempt {attempt} ({implementation}, killed after {delay:?}, {status:?})");
        assert_consistent(dir.path(), &out, &when);
        let temps = temporaries(dir.path());
        assert!(temps.iter().all(|t| is_parity_temporary(t, &finals)), "{when}: a temporary not named as parity's: {temps:?}");
        left_temporaries += temps.len().min(1);

        let t0 = Instant::now();
        run_to_completion(&case, &out, implementation);
        took[which] = t0.elapsed();
        assert_consistent(dir.path(), &out, &format!("{when}, rerun"));
        assert_eq!(temporaries(dir.path()), Vec::<String>::new(), "{when}: a temporary survived the rerun");
        attempt += 1;
    }
    eprintln!(
        "{killed} runs killed (of which {left_temporaries} left temporaries), {finished} finished before their kill; \
         a run takes {:?} (fast), {:?} (reference-f64); {:?} in all",
        took[0],
        took[1],
        start.elapsed()
    );
}

/// Whether strace (with fault injection) can run here.
fn strace_works() -> bool {
    let ok = Command::new("strace").args(["-qq", "-o", "/dev/null", "-e", "inject=getpid:error=EPERM", "true"]).status();
    if !matches!(ok, Ok(s) if s.success()) {
        eprintln!("strace with fault injection is not available here: test skipped");
        return false;
    }
    true
}

/// Run `parity replay` under strace, killed at the `when`-th call of the
/// syscalls matching `syscalls` (a strace regex).
fn replay_killed_at(case: &Path, out: &Path, implementation: &str, syscalls: &str, when: usize) -> std::process::ExitStatus {
    let inject = format!("inject={syscalls}:signal=KILL:when={when}");
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", &format!("trace={syscalls}"), "-e", &inject, BIN])
        .args(["replay", case.to_str().unwrap(), "--out", out.to_str().unwrap(), "--impl", implementation])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn a_kill_at_each_rename_unlink_and_fsync_leaves_a_consistent_pair_and_a_rerun_cleans_up() {
    if !strace_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(dir.path(), 2, [24, 32, 4]);
    let out = dir.path().join("out.json");
    let finals = ["out.json", "out_stages.safetensors"];
    let mut points = 0;
    for (syscalls, calls) in [("/^rename", 4), ("/^unlink", 3), ("/^fsync$", 6)] {
        for when in 1..=calls {
            for (old, new) in [("reference-f64", "fast"), ("fast", "reference-f64")] {
                run_to_completion(&case, &out, old);
                let status = replay_killed_at(&case, &out, new, syscalls, when);
                let label = format!("killed at {syscalls} #{when} replacing a {old} pair with a {new} one ({status:?})");
                assert_consistent(dir.path(), &out, &label);
                let temps = temporaries(dir.path());
                assert!(temps.iter().all(|t| is_parity_temporary(t, &finals)), "{label}: {temps:?}");
                run_to_completion(&case, &out, new);
                assert_consistent(dir.path(), &out, &format!("{label}, rerun"));
                assert_eq!(temporaries(dir.path()), Vec::<String>::new(), "{label}: a temporary survived the rerun");
                points += 1;
            }
        }
    }
    eprintln!("{points} kill points");
}

/// The syscalls of one replay, as strace prints them.
fn traced_replay(dir: &Path, case: &Path, out: &Path) -> Option<Vec<String>> {
    let log = dir.join("strace.log");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o", log.to_str().unwrap(), "-e", "trace=openat,open,close,fsync,fdatasync,rename,renameat,renameat2", BIN])
        .args(["replay", case.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .ok()?;
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    Some(text.lines().map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest.trim_start()).to_string()).collect())
}

/// The first quoted string of an strace line, and the second.
fn quoted(line: &str) -> Vec<String> {
    line.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn every_output_is_synced_before_its_rename_and_its_directory_after() {
    if !strace_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(dir.path(), 2, [24, 32, 4]);
    let out = dir.path().join("out.json");
    let lines = traced_replay(dir.path(), &case, &out).expect("strace runs");
    let dir_name = dir.path().to_str().unwrap().to_string();
    // fd → path while open; the paths whose open file was fsynced; whether
    // the directory was fsynced since the last rename into it.
    let mut open: std::collections::HashMap<String, String> = Default::default();
    let mut synced: std::collections::HashSet<String> = Default::default();
    let mut renamed = Vec::new();
    let mut dir_synced_after_rename = true;
    for l in &lines {
        let fd = l.rsplit_once("= ").map(|(_, r)| r.split_whitespace().next().unwrap_or("").to_string()).unwrap_or_default();
        if l.starts_with("openat(") || l.starts_with("open(") {
            if let Some(p) = quoted(l).first() {
                open.insert(fd, p.clone());
            }
        } else if l.starts_with("fsync(") || l.starts_with("fdatasync(") {
            let arg = l.split(['(', ')']).nth(1).unwrap_or("").to_string();
            if let Some(p) = open.get(&arg) {
                synced.insert(p.clone());
                if p.trim_end_matches('/') == dir_name {
                    dir_synced_after_rename = true;
                }
            }
        } else if l.starts_with("close(") {
            let arg = l.split(['(', ')']).nth(1).unwrap_or("").to_string();
            open.remove(&arg);
        } else if l.starts_with("rename") {
            let q = quoted(l);
            let (from, to) = (&q[0], &q[1]);
            assert!(synced.contains(from), "{from} renamed to {to} without having been synced:\n{}", lines.join("\n"));
            renamed.push(to.clone());
            dir_synced_after_rename = false;
        }
    }
    let wanted = [out.clone(), dir.path().join("out_stages.safetensors")];
    for w in &wanted {
        assert!(renamed.iter().any(|r| Path::new(r) == w), "{} was never renamed into place: {renamed:?}", w.display());
    }
    assert!(dir_synced_after_rename, "the directory was not synced after the last rename:\n{}", lines.join("\n"));
}

#[test]
fn outputs_get_the_umask_s_mode_and_a_replaced_file_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(dir.path(), 1, [8, 8, 2]);
    let out = dir.path().join("out.json");
    let bundle_path = dir.path().join("out_stages.safetensors");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let run_with_umask = |umask: &str| {
        let script = format!("umask {umask} && exec \"$0\" replay \"$1\" --out \"$2\"");
        let o = Command::new("sh").args(["-c", &script, BIN, case.to_str().unwrap(), out.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run_with_umask("022");
    assert_eq!((mode(&out), mode(&bundle_path)), (0o644, 0o644), "0666 less umask 022");
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&bundle_path).unwrap();
    run_with_umask("027");
    assert_eq!((mode(&out), mode(&bundle_path)), (0o640, 0o640), "0666 less umask 027");
    // Replacing a file keeps the mode the user gave it, as `cp` does.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    run_with_umask("022");
    assert_eq!(mode(&out), 0o600);
    assert_eq!(mode(&bundle_path), 0o640);
}

#[test]
fn the_next_write_removes_temporaries_of_dead_runs_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(dir.path(), 1, [8, 8, 2]);
    let out = dir.path().join("out.json");
    // A process that has exited: its id names no running process (ids are
    // not reused this quickly).
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let me = std::process::id();
    let stale = [format!(".out.json.parity-tmp-{dead}-00000000deadbeef"), format!(".other.bin.parity-tmp-{dead}-0123456789abcdef")];
    let kept = [
        format!(".out.json.parity-tmp-{me}-00000000feedface"), // a live process's write in progress
        format!(".out.json.parity-tmp-{dead}-nothex"),          // not parity's pattern
        format!("out.json.parity-tmp-{dead}-00000000deadbeef"), // not hidden
        ".tmpA1b2C3".to_string(),                                // someone else's temporary
        "notes.txt".to_string(),
    ];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    run_to_completion(&case, &out, "fast");
    for name in &stale {
        assert!(!dir.path().join(name).exists(), "{name}: a dead run's temporary was left");
    }
    for name in &kept {
        assert!(dir.path().join(name).exists(), "{name}: removed, but it is not a dead run's parity temporary");
    }
}

#[test]
fn a_components_file_truncated_under_a_running_replay_is_an_error_naming_it_not_a_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    // Compute-heavy tensors (rank 192), so that reading each one's inputs is
    // spread over the run rather than all at its start.
    let case = write_case(dir.path(), 12, [192, 256, 192]);
    let components = dir.path().join("components.safetensors");
    let pristine = std::fs::read(&components).unwrap();
    let header_end = 8 + u64::from_le_bytes(pristine[..8].try_into().unwrap()) as usize;
    let out = dir.path().join("out.json");
    let t0 = Instant::now();
    run_to_completion(&case, &out, "fast");
    let full = t0.elapsed();

    let mut caught = 0;
    for step in 1..=8 {
        std::fs::write(&components, &pristine).unwrap();
        let child = replay(&case, &out, "fast").spawn().unwrap();
        std::thread::sleep(full.mul_f64(step as f64 / 20.0));
        // Keep the header, drop the data: later inputs lie past the end.
        std::fs::OpenOptions::new().write(true).open(&components).unwrap().set_len(header_end as u64).unwrap();
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        eprintln!("truncated after {}% of a run: {:?} {}", step * 5, o.status, stderr.trim_end());
        assert_eq!(o.status.signal(), None, "replay died of signal {:?} when its components shrank: {stderr}", o.status.signal());
        if o.status.code() == Some(2) {
            assert!(stderr.contains("components.safetensors") && stderr.lines().count() == 1, "{stderr}");
            caught += 1;
        }
    }
    eprintln!("{caught} of 8 truncations landed while replay ran ({full:?} a run)");
    assert!(caught > 0, "no truncation landed while replay ran ({full:?} a run)");
}

#[test]
fn parity_s_own_bundle_writer_gives_the_bytes_of_safetensors_serialize() {
    // Written by parity itself (so it can sync the real file), the bundle
    // must still be byte for byte what the safetensors crate would write:
    // bundles are deterministic, and other tools read them.
    use parity::format::dtype::DType;
    let tensors: Vec<(String, Tensor)> = vec![
        ("tensor.b.final_bf16".into(), Tensor::from_u16_bits(DType::BF16, vec![2, 3], &[1, 2, 3, 4, 5, 6])),
        ("tensor.a.source_f32".into(), Tensor::from_f32(vec![3], &[1.0, -2.5, 3.25])),
        ("tensor.a.wide".into(), Tensor::from_f64(vec![2], &[1.0, 1e-300])),
        ("tensor.a.index".into(), Tensor::from_i64(vec![2], &[7, -7])),
        ("tensor.a.bytes".into(), Tensor::from_bytes(DType::U8, vec![5], vec![9, 8, 7, 6, 5])),
        ("tensor.a.empty".into(), Tensor::from_f32(vec![0, 4], &[])),
        ("stage.x".into(), Tensor::from_bytes(DType::F8E4M3, vec![1], vec![0x38])),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.safetensors");
    let entries: Vec<(String, &Tensor)> = tensors.iter().map(|(k, t)| (k.clone(), t)).collect();
    bundle::write(&path, &entries).unwrap();
    let expected = safetensors::serialize(entries.iter().map(|(k, t)| (k.as_str(), *t)), None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    let b = Bundle::open(&path).unwrap();
    for (k, t) in &tensors {
        assert_eq!(b.get(k).unwrap().to_owned(), *t, "{k} reads back");
    }
}

// ---- `parity diff --output`: one file, written whole or not at all ----

mod checkpoint_support;
use checkpoint_support::{write_sharded, Model};

/// Two sharded checkpoints of `count` tensors each; RIGHT's tensor `i` is
/// LEFT's plus `bump` where `i % 3 == 0`, so the diff has many differing
/// tensors with top differences to list (a multi-MB JSON output).
fn write_diff_pair(dir: &Path, count: usize, bump: f32) -> (PathBuf, PathBuf) {
    let (mut left, mut right) = (Model::new(), Model::new());
    let mut rng = SplitMix64::new(7);
    for i in 0..count {
        let v: Vec<f32> = (0..64 * 64).map(|_| rng.uniform() as f32 - 0.5).collect();
        let w: Vec<f32> = v.iter().enumerate().map(|(k, x)| if i % 3 == 0 { x + bump * (k % 7) as f32 } else { *x }).collect();
        let name = format!("model.layers.{i}.mlp.up_proj.weight");
        left.insert(name.clone(), Tensor::from_f32(vec![64, 64], &v));
        right.insert(name, Tensor::from_f32(vec![64, 64], &w));
    }
    let (l, r) = (dir.join(format!("left-{bump}")), dir.join(format!("right-{bump}")));
    write_sharded(&l, &left, 3);
    write_sharded(&r, &right, 2);
    (l, r)
}

fn diff_cmd(left: &Path, right: &Path, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["diff", left.to_str().unwrap(), right.to_str().unwrap(), "--format", "json", "--top-diffs", "50"])
        .args(["--output", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// A finished diff exits 1 (tensors differ) and writes its file.
fn diff_to_completion(left: &Path, right: &Path, out: &Path) -> Vec<u8> {
    let o = diff_cmd(left, right, out).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "diff: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

/// After a killed diff, the output is one of the two complete results (the
/// earlier run's, or the killed run's own), never a part of one, and any
/// temporary left is named as parity's.
fn assert_whole(out: &Path, expected: &[&[u8]], when: &str) {
    let finals = [out.file_name().unwrap().to_str().unwrap()];
    match std::fs::read(out) {
        Ok(bytes) => assert!(
            expected.iter().any(|e| *e == bytes.as_slice()),
            "{when}: {} holds {} bytes that are neither complete result",
            out.display(),
            bytes.len()
        ),
        Err(e) => panic!("{when}: the earlier complete output is gone: {e}"),
    }
    let temps = temporaries(out.parent().unwrap());
    assert!(temps.iter().all(|t| is_parity_temporary(t, &finals)), "{when}: a temporary not named as parity's: {temps:?}");
}

#[test]
fn diff_output_killed_at_random_moments_is_the_old_file_or_the_new_one_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (la, ra) = write_diff_pair(dir.path(), 600, 1e-3);
    let (lb, rb) = write_diff_pair(dir.path(), 600, 2e-3);
    let out = dir.path().join("diff.json");
    let t0 = Instant::now();
    let a = diff_to_completion(&la, &ra, &out);
    let mut took = t0.elapsed().max(Duration::from_millis(20));
    let b = diff_to_completion(&lb, &rb, &out);
    assert_ne!(a, b, "the two results must differ for the test to tell them apart");
    assert!(a.len() > 1 << 20, "a multi-MB output, so writing is a share of the run ({} bytes)", a.len());

    let mut rng = SplitMix64::new(1414);
    let (wanted, mut killed, mut attempt) = (24, 0, 0);
    let mut scale = 1.0;
    while killed < wanted {
        assert!(attempt < 4 * wanted, "only {killed} of {attempt} kills landed inside a run");
        // Alternate which result the killed run would write over the other.
        let (l, r, before) = if attempt % 2 == 0 { (&la, &ra, &b) } else { (&lb, &rb, &a) };
        assert_eq!(&std::fs::read(&out).unwrap(), before);
        let delay = took.mul_f64(scale * (0.3 + 0.8 * rng.uniform()));
        let mut child = diff_cmd(l, r, &out).spawn().unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        } else {
            scale *= 0.75;
        }
        let when = format!("attempt {attempt} (killed after {delay:?}, {status:?})");
        assert_whole(&out, &[&a, &b], &when);
        let t0 = Instant::now();
        let again = diff_to_completion(l, r, &out);
        took = t0.elapsed();
        assert_eq!(&again, if attempt % 2 == 0 { &a } else { &b }, "{when}: the rerun's output differs from an uninterrupted run's");
        assert_eq!(temporaries(dir.path()), Vec::<String>::new(), "{when}: a temporary survived the rerun");
        attempt += 1;
    }
    eprintln!("{killed} diff runs killed in {attempt} attempts; a run takes {took:?}");
}

#[test]
fn diff_output_killed_at_each_write_fsync_and_rename_leaves_the_old_file_whole() {
    if !strace_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (la, ra) = write_diff_pair(dir.path(), 60, 1e-3);
    let (lb, rb) = write_diff_pair(dir.path(), 60, 2e-3);
    let out = dir.path().join("diff.json");
    let a = diff_to_completion(&la, &ra, &out);
    let b = diff_to_completion(&lb, &rb, &out);
    let mut points = 0;
    // The output's own writes come last; earlier calls of these (none for
    // rename) are reads' bookkeeping and kill the run before it writes.
    for (syscalls, calls) in [("/^rename", 2), ("/^fsync$", 3), ("/^write$", 6)] {
        for when in 1..=calls {
            diff_to_completion(&la, &ra, &out);
            let inject = format!("inject={syscalls}:signal=KILL:when={when}");
            let status = Command::new("strace")
                .args(["-f", "-qq", "-o", "/dev/null", "-e", &format!("trace={syscalls}"), "-e", &inject, BIN])
                .args(["diff", lb.to_str().unwrap(), rb.to_str().unwrap(), "--format", "json", "--top-diffs", "50"])
                .args(["--output", out.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            let when = format!("killed at {syscalls} #{when} ({status:?})");
            assert_whole(&out, &[&a, &b], &when);
            assert_eq!(diff_to_completion(&lb, &rb, &out), b, "{when}: rerun");
            assert_eq!(temporaries(dir.path()), Vec::<String>::new(), "{when}: a temporary survived the rerun");
            points += 1;
        }
    }
    eprintln!("{points} kill points");
}
