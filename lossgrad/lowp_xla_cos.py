"""JAX's cosine_distance (optax, epsilon 0) under jax.jit in float32 (and bfloat16: cosine_bf16) on CPU, bit for
bit: the losses, jnp.mean or jnp.sum of them, and jax.grad of either with respect to the predictions.

What XLA does with `jax.jit(jax.value_and_grad(...))` of cosine_distance(pred, target), the targets closed over
as constants (read from its optimized HLO, the fused kernels' optimized LLVM IR and their machine code):

- The targets' side is folded at compile time by XLA's HLO evaluator, which keeps subnormal results but the
  squares': ŷ = y · rsqrt(max(0, Σy²)), the squares in float32 (those below its normals flushed to 0), rsqrt as
  1/√ in float32 (two correctly rounded steps), the product in float32. The evaluator adds a reduce in float64
  and rounds the sum once; a row of more than 32 features in a batch below 4096 elements is first split into
  XLA's windows of 32 (the padding split between the ends), each window added in float32 in order, their sums
  then in float64.
- The predictions' side runs compiled (subnormals flushed): Σp² fused into its row loop (lowp_xla_rows'
  fused_squares: each square contracted into the running sum, rows of 5 to 8 vectorized as measured for
  triplet), ‖p‖ = √max(0, Σp²), its reciprocal, ½/‖p‖ and 1/max(0, Σp²) (XLA rewrites ‖p‖·‖p‖ into the clipped
  sum itself); the dot product Σ(p·(1/‖p‖))·ŷ and the gradient's Σ(ŷ·(−c/max(0, Σp²)))·p each a chain of FMAs
  from +0 in feature order (rows vectorized lane by lane, the order unchanged). Rows of more than 32 features,
  or batches of 4096 elements or more, store the products and add them as jnp.sum does (lowp_xla.xla_sum).
- The gradient: fma(k, p, ŷ·(−c/‖p‖)), k = ((−S)·½/‖p‖)·w·2, S the sum above, w the clip's share (½ where
  Σp² = 0), c the upstream 1/n (jnp.mean) or 1 (jnp.sum).
- From 4096 rows YNNPACK fuses the whole gradient (one kernel of its own: each product rounded, then the sum),
  so no multiply-add: ŷ·(−c/‖p‖) + k·p, the sum S as jnp.sum adds the stored products, and −S taken as 0 − S (a
  zero S, as a row whose squares overflow gives, turns +0 either way; measured with every sign of the row).
- One feature: no row sums at all; ŷ = y·(1/√y²) folded, the loss fma(−p/‖p‖, ŷ, 1) with a true division,
  the gradient fma(k′, 2p, −cŷ/‖p‖), k′ = −(((−cŷ)·(1/max(0, p²)))·p)·½/‖p‖·w.
- jnp.sum's gradient (c = 1, folded away) for rows of 3 to 6 features: where LLVM's loop vectorizer takes the
  rows 8 at a time, the first 2 (3 features) or 4 columns contract the other product: fma(−1/‖p‖, ŷ, k·p)
  (SUM_GROUPS: when; the rows it leaves to 4 at a time or to the scalar loop, and the other columns, as above).
  With AVX2 (--cpu avx2) it is the rows taken 4 at a time that contract it, in their first 2 to 8 columns
  (AVX2_SUM_GROUPS, AVX2_SUM_COLUMNS); the squares' rows as lowp_xla_rows measured for AVX2.

Not reproduced (lossgrad's float32 formulas, with a warning: lowp_xla_more.cosine_jit): rows of more than 32768
features in a batch of 4096 elements or more (the gradient measured to differ there). float16 (cosine_f16) rounds
every step, as op by op but for the folded targets and the regrouped gradient; one feature (_column_f16,
_column_bf16) rounds every step in both half dtypes, its targets folded as XLA folds them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from . import cpu
from .losses._ops import Array
from .lowp_xla import (
    F32,
    YNN_FROM,
    Rounder,
    _fma,
    _rows_in_dtype,
    _vector_rows,
    div,
    folded_sum,
    ftz,
    mul,
    product_sum,
    upstream,
    xla_sum,
)
from .lowp_xla_rows import _fma_chain, fused_squares


class Grad(Protocol):
    """The gradient of jnp.mean over m (m = 1: of jnp.sum)."""

    def __call__(self, m: float) -> Array: ...


# jnp.sum's gradient for rows of 3 to 6 features: from 16 rows, LLVM vectorizes the rows 8 at a time, except
# that a batch with 4 to 7 rows over groups of 8 goes 4 at a time below this many groups (measured up to 70 rows)
SUM_GROUPS = {3: 6, 4: 7, 5: 3, 6: 3}
# with AVX2 (measured against JAX on an AMD EPYC, up to 70 rows of 12 features): where LLVM takes the rows 4 at a
# time (a batch of 4; from 16 rows, one with 4 to 7 rows over groups of 8, below this many groups), rows of 3 to 8
# features contract the other product in their first columns (AVX2_SUM_COLUMNS; 8 at a time: none)
AVX2_SUM_GROUPS = {3: 5, 4: 6, 5: 4, 6: 7, 7: 5, 8: 0}
AVX2_SUM_COLUMNS = {3: 2, 4: 4, 5: 4, 6: 4, 7: 6, 8: 8}



def target_units(y: Array) -> Array:
    """ŷ = y·rsqrt(max(0, Σy²)) as XLA folds it at compile time: the squares in float32, those below its normals
    flushed to 0 (a row of them alone has a norm of 0: a loss of −∞ and NaN gradients, as JAX's), their sum in
    float64 rounded once (in windows of 32 first, for rows of more than 32 features in a batch below 4096
    elements), rsqrt as 1/√ in float32, times y."""
    rows, n = y.shape
    sq = ftz((y * y).astype(F32))
    s = folded_sum(sq)
    with np.errstate(all="ignore"):
        out: Array = (y * (F32(1) / np.sqrt(np.maximum(F32(0), s)))[:, None]).astype(F32)
    return out


def fma_dot(a: Array, b: Array) -> Array:
    """Σa·b along each row as XLA's fused row loop adds it: a chain of FMAs from +0, in feature order."""
    acc = np.zeros(a.shape[0], dtype=F32)
    for i in range(a.shape[1]):
        acc = _fma(a[:, i], b[:, i], acc)
    return acc


def _stored(a: Array, b: Array) -> Array:
    """Σa·b with the products stored first and added as jnp.sum adds them (rows of more than 32 features), from
    4096 elements YNNPACK's product_sum."""
    if a.size >= YNN_FROM:
        return product_sum(a, b)
    return xla_sum(mul(a, b))


def _share(s: Array, clipped: Array) -> Array:
    """The clip's share of the gradient: 1 where Σp² ≥ 0 is its own maximum with 0, ½ at 0 (a tie), 0 else."""
    return np.where(s == clipped, np.where(clipped == 0, F32(0.5), F32(1)), F32(0)).astype(F32)


def cosine_rows(y: Array, p: Array) -> tuple[Array, Grad]:
    """The losses and the gradient (of jnp.mean over n, or of jnp.sum for n = 1) for rows of 2 features or more."""

    rows, n = p.shape
    stored = n > 32 or rows * n >= YNN_FROM
    yu = target_units(y)
    s = xla_sum(mul(p, p)) if stored else ftz(fused_squares(p, False) + F32(0))
    clipped = np.maximum(F32(0), s)
    norm = ftz(np.sqrt(clipped))
    rn, half, inv = div(F32(1), norm), div(F32(0.5), norm), div(F32(1), clipped)
    w = _share(s, clipped)
    pn = mul(p, rn[:, None])
    losses = ftz(F32(1) - (_stored(pn, yu) if stored else fma_dot(pn, yu)))

    def grad(m: float) -> Array:
        c = upstream(m)
        t = mul(yu, mul(inv, -c)[:, None])
        total = _stored(t, p) if stored else fma_dot(t, p)
        fused = rows >= YNN_FROM  # (YNNPACK's fusion of the whole gradient: its negation is 0 − S, so −(±0) = +0)
        k = mul(mul(mul(ftz(F32(0) - total if fused else -total), half), w), F32(2))[:, None]
        a = mul(rn, -c)[:, None]
        if fused:  # (each product rounded, then the sum: no multiply-add)
            return ftz(mul(yu, a) + mul(k, p))
        g = _fma(k, p, mul(yu, a))
        v, cols = sum_contracted(rows, n) if m == 1 else (0, 0)
        g[:v, :cols] = _fma(a[:v], yu[:v, :cols], mul(k[:v], p[:v, :cols]))
        return g
    return losses, grad


def sum_contracted(rows: int, n: int) -> tuple[int, int]:
    """How many leading rows and columns of jnp.sum's gradient contract the other product: with AVX-512 the rows
    LLVM takes 8 at a time (by_eights) and the first 2 or 4 columns; with AVX2 the rows it takes 4 at a time
    (AVX2_SUM_GROUPS) and AVX2_SUM_COLUMNS' columns."""
    if cpu.selected() != "avx2":
        return by_eights(rows, n), min(4, n // 2 * 2)
    v = _vector_rows(rows, n, AVX2_SUM_GROUPS)
    return (v, AVX2_SUM_COLUMNS[n]) if v % 8 else (0, 0)  # (4 at a time: a multiple of 4 but not of 8)


def by_eights(rows: int, n: int) -> int:
    """How many leading rows LLVM's loop vectorizer takes 8 at a time in jnp.sum's gradient, for rows of 3 to 6
    features (SUM_GROUPS; 8 rows: all of them, 9 to 15: none)."""
    if n not in SUM_GROUPS or rows < 8 or 8 < rows < 16:
        return 0
    groups, over = divmod(rows, 8)
    return 0 if over >= 4 and groups < SUM_GROUPS[n] else groups * 8


def cosine_column(y: Array, p: Array) -> tuple[Array, Grad]:
    """The losses and the gradient for rows of one feature (no row sums: XLA drops them)."""
    y, p = y[:, 0], p[:, 0]
    with np.errstate(all="ignore"):
        yu = (y * (F32(1) / np.sqrt(np.maximum(F32(0), (y * y).astype(F32))))).astype(F32)
    sq = mul(p, p)
    clipped = np.maximum(F32(0), sq)
    norm = np.sqrt(clipped)
    losses = _fma(-div(p, norm), yu, F32(1))
    w = _share(sq, clipped)

    def grad(m: float) -> Array:
        yc = (yu * -upstream(m)).astype(F32)  # (folded with ŷ)
        k = mul(mul(-mul(mul(yc, div(F32(1), clipped)), p), div(F32(0.5), norm)), w)
        return _fma(k, mul(F32(2), p), div(yc, norm))[:, None]
    return losses, grad


def cosine(y: Array, p: Array) -> tuple[Array, Grad]:
    """optax's cosine_distance under jit in float32: the losses and the gradient as a function of n (1/n the
    upstream of jnp.mean, n = 1 that of jnp.sum)."""
    with np.errstate(all="ignore"):
        losses, grad = (cosine_column if p.shape[1] == 1 else cosine_rows)(y, p)

    def quiet(m: float) -> Array:
        with np.errstate(all="ignore"):
            return grad(m)
    return losses, quiet


def cosine_bf16(y: Array, p: Array) -> tuple[Array, Array, Grad]:
    """cosine_distance under jit in bfloat16 (values carried in float32), for rows of 2 features or more. XLA rounds
    most steps to bfloat16 there (measured from its HLO and results): ŷ = y/√s folded at compile time with a true
    division, s the bfloat16 squares added in float64 and rounded once, each step rounded to bfloat16, and ŷ·(−c)
    folded with −c in bfloat16; Σp² in float32 then rounded (up to 32 features in a batch below 4096 elements the
    scalar loop's FMA chain: a square below float32's normals kept inside an FMA); 1/‖p‖ kept in float32 for its two
    products (p·(1/‖p‖) rounded, then times ŷ into a float32 sum of the row); 1/(‖p‖·‖p‖) and ½/‖p‖ rounded; the
    gradient's row sum of (ŷ(−c)·1/‖p‖²)·p added in bfloat16 (XLA's windows of 32) from +0; the gradient
    (ŷ(−c))/‖p‖ + k·2p, each product rounded. From 4096 elements YNNPACK computes the sums in fusions of its own
    that drop the bfloat16 roundings inside them: Σp² is the stored squares' jnp.sum, p·(1/‖p‖) stays float32 in
    the dot product (lowp_xla.product_sum), and from 4096 rows, where the fusion takes 1 − dot and Σp² to their
    end, the dot stays float32 in the loss and the clip's share compares the float32 Σp² with its clipped bfloat16
    (so equal, and the norm's term of the gradient kept, only where Σp² is a bfloat16 number). Returns the losses,
    the float32 terms jnp.mean adds (1 − the dot product) and the gradient."""
    from .lowp_xla import rounder

    rows, n = p.shape
    r = rounder(bfloat16())
    if n == 1:
        return _column_bf16(y, p, r)
    ynn, whole = rows * n >= YNN_FROM, rows >= YNN_FROM  # (YNNPACK's fusions; from 4096 rows the loss's whole sum)
    with np.errstate(all="ignore"):
        s_y = np.maximum(F32(0), r(mul(y, y, r).astype(np.float64).sum(axis=1)))
        yu = div(y, r(np.sqrt(s_y))[:, None], r)
        squares = (xla_sum(mul(p, p)) if n > 32 or ynn else _fma_chain(p)) + F32(0)
        s = r(squares)
        clipped = np.maximum(F32(0), s)
        norm = r(np.sqrt(clipped))
        rn = div(F32(1), norm)[:, None]
        inv2, half = div(F32(1), mul(norm, norm, r), r)[:, None], div(F32(0.5), norm, r)
        dot = _stored(mul(p, rn), yu) if ynn else xla_sum(mul(mul(p, rn, r), yu))
        terms = ftz(F32(1) - (dot if whole else r(dot)))
    w = _share(squares if whole else s, clipped)

    def grad(m: float) -> Array:
        with np.errstate(all="ignore"):
            yc = mul(yu, r(-upstream(m)), r)
            total = _rows_in_dtype(mul(mul(yc, inv2, r), p, r), r) + F32(0)  # (from +0, the reduce's start)
            k = mul(mul(r(-total), half, r), w, r)[:, None]
            return r(mul(yc, rn, r) + mul(k, mul(F32(2), p, r), r))
    return r(terms), terms, grad


def _column_bf16(y: Array, p: Array, r: Rounder) -> tuple[Array, Array, Grad]:
    """cosine_bf16 for rows of one feature, where XLA drops the row sums: every step rounded to bfloat16 (read from
    the optimized HLO), ŷ = y/√(y²) and K = ŷ·(−c) folded, the loss 1 − (p/‖p‖)·ŷ (jnp.mean's terms 1 − the
    rounded product, in float32), and the gradient K/‖p‖ + (((−((K·1/(‖p‖·‖p‖))·p))·½/‖p‖)·w)·2p."""
    with np.errstate(all="ignore"):
        yu = div(y, r(np.sqrt(np.maximum(F32(0), mul(y, y, r)))), r)
        sq = mul(p, p, r)
        clipped = np.maximum(F32(0), sq)
        norm = r(np.sqrt(clipped))
        dot = mul(div(p, norm, r), yu, r)[:, 0]
        terms = ftz(F32(1) - dot)
    w = _share(sq, clipped)

    def grad(m: float) -> Array:
        with np.errstate(all="ignore"):
            k = mul(yu, r(-upstream(m)), r)
            inv2 = div(F32(1), mul(norm, norm, r), r)
            t = mul(mul(-mul(mul(k, inv2, r), p, r), div(F32(0.5), norm, r), r), w, r)
            return r(div(k, norm, r) + mul(t, mul(p, F32(2), r), r))
    return r(terms), terms, grad


def cosine_f16(y: Array, p: Array) -> tuple[Array, Array, Grad]:
    """cosine_distance under jit in float16, read from XLA's optimized HLO: every step rounded to float16 as op by
    op (the sums of squares and the dot product in float32, then rounded), but ŷ = y·(1/‖y‖) folded when XLA
    compiles (Σy² added in float64 and rounded once: folded_sum), 1/max(0, Σp²) from the clipped sum itself (XLA's
    rewrite of ‖p‖·‖p‖), and the gradient's products regrouped around the constant −c: the row sum S of
    (ŷ·((1/max(0, Σp²))·(−c)))·p added in float16 from +0 (each addition rounded, XLA's windows of 32), the gradient
    ŷ·((1/‖p‖)·(−c)) + p·((((−S)·½/‖p‖)·w)·2). Returns the losses, the terms jnp.mean adds (the losses) and the
    gradient."""
    from .lowp_xla import _rows, rounder

    r = rounder(np.float16)
    if p.shape[1] == 1:
        return _column_f16(y, p, r)
    with np.errstate(all="ignore"):
        norm_y = r(np.sqrt(np.maximum(F32(0), r(folded_sum(mul(y, y, r))))))[:, None]
        yu = mul(y, div(F32(1), norm_y, r), r)
        s = _rows(mul(p, p, r), r, r)[:, None]
        clipped = np.maximum(F32(0), s)
        norm = r(np.sqrt(clipped))
        rn, half, inv2 = div(F32(1), norm, r), div(F32(0.5), norm, r), div(F32(1), clipped, r)
        losses = r(F32(1) - _rows(mul(mul(p, rn, r), yu, r), r, r))
    w = _share(s, clipped)

    def grad(m: float) -> Array:
        with np.errstate(all="ignore"):
            c = r(-upstream(m))
            total = (_rows_in_dtype(mul(mul(yu, mul(inv2, c, r), r), p, r), r) + F32(0))[:, None]  # (from +0)
            k = mul(mul(mul(r(-total), half, r), w, r), F32(2), r)
            return r(mul(yu, mul(rn, c, r), r) + mul(p, k, r))
    return losses, losses, grad


def _column_f16(y: Array, p: Array, r: Rounder) -> tuple[Array, Array, Grad]:
    """cosine_f16 for rows of one feature, where XLA drops the row sums (and the broadcasts between them): ŷ =
    y·rsqrt(max(0, y²)) folded when XLA compiles (1/√ one step: XLA's rewrite, with no broadcast left between the
    two), the loss 1 − (p/‖p‖)·ŷ, and the gradient K/‖p‖ + (((−(K·(1/max(0, p²)))·p)·½/‖p‖)·w)·2p with K = ŷ·(−c)
    folded too; every other step rounded to float16."""
    with np.errstate(all="ignore"):
        yu = mul(y, div(F32(1), np.sqrt(np.maximum(F32(0), mul(y, y, r))), r), r)
        sq = mul(p, p, r)
        clipped = np.maximum(F32(0), sq)
        norm = r(np.sqrt(clipped))
        losses = r(F32(1) - mul(div(p, norm, r), yu, r))[:, 0]
    w = _share(sq, clipped)

    def grad(m: float) -> Array:
        with np.errstate(all="ignore"):
            k = mul(yu, r(-upstream(m)), r)
            t = mul(mul(-mul(mul(k, div(F32(1), clipped, r), r), p, r), div(F32(0.5), norm, r), r), w, r)
            return r(div(k, norm, r) + mul(t, mul(p, F32(2), r), r))
    return losses, losses, grad


def bfloat16() -> Any:
    """ml_dtypes' bfloat16 (loaded where it runs)."""
    import ml_dtypes

    return ml_dtypes.bfloat16
