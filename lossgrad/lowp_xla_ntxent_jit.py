"""JAX's CPU results (XLA) for optax's ntxent under jax.jit in float32, bit for bit, where XLA's order is known.

Under jit τ is a constant: XLA multiplies by 1/τ (rounded to float32) instead of dividing. The cosine matrix is no
dot: XLA fuses e/‖e‖ (a product with the reciprocal 1/‖e‖; one feature: the quotient), their product and the sum
over the features into one loop, and LLVM contracts each product into the running sum (an FMA chain from the first
product). Where the N × N × D products reach 4096 (or the rows more than 32 features) the products are stored and
summed as jnp.sum adds them instead: XLA's windows, or YNNPACK's lanes (and, for the sums over the partner rows in
the backward pass, YNNPACK's tree in slices of rows: lowp_xla_partner). The squared norms are summed in XLA's fused
loop (lowp_xla_rows.fused_squares; beyond 32 features, or from N·D = 4096, stored and summed in jnp.sum's order),
clipped at ε, and every quotient by a row's norm is a product with 1/‖e‖, 1/max(ε, Σe²) or ½/‖e‖ computed once per
row.
jax.grad's backward pass forms optax's masked softmax gradient in one expression: at the positive an FMA, G·eˣ − 1/N
with G = (1/N)/(Σ + eˣ); elsewhere the row's Σ G (−0/Σ each: NaN where every negative underflowed) times eˣ. Its sums
over the partner rows (below 4096 products) are FMA chains in the order of the rows up to 14 rows, LLVM's vectors from
16 to 32 (NARROW, WIDE, ONE_FEATURE) and XLA's windows of the stored products from 34; and the norm's backward pass a
chain over the features of (g·1/max(ε, Σe²))·e (from N·D = 4096 YNNPACK's fusion of it, in 4 lanes and blocks of 8192
features: lowp_xla.dot_rows). The sum of the two terms g·(1/‖e‖) + m·e (m = ((−s·½/‖e‖)·w)·2, w the clip's share)
contracts one product of each: through e[None]/‖e‖ (g summed over the rows i) the FMA is on m·e, through e[:, None]/‖e‖
(summed over the partners j) on g·(1/‖e‖); one feature: on m·2e. Where LLVM vectorizes that final loop 8 rows at a time
(vector_block), its vector code fuses g·(1/‖e‖) through both broadcasts in the first columns. With one feature the sums
over the partner rows of 4096 products or more are YNNPACK's dot of each row of the scores with u (lowp_xla.dot_rows: 4
lanes, blocks of 8192). Measured with jax 0.10.2 on AVX-512 for batches of up to 7 pairs (N = 14 rows) of 1 to 100
features, from 8 pairs with 2 features or more up to 1003 pairs and 2049 features, 2 to 12 pairs of 4,097 to 32,768
features, and with one feature up to 4100 pairs. The value, jnp.sum of the N × N matrix, goes in row order, LLVM's
lanes, XLA's windows or YNNPACK's (value_sum). With AVX2 only (vectors of 8 floats) LLVM vectorizes the final loops
(vector_block: AVX2_FOUR, AVX2_SCALE_FUSED) and the sums over 16 to 32 partner rows (avx2_blocks) otherwise; measured
with jax 0.10.2 on an AMD EPYC with AVX2 from 2 to 72 pairs of 1 to 12 features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import cpu
from .losses._ops import Array
from .lowp_xla import (
    F32,
    YNN_FROM,
    LanePlan,
    _fma,
    _in_order,
    div,
    dot_rows,
    ftz,
    halve,
    mul,
    vector_fma_sum,
    xla_exp,
    xla_log,
    xla_sum,
    xla_sum2d,
)
from .lowp_xla_partner import TOO_WIDE, fits, partner_sum
from .lowp_xla_rows import fused_squares

STORED_FROM = 33  # from this many features XLA stores the products and sums them as jnp.sum does

# The sums over the partner rows from 16 to 32 rows below 4096 products, as LLVM vectorizes XLA's fused loop over the
# N rows (lowp_xla.vector_fma_sum: blocks of rows multiply-added lane by lane in the plan's order, the lanes halved,
# an epilogue's vector, the rows left chained on). With up to 8 features the loop loads interleaved rows and goes as
# NARROW says; from 9 as WIDE says (at 20 rows the sum over the rows i; the one over the partners j as NARROW). From
# 34 rows XLA stores the products and sums them in its windows. Measured with jax 0.10.2 on AVX-512
# (scripts/measure_ntxent_block.py).
NARROW: dict[int, LanePlan] = {16: (8, (0,), 0), 18: (8, (0, 1), 0), 20: (4, (0, 2, 3, 1), 0), 22: (4, (0, 2, 3, 1), 0),
                          24: (8, (0, 1), 0), **{n: (8, (0, 1, 2), 0) for n in range(26, 33, 2)}}
WIDE: dict[int, LanePlan] = {16: (8, (0, 1), 0), 18: (8, (0, 1), 2), 20: (8, (0, 1), 4)}
# With one feature the loop reads the rows' contiguous terms, both sums alike: 8 lanes over every whole block of 8
# rows, but 4 lanes (and a vector epilogue of 4) at 20 and 22 rows; an epilogue of 2 at 18; the rest chained on. Read
# from XLA's dump of the LLVM IR (XLA_FLAGS=--xla_dump_to) and measured with jax 0.10.2 on AVX-512.
ONE_FEATURE: dict[int, LanePlan] = {16: (8, (0, 1), 0), 18: (8, (0, 1), 2), 20: (4, (0, 1, 2, 3), 4),
                                    22: (4, (0, 1, 2, 3), 4), **{n: (8, (0, 1, 2), 0) for n in range(24, 31, 2)},
                                    32: (8, (0, 1, 2, 3), 0)}
STORED_ROWS_FROM = 34

# With AVX2 (vectors of 8 floats) LLVM goes over the N rows 8 or 4 at a time (AVX2_LANES). With 4, the sum over the
# rows i goes in two accumulators (blocks 0, 2, 4, … and 1, 3, 5, …), but for the (N, features) of
# AVX2_ONE_ACCUMULATOR; the sum over the partners j in one, but for AVX2_TWO_OVER_PARTNERS' (float16's only). In
# float32 the backend joins two accumulators into one chain of multiply-adds: the first's blocks in order, then the
# second's with its first two swapped (0, 2, 3, 1 at 20 rows; 0, 2, 4, 3, 1, 5 at 28). No epilogue vector: the rows
# left are chained on, and rows of 2 to 8 features (loaded interleaved, with gaps) leave at least one row to the
# scalar loop. Read from XLA's dump of the LLVM IR and measured with jax 0.10.2 on an AMD EPYC with AVX2: every N from
# 16 to 32 and every number of features below 4096 products (float16: 1 to 40 features), by
# scripts/measure_ntxent_block.py and tests/test_avx2_xla_seq.py's golden records.
AVX2_LANES = {16: 8, 18: 8, 20: 4, 22: 4, 24: 8, 26: 8, 28: 4, 30: 4, 32: 8}
AVX2_ONE_ACCUMULATOR = {"float32": {(20, 5)}, "float16": {(n, d) for n in (20, 22, 28, 30) for d in (n // 2, n)}}
AVX2_TWO_OVER_PARTNERS = {"float32": set(), "float16": {(20, 1), (22, 1), (28, 1), (30, 1), (28, 3), (28, 4), (30, 3),
                                                        (30, 4)}}

# The gradient's final loops over the rows, one for the anchors' B rows and one for the positives' (g·(1/‖e‖) + m·e
# through each of the two broadcasts, then their sum), as LLVM vectorizes them: 8 rows at a time, where its vector
# code fuses the product g·(1/‖e‖) of both terms in the first SCALE_FUSED columns (the scalar code fuses m·e through
# e[None]/‖e‖). With 4 to 7 rows left over a loop goes 4 rows at a time instead, which fuses as the scalar code
# does, unless the rows make EIGHTS_FROM eights or more (anchors', positives'). Where B is a power of two, the
# positives' loop with 4 or 8 features gathers its rows (from 16 pairs leaving the last 8 to the scalar code) and
# fuses GATHERED columns. With one eight and rows left over (9 to 15 pairs) neither loop is vectorized; 2 and 9 or
# more features fuse as the scalar code does throughout. Measured with jax 0.10.2 on AVX-512:
# scripts/measure_ntxent_block.py.
SCALE_FUSED = {3: 2, 4: 4, 5: 4, 6: 4, 7: 6}
EIGHTS_FROM = {3: (5, 5), 4: (5, 5), 5: (3, 3), 6: (3, 3), 7: (17, 15)}
GATHERED = {4: 4, 8: 8}
# With AVX2, LLVM's vector code fuses as the scalar code does 8 rows at a time; 4 at a time it fuses g·(1/‖e‖) in the
# first AVX2_SCALE_FUSED columns, both halves alike. It goes 4 at a time in a batch of 4 pairs, and with 4 to 7 pairs
# over AVX2_FOUR's eights (by features). Measured with jax 0.10.2 on an AMD EPYC with AVX2: each half's blocks read
# element by element for 2 to 57 pairs of 2 to 9 features, the rules then on 2 to 72 pairs of 1 to 12
# (scripts/measure_ntxent_block.py).
AVX2_SCALE_FUSED = SCALE_FUSED | {8: 8}
AVX2_FOUR = {3: range(2, 4), 4: range(2, 5), 5: range(2, 4), 6: range(2, 5), 7: range(2, 4)}



def unsupported_shape(pairs: int, features: int) -> str | None:
    """Why JAX's float32 ntxent of this batch under jit is not reproduced (None: it is): rows beyond the measured
    slices of YNNPACK."""
    if fits(2 * pairs, features):
        return None
    return (f"JAX's float32 ntxent under jit of {pairs} pairs of {features} feature{'s' if features != 1 else ''} "
            f"is not reproduced ({TOO_WIDE})")


def vector_block(pairs: int, features: int, positives: bool) -> tuple[int, int]:
    """The leading rows and columns of one half's final loop (the anchors', or the positives') that LLVM's vector
    code computes with both products g·(1/‖e‖) fused."""
    eights, left = divmod(pairs, 8)
    if cpu.selected() == "avx2":
        four = pairs == 4 or (left >= 4 and eights in AVX2_FOUR.get(features, ()))
        return (4 * (pairs // 4), AVX2_SCALE_FUSED[features]) if four and features in AVX2_SCALE_FUSED else (0, 0)
    if eights == 1 and left:
        return 0, 0
    if positives and features in GATHERED and pairs >= 8 and pairs & (pairs - 1) == 0:
        return (8 if pairs == 8 else pairs - 8), GATHERED[features]
    if features not in SCALE_FUSED or (left >= 4 and eights < EIGHTS_FROM[features][positives]):
        return 0, 0
    return 8 * eights, SCALE_FUSED[features]


def avx2_blocks(n: int, d: int, over_rows_i: bool, dtype: str = "float32") -> tuple[int, int, int]:
    """How LLVM's AVX2 code sums over the N partner rows (16 to 32) of d features: its lanes (AVX2_LANES),
    accumulators, and blocks, as many as fit the rows (2 to 8 features: the rows but one)."""
    lanes = AVX2_LANES[n]
    if lanes == 8:
        parts = 1
    elif over_rows_i:
        parts = 1 if (n, d) in AVX2_ONE_ACCUMULATOR[dtype] else 2
    else:
        parts = 2 if (n, d) in AVX2_TWO_OVER_PARTNERS[dtype] else 1
    rows = n - 1 if 2 <= d <= 8 else n
    return lanes, parts, rows // (lanes * parts) * parts


def avx2_plan(n: int, d: int, over_rows_i: bool) -> LanePlan:
    """avx2_blocks as one chain of multiply-adds: two accumulators' blocks joined as the backend joins them."""
    lanes, parts, blocks = avx2_blocks(n, d, over_rows_i)
    if parts == 1:
        return lanes, tuple(range(blocks)), 0
    return lanes, (*range(0, blocks, 2), 3, 1, *range(5, blocks, 2)), 0


