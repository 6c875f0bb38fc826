"""Record PyTorch's class-weighted means over batches of more than 32,768 samples, for
tests/golden/weighted_batches.json (read by tests/test_weighted_batches.py).

cross_entropy and nll_loss over class indexes with class weights divide their mean by sums of the weights of the
samples counted, taken over the whole batch: nll_loss's total weight (its cascade sum, in the dtype), and with label
smoothing torch.sum of the gathered weights (its two passes over the threads, in the dtype). lossgrad evaluates a
long batch in slices of 32,768 samples; these records hold it to PyTorch's gradient over the whole batch.

Each record: the loss, dtype, label smoothing, ignore_index, shape, the seed its inputs come from (inputs(): pure
numpy, so the test rebuilds them; the first from the case's whose gradient under lossgrad changes with each
slice's own sums) with the SHA-256 of the inputs as the dtype holds them, the class weights, torch's reduced value,
and the SHA-256 of its per-sample losses (reduction none) and of its gradient of the mean, in float32. Cases:
float32, bfloat16 and float16 (the last of 150,000 samples, whose weights add up beyond float16's range: its total
weight is ∞, its gradient 0), with and without smoothing and ignored samples, and nll_loss on log-probabilities;
and 3 batches without class weights, for the value alone, which lossgrad forms from the slices' per-sample pieces
joined (api.batch_value). The torch version and threads are recorded.

    python3 scripts/golden_weighted_batches.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weighted_batches.json"
IGNORE = -100
# (loss, dtype, label smoothing, whether a tenth of the samples are ignored, rows, classes)
CASES = (("ce", "float32", 0.0, False, 70000, 5), ("ce", "float32", 0.1, True, 70000, 5),
         ("ce", "bfloat16", 0.0, True, 70000, 5), ("ce", "bfloat16", 0.1, False, 70000, 5),
         ("ce", "float16", 0.1, False, 40000, 4), ("ce", "float16", 0.0, False, 100000, 5),
         ("nll", "bfloat16", 0.0, True, 66000, 3), ("ce", "bfloat16", 0.2, True, 100003, 7),
         ("ce", "float16", 0.0, False, 150000, 3))
# without class weights: the mean's value over slices alone (the count kept as the divisor)
UNWEIGHTED = (("ce", "bfloat16", 0.0, True, 70000, 50), ("ce", "float16", 0.1, True, 50000, 5),
              ("ce", "float32", 0.1, False, 70000, 5))


def inputs(seed: int, loss: str, rows: int, classes: int, ignored: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class indexes (a tenth IGNORE if `ignored`), predictions (ce: logits; nll: log-probabilities) and class
    weights in [0.2, 1.6] (their sum over 40,000 samples stays within float16's range), float32 values."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    if ignored:
        labels[rng.random(rows) < 0.1] = IGNORE
    z = rng.standard_normal((rows, classes)) * 2
    if loss == "nll":
        z = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    weights = rng.uniform(0.2, 1.6, classes)
    return labels, z.astype(np.float32).astype(np.float64), weights.astype(np.float32).astype(np.float64)


def digest(x) -> str:
    """SHA-256 of an array's float32 bytes, in C order."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(x, dtype=np.float32)).tobytes()).hexdigest()


def lossgrads_grad(loss: str, dtype: str, smoothing: float, labels: np.ndarray, z: np.ndarray,
                   weights: np.ndarray | None) -> np.ndarray:
    """lossgrad's gradient of the mean (it only places the inputs: what is recorded is PyTorch's)."""
    import lossgrad

    kind = np.float32 if dtype == "float32" else lossgrad.lowp.half_dtype(dtype)
    options = {"from_logits": True, "label_smoothing": smoothing} if loss == "ce" else {}
    return lossgrad.evaluate(loss, labels[:, None].astype(np.float64), z.astype(kind).astype(np.float64),
                             convention="torch", dtype=dtype, labels="index", ignore_index=IGNORE,
                             class_weights=None if weights is None else weights.tolist(), **options).grad


def placed_seed(first: int, loss: str, dtype: str, smoothing: float, ignored: bool, rows: int,
                classes: int) -> tuple[int, bool]:
    """The first seed from `first` whose gradient under lossgrad changes when each slice divides by its own sums
    of the weights, and True; else `first` and False (a total weight of ∞ is ∞ either way)."""
    from lossgrad import evaluation

    whole = evaluation.with_batch_totals
    for seed in range(first, first + 40):
        labels, z, weights = inputs(seed, loss, rows, classes, ignored)
        batch = lossgrads_grad(loss, dtype, smoothing, labels, z, weights)
        evaluation.with_batch_totals = lambda setup, *_: setup
        try:
            alone = lossgrads_grad(loss, dtype, smoothing, labels, z, weights)
        finally:
            evaluation.with_batch_totals = whole
        if not np.array_equal(batch, alone, equal_nan=True):
            return seed, True
    return first, False


def record(k: int, loss: str, dtype: str, smoothing: float, ignored: bool, rows: int, classes: int,
           weighted: bool = True) -> dict:
    import torch

    kind = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    seed, placed = placed_seed(20261205 + 100 * k, loss, dtype, smoothing, ignored, rows, classes) if weighted \
        else (20261205 + 100 * k, False)
    labels, z, weights = inputs(seed, loss, rows, classes, ignored)
    target, w = torch.tensor(labels), torch.tensor(weights).to(kind) if weighted else None
    held = torch.tensor(z).to(kind)
    f = torch.nn.functional

    def loss_of(x, reduction: str):
        if loss == "nll":
            return f.nll_loss(x, target, weight=w, ignore_index=IGNORE, reduction=reduction)
        return f.cross_entropy(x, target, weight=w, ignore_index=IGNORE, label_smoothing=smoothing,
                               reduction=reduction)
    leaf = held.clone().requires_grad_()
    value = loss_of(leaf, "mean")
    value.backward()
    columns = [labels[:, None], held.float().numpy()] + ([] if w is None else [np.tile(w.float().numpy(), (rows, 1))])
    return {"loss": loss, "dtype": dtype, "label_smoothing": smoothing, "ignored": ignored, "shape": [rows, classes],
            "seed": seed, "placed": placed, "weighted": weighted, "inputs": digest(np.concatenate(columns, axis=1)),
            "value": str(value.float().item()), "losses": digest(loss_of(held, "none").float().numpy()),
            "grad": digest(leaf.grad.float().numpy())}


def main() -> None:
    import torch

    recs = [record(k, *case) for k, case in enumerate(CASES)]
    recs += [record(len(CASES) + k, *case, weighted=False) for k, case in enumerate(UNWEIGHTED)]
    meta = {**versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
    OUT.write_text(json.dumps({"versions": meta, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records, {meta}")


if __name__ == "__main__":
    main()
