"""Record PyTorch's gradients over batches of more than 32,768 samples whose elementwise kernels end each thread's
part in a scalar loop, for tests/golden/torch_tails.json (read by tests/test_torch_tails.py).

TensorIterator splits a tensor of more than 32,768 elements between the threads, and each thread's vectorised loop
leaves the elements after its last whole register to a scalar loop (glibc's expf in σ, the scalar formulas of
huber's and smooth-l1's backward, the C library's pow in focal's). Those parts are the whole batch's; lossgrad
evaluates a long batch in slices, and tells each slice where it lies (lowp.tails' `place`). Each record: the case
(loss, dtype, rows, outputs per sample), the seed its inputs come from (inputs(): pure numpy) with their SHA-256,
and the SHA-256 of PyTorch's gradient of the mean; the seed is the first from the case's whose gradient under
lossgrad changes when each slice is taken as a batch of its own. Versions, threads and the processor are recorded.

    python3 scripts/golden_torch_tails.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_long_batches import digest, held  # noqa: E402
from make_golden import torch_meta, torchvision_focal  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "torch_tails.json"
# (loss, dtype, rows, outputs per sample); bce-pw is bce from logits with a pos_weight per output
CASES = (("bce", "float32", 70001, 3), ("bce", "float32", 50000, 2), ("bce-pw", "float32", 66000, 7),
         ("huber", "bfloat16", 70001, 3), ("huber", "float32", 70001, 5), ("smooth-l1", "float32", 50001, 3),
         ("focal", "float32", 66001, 3), ("focal", "float16", 70001, 3))
OPTIONS = {"bce": {"from_logits": True}, "huber": {"delta": 0.7}, "smooth-l1": {"beta": 0.6},
           "focal": {"from_logits": True, "alpha": 0.25, "gamma": 2.0}}


def inputs(seed: int, loss: str, rows: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets, predictions (logits for bce and focal) and pos_weight, float64."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, width)) * 3
    y = rng.normal(size=(rows, width)) if loss in ("huber", "smooth-l1") else (rng.random((rows, width)) < 0.3) * 1.0
    return y, z, rng.uniform(0.5, 3.0, width)


def held_inputs(seed: int, case: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    loss, dtype, rows, width = case
    y, z, pw = inputs(seed, loss, rows, width)
    return held(y, dtype), held(z, dtype), held(pw, dtype)


def lossgrads_grad(case: tuple, y: np.ndarray, z: np.ndarray, pw: np.ndarray) -> np.ndarray:
    import lossgrad

    loss, dtype = case[0], case[1]
    options = dict(OPTIONS["bce" if loss == "bce-pw" else loss], **({"pos_weight": pw} if loss == "bce-pw" else {}))
    r = lossgrad.evaluate("bce" if loss == "bce-pw" else loss, y, z, convention="torch", dtype=dtype, **options)
    return np.asarray(r.grad, dtype=np.float32)


def placed_seed(first: int, case: tuple) -> tuple[int, bool]:
    """The first seed from `first` whose gradient under lossgrad changes when each slice is a batch of its own."""
    from lossgrad import lowp

    tails = lowp.tails
    for seed in range(first, first + 40):
        args = held_inputs(seed, case)
        placed = digest(lossgrads_grad(case, *args))
        lowp.tails = lambda shape, width, place=None: tails(shape, width)  # type: ignore[assignment]
        try:
            alone = digest(lossgrads_grad(case, *args))
        finally:
            lowp.tails = tails
        if placed != alone:
            return seed, True
    return first, False


def torch_grad(case: tuple, y: np.ndarray, z: np.ndarray, pw: np.ndarray) -> np.ndarray:
    """PyTorch's gradient of the mean (the loss's own reduction="mean"), its inputs in the dtype."""
    import torch

    loss, dtype = case[0], case[1]
    kind = getattr(torch, dtype)
    f = torch.nn.functional
    tz, ty = torch.tensor(z).to(kind).requires_grad_(True), torch.tensor(y).to(kind)
    mean = {"bce": lambda: f.binary_cross_entropy_with_logits(tz, ty),
            "bce-pw": lambda: f.binary_cross_entropy_with_logits(tz, ty, pos_weight=torch.tensor(pw).to(kind)),
            "huber": lambda: f.huber_loss(tz, ty, delta=0.7), "smooth-l1": lambda: f.smooth_l1_loss(tz, ty, beta=0.6),
            "focal": lambda: torchvision_focal()(tz, ty, alpha=0.25, gamma=2.0, reduction="mean")}[loss]()
    mean.backward()
    assert tz.grad is not None
    return tz.grad.float().numpy()


def record(k: int, case: tuple) -> dict:
    seed, placed = placed_seed(20261205 + 100 * k, case)
    y, z, pw = held_inputs(seed, case)
    loss, dtype, rows, width = case
    return {"loss": loss, "dtype": dtype, "shape": [rows, width], "seed": seed, "placed": placed,
            "inputs": digest(y, z, pw), "grad": digest(torch_grad(case, y, z, pw))}


def main() -> None:
    recs = [record(k, case) for k, case in enumerate(CASES)]
    meta = torch_meta()
    OUT.write_text(json.dumps({"versions": meta, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records, {sum(r['placed'] for r in recs)} placed, {meta}")


if __name__ == "__main__":
    main()
