"""jax.grad's sums over the partner rows of optax's ntxent in float32 (the transposes of its broadcasts), shared by
op by op (lowp_xla_ntxent) and jit (lowp_xla_ntxent_jit). Below 4096 elements XLA's windows. From 4096 YNNPACK's
reduction over a non-contiguous axis, sum_float_kn: groups of 4 rows added in order from 0, a tree of accumulators
joined every 16 rows, Kahan's compensated step every 256. The sum over the rows i runs in slices of 32768 // (N·D)
rows, whose results are summed the same way (where a row holds more than 32768 elements, the rows are added in
order from 0). The sum over the partners j is one run op by op, and under jit (the products computed inside
YNNPACK's fusion) slices of 32768 // D rows. A half dtype adds in itself, in XLA's windows of 32.
(ynnpack/kernels/reduce/sum.h and ynnpack/subgraph/reduce.cc; the slices measured on a 2-core x86-64 machine.)"""

from __future__ import annotations

import numpy as np

from .losses._ops import Array
from .lowp_xla import SLAB, YNN_FROM, Rounder, _in_order, _rows_in_dtype, _Tree, _windows, ftz, xla_sum

GROUP = 4  # rows added in order from 0 before they join the tree
JOIN_EVERY = 16  # rows after which level 0 joins level 1
KAHAN_EVERY = 256  # rows after which level 1 joins level 2 by Kahan's compensated addition


def _kn(rows: Array, r: Rounder = ftz) -> Array:
    """Σ over the last axis of `rows` [C, K] as YNNPACK's sum_float_kn adds K rows of C columns from 0: up to 4 rows
    in order, more through the tree of accumulators, the last level compensated. `r`: the dtype's flush (float32's
    ftz; in float64 the same kernel with lowp_xla64's)."""
    cols, k = rows.shape
    zero = rows.dtype.type(0)
    if k <= GROUP:
        return r(zero + _in_order(rows, r))
    tree, done = _Tree((cols,), rows.dtype, r), 0
    while k - done >= GROUP:
        tree.add(rows[:, done:done + GROUP])
        done += GROUP
        if done % JOIN_EVERY == 0:
            tree.flush(done % KAHAN_EVERY == 0)
    if done < k:
        tree.add(rows[:, done:])
    tree.flush(True)
    return r(zero + tree.levels[2])


def _runs(rows: Array, step: int, r: Rounder = ftz) -> Array:
    """The rows summed in runs of `step` by _kn, the runs' results summed by _kn in turn."""
    parts = [_kn(rows[:, lo:lo + step], r) for lo in range(0, rows.shape[1], step)]
    return parts[0] if len(parts) == 1 else _kn(np.stack(parts, axis=1), r)


def column_sums(x: Array, r: Rounder = ftz) -> Array:
    """jnp.sum over axis 0 of a stored [R, C] array of 4096 elements or more, as YNNPACK adds it: slices of
    SLAB·4 bytes of rows (float32: 32768 // C rows, float64: 16384 // C), each summed by _kn, the slices' sums
    summed by _kn in turn; where a row holds more than a slice, the rows in order from 0. `r`: the dtype's flush."""
    rows, cols = x.shape
    slab = SLAB * 4 // x.dtype.itemsize
    if cols > slab:
        return r(x.dtype.type(0) + _in_order(x.T, r))
    return _runs(x.T, slab // cols, r)


# why a float32 batch beyond fits() is not reproduced under jit
TOO_WIDE = (f"for rows of more than {SLAB} features XLA's fused kernels add the partner rows in an order lossgrad has "
            "not pinned down (measured apart)")


def fits(n: int, d: int) -> bool:
    """Whether the float32 partner sums of n rows of d features under jit are reproduced (rows of up to SLAB
    features; op by op every width is)."""
    return d <= SLAB


def partner_sum(x: Array, axis: int, r: Rounder, fused: bool = False) -> Array:
    """jax.grad's sum of x [N, N, D] over axis 0 or 1 (the transpose of a broadcast), in the dtype: [N, D].
    `fused` (under jit, the products computed inside YNNPACK's fusion): the sum over the partners j in runs of
    32768 // D rows too."""
    n, _, d = x.shape
    rows = np.moveaxis(x, axis, 2).reshape(n * d, n)
    if r is not ftz:
        return _rows_in_dtype(rows, r).reshape(n, d)
    if axis == 1 and d == 1:  # (a contiguous row sum)
        return xla_sum(rows).reshape(n, d)
    if x.size < YNN_FROM:
        return _windows(rows).reshape(n, d)
    if axis == 1:
        return (_runs(rows, max(1, SLAB // d)) if fused else _kn(rows)).reshape(n, d)
    return column_sums(x.reshape(n, n * d)).reshape(n, d)
