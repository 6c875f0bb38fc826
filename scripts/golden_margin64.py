"""Record PyTorch's margin_ranking_loss in float64 on the CPU, for tests/golden/margin64.json (read by
tests/test_margin64.py): lossgrad's margin-ranking under the torch convention in float64, (−y·(x1 − x2) + margin)
clamped at 0 on PyTorch's double kernels, torch.sum's float64 cascade for the value.

Each record: the case (shape, kind, margin, reduction, weighted), the seed its inputs come from (inputs(): pure numpy
draws, sums and products, so the test rebuilds them on any machine) with the SHA-256 of the labels, x1, x2 and the
sample weights, and torch's losses (reduction none) or value, and the gradients for x1 and x2 (of the losses' sum
for none), every number as float.hex, so that a zero's sign counts; arrays of more than 256 elements by SHA-256.
Weighted records are (loss(reduction="none") · w).mean() or .sum(), as PyTorch users weigh it by sample. Kinds:
random at scales from 1e-3 to 1e3; ties (x1 − x2 = −y·margin exactly: the hinge at 0, where clamp_min passes the
gradient); clamped (every pair ranked beyond the margin: zeros, signed as autograd signs them); and a batch of 40,000
pairs and one of 3 × 20,000 (torch.sum's threads). Margins 0, 0.1 and 1, and −0 and −0.5 (PyTorch takes any sign;
with −0 a tie's loss is −0, clamp_min keeping it). The versions, the processor and the threads are recorded.

    python3 scripts/golden_margin64.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import digest, save  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "margin64.json"
HASHED = 256
SHAPES = ((1, 1), (6, 1), (7, 3), (5, 4), (9, 5), (16, 8), (11, 13), (2, 50))
LONG = ((40000, 1), (3, 20000))
KINDS = ("random", "tie", "clamped")
MARGINS = (0.0, 0.1, 1.0, -0.0, -0.5)  # (PyTorch takes a margin of any sign; −0 keeps a tie's −0)


def inputs(seed: int, shape: tuple[int, int], kind: str, margin: float,
           weighted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels ±1, x1, x2 and the sample weights (or None) for the kind."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** float(rng.choice([-3.0, 0.0, 3.0]))
    y = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
    x1, x2 = (rng.normal(size=shape) * scale for _ in range(2))
    if kind == "tie":  # (x1 − x2 = −y·margin in float64: the hinge exactly at 0)
        x1 = np.round(x1, 2)
        x2 = x1 + y * margin
        x2 = np.where(x1 - x2 == -y * margin, x2, x1)
    elif kind == "clamped":  # (x1 ranked above x2 where y = 1, below where y = −1, beyond the margin)
        x1 = x2 + y * (np.abs(rng.normal(size=shape)) * scale + margin + 1.0)
    w = rng.random(shape[0]) * 3.0 if weighted else None
    return y, x1, x2, w


def _kept(g: np.ndarray) -> object:
    return {"sha256": digest(g)} if g.size > HASHED else [float(v).hex() for v in g.reshape(-1)]


def record(seed: int, shape: tuple[int, int], kind: str, margin: float, reduction: str, weighted: bool) -> dict:
    import torch

    y, x1, x2, w = inputs(seed, shape, kind, margin, weighted)
    t1, t2 = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (x1, x2))
    loss = torch.nn.functional.margin_ranking_loss(t1, t2, torch.tensor(y), margin=margin,
                                                   reduction="none" if weighted else reduction)
    if weighted:
        weighed = loss * torch.tensor(w, dtype=torch.float64).reshape(-1, 1)
        loss = weighed if reduction == "none" else getattr(weighed, reduction)()
    (loss.sum() if reduction == "none" else loss).backward()
    assert t1.grad is not None and t2.grad is not None
    out = loss.detach().numpy()
    return {"shape": list(shape), "kind": kind, "margin": margin, "reduction": reduction, "weighted": weighted,
            "seed": seed, "inputs_sha256": digest(y, x1, x2, *(() if w is None else (w,))),
            "losses": _kept(out) if reduction == "none" else None,
            "value": None if reduction == "none" else float(out).hex(),
            "grad": _kept(t1.grad.numpy()), "grad_other": _kept(t2.grad.numpy())}


def main() -> None:
    cases = [(s, k, m) for s in SHAPES for k in KINDS for m in MARGINS] + [(s, "random", 0.1) for s in LONG]
    drawn = [(case, weighted) for case in cases for weighted in (False, True)]  # (a seed each, from 20261207)
    records = [record(seed, shape, kind, margin, reduction, weighted)
               for seed, ((shape, kind, margin), weighted) in enumerate(drawn, start=20261207)
               for reduction in ("none", "sum", "mean")]
    save(OUT, records, "scripts/golden_margin64.py")


if __name__ == "__main__":
    main()
