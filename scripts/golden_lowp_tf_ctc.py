"""Record TensorFlow's float32, float16 and bfloat16 CPU results for Keras 3's ctc, for tests/golden/lowp_tf_ctc.json
(read by tests/test_lowp_tf_ctc.py).

    python3 scripts/golden_lowp_tf_ctc.py
    python3 scripts/golden_lowp_tf_ctc.py --measure 40 7   # tf-keras' ctc live against lossgrad, 40 random rounds

Each record: dtype, blank, note, the logits [B, T, C] (values of the dtype), the padded labels [B, L], the input and
target lengths, and what Keras gives for them: keras.ops.ctc_loss(labels, logits, target_lengths, input_lengths,
mask_index=blank) inside Keras' loss wrapper (keras.losses.LossFunctionWrapper, dtype= the dtype: the inputs
converted to the dtype, the per-sequence losses converted to it and reduced in it, as keras.losses.CTC does with
full lengths and blank 0), eagerly, as op by op: the per-sequence losses (reduction None), and the value and the
GradientTape gradient with respect to the logits under "sum" and "sum_over_batch_size" (lossgrad's mean). Inputs
are random and adversarial: batch sizes of 1 to 16 and 301 (sizes of the flattened tensors on both sides of packets
of 8), up to 100 frames, label rows up to 24 long (16 and more take Eigen's four accumulators along the label axis),
repeated labels, padded labels, sequences with no alignment (too few frames), empty label sequences, logits of
scale 0.01 to 3000, a blank other than 0.

And tf-keras' tf_keras.backend.ctc_batch_cost in float32, float16 and bfloat16 (convention "tf-keras";
`tfkeras_record`): the probabilities e^x of log-probabilities x (Exp in the dtype), the blank moved last as it takes
it, log(y + ε) in the dtype, TensorFlow's C++ CTCLoss op (tf.nn.ctc_loss casts half inputs to float32 and the losses
back); its losses and the gradient with respect to the probabilities of their sum and mean as fit reduces them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras.src.losses.losses import LossFunctionWrapper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import cpu_model, versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_ctc.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}
DTYPES = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}


def _short(a) -> list:
    """Numbers as the shortest decimal strings that read back to the same float32 (every value here is one)."""
    flat = np.asarray(a, dtype=np.float32)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


def in_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    return tf.cast(tf.constant(a, dtype=DTYPES[dtype]), tf.float32).numpy()


def _loss(reduction: str | None, dtype: str, il, tl, blank: int):
    def fn(y_true, y_pred):
        return keras.ops.ctc_loss(y_true, y_pred, tf.constant(tl), tf.constant(il), mask_index=blank)
    return LossFunctionWrapper(fn, reduction=reduction, dtype=dtype)


def record(z: np.ndarray, labels: np.ndarray, il, tl, blank: int = 0, note: str = "",
           dtype: str = "float32") -> dict:
    """The framework's results for logits z [B, T, C] and padded labels [B, L] in `dtype`."""
    t = DTYPES[dtype]
    z = in_dtype(z, dtype)
    il, tl = np.asarray(il, np.int32), np.asarray(tl, np.int32)
    lab = tf.constant(np.asarray(labels), t)
    per = _loss(None, dtype, il, tl, blank)(lab, tf.constant(z, t))
    rec = {"dtype": dtype, "convention": "keras", "blank": blank, "note": note, "pred": _short(z),
           "labels": np.asarray(labels).tolist(),
           "input_lengths": il.tolist(), "target_lengths": tl.tolist(),
           "losses": _short(tf.cast(per, tf.float32).numpy())}
    for name, reduction in REDUCTIONS.items():
        zv = tf.Variable(tf.constant(z, dtype=t))
        with tf.GradientTape() as tape:
            value = _loss(reduction, dtype, il, tl, blank)(lab, zv)
        rec[name] = {"value": str(np.float32(tf.cast(value, tf.float32).numpy())),
                     "grad": _short(tf.cast(tape.gradient(value, zv), tf.float32).numpy())}
    return rec


def random_case(rng, b: int, t: int, c: int, n: int, scale: float, blank: int = 0, note: str = "random") -> tuple:
    """(logits, padded labels, input lengths, target lengths, blank, note): labels drawn from the classes but the
    blank, padded with 0 past each target length, input lengths from 1 to T (some too few for the labels)."""
    z = (scale * rng.normal(size=(b, t, c))).astype(np.float32)
    tl = rng.integers(0, n + 1, size=b)
    lab = rng.integers(0, c, size=(b, n))
    lab = np.where(lab == blank, (blank + 1) % c, lab)
    lab = np.where(np.arange(n)[None] < tl[:, None], lab, 0)
    il = rng.integers(1, t + 1, size=b)
    return z, lab, il.tolist(), tl.tolist(), blank, note


