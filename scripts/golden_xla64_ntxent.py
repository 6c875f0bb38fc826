"""Record JAX's float64 CPU results (jax_enable_x64) for optax's ntxent, op by op and under jax.jit, for
tests/golden/xla64_ntxent.json (read by tests/test_xla64_ntxent.py).

Each record: the seed, shape (B pairs of d features) and kind its inputs come from (inputs(): pure numpy draws, so
the test rebuilds them on any machine) with the SHA-256 of the anchors and positives, τ, jit, and what optax gives
for e = [anchors; positives] with labels [0..B−1, 0..B−1] under jax.value_and_grad: the value (optax's mean over
the 2B rows), jax.grad's gradients with respect to the anchors and the positives, and op by op the per-sample
losses lossgrad reports, ½(ℓᵢ + ℓᵢ₊B), taken in the same trace by optax's own lines (golden_lowp_xla_ntxent); every
number as float.hex (arrays of more than 4,096 by SHA-256). `reproduced`: False where lossgrad says its float64
numbers are its formulas (under jit rows of 32 features or fewer; from 4,096 elements, rows of 2,048 or more), None
where only the value is not (the sum over the 2B × 2B matrix from 4,096 elements, and on AVX-512, where LLVM's lanes
are not measured). Under jit JAX returns the value alone: the records' losses are None.

    python3 scripts/golden_xla64_ntxent.py               # the golden file
    python3 scripts/golden_xla64_ntxent.py --measure 200  # random rounds against lossgrad
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, digest, matches  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "xla64_ntxent.json"
TEMPERATURES = (0.07, 0.5, 1.0, 0.1)
KINDS = ("random", "near", "opposite", "scaled")
# (B, d): one pair; rows of one feature (the quotient by the norm); every sum below 4,096 elements; rows of more
# than 32 (XLA's windows); from 4,096 products YNNPACK's row sums (rows of 65 to 127 in two tiles, from 128 in
# tiles of 128, from 1,025 in blocks of 1,024) and its sums over the partner rows (the rows i in slices of
# 16384 // (N·d)); from 32 pairs, whose 2B × 2B matrix YNNPACK sums (the value refused)
SHAPES = ((1, 1), (1, 6), (2, 1), (2, 3), (3, 7), (4, 1), (5, 16), (6, 2), (8, 8), (11, 33), (16, 3), (2, 100),
          (20, 10), (17, 22), (31, 4), (32, 2), (24, 64), (5, 100), (40, 3), (63, 2), (3, 128), (64, 2), (70, 3),
          (5, 300), (2, 1100))
# under jit, rows of more than 32 features: every product stored (below 4,096 the partner sums FMA chains; from
# 4,096 YNNPACK's, over the partners j in slices of 16384 // d rows), the value in row order from 18 to 32 rows
JIT_SHAPES = ((1, 33), (2, 100), (5, 40), (9, 33), (12, 40), (16, 45), (20, 50), (24, 64), (3, 128), (5, 300),
              (40, 40), (2, 1100), (30, 600), (6, 2047))
# (shape, jit, kind): shapes and modes lossgrad leaves to its formulas (under jit; rows of 2,048 features), two with
# norms below the ε clip (the formulas' gradient takes a clipped norm as a constant, as jax.grad does)
REFUSED = (((2, 2048), False, "random"), ((3, 5), True, "random"), ((8, 16), True, "random"),
           ((4, 5), True, "tiny"), ((2, 2048), False, "tiny"))
# inputs at the edges: norms below the ε clip, subnormals (which XLA flushes to zero rows), a
# positive equal to its anchor, and logits far apart (every negative's e^x underflowing to 0)
FOUND = ((2001, (4, 5), "tiny", 0.5), (2003, (3, 4), "subnormal", 0.1),
         (2004, (5, 6), "equal", 0.07), (2005, (3, 3), "spread", 0.001))


# products whose exact value lies just below the normal range, in [2⁻¹⁰²² − 2⁻¹⁰⁷⁵, 2⁻¹⁰²² − 2⁻¹⁰⁷⁶): the processor
# flushes them to 0 (it rounds to 53 bits first), where numpy's rounding onto the subnormal grid gives 2⁻¹⁰²²; under
# jit and op by op
TIES = ((2006, (2, 40), "tie-cosine", 1e-300), (2007, (2, 40), "tie-gradient", 1 / 6))


def _ties(kind: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """"tie-cosine": a cosine term x·y = 2⁻¹⁰²²(1 − 2⁻⁵³), x = 2⁻⁵¹¹ (at τ = 1e−300 it decides the value);
    "tie-gradient": a positive's element 2⁻¹⁰²¹(1 − 2⁻⁵³), whose gradient's last product is ½ of it."""
    a, p = np.zeros(shape), np.zeros(shape)
    a[0, 0], p[0, 2 if kind == "tie-cosine" else 1], a[1, 2 if kind == "tie-gradient" else 3] = 1.0, 1.0, 1.0
    p[1, 4 if kind == "tie-cosine" else 3] = 1.0
    if kind == "tie-cosine":
        a[0, 1], p[0, 1] = 2.0**-511, np.nextafter(2.0**-511, 0)
    else:
        p[1, 5] = 2.0**-1021 * (1 - 2.0**-53)
    return a, p


def inputs(seed: int, shape: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Anchors and positives: normal draws; "near": positives 1e−3 from their anchors; "opposite": positives the
    anchors negated, plus noise; "scaled": rows scaled from 1e−3 to 1e3; "tiny": times 1e−9 (squared norms below
    ε = 2⁻⁵², clipped); "subnormal": times 1e−310 (read as zeros); "equal": positives the
    anchors; "spread": near-parallel rows at τ = 0.001, the negatives' e^x far below the positive's."""
    if kind.startswith("tie-"):
        return _ties(kind, shape)
    rng = np.random.default_rng(seed)
    a, p = rng.normal(size=shape), rng.normal(size=shape)
    if kind == "near" or kind == "spread":
        return a, a + 1e-3 * p
    if kind == "opposite":
        return a, -a + 0.3 * p
    if kind == "scaled":
        scale = 10.0 ** rng.uniform(-3, 3, size=(shape[0], 1))
        return a * scale, p * scale
    if kind == "tiny":
        return a * 1e-9, p * 1e-9
    if kind == "subnormal":
        return a * 1e-310, p * 1e-310
    return (a, a.copy()) if kind == "equal" else (a, p)


