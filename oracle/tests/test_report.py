"""The report writer: file formats of SPEC §4, as the Rust side reads them."""

from __future__ import annotations

import hashlib
import json
import os

import ml_dtypes
import numpy as np
import pytest
import safetensors

from parity_oracle import (
    ReportWriter,
    decompose_f32,
    load_tensors,
    safe_key,
    sha256_hex,
    svf_apply_f32,
    svf_components,
    svf_params,
)

PRODUCER = {"name": "test-svf", "implementation": "numpy-f32"}
NAME = "model.layers.26.mlp.gate_proj.weight"
KEY = "model_layers_26_mlp_gate_proj_weight"


def svf_case(seed: int = 0, m: int = 6, n: int = 4, final=None):
    rng = np.random.default_rng(seed)
    source = (rng.standard_normal((m, n)) * 0.05).astype(np.float32)
    u, s, v = decompose_f32(source)
    offsets = (rng.standard_normal(s.shape[0]) * 0.05).astype(np.float32)
    final = final or [n, m]
    stages = svf_apply_f32(source, u, s, v, offsets, final_shape=final)
    return stages, svf_components(source, u, s, v, offsets), svf_params(final)


def write_one(tmp_path, name=NAME, **kwargs):
    stages, comps, params = svf_case()
    w = ReportWriter(tmp_path / "python.json", producer=PRODUCER, **kwargs)
    w.add_tensor(name, operation="svf_apply", params=params, stages=stages, components=comps)
    w.write()
    return w, stages, comps


# ---------------------------------------------------------------- keys


def test_safe_key_replaces_every_char_outside_ascii_word_chars():
    assert safe_key(NAME) == KEY
    assert safe_key("a-b/c:d e") == "a_b_c_d_e"
    assert safe_key("Already_Safe_09") == "Already_Safe_09"
    assert safe_key("décodé.w") == "d_cod__w"  # one "_" per code point, like Rust's chars()


def test_safe_key_refuses_empty_names():
    with pytest.raises(ValueError):
        safe_key("")


def test_two_names_with_one_key_are_an_error(tmp_path):
    stages, _, params = svf_case()
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    w.add_tensor("a.b", operation="svf_apply", params=params, stages=stages)
    with pytest.raises(ValueError, match=r"'a\.b' and 'a_b' both map to the key 'a_b'"):
        w.add_tensor("a_b", operation="svf_apply", params=params, stages=stages)
    with pytest.raises(ValueError, match="already added"):
        w.add_tensor("a.b", operation="svf_apply", params=params, stages=stages)


def test_bundle_keys_are_tensor_key_stage(tmp_path):
    w, stages, comps = write_one(tmp_path)
    bundle = load_tensors(tmp_path / "python_stages.safetensors")
    assert set(bundle) == {f"tensor.{KEY}.{st}" for st in stages}
    components = load_tensors(tmp_path / "python_components.safetensors")
    assert set(components) == {f"tensor.{KEY}.{c}" for c in ("source", "u", "s", "v", "offsets")}


# ---------------------------------------------------------------- report format


def test_report_has_the_contract_keys_in_order(tmp_path):
    write_one(tmp_path)
    text = (tmp_path / "python.json").read_text(encoding="utf-8")
    report = json.loads(text)
    assert list(report) == ["schema", "producer", "stage_bundle", "components", "baseline", "tensors"]
    assert report["schema"] == "parity.report.v1"
    assert list(report["producer"]) == ["name", "implementation", "versions"]
    assert list(report["producer"]["versions"]) == ["python", "numpy", "ml_dtypes", "safetensors"]
    assert list(report["baseline"]) == ["label", "historical_reproducible", "note"]
    (t,) = report["tensors"]
    assert list(t) == ["name", "key", "operation", "params", "stages", "final_sha256"]
    assert (t["name"], t["key"], t["operation"]) == (NAME, KEY, "svf_apply")
    assert list(t["stages"]["final_bf16"]) == ["dtype", "shape", "sha256"]
    assert report["stage_bundle"] == "python_stages.safetensors"
    assert report["components"] == "python_components.safetensors"


