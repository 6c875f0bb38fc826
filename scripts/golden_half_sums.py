"""Record PyTorch's torch.sum of float16 and bfloat16 tensors, and the losses whose results go through it, for
tests/golden/half_sums.json (read by tests/test_half_sums.py).

torch.sum of a half tensor loads 16 elements at a time and adds each load's two halves into 8 float32 lanes
before the lanes' cascade; float32's kernel takes one element a lane. The two orders round apart only where a
row's float32 sum lies on a tie of the dtype, so every input here is made to: a part of small integers (or of
values whose squares are small integers) whose exact sum is a tie, and a few values below float32's spacing there,
which vanish when added to the large part one at a time and tip the rounding when added to each other first.
Each input is drawn until lossgrad's result changes with float32's order in place of the half kernel's
(lossgrad only places the inputs; what is recorded is PyTorch's).

Records: "sums", torch.sum(x, dim=-1) of rows of 9 to 300 elements and of one row of more than 32,768 (which
PyTorch splits between its threads), stored as the dtype's raw bytes in base64; "losses", lossgrad's torch
convention against PyTorch: cosine_embedding_loss (Σx1·x2 a tie: x2 all ones), mse_loss's sum (Σ(p − y)²),
MONAI's DiceLoss (Σ of the probabilities), gaussian_nll_loss with one variance per sample (its gradient sums
−½(p − y)²/v over the sample), and cross_entropy against probability rows (Σ log p · y, y powers of two); and
float32 cross_entropy against probability rows with class weights or label smoothing over more than 32,768
elements, whose value is torch.sum's of every term in its threads' two passes. The versions of torch and MONAI,
the instruction set and the threads are recorded.

    python3 scripts/golden_half_sums.py
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_more import DTYPES, rounded, short  # noqa: E402
from golden_lowp_seg import packed  # noqa: E402
from golden_lowp_xla import undone  # noqa: E402
from make_golden import versions  # noqa: E402

F = torch.nn.functional
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "half_sums.json"
HALVES = ("float16", "bfloat16")
BITS = {"float16": 11, "bfloat16": 8}  # significand bits, the implicit one included
ROOTS = {"float16": 45, "bfloat16": 15}  # the largest integer whose square the dtype holds exactly
LENGTHS = (9, 12, 24, 33, 48, 100, 300)  # (below 8, and from 16 to 23, the two kernels add alike)
# cross_entropy's (classes, reduction): an L of the dtype with ties in reach, whose tiny terms the two orders part
CE_CASES = {"float16": ((12, "none"), (12, "sum"), (12, "mean")),
            "bfloat16": ((12, "none"), (40, "none"), (12, "sum"), (40, "mean"))}
LONG = 33000  # one row, more than GRAIN = 32768 elements: two threads' parts


def _tie_above(s: float, bits: int) -> float:
    """The smallest tie of a `bits`-bit format (a value halfway between two neighbours) above s, from 2^bits (where
    ties are integers)."""
    e = max(int(np.floor(np.log2(s))), bits)
    spacing = 2.0 ** (e - bits + 1)
    return (np.floor(s / spacing) + 0.5) * spacing


def tie_values(rng, dtype: str, squares: bool) -> np.ndarray:
    """Values of the dtype whose exact sum (of squares, with `squares`) is a tie, then 2 or 3 equal values (squares)
    of a quarter to a half of float32's spacing at the tie: each alone vanishes there, together they do not."""
    bits, top = BITS[dtype], ROOTS[dtype] if squares else 2 ** BITS[dtype] - 1
    big = list(rng.integers(1, top + 1, int(rng.integers(2, 6))))
    power = 2 if squares else 1
    total = float(sum(int(v) ** power for v in big))
    gap = _tie_above(max(total, 2.0 ** bits), bits) - total
    while gap > 0:  # (greedy: the largest value that fits the gap)
        v = min(top, int(gap ** (1 / power)))
        big.append(v)
        gap -= v ** power
    tie = sum(int(v) ** power for v in big)
    spacing = 2.0 ** (np.floor(np.log2(tie)) - 23)
    tiny = rng.uniform(0.26, 0.49) * spacing * np.ones(int(rng.integers(2, 4)))
    return rounded(np.concatenate([np.array(big, dtype=np.float64), tiny ** (1 / power)]), dtype)


