"""Record TensorFlow's float32, float16 and bfloat16 CPU results for Keras 3's Dice and Tversky losses, for
tests/golden/lowp_tf_seg.json (read by tests/test_lowp_tf_seg.py).

Each record: dtype, loss, lossgrad's alpha and beta (tversky: Keras' alpha is lossgrad's beta and the other way
round), eps (Keras' backend epsilon for the run, None for its 1e−7), inputs (values of the dtype) and what
keras.losses.Dice / keras.losses.Tversky (axis=1: one loss per sample, dtype= the dtype) give for them: the
per-sample losses (reduction None), and the value and the GradientTape gradient with respect to the predictions
under "sum" and "sum_over_batch_size" (lossgrad's mean). Inputs are random and adversarial: rows whose sizes are
not multiples of a packet of 8, rows of more than 8192 outputs (the reducer's tree), soft targets, all-zero rows
(0/ε, and ε a float16 subnormal), perfect rows, a batch of 301 (1/N with N not a bfloat16).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import cpu_model, versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_seg.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}
DTYPES = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}
LOSSES = ("dice", "tversky")


def _short(a) -> list:
    """Numbers as the shortest decimal strings that read back to the same float32 (every value here is one)."""
    flat = np.asarray(a, dtype=np.float32)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


def in_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    return tf.cast(tf.constant(a, dtype=DTYPES[dtype]), tf.float32).numpy()


def _loss(loss: str, reduction: str | None, dtype: str, alpha: float, beta: float):
    if loss == "dice":
        return keras.losses.Dice(reduction=reduction, axis=1, dtype=dtype)
    return keras.losses.Tversky(alpha=beta, beta=alpha, reduction=reduction, axis=1, dtype=dtype)


def record(loss: str, y: np.ndarray, p: np.ndarray, note: str = "", dtype: str = "float32", alpha: float = 0.5,
           beta: float = 0.5, eps: float | None = None) -> dict:
    """The framework's results (`eps`: Keras' backend epsilon for the run, lossgrad's --eps)."""
    if eps is not None:
        keras.config.set_epsilon(eps)
    try:
        return _record(loss, in_dtype(y, dtype), in_dtype(p, dtype), note, dtype, alpha, beta) | {"eps": eps}
    finally:
        keras.config.set_epsilon(1e-7)


def _record(loss: str, y: np.ndarray, p: np.ndarray, note: str, dtype: str, alpha: float, beta: float) -> dict:
    t = DTYPES[dtype]
    per = _loss(loss, None, dtype, alpha, beta)(tf.constant(y, t), tf.constant(p, t))
    rec = {"dtype": dtype, "loss": loss, "alpha": alpha, "beta": beta, "note": note, "target": _short(y),
           "pred": _short(p), "losses": _short(tf.cast(per, tf.float32).numpy())}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, dtype=t))
        with tf.GradientTape() as tape:
            value = _loss(loss, reduction, dtype, alpha, beta)(tf.constant(y, t), pv)
        rec[name] = {"value": str(np.float32(tf.cast(value, tf.float32).numpy())),
                     "grad": _short(tf.cast(tape.gradient(value, pv), tf.float32).numpy())}
    return rec


SHAPES = [(1, 1), (7, 5), (13, 1), (3, 40), (20, 9), (1, 33), (16, 24), (2, 333)]


def random_cases(rng, loss: str, shapes=SHAPES) -> list[tuple]:
    """(loss, y, p, note, alpha, beta) on each shape: masks or soft targets, probabilities, α and β drawn."""
    out = []
    for rows, cols in shapes:
        y = rng.random((rows, cols)) if rng.random() < 0.3 else (rng.random((rows, cols)) < 0.4) * 1.0
        p = rng.random((rows, cols)) ** float(rng.choice([0.5, 1.0, 3.0]))
        a, b = (float(rng.choice([0.3, 0.5, 0.7, 0.0])), float(rng.choice([0.2, 0.5, 1.0]))) if loss == "tversky" \
            else (0.5, 0.5)
        out.append((loss, y.astype(np.float32), p.astype(np.float32), "random", a, b))
    return out


def adversarial_cases(rng) -> list[tuple]:
    out = []
    y = np.array([[0, 0, 0, 0, 0], [1, 0, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], np.float32)
    p = np.array([[0, 0, 0, 0, 0], [1, 0, 1, 0, 1], [1, 1, 1, 1, 1], [0.3, 0.9, 0, 1, 1e-6],
                  [0, 0, 0, 0, 0]], np.float32)
    for loss in LOSSES:
        out.append((loss, y, p, "all zero, perfect, empty target, empty prediction", 0.5, 0.5))
        # a row past the reducer's leaf (8192 floats in float32, 1600 in float16, 1024 in bfloat16) and its tree
        out.append((loss, (rng.random((1, 8203)) < 0.3).astype(np.float32), rng.random((1, 8203)).astype(np.float32),
                    "long rows", 0.3, 0.7))
        # 301 samples: 1/N for the mean, with N = 301 not a bfloat16
        out.append((loss, (rng.random((301, 3)) < 0.5).astype(np.float32), rng.random((301, 3)).astype(np.float32),
                    "301 samples", 0.5, 0.5))
    return out


def main() -> None:
    rng = np.random.default_rng(20261202)
    cases = []
    for dtype in DTYPES:
        for loss in LOSSES:
            for args in random_cases(rng, loss):
                cases.append(record(*args[:4], dtype=dtype, alpha=args[4], beta=args[5]))
        for args in adversarial_cases(rng):
            cases.append(record(*args[:4], dtype=dtype, alpha=args[4], beta=args[5]))
        for loss in LOSSES:  # Keras' backend epsilon set to 0.01 (lossgrad's --eps)
            _, y, p, _, a, b = random_cases(rng, loss, [(4, 6)])[0]
            cases.append(record(loss, y, p, "eps 0.01", dtype, a, b, eps=0.01))
    OUT.write_text(json.dumps({"versions": versions() | {"cpu": cpu_model()}, "records": cases}, indent=None) + "\n")
    print(f"{len(cases)} records -> {OUT}")


if __name__ == "__main__":
    main()
