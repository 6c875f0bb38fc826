"""Records the frameworks' outputs for poisson's --full term (and the losses beside it) in tests/golden/.

Each output file is in the case format tests/test_golden.py reads, with a top-level "loss" naming the loss it
holds (so that it can sit beside the file scripts/make_golden.py writes for the same loss). Cases run in float64
and in float32 (a case's params then carry "dtype": "float32"); gradients are each framework's autodiff of the
reduced value (of the sum, for reduction none). Run from the project root with the frameworks installed:

    python3 scripts/golden_losses_a.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import OUT, REDUCTIONS, golden_case, versions  # noqa: E402

SEED = 20261201


def poisson_full_inputs(rng, log_input):
    """Counts 0..40 and the edges of PyTorch's y > 1 mask (0.5, 1, 1 + 2⁻⁵², 2.5), beside rates near them."""
    y = np.concatenate([[0.0, 1.0, 0.5, 1 + 2**-52, 2.5, 3.0, 40.0, 1e6], rng.integers(0, 41, 8).astype(float)])
    p = y * rng.uniform(0.5, 1.5, y.size) + rng.gamma(1.0, 0.5, y.size)
    return y[:, None], (np.log(p) if log_input else p)[:, None]


def run_torch_poisson(y, p, log_input, reduction, dtype):
    import torch
    import torch.nn.functional as F

    t = getattr(torch, dtype)
    pt = torch.tensor(p, dtype=t, requires_grad=True)
    yt = torch.tensor(y, dtype=t)
    per = F.poisson_nll_loss(pt, yt, log_input=log_input, full=True, reduction="none")
    val = F.poisson_nll_loss(pt, yt, log_input=log_input, full=True, reduction=reduction) \
        if reduction != "none" else per.sum()
    val.backward()
    return per.detach().double().numpy(), (None if reduction == "none" else float(val.item())), \
        pt.grad.double().numpy()


def poisson_full_cases(rng):
    cases = []
    for log_input in (False, True):
        y, p = poisson_full_inputs(rng, log_input)
        for dtype in ("float64", "float32"):
            # float32 cases record the float32 inputs the framework saw
            yy, pp = y.astype(dtype).astype(np.float64), p.astype(dtype).astype(np.float64)
            params = {"full": True} | ({"dtype": "float32"} if dtype == "float32" else {})
            for reduction in REDUCTIONS:
                per, val, grad = run_torch_poisson(yy, pp, log_input, reduction, dtype)
                cases.append(golden_case("torch", log_input, None, params, reduction, yy, pp, per, val, grad))
    return cases


def write(stem, loss, cases, meta):
    path = OUT / f"{stem}.json"
    path.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_losses_a.py", "loss": loss,
                                "cases": cases}, indent=1) + "\n")
    print(f"{path.name}: {len(cases)} cases")


def main():
    rng = np.random.default_rng(SEED)
    meta = versions()
    write("poisson-full", "poisson", poisson_full_cases(rng), meta)


if __name__ == "__main__":
    main()