def tie_row(rng, n: int, dtype: str, squares: bool = False) -> np.ndarray:
    """A row of n: tie_values at random places, zeros elsewhere (None where they do not fit)."""
    for _ in range(100):
        v = tie_values(rng, dtype, squares)
        if len(v) <= n:
            row = np.zeros(n)
            row[rng.permutation(n)[:len(v)]] = v
            return row
    raise ValueError(f"no tie row of {n}")


def float32_order() -> contextlib.AbstractContextManager:
    """lossgrad with the sum of a half tensor taken as float32's (the half kernel's loads undone): only to place
    inputs where the two orders differ."""
    from lossgrad import lowp

    return undone(lowp, "summer", lambda half: lambda rows, n: lowp.RowSum(rows, n))


def _same(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def apart(rng, draw: Callable, run: Callable) -> tuple:
    """Inputs drawn until lossgrad's results for them (`run`: a tuple of arrays) change with float32's order."""
    for _ in range(2000):
        inputs = draw(rng)
        new = run(*inputs)
        with float32_order():
            old = run(*inputs)
        if not all(_same(a, b) for a, b in zip(new, old, strict=True)):
            return inputs
    raise RuntimeError("no inputs apart")


def sum_record(rng, dtype: str, rows: int, n: int) -> dict:
    """torch.sum(x, dim=-1) of `rows` tie rows of n (a single row of more than GRAIN: a tie row in each
    thread's part)."""
    from lossgrad import lowp

    def draw(r) -> tuple:
        if n > lowp.GRAIN:
            half = n // 2
            return (np.concatenate([tie_row(r, half, dtype), tie_row(r, n - half, dtype)])[None, :],)
        return (np.stack([tie_row(r, n, dtype) * r.choice([-1, 1]) for _ in range(rows)]),)

    (x,) = apart(rng, draw, lambda a: (lowp.row_sums(a.astype(np.float32), lowp.half_dtype(dtype)),))
    got = torch.tensor(x).to(DTYPES[dtype]).sum(dim=-1)
    return {"dtype": dtype, "x": packed(x, dtype), "sum": short(got.to(torch.float64).numpy(), dtype)}


def _evaluate(loss: str, dtype: str, reduction: str, y, p, options: dict, **extra) -> tuple:
    import lossgrad

    r = lossgrad.evaluate(loss, y, p, convention="torch", dtype=dtype, reduction=reduction, **extra, **options)
    return (r.losses if reduction == "none" else np.asarray(r.value), r.grad, *r.grads.values())


def _result(out: torch.Tensor, reduction: str, dtype: str, grads: dict[str, torch.Tensor]) -> dict:
    value = out.detach().to(torch.float64).numpy()
    return {"losses": short(value, dtype) if reduction == "none" else None,
            "value": None if reduction == "none" else short(value, dtype),
            **{k: short(t.grad.to(torch.float64).numpy(), dtype) for k, t in grads.items()}}


def _backward(out: torch.Tensor, reduction: str) -> None:
    (out.sum() if reduction == "none" else out).backward()


def _leaf(a: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.tensor(a).to(DTYPES[dtype]).requires_grad_(True)


def cosine_record(rng, dtype: str, reduction: str, rows: int, n: int) -> dict:
    """cosine_embedding_loss of tie rows x1 (over 64, a tie still) against rows of ones (Σx1·x2 = Σx1), labels 1
    and −1."""
    def draw(r) -> tuple:
        x1 = np.stack([tie_row(r, n, dtype) * r.choice([-1, 1]) / 64 for _ in range(rows)])  # (Σx1² finite)
        return np.ones_like(x1), x1, r.choice([-1.0, 1.0], rows)

    x2, x1, label = apart(rng, draw, lambda y, p, lab: _evaluate("cosine-embedding", dtype, reduction, y, p, {},
                                                                label=lab))
    a, b = _leaf(x1, dtype), _leaf(x2, dtype)
    out = F.cosine_embedding_loss(a, b, torch.tensor(label).to(DTYPES[dtype]), reduction=reduction)
    _backward(out, reduction)
    return {"loss": "cosine-embedding", "dtype": dtype, "reduction": reduction, "options": {},
            "pred": short(x1, dtype), "target": short(x2, dtype), "label": short(label, dtype),
            **_result(out, reduction, dtype, {"grad": a, "grad_target": b})}


def mse_record(rng, dtype: str, rows: int, n: int) -> dict:
    """mse_loss's sum of (p − y)², p a row of values whose squares sum to a tie, y zeros."""
    def draw(r) -> tuple:
        p = np.stack([tie_row(r, n, dtype, squares=True) * r.choice([-1, 1], n) for _ in range(rows)])
        return np.zeros_like(p), p

    y, p = apart(rng, draw, lambda y, p: _evaluate("mse", dtype, "sum", y, p, {}))
    pt = _leaf(p, dtype)
    out = F.mse_loss(pt, torch.tensor(y).to(DTYPES[dtype]), reduction="sum")
    out.backward()
    return {"loss": "mse", "dtype": dtype, "reduction": "sum", "options": {}, "pred": short(p, dtype),
            "target": short(y, dtype), **_result(out, "sum", dtype, {"grad": pt})}


def dice_record(rng, dtype: str, reduction: str, rows: int, n: int) -> dict:
    """MONAI's DiceLoss of probabilities (tie rows scaled into [0, 1]) against masks of ones: Σp a tie."""
    from monai.losses import DiceLoss

    def draw(r) -> tuple:
        p = np.stack([tie_row(r, n, dtype) / 2.0 ** BITS[dtype] for _ in range(rows)])
        return np.ones_like(p), p

    y, p = apart(rng, draw, lambda y, p: _evaluate("dice", dtype, reduction, y, p, {}))
    pt = _leaf(p, dtype)
    out = DiceLoss(reduction=reduction)(pt[:, None, :], torch.tensor(y).to(DTYPES[dtype])[:, None, :])
    out = out.reshape(rows) if reduction == "none" else out
    _backward(out, reduction)
    return {"loss": "dice", "dtype": dtype, "reduction": reduction, "options": {}, "pred": short(p, dtype),
            "target": short(y, dtype), **_result(out, reduction, dtype, {"grad": pt})}


def gaussian_record(rng, dtype: str, reduction: str, rows: int, n: int) -> dict:
    """gaussian_nll_loss with one variance (1) per sample: the variance's gradient sums −g·(p − y)²/v over the
    sample, p a row whose squares sum to a tie, y zeros."""
    def draw(r) -> tuple:
        p = np.stack([tie_row(r, n, dtype, squares=True) * r.choice([-1, 1], n) for _ in range(rows)])
        return np.zeros_like(p), p, np.ones((rows, 1))

    y, p, v = apart(rng, draw, lambda y, p, v: _evaluate("gaussian-nll", dtype, reduction, y, p, {}, var=v))
    pt, vt = _leaf(p, dtype), _leaf(v, dtype)
    out = F.gaussian_nll_loss(pt, torch.tensor(y).to(DTYPES[dtype]), vt, reduction=reduction)
    _backward(out, reduction)
    return {"loss": "gaussian-nll", "dtype": dtype, "reduction": reduction, "options": {}, "pred": short(p, dtype),
            "target": short(y, dtype), "var": short(v, dtype),
            **_result(out, reduction, dtype, {"grad": pt, "grad_var": vt})}


def _is_tie(v: float, dtype: str) -> bool:
    """Whether v lies halfway between two neighbours of the dtype (normal range)."""
    e = int(np.floor(np.log2(abs(v))))
    m = abs(v) / 2.0 ** (e - BITS[dtype])
    return m == int(m) and int(m) % 2 == 1


def ce_targets(rng, classes: int, dtype: str) -> np.ndarray:
    """A probability row (of powers of two) for logits all 0, whose log p are all one value L of the dtype: the
    terms L·y are exact, a few whose sum is a tie and 2 or 3 a quarter to a half of float32's spacing there."""
    from lossgrad import lowp

    half = lowp.half_dtype(dtype)
    big = float(lowp.log_softmax(np.zeros((1, classes), dtype=np.float32), lowp.rounder(half), True,
                                  lowp.lanes())[0, 0])
    least, top = (16.0, 3) if dtype == "float16" else (0.0, 10)  # (float16: tiny terms above its subnormals)
    for _ in range(100000):
        powers = 2.0 ** -rng.integers(0, top, int(rng.integers(2, min(classes - 3, 10))))
        if abs(big * powers.sum()) >= least and _is_tie(big * powers.sum(), dtype):
            break
    else:
        raise RuntimeError(f"no tie of L = {big} for {classes} classes")
    spacing = 2.0 ** (np.floor(np.log2(abs(big * powers.sum()))) - 23)
    tiny = 2.0 ** np.ceil(np.log2(abs(big) / (0.5 * spacing)))  # (|L| over it in a quarter to a half of the spacing)
    values = np.concatenate([powers, np.full(int(rng.integers(2, 4)), 1 / tiny)])
    y = np.zeros(classes)
    y[rng.permutation(classes)[:len(values)]] = values
    return rounded(y, dtype)


def ce_record(rng, dtype: str, reduction: str, n: int) -> dict:
    """cross_entropy of logit rows of 0 against ce_targets (one row for a reduced value: the sum over the batch is
    then the row's), the sums of whose terms are ties."""
    rows = 4 if reduction == "none" else 1

    def draw(r) -> tuple:
        return np.stack([ce_targets(r, n, dtype) for _ in range(rows)]), np.zeros((rows, n))

    y, z = apart(rng, draw, lambda y, z: _evaluate("ce", dtype, reduction, y, z, {"from_logits": True,
                                                                                   "labels": "onehot"}))
    zt = _leaf(z, dtype)
    out = F.cross_entropy(zt, torch.tensor(y).to(DTYPES[dtype]), reduction=reduction)
    _backward(out, reduction)
    return {"loss": "ce", "dtype": dtype, "reduction": reduction, "options": {"from_logits": True,
                                                                              "labels": "onehot"},
            "pred": short(z, dtype), "target": short(y, dtype), **_result(out, reduction, dtype, {"grad": zt})}


def large_ce_record(rng, shape: tuple[int, int], reduction: str, options: dict) -> dict:
    """cross_entropy in float32 of random logit and probability rows of more than GRAIN elements in all, with class
    weights or label smoothing: the reduced value, torch.sum's of every term, which PyTorch's threads split (drawn
    until lossgrad's value changes with the sum taken in one pass)."""
    from lossgrad import lowp

    def draw(r) -> tuple:
        y = r.random(shape) ** 3
        return rounded(y / y.sum(axis=1, keepdims=True), "float32"), rounded(r.standard_normal(shape) * 3, "float32")

    def run(y, z) -> tuple:
        return (_evaluate("ce", "float32", reduction, y, z, {"from_logits": True, "labels": "onehot", **options})[0],)

    for _ in range(50):
        y, z = draw(rng)
        with undone(lowp, "GRAIN", 10 ** 12):
            one_pass = run(y, z)
        if not _same(run(y, z), one_pass):
            break
    else:
        raise RuntimeError("no inputs apart")
    weight = options.get("class_weights")
    out = F.cross_entropy(torch.tensor(z, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
                          weight=None if weight is None else torch.tensor(weight, dtype=torch.float32),
                          label_smoothing=options.get("label_smoothing", 0.0), reduction=reduction)
    return {"loss": "ce", "dtype": "float32", "reduction": reduction,
            "options": {"from_logits": True, "labels": "onehot", **options},
            "pred": packed(z, "float32"), "target": packed(y, "float32"), "value": short(out.item(), "float32")}


def main() -> None:
    import monai

    torch.set_num_threads(2)
    rng = np.random.default_rng(2026_12_04)
    sums = [sum_record(rng, dtype, 3, n) for dtype in HALVES for n in LENGTHS]
    sums += [sum_record(rng, dtype, 1, LONG) for dtype in HALVES]
    losses = []
    for dtype in HALVES:
        for n in (12, 24, 40, 100):
            losses.append(mse_record(rng, dtype, 2, n))
            for reduction in ("none", "sum"):
                losses.append(cosine_record(rng, dtype, reduction, 3, n))
                with contextlib.suppress(RuntimeError):  # (float16's tiny probabilities are coarse subnormals)
                    losses.append(dice_record(rng, dtype, reduction, 2, n))
                losses.append(gaussian_record(rng, dtype, reduction, 2, n))
        for n, reduction in CE_CASES[dtype]:
            losses.append(ce_record(rng, dtype, reduction, n))
    weights = [float(v) for v in rounded(rng.random(32) * 2, "float32")]
    losses.append(large_ce_record(rng, (1040, 32), "mean", {"class_weights": weights}))
    losses.append(large_ce_record(rng, (1040, 32), "sum", {"label_smoothing": 0.1}))
    data = {"versions": {**versions(), "monai": monai.__version__,
                         "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                         "threads": torch.get_num_threads()},
            "sums": sums, "records": losses}
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(sums)} sums, {len(losses)} loss records -> {OUT}")


if __name__ == "__main__":
    main()
