"""Record a real gradient-accumulation loop in PyTorch: a batch split into K micro-batches along its first axis,
F.cross_entropy(..., ignore_index=-100) (a mean) per micro-batch, each divided by K and back-propagated into the
same logits, beside the true mean over every counted token. Writes tests/golden/microbatch.json, read by
tests/test_microbatch.py.

    python3 -m pip install torch==2.13.0 && python3 scripts/golden_microbatch.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "microbatch.json"


def accumulate(logits: np.ndarray, targets: np.ndarray, k: int, weight: np.ndarray | None) -> dict:
    """The loop: for each micro-batch of the first axis, loss = cross_entropy(mean) / k, loss.backward(); the
    logits' .grad is then the accumulated gradient. Also the true mean over all counted tokens and its gradient."""
    import torch
    import torch.nn.functional as F

    classes = logits.shape[-1]
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(targets, dtype=torch.long)
    means, accumulated = [], 0.0
    for zk, yk in zip(z.chunk(k, dim=0), y.chunk(k, dim=0), strict=True):
        loss = F.cross_entropy(zk.reshape(-1, classes), yk.reshape(-1), weight=w, ignore_index=-100)
        means.append(loss.item())
        (loss / k).backward()
        accumulated += loss.item() / k
    grad_micro = z.grad.detach().numpy().copy()
    zt = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    true = F.cross_entropy(zt.reshape(-1, classes), y.reshape(-1), weight=w, ignore_index=-100)
    true.backward()
    return {"means": means, "accumulated": accumulated, "true_mean": true.item(),
            "grad_micro": grad_micro.reshape(-1, classes).tolist(),
            "grad_true": zt.grad.detach().numpy().reshape(-1, classes).tolist()}


def case(name: str, seed: int, shape: tuple[int, ...], k: int, ignored: float, weighted: bool,
         empty_first: bool = False) -> dict:
    """Random logits of `shape` (leading axes, then classes) and targets with a share `ignored` set to -100
    (more in the first micro-batch, so the micro-batches count different numbers of tokens; `empty_first`: all of
    it, whose mean is then 0/0)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=shape)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    mask = rng.random(shape[:-1]) < ignored
    mask[: shape[0] // k] |= rng.random(mask[: shape[0] // k].shape) < (1.0 if empty_first else 0.5)
    targets[mask] = -100
    weight = rng.uniform(0.5, 2.0, size=shape[-1]) if weighted else None
    return {"name": name, "k": k, "leading": list(shape[:-1]), "classes": shape[-1],
            "targets": targets.reshape(-1).tolist(), "logits": logits.reshape(-1, shape[-1]).tolist(),
            "class_weights": None if weight is None else weight.tolist(),
            **accumulate(logits, targets, k, weight)}


def main() -> None:
    import torch

    cases = [
        case("tokens [B=4, T=6, V=5], K=2", 1, (4, 6, 5), 2, 0.2, False),
        case("tokens [B=8, T=5, V=7], K=4", 2, (8, 5, 7), 4, 0.3, False),
        case("tokens [B=6, T=4, V=3], K=3, class weights", 3, (6, 4, 3), 3, 0.25, True),
        case("samples [N=12, C=4], K=4", 4, (12, 4), 4, 0.2, False),
        case("tokens [B=4, T=3, V=4], K=2, first micro-batch all ignored", 5, (4, 3, 4), 2, 0.2, False, True),
    ]
    meta = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    OUT.write_text(json.dumps({"versions": meta, "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
