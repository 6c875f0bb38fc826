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
from golden_pairs64 import _kept, digest  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tf_seg64.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}
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
    import tensorflow as tf

    y, p, w = inputs(seed, shape, kind)
    rec = {"loss": loss, "alpha": alpha, "beta": beta, "eps": eps, "axis": axis, "seed": seed,
           "shape": list(y.shape), "kind": kind, "inputs_sha256": digest(y, p, *([] if w is None else [w]))}
    if eps is not None:
        keras.config.set_epsilon(eps)
    try:
        yt, wt = tf.constant(y, tf.float64), None if w is None else tf.constant(w, tf.float64)
        if axis is not None:
            rec["losses"] = _kept(_loss(loss, None, alpha, beta, axis)(yt, tf.constant(p, tf.float64),
                                                                       sample_weight=wt).numpy())
        for name, reduction in REDUCTIONS.items():
            pv = tf.Variable(tf.constant(p, tf.float64))
            with tf.GradientTape() as tape:
                value = _loss(loss, reduction, alpha, beta, axis)(yt, pv, sample_weight=wt)
            rec[name] = {"value": float(value.numpy()).hex(), "grad": _kept(tape.gradient(value, pv).numpy())}
        return rec
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
    from golden_pairs64 import matches

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
        kw = {"convention": "keras", "over_batch": axis is None} | (
            {"alpha": a, "beta": b} if loss == "tversky" else {})
        ok = True
        if axis is not None:
            r = lossgrad.evaluate(loss, y, p, reduction="none", sample_weight=w, **kw)
            ok = matches(r.losses, rec["losses"]) and not r.warnings
            losses += r.losses.size
        for name in REDUCTIONS:
            r = lossgrad.evaluate(loss, y, p, reduction=name, sample_weight=w, **kw)
            ok = ok and r.value == float.fromhex(rec[name]["value"]) and not r.warnings \
                and matches(np.reshape(r.grad, shape), rec[name]["grad"])
            grads += r.grad.size
        apart += not ok
    return f"{rounds} rounds: {grads} gradient elements, {losses} losses, {2 * rounds} values; {apart} rounds apart"


def main() -> None:
    import json

    if sys.argv[1:2] == ["--measure"]:
        print(measure(int(sys.argv[2]) if len(sys.argv) > 2 else 200))
        return

    from make_golden import cpu_model, versions

    avx512 = "avx512f" in Path("/proc/cpuinfo").read_text()  # (TensorFlow's wheel is built for AVX: either gives these)
    meta = versions() | {"cpu": cpu_model(), "avx512": avx512}
    recs = cases()
    OUT.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_tf_seg64.py", "records": recs}) + "\n")
    print(f"{len(recs)} records -> {OUT}")


if __name__ == "__main__":
    main()