def random_cases(rng, rounds: int) -> list[tuple]:
    out = []
    for _ in range(rounds):
        b, t, c, n = int(rng.integers(1, 13)), int(rng.integers(1, 60)), int(rng.integers(2, 24)), \
            int(rng.integers(1, 21))
        scale = float(rng.choice([0.01, 0.3, 1, 5, 30, 3000]))
        out.append(random_case(rng, b, t, c, n, scale, int(rng.integers(0, c)) if rng.random() < 0.3 else 0))
    return out


def adversarial_cases(rng) -> list[tuple]:
    out = []
    # the worked case of the README: p(l|x) = 5/16
    z = np.log(np.array([[[0.25, 0.5, 0.25], [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]]))
    out.append((z, np.array([[1, 2]]), [3], [2], 0, "hand"))
    # repeated labels (a blank between equal neighbours), exactly as many frames as they need, and too few
    z = rng.normal(size=(4, 7, 3))
    lab = np.array([[1, 1, 1], [2, 2, 0], [1, 2, 1], [1, 1, 2]])
    out.append((z, lab, [5, 3, 3, 2], [3, 2, 3, 3], 0, "repeats, minimum and impossible"))
    # empty label sequences and one frame
    out.append((rng.normal(size=(3, 1, 4)), np.array([[0, 0], [1, 0], [2, 3]]), [1, 1, 1], [0, 1, 2], 0,
                "one frame, empty labels"))
    # large logits: softmax saturated, log-probabilities of thousands
    z = 3000 * rng.normal(size=(5, 9, 6))
    out.append((z, rng.integers(1, 6, size=(5, 4)), [9, 9, 8, 7, 9], [4, 3, 4, 2, 1], 0, "large logits"))
    # a long label row (16 and more: four accumulators along it), many frames, the blank last
    out.append(random_case(rng, 3, 100, 12, 24, 1.0, 11, "long labels, blank last"))
    # batch sizes leaving packet remainders in every flattened tensor
    for b in (1, 7, 9, 16):
        out.append(random_case(rng, b, 30, 11, 8, 1.0, 0, f"batch {b}"))
    # 300 classes: Keras' wrapper converts the labels to the dtype, so in bfloat16 257 becomes 256 (and 299 300)
    out.append((rng.normal(size=(2, 6, 300)), np.array([[257, 299, 1], [3, 281, 0]]), [6, 5], [3, 2], 0,
                "300 classes"))
    # 301 sequences: 1/N for the mean, with N = 301 not a bfloat16
    out.append(random_case(rng, 301, 4, 5, 2, 1.0, 0, "301 sequences"))
    return out


def tfkeras_record(x: np.ndarray, labels: np.ndarray, il, tl, blank: int = 0, note: str = "",
                   dtype: str = "float32") -> dict:
    """tf-keras' ctc_batch_cost in `dtype` on the probabilities y = e^x of log-probabilities x [B, T, C] (x rounded
    to the dtype, TensorFlow's Exp in it, in the case's class order; then the classes put in order with the blank
    last, as it takes them): the [B, 1] losses, and the value and the gradient with respect to y (back in the case's
    order) of their sum and mean as Keras' fit reduces them (compute_weighted_loss: reduce_sum, then divided by N
    in the dtype, divide_no_nan)."""
    import tf_keras
    from tf_keras.src.utils import losses_utils

    c = x.shape[2]
    order = [k for k in range(c) if k != blank] + [blank]
    where = np.argsort(order)
    il, tl = np.asarray(il, np.int32), np.asarray(tl, np.int32)
    lab = np.where(np.arange(np.shape(labels)[1])[None, :] < tl[:, None], where[np.asarray(labels)], 0)
    y = tf.gather(tf.exp(tf.constant(x, DTYPES[dtype])), order, axis=2)
    rec = {"dtype": dtype, "convention": "tf-keras", "blank": blank, "note": note, "pred": _short(in_dtype(x, dtype)),
           "labels": np.asarray(labels).tolist(), "input_lengths": il.tolist(), "target_lengths": tl.tolist()}
    for name, how in (("sum", "sum"), ("mean", "sum_over_batch_size")):
        yv = tf.Variable(y)
        with tf.GradientTape() as tape:
            losses = tf_keras.backend.ctc_batch_cost(tf.constant(lab), yv, tf.constant(il[:, None]),
                                                     tf.constant(tl[:, None]))
            value = losses_utils.compute_weighted_loss(losses, reduction=how)
        rec["losses"] = _short(losses.numpy()[:, 0])
        rec[name] = {"value": str(np.float32(value.numpy())),
                     "grad": _short(tape.gradient(value, yv).numpy()[..., where])}
    return rec


def tfkeras_cases(rng, rounds: int) -> list[tuple]:
    """(log-probabilities, labels, input lengths, target lengths, blank, note): every sequence with 1 to T labels
    (the op refuses none or more), the blank anywhere, some with repeats needing more frames than they have."""
    out = []
    for _ in range(rounds):
        b, t, c, n = int(rng.integers(1, 13)), int(rng.integers(2, 60)), int(rng.integers(2, 24)), \
            int(rng.integers(1, 15))
        z, lab, il, tl, blank, note = random_case(rng, b, t, c, n, float(rng.choice([0.1, 1, 5, 30])),
                                                  int(rng.integers(0, c)) if rng.random() < 0.5 else c - 1)
        tl = np.minimum(np.maximum(tl, 1), t)
        lab = np.where(lab == blank, (blank + 1) % c, lab)  # (padding included: the op reads only the lengths)
        il = np.maximum(il, tl)
        out.append((_log_softmax(z), lab, il.tolist(), tl.tolist(), blank, note))
    z = np.log(np.array([[[0.25, 0.5, 0.25], [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]]))
    out.append((z.astype(np.float32), np.array([[1, 2]]), [3], [2], 0, "hand"))
    z = rng.normal(size=(4, 7, 3))
    out.append((_log_softmax(z), np.array([[1, 1, 1], [2, 2, 1], [1, 2, 1], [1, 1, 2]]), [5, 3, 3, 3], [3, 2, 3, 3],
                0, "repeats, minimum and no alignment"))
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    s = z - z.max(axis=-1, keepdims=True)
    return (s - np.log(np.exp(s).sum(axis=-1, keepdims=True))).astype(np.float32)


def measure(rounds: int, seed: int) -> None:
    """tf-keras' ctc_batch_cost live against lossgrad on `rounds` random cases (and the two fixed ones) per dtype:
    gradient elements of the sum and the mean, losses and reduced values, and how many differ in their bits."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import lossgrad

    cases = tfkeras_cases(np.random.default_rng(seed), rounds)
    for dtype in DTYPES:
        counts = np.zeros(4, dtype=np.int64)  # gradient elements, losses, values, differing
        for case in cases:
            rec = tfkeras_record(*case, dtype)
            for name in ("sum", "mean"):
                r = lossgrad.ctc(np.array(rec["labels"]), np.array(rec["pred"], np.float32).astype(np.float64),
                                 input_lengths=rec["input_lengths"], target_lengths=rec["target_lengths"],
                                 convention="tf-keras", dtype=dtype, reduction=name, blank=rec["blank"])
                got, want = np.asarray(r.grad, np.float32).reshape(-1), np.array(rec[name]["grad"], np.float32)
                differ = np.sum(~((got == want.reshape(-1)) | (np.isnan(got) & np.isnan(want.reshape(-1)))))
                counts += (got.size, 0, 1, differ + (np.float32(r.value) != np.float32(rec[name]["value"])))
            losses = np.asarray(r.losses, np.float32)
            counts += (0, losses.size, 0, np.sum(losses != np.array(rec["losses"], np.float32)))
        print(f"{dtype}: gradient elements {counts[0]:,}, losses {counts[1]:,}, values {counts[2]}, "
              f"differing {counts[3]}")


def main() -> None:
    if "--measure" in sys.argv:  # python3 scripts/golden_lowp_tf_ctc.py --measure ROUNDS SEED
        i = sys.argv.index("--measure")
        measure(int(sys.argv[i + 1]), int(sys.argv[i + 2]))
        return
    rng = np.random.default_rng(20261203)
    cases = [*adversarial_cases(rng), *random_cases(rng, 8)]
    records = [record(z, lab, il, tl, blank, note, dtype) for dtype in DTYPES
               for z, lab, il, tl, blank, note in cases]
    records += [tfkeras_record(*case, dtype) for case in tfkeras_cases(rng, 8) for dtype in DTYPES]
    OUT.write_text(json.dumps({"versions": versions() | {"cpu": cpu_model()}, "records": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT}")


if __name__ == "__main__":
    main()
