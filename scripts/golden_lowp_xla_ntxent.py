"""Record JAX's CPU results for optax's ntxent in float32, float16 and bfloat16, op by op and under jax.jit, for
tests/golden/lowp_xla_ntxent.json (read by tests/test_lowp_xla_ntxent.py).

Each record: the anchors a (lossgrad's --pred) and positives p (--target), already representable in the dtype; τ;
jit (jax.jit around jax.value_and_grad, or each operation on its own); optax.ntxent([a; p], [0..B−1, 0..B−1], τ)
and jax.grad of it with respect to a and p; and the per-sample losses lossgrad reports, ½(ℓᵢ + ℓᵢ₊B) with
ℓ = −log_softm at each row's positive, taken as optax's own lines form log_softm, in the same trace (the value and
gradient are optax's function itself; under jit none, as a further output changes what XLA fuses). Numbers are
the shortest decimals that read back to the same float32.

    python3 scripts/golden_lowp_xla_ntxent.py
    python3 scripts/golden_lowp_xla_ntxent.py --one-feature 4096 4100   # lossgrad against JAX, nothing written
    python3 scripts/golden_lowp_xla_ntxent.py --wide    # tests/golden/lowp_xla_ntxent_wide.json

--wide records float32 batches of wide rows (WIDE: under jit from 8,193 features, where YNNPACK's dot over a row
runs in blocks of 8192, and op by op beyond 32,768) by digest: the inputs come from wide_inputs(seed), and the record
holds the SHA-256 of the float32 inputs and of each gradient, the value and the losses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import DTYPES, _np_dtype, _rounded, _short, digest  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_ntxent.json"
TEMPERATURES = (0.07, 0.5, 1.0)


def _pair_losses(e, labels, tau):
    """½(ℓᵢ + ℓᵢ₊B), ℓ = −log_softm at the positives, by optax.ntxent's own lines (optax 0.2.8)."""
    import jax.numpy as jnp
    from jax import lax
    from optax.losses import _regression

    xcs = _regression.cosine_similarity(e[None, :, :], e[:, None, :], epsilon=jnp.finfo(e.dtype).eps) / tau
    labels1, labels2 = jnp.expand_dims(labels, axis=1), jnp.expand_dims(labels, axis=0)
    matches = labels1 == labels2
    diffs = matches ^ 1
    matches = jnp.bool_(matches - jnp.eye(matches.shape[0]))
    xcs_diffs = jnp.where(diffs == 1, xcs, -jnp.inf)
    xcs_matches = jnp.where(matches == 1, xcs, -jnp.inf)
    xcs_max = jnp.max(jnp.concatenate((xcs_diffs, xcs_matches), axis=-1), axis=1, keepdims=True)
    numer = xcs_matches - lax.stop_gradient(xcs_max)
    denom = jnp.sum(jnp.exp(xcs_diffs - lax.stop_gradient(xcs_max)), axis=1, keepdims=True) + jnp.exp(numer)
    log_softm = numer - jnp.log(denom)
    n = e.shape[0]
    rows = -log_softm[jnp.arange(n), (jnp.arange(n) + n // 2) % n]
    return (rows[: n // 2] + rows[n // 2:]) / 2


def record(a: np.ndarray, p: np.ndarray, tau: float, dtype: str, jit: bool, name: str | None = None) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    kind = _np_dtype(dtype)
    b = a.shape[0]
    labels = jnp.concatenate([jnp.arange(b), jnp.arange(b)])

    def loss(x, y):
        e = jnp.concatenate([x, y])
        return optax.ntxent(e, labels, temperature=tau), (None if jit else _pair_losses(e, labels, tau))
    step = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    if jit:  # (the loss alone: a further output would change what XLA fuses)
        step = jax.jit(step)
    (value, losses), (ga, gp) = step(jnp.asarray(a.astype(kind)), jnp.asarray(p.astype(kind)))
    out = {"dtype": dtype, "jit": jit, "temperature": tau, "pred": _short(a), "target": _short(p),
           "value": str(np.float32(value)), "losses": None if jit else _short(np.asarray(losses, dtype=np.float32)),
           "grad": _short(np.asarray(ga, dtype=np.float32)), "grad_target": _short(np.asarray(gp, dtype=np.float32))}
    return out | ({"name": name} if name else {})


def adversarial(dtype: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Rows lossgrad's kernels must get right at their edges: equal, near-parallel and opposite pairs, norms at and
    below the ε clip (the dtype's ε: √ε and smaller), one feature, rows of 17 and 33 features."""
    eps = float(np.finfo(_np_dtype(dtype)).eps)
    out = [(np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]]), np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.0]]),
            "equal-opposite"),
           (np.array([[1.0, 1e-3], [0.0, 1.0], [3.0, 3.01]]), np.array([[1.0, 0.0], [1e-3, 1.0], [3.0, 3.0]]),
            "near-parallel"),
           (np.array([[np.sqrt(eps), 0.0], [0.1 * np.sqrt(eps), 0.0], [1.0, 1.0]]),
            np.array([[0.0, np.sqrt(eps)], [0.3, -0.2], [0.0, 0.5 * np.sqrt(eps)]]), "at-eps-clip"),
           (np.array([[2.0], [-1.0], [0.5]]), np.array([[1.0], [3.0], [-0.25]]), "one-feature")]
    rng = np.random.default_rng(7)
    for d in (17, 33):
        a = rng.standard_normal((5, d))
        out.append((a, a + 1e-3 * rng.standard_normal((5, d)), f"near-parallel-{d}"))
    return [(_rounded(a, dtype), _rounded(p, dtype), name) for a, p, name in out]


