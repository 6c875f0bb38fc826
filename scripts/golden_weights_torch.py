"""Record PyTorch's losses weighed by sample, as its users weigh them, for tests/golden/weights_torch.json (read by
tests/test_weights_torch.py).

PyTorch's losses take no weight per sample (but binary cross entropy's weight=): a user weighs the unreduced losses,
`(F.cross_entropy(z, t, reduction="none") * w).mean()` (or `.sum()`), and autograd hands the loss's backward the
upstream c·w, rounded in the dtype. Each record: the case (loss, dtype, reduction, rows, outputs per sample), the
seed its inputs come from (inputs(): pure numpy) with their SHA-256, and PyTorch's value, weighted losses and
gradient (small batches: every float; long ones, which lossgrad evaluates in slices: their SHA-256). Versions,
threads and the processor are recorded.

    python3 scripts/golden_weights_torch.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_long_batches import digest, held  # noqa: E402
from make_golden import torch_meta, torchvision_focal  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights_torch.json"
# each loss's lossgrad options; ce-rows is ce against probability rows, nll takes log-probabilities (-ignore:
# with ignore_index -100 on some samples, the mean `.sum() / (t != -100).sum()`), kl
# log-probability predictions and poisson log rates (poisson in float32 needs MKL's e^x: the half dtypes here)
OPTIONS: dict[str, dict] = {"ce": {"from_logits": True}, "ce-rows": {"from_logits": True}, "nll": {},
                            "ce-ignore": {"from_logits": True, "ignore_index": -100},
                            "nll-ignore": {"ignore_index": -100},
                            "mse": {}, "mae": {}, "huber": {"delta": 0.7}, "kl": {"log_input": True},
                            "poisson": {"from_logits": True}, "smooth-l1": {"beta": 0.6},
                            "focal": {"from_logits": True, "alpha": 0.25, "gamma": 2.0}}
NAMES = {"ce-rows": "ce", "ce-ignore": "ce", "nll-ignore": "nll"}  # (lossgrad's name of each case's loss)
DTYPES = ("float32", "float16", "bfloat16")
REDUCTIONS = ("mean", "sum", "none")
SMALL = (7, 5)
# (loss, dtype, reduction, rows, outputs per sample): batches that lossgrad evaluates in slices of 32,768 samples
LONG = (("ce", "float32", "mean", 40000, 4), ("ce", "bfloat16", "mean", 40000, 4), ("mse", "float32", "mean", 40000, 2),
        ("huber", "float16", "mean", 36000, 3), ("focal", "float32", "mean", 40001, 3),
        ("ce-ignore", "bfloat16", "mean", 40000, 4))


def cases() -> list[tuple]:
    small = [(loss, dtype, reduction, *SMALL) for loss in OPTIONS for dtype in DTYPES for reduction in REDUCTIONS
             if not (loss == "poisson" and dtype == "float32")]
    return small + list(LONG)


def weights(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Per-sample weights: 0, 1, tiny, large, and fractions whose products round."""
    picks = np.array([0.0, 1.0, 0.1, 3.7, 1e-3, 25.0, 0.3333, 2.0])
    w = rng.uniform(0, 2, rows)
    some = rng.random(rows) < 0.5
    w[some] = rng.choice(picks, int(some.sum()))
    return w