def test_report_text_is_two_space_indented_with_trailing_newline(tmp_path):
    write_one(tmp_path)
    text = (tmp_path / "python.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    assert '\n  "producer": {\n    "name"' in text


def test_report_validates_against_the_json_schema(tmp_path, validate_report):
    write_one(tmp_path)
    validate_report(json.loads((tmp_path / "python.json").read_text()))
    stages, _, params = svf_case()
    w = ReportWriter(tmp_path / "minimal.json", producer=PRODUCER)
    w.add_tensor("x", operation="svf_apply", params=params, stages=stages,
                 historical_final_sha256="AB" * 32)
    validate_report(w.write())


def test_stage_entries_describe_dtype_shape_and_hash_of_the_stored_bytes(tmp_path):
    _, stages, _ = write_one(tmp_path)
    report = json.loads((tmp_path / "python.json").read_text())
    entry = report["tensors"][0]
    raw = dict(safetensors.deserialize((tmp_path / "python_stages.safetensors").read_bytes()))
    for stage, arr in stages.items():
        desc = entry["stages"][stage]
        info = raw[f"tensor.{KEY}.{stage}"]
        assert desc["dtype"] == info["dtype"] == ("BF16" if stage == "final_bf16" else "F32")
        assert desc["shape"] == list(info["shape"]) == list(arr.shape)
        assert desc["sha256"] == hashlib.sha256(bytes(info["data"])).hexdigest()
    assert entry["final_sha256"] == entry["stages"]["final_bf16"]["sha256"]


def test_bundle_round_trips_bit_exact(tmp_path):
    _, stages, comps = write_one(tmp_path)
    bundle = load_tensors(tmp_path / "python_stages.safetensors")
    for stage, arr in stages.items():
        back = bundle[f"tensor.{KEY}.{stage}"]
        assert back.dtype == arr.dtype and back.shape == arr.shape
        assert back.tobytes() == arr.tobytes()
        assert sha256_hex(back) == sha256_hex(arr)
    components = load_tensors(tmp_path / "python_components.safetensors")
    for name, arr in comps.items():
        assert components[f"tensor.{KEY}.{name}"].tobytes() == arr.tobytes()


def test_bf16_hash_is_over_the_u16_bits_little_endian():
    x = np.array([1.0, -2.0, 0.5], dtype=np.float32).astype(ml_dtypes.bfloat16)
    expected = hashlib.sha256(bytes([0x80, 0x3F, 0x00, 0xC0, 0x00, 0x3F])).hexdigest()
    assert sha256_hex(x) == expected


def test_historical_hash_is_written_lowercase_and_only_when_given(tmp_path):
    stages, _, params = svf_case()
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    w.add_tensor("with", operation="svf_apply", params=params, stages=stages, historical_final_sha256="600BE6AB" * 8)
    w.add_tensor("without", operation="svf_apply", params=params, stages=stages)
    report = w.write()
    assert report["tensors"][0]["historical_final_sha256"] == "600be6ab" * 8
    assert list(report["tensors"][0])[-1] == "historical_final_sha256"
    assert "historical_final_sha256" not in report["tensors"][1]
    with pytest.raises(ValueError, match="64 hex digits"):
        w.add_tensor("bad", operation="svf_apply", params=params, stages=stages, historical_final_sha256="xyz")


def test_no_components_means_no_components_file_or_field(tmp_path):
    stages, _, params = svf_case()
    w = ReportWriter(tmp_path / "python.json", producer=PRODUCER)
    w.add_tensor(NAME, operation="svf_apply", params=params, stages=stages)
    report = w.write()
    assert "components" not in report
    assert sorted(os.listdir(tmp_path)) == ["python.json", "python_stages.safetensors"]


def test_paths_are_relative_to_the_report_and_may_not_escape(tmp_path):
    w, _, _ = write_one(tmp_path / "out", stage_bundle="b/stages.safetensors", components="c.safetensors")
    assert (tmp_path / "out" / "b" / "stages.safetensors").is_file()
    assert (tmp_path / "out" / "c.safetensors").is_file()
    for bad in ("../x.safetensors", "/tmp/x.safetensors", "a/../../x.safetensors"):
        with pytest.raises(ValueError, match="stay inside"):
            ReportWriter(tmp_path / "r.json", producer=PRODUCER, stage_bundle=bad)


def test_producer_versions_are_merged_and_baseline_checked(tmp_path):
    w = ReportWriter(tmp_path / "r.json", producer={**PRODUCER, "versions": {"numpy": "mine", "cuda": "12.4"}},
                     baseline={"label": "python readback", "historical_reproducible": True})
    stages, _, params = svf_case()
    w.add_tensor("x", operation="svf_apply", params=params, stages=stages)
    report = w.write()
    assert report["producer"]["versions"]["numpy"] == "mine"
    assert list(report["producer"]["versions"])[-1] == "cuda"
    assert report["baseline"] == {"label": "python readback", "historical_reproducible": True}
    with pytest.raises(ValueError, match="historical_reproducible"):
        ReportWriter(tmp_path / "r.json", producer=PRODUCER, baseline={"label": "x"})
    with pytest.raises(ValueError, match="producer.implementation"):
        ReportWriter(tmp_path / "r.json", producer={"name": "x"})


# ---------------------------------------------------------------- stages


def test_known_operation_stages_are_written_in_pipeline_order(tmp_path):
    stages, _, params = svf_case()
    shuffled = dict(reversed(list(stages.items())))
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="svf_apply", params=params, stages=shuffled)
    assert list(entry["stages"]) == list(stages)


