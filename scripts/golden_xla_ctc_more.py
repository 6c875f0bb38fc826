"""Record JAX's CPU results for optax.ctc_loss in float64 (jax_enable_x64), op by op and under jax.jit, and in every
dtype the shapes where XLA's backward loop stores the blank's products before their sum (more than 32 label states,
or 4,096 products or more), for tests/golden/xla_ctc_more.json (read by tests/test_xla_ctc_more.py).

Each record: the seed, shape (B sequences, T frames, C classes, L label columns), kind and dtype its inputs come from
(inputs(): pure numpy draws, so the test rebuilds them on any machine) with their SHA-256, the blank, jit, whether
sample weights multiply the losses (jnp.mean(loss · w)), and what JAX gives: the per-sequence losses, and the value
and the gradient with respect to the logits of jnp.mean and of jnp.sum (every number as float.hex, arrays of more
than 4,096 by SHA-256). `reproduced`: True where lossgrad claims every bit; None where the value is lossgrad's own
sum, with a warning (a whole [B, L + 1] array of 4,096 elements or more under jit, or 4,096 losses); False where it
gives its formulas (classes of 2,048 or more in 4,096 elements or more).

    python3 scripts/golden_xla_ctc_more.py               # the golden file
    python3 scripts/golden_xla_ctc_more.py --measure 100  # random float64 rounds against lossgrad
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, digest, matches  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "xla_ctc_more.json"
KINDS = ("random", "repeats", "large", "blank-last", "impossible")  # (measure's; the records' edges add EDGES)
EDGES = ("huge", "empty", "heavy")
# float64 (B, T, C, L) and kind: one frame, one sequence; batches of 4 and 16 to 20 (where LLVM keeps float32's
# states apart); long sequences; more than 32 label states; from 4,096 rows of frames (YNNPACK's row sums, classes
# of 65 to 127 in two tiles); from 4,096 products (the blank's stored for YNNPACK); 4,095 rows
SHAPES64 = (((1, 1, 5, 2), "random"), ((3, 6, 5, 3), "repeats"), ((4, 4, 3, 3), "large"), ((4, 6, 9, 8), "blank-last"),
            ((16, 5, 7, 4), "impossible"), ((20, 5, 8, 5), "random"), ((5, 13, 7, 4), "repeats"),
            ((2, 100, 5, 12), "large"), ((3, 40, 4, 33), "blank-last"), ((2, 100, 4, 64), "random"),
            ((64, 20, 4, 3), "impossible"), ((300, 14, 8, 3), "random"), ((40, 30, 70, 5), "large"),
            ((819, 5, 6, 2), "repeats"), ((600, 10, 9, 7), "random"), ((8, 7, 40, 6), "blank-last"),
            ((1, 50, 3, 20), "repeats"), ((200, 25, 5, 21), "large"), ((10, 30, 130, 5), "random"),
            ((4, 6, 1100, 3), "blank-last"))
# float32 and the half dtypes (B, T, C, L), jit: the blank's products stored (more than 32 label states; from 4,096
# products); in float16 and bfloat16 the blank's cotangent is stored in the dtype, which mostly hides the order
STORED = (((3, 40, 4, 33), True), ((2, 60, 3, 40), False), ((300, 4, 6, 14), True), ((200, 3, 5, 21), False),
          ((2, 30, 5, 64), True))
HALF = ((3, 40, 4, 33), (300, 4, 6, 14))
# (seed, shape, kind, dtypes, modes, weighted), edges found by a review against JAX: gradient elements near 2^−1022,
# where the multiply-add's error term falls below the normal range; every loss 0 (under jit JAX's value is −0);
# weights of 1e308 (each weighted loss beyond the range, the gradient finite)
EDGE_RECORDS = ((4310, (16, 20, 9, 6), "huge", ("float64",), (False, True), False),
                (4320, (4, 6, 5, 3), "empty", ("float64",), (False, True), False),
                (4320, (4, 6, 5, 3), "empty", ("float32", "bfloat16", "float16"), (True,), False),
                (4330, (6, 12, 9, 5), "heavy", ("float64",), (False, True), True))
# float64 shapes lossgrad leaves to its formulas: classes of 2,048 or more in 4,096 elements or more
REFUSED = ((3, 2, 2048, 2),)


def inputs(seed: int, shape: tuple[int, ...], kind: str) -> dict[str, Any]:
    """Logits (normal draws, times 2; "large": times 40; "huge": times 1000, gradient elements near 2^−1022), labels
    from 1 (the blank 0; "blank-last": labels from 0 and the blank C − 1; "repeats": of two classes, many neighbours
    equal), input lengths from T/2, target lengths from 0; "impossible": each sequence one frame for 2 labels or
    more, which no alignment fits; "empty": no frames and no labels (every loss 0); sample weights from 0.1 to 3
    ("heavy": 1e308, each weighted loss beyond the range, the gradient not)."""
    rng = np.random.default_rng(seed)
    b, t, c, n = shape
    x = rng.normal(size=(b, t, c)) * {"large": 40.0, "huge": 1000.0}.get(kind, 2.0)
    labels = rng.integers(1, min(c, 3) if kind == "repeats" else c, (b, n))
    blank = 0
    if kind == "blank-last":
        labels, blank = rng.integers(0, c - 1, (b, n)), c - 1
    frames, lengths = rng.integers(max(1, t // 2), t + 1, b), rng.integers(0, n + 1, b)
    if kind in ("impossible", "empty"):
        frames, lengths = np.full(b, int(kind == "impossible")), np.full(b, n if kind == "impossible" else 0)
    weights = rng.uniform(0.1, 3.0, b)
    return {"x": x, "labels": labels, "frames": frames, "lengths": lengths, "blank": blank,
            "weights": np.full(b, 1e308) if kind == "heavy" else weights}


def _dtype(name: str) -> Any:
    import ml_dtypes

    return {"float64": np.float64, "float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}[name]


def held(inp: dict[str, Any], dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The logits and weights as JAX is given them: rounded to the dtype (carried in float64)."""
    kind = _dtype(dtype)
    return inp["x"].astype(kind).astype(np.float64), inp["weights"].astype(kind).astype(np.float64)


