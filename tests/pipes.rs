//! A broken pipe ends output, never the verdict (issue 14, defect 1): `parity
//! check … | head -1` under `set -o pipefail` must still exit 1 for a FAIL.
//! Each run's stdout is closed by the reader after one byte, with far more
//! than a pipe buffer (64 KiB) still to write, so the write meets EPIPE.

mod check_support;
use check_support::{edit_f32, pair_with};
use std::io::Read;
use std::process::{Command, Stdio};

fn exit_with_stdout_closed_early(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut one = [0u8; 1];
    child.stdout.as_mut().unwrap().read_exact(&mut one).unwrap();
    drop(child.stdout.take()); // the reader goes away, as `head -c 1` does
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_failing_check_exits_1_when_its_reader_stops_reading() {
    // Every element of a 64×96 stage off: thousands of top differences to print.
    let p = pair_with([64, 96, 8], None, |s| edit_f32(s, "adapted_source_f32", |i, x| x + 1e-2 * (1 + i % 5) as f32));
    let (l, r) = (p.left.to_str().unwrap(), p.right.to_str().unwrap());
    for format in ["text", "json", "markdown", "junit"] {
        let args = ["check", l, r, "--strict-stage-tolerances", "--top-diffs", "3000", "--format", format];
        let full = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().unwrap();
        assert_eq!(full.status.code(), Some(1), "{format}: the pair fails");
        assert!(full.stdout.len() > 128 << 10, "{format}: output must exceed the pipe buffer ({} bytes)", full.stdout.len());
        let (code, err) = exit_with_stdout_closed_early(&args);
        assert_eq!(code, Some(1), "{format}: a FAIL whose stdout closed early must still exit 1: {err}");
        assert!(!err.contains("panicked"), "{format}: {err}");
    }
    // And a PASS stays 0.
    let ok = pair_with([64, 96, 8], None, |_| {});
    let args = ["check", ok.left.to_str().unwrap(), ok.right.to_str().unwrap(), "--strict-stage-tolerances", "--format", "json"];
    assert_eq!(exit_with_stdout_closed_early(&args).0, Some(0));
}
