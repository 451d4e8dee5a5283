"""A stage bundle written while its tensors are still being produced.

`ReportWriter` holds every array until `write()`: right for a pipeline's few
tensors, wrong for a model run whose activations add up to more than the
machine's memory. `StreamedBundle` instead writes each array's bytes to a
file beside the final bundle the moment it is given one, and keeps only
metadata (key, dtype, shape, offsets, sha256). Nothing exists under the
final name until `commit()`, which syncs the file and renames it into place.

Two layouts, each deterministic (the same arrays appended in the same order
give the same bytes):

* Spooled (the default): one spool per element size (8, 4, 2, 1 bytes),
  laid out widest first, each in the order appended. `commit()` assembles
  the safetensors file — header, then the spools copied file to file by the
  kernel — under a temporary name. The header is padded with spaces to a
  multiple of 8, so the data starts 8-aligned and every tensor is aligned
  to its element size — as the `safetensors` library's own layout
  guarantees (it sorts by alignment, then name), so loaders that view
  storage in place need no copy.
* Direct (`header_room=N`, what `capture` uses): the final temporary is
  opened at once with N bytes (rounded up to a multiple of 8) reserved for
  the header, and each array is written after that room in the order
  appended; `commit()` writes the header into the room, padded with spaces
  to fill it exactly (JSON whitespace, which safetensors readers accept),
  syncs and renames — no copy, no spool to remove. Every tensor must still
  start aligned to its element size and safetensors allows no hole between
  tensors, so an append that would start misaligned (a 2-byte tensor of odd
  length before a 4-byte one), or a header that outgrows its room, turns
  the bundle into a spooled one: what was written is copied into the
  spools (file to file) and the bundle goes on spooled — the bytes are
  then exactly the spooled layout's. Slower, never wrong.

Either way the header lists the tensors in data order, with no metadata.

Hashing: each tensor's sha256 is of exactly the bytes written. By default
`append` hashes the array before writing it and returns the digest. With
`hash_in_background=True` the array is only written by `append` (which
returns None for the digest) and one worker thread reads the bytes back
from the file — the page cache, just written — and hashes them while the
producer goes on, at nice `WORKER_NICE` so that it takes only cycles the
producer leaves idle (on a machine whose cores the producer keeps busy, a
worker at equal priority slowed a PyTorch forward by more than the hashing
it took off it); `sha256s()` hashes what is still queued on the calling
thread, beside the worker, and waits for both. The worker reads only the file,
never the caller's array, so a producer may change or free its array as
soon as `append` returns. A worker error is raised by the next `append`
and by `sha256s()`/`commit()`, so it fails the run as a failed write does.

Memory: the bundle keeps no array it is given (each is written in place, no
copy). It holds buffers of its own only to read back: the background
hasher's one piece of a stage (at most `HASH_CHUNK` bytes, and never more
than the stage), and where the kernel can copy neither with copy_file_range
nor sendfile, one `COPY_CHUNK` at a time while assembling or re-spooling.
`held_bytes`/`peak_held_bytes` count those buffers and the arrays a producer
registers with `track()` as it makes them, for tests: with a producer that
holds one array at a time, the peak is at most twice the largest array.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import secrets
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .tensorio import output_file, safetensors_dtype

# The fallback's read/write size: the one buffer assembling may hold.
COPY_CHUNK = 1 << 20
# Bytes asked of one copy_file_range/sendfile call. The kernel copies them
# without a buffer of ours; the bound only keeps each call short.
_KERNEL_COPY_CALL = 1 << 26

# errno values by which copy_file_range / sendfile say "not between these
# two files" (another filesystem on old kernels, a filesystem without
# support, a seccomp sandbox that answers EPERM for a syscall it blocks)
# rather than an I/O failure: the next way of copying is tried, starting
# where the last one stopped.
_CANNOT_COPY_HERE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}

# safetensors readers (parity's and the library's) refuse larger headers.
MAX_HEADER = 100_000_000

# The background hasher reads a stage back from the file in pieces of at
# most this many bytes (small enough to stay in a core's L2 cache).
HASH_CHUNK = 1 << 18

# The hasher thread's niceness (Linux: per thread): it should take only
# cycles the producer leaves idle, not slow it.
WORKER_NICE = 19

# Widest element first: with the header padded to 8 bytes and every spool a
# multiple of its element size, each tensor starts aligned to its own size.
_ALIGNMENTS = (8, 4, 2, 1)


class StreamedBundle:
    """A safetensors stage bundle at `path`, filled by `append`, made by `commit`.

    Until `commit()` succeeds nothing exists under `path` (a file already
    there is untouched); `discard()` removes every temporary. The spools and
    the temporary are dot-files beside `path`, on its filesystem, so the
    final rename is atomic and the kernel can copy between them.

    `header_room`: bytes to reserve for the header and write the data in
    place (the direct layout, see the module doc); None: spooled.
    `hash_in_background`: hash in a worker thread, from the file.
    """

    def __init__(
        self, path: str | os.PathLike, *, header_room: int | None = None, hash_in_background: bool = False
    ) -> None:
        self.path = output_file(path)  # a link followed; a device or FIFO refused
        self._token = secrets.token_hex(6)
        self._tmp = self.path.with_name(f".{self.path.name}.{self._token}.tmp")
        self._spools: dict[int, tuple[Path, int]] = {}  # alignment -> (path, fd)
        self._sizes: dict[int, int] = {a: 0 for a in _ALIGNMENTS}
        # key, dtype, shape, align, start, end: offsets within the tensor's
        # spool, or within the direct file's data while direct.
        self._entries: list[tuple[str, str, list[int], int, int, int]] = []
        self._keys: set[str] = set()
        self._shas: dict[str, str] = {}
        self._closed = False
        # Bytes of the arrays registered with track() that are still alive
        # (weakly referenced, so an array kept by anyone still counts), and
        # of the bundle's own read-back buffers, and the most ever alive at
        # once. Tests hold the memory bound to this. Two threads count.
        self._count_lock = threading.RLock()
        self.held_bytes = 0
        self.peak_held_bytes = 0
        self._hasher = _Hasher(self) if hash_in_background else None
        self._direct: int | None = None  # the temporary's fd while direct
        self.header_room = 0
        self._at = 0  # data bytes written to the direct file
        if header_room is not None:
            room = min(max(8, -(-int(header_room) // 8) * 8), MAX_HEADER // 8 * 8)
            fd = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                os.lseek(fd, 8 + room, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                _unlink(self._tmp)
                raise
            self._direct, self.header_room = fd, room

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def direct(self) -> bool:
        """Whether the data is still being written in place (no fallback yet)."""
        return self._direct is not None

    def append(self, key: str, arr: np.ndarray) -> tuple[str, list[int], str | None]:
        """Write `arr` (C-contiguous, a dtype of `tensorio`) under `key` now;
        return its (safetensors dtype, shape, sha256 of exactly the bytes
        written) — the sha256 None when hashing in the background (see
        `sha256s`)."""
        if self._closed:
            raise ValueError(f"{self.path}: bundle already committed or discarded")
        if key in self._keys:
            raise ValueError(f"{self.path}: tensor {key!r} appended twice")
        if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
            raise NotImplementedError("writing bundles on a big-endian host is not supported")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{self.path}: {key}: array must be C-contiguous")
        if self._hasher is not None:
            self._hasher.raise_failure()
        dtype = safetensors_dtype(arr)
        align = arr.dtype.itemsize
        # A byte view of the array itself: hashed and written without a copy.
        flat = arr.reshape(-1).view(np.uint8)
        n = flat.nbytes
        sha = None if self._hasher is not None else hashlib.sha256(flat).hexdigest()
        if self._direct is not None and self._at % align:
            self._respool()  # it would start misaligned: no holes allowed
        # Unbuffered: the bytes are in the kernel's hands (on disk, or on
        # their way) when append returns, not in a buffer of ours.
        if self._direct is not None:
            fd, start, at_in_file = self._direct, self._at, 8 + self.header_room + self._at
            _write_all(fd, flat)
            self._at = start + n
        else:
            fd, start = self._spool(align), self._sizes[align]
            at_in_file = start
            _write_all(fd, flat)
            self._sizes[align] = start + n
        self._keys.add(key)
        self._entries.append((key, dtype, list(arr.shape), align, start, start + n))
        if sha is not None:
            self._shas[key] = sha
        else:
            self._hasher.submit(key, fd, at_in_file, n)
        return dtype, list(arr.shape), sha

    def sha256s(self) -> dict[str, str]:
        """Every appended tensor's sha256 by key, once all are hashed (waits
        for the background hasher; raises its error if it failed)."""
        if self._hasher is not None:
            self._hasher.drain()
            self._hasher.raise_failure()
            self._shas.update(self._hasher.shas)
        return dict(self._shas)

    def track(self, obj: Any) -> None:
        """Count `obj`'s bytes (`.nbytes`) as held until the object is garbage
        collected: kept alive by anyone, it stays counted. The producer of the
        arrays registers each one as it makes it."""
        n = obj.nbytes
        self._hold(n)
        weakref.finalize(obj, self._release, n)

    def _hold(self, n: int) -> None:
        with self._count_lock:
            self.held_bytes += n
            self.peak_held_bytes = max(self.peak_held_bytes, self.held_bytes)

    def _release(self, n: int) -> None:
        with self._count_lock:
            self.held_bytes -= n

    def _spool(self, align: int) -> int:
        if align not in self._spools:
            p = self.path.with_name(f".{self.path.name}.{self._token}.{align}.spool")
            self._spools[align] = (p, os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        return self._spools[align][1]

    def _respool(self) -> None:
        """Leave the direct layout: copy what the direct file holds into the
        spools, as if it had been spooled from the start, and remove it."""
        if self._hasher is not None:
            self._hasher.drain()  # its tasks read the direct file
        fd, base = self._direct, 8 + self.header_room
        entries, self._entries = self._entries, []
        for key, dtype, shape, align, start, end in entries:
            dst = self._spool(align)
            at = self._sizes[align]
            self._copy(fd, dst, end - start, base + start)
            self._sizes[align] = at + end - start
            self._entries.append((key, dtype, shape, align, at, at + end - start))
        self._direct = None
        os.close(fd)
        _unlink(self._tmp)

    def header(self) -> bytes:
        """The safetensors header: the JSON padded with spaces to a multiple
        of 8 (spooled), or to exactly `header_room` (direct; longer than the
        room if it outgrew it, which commit turns into a spooled bundle)."""
        header = {}
        if self._direct is not None:
            for key, dtype, shape, _, start, end in self._entries:
                header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [start, end]}
        else:
            base = {}
            at = 0
            for align in _ALIGNMENTS:
                base[align] = at
                at += self._sizes[align]
            for align in _ALIGNMENTS:
                for key, dtype, shape, a, start, end in self._entries:
                    if a == align:
                        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [base[a] + start, base[a] + end]}
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        if self._direct is not None and len(text) <= self.header_room:
            return text + b" " * (self.header_room - len(text))
        return text + b" " * (-len(text) % 8)

    def commit(self) -> None:
        """Sync the bundle under its temporary name and rename it to `path`
        (spooled: assemble it there first)."""
        if self._closed:
            raise ValueError(f"{self.path}: bundle already committed or discarded")
        if not self._entries:
            raise ValueError(f"{self.path}: no tensors appended, nothing to write")
        tmp = self._tmp
        try:
            if self._hasher is not None:
                self._hasher.stop()
                self._hasher.raise_failure()
            if self._direct is not None and len(self.header()) > self.header_room:
                self._respool()  # outgrown: never a wrong file
            header = self.header()
            if len(header) > MAX_HEADER:
                raise ValueError(
                    f"{self.path}: {len(self._entries)} tensors need a {len(header)}-byte header, more than "
                    f"safetensors readers accept ({MAX_HEADER}): capture fewer modules (modules=, layers=)"
                )
            if self._direct is not None:
                fd, self._direct = self._direct, None
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    _write_all(fd, len(header).to_bytes(8, "little") + header)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    _write_all(fd, len(header).to_bytes(8, "little") + header)
                    for align in _ALIGNMENTS:
                        if align in self._spools:
                            self._copy(self._spools[align][1], fd, self._sizes[align])
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            self.discard()
            raise
        self.discard()

    def discard(self) -> None:
        """Stop the hasher, close and remove the temporaries; the bundle is
        done with. Idempotent."""
        self._closed = True
        try:
            if self._hasher is not None:
                self._hasher.stop(cancel=True)  # before its files close
        finally:
            fd, self._direct = self._direct, None
            if fd is not None:
                os.close(fd)
            _unlink(self._tmp)
            spools, self._spools = self._spools, {}
            for p, fd in spools.values():
                try:
                    os.close(fd)
                finally:
                    _unlink(p)

    def _copy(self, src: int, dst: int, count: int, offset: int = 0) -> None:
        """Copy `count` bytes from `offset` in `src` to `dst`'s position:
        copy_file_range, else sendfile, else read/write in COPY_CHUNK pieces —
        each continuing where the one before stopped."""
        done = 0
        for kernel_copy in (_copy_file_range, _sendfile):
            if done == count:
                return
            try:
                done = kernel_copy(src, dst, done, count, offset)
            except _KernelCannotCopy as e:
                done = e.done
        while done < count:
            chunk = os.pread(src, min(COPY_CHUNK, count - done), offset + done)
            if not chunk:
                raise OSError(errno.EIO, f"{self.path}: spool ended {count - done} bytes early")
            # The one buffer this path holds, counted while it is alive.
            self._hold(len(chunk))
            try:
                _write_all(dst, chunk)
            finally:
                self._release(len(chunk))
            done += len(chunk)
            del chunk


class _Hasher:
    """One worker thread hashing appended tensors from the file they were
    written to: tasks (key, fd, offset, length) in append order."""

    def __init__(self, bundle: StreamedBundle) -> None:
        self._bundle = bundle
        self._tasks: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._cancelled = False
        self.shas: dict[str, str] = {}
        self.failure: BaseException | None = None

    def submit(self, key: str, fd: int, offset: int, length: int) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"parity-hash {self._bundle.path.name}", daemon=True)
            self._thread.start()
        self._tasks.put((key, fd, offset, length))

    def drain(self) -> None:
        """Return when every task submitted so far is done (or skipped): the
        calling thread hashes what is still queued alongside the worker."""
        if self._thread is None:
            return
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            self._do(task)
        self._tasks.join()

    def stop(self, cancel: bool = False) -> None:
        """Finish (or, cancelled, skip) what is queued and end the thread."""
        self._cancelled = self._cancelled or cancel
        if self._thread is not None:
            self._tasks.put(None)
            self._thread.join()
            self._thread = None

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        if WORKER_NICE and hasattr(os, "setpriority"):
            try:  # Linux: this thread only
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
            except OSError:
                pass
        while True:
            task = self._tasks.get()
            if task is None:
                self._tasks.task_done()
                return
            self._do(task)

    def _do(self, task) -> None:
        try:
            if self.failure is None and not self._cancelled:
                key, fd, offset, length = task
                self.shas[key] = self._hash(fd, offset, length)
        except BaseException as e:  # noqa: BLE001 - handed to the producer's thread
            self.failure = e
        finally:
            self._tasks.task_done()

    def _hash(self, fd: int, offset: int, length: int) -> str:
        h = hashlib.sha256()
        if length == 0:
            return h.hexdigest()
        size = min(HASH_CHUNK, length)
        buf = bytearray(size)
        self._bundle._hold(size)  # the one buffer this thread holds
        try:
            view = memoryview(buf)
            done = 0
            while done < length:
                n = os.preadv(fd, [view[: min(size, length - done)]], offset + done)
                if n <= 0:
                    raise OSError(errno.EIO, f"{self._bundle.path}: stage ended {length - done} bytes early on reading it back")
                h.update(view[:n])
                done += n
            del view
        finally:
            self._bundle._release(size)
        return h.hexdigest()


class _KernelCannotCopy(Exception):
    def __init__(self, done: int) -> None:
        self.done = done


def _copy_file_range(src: int, dst: int, done: int, count: int, offset: int) -> int:
    if not hasattr(os, "copy_file_range"):
        raise _KernelCannotCopy(done)
    while done < count:
        try:
            n = os.copy_file_range(src, dst, min(_KERNEL_COPY_CALL, count - done), offset + done)
        except OSError as e:
            if e.errno in _CANNOT_COPY_HERE:
                raise _KernelCannotCopy(done) from None
            raise
        if n == 0:
            raise OSError(errno.EIO, f"spool ended {count - done} bytes early")
        done += n
    return done


def _sendfile(src: int, dst: int, done: int, count: int, offset: int) -> int:
    if not hasattr(os, "sendfile"):
        raise _KernelCannotCopy(done)
    while done < count:
        try:
            n = os.sendfile(dst, src, offset + done, min(_KERNEL_COPY_CALL, count - done))
        except OSError as e:
            if e.errno in _CANNOT_COPY_HERE:
                raise _KernelCannotCopy(done) from None
            raise
        if n == 0:
            raise OSError(errno.EIO, f"spool ended {count - done} bytes early")
        done += n
    return done


def _write_all(fd: int, data: Any) -> None:
    """All of `data` (bytes, or a 1-D uint8 array: no copy) to `fd`; os.write
    may take less than it is given (Linux: at most ~2 GiB a call)."""
    view = memoryview(data)
    while len(view):
        view = view[os.write(fd, view):]


def _unlink(p: Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass
