"""Record JAX's CPU results for optax's losses under per-sample weights, for tests/golden/weights_optax.json (read by
tests/test_weights_optax.py).

A training step weighs optax's per-example losses before it reduces them: jnp.mean(loss * w) (jnp.sum for the sum;
the weighted losses themselves for reduction none), w in the predictions' dtype and, for the elementwise losses
(squared_error, sigmoid_binary_cross_entropy), one per sample broadcast over its outputs (w[:, None]). The value and
gradient come as golden_lowp_xla.py forms them: jax.value_and_grad(..., has_aux=True) with the weighted losses as
the aux, under jax.jit or op by op, the targets and the weights closed over as constants.

Each record: the loss, dtype, jit, reduction, the inputs as the dtype holds them and JAX's weighted per-example
losses, reduced value and gradient, every number the shortest decimal that reads back to the same float32. The long
batches (more than 32,768 samples, which lossgrad evaluates in slices) are kept by seed and SHA-256 digest. The
versions, the processor and its vector extensions are recorded (XLA compiles for the machine it runs on).

    python3 scripts/golden_weights_optax.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_long_batches import digest  # noqa: E402
from golden_lowp_xla import _np_dtype, _per_example, _rounded, _short  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights_optax.json"
DTYPES = ("float32", "float16", "bfloat16")
REDUCTIONS = ("none", "sum", "mean")
# the long batches of class indexes: (dtype, jit, reduction, rows, classes), inputs by seed
# (more than 32,768 + 4,096 rows: a shorter rest is joined to the slice before it)
LONG = (("float32", True, "mean", 40000, 3), ("float32", False, "sum", 70001, 5),
        ("float16", True, "mean", 45000, 4), ("bfloat16", False, "mean", 38000, 3))


def weighted(loss: str, dtype: str, jit: bool, reduction: str, y: np.ndarray, p: np.ndarray, w: np.ndarray,
             labels: str | None = None):
    """JAX's (weighted losses, value, gradient) for these inputs, as numpy arrays (the value None for none)."""
    import jax
    import jax.numpy as jnp

    per = _per_example(loss, y, labels, dtype)
    kind = _np_dtype(dtype)
    weights = jnp.asarray(w.astype(kind))
    if loss not in ("ce",) and not loss.startswith("kl"):  # (elementwise: a sample's weight over its outputs)
        weights = weights[:, None]

    def reduced(z):
        losses = per(z) * weights
        return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
    both = jax.value_and_grad(reduced, has_aux=True)
    if jit:
        both = jax.jit(both)
    (value, losses), grad = both(jnp.asarray(p.astype(kind)))
    return (np.asarray(losses, dtype=np.float32), None if reduction == "none" else np.float32(value),
            np.asarray(grad, dtype=np.float32))


def record(loss: str, dtype: str, jit: bool, reduction: str, y: np.ndarray, p: np.ndarray, w: np.ndarray,
           labels: str | None = None, name: str | None = None) -> dict:
    """A record of inputs already representable in the dtype (w too) and JAX's results."""
    losses, value, grad = weighted(loss, dtype, jit, reduction, y, p, w, labels)
    out = {"loss": loss, "dtype": dtype, "jit": jit, "reduction": reduction, "labels": labels,
           "target": _short(y), "pred": _short(p), "weights": _short(w), "losses": _short(losses),
           "value": None if value is None else str(value), "grad": _short(grad)}
    return out | ({"name": name} if name else {})


def logits(rng, rows: int, classes: int, dtype: str) -> np.ndarray:
    scale = rng.choice([0.1, 1.0, 5.0, 20.0, 300.0], (rows, 1))
    return _rounded(rng.standard_normal((rows, classes)) * scale, dtype)


def weights(rng, rows: int, dtype: str) -> np.ndarray:
    """Weights of every kind: ordinary ones, 0, 1, large and tiny ones, and products that round (0.1, 1/3)."""
    kind = rng.choice(["plain", "mixed", "extreme"])
    if kind == "plain":
        w = rng.random(rows) * 3
    elif kind == "mixed":
        w = rng.choice([0.0, 1.0, 0.1, 1 / 3, 2.0, 0.7, 1e-3, 12.5], rows)
    else:
        big, tiny = (3e3, 1e-4) if dtype == "float16" else (1e30 if dtype == "float32" else 1e20, 1e-30)
        w = rng.choice([0.0, big, tiny, 1.0, 0.1, 7.0], rows) * rng.random(rows)
    return _rounded(w, dtype)


def ce_index(rng, dtype: str, jit: bool, reduction: str, rows: int, classes: int, name: str | None = None) -> dict:
    z = logits(rng, rows, classes, dtype)
    y = rng.integers(0, classes, rows).astype(np.float64)[:, None]
    return record("ce", dtype, jit, reduction, y, z, weights(rng, rows, dtype), "index", name)


