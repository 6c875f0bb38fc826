"""Record PyTorch's float32, float16 and bfloat16 CPU results for tests/golden/lowp_more.json (read by
tests/test_lowp_more.py): the losses and options beyond scripts/golden_lowp.py's — cross_entropy and nll_loss
with ignore_index, class weights and label smoothing, and the further losses whose kernels lossgrad reproduces.

Each record: a loss, dtype, reduction, lossgrad's options, inputs already representable in the dtype, and torch's
per-element or per-sample losses, reduced value and gradient (numbers as the shortest strings that read back to
the same float32). The torch version and the instruction set the kernels ran with are recorded.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import versions  # noqa: E402

F = torch.nn.functional
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_more.json"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
REDUCTIONS = ("none", "sum", "mean")
IGNORE = -100


def rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    return torch.tensor(np.asarray(a, dtype=np.float64)).to(DTYPES[dtype]).to(torch.float64).numpy()


def short(a, dtype: str = "float32") -> list:
    """Numbers as the shortest decimal strings that read back (through float64) to the same value of `dtype`
    (every value here is one)."""
    kind = torch.float32 if dtype == "float32" else DTYPES[dtype]
    flat = torch.tensor(np.asarray(a, dtype=np.float64)).to(kind).to(torch.float32).numpy()
    if dtype == "float32":
        return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()
    import ml_dtypes
    half = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    return np.vectorize(lambda v: str(half(v)), otypes=[object])(flat).tolist()


def record(loss: str, dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, run: Callable,
           options: dict, name: str | None = None) -> dict:
    """torch's results for `run(pred tensor)`: the losses (none) or the value, and the gradient of their sum."""
    pt = torch.tensor(p, dtype=DTYPES[dtype], requires_grad=True)
    out = run(pt)
    (out.sum() if reduction == "none" else out).backward()
    value = out.detach().to(torch.float64).numpy()
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "options": options,
            "target": short(y, "float32" if options.get("labels") == "index" else dtype),
            "pred": short(p, dtype), "losses": short(value, dtype) if reduction == "none" else None,
            "value": None if reduction == "none" else short(value, dtype),
            "grad": short(pt.grad.to(torch.float64).numpy(), dtype), "name": name}


def logits(rng, dtype: str, rows: int, classes: int) -> np.ndarray:
    scale = rng.choice([0.1, 1.0, 5.0, 20.0], (rows, 1))
    return rounded(rng.standard_normal((rows, classes)) * scale, dtype)


def rows_case(rng, dtype: str, reduction: str, loss: str, shape: tuple[int, int], ignore: float = 0.0,
              weighted: bool = False, smoothing: float = 0.0, soft: bool = False, name: str | None = None) -> dict:
    """cross_entropy (logits) or nll_loss (log-probabilities) with the options asked for; `ignore`: the share of
    samples labelled −100 (rounded to a count)."""
    rows, classes = shape
    z = logits(rng, dtype, rows, classes)
    if loss == "nll":
        z = rounded(torch.log_softmax(torch.tensor(z), 1).numpy(), dtype)
    w = rounded(rng.random(classes) * 2 + 0.05, dtype) if weighted else None
    wt = None if w is None else torch.tensor(w, dtype=DTYPES[dtype])
    options: dict = {"labels": "onehot" if soft else "index"}
    if soft:
        y = rng.random((rows, classes))
        y = rounded(y / y.sum(axis=1, keepdims=True), dtype)
        target = torch.tensor(y, dtype=DTYPES[dtype])
    else:
        labels = rng.integers(0, classes, rows)
        labels[rng.permutation(rows)[:round(ignore * rows)]] = IGNORE
        y, target = labels.astype(np.float64)[:, None], torch.tensor(labels)
    if ignore:
        options["ignore_index"] = IGNORE
    if weighted:
        options["class_weights"] = [float(v) for v in w]
    if smoothing:
        options["label_smoothing"] = smoothing
    if loss == "ce":
        return record(loss, dtype, reduction, y, z, lambda t: F.cross_entropy(
            t, target, weight=wt, reduction=reduction, label_smoothing=smoothing), options, name)
    return record(loss, dtype, reduction, y, z, lambda t: F.nll_loss(t, target, weight=wt, reduction=reduction),
                  options, name)