def randoms(rng, dtype: str, jit: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Batches of 2 to 70 pairs (odd ones among them) of 1 to 100 features, scaled from 0.01 to 30, positives near
    or opposite their anchors."""
    out = []
    for b, d in ((2, 1), (2, 3), (3, 5), (5, 16), (7, 13), (8, 8), (11, 33), (16, 7), (17, 31), (23, 2), (31, 64),
                 (32, 4), (33, 9), (40, 3), (50, 2), (64, 1), (70, 5)):
        a = rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0])
        p = a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 0.3, 3.0])
        out.append((_rounded(a, dtype), _rounded(p, dtype)))
    return out


# float32 under jit: batches where lossgrad reproduces XLA's fused kernels beyond the shapes above (8 rows: jnp.sum
# of the matrix in 8 lanes; 8 pairs or more with 9 features or more, YNNPACK summing the products; over 32 features)
JIT_SHAPES = ((4, 6), (4, 9), (6, 40), (7, 100), (8, 16), (12, 12), (25, 13), (36, 10))


def jit_randoms(rng) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for b, d in JIT_SHAPES:
        a = rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0])
        p = a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 0.3, 3.0])
        out.append((_rounded(a, "float32"), _rounded(p, "float32")))
    return out


# float32 batches whose sums YNNPACK takes in several slices or fuses with their products: the sums over the rows in
# slices of 32768 // (N·D) rows (40 × 30), YNNPACK's squared norms, the norm's backward sum in 4 lanes and the
# N × N matrix's sum (64 × 32; 33 × 70, whose 70 features leave 2 past the lanes), that sum in slices of rows
# (100 × 16: N² > 32768), and under jit the sum over the partners in slices of 32768 // D rows (8 × 2049)
LARGE = ((40, 30, False), (64, 32, False), (100, 16, False), (64, 32, True), (33, 70, True), (100, 16, True),
         (8, 2049, True))


def large_randoms(rng) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    out = []
    for b, d, jit in LARGE:
        a = rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0])
        p = a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 0.3, 3.0])
        out.append((_rounded(a, "float32"), _rounded(p, "float32"), jit))
    return out


# float32 under jit, few features (2 to 8) where YNNPACK sums the products: the gradient's two final loops (the
# anchors' rows, the positives') as LLVM vectorizes them (lossgrad.lowp_xla_ntxent_jit.vector_block): 8 rows at a
# time with 0 to 3 left over (32 × 5), or 4 to 7 from EIGHTS_FROM eights (44 × 3, 29 × 5, 27 × 6, 136 × 7) and
# below it 4 at a time (36 × 3, 36 × 4, 20 × 7), the anchors' and positives' thresholds apart (124 × 7), the
# positives' gathered rows where B is a power of two (32 × 4, 64 × 8), none vectorized (48 × 8, 40 × 2)
BLOCK = ((44, 3), (36, 3), (32, 4), (36, 4), (29, 5), (32, 5), (27, 6), (20, 7), (124, 7), (136, 7), (64, 8),
         (48, 8), (40, 2))


def block_randoms(rng, shapes: tuple[tuple[int, int], ...] = BLOCK,
                  dtype: str = "float32") -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for b, d in shapes:
        a = rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0])
        p = a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 0.3, 3.0])
        out.append((_rounded(a, dtype), _rounded(p, dtype)))
    return out


# float32 under jit, 8 to 22 pairs below 4096 products: the sums over the partner rows as LLVM vectorizes XLA's fused
# loop (lossgrad.lowp_xla_ntxent_jit.NARROW, WIDE: each plan from 16 to 32 rows, with up to 8 features and from 9),
# and from 34 rows stored and summed in XLA's windows
PARTNER = ((8, 3), (8, 12), (9, 5), (9, 10), (10, 6), (10, 9), (11, 4), (12, 7), (13, 2), (15, 4), (16, 3), (17, 3),
           (22, 2))


# float16 under jit, 8 to 16 pairs: the partner sums as LLVM vectorizes them in float16
# (lossgrad.lowp_xla_ntxent.HALF_NARROW, HALF_WIDE: each plan, with up to 8 features and from 9)
HALF_PARTNER = ((8, 3), (8, 12), (9, 5), (9, 10), (10, 6), (10, 9), (11, 4), (12, 7), (12, 9), (13, 2), (15, 11),
                (16, 3), (16, 10))


# under jit, one feature: the partner sums as LLVM vectorizes them from 16 to 32 rows
# (lossgrad.lowp_xla_ntxent_jit.ONE_FEATURE; in float16 lossgrad.lowp_xla_ntxent.HALF_ONE_FEATURE), XLA's windows
# from 34 rows, and in float32 from 64 rows (4096 products) YNNPACK's dot of each row of the scores (lowp_xla.dot_rows)
ONE_FEATURE = tuple((b, 1) for b in (*range(8, 18), 31, 32, 33, 100, 1000))
HALF_ONE_FEATURE = tuple((b, 1) for b in range(8, 18))


def equal_rows(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """22 pairs of 19 features, each positive equal to its anchor, of magnitude 30: in float16 the gradients
    underflow, and a row whose every term of a backward sum is −0 sums to +0 (XLA's reduce starts from +0)."""
    a = _rounded(np.random.default_rng(6).standard_normal((22, 19)) * 30, dtype)
    return a, a.copy()


def records(rng) -> list[dict]:
    out = []
    for dtype in DTYPES:
        for jit in (False, True):
            for k, (a, p) in enumerate(randoms(rng, dtype, jit)):
                out.append(record(a, p, TEMPERATURES[k % 3], dtype, jit))
            for a, p, name in adversarial(dtype):
                out += [record(a, p, tau, dtype, jit, name) for tau in TEMPERATURES]
    for k, (a, p) in enumerate(jit_randoms(np.random.default_rng(20261203))):  # (after the rest: their draws kept)
        out.append(record(a, p, TEMPERATURES[k % 3], "float32", True))
    for dtype in ("float16", "bfloat16"):
        for jit in (False, True):
            out.append(record(*equal_rows(dtype), 0.07, dtype, jit, "equal-rows-underflow"))
    for k, (a, p, jit) in enumerate(large_randoms(np.random.default_rng(20261204))):
        out.append(record(a, p, TEMPERATURES[k % 3], "float32", jit, "large"))
    for k, (a, p) in enumerate(block_randoms(np.random.default_rng(20261205))):
        out.append(record(a, p, TEMPERATURES[k % 3], "float32", True, "vector-block"))
    for k, (a, p) in enumerate(block_randoms(np.random.default_rng(20261206), PARTNER)):
        out.append(record(a, p, TEMPERATURES[k % 3], "float32", True, "partner-vectors"))
    for k, (a, p) in enumerate(block_randoms(np.random.default_rng(20261207), HALF_PARTNER, "float16")):
        out.append(record(a, p, TEMPERATURES[k % 3], "float16", True, "half-partner-vectors"))
    for k, (a, p) in enumerate(block_randoms(np.random.default_rng(20261208), ONE_FEATURE)):
        out.append(record(a, p, TEMPERATURES[k % 3], "float32", True, "one-feature-rows"))
    for k, (a, p) in enumerate(block_randoms(np.random.default_rng(20261209), HALF_ONE_FEATURE, "float16")):
        out.append(record(a, p, TEMPERATURES[k % 3], "float16", True, "half-one-feature-rows"))
    return out


def pairs_records(rng) -> list[dict]:
    """Op by op in bfloat16 ("bf16 pairs"): the squared norms, the cosines' sums over the features, the rows' sums
    of e^x and the value's sum over the matrix read bfloat16s, from 4096 elements YNNPACK's pairs. Inputs on a grid,
    placed where float32's order differs (golden_lowp_xla._apart)."""
    import lossgrad
    from golden_lowp_xla import _apart, _grid, float32_order

    def run(a, p):
        r = lossgrad.contrastive(p, a, ntxent=True, temperature=0.5, convention="optax", dtype="bfloat16", jit=False)
        return r.losses, r.grad, r.grads["target"], np.array([r.value])
    out = []
    for b, d in ((70, 3), (100, 41)):
        a, p = _apart(rng, lambda g, b=b, d=d: (_grid(g, (b, d)), _grid(g, (b, d))), run, float32_order)
        out.append(record(a, p, 0.5, "bfloat16", False, "bf16 pairs"))
    return out


def check_one_feature(pairs: list[int]) -> None:
    """Record float32 batches of these many pairs of one feature under jit (two each, standard normal) and print how
    many gradient elements lossgrad gives apart from JAX's: the rows beyond the golden file's (8,192 products per dot
    block: 4097 pairs and more)."""
    import lossgrad

    rng = np.random.default_rng(20261210)
    for b in pairs:
        apart = 0
        for k in range(2):
            a, p = (_rounded(rng.standard_normal((b, 1)), "float32") for _ in range(2))
            rec = record(a, p, TEMPERATURES[k], "float32", True)
            r = lossgrad.contrastive(p.astype(np.float64), a.astype(np.float64), ntxent=True,
                                     temperature=TEMPERATURES[k], convention="optax", dtype="float32", jit=True)
            for got, want in ((r.grad, rec["grad"]), (r.grads["target"], rec["grad_target"])):
                apart += int((np.asarray(got, np.float32) != np.array(want, np.float32)).sum())
        print(f"{b} pairs of one feature: {apart} of {4 * b} gradient elements apart from JAX's")


WIDE_OUT = OUT.with_name("lowp_xla_ntxent_wide.json")
# (pairs, features, jit, name): under jit rows of 8,193 to 32,768 features (YNNPACK's dot blocks; rows of more are
# refused under jit), op by op rows of more than 32,768 (and 9 pairs: 18 rows, past a join of YNNPACK's tree)
WIDE = ((2, 10000, True, "dot blocks"), (6, 20000, True, "dot blocks"), (2, 33000, False, "wide rows"),
        (9, 34000, False, "wide rows"), (3, 70001, False, "wide rows"))


def wide_inputs(seed: int, b: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchors (scale 1) and positives near them (noise 0.5), float32 values."""
    rng = np.random.default_rng(seed)
    a = _rounded(rng.standard_normal((b, d)), "float32")
    return a, _rounded(a + rng.standard_normal((b, d)) * 0.5, "float32")


def wide_records() -> list[dict]:
    out = []
    for k, (b, d, jit, name) in enumerate(WIDE):
        seed = 20261204 + k
        a, p = wide_inputs(seed, b, d)
        rec = record(a, p, TEMPERATURES[k % 3], "float32", jit, name)
        out.append({"pairs": b, "features": d, "jit": jit, "name": name, "seed": seed,
                    "temperature": TEMPERATURES[k % 3], "inputs": digest(np.concatenate([a, p])),
                    "value": rec["value"], "losses": rec["losses"],
                    "grad": digest(np.array(rec["grad"], dtype=np.float32)),
                    "grad_target": digest(np.array(rec["grad_target"], dtype=np.float32))})
        print(f"{b} pairs of {d} features, jit={jit}: recorded", flush=True)
    return out


def main() -> None:
    from make_golden import jax_versions

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if "--one-feature" in sys.argv:
        check_one_feature([int(b) for b in sys.argv[sys.argv.index("--one-feature") + 1:]])
        return
    if "--wide" in sys.argv:
        WIDE_OUT.write_text(json.dumps({"versions": jax_versions(), "records": wide_records()}) + "\n")
        print(f"{WIDE_OUT}: {WIDE_OUT.stat().st_size} bytes")
        return
    recs = records(np.random.default_rng(20261202)) + pairs_records(np.random.default_rng(20261211))
    meta = jax_versions()
    OUT.write_text(json.dumps({"versions": meta, "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
