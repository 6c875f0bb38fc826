"""Record Keras 3's and tf-keras' losses under label smoothing, for tests/golden/smoothing_tf.json (read by
tests/test_smoothing_tf.py).

`CategoricalCrossentropy(label_smoothing=s)` and `BinaryCrossentropy(label_smoothing=s)` smooth the targets in the
loss's dtype before the kernels, y·(1 − s) + s/C or + ½·s, and each Keras rounds those constants its own way (Keras
3 converts 1 − s from a Python float, tf-keras converts s first). Each record: the case (convention, dtype, loss,
from logits, s, shape), the seed its inputs come from (inputs(): pure numpy) with their SHA-256, and the
framework's per-sample losses and, for the sum and the mean, the value and the gradient, each float32's bits.

    python3 scripts/golden_smoothing_tf.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_weights_tf import bits, digest, in_dtype, meta  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "smoothing_tf.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}
# s: a round one, one whose 1 − s and s/C round in every dtype, a tiny one and a large one
SMOOTHINGS = (0.1, 0.3333, 1e-3, 0.9)
# (loss, from logits, targets: one-hot or soft rows), each over (rows, columns)
LOSSES = (("ce", True, "onehot"), ("ce", True, "soft"), ("ce", False, "soft"), ("bce", True, "binary"),
          ("bce", False, "soft"))
SHAPES = ((6, 5), (3, 257), (40, 3))


def inputs(seed: int, loss: str, from_logits: bool, targets: str, rows: int, cols: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions (logits, or probabilities in (0, 1), rows summing to 1 for ce), float64."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, cols)) * 3
    if targets == "onehot":
        y = np.eye(cols)[rng.integers(0, cols, rows)]
    elif targets == "binary":
        y = (rng.random((rows, cols)) < 0.4) * 1.0
    else:
        y = rng.dirichlet(np.ones(cols), rows) if loss == "ce" else rng.random((rows, cols))
    if from_logits:
        return y, z
    if loss == "ce":
        return y, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return y, 1 / (1 + np.exp(-z))


def cases() -> list[tuple]:
    out = []
    for k, (loss, logits, targets) in enumerate(LOSSES):
        for j, s in enumerate(SMOOTHINGS):
            rows, cols = SHAPES[(k + j) % len(SHAPES)]
            out += [(conv, dtype, loss, logits, targets, s, rows, cols)
                    for conv in ("keras", "tf-keras") for dtype in ("float32", "float16", "bfloat16")]
    return out


def held_inputs(seed: int, case: tuple) -> tuple[np.ndarray, np.ndarray]:
    _, dtype, loss, logits, targets, _, rows, cols = case
    y, p = inputs(seed, loss, logits, targets, rows, cols)
    return in_dtype(y, dtype).astype(np.float64), in_dtype(p, dtype).astype(np.float64)


def keras_results(case: tuple, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """The framework's losses (reduction none) and each reduction's value and gradient, float32 arrays."""
    import tensorflow as tf

    conv, dtype, loss, logits, _, s = case[:6]
    kind = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}[dtype]
    module = __import__("keras" if conv == "keras" else "tf_keras")
    name = "CategoricalCrossentropy" if loss == "ce" else "BinaryCrossentropy"

    def fn(reduction: str) -> Any:
        kw = {"dtype": dtype} if conv == "keras" else {}
        return getattr(module.losses, name)(from_logits=logits, label_smoothing=s, reduction=reduction, **kw)

    yt = tf.constant(y, kind)
    out: dict[str, Any] = {"losses": tf.cast(fn("none")(yt, tf.constant(p, kind)), tf.float32).numpy()}
    for key, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, kind))
        with tf.GradientTape() as tape:
            value = fn(reduction)(yt, pv)
        out[key] = (tf.cast(value, tf.float32).numpy(), tf.cast(tape.gradient(value, pv), tf.float32).numpy())
    return out


def lossgrads(case: tuple, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """lossgrad's, under the same convention and dtype (float32 arrays)."""
    import lossgrad

    conv, dtype, loss, logits, _, s = case[:6]
    out: dict[str, Any] = {}
    for key in ("none", *REDUCTIONS):
        r = lossgrad.evaluate(loss, y, p, convention=conv, dtype=dtype, from_logits=logits, label_smoothing=s,
                              reduction=key)
        assert not any("not bit for bit" in w for w in r.warnings), r.warnings
        if key == "none":
            out["losses"] = np.asarray(r.losses, dtype=np.float32)
        else:
            out[key] = (np.float32(r.value), np.asarray(r.grad, dtype=np.float32))
    return out


def record(k: int, case: tuple) -> dict:
    seed = 20261205 + k
    y, p = held_inputs(seed, case)
    got = keras_results(case, y, p)
    conv, dtype, loss, logits, targets, s, rows, cols = case
    rec = {"convention": conv, "dtype": dtype, "loss": loss, "from_logits": logits, "targets": targets,
           "label_smoothing": s, "shape": [rows, cols], "seed": seed, "inputs": digest(y, p),
           "losses": stored(got["losses"])}
    return rec | {key: {"value": bits(got[key][0]), "grad": stored(got[key][1])} for key in REDUCTIONS}


def stored(a: np.ndarray) -> str:
    """An array as a record keeps it: every float32's bits up to 64 of them, else their SHA-256 (prefixed)."""
    return bits(a) if np.size(a) <= 64 else "sha256:" + digest(a)


def main() -> None:
    recs = [record(k, case) for k, case in enumerate(cases())]
    OUT.write_text(json.dumps({"meta": meta(), "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records")


if __name__ == "__main__":
    main()