def reproduced(shape: tuple[int, ...], jit: bool, weighted: bool) -> bool | None:
    """As lowp_xla_ctc says on AVX2 (float64): False: lossgrad's formulas; None: the value alone is its own sum."""
    b, t, c, n = shape
    if c >= 2048 and b * t * c >= 4096:
        return False
    return None if (jit and not weighted and b * (n + 1) >= 4096) or b >= 4096 else True


def optax_results(inp: dict[str, Any], dtype: str, jit: bool, weighted: bool) -> dict[str, Any]:
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp
    import optax

    kind = _dtype(dtype)
    x, w = held(inp, dtype)
    t, n = x.shape[1], inp["labels"].shape[1]
    logit_pad = jnp.asarray((np.arange(t)[None, :] >= inp["frames"][:, None]).astype(kind))
    label_pad = jnp.asarray((np.arange(n)[None, :] >= inp["lengths"][:, None]).astype(kind))
    out: dict[str, Any] = {}
    for reduction in ("mean", "sum"):
        def reduced(z: Any, reduction: str = reduction) -> Any:
            losses = optax.ctc_loss(z, logit_pad, jnp.asarray(inp["labels"]), label_pad, blank_id=inp["blank"])
            if weighted:
                losses = losses * jnp.asarray(w.astype(kind))
            return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
        step = jax.value_and_grad(reduced, has_aux=True)
        (value, losses), grad = (jax.jit(step) if jit else step)(jnp.asarray(x.astype(kind)))
        out["losses"] = _kept(np.asarray(losses, dtype=np.float64))
        out[reduction] = {"value": float(value).hex(), "grad": _kept(np.asarray(grad, dtype=np.float64))}
    return out


def record(seed: int, shape: tuple[int, ...], kind: str, dtype: str, jit: bool, weighted: bool = False) -> dict:
    inp = inputs(seed, shape, kind)
    x, w = held(inp, dtype)
    return {"seed": seed, "shape": list(shape), "kind": kind, "dtype": dtype, "jit": jit, "weighted": weighted,
            "blank": inp["blank"], "inputs_sha256": digest(x, inp["labels"], inp["frames"], inp["lengths"], w),
            "reproduced": reproduced(shape, jit, weighted) if dtype == "float64" else True,
            **optax_results(inp, dtype, jit, weighted)}


