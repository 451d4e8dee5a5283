"""svf_apply as SPEC §3 defines it: stages, numerics, orientation, edge cases."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from conftest import SVF_TOLERANCES, stage_diff

from parity_oracle import SVF_STAGES, decompose_f32, resolve_orientation, svf_apply_f32, svf_apply_f64

PIPELINES = {"f32": svf_apply_f32, "f64": svf_apply_f64}


def random_inputs(seed: int, m: int, n: int, k: int | None = None, scale: float = 0.05):
    rng = np.random.default_rng(seed)
    source = (rng.standard_normal((m, n)) * scale).astype(np.float32)
    u, s, v = decompose_f32(source, k)
    offsets = (rng.standard_normal(s.shape[0]) * 0.05).astype(np.float32)
    return source, u, s, v, offsets


def rank1_inputs(values_bits, scale: float = 1.0):
    """k = 1, s = [1], offsets = [0]: final_f32 is exactly u * scale."""
    u = np.array(values_bits, dtype=np.uint32).view(np.float32).reshape(-1, 1)
    v = np.array([[scale]], dtype=np.float32)
    s = np.ones(1, np.float32)
    offsets = np.zeros(1, np.float32)
    source = np.ascontiguousarray(u * np.float32(scale))
    return source, u, s, v, offsets


def bf16_bits(stages) -> list[int]:
    return [int(b) for b in stages["final_bf16"].view(np.uint16).ravel()]


# ---------------------------------------------------------------- stages


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_stages_have_the_contract_names_order_and_shapes(pipeline):
    source, u, s, v, offsets = random_inputs(0, 7, 5)
    stages = PIPELINES[pipeline](source, u, s, v, offsets, final_shape=[5, 7])
    assert tuple(stages) == SVF_STAGES
    float_dtype = np.float32 if pipeline == "f32" else np.float64
    for name, arr in stages.items():
        expected = ml_dtypes.bfloat16 if name == "final_bf16" else float_dtype
        assert arr.dtype == expected, name
        assert arr.flags.c_contiguous, name
    shapes = {name: arr.shape for name, arr in stages.items()}
    assert shapes == {
        "source_f32": (7, 5),
        "offsets_f32": (5,),
        "scaled_s": (5,),
        "normalization": (1,),
        "u_scaled": (7, 5),
        "matmul_pre_norm": (7, 5),
        "zero_source_f32": (7, 5),
        "adapted_source_f32": (7, 5),
        "final_f32": (5, 7),
        "final_bf16": (5, 7),
    }


def test_f32_pipeline_computes_every_stage_in_f32():
    source, u, s, v, offsets = random_inputs(1, 9, 6)
    st = svf_apply_f32(source, u, s, v, offsets, final_shape=[9, 6])
    scaled = s * (np.float32(1) + offsets)
    assert np.array_equal(st["scaled_s"], scaled)  # elementwise f32: bit-exact
    assert np.array_equal(st["u_scaled"], u * scaled)
    assert st["normalization"][0] == np.float32(np.sum(s, dtype=np.float32) / np.sum(scaled, dtype=np.float32))
    assert np.array_equal(st["adapted_source_f32"], st["matmul_pre_norm"] * st["normalization"][0])
    assert np.array_equal(st["final_bf16"], st["final_f32"].astype(ml_dtypes.bfloat16))


def test_f64_pipeline_rounds_final_through_f32_then_bf16():
    source, u, s, v, offsets = random_inputs(2, 9, 6)
    st = svf_apply_f64(source, u, s, v, offsets, final_shape=[9, 6])
    expected = st["final_f32"].astype(np.float32).astype(ml_dtypes.bfloat16)
    assert np.array_equal(st["final_bf16"].view(np.uint16), expected.view(np.uint16))
    assert np.array_equal(st["source_f32"], source.astype(np.float64))


@pytest.mark.parametrize(
    "seed,shape,k,final",
    [
        (10, (64, 48), None, (64, 48)),
        (11, (48, 64), None, (64, 48)),
        (12, (96, 96), None, (96, 96)),
        (13, (80, 40), 12, (40, 80)),
        (14, (128, 384), None, (128, 384)),
    ],
)
def test_f32_and_f64_pipelines_agree_within_spec_tolerances(seed, shape, k, final):
    inputs = random_inputs(seed, *shape, k)
    a = svf_apply_f32(*inputs, final_shape=final)
    b = svf_apply_f64(*inputs, final_shape=final)
    for stage, (max_tol, mean_tol) in SVF_TOLERANCES.items():
        max_abs, mean_abs = stage_diff(a[stage], b[stage])
        if stage in ("scaled_s", "u_scaled"):
            # SPEC's mean_abs 1e-8 for these is below f32 resolution once singular
            # values reach ~0.5 (f32 spacing at 1 is 1.2e-7): it holds between two
            # f32 implementations doing the same elementwise ops (bit-exact), not
            # between f32 and f64. Against f64 the honest bound is the f32 rounding
            # error: (1 + o) and the product(s) each round once, ≤ 2^-24 relative.
            ref = np.abs(b[stage])
            assert np.all(np.abs(a[stage] - b[stage]) <= 3.01 * 2.0**-24 * ref), stage
            assert max_abs <= max_tol, (stage, max_abs)
            continue
        assert max_abs <= max_tol and mean_abs <= mean_tol, (stage, max_abs, mean_abs)


def test_f32_pipeline_matches_a_torch_f32_pipeline():
    torch = pytest.importorskip("torch")
    source, u, s, v, offsets = random_inputs(20, 96, 64)
    ours = svf_apply_f32(source, u, s, v, offsets, final_shape=[64, 96])
    U, S, V, off = (torch.from_numpy(x) for x in (u, s, v, offsets))
    # The user's pipeline, as written in the SVF workflow this project replaces.
    scaled_s = S * (1.0 + off)
    normalization = S.sum() / scaled_s.sum()
    u_scaled = U * scaled_s.reshape(1, -1)
    matmul = u_scaled @ V.T
    adapted = matmul * normalization
    final = adapted.T.contiguous()
    theirs = {
        "scaled_s": scaled_s,
        "normalization": normalization.reshape(1),
        "u_scaled": u_scaled,
        "matmul_pre_norm": matmul,
        "zero_source_f32": (U * S.reshape(1, -1)) @ V.T,
        "adapted_source_f32": adapted,
        "final_f32": final,
        "final_bf16": final.to(torch.bfloat16).float(),
    }
    for stage, t in theirs.items():
        assert t.dtype in (torch.float32,), stage
        max_abs, mean_abs = stage_diff(ours[stage].astype(np.float32), t.numpy())
        max_tol, mean_tol = SVF_TOLERANCES[stage]
        assert max_abs <= max_tol and mean_abs <= mean_tol, (stage, max_abs, mean_abs)
    # Elementwise stages involve no summation order: bit-equal to torch.
    assert np.array_equal(ours["scaled_s"], theirs["scaled_s"].numpy())
    assert np.array_equal(ours["u_scaled"], theirs["u_scaled"].numpy())
    # torch's own f32 -> bf16 rounding agrees with ours on the same f32 values.
    same_f32 = torch.from_numpy(ours["final_f32"]).to(torch.bfloat16).view(torch.int16).numpy()
    assert np.array_equal(same_f32.view(np.uint16), ours["final_bf16"].view(np.uint16))


# ---------------------------------------------------------------- orientation


def test_orientation_follows_final_shape_when_transpose_is_absent():
    assert resolve_orientation((6, 4), [6, 4]) is False
    assert resolve_orientation((6, 4), [4, 6]) is True
    assert resolve_orientation((0, 3), [3, 0]) is True


def test_square_weight_is_transposed_only_when_transpose_says_so():
    assert resolve_orientation((5, 5), [5, 5]) is False
    assert resolve_orientation((5, 5), [5, 5], transpose=False) is False
    assert resolve_orientation((5, 5), [5, 5], transpose=True) is True
    source, u, s, v, offsets = random_inputs(3, 5, 5)
    kept = svf_apply_f32(source, u, s, v, offsets, final_shape=[5, 5])
    flipped = svf_apply_f32(source, u, s, v, offsets, final_shape=[5, 5], transpose=True)
    assert np.array_equal(kept["final_f32"], kept["adapted_source_f32"])
    assert np.array_equal(flipped["final_f32"], kept["adapted_source_f32"].T)
    assert np.array_equal(flipped["final_bf16"].view(np.uint16), kept["final_bf16"].view(np.uint16).T)


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_transposed_result_is_the_transpose_of_the_adapted_source(pipeline):
    source, u, s, v, offsets = random_inputs(4, 6, 9)
    st = PIPELINES[pipeline](source, u, s, v, offsets, final_shape=[9, 6])
    assert st["final_f32"].shape == (9, 6) and st["final_f32"].flags.c_contiguous
    assert np.array_equal(st["final_f32"], st["adapted_source_f32"].T)


@pytest.mark.parametrize("final_shape", [[6, 5], [4, 4], [24], [6, 4, 1], [-6, -4]])
def test_final_shape_that_is_neither_layout_is_an_error_naming_it(final_shape):
    source, u, s, v, offsets = random_inputs(5, 6, 4)
    with pytest.raises(ValueError, match="final_shape"):
        svf_apply_f32(source, u, s, v, offsets, final_shape=final_shape)


@pytest.mark.parametrize(
    "shape,final_shape,transpose",
    [((6, 4), [6, 4], True), ((6, 4), [4, 6], False), ((5, 5), [5, 6], True)],
)
def test_transpose_disagreeing_with_final_shape_is_an_error(shape, final_shape, transpose):
    with pytest.raises(ValueError, match=r"disagrees with transpose"):
        resolve_orientation(shape, final_shape, transpose)


def test_transpose_must_be_a_bool():
    with pytest.raises(ValueError, match="transpose must be a bool"):
        resolve_orientation((3, 3), [3, 3], transpose="yes")


# ---------------------------------------------------------------- input validation


def test_v_in_vh_layout_is_refused_with_a_hint():
    source, u, s, v, offsets = random_inputs(6, 8, 5, k=3)
    with pytest.raises(ValueError, match="not Vᵀ"):
        svf_apply_f32(source, u, s, np.ascontiguousarray(v.T), offsets, final_shape=[8, 5])


@pytest.mark.parametrize(
    "which,bad",
    [
        ("u", lambda u, s, v, o: (u[:, :-1], s, v, o)),
        ("s", lambda u, s, v, o: (u, s.reshape(1, -1), v, o)),
        ("v", lambda u, s, v, o: (u, s, v[:-1], o)),
        ("offsets", lambda u, s, v, o: (u, s, v, o[:-1])),
    ],
)
def test_component_shapes_are_checked_against_the_source(which, bad):
    source, u, s, v, offsets = random_inputs(7, 8, 5)
    with pytest.raises(ValueError, match=rf"^{which} "):
        svf_apply_f32(source, *bad(u, s, v, offsets), final_shape=[8, 5])


def test_inputs_must_be_float32():
    source, u, s, v, offsets = random_inputs(8, 4, 3)
    with pytest.raises(TypeError, match="float32"):
        svf_apply_f64(source.astype(np.float64), u, s, v, offsets, final_shape=[4, 3])


# ---------------------------------------------------------------- bf16 rounding

# f32 bits -> bf16 bits under round-to-nearest-even, worked out by hand from the
# bit patterns (bf16 keeps the top 16 bits; the low 16 decide: < 0x8000 down,
# > 0x8000 up, == 0x8000 a tie that goes to the even top half).
RNE_CASES = [
    (0x3F800000, 0x3F80),  # 1.0 is exact
    (0x3F808000, 0x3F80),  # tie, 0x3F80 even: down
    (0x3F818000, 0x3F82),  # tie, 0x3F81 odd: up to 0x3F82
    (0x3F808001, 0x3F81),  # just above a tie: up
    (0x3F807FFF, 0x3F80),  # just below a tie: down
    (0x3F7F8000, 0x3F80),  # tie, odd: up, carrying into the exponent (1.0)
    (0xBF808000, 0xBF80),  # negative tie, even: toward zero
    (0xBF818000, 0xBF82),  # negative tie, odd: away from zero
    (0x00008000, 0x0000),  # subnormal tie, even: +0
    (0x00018000, 0x0002),  # subnormal tie, odd: up
    (0x0000C000, 0x0001),  # subnormal above half: up
    (0x80018000, 0x8002),  # negative subnormal tie, odd
    (0x80008000, 0x8000),  # negative subnormal tie, even: -0
    (0x007F8000, 0x0080),  # largest subnormal tie: up to the smallest normal
    (0x7F7F7FFF, 0x7F7F),  # below the tie above bf16 max: bf16 max
    (0x7F7F8000, 0x7F80),  # tie above bf16 max, odd: +inf
    (0xFF7F8000, 0xFF80),  # same, negative: -inf
    (0x7F7FFFFF, 0x7F80),  # f32 max: +inf
    (0x7F800000, 0x7F80),  # +inf stays +inf
]


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_final_bf16_rounds_to_nearest_even_at_ties(pipeline):
    bits = [b for b, _ in RNE_CASES]
    st = PIPELINES[pipeline](*rank1_inputs(bits), final_shape=[len(bits), 1])
    assert np.array_equal(np.asarray(st["final_f32"], np.float32).view(np.uint32).ravel(), np.array(bits, np.uint32))
    assert bf16_bits(st) == [e for _, e in RNE_CASES]


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_final_bf16_keeps_nan(pipeline):
    st = PIPELINES[pipeline](*rank1_inputs([0x7FC00000, 0x3F800000]), final_shape=[2, 1])
    out = st["final_bf16"].astype(np.float32)
    assert np.isnan(out[0, 0]) and out[1, 0] == 1.0


def test_f64_reference_rounds_twice_by_definition():
    # u·v = 1 + 2^-8 + 2^-31 - 2^-46 exactly: just above the bf16 tie 1 + 2^-8.
    # f64 -> f32 lands exactly on the tie, which f32 -> bf16 sends to even
    # (0x3F80); a direct f64 -> bf16 rounding would give 0x3F81. SPEC §3 defines
    # the reference's final_bf16 as the two-step result.
    u_val = np.float32(1 + 2.0**-8 - 2.0**-23)
    v_val = np.float32(1 + 2.0**-23)
    source, u, s, v, offsets = rank1_inputs([int(np.array(u_val).view(np.uint32))], float(v_val))
    st = svf_apply_f64(source, u, s, v, offsets, final_shape=[1, 1])
    exact = 1 + 2.0**-8 + 2.0**-31 - 2.0**-46
    assert st["final_f32"][0, 0] == exact
    assert exact > 1 + 2.0**-8  # above the tie, so a one-step rounding would go up
    assert bf16_bits(st) == [0x3F80]
    assert bf16_bits(svf_apply_f32(source, u, s, v, offsets, final_shape=[1, 1])) == [0x3F80]


# ---------------------------------------------------------------- edge cases


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_offsets_of_minus_one_zero_their_singular_values(pipeline):
    source, u, s, v, offsets = random_inputs(30, 12, 8)
    offsets[[0, 5]] = -1.0
    st = PIPELINES[pipeline](source, u, s, v, offsets, final_shape=[12, 8])
    assert np.all(st["scaled_s"][[0, 5]] == 0)
    assert np.all(st["u_scaled"][:, [0, 5]] == 0)
    assert np.all(np.isfinite(st["final_f32"]))


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_zero_sum_of_scaled_s_gives_the_ieee_result(pipeline):
    source, u, s, v, offsets = random_inputs(31, 6, 4)
    offsets[:] = -1.0
    with np.errstate(all="raise"):  # the pipeline must not leak warnings/errors
        st = PIPELINES[pipeline](source, u, s, v, offsets, final_shape=[6, 4])
    assert np.isposinf(st["normalization"][0])
    assert np.all(np.isnan(st["adapted_source_f32"])) and np.all(np.isnan(st["final_f32"]))
    assert np.all(np.isnan(st["final_bf16"].astype(np.float32)))


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_zero_offsets_reproduce_the_zero_offset_reconstruction(pipeline):
    source, u, s, v, _ = random_inputs(32, 10, 7)
    st = PIPELINES[pipeline](source, u, s, v, np.zeros_like(s), final_shape=[10, 7])
    assert st["normalization"][0] == 1
    assert np.array_equal(st["adapted_source_f32"], st["zero_source_f32"])


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
@pytest.mark.parametrize("shape,final", [((0, 3), (0, 3)), ((0, 3), (3, 0)), ((3, 0), (3, 0)), ((0, 0), (0, 0))])
def test_empty_tensors_give_defined_results(pipeline, shape, final):
    source = np.zeros(shape, np.float32)
    u, s, v = decompose_f32(source)
    with np.errstate(all="raise"):
        st = PIPELINES[pipeline](source, u, s, v, np.zeros_like(s), final_shape=final)
    assert st["final_f32"].shape == final and st["final_bf16"].shape == final
    assert np.isnan(st["normalization"][0])  # 0 / 0


@pytest.mark.parametrize("pipeline", ["f32", "f64"])
def test_rank_zero_on_a_non_empty_source_is_nan_not_an_error(pipeline):
    source = np.ones((4, 3), np.float32)
    u, s, v = decompose_f32(source, k=0)
    st = PIPELINES[pipeline](source, u, s, v, np.zeros_like(s), final_shape=[4, 3])
    assert np.all(st["matmul_pre_norm"] == 0)
    assert np.all(np.isnan(st["final_f32"]))


# ---------------------------------------------------------------- decomposition


def test_decompose_f32_returns_torch_svd_layout():
    rng = np.random.default_rng(40)
    source = rng.standard_normal((9, 6)).astype(np.float32)
    u, s, v = decompose_f32(source)
    assert (u.shape, s.shape, v.shape) == ((9, 6), (6,), (6, 6))
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in (u, s, v))
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose((u * s) @ v.T, source, atol=1e-5)


def test_decompose_f32_truncates_to_k():
    rng = np.random.default_rng(41)
    source = rng.standard_normal((9, 6)).astype(np.float32)
    u, s, v = decompose_f32(source, k=2)
    full_u, full_s, full_v = decompose_f32(source)
    assert (u.shape, s.shape, v.shape) == ((9, 2), (2,), (6, 2))
    assert np.array_equal(s, full_s[:2]) and np.array_equal(v, full_v[:, :2])
    with pytest.raises(ValueError, match="k=7"):
        decompose_f32(source, k=7)
