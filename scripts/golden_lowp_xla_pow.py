"""Record JAX's CPU results for optax's triplet_margin_loss with a norm_degree other than 2 (float32 op by op and
under jit, float16 and bfloat16 op by op) for tests/golden/lowp_xla_pow.json (read by tests/test_lowp_xla_pow.py).

Each record is taken as scripts/golden_lowp_xla_more.py takes its own: the anchors are the predictions, the
positives the targets and the negatives an extra input; jit (jax.jit around jax.value_and_grad) or op by op;
reduction (jnp.mean, jnp.sum; none: the per-example losses and the gradient of their sum); JAX's per-example
losses, reduced value and the gradients with respect to all three, as the shortest decimals that read back to the
same float32. An integral degree is passed to optax as a Python int (as its default 2: jnp.power takes it as
lax.integer_pow), any other as a float (lax.pow). Under jit only the degrees and row lengths lossgrad reproduces
(lossgrad.lowp_xla_pow.check) are recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import _np_dtype, _rounded, _short  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_pow.json"
DEGREES = (1.0, 1.5, 3.0, 4.0, 2.5)
MARGINS = (1.0, 0.3)


def jit_reproduced(q: float, rows: int, cols: int) -> bool:
    """Whether lossgrad reproduces this degree and shape under jit (as lossgrad.lowp_xla_pow.check)."""
    if q.is_integer():
        return q == 1 or (q in (3, 4) and not (2 <= cols <= 8 and rows * cols < 4096))
    return q >= 1


def record(q: float, margin: float, jit: bool, reduction: str, y: np.ndarray, p: np.ndarray, neg: np.ndarray,
           name: str | None = None, dtype: str = "float32") -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    degree = int(q) if q.is_integer() else q

    def reduced(a, pos, n):
        out = optax.losses.triplet_margin_loss(a, pos, n, norm_degree=degree, margin=margin)
        return (jnp.mean(out) if reduction == "mean" else jnp.sum(out)), out
    both = jax.value_and_grad(reduced, argnums=(0, 1, 2), has_aux=True)
    if jit:
        both = jax.jit(both)
    y, p, neg = (_rounded(x, dtype) for x in (y, p, neg))  # (inputs representable in the dtype)
    (value, losses), grads = both(*(jnp.asarray(x.astype(_np_dtype(dtype))) for x in (p, y, neg)))
    out = {"loss": "triplet", "options": {"margin": margin, "norm_degree": q}, "dtype": dtype, "jit": jit,
           "reduction": reduction, "target": _short(y), "pred": _short(p), "negative": _short(neg),
           "losses": _short(np.asarray(losses, dtype=np.float32)),
           "value": None if reduction == "none" else str(np.float32(value)),
           "grad": _short(np.asarray(grads[0], dtype=np.float32)),
           "grads": {k: _short(np.asarray(g, dtype=np.float32)) for k, g in zip(("target", "negative"), grads[1:],
                                                                               strict=True)}}
    return out | ({"name": name} if name else {})


def triplets(rng, q: float, rows: int, cols: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """(positives, anchors, negatives) in float32: random rows (a non-integral or odd degree: every difference made
    non-negative, anchor ≥ positive and negative, so that the powers are not NaN); random rows with about a tenth
    of the differences negative (NaN powers, optax having no |·|); and adversarial ones: equal rows (zero
    differences, a distance of ε^(1/q)), ties of the two distances, one feature, and 12 features."""
    a = rng.standard_normal((rows, cols)) * rng.choice([0.1, 1.0, 10.0], (rows, 1))
    pos, neg = (a + rng.standard_normal((rows, cols)) * rng.choice([1e-3, 0.5, 2.0], (rows, 1)) for _ in range(2))
    some = [np.where(rng.random((rows, cols)) < 0.9, np.minimum(x, a), x) for x in (pos, neg)]
    ta = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [5.0, -4.0, 0.5], [2.0, 2.0, 2.0]])
    tp = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [5.0, -4.0, 0.5], [1.0, 2.0, 2.0]])
    tn = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [4.0, -4.0, 0.5], [2.0, 1.0, 2.0]])
    if not (q.is_integer() and q % 2 == 0):
        pos, neg = np.minimum(pos, a), np.minimum(neg, a)
    f = np.float32
    return [(pos.astype(f), a.astype(f), neg.astype(f), "random"),
            (some[0].astype(f), a.astype(f), some[1].astype(f), "random, some differences negative"),
            (tp.astype(f), ta.astype(f), tn.astype(f), "adversarial"),
            (tp[:, :1].astype(f), ta[:, :1].astype(f), tn[:, :1].astype(f), "adversarial, one feature"),
            (np.tile(tp, 4).astype(f), np.tile(ta, 4).astype(f), np.tile(tn, 4).astype(f), "adversarial, 12 features")]


# (rows, features): one feature, 2 to 8 (XLA's vectorized row loops), 9 to 32, more (XLA's windows of 32),
# YNNPACK's sums from 4096 elements
# YNNPACK's shape for one degree under jit only (the file's size)
SHAPES = ((1, 1), (12, 1), (7, 2), (21, 3), (30, 5), (14, 8), (17, 10), (9, 32), (5, 33), (4, 100), (256, 16))
YNN_DEGREES = (1.5,)


def records(rng) -> list[dict]:
    out = []
    for q in DEGREES:
        for jit in (False, True):
            for i, (rows, cols) in enumerate(SHAPES):
                if (jit and not jit_reproduced(q, rows, cols)) or (rows * cols >= 4096 and (q not in YNN_DEGREES
                                                                                              or not jit)):
                    continue
                reduction = ("mean", "sum", "none")[i % 3]
                margin = MARGINS[i % 2]
                for y, p, neg, name in triplets(rng, q, rows, cols):
                    if (name != "random" and i % 4) or (jit and not jit_reproduced(q, *p.shape)):
                        continue
                    out.append(record(q, margin, jit, reduction, y, p, neg, name))
    return out


# float16 and bfloat16 op by op: these shapes, random rows and (every other shape) the adversarial ones
HALF_SHAPES = ((1, 1), (12, 1), (7, 3), (11, 5), (9, 12), (3, 33))


def half_records(rng) -> list[dict]:
    out = []
    for dtype in ("float16", "bfloat16"):
        for q in DEGREES:
            for i, (rows, cols) in enumerate(HALF_SHAPES):
                reduction, margin = ("mean", "sum", "none")[i % 3], MARGINS[i % 2]
                for y, p, neg, name in triplets(rng, q, rows, cols)[:1 if i % 2 else 3]:
                    out.append(record(q, margin, False, reduction, y, p, neg, name, dtype))
    return out


def main() -> None:
    from make_golden import jax_versions

    recs = records(np.random.default_rng(20261205)) + half_records(np.random.default_rng(20261206))
    OUT.write_text(json.dumps({"versions": jax_versions(), "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
