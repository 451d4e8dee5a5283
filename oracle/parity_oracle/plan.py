"""Surgery plans, `parity.plan.v1` (SPEC §11), read the way `parity apply`
reads them (src/plan/mod.rs): JSON, or YAML when the file ends in .yaml/.yml,
checked for everything that can be checked without a model.

The YAML loader follows YAML 1.2's core schema, as the Rust side's YAML
library does, not PyYAML's default YAML 1.1: `1e-2` is a number (1.1 reads a
string), `yes`/`no`/`on`/`off` are strings (1.1 reads booleans), `010` is ten.
A plan therefore means the same thing to both sides.

Also here, shared with the executor (:mod:`parity_oracle.apply`): name
templates (`{name}`, `{key}`, `{layer}`), target matching (exact name, glob or
`re:REGEX`, in name order) and layer ranges (`A..B`, END exclusive; a tensor
with no layer number is kept), each as src/plan/resolve.rs and
src/diff/select.rs define them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from .report import safe_key

SCHEMA = "parity.plan.v1"

# Operations a plan can run besides the catalog's.
STRUCTURAL = ("copy", "rename", "delete", "merge_missing")

# Catalog inputs a step may leave out (src/ops: `optional: true`); every other
# input of the operation must be given.
OPTIONAL_INPUTS = {"add": {"b"}, "subtract": {"b"}, "lowrank_reconstruct": {"base"}}

# Each catalog operation's parameters, name -> required (src/ops: `params`).
# A step's params are held to them before its operation runs, as
# `parity apply` holds them: an unknown or missing one is a plan error, never
# a silently ignored or defaulted value.
PARAMS: dict[str, dict[str, bool]] = {
    "identity": {}, "matmul": {}, "svd": {},
    "cast": {"to": True},
    "scale": {"factor": True},
    "add": {"value": False, "alpha": False},
    "subtract": {"value": False, "alpha": False},
    "clamp": {"min": False, "max": False},
    "fill": {"value": True},
    "fp8_block_quantize": {"format": False, "block": False},
    "fp8_block_dequantize": {"block": False},
    "phlora": {"rank": True},
    "lowrank_reconstruct": {"scale": False},
    "transpose": {"dims": False},
    "reshape": {"shape": True},
    "slice": {"ranges": True},
    "concat": {"axis": False},
    "split": {"axis": False, "index": True},
    "task_arithmetic": {"weights": True},
    "ties": {"density": True, "lambda": False},
    "svf_apply": {"final_shape": True, "transpose": False},
}


def check_params(op: str, params: dict) -> str | None:
    """What is wrong with `params` for `op` (unknown or missing), or None."""
    declared = PARAMS.get(op)
    if declared is None:
        return None
    for key in params:
        if key not in declared:
            return f"parameter '{key}': unknown parameter; known: {', '.join(declared) or '(none)'}"
    for key, required in declared.items():
        if required and key not in params:
            return f"parameter '{key}': missing (required)"
    return None

_PLAN_KEYS = {"schema", "description", "inputs", "output", "steps"}
_OUTPUT_KEYS = {"path", "layout", "shard_size", "copy_files"}
_STEP_KEYS = {"id", "operation", "assert", "target", "inputs", "params", "write", "output", "expect"}
_TARGET_KEYS = {"match", "layers"}
_EXPECT_KEYS = {"shape", "dtype", "sha256"}
_ASSERT_KEYS = {"match", "layers", "exists", "count", "shape", "dtype", "finite", "iszero", "equal"}
_EQUAL_KEYS = {"to", "max_abs"}

DEFAULT_SHARD_SIZE = 5_000_000_000  # transformers' save_pretrained default


class PlanError(ValueError):
    """A plan that cannot run (a setup error: exit 2)."""


# ---------------------------------------------------------------- YAML 1.2 core


def _yaml_loader():
    import yaml

    class CoreLoader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 core-schema scalars."""

    CoreLoader.yaml_implicit_resolvers = {}
    resolvers = [
        ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
        ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
        ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                  r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ]
    for tag, pattern, first in resolvers:
        CoreLoader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(pattern), list(first))

    def construct_int(loader, node):
        text = loader.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_float(loader, node):
        text = loader.construct_scalar(node).lower()
        if text.lstrip("+-") == ".inf":
            return -math.inf if text.startswith("-") else math.inf
        if text == ".nan":
            return math.nan
        return float(text)

    def construct_mapping(loader, node, deep=False):
        # Duplicate keys are an error in a plan (PyYAML silently keeps the last).
        loader.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=True)

    CoreLoader.add_constructor("tag:yaml.org,2002:int", construct_int)
    CoreLoader.add_constructor("tag:yaml.org,2002:float", construct_float)
    CoreLoader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    return CoreLoader


