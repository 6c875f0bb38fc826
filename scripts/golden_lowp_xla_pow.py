"""Record JAX's CPU results for optax's triplet_margin_loss with a norm_degree other than 2 (float32 op by op and
under jit, float16 and bfloat16 op by op) for tests/golden/lowp_xla_pow.json (read by tests/test_lowp_xla_pow.py).

Each record is taken as scripts/golden_lowp_xla_more.py takes its own: the anchors are the predictions, the
positives the targets and the negatives an extra input; jit (jax.jit around jax.value_and_grad) or op by op;
reduction (jnp.mean, jnp.sum; none: the per-example losses and the gradient of their sum); JAX's per-example
losses, reduced value and the gradients with respect to all three, as the shortest decimals that read back to the
same float32. An integral degree is passed to optax as a Python int (as its default 2: jnp.power takes it as
lax.integer_pow), any other as a float (lax.pow). Under jit only the degrees lossgrad reproduces
(lossgrad.lowp_xla_pow.check) are recorded.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import lossgrad

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import _apart, _np_dtype, _rounded, _short, undone  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_pow.json"
DEGREES = (1.0, 1.5, 3.0, 4.0, 2.5)
MARGINS = (1.0, 0.3)


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
                if rows * cols >= 4096 and (q not in YNN_DEGREES or not jit):
                    continue
                reduction = ("mean", "sum", "none")[i % 3]
                margin = MARGINS[i % 2]
                for y, p, neg, name in triplets(rng, q, rows, cols):
                    if name != "random" and i % 4:
                        continue
                    out.append(record(q, margin, jit, reduction, y, p, neg, name))
    return out


# float16 and bfloat16 op by op: these shapes, random rows and (every other shape) the adversarial ones
HALF_SHAPES = ((1, 1), (12, 1), (7, 3), (11, 5), (9, 12), (3, 33))


def _half(rng, degrees, shapes, jit: bool, pick) -> list[dict]:
    """float16 and bfloat16 records of each degree and shape: the triplets `pick(i, triplets)` keeps of the i-th
    shape, its reduction and margin taken in turn."""
    out = []
    for dtype in ("float16", "bfloat16"):
        for q in degrees:
            for i, (rows, cols) in enumerate(shapes):
                reduction, margin = ("mean", "sum", "none")[i % 3], MARGINS[i % 2]
                for y, p, neg, name in pick(i, triplets(rng, q, rows, cols)):
                    out.append(record(q, margin, jit, reduction, y, p, neg, name, dtype))
    return out


def half_records(rng) -> list[dict]:
    return _half(rng, DEGREES, HALF_SHAPES, False, lambda i, drawn: drawn[:1 if i % 2 else 3])


# degrees beyond DEGREES (integral ones past 4, and below 1, where XLA writes the root 1/q = 2 or 3 as products),
# float32 op by op and under jit, and float16 and bfloat16 op by op; with MORE_SHAPES, rows of 2 to 8 features
# that LLVM vectorizes 4 or 8 rows at a time
MORE_DEGREES = (5.0, 6.0, 10.0, 0.5, 1 / 3, 0.75)
HALF_MORE = (5.0, 0.5, 1 / 3)  # (⅓ is not a float16 or bfloat16 number: the exponent rounds to the dtype)
MORE_SHAPES = ((1, 1), (4, 3), (8, 5), (9, 4), (20, 2), (36, 6), (60, 4), (17, 10), (5, 33))


def more_records(rng) -> list[dict]:
    out = []
    for i, (rows, cols) in enumerate(MORE_SHAPES):
        reduction, margin = ("mean", "sum", "none")[i % 3], MARGINS[i % 2]
        for q in (3.0, 4.0) + MORE_DEGREES:
            for jit in (False, True):
                if q in DEGREES and not jit:
                    continue
                for y, p, neg, name in triplets(rng, q, rows, cols)[:2 if i % 2 else 3]:
                    out.append(record(q, margin, jit, reduction, y, p, neg, name))
    for dtype in ("float16", "bfloat16"):
        for q in HALF_MORE:
            y, p, neg, name = triplets(rng, q, 9, 5)[0]
            out.append(record(q, 0.3, False, "mean", y, p, neg, name, dtype))
    return out + half_jit_records(rng)


# float16 and bfloat16 under jit: these degrees and shapes (one feature, a few, XLA's windows beyond 32)
HALF_JIT_DEGREES = (1.0, 1.5, 3.0, 4.0, 5.0, 0.5, 1 / 3)
HALF_JIT_SHAPES = ((1, 1), (9, 1), (7, 3), (20, 6), (9, 12), (3, 33))


def half_jit_records(rng) -> list[dict]:
    return _half(rng, HALF_JIT_DEGREES, HALF_JIT_SHAPES, True, lambda i, drawn: drawn[i % 2:i % 2 + 1])


def ours(y, p, neg, q: float, reduction: str = "none") -> lossgrad.Result:
    """lossgrad's optax triplet under jit in float32 (margin 1) on these float32 numbers."""
    def wide(x) -> np.ndarray:
        return np.asarray(x, dtype=np.float32).astype(np.float64)
    return lossgrad.evaluate("triplet", wide(y), wide(p), convention="optax", dtype="float32", reduction=reduction,
                             negative=wide(neg), margin=1.0, norm_degree=q)


