"""The PyTorch side of examples/capture_mlp.rs: the same small MLP block, the
same weights and input, captured with `parity_oracle.capture`.

    python3 oracle/examples/capture_mlp.py examples/data/mlp.safetensors torch.json
    cargo run --release --example capture_mlp -- examples/data/mlp.safetensors rust.json
    parity check torch.json rust.json --atol 1e-5 --rtol 1e-5

Each module call becomes one report tensor named by its dotted path (the
root "model"), in the order the hooks fire — a child before its parent:
fc1, act, fc2, norm, model — with the module's class name as operation and
one stage, `output`. The Rust example records the same names in the same
order.

`--write-weights PATH` (re)writes the weights and the input instead, with
numpy from a fixed seed (no torch needed): the file shipped as
examples/data/mlp.safetensors. Its values are drawn as torch's default
init draws them (uniform in ±1/sqrt(fan_in)), LayerNorm's weight and bias
perturbed so that they are not the identity.

This is a script, not part of the package; the capture needs torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

D_MODEL = 16
D_HIDDEN = 64
INPUT_SHAPE = (2, 8, D_MODEL)  # batch, sequence, features
SEED = 20261208


def write_weights(path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(SEED)

    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    tensors = {
        "fc1.weight": uniform((D_HIDDEN, D_MODEL), D_MODEL),
        "fc1.bias": uniform((D_HIDDEN,), D_MODEL),
        "fc2.weight": uniform((D_MODEL, D_HIDDEN), D_HIDDEN),
        "fc2.bias": uniform((D_MODEL,), D_HIDDEN),
        "norm.weight": (1.0 + 0.1 * rng.standard_normal(D_MODEL)).astype(np.float32),
        "norm.bias": (0.1 * rng.standard_normal(D_MODEL)).astype(np.float32),
        "input": rng.standard_normal(INPUT_SHAPE).astype(np.float32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))  # keys sorted, no metadata: the same bytes every time
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def capture_torch(weights: Path, out: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from parity_oracle import capture

    class MLP(torch.nn.Module):
        """x + fc2(GELU(fc1(x))), layer-normed: a transformer block's MLP half."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(D_MODEL, D_HIDDEN)
            self.act = torch.nn.GELU()  # erf, torch's default
            self.fc2 = torch.nn.Linear(D_HIDDEN, D_MODEL)
            self.norm = torch.nn.LayerNorm(D_MODEL)  # eps 1e-5

        def forward(self, x):
            return self.norm(x + self.fc2(self.act(self.fc1(x))))

    tensors = load_file(str(weights))
    x = tensors.pop("input")
    model = MLP()
    model.load_state_dict(tensors, strict=True)
    model.eval()
    with torch.no_grad():
        with capture(model, out, producer={"name": "torch", "implementation": "torch-f32"}):
            model(x)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", type=Path, help="the weights and input (examples/data/mlp.safetensors)")
    ap.add_argument("out", type=Path, nargs="?", help="the report to write (torch.json)")
    ap.add_argument("--write-weights", action="store_true", help="write WEIGHTS from the fixed seed instead (numpy only)")
    args = ap.parse_args()
    if args.write_weights:
        write_weights(args.weights)
    elif args.out is None:
        ap.error("give the report to write, OUT (or --write-weights)")
    else:
        capture_torch(args.weights, args.out)


if __name__ == "__main__":
    main()
