"""jax.grad's sums over the partner rows of optax's ntxent in float32 (the transposes of its broadcasts), shared by
op by op (lowp_xla_ntxent) and jit (lowp_xla_ntxent_jit): XLA's windows below 4096 elements, YNNPACK's tiles of 16
rows (each of 4 rows, in order) from 4096, in runs of 32768 // columns rows (two runs at most reproduced); a half
dtype adds in itself, in XLA's windows of 32."""

from __future__ import annotations

import numpy as np

from .losses._ops import Array
from .lowp_xla import SLAB, YNN_FROM, Rounder, _in_order, _rows_in_dtype, _windows, ftz, xla_sum


def _tiles(rows: Array, lo: int, hi: int, sizes: tuple[int, ...]) -> Array:
    """Columns lo..hi of `rows` added as YNNPACK adds the rows of a reduction over a non-contiguous axis: tiles of
    sizes[0] (the last one short), each the sum of its tiles of sizes[1], ..., the innermost in order."""
    if not sizes:
        return _in_order(rows[:, lo:hi])
    acc: Array | None = None
    for t in range(lo, hi, sizes[0]):
        part = _tiles(rows, t, min(t + sizes[0], hi), sizes[1:])
        acc = part if acc is None else ftz(acc + part)
    assert acc is not None
    return acc


def _run(n: int, columns: int) -> int:
    """The rows of `columns` that YNNPACK adds in one run (SLAB elements at most)."""
    return max(1, SLAB // columns)


def fits(n: int, d: int) -> bool:
    """Whether the float32 partner sums of n rows of d features are reproduced: XLA's windows, or YNNPACK's in one
    or two runs (the order of three or more is not known)."""
    return n * n * d < YNN_FROM or all(-(-n // _run(n, c)) <= 2 for c in (n * d, d))


def partner_sum(x: Array, axis: int, r: Rounder) -> Array:
    """jax.grad's sum of x [N, N, D] over axis 0 or 1 (the transpose of a broadcast), in the dtype: [N, D]."""
    n, _, d = x.shape
    rows = np.moveaxis(x, axis, 2).reshape(n * d, n)
    if r is not ftz:
        return _rows_in_dtype(rows, r).reshape(n, d)
    if axis == 1 and d == 1:  # (a contiguous row sum)
        return xla_sum(rows).reshape(n, d)
    if x.size < YNN_FROM:
        return _windows(rows).reshape(n, d)
    step = _run(n, d if axis else n * d)
    acc = _tiles(rows, 0, min(step, n), (16, 4))
    if step < n:
        acc = ftz(acc + _tiles(rows, step, n, (16, 4)))
    return acc.reshape(n, d)