def reproduced(shape: tuple[int, int], jit: bool) -> bool | None:
    """As lowp_xla64_ntxent says (on AVX2): False: lossgrad's formulas; None: the value alone."""
    b, d = shape
    n = 2 * b
    if (jit and d <= 32) or (n * n * d >= 4096 and d >= 2048):
        return False
    return None if n * n >= 4096 else True


def optax_results(a: np.ndarray, p: np.ndarray, tau: float, jit: bool) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    from golden_lowp_xla_ntxent import _pair_losses

    b = a.shape[0]
    labels = jnp.concatenate([jnp.arange(b), jnp.arange(b)])

    def loss(x: Any, y: Any) -> Any:
        e = jnp.concatenate([x, y])
        return optax.ntxent(e, labels, temperature=tau), (None if jit else _pair_losses(e, labels, tau))
    step = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    if jit:  # (the loss alone: a further output would change what XLA fuses)
        step = jax.jit(step)
    (value, losses), (ga, gp) = step(jnp.asarray(a), jnp.asarray(p))
    return {"value": float(value).hex(), "losses": None if jit else _kept(np.asarray(losses)),
            "grad": _kept(np.asarray(ga)), "grad_target": _kept(np.asarray(gp))}


def record(seed: int, shape: tuple[int, int], kind: str, tau: float, jit: bool) -> dict:
    a, p = inputs(seed, shape, kind)
    return {"seed": seed, "shape": list(shape), "kind": kind, "temperature": tau, "jit": jit,
            "inputs_sha256": digest(a, p), "reproduced": reproduced(shape, jit), **optax_results(a, p, tau, jit)}


