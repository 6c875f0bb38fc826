"""Record JAX's float64 CPU results (jax_enable_x64) for optax's triplet_margin_loss, op by op and under jax.jit, for
tests/golden/xla64.json (read by tests/test_xla64.py).

Each record: the seed, shape and kind its inputs come from (inputs(): pure numpy draws, so the test rebuilds them
on any machine) with the SHA-256 of the anchors, positives and negatives, norm_degree q (a Python int where it is
integral, as optax's default 2, so jnp.power takes lax.integer_pow), margin, jit, and what optax gives: the losses,
and under "sum" and "mean" the value and jax.grad's gradients with respect to the anchors, positives and negatives,
every number as float.hex (arrays of more than 4,096 by SHA-256). `reproduced`: False where lossgrad says its
float64 numbers are its formulas (under jit, rows of 32 features or fewer; from 4,096 elements, rows of 2,048 or
more), None where only the value is not reproduced (under jit, the sum of 2 to 32 losses; 4,096 losses or more).

    python3 scripts/golden_xla64.py               # the golden file
    python3 scripts/golden_xla64.py --measure 200  # random rounds against lossgrad, op by op and under jit
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, digest, matches  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "xla64.json"
DEGREES = (2.0, 1.0, 3.0, 1.5, 0.5, 4.0, 2.5, 1 / 3)
SHAPES = {False: ((1, 1), (1, 7), (3, 5), (7, 33), (20, 64), (5, 100), (100, 50), (70, 64), (2, 1), (60, 100),
                  (50, 130), (4, 1100)),
          True: ((4, 33), (10, 40), (37, 64), (1, 50), (100, 41), (70, 64), (40, 70), (50, 120), (20, 300))}
REFUSED = {True: ((3, 5), (1, 7)), False: ((2, 2048),)}
# (seed, shape, kind, q, margin, jit) found by --measure (under jit YNNPACK's pow(d, ½), where √d is an ulp apart)
# and by a review: under jit 4,096 rows whose losses YNNPACK computes (√ by pow, no contraction); subnormals, which
# XLA flushes to zero (a margin of 1e−310, products and gradients below the normal range, subnormal inputs)
FOUND = ((641044671, (225, 64), "positive", 0.5, 0.25, True), (1001, (4096, 40), "random", 2.0, 1.0, True),
         (1002, (4096, 40), "positive", 0.5, 1.0, True), (1003, (40, 40), "equal", 2.0, 1e-310, False),
         (1004, (40, 40), "equal", 2.0, 1e-310, True), (1005, (20, 40), "tiny", 3.0, 1.0, False),
         (1006, (20, 40), "tiny", 4.0, 1.0, True), (1007, (20, 40), "subnormal", 2.0, 1.0, False),
         (1008, (20, 40), "subnormal", 0.5, 1.0, True))


def inputs(seed: int, shape: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchors, positives and negatives: normal draws; "positive": anchors 3 above positives and negatives in
    [0, 1) (every difference positive, for a fractional q); "equal": the negative is the positive (each loss is
    the margin, and the anchor's two gradients cancel); "tiny": normal draws times 1e−160; "subnormal": their
    magnitudes times 1e−310."""
    rng = np.random.default_rng(seed)
    if kind == "positive":
        return rng.random(shape) + 3.0, rng.random(shape), rng.random(shape)
    a, p, n = (rng.normal(size=shape) for _ in range(3))
    if kind == "tiny":  # (products and gradients below the normal range, which XLA flushes to zero)
        return a * 1e-160, p * 1e-160, n * 1e-160
    if kind == "subnormal":  # (inputs XLA reads as zero)
        return np.abs(a) * 1e-310, np.abs(p) * 1e-310, np.abs(n) * 1e-310
    return (a, p, p.copy()) if kind == "equal" else (a, p, n)


def reproduced(shape: tuple[int, int], jit: bool) -> bool | None:
    rows, n = shape
    if (jit and n <= 32) or (rows * n >= 4096 and n >= 2048):
        return False
    return None if (jit and 2 <= rows <= 32) or rows >= 4096 else True


def optax_results(a: np.ndarray, p: np.ndarray, n: np.ndarray, q: float, margin: float, jit: bool) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    degree: Any = int(q) if float(q).is_integer() else q
    wrap = jax.jit if jit else (lambda f: f)

    def losses(a: Any, p: Any, n: Any) -> Any:
        return optax.losses.triplet_margin_loss(a, p, n, norm_degree=degree, margin=margin)
    args = [jnp.asarray(v, dtype=jnp.float64) for v in (a, p, n)]
    out: dict[str, Any] = {"losses": _kept(np.asarray(wrap(losses)(*args)))}
    for name, reduce in (("sum", jnp.sum), ("mean", jnp.mean)):
        def total(a: Any, p: Any, n: Any, reduce: Any = reduce) -> Any:
            return reduce(losses(a, p, n))
        value = wrap(total)(*args)
        grads = wrap(jax.grad(total, argnums=(0, 1, 2)))(*args)
        out[name] = {"value": float(value).hex(), **{k: _kept(np.asarray(g)) for k, g in
                                                    zip(("grad", "grad_target", "grad_negative"), grads, strict=True)}}
    return out