def cases() -> list[dict]:
    recs = []
    for i, (shape, kind) in enumerate(SHAPES64):
        for jit in (False, True):
            recs.append(record(4000 + i, shape, kind, "float64", jit, weighted=i % 3 == 1))
    for i, (shape, jit) in enumerate(STORED):
        recs.append(record(4100 + i, shape, "random", "float32", jit))
    for i, shape in enumerate(HALF):
        recs += [record(4150 + i, shape, "random", dtype, i == 0) for dtype in ("bfloat16", "float16")]
    recs += [record(seed, shape, kind, dtype, jit, weighted)
             for seed, shape, kind, dtypes, modes, weighted in EDGE_RECORDS for dtype in dtypes for jit in modes]
    return recs + [record(4200 + i, shape, "random", "float64", jit)
                   for i, shape in enumerate(REFUSED) for jit in (False, True)]


def lossgrad_results(rec: dict, inp: dict[str, Any], cpu: str | None = "avx2") -> dict[str, Any]:
    """lossgrad's results for a record's inputs, reduction none, mean and sum, with the kernels of processor `cpu`
    (the records were made with AVX2)."""
    import lossgrad

    x, w = held(inp, rec["dtype"])
    kw = dict(input_lengths=list(inp["frames"]), target_lengths=list(inp["lengths"]), from_logits=True,
              convention="optax", dtype=rec["dtype"], jit=rec["jit"], blank=inp["blank"], cpu=cpu,
              sample_weight=w if rec["weighted"] else None)
    return {reduction: lossgrad.ctc(inp["labels"], x, reduction=reduction, **kw)
            for reduction in ("none", "mean", "sum")}


def agrees(rec: dict, results: dict[str, Any]) -> bool:
    """Whether lossgrad's losses, values (a zero's sign too) and gradients have the record's bits, with no warning
    but the value's: where lossgrad says the value is its own sum (`reproduced` None), or (float32 and the half
    dtypes) that it may be an ulp apart under jit (lowp_xla_ctc.FUSED_VALUE), where the value is not compared; under
    weights of 1e308, that each weighted loss is beyond the range; and over one frame, that XLA fuses it otherwise
    (lowp_xla_ctc.SINGLE_FRAME: the records of one frame have JAX's bits, some other batches do not)."""
    from lossgrad.lowp_xla_ctc import FUSED_VALUE, SINGLE_FRAME

    said = [w for r in results.values() for w in r.warnings]
    own = rec["reproduced"] is None or FUSED_VALUE in said
    ok = matches(results["none"].losses, rec["losses"])
    ok = ok and all(w in (FUSED_VALUE, SINGLE_FRAME) or (own and w.startswith("the reduced value is lossgrad's own "))
                    or (rec["kind"] == "heavy" and "the weight times a finite loss" in w) for w in said)
    for reduction in ("mean", "sum"):
        r = results[reduction]
        ok = ok and matches(r.grad, rec[reduction]["grad"])
        ok = ok and (own or float(r.value).hex() == rec[reduction]["value"])
    return ok


def measure(rounds: int, seed: int = 20261207) -> str:
    """Random float64 rounds (shapes, kinds, modes, weights) where lossgrad says it reproduces JAX: how many are
    apart."""
    rng = np.random.default_rng(seed)
    apart, grads, losses, values, done = 0, 0, 0, 0, 0
    while done < rounds:
        big = rng.random() < 0.2
        wide = rng.random() < 0.15
        shape = (int(rng.integers(1, 700 if big else 40)), int(rng.integers(1, 8 if big or wide else 40)),
                 int(rng.integers(2, 20 if big else 2048 if wide else 80)), int(rng.integers(1, 12 if big else 70)))
        jit, weighted = bool(rng.integers(2)), bool(rng.random() < 0.25)
        said = reproduced(shape, jit, weighted)
        if said is False or shape[1] == 1:  # (one frame: lowp_xla_ctc.SINGLE_FRAME's warning)
            continue
        rec = {"seed": int(rng.integers(1 << 30)), "kind": str(rng.choice(KINDS)), "dtype": "float64", "jit": jit,
               "weighted": weighted, "reproduced": said}
        inp = inputs(rec["seed"], shape, rec["kind"])
        rec |= optax_results(inp, "float64", jit, weighted)
        if not agrees(rec, lossgrad_results(rec, inp)):
            apart += 1
            print("apart:", shape, rec["kind"], "jit" if jit else "op by op", "weighted" * weighted, rec["seed"])
        done += 1
        grads, losses, values = grads + 2 * int(np.prod(shape[:3])), losses + shape[0], values + 2 * (said is True)
    return f"{rounds} rounds: {grads} gradient elements, {losses} losses, {values} values; {apart} rounds apart"


if __name__ == "__main__":
    from golden64 import main

    main(OUT, "scripts/golden_xla_ctc_more.py", cases, measure)
