"""Record JAX's CPU results for optax's cosine_distance under jax.jit in float32, bfloat16 and float16 for
tests/golden/lowp_xla_cos.json (read by tests/test_lowp_xla_cos.py).

Each record is taken as scripts/golden_lowp_xla_more.py takes its own (its `record`: jax.jit around
jax.value_and_grad of jnp.mean or jnp.sum of the losses, the targets closed over as constants; none: the losses and
the gradient of their sum), on batches of N rows of D features that take each of XLA's ways (one feature; 2 to 32,
the row sums fused, rows of 5 to 8 vectorized; more than 32, the products stored and added in windows of 32; 4096
elements or more, YNNPACK's lanes; 4096 rows or more, YNNPACK's fusion of the whole gradient), with rows nearly
parallel, opposite, orthogonal, zero, and of norms near the clip at 0 (squares that flush to zero, or overflow).
bfloat16 (BF16_SHAPES): batches below 4096 elements; BF16_YNN: from 4096 elements, where YNNPACK's fusions drop the
bfloat16 roundings inside them (and from 4096 rows take the loss and Σp² to their end in float32).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import _rounded  # noqa: E402
from golden_lowp_xla_more import record  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_cos.json"
# (N, D, reductions); jnp.sum's gradient (sum, none) for D of 3 to 6: rows 8 at a time (8, 16, 40, 64, 60), 4 at
# a time (20, 52) and scalar (7, 12)
SHAPES = ((1, 1, ("mean", "sum")), (7, 1, ("mean", "none")), (100, 1, ("mean", "sum")), (1, 2, ("mean", "sum")),
          (9, 2, ("mean", "none")), (120, 2, ("mean", "sum")), (1, 3, ("mean", "sum")), (7, 3, ("sum", "none")),
          (8, 3, ("sum",)), (40, 3, ("mean", "sum")), (6, 4, ("mean", "sum")), (33, 4, ("mean", "none")),
          (52, 4, ("sum",)), (5, 5, ("mean", "none")), (12, 5, ("sum",)), (20, 5, ("none",)),
          (64, 5, ("mean", "sum")), (7, 6, ("sum",)), (16, 6, ("sum",)), (20, 6, ("mean", "sum")),
          (60, 6, ("none",)), (700, 6, ("sum",)), (8, 7, ("mean", "sum")),
          (45, 7, ("mean", "none")), (16, 8, ("mean", "sum")), (21, 8, ("none",)), (12, 9, ("mean", "sum")),
          (30, 16, ("mean", "none")), (3, 17, ("mean", "sum")), (11, 31, ("mean",)), (2, 32, ("mean", "sum")),
          (50, 32, ("sum",)), (129, 32, ("mean",)), (3, 33, ("mean", "none")), (8, 40, ("mean", "sum")),
          (13, 64, ("mean",)), (17, 100, ("mean",)), (4, 257, ("mean", "none")),
          (2, 1000, ("sum",)), (5, 1000, ("mean",)))


BF16_SHAPES = ((1, 2, ("mean", "sum")), (9, 3, ("mean", "none")), (16, 4, ("sum",)), (40, 5, ("mean",)),
               (64, 6, ("none",)), (17, 7, ("mean", "sum")), (30, 8, ("mean",)), (30, 9, ("sum",)),
               (50, 17, ("mean",)), (20, 32, ("mean", "sum")), (9, 33, ("mean", "none")), (12, 40, ("sum",)),
               (5, 100, ("mean",)), (4, 257, ("mean",)), (1, 1000, ("mean", "sum")), (300, 2, ("mean", "none")),
               (1, 1, ("mean", "sum")), (9, 1, ("mean", "none")), (300, 1, ("sum", "none")))
# float16: rows 8 at a time, in float16 lanes, and a scalar rest; rows of one feature (no row sums)
F16_SHAPES = ((1, 2, ("mean", "sum")), (7, 3, ("mean", "none")), (8, 4, ("sum",)), (25, 28, ("sum", "mean")),
              (40, 5, ("none",)), (33, 8, ("mean",)), (12, 40, ("sum",)), (5, 100, ("mean", "none")),
              (100, 50, ("mean",)), (2, 1000, ("sum",)), (1, 1, ("mean", "sum")), (9, 1, ("mean", "none")),
              (257, 1, ("sum", "none")))


# float32 batches of 4096 rows or more, where YNNPACK fuses the whole gradient (recorded after the rest, from a
# generator of their own)
LONG_SHAPES = ((4100, 3, ("mean", "none")), (4096, 1, ("sum",)))
# float32 rows of more than 1024 features in fewer than 4096 elements: XLA folds Σy² at compile time in windows of 32
# and then all the windows' sums at once (a generator of their own, after the rest)
WIDE_SHAPES = ((1, 2670, ("mean",)), (2, 1564, ("sum", "none")), (3, 1300, ("mean",)))
# bfloat16 from 4096 elements (YNNPACK's fusions; from 4096 rows the whole loss and Σp² in one; one feature: no sums)
# (a generator of their own, after the rest)
BF16_YNN = ((64, 64, ("mean", "none")), (128, 40, ("sum",)), (4095, 2, ("mean",)), (4096, 2, ("mean", "sum")),
            (5000, 3, ("none",)), (1, 5000, ("mean",)), (4096, 1, ("sum",)))
# float32, a single row of 4096 features or more (YNNPACK's dot of the products with their sum), and rows of more
# than 32,768 (the products' sums in runs of 32,768, in a batch of any size) (a generator of their own, after the rest)
SINGLE_SHAPES = ((1, 4500, ("mean",)), (1, 9000, ("none",)), (1, 33000, ("sum",)), (2, 33000, ("mean",)),
                 (4, 32790, ("sum",)))


def rows(rng, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions: the predictions the targets times 1, −1 or ½ plus noise of 10⁻³ to 3 (nearly
    parallel to well apart); from 8 rows on, special rows: equal, opposite, orthogonal (two features), a zero
    target, a zero prediction, predictions whose squares flush to zero (10⁻²⁰) or overflow (10²⁰), and small ones
    near the clip (10⁻¹⁸)."""
    y = rng.standard_normal((n, d)) * rng.choice([0.01, 1.0, 100.0], (n, 1))
    p = y * rng.choice([1.0, -1.0, 0.5], (n, 1)) + rng.standard_normal((n, d)) * rng.choice([1e-3, 0.3, 3.0],
                                                                                            (n, 1)) * np.abs(y)
    if n >= 8:
        p[0], p[1] = y[0], -y[1]
        if d >= 2:
            p[2] = 0.0
            p[2, 0], p[2, 1] = -y[2, 1], y[2, 0]
            y[2, 2:] = 0.0
        y[3] = 0.0
        p[4] = 0.0
        p[5] *= 1e-20 / np.abs(p[5]).max()
        p[6] *= 1e20 / np.abs(p[6]).max()
        p[7] *= 1e-18 / np.abs(p[7]).max()
    return _rounded(y, "float32"), _rounded(p, "float32")