ROW_CASES = (  # (loss, ignore share, class weights, label smoothing, probability rows)
    ("ce", 0.3, False, 0.0, False), ("ce", 0.0, False, 0.1, False), ("ce", 0.25, False, 0.2, False),
    ("ce", 0.0, True, 0.0, False), ("ce", 0.3, True, 0.0, False), ("ce", 0.3, True, 0.1, False),
    ("ce", 0.0, False, 0.1, True), ("ce", 0.0, True, 0.0, True), ("ce", 0.0, True, 0.3, True),
    ("nll", 0.3, False, 0.0, False), ("nll", 0.0, True, 0.0, False), ("nll", 0.3, True, 0.0, False),
)


def row_records(rng) -> list[dict]:
    out = []
    for dtype in DTYPES:
        for reduction in REDUCTIONS:
            for i, (loss, ignore, weighted, smoothing, soft) in enumerate(ROW_CASES):
                wide = ((1, 600),) if i in (1, 6) else ()  # (smoothing's row sums: wider than the cascades)
                for shape in ((16, 3), (5, 17), (2, 40)) + wide:
                    out.append(rows_case(rng, dtype, reduction, loss, shape, ignore, weighted, smoothing, soft))
            # every sample left out: the mean is 0/0
            out.append(rows_case(rng, dtype, reduction, "ce", (3, 5), 1.0, name="all-ignored"))
    # a language model's step of 260 tokens, 259 counted, which bfloat16 holds as 260
    out.append(rows_case(rng, "bfloat16", "mean", "ce", (260, 8), 1 / 260, name="tokens"))
    out.append(rows_case(rng, "bfloat16", "mean", "ce", (260, 8), 1 / 260, smoothing=0.1, name="tokens-smoothed"))
    return out