def cases() -> list[dict]:
    recs = []
    for i, shape in enumerate(SHAPES):
        recs.append(record(3000 + i, shape, KINDS[i % len(KINDS)], TEMPERATURES[i % len(TEMPERATURES)], False))
    for i, shape in enumerate(JIT_SHAPES):
        recs.append(record(3200 + i, shape, KINDS[i % len(KINDS)], TEMPERATURES[i % len(TEMPERATURES)], True))
    for i, (shape, jit, kind) in enumerate(REFUSED):
        recs.append(record(3100 + i, shape, kind, 0.5, jit))
    recs += [record(seed, shape, kind, tau, False) for seed, shape, kind, tau in FOUND]
    return recs + [record(seed, shape, kind, tau, jit) for seed, shape, kind, tau in TIES for jit in (False, True)]


def lossgrad_results(rec: dict, a: np.ndarray, p: np.ndarray, cpu: str | None = None) -> dict[str, Any]:
    """lossgrad's per-sample losses and its mean (optax's value over the 2B rows), the anchors the predictions, with
    the kernels of processor `cpu` (None: as lossgrad.cpu selects it)."""
    import lossgrad

    kw = dict(convention="optax", dtype="float64", jit=rec["jit"], temperature=rec["temperature"], ntxent=True,
              cpu=cpu)
    return {reduction: lossgrad.evaluate("contrastive", p, a, reduction=reduction, **kw)
            for reduction in ("none", "mean")}


def agrees(rec: dict, results: dict[str, Any], value: bool = True) -> bool:
    """Whether lossgrad's losses, gradients and (`value`) value have the record's bits, with no warning but the
    value's (where it is lossgrad's own sum)."""
    said = [w for r in results.values() for w in r.warnings if "computes NaN there" not in w]  # (NaN explained)
    ok = (rec["losses"] is None or matches(results["none"].losses, rec["losses"])) and all(
        not value and w.startswith("the reduced value is lossgrad's own sum") for w in said)
    r = results["mean"]
    ok = ok and matches(r.grad, rec["grad"]) and matches(r.grads["target"], rec["grad_target"])
    return ok and (not value or np.array_equal(r.value, float.fromhex(rec["value"]), equal_nan=True))


def measure(rounds: int, seed: int = 20261206) -> str:
    """Random rounds (shapes, kinds, τ) where lossgrad says it reproduces JAX op by op: how many are apart (the
    value left out where lossgrad says it is its own sum: from 4,096 elements, and on AVX-512 beyond one pair)."""
    from lossgrad import cpu

    rng = np.random.default_rng(seed)
    apart, grads, losses, values, done, jits = 0, 0, 0, 0, 0, 0
    while done < rounds:
        b = int(rng.integers(1, 100 if rng.random() < 0.3 else 12))
        d = int(rng.integers(1, 2048 if rng.random() < 0.15 else 140))
        shape, jit = (b, d), bool(rng.random() < 0.5)
        said = reproduced(shape, jit)
        if said is False:
            continue
        seed = int(rng.integers(1 << 30))
        kind = str(rng.choice(KINDS))
        a, p = inputs(seed, shape, kind)
        rec = {"temperature": float(rng.choice(TEMPERATURES)), "jit": jit}
        rec |= optax_results(a, p, rec["temperature"], jit)
        value = said is True and (cpu.selected() == "avx2" or b == 1)
        if not agrees(rec, lossgrad_results(rec, a, p), value=value):
            apart += 1
            print("apart:", shape, rec["temperature"], kind, seed)
        grads, losses, values = grads + 2 * b * d, losses + b * (not jit), values + value
        jits += jit
        done += 1
    return (f"{rounds} rounds ({jits} under jit): {grads} gradient elements, {losses} losses, {values} values; "
            f"{apart} rounds apart")


if __name__ == "__main__":
    from golden64 import main

    main(OUT, "scripts/golden_xla64_ntxent.py", cases, measure)
