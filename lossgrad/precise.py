"""Recomputing the few elements where a float64 formula cancels.

A gradient such as sigma(z) - y or softmax * sum(y) - y is the difference of two terms that are each right to an
ulp or two; when the terms nearly agree, their difference keeps only the bits that survive, and its relative
error grows by the ratio of the terms to the result. lossgrad computes everything in float64 first, then
recomputes only the elements that lost more than one bit:

- in the platform's 80-bit long double (11 more bits), where the loss is at most 2^8;
- with Python's decimal module at 50 digits (more when even that is not enough), where it is more, or where long
  double is no wider than double; ratios of sums are done exactly with fractions.

Elements with hard labels never cancel, so they never come here; soft labels near the model's own prediction do.

Label smoothing's target y(1 − s) + s/K is not a float64 in general (for y = 1, s = 0.1 it is
0.94999999999999999722, whose nearest double is 0.95000000000000006661): the functions here take the smoothing s
and form the target in the precision they work in (long double, decimal, or exact fractions), never rounding it to
float64 first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .losses._ops import Array, dec_sigmoid_pair, sigmoid_pair

if TYPE_CHECKING:  # (decimal and fractions are imported where an element needs them: start-up time)
    from decimal import Decimal

    Terms = tuple[Decimal, Decimal]  # (result, the size of the terms it came from)


RISKY = 0.5  # result below half its largest term: more than one bit lost
LONG_ENOUGH = 2.0**-8  # long double's 11 extra bits cover a loss of 8 with margin
DIGITS = (50, 200, 800)  # decimal precisions tried in turn until the result stands clear of the rounding


@functools.cache
def _long() -> type[np.longdouble] | None:
    """np.longdouble where it is wider than double (x86's 80 bits, quad elsewhere), else None."""
    return np.longdouble if np.finfo(np.longdouble).nmant >= 63 else None


def _adaptive(fn: Callable[..., Terms], *args: Any) -> Decimal:
    """fn(prec, *args) -> (result Decimal, scale Decimal); the first precision at which the result is well above
    the rounding error of terms of size `scale`."""
    from decimal import Decimal, localcontext

    for prec in DIGITS:
        with localcontext() as ctx:
            ctx.prec = prec
            r, scale = fn(*args)
            # the terms' rounding is a few units in their prec-th digit: the result must stand 25 digits above it
            # to be right to far better than a double's 17
            if r == 0 and scale == 0 or abs(r) > scale * Decimal(10) ** (25 - prec):
                return r
    return r


def _decimal(x: float) -> Decimal:
    from decimal import Decimal
    return Decimal(float(x))  # exact: every double is a finite decimal


def smoothed(y: Array, s: float, k: int) -> Array:
    """Label smoothing, the frameworks' one formula: the target y(1 − s) + s/K, in y's dtype (the frameworks'
    rounding in float64 or float32; long double keeps the exact convention within 2^−64 of it)."""
    if not s:
        return y
    sk = y.dtype.type(s)
    out: Array = y * (1 - sk) + sk / k
    return out


def smoothed_pair(y: Array, s: float) -> tuple[Array, Array]:
    """bce's smoothed target and its complement, each from y and s: y(1 − s) + s/2 and (1 − y)(1 − s) + s/2 (the
    complement from the rounded target would lose its digits near 1)."""
    sk = y.dtype.type(s)
    return y * (1 - sk) + sk / 2, (1 - y) * (1 - sk) + sk / 2


def _dec_smoothed(yd: Decimal, s: float, k: int) -> Decimal:
    """y(1 − s) + s/K at the decimal context's precision."""
    sd = _decimal(s)
    return yd * (1 - sd) + sd / k if s else yd


def _sigmoid_minus_y_terms(y: float, z: float, w: float = 1.0, s: float = 0.0) -> Terms:
    yd, ud = _dec_smoothed(_decimal(y), s, 2), _dec_smoothed(1 - _decimal(y), s, 2)
    sz, smz = dec_sigmoid_pair(_decimal(z))
    a, b = ud * sz, _decimal(w) * yd * smz
    return a - b, max(a, b)


def _dec_sigmoid_minus_y(y: float, z: float, w: float = 1.0, s: float = 0.0) -> float:
    return float(_adaptive(_sigmoid_minus_y_terms, y, z, w, s))


def sigmoid_minus_y(y: Array, z: Array, grad: Array, scale: Array, w: Array | None = None,
                    smoothing: float = 0.0) -> Array:
    """Refine grad = (1 - y) sigma(z) - w y sigma(-z) (w: the positive class's weight, 1 by default; y smoothed
    by `smoothing` for two classes) where |grad| < RISKY * scale (scale: the larger of the two terms)."""
    w = np.ones_like(z) if w is None else np.broadcast_to(w, z.shape)
    with np.errstate(invalid="ignore"):
        risky = np.abs(grad) < RISKY * scale
    if not risky.any():
        return grad
    grad = grad.copy()
    idx = np.nonzero(risky)
    yr, zr = y[idx], z[idx]
    LONG = _long()
    if LONG is not None:
        yl, ul = smoothed_pair(yr.astype(LONG), smoothing)
        sz, smz, _ = sigmoid_pair(zr.astype(LONG))
        r = ul * sz - w[idx].astype(LONG) * yl * smz
        grad[idx] = r.astype(np.float64)
        with np.errstate(invalid="ignore"):
            extreme = np.abs(r) < LONG_ENOUGH * scale[idx]
    else:
        extreme = np.ones(len(idx[0]), dtype=bool)
    for k in np.nonzero(extreme)[0]:
        where = tuple(i[k] for i in idx)
        grad[where] = _dec_sigmoid_minus_y(y[where], z[where], w[where], smoothing)
    return grad


def _softmax_grad_cell(y_row: Sequence[float], z_row: Sequence[float], j: int, s: float = 0.0) -> Terms:
    from decimal import Decimal
    z = [_decimal(v) for v in z_row]
    y = [_dec_smoothed(_decimal(v), s, len(y_row)) for v in y_row]
    k = max(range(len(z)), key=lambda i: z[i])
    e = [(v - z[k]).exp() for v in z]
    zero = Decimal(0)
    rest = sum((v for i, v in enumerate(e) if i != k), zero)
    total = 1 + rest
    sy = sum(y, zero)
    if j == k:
        a, b = sum((v for i, v in enumerate(y) if i != k), zero), sy * rest / total
    else:
        a, b = e[j] / total * sy, y[j]
    return a - b, max(abs(a), abs(b))


def _dec_softmax_grad_row(y_row: Sequence[float], z_row: Sequence[float], s: float = 0.0) -> list[float]:
    return [float(_adaptive(_softmax_grad_cell, y_row, z_row, j, s)) for j in range(len(z_row))]


def softmax_grad(y: Array, z: Array, grad: Array, scale: Array, smoothing: float = 0.0) -> Array:
    """Refine grad = softmax(z) * sum(y) - y (y smoothed by `smoothing` over the row's classes), row by row, in
    the rows where a cell is risky."""
    with np.errstate(invalid="ignore"):
        risky = np.abs(grad) < RISKY * scale
    rows = np.nonzero(risky.any(axis=1))[0]
    if rows.size == 0:
        return grad
    grad = grad.copy()
    yr, zr = y[rows], z[rows]
    LONG = _long()
    if LONG is not None:
        yl, zl = smoothed(yr.astype(LONG), smoothing, y.shape[1]), zr.astype(LONG)
        r = np.arange(len(rows))
        k = np.argmax(zl, axis=1)
        s = zl - zl[r, k][:, None]
        es = np.exp(s)
        es_k = es.copy()
        es_k[r, k] = 0
        rest = es_k.sum(axis=1)
        sy = yl.sum(axis=1)
        g = es / (1 + rest)[:, None] * sy[:, None] - yl
        y_wo = yl.copy()
        y_wo[r, k] = 0
        g[r, k] = y_wo.sum(axis=1) - sy * rest / (1 + rest)
        grad[rows] = g.astype(np.float64)
        with np.errstate(invalid="ignore"):
            extreme = (np.abs(g) < LONG_ENOUGH * scale[rows]).any(axis=1)
    else:
        extreme = np.ones(len(rows), dtype=bool)
    for i in rows[extreme]:
        grad[i] = _dec_softmax_grad_row(y[i], z[i], smoothing)
    return grad


def _exact_normalised_minus_y(y_row: Sequence[float], p_row: Sequence[float], s: float = 0.0) -> list[float]:
    # rational arithmetic: (p sum(y) - y sum(p)) / sum(p) is exact, and float() rounds it once
    from fractions import Fraction

    sf, k = Fraction(float(s)), len(y_row)
    y = [Fraction(float(v)) * (1 - sf) + sf / k for v in y_row]
    p = [Fraction(float(v)) for v in p_row]
    sp, sy = sum(p, Fraction(0)), sum(y, Fraction(0))
    return [float((b * sy - a * sp) / sp) for a, b in zip(y, p, strict=True)]


def normalised_minus_y(y: Array, p: Array, out: Array, scale: Array, smoothing: float = 0.0) -> Array:
    """Refine out = p / sum(p) * sum(y) - y (y smoothed by `smoothing`): the row sums' rounding would otherwise
    pass into every cell, so the whole thing is redone in long double, and the rows that still cancel exactly,
    with fractions."""
    LONG = _long()
    if LONG is not None:
        pl, yl = p.astype(LONG), smoothed(y.astype(LONG), smoothing, y.shape[1])
        r = pl / pl.sum(axis=1, keepdims=True) * yl.sum(axis=1, keepdims=True) - yl
        out = r.astype(np.float64)
        with np.errstate(invalid="ignore"):
            rows = np.nonzero((np.abs(r) < LONG_ENOUGH * scale).any(axis=1))[0]
    else:
        with np.errstate(invalid="ignore"):
            rows = np.nonzero((np.abs(out) < RISKY * scale).any(axis=1))[0]
        out = out.copy()
    for i in rows:
        out[i] = _exact_normalised_minus_y(y[i], p[i], smoothing)
    return out


def refine(out: Array, scale: Array, long_fn: Callable[..., tuple[Array, Array]], dec_fn: Callable[..., Terms],
           *arrays: Array) -> Array:
    """Refine the elements of `out` (float64 results, any shape) that lost more than one bit against `scale` (the
    size of the terms they came from): first all of them with long_fn(*arrays at those elements, as long double)
    -> (result, scale); those that still cancel beyond long double's margin with dec_fn(*python floats) ->
    (Decimal result, Decimal scale), at increasing decimal precision."""
    with np.errstate(invalid="ignore"):
        risky = np.abs(out) < RISKY * scale
    if not risky.any():
        return out
    out = out.copy()
    idx = np.nonzero(risky)
    picked = [np.broadcast_to(a, out.shape)[idx] for a in arrays]
    LONG = _long()
    if LONG is not None:
        with np.errstate(all="ignore"):
            r, sc = long_fn(*[a.astype(LONG) for a in picked])
            out[idx] = np.asarray(r).astype(np.float64)
            extreme = np.abs(r) < LONG_ENOUGH * sc
    else:
        extreme = np.ones(len(idx[0]), dtype=bool)
    for k in np.nonzero(extreme)[0]:
        where = tuple(i[k] for i in idx)
        out[where] = float(_adaptive(dec_fn, *[float(a[k]) for a in picked]))
    return out


def refine_rows(out: Array, scale: Array, long_fn: Callable[..., tuple[Array, Array]], dec_fn: Callable[..., Terms],
                *arrays: Array) -> Array:
    """As `refine`, for one result per row of 2-D `arrays`: long_fn takes the risky rows (long double) and returns
    (result, scale) per row; dec_fn takes one row (lists of floats)."""
    with np.errstate(invalid="ignore"):
        risky = np.abs(out) < RISKY * scale
    rows = np.nonzero(risky)[0]
    if rows.size == 0:
        return out
    out = out.copy()
    LONG = _long()
    if LONG is not None:
        with np.errstate(all="ignore"):
            r, sc = long_fn(*[a[rows].astype(LONG) for a in arrays])
            out[rows] = np.asarray(r).astype(np.float64)
            extreme = np.abs(r) < LONG_ENOUGH * sc
    else:
        extreme = np.ones(rows.size, dtype=bool)
    for i in rows[extreme]:
        out[i] = float(_adaptive(dec_fn, *[[float(v) for v in a[i]] for a in arrays]))
    return out
