"""Record JAX's CPU results for more of optax's losses (huber_loss, hinge_loss, log_cosh, sigmoid_focal_loss,
cosine_distance, triplet_margin_loss) in float32, float16 and bfloat16 for tests/golden/lowp_xla_more.json (read by
tests/test_lowp_xla_more.py).

Each record is taken as scripts/golden_lowp_xla.py takes its own: a loss and its options, dtype, jit (jax.jit
around jax.value_and_grad, or each operation on its own), reduction (jnp.mean, jnp.sum; none: the per-example losses
and the gradient of their sum), inputs already representable in the dtype (the targets, and triplet's negatives,
closed over as the loss's constants), and JAX's per-example losses, reduced value and gradient (triplet: also with
respect to the positives and the negatives), as the shortest decimals that read back to the same float32.

    python3 scripts/golden_lowp_xla_more.py           # tests/golden/lowp_xla_more.json
    python3 scripts/golden_lowp_xla_more.py --wide    # tests/golden/lowp_xla_more_wide.json: float32 triplet under
                                                      # jit over single rows of 43,689 to 100,001 features (inputs
                                                      # by seed, the value, gradients by SHA-256 digest)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import DTYPES, _np_dtype, _rounded, _short  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_more.json"
# each loss's options as recorded (lossgrad's names), the first the defaults
OPTIONS = {"huber": ({"delta": 1.0}, {"delta": 0.7}), "hinge": ({},), "logcosh": ({},),
           "focal": ({"gamma": 2.0, "alpha": None}, {"gamma": 2.0, "alpha": 0.25}, {"gamma": 1.5, "alpha": 0.3},
                     {"gamma": 0.0, "alpha": None}), "cosine": ({},),
           "triplet": ({"margin": 1.0}, {"margin": 0.3})}


def modes(loss: str, dtype: str) -> tuple[bool, ...]:
    """jit (True) and op by op (False) as the first records take them (cosine op by op; triplet op by op, and under
    jit in float16 and bfloat16; float32 triplet under jit: jit_triplet_records)."""
    if loss == "cosine" or (loss == "triplet" and dtype == "float32"):
        return (False,)
    return (True, False)


def reproduced_modes(loss: str, dtype: str) -> tuple[bool, ...]:
    """jit and op by op where lossgrad reproduces them (modes, float32 triplet under jit, and float32 cosine under
    jit: its records are scripts/golden_lowp_xla_cos.py's)."""
    return (True, False) if loss == "triplet" or (loss, dtype) == ("cosine", "float32") else modes(loss, dtype)


def per_example(loss: str, options: dict, y, extra: dict):
    """optax's per-example losses of the predictions, the targets (and extra inputs) fixed."""
    import optax

    losses = optax.losses
    if loss == "huber":
        return lambda z: losses.huber_loss(z, y, delta=options["delta"])
    if loss == "hinge":
        return lambda z: losses.hinge_loss(z, y)
    if loss == "logcosh":
        return lambda z: losses.log_cosh(z, y)
    if loss == "focal":
        return lambda z: losses.sigmoid_focal_loss(z, y, alpha=options["alpha"], gamma=options["gamma"])
    if loss == "cosine":
        return lambda z: losses.cosine_distance(z, y)
    # triplet: the anchors are the predictions, the positives the targets (its norm_degree is optax's default 2)
    return lambda z, pos, neg: losses.triplet_margin_loss(z, pos, neg, margin=options["margin"])


def record(loss: str, options: dict, dtype: str, jit: bool, reduction: str, y: np.ndarray, p: np.ndarray,
           name: str | None = None, negative: np.ndarray | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    kind = _np_dtype(dtype)
    per = per_example(loss, options, jnp.asarray(y.astype(kind)), {})
    args = (p,) if negative is None else (p, y, negative)  # (triplet: the gradients of all three inputs)

    def reduced(*inputs):
        out = per(*inputs)
        return (jnp.mean(out) if reduction == "mean" else jnp.sum(out)), out
    both = jax.value_and_grad(reduced, argnums=tuple(range(len(args))), has_aux=True)
    if jit:
        both = jax.jit(both)
    (value, losses), grads = both(*(jnp.asarray(a.astype(kind)) for a in args))
    out = {"loss": loss, "options": options, "dtype": dtype, "jit": jit, "reduction": reduction,
           "target": _short(y), "pred": _short(p), "losses": _short(np.asarray(losses, dtype=np.float32)),
           "value": None if reduction == "none" else str(np.float32(value)),
           "grad": _short(np.asarray(grads[0], dtype=np.float32))}
    if negative is not None:
        pairs = zip(("target", "negative"), grads[1:], strict=True)
        out |= {"negative": _short(negative), "grads": {k: _short(np.asarray(g, dtype=np.float32)) for k, g in pairs}}
    return out | ({"name": name} if name else {})


def _errors(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.standard_normal(n) * rng.choice([0.1, 1.0, 3.0, 50.0], n)
    return y, y + rng.standard_normal(n) * rng.choice([0.01, 0.5, 1.0, 2.0, 100.0], n)


def triplets(rng, dtype: str, n: int, cols: int | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          str | None]]:
    """(positives, anchors, negatives): random rows of 1 to 40 features (or `cols`), and equal rows (a distance of
    √ε)."""
    cols = int(rng.choice([1, 3, 10, 12, 33, 40])) if cols is None else cols
    a = rng.standard_normal((n, cols)) * rng.choice([0.1, 1.0, 10.0], (n, 1))
    pos, neg = (a + rng.standard_normal((n, cols)) * rng.choice([1e-3, 0.5, 2.0], (n, 1)) for _ in range(2))
    ta = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [5.0, -4.0, 0.5]])
    tp = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0], [5.0, -4.0, 0.5]])
    tn = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0], [1.0, 1.0, 2.0], [-5.0, 4.0, 0.5]])
    return [tuple(_rounded(x, dtype) for x in (pos, a, neg)) + (None,),
            tuple(_rounded(x, dtype) for x in (tp, ta, tn)) + ("adversarial",)]