def test_a_subset_of_stages_is_fine_but_the_final_one_is_required(tmp_path):
    stages, _, params = svf_case()
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="svf_apply", params=params,
                         stages={k: stages[k] for k in ("source_f32", "final_bf16")})
    assert list(entry["stages"]) == ["source_f32", "final_bf16"]
    with pytest.raises(ValueError, match="final stage 'final_bf16'"):
        w.add_tensor("y", operation="svf_apply", params=params, stages={"source_f32": stages["source_f32"]})


def test_unknown_stage_of_a_known_operation_is_an_error(tmp_path):
    stages, _, params = svf_case()
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    with pytest.raises(ValueError, match="unknown stage.*sacled_s"):
        w.add_tensor("x", operation="svf_apply", params=params, stages={**stages, "sacled_s": stages["scaled_s"]})
    assert w.report()["tensors"] == []  # a failed add leaves no trace


def test_other_operations_keep_the_given_order_and_end_with_the_final_stage(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="my_cast", params={"to": "BF16"},
                         stages={"input_f32": a, "output_bf16": a.astype(ml_dtypes.bfloat16)})
    assert list(entry["stages"]) == ["input_f32", "output_bf16"]
    assert entry["final_sha256"] == entry["stages"]["output_bf16"]["sha256"]


@pytest.mark.parametrize("bad", ["a.b", "", "with space"])
def test_stage_names_must_be_safe(tmp_path, bad):
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    with pytest.raises(ValueError, match="stage name"):
        w.add_tensor("x", operation="my_cast", params={}, stages={bad: np.zeros(2, np.float32)})


def test_unsupported_dtypes_and_types_are_refused(tmp_path):
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    with pytest.raises(TypeError, match="unsupported dtype"):
        w.add_tensor("x", operation="my_cast", params={}, stages={"out": np.zeros(2, np.complex64)})
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        w.add_tensor("x", operation="my_cast", params={}, stages={"out": [1.0, 2.0]})


def test_all_supported_dtypes_round_trip(tmp_path):
    arrays = {
        "f64": np.array([1.5, -2.25]), "f32": np.array([1.5], np.float32),
        "bf16": np.array([1.5], np.float32).astype(ml_dtypes.bfloat16), "f16": np.array([1.5], np.float16),
        "i64": np.array([-3], np.int64), "i32": np.array([7], np.int32), "i8": np.array([-1], np.int8),
        "u8": np.array([255], np.uint8), "bool": np.array([True, False]),
        "f8e4m3": np.array([1.5], np.float32).astype(ml_dtypes.float8_e4m3fn),
        "f8e5m2": np.array([1.5], np.float32).astype(ml_dtypes.float8_e5m2),
        "scalar0d": np.float32(3.0),
    }
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="dtypes", params={}, stages=arrays)
    w.write()
    back = load_tensors(tmp_path / "r_stages.safetensors")
    for name, arr in arrays.items():
        got = back[f"tensor.x.{name}"]
        assert got.dtype == np.asarray(arr).dtype and got.tobytes() == np.asarray(arr).tobytes(), name
    assert entry["stages"]["f8e4m3"]["dtype"] == "F8_E4M3" and entry["stages"]["scalar0d"]["shape"] == []


