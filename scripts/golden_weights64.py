"""Record PyTorch's float64 losses weighed by sample as its users weigh them, `(loss(reduction="none") * w).mean()`
(or `.sum()`), on the CPU, for tests/golden/weights64.json (read by tests/test_weights64.py): the losses whose
float64 kernels lossgrad reproduces (poisson_nll_loss, gaussian_nll_loss, triplet_margin_loss with p = 1 and 2,
cosine_embedding_loss, and MONAI's DiceLoss and TverskyLoss, on probabilities and from logits).

Each record: the case (loss, mode, reduction, rows, outputs per sample), the seed its inputs come from (inputs():
pure numpy draws, so the test rebuilds them on any machine) with their SHA-256, and torch's weighted losses
(reduction none) or value, the gradient for the predictions and each further input's (of the weighted losses' sum
for none), every number as float.hex; arrays of more than 4,096 elements by SHA-256. The weights are 0, 10⁻³, 0.1,
⅓, 1, 2.5 and 25. The versions, the processor and whether PyTorch has MKL are recorded.

    python3 scripts/golden_weights64.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, digest, save  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights64.json"
# each loss's modes: lossgrad's keyword arguments for it (from_logits: log rates for poisson, logits for dice and
# tversky; per_sample: one variance per sample)
MODES: dict[str, tuple[dict[str, Any], ...]] = {
    "poisson": tuple({"from_logits": li, "full": full} for li in (False, True) for full in (False, True)),
    "gaussian-nll": ({"per_sample": False, "full": False}, {"per_sample": True, "full": True}),
    "triplet": ({"norm_degree": 1.0, "swap": True}, {"norm_degree": 2.0, "margin": 0.5}),
    "cosine-embedding": ({"margin": 0.2},),
    "cosine": ({},),
    "dice": ({"from_logits": False}, {"from_logits": True}, {"from_logits": True, "squared": True},
             {"from_logits": False, "jaccard": True, "smooth": 0.5}),
    "tversky": ({"from_logits": False, "alpha": 0.3, "beta": 0.7}, {"from_logits": True}),
}
SHAPES = ((7, 3), (9, 4), (40001, 2))
REDUCTIONS = ("none", "sum", "mean")
# the further inputs each loss takes, by lossgrad's names
EXTRA = {"gaussian-nll": ("var",), "triplet": ("target", "negative"), "cosine-embedding": ("target",)}
WEIGHTS = (0.0, 1e-3, 0.1, 1 / 3, 1.0, 2.5, 25.0)


def inputs(seed: int, loss: str, mode: dict[str, Any], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The targets y, predictions p, weights w and the loss's further inputs (var; negative; label)."""
    rng = np.random.default_rng(seed)
    rows = shape[0]
    w = rng.choice(WEIGHTS, rows)
    if loss == "poisson":
        y = rng.poisson(rng.random(shape) * 5.0).astype(np.float64)
        p = rng.random(shape) * 4.0 + 1e-3
        return {"y": y, "p": np.log(p) if mode["from_logits"] else p, "w": w}
    if loss == "gaussian-nll":
        var = rng.uniform(1e-7, 3.0, (rows, 1) if mode["per_sample"] else shape)
        return {"y": rng.normal(size=shape), "p": rng.normal(size=shape), "w": w, "var": var}
    if loss == "triplet":
        return {"y": rng.normal(size=shape), "p": rng.normal(size=shape), "w": w, "negative": rng.normal(size=shape)}
    if loss in ("cosine-embedding", "cosine"):
        label = np.where(rng.random(rows) < 0.5, 1.0, -1.0)
        return {"y": rng.normal(size=shape), "p": rng.normal(size=shape), "w": w,
                **({"label": label} if loss == "cosine-embedding" else {})}
    y = (rng.random(shape) < 0.4).astype(np.float64)
    p = rng.normal(size=shape) * 3.0 if mode["from_logits"] else rng.random(shape)
    return {"y": y, "p": p, "w": w}


def _monai(loss: str, mode: dict[str, Any]) -> Any:
    import monai

    if loss == "dice":
        return monai.losses.DiceLoss(sigmoid=mode["from_logits"], squared_pred=bool(mode.get("squared")),
                                     jaccard=bool(mode.get("jaccard")), smooth_nr=mode.get("smooth", 1e-5),
                                     smooth_dr=mode.get("smooth", 1e-5), reduction="none")
    return monai.losses.TverskyLoss(sigmoid=mode["from_logits"], alpha=mode.get("alpha", 0.5),
                                    beta=mode.get("beta", 0.5), reduction="none")


def pytorchs(loss: str, mode: dict[str, Any], x: dict[str, np.ndarray], reduction: str) -> dict[str, Any]:
    """torch's weighted losses, value and gradients: p's, and each further input's by lossgrad's name."""
    import torch

    f = torch.nn.functional
    tp = torch.tensor(x["p"], dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(x["y"], dtype=torch.float64, requires_grad=loss in ("triplet", "cosine-embedding"))
    more = {k: torch.tensor(x[k], dtype=torch.float64, requires_grad=True) for k in ("var", "negative") if k in x}
    if loss == "poisson":
        per = f.poisson_nll_loss(tp, ty, log_input=mode["from_logits"], full=mode["full"], reduction="none")
    elif loss == "gaussian-nll":
        per = f.gaussian_nll_loss(tp, ty, more["var"], full=mode["full"], reduction="none")
    elif loss == "triplet":
        per = f.triplet_margin_loss(tp, ty, more["negative"], margin=mode.get("margin", 1.0), p=mode["norm_degree"],
                                    swap=bool(mode.get("swap")), reduction="none")[:, None]
    elif loss in ("cosine-embedding", "cosine"):
        label = torch.tensor(x.get("label", np.ones(x["p"].shape[0])), dtype=torch.float64)
        per = f.cosine_embedding_loss(tp, ty, label, margin=mode.get("margin", 0.0), reduction="none")[:, None]
    else:
        per = _monai(loss, mode)(tp[:, None, :], ty[:, None, :]).reshape(-1, 1)
    weighted = per * torch.tensor(x["w"], dtype=torch.float64)[:, None]
    total = weighted.sum() if reduction != "mean" else weighted.mean()
    total.backward()
    tensors = {"target": ty, **more}
    grads = {k: tensors[k].grad.numpy() for k in EXTRA.get(loss, ())}  # type: ignore[union-attr]
    return {"value": None if reduction == "none" else float(total.detach()),
            "losses": weighted.detach().numpy(), "grad": tp.grad.numpy(), "extra": grads}  # type: ignore[union-attr]


def record(seed: int, loss: str, mode: dict[str, Any], shape: tuple[int, int], reduction: str) -> dict[str, Any]:
    x = inputs(seed, loss, mode, shape)
    out = pytorchs(loss, mode, x, reduction)
    return {"loss": loss, "mode": mode, "shape": list(shape), "reduction": reduction, "seed": seed,
            "inputs_sha256": digest(*x.values()), "losses": _kept(out["losses"]) if reduction == "none" else None,
            "value": None if out["value"] is None else out["value"].hex(), "grad": _kept(out["grad"]),
            "extra": {k: _kept(g) for k, g in out["extra"].items()}}


def main() -> None:
    records, seed = [], 20261206
    for loss, modes in MODES.items():
        for mode in modes:
            for shape in SHAPES:
                records.extend(record(seed, loss, mode, shape, reduction) for reduction in REDUCTIONS)
                seed += 1
    import monai

    save(OUT, records, "scripts/golden_weights64.py", {"monai": monai.__version__})


if __name__ == "__main__":
    main()
