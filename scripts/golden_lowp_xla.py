"""Record JAX's CPU results for optax's losses in float32 (and the half dtypes lossgrad reproduces) for
tests/golden/lowp_xla.json (read by tests/test_lowp_xla.py).

Each record: a loss, dtype, jit (jax.jit around the loss and around jax.value_and_grad, or each operation on its
own), reduction (jnp.mean, jnp.sum; none: the per-example losses and the gradient of their sum) and inputs
already representable in the dtype, and JAX's per-example losses, reduced value and gradient, every number written
as the shortest decimal that reads back to the same float32. The CPU's instruction-set flags are recorded: XLA's
kernels are compiled for the machine they run on (FMA contraction needs FMA; YNNPACK's sums take 16 lanes with
AVX-512).

    python3 scripts/golden_lowp_xla.py            # tests/golden/lowp_xla.json
    python3 scripts/golden_lowp_xla.py --wide     # tests/golden/lowp_xla_wide.json: reduced values over 2 or 3
                                                  # rows of more than 32,768 outputs (WIDE), inputs by seed, the
                                                  # rest by SHA-256 digest
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla.json"
DTYPES = ("float32", "float16", "bfloat16")


def _np_dtype(dtype: str):
    import ml_dtypes
    return {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]


def _rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).astype(_np_dtype(dtype)).astype(np.float64)


def _short(a) -> list:
    flat = np.asarray(a, dtype=np.float32)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


def _per_example(loss: str, y: np.ndarray, labels: str | None, dtype: str):
    import jax.numpy as jnp
    import optax

    kind = _np_dtype(dtype)
    if loss == "ce" and labels == "index":
        target = jnp.asarray(y[:, 0].astype(np.int32))
        return lambda z: optax.losses.softmax_cross_entropy_with_integer_labels(z, target)
    t = jnp.asarray(y.astype(kind))
    if loss == "ce":
        return lambda z: optax.losses.softmax_cross_entropy(z, t)
    if loss == "bce":
        return lambda z: optax.losses.sigmoid_binary_cross_entropy(z, t)
    if loss in ("kl", "kl-log-input"):
        log_q = (lambda z: z) if loss == "kl-log-input" else jnp.log
        return lambda z: optax.losses.kl_divergence(log_q(z), t)
    if loss in ("kl-log-target", "kl-log-both"):
        log_q = (lambda z: z) if loss == "kl-log-both" else jnp.log
        return lambda z: optax.losses.kl_divergence_with_log_targets(log_q(z), t)
    return lambda z: optax.losses.squared_error(z, t)


def _record(loss: str, dtype: str, jit: bool, reduction: str, y: np.ndarray, p: np.ndarray,
            labels: str | None = None, name: str | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    per = _per_example(loss, y, labels, dtype)

    def reduced(z):
        losses = per(z)
        return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
    # the losses as a training step has them: beside the value and gradient, from the same computation
    both = jax.value_and_grad(reduced, has_aux=True)
    if jit:
        both = jax.jit(both)
    z = jnp.asarray(p.astype(_np_dtype(dtype)))
    (value, losses), grad = both(z)
    out = {"loss": loss.split("-")[0], "dtype": dtype, "jit": jit, "reduction": reduction, "labels": labels,
           "target": _short(y), "pred": _short(p), "losses": _short(np.asarray(losses, dtype=np.float32)),
           "value": None if reduction == "none" else str(np.float32(value)),
           "grad": _short(np.asarray(grad, dtype=np.float32))}
    flags = {"log_input": loss in ("kl-log-input", "kl-log-both"), "log_target": loss in ("kl-log-target",
                                                                                         "kl-log-both")}
    return out | ({"name": name} if name else {}) | (flags if loss.startswith("kl") else {})


def _logits(rng, rows: int, classes: int, dtype: str) -> np.ndarray:
    scale = rng.choice([0.1, 1.0, 5.0, 20.0, 300.0], (rows, 1))
    return _rounded(rng.standard_normal((rows, classes)) * scale, dtype)


def _ce(rng, dtype: str, jit: bool, reduction: str) -> list[dict]:
    out = []
    # the wide and long batches (YNNPACK's sums from 4096 elements) for the mean only, to keep the file small
    big = ((1000, 2), *(((10, 500),) if jit else ())) if reduction == "mean" and dtype == "float32" else ()
    for classes, rows in ((1, 4), (3, 16), (10, 64), (33, 8), (100, 8), *big):
        z = _logits(rng, rows, classes, dtype)
        y = rng.integers(0, classes, rows).astype(np.float64)[:, None]
        out.append(_record("ce", dtype, jit, reduction, y, z, "index"))
        if not jit and dtype == "float32":
            soft = rng.random((rows, classes))
            soft[: rows // 2] = np.eye(classes)[rng.integers(0, classes, rows // 2)] if rows > 1 else soft[:0]
            out.append(_record("ce", dtype, jit, reduction, _rounded(soft / soft.sum(1, keepdims=True), dtype), z,
                               "onehot"))
    # saturated rows: logits far apart (the losses of the far classes are their whole distance), and equal ones
    z = _rounded(np.array([[1e4, -1e4, 0.0], [88.0, -88.0, 0.0], [-100.0, -100.0, -100.0], [30.0, 30.5, -30.0]]),
                 dtype)
    out.append(_record("ce", dtype, jit, reduction, np.array([[1.0], [1.0], [2.0], [0.0]]), z, "index",
                       name="saturated"))
    # 115 equal logits: log 115 = 4.7449 in float32, 4.75 in bfloat16 (steps of 1/32 in [4, 8))
    out.append(_record("ce", dtype, jit, reduction, np.array([[0.0], [7.0]]), np.zeros((2, 115)), "index",
                       name="equal-115"))
    return out


def _ce_rows_half(rng, jit: bool) -> list[dict]:
    """softmax_cross_entropy of probability rows in float16 and bfloat16, op by op or under jit: soft and one-hot
    rows, rows of more than 32 classes (the backward's row sums in windows of 32) and a batch of 4096 logits or
    more (not bfloat16 under jit, which lossgrad refuses there)."""
    out = []
    for dtype in ("float16", "bfloat16"):
        big = ((64, 70),) if not (jit and dtype == "bfloat16") else ()
        for reduction in ("none", "sum", "mean"):
            for rows, classes in ((1, 2), (4, 3), (16, 10), (8, 33), (5, 100), *(big if reduction == "mean" else ())):
                out.append(_soft_record(rng, dtype, jit, reduction, rows, classes))
    return out


def _ce_rows_f32_jit(rng) -> list[dict]:
    """softmax_cross_entropy of probability rows under jit in float32: rows fused into multiply-adds up to 32 × 32
    (the value's loop left scalar or vectorized by LLVM), larger batches' products stored, and a row count of 3,
    5, 6 or 7, whose log XLA hands to the C library."""
    shapes = ((1, 3), (3, 5), (5, 9), (4, 5), (4, 20), (8, 3), (16, 7), (20, 30), (32, 32), (7, 33), (40, 3),
              (50, 50), (64, 70))
    return _soft_rows_f32_jit(rng, shapes, ("none", "sum", "mean"))


def _soft_record(rng, dtype: str, jit: bool, reduction: str, rows: int, classes: int) -> dict:
    """A record of probability rows (the first half one-hot, the rest soft, sharpened one time in two) and logits."""
    z = _logits(rng, rows, classes, dtype)
    soft = rng.random((rows, classes)) ** rng.choice([1.0, 8.0])
    hot = rng.integers(0, classes, rows // 2)
    soft[: rows // 2] = 0.0
    soft[np.arange(rows // 2), hot] = 1.0  # (the rows of an identity matrix, without building it)
    return _record("ce", dtype, jit, reduction, _rounded(soft / soft.sum(1, keepdims=True), dtype), z, "onehot")


def _soft_rows_f32_jit(rng, shapes, reductions) -> list[dict]:
    """Probability rows (the first half one-hot) under jit in float32, each shape with each reduction."""
    return [_soft_record(rng, "float32", True, reduction, rows, classes)
            for rows, classes in shapes for reduction in reductions]


def _ce_index_small(rng) -> list[dict]:
    """Class indexes op by op over fewer than 16 rows and logits: there XLA hands a rest of 3, 5, 6 or 7 elements
    of e^x and log to the C library's expf and logf (every dtype; each rows × classes size of that kind)."""
    out = []
    for dtype in DTYPES:
        for rows, classes in ((3, 1), (5, 1), (6, 2), (7, 2), (11, 1), (13, 1), (14, 1), (15, 1), (3, 5), (7, 2)):
            for _ in range(3):
                z = _logits(rng, rows, classes, dtype)
                y = rng.integers(0, classes, rows).astype(np.float64)[:, None]
                out.append(_record("ce", dtype, False, str(rng.choice(["none", "sum", "mean"])), y, z, "index"))
    return out


def _elementwise(rng, dtype: str, jit: bool, reduction: str) -> list[dict]:
    out = []
    for n in (256, 1, *((4000,) if reduction == "mean" and dtype == "float32" else ())):
        z = _rounded(rng.standard_normal(n) * rng.choice([0.1, 1.0, 5.0, 30.0, 200.0], n), dtype)[:, None]
        y = rng.random(n)
        y[: n // 4] = np.round(y[: n // 4])
        y = _rounded(y, dtype)[:, None]
        out.append(_record("bce", dtype, jit, reduction, y, z))
        if n < 4000:  # (mse's long sum is bce's: once is enough)
            out.append(_record("mse", dtype, jit, reduction, y, z))
    z = _rounded(np.array([[-1e4], [-90.0], [-17.0], [0.0], [17.0], [90.0], [1e4], [1e-3]]), dtype)
    y = _rounded(np.array([[1.0], [0.5], [0.0], [1.0], [0.25], [1.0], [0.0], [0.5]]), dtype)
    out.append(_record("bce", dtype, jit, reduction, y, z, name="saturated"))
    if not jit:  # (kl op by op; under jit in the half dtypes: _kl_half_jit)
        out += _kl(rng, dtype, jit, reduction, 16, 10)
    return out


def _kl(rng, dtype: str, jit: bool, reduction: str, rows: int, classes: int) -> list[dict]:
    """kl's four forms over rows of probabilities, the first class's target 0."""
    out = []
    q = rng.random((rows, classes))
    q /= q.sum(axis=1, keepdims=True)
    t = rng.random((rows, classes))
    t /= t.sum(axis=1, keepdims=True)
    t[:, 0] = 0 if classes > 1 else t[:, 0]
    for kind in ("kl", "kl-log-input", "kl-log-target", "kl-log-both"):
        pred = _rounded(np.log(q) if kind in ("kl-log-input", "kl-log-both") else q, dtype)
        target = _rounded(np.log(np.where(t == 0, 1e-9, t)) if kind in ("kl-log-target", "kl-log-both") else t,
                          dtype)
        out.append(_record(kind, dtype, jit, reduction, target, pred))
    return out


def _kl_half_jit(rng) -> list[dict]:
    """kl under jit in float16 and bfloat16 (float32: _kl_f32_jit): rows of 1, 10 and 40
    classes, and for float16 a batch of 4096 elements or more (bfloat16 is refused there)."""
    out = []
    for dtype in ("float16", "bfloat16"):
        for reduction in ("none", "sum", "mean"):
            big = ((64, 70),) if dtype == "float16" and reduction == "mean" else ()
            for rows, classes in ((5, 1), (16, 10), (3, 40), *big):
                out += _kl(rng, dtype, True, reduction, rows, classes)
    return out


# kl under jit in float32: one chain of multiply-adds, rows LLVM vectorizes (4 or 8 rows, the leading multiples of 4
# from 16, of 5 to 8 classes), the value's lanes (2, 4 or 8, and 2 for 18 or 19 rows of 7 or 8), past 32 rows or
# classes (stored products in XLA's windows), from 4096 elements (YNNPACK's row sums; the value lossgrad's own)
KL_F32_SHAPES = ((1, 1), (5, 1), (2, 6), (4, 3), (4, 7), (8, 2), (8, 7), (16, 10), (17, 5), (18, 7), (19, 8),
                 (20, 3), (21, 6), (28, 2), (32, 32), (3, 40), (33, 8), (10, 50), (64, 70))


def _kl_f32_jit(rng) -> list[dict]:
    """kl's four forms under jit in float32, each shape of KL_F32_SHAPES with one reduction in turn."""
    out = []
    for i, (rows, classes) in enumerate(KL_F32_SHAPES):
        out += _kl(rng, "float32", True, ("none", "sum", "mean")[i % 3], rows, classes)
    return out


def _kl_f32_jit_long(rng) -> list[dict]:
    """kl's four forms under jit in float32 from 4096 elements with a reduced value: YNNPACK's sum of the whole
    array of products, in slices of whole rows."""
    out = []
    for rows, classes, reduction in ((65, 64, "sum"), (9, 500, "mean")):
        out += _kl(rng, "float32", True, reduction, rows, classes)
    return out


def _single_rows_f32_jit(rng) -> list[dict]:
    """A single row of 4096 logits or more under jit in float32, which YNNPACK sums as a dot of its own (blocks of
    8192, 4 lanes, the last K mod 4 apart): probability rows, and kl's four forms (with probabilities q, YNNPACK's
    own log q inside the dot)."""
    out = [_soft_record(rng, "float32", True, reduction, 1, classes)
           for classes, reduction in ((5003, "mean"), (17002, "none"))]
    return out + _kl(rng, "float32", True, "sum", 1, 9001)


def _kl_subnormal_q(rng) -> list[dict]:
    """kl under jit in float32 with subnormal predicted probabilities (XLA reads them as 0: the gradient −t/q is
    −∞ there), in a small batch and a single row of YNNPACK's dot."""
    out = []
    for rows, classes in ((3, 5), (1, 4500)):
        q = rng.random((rows, classes))
        q /= q.sum(axis=1, keepdims=True)
        q[:, 1], q[0, 2] = 3e-39, 1e-45
        t = rng.random((rows, classes))
        t /= t.sum(axis=1, keepdims=True)
        for kind in ("kl", "kl-log-target"):
            target = _rounded(np.log(t) if kind == "kl-log-target" else t, "float32")
            out.append(_record(kind, "float32", True, "mean", target, _rounded(q, "float32")))
    return out


def _long_folded_rows(rng) -> list[dict]:
    """Probability rows of more than 1024 classes under jit: XLA folds the targets' row sums at compile time in
    windows of 32 and then all the windows' sums at once (float32 and float16: in float64, rounded once; bfloat16:
    in order, each addition stored), in the three dtypes; bfloat16 from 4096 logits too."""
    shapes = (("float32", 1, 2670, "mean"), ("float32", 2, 1500, "sum"), ("float16", 3, 1884, "mean"),
              ("bfloat16", 4, 1025, "mean"), ("bfloat16", 3, 2000, "sum"), ("bfloat16", 2, 5000, "none"))
    return [_soft_record(rng, dtype, True, reduction, rows, classes) for dtype, rows, classes, reduction in shapes]


def _ce_value_lanes(rng) -> list[dict]:
    """The value of probability rows under jit in float32 where LLVM splits the rows into lanes: 4 rows of 9 to 12
    classes (4 lanes), 8 lanes beyond 8 classes (8 rows, 16 to 32 rows), 4 for 20 to 23 rows of 2 to 8, a
    scalar rest of rows."""
    return _soft_rows_f32_jit(rng, ((4, 10), (8, 20), (24, 12), (21, 6), (19, 8), (30, 25)), ("sum", "mean"))


def _kl_bf16_jit_long(rng) -> list[dict]:
    """kl's four forms under jit in bfloat16 from 4096 elements, where YNNPACK sums the float32 products."""
    out = []
    for i, (rows, classes) in enumerate(((64, 70), (50, 100), (9, 600))):
        out += _kl(rng, "bfloat16", True, ("none", "sum", "mean")[i], rows, classes)
    return out


def _ce_rows_bf16_jit_long(rng) -> list[dict]:
    """softmax_cross_entropy of probability rows under jit in bfloat16 from 4096 logits, where YNNPACK sums the
    float32 products of the targets and log_softmax (kept in float32 by the loop that feeds it)."""
    out = []
    for i, (rows, classes) in enumerate(((64, 70), (9, 600), (300, 20))):
        for reduction in (("none", "sum", "mean")[i], "mean"):
            out.append(_soft_record(rng, "bfloat16", True, reduction, rows, classes))
    return out


def _ce_three_classes(rng) -> list[dict]:
    """Probability rows of 3 classes under jit in float32 (soft targets throughout, which set the last class's
    gradient apart): the rows LLVM vectorizes, 4 or 8 at a time, and the scalar rest (lossgrad.lowp_xla's
    THREE_CLASS_ROWS)."""
    out = []
    for rows, reduction in ((3, "sum"), (8, "mean"), (19, "none"), (76, "sum"), (101, "mean")):
        z = _logits(rng, rows, 3, "float32")
        soft = rng.random((rows, 3))
        out.append(_record("ce", "float32", True, reduction, _rounded(soft / soft.sum(1, keepdims=True), "float32"),
                           z, "onehot"))
    return out


def _ce_rows_ynn_rows(rng) -> list[dict]:
    """Probability rows from 4096 rows ("ynn rows"): under jit in bfloat16, where XLA hands z − max, the sums of
    e^(z − max), their log and the products' row sums to YNNPACK's fusions (which drop bfloat16's roundings), and
    op by op in float32, where YNNPACK forms the gradient's product and sum apart."""
    out = []
    for rows, classes, reduction in ((4096, 2, "mean"), (5000, 3, "none"), (4100, 5, "sum")):
        out.append(_soft_record(rng, "bfloat16", True, reduction, rows, classes) | {"name": "ynn rows"})
    out.append(_soft_record(rng, "float32", False, "mean", 4096, 3) | {"name": "ynn rows"})
    return out


def _along_row_apart(rng, kind: str, classes: int, wanted: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of kl in bfloat16 (the form `kind`) whose sums of products in class order and in the lanes LLVM
    vectorizes them into (lossgrad.lowp_xla.ROW_PLANS) round to different bfloat16 numbers: lossgrad's emulation
    only places the inputs, what is recorded is JAX's. Random rows, sharpened one time in two, kept where they
    differ (a few in ten thousand)."""
    import ml_dtypes

    import lossgrad
    from lossgrad import lowp_xla

    log_input, log_target = kind in ("kl-log-input", "kl-log-both"), kind in ("kl-log-target", "kl-log-both")
    seen: dict = {}
    own = lowp_xla._products_rows

    def capture(a, b, r, fused, along=(33, 33), bf16=False):
        seen["ab"] = a, b
        return own(a, b, r, fused, along, bf16)

    def bf16(x):
        return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
    rows = 4095 // classes
    ys, ps = [], []
    while sum(len(y) for y in ys) < wanted:
        q = rng.random((rows, classes))
        q /= q.sum(axis=1, keepdims=True)
        t = rng.random((rows, classes)) ** rng.choice([1.0, 8.0])
        t /= t.sum(axis=1, keepdims=True)
        t[:, 0] = 0
        pred = _rounded(np.log(q) if log_input else q, "bfloat16")
        target = _rounded(np.log(np.where(t == 0, 1e-9, t)) if log_target else t, "bfloat16")
        lowp_xla._products_rows = capture
        try:
            lossgrad.evaluate("kl", target, pred, convention="optax", dtype="bfloat16", reduction="none",
                              log_input=log_input, log_target=log_target)
        finally:
            lowp_xla._products_rows = own
        a, b = seen["ab"]
        plan = lowp_xla.ROW_PLANS[max(k for k in lowp_xla.ROW_PLANS if k <= classes)]
        apart = bf16(lowp_xla._windows(lowp_xla.ftz(a * b))) != bf16(lowp_xla.vector_fma_sum(a, b, plan))
        ys.append(target[apart])
        ps.append(pred[apart])
    return np.concatenate(ys)[:wanted], np.concatenate(ps)[:wanted]


# kl under jit in bfloat16 whose row sums LLVM vectorizes along the row (lossgrad.lowp_xla.ALONG_ROW_CLASSES):
# (form, classes, rows; a batch, or one row alone)
ALONG_ROW_KL = (("kl-log-target", 16, 4), ("kl-log-target", 22, 3), ("kl-log-both", 19, 3), ("kl", 24, 2),
                ("kl-log-both", 28, 2), ("kl-log-target", 32, 3), ("kl-log-both", 19, 1), ("kl-log-both", 20, 1),
                ("kl-log-target", 17, 1))


def _kl_bf16_along_rows(rng) -> list[dict]:
    """ALONG_ROW_KL's records ("along the row"): rows whose sums in class order and in LLVM's lanes round apart."""
    out = []
    for kind, classes, rows in ALONG_ROW_KL:
        y, p = _along_row_apart(rng, kind, classes, rows)
        out.append(_record(kind, "bfloat16", True, "none", y, p, name="along the row"))
    return out


# probability rows' ce under jit in bfloat16 whose row sums LLVM vectorizes along the row from 20 classes in a
# batch and from 22 alone (lossgrad.lowp_xla.ALONG_ROW_CLASSES["ce"]): (classes, rows, reduction); the last two
# rows alone, of 21 classes (which JAX adds in class order) and of 22
ALONG_ROW_CE = ((20, 3, "none"), (23, 2, "none"), (24, 3, "none"), (25, 3, "mean"), (28, 3, "none"),
                (31, 2, "none"), (32, 2, "sum"), (21, 1, "none"), (22, 1, "none"))


def _ce_along_row_apart(rng, classes: int, wanted: int) -> tuple[np.ndarray, np.ndarray]:
    """Probability rows of ce in bfloat16 whose losses in class order and in LLVM's lanes round apart (about one
    row in 30,000): drawn 100,000 at a time with targets spread over 16 binades, each row's loss computed by
    lossgrad as in a batch with YNNPACK's threshold lifted (a row's loss is its own), kept where the two rules
    differ. lossgrad's emulation only places the inputs; what is recorded is JAX's."""
    import lossgrad
    from lossgrad import lowp_xla

    def losses(y, z):
        return lossgrad.ce(y, z, from_logits=True, convention="optax", dtype="bfloat16", reduction="none",
                           jit=True).losses
    class_order = {**lowp_xla.ALONG_ROW_CLASSES, "ce": (33, 33)}
    ys, zs = [], []
    while sum(len(y) for y in ys) < wanted:
        z = _logits(rng, 100_000, classes, "bfloat16")
        t = 2.0 ** -rng.uniform(0, 16, z.shape)
        y = _rounded(t / t.sum(axis=1, keepdims=True), "bfloat16")
        with undone(lowp_xla, "YNN_FROM", 10**12):
            new = losses(y, z)
            with undone(lowp_xla, "ALONG_ROW_CLASSES", class_order):
                apart = new != losses(y, z)
        ys.append(y[apart])
        zs.append(z[apart])
    return np.concatenate(ys)[:wanted], np.concatenate(zs)[:wanted]


def _ce_bf16_along_rows(rng) -> list[dict]:
    """ALONG_ROW_CE's records ("ce along the row")."""
    out = []
    for classes, rows, reduction in ALONG_ROW_CE:
        y, z = _ce_along_row_apart(rng, classes, max(rows, 2))
        out.append(_record("ce", "bfloat16", True, reduction, y[:rows], z[:rows], "onehot", name="ce along the row"))
    return out


def _kl_folded_log(rng) -> list[dict]:
    """kl under jit with targets whose log XLA folds at compile time (lossgrad.lowp_xla.folded_log), "folded log":
    float32 targets below 0.1 drawn where glibc's logf and the correctly rounded log differ, without a 0 (the
    folded log correctly rounded) and with a 0 in each row (glibc's), and float16's 0.00534, whose log rounded
    through float32 is an ulp from the log rounded once."""
    from lossgrad import libm

    pool = (rng.random(400_000) * 0.1).astype(np.float32)
    pool = pool[libm.logf(pool) != np.log(pool.astype(np.float64)).astype(np.float32)]
    out = []
    for zeros, reduction in ((False, "none"), (True, "none"), (False, "mean")):
        t = rng.choice(pool, (6, 5)).astype(np.float64)
        if zeros:
            t[:, 0] = 0.0
        # predictions near the targets: log t − log q cancels, and log t's last bit shows in each loss
        q = _rounded(t * (1 + 0.01 * rng.standard_normal(t.shape)) + 1e-3 * (t == 0), "float32")
        out.append(_record("kl", "float32", True, reduction, t, q, name="folded log"))
    t, q = _rounded(np.array([[0.00534, 0.99466]]), "float16"), _rounded(np.array([[0.01, 0.99]]), "float16")
    out.append(_record("kl", "float16", True, "mean", t, q, name="folded log"))
    return out


def _kl_subnormal_targets(rng) -> list[dict]:
    """kl under jit in float32 with subnormal targets (e^y subnormal with log targets), "subnormal targets": the
    gradient's −t·c is folded into a constant that keeps them (with log-probabilities it is the gradient), while
    the fused loops and the division by q read them as 0 (DAZ)."""
    out = []
    for i, kind in enumerate(("kl", "kl-log-input", "kl-log-target", "kl-log-both") * 2):
        t = rng.dirichlet(np.ones(5), 3)
        if kind in ("kl-log-target", "kl-log-both"):
            t = np.log(t)
            t[0, 1], t[1, 3], t[2, 0] = -88.5, -95.0, -103.0
        else:
            t[0, 1], t[1, 3], t[2, 0] = 3e-39, 1e-45, 1e-40
        q = rng.dirichlet(np.ones(5), 3)
        pred = _rounded(np.log(q) if kind in ("kl-log-input", "kl-log-both") else q, "float32")
        out.append(_record(kind, "float32", True, ("sum", "mean", "none")[i % 3], _rounded(t, "float32"), pred,
                           name="subnormal targets"))
    return out


def _kl_half_along_row(rng) -> list[dict]:
    """float16 kl on probabilities under jit, batches of rows of 30, 31 and 32 classes (lowp_xla.HALF_ALONG_ROW),
    "half along the row", and two rows alone, which XLA adds in class order: each row placed where lossgrad's loss
    in LLVM's lanes and in class order round apart (_half_row_apart); what is recorded is JAX's."""
    out = []
    for i, (kind, n) in enumerate(itertools.product(("kl", "kl-log-target"), (30, 31, 32))):
        zero = kind == "kl-log-target" or i % 2 == 0  # (log targets: e^y of a 0's log 10⁻⁹ makes sums inexact)
        rows = [_half_row_apart(rng, kind, n, zero) for _ in range(4)]
        y, p = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        out.append(_record(kind, "float16", True, ("none", "sum", "mean")[i % 3], y, p, name="half along the row"))
    for kind, n in (("kl", 30), ("kl-log-target", 32)):
        y, p = _half_row_apart(rng, kind, n, True)
        out.append(_record(kind, "float16", True, "none", y[None], p[None], name="half along the row"))
    return out


def _half_row_apart(rng, kind: str, n: int, zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """One row of n classes whose float16 kl under jit in a small batch changes when lossgrad adds it in class
    order (1 random row in 12,000 to 100,000 is): rows with targets over many binades (tiny products, whose float32
    sums are inexact) and a first target of 0 if `zero`; in one whose float32 sums in LLVM's lanes and in class
    order differ, one class's prediction tried at every float16 probability (lossgrad's products,
    lowp_xla.kl_products), one value that puts the two apart in float16 taken."""
    from lossgrad import lowp_xla

    r16, log_target = lowp_xla.rounder(np.float16), kind == "kl-log-target"
    plan = lowp_xla.HALF_ALONG_ROW[n]
    halves = np.arange(1, 0x3C01, dtype=np.uint16).view(np.float16).astype(np.float32)  # (every float16 in (0, 1])

    def sums(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The products' sums in LLVM's lanes and in class order (XLA's windows of a batch below 4096 elements)."""
        terms = r16(a * b)
        return lowp_xla.vector_add_sum(terms, plan, lowp_xla.ftz), lowp_xla._windows(terms)

    for _ in range(2000):
        t = rng.random(n) ** rng.choice([6.0, 8.0, 12.0])
        t /= t.sum()
        t[0] = 0 if zero else t[0]
        q = rng.random(n) ** rng.choice([1.0, 2.0])
        y = _rounded(np.log(np.where(t == 0, 1e-9, t)) if log_target else t, "float16").astype(np.float32)
        p = _rounded(q / q.sum(), "float16").astype(np.float32)
        lanes, in_order = sums(*lowp_xla.kl_products(y[None], p[None], False, log_target, r16, np.float16, True))
        if lanes[0] == in_order[0]:
            continue
        for j in rng.permutation(np.arange(1, n))[:4]:
            ps = np.repeat(p[None], len(halves), axis=0)
            ps[:, j] = halves
            lanes, in_order = sums(*lowp_xla.kl_products(np.repeat(y[None], len(halves), axis=0), ps, False,
                                                         log_target, r16, np.float16, True))
            apart = np.nonzero(np.isfinite(lanes) & (r16(lanes) != r16(in_order)))[0]
            if len(apart):
                return y.astype(np.float64), ps[rng.choice(apart)].astype(np.float64)
    raise RuntimeError("no row found apart")


@contextlib.contextmanager
def undone(module, name: str, value):
    """lossgrad with `module.name` set to `value` (one of its rules undone), restored after."""
    own = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, own)


def float32_order():
    """lossgrad with its sums of bfloat16 values taken in float32's order (one element a lane: the pairs of
    YNNPACK's bfloat16 kernel undone), the rule before them: only to place inputs where the two differ."""
    from lossgrad import lowp_xla

    own = lowp_xla._row_lanes
    return undone(lowp_xla, "_row_lanes", lambda x, bf16=False: own(x))


def _apart(rng, draw, run, old) -> tuple:
    """Inputs drawn until lossgrad's results for them (`run`) change under `old` (a context with a rule undone):
    lossgrad's emulation only places the inputs, what is recorded is JAX's."""
    for _ in range(400):
        inputs = draw(rng)
        new = run(*inputs)
        with old():
            before = run(*inputs)
        if any(not np.array_equal(a, b, equal_nan=True) for a, b in zip(new, before, strict=True)):
            return inputs
    raise RuntimeError("no inputs found apart")


def _optax(loss: str, jit: bool, reduction: str, **options):
    """lossgrad's optax results in bfloat16 (losses, gradient, value) as a function of (targets, predictions)."""
    import lossgrad

    def run(y, p):
        res = lossgrad.evaluate(loss, y, p, convention="optax", dtype="bfloat16", jit=jit, reduction=reduction,
                                **options)
        return res.losses, res.grad, np.array([np.nan if res.value is None else res.value])
    return run


def _grid(rng, shape, step: float = 1 / 8) -> np.ndarray:
    """Values on a grid of `step` in [−3, 3], one in ten a tiny one: their sums in bfloat16 often lie on a tie,
    where the order of the additions shows."""
    v = rng.integers(-int(3 / step), int(3 / step) + 1, shape) * step
    return _rounded(np.where(rng.random(shape) < 0.1, v * 1e-6 + 1e-7, v), "bfloat16")


def _kl_inputs(rng, kind: str, rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """_kl's draw of one form: probability rows (log-probabilities with `--log-input`), targets with a first class
    of 0 (log 10⁻⁹ with `--log-target`)."""
    q = rng.random((rows, classes))
    q /= q.sum(axis=1, keepdims=True)
    t = rng.random((rows, classes))
    t /= t.sum(axis=1, keepdims=True)
    t[:, 0] = 0
    pred = _rounded(np.log(q) if kind in ("kl-log-input", "kl-log-both") else q, "bfloat16")
    target = _rounded(np.log(np.where(t == 0, 1e-9, t)) if kind in ("kl-log-target", "kl-log-both") else t,
                      "bfloat16")
    return target, pred


def _kl_options(kind: str) -> dict:
    return {"log_input": kind in ("kl-log-input", "kl-log-both"),
            "log_target": kind in ("kl-log-target", "kl-log-both")}


def _bf16_pairs(rng) -> list[dict]:
    """Op by op in bfloat16, jnp.sum of a bfloat16 array from 4096 elements is YNNPACK's bfloat16 kernel, which adds
    each vector's elements in pairs ("bf16 pairs"): kl's rows with log targets, probability rows' products, and the
    mean of stored losses; inputs placed where float32's order differs."""
    out = []
    # (with log targets: e^y of log 10⁻⁹ is a tiny product beside the row's others, which often lie on a tie; kl of
    # probabilities takes the same sums, whose random rows round apart too seldom to be drawn)
    for kind in ("kl-log-target", "kl-log-both"):
        for rows, classes in ((1400, 3), (400, 14)):
            y, p = _apart(rng, lambda g, k=kind, r=rows, c=classes: _kl_inputs(g, k, r, c),
                          _optax("kl", False, "mean", **_kl_options(kind)), float32_order)
            out.append(_record(kind, "bfloat16", False, "mean", y, p, name="bf16 pairs"))

    def soft(g, rows: int, classes: int):
        t = g.integers(0, 5, (rows, classes)) + 1e-7 * (g.random((rows, classes)) < 0.3)  # (tiny products)
        return _rounded(t / np.maximum(t.sum(1, keepdims=True), 1e-3), "bfloat16"), _grid(g, (rows, classes))
    y, p = _apart(rng, lambda g: soft(g, 4200, 3), _optax("ce", False, "sum", from_logits=True, labels="onehot"),
                  float32_order)
    out.append(_record("ce", "bfloat16", False, "sum", y, p, "onehot", name="bf16 pairs"))
    out.append(_record("mse", "bfloat16", False, "mean", np.zeros((4096, 1)), _mean_on_a_tie(), name="bf16 pairs"))
    return out


def _mean_on_a_tie() -> np.ndarray:
    """Predictions (targets 0) whose 4096 squared errors sum to 1 + 2⁻⁸, a tie between two bfloat16 numbers, in
    YNNPACK's pairs, and past it in float32's order: 1 and 2⁻⁸ in elements 0 and 1, 2⁻²⁴ (half an ulp of 1) in
    elements 32, 33, 64, 65, 96 and 97. In pairs all share lane 0, where each 2⁻²⁴ meets 1 + 2⁻⁸ and rounds away (a
    tie, to even); one element a lane, the three odd ones join 2⁻⁸ in lane 1 exactly, and 1 + 2⁻⁸ + 3·2⁻²⁴ rounds
    up. The mean 2⁻¹² or (1 + 2⁻⁷)·2⁻¹²."""
    p = np.zeros((4096, 1))
    p[[0, 1], 0] = 1.0, 2.0**-4
    p[[32, 33, 64, 65, 96, 97], 0] = 2.0**-12
    return p


def _ce_rows_ops_ynn(rng) -> list[dict]:
    """Probability rows op by op in bfloat16 from 4096 rows ("ynn shift"): log_softmax, jitted on its own, hands
    z − max to YNNPACK, which keeps it in float32; 4,095 rows, XLA's own loop, store it."""
    out = []
    for rows, classes, reduction in ((4096, 2, "mean"), (4100, 3, "sum"), (4500, 10, "none"), (4095, 3, "mean")):
        out.append(_soft_record(rng, "bfloat16", False, reduction, rows, classes) | {"name": "ynn shift"})
    return out


def xla_log_q():
    """kl under jit in bfloat16 with log q by XLA's log at every size (YNNPACK's own log undone)."""
    from lossgrad import lowp_xla

    return undone(lowp_xla, "ynn_log", lowp_xla.xla_log)


def _kl_jit_ynn_log(rng) -> list[dict]:
    """kl under jit in bfloat16 from 4096 elements ("ynn log"): YNNPACK takes log q with its own log. Targets equal
    to the predictions but for their first class, where log y − log q cancels and the two logs' last bits show."""
    def draw(g, kind: str, rows: int, classes: int):
        t = g.integers(0, 5, (rows, classes)).astype(float)
        t[:, 0] += 1e-3
        t /= t.sum(axis=1, keepdims=True)
        q = _rounded(t, "bfloat16")
        q[q == 0] = 2.0**-10
        t = _rounded(t, "bfloat16")
        t[:, 0] = 0
        y = _rounded(np.log(np.where(t == 0, 1e-9, t)) if kind == "kl-log-target" else t, "bfloat16")
        return y, q
    out = []
    for kind, rows, classes in (("kl", 400, 14), ("kl-log-target", 2000, 7), ("kl", 300, 40)):
        y, p = _apart(rng, lambda g, k=kind, r=rows, c=classes: draw(g, k, r, c),
                      _optax("kl", True, "mean", **_kl_options(kind)), xla_log_q)
        out.append(_record(kind, "bfloat16", True, "mean", y, p, name="ynn log"))
    return out


def stored_squares():
    """mse under jit in bfloat16 with the mean of one output per sample over the stored squares (the rule before)."""
    from lossgrad import lowp_xla

    return undone(lowp_xla, "fused_mse_value", lambda d, r: lowp_xla.mean_value(r(d * d), r, True))


def _mse_jit_columns(rng) -> list[dict]:
    """mse under jit in bfloat16 with one output per sample ("float32 squares"): the mean reads the squares in
    float32, as for more outputs (lowp_xla.fused_mse_value)."""
    out = []
    for rows, reduction in ((5, "sum"), (50, "mean"), (4100, "mean")):
        y, p = _apart(rng, lambda g, n=rows: (_rounded(g.standard_normal((n, 1)), "bfloat16"),
                                              _rounded(g.standard_normal((n, 1)) * 2, "bfloat16")),
                      _optax("mse", True, reduction), stored_squares)
        out.append(_record("mse", "bfloat16", True, reduction, y, p, name="float32 squares"))
    return out


WIDE_OUT = OUT.with_name("lowp_xla_wide.json")
# (loss, dtype, jit, reduction, rows, outputs): reduced values over 2 or 3 rows of more than 32,768 outputs, whose sum
# YNNPACK takes in runs of 32,768 (lowp_xla._wide_runs)
WIDE = (("mse", "float32", False, "mean", 2, 40000), ("mse", "bfloat16", True, "sum", 3, 33000),
        ("mse", "float32", True, "mean", 3, 70001), ("bce", "float16", False, "mean", 2, 50000),
        ("bce", "float32", True, "sum", 3, 40000), ("ce", "float32", True, "mean", 3, 40000),
        ("kl", "float32", True, "mean", 2, 35000), ("kl-log-input", "float32", True, "sum", 3, 33333))


def digest(x) -> str:
    """SHA-256 of an array's float32 bytes, in C order."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(np.asarray(x, dtype=np.float32)).tobytes()).hexdigest()


def wide_inputs(seed: int, loss: str, dtype: str, rows: int, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions in the dtype: mse normal ones, bce probabilities and logits, ce probability rows
    and logits, kl probability rows (log q for kl-log-input)."""
    rng = np.random.default_rng(seed)
    shape = (rows, outputs)
    if loss in ("ce", "kl", "kl-log-input"):
        t, q = rng.random(shape), rng.random(shape)
        t, q = t / t.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)
        pred = np.log(q) if loss == "kl-log-input" else q if loss != "ce" else rng.standard_normal(shape) * 3
        return _rounded(t, dtype), _rounded(pred, dtype)
    y = rng.random(shape) if loss == "bce" else rng.standard_normal(shape)
    return _rounded(y, dtype), _rounded(rng.standard_normal(shape) * 2, dtype)


def wide_records() -> list[dict]:
    """JAX's reduced value of each WIDE batch (digests of the inputs, losses and gradient beside it)."""
    out = []
    for k, (loss, dtype, jit, reduction, rows, outputs) in enumerate(WIDE):
        seed = 20261204 + k
        y, p = wide_inputs(seed, loss, dtype, rows, outputs)
        rec = _record(loss, dtype, jit, reduction, y, p, "onehot" if loss == "ce" else None)
        out.append({"loss": loss, "dtype": dtype, "jit": jit, "reduction": reduction, "rows": rows,
                    "outputs": outputs, "seed": seed, "inputs": digest(np.concatenate([y, p])),
                    "value": rec["value"], "losses": digest(_f32s(rec["losses"])), "grad": digest(_f32s(rec["grad"]))})
    return out


def _f32s(values: list) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def main() -> None:
    from make_golden import jax_versions

    if "--wide" in sys.argv:
        WIDE_OUT.write_text(json.dumps({"versions": jax_versions(), "records": wide_records()}) + "\n")
        print(f"{WIDE_OUT}: {WIDE_OUT.stat().st_size} bytes")
        return

    rng = np.random.default_rng(20261202)
    records = []
    for dtype in DTYPES:
        for jit in (True, False):
            for reduction in ("none", "sum", "mean"):
                records += _ce(rng, dtype, jit, reduction) + _elementwise(rng, dtype, jit, reduction)
    rows_rng = np.random.default_rng(20261203)  # (a generator of their own: the records before stay as they were)
    records += _ce_rows_half(rows_rng, False) + _ce_rows_half(rows_rng, True) + _kl_half_jit(rows_rng)
    records += _ce_index_small(rows_rng) + _ce_rows_f32_jit(rows_rng) + _kl_f32_jit(rows_rng)
    records += _ce_value_lanes(rows_rng) + _kl_bf16_jit_long(rows_rng) + _ce_rows_bf16_jit_long(rows_rng)
    records += _ce_three_classes(rows_rng)
    records += _kl_f32_jit_long(np.random.default_rng(20261207))  # (after the rest: their draws kept)
    records += _single_rows_f32_jit(np.random.default_rng(20261208))
    records += _kl_subnormal_q(np.random.default_rng(20261209))
    records += _long_folded_rows(np.random.default_rng(20261211))
    records += _ce_rows_ynn_rows(np.random.default_rng(20261227))
    records += _kl_bf16_along_rows(np.random.default_rng(20261228))
    records += _bf16_pairs(np.random.default_rng(20261229)) + _ce_rows_ops_ynn(np.random.default_rng(20261230))
    records += _kl_jit_ynn_log(np.random.default_rng(20261231)) + _mse_jit_columns(np.random.default_rng(20261232))
    records += _ce_bf16_along_rows(np.random.default_rng(20261233))
    records += _kl_folded_log(np.random.default_rng(20261234))
    records += _kl_subnormal_targets(np.random.default_rng(20261235))
    records += _kl_half_along_row(np.random.default_rng(20261236))
    meta = jax_versions()
    OUT.write_text(json.dumps({"versions": meta, "records": records}) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
