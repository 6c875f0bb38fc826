"""Record PyTorch's gaussian_nll_loss and margin_ranking_loss weighed by sample, `(loss(reduction="none") * w).mean()`
(or `.sum()`), for tests/golden/weights_torch_pairs.json (read by tests/test_weights_torch.py): losses with a further
input (the variance, the other score) whose gradient the weights reach too. Each record: the case (loss, dtype,
reduction, rows, outputs per sample, a variance per sample or per prediction), the seed its inputs come from
(inputs(): pure numpy) with their SHA-256, and the SHA-256 of PyTorch's weighted losses, gradient and further
input's gradient, and its value. Versions and the processor are recorded.

    python3 scripts/golden_weights_torch_pairs.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_long_batches import digest, held  # noqa: E402
from make_golden import torch_meta  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights_torch_pairs.json"
EXTRA = {"gaussian-nll": "var", "margin-ranking": "other"}
# (loss, dtype, reduction, rows, outputs, a variance per sample); gaussian-nll in float32 takes MKL's log (the mkl
# extra), so the half dtypes here
DTYPES = {"gaussian-nll": ("float16", "bfloat16"), "margin-ranking": ("float32", "float16", "bfloat16")}
CASES = tuple((loss, dtype, reduction, rows, 1 if loss == "margin-ranking" else cols, per_sample)
              for loss in EXTRA for dtype in DTYPES[loss] for reduction in ("mean", "sum", "none")
              for rows, cols, per_sample in ((7, 3, False), (9, 4, True), (40001, 2, False)))


def inputs(seed: int, case: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Targets (±1 for margin-ranking), predictions, the further input and the weights, float64 in the dtype."""
    loss, dtype, _, rows, cols, per_sample = case
    rng = np.random.default_rng(seed)
    w = rng.choice([0.0, 0.1, 1.0, 2.5, 1 / 3, 25.0, 1e-3], rows)
    if loss == "margin-ranking":
        y, p, x = rng.choice([-1.0, 1.0], (rows, 1)), rng.normal(size=(rows, 1)), rng.normal(size=(rows, 1))
    else:
        y, p = rng.normal(size=(rows, cols)), rng.normal(size=(rows, cols))
        x = rng.uniform(1e-7, 3.0, (rows, 1) if per_sample else (rows, cols))
    return held(y, dtype), held(p, dtype), held(x, dtype), held(w, dtype)


def lossgrads(case: tuple, y: np.ndarray, p: np.ndarray, x: np.ndarray, w: np.ndarray) -> dict:
    import lossgrad

    loss, dtype, reduction = case[:3]
    more = {"margin": 0.3} if loss == "margin-ranking" else {}
    r = lossgrad.evaluate(loss, y, p, sample_weight=w, convention="torch", dtype=dtype, reduction=reduction,
                          **{EXTRA[loss]: x}, **more)
    assert not any("not bit for bit" in note for note in r.warnings), r.warnings
    return {"value": r.value, "losses": r.losses, "grad": r.grad, "extra": r.grads[EXTRA[loss]]}


def pytorchs(case: tuple, y: np.ndarray, p: np.ndarray, x: np.ndarray, w: np.ndarray) -> dict:
    import torch

    loss, dtype, reduction = case[:3]
    kind = getattr(torch, dtype)
    f = torch.nn.functional
    tp, tx = (torch.tensor(a).to(kind).requires_grad_(True) for a in (p, x))
    if loss == "margin-ranking":
        per = f.margin_ranking_loss(tp[:, 0], tx[:, 0], torch.tensor(y[:, 0]).to(kind), margin=0.3,
                                    reduction="none")[:, None]
    else:
        per = f.gaussian_nll_loss(tp, torch.tensor(y).to(kind), tx, reduction="none")
    weighted = per * torch.tensor(w).to(kind)[:, None]
    total = weighted.mean() if reduction == "mean" else weighted.sum()
    total.backward()
    assert tp.grad is not None and tx.grad is not None
    return {"value": None if reduction == "none" else float(total.detach()), "losses": weighted.detach().float(),
            "grad": tp.grad.float(), "extra": tx.grad.float().reshape(x.shape)}


def record(k: int, case: tuple) -> dict:
    seed = 20261205 + k
    args = inputs(seed, case)
    out = pytorchs(case, *args)
    loss, dtype, reduction, rows, cols, per_sample = case
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "shape": [rows, cols], "per_sample": per_sample,
            "seed": seed, "inputs": digest(*args), "value": out["value"],
            **{name: digest(np.asarray(out[name], dtype=np.float32)) for name in ("losses", "grad", "extra")}}


def main() -> None:
    recs = [record(k, case) for k, case in enumerate(CASES)]
    meta = torch_meta()
    OUT.write_text(json.dumps({"versions": meta, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records")


if __name__ == "__main__":
    main()