def _results(r: lossgrad.Result) -> list[np.ndarray]:
    return [np.float32(a).ravel() for a in (r.losses, r.grad, r.grads["target"], r.grads["negative"])]


def _recorded(rec: dict) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float32).ravel() for a in (rec["losses"], rec["grad"], rec["grads"]["target"],
                                                              rec["grads"]["negative"])]


def _same(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    return all(np.array_equal(u, v, equal_nan=True) for u, v in zip(got, want, strict=True))


def _vector_width(q: float, rows: int, n: int, rng) -> str:
    """Whether JAX's jitted triplet with integral degree q over rows × n takes the rows past the last group of 8
    4 at a time with the rest ("4") or leaves them to the scalar loop ("8"), as lossgrad computes either: from a
    batch of alike differences (similar) whose two readings differ (none found in 20 tries: "-")."""
    from lossgrad import lowp_xla_pow

    def run(y: np.ndarray, p: np.ndarray, neg: np.ndarray, four: bool) -> list[np.ndarray]:
        lowp_xla_pow.POWER_ROWS[lowp_xla_pow.products(int(q)), int(q) % 2] = {n: rows if four else 0}
        return _results(ours(y, p, neg, q))
    for _ in range(20):
        y, p, neg, _name = similar(rng, rows, n)
        four, eight = run(y, p, neg, True), run(y, p, neg, False)
        if not _same(four, eight):
            break
    else:
        return "-"
    want = _recorded(record(q, 1.0, True, "none", y, p, neg))
    same = [_same(got, want) for got in (four, eight)]
    return {(True, False): "4", (False, True): "8"}.get(tuple(same), "neither")


def vector_rows(degrees: range = range(3, 25)) -> None:
    """Print, for each integral degree and row length of 2 to 8, the groups of 8 rows from which LLVM's loop
    vectorizer takes a batch with 4 rows over 8 rows at a time (lossgrad.lowp_xla_pow.POWER_ROWS), measured over
    every count of groups below 4096 elements; "never" where it stays at 4."""
    rng = np.random.default_rng(5)
    for q in degrees:
        row = {}
        for n in range(2, 9):
            widths = {g: _vector_width(float(q), 8 * g + 4, n, rng) for g in range(2, (4095 // n - 4) // 8 + 1)}
            eights = [g for g, w in widths.items() if w == "8"]
            odd = [g for g, w in widths.items() if w == "neither" or (w == "4" and eights and g > eights[0])]
            open_ = [g for g, w in widths.items() if w == "-" and (not eights or g < eights[0])]
            row[n] = ((eights[0] if eights else "never") if not odd else f"not one threshold: {odd}",
                      *([f"undetermined below it: {open_}"] if open_ else []))
        print(q, row, flush=True)


def single_rows(rng) -> list[dict]:
    """A single row of 4096 features or more under jit in float32: YNNPACK fuses the power's last product (q = 3,
    5, 6: two factors) with the row's sum into its dot (lowp_xla.dot_row); q = 4's last product is a square, summed
    as it is."""
    out = []
    for q, cols, reduction in ((3.0, 4500, "sum"), (6.0, 5000, "mean"), (5.0, 4100, "none"), (4.0, 4200, "sum")):
        y, p, neg, name = triplets(rng, q, 1, cols)[0]
        out.append(record(q, 1.0, True, reduction, y, p, neg, f"single row, {name}"))
    return out


def along_rows(rng) -> list[dict]:
    """Rows of 28 to 32 features whose fused sum of powers LLVM vectorizes along the row under jit in float32
    (lossgrad.lowp_xla_pow.along_row_sum): q = 7, 9 and 10 on 30 to 32 features (4 lanes in its reassociated order,
    then the rest; 8 lanes), ½ on 28 to 32 (8 lanes), in batches of 3 and 17 rows."""
    out = []
    for k, (q, cols) in enumerate(((7.0, 30), (7.0, 32), (9.0, 31), (10.0, 30), (10.0, 31), (10.0, 32), (0.5, 28),
                                   (0.5, 30), (0.5, 32))):
        rows = (3, 17)[k % 2]
        for y, p, neg, name in triplets(rng, q, rows, cols)[:2]:
            out.append(record(q, 1.0, True, ("mean", "none")[k % 2], y, p, neg, f"along the row, {name}"))
    return out


def similar(rng, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(positives, anchors, negatives) in float32 whose differences are all alike (0.8 to 1.25 below the anchor):
    every power of about the same size, so that the order in which XLA's code adds a row's powers shows in the
    rounding (random rows, whose largest power dominates the sum, hide it in a single row)."""
    a = rng.standard_normal((rows, cols))
    pos, neg = a - rng.uniform(0.8, 1.2, (rows, cols)), a - rng.uniform(0.8, 1.25, (rows, cols))
    return pos.astype(np.float32), a.astype(np.float32), neg.astype(np.float32), "alike differences"


# integral degrees past 10 (and single rows of 7, 9 and 10) whose row sums LLVM vectorizes by the products their
# powers take (lossgrad.lowp_xla_pow.ALONG_ROW_FROM, ROW_PLANS; (q, rows, features)), with alike differences
PRODUCT_SHAPES = ((7, 1, 30), (9, 1, 32), (10, 1, 31), (11, 1, 30), (13, 1, 29), (15, 1, 28), (15, 1, 26),
                  (11, 5, 28), (12, 3, 30), (13, 17, 31), (14, 2, 32), (15, 9, 25), (15, 3, 27), (16, 4, 31),
                  (17, 6, 28), (19, 7, 26), (20, 3, 31), (22, 4, 20), (24, 2, 32), (12, 40, 12), (16, 1, 32))


def product_records(rng) -> list[dict]:
    """Integral degrees past 10 under jit in float32: PRODUCT_SHAPES (random rows and alike differences), and rows of
    2 to 8 features that LLVM vectorizes 4 or 8 rows at a time by POWER_ROWS for 11 to 16, a group of 8 either side
    of each threshold."""
    from lossgrad.lowp_xla_pow import power_rows

    out = []
    for k, (q, rows, cols) in enumerate(PRODUCT_SHAPES):
        reduction = ("mean", "sum", "none")[k % 3]
        for y, p, neg, name in (similar(rng, rows, cols), triplets(rng, float(q), rows, cols)[0]):
            out.append(record(float(q), MARGINS[k % 2], True, reduction, y, p, neg, f"products, {name}"))
    for k, q in enumerate(range(11, 25)):
        for n in (2 + k % 3, 7 + k % 2) if q != 23 else (5,):
            groups = min(power_rows(q)[n], (4095 // n - 4) // 8)
            for rows in {8 * (groups - 1) + 4, 8 * groups + 4}:
                y, p, neg, name = similar(rng, rows, n)
                out.append(record(float(q), 1.0, True, ("mean", "none")[k % 2], y, p, neg, f"products, {name}"))
    return out


# powers of 7 to 10 products on rows that float32 sums along the row (lossgrad.lowp_xla_pow.ALONG_ROW_FROM, from 19
# features; ROW_PLANS below 24: an epilogue's vectors after the first 16 features), in a batch and alone, either side
# of each threshold: (q, rows, features)
MORE_PRODUCT_SHAPES = ((23, 3, 22), (23, 3, 23), (23, 3, 24), (23, 1, 24), (23, 1, 25), (27, 5, 23), (31, 3, 21),
                       (31, 3, 22), (31, 1, 23), (47, 3, 19), (47, 3, 20), (47, 1, 21), (47, 1, 22), (63, 3, 18),
                       (63, 3, 19), (63, 1, 20), (63, 3, 32), (47, 2, 28))


def more_product_records(rng) -> list[dict]:
    """MORE_PRODUCT_SHAPES under jit in float32, two draws of alike differences each."""
    out = []
    for k, (q, rows, cols) in enumerate(MORE_PRODUCT_SHAPES):
        for draw in range(2):
            y, p, neg, name = similar(rng, rows, cols)
            out.append(record(float(q), MARGINS[k % 2], True, ("mean", "none")[draw], y, p, neg,
                              f"more products, {name}"))
    return out


def single_root_rows(rng) -> list[dict]:
    """A single row of 27 to 32 features under jit in float32 with q = ½: its roots added in the scalar loop below
    30 features, along the row in 8 lanes from there (lossgrad.lowp_xla_pow.ROOTS_ALONG_FROM); positive differences
    of 0.01 to 10, whose roots' sum shows its order more often than alike ones, four draws of each length."""
    out = []
    for k, cols in enumerate((27, 28, 29, 30, 31, 32)):
        for _ in range(4):
            a = (rng.standard_normal((1, cols)) + 10).astype(np.float32)
            y, neg = ((a - rng.uniform(0.01, 10, (1, cols))).astype(np.float32) for _ in range(2))
            out.append(record(0.5, 1.0, True, ("none", "mean", "sum")[k % 3], y, a, neg,
                              "single root row, differences of 0.01 to 10"))
    return out


def loss_lane_records(rng) -> list[dict]:
    """q = 1 under jit in float32, jnp.sum and jnp.mean: batches whose fused sum of the losses LLVM adds in 8 lanes
    (lossgrad.lowp_xla_pow.LOSS_LANES: 24 to 32 rows of one feature, 30 to 32 of more) and either side of them."""
    out = []
    for k, (rows, cols) in enumerate(((24, 1), (27, 1), (29, 1), (32, 1), (22, 1), (33, 1), (29, 2), (30, 2),
                                      (31, 5), (32, 12), (30, 40), (31, 200), (33, 3))):
        for y, p, neg, name in triplets(rng, 1.0, rows, cols)[:2]:
            out.append(record(1.0, MARGINS[k % 2], True, ("sum", "mean")[k % 2], y, p, neg, f"fused losses, {name}"))
    return out


def root_lane_records(rng) -> list[dict]:
    """q = ½ and ⅓ under jit in float32, jnp.sum and jnp.mean: batches whose fused sum of the losses LLVM adds in 8
    lanes (lossgrad.lowp_xla_pow.LOSS_LANES: 25 to 32 rows for ½, 24 to 32 for ⅓) and either side of them; two
    draws of random rows each."""
    out = []
    for k, (q, rows, cols) in enumerate(((0.5, 24, 5), (0.5, 25, 1), (0.5, 26, 2), (0.5, 28, 5), (0.5, 32, 33),
                                         (0.5, 33, 3), (1 / 3, 21, 2), (1 / 3, 24, 5), (1 / 3, 27, 1),
                                         (1 / 3, 30, 12), (1 / 3, 32, 40), (1 / 3, 34, 2))):
        for _ in range(2):
            y, p, neg, name = triplets(rng, q, rows, cols)[0]
            out.append(record(q, MARGINS[k % 2], True, ("sum", "mean")[k % 2], y, p, neg, f"fused roots, {name}"))
    return out


def paired_lane_records(rng) -> list[dict]:
    """q = 1 and ⅓ under jit in float32, jnp.sum and jnp.mean: the batches whose fused sum of the losses LLVM adds 4
    lanes, then 2, at a time (lossgrad.lowp_xla_pow.LOSSES_PAIRED: 23 rows of one feature under q = 1, 22 and 23
    rows under ⅓); four draws each, random and alike rows."""
    out = []
    for k, (q, rows, cols) in enumerate(((1.0, 23, 1), (1 / 3, 22, 1), (1 / 3, 22, 5), (1 / 3, 23, 2),
                                         (1 / 3, 23, 33))):
        for draw in range(4):
            y, p, neg, name = triplets(rng, q, rows, cols)[0] if draw % 2 else similar(rng, rows, cols)
            out.append(record(q, MARGINS[k % 2], True, ("sum", "mean")[draw % 2], y, p, neg, f"paired losses, {name}"))
    return out


def half_along_rows(rng) -> list[dict]:
    """float16 and bfloat16 under jit: rows of 25 to 32 features that float32 sums along the row (along_row), which
    the half dtypes add in row order; alike differences."""
    out = []
    for k, (q, rows, n, dtype) in enumerate(((7.0, 16, 30, "float16"), (12.0, 8, 32, "float16"),
                                             (0.5, 16, 29, "float16"), (7.0, 16, 30, "bfloat16"),
                                             (0.5, 5, 28, "bfloat16"), (16.0, 3, 31, "bfloat16"))):
        for draw in range(2):
            pos, a, neg, name = similar(rng, rows, n)
            pos, a, neg = (_rounded(x, dtype) for x in (pos, a, neg))
            out.append(record(q, MARGINS[k % 2], True, ("none", "mean")[draw], pos, a, neg,
                              f"half along the row, {name}", dtype))
    return out


def half_along_row(draws: int = 40) -> None:
    """Print, for the half dtypes under jit on rows that float32 sums along the row, how many of `draws` batches of
    alike differences lossgrad (the powers added in row order) gives apart from JAX, and in how many batches float32's
    order along the row would have given other numbers, and how many of those JAX's are (as lossgrad's)."""
    from lossgrad import lowp_xla, lowp_xla_pow as pow_

    def along(d: np.ndarray, q: float, r) -> np.ndarray:  # (float32's order, the products rounded to the dtype)
        n = d.shape[1]
        if pow_.integral(q):
            u, v = pow_.last_factors(d, int(q), r)
            return lowp_xla.vector_fma_sum(u, v, pow_.ROW_PLANS[max(k for k in pow_.ROW_PLANS if k <= n)])
        return lowp_xla.vector_add_sum(pow_.power(d, q, r, r), (8, (tuple(range(n // 8)),), 0), lowp_xla.ftz)

    rng = np.random.default_rng(11)
    for q, rows, n, dtype in ((7.0, 16, 30, "float16"), (12.0, 8, 32, "float16"), (0.5, 16, 29, "float16"),
                              (7.0, 16, 30, "bfloat16"), (0.5, 16, 28, "bfloat16"), (9.0, 5, 31, "bfloat16")):
        apart = told = ours_won = 0
        for _ in range(draws):
            pos, a, neg, _ = similar(rng, rows, n)
            pos, a, neg = (_rounded(x, dtype) for x in (pos, a, neg))
            rec = record(q, 1.0, True, "none", pos, a, neg, dtype=dtype)
            mine = _results(lossgrad.evaluate("triplet", pos.astype(np.float64), a.astype(np.float64),
                                              convention="optax", dtype=dtype, reduction="none",
                                              negative=neg.astype(np.float64), norm_degree=q))
            apart += not _same(mine, _recorded(rec))
            r = lowp_xla.rounder(_np_dtype(dtype))
            k = lowp_xla.ftz if dtype == "bfloat16" else r  # (bfloat16 keeps what feeds a float32 sum in float32)
            eps = r(np.float32(1e-6))
            rows_of = [r(np.float32(a) - np.float32(v)) for v in (pos, neg)]
            sums = [r(lowp_xla._rows(pow_.power(d, q, r, k), r, k) + eps) for d in rows_of]
            other = [r(along(d, q, r) + eps) for d in rows_of]
            if any(not np.array_equal(u, v) for u, v in zip(sums, other, strict=True)):
                told += 1
                ours_won += _same(mine, _recorded(rec))
        print(f"q = {q:g}, {rows} × {n}, {dtype}: {apart} of {draws} apart; float32's order would give other sums in "
              f"{told}, where JAX's are lossgrad's in {ours_won}", flush=True)


def _row_sum_fit(q: float, rows: int, n: int, rng) -> str:
    """Which way of adding a row's powers gives JAX's jitted results over rows × n for an integral q (four draws of
    alike differences): "scalar" (the scalar loop) or the lanes of one of lossgrad.lowp_xla_pow.ROW_PLANS's plans
    ("8x3": 8 lanes, 3 blocks; "4x4+2": and an epilogue of 2 lanes), "neither", or "any" where the draws tell none
    apart."""
    from lossgrad import lowp_xla_pow as pow_

    kept = pow_.ALONG_ROW_FROM, pow_.ROW_PLANS
    m = pow_.products(int(q))
    ways = {"scalar": ({m: (33, 33)}, kept[1])} | {
        f"{plan[0]}x{len(plan[1])}" + (f"+{plan[2]}" if plan[2] else ""): ({m: (n, n)}, {n: plan})
        for k, plan in kept[1].items() if k <= n}
    draws = [similar(rng, rows, n) for _ in range(4)]
    recs = [record(q, 1.0, True, "none", y, p, neg) for y, p, neg, _ in draws]
    fits = []
    for name, (along, plans) in ways.items():
        pow_.ALONG_ROW_FROM, pow_.ROW_PLANS = along, plans
        try:
            if all(_matches(rec) for rec in recs):
                fits.append(name)
        finally:
            pow_.ALONG_ROW_FROM, pow_.ROW_PLANS = kept
    return fits[0] if len(fits) == 1 else "neither" if not fits else "any"


def _matches(rec: dict) -> bool:
    return _same(_results(ours(rec["target"], rec["pred"], rec["negative"], rec["options"]["norm_degree"])),
                 _recorded(rec))


def along_row(degrees=(3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 22, 23, 24, 27, 31, 47, 63)) -> None:
    """Print, for each integral degree (and the products its power takes) and row length of 9 to 32, how JAX's
    jitted code adds a row's powers, in a batch of 60 rows and in a batch of one (lossgrad.lowp_xla_pow's
    ALONG_ROW_FROM and ROW_PLANS), as runs of row lengths."""
    from lossgrad.lowp_xla_pow import products

    rng = np.random.default_rng(7)
    for q in degrees:
        for rows in (60, 1):
            runs: list[list] = []
            for n in range(9, 33):
                fit = _row_sum_fit(float(q), min(rows, 4095 // n), n, rng)
                if runs and runs[-1][2] == fit:
                    runs[-1][1] = n
                else:
                    runs.append([n, n, fit])
            print(q, products(q), "alone" if rows == 1 else "batch",
                  ", ".join(f"{a}-{b}: {fit}" if a < b else f"{a}: {fit}" for a, b, fit in runs), flush=True)


def loss_lanes(degrees=(1.0, 0.5, 1 / 3), features=(1, 2, 5, 33), batches=(*range(2, 41), 64, 100, 1000, 5000)
               ) -> None:
    """Print, for q = 1, ½ and ⅓ under jit in float32 and each row length, the batch sizes whose reduced value
    (jnp.sum and jnp.mean in turn, four draws each) lossgrad does not give as JAX does, and those it leaves to its
    own sum (lossgrad.lowp_xla_pow.LOSS_LANES, LOSSES_PAIRED)."""
    rng = np.random.default_rng(9)
    for q, n in ((q, n) for q in degrees for n in features):
        apart, own = [], []
        for rows in batches:
            if rows * n > 40_000:
                continue
            for k in range(4):
                y, p, neg, name = triplets(rng, q, rows, n)[k % 2]
                rec = record(q, 1.0, True, ("sum", "mean")[k % 2], y, p, neg, name)
                r = ours(rec["target"], rec["pred"], rec["negative"], q, rec["reduction"])
                if any("lossgrad's float32 sum" in w for w in r.warnings):
                    own.append(rows)
                    break
                got, want = np.float32(r.value), np.float32(rec["value"])
                if got != want and not (np.isnan(got) and np.isnan(want)):
                    apart.append(rows)
                    break
        print(f"q = {q:.4g}, {n} features: apart {apart or 'none'}; lossgrad's own sum {own or 'none'}", flush=True)


def _kernels(q: int, rows: int, n: int) -> list[str]:
    """The optimized LLVM IR of each row-sum kernel XLA compiles for JAX's jitted triplet (the mean's value and
    gradients, integral degree q, rows × n in float32), read from its dump (XLA_FLAGS=--xla_dump_to, set in
    _dumping before jax is imported)."""
    import jax
    import jax.numpy as jnp
    import optax

    shutil.rmtree(DUMP, ignore_errors=True)
    DUMP.mkdir(parents=True)

    def reduced(a, pos, neg):
        return jnp.mean(optax.losses.triplet_margin_loss(a, pos, neg, norm_degree=q, margin=1.0))
    shape = jax.ShapeDtypeStruct((rows, n), jnp.float32)
    jax.jit(jax.value_and_grad(reduced, argnums=(0, 1, 2))).lower(shape, shape, shape).compile()
    return [f.read_text() for f in DUMP.glob("*reduce*kernel_module.ir-with-opt.ll") if "window" not in f.name]


def _rows_at_a_time(q: int, rows: int, n: int) -> int:
    """How many rows at a time the vector loop of XLA's fused row sum of powers takes (1: the scalar loop alone):
    the width of the vector it stores, whose loads are n times as wide."""
    import re

    widths = [int(w) for text in _kernels(q, rows, n) for w in re.findall(r"store <(\d+) x float>", text)
              if f"load <{int(w) * n} x float>" in text]
    return max(widths, default=1)


def rows_read(degrees: list[int]) -> None:
    """Print, for each integral degree and row length of 2 to 8, the groups of 8 rows from which XLA's fused row sum
    takes a batch of 8g + 4 rows 8 at a time rather than 4 (lossgrad.lowp_xla_pow.POWER_ROWS; with AVX2 only,
    AVX2_FEW and AVX2_MORE), read from the IR over the batches XLA does not split between threads (row_sum_tasks),
    beside the table's number for this processor ("-": not vectorized; 2 for rows of 8 with AVX2, always 8 at a time
    from 16 rows)."""
    from lossgrad import cpu
    from lossgrad.lowp_xla_pow import avx2_power_rows, power_rows, products, row_sum_tasks

    table = avx2_power_rows if cpu.detected() == "avx2" else power_rows
    for q in degrees:
        row = {}
        for n in range(2, 9):
            groups = [g for g in range(2, (4095 // n - 4) // 8 + 1) if row_sum_tasks(q, 8 * g + 4, n) == 1]
            eight = next((g for g in groups if _rows_at_a_time(q, 8 * g + 4, n) == 8), "never")
            row[n] = (eight, table(q).get(n, "-"))
        print(q, products(q), "odd" if q % 2 else "even", row, flush=True)


def lanes_read(degrees: list[int]) -> None:
    """Print, for each integral degree, the row lengths of 9 to 32 whose fused sum XLA's code vectorizes along the
    row (the lanes of its vector reductions, read from the IR), in a batch of 3 rows and alone (ALONG_ROW_FROM)."""
    import re

    from lossgrad.lowp_xla_pow import products

    for q in degrees:
        for rows in (3, 1):
            lanes = {n: sorted({int(w) for text in _kernels(q, rows, n)
                                for w in re.findall(r"vector\.reduce\.fadd\.v(\d+)f32", text)}) for n in range(9, 33)}
            print(q, products(q), "alone" if rows == 1 else "batch",
                  " ".join(f"{n}:{','.join(map(str, w)) or '-'}" for n, w in lanes.items()), flush=True)


def _dumping() -> None:
    """Have XLA dump what it compiles into DUMP (before jax is imported)."""
    import os

    os.environ["XLA_FLAGS"] = f"--xla_dump_to={DUMP}"


DUMP = Path(tempfile.gettempdir()) / "lossgrad-xla-dump"


def split_records(rng) -> list[dict]:
    """Under jit in float32, kernels XLA splits between its two threads (lossgrad.lowp_xla.xla_tasks): single rows
    whose anchor-gradient kernel is split along the row, evenly or not (scalar_gradient; "split row"), and batches
    whose fused row sum of powers is split by rows, evenly or not ("split rows"); alike differences."""
    out = []
    for q, n in ((23, 1131), (23, 1130), (16, 2001), (16, 2002), (15, 4097), (15, 4098), (31, 1201), (17, 4097)):
        y, p, neg, name = similar(rng, 1, n)
        out.append(record(float(q), 1.0, True, "none", y, p, neg, f"split row, {name}"))
    for q, rows, n in ((23, 404, 6), (23, 405, 6), (23, 300, 8), (23, 301, 8), (31, 600, 4), (31, 601, 4),
                       (47, 900, 3), (47, 901, 3)):
        y, p, neg, name = similar(rng, rows, n)
        out.append(record(float(q), 1.0, True, ("mean", "none")[rows % 2], y, p, neg, f"split rows, {name}"))
    return out


# degrees past 24 under jit in float32, by the products and parity that key POWER_ROWS and the products of
# ALONG_ROW_FROM (11 to 13 from 16 features): (q, rows, features)
MANY_PRODUCT_SHAPES = ((25, 16, 5), (33, 36, 7), (47, 20, 3), (63, 100, 8), (95, 40, 9), (127, 3, 17), (127, 1, 18),
                       (160, 52, 7), (191, 3, 16), (200, 1, 1500), (250, 8, 4), (145, 28, 3), (114, 44, 8),
                       (201, 60, 7))


def many_product_records(rng) -> list[dict]:
    """MANY_PRODUCT_SHAPES under jit in float32, alike differences and differences near 1 (whose q-th powers stay
    finite)."""
    out = []
    for k, (q, rows, cols) in enumerate(MANY_PRODUCT_SHAPES):
        y, p, neg, name = similar(rng, rows, cols)
        out.append(record(float(q), 1.0, True, ("mean", "none")[k % 2], y, p, neg, f"many products, {name}"))
        a = rng.standard_normal((rows, cols))
        pos, neg = (a - 1 - rng.uniform(-1.5, 1.5, (rows, cols)) / q for _ in range(2))
        out.append(record(float(q), 1.0, True, ("none", "sum")[k % 2], pos.astype(np.float32), a.astype(np.float32),
                          neg.astype(np.float32), "many products, near 1"))
    return out


def near_one(rng, q: float, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(positives, anchors, negatives) in float32 whose differences lie within 1.5/q of 1: a high q's powers stay
    finite and its rounding shows."""
    a = rng.standard_normal((rows, cols))
    pos, neg = (a - 1 - rng.uniform(-1.5, 1.5, (rows, cols)) / q for _ in range(2))
    return pos.astype(np.float32), a.astype(np.float32), neg.astype(np.float32), "near 1"


# under jit: bfloat16 and float16 from 4096 elements, where YNNPACK's row sum keeps the products into each power's
# result in float32 in bfloat16 ((q, rows, features); single rows too, which were refused from q = 15); float32
# batches of 9 features (and 10, the control) whose ninth feature's gradient contracts the positive's product where
# d^(q−1) takes 13 products or more; and high degrees on other shapes in all three dtypes
HALF_YNN_SHAPES = ((7, 100, 50), (11, 82, 50), (15, 2048, 2), (31, 456, 9), (13, 41, 100), (23, 1, 5001),
                   (39, 1, 5001), (61, 1, 4100))
NINTH_SHAPES = ((192, 40, 9), (224, 7, 9), (256, 40, 9), (4096, 25, 9), (512, 600, 9), (192, 40, 10))
HIGH_SHAPES = ((192, 3, 17), (256, 20, 5), (512, 1, 30), (1024, 5, 12), (2048, 12, 3), (4096, 2, 16), (384, 9, 1))


def high_degree_records(rng) -> list[dict]:
    out = []
    for k, (q, rows, cols) in enumerate(HALF_YNN_SHAPES):
        for dtype in ("bfloat16", "float16"):
            pos, a, neg, name = near_one(rng, q, rows, cols)
            pos, a, neg = (_rounded(x, dtype) for x in (pos, a, neg))
            out.append(record(float(q), 1.0, True, ("mean", "none")[k % 2], pos, a, neg, f"half ynn, {name}", dtype))
    for k, (q, rows, cols) in enumerate(NINTH_SHAPES):
        pos, a, neg, name = near_one(rng, q, rows, cols)
        out.append(record(float(q), 1.0, True, ("mean", "none")[k % 2], pos, a, neg, f"ninth feature, {name}"))
    for k, (q, rows, cols) in enumerate(HIGH_SHAPES):
        for dtype in ("float32", "bfloat16", "float16"):
            pos, a, neg, name = near_one(rng, q, rows, cols)
            pos, a, neg = (_rounded(x, dtype) for x in (pos, a, neg))
            out.append(record(float(q), 1.0, True, ("mean", "sum", "none")[k % 3], pos, a, neg,
                              f"high degree, {name}", dtype))
    return out


# under jit from 4096 rows in bfloat16 (YNNPACK's row sums take in the addition of eps, and for q = 1 the hinge's
# difference and margin, and drop bfloat16's roundings between them; float16 keeps them), and float32's q = ½ from
# 4096 elements (YNNPACK's powf, not LLVM's √): (q, rows, features, dtype)
YNN_ROW_SHAPES = ((3, 4096, 2, "bfloat16"), (1, 4096, 2, "bfloat16"), (3, 4096, 2, "float16"),
                  (0.5, 2048, 2, "float32"))


def ynn_row_records(rng) -> list[dict]:
    out = []
    for q, rows, cols, dtype in YNN_ROW_SHAPES:
        pos, a, neg, name = similar(rng, rows, cols)
        pos, a, neg = (_rounded(x, dtype) for x in (pos, a, neg))
        out.append(record(float(q), 1.0, True, "mean", pos, a, neg, f"ynn rows, {name}", dtype))
    return out


# bfloat16 under jit, an integral q ≥ 3 over 2 to 32 features (lowp_xla_pow.half_sum): (q, rows, features), q's
# set bits 2 (3), 3 (7), 5 (31, 47), 6 (95) and 7 (127), in a batch and alone, in order and in each kind of lanes
HALF_FUSED_SHAPES = ((95.0, 24, 28), (95.0, 24, 30), (95.0, 1, 20), (95.0, 3, 32), (3.0, 24, 31), (3.0, 1, 16),
                     (7.0, 2, 16), (7.0, 1, 24), (31.0, 5, 8), (31.0, 2, 22), (127.0, 1, 32), (47.0, 2, 32))


def half_fused_records(rng) -> list[dict]:
    """"half fused": bfloat16 under jit, where XLA contracts each power's last product into the float32 row sum
    and adds the rows in lanes by q's set bits; the failing draws of the kind "random, some differences negative",
    and differences whose powers lie near float32's overflow (_near_overflow), each drawn until lossgrad's result
    changes with the powers rounded and added in order (lossgrad only places them: JAX's results are recorded)."""
    from lossgrad import lowp_xla_pow

    out = []
    for k, (q, rows, n) in enumerate(HALF_FUSED_SHAPES):
        def draw(rng, q=q, rows=rows, n=n, k=k):
            if k < 2:
                return tuple(_rounded(x, "bfloat16") for x in triplets(rng, q, rows, n)[1][:3])
            return _near_overflow(rng, q, rows, n)

        def run(pos, a, neg, q=q):
            return _results(lossgrad.evaluate("triplet", *(np.asarray(x, dtype=np.float64) for x in (pos, a)),
                                              convention="optax", dtype="bfloat16", reduction="none", jit=True,
                                              negative=np.asarray(neg, dtype=np.float64), margin=1.0,
                                              norm_degree=q))
        pos, a, neg = _apart(rng, draw, run, lambda: undone(lowp_xla_pow, "half_fused", lambda *_: False))
        out.append(record(q, 1.0, True, ("none", "mean", "sum")[k % 3], pos, a, neg,
                          "half fused, " + ("random, some differences negative" if k < 2 else "near overflow"),
                          "bfloat16"))
    return out


def _near_overflow(rng, q: float, rows: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Differences whose q-th powers lie near float32's overflow, mixed with zeros and values near 1, signs at
    random, the anchors 0 (so that the differences are exact), in bfloat16."""
    big = 1.0e38 ** (1.0 / q)

    def differences() -> np.ndarray:
        kind = rng.integers(0, 4, (rows, n))
        above = big * 2.0 ** (rng.uniform(-0.6, 1.2, (rows, n)) * 8 / q)
        scale = np.select([kind == 0, kind == 1, kind == 2], [0.0, rng.uniform(0.2, 1.2, (rows, n)), above],
                          big * 2.0 ** (rng.uniform(-3, 0.5, (rows, n)) / q))
        return _rounded(scale * np.where(rng.random((rows, n)) < 0.5, -1.0, 1.0), "bfloat16")
    a = np.zeros((rows, n))
    return _rounded(a - differences(), "bfloat16"), a, _rounded(a - differences(), "bfloat16")


def main() -> None:
    from make_golden import jax_versions

    measurements = {"--vector-rows": vector_rows, "--loss-lanes": loss_lanes, "--along-row": along_row,
                    "--half-along-row": half_along_row}
    if len(sys.argv) == 2 and sys.argv[1] in measurements:
        measurements[sys.argv[1]]()
        return
    readings = {"--rows-read": rows_read, "--lanes-read": lanes_read}
    if len(sys.argv) > 2 and sys.argv[1] in readings:
        _dumping()
        readings[sys.argv[1]]([int(q) for q in sys.argv[2:]])
        return

    recs = (records(np.random.default_rng(20261205)) + half_records(np.random.default_rng(20261206))
            + more_records(np.random.default_rng(20261203)) + single_rows(np.random.default_rng(20261212))
            + along_rows(np.random.default_rng(20261213)) + product_records(np.random.default_rng(20261215))
            + single_root_rows(np.random.default_rng(20261216)) + loss_lane_records(np.random.default_rng(20261217))
            + root_lane_records(np.random.default_rng(20261218)) + paired_lane_records(np.random.default_rng(20261219))
            + half_along_rows(np.random.default_rng(20261220)) + more_product_records(np.random.default_rng(20261221))
            + split_records(np.random.default_rng(20261222)) + many_product_records(np.random.default_rng(20261223))
            + high_degree_records(np.random.default_rng(20261224)) + ynn_row_records(np.random.default_rng(20261226))
            + half_fused_records(np.random.default_rng(20261237)))
    OUT.write_text(json.dumps({"versions": jax_versions(), "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