def test_non_contiguous_arrays_are_stored_c_contiguous(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4).T  # Fortran-ordered view
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="my_cast", params={}, stages={"out": a})
    w.write()
    back = load_tensors(tmp_path / "r_stages.safetensors")["tensor.x.out"]
    assert np.array_equal(back, a)
    assert entry["stages"]["out"]["sha256"] == hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_params_must_be_plain_json(tmp_path):
    stages, _, _ = svf_case()
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="svf_apply", params={"final_shape": (np.int64(4), 6)}, stages=stages)
    assert entry["params"] == {"final_shape": [4, 6]}
    with pytest.raises(ValueError, match="JSON"):
        w.add_tensor("y", operation="svf_apply", params={"scale": float("nan")}, stages=stages)


# ---------------------------------------------------------------- torch


def test_torch_tensors_are_accepted_bit_exact(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    w32 = torch.randn(6, 4, generator=g, requires_grad=True)
    bf = (w32 * 3).to(torch.bfloat16)
    stages = {
        "source_f32": w32,  # requires grad: detached by the writer
        "final_f32": w32.detach().T,  # non-contiguous view
        "final_bf16": bf,
    }
    w = ReportWriter(tmp_path / "torch.json", producer={"name": "t", "implementation": "torch-f32"})
    entry = w.add_tensor("x", operation="svf_apply", params={"final_shape": [4, 6]}, stages=stages,
                         components={"h": w32.detach().to(torch.float16)})
    report = w.write()
    assert entry["stages"]["final_bf16"]["dtype"] == "BF16"
    expected_bits = bf.view(torch.int16).numpy().view(np.uint16)
    back = load_tensors(tmp_path / "torch_stages.safetensors")
    assert np.array_equal(back["tensor.x.final_bf16"].view(np.uint16), expected_bits)
    assert np.array_equal(back["tensor.x.final_f32"], w32.detach().T.contiguous().numpy())
    assert load_tensors(tmp_path / "torch_components.safetensors")["tensor.x.h"].dtype == np.float16
    assert report["producer"]["versions"]["torch"] == torch.__version__


def test_torch_fp8_tensors_keep_their_bits(tmp_path):
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "float8_e4m3fn"):
        pytest.skip("this torch has no float8")
    t = torch.tensor([0.5, -1.75, 448.0]).to(torch.float8_e4m3fn)
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="my_cast", params={}, stages={"out": t})
    assert entry["stages"]["out"]["dtype"] == "F8_E4M3"
    assert entry["stages"]["out"]["sha256"] == hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()


# ---------------------------------------------------------------- atomicity & determinism


def test_write_leaves_no_temporary_files(tmp_path):
    write_one(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [
        "python.json", "python_components.safetensors", "python_stages.safetensors"
    ]


def test_failed_write_keeps_the_previous_files_intact(tmp_path, monkeypatch):
    write_one(tmp_path)
    before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    stages, comps, params = svf_case(seed=9)
    w = ReportWriter(tmp_path / "python.json", producer=PRODUCER)
    w.add_tensor("other", operation="svf_apply", params=params, stages=stages, components=comps)
    with pytest.raises(OSError, match="disk full"):
        w.write()
    assert {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)} == before


def test_same_content_gives_the_same_bytes(tmp_path):
    stages, comps, params = svf_case()
    for d, order in (("a", 1), ("b", -1)):
        w = ReportWriter(tmp_path / d / "python.json", producer=PRODUCER)
        items = [("t.one", stages), ("t.two", stages)]
        for name, st in items:
            w.add_tensor(name, operation="svf_apply", params=params,
                         stages=dict(list(st.items())[::order]), components=dict(list(comps.items())[::order]))
        w.write()
    for f in ("python.json", "python_stages.safetensors", "python_components.safetensors"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_writing_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no tensors"):
        ReportWriter(tmp_path / "r.json", producer=PRODUCER).write()



def test_arrays_changed_in_place_after_add_do_not_change_what_is_written(tmp_path):
    a = np.ones((2, 2), np.float32)
    w = ReportWriter(tmp_path / "r.json", producer=PRODUCER)
    entry = w.add_tensor("x", operation="my_cast", params={}, stages={"out": a})
    a *= 5
    w.write()
    back = load_tensors(tmp_path / "r_stages.safetensors")["tensor.x.out"]
    assert np.all(back == 1) and sha256_hex(back) == entry["stages"]["out"]["sha256"]
