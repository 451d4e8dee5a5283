"""Arrays in, safetensors bytes out (and back), the way parity's files need them.

Everything that touches raw tensor bytes lives here so that the report writer,
the SVF oracle and the tests agree on one definition of "the bytes as stored":
C-contiguous, little-endian, bf16/f16/fp8 as their raw bit patterns.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Mapping

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy

# numpy dtype -> safetensors dtype name. Only these are accepted: they are the
# dtypes the Rust side reads (src/dtype.rs) and the report schema allows.
_SAFETENSORS_DTYPE: dict[np.dtype, str] = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(np.float16): "F16",
    np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
    np.dtype(ml_dtypes.float8_e4m3fn): "F8_E4M3",
    np.dtype(ml_dtypes.float8_e5m2): "F8_E5M2",
}
_NUMPY_DTYPE: dict[str, np.dtype] = {v: k for k, v in _SAFETENSORS_DTYPE.items()}

SUPPORTED_DTYPES: tuple[str, ...] = tuple(_NUMPY_DTYPE)

# torch dtypes numpy cannot hold natively: reinterpret their bits through an
# integer view of the same width, so no value (not even a NaN payload) changes.
_TORCH_BIT_VIEWS = {
    "torch.bfloat16": ("int16", ml_dtypes.bfloat16),
    "torch.float8_e4m3fn": ("uint8", ml_dtypes.float8_e4m3fn),
    "torch.float8_e5m2": ("uint8", ml_dtypes.float8_e5m2),
}


def is_torch_tensor(x: Any) -> bool:
    """Duck-typed: anything with .detach() and .cpu() is treated as a torch tensor."""
    return hasattr(x, "detach") and hasattr(x, "cpu") and not isinstance(x, np.ndarray)


def to_numpy(x: Any, what: str = "array") -> np.ndarray:
    """Return `x` as a C-contiguous little-endian numpy array with a supported dtype.

    Accepts numpy arrays and scalars and torch tensors (duck-typed, torch is never
    imported here). Values are never converted: an unsupported dtype is an error,
    not a silent cast, because a cast would change the bytes being hashed.
    """
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, np.generic):
        arr = np.asarray(x)
    elif is_torch_tensor(x):
        t = x.detach().cpu()
        for resolve in ("resolve_conj", "resolve_neg"):  # lazy views .numpy() refuses
            if hasattr(t, resolve):
                t = getattr(t, resolve)()
        view = _TORCH_BIT_VIEWS.get(str(t.dtype))
        if view is not None:
            torch = sys.modules[type(t).__module__.split(".")[0]]
            int_dtype, np_dtype = view
            arr = t.view(getattr(torch, int_dtype)).numpy().view(np_dtype)
        else:
            try:
                arr = t.numpy()
            except TypeError as e:  # e.g. complex or quantized tensors
                raise TypeError(f"{what}: cannot convert torch dtype {t.dtype}: {e}") from None
    else:
        raise TypeError(
            f"{what}: expected a numpy array or a torch tensor, got {type(x).__name__}"
        )
    if arr.dtype.byteorder == ">" and arr.dtype.kind in "fiu":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if arr.dtype not in _SAFETENSORS_DTYPE:
        raise TypeError(
            f"{what}: unsupported dtype {arr.dtype} (supported: "
            f"float64, float32, bfloat16, float16, float8_e4m3fn, float8_e5m2, int64, int32, int8, "
            f"uint8, bool)"
        )
    return np.asarray(arr, order="C")


def safetensors_dtype(arr: np.ndarray) -> str:
    """The safetensors dtype name ("F32", "BF16", ...) of an array from to_numpy()."""
    return _SAFETENSORS_DTYPE[arr.dtype]


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for a safetensors dtype name; KeyError if unsupported."""
    return _NUMPY_DTYPE[name]


def sha256_hex(arr: np.ndarray) -> str:
    """sha256 of the array's raw little-endian bytes, as they are stored in a bundle."""
    arr = np.asarray(arr, order="C")
    if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
        raise NotImplementedError("hashing on a big-endian host is not supported")
    return hashlib.sha256(arr.reshape(-1).view(np.uint8)).hexdigest()


def serialize_tensors(tensors: Mapping[str, np.ndarray]) -> bytes:
    """safetensors bytes for `tensors`, deterministic: no metadata (no timestamps
    or versions), and the library lays tensors out in a fixed order (by dtype
    alignment, then name), whatever the order of `tensors`."""
    ordered = {k: np.asarray(tensors[k], order="C") for k in sorted(tensors)}
    return safetensors.numpy.save(ordered, metadata=None)


def load_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a safetensors file with every dtype parity uses (incl. BF16 and fp8,
    which safetensors.numpy cannot load), as read-only numpy arrays."""
    data = Path(path).read_bytes()
    out: dict[str, np.ndarray] = {}
    for name, info in safetensors.deserialize(data):
        try:
            dtype = numpy_dtype(info["dtype"])
        except KeyError:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}") from None
        out[name] = np.frombuffer(bytes(info["data"]), dtype=dtype).reshape(info["shape"])
    return out


def output_file(path: str | os.PathLike) -> Path:
    """The regular file a write to `path` replaces: a symbolic link is
    followed (the file it names is replaced and the link kept; a dangling
    link creates its target). A device, FIFO, socket or directory is refused
    (ValueError naming it): renaming a file over it would destroy it (as
    root, a rename over /dev/null breaks the machine), and a report's bundle
    could not sit beside it."""
    import stat

    real = Path(os.path.realpath(path))
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real
    if stat.S_ISREG(mode):
        return real
    what = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
    raise ValueError(f"{path}: is {what}: parity_oracle writes reports and bundles as regular files, never over one")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that no reader ever sees a half-written file.

    The bytes go to a fresh temporary file in the same directory (same
    filesystem, so the final rename is atomic), are flushed to disk, then the
    temporary file replaces `path`. On any error the temporary file is removed
    and an existing `path` is left untouched.
    """
    path = output_file(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never clobber someone else's file; mode 0o666 lets the umask decide
    # the final permissions, like a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
