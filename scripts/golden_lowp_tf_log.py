"""Record TensorFlow's float32, float16 and bfloat16 CPU results under Keras 3 and tf-keras for the losses whose
gradients go through log and log1p (bce on probabilities and from logits, kl, ce on probability rows, poisson), for
tests/golden/lowp_tf_log.json (read by tests/test_lowp_tf_log.py).

Each record: a convention, dtype, loss, inputs (values of the dtype) and what the framework's Loss class gives for
them (Keras 3's with dtype= the dtype, tf-keras' on tensors of it): the per-sample losses (reduction "none"), and
the value and the GradientTape gradient with respect to the predictions under "sum" and "sum_over_batch_size"
(lossgrad's mean). Inputs are random and adversarial: probabilities at and beyond Keras' clip [ε, 1 − ε], 0 and 1,
hard and soft targets, rows of up to 1000 outputs and of more than 8192 (the reducer's tree), logits saturated
both ways, rates near 0. The TensorFlow build and the processor's flags are recorded (the gradients of log and
log1p multiply by Eigen's reciprocal, whose float32 bits are the processor's rcpps refined by a Newton step).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_tf import DTYPES, REDUCTIONS, _short  # noqa: E402
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_log.json"
CLASSES = {"bce": "BinaryCrossentropy", "kl": "KLDivergence", "ce": "CategoricalCrossentropy",
           "poisson": "Poisson", "focal": "BinaryFocalCrossentropy",
           "categorical-focal": "CategoricalFocalCrossentropy"}


def _loss(module, loss: str, from_logits: bool, reduction: str, dtype: str, labels: str | None = None,
          params: dict | None = None):
    kw = {"reduction": reduction} | ({"dtype": dtype} if module.__name__ == "keras" else {})
    if loss in ("bce", "ce", "focal", "categorical-focal"):
        kw["from_logits"] = from_logits
    if loss == "focal":
        gamma, alpha = (params or {}).get("gamma", 2.0), (params or {}).get("alpha")
        kw |= {"gamma": gamma, "apply_class_balancing": alpha is not None, "alpha": 0.25 if alpha is None else alpha}
    if loss == "categorical-focal":
        alpha = (params or {}).get("class_alpha")
        kw |= {"gamma": (params or {}).get("gamma", 2.0),
               "alpha": 1.0 if alpha is None else alpha[0] if len(alpha) == 1 else alpha}
    name = "SparseCategoricalCrossentropy" if labels == "index" else CLASSES[loss]
    return getattr(module.losses, name)(**kw)


def record(conv: str, loss: str, y: np.ndarray, p: np.ndarray, note: str = "", dtype: str = "float32",
           from_logits: bool = False, labels: str | None = None, params: dict | None = None) -> dict:
    module = __import__("keras" if conv == "keras" else "tf_keras")
    if labels is None:
        y = tf.cast(tf.constant(y, dtype=DTYPES[dtype]), tf.float32).numpy()
    p = tf.cast(tf.constant(p, dtype=DTYPES[dtype]), tf.float32).numpy()
    # (class indexes as float32 numbers: Keras 3 casts them to the loss's dtype, tf-keras passes them on)
    yt = tf.constant(y[:, 0], dtype=tf.float32) if labels else tf.constant(y, dtype=DTYPES[dtype])
    per = _loss(module, loss, from_logits, "none", dtype, labels, params)(yt, tf.constant(p, dtype=DTYPES[dtype]))
    rec = {"convention": conv, "dtype": dtype, "loss": loss, "from_logits": from_logits, "labels": labels,
           "params": params or {},
           "note": note,
           "target": _short(y), "pred": _short(p), "losses": _short(tf.cast(per, tf.float32).numpy())}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, dtype=DTYPES[dtype]))
        with tf.GradientTape() as tape:
            value = _loss(module, loss, from_logits, reduction, dtype, labels, params)(yt, pv)
        rec[name] = {"value": str(np.float32(tf.cast(value, tf.float32).numpy())),
                     "grad": _short(tf.cast(tape.gradient(value, pv), tf.float32).numpy())}
    return rec


SHAPES = [(1, 1), (7, 5), (13, 1), (50, 9), (3, 40), (1, 33), (16, 64), (2, 1000), (9, 17)]


def _probs(rng, shape: tuple[int, int]) -> np.ndarray:
    """Probabilities spread over (0, 1) on a logistic scale, some at 0, 1 and Keras' ε and 1 − ε."""
    p = 1 / (1 + np.exp(-rng.standard_normal(shape) * rng.choice([0.5, 3.0, 12.0], (shape[0], 1))))
    edge = rng.random(shape) < 0.08
    p[edge] = rng.choice([0.0, 1.0, 1e-7, 1 - 1e-7, 5e-8, 1e-3, 0.999], edge.sum())
    return p.astype(np.float32)