def parse_plan_text(data: bytes, yaml_format: bool, where: str) -> Any:
    """The plan file's value: YAML (1.2 core schema) or JSON."""
    if yaml_format:
        import yaml

        try:
            return yaml.load(data.decode("utf-8"), Loader=_yaml_loader())  # noqa: S506 - a SafeLoader
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise PlanError(f"{where}: not YAML: {' '.join(str(e).split())}") from None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise PlanError(f"{where}: not JSON: {e}") from None


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    """A plan file, read and checked (the value as parsed, plus where it is)."""

    path: Path
    dir: Path
    value: dict
    sha256: str

    @property
    def inputs(self) -> dict[str, str]:
        return self.value["inputs"]

    @property
    def output(self) -> dict:
        return self.value.get("output") or {}

    @property
    def steps(self) -> list[dict]:
        return self.value["steps"]

    def input_path(self, name: str) -> Path:
        """An input's path, resolved against the plan's directory."""
        return self.dir / self.inputs[name]

    def layout(self) -> str:
        return self.output.get("layout", "sharded")

    def copy_files(self) -> bool:
        return self.output.get("copy_files", True)

    def shard_size(self) -> int:
        """Bytes per shard (default 5 GB, as transformers' save_pretrained)."""
        v = self.output.get("shard_size")
        if v is None:
            return DEFAULT_SHARD_SIZE
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise PlanError(f"{self.path}: output.shard_size: {json.dumps(v)} is not a size")
        if isinstance(v, str):
            n = parse_size(v)
            if n is None:
                raise PlanError(f"{self.path}: output.shard_size '{v}': expected e.g. 4GiB, 500MB or a byte count")
            return n
        if isinstance(v, float) and not v.is_integer() or v <= 0:
            raise PlanError(f"{self.path}: output.shard_size: a positive whole number of bytes")
        return int(v)


