"""PyTorch's CPU f32 matmul on the shapes `cargo bench -- gemm_flops` uses.

    python3 benches/torch_matmul.py
"""

import time

import torch

for m, k, n in [(1024, 1024, 1024), (3072, 1024, 1024)]:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    runs = 20
    t = time.perf_counter()
    for _ in range(runs):
        a @ b
    dt = (time.perf_counter() - t) / runs
    print(f"torch {torch.__version__} matmul {m}x{k}x{n}: {dt * 1e3:.2f} ms, {2 * m * k * n / dt / 1e9:.1f} GFLOP/s "
          f"({torch.get_num_threads()} threads)")