def chain(x: Array, y: Array, times: Callable[[Array, Array], Array] = lambda a, b: mul(a, b),
          fused: Callable[[Array, Array, Array], Array] = _fma) -> Array:
    """Σₖ xₖ·yₖ over the last axis as XLA's fused loop adds it: the first product rounded, each further one
    contracted into the running sum (an FMA); `times` and `fused`: the dtype's product and FMA, flushed (float32's,
    or lowp_xla64's)."""
    acc = times(x[..., 0], y[..., 0])
    for k in range(1, x.shape[-1]):
        acc = fused(x[..., k], y[..., k], acc)
    return acc


def squared_norms(e: Array) -> Array:
    """Σe² along each row under jit: one feature its square; up to 32 XLA's fused loop (fused_squares, the loop over
    stored rows); more, the squares stored and added as jnp.sum adds them."""
    if e.shape[1] == 1:
        return mul(e[:, 0], e[:, 0])
    return xla_sum(mul(e, e)) if stored_rows(e) else fused_squares(e, False)


def stored_rows(e: Array) -> bool:
    """Whether XLA stores the products along the rows of e [N, D] and sums them as jnp.sum does (more than 32
    features, or N·D of 4096 or more: YNNPACK's row sums) rather than fusing them into its own loop."""
    return e.shape[1] >= STORED_FROM or e.size >= YNN_FROM


