"""Record JAX's CPU results for optax's label smoothing, for tests/golden/smoothing_optax.json (read by
tests/test_smoothing_optax.py).

optax smooths targets with a function of its own, before the loss: optax.smooth_labels(rows, s) =
(1 − s)·rows + s/C, then softmax_cross_entropy(logits, smoothed). Class indexes are made one-hot first,
jax.nn.one_hot(labels, C), inside the loss function (a training step's labels come as integers). The per-example
losses (times per-sample weights w in some records: jnp.mean(loss * w)) are reduced by jnp.mean or jnp.sum, and
the value and gradient come as golden_lowp_xla.py forms them: jax.value_and_grad(..., has_aux=True) with the
losses as the aux, under jax.jit or op by op, the targets (rows, or class indexes) and the weights closed over as
constants.

Each record: dtype, jit, reduction, the target form ("index": class indexes, "onehot": probability rows, one-hot
or soft), s, the inputs as the dtype holds them, and JAX's losses, reduced value and gradient, every number the
shortest decimal that reads back to the same float32. The versions, the processor and its vector extensions are
recorded (XLA compiles for the machine it runs on).

    python3 scripts/golden_smoothing_optax.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_xla import _np_dtype, _rounded, _short  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "smoothing_optax.json"
DTYPES = ("float32", "float16", "bfloat16")
REDUCTIONS = ("none", "sum", "mean")
SMOOTHING = (0.1, 0.2, 0.05, 0.3, 1e-3, 0.7, 1 / 3)
# (rows, classes): single rows, the fused loops' shapes up to 32 × 32 and wider rows; BIG (the mean of class
# indexes and of one-hot rows only, to keep the file small): a row of more than 1024 and 4,096 elements or more
SHAPES = ((1, 3), (2, 5), (3, 3), (8, 7), (16, 32), (5, 100))
BIG = ((1, 1025), (64, 70))


def smoothed(dtype: str, jit: bool, reduction: str, y: np.ndarray, z: np.ndarray, s: float, form: str,
             w: np.ndarray | None):
    """JAX's (losses, value, gradient) as numpy arrays (the value None for none)."""
    import jax
    import jax.numpy as jnp
    import optax

    kind = _np_dtype(dtype)
    target = jnp.asarray(y[:, 0].astype(np.int32) if form == "index" else y.astype(kind))
    weights = None if w is None else jnp.asarray(w.astype(kind))

    def reduced(logits):
        rows = jax.nn.one_hot(target, logits.shape[1], dtype=kind) if form == "index" else target
        losses = optax.losses.softmax_cross_entropy(logits, optax.smooth_labels(rows, s))
        losses = losses if weights is None else losses * weights
        return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
    both = jax.value_and_grad(reduced, has_aux=True)
    (value, losses), grad = (jax.jit(both) if jit else both)(jnp.asarray(z.astype(kind)))
    return (np.asarray(losses, dtype=np.float32), None if reduction == "none" else np.float32(value),
            np.asarray(grad, dtype=np.float32))


def targets(rng, form: str, rows: int, classes: int, dtype: str) -> np.ndarray:
    """Class indexes ([rows, 1]), one-hot rows, or soft rows (sharpened one time in two)."""
    if form == "index":
        return rng.integers(0, classes, rows).astype(np.float64)[:, None]
    if form == "onehot":
        return np.eye(classes)[rng.integers(0, classes, rows)]
    soft = rng.random((rows, classes)) ** rng.choice([1.0, 8.0])
    return _rounded(soft / soft.sum(axis=1, keepdims=True), dtype)


def record(rng, dtype: str, jit: bool, reduction: str, form: str, rows: int, classes: int) -> dict:
    """A record of random logits (rows of several scales), targets of the form, s, and weights one time in three
    (below 4,096 elements, and not for class indexes under jit in float32: lossgrad falls back there)."""
    z = _rounded(rng.standard_normal((rows, classes)) * rng.choice([0.1, 1.0, 5.0, 30.0], (rows, 1)), dtype)
    y = targets(rng, form, rows, classes, dtype)
    s = float(rng.choice(SMOOTHING))
    weighable = rows * classes < 4096 and not (form == "index" and jit and dtype == "float32")
    w = _rounded(rng.choice([0.0, 0.5, 1.0, 1 / 3, 2.5, 1e-3], rows), dtype) \
        if weighable and rng.random() < 1 / 3 else None
    losses, value, grad = smoothed(dtype, jit, reduction, y, z, s, form, w)
    return {"dtype": dtype, "jit": jit, "reduction": reduction, "labels": "index" if form == "index" else "onehot",
            "smoothing": s, "target": _short(y), "pred": _short(z), "weights": None if w is None else _short(w),
            "losses": _short(losses), "value": None if value is None else str(value), "grad": _short(grad)}


def records(rng) -> list[dict]:
    out = [record(rng, dtype, jit, reduction, form, rows, classes)
           for dtype in DTYPES for jit in (True, False) for reduction in REDUCTIONS
           for form in ("index", "onehot", "soft") for rows, classes in SHAPES]
    return out + [record(rng, dtype, jit, "mean", form, rows, classes)
                  for dtype in DTYPES for jit in (True, False) for form in ("index", "onehot") for rows, classes in BIG]


def main() -> None:
    from make_golden import cpu_model, jax_versions

    recs = records(np.random.default_rng(20261205))
    meta = jax_versions() | {"cpu": cpu_model()}
    OUT.write_text(json.dumps({"versions": meta, "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