def kl(rng, dtype: str, jit: bool, reduction: str, rows: int, classes: int, form: str = "kl") -> dict:
    """kl's rows of probabilities (its form: "kl", "kl-log-input", "kl-log-target", "kl-log-both"), the first
    class's target 0."""
    q = rng.random((rows, classes))
    q /= q.sum(axis=1, keepdims=True)
    t = rng.random((rows, classes))
    t /= t.sum(axis=1, keepdims=True)
    t[:, 0] = 0 if classes > 1 else t[:, 0]
    log_q, log_t = np.log(q), np.log(np.where(t == 0, 1e-30, t))
    p = log_q if form in ("kl-log-input", "kl-log-both") else q
    y = log_t if form in ("kl-log-target", "kl-log-both") else t
    rec = record(form, dtype, jit, reduction, _rounded(y, dtype), _rounded(p, dtype), weights(rng, rows, dtype))
    return rec | {"loss": "kl", "log_input": form in ("kl-log-input", "kl-log-both"),
                  "log_target": form in ("kl-log-target", "kl-log-both")}


def ce_rows(rng, dtype: str, jit: bool, reduction: str, rows: int, classes: int, name: str | None = None) -> dict:
    """Probability rows (the first half one-hot, the rest soft, sharpened one time in two) against logits."""
    z = logits(rng, rows, classes, dtype)
    soft = rng.random((rows, classes)) ** rng.choice([1.0, 8.0])
    soft[: rows // 2] = 0.0
    soft[np.arange(rows // 2), rng.integers(0, classes, rows // 2)] = 1.0
    y = _rounded(soft / soft.sum(1, keepdims=True), dtype)
    return record("ce", dtype, jit, reduction, y, z, weights(rng, rows, dtype), "onehot", name)


def elementwise(rng, loss: str, dtype: str, jit: bool, reduction: str, rows: int, outputs: int,
                name: str | None = None) -> dict:
    z = _rounded(rng.standard_normal((rows, outputs)) * rng.choice([0.1, 1.0, 5.0, 30.0], (rows, 1)), dtype)
    y = rng.random((rows, outputs))
    y[: rows // 4] = np.round(y[: rows // 4])
    if loss == "mse":
        y = y * rng.choice([1.0, 10.0])
    return record(loss, dtype, jit, reduction, _rounded(y, dtype), z, weights(rng, rows, dtype), None, name)


def long_inputs(seed: int, rows: int, classes: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A long batch's class indexes, logits and weights as the dtype holds them (pure numpy: the test rebuilds
    them)."""
    rng = np.random.default_rng(seed)
    z = _rounded(rng.normal(0, 3, (rows, classes)), dtype)
    labels = rng.integers(0, classes, rows).astype(np.float64)
    w = _rounded(rng.choice([0.0, 0.5, 1.0, 1 / 3, 2.5], rows) * rng.random(rows), dtype)
    return labels, z, w


def long_record(seed: int, case: tuple) -> dict:
    """A long batch's record; in float32 the first seed from `seed` on (of 40) whose value lossgrad's own sum of
    the weighted losses (exact, rounded once) would miss (`placed`): there the slices' terms must be joined."""
    dtype, jit, reduction, rows, classes = case
    for tried in range(40 if dtype == "float32" else 1):
        labels, z, w = long_inputs(seed + tried, rows, classes, dtype)
        losses, value, grad = weighted("ce", dtype, jit, reduction, labels[:, None], z, w, "index")
        total = math.fsum(losses.astype(np.float64)) / (rows if reduction == "mean" else 1)
        placed = bool(np.float32(_rounded(np.array(total), dtype)) != value)
        if placed:
            break
    return {"loss": "ce", "dtype": dtype, "jit": jit, "reduction": reduction, "rows": rows, "classes": classes,
            "seed": seed + tried, "inputs": digest(labels, z, w), "losses": digest(losses), "grad": digest(grad),
            "value": str(value), "placed": placed}


SHAPES = {"ce": ((1, 3), (4, 1), (7, 5), (16, 10), (33, 4), (8, 40), (300, 7)),
          "ce-rows": ((1, 3), (2, 4), (3, 3), (5, 4), (16, 10), (8, 40), (40, 3), (64, 60)),
          "mse": ((1, 1), (5, 1), (40, 1), (3, 4), (16, 8), (50, 3)),
          "bce": ((1, 1), (5, 1), (40, 1), (3, 4), (16, 8), (50, 3))}


def adversarial(dtype: str, jit: bool, reduction: str) -> list[dict]:
    """Weights of 0 throughout; weights whose products overflow the dtype or fall below its normal numbers (1/n·w
    subnormal, a subnormal weight itself); weights whose products round (0.1, 1/3). Each loss: ce of class indexes
    and of probability rows, mse and bce over three outputs and one."""
    huge = {"float32": 3e38, "float16": 6e4, "bfloat16": 3e38}[dtype]
    tiny = {"float32": 1e-37, "float16": 1e-7, "bfloat16": 1e-37}[dtype]
    below = {"float32": 5e-39, "float16": 3e-8, "bfloat16": 5e-39}[dtype]  # (subnormal in the dtype)
    z = _rounded(np.array([[2.0, -1.0, 0.5], [30.0, -30.0, 0.0], [0.1, 0.2, 0.3], [-4.0, 4.0, 1.0],
                           [7.5, 7.5, -2.0], [1e-3, -1e-3, 5.0]]), dtype)
    labels = np.array([[0.0], [1.0], [2.0], [0.0], [1.0], [2.0]])
    y = _rounded(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.25], [1.0, 1.0, 0.0], [0.5, 0.0, 1.0],
                           [0.0, 0.3, 0.7], [1.0, 0.9, 0.1]]), dtype)
    cases = {"zeros": np.zeros(6), "overflow": np.array([huge, 1.0, huge, 0.0, huge / 3, 2.0]),
             "subnormal": np.array([tiny, below, tiny * 3, 1.0, tiny / 7, 0.5]),
             "rounding": np.array([0.1, 1 / 3, 0.7, 2 / 3, 0.3, 1.1])}
    out = []
    for name, w in cases.items():
        w = _rounded(w, dtype)
        out.append(record("ce", dtype, jit, reduction, labels, z, w, "index", name))
        out += [record(loss, dtype, jit, reduction, y, z, w, None, name) for loss in ("mse", "bce")]
        out += [record(loss, dtype, jit, reduction, y[:, :1], z[:, :1], w, None, name) for loss in ("mse", "bce")]
        rows = _rounded(y / y.sum(axis=1, keepdims=True), dtype)
        out.append(record("ce", dtype, jit, reduction, rows, z, w, "onehot", name))
    return out


def kl_records(rng) -> list[dict]:
    """kl's four forms in each dtype, mode and reduction (but float32 under jit, where lossgrad falls back)."""
    return [kl(rng, dtype, jit, reduction, rows, classes, form) for dtype in DTYPES for jit in (True, False)
            if dtype != "float32" or not jit for reduction in REDUCTIONS
            for form in ("kl", "kl-log-input", "kl-log-target", "kl-log-both")
            for rows, classes in ((1, 3), (4, 5), (16, 10), (40, 3))]


def nine_outputs(rng) -> list[dict]:
    """bce over 9 outputs under jit in float32: past LLVM's vector of 8 the 9th output's gradient fuses the other
    product into its FMA (from 2 rows; weights of 1 among them, as unweighted)."""
    return [elementwise(rng, "bce", "float32", True, reduction, rows, 9)
            for rows in (1, 2, 3, 20, 500) for reduction in REDUCTIONS]


def records(rng, losses: tuple[str, ...] = ("ce", "mse", "bce")) -> list[dict]:
    """Each loss ("ce-rows": ce of probability rows) in each dtype, jit mode, reduction and shape of SHAPES'."""
    out = []
    for loss in losses:
        for dtype in DTYPES:
            for jit in (True, False):
                for reduction in REDUCTIONS:
                    for rows, width in SHAPES[loss]:
                        if loss == "ce":
                            out.append(ce_index(rng, dtype, jit, reduction, rows, width))
                        elif loss == "ce-rows":
                            out.append(ce_rows(rng, dtype, jit, reduction, rows, width))
                        else:
                            out.append(elementwise(rng, loss, dtype, jit, reduction, rows, width))
    return out


def main() -> None:
    from make_golden import cpu_model, jax_versions

    recs = records(np.random.default_rng(20261205))
    recs += records(np.random.default_rng(20261207), ("ce-rows",))  # (after the rest: their draws kept)
    recs += nine_outputs(np.random.default_rng(20261208)) + kl_records(np.random.default_rng(20261209))
    recs += [rec for dtype in DTYPES for jit in (True, False) for reduction in REDUCTIONS
             for rec in adversarial(dtype, jit, reduction)]
    long = [long_record(20261206 + 100 * i, case) for i, case in enumerate(LONG)]
    meta = jax_versions() | {"cpu": cpu_model()}
    OUT.write_text(json.dumps({"versions": meta, "records": recs, "long": long}) + "\n")
    print(f"{OUT}: {len(recs)} records, {len(long)} long, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