def inputs(rng, loss: str, dtype: str, n: int) -> list[tuple[np.ndarray, np.ndarray, str | None]]:
    """Random inputs of n samples (one output each), and the loss's adversarial ones (its kinks, saturations)."""
    if loss in ("huber", "logcosh"):
        y, p = _errors(rng, n)
        ty = np.array([0.0, 1.0, 1.0, -2.0, 3.0, 0.0, 5.0, 1e4, -7.0, 0.25])
        tp = ty + np.array([0.0, 1.0, -1.0, 0.7, -0.7, 1e4, -90.0, -1e4, 1e-3, 2.0])
    elif loss == "hinge":
        y, p = rng.choice([-1.0, 1.0], n), rng.standard_normal(n) * rng.choice([0.5, 2.0, 100.0], n)
        ty, tp = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]), np.array([1.0, -1.0, 0.0, 0.0, -1.0, 1e4])
    elif loss == "cosine":  # rows of 1 to 40 outputs, nearly parallel, opposite and zero vectors
        cols = int(rng.choice([1, 3, 10, 33, 40]))
        y = rng.standard_normal((n, cols))
        p = y * rng.choice([1.0, -1.0, 0.5], (n, 1)) + rng.standard_normal((n, cols)) * rng.choice([1e-3, 0.3, 3.0],
                                                                                                   (n, 1))
        ty = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [3.0, -4.0, 0.0]])
        tp = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [3.0, -4.0, 1e-3]])
        return [(_rounded(y, dtype), _rounded(p, dtype), None), (_rounded(ty, dtype), _rounded(tp, dtype),
                                                                 "adversarial")]
    else:  # focal: logits, hard and soft labels
        p = rng.standard_normal(n) * rng.choice([0.1, 1.0, 3.0, 10.0, 40.0], n)
        y = rng.random(n)
        y[: n // 2] = np.round(y[: n // 2])
        ty = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 1.0, 0.0, 0.25])
        tp = np.array([0.0, 20.0, -20.0, 100.0, -100.0, 1e-3, -1e4, 17.0])
    return [(_rounded(y, dtype)[:, None], _rounded(p, dtype)[:, None], None),
            (_rounded(ty, dtype)[:, None], _rounded(tp, dtype)[:, None], "adversarial")]


def records(rng) -> list[dict]:
    out = []
    for loss, choices in OPTIONS.items():
        for options in choices:
            for dtype in DTYPES:
                for jit in modes(loss, dtype):
                    for reduction in ("none", "sum", "mean"):
                        n = (200 if reduction == "mean" else 60) if loss not in ("cosine", "triplet") else (
                            120 if reduction == "mean" else 12)  # (rows of up to 40: 4800 elements at most)
                        if loss == "triplet":
                            out += [record(loss, options, dtype, jit, reduction, y, p, name, neg)
                                    for y, p, neg, name in triplets(rng, dtype, n)]
                            continue
                        for y, p, name in inputs(rng, loss, dtype, n):
                            out.append(record(loss, options, dtype, jit, reduction, y, p, name))
    return out


