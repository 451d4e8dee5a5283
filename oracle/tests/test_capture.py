"""`parity_oracle.capture`: a PyTorch model's module calls as a parity.report.v1 report.

One test per promise of the module's documentation (and of the README's
"Capturing a PyTorch model"). Models are small hand-written modules and a
tiny randomly initialised BERT (no download). The Rust reader's checks run
against the `parity` binary: $PARITY_BIN, else this checkout's
target/{release,debug}/parity, else `parity` on PATH.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import hashlib
import json
import os
import weakref
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, parity

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network for a config
torch = pytest.importorskip("torch")
nn = torch.nn

from parity_oracle import bundle_stream, torch_capture  # noqa: E402  (after the torch skip)
from parity_oracle import capture, load_tensors, safe_key  # noqa: E402

PRODUCER = {"name": "test", "implementation": "torch-f32"}


# ---------------------------------------------------------------- models


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.lin(x))


class Net(nn.Module):
    def __init__(self, d: int = 4, n: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(d, d)
        self.layers = nn.ModuleList(Block(d) for _ in range(n))
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        x = self.embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def net_order(n: int = 3, root: str = "model") -> list[str]:
    order = ["embed"]
    for i in range(n):
        order += [f"layers.{i}.lin", f"layers.{i}.act", f"layers.{i}"]
    return order + ["head", root]


class Returns(nn.Module):
    """Returns whatever `make(x)` builds: the output-flattening cases."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


class Wrap(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)


def tiny_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = transformers.BertModel(config).eval()
    inputs = {"input_ids": torch.randint(0, 100, (2, 5)), "attention_mask": torch.ones(2, 5, dtype=torch.long)}
    return model, inputs


# ---------------------------------------------------------------- helpers


def run_capture(model, path, *args, mode=torch.no_grad, **kwargs):
    with mode():
        with capture(model, path, producer=PRODUCER, **kwargs) as run:
            model(*args)
    return run


def read_report(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def names(path) -> list[str]:
    return [t["name"] for t in read_report(path)["tensors"]]


def stages(path, name) -> dict:
    return next(t for t in read_report(path)["tensors"] if t["name"] == name)["stages"]


def skipped(path) -> list[dict]:
    return read_report(path)["producer"]["capture"]["skipped"]


def bundle_of(path) -> dict[str, np.ndarray]:
    r = read_report(path)
    return load_tensors(Path(path).parent / r["stage_bundle"])


def assert_whole(path, validate_report) -> dict:
    """The report is valid, and its bundle holds exactly its stages, each
    with the dtype, shape and sha256 (of exactly the bytes stored) it says."""
    report = read_report(path)
    validate_report(report)
    bundle = bundle_of(path)
    listed = set()
    for t in report["tensors"]:
        assert t["params"] == {}
        for stage, e in t["stages"].items():
            key = f"tensor.{t['key']}.{stage}"
            listed.add(key)
            arr = bundle[key]
            assert list(arr.shape) == e["shape"], key
            assert hashlib.sha256(arr.tobytes()).hexdigest() == e["sha256"], key
        assert t["final_sha256"] == list(t["stages"].values())[-1]["sha256"]
    assert listed == set(bundle), "the bundle holds exactly the report's stages"
    return report


def leftovers(directory) -> list[str]:
    """Temporaries (dot-files) a writer left in `directory`."""
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("."))


def data_in_temporaries(directory, run) -> int:
    """Stage bytes on disk beside the bundle: the spools' and, while the
    bundle is direct, what its temporary holds after the header room."""
    total = 0
    for p in Path(directory).iterdir():
        if p.name.endswith(".spool"):
            total += p.stat().st_size
        elif p.name.endswith(".tmp"):
            total += max(0, p.stat().st_size - 8 - run._bundle.header_room)
    return total


def forward_hook_counts(model) -> dict[str, int]:
    return {n: len(m._forward_hooks) for n, m in model.named_modules()}


def exact_tolerances(report_path, out) -> Path:
    """A tolerance profile with an exact gate for every operation of the
    report: parity's built-in profile knows no module class (see README)."""
    ops = sorted({t["operation"] for t in read_report(report_path)["tensors"]})
    profile = {
        "schema": "parity.tolerances.v1",
        "operations": {op: {"*": {"required": True, "max_abs": 0.0, "mean_abs": 0.0}} for op in ops},
    }
    Path(out).write_text(json.dumps(profile), encoding="utf-8")
    return Path(out)


# ---------------------------------------------------------------- naming and order


def test_every_module_call_is_a_tensor_named_by_its_path_in_post_order(tmp_path, validate_report):
    torch.manual_seed(0)
    net = Net()
    run_capture(net, tmp_path / "t.json", torch.randn(2, 4))
    report = assert_whole(tmp_path / "t.json", validate_report)
    # A child before its parent; the ModuleList `layers` is never called.
    assert names(tmp_path / "t.json") == net_order()
    ops = {t["name"]: t["operation"] for t in report["tensors"]}
    assert ops["layers.0.lin"] == "Linear" and ops["layers.0"] == "Block" and ops["model"] == "Net"
    assert report["tensors"][0]["key"] == "embed" and report["tensors"][1]["key"] == "layers_0_lin"


def test_the_root_is_named_by_root(tmp_path):
    run_capture(Net(), tmp_path / "t.json", torch.randn(2, 4), root="net")
    assert names(tmp_path / "t.json")[-1] == "net"
    assert read_report(tmp_path / "t.json")["producer"]["capture"]["root"] == "net"


def test_a_root_name_that_is_also_a_submodule_path_is_refused():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Linear(2, 2)  # as in every *ForCausalLM

        def forward(self, x):
            return self.model(x)

    with pytest.raises(ValueError, match="root name 'model' is also a submodule's path"):
        capture(Outer(), "/nonexistent/t.json", producer=PRODUCER)
    capture(Outer(), "/nonexistent/t.json", producer=PRODUCER, root="root")  # accepted


