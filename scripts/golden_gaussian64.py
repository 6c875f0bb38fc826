"""Record PyTorch's gaussian_nll_loss in float64 on the CPU, for tests/golden/gaussian64.json (read by
tests/test_gaussian64.py): lossgrad's gaussian-nll under the torch convention in float64, whose log v in double is
MKL's vmdLn (the mkl extra).

Each record: the case (batch, outputs, a variance per prediction or per sample, full, eps, reduction, kind), the
seed its inputs come from (inputs(): pure numpy draws and products, so the test rebuilds them on any machine) with
the SHA-256 of the targets, predictions and variances, and torch's losses (reduction none) or value, and the
gradients for the predictions and the variances (of the losses' sum for none), every number as float.hex;
gradients of more than 4,096 elements by SHA-256. Kinds: random at scales from 1e-3 to 1e3 with variances from
1e-8 to 1e3; variances below eps and 0 (the clamp); a prediction equal to its target; a batch of 40,000 samples
and one of 50,001 outputs. The versions, the processor and whether PyTorch has MKL are recorded.

    python3 scripts/golden_gaussian64.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, digest, save  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "gaussian64.json"
SHAPES = ((1, 1), (3, 2), (7, 3), (5, 4), (9, 5), (16, 8), (4, 17), (2, 100))
LONG = ((40000, 3), (1, 50001))
KINDS = ("random", "clamped", "exact")


def inputs(seed: int, shape: tuple[int, int], kind: str, per_sample: bool) -> tuple[np.ndarray, ...]:
    """Targets, predictions and variances ([B, 1] per sample) for the kind."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=shape) * 10.0 ** float(rng.choice([-3.0, 0.0, 3.0]))
    p = y + rng.normal(size=shape) * 10.0 ** float(rng.choice([-3.0, 0.0, 3.0]))
    var = rng.random((shape[0], 1) if per_sample else shape) * 10.0 ** float(rng.choice([-8.0, 0.0, 3.0]))
    if kind == "clamped":
        var = var * 1e-9
        var.reshape(-1)[0] = 0.0
    elif kind == "exact":
        p = y.copy()
    return y, p, var


def record(seed: int, shape: tuple[int, int], kind: str, per_sample: bool, full: bool, eps: float,
           reduction: str) -> dict:
    import torch

    y, p, var = inputs(seed, shape, kind, per_sample)
    tp, tv = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (p, var))
    loss = torch.nn.functional.gaussian_nll_loss(tp, torch.tensor(y, dtype=torch.float64), tv, full=full, eps=eps,
                                                 reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    assert tp.grad is not None and tv.grad is not None
    out = loss.detach().numpy()
    return {"shape": list(shape), "kind": kind, "per_sample": per_sample, "full": full, "eps": eps,
            "reduction": reduction, "seed": seed, "inputs_sha256": digest(y, p, var),
            "losses": _kept(out) if reduction == "none" else None,
            "value": None if reduction == "none" else float(out).hex(),
            "grad": _kept(tp.grad.numpy()), "grad_var": _kept(tv.grad.numpy())}


def main() -> None:
    records, seed = [], 20261206
    for shape, kind in [(s, k) for s in SHAPES for k in KINDS] + [(s, "random") for s in LONG]:
        for per_sample in (False, True):
            full, eps = bool(seed % 2), (1e-6, 1e-3)[seed % 3 == 0]
            for reduction in ("none", "sum", "mean"):
                records.append(record(seed, shape, kind, per_sample, full, eps, reduction))
            seed += 1
    save(OUT, records, "scripts/golden_gaussian64.py")


if __name__ == "__main__":
    main()
