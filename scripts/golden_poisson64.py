"""Record PyTorch's poisson_nll_loss in float64 on the CPU, for tests/golden/poisson64.json (read by
tests/test_poisson64.py): lossgrad's poisson under the torch convention in float64, whose e^x and log x in double
are MKL's vmdExp and vmdLn (the mkl extra).

Each record: the case (batch, outputs, log_input, full, reduction, kind), the seed its inputs come from (inputs():
pure numpy draws and products, so the test rebuilds them on any machine) with the SHA-256 of the targets and
predictions, and torch's losses (reduction none) or value, and the gradient for the predictions (of the losses' sum
for none), every number as float.hex; gradients of more than 4,096 elements by SHA-256. Kinds: random counts at
rates from 1e-3 to 1e4 (the Stirling term where a count is above 1); edges (counts 0, 1 and 2, rates of 0 and
tiny ones, log rates of −700 to 700); a batch of 40,000 samples and one of 50,001 outputs. The versions, the
processor and whether PyTorch has MKL are recorded.

    python3 scripts/golden_poisson64.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, digest, save  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "poisson64.json"
SHAPES = ((1, 1), (3, 2), (7, 3), (5, 4), (9, 5), (16, 8), (4, 17), (2, 100))
LONG = ((40000, 3), (1, 50001))
KINDS = ("random", "edges")


def inputs(seed: int, shape: tuple[int, int], kind: str, log_input: bool) -> tuple[np.ndarray, np.ndarray]:
    """Counts and predictions (log rates for log_input, else rates) for the kind."""
    rng = np.random.default_rng(seed)
    rate = rng.random(shape) * 10.0 ** float(rng.choice([-3.0, 0.0, 2.0, 4.0]))
    y = rng.poisson(rate).astype(np.float64)
    p = rate * np.exp(rng.normal(size=shape) * 0.3)
    if kind == "edges":
        y = rng.choice([0.0, 1.0, 2.0, 1e6 + 0.5], size=shape)
        p = rng.choice([0.0, 1e-300, 1e-9, 0.5, 1e6], size=shape) * rng.random(shape)
        if log_input:
            p = rng.choice([-700.0, -30.0, 0.0, 30.0, 700.0], size=shape) * rng.random(shape)
    elif log_input:
        p = np.log(p)
    return y, p


def record(seed: int, shape: tuple[int, int], kind: str, log_input: bool, full: bool, reduction: str) -> dict:
    import torch

    y, p = inputs(seed, shape, kind, log_input)
    tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.poisson_nll_loss(tp, torch.tensor(y, dtype=torch.float64), log_input=log_input,
                                                full=full, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    assert tp.grad is not None
    out = loss.detach().numpy()
    return {"shape": list(shape), "kind": kind, "log_input": log_input, "full": full, "reduction": reduction,
            "seed": seed, "inputs_sha256": digest(y, p), "losses": _kept(out) if reduction == "none" else None,
            "value": None if reduction == "none" else float(out).hex(), "grad": _kept(tp.grad.numpy())}


def main() -> None:
    records, seed = [], 20261205
    for shape, kind in [(s, k) for s in SHAPES for k in KINDS] + [(s, "random") for s in LONG]:
        for log_input in (False, True):
            for full in (False, True):
                for reduction in ("none", "sum", "mean"):
                    records.append(record(seed, shape, kind, log_input, full, reduction))
                seed += 1
    save(OUT, records, "scripts/golden_poisson64.py")


if __name__ == "__main__":
    main()
