"""Record TensorFlow's float32, float16 and bfloat16 CPU results for Keras' sparse cross entropy from logits with
ignore_class, under Keras 3 and tf-keras, for tests/golden/lowp_tf_ignore.json (read by
tests/test_lowp_tf_ignore.py).

Each record is golden_lowp_tf's (Keras 3's SparseCategoricalCrossentropy with dtype= the dtype, tf-keras' on
tensors of it; class indexes as float32 numbers), with ignore_class: the per-sample losses, and the value and the
GradientTape gradient under "sum" and "sum_over_batch_size". The samples of the ignored class are left out by
Keras' mask: their losses 0, the kept ones weighing N/K in the mean. Inputs: a few to a third of the samples
ignored, all but one, none, all of them; the ignored index -100, -1, or a real class (0); logits spread to
hundreds; batches of 1 to 300 rows (a half dtype's N/K rounds). The processor's capability (lossgrad's name) and
the versions are recorded.
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

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_ignore.json"


def _loss(module, reduction: str, dtype: str, ignore: int):
    kw = {"reduction": reduction} | ({"dtype": dtype} if module.__name__ == "keras" else {})
    return module.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore, **kw)


def record(conv: str, y: np.ndarray, p: np.ndarray, ignore: int, note: str, dtype: str) -> dict:
    module = __import__("keras" if conv == "keras" else "tf_keras")
    p = tf.cast(tf.constant(p, dtype=DTYPES[dtype]), tf.float32).numpy()
    target = tf.constant(y[:, 0], dtype=tf.float32)
    per = _loss(module, "none", dtype, ignore)(target, tf.constant(p, dtype=DTYPES[dtype]))
    rec = {"convention": conv, "dtype": dtype, "ignore_index": ignore, "note": note, "target": _short(y),
           "pred": _short(p), "losses": _short(tf.cast(per, tf.float32).numpy())}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, dtype=DTYPES[dtype]))
        with tf.GradientTape() as tape:
            value = _loss(module, reduction, dtype, ignore)(target, pv)
        rec[name] = {"value": str(np.float32(tf.cast(value, tf.float32).numpy())),
                     "grad": _short(tf.cast(tape.gradient(value, pv), tf.float32).numpy())}
    return rec


def cases(rng) -> list[tuple]:
    """(target indexes, logits, ignored index, note)."""
    out = []
    for rows, classes, share in [(1, 3, 0.0), (5, 7, 0.2), (24, 10, 0.2), (13, 33, 0.5), (64, 17, 0.1),
                                 (300, 5, 0.3), (9, 300, 0.3), (37, 3, 0.9)]:
        z = (rng.standard_normal((rows, classes)) * rng.choice([0.1, 1.0, 5.0, 30.0, 300.0], (rows, 1)))
        y = rng.integers(0, classes, (rows, 1)).astype(np.float32)
        ignore = int(rng.choice([-100, -1]))
        y[rng.random(rows) < share] = ignore
        out.append((y, z.astype(np.float32), ignore, f"{int((y == ignore).sum())} of {rows} ignored"))
    z = (rng.standard_normal((8, 6)) * 4).astype(np.float32)
    y = np.array([[-100], [1], [-100], [-100], [-100], [-100], [-100], [-100]], np.float32)
    out.append((y, z, -100, "all but one ignored"))
    out.append((np.full((4, 1), -100, np.float32), z[:4], -100, "all ignored"))
    y = rng.integers(0, 6, (8, 1)).astype(np.float32)
    out.append((y, z, 0, "a real class (0) ignored"))
    return out


def main() -> None:
    rng = np.random.default_rng(20261205)
    records = [record(conv, y, p, ignore, note, dtype) for dtype in ("float32", "float16", "bfloat16")
               for y, p, ignore, note in cases(rng) for conv in ("keras", "tf-keras")]
    import torch  # (only for the processor's capability, as lossgrad names it)

    meta = {"versions": versions(), "cpu": torch.backends.cpu.get_cpu_capability().lower()}
    OUT.write_text(json.dumps({"meta": meta, "cases": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