def stored(n: int, d: int) -> bool:
    """Whether XLA stores the N × N × D products before summing them (jnp.sum's order) rather than fusing them."""
    return n * n * d >= YNN_FROM or d >= STORED_FROM


# jnp.sum of the N × N matrix under jit, by N: the rows whose columns LLVM spreads over lanes (a lane per column
# modulo the width, each lane adding its columns' rows in order, column block by block); the other N up to 32 add the
# rows in order (a row's lanes are reduced into a running scalar sum, whose one non-zero term per row makes it the sum
# in row order: read from XLA's dump of the LLVM IR for 18 to 32 rows); from 34 XLA's windows of 32 × 32, and from
# 64 rows (4096 elements) YNNPACK's sum (both xla_sum2d)
COLUMN_LANES = {4: 4, 8: 8, 16: 8}


def _at_positives(v: Array) -> Array:
    """The N × N matrix holding v[i] at (i, i + N/2 mod N), each row's positive, and 0 elsewhere."""
    n = v.shape[0]
    m = np.zeros((n, n), dtype=F32)
    m[np.arange(n), (np.arange(n) + n // 2) % n] = v
    return m


def value_sum(lsm: Array) -> F32:
    """jnp.sum of the N × N matrix holding log_softm at each row's positive and 0 elsewhere, fused under jit: in row
    order, or in COLUMN_LANES' lanes (column c in lane c mod width, its rows in order, block after block of
    columns), the lanes then halved pairwise (4: (L₀ + L₂) + (L₁ + L₃)); from 34 rows XLA's windows of 32 × 32,
    from 4096 elements YNNPACK's sum of the whole matrix (xla_sum2d)."""
    n = lsm.shape[0]
    m = _at_positives(lsm)
    if n > 32:
        return xla_sum2d(m)
    if n in COLUMN_LANES:
        width = COLUMN_LANES[n]
        lanes = _in_order(m.reshape(n, n // width, width).transpose(2, 1, 0).reshape(width, -1))
        return F32(halve(lanes))
    return F32(_in_order(m.reshape(1, -1))[0] + F32(0))


@dataclass
class Fused:
    """optax.ntxent([a; p], [0..B−1, 0..B−1], τ) and jax.grad of it under jax.jit in float32 (N = 2B rows)."""

    a: Array
    p: Array
    tau: float

    def __post_init__(self) -> None:
        e = self.e = np.concatenate([self.a, self.p]).astype(F32)
        n, d = e.shape
        rows = self.rows = np.arange(n)
        self.pos = (rows + n // 2) % n
        eps = F32(2.0**-23)
        n2 = squared_norms(e)
        clipped = np.maximum(eps, n2)
        self.norm = np.sqrt(clipped).astype(F32)
        self.inv = div(F32(1), self.norm)
        self.w2 = div(F32(1), clipped)  # (the backward pass's ‖e‖^−2: one division by the clipped sum)
        self.half = div(F32(0.5), self.norm)
        self.share = (np.where(n2 == clipped, F32(1), F32(0)) / np.where(clipped == eps, F32(2), F32(1))).astype(F32)
        u = self.u = div(e, self.norm[:, None]) if d == 1 else mul(e, self.inv[:, None])
        if stored(n, d):
            cs = xla_sum(mul(u[None, :, :], u[:, None, :]).reshape(n * n, d)).reshape(n, n)
        else:
            cs = chain(u[:, None, :], u[None, :, :])
        self.invt = F32(1) / F32(self.tau)
        xcs = mul(cs, self.invt)
        self.diffs = np.ones((n, n), dtype=bool)
        self.diffs[rows, rows] = self.diffs[rows, self.pos] = False
        top = np.maximum(np.where(self.diffs, xcs, -np.inf).max(axis=1), xcs[rows, self.pos]).astype(F32)
        self.ds = np.where(self.diffs, xla_exp(ftz(xcs - top[:, None])), F32(0)).astype(F32)
        shifted = ftz(xcs[rows, self.pos] - top)
        self.numer = xla_exp(shifted)
        self.total = xla_sum(self.ds)
        self.denom = ftz(self.total + self.numer)
        self.log_softmax = ftz(shifted - xla_log(self.denom))

    def value(self, count: float) -> float:
        """−Σ log_softm / count (a division by the count converted to float32)."""
        return float(div(-value_sum(self.log_softmax), F32(count)))

    def losses(self) -> Array:
        """Each sample's loss, ½(ℓᵢ + ℓᵢ₊B), ℓ = −log_softm of the fused kernels (lossgrad's: JAX under jit returns the
        mean only)."""
        b = self.e.shape[0] // 2
        rows = -self.log_softmax
        return mul(ftz(rows[:b] + rows[b:]), F32(0.5))

    def scores(self, count: float) -> Array:
        """jax.grad's gradient with respect to the cosine matrix: at the positive G·eˣ − c as one FMA, elsewhere the
        row's Σ G times eˣ, then times 1/τ; c = 1/count, G = c/Σ at the positive and −0/Σ elsewhere."""
        n, rows, pos = self.e.shape[0], self.rows, self.pos
        c = F32(1) / F32(count)
        g = np.broadcast_to(F32(-0.0) / self.total[:, None], (n, n)).astype(F32)
        g[rows, pos] = div(c, self.denom)
        row = xla_sum(g)
        s = np.where(self.diffs, mul(row[:, None], self.ds), F32(0)).astype(F32)
        s[rows, pos] = _fma(g[rows, pos], self.numer, -c)
        return mul(s, self.invt)

    def partner_sums(self, s: Array) -> tuple[Array, Array]:
        """Σᵢ sᵢⱼ·uᵢ (through e[None]/‖e‖, over the rows i) and Σⱼ sᵢⱼ·uⱼ (over the partners j): FMA chains in row
        order, LLVM's vectors from 16 to 32 rows, or the stored products in jnp.sum's order (YNNPACK's tiles); with
        one feature from 4096 products YNNPACK's dot of each row of s with u (dot_rows)."""
        u = self.u
        n, d = u.shape
        if d == 1 and n * n >= YNN_FROM:
            column = np.broadcast_to(u[:, 0], (n, n))
            return dot_rows(np.ascontiguousarray(s.T), column)[:, None], dot_rows(s, column)[:, None]
        if n * n * d >= YNN_FROM or n >= STORED_ROWS_FROM:
            return (partner_sum(mul(s[:, :, None], u[:, None, :]), 0, ftz, fused=True),
                    partner_sum(mul(u[None, :, :], s[:, :, None]), 1, ftz, fused=True))
        over_i, over_j = (s.T[:, None, :], u.T[None, :, :]), (s[:, None, :], u.T[None, :, :])
        if n not in NARROW:
            return chain(*over_i), chain(*over_j)
        if cpu.selected() == "avx2":
            return vector_fma_sum(*over_i, avx2_plan(n, d, True)), vector_fma_sum(*over_j, avx2_plan(n, d, False))
        if d == 1:
            return vector_fma_sum(*over_i, ONE_FEATURE[n]), vector_fma_sum(*over_j, ONE_FEATURE[n])
        plans = NARROW if d <= 8 else WIDE
        return vector_fma_sum(*over_i, plans[n]), vector_fma_sum(*over_j, (NARROW if n == 20 else plans)[n])

    def through_norm(self, g: Array, on_scale: bool) -> Array:
        """g through e/‖e‖: g·(1/‖e‖) + m·e, m = ((−s·½/‖e‖)·w)·2, s = Σ (g·‖e‖^−2)·e (an FMA chain over the features,
        or jnp.sum's order of the stored products beyond 32; from N·D = 4096 YNNPACK's dot, dot_rows); `on_scale`:
        the FMA on g·(1/‖e‖), else on m·e."""
        e, d = self.e, self.e.shape[1]
        t = mul(g, self.w2[:, None])
        if d == 1:
            m = mul(mul(-mul(t, e)[:, 0], self.half), self.share)[:, None]
            return _fma(m, mul(F32(2), e), div(g, self.norm[:, None]))
        if e.size >= YNN_FROM:
            s = dot_rows(t, e)
        else:
            s = xla_sum(mul(t, e)) if d >= STORED_FROM else chain(t, e)
        m = mul(mul(mul(-s, self.half), self.share), F32(2))[:, None]
        return _fma(g, self.inv[:, None], mul(e, m)) if on_scale else _fma(e, m, mul(g, self.inv[:, None]))

    def grads(self, count: float) -> Array:
        """jax.grad of value(count) with respect to e (the anchors, then the positives)."""
        g_a, g_b = self.partner_sums(self.scores(count))
        n, d = self.e.shape
        on_scale = np.zeros((n, d), dtype=bool)
        for start, positives in ((0, False), (n // 2, True)):
            rows, cols = vector_block(n // 2, d, positives)
            on_scale[start:start + rows, :cols] = True
        through_rows = np.where(on_scale, self.through_norm(g_a, True), self.through_norm(g_a, False))
        out: Array = ftz(through_rows + self.through_norm(g_b, True))
        return out
