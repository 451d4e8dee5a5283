//! Opening the files parity reads: regular files only, and small ones read
//! with a bound.
//!
//! A FIFO given as a report or bundle would block `open` (or `read`) forever,
//! and `/dev/zero` as a report would be read until memory runs out; a
//! directory opens fine on Linux and only fails later, as "No such device",
//! when it is mapped. Each is refused up front, by name.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The most a JSON input (report, tolerance profile) may hold: far above any
/// real one (a report lists hashes, not tensor data).
pub const MAX_JSON: u64 = 256 << 20;

/// Open `path` for reading if it is a regular file (symlinks followed), with
/// its length. Anything else is an error naming it and what it is instead.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    // Look before opening: opening a FIFO for reading blocks until a writer
    // appears, which may be never.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    refuse_irregular(path, &meta)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // And again on what was opened, in case the path changed in between.
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    refuse_irregular(path, &meta)?;
    advise_sequential(&file);
    Ok((file, meta.len()))
}

/// Tell the kernel the file will be read front to back (tensors are read
/// in order, chunk by chunk): Linux then doubles its readahead window,
/// which keeps a cold disk busy while the chunk before is compared. A hint
/// only: nothing changes if it is refused.
fn advise_sequential(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; the call reads no memory of ours.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

fn refuse_irregular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "is a directory, not a file"
    } else if t.is_fifo() {
        "is a FIFO (named pipe), not a regular file: parity reads only regular files"
    } else if t.is_socket() {
        "is a socket, not a regular file: parity reads only regular files"
    } else if t.is_char_device() || t.is_block_device() {
        "is a device, not a regular file: parity reads only regular files"
    } else {
        "is not a regular file: parity reads only regular files"
    };
    Err(Error::bundle(path, what))
}

/// Read a small regular file whole, refusing one larger than `limit` bytes
/// (checked on the length and again while reading, should the file grow).
pub fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    let too_big = |n: u64| Error::bundle(path, format!("{n} bytes: larger than the {limit}-byte limit for this kind of file"));
    if len > limit {
        return Err(too_big(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}