# float32 triplet under jit (recorded after the rest, from a generator of its own): batches of N rows of D features
# that take each of XLA's row sums of the squares (one feature; 2 to 8, whose rows LLVM vectorizes 4 or 8 at a time
# or leaves to the scalar loop; 9 to 32; windows of 32; YNNPACK's lanes from 4096 elements, a part-filled last
# vector among them), in the three reductions (the sum and none store the differences before their row sums)
JIT_TRIPLETS = ((1, 3, ("mean", "sum", "none")), (12, 1, ("mean", "sum")), (21, 2, ("mean", "sum", "none")),
                (30, 3, ("mean", "sum")), (61, 4, ("mean", "none")), (45, 5, ("mean", "sum")),
                (37, 6, ("mean", "none")), (100, 7, ("mean", "sum")), (14, 8, ("mean", "sum")), (29, 5, ("sum",)),
                (2, 5, ("sum", "none")), (2, 7, ("sum",)), (17, 10, ("mean", "sum")), (9, 32, ("mean", "none")),
                (5, 33, ("mean", "sum")), (104, 40, ("sum",)), (260, 16, ("mean",)), (520, 8, ("mean",)),
                (17, 241, ("mean",)))


def jit_triplet_records(rng) -> list[dict]:
    out = []
    for n, cols, reductions in JIT_TRIPLETS:
        for options in OPTIONS["triplet"]:
            for reduction in reductions:
                out += [record("triplet", options, "float32", True, reduction, y, p, name, neg)
                        for y, p, neg, name in triplets(rng, "float32", n, cols)]
    return out


def cosine_apart_records() -> list[dict]:
    """cosine op by op in float16 and bfloat16 over rows far from parallel (independent targets and predictions:
    losses near 1, which 1 − Σ rounds to the dtype), summed and averaged: jnp.sum adds the losses as stored. The
    generators' seeds are draws where that sum rounds apart from the sum of the unrounded losses (found by trying
    seeds 0 to 59; about one in ten)."""
    out = []
    for dtype, seeds in (("float16", (13, 14, 0)), ("bfloat16", (1, 17, 0))):
        for seed, reduction in zip(seeds, ("sum", "sum", "mean"), strict=True):
            rng = np.random.default_rng(seed)
            y, p = (_rounded(rng.standard_normal((6, 40)), dtype) for _ in range(2))
            out.append(record("cosine", {}, dtype, False, reduction, y, p, "apart"))
    return out


# triplet under jit from 4096 rows in bfloat16 (YNNPACK's row sums take in the addition of eps and drop bfloat16's
# roundings between them) and float16 (which keeps them): (rows, features, dtype)
YNN_TRIPLETS = ((4096, 2, "bfloat16"), (4500, 3, "bfloat16"), (4096, 2, "float16"))


def ynn_triplet_records(rng) -> list[dict]:
    out = []
    for n, cols, dtype in YNN_TRIPLETS:
        y, p, neg, name = triplets(rng, dtype, n, cols)[0]
        out.append(record("triplet", OPTIONS["triplet"][0], dtype, True, "mean", y, p, "ynn rows", neg))
    return out


def pairs_records(rng) -> list[dict]:
    """Op by op in bfloat16 ("bf16 pairs"): cosine's and triplet's row sums of stored products, and the mean of stored
    losses, are YNNPACK's bfloat16 kernel from 4096 elements, which adds in pairs; inputs on a grid, placed where
    float32's order differs (golden_lowp_xla._apart)."""
    import lossgrad
    from golden_lowp_xla import _apart, _grid, float32_order

    def cosine(y, p):
        res = lossgrad.evaluate("cosine", y, p, convention="optax", dtype="bfloat16", jit=False, reduction="mean")
        return res.losses, res.grad, np.array([res.value])
    out = []
    y, p = _apart(rng, lambda g: (_grid(g, (6000, 3)), _grid(g, (6000, 3))), cosine, float32_order)
    out.append(record("cosine", {}, "bfloat16", False, "mean", y, p, "bf16 pairs"))
    out.append(record("triplet", OPTIONS["triplet"][0], "bfloat16", False, "mean", np.zeros((820, 5)),
                      _anchors_on_a_tie(820), "bf16 pairs", _grid(rng, (820, 5))))
    return out


def _anchors_on_a_tie(rows: int) -> np.ndarray:
    """Anchors (positives 0) whose squared distances (2⁻¹⁸, 64, 2⁻¹⁸, ¼, 0) sum, in YNNPACK's pairs
    ((x₁ + x₀) + x₄) + (x₃ + x₂), to 64¼, a tie between two bfloat16 numbers (each 2⁻¹⁸, half an ulp of 64, meets
    64 or ¼ on its own and rounds away); in float32's order ((x₀ + x₄) + x₂) + (x₁ + x₃) the two join first, and
    64¼ + 2⁻¹⁷ rounds up (the distances, and the gradient, follow)."""
    return np.tile([2.0**-9, 8.0, 2.0**-9, 0.5, 0.0], (rows, 1))


