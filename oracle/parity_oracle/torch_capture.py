"""`capture`: every module call of a PyTorch model, as a parity.report.v1 report.

    from parity_oracle import capture

    with capture(model, "torch.json",
                 producer={"name": "transformers", "implementation": "torch-f32"}) as run:
        model(**inputs)

A forward hook on each selected module of `model.named_modules()` turns each
call into one report tensor named by the module's dotted path (the root
module by `root=`, default "model"), in the order the hooks fire — post-order,
a child before its parent. A module called again (a shared module, a
generation loop) is `path#2`, `path#3`, …. The tensor's operation is the
module's class name, its params `{}`, its stages what the call returned
(and, with `inputs=True`, what it was given):

* a tensor is `output`; a tuple or list is `output_0`, `output_1`, …; a dict
  or a dataclass (transformers' `ModelOutput`) is `output_<field>`; nested
  containers join with `_` (`output_1_0`); characters outside [A-Za-z0-9_]
  become `_`;
* with `inputs=True`, first `input_0`, `input_1`, … (positional arguments)
  and `input_<name>` (keyword arguments), flattened the same way;
* `None`, non-tensors, and tensors parity cannot store (complex, int16, meta,
  sparse) are skipped and listed in the report's `producer.capture.skipped`.

Tensors are detached and stored in their own dtype, bit for bit (bf16 as its
16 bits, never through float32). `run.record(name, operation, **stages)` adds
what is not a module (hand-written attention, numpy post-processing) in its
place in the order.

Streaming, and the memory bound: each stage's bytes are written to the
bundle's temporary beside its final name inside the hook that produced
them, in place after header room reserved for the hooked modules (see
`bundle_stream`: a stage that would start misaligned, or a header that
outgrows the room, costs one file-to-file copy, never a wrong file). Once
the hook returns the model may change or free its output: what the report
describes is what the file holds. One worker thread, at low priority, hashes
the stages from the file (the page cache) with the cycles the forward
leaves idle; on exit the caller's thread hashes what is still queued
beside it, before anything is renamed. Only metadata is kept. Beyond the
model's own memory a capture holds at most ONE stage's array at a time —
the CPU copy of the tensor being written (no copy at all for a contiguous
CPU tensor in a dtype numpy holds) — plus the hasher's one read-back buffer
(at most 256 KiB, and never more than the stage it reads), so at most twice
the largest stage, plus a few hundred bytes of metadata per stage (key,
dtype, shape, offsets, sha256) and the skipped list. On exit the header is
written into its room, the bundle synced and renamed into place, and the
report is written last, each atomically. `run.peak_held_bytes` is the most
stage bytes the capture ever held at once (measured by weak references, so
a stray reference would show), and `run.largest_stage_bytes` the largest
single stage: the tests hold the first to twice the second.

On exit every hook is removed, also when the forward raised. Then (or when a
hook failed, even if the caller caught the error, or the hasher failed)
nothing is written: the temporaries are removed and a report and bundle already under the final
names stay as they were.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .bundle_stream import StreamedBundle
from .plan import LayerRange
from .report import (
    _check_baseline,
    _check_part,
    _check_producer,
    _relative_path,
    assemble_report,
    dumps_report,
    known_stages,
    safe_key,
)
from .tensorio import atomic_write_bytes, output_file, to_numpy

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
# A repeated call is `<name>#<n>`: a name that already ends so could be
# mistaken for one, so such names are refused — which makes (name, n) ->
# report name one-to-one.
_CALL_SUFFIX = re.compile(r"#[0-9]+\Z")

# torch dtypes with a safetensors dtype parity reads (tensorio's table).
_TORCH_DTYPES = {
    "torch.float64", "torch.float32", "torch.bfloat16", "torch.float16",
    "torch.float8_e4m3fn", "torch.float8_e5m2",
    "torch.int64", "torch.int32", "torch.int8", "torch.uint8", "torch.bool",
}


def capture(
    model: Any,
    path: str | os.PathLike,
    *,
    producer: Mapping[str, Any],
    baseline: Mapping[str, Any] | None = None,
    modules: str | Sequence[str] | None = None,
    layers: str | None = None,
    root: str = "model",
    inputs: bool = False,
    stage_bundle: str | None = None,
) -> "Capture":
    """Capture the module calls of `model` into the report `path`; use it as a
    context manager around the forward.

    Args:
        model: a torch.nn.Module.
        path: the report JSON; its bundle is `<stem>_stages.safetensors` beside
            it (or `stage_bundle`, relative to the report's directory).
        producer: {"name", "implementation"} and optional "versions" and extra
            keys, as for `ReportWriter`; the key "capture" is written by the
            capture (selection and skipped values) and may not be given.
        baseline: as for `ReportWriter`.
        modules: a glob or list of globs (fnmatch, case-sensitive) over the
            module names (dotted paths; the root module by its `root` name);
            only matching modules are hooked. A glob matching no module is a
            ValueError. None: every module. []: none (only `run.record`).
        layers: "A..B", END exclusive, as `parity --layers`: a module whose
            path has a layer number (the integer segment after layers, layer,
            h, blocks or block) outside it is not hooked; a module without one
            is kept. A bad range is a ValueError.
        root: the report name of the root module (its dotted path is "").
        inputs: also record each call's arguments, before its outputs.

    Everything is checked here, before any forward runs.

    Memory: streamed to disk as the hooks fire. Beyond the model's own memory
    the run holds at most one stage's array at a time (its CPU copy) and the
    hasher's read-back buffer (never larger than a stage), plus a few hundred
    bytes of metadata per stage; `run.peak_held_bytes` measures the first two
    and stays ≤ 2 × `run.largest_stage_bytes`.
    """
    return Capture(
        model, path, producer=producer, baseline=baseline, modules=modules,
        layers=layers, root=root, inputs=inputs, stage_bundle=stage_bundle,
    )


class Capture:
    """One capture run (see the module's documentation); made by `capture()`."""

    def __init__(self, model, path, *, producer, baseline, modules, layers, root, inputs, stage_bundle) -> None:
        torch = _torch()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"capture: model must be a torch.nn.Module, got {type(model).__name__}")
        # Where the report lands: a link followed, a device or FIFO refused
        # (before the forward runs); the bundle goes beside that file.
        self.path = output_file(path)
        self.stage_bundle = _relative_path("stage_bundle", stage_bundle or f"{self.path.stem}_stages.safetensors")
        self.bundle_path = self.path.parent / self.stage_bundle
        producer = dict(producer)
        if "capture" in producer:
            raise ValueError("producer['capture'] is written by capture (selection and skipped values); do not give it")
        self._producer = _check_producer(producer)
        self._baseline = _check_baseline(baseline)
        if not isinstance(inputs, bool):
            raise ValueError(f"capture: inputs must be True or False, got {inputs!r}")
        _check_name("root", root)
        self._root = root
        self._inputs = inputs
        self._selection: dict[str, Any] = {"root": root}

        named = [(root if p == "" else p, m) for p, m in model.named_modules()]
        if modules is not None:
            globs = [modules] if isinstance(modules, str) else list(modules)
            for g in globs:
                if not isinstance(g, str) or not g:
                    raise ValueError(f"capture: modules must be non-empty glob strings, got {g!r}")
                if not any(fnmatch.fnmatchcase(n, g) for n, _ in named):
                    raise ValueError(f"capture: modules glob {g!r} matches no module of {type(model).__name__}")
            named = [(n, m) for n, m in named if any(fnmatch.fnmatchcase(n, g) for g in globs)]
            self._selection["modules"] = globs
        if layers is not None:
            if not isinstance(layers, str):
                raise ValueError(f"capture: layers must be a string START..END, got {layers!r}")
            rng = LayerRange.parse(layers)  # a PlanError (a ValueError) naming the string
            named = [(n, m) for n, m in named if rng.keeps(n)]
            self._selection["layers"] = str(rng)
        self._selection["inputs"] = inputs
        for n, m in named:
            if n != root:
                _check_name("module path", n)
            _check_operation(n, type(m).__name__)
        # Paths are unique, so only the root's name can repeat one (the
        # default "model" is the path of a *ForCausalLM's inner model).
        if sum(n == root for n, _ in named) > 1:
            raise ValueError(
                f"capture: the root name {root!r} is also a submodule's path; give another root= (e.g. root='root')"
            )
        self._modules = named

        self._lock = threading.Lock()
        self._state = "new"
        self._handles: list[Any] = []
        self._calls: dict[str, int] = {}
        self._keys: set[str] = set()
        self._entries: list[dict[str, Any]] = []
        self._skipped: list[dict[str, str]] = []
        self._failure: BaseException | None = None
        self._made_dirs: list[Path] = []
        self._bundle: StreamedBundle | None = None
        self._largest = 0
        self.report: dict[str, Any] | None = None

    # ------------------------------------------------------------ the run

    def __enter__(self) -> "Capture":
        if self._state != "new":
            raise RuntimeError("a capture runs once: make a new one with capture(...)")
        self._state = "running"
        try:
            for d in (self.path.parent, self.bundle_path.parent):
                self._make_dir(d)
            self._bundle = StreamedBundle(
                self.bundle_path, header_room=_header_room(self._modules, self._inputs), hash_in_background=True,
            )
            for name, module in self._modules:
                self._handles.append(module.register_forward_hook(self._hook(name), with_kwargs=True))
        except BaseException:
            self._abandon()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        with self._lock:
            self._state = "done"
        if exc_type is not None or self._failure is not None:
            self._abandon()
            if exc_type is None:
                raise RuntimeError(
                    f"capture into {self.path}: a hook failed during the forward (nothing was written)"
                ) from self._failure
            return False
        try:
            self._remove_hooks()
            self._write()
        except BaseException:
            self._abandon()
            raise
        return False

    def record(self, name: str, operation: str, /, **stages: Any) -> None:
        """Record code that is not a module as one report tensor, in its place
        in the order: `stages` maps stage names to numpy arrays or torch
        tensors (containers flattened, None skipped, as for module outputs).
        A name recorded again becomes `name#2`, … like a module called again
        (and shares a module's count if it is that module's name)."""
        _check_name("record name", name)
        if not isinstance(operation, str) or not operation:
            raise ValueError(f"{name}: operation must be a non-empty string, got {operation!r}")
        _check_operation(name, operation)
        if not stages:
            raise ValueError(f"{name}: no stages given")
        for stage in stages:
            _check_part(f"{name}: stage name", stage)
        with self._lock:
            if self._state != "running":
                raise RuntimeError("run.record is only possible inside the capture's with block")
            try:
                self._add(name, operation, (leaf for s, v in stages.items() for leaf in _leaves(v, s)))
            except BaseException as e:
                # Its stages may be half in the bundle: as for a hook, the
                # run can no longer write a report that is whole.
                self._failure = self._failure or e
                raise

    @property
    def peak_held_bytes(self) -> int:
        """The most stage bytes this capture held at once (see the module doc)."""
        return self._bundle.peak_held_bytes if self._bundle is not None else 0

    @property
    def largest_stage_bytes(self) -> int:
        """The largest single stage written, in bytes."""
        return self._largest

    # ------------------------------------------------------------ internals

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            with self._lock:
                if self._state != "running":
                    return
                try:
                    leaves = _call_leaves(args, kwargs, output) if self._inputs else _leaves(output, "output")
                    self._add(name, type(module).__name__, leaves)
                except BaseException as e:
                    # Remembered: a caller who catches the error inside the
                    # with block must not get a report missing this call.
                    self._failure = self._failure or e
                    raise
            # No return value: the module's output is left as it is.

        return hook

    def _add(self, base: str, operation: str, leaves: Iterator[tuple[str, Any]]) -> None:
        n = self._calls.get(base, 0) + 1
        self._calls[base] = n
        name = base if n == 1 else f"{base}#{n}"
        key = _unique(safe_key(name), self._keys)
        described: dict[str, Any] = {}
        for stage, value in leaves:
            stage = _unique(stage, described)
            arr, why = _stage_array(value, self._bundle.track)
            if arr is None:
                skip = {"tensor": name, "stage": stage, "type": _type_name(value)}
                if why:
                    skip["why"] = why
                self._skipped.append(skip)
                continue
            full = f"tensor.{key}.{stage}"
            dtype, shape, _ = self._bundle.append(full, arr)
            self._largest = max(self._largest, arr.nbytes)
            del arr  # the only reference: the stage's bytes are on disk now
            # The sha256 is the hasher's, filled in by _write: the bundle key
            # stands for it until then.
            described[stage] = {"dtype": dtype, "shape": shape, "sha256": full}
        if not described:
            self._keys.discard(key)  # a call with nothing to store is only in `skipped`
            return
        self._entries.append({
            "name": name,
            "key": key,
            "operation": operation,
            "params": {},
            "stages": described,
            "final_sha256": None,
        })

    def _write(self) -> None:
        if not self._entries:
            raise ValueError(f"capture into {self.path}: no tensor was captured, nothing to write")
        shas = self._bundle.sha256s()  # waits for the hasher; raises its error
        for entry in self._entries:
            for st in entry["stages"].values():
                st["sha256"] = shas[st["sha256"]]
            entry["final_sha256"] = st["sha256"]
        producer = dict(self._producer)
        producer["capture"] = dict(self._selection, skipped=self._skipped)
        report = assemble_report(
            producer=producer, stage_bundle=self.stage_bundle, components=None,
            baseline=self._baseline, tensors=self._entries, saw_torch=True,
        )
        # Bundle first, report last: a report never names a bundle that is
        # not fully written.
        self._bundle.commit()
        atomic_write_bytes(self.path, dumps_report(report).encode("utf-8"))
        self.report = report

    def _remove_hooks(self) -> None:
        handles, self._handles = self._handles, []
        for h in handles:
            h.remove()

    def _abandon(self) -> None:
        """Remove hooks, temporaries and the directories this run made."""
        self._state = "done"
        try:
            self._remove_hooks()
        finally:
            if self._bundle is not None:
                self._bundle.discard()
            for d in reversed(self._made_dirs):
                try:
                    d.rmdir()
                except OSError:
                    pass  # not empty (someone else's files): leave it

    def _make_dir(self, d: Path) -> None:
        missing = []
        while not d.exists():
            missing.append(d)
            d = d.parent
        for m in reversed(missing):
            m.mkdir(exist_ok=True)
            self._made_dirs.append(m)


# Header room per stage the capture expects (see _header_room): a header
# entry is its key plus ~80 bytes of dtype, shape and offsets at rank 4.
_ROOM_PER_ENTRY = 160
_MIN_ROOM = 4096


def _header_room(modules: Sequence[tuple[str, Any]], inputs: bool) -> int:
    """Bytes to reserve for the bundle's header: room for two stages per
    hooked module (four with inputs), keys as long as the module's path
    gives them. Too little costs one copy of the bundle at exit; too much,
    spaces in the header."""
    per_module = 4 if inputs else 2
    room = sum(per_module * (len("tensor..output_00") + len(safe_key(n)) + _ROOM_PER_ENTRY) for n, _ in modules)
    return max(_MIN_ROOM, room)


def _torch():
    try:
        import torch
    except ImportError as e:  # the package itself never needs torch
        raise ImportError("parity_oracle.capture needs PyTorch (pip install torch)") from e
    return torch


def _check_name(what: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"capture: {what} must be a non-empty string, got {name!r}")
    if _CALL_SUFFIX.search(name):
        raise ValueError(
            f"capture: {what} {name!r} ends like a repeated call (#<n>); the report could not tell them apart"
        )


def _check_operation(name: str, operation: str) -> None:
    # `parity check` holds an operation of its catalog to the catalog's
    # params and stages, which a capture (params {}, stages output…) never
    # has: say so now rather than let the check refuse the report later.
    if known_stages(operation) is not None:
        raise ValueError(
            f"capture: {name}: operation {operation!r} is an operation of parity's catalog, whose params and "
            "stages parity check requires; write it with ReportWriter, or use another operation name"
        )


def _unique(name: str, taken) -> str:
    """`name`, or `name__2`, `name__3`, … if taken; added to `taken` if it is a set.

    For keys, because safe_key is lossy: the second call of `encoder` (a
    Sequential), `encoder#2`, and its child `encoder.2` both give
    `encoder_2`. Keys only address the bundle (reports are matched by name),
    so the later one's key takes a suffix. For stages, because sanitising
    is lossy too (`{"a.b": …, "a_b": …}`).
    """
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name}__{n}"
    if isinstance(taken, set):
        taken.add(out)
    return out