def cases() -> list[dict]:
    recs, seed = [], 0
    for jit in (False, True):
        shapes = SHAPES[jit] + REFUSED[jit]
        for i, shape in enumerate(shapes):
            for j, q in enumerate(DEGREES):
                if (i + j) % 2 and shape not in REFUSED[jit]:  # (half the pairs: every q and shape still seen)
                    continue
                kind = "positive" if not float(q).is_integer() or q == 3 else ("equal" if (i + j) % 4 == 0
                                                                                else "random")
                margin = (1.0, 0.5, 0.25)[(i + j) % 3]
                seed += 1
                recs.append(record(seed, shape, kind, q, margin, jit))
    return recs + [record(*found) for found in FOUND]


def record(seed: int, shape: tuple[int, int], kind: str, q: float, margin: float, jit: bool) -> dict:
    a, p, n = inputs(seed, shape, kind)
    return {"seed": seed, "shape": list(shape), "kind": kind, "q": q, "margin": margin, "jit": jit,
            "inputs_sha256": digest(a, p, n), "reproduced": reproduced(shape, jit),
            **optax_results(a, p, n, q, margin, jit)}


def lossgrad_results(rec: dict, a: np.ndarray, p: np.ndarray, n: np.ndarray) -> dict[str, Any]:
    import lossgrad

    kw = dict(negative=n, convention="optax", dtype="float64", jit=rec["jit"], norm_degree=float(rec["q"]),
              margin=rec["margin"])
    return {reduction: lossgrad.evaluate("triplet", p, a, reduction=reduction, **kw)
            for reduction in ("none", "sum", "mean")}


def agrees(rec: dict, results: dict[str, Any], value: bool = True) -> bool:
    """Whether lossgrad's losses, gradients and (`value`) values have the record's bits (a NaN for a NaN, a zero's
    sign), with no warning but the value's (where it is lossgrad's own sum)."""
    said = [w for r in results.values() for w in r.warnings if "computes NaN there" not in w]  # (NaN explained)
    ok = matches(results["none"].losses, rec["losses"]) and all(
        not value and w.startswith("the reduced value is lossgrad's own sum") for w in said)
    for name in ("sum", "mean"):
        r = results[name]
        grads = {"grad": r.grad, "grad_target": r.grads["target"], "grad_negative": r.grads["negative"]}
        ok = ok and all(matches(g, rec[name][k]) for k, g in grads.items())
        ok = ok and (not value or float(r.value).hex() == rec[name]["value"])
    return ok


def measure(rounds: int, seed: int = 20261206) -> str:
    """Random rounds (shapes, q, margin, mode) where lossgrad says it reproduces JAX: how many are apart (the value
    left out where lossgrad says it is its own sum)."""
    rng = np.random.default_rng(seed)
    apart, grads, losses, values, done = 0, 0, 0, 0, 0
    while done < rounds:
        jit = bool(rng.random() < 0.5)
        rows = int(rng.integers(1, 300 if rng.random() < 0.3 else 60))
        n = int(rng.integers(33 if jit else 1, 2048 if rng.random() < 0.15 else 140))
        q = float(rng.choice(DEGREES))
        kind = "positive" if not q.is_integer() or q == 3 else str(rng.choice(["random", "equal"]))
        shape = (rows, n)
        said = reproduced(shape, jit)
        if said is False:
            continue
        seed = int(rng.integers(1 << 30))
        a, p, neg = inputs(seed, shape, kind)
        rec = {"q": q, "margin": float(rng.choice([1.0, 0.5, 0.25])), "jit": jit}
        rec |= optax_results(a, p, neg, q, rec["margin"], jit)
        if not agrees(rec, lossgrad_results(rec, a, p, neg), value=said is True):
            apart += 1
            print("apart:", shape, rec["q"], rec["margin"], jit, kind, seed)
        grads, losses, values = grads + 6 * rows * n, losses + rows, values + 2 * (said is True)
        done += 1
    return f"{rounds} rounds: {grads} gradient elements, {losses} losses, {values} values; {apart} rounds apart"


if __name__ == "__main__":
    from golden64 import main

    main(OUT, "scripts/golden_xla64.py", cases, measure)