# losses of several outputs per sample (jnp.mean over [N, K]): op by op and in the half dtypes under jit from small
# blocks on, float32 under jit beyond 32 × 32 (its fused loop within is lossgrad's own sum) and in YNNPACK's slices
SEVERAL = {False: ((6, 5), (40, 7)), True: ((6, 5), (40, 7))}
SEVERAL_F32_JIT = ((40, 7), (5, 50))


def several_records(rng) -> list[dict]:
    """Each elementwise loss over [N, K], named "several outputs": the random inputs of `inputs`, reshaped."""
    out = []
    for loss in ("huber", "hinge", "logcosh", "focal"):
        options = OPTIONS[loss][-1]
        for dtype in DTYPES:
            for jit in (False, True):
                for k, (rows, cols) in enumerate(SEVERAL_F32_JIT if jit and dtype == "float32" else SEVERAL[jit]):
                    y, p, _ = inputs(rng, loss, dtype, rows * cols)[0]
                    reduction = ("mean", "sum")[k % 2]
                    out.append(record(loss, options, dtype, jit, reduction, y.reshape(rows, cols),
                                      p.reshape(rows, cols), "several outputs"))
    y, p, _ = inputs(rng, "huber", "float32", 70 * 60)[0]
    out.append(record("huber", OPTIONS["huber"][0], "float32", True, "mean", y.reshape(70, 60), p.reshape(70, 60),
                      "several outputs"))
    return out


# focal under jit in float32 from 2048 elements of two columns or more, where XLA hands logsumexp's weighted sum to
# YNNPACK (lowp_xla_more.ynn_weighted_sum): (rows, columns, options, reduction); 1,023 × 2 the last below
YNN_WEIGHTED = ((1023, 2, {"gamma": 2.0, "alpha": None}, "mean"), (1024, 2, {"gamma": 2.0, "alpha": None}, "sum"),
                (683, 3, {"gamma": 2.0, "alpha": None}, "none"), (7, 300, {"gamma": 1.5, "alpha": 0.3}, "mean"),
                (40, 60, {"gamma": 2.0, "alpha": 0.25}, "sum"))


def ynn_weighted_records(rng) -> list[dict]:
    """YNN_WEIGHTED's records ("ynn weighted sum"): soft labels, logits of spread 3."""
    out = []
    for rows, cols, options, reduction in YNN_WEIGHTED:
        y = _rounded(rng.random((rows, cols)), "float32")
        z = _rounded(rng.standard_normal((rows, cols)) * 3, "float32")
        out.append(record("focal", options, "float32", True, reduction, y, z, "ynn weighted sum"))
    return out


WIDE_OUT = OUT.with_name("lowp_xla_more_wide.json")
# float32 triplet under jit over a single row: XLA splits the anchor gradient's kernel into 2 tasks from 43,691
# features, unequal for an odd count (lowp_xla_more.split_row)
WIDE_ROWS = (43689, 43690, 43691, 100001)


def wide_inputs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A positive, an anchor and a negative of one row of n features, float32 values (the positive and the negative
    equally far from the anchor: the loss above 0)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((1, n))
    pos, neg = a + rng.standard_normal((1, n)), a + rng.standard_normal((1, n))
    return tuple(_rounded(x, "float32") for x in (pos, a, neg))


def wide_records() -> list[dict]:
    from golden_lowp_xla import digest

    out = []
    for k, n in enumerate(WIDE_ROWS):
        y, p, neg = wide_inputs(20261204 + k, n)
        rec = record("triplet", {"margin": 1.0}, "float32", True, "mean", y, p, None, neg)
        out.append({"features": n, "seed": 20261204 + k, "inputs": digest(np.concatenate([y, p, neg])),
                    "value": rec["value"], "grad": digest(np.array(rec["grad"], dtype=np.float32)),
                    **{f"grad_{g}": digest(np.array(v, dtype=np.float32)) for g, v in rec["grads"].items()}})
    return out


def main() -> None:
    from make_golden import jax_versions

    if "--wide" in sys.argv:
        WIDE_OUT.write_text(json.dumps({"versions": jax_versions(), "records": wide_records()}) + "\n")
        print(f"{WIDE_OUT}: {WIDE_OUT.stat().st_size} bytes")
        return

    recs = records(np.random.default_rng(20261203)) + jit_triplet_records(np.random.default_rng(20261204))
    recs += cosine_apart_records() + ynn_triplet_records(np.random.default_rng(20261225))
    recs += pairs_records(np.random.default_rng(20261233))
    recs += several_records(np.random.default_rng(20261234))
    recs += ynn_weighted_records(np.random.default_rng(20261235))
    meta = jax_versions()
    OUT.write_text(json.dumps({"versions": meta, "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
