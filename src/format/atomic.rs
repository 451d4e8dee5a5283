//! Writing files so that nothing already on disk is ever half-overwritten.
//!
//! Content goes to a temporary file in the destination's own directory (so the
//! rename cannot cross filesystems), is flushed to disk, and is then renamed
//! over the destination — an atomic replacement on POSIX filesystems.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Write a file atomically; `fill` streams the content into the writer.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".parity-tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, e))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut w).map_err(|e| Error::io(path, e))?;
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Atomic write for writers that insist on a path (e.g. safetensors'
/// `serialize_to_file`): they write the temporary path, we rename it.
pub fn write_via_path(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".parity-tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, e))?;
    fill(tmp.path())?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
