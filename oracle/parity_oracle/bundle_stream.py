"""A stage bundle written while its tensors are still being produced.

`ReportWriter` holds every array until `write()`: right for a pipeline's few
tensors, wrong for a model run whose activations add up to more than the
machine's memory. `StreamedBundle` instead appends each array's bytes to a
spool file beside the final bundle the moment it is given one, hashing them
on the way, and keeps only metadata (key, dtype, shape, offsets, sha256).
`commit()` then assembles the safetensors file — header, then the spools
copied file to file by the kernel — under a temporary name, syncs it and
renames it into place.

Layout (deterministic: the same arrays appended in the same order give the
same bytes): one spool per element size (8, 4, 2, 1 bytes), laid out widest
first, each in the order appended. The header is padded with spaces to a
multiple of 8, so the data starts 8-aligned and every tensor is aligned to
its element size — as the `safetensors` library's own layout guarantees
(it sorts by alignment, then name), so loaders that view storage in place
need no copy. The header lists the tensors in data order, with no metadata.

Memory: the bundle keeps no array it is given (each is written and hashed
in place, no copy), and holds a buffer of its own only where the kernel can
copy neither with copy_file_range nor sendfile: one `COPY_CHUNK` at a time
while assembling. `held_bytes`/`peak_held_bytes` count that buffer and the
arrays a producer registers with `track()` as it makes them, for tests.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .tensorio import safetensors_dtype

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

# Widest element first: with the header padded to 8 bytes and every spool a
# multiple of its element size, each tensor starts aligned to its own size.
_ALIGNMENTS = (8, 4, 2, 1)


class StreamedBundle:
    """A safetensors stage bundle at `path`, filled by `append`, made by `commit`.

    Until `commit()` succeeds nothing exists under `path` (a file already
    there is untouched); `discard()` removes every temporary. The spools and
    the assembled temporary are dot-files beside `path`, on its filesystem,
    so the final rename is atomic and the kernel can copy between them.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._token = secrets.token_hex(6)
        self._spools: dict[int, tuple[Path, int]] = {}  # alignment -> (path, fd)
        self._sizes: dict[int, int] = {a: 0 for a in _ALIGNMENTS}
        self._entries: list[tuple[str, str, list[int], int, int, int]] = []  # key, dtype, shape, align, start, end
        self._keys: set[str] = set()
        self._closed = False
        # Bytes of the arrays registered with track() that are still alive
        # (weakly referenced, so an array kept by anyone still counts), and
        # the most ever alive at once. Tests hold the memory bound to this.
        self.held_bytes = 0
        self.peak_held_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, key: str, arr: np.ndarray) -> tuple[str, list[int], str]:
        """Write `arr` (C-contiguous, a dtype of `tensorio`) under `key` now;
        return its (safetensors dtype, shape, sha256 of exactly the bytes written)."""
        if self._closed:
            raise ValueError(f"{self.path}: bundle already committed or discarded")
        if key in self._keys:
            raise ValueError(f"{self.path}: tensor {key!r} appended twice")
        if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
            raise NotImplementedError("writing bundles on a big-endian host is not supported")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{self.path}: {key}: array must be C-contiguous")
        dtype = safetensors_dtype(arr)
        align = arr.dtype.itemsize
        # A byte view of the array itself: hashed and written without a copy.
        flat = arr.reshape(-1).view(np.uint8)
        sha = hashlib.sha256(flat).hexdigest()
        # Unbuffered: the bytes are in the kernel's hands (on disk, or on
        # their way) when append returns, not in a buffer of ours.
        _write_all(self._spool(align), flat)
        start = self._sizes[align]
        self._sizes[align] = start + flat.nbytes
        self._keys.add(key)
        self._entries.append((key, dtype, list(arr.shape), align, start, start + flat.nbytes))
        return dtype, list(arr.shape), sha

    def track(self, obj: Any) -> None:
        """Count `obj`'s bytes (`.nbytes`) as held until the object is garbage
        collected: kept alive by anyone, it stays counted. The producer of the
        arrays registers each one as it makes it."""
        n = obj.nbytes
        self.held_bytes += n
        self.peak_held_bytes = max(self.peak_held_bytes, self.held_bytes)
        weakref.finalize(obj, self._release, n)

    def _release(self, n: int) -> None:
        self.held_bytes -= n

    def _spool(self, align: int) -> int:
        if align not in self._spools:
            p = self.path.with_name(f".{self.path.name}.{self._token}.{align}.spool")
            self._spools[align] = (p, os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        return self._spools[align][1]

    def header(self) -> bytes:
        """The safetensors header (JSON padded to a multiple of 8 with spaces)."""
        base, header = {}, {}
        at = 0
        for align in _ALIGNMENTS:
            base[align] = at
            at += self._sizes[align]
        for align in _ALIGNMENTS:
            for key, dtype, shape, a, start, end in self._entries:
                if a == align:
                    header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [base[a] + start, base[a] + end]}
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        return text + b" " * (-len(text) % 8)

    def commit(self) -> None:
        """Assemble the bundle under a temporary name, sync it, rename it to `path`."""
        if self._closed:
            raise ValueError(f"{self.path}: bundle already committed or discarded")
        if not self._entries:
            raise ValueError(f"{self.path}: no tensors appended, nothing to write")
        tmp = self.path.with_name(f".{self.path.name}.{self._token}.tmp")
        try:
            header = self.header()
            if len(header) > MAX_HEADER:
                raise ValueError(
                    f"{self.path}: {len(self._entries)} tensors need a {len(header)}-byte header, more than "
                    f"safetensors readers accept ({MAX_HEADER}): capture fewer modules (modules=, layers=)"
                )
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
            _unlink(tmp)
            self.discard()
            raise
        self.discard()

    def discard(self) -> None:
        """Close and remove the spools; the bundle is done with. Idempotent."""
        self._closed = True
        spools, self._spools = self._spools, {}
        for p, fd in spools.values():
            try:
                os.close(fd)
            finally:
                _unlink(p)

    def _copy(self, src: int, dst: int, count: int) -> None:
        """Copy `count` bytes from the start of `src` to `dst`'s position:
        copy_file_range, else sendfile, else read/write in COPY_CHUNK pieces —
        each continuing where the one before stopped."""
        done = 0
        for kernel_copy in (_copy_file_range, _sendfile):
            if done == count:
                return
            try:
                done = kernel_copy(src, dst, done, count)
            except _KernelCannotCopy as e:
                done = e.done
        while done < count:
            chunk = os.pread(src, min(COPY_CHUNK, count - done), done)
            if not chunk:
                raise OSError(errno.EIO, f"{self.path}: spool ended {count - done} bytes early")
            # The one buffer this path holds, counted while it is alive.
            self.held_bytes += len(chunk)
            self.peak_held_bytes = max(self.peak_held_bytes, self.held_bytes)
            try:
                _write_all(dst, chunk)
            finally:
                self.held_bytes -= len(chunk)
            done += len(chunk)
            del chunk


class _KernelCannotCopy(Exception):
    def __init__(self, done: int) -> None:
        self.done = done


def _copy_file_range(src: int, dst: int, done: int, count: int) -> int:
    if not hasattr(os, "copy_file_range"):
        raise _KernelCannotCopy(done)
    while done < count:
        try:
            n = os.copy_file_range(src, dst, min(_KERNEL_COPY_CALL, count - done), done)
        except OSError as e:
            if e.errno in _CANNOT_COPY_HERE:
                raise _KernelCannotCopy(done) from None
            raise
        if n == 0:
            raise OSError(errno.EIO, f"spool ended {count - done} bytes early")
        done += n
    return done


def _sendfile(src: int, dst: int, done: int, count: int) -> int:
    if not hasattr(os, "sendfile"):
        raise _KernelCannotCopy(done)
    while done < count:
        try:
            n = os.sendfile(dst, src, done, min(_KERNEL_COPY_CALL, count - done))
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
