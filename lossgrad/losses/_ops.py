"""The few functions the losses are built from, each written once: the sigmoid pair, softplus, softmax and log
softmax, xlogy, and the gradient of a clip as autodiff gives it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # (decimal and fractions are imported where an element needs them: start-up time)
    from decimal import Decimal

if TYPE_CHECKING:  # (numpy.typing costs a millisecond of start-up)
    import numpy.typing as npt

    Array = npt.NDArray[Any]  # float arrays of any width (float32, float64, long double); masks are bool arrays
else:
    Array = np.ndarray


def sign_select(z: Array) -> Callable[[Array, Array], Array]:
    """A function select(a, b) = np.where(z >= 0, a, b), bit for bit (signed zeros too), for float arrays of z's
    shape and dtype. Branch-free: np.where branches per element and mispredicts on signs that change at random;
    the exact bce-from-logits kernel takes 34 ms per 2 M random logits with np.where and 17 ms with this, about 7%
    of a batch run end to end. Floats with no integer of their width (long double) use np.where."""
    pos = z >= 0
    size = z.dtype.itemsize
    if size not in (2, 4, 8):
        return lambda a, b: np.asarray(np.where(pos, a, b))
    ints = np.dtype(f"i{size}")
    mask = np.negative(pos.view(np.int8).astype(ints))  # all bits set where z >= 0, none elsewhere

    def select(a: Array, b: Array) -> Array:
        bi = b.view(ints)
        out = np.bitwise_xor(a.view(ints), bi)
        out &= mask
        out ^= bi  # b, with a's bits where the mask is set
        view: Array = out.view(a.dtype)
        return view

    return select


def sigmoid_pair(z: Array) -> tuple[Array, Array, Array]:
    """σ(z), σ(−z) and e = exp(−|z|), with no cancellation: σ(|z|) = 1/(1 + e) and σ(−|z|) = e/(1 + e), so
    neither is formed as 1 − the other (which would lose σ(−z) for large z)."""
    e = np.exp(-np.abs(z))
    big, small = 1 / (1 + e), e / (1 + e)
    select = sign_select(z)
    return select(big, small), select(small, big), e


def sigmoid(z: Array) -> Array:
    """σ(z) = 1/(1 + e^−z), from sigmoid_pair."""
    return sigmoid_pair(z)[0]


def dec_sigmoid_pair(z: Decimal) -> tuple[Decimal, Decimal]:
    """σ(z) and σ(−z) for one Decimal, as sigmoid_pair forms them (at the caller's decimal precision)."""
    e = (-abs(z)).exp()
    big, small = 1 / (1 + e), e / (1 + e)
    return (big, small) if z >= 0 else (small, big)


def softplus(x: Array, e: Array | None = None) -> Array:
    """log(1 + e^x) = max(x, 0) + log(1 + e^−|x|): e^x cannot overflow. `e`: exp(−|x|), when the caller has it
    already (sigmoid_pair's third value; it is the same for x and −x)."""
    if e is None:
        e = np.exp(-np.abs(x))
    return np.maximum(x, 0) + np.log1p(e)


def shifted_exp(z: Array) -> tuple[Array, Array, Array]:
    """For rows of logits: s = z − max (so e^s cannot overflow), e^s, and the row sums Σe^s (as columns)."""
    s = z - z.max(axis=-1, keepdims=True)
    es = np.exp(s)
    return s, es, es.sum(axis=-1, keepdims=True)


def softmax(z: Array) -> Array:
    """softmax along the last axis, as the frameworks compute it: e^s / Σe^s, s = z − max."""
    s, es, se = shifted_exp(z)
    return es / se


def log_softmax(z: Array) -> Array:
    """log softmax along the last axis, as the frameworks compute it: s − log Σe^s, s = z − max."""
    s, es, se = shifted_exp(z)
    return s - np.log(se)


def xlogy(x: Array, logv: Array) -> Array:
    """x · logv with 0 · log(0) taken as 0 (a zero-weight term contributes nothing, even at p = 0)."""
    with np.errstate(invalid="ignore"):
        return np.where(x == 0, 0, x * logv)


def clip_grad(p: Array, lo: Any, hi: Any, tie: float) -> Array:
    """Derivative of clip(p, lo, hi) as a framework's autodiff gives it: 1 inside, 0 outside, `tie` at lo or hi."""
    inside = np.where((p > lo) & (p < hi), 1.0, 0.0)
    return np.where((p == lo) | (p == hi), tie, inside).astype(p.dtype, copy=False)


def scaled_quotient(nums: tuple[Array, ...], dens: tuple[Array, ...] = (), exp2: Any = 0) -> Array:
    """2^exp2 · Πnums / Πdens with no intermediate overflow or underflow: the factors' exponents are taken off
    (frexp, exact), their fractions in [1/2, 1) multiplied and divided, and the exponents put back once (ldexp),
    so a result in range is right to about an ulp however far outside the range the products on the way are."""
    frac: Any = 1.0
    exp: Any = exp2
    for x in nums:
        m, k = np.frexp(x)
        frac, exp = frac * m, exp + k
    for x in dens:
        m, k = np.frexp(x)
        frac, exp = frac / m, exp - k
    # (exponents beyond any float's range give 0 or inf all the same; ldexp takes C ints)
    out: Array = np.ldexp(frac, np.clip(exp, -20000, 20000).astype(np.int32))
    return out


# ln 2 in two parts (fdlibm's): k·LN2_HI is exact for |k| < 2^20, so x − k ln 2 keeps all its bits
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10


def exp_parts(x: Array) -> tuple[Array, Array]:
    """e^x as (m, k) with e^x = m·2^k, m in [0.7, 1.42] and k an integer: e^x itself may be far outside the
    floats' range (e^−800), m·2^k times or over another number is not (see exp_times)."""
    xc = np.clip(x, -1e5, 1e5)  # beyond, e^x is 0 or infinite next to any float factor
    k = np.rint(xc / np.log(2.0))
    r = (xc - k * LN2_HI) - k * LN2_LO
    return np.exp(r), k.astype(np.int64)


def exp_times(x: Array, f: Array, dens: tuple[Array, ...] = ()) -> Array:
    """e^x · f / Πdens, rounded about once whatever the size of e^x: e^−800 · 1e300 is 3.7e−48, not 0."""
    m, k = exp_parts(x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        return scaled_quotient((m, f), dens, k)
