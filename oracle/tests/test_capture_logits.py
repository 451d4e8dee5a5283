"""`check --logits` on a tiny causal LM (issue 23 point 3, "Logits"; point 4's
causal LM): token metrics per position over the vocabulary, gated by
`--min-top1`/`--max-kl` (or a profile's `min_top1`/`max_kl`).

The model is a 2-layer `LlamaForCausalLM` from a config (random init, no
download, GQA: 4 query heads over 2 KV heads). The expected metrics are
computed here in numpy from the captured logits themselves, independently of
parity's Rust code: top-1 agreement, top-5 overlap, and
KL(softmax(left) ‖ softmax(right)) in f64.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.numpy import load_file  # noqa: E402

from parity_oracle import capture  # noqa: E402

from honest_noise import honest_noise as one_ulp_noise  # noqa: E402
from test_capture import parity  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 256
BATCH, SEQ = 2, 12


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    reference = transformers.LlamaForCausalLM(cfg).eval()
    # Random init gives logits too flat to tell tokens apart: a sharper head.
    with torch.no_grad():
        reference.lm_head.weight.mul_(20.0)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))

    def honest_noise(seed):
        return one_ulp_noise(reference, seed)

    ports = {"noisy": honest_noise(1)}
    # A temperature bug: the final norm's weight halved halves every logit.
    # The top-1 token never changes, so only the KL can tell.
    cooled = honest_noise(2)
    with torch.no_grad():
        cooled.model.norm.weight.mul_(0.5)
    ports["cooled"] = cooled
    # Two tokens swapped in the head (a vocabulary mapped off by one entry).
    swapped = honest_noise(3)
    with torch.no_grad():
        logits = reference(input_ids=ids).logits
        a, b = (int(t) for t in torch.topk(logits[0, 0], 2).indices)
        w = swapped.lm_head.weight
        w[[a, b]] = w[[b, a]]
    ports["swapped"] = swapped

    paths = {}
    for name, model in [("reference", reference), *ports.items()]:
        path = d / f"{name}.json"
        with torch.no_grad(), capture(
            model, path, producer={"name": "transformers", "implementation": f"torch-{name}"}, root="causal_lm"
        ):
            model(input_ids=ids)
        paths[name] = path
    return paths


def logits_of(report_path) -> np.ndarray:
    report = json.loads(report_path.read_text())
    (t,) = [t for t in report["tensors"] if t["name"] == "lm_head"]
    bundle = load_file(str(report_path.with_name(report_path.stem + "_stages.safetensors")))
    return bundle[f"tensor.{t['key']}.output"].astype(np.float64).reshape(-1, VOCAB)


def expected_metrics(left, right) -> dict:
    def log_softmax(x):
        m = x.max(axis=1, keepdims=True)
        return x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))

    lp, rp = log_softmax(left), log_softmax(right)
    kl = np.maximum((np.exp(lp) * (lp - rp)).sum(axis=1), 0.0)
    # Rank by value, ties by lower index (a stable sort of the negated row).
    top_l = np.argsort(-left, axis=1, kind="stable")[:, :5]
    top_r = np.argsort(-right, axis=1, kind="stable")[:, :5]
    shared = [len(set(a) & set(b)) for a, b in zip(top_l, top_r)]
    agree = int((top_l[:, 0] == top_r[:, 0]).sum())
    kls = np.sort(kl)
    return {
        "positions": left.shape[0],
        "top1_agree": agree,
        "top5_overlap": sum(shared) / (5 * left.shape[0]),
        "kl_mean": kl.mean(),
        "kl_p99": kls[int(np.ceil(0.99 * len(kls))) - 1],
        "kl_max": kls[-1],
    }


def lm_head_stage(result) -> dict:
    (t,) = [t for t in result["tensors"] if t["name"] == "lm_head"]
    return t["stages"][0]


def check(runs, right, *flags):
    out = parity("check", runs["reference"], runs[right], "--format", "json", *flags)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


@pytest.mark.parametrize("port", ["noisy", "cooled", "swapped"])
def test_token_metrics_are_what_numpy_computes_from_the_captured_logits(runs, port):
    _, result = check(runs, port, "--atol", "1e9", "--rtol", "1e9", "--logits", "lm_head")
    got = lm_head_stage(result)["logits"]
    want = expected_metrics(logits_of(runs["reference"]), logits_of(runs[port]))
    assert got["positions"] == want["positions"] == BATCH * SEQ
    assert got["vocab"] == VOCAB
    assert got["top1_agree"] == want["top1_agree"]
    assert got["top1_agreement"] == want["top1_agree"] / want["positions"]
    assert got["top5_overlap"] == pytest.approx(want["top5_overlap"], abs=1e-12)
    for k in ("kl_mean", "kl_p99", "kl_max"):
        # Sums in f64 in another order. Each log-probability carries an
        # absolute rounding of ~|log p|·2⁻⁵³ (log 256 ≈ 5.5: ~6e-16), and a
        # near-zero KL is a sum of such differences, so its absolute error
        # is a few 1e-15: far below the 1e-6 a KL is read at.
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-13), k
    assert got["kl_nan_positions"] == 0


def test_honest_noise_keeps_every_token_and_passes_tight_token_limits(runs):
    code, result = check(
        runs, "noisy", "--atol", "1e-3", "--rtol", "1e-3", "--logits", "lm_head", "--min-top1", "1", "--max-kl", "1e-6"
    )
    assert code == 0, result["first_divergence"]
    m = lm_head_stage(result)["logits"]
    assert m["top1_agreement"] == 1.0 and m["kl_mean"] < 1e-6
    assert (lm_head_stage(result)["tolerance"]["min_top1"], lm_head_stage(result)["tolerance"]["max_kl"]) == (1.0, 1e-6)


def test_a_temperature_bug_keeps_every_top1_token_but_fails_max_kl(runs):
    flags = ("--atol", "1e9", "--rtol", "1e9", "--logits", "lm_head")
    code, result = check(runs, "cooled", *flags, "--min-top1", "1")
    assert code == 0, "halving the logits keeps every argmax"
    assert lm_head_stage(result)["logits"]["top1_agreement"] == 1.0
    code, result = check(runs, "cooled", *flags, "--min-top1", "1", "--max-kl", "1e-3")
    assert code == 1
    stage = lm_head_stage(result)
    assert stage["logits"]["kl_mean"] > 1e-3
    assert any(f.startswith("mean KL ") for f in stage["failures"]), stage["failures"]
    assert result["first_divergence"]["tensor"] == "lm_head"


def test_swapped_tokens_fail_min_top1_and_the_text_says_where(runs):
    flags = ("--atol", "1e9", "--rtol", "1e9", "--logits", "lm_head", "--min-top1", "1")
    code, result = check(runs, "swapped", *flags)
    assert code == 1
    m = lm_head_stage(result)["logits"]
    assert m["top1_agree"] < m["positions"]
    text = parity("check", runs["reference"], runs["swapped"], *flags)
    assert text.returncode == 1
    assert f"output: tokens: {BATCH * SEQ} positions × {VOCAB} tokens: top-1 agrees at {m['top1_agree']} (" in text.stdout
    assert "top-1 agreement" in text.stdout


def test_a_profile_gives_the_same_limits(runs, tmp_path):
    profile = tmp_path / "tokens.json"
    profile.write_text(
        json.dumps(
            {
                "schema": "parity.tolerances.v1",
                "operations": {"Linear": {"output": {"required": True, "max_abs": 1e9, "mean_abs": 1e9, "max_kl": 1e-3}}},
            }
        )
    )
    out = parity(
        "check", runs["reference"], runs["cooled"], "--atol", "1e9", "--rtol", "1e9",
        "--tolerances", profile, "--logits", "lm_head", "--format", "json",
    )
    assert out.returncode == 1, out.stderr
    assert lm_head_stage(json.loads(out.stdout))["tolerance"]["max_kl"] == 1e-3


@pytest.mark.parametrize(
    "flags, named",
    [
        (("--logits", "no_such_module"), "--logits"),
        (("--logits", "lm_head", "--min-top1", "1.5"), "--min-top1"),
        (("--logits", "lm_head", "--max-kl=-1"), "--max-kl"),
    ],
)
def test_bad_token_flags_exit_2_naming_the_flag(runs, flags, named):
    out = parity("check", runs["reference"], runs["noisy"], "--atol", "1e-3", "--rtol", "1e-3", *flags)
    assert out.returncode == 2, out.stdout[-500:]
    assert named in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
