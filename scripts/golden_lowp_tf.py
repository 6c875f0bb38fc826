"""Record TensorFlow's float32, float16 and bfloat16 CPU results under Keras 3 and tf-keras for
tests/golden/lowp_tf.json (read by tests/test_lowp_tf.py).

Each record: a convention, dtype, loss, inputs (values of the dtype) and what the framework's Loss class gives
for them (Keras 3's with dtype= the half dtype, tf-keras' on tensors of it): the
per-sample losses (reduction "none"), and the value and the GradientTape gradient with respect to the predictions
under "sum" and "sum_over_batch_size" (lossgrad's mean). Inputs are random and adversarial: rows of 2 to 1000
classes, logits spread over hundreds, saturated logits whose e^x is flushed to zero, soft labels, rows of more
than 8192 outputs (the reducer's tree). The TensorFlow build and the processor's flags are recorded: Eigen's
packets follow the instruction set TensorFlow was compiled for (AVX, without FMA, for the x86-64 wheels).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}


def _short(a) -> list:
    """Numbers as the shortest decimal strings that read back to the same float32 (every value here is one)."""
    flat = np.asarray(a, dtype=np.float32)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


DTYPES = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}


def _loss(module, loss: str, labels: str | None, reduction: str, dtype: str):
    kw = {"reduction": reduction} | ({"dtype": dtype} if module.__name__ == "keras" else {})
    if loss == "mse":
        return module.losses.MeanSquaredError(**kw)
    if labels == "index":
        return module.losses.SparseCategoricalCrossentropy(from_logits=True, **kw)
    return module.losses.CategoricalCrossentropy(from_logits=True, **kw)


def _target(y: np.ndarray, labels: str | None, dtype: str) -> tf.Tensor:
    # (class indexes as float32 numbers: Keras 3 casts them to the loss's dtype, tf-keras passes them on)
    return tf.constant(y[:, 0], dtype=tf.float32) if labels == "index" else tf.constant(y, dtype=DTYPES[dtype])


def record(conv: str, loss: str, y: np.ndarray, p: np.ndarray, labels: str | None = None, note: str = "",
           dtype: str = "float32") -> dict:
    module = __import__("keras" if conv == "keras" else "tf_keras")
    if labels != "index":
        y = tf.cast(tf.constant(y, dtype=DTYPES[dtype]), tf.float32).numpy()
    p = tf.cast(tf.constant(p, dtype=DTYPES[dtype]), tf.float32).numpy()
    per = _loss(module, loss, labels, "none", dtype)(_target(y, labels, dtype), tf.constant(p, dtype=DTYPES[dtype]))
    rec = {"convention": conv, "dtype": dtype, "loss": loss, "labels": labels, "note": note, "target": _short(y),
           "pred": _short(p), "losses": _short(tf.cast(per, tf.float32).numpy())}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, dtype=DTYPES[dtype]))
        with tf.GradientTape() as tape:
            value = _loss(module, loss, labels, reduction, dtype)(_target(y, labels, dtype), pv)
        rec[name] = {"value": str(np.float32(tf.cast(value, tf.float32).numpy())),
                     "grad": _short(tf.cast(tape.gradient(value, pv), tf.float32).numpy())}
    return rec


def _logits(rng, rows: int, classes: int) -> np.ndarray:
    scale = rng.choice([0.1, 1.0, 5.0, 30.0, 300.0], (rows, 1))
    return (rng.standard_normal((rows, classes)) * scale).astype(np.float32)


def _planted() -> np.float32:
    """A logit in [−3, −0.5] whose e^x Eigen's packet function and glibc's expf round differently (from lossgrad's
    emulation of both: only where the inputs are placed depends on it, not what is recorded)."""
    from lossgrad import lowp_tf

    grid = np.linspace(-3, -0.5, 20001).astype(np.float32)
    return grid[lowp_tf.pexp(grid) != lowp_tf.libm_expf(grid)][0]


def ce_cases(rng) -> list[tuple]:
    out = []
    for rows, classes in [(1, 2), (5, 7), (13, 10), (64, 17), (9, 33), (6, 300), (2, 1000), (37, 3), (11, 8)]:
        z = _logits(rng, rows, classes)
        out.append(("ce", rng.integers(0, classes, (rows, 1)).astype(np.float32), z, "index", "random"))
        soft = rng.dirichlet(np.full(classes, 0.3), rows).astype(np.float32)
        out.append(("ce", soft, z, "onehot", "soft labels"))
    z = np.array([[1e4, 0, -1e4, 50], [-88, -100, 0, 0], [3, 3, 3, 3], [0, -200, -300, -400]], np.float32)
    out.append(("ce", np.array([[2], [1], [0], [3]], np.float32), z, "index", "saturated"))
    out.append(("ce", np.eye(4, dtype=np.float32)[[0, 1, 2, 3]], z, "onehot", "saturated, one-hot rows"))
    z = (np.linspace(-700, 0, 9 * 40) + rng.standard_normal(360)).astype(np.float32).reshape(9, 40)
    out.append(("ce", rng.integers(0, 40, (9, 1)).astype(np.float32), z, "index", "spread of hundreds"))
    # probability rows past the backprop's first block of 4507 coefficients (18 rows of 257), every logit but the
    # row's first at a value whose packet and scalar e^x differ, so each block's scalar remainder shows
    v = _planted()
    z = np.full((19, 257), v, np.float32)
    z[:, 0] = 0
    out.append(("ce", np.full((19, 257), 1 / 257, np.float32), z, "onehot", "planted across Eigen's blocks"))
    # class indexes a half dtype cannot hold: bfloat16 makes 301 class 300, 513 class 512 and 997 class 996
    z = _logits(rng, 3, 1000)
    out.append(("ce", np.array([[301], [513], [997]], np.float32), z, "index", "labels rounded by a half dtype"))
    return out


def mse_cases(rng) -> list[tuple]:
    out = []
    for rows, cols in [(7, 5), (13, 1), (50, 9), (3, 40), (1, 33), (1, 8197), (16, 64)]:
        scale = rng.choice([1e-3, 1.0, 100.0], (rows, 1))
        y = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        p = (y + rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        out.append(("mse", y, p, None, "random"))
    y = np.array([[1e-20, 0, 1e19], [0, 3e-39, -1e-30]], np.float32)
    out.append(("mse", y, np.zeros_like(y), None, "squares flushed to zero or near overflow"))
    return out


def main() -> None:
    rng = np.random.default_rng(20261202)
    cases = ce_cases(rng) + mse_cases(rng)
    # (the widest inputs under Keras 3 only: tf-keras calls the same kernels, and the file stays small)
    records = [record(conv, loss, y, p, labels, note) for conv in ("keras", "tf-keras")
               for loss, y, p, labels, note in cases if conv == "keras" or p.size <= 1100]
    # the half dtypes on the smaller inputs, and on the class indexes they round
    records += [record(conv, loss, y, p, labels, note, dtype) for dtype in ("float16", "bfloat16")
                for conv in ("keras", "tf-keras") for loss, y, p, labels, note in cases
                if (p.size <= 400 or note.startswith("labels")) and np.isfinite(p.astype(np.float16)).all()
                and np.isfinite(y.astype(np.float16)).all()]  # (inputs float16 holds: lossgrad refuses the others)
    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "sse4"))})
    meta = {"versions": versions(), "build": {k: str(v) for k, v in tf.sysconfig.get_build_info().items()},
            "compile_flags": tf.sysconfig.get_compile_flags(), "cpu_flags": flags,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}
    OUT.write_text(json.dumps({"meta": meta, "cases": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