def _call_leaves(args, kwargs, output) -> Iterator[tuple[str, Any]]:
    for i, a in enumerate(args):
        yield from _leaves(a, f"input_{i}")
    for k, v in kwargs.items():
        yield from _leaves(v, f"input_{_UNSAFE.sub('_', str(k))}")
    yield from _leaves(output, "output")


def _leaves(value: Any, prefix: str, _path: tuple[int, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(stage name, value) of every leaf of `value`, depth first, lazily — so
    a hook converts and writes one stage before it looks at the next."""
    if value is None or _is_array(value) or id(value) in _path:
        yield prefix, value
        return
    inner = _path + (id(value),)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Before Mapping: transformers' ModelOutput is both, and only its
        # fields list the outputs that are None (its dict leaves them out).
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (tuple, list)):
        items = list(enumerate(value))
    else:
        yield prefix, value
        return
    if not items:
        yield prefix, value  # an empty container: listed as skipped
    for k, v in items:
        yield from _leaves(v, f"{prefix}_{_UNSAFE.sub('_', str(k))}", inner)


def _is_array(value: Any) -> bool:
    torch = sys.modules.get("torch")  # imported by Capture before any hook runs
    return isinstance(value, (np.ndarray, np.generic)) or (torch is not None and isinstance(value, torch.Tensor))


def _stage_array(value: Any, track) -> tuple[np.ndarray | None, str | None]:
    """The C-contiguous CPU array of a stage, bit for bit, or (None, why not).

    The array is a fresh view object, passed to `track` the moment it exists,
    so the held-bytes count covers it for exactly as long as anything keeps
    it — including the moment a previous stage's array, if still referenced,
    would overlap it."""
    if value is None or not _is_array(value):
        return None, None
    if not isinstance(value, (np.ndarray, np.generic)):
        if value.is_meta:
            return None, "a meta tensor has no values"
        if str(value.layout) != "torch.strided":
            return None, f"layout {value.layout} (only dense tensors are stored)"
        if str(value.dtype) not in _TORCH_DTYPES:
            return None, f"dtype {value.dtype} has no safetensors dtype parity reads"
    try:
        arr = to_numpy(value, "stage")
    except TypeError as e:
        return None, str(e)
    arr = arr.view()
    track(arr)
    return arr, None


def _type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
