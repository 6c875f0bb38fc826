"""Measure lossgrad's torch triplet with norm degrees other than 1 and 2 against PyTorch's own CPU results, on
fresh random batches, in float32, float16 and bfloat16.

Each round: 1 to 59 rows of 1 to 129 features at a scale of 0.01, 1 or 30, positives and negatives near the
anchors (a fifth of the rounds with an anchor equal to its positive), a norm degree drawn from ½, 1.5, 2.5 (the
float32 square roots: MKL's, so float32 needs the mkl extra for them) and one each from (0.05, 1), (1, 2) and
(2, 12), with and without swap, a margin in (0.1, 3), and each of the reductions none, sum and mean. Prints per
dtype the gradient elements, per-sample losses and reduced values compared, and the runs (a round in one
reduction) in which any number differs (0 is the claim). One thread, as the golden file records. Needs torch.

    python3 scripts/measure_triplet_norms.py [rounds per dtype, 100] [seed, 38]
"""

from __future__ import annotations

import sys

import numpy as np

import lossgrad

REDUCTIONS = ("none", "sum", "mean")


def degree(rng: np.random.Generator) -> float:
    drawn = [round(float(rng.uniform(lo, hi)), 3) for lo, hi in ((0.05, 1), (1, 2), (2, 12))]
    return float(rng.choice([0.5, 1.5, 2.5, *drawn]))


def batch(torch, kind, rng: np.random.Generator) -> tuple:
    shape = (int(rng.integers(1, 60)), int(rng.integers(1, 130)))
    s = rng.choice([0.01, 1.0, 30.0])
    a = rng.standard_normal(shape) * s
    near = [a + rng.standard_normal(shape) * s * rng.uniform(0.1, 2) for _ in range(2)]
    if rng.random() < 0.2:
        near[0][0] = a[0]
    return tuple(torch.tensor(x).to(kind) for x in (a, *near))


def apart(torch, dtype: str, ts: tuple, q: float, swap: bool, margin: float, reduction: str) -> tuple[bool, int]:
    """Whether any number of lossgrad's differs from torch's, and how many losses or values were compared."""
    leaves = [t.clone().requires_grad_() for t in ts]
    out = torch.nn.functional.triplet_margin_loss(*leaves, margin=margin, p=q, swap=swap, reduction=reduction)
    (out.sum() if reduction == "none" else out).backward()
    a, pos, neg = (t.double().numpy() for t in ts)
    r = lossgrad.evaluate("triplet", pos, a, negative=neg, convention="torch", dtype=dtype, margin=margin,
                          norm_degree=q, swap=swap, reduction=reduction)
    same = np.array_equal(r.losses if reduction == "none" else r.value, out.detach().double().numpy(), equal_nan=True)
    for got, leaf in ((r.grad, leaves[0]), (r.grads["target"], leaves[1]), (r.grads["negative"], leaves[2])):
        same &= np.array_equal(got, leaf.grad.double().numpy(), equal_nan=True)
    return not same, out.numel()


def main() -> None:
    import torch

    torch.set_num_threads(1)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 38)
    for dtype, kind in (("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        grads, losses, values, differ = 0, 0, 0, 0
        for _ in range(rounds):
            ts, q = batch(torch, kind, rng), degree(rng)
            swap, margin = bool(rng.random() < 0.5), float(rng.uniform(0.1, 3))
            for reduction in REDUCTIONS:
                bad, n = apart(torch, dtype, ts, q, swap, margin, reduction)
                differ += bad
                grads += 3 * ts[0].numel()
                losses, values = (losses + n, values) if reduction == "none" else (losses, values + 1)
                if bad:
                    print(f"apart: {dtype} {tuple(ts[0].shape)} q={q} swap={swap} {reduction}")
        print(f"{dtype}: {grads:,} gradient elements, {losses:,} losses, {values} values; runs apart: {differ} "
              f"of {len(REDUCTIONS) * rounds}",
              flush=True)


if __name__ == "__main__":
    main()
