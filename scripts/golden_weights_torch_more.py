"""Record PyTorch's triplet_margin_loss and cosine_embedding_loss, and MONAI's DiceLoss and TverskyLoss, weighed by
sample as their users weigh them, `(loss(reduction="none") * w).mean()` (or `.sum()`), for
tests/golden/weights_torch_more.json (read by tests/test_weights_torch_more.py).

MONAI's reduction="none" gives a loss per sample and channel, (N, C, 1) for DiceLoss and (N, C) for TverskyLoss;
lossgrad's dice and tversky are one channel of a sample's pixels, so the weight of a sample is broadcast over its
channel, `w.view(-1, 1, 1)` (`w.view(-1, 1)`), and the mean is over N. Each record: the case (loss, dtype,
reduction, rows, features or pixels per sample, the index of its options in OPTIONS), the seed its inputs come
from (inputs(): pure numpy) with their SHA-256, and the SHA-256 of PyTorch's weighted losses, gradient and every
further input's gradient (triplet's positive and negative, cosine-embedding's targets), and its value. The
versions of torch and MONAI, the threads and the processor are recorded.

    python3 scripts/golden_weights_torch_more.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_long_batches import digest, held  # noqa: E402
from golden_weights_torch import weights  # noqa: E402
from make_golden import torch_meta  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights_torch_more.json"
# lossgrad's options of each loss's cases (norm degrees 1.5: torch.sqrt in the backward, MKL's in float32)
OPTIONS: dict[str, tuple[dict[str, Any], ...]] = {
    "triplet": ({"margin": 1.0}, {"margin": 0.5, "norm_degree": 1.0, "swap": True},
                {"margin": 2.0, "norm_degree": 3.0}, {"margin": 0.3, "norm_degree": 1.5, "swap": True}),
    "cosine-embedding": ({"margin": 0.0}, {"margin": 0.3}),
    "cosine": ({},),
    "dice": ({}, {"squared": True}, {"from_logits": True}, {"squared": True, "smooth": 1.0, "from_logits": True}),
    "tversky": ({"alpha": 0.3, "beta": 0.7}, {"alpha": 0.7, "beta": 0.3, "smooth": 1.0, "from_logits": True})}
FURTHER = {"triplet": ("target", "negative"), "cosine-embedding": ("target",)}  # (the further inputs' gradients)
DTYPES = ("float32", "float16", "bfloat16")
REDUCTIONS = ("mean", "sum", "none")
SEGMENTS = ("dice", "tversky")
SLICE = 32768  # (lossgrad's slices, and PyTorch's grain: the elements one thread takes at most)
# (loss, dtype, reduction, rows, features, options): batches that lossgrad evaluates in slices of 32,768 samples;
# 40,031 rows of 2 logits: each of PyTorch's two threads takes 40,031 elements of σ(z), its last 31 in the scalar loop
LONG = (("triplet", "float32", "mean", 40001, 3, 0), ("triplet", "bfloat16", "sum", 40001, 2, 1),
        ("cosine-embedding", "float16", "mean", 40001, 3, 1), ("cosine-embedding", "float32", "mean", 36000, 4, 0),
        ("dice", "float32", "mean", 40031, 2, 2), ("dice", "bfloat16", "mean", 36000, 5, 1),
        ("tversky", "float32", "sum", 40031, 2, 1), ("tversky", "float16", "mean", 40001, 3, 1))
# float32 logits whose σ differs between PyTorch's registers (SLEEF's e^x) and its scalar loop (glibc's): a long
# batch's logits, so that in float32 each element of a thread's scalar tail tells where the tails lie (main()
# checks them against torch.sigmoid)
APART = (-0.4583585262298584, -2.216370105743408, 1.0285545587539673, -2.6287851333618164, -1.7248469591140747,
         -4.319091796875, 0.06620276719331741, -6.414676666259766, -1.7704482078552246, -1.0166723728179932,
         -5.771048545837402, -2.1713297367095947, 0.378261923789978, -1.72249436378479, -4.35002326965332,
         2.99151611328125, 1.0092759132385254, 0.4497498571872711, 0.8817646503448486, -3.171506404876709)


def cases() -> list[tuple]:
    """Every loss, dtype, reduction and option on a small batch (pixels or features across the 8 and 16 lanes of the
    sums), then LONG."""
    small = [(loss, dtype, reduction, 7 + k, (37 if loss in SEGMENTS else 5) + 3 * k, k)
             for loss, choices in OPTIONS.items() for k in range(len(choices)) for dtype in DTYPES
             for reduction in REDUCTIONS]
    return small + list(LONG)


def _pairs(rng: np.random.Generator, loss: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Targets, predictions and further inputs of triplet (anchor, positive, negative at a scale of 0.01 to 30)
    and cosine (pairs from nearly parallel to unrelated, labels ±1); the first row's distance ε alone, the last
    a tie in swap's minimum; a zero row (float16's ε is 0: 0/0) and the last pair parallel."""
    s = rng.choice([0.01, 1.0, 30.0])
    a = rng.standard_normal((rows, cols)) * s
    if loss == "triplet":
        pos = a + rng.standard_normal((rows, cols)) * s * rng.uniform(0.1, 2)
        neg = a + rng.standard_normal((rows, cols)) * s * rng.uniform(0.1, 2)
        pos[0], neg[-1] = a[0], pos[-1]
        return pos, a, {"negative": neg}
    b = a * rng.uniform(-1, 1) + rng.standard_normal((rows, cols)) * s * rng.uniform(0.01, 2)
    b[-1] = a[-1]
    a[0] = 0.0
    return b, a, {} if loss == "cosine" else {"label": np.where(rng.random((rows, 1)) < 0.5, 1.0, -1.0)}