def test_a_module_called_again_is_numbered(tmp_path, validate_report):
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(self.lin(self.lin(x)))

    model = Shared()
    with torch.no_grad(), capture(model, tmp_path / "t.json", producer=PRODUCER) as run:
        for _ in range(2):  # a generation loop: the root is called again too
            model(torch.randn(1, 4))
    report = assert_whole(tmp_path / "t.json", validate_report)
    assert names(tmp_path / "t.json") == ["lin", "lin#2", "lin#3", "model", "lin#4", "lin#5", "lin#6", "model#2"]
    assert [t["key"] for t in report["tensors"]][:4] == ["lin", "lin_2", "lin_3", "model"]
    assert run.report == report


def test_names_and_keys_never_collide(tmp_path, validate_report):
    """safe_key is lossy: the second call of `encoder` (`encoder#2`) and its
    child `encoder.2` both give `encoder_2`. Names stay distinct and the
    later key takes a suffix; the Rust reader accepts the report."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))

        def forward(self, x):
            return self.encoder(self.encoder(x))

    path = tmp_path / "t.json"
    run_capture(Twice(), path, torch.randn(1, 4))
    report = assert_whole(path, validate_report)
    got = {t["name"]: t["key"] for t in report["tensors"]}
    assert safe_key("encoder#2") == safe_key("encoder.2") == "encoder_2"
    assert got["encoder.2"] == "encoder_2" and got["encoder#2"] == "encoder_2__2"
    assert len(set(got)) == len(got) == 9 and len(set(got.values())) == 9
    r = parity("check", path, path, "--tolerances", exact_tolerances(path, tmp_path / "tol.json"), "--strict-hash")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_name_that_ends_like_a_repeated_call_is_refused():
    model = nn.ModuleDict({"a#3": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match=r"'a#3' ends like a repeated call"):
        capture(model, "/nonexistent/t.json", producer=PRODUCER)
    with pytest.raises(ValueError, match=r"ends like a repeated call"):
        capture(nn.Linear(2, 2), "/nonexistent/t.json", producer=PRODUCER, root="m#2")


def test_a_module_class_named_like_a_catalog_operation_is_refused():
    svf_apply = type("svf_apply", (nn.Linear,), {})
    with pytest.raises(ValueError, match="'svf_apply' is an operation of parity's catalog"):
        capture(Wrap(svf_apply(2, 2)), "/nonexistent/t.json", producer=PRODUCER)


# ---------------------------------------------------------------- selection


def test_modules_globs_select_by_dotted_path(tmp_path):
    run_capture(Net(), tmp_path / "t.json", torch.randn(2, 4), modules=["layers.*.lin", "head", "model"])
    assert names(tmp_path / "t.json") == ["layers.0.lin", "layers.1.lin", "layers.2.lin", "head", "model"]
    assert read_report(tmp_path / "t.json")["producer"]["capture"]["modules"] == ["layers.*.lin", "head", "model"]


def test_a_glob_matching_no_module_is_refused_before_the_forward(tmp_path):
    net = Net()
    calls = []
    net.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(ValueError, match=r"modules glob 'layers\.\*\.nope' matches no module"):
        with capture(net, tmp_path / "t.json", producer=PRODUCER, modules=["head", "layers.*.nope"]):
            net(torch.randn(1, 4))
    assert calls == [] and list(tmp_path.iterdir()) == []
    assert sum(forward_hook_counts(net).values()) == 0


def test_no_globs_selects_only_what_is_recorded(tmp_path):
    net = Net()
    with torch.no_grad(), capture(net, tmp_path / "t.json", producer=PRODUCER, modules=[]) as run:
        run.record("post", "softmax", probs=torch.softmax(net(torch.randn(1, 4)), -1))
    assert names(tmp_path / "t.json") == ["post"]


def test_layers_keeps_a_range_and_every_module_without_a_layer_number(tmp_path):
    run_capture(Net(n=4), tmp_path / "t.json", torch.randn(2, 4), layers="1..3")
    assert names(tmp_path / "t.json") == ["embed"] + [
        f"layers.{i}{s}" for i in (1, 2) for s in (".lin", ".act", "")
    ] + ["head", "model"]
    assert read_report(tmp_path / "t.json")["producer"]["capture"]["layers"] == "1..3"


# Range strings on both sides of every rule of Rust's LayerRange::from_str.
LAYER_RANGES = [
    "1..3", "+1..+3", " 1 .. 3 ", "\u20031..3\u3000", "0..18446744073709551615",
    "1..3\x1c", "0..18446744073709551616", "3..1", "1..1", "a..b", "1-3", "1..2..3", "", "..", "-1..3", "1. .3",
]
# Paths on both sides of layer_number's rule (a layer number after
# layers/layer/h/blocks/block, "." or "/" separated; "+4" is a u64 in Rust).
LAYER_PATHS = [
    "embed", "layers.0.lin", "layers.1", "layers.2.act", "layers.3", "h.1.attn", "blocks.7", "block.2.x",
    "layer.0", "layers.+2.x", "layers.x.y", "h.weight", "model", "transformer/h/2/mlp", "layers.1e1.x",
    "layers.18446744073709551616.x", "xlayers.1",
]


def test_layers_has_exactly_the_semantics_of_parity_layers(tmp_path):
    """The same strings and names through capture's rule and through the
    parity binary (`inspect --layers` on a file whose tensors are named so)."""
    import safetensors.numpy

    ckpt = tmp_path / "names.safetensors"
    safetensors.numpy.save_file({n: np.zeros(1, np.float32) for n in LAYER_PATHS}, str(ckpt))
    for text in LAYER_RANGES:
        r = parity("inspect", ckpt, "--layers", text)
        try:
            rng = torch_capture.LayerRange.parse(text)
        except ValueError:
            assert r.returncode == 2, (text, r.stdout)
            continue
        assert r.returncode == 0, (text, r.stderr)
        rust_kept = {line.split()[0] for line in r.stdout.splitlines() if line.split() and line.split()[0] in LAYER_PATHS}
        assert rust_kept == {n for n in LAYER_PATHS if rng.keeps(n)}, text


@pytest.mark.parametrize("bad", ["3..1", "1..1", "a..b", "1-3", "1..2..3", "0..18446744073709551616", "1..3\x1c"])
def test_a_bad_layers_string_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError) as e:
        capture(Net(), "/nonexistent/t.json", producer=PRODUCER, layers=bad)
    assert repr(bad)[1:-1] in str(e.value) or bad in str(e.value)


def test_layers_must_be_a_string():
    with pytest.raises(ValueError, match="layers must be a string"):
        capture(Net(), "/nonexistent/t.json", producer=PRODUCER, layers=(1, 3))


# ---------------------------------------------------------------- stages


def test_a_tensor_output_is_the_stage_output(tmp_path):
    run_capture(nn.Linear(3, 2), tmp_path / "t.json", torch.randn(1, 3))
    assert list(stages(tmp_path / "t.json", "model")) == ["output"]


def test_containers_flatten_to_joined_stage_names(tmp_path, validate_report):
    def make(x):
        return (x + 1, [x * 2, (x * 3, x * 4)], {"a.b": x - 1, "c": {"d": x * 5}})

    run_capture(Returns(make), tmp_path / "t.json", torch.randn(2))
    assert_whole(tmp_path / "t.json", validate_report)
    assert list(stages(tmp_path / "t.json", "model")) == [
        "output_0", "output_1_0", "output_1_1_0", "output_1_1_1", "output_2_a_b", "output_2_c_d",
    ]


def test_stage_values_are_the_values_returned(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(3)

    def make(x):
        return {"twice": x * 2, "pair": (x + 1, x.flip(0))}

    run_capture(Returns(make), tmp_path / "t.json", x)
    b = bundle_of(tmp_path / "t.json")
    np.testing.assert_array_equal(b["tensor.model.output_twice"], (x * 2).numpy())
    np.testing.assert_array_equal(b["tensor.model.output_pair_0"], (x + 1).numpy())


def test_two_keys_that_sanitise_alike_keep_two_stages(tmp_path, validate_report):
    run_capture(Returns(lambda x: {"a.b": x, "a_b": x + 1}), tmp_path / "t.json", torch.zeros(2))
    assert_whole(tmp_path / "t.json", validate_report)
    assert list(stages(tmp_path / "t.json", "model")) == ["output_a_b", "output_a_b__2"]


def test_a_dataclass_output_is_named_by_its_fields(tmp_path):
    @dataclasses.dataclass
    class Out:
        hidden: object
        scores: object = None

    run_capture(Returns(lambda x: Out(hidden=x * 2)), tmp_path / "t.json", torch.ones(2))
    assert list(stages(tmp_path / "t.json", "model")) == ["output_hidden"]
    assert skipped(tmp_path / "t.json") == [{"tensor": "model", "stage": "output_scores", "type": "NoneType"}]


def test_a_transformers_model_output_is_named_by_its_keys(tmp_path, validate_report):
    model, inputs = tiny_bert()
    with torch.no_grad(), capture(model, tmp_path / "bert.json", producer=PRODUCER) as run:
        model(**inputs)
    assert_whole(tmp_path / "bert.json", validate_report)
    assert list(stages(tmp_path / "bert.json", "model")) == ["output_last_hidden_state", "output_pooler_output"]
    # The ModelOutput's None fields are listed, not silently dropped.
    root_skipped = [s["stage"] for s in skipped(tmp_path / "bert.json") if s["tensor"] == "model"]
    assert "output_attentions" in root_skipped and "output_hidden_states" in root_skipped
    assert stages(tmp_path / "bert.json", "encoder.layer.0.attention.self").keys() == {"output_0"}
    assert run.report["tensors"][-1]["operation"] == "BertModel"


def test_none_and_non_tensors_are_skipped_and_listed(tmp_path, validate_report):
    def make(x):
        return (x, None, 3, "text", [], {"n": 1.5}, x.to(torch.int16), x.to(torch.complex64))

    path = tmp_path / "t.json"
    run_capture(Returns(make), path, torch.ones(2))
    report = assert_whole(path, validate_report)
    assert list(stages(path, "model")) == ["output_0"]
    listed = [(s["stage"], s["type"]) for s in skipped(path)]
    assert listed == [
        ("output_1", "NoneType"), ("output_2", "int"), ("output_3", "str"), ("output_4", "list"),
        ("output_5_n", "float"), ("output_6", "torch.Tensor"), ("output_7", "torch.Tensor"),
    ]
    why = {s["stage"]: s.get("why", "") for s in skipped(path)}
    assert "torch.int16" in why["output_6"] and "torch.complex64" in why["output_7"]
    assert report["producer"]["capture"]["skipped"][0]["tensor"] == "model"


def test_a_call_with_nothing_to_store_is_only_listed(tmp_path):
    class Nothing(nn.Module):
        def forward(self, x):
            return None

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.nothing = Nothing()

        def forward(self, x):
            self.nothing(x)
            return x

    run_capture(Outer(), tmp_path / "t.json", torch.ones(1))
    assert names(tmp_path / "t.json") == ["model"]
    assert skipped(tmp_path / "t.json") == [{"tensor": "nothing", "stage": "output", "type": "NoneType"}]


def test_the_rust_reader_accepts_the_skipped_list(tmp_path):
    model, inputs = tiny_bert()
    path = tmp_path / "bert.json"
    with torch.no_grad(), capture(model, path, producer=PRODUCER, inputs=True):
        model(**inputs)
    assert len(skipped(path)) > 10
    tol = exact_tolerances(path, tmp_path / "tol.json")
    r = parity("check", path, path, "--tolerances", tol, "--strict-stage-tolerances", "--strict-hash")
    assert r.returncode == 0, r.stdout + r.stderr


def test_inputs_are_recorded_before_outputs(tmp_path):
    class Two(nn.Module):
        def forward(self, x, y, *, scale, mask=None, flag=True):
            return x * scale + y

    x, y, s = torch.ones(2), torch.zeros(2), torch.tensor(2.0)
    path = tmp_path / "t.json"
    m = Wrap(Two())
    with torch.no_grad(), capture(m, path, producer=PRODUCER, inputs=True, modules=["inner"]):
        m(x, y, scale=s, mask=None)
    assert list(stages(path, "inner")) == ["input_0", "input_1", "input_scale", "output"]
    assert skipped(path) == [{"tensor": "inner", "stage": "input_mask", "type": "NoneType"}]
    b = bundle_of(path)
    np.testing.assert_array_equal(b["tensor.inner.input_scale"], s.numpy())
    np.testing.assert_array_equal(b["tensor.inner.output"], (x * s + y).numpy())


def test_inputs_are_off_by_default(tmp_path):
    run_capture(nn.Linear(2, 2), tmp_path / "t.json", torch.ones(2))
    assert list(stages(tmp_path / "t.json", "model")) == ["output"]
    assert read_report(tmp_path / "t.json")["producer"]["capture"]["inputs"] is False


# ---------------------------------------------------------------- dtypes and bytes


def test_dtypes_are_kept_bit_for_bit(tmp_path, validate_report):
    # bf16 bit patterns a float32 round trip would change: a NaN payload and
    # a signalling NaN (torch makes both the canonical 0x7FC0).
    bf16_bits = torch.tensor([0x7FC1, 0x7F81, 0x3F80, -0x0080, 0x0001], dtype=torch.int16)
    values = {
        "bf16": bf16_bits.view(torch.bfloat16),
        "f16": torch.tensor([1.5, -0.0, 65504.0], dtype=torch.float16),
        "f32": torch.tensor([1.0, 2.0], dtype=torch.float32),
        "f64": torch.tensor([1 / 3], dtype=torch.float64),
        "i64": torch.tensor([-(2**40), 7]),
        "i32": torch.tensor([-5, 6], dtype=torch.int32),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "b": torch.tensor([True, False, True]),
        "f8": torch.tensor([0.5, -448.0]).to(torch.float8_e4m3fn),
        "f8b": torch.tensor([0.5, 2.0]).to(torch.float8_e5m2),
        "scalar": torch.tensor(3.0, dtype=torch.bfloat16),
        "empty": torch.zeros(0, 3, dtype=torch.float16),
        "strided": torch.arange(6, dtype=torch.float32).reshape(2, 3).T,
    }
    path = tmp_path / "t.json"
    run_capture(Returns(lambda x: dict(values)), path, torch.ones(1))
    assert_whole(path, validate_report)
    st = stages(path, "model")
    assert {k[len("output_"):]: v["dtype"] for k, v in st.items()} == {
        "bf16": "BF16", "f16": "F16", "f32": "F32", "f64": "F64", "i64": "I64", "i32": "I32", "i8": "I8",
        "u8": "U8", "b": "BOOL", "f8": "F8_E4M3", "f8b": "F8_E5M2", "scalar": "BF16", "empty": "F16", "strided": "F32",
    }
    assert st["output_bf16"]["sha256"] == hashlib.sha256(bf16_bits.numpy().tobytes()).hexdigest()
    b = bundle_of(path)
    assert b["tensor.model.output_bf16"].view(np.int16).tolist() == bf16_bits.tolist()
    assert b["tensor.model.output_b"].tolist() == [True, False, True]
    assert st["output_scalar"]["shape"] == [] and st["output_empty"]["shape"] == [0, 3]
    np.testing.assert_array_equal(b["tensor.model.output_strided"], values["strided"].numpy())


def test_bf16_is_never_round_tripped_through_float32(tmp_path, monkeypatch):
    """Even a stage whose float32 round trip is exact must not take that path:
    `Tensor.float()` is made to fail, and bf16 stages are still written."""
    monkeypatch.setattr(torch.Tensor, "float", lambda self: (_ for _ in ()).throw(AssertionError("float32 round trip")))
    torch.manual_seed(0)
    net = Net().to(torch.bfloat16)
    run_capture(net, tmp_path / "t.json", torch.randn(2, 4, dtype=torch.bfloat16))
    assert {s["dtype"] for t in read_report(tmp_path / "t.json")["tensors"] for s in t["stages"].values()} == {"BF16"}


def test_tensors_are_aligned_to_their_element_size_in_the_bundle(tmp_path):
    def make(x):
        return (torch.ones(3, dtype=torch.bool), x.double(), torch.ones(1, dtype=torch.int8), x.half(), x, x.long())

    run_capture(Returns(make), tmp_path / "t.json", torch.ones(3))
    data = (tmp_path / "t_stages.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    assert (8 + n) % 8 == 0
    sizes = {"BOOL": 1, "F64": 8, "I8": 1, "F16": 2, "F32": 4, "I64": 8}
    for key, info in json.loads(data[8 : 8 + n]).items():
        assert (8 + n + info["data_offsets"][0]) % sizes[info["dtype"]] == 0, key


def test_a_capture_is_deterministic(tmp_path):
    model, inputs = tiny_bert()
    for d in ("a", "b"):
        with torch.no_grad(), capture(model, tmp_path / d / "t.json", producer=PRODUCER, inputs=True):
            model(**inputs)
    for f in ("t.json", "t_stages.safetensors"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


# ---------------------------------------------------------------- streaming and memory


def test_each_stage_is_on_disk_when_its_hook_returns(tmp_path):
    """Measured from a second hook on every module, which fires after the
    capture's: the bundle's temporary beside it already holds every byte so
    far after its header room, and no bundle or report exists yet."""
    torch.manual_seed(0)
    net = Net(d=8, n=4)
    seen, on_disk = [0], []

    def after(module, args, output):
        seen[0] += output.nbytes
        on_disk.append((data_in_temporaries(tmp_path, run), seen[0]))
        assert not (tmp_path / "t.json").exists() and not (tmp_path / "t_stages.safetensors").exists()

    with torch.no_grad(), capture(net, tmp_path / "t.json", producer=PRODUCER) as run:
        assert run._bundle.direct
        for m in net.modules():
            m.register_forward_hook(after)
        net(torch.randn(2, 8))
    assert len(on_disk) == len(net_order(4)) and all(a == b for a, b in on_disk), on_disk
    assert leftovers(tmp_path) == []


def _deep(n: int = 24, d: int = 256):
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(d, d) for _ in range(n)])


def test_memory_is_bounded_by_the_largest_stage(tmp_path):
    """peak_held_bytes counts the stage arrays the capture held, by weak
    reference (an array kept anywhere stays counted), and the hasher's
    read-back buffer: across 24 layers of 64 KiB activations it never
    exceeds two stages (the one being written, the piece being hashed)."""
    model = _deep()
    run = run_capture(model, tmp_path / "t.json", torch.randn(64, 256), inputs=True)
    assert run.largest_stage_bytes == 64 * 256 * 4
    assert 0 < run.peak_held_bytes <= 2 * run.largest_stage_bytes
    total = sum(s["shape"][0] * s["shape"][1] * 4 for t in read_report(tmp_path / "t.json")["tensors"] for s in t["stages"].values())
    assert total > 40 * run.largest_stage_bytes  # the run is far bigger than the bound


def test_the_memory_probe_sees_a_capture_that_keeps_its_arrays(tmp_path, monkeypatch):
    """The probe is not a tautology: a capture that kept each stage array
    (as an in-memory writer would) is seen holding the whole run."""
    kept = []
    real = torch_capture._stage_array

    def keeping(value, track):
        arr, why = real(value, track)
        kept.append(arr)
        return arr, why

    monkeypatch.setattr(torch_capture, "_stage_array", keeping)
    run = run_capture(_deep(n=8), tmp_path / "t.json", torch.randn(64, 256))
    assert run.peak_held_bytes >= 8 * run.largest_stage_bytes > 2 * run.largest_stage_bytes


def test_no_reference_to_an_earlier_activation_is_held(tmp_path):
    """A hook after the capture's keeps a weak reference to every output:
    when layer k fires, the outputs of layers < k-1 (which the model itself
    no longer needs) are gone, and after the run every one is."""
    model = _deep(n=16, d=64)
    refs: list[weakref.ref] = []

    def after(module, args, output):
        assert all(r() is None for r in refs[:-1]), [i for i, r in enumerate(refs[:-1]) if r() is not None]
        refs.append(weakref.ref(output))

    with torch.no_grad(), capture(model, tmp_path / "t.json", producer=PRODUCER, inputs=True):
        for m in model:
            m.register_forward_hook(after)
        out = model(torch.randn(8, 64))
        del out
    gc.collect()
    assert len(refs) == 16 and all(r() is None for r in refs)


def test_the_reference_probe_sees_a_capture_that_keeps_its_tensors(tmp_path, monkeypatch):
    kept = []
    real = torch_capture._stage_array
    monkeypatch.setattr(torch_capture, "_stage_array", lambda v, track: (kept.append(v), real(v, track))[1])
    model = _deep(n=4, d=8)
    refs = []
    with torch.no_grad(), capture(model, tmp_path / "t.json", producer=PRODUCER):
        for m in model:
            m.register_forward_hook(lambda m, a, o: refs.append(weakref.ref(o)))
        model(torch.randn(1, 8))
    assert all(r() is not None for r in refs)


def _copy_path_bundle(tmp_path, name):
    """A capture whose header outgrows its room (8 bytes), so the bundle
    is copied twice: into the spools, then assembled from them."""
    torch.manual_seed(0)
    path = tmp_path / name / "t.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch_capture, "_header_room", lambda modules, inputs: 8)
        run = run_capture(_deep(n=6, d=64), path, torch.randn(16, 64), inputs=True)
    return run, (path.parent / "t_stages.safetensors").read_bytes()


def _refuse(err):
    def f(*a, **k):
        raise OSError(err, os.strerror(err))

    return f


def test_the_bundle_is_assembled_by_kernel_copy_or_in_chunks_with_equal_bytes(tmp_path, monkeypatch):
    _, reference = _copy_path_bundle(tmp_path, "kernel")
    # copy_file_range refused (another filesystem): sendfile.
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EXDEV))
    _, by_sendfile = _copy_path_bundle(tmp_path, "sendfile")
    assert by_sendfile == reference
    # Both refused: pread/write in COPY_CHUNK pieces, one buffer at a time.
    monkeypatch.setattr(os, "sendfile", _refuse(errno.EINVAL))
    monkeypatch.setattr(bundle_stream, "COPY_CHUNK", 1024)
    run, by_chunks = _copy_path_bundle(tmp_path, "chunks")
    assert by_chunks == reference
    # The files (~56 KiB) were never read whole: the one buffer held at a
    # time is counted, and stays within a stage.
    assert len(reference) > 50 * 1024 and run.largest_stage_bytes == 4096
    assert run.peak_held_bytes <= 2 * run.largest_stage_bytes


def test_a_kernel_copy_that_stops_midway_is_resumed_where_it_stopped(tmp_path, monkeypatch):
    _, reference = _copy_path_bundle(tmp_path, "kernel")
    real = os.copy_file_range
    calls = [0]

    def once(*args):
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(errno.EXDEV, "cross-device")
        return real(*args)

    monkeypatch.setattr(bundle_stream, "_KERNEL_COPY_CALL", 1000)
    monkeypatch.setattr(os, "copy_file_range", once)
    _, resumed = _copy_path_bundle(tmp_path, "resumed")
    assert resumed == reference and calls[0] >= 2


def test_a_kernel_copy_error_that_is_not_about_support_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EIO))
    monkeypatch.setattr(torch_capture, "_header_room", lambda modules, inputs: 8)  # the copying fallback
    with pytest.raises(OSError):
        run_capture(Net(), tmp_path / "t.json", torch.ones(1, 4))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- direct layout, background hashing


def _arrays():
    rng = np.random.default_rng(0)
    return [
        ("a", rng.standard_normal((3, 5)).astype(np.float32)),
        ("b", rng.standard_normal(7)),  # f64 after 60 bytes: misaligned unless spooled
        ("c", np.arange(6, dtype=np.int64)),
        ("d", np.ones(3, dtype=np.float16)),
        ("e", np.zeros(0, dtype=np.float32)),
        ("f", np.ones(5, dtype=np.int8)),
    ]


def _bundle_bytes(path, arrays, **options) -> tuple[bytes, dict, "bundle_stream.StreamedBundle"]:
    b = bundle_stream.StreamedBundle(path, **options)
    returned = {}
    for key, arr in arrays:
        returned[key] = b.append(key, arr)[2]
    shas = b.sha256s()
    b.commit()
    for key, arr in arrays:
        assert shas[key] == hashlib.sha256(arr.tobytes()).hexdigest(), key
        assert returned[key] in (None, shas[key]), key
    return Path(path).read_bytes(), shas, b


def _read_with_safetensors(path) -> dict:
    import safetensors.numpy

    return safetensors.numpy.load_file(str(path))


@pytest.mark.parametrize("background", [False, True])
def test_a_direct_bundle_fills_its_header_room_and_is_read_by_safetensors_and_parity(tmp_path, background):
    by_key = dict(_arrays())
    arrays = [("c", by_key["c"]), ("a", by_key["a"]), ("g", np.ones(8, np.float32)), ("d", by_key["d"])]
    data, _, b = _bundle_bytes(tmp_path / "d.safetensors", arrays, header_room=1000, hash_in_background=background)
    assert b.header_room == 1000
    n = int.from_bytes(data[:8], "little")
    assert n == 1000 and data[8 + 1000 - 1 : 8 + 1000] == b" "  # padded with spaces to fill the room
    header = json.loads(data[8 : 8 + n])
    assert b.direct is False  # committed
    assert list(header) == ["c", "a", "g", "d"]  # append order, not grouped by width
    assert [header[k]["data_offsets"] for k in header] == [[0, 48], [48, 108], [108, 140], [140, 146]]
    assert len(data) == 8 + n + 146
    got = _read_with_safetensors(tmp_path / "d.safetensors")
    for key, arr in arrays:
        assert got[key].dtype == arr.dtype and np.array_equal(got[key], arr), key
    r = parity("inspect", tmp_path / "d.safetensors")
    assert r.returncode == 0, r.stderr
    assert leftovers(tmp_path) == []


def test_a_misaligned_append_falls_back_to_exactly_the_spooled_bytes(tmp_path):
    arrays = _arrays()
    spooled, _, _ = _bundle_bytes(tmp_path / "s.safetensors", arrays)
    b = bundle_stream.StreamedBundle(tmp_path / "d.safetensors", header_room=4096, hash_in_background=True)
    b.append(*arrays[0])
    assert b.direct
    b.append(*arrays[1])  # an f64 at data offset 60
    assert not b.direct and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    for key, arr in arrays[2:]:
        b.append(key, arr)
    shas = b.sha256s()
    b.commit()
    assert (tmp_path / "d.safetensors").read_bytes() == spooled
    assert all(shas[k] == hashlib.sha256(a.tobytes()).hexdigest() for k, a in arrays)
    got = _read_with_safetensors(tmp_path / "d.safetensors")
    assert all(np.array_equal(got[k], a) for k, a in arrays)
    assert leftovers(tmp_path) == []


def test_a_header_that_outgrows_its_room_falls_back_to_exactly_the_spooled_bytes(tmp_path):
    arrays = [(f"tensor.{i}.a_long_key_to_fill_the_header", np.full(4, i, np.float32)) for i in range(40)]
    spooled, _, _ = _bundle_bytes(tmp_path / "s.safetensors", arrays)
    data, _, b = _bundle_bytes(tmp_path / "d.safetensors", arrays, header_room=256, hash_in_background=True)
    assert data == spooled and int.from_bytes(data[:8], "little") > 256
    assert leftovers(tmp_path) == []


def test_a_bert_capture_stays_direct_and_its_header_fills_the_room(tmp_path, validate_report):
    model, inputs = tiny_bert()
    with torch.no_grad(), capture(model, tmp_path / "t.json", producer=PRODUCER) as run:
        model(**inputs)
        assert run._bundle.direct
    data = (tmp_path / "t_stages.safetensors").read_bytes()
    assert int.from_bytes(data[:8], "little") == run._bundle.header_room
    assert_whole(tmp_path / "t.json", validate_report)
    assert leftovers(tmp_path) == []


class _Doubler(nn.Module):
    """Changes its child's output in place after the child's hooks ran."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 4)

    def forward(self, x):
        y = self.inner(x)
        y.mul_(2)
        y.add_(1)
        return y


