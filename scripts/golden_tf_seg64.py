"""Record TensorFlow's float64 CPU results for Keras 3's Dice and Tversky losses, for tests/golden/tf_seg64.json
(read by tests/test_tf_seg64.py).

Each record: loss, lossgrad's alpha and beta (tversky: Keras' alpha is lossgrad's beta and the other way round),
eps (Keras' backend epsilon for the run, None for its 1e−7), axis (1: one loss per sample; None: the whole batch as
one set, lossgrad's --over-batch), the seed, shape and kind its inputs come from (inputs(): pure numpy draws, so
the test rebuilds them on any machine) with the SHA-256 of the targets, predictions and sample weights, and what
keras.losses.Dice / keras.losses.Tversky (dtype="float64") give for them: the per-sample losses (reduction None),
and the value and the GradientTape gradient with respect to the predictions under "sum" and
"sum_over_batch_size" (lossgrad's mean), every number as float.hex, arrays of more than 4,096 by SHA-256.

Kinds: random doubles (masks or soft targets) on rows of every length modulo a packet of 4 doubles and rows of more
than 4,096 outputs (the reducer's tree); all-zero rows (0/ε), perfect rows and empty targets; subnormal values
(read as 0 by TensorFlow); a batch of 301; sample weights with a 0 and a subnormal one.

    python3 scripts/golden_tf_seg64.py              # the golden file
    python3 scripts/golden_tf_seg64.py --measure 200  # the README's float64 row: random rounds against lossgrad
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden64 import REDUCTIONS, agrees, keras_results, main, tally  # noqa: E402
from golden_pairs64 import digest  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tf_seg64.json"
LOSSES = ("dice", "tversky")
SHAPES = ((1, 1), (7, 5), (13, 1), (3, 40), (20, 9), (1, 33), (16, 24), (2, 333), (5, 4097), (1, 9001), (301, 3))
ZEROS = np.array([[0, 0, 0, 0, 0], [1, 0, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], float)
TINY = np.array([[1e-310, 0.5, 0.0, 2e-308], [3e-320, 1.0, 1.0, 1e-300]])


def inputs(seed: int, shape: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Targets, predictions and sample weights (None: unweighted) for the kind."""
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return ZEROS, np.array([[0, 0, 0, 0, 0], [1, 0, 1, 0, 1], [1, 1, 1, 1, 1], [0.3, 0.9, 0, 1, 1e-6],
                                [0, 0, 0, 0, 0]]), None
    if kind == "subnormal":
        return TINY[::-1] * [[1.0], [1e-10]], TINY, None
    y = rng.random(shape) if rng.random() < 0.3 else (rng.random(shape) < 0.4) * 1.0
    p = rng.random(shape) ** float(rng.choice([0.5, 1.0, 3.0]))
    if kind != "weights":
        return y, p, None
    w = rng.random(shape[0]) * 3
    w[0], w[-1] = 0.0, 5e-310
    return y, p, w


def _loss(loss: str, reduction: str | None, alpha: float, beta: float, axis: int | None):  # noqa: ANN202
    import keras

    if loss == "dice":
        return keras.losses.Dice(reduction=reduction, axis=axis, dtype="float64")
    return keras.losses.Tversky(alpha=beta, beta=alpha, reduction=reduction, axis=axis, dtype="float64")


def record(loss: str, seed: int, shape: tuple[int, int], kind: str, alpha: float = 0.5, beta: float = 0.5,
           eps: float | None = None, axis: int | None = 1) -> dict:
    """The framework's results (`eps`: Keras' backend epsilon for the run, lossgrad's --eps)."""
    import keras

    y, p, w = inputs(seed, shape, kind)
    rec = {"loss": loss, "alpha": alpha, "beta": beta, "eps": eps, "axis": axis, "seed": seed,
           "shape": list(y.shape), "kind": kind, "inputs_sha256": digest(y, p, *([] if w is None else [w]))}
    if eps is not None:
        keras.config.set_epsilon(eps)
    try:
        return rec | keras_results(lambda r: _loss(loss, r, alpha, beta, axis), y, p, w, losses=axis is not None)
    finally:
        keras.config.set_epsilon(1e-7)


def _ab(rng: np.random.Generator, loss: str) -> tuple[float, float]:
    """lossgrad's alpha and beta: tversky's drawn (0 and 1 among them), dice's unused."""
    if loss == "dice":
        return 0.5, 0.5
    return float(rng.choice([0.3, 0.5, 0.7, 0.0])), float(rng.choice([0.2, 0.5, 1.0]))


def cases() -> list[dict]:
    rng = np.random.default_rng(20261206)
    out = []
    for loss in LOSSES:
        for shape in SHAPES:
            out.append(record(loss, int(rng.integers(2**31)), shape, "random", *_ab(rng, loss)))
        out.append(record(loss, 0, (5, 5), "zeros"))
        out.append(record(loss, 0, (2, 4), "subnormal", *_ab(rng, loss)))
        out.append(record(loss, int(rng.integers(2**31)), (4, 6), "random", *_ab(rng, loss), eps=0.01))
        for shape in ((9, 7), (40, 3)):
            out.append(record(loss, int(rng.integers(2**31)), shape, "weights", *_ab(rng, loss)))
        for shape in ((6, 5), (30, 301)):
            out.append(record(loss, int(rng.integers(2**31)), shape, "random", *_ab(rng, loss), axis=None))
    return out


def measure(rounds: int, seed: int = 20261207) -> str:
    """`rounds` random rounds against lossgrad (the README's float64 row): 1 to 39 rows by 1 to 599 outputs, one in
    25 of 9,001; sample weights in every third, `axis=None` (--over-batch) in the unweighted rounds t ≡ 1 mod 10."""
    import lossgrad

    rng = np.random.default_rng(seed)
    grads = losses = apart = 0
    for t in range(rounds):
        loss = LOSSES[t % 2]
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 600) if t % 25 else 9001))
        kind = "weights" if t % 3 == 0 and shape[0] > 1 else "random"
        a, b = _ab(rng, loss)
        axis = None if kind == "random" and t % 10 == 1 else 1
        rec = record(loss, int(rng.integers(2**31)), shape, kind, a, b, axis=axis)
        y, p, w = inputs(rec["seed"], shape, kind)
        kw = {"convention": "keras", "over_batch": axis is None, "sample_weight": w} | (
            {"alpha": a, "beta": b} if loss == "tversky" else {})
        none = None if axis is None else lossgrad.evaluate(loss, y, p, reduction="none", **kw)
        reduced = {name: lossgrad.evaluate(loss, y, p, reduction=name, **kw) for name in REDUCTIONS}
        apart += not agrees(rec, none, reduced, shape)
        losses += 0 if none is None else none.losses.size
        grads += sum(r.grad.size for r in reduced.values())
    return tally(rounds, grads, losses, apart)


if __name__ == "__main__":
    main(OUT, "scripts/golden_tf_seg64.py", cases, measure)