def rows16(rng, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """rows() within float16's range: the overflowing row scaled to 300 (its squares overflow float16 alone), the
    flushing and near-clip rows to 10⁻⁴ and 10⁻³ (subnormal squares), the targets to at most 300."""
    y, p = rows(rng, n, d)
    if np.abs(y).max() > 300:
        y = y * (300 / np.abs(y).max())
    if n >= 8:
        for i, top in ((5, 1e-4), (6, 300.0), (7, 1e-3)):
            p[i] = p[i] * (top / np.abs(p[i]).max()) if np.abs(p[i]).max() else p[i]
    p = np.clip(p, -6e4, 6e4)
    return _rounded(y, "float16"), _rounded(p, "float16")


def records(rng) -> list[dict]:
    out = []
    for dtype, shapes in (("float32", SHAPES), ("bfloat16", BF16_SHAPES)):
        for n, d, reductions in shapes:
            y, p = (_rounded(a, dtype) for a in rows(rng, n, d))
            out += [record("cosine", {}, dtype, True, reduction, y, p, f"{n}x{d}") for reduction in reductions]
    for n, d, reductions in F16_SHAPES:
        y, p = rows16(rng, n, d)
        out += [record("cosine", {}, "float16", True, reduction, y, p, f"{n}x{d}") for reduction in reductions]
    long = np.random.default_rng(20261206)
    for n, d, reductions in LONG_SHAPES:
        y, p = rows(long, n, d)
        out += [record("cosine", {}, "float32", True, reduction, y, p, f"{n}x{d}") for reduction in reductions]
    for seed, shapes in ((20261210, WIDE_SHAPES), (20261214, SINGLE_SHAPES)):
        more = np.random.default_rng(seed)
        for n, d, reductions in shapes:
            y, p = rows(more, n, d)
            out += [record("cosine", {}, "float32", True, reduction, y, p, f"{n}x{d}") for reduction in reductions]
    more = np.random.default_rng(20261215)
    for n, d, reductions in BF16_YNN:
        y, p = (_rounded(a, "bfloat16") for a in rows(more, n, d))
        out += [record("cosine", {}, "bfloat16", True, reduction, y, p, f"{n}x{d}") for reduction in reductions]
    # targets whose squares are below float32's normals, which the fold flushes: a row of normal and subnormal
    # squares (its norm without them), and rows of subnormal squares only (a norm of 0: NaN and −∞)
    y = _rounded(np.array([[2e-19, 3e-20, 5e-20], [1e-20, 2e-20, 3e-20], [3e-20, 3e-20, 3e-20]]), "float32")
    p = _rounded(np.array([[0.5, -1.0, 2.0], [1.0, 2.0, 3.5], [-0.3, 0.2, 0.1]]), "float32")
    out += [record("cosine", {}, "float32", True, "none", y, p, "subnormal squares")]
    return out


def main() -> None:
    from make_golden import jax_versions

    recs = records(np.random.default_rng(20261205))
    OUT.write_text(json.dumps({"versions": jax_versions(), "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