def _masks(rng: np.random.Generator, rows: int, cols: int, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    """Masks (hard, or soft) and probabilities or logits (a long batch's from APART); the first row empty against a
    prediction of 0 (0/0 without smoothing), the last perfect."""
    y = (rng.random((rows, cols)) < rng.uniform(0.1, 0.8)).astype(float)
    if rng.random() < 0.4:
        y = np.round(rng.uniform(0, 1, (rows, cols)), 3)
    p = rng.normal(scale=rng.choice([0.3, 3.0, 12.0]), size=(rows, cols)) if from_logits else \
        rng.uniform(0, 1, (rows, cols)) * rng.choice([1.0, 1e-3])
    if from_logits and rows > SLICE:
        p = rng.choice(APART, (rows, cols))
    p[-1] = (y[-1] * 60 - 30) if from_logits else y[-1]
    y[0], p[0] = 0.0, (-30.0 if from_logits else 0.0)
    return y, p


def inputs(seed: int, case: tuple) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Targets, predictions, further inputs and sample weights, float64 as the dtype holds them (the labels are
    exact)."""
    loss, dtype, _, rows, cols, k = case
    rng = np.random.default_rng(seed)
    if loss in SEGMENTS:
        (y, p), extra = _masks(rng, rows, cols, bool(OPTIONS[loss][k].get("from_logits"))), {}
    else:
        y, p, extra = _pairs(rng, loss, rows, cols)
    w = weights(rng, rows)
    return held(y, dtype), held(p, dtype), {name: held(v, dtype) for name, v in extra.items()}, held(w, dtype)


def input_digest(y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray], w: np.ndarray) -> str:
    return digest(y, p, *extra.values(), w)


def result_digest(a: Any) -> str:
    """digest of a result, its NaNs (a zero row's cosine in float16, 0/0 without smoothing) as one NaN: their sign
    and payload are not reproduced, a zero's sign is."""
    x = np.asarray(a, dtype=np.float32)
    return digest(np.where(np.isnan(x), np.float32(np.nan), x))


def lossgrads(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray], w: np.ndarray) -> dict:
    """lossgrad's value, weighted losses, gradient and further gradients under the torch convention."""
    import lossgrad

    loss, dtype, reduction, *_, k = case
    r = lossgrad.evaluate(loss, y, p, sample_weight=w, convention="torch", dtype=dtype, reduction=reduction,
                          **extra, **OPTIONS[loss][k])
    assert not any("not bit for bit" in note for note in r.warnings), r.warnings
    return {"value": r.value, "losses": r.losses, "grad": r.grad,
            **{name: r.grads[name] for name in FURTHER.get(loss, ())}}


def _per_sample(loss: str, options: dict, t: dict, kind: Any) -> Any:
    """The losses of reduction="none" (MONAI's: per sample and channel)."""
    import torch
    from monai.losses import DiceLoss, TverskyLoss

    f = torch.nn.functional
    if loss == "triplet":
        return f.triplet_margin_loss(t["pred"], t["target"], t["negative"], margin=options["margin"],
                                     p=options.get("norm_degree", 2.0), swap=bool(options.get("swap")),
                                     reduction="none")
    if loss in ("cosine-embedding", "cosine"):
        label = t["label"][:, 0] if "label" in t else torch.ones(t["pred"].shape[0], dtype=kind)
        return f.cosine_embedding_loss(t["pred"], t["target"], label, margin=options.get("margin", 0.0),
                                       reduction="none")
    smooth = {"smooth_nr": options["smooth"], "smooth_dr": options["smooth"]} if "smooth" in options else {}
    if loss == "dice":
        fn = DiceLoss(sigmoid=bool(options.get("from_logits")), squared_pred=bool(options.get("squared")),
                      reduction="none", **smooth)
    else:
        fn = TverskyLoss(sigmoid=bool(options.get("from_logits")), alpha=options["alpha"], beta=options["beta"],
                         reduction="none", **smooth)
    return fn(t["pred"][:, None, :], t["target"][:, None, :])  # (batch, one channel, pixels)


def pytorchs(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray], w: np.ndarray) -> dict:
    """PyTorch's (and MONAI's): the unreduced losses times the weights (one a sample, broadcast over the rest of
    the losses' shape), then .mean() or .sum() (none: the gradient of the sum), its inputs in the dtype."""
    import torch

    loss, dtype, reduction, *_, k = case
    kind = getattr(torch, dtype)
    further = FURTHER.get(loss, ())
    t = {name: torch.tensor(a).to(kind).requires_grad_(name == "pred" or name in further)
         for name, a in {"pred": p, "target": y, **extra}.items()}
    per = _per_sample(loss, OPTIONS[loss][k], t, kind)
    weighted = per * torch.tensor(w).to(kind).view(-1, *(1,) * (per.dim() - 1))
    total = weighted.mean() if reduction == "mean" else weighted.sum()
    total.backward()
    return {"value": None if reduction == "none" else float(total.detach()), "losses": weighted.detach().float(),
            **{name: t[name].grad.float() for name in ("pred", *further)}}  # type: ignore[union-attr]


def record(k: int, case: tuple) -> dict:
    seed = 20261206 + k
    args = inputs(seed, case)
    out = pytorchs(case, *args)
    loss, dtype, reduction, rows, cols, option = case
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "shape": [rows, cols], "option": option,
            "seed": seed, "inputs": input_digest(*args), "value": out["value"],
            "losses": result_digest(out["losses"].numpy()), "grad": result_digest(out["pred"].numpy()),
            "further": {name: result_digest(out[name].numpy()) for name in FURTHER.get(loss, ())}}


def check_apart() -> None:
    """Each of APART's σ differs between a register of them and the scalar loop (one element a tensor)."""
    import torch

    z = torch.tensor(APART * 2, dtype=torch.float32)
    singly = torch.stack([torch.sigmoid(z[i:i + 1])[0] for i in range(len(APART))])
    assert (torch.sigmoid(z)[:len(APART)] != singly).all()


def main() -> None:
    import monai

    check_apart()
    recs = [record(k, case) for k, case in enumerate(cases())]
    meta = {**torch_meta(), "monai": monai.__version__}
    OUT.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_weights_torch_more.py",
                               "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records, {meta}")


if __name__ == "__main__":
    main()