def test_an_output_changed_in_place_after_its_hook_is_captured_as_the_hook_saw_it(tmp_path, validate_report):
    torch.manual_seed(0)
    model = _Doubler()
    x = torch.randn(3, 4)
    with torch.no_grad():
        expected = model.inner(x).clone()
    run_capture(model, tmp_path / "t.json", x)
    assert_whole(tmp_path / "t.json", validate_report)
    got = bundle_of(tmp_path / "t.json")
    assert np.array_equal(got["tensor.inner.output"], expected.numpy())
    assert np.array_equal(got["tensor.model.output"], (expected * 2 + 1).numpy())
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("swallowed", [False, True])
def test_a_hasher_failure_fails_the_capture_and_writes_nothing(tmp_path, monkeypatch, swallowed):
    """The worker's error fails the run as a failed write in the hook does:
    raised by the next append (inside the forward) or at exit; no report,
    no bundle, no temporary, every hook removed."""
    real = bundle_stream._Hasher._hash
    calls = [0]

    def failing(self, fd, offset, length):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, fd, offset, length)

    monkeypatch.setattr(bundle_stream._Hasher, "_hash", failing)
    net = Net()
    with pytest.raises((OSError, RuntimeError)) as e:
        with torch.no_grad(), capture(net, tmp_path / "t.json", producer=PRODUCER):
            try:
                net(torch.ones(1, 4))
            except OSError:
                if not swallowed:
                    raise
    err = e.value if isinstance(e.value, OSError) else e.value.__cause__
    assert isinstance(err, OSError) and err.errno == errno.EIO
    assert list(tmp_path.iterdir()) == [] and sum(forward_hook_counts(net).values()) == 0


