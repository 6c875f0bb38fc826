"""Measure lossgrad's torch convention against live PyTorch (2 threads) where TensorIterator splits an elementwise
operation of more than 32,768 elements between its threads: float32 bce from logits and torchvision's sigmoid focal
loss (γ = 0.7, 2, 2.5 and 3, α = 0.25) over random batches of 40,000 to 200,003 elements, gradient and reduced
value bit for bit. Prints the batches run and those apart.

    python3 scripts/measure_threads.py [SEED]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import lossgrad

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import torchvision_focal  # noqa: E402

SHAPES = ((1, 40000), (4, 25000), (1, 100000), (1, 200003), (2, 50001), (3, 33333), (10, 10000))


def one(loss: str, shape: tuple[int, int], reduction: str, gamma: float, rng) -> bool:
    """Whether lossgrad and PyTorch are apart on one random batch."""
    z = (rng.standard_normal(shape) * 3).astype(np.float32)
    y = (rng.random(shape) < 0.3).astype(np.float32) if loss == "focal" else rng.random(shape).astype(np.float32)
    zt = torch.tensor(z, requires_grad=True)
    if loss == "focal":
        out = torchvision_focal()(zt, torch.tensor(y), alpha=0.25, gamma=gamma, reduction=reduction)
        options = {"gamma": gamma, "alpha": 0.25}
    else:
        out = torch.nn.functional.binary_cross_entropy_with_logits(zt, torch.tensor(y), reduction=reduction)
        options = {}
    out.backward()
    r = lossgrad.evaluate(loss, y.astype(np.float64), z.astype(np.float64), from_logits=True, convention="torch",
                          dtype="float32", reduction=reduction, **options)
    return bool((r.grad.reshape(shape) != zt.grad.numpy()).any() or np.float32(r.value) != out.item())


def main() -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for loss, gammas in (("bce", (0.0,)), ("focal", (0.7, 2.0, 2.5, 3.0))):
        runs = [one(loss, shape, reduction, gamma, rng) for shape in SHAPES for gamma in gammas
                for reduction in ("mean", "sum")]
        print(f"{loss}: {len(runs)} batches, {sum(runs)} apart")


if __name__ == "__main__":
    main()
