//! Running one row of a bad-input matrix (`tests/bad_inputs.rs`,
//! `tests/bad_inputs_render.rs`): the binary under a time limit, and a
//! snapshot of the fixture's directory to show nothing on disk changed.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every entry below `dir` (links not followed): kind, size, mtime, mode.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u64, i64, i64, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let kind = format!("{:?}", m.file_type());
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p, (kind, m.len(), m.mtime(), m.mtime_nsec(), m.permissions().mode()));
        }
    }
    out
}

/// How long a row may take: a FIFO opened for reading, or a device read to
/// its end, would take forever.
pub const HANG: Duration = Duration::from_secs(10);

/// Run `cmd` to completion, or kill it after [`HANG`] and say it hung.
pub fn run_with_timeout(cmd: &mut Command) -> Result<std::process::Output, String> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot run parity: {e}"))?;
    // Drain both pipes while waiting, so a chatty child cannot block on them.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hung: killed after {HANG:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(std::process::Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() })
}