def bce_case(rng, dtype: str, reduction: str, kind: str, shape: tuple[int, int]) -> dict:
    """binary_cross_entropy_with_logits with pos_weight and/or weight= (one per sample), or
    binary_cross_entropy on probabilities σ(z) (with 0 and 1 among them), with weight= or without; for
    probabilities the gradient for z through torch.sigmoid too."""
    n, k = shape
    z = rounded(rng.standard_normal(shape) * rng.choice([0.1, 1.0, 5.0, 30.0], shape), dtype)
    y = rng.random(shape)
    y[: n // 3] = np.round(y[: n // 3])
    y = rounded(y, dtype)
    pw = rounded(rng.random(k) * 3 + 0.05, dtype) if "pos_weight" in kind else None
    w = rounded(rng.random(n) * 2, dtype) if "weight" in kind.replace("pos_weight", "") else None
    yt, options = torch.tensor(y, dtype=DTYPES[dtype]), {}
    wt = None if w is None else torch.tensor(w[:, None], dtype=DTYPES[dtype])
    if w is not None:
        options["sample_weight"] = [float(v) for v in w]
    if kind.startswith("probs"):
        zt = torch.tensor(z, dtype=DTYPES[dtype], requires_grad=True)
        p = torch.sigmoid(zt)
        p.data[0, 0], p.data[1, 0] = 0.0, 1.0  # (the clamps at −100 and the gradient's floor)
        rec = record("bce", dtype, reduction, y, p.detach().to(torch.float64).numpy(),
                     lambda t: F.binary_cross_entropy(t, yt, weight=wt, reduction=reduction),
                     {**options, "from_logits": False})
        if reduction != "mean":  # (the gradient for z of the sum: sigmoid_backward of the one for p)
            out = F.binary_cross_entropy(p, yt, weight=wt, reduction=reduction)
            (out.sum() if reduction == "none" else out).backward()
            rec["grad_logits"] = short(zt.grad.to(torch.float64).numpy(), dtype)
        return rec
    if pw is not None:
        options["pos_weight"] = [float(v) for v in pw]
    pwt = None if pw is None else torch.tensor(pw, dtype=DTYPES[dtype])
    return record("bce", dtype, reduction, y, z, lambda t: F.binary_cross_entropy_with_logits(
        t, yt, weight=wt, pos_weight=pwt, reduction=reduction), options)


def bce_records(rng) -> list[dict]:
    out = []
    for dtype in DTYPES:
        for reduction in REDUCTIONS:
            for kind in ("pos_weight", "weight", "pos_weight+weight", "probs", "probs+weight"):
                for shape in ((48, 1), (8, 5), (3, 33)):
                    out.append(bce_case(rng, dtype, reduction, kind, shape))
    return out


REGRESSION = {"mae": lambda t, y, r, a: F.l1_loss(t, y, reduction=r),
              "huber": lambda t, y, r, a: F.huber_loss(t, y, reduction=r, delta=a),
              "smooth-l1": lambda t, y, r, a: F.smooth_l1_loss(t, y, reduction=r, beta=a)}
PARAMETER = {"huber": "delta", "smooth-l1": "beta"}


def regression_records(rng) -> list[dict]:
    """l1_loss, huber_loss and smooth_l1_loss (float32 only): differences on both sides of δ (β), with 231
    elements so that the last few go through the kernels' scalar loop."""
    out = []
    for dtype in DTYPES:
        for reduction in REDUCTIONS:
            for loss, a in (("mae", None), ("huber", 1.0), ("huber", 0.3), ("smooth-l1", 1.0), ("smooth-l1", 2.7),
                            ("smooth-l1", 0.3), ("smooth-l1", 0.0)):
                if loss == "smooth-l1" and dtype != "float32":
                    continue  # (its half-dtype backward is not reproduced)
                for shape in ((48, 1), (7, 33)):
                    y = rounded(rng.standard_normal(shape) * rng.choice([0.1, 1.0, 5.0], shape), dtype)
                    p = rounded(y + rng.standard_normal(shape) * rng.choice([0.01, 0.5, 2.0, 10.0], shape), dtype)
                    yt = torch.tensor(y, dtype=DTYPES[dtype])
                    options = {} if a is None else {PARAMETER[loss]: a}
                    out.append(record(loss, dtype, reduction, y, p,
                                      lambda t, yt=yt, f=REGRESSION[loss], a=a, r=reduction: f(t, yt, r, a), options))
    return out


def poisson_records(rng) -> list[dict]:
    """poisson_nll_loss in float16 and bfloat16 (float32's e^x and log x are MKL's): log rates or rates (one of
    them 0), with and without Stirling's term, counts and half counts."""
    out = []
    for dtype in ("float16", "bfloat16"):
        for reduction in REDUCTIONS:
            for log_input in (True, False):
                for full in (False, True):
                    shape = (7, 33)
                    y = rounded(rng.poisson(3.0, shape) * rng.choice([1.0, 0.5], shape), dtype)
                    x = rounded(rng.standard_normal(shape) * 2 if log_input else rng.random(shape) * 6, dtype)
                    if not log_input:
                        x[0, 0] = 0.0
                    yt = torch.tensor(y, dtype=DTYPES[dtype])
                    out.append(record("poisson", dtype, reduction, y, x, lambda t, yt=yt, li=log_input, f=full,
                                      r=reduction: F.poisson_nll_loss(t, yt, log_input=li, full=f, reduction=r),
                                      {"from_logits": log_input, "full": full}))
    return out


def main() -> None:
    rng = np.random.default_rng(20261202)
    records = row_records(rng) + bce_records(rng) + regression_records(rng) + poisson_records(rng)
    meta = {**versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    OUT.write_text(json.dumps({"versions": meta, "records": records}, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