def test_a_hasher_failure_on_the_last_stage_fails_at_exit_and_keeps_the_old_report(tmp_path, monkeypatch):
    """No append comes after the last stage: its hash's failure is raised
    on exit, and the report and bundle already there stay as they were."""
    path = tmp_path / "t.json"
    run_capture(Net(), path, torch.ones(1, 4))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = bundle_stream._Hasher._hash
    calls = [0]

    def failing_last(self, fd, offset, length):
        calls[0] += 1
        if calls[0] == len(net_order()):
            raise OSError(errno.EIO, "Input/output error")
        return real(self, fd, offset, length)

    monkeypatch.setattr(bundle_stream._Hasher, "_hash", failing_last)
    with pytest.raises(OSError, match="Input/output"):
        run_capture(Net(), path, torch.full((1, 4), 2.0))
    assert calls[0] == len(net_order())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ---------------------------------------------------------------- grad modes


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode, torch.enable_grad])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_works_under_every_grad_mode(tmp_path, mode, dtype, validate_report):
    """Under inference_mode the outputs are inference tensors (no version
    counter, no views outside the mode): the capture reads them in the hook,
    inside the mode. Every mode gives the same bytes."""
    torch.manual_seed(0)
    net = Net(d=8).to(dtype)
    x = torch.randn(2, 8, dtype=dtype)
    inference = []
    with mode(), capture(net, tmp_path / "t.json", producer=PRODUCER, inputs=True):
        net.head.register_forward_hook(lambda m, a, o: inference.append(o.is_inference()))
        net(x)
    assert inference == [mode is torch.inference_mode]
    assert_whole(tmp_path / "t.json", validate_report)
    with torch.no_grad(), capture(net, tmp_path / "ref.json", producer=PRODUCER, inputs=True):
        net(x)
    assert (tmp_path / "t_stages.safetensors").read_bytes() == (tmp_path / "ref_stages.safetensors").read_bytes()


