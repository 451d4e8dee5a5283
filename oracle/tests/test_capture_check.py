"""A real model end to end (issue 23 point 4): capture a small BERT, then
"ports" of it with planted bugs, each with honest noise, and hold
`parity check` to finding where each went wrong.

The reference and every port are the same random-init `BertModel` (no
download). Honest noise: every nonzero f32 weight moved by ±1 ULP at random,
which is what a port that stores or transposes weights through another
library can do. The bugs sit in different layers so that a wrong layer in
`first_divergence` cannot pass by accident.
"""

from __future__ import annotations

import copy
import json
import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from parity_oracle import capture  # noqa: E402

from honest_noise import honest_noise as one_ulp_noise  # noqa: E402
from test_capture import parity  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LAYERS = 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Captures of the reference and of each port, by name."""
    d = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        hidden_size=64,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=128,
        vocab_size=200,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    reference = transformers.BertModel(cfg).eval()
    ids = torch.randint(0, 200, (1, 16), generator=torch.Generator().manual_seed(1))

    def honest_noise(seed):
        return one_ulp_noise(reference, seed)

    def quick_gelu(x):
        # The sigmoid approximation of GELU some ports use: x·σ(1.702x).
        return x * torch.sigmoid(1.702 * x)

    ports = {"noisy": honest_noise(1)}
    gelu = honest_noise(2)
    # The instance's forward, not its class: the module keeps its name and
    # class, as a port with a wrong formula inside a right-named module does.
    gelu.encoder.layer[1].intermediate.intermediate_act_fn.forward = quick_gelu
    ports["gelu"] = gelu
    unscaled = honest_noise(3)
    unscaled.encoder.layer[2].attention.self.scaling = 1.0  # 1/√d left out
    ports["unscaled"] = unscaled
    eps = honest_noise(4)
    eps.encoder.layer[3].output.LayerNorm.eps = 1e-3  # BERT's is 1e-12
    ports["eps"] = eps
    bf16 = copy.deepcopy(reference).to(torch.bfloat16)
    ports["bf16"] = bf16

    paths = {}
    for name, model in [("reference", reference), *ports.items()]:
        path = d / f"{name}.json"
        with torch.no_grad(), capture(
            model, path, producer={"name": "transformers", "implementation": f"torch-{name}"}, root="bert"
        ):
            model(input_ids=ids)
        paths[name] = path
    return paths


def check(runs, right, *flags):
    out = parity("check", runs["reference"], runs[right], "--format", "json", *flags)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def test_honest_noise_passes_with_no_divergence_and_no_onset(runs):
    code, result = check(runs, "noisy", "--atol", "1e-4", "--rtol", "1e-4")
    assert code == 0, result["first_divergence"]
    assert result["first_divergence"] is None
    # Rounding noise grows along the six layers, slowly: no onset.
    assert result["onset"] is None, result["onset"]
    # A tolerance given is a tolerance enforced.
    assert result["modes"]["strict_stage_tolerances"]["enabled"]


def test_a_wrong_gelu_diverges_first_at_that_activation(runs):
    code, result = check(runs, "gelu", "--atol", "1e-4", "--rtol", "1e-4")
    assert code == 1
    assert result["first_divergence"]["tensor"] == "encoder.layer.1.intermediate.intermediate_act_fn"
    assert result["onset"]["tensor"] == "encoder.layer.1.intermediate.intermediate_act_fn"


def test_a_missing_attention_scale_diverges_first_in_that_attention(runs):
    code, result = check(runs, "unscaled", "--atol", "1e-4", "--rtol", "1e-4")
    assert code == 1
    assert result["first_divergence"]["tensor"] == "encoder.layer.2.attention.self"


def test_a_layernorm_eps_bug_fails_at_that_layernorm(runs):
    code, result = check(runs, "eps", "--atol", "1e-4", "--rtol", "1e-4")
    assert code == 1
    assert result["first_divergence"]["tensor"] == "encoder.layer.3.output.LayerNorm"


def test_under_loose_gates_the_eps_bug_passes_but_its_onset_is_named(runs):
    code, result = check(runs, "eps", "--atol", "1", "--rtol", "1")
    assert code == 0
    assert result["first_divergence"] is None
    onset = result["onset"]
    assert onset["tensor"] == "encoder.layer.3.output.LayerNorm", onset
    assert onset["relative_error"] > onset["threshold"] >= 100 * onset["unit_roundoff"]
    text = parity("check", runs["reference"], runs["eps"], "--atol", "1", "--rtol", "1")
    assert text.returncode == 0
    assert "warning: onset: encoder.layer.3.output.LayerNorm · output: relative error" in text.stdout
    # --fail-on-onset makes it a failure.
    failing = parity("check", runs["reference"], runs["eps"], "--atol", "1", "--rtol", "1", "--fail-on-onset")
    assert failing.returncode == 1, failing.stdout[-2000:]


def test_a_bf16_port_is_compared_by_value_under_bf16_limits(runs):
    code, result = check(runs, "bf16", "--dtype-defaults", "torch")
    stages = [(t["name"], s) for t in result["tensors"] for s in t["stages"]]
    compared = [(n, s) for n, s in stages if s["left"] and s["right"] and s["left"]["dtype"] != s["right"]["dtype"]]
    assert compared, "the bf16 port's float stages are BF16 against F32"
    for name, s in compared:
        assert s["metrics"] is not None, name
        assert not any("dtype" in f for f in s["failures"]), (name, s["failures"])
        # torch.testing's bf16 defaults, the narrower side's.
        assert (s["tolerance"]["rtol"], s["tolerance"]["atol"]) == (1.6e-2, 1e-5), name
    # The embedding lookup copies bf16-rounded weights: within bf16's limits.
    emb = dict(stages)["embeddings.word_embeddings"]
    assert emb["verdict"] == "pass", emb["failures"]
    assert code in (0, 1)


def test_map_pairs_a_port_that_names_its_modules_otherwise(runs, tmp_path):
    # The "port" names its layers blocks.N: --map renames them back.
    with open(runs["noisy"]) as f:
        report = json.load(f)
    for t in report["tensors"]:
        t["name"] = t["name"].replace("encoder.layer.", "encoder.blocks.")
    renamed = runs["noisy"].with_name("renamed.json")
    renamed.write_text(json.dumps(report))
    code, result = check(runs, "noisy", "--atol", "1e-4", "--rtol", "1e-4")
    assert code == 0
    out = parity(
        "check", runs["reference"], renamed, "--atol", "1e-4", "--rtol", "1e-4",
        "--map", r"encoder\.blocks\.=encoder.layer.", "--format", "json",
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    by_name = {t["name"]: t for t in got["tensors"]}
    assert by_name["encoder.layer.0.attention.self"]["right_name"] == "encoder.blocks.0.attention.self"
    unmapped = parity("check", runs["reference"], renamed, "--atol", "1e-4", "--rtol", "1e-4")
    assert unmapped.returncode == 2
    assert "missing from this report" in unmapped.stderr
