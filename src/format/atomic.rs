//! Writing files so that nothing already on disk is ever half-overwritten.
//!
//! Content goes to a temporary file in the destination's own directory (so the
//! rename cannot cross filesystems), is synced to disk, and is then renamed
//! over the destination, and the directory is synced so that the rename
//! itself survives a power cut — an atomic, durable replacement on POSIX
//! filesystems.
//!
//! Temporaries are named `.<file>.parity-tmp-<pid>-<random>`: hidden,
//! recognisably parity's, and carrying the writer's process id. A run killed
//! mid-write leaves its temporary behind; the next write into the same
//! directory removes every temporary of this pattern whose process is gone
//! (and nothing else). They are created with mode 0666 less the umask, as
//! `cp` creates its output, or with the mode of the file they replace.
//!
//! What a destination may be ([`resolve`]): nothing yet, or a regular file,
//! is replaced as above. A symbolic link is followed — the file it names is
//! replaced and the link stays a link. A character device, FIFO or socket
//! (`/dev/null`, `/dev/stdout`'s target, a named pipe) is written through,
//! streamed, with no temporary and no rename: renaming over `/dev/null` as
//! root turns it into a regular file for the whole machine. Anything else (a
//! directory, a block device) is refused.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What marks a temporary as parity's: `.<file>` + MARK + `<pid>-<random>`.
const MARK: &str = ".parity-tmp-";

/// Where a write to a path lands, once symbolic links are followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Absent or a regular file: replaced atomically (temporary, rename).
    Replace(PathBuf),
    /// A character device, FIFO or socket: written through, in place.
    Through(PathBuf),
}

impl Dest {
    pub fn path(&self) -> &Path {
        match self {
            Dest::Replace(p) | Dest::Through(p) => p,
        }
    }
}

/// Follow `path`'s symbolic links to what a write would land on, and say
/// how it is written (see the module's notes). A dangling link resolves to
/// the absent file it names, which the write creates.
pub fn resolve(path: &Path) -> Result<Dest> {
    use std::os::unix::fs::FileTypeExt;
    // What the path names once every link is followed — by the kernel, so
    // that /proc's links (`/dev/stdout` → `/proc/self/fd/1` → `pipe:[…]`),
    // which name no path, are followed too.
    match std::fs::metadata(path) {
        Ok(meta) => {
            let t = meta.file_type();
            if t.is_char_device() || t.is_fifo() || t.is_socket() {
                // Opened by the path given: open follows the links as stat did.
                return Ok(Dest::Through(path.to_path_buf()));
            }
            if t.is_file() {
                let linked = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                // The file a link names is the one replaced (the link stays).
                let at = if linked { std::fs::canonicalize(path).map_err(|e| Error::io(path, e))? } else { path.to_path_buf() };
                return Ok(Dest::Replace(at));
            }
            let what = if t.is_dir() { "a directory" } else if t.is_block_device() { "a block device" } else { "not a regular file" };
            Err(Error::OutputNotWritable {
                path: path.to_path_buf(),
                message: format!("is {what}: parity writes a regular file, or through a character device, FIFO or socket"),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => dangling(path),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Where a write to an absent `path` lands: the path itself, or, when it is
/// a dangling symbolic link (chain), the absent file the last link names,
/// which the write creates.
fn dangling(path: &Path) -> Result<Dest> {
    let mut at = path.to_path_buf();
    // The kernel's own limit on links followed in one lookup (MAXSYMLINKS).
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&at).map_err(|e| Error::io(&at, e))?;
                at = if target.is_absolute() { target } else { dir_of(&at).join(target) };
            }
            _ => return Ok(Dest::Replace(at)),
        }
    }
    Err(Error::OutputNotWritable { path: path.to_path_buf(), message: "too many levels of symbolic links".into() })
}

/// Write a file atomically; `fill` streams the content into the writer.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    stage(path, fill)?.commit()
}

pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// A complete, synced temporary waiting to be renamed over its destination.
/// Dropped without being renamed, it is removed.
#[must_use = "a staged file is removed unless it is committed"]
pub struct Staged {
    /// The temporary; `None` when the content was written through to a
    /// device or FIFO, where there is nothing to rename.
    tmp: Option<PathBuf>,
    dest: PathBuf,
    done: bool,
}

/// Write `path`'s new content to a synced temporary beside it; nothing
/// under `path` changes until [`Staged::commit`] (or [`Staged::rename`]).
pub fn stage(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<Staged> {
    stage_with(path, true, fill)
}

/// [`stage`], with `sync` false leaving the temporary's data to the page
/// cache: for a caller that syncs a batch of files itself before it relies
/// on them (a SIGKILL loses nothing either way; a power cut may lose an
/// unsynced file).
pub fn stage_with(path: &Path, sync: bool, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<Staged> {
    let dest = match resolve(path)? {
        Dest::Replace(dest) => dest,
        Dest::Through(dest) => {
            // Streamed as it is made: a device or pipe cannot be replaced, so
            // there is nothing to stage (and nothing to sync: fsync of a pipe
            // or a terminal is refused or meaningless).
            let file = std::fs::OpenOptions::new().write(true).open(&dest).map_err(|e| Error::io(path, e))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
            fill(&mut w).map_err(|e| Error::io(path, e))?;
            w.flush().map_err(|e| Error::io(path, e))?;
            return Ok(Staged { tmp: None, dest, done: true });
        }
    };
    let dir = dir_of(&dest);
    clean_stale_temporaries(dir);
    let (tmp, file) = create_temporary(&dest, dir)?;
    // From here on, an early return drops `staged`, which removes the temporary.
    let staged = Staged { tmp: Some(tmp), dest: dest.clone(), done: false };
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        fill(&mut w).map_err(|e| Error::io(path, e))?;
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    if sync {
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(staged)
}

/// A new, empty temporary for `path`, open for writing, for a caller that
/// writes it over time (and syncs it) itself; removed if dropped unrenamed.
/// Such a caller seeks (a bundle's header is written last), so `path` must
/// be a regular file or absent (symbolic links followed).
pub fn create(path: &Path) -> Result<(Staged, File)> {
    let dest = match resolve(path)? {
        Dest::Replace(dest) => dest,
        Dest::Through(_) => {
            return Err(Error::OutputNotWritable {
                path: path.to_path_buf(),
                message: "is a device, FIFO or socket: this file is written out of order and needs a regular file".into(),
            })
        }
    };
    let dir = dir_of(&dest);
    clean_stale_temporaries(dir);
    let (tmp, file) = create_temporary(&dest, dir)?;
    Ok((Staged { tmp: Some(tmp), dest, done: false }, file))
}

impl Staged {
    /// The temporary's own path, while it is one (`None` once written
    /// through to a device or FIFO).
    pub fn temporary(&self) -> Option<&Path> {
        self.tmp.as_deref()
    }

    /// The final path this temporary will be renamed to (symbolic links
    /// already followed).
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Rename the temporary over its destination and sync the directory.
    pub fn commit(self) -> Result<()> {
        if self.tmp.is_none() {
            return Ok(());
        }
        let dir = dir_of(&self.dest).to_path_buf();
        self.rename()?;
        sync_dir(&dir)
    }

    /// Rename the temporary over its destination, without syncing the
    /// directory: for callers ordering several renames (they sync between).
    pub fn rename(mut self) -> Result<()> {
        if let Some(tmp) = &self.tmp {
            std::fs::rename(tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let (false, Some(tmp)) = (self.done, &self.tmp) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The directory a path's file is in ("." for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Sync a directory, so that renames and removals in it are on disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io(dir, e))?;
    match d.sync_all() {
        Ok(()) => Ok(()),
        // Some filesystems cannot sync a directory; the rename is still atomic.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported) => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Remove `path` (if it exists) and sync its directory. `path` itself goes,
/// even if it is a symbolic link: resolve it first to remove what it names.
pub fn remove_durably(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(dir_of(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Create a new, empty temporary for `path` in `dir`.
fn create_temporary(path: &Path, dir: &Path) -> Result<(PathBuf, File)> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Keep the name well under NAME_MAX (255) with the suffix added.
    let cut = name.char_indices().take_while(|(i, c)| i + c.len_utf8() <= 160).last().map_or(0, |(i, c)| i + c.len_utf8());
    // The mode the result should have: the file it replaces keeps its mode;
    // a new one gets 0666 less the umask (applied by open itself).
    let keep_mode = std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.permissions().mode() & 0o7777);
    let pid = std::process::id();
    let mut last_err = None;
    for attempt in 0..100u64 {
        let tmp = dir.join(format!(".{}{MARK}{pid}-{:016x}", &name[..cut], random(attempt)));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o666).open(&tmp) {
            Ok(file) => {
                if let Some(mode) = keep_mode {
                    if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode)) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(Error::io(path, e));
                    }
                }
                return Ok((tmp, file));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Err(Error::io(path, last_err.expect("a hundred attempts collided")))
}

/// 64 bits that differ between calls and processes (not cryptographic:
/// `create_new` settles any collision).
fn random(attempt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u64(attempt);
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// The process id in a temporary's name, if the name is parity's pattern:
/// `.<anything>.parity-tmp-<pid>-<16 hex digits>`.
pub fn temporary_pid(file_name: &str) -> Option<u32> {
    let (head, tail) = file_name.rsplit_once(MARK)?;
    if !head.starts_with('.') {
        return None;
    }
    let (pid, random) = tail.split_once('-')?;
    let hex = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if hex && digits {
        pid.parse().ok()
    } else {
        None
    }
}

/// Whether process `pid` is running, when that can be known: `None` where
/// there is no `/proc` to ask.
fn process_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new("/proc").join(pid.to_string()).exists())
}

/// Remove parity temporaries in `dir` left by processes that are gone (a
/// run killed mid-write). Once per directory per process; best effort — a
/// temporary that cannot be removed is left for the next run.
fn clean_stale_temporaries(dir: &Path) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    {
        let mut cleaned = CLEANED.lock().unwrap_or_else(|p| p.into_inner());
        if !cleaned.get_or_insert_with(HashSet::new).insert(key) {
            return;
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_pid) else { continue };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != me && process_alive(pid) == Some(false) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Refuse to write `written` (what the output is, for the message) to
/// `output` when it is, or links to, a file the run reads: one of `inputs`
/// (each with what it is), or any file below an input that is a directory
/// (a sharded checkpoint's shards). Files are compared by identity (device
/// and inode), so a symbolic or hard link to an input is caught as well as
/// the input's own path. An output that does not exist yet, or that is a
/// device or FIFO, cannot be an input.
pub fn refuse_input(output: &Path, inputs: &[(&Path, &str)], written: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Dest::Replace(target) = resolve(output)? else { return Ok(()) };
    let Ok(out) = std::fs::metadata(&target) else { return Ok(()) };
    let is_out = |m: &std::fs::Metadata| m.dev() == out.dev() && m.ino() == out.ino();
    for (input, what) in inputs {
        let Ok(meta) = std::fs::metadata(input) else { continue };
        let hit = if meta.is_dir() { file_below(input, &is_out, 4) } else { is_out(&meta).then(|| input.to_path_buf()) };
        if let Some(hit) = hit {
            return Err(Error::OutputIsInput { output: output.to_path_buf(), input: hit, what: what.to_string(), written: written.to_string() });
        }
    }
    Ok(())
}

/// The first file below `dir` (at most `depth` levels down, links followed)
/// for which `hit` holds.
fn file_below(dir: &Path, hit: &dyn Fn(&std::fs::Metadata) -> bool, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        if meta.is_dir() {
            if depth > 0 {
                if let Some(found) = file_below(&p, hit, depth - 1) {
                    return Some(found);
                }
            }
        } else if hit(&meta) {
            return Some(p);
        }
    }
    None
}
