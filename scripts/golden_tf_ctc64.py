"""Record tf-keras' ctc_batch_cost in float64 on the CPU, for tests/golden/tf_ctc64.json (read by
tests/test_tf_ctc64.py).

tf-keras takes probabilities: the record's log-probabilities x [B, T, C] become y = e^x (TensorFlow's Exp in
double), the classes are put in order with the blank last, and ctc_batch_cost takes log(y + ε) (Add and Log in
double) into TensorFlow's C++ CTCLoss op, which runs in double too (but for its LogSumExp and the gradient's
negative term, which call the float functions expf and log1pf). Its losses, and the value and the gradient with
respect to y (back in the record's class order) of their sum and mean as Keras' fit reduces them
(compute_weighted_loss, with the sample weights where the record has them).

Each record: the blank, the seed, shape and kind its inputs come from (inputs(): pure numpy draws, so the test
rebuilds them on any machine) with the SHA-256 of the log-probabilities, labels, lengths and weights, and the
framework's results, every number as float.hex, arrays of more than 4,096 by SHA-256. Kinds: random batches of 1 to
12 sequences of up to 59 frames, 2 to 23 classes, 1 to 14 labels (repeats, padding, the blank anywhere), logits of
scale 0.1 to 30 normalised; the hand-worked case (p = 5/16); repeats needing more frames than they have (no
alignment: an infinite loss); sample weights.

    python3 scripts/golden_tf_ctc64.py              # the golden file
    python3 scripts/golden_tf_ctc64.py --measure 200  # the README's float64 row: random rounds against lossgrad
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden64 import agrees, main, tally  # noqa: E402
from golden_pairs64 import _kept, digest  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tf_ctc64.json"
HAND = np.log(np.array([[[0.25, 0.5, 0.25], [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]]))
Case = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, "np.ndarray | None"]


def inputs(seed: int, kind: str) -> Case:
    """(log-probabilities [B, T, C], padded labels [B, L], input lengths, target lengths, blank, sample weights or
    None) for the kind: every sequence has 1 to T labels (the op refuses none or more)."""
    rng = np.random.default_rng(seed)
    if kind == "hand":
        return HAND, np.array([[1, 2]]), np.array([3]), np.array([2]), 0, None
    if kind == "no alignment":
        z = rng.normal(size=(4, 7, 3))
        return (_log_softmax(z), np.array([[1, 1, 1], [2, 2, 1], [1, 2, 1], [1, 1, 2]]), np.array([5, 3, 3, 3]),
                np.array([3, 2, 3, 3]), 0, None)
    b, t, c, n = int(rng.integers(1, 13)), int(rng.integers(2, 60)), int(rng.integers(2, 24)), int(rng.integers(1, 15))
    blank = int(rng.integers(0, c)) if rng.random() < 0.5 else c - 1
    z = float(rng.choice([0.1, 1, 5, 30])) * rng.normal(size=(b, t, c))
    tl = np.minimum(np.maximum(rng.integers(0, n + 1, size=b), 1), t)
    lab = rng.integers(0, c, size=(b, n))
    lab = np.where(lab == blank, (blank + 1) % c, lab)
    il = np.maximum(rng.integers(1, t + 1, size=b), tl)
    w = rng.random(b) * 3 if kind == "weights" else None
    return _log_softmax(z), lab, il, tl, blank, w


def _log_softmax(z: np.ndarray) -> np.ndarray:
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _digest(case: Case) -> str:
    x, lab, il, tl, _, w = case
    return digest(x, lab, il, tl, *([] if w is None else [w]))


def record(seed: int, kind: str) -> dict:
    """tf-keras' results for the kind's inputs from this seed."""
    import tensorflow as tf
    import tf_keras
    from tf_keras.src.utils import losses_utils

    case = inputs(seed, kind)
    x, labels, il, tl, blank, w = case
    c = x.shape[2]
    order = [k for k in range(c) if k != blank] + [blank]
    where = np.argsort(order)
    il, tl = np.asarray(il, np.int32), np.asarray(tl, np.int32)
    lab = np.where(np.arange(labels.shape[1])[None, :] < tl[:, None], where[labels], 0)
    y = tf.gather(tf.exp(tf.constant(x, tf.float64)), order, axis=2)
    rec = {"seed": seed, "kind": kind, "blank": blank, "shape": list(x.shape), "inputs_sha256": _digest(case)}
    wt = None if w is None else tf.constant(w, tf.float64)
    for name, how in (("sum", "sum"), ("mean", "sum_over_batch_size")):
        yv = tf.Variable(y)
        with tf.GradientTape() as tape:
            losses = tf_keras.backend.ctc_batch_cost(tf.constant(lab), yv, tf.constant(il[:, None]),
                                                     tf.constant(tl[:, None]))
            value = losses_utils.compute_weighted_loss(losses, sample_weight=wt, reduction=how)
        weighed = losses_utils.compute_weighted_loss(losses, sample_weight=wt, reduction="none")
        rec["losses"] = _kept(weighed.numpy()[:, 0])  # (under weights, each loss times its weight)
        rec[name] = {"value": float(value.numpy()).hex(), "grad": _kept(tape.gradient(value, yv).numpy()[..., where])}
    return rec


def evaluate(case: Case, reduction: str):  # noqa: ANN201
    """lossgrad's tf-keras ctc on the case, in float64."""
    import lossgrad

    x, lab, il, tl, blank, w = case
    return lossgrad.ctc(lab, x, input_lengths=il.tolist(), target_lengths=tl.tolist(), convention="tf-keras",
                        reduction=reduction, blank=blank, sample_weight=w)


def cases() -> list[dict]:
    rng = np.random.default_rng(20261206)
    out = [record(0, "hand"), record(int(rng.integers(2**31)), "no alignment")]
    out += [record(int(rng.integers(2**31)), "random") for _ in range(14)]
    out += [record(int(rng.integers(2**31)), "weights") for _ in range(4)]
    return out


def unwarned(r) -> bool:  # noqa: ANN001
    """No warning but the hint of an infinite loss: the kernels are reproduced."""
    return not [w for w in r.warnings if "infinite loss" not in w]


def measure(rounds: int, seed: int = 20261207) -> str:
    """`rounds` random rounds against lossgrad (the README's float64 row), sample weights in every fourth."""
    rng = np.random.default_rng(seed)
    grads = losses = apart = 0
    for t in range(rounds):
        kind = "weights" if t % 4 == 0 else "random"
        rec = record(int(rng.integers(2**31)), kind)
        case = inputs(rec["seed"], kind)
        none = evaluate(case, "none")
        reduced = {name: evaluate(case, name) for name in ("sum", "mean")}
        apart += not agrees(rec, none, reduced, quiet=unwarned)
        losses += none.losses.size
        grads += sum(r.grad.size for r in reduced.values())
    return tally(rounds, grads, losses, apart)


if __name__ == "__main__":
    main(OUT, "scripts/golden_tf_ctc64.py", cases, measure)
