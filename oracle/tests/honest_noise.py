"""Honest noise for the capture tests and benches/capture_bench.py: a copy of
a model whose every nonzero f32 weight moved by ±1 ULP at random (a seeded
coin per element), which is what a port that stores or transposes weights
through another library can do. Zeros stay zero (one ULP of 0 is a
subnormal, which no library produces from a copy)."""

from __future__ import annotations

import copy


def honest_noise(model, seed: int):
    import torch

    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            # The float's bits as an integer: ±1 is one ULP away (no sign
            # crossing: the magnitude's bits move, nonzero values only).
            bits = p.data.view(torch.int32)
            step = torch.randint(0, 2, p.shape, generator=g, dtype=torch.int32) * 2 - 1
            nonzero = p.data != 0
            bits[nonzero] += step[nonzero]
    return m