def cases(rng) -> list[tuple]:
    """(loss, target, prediction, from_logits, note, labels) for every loss, random and adversarial."""
    out = []
    for shape in SHAPES:
        hard = (rng.random(shape) < 0.5).astype(np.float32)
        soft = rng.random(shape).astype(np.float32)
        out.append(("bce", hard, _probs(rng, shape), False, "hard targets"))
        out.append(("bce", soft, _probs(rng, shape), False, "soft targets"))
        z = (rng.standard_normal(shape) * rng.choice([0.3, 3.0, 30.0], (shape[0], 1))).astype(np.float32)
        out.append(("bce", hard, z, True, "logits"))
        out.append(("bce", soft, z, True, "logits, soft targets"))
        out.append(("poisson", np.floor(rng.exponential(3.0, shape)).astype(np.float32),
                    rng.exponential(2.0, shape).astype(np.float32), False, "counts and rates"))
        if shape[1] > 1:
            rows = rng.dirichlet(np.full(shape[1], 0.5), shape[0]).astype(np.float32)
            out.append(("kl", rows, rng.dirichlet(np.full(shape[1], 0.5), shape[0]).astype(np.float32), False,
                        "probability rows"))
            out.append(("ce", rows, _probs(rng, shape), False, "soft rows, unnormalised predictions"))
            out.append(("ce", np.eye(shape[1], dtype=np.float32)[rng.integers(0, shape[1], shape[0])],
                        rng.dirichlet(np.full(shape[1], 0.3), shape[0]).astype(np.float32), False, "one-hot rows"))
            out.append(("ce", rng.integers(0, shape[1], (shape[0], 1)).astype(np.float32),
                        rng.dirichlet(np.full(shape[1], 0.3), shape[0]).astype(np.float32), False,
                        "class indexes", "index"))
    for shape, gamma, alpha in [((7, 5), 2.0, None), ((13, 1), 2.0, 0.25), ((9, 17), 0.0, None), ((5, 12), 1.5, 0.7),
                                ((16, 64), 3.0, None)]:
        y = (rng.random(shape) < 0.5).astype(np.float32)
        z = (rng.standard_normal(shape) * 4).astype(np.float32)
        params = {"gamma": gamma, "alpha": alpha}
        out.append(("focal", y, _probs(rng, shape), False, f"gamma {gamma}, alpha {alpha}", None, params))
        out.append(("focal", y, z, True, f"logits, gamma {gamma}, alpha {alpha}", None, params))
    for shape, gamma, alpha in [((7, 5), 2.0, None), ((13, 3), 1.5, [0.25]), ((9, 17), 0.0, None),
                                ((6, 40), 3.0, [2.0]), ((3, 300), 2.0, None)]:
        rows = rng.dirichlet(np.full(shape[1], 0.5), shape[0]).astype(np.float32)
        params = {"gamma": gamma, "class_alpha": alpha}
        out.append(("categorical-focal", rows, _probs(rng, shape), False, f"gamma {gamma}, alpha {alpha}", None,
                    params))
        z = (rng.standard_normal(shape) * rng.choice([0.3, 3.0, 30.0], (shape[0], 1))).astype(np.float32)
        out.append(("categorical-focal", rows, z, True, f"logits, gamma {gamma}, alpha {alpha}", None, params))
    edges = np.array([[0, 1e-8, 1e-7, 1.2e-7, 0.5, 1 - 1e-7, 1 - 6e-8, 1]], np.float32)
    for loss in ("bce", "kl", "ce"):
        out.append((loss, np.array([[1, 0, 1, 0, 1, 1, 0, 1]], np.float32), edges, False, "at and beyond the clip"))
    out.append(("ce", np.array([[0], [1], [2], [3], [4], [5], [6], [7]], np.float32), np.repeat(edges, 8, axis=0),
                False, "class indexes at and beyond the clip", "index"))
    out.append(("bce", np.array([[1, 0, 1, 0, 0.5, 1]], np.float32),
                np.array([[0, 0, -100, 100, 1e-30, 17]], np.float32), True, "saturated logits"))
    out.append(("poisson", np.array([[0, 1, 2, 0, 5, 1e-3]], np.float32),
                np.array([[0, 0, 1e-7, 1e-8, 1e4, 3]], np.float32), False, "rates at 0 and below ε"))
    out.append(("kl", np.array([[0, 0.5, 0.5, 0, 1e-9, 1]], np.float32),
                np.array([[0.5, 0, 0.5, 1e-9, 0.5, 1]], np.float32), False, "zeros both sides"))
    # the float16 values whose reciprocal lies nearest a midpoint of float16, 2^e·(2 − 2^−10), as p and as 1 − p
    near = np.array([2.0 ** e * (2 - 2.0 ** -10) for e in range(-14, 0)], np.float32)
    p = np.concatenate([near, 1 - near[near < 0.5]])[None, :]
    for loss in ("bce", "poisson", "focal"):
        out.append((loss, (rng.random(p.shape) < 0.5).astype(np.float32), p, False, "reciprocals near a midpoint",
                    None, {"gamma": 2.0, "alpha": None} if loss == "focal" else None))
    # (1 − p_t)^γ below float32's normal range: powf's result flushed to zero
    p = np.array([[1 - 1e-3, 0.9999, 1e-4, 1e-3, 0.99, 0.01, 0.999, 0.0001, 1 - 6e-8]], np.float32)
    y = np.array([[1, 1, 0, 0, 1, 0, 1, 0, 1]], np.float32)
    for gamma in (13.0, 40.0):
        out.append(("focal", y, p, False, f"a factor flushed, gamma {gamma}", None, {"gamma": gamma, "alpha": None}))
        out.append(("focal", y, np.log(p / (1 - p)), True, f"logits, a factor flushed, gamma {gamma}", None,
                    {"gamma": gamma, "alpha": None}))
    p = _probs(rng, (1, 8200))
    out.append(("bce", (rng.random((1, 8200)) < 0.5).astype(np.float32), p, False, "a row for the reducer's tree"))
    return out


def main() -> None:
    rng = np.random.default_rng(20261203)
    records = []
    for dtype in ("float16", "bfloat16", "float32"):
        for conv in ("keras", "tf-keras"):
            for loss, y, p, logits, note, *more in cases(rng):
                if dtype == "bfloat16" and loss == "categorical-focal" and logits:
                    continue  # (oneDNN's bfloat16 softmax: recorded by scripts/golden_lowp_tf_focal32.py)
                # (wider inputs under Keras 3 in one dtype each, and the reducer's tree in bfloat16: the file
                # stays small, and tf-keras calls the same kernels)
                wide = conv == "keras" and (p.size <= 1100 and dtype == "float16" or p.size > 8192 and
                                            dtype == "bfloat16")
                if p.size <= 200 or wide:
                    records.append(record(conv, loss, y, p, note, dtype, logits, *more))
    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "sse4", "f16c"))})
    meta = {"versions": versions(), "build": {k: str(v) for k, v in tf.sysconfig.get_build_info().items()},
            "compile_flags": tf.sysconfig.get_compile_flags(), "cpu_flags": flags,
            "cpu": next((line.split(":")[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("model name")), "")}
    OUT.write_text(json.dumps({"meta": meta, "cases": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