def test_bert_under_inference_mode(tmp_path, validate_report):
    model, inputs = tiny_bert()
    with torch.inference_mode(), capture(model, tmp_path / "a.json", producer=PRODUCER, inputs=True):
        model(**inputs)
    with torch.no_grad(), capture(model, tmp_path / "b.json", producer=PRODUCER, inputs=True):
        model(**inputs)
    a, b = assert_whole(tmp_path / "a.json", validate_report), assert_whole(tmp_path / "b.json", validate_report)
    assert a["tensors"] == b["tensors"]


# ---------------------------------------------------------------- exit, failure, files


def test_every_hook_is_removed_on_exit(tmp_path):
    model, inputs = tiny_bert()
    before = forward_hook_counts(model)
    with torch.no_grad(), capture(model, tmp_path / "t.json", producer=PRODUCER):
        assert sum(forward_hook_counts(model).values()) == sum(before.values()) + len(before)
        model(**inputs)
    assert forward_hook_counts(model) == before
    written = (tmp_path / "t.json").read_bytes()
    with torch.no_grad():
        model(**inputs)  # a call after the run records nothing
    assert (tmp_path / "t.json").read_bytes() == written


class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.ok = nn.Linear(4, 4)

    def forward(self, x):
        self.ok(x)
        raise RuntimeError("boom")


