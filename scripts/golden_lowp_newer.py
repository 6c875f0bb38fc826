"""Record PyTorch's CPU results for tests/golden/lowp_newer.json (read by tests/test_lowp_newer.py):
gaussian_nll_loss in float16 and bfloat16, margin_ranking_loss in the three dtypes, and the float32 log x that
keeps float32 gaussian-nll off lossgrad's reproduced kernels.

Each record: dtype, reduction, lossgrad's options, inputs already representable in the dtype (a variance per
prediction or one per sample; the second inputs), and torch's losses (none) or reduced value, with the gradients
for the predictions and for the further input (numbers as the shortest strings that read back to the same value
of the dtype). Inputs: random, and adversarial ones (variances of 0 and below ε, errors whose square overflows
float16, a variance so small the quotient overflows; pairs tied at the hinge). The torch version and the
instruction set are recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_more import DTYPES, REDUCTIONS, rounded, short  # noqa: E402
from make_golden import versions  # noqa: E402

F = torch.nn.functional
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_newer.json"
HALVES = ("float16", "bfloat16")


def gaussian_record(dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, var: np.ndarray, full: bool,
                    eps: float | None, name: str) -> dict:
    """torch's gaussian_nll_loss and the gradients of its result (of their sum, for none)."""
    kind = DTYPES[dtype]
    pt = torch.tensor(p, dtype=kind, requires_grad=True)
    vt = torch.tensor(var, dtype=kind, requires_grad=True)
    out = F.gaussian_nll_loss(pt, torch.tensor(y, dtype=kind), vt, full=full, reduction=reduction,
                              **({} if eps is None else {"eps": eps}))
    (out.sum() if reduction == "none" else out).backward()
    value = out.detach().to(torch.float64).numpy()
    options: dict = {"full": full} if eps is None else {"full": full, "var_eps": eps}
    return {"loss": "gaussian-nll", "dtype": dtype, "reduction": reduction, "options": options,
            "target": short(y, dtype), "pred": short(p, dtype), "var": short(var, dtype),
            "losses": short(value, dtype) if reduction == "none" else None,
            "value": None if reduction == "none" else short(value, dtype),
            "grad": short(pt.grad.to(torch.float64).numpy(), dtype),
            "grad_var": short(vt.grad.to(torch.float64).numpy(), dtype), "name": name}


def gaussian_inputs(rng, dtype: str, shape: tuple[int, int], per_sample: bool,
                    name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets, predictions and variances in the dtype: random, or with the adversarial cells of `name`."""
    y = rounded(rng.standard_normal(shape) * rng.choice([0.01, 1.0, 30.0], shape), dtype)
    p = rounded(y + rng.standard_normal(shape) * rng.choice([0.001, 0.3, 3.0, 100.0], shape), dtype)
    var = rounded(np.exp(rng.uniform(-12, 8, (shape[0], 1) if per_sample else shape)), dtype)
    if name == "adversarial":
        var.reshape(-1)[::3] = 0.0  # (clamped at ε, which the dtype rounds)
        var.reshape(-1)[1::5] = rounded(np.array(3e-7), dtype)
        p[0, 0], y[0, 0] = rounded(np.array([300.0, -300.0]), dtype)  # (e² overflows float16)
        p.reshape(-1)[-1] = y.reshape(-1)[-1]  # (an exact prediction: a zero gradient)
    return y, p, var


def gaussian_records(rng) -> list[dict]:
    out = []
    for dtype in HALVES:
        for reduction in REDUCTIONS:
            for per_sample in (False, True):
                for shape, name in (((48, 1), "random"), ((7, 33), "random"), ((5, 3), "random"),
                                    ((9, 17), "adversarial"), ((37, 7), "random")):
                    y, p, var = gaussian_inputs(rng, dtype, shape, per_sample, name)
                    for full, eps in ((False, None), (True, None), (False, 1e-3)):
                        out.append(gaussian_record(dtype, reduction, y, p, var, full, eps, name))
    return out


def ranking_record(dtype: str, reduction: str, y: np.ndarray, x1: np.ndarray, x2: np.ndarray, margin: float,
                   name: str) -> dict:
    """torch's margin_ranking_loss (x1 the predictions, x2 lossgrad's --other) and the gradients for both."""
    kind = DTYPES[dtype]
    at = torch.tensor(x1, dtype=kind, requires_grad=True)
    bt = torch.tensor(x2, dtype=kind, requires_grad=True)
    out = F.margin_ranking_loss(at, bt, torch.tensor(y, dtype=kind), margin=margin, reduction=reduction)
    (out.sum() if reduction == "none" else out).backward()
    value = out.detach().to(torch.float64).numpy()
    return {"loss": "margin-ranking", "dtype": dtype, "reduction": reduction, "options": {"margin": margin},
            "target": short(y, dtype), "pred": short(x1, dtype), "other": short(x2, dtype),
            "losses": short(value, dtype) if reduction == "none" else None,
            "value": None if reduction == "none" else short(value, dtype),
            "grad": short(at.grad.to(torch.float64).numpy(), dtype),
            "grad_other": short(bt.grad.to(torch.float64).numpy(), dtype), "name": name}


def ranking_records(rng) -> list[dict]:
    """In the three dtypes: pairs apart by nothing (ties at the hinge), a little and a lot, labels ±1."""
    out = []
    for dtype in DTYPES:
        for reduction in REDUCTIONS:
            for shape in ((48, 1), (7, 33)):
                for margin in (0.0, 0.1, 1.0):
                    x1 = rounded(rng.standard_normal(shape) * 3, dtype)
                    x2 = rounded(x1 + rng.standard_normal(shape) * rng.choice([0.0, 0.01, 1.0], shape), dtype)
                    y = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
                    out.append(ranking_record(dtype, reduction, y, x1, x2, margin, "random"))
    return out


def float32_log(rng) -> dict:
    """float32 log x as torch forms it (MKL's vsLn in its builds): inputs where it is neither SLEEF's logf nor
    the correctly rounded log, the reason lossgrad leaves float32 gaussian-nll and poisson on their formulas."""
    x = np.exp(rng.uniform(-30, 30, 20000)).astype(np.float32)
    got = torch.log(torch.from_numpy(x)).numpy()
    exact = np.log(x.astype(np.float64)).astype(np.float32)
    differ = np.nonzero(got != exact)[0]
    return {"x": short(x[differ[:40]]), "log": short(got[differ[:40]]), "differ_from_rounded": int(differ.size),
            "of": int(x.size)}


def main() -> None:
    rng = np.random.default_rng(20261203)
    records = gaussian_records(rng) + ranking_records(rng)
    meta = {**versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    OUT.write_text(json.dumps({"versions": meta, "records": records, "float32_log": float32_log(rng)},
                              separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
