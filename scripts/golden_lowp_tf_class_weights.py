"""Record TensorFlow's float32, float16 and bfloat16 CPU results for Keras' cross entropy under fit(class_weight=...)
under Keras 3 and tf-keras, for tests/golden/lowp_tf_class_weights.json (read by
tests/test_lowp_tf_class_weights.py).

fit turns class_weight into sample weights by the framework's own conversion (Keras 3's
class_weight_to_sample_weights, tf-keras' _make_class_weight_map_fn: float32 weights, a row's argmax class) and
hands them to the loss; each record is golden_lowp_tf's (Keras 3's loss with dtype= the dtype, tf-keras' on tensors
of it) called with those sample weights: the per-sample weighted losses, and the value and the GradientTape
gradient under "sum" and "sum_over_batch_size". Inputs: class indexes and one-hot or soft rows, from logits and on
probabilities, weights that a half dtype rounds (0.3, 1/3, 2.7, 1000.1) and a 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_tf import DTYPES, REDUCTIONS, _short  # noqa: E402
from make_golden import keras_class_sample_weights, versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_class_weights.json"


def _loss(module, reduction: str, dtype: str, labels: str, from_logits: bool):
    kw = {"reduction": reduction, "from_logits": from_logits} | ({"dtype": dtype} if module.__name__ == "keras"
                                                                  else {})
    name = "SparseCategoricalCrossentropy" if labels == "index" else "CategoricalCrossentropy"
    return getattr(module.losses, name)(**kw)


def record(conv: str, y: np.ndarray, p: np.ndarray, weights: list[float], labels: str, from_logits: bool,
           note: str, dtype: str) -> dict:
    module = __import__("keras" if conv == "keras" else "tf_keras")
    t = DTYPES[dtype]
    p = tf.cast(tf.constant(p, dtype=t), tf.float32).numpy()
    if labels != "index":
        y = tf.cast(tf.constant(y, dtype=t), tf.float32).numpy()
    sw = keras_class_sample_weights(conv, y[:, 0] if labels == "index" else y, weights)
    target = tf.constant(y[:, 0], dtype=tf.float32) if labels == "index" else tf.constant(y, dtype=t)
    per = _loss(module, "none", dtype, labels, from_logits)(target, tf.constant(p, dtype=t), sample_weight=sw)
    rec = {"convention": conv, "dtype": dtype, "labels": labels, "from_logits": from_logits,
           "class_weights": weights, "note": note, "target": _short(y), "pred": _short(p),
           "sample_weights": _short(sw), "losses": _short(tf.cast(per, tf.float32).numpy())}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, dtype=t))
        with tf.GradientTape() as tape:
            value = _loss(module, reduction, dtype, labels, from_logits)(target, pv, sample_weight=sw)
        rec[name] = {"value": str(np.float32(tf.cast(value, tf.float32).numpy())),
                     "grad": _short(tf.cast(tape.gradient(value, pv), tf.float32).numpy())}
    return rec


def cases(rng) -> list[tuple]:
    """(target, prediction, class weights, labels, from_logits, note)."""
    out = []
    for rows, classes in [(1, 3), (7, 4), (24, 10), (13, 33)]:
        weights = [float(w) for w in rng.choice([0.3, 1 / 3, 2.7, 1000.1, 1.0, 0.0, 0.05], classes)]
        z = (rng.standard_normal((rows, classes)) * rng.choice([0.3, 3.0, 30.0], (rows, 1))).astype(np.float32)
        index = rng.integers(0, classes, (rows, 1)).astype(np.float32)
        soft = rng.dirichlet(np.full(classes, 0.5), rows).astype(np.float32)
        probs = rng.dirichlet(np.full(classes, 0.3), rows).astype(np.float32)
        out += [(index, z, weights, "index", True, "class indexes, logits"),
                (soft, z, weights, "onehot", True, "soft rows (argmax class), logits"),
                (index, probs, weights, "index", False, "class indexes, probabilities"),
                (np.eye(classes, dtype=np.float32)[index[:, 0].astype(int)], probs, weights, "onehot", False,
                 "one-hot rows, probabilities")]
    return out


def main() -> None:
    rng = np.random.default_rng(20261206)
    records = [record(conv, *case, dtype) for dtype in ("float32", "float16", "bfloat16") for case in cases(rng)
               for conv in ("keras", "tf-keras")]
    import torch  # (only for the processor's capability, as lossgrad names it)

    meta = {"versions": versions(), "cpu": torch.backends.cpu.get_cpu_capability().lower()}
    OUT.write_text(json.dumps({"meta": meta, "cases": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