def test_a_forward_that_raises_leaves_nothing_and_no_hook(tmp_path):
    model = Boom()
    out = tmp_path / "new" / "dir" / "t.json"
    with pytest.raises(RuntimeError, match="boom"):
        with capture(model, out, producer=PRODUCER):
            model(torch.ones(1, 4))
    assert sum(forward_hook_counts(model).values()) == 0
    assert list(tmp_path.iterdir()) == []  # not even the directories it made


def test_a_forward_that_raises_leaves_an_earlier_report_untouched(tmp_path):
    path = tmp_path / "t.json"
    run_capture(Net(), path, torch.ones(1, 4))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    model = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        with capture(model, path, producer=PRODUCER):
            model(torch.ones(1, 4))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_hook_failure_caught_inside_the_block_still_writes_nothing(tmp_path, monkeypatch):
    real = bundle_stream.StreamedBundle.append
    calls = [0]

    def failing(self, key, arr):
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, key, arr)

    monkeypatch.setattr(bundle_stream.StreamedBundle, "append", failing)
    net = Net()
    with pytest.raises(RuntimeError, match="a hook failed") as e:
        with torch.no_grad(), capture(net, tmp_path / "t.json", producer=PRODUCER):
            try:
                net(torch.ones(1, 4))
            except OSError:
                pass  # the caller swallows it; the run must not pretend to be whole
    assert isinstance(e.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == [] and sum(forward_hook_counts(net).values()) == 0


def test_a_capture_into_an_existing_report_replaces_it_atomically(tmp_path):
    path = tmp_path / "t.json"
    run_capture(Net(), path, torch.zeros(1, 4))
    old_report, old_bundle = path.read_bytes(), (tmp_path / "t_stages.safetensors").read_bytes()
    # Readers that opened the old files keep reading them whole: the new
    # ones are renamed over them, never written into them.
    with open(path, "rb") as r, open(tmp_path / "t_stages.safetensors", "rb") as b:
        run_capture(Net(), path, torch.ones(1, 4))
        assert r.read() == old_report and b.read() == old_bundle
    assert path.read_bytes() != old_report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t_stages.safetensors"]


def test_nothing_captured_is_an_error_that_writes_nothing(tmp_path):
    net = Net()
    with pytest.raises(ValueError, match="no tensor was captured"):
        with capture(net, tmp_path / "t.json", producer=PRODUCER, modules=[]):
            net(torch.ones(1, 4))
    assert list(tmp_path.iterdir()) == []


def test_a_capture_runs_once(tmp_path):
    model = nn.Linear(2, 2)
    c = capture(model, tmp_path / "t.json", producer=PRODUCER)
    with torch.no_grad(), c:
        model(torch.ones(2))
    with pytest.raises(RuntimeError, match="runs once"):
        with c:
            pass


def test_the_producer_capture_key_is_the_capture_s_own():
    with pytest.raises(ValueError, match=r"producer\['capture'\]"):
        capture(nn.Linear(2, 2), "/nonexistent/t.json", producer=dict(PRODUCER, capture={}))


def test_extra_producer_keys_and_versions_are_kept(tmp_path):
    producer = dict(PRODUCER, run_id="r1", versions={"transformers": "5.25.0"})
    model = nn.Linear(2, 2)
    with torch.no_grad(), capture(model, tmp_path / "t.json", producer=producer):
        model(torch.ones(2))
    p = read_report(tmp_path / "t.json")["producer"]
    assert list(p)[:3] == ["name", "implementation", "versions"]
    assert p["run_id"] == "r1" and p["versions"]["transformers"] == "5.25.0"
    assert p["versions"]["torch"] == str(torch.__version__)
    assert list(p)[-1] == "capture"


# ---------------------------------------------------------------- record


def test_record_takes_its_place_in_execution_order(tmp_path, validate_report):
    torch.manual_seed(0)
    net = Net()
    path = tmp_path / "t.json"
    with torch.no_grad(), capture(net, path, producer=PRODUCER, modules=["embed", "head"]) as run:
        h = net.embed(torch.randn(2, 4))
        scores = h @ h.T
        run.record("attention.manual", "manual_attention", scores=scores, probs=torch.softmax(scores, -1).numpy())
        run.record("attention.manual", "manual_attention", scores=scores * 2)  # called again
        net.head(h)
        run.record("post", "numpy_argmax", label=np.argmax(scores.numpy(), -1), note=None)
    assert names(path) == ["embed", "attention.manual", "attention.manual#2", "head", "post"]
    report = assert_whole(path, validate_report)
    entry = report["tensors"][1]
    assert entry["operation"] == "manual_attention" and list(entry["stages"]) == ["scores", "probs"]
    assert entry["stages"]["probs"]["dtype"] == "F32" and report["tensors"][4]["stages"]["label"]["dtype"] == "I64"
    assert skipped(path) == [{"tensor": "post", "stage": "note", "type": "NoneType"}]
    b = bundle_of(path)
    np.testing.assert_array_equal(b["tensor.attention_manual.scores"], scores.numpy())


def test_record_accepts_numpy_bf16(tmp_path):
    import ml_dtypes

    bits = np.array([0x7FC1, 0x3F80], dtype=np.uint16)
    with capture(nn.Identity(), tmp_path / "t.json", producer=PRODUCER, modules=[]) as run:
        run.record("cast", "my_cast", out=bits.view(ml_dtypes.bfloat16))
    assert stages(tmp_path / "t.json", "cast")["out"]["dtype"] == "BF16"
    assert bundle_of(tmp_path / "t.json")["tensor.cast.out"].view(np.uint16).tolist() == bits.tolist()


def test_record_is_refused_outside_the_block_and_with_bad_arguments(tmp_path):
    c = capture(nn.Identity(), tmp_path / "t.json", producer=PRODUCER)
    with pytest.raises(RuntimeError, match="inside the capture's with block"):
        c.record("x", "op", out=np.zeros(1))
    with torch.no_grad(), c as run:
        run.record("ok", "op", out=np.zeros(1))
        with pytest.raises(ValueError, match="stage name 'é' must be non-empty and use only"):
            run.record("x", "op", **{"é": np.zeros(1)})
        with pytest.raises(ValueError, match="no stages given"):
            run.record("x", "op")
        with pytest.raises(ValueError, match="operation 'svf_apply' is an operation of parity's catalog"):
            run.record("x", "svf_apply", final_bf16=np.zeros(1))
        with pytest.raises(ValueError, match="ends like a repeated call"):
            run.record("x#2", "op", out=np.zeros(1))
    with pytest.raises(RuntimeError, match="inside the capture's with block"):
        run.record("late", "op", out=np.zeros(1))
    assert names(tmp_path / "t.json") == ["ok"]


# ---------------------------------------------------------------- the package and the Rust reader


def test_capture_is_exported_as_the_function():
    import parity_oracle

    assert capture is torch_capture.capture and parity_oracle.capture is torch_capture.capture
    assert "capture" in parity_oracle.__all__


def test_a_bert_capture_is_read_by_parity_inspect_and_checks_against_itself(tmp_path, validate_report):
    model, inputs = tiny_bert()
    path = tmp_path / "torch.json"
    with torch.no_grad(), capture(model, path, producer={"name": "transformers", "implementation": "torch-f32"}, inputs=True):
        model(**inputs)
    report = assert_whole(path, validate_report)
    assert len(report["tensors"]) == 45
    r = parity("inspect", tmp_path / "torch_stages.safetensors")
    assert r.returncode == 0, r.stderr
    assert "tensor.model.output_last_hidden_state" in r.stdout
    tol = exact_tolerances(path, tmp_path / "tol.json")
    r = parity("check", path, path, "--tolerances", tol, "--strict-stage-tolerances", "--strict-hash")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Result: PASS" in r.stdout


def test_a_device_a_fifo_or_a_link_as_the_report_path_is_never_replaced(tmp_path):
    """/dev/null and a FIFO are refused before the forward runs (a rename
    over them would destroy them); a symbolic link is followed, the file it
    names written with its bundle beside it, and the link kept."""
    import stat

    net = Net(d=4, n=2)
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    for out in ["/dev/null", fifo]:
        with pytest.raises(ValueError, match="device, FIFO or socket"):
            with torch.no_grad(), capture(net, out, producer=PRODUCER):
                net(torch.randn(1, 4))
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not os.path.exists("/dev/null_stages.safetensors")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (tmp_path / "real").mkdir()
    link = tmp_path / "l.json"
    link.symlink_to("real/r.json")
    with torch.no_grad(), capture(net, link, producer=PRODUCER):
        net(torch.randn(1, 4))
    assert link.is_symlink()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["r.json", "r_stages.safetensors"]
    assert read_report(link)["stage_bundle"] == "r_stages.safetensors"