def parse_size(s: str) -> int | None:
    """"4GiB", "500MB", "1024" → bytes (src/plan/mod.rs parse_size)."""
    s = s.strip()
    split = next((i for i, c in enumerate(s) if not (c.isascii() and c.isdigit()) and c != "."), len(s))
    num, unit = s[:split], s[split:]
    try:
        n = float(num)
    except ValueError:
        return None
    mult = {"": 1, "b": 1, "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000,
            "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}.get(unit.strip().lower())
    if mult is None:
        return None
    b = round(n * mult)  # Rust's f64::round: half away from zero, the same for these positives
    return int(b) if b >= 1 else None


def _type(where: str, what: str, value: Any, kinds: tuple, name: str) -> None:
    if isinstance(value, bool) and bool not in kinds:
        raise PlanError(f"{where}: {what}: expected {name}, got {json.dumps(value)}")
    if not isinstance(value, kinds):
        raise PlanError(f"{where}: {what}: expected {name}, got {json.dumps(value)}")


def _fields(where: str, what: str, value: Any, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise PlanError(f"{where}: invalid plan: {what} must be a mapping, got {json.dumps(value)}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise PlanError(f"{where}: invalid plan: unknown field `{unknown[0]}` in {what} "
                        f"(expected one of {', '.join(sorted(allowed))})")
    return value


def _check_shape(where: str, what: str, v: Any) -> None:
    if not isinstance(v, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v):
        raise PlanError(f"{where}: invalid plan: {what} must be a list of sizes, got {json.dumps(v)}")


def _step_error(plan_path: Path, step: str, message: str) -> PlanError:
    return PlanError(f"{plan_path}: step '{step}': {message}")


def load_plan(path: str | Path, allow_outside_paths: bool = False) -> Plan:
    """Read a plan (YAML when the file ends in .yaml/.yml, else JSON) and check
    it: schema, fields, unique step ids, one kind per step, known operations,
    input references, inputs that stay in the plan's directory."""
    from . import ops

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PlanError(f"{path}: cannot read the plan: {e.strerror or e}") from None
    value = parse_plan_text(data, path.suffix in (".yaml", ".yml"), str(path))
    if not isinstance(value, dict) or "schema" not in value:
        raise PlanError(f'{path}: not a plan: no "schema": "{SCHEMA}"')
    if value["schema"] != SCHEMA:
        raise PlanError(f"{path}: schema '{value['schema']}', expected '{SCHEMA}'")
    where = str(path)
    _fields(where, "the plan", value, _PLAN_KEYS)
    for required in ("inputs", "steps"):
        if required not in value:
            raise PlanError(f"{where}: invalid plan: missing field `{required}`")
    inputs = _fields(where, "inputs", value["inputs"], set(value["inputs"]) if isinstance(value["inputs"], dict) else set())
    for name, rel in inputs.items():
        _type(where, f"inputs.{name}", rel, (str,), "a path")
    if value.get("description") is not None:
        _type(where, "description", value["description"], (str,), "a string")
    output = value.get("output")
    if output is not None:
        _fields(where, "output", output, _OUTPUT_KEYS)
        if output.get("path") is not None:
            _type(where, "output.path", output["path"], (str,), "a path")
        if "layout" in output and output["layout"] not in ("sharded", "single"):
            raise PlanError(f"{where}: invalid plan: output.layout: unknown variant `{output['layout']}`, "
                            "expected `sharded` or `single`")
        if "copy_files" in output:
            _type(where, "output.copy_files", output["copy_files"], (bool,), "true or false")
    if not isinstance(value["steps"], list):
        raise PlanError(f"{where}: invalid plan: steps must be a list")

    if "base" not in inputs:
        raise PlanError(f"{where}: inputs: no 'base' (the checkpoint the plan edits)")
    for name, rel in inputs.items():
        p = PurePath(rel)
        if (p.is_absolute() or ".." in p.parts) and not allow_outside_paths:
            raise PlanError(f"{where}: inputs.{name} '{rel}' leaves the plan's directory "
                            "(pass --allow-outside-paths to allow it)")

    ops.load_all()
    seen: set[str] = set()
    for step in value["steps"]:
        _fields(where, "a step", step, _STEP_KEYS)
        if "id" not in step:
            raise PlanError(f"{where}: invalid plan: a step has no `id`")
        sid = step["id"]
        _type(where, "step id", sid, (str,), "a string")
        if sid in seen:
            raise _step_error(path, sid, "duplicate step id")
        seen.add(sid)
        _check_step_fields(path, step)
        op, spec = step.get("operation"), step.get("assert")
        if op is not None and spec is not None:
            raise _step_error(path, sid, "has both 'operation' and 'assert'")
        if op is None and spec is None:
            raise _step_error(path, sid, "needs one of 'operation' or 'assert'")
        if op is not None:
            if op not in STRUCTURAL and op not in ops.OPS:
                raise _step_error(path, sid, f"unknown operation '{op}' (structural: copy, rename, delete, merge_missing)")
            if op != "merge_missing" and step.get("target") is None:
                raise _step_error(path, sid, f"{op} needs a 'target'")
            if op in ("copy", "rename") and step.get("output") is None:
                raise _step_error(path, sid, f"{op} needs an 'output' name template")
        step_inputs = step.get("inputs") or {}
        if op == "merge_missing":
            extra = step_inputs.get("extra")
            if not (isinstance(extra, str) and extra.rstrip(":") in inputs and len(step_inputs) == 1):
                raise _step_error(path, sid, f"merge_missing takes inputs: {{extra: INPUT}}, INPUT one of "
                                  f"{', '.join(inputs)}")
            continue
        for reference in step_inputs.values():
            input_name, sep, _ = reference.partition(":")
            if not sep:
                raise _step_error(path, sid, f"input reference '{reference}': expected INPUT:NAME (e.g. base:{{name}})")
            if input_name not in inputs:
                raise _step_error(path, sid, f"input reference '{reference}': no input named '{input_name}' "
                                  f"(inputs: {', '.join(inputs)})")
    return Plan(path=path, dir=path.parent if str(path.parent) else Path("."), value=value,
                sha256=hashlib.sha256(data).hexdigest())


def _check_step_fields(path: Path, step: dict) -> None:
    where = f"{path}: step '{step['id']}'"
    for key in ("operation", "write", "output"):
        if step.get(key) is not None:
            _type(where, key, step[key], (str,), "a string")
    if step.get("inputs") is not None:
        _fields(where, "inputs", step["inputs"], set(step["inputs"]) if isinstance(step["inputs"], dict) else set())
        for k, v in step["inputs"].items():
            _type(where, f"inputs.{k}", v, (str,), "INPUT:NAME")
    if step.get("params") is not None and not isinstance(step["params"], dict):
        raise PlanError(f"{where}: params must be a mapping")
    if step.get("target") is not None:
        target = _fields(where, "target", step["target"], _TARGET_KEYS)
        if "match" not in target:
            raise PlanError(f"{where}: invalid plan: target has no `match`")
        _type(where, "target.match", target["match"], (str,), "a string")
        if target.get("layers") is not None:
            _type(where, "target.layers", target["layers"], (str,), "A..B")
    if step.get("expect") is not None:
        expect = _fields(where, "expect", step["expect"], _EXPECT_KEYS)
        if expect.get("shape") is not None:
            _check_shape(where, "expect.shape", expect["shape"])
        for k in ("dtype", "sha256"):
            if expect.get(k) is not None:
                _type(where, f"expect.{k}", expect[k], (str,), "a string")
    if step.get("assert") is not None:
        spec = _fields(where, "assert", step["assert"], _ASSERT_KEYS)
        if "match" not in spec:
            raise PlanError(f"{where}: invalid plan: assert has no `match`")
        _type(where, "assert.match", spec["match"], (str,), "a string")
        if spec.get("layers") is not None:
            _type(where, "assert.layers", spec["layers"], (str,), "A..B")
        for k in ("exists", "finite", "iszero"):
            if spec.get(k) is not None:
                _type(where, f"assert.{k}", spec[k], (bool,), "true or false")
        if spec.get("count") is not None:
            _type(where, "assert.count", spec["count"], (int,), "a count")
            if spec["count"] < 0:
                raise PlanError(f"{where}: assert.count: expected a count, got {spec['count']}")
        if spec.get("shape") is not None:
            _check_shape(where, "assert.shape", spec["shape"])
        if spec.get("dtype") is not None:
            _type(where, "assert.dtype", spec["dtype"], (str,), "a string")
        if spec.get("equal") is not None:
            equal = _fields(where, "assert.equal", spec["equal"], _EQUAL_KEYS)
            if "to" not in equal:
                raise PlanError(f"{where}: invalid plan: assert.equal has no `to`")
            _type(where, "assert.equal.to", equal["to"], (str,), "INPUT:NAME")
            _type(where, "assert.equal.max_abs", equal.get("max_abs", 0.0), (int, float), "a number")
            if ":" not in equal["to"]:
                raise PlanError(f"{where}: assert.equal.to '{equal['to']}': expected INPUT:NAME")


# ---------------------------------------------------------------- names


_LAYER_SEGMENTS = ("layers", "layer", "h", "blocks", "block")
# What Rust's `str::parse::<u64>` accepts: ASCII digits after an optional
# "+", nothing else (fullmatch: `$` would also let a trailing newline in).
_U64 = re.compile(r"\+?[0-9]+")
# What Rust's `str::trim` removes: Unicode White_Space. Python's str.strip()
# also removes U+001C..U+001F, which Rust keeps (and then refuses).
_RUST_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _parse_u64(text: str) -> int | None:
    if _U64.fullmatch(text) and int(text) < 2**64:
        return int(text)
    return None


def layer_number(name: str) -> int | None:
    """The integer path segment after layers/layer/h/blocks/block, if any."""
    parts = re.split(r"[./]", name)
    for a, b in zip(parts, parts[1:]):
        if a in _LAYER_SEGMENTS and _parse_u64(b) is not None:
            return _parse_u64(b)
    return None


@dataclass(frozen=True)
class LayerRange:
    start: int
    end: int

    @staticmethod
    def parse(text: str) -> "LayerRange":
        bad = PlanError(f"--layers '{text}': expected START..END with whole numbers, START < END "
                        "(END exclusive), e.g. 0..4")
        a, sep, b = text.partition("..")
        start, end = _parse_u64(a.strip(_RUST_WHITESPACE)), _parse_u64(b.strip(_RUST_WHITESPACE))
        if not sep or start is None or end is None or start >= end:
            raise bad
        return LayerRange(start, end)

    def keeps(self, name: str) -> bool:
        layer = layer_number(name)
        return layer is None or self.start <= layer < self.end

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


def template(tpl: str, name: str) -> str:
    """`{name}`, `{key}` (every character outside [A-Za-z0-9_] → `_`), `{layer}`."""
    out = tpl.replace("{name}", name).replace("{key}", safe_key(name))
    if "{layer}" in out:
        layer = layer_number(name)
        if layer is None:
            raise PlanError(f"'{tpl}' uses {{layer}} but '{name}' has no layer number")
        out = out.replace("{layer}", str(layer))
    i = out.find("{")
    if i >= 0 and "}" in out[i:]:
        raise PlanError(f"'{tpl}': unknown placeholder (known: {{name}}, {{key}}, {{layer}})")
    return out


def matching(names, pattern: str, layers: str | None) -> list[str]:
    """The names a target matches, in name order; none is an error."""
    rng = LayerRange.parse(layers) if layers is not None else None
    keep = (lambda n: True) if rng is None else rng.keeps
    if pattern.startswith("re:"):
        try:
            rx = re.compile(pattern[3:])
        except re.error as e:
            raise PlanError(f"target '{pattern}': invalid regex: {e}") from None
        hit = lambda n: rx.search(n) is not None  # noqa: E731 - unanchored, as Rust's is_match
    elif any(c in pattern for c in "*?["):
        hit = lambda n: fnmatch.fnmatchcase(n, pattern)  # noqa: E731
    else:
        hit = lambda n: n == pattern  # noqa: E731
    found = sorted(n for n in names if hit(n) and keep(n))
    if not found:
        note = f" in layers {rng}" if rng is not None else ""
        raise PlanError(f"target '{pattern}' matches no tensor{note}")
    return found
