"""Record TensorFlow's float64 CPU results for Keras 3's and tf-keras' CategoricalFocalCrossentropy, for
tests/golden/tf_focal64.json (read by tests/test_tf_focal64.py).

Each record: the convention (keras: Keras 3's loss class with dtype="float64"; tf-keras: its own, on float64
tensors), from_logits, gamma, class_alpha (one number, or one per class), the seed, shape and kind its inputs come
from (inputs(): pure numpy draws, so the test rebuilds them on any machine) with the SHA-256 of the targets,
predictions and sample weights, and the per-sample losses (reduction none), and the value and the GradientTape
gradient with respect to the predictions under "sum" and "sum_over_batch_size" (lossgrad's mean), every number as
float.hex, arrays of more than 4,096 by SHA-256.

These run Eigen's double kernels: log and pow over packets of 4 doubles with the C library's for the rest, the
softmax's e^x in blocks (lossgrad.eigen64, lowp_tf_log.wide_softmax). Kinds: one-hot or soft targets on
probabilities (some at 0, 1, ε and 1 − ε: the clip) or logits (scale 0.3 to 30, some saturated); batches of
thousands of rows, whose softmax runs in several blocks; rows of 9,001 classes; sample weights.

    python3 scripts/golden_tf_focal64.py              # the golden file
    python3 scripts/golden_tf_focal64.py --measure 200  # the README's float64 row: random rounds against lossgrad
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden64 import REDUCTIONS, agrees, keras_results, main, tally  # noqa: E402
from golden_pairs64 import digest  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tf_focal64.json"
GAMMAS = (2.0, 0.0, 0.5, 1.5, 3.0, 2.5)


def inputs(seed: int, shape: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Targets, predictions (probabilities, or logits for a kind ending in "logits") and sample weights (None:
    unweighted; kind "weights")."""
    rng = np.random.default_rng(seed)
    rows, n = shape
    y = np.eye(n)[rng.integers(0, n, rows)] if rng.random() < 0.7 else rng.dirichlet(np.full(n, 0.5), rows)
    if kind.endswith("logits"):
        p = rng.standard_normal(shape) * rng.choice([0.3, 3.0, 30.0], (rows, 1))
        p[rng.random(shape) < 0.02] = 800.0  # (a saturated softmax: e^(z − max) underflows to 0)
    else:
        p = 1 / (1 + np.exp(-rng.standard_normal(shape) * rng.choice([0.5, 3.0, 12.0], (rows, 1))))
        edge = rng.random(shape) < 0.08
        p[edge] = rng.choice([0.0, 1.0, 1e-7, 1 - 1e-7, 5e-8, 1e-3, 0.999], int(edge.sum()))
    w = rng.random(rows) * 3 if kind.startswith("weights") else None
    return y, p, w


def _loss(conv: str, reduction: str, from_logits: bool, gamma: float, alpha: float | list):  # noqa: ANN202
    if conv == "keras":
        import keras

        return keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=gamma, from_logits=from_logits,
                                                         reduction=reduction, dtype="float64")
    import tf_keras

    names = {None: "none", "sum": "sum", "sum_over_batch_size": "sum_over_batch_size"}
    return tf_keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=gamma, from_logits=from_logits,
                                                        reduction=names[reduction])


def record(conv: str, seed: int, shape: tuple[int, int], kind: str, gamma: float = 2.0,
           alpha: float | list = 0.25) -> dict:
    y, p, w = inputs(seed, shape, kind)
    logits = kind.endswith("logits")
    rec = {"convention": conv, "from_logits": logits, "gamma": gamma, "class_alpha": alpha, "seed": seed,
           "shape": list(shape), "kind": kind, "inputs_sha256": digest(y, p, *([] if w is None else [w]))}
    return rec | keras_results(lambda r: _loss(conv, r, logits, gamma, alpha), y, p, w)


def _alpha(rng: np.random.Generator, n: int) -> float | list:
    return [float(a) for a in rng.choice([0.1, 0.25, 0.3, 1.0], n)] if rng.random() < 0.3 and n > 1 else \
        float(rng.choice([0.25, 1.0, 0.1]))


def cases() -> list[dict]:
    rng = np.random.default_rng(20261206)
    out = []
    shapes = ((1, 2), (7, 5), (13, 3), (50, 9), (3, 40), (1, 33), (16, 64), (2, 1000), (9, 17), (1, 9001),
              (700, 9), (2000, 3))
    for conv in ("keras", "tf-keras"):
        for kind in ("probabilities", "logits"):
            for i, shape in enumerate(shapes):
                out.append(record(conv, int(rng.integers(2**31)), shape, kind, GAMMAS[i % len(GAMMAS)],
                                  _alpha(rng, shape[1])))
        for kind in ("weights", "weights-logits"):
            out.append(record(conv, int(rng.integers(2**31)), (11, 6), kind, 2.0, _alpha(rng, 6)))
    return out


def measure(rounds: int, seed: int = 20261207) -> str:
    """`rounds` random rounds against lossgrad (the README's float64 row): 1 to 39 rows of 2 to 199 classes, one in
    10 of 1,000 to 3,000 rows (the softmax's blocks); probabilities or logits, γ and α drawn, sample weights in
    every fourth; keras and tf-keras in turn."""
    import lossgrad

    rng = np.random.default_rng(seed)
    grads = losses = apart = 0
    for t in range(rounds):
        conv = ("keras", "tf-keras")[t % 2]
        shape = (int(rng.integers(1, 40) if t % 10 else rng.integers(1000, 3000)), int(rng.integers(2, 200)))
        kind = ("weights" if t % 4 == 0 else "") + ("-logits" if rng.random() < 0.5 else "")
        kind = kind.strip("-") or "probabilities"
        gamma, alpha = float(rng.choice(GAMMAS)), _alpha(rng, shape[1])
        rec = record(conv, int(rng.integers(2**31)), shape, kind, gamma, alpha)
        y, p, w = inputs(rec["seed"], shape, kind)
        kw = {"convention": conv, "from_logits": kind.endswith("logits"), "gamma": gamma, "sample_weight": w,
              "class_alpha": alpha if isinstance(alpha, list) else [alpha]}
        none = lossgrad.evaluate("categorical-focal", y, p, reduction="none", **kw)
        reduced = {name: lossgrad.evaluate("categorical-focal", y, p, reduction=name, **kw) for name in REDUCTIONS}
        apart += not agrees(rec, none, reduced, shape)
        losses += none.losses.size
        grads += sum(r.grad.size for r in reduced.values())
    return tally(rounds, grads, losses, apart)


if __name__ == "__main__":
    main(OUT, "scripts/golden_tf_focal64.py", cases, measure)
