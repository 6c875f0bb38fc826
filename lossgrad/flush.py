"""Flush to zero as XLA's and TensorFlow's CPU code runs it (FTZ and DAZ), at the one place where it is not numpy's
rounding followed by a flush: just below the smallest normal number.

The processor rounds a product, quotient or fused multiply-add to the dtype's precision p as if the exponent were
unbounded, and only then asks whether the result is below the normal range. An exact result from
tiny·(1 − 2^−(p+1)) up to tiny rounds to tiny and is kept; one just below it rounds to tiny·(1 − 2^−p) and is
flushed. numpy rounds onto the subnormal grid instead, which takes every exact result from tiny·(1 − 2^−p) up to
tiny, and so no flush follows. In float32, 2⁻⁶³ × nextafter(2⁻⁶³, 0) is 2⁻¹²⁶ for numpy and 0 for JAX and
TensorFlow. (A sum or difference below the normal range is exact, so numpy's result and a flush agree.)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from .losses._ops import Array


def flushed_below(dtype: Any) -> Fraction:
    """The least exact result the processor keeps in the dtype: tiny·(1 − 2^−(p+1)) (p bits of precision)."""
    info = np.finfo(dtype)
    return Fraction(float(info.tiny)) * (1 - Fraction(1, 2 ** (info.nmant + 2)))


def at_tiny(out: Any, op: Callable[..., Fraction], *operands: Any) -> Array:
    """out, numpy's result of op on the operands, with those of its elements that numpy rounded to ± the smallest
    normal number done again from the exact operands: 0 (of the sign) where the exact result is below
    flushed_below, as the processor gives it."""
    out = np.asarray(out)
    if out.dtype.kind != "f":
        return out
    tiny = np.finfo(out.dtype).tiny
    edge = np.abs(out) == tiny
    if not edge.any():
        return out
    below = flushed_below(out.dtype)
    fixed = np.array(out).reshape(-1)
    flat = [np.broadcast_to(np.asarray(v), out.shape).reshape(-1)[edge.reshape(-1)].tolist() for v in operands]
    at = np.flatnonzero(edge)
    for i, args in zip(at, zip(*flat, strict=True), strict=True):
        if abs(op(*(Fraction(x) for x in args))) < below:
            fixed[i] = fixed.dtype.type(0) * fixed[i]  # (a zero of the result's sign)
    return fixed.reshape(out.shape)


def product(a: Any, b: Any) -> Array:
    """a·b rounded once, as numpy gives it, but flushed where the processor flushes it (at_tiny)."""
    return at_tiny(np.multiply(a, b), operator.mul, a, b)


def quotient(a: Any, b: Any) -> Array:
    """a/b rounded once, as numpy gives it, but flushed where the processor flushes it (at_tiny)."""
    return at_tiny(np.divide(a, b), operator.truediv, a, b)


def daz(a: Any) -> Any:
    """An array as the processor reads it with denormals-are-zero (DAZ): each subnormal element a zero of its
    sign, in the array's own float type (float32 carries the half dtypes, whose float32 subnormals are bfloat16's;
    float16's are normal float32 numbers); None, or an array of no floats, as it is."""
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        return a
    small = np.abs(a) < np.finfo(a.dtype).tiny
    if not small.any():
        return a
    out = np.array(a)
    out[small] *= out.dtype.type(0)  # (a zero of the element's sign)
    return out