def inputs(seed: int, loss: str, rows: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets (class indexes as one-hot rows for ce and nll), predictions and sample weights, float64."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, width)) * 3
    if loss.startswith(("ce", "nll")) and loss != "ce-rows":
        y = np.eye(width)[rng.integers(0, width, rows)]
        if loss.endswith("-ignore"):  # (the samples left out: rows of zeros here, label -100 for the frameworks)
            y[rng.random(rows) < 0.3] = 0
        if loss.startswith("nll"):
            z = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    elif loss in ("ce-rows", "kl"):
        y = rng.dirichlet(np.ones(width), rows)
        if loss == "kl":
            z = np.log(rng.dirichlet(np.ones(width), rows))
    elif loss == "focal":
        y = (rng.random((rows, width)) < 0.3) * 1.0
    elif loss == "poisson":
        y, z = rng.poisson(2.0, (rows, width)) * 1.0, rng.normal(size=(rows, width))
    else:
        y = rng.normal(size=(rows, width))
    return y, z, weights(rng, rows)


def held_inputs(seed: int, case: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    loss, dtype, _, rows, width = case
    return tuple(held(a, dtype) for a in inputs(seed, loss, rows, width))  # type: ignore[return-value]


def lossgrads(case: tuple, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict:
    """lossgrad's value, losses and gradient under the torch convention (float32 arrays)."""
    import lossgrad

    loss, dtype, reduction = case[:3]
    target = labels(y) if loss != "ce-rows" and loss.startswith(("ce", "nll")) else y
    r = lossgrad.evaluate(NAMES.get(loss, loss), target, p, sample_weight=w, convention="torch",
                          dtype=dtype, reduction=reduction, **OPTIONS[loss])
    assert not r.warnings, r.warnings
    return {"value": r.value, "losses": np.asarray(r.losses, dtype=np.float32),
            "grad": np.asarray(r.grad, dtype=np.float32)}


def labels(y: np.ndarray) -> np.ndarray:
    """Class indexes of one-hot rows, -100 for a row of zeros."""
    return np.where(y.sum(axis=1) > 0, y.argmax(axis=1), -100)


def pytorchs(case: tuple, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict:
    """PyTorch's: the unreduced losses times the weights, then .mean() or .sum() (none: the gradient of the sum),
    its inputs in the dtype."""
    import torch

    loss, dtype, reduction = case[:3]
    kind = getattr(torch, dtype)
    f = torch.nn.functional
    tp, ty = torch.tensor(p).to(kind).requires_grad_(True), torch.tensor(y).to(kind)
    t = torch.tensor(labels(y))
    losses = {"ce": lambda: f.cross_entropy(tp, t, reduction="none"),
              "ce-ignore": lambda: f.cross_entropy(tp, t, ignore_index=-100, reduction="none"),
              "nll-ignore": lambda: f.nll_loss(tp, t, ignore_index=-100, reduction="none"),
              "ce-rows": lambda: f.cross_entropy(tp, ty, reduction="none"),
              "nll": lambda: f.nll_loss(tp, t, reduction="none"),
              "mse": lambda: f.mse_loss(tp, ty, reduction="none"), "mae": lambda: f.l1_loss(tp, ty, reduction="none"),
              "huber": lambda: f.huber_loss(tp, ty, reduction="none", delta=0.7),
              "kl": lambda: f.kl_div(tp, ty, reduction="none"),
              "poisson": lambda: f.poisson_nll_loss(tp, ty, log_input=True, reduction="none"),
              "smooth-l1": lambda: f.smooth_l1_loss(tp, ty, reduction="none", beta=0.6),
              "focal": lambda: torchvision_focal()(tp, ty, alpha=0.25, gamma=2.0, reduction="none")}[loss]()
    tw = torch.tensor(w).to(kind)
    weighted = losses * (tw if losses.dim() == 1 else tw[:, None])
    if reduction != "mean":
        total = weighted.sum()
    elif loss.endswith("-ignore"):  # (the mean over the samples counted)
        total = weighted.sum() / (t != -100).sum()
    else:
        total = weighted.mean()
    total.backward()
    assert tp.grad is not None
    value = None if reduction == "none" else float(total.detach())
    return {"value": value, "losses": weighted.detach().float().numpy(), "grad": tp.grad.float().numpy()}


def floats(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()  # (float32 values, exact in JSON)


def record(k: int, case: tuple) -> dict:
    seed = 20261205 + k
    y, p, w = held_inputs(seed, case)
    out = pytorchs(case, y, p, w)
    loss, dtype, reduction, rows, width = case
    rec = {"loss": loss, "dtype": dtype, "reduction": reduction, "shape": [rows, width], "seed": seed,
           "inputs": digest(y, p, w), "value": out["value"]}
    if rows * width <= 100:
        return {**rec, "losses": floats(out["losses"]), "grad": floats(out["grad"])}
    return {**rec, "losses_digest": digest(out["losses"]), "grad_digest": digest(out["grad"])}


def main() -> None:
    recs = [record(k, case) for k, case in enumerate(cases())]
    meta = torch_meta()
    OUT.write_text(json.dumps({"versions": meta, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records, {meta}")


if __name__ == "__main__":
    main()
