"""Eigen's double packet functions as TensorFlow's x86 build computes them (AVX without FMA: packets of 4 doubles,
multiply-adds rounded twice, subnormal results flushed to zero), in numpy on float64 arrays: log x (Cephes'
rational function, `plog_double`), e^x (Cephes' rational function and 2^n, `pexp_double`) and x^y (`generic_pow`:
log2 of the mantissa in double words, y·log2 x split into an integer n and a fraction r, 2^r as e^(r·ln 2)
corrected by the product's low word, then 2^n). Read from the Eigen headers TensorFlow 2.21 ships
(Eigen/src/Core/arch/Default/GenericPacketMathFunctions.h, arch/AVX/PacketMath.h). The elements after a tensor's
last whole packet go through the C library's log, exp and pow (lossgrad.libm), as Eigen's scalar path calls them.
"""

from __future__ import annotations

import numpy as np

from . import libm
from .losses._ops import Array

F64 = np.float64
LANES = 4  # doubles in an AVX register
CHUNK = 1 << 16  # (elementwise: values a packet function takes at a time, a multiple of LANES)
TINY = np.finfo(F64).tiny
LN2 = 0.6931471805599453  # (EIGEN_LN2, a long double, as a double)
SQRT_HALF = 0.70710678118654752440
LOG_P = (1.01875663804580931796E-4, 4.97494994976747001425E-1, 4.70579119878881725854E0, 1.44989225341610930846E1,
         1.79368678507819816313E1, 7.70838733755885391666E0)
LOG_Q = (1.0, 1.12873587189167450590E1, 4.52279145837532221105E1, 8.29875266912776603211E1,
         7.11544750618563894466E1, 2.31251620126765340583E1)
EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1, 2.00000000000000000009e0)
LOG2_Q = (2.87074255468000586e-9, 2.38957980901884082e-8, 2.31032094540014656e-7, 2.27279857398537278e-6,
          2.31271023278625638e-5, 2.47556738444535513e-4, 2.88543873228900172e-3)  # (q12, q10, ..., q0)
Pair = tuple[Array, Array]
LOG2_C: Pair = (np.float64(0.0400377511598501157), np.float64(-4.77726582251425391e-19))  # (double words)
TWO_LOG2E: Pair = (np.float64(2.88539008177792677), np.float64(4.07660016854549667e-17))


def ftz(a: Array) -> Array:
    out: Array = np.where(np.abs(a) < TINY, np.copysign(0, a), a)
    return out


def madd(a: Array | float, b: Array | float, c: Array | float) -> Array:
    """pmadd without FMA: the product rounded, then the sum."""
    return np.asarray(np.multiply(a, b) + c, dtype=F64)


def plog(x: Array) -> Array:
    """plog_double of positive finite x: x = m·2^e, m moved into [√½, √2) and less 1, log(1 + m) as
    m − m²/2 + m³·P(m)/Q(m) (each polynomial in two halves), plus e·ln 2."""
    frac, ex = np.frexp(x)
    low = frac < SQRT_HALF
    m = (frac - 1.0) + np.where(low, frac, 0.0)
    e = ex - low.astype(F64)
    m2 = m * m
    m3 = m2 * m
    p = madd(madd(madd(LOG_P[0], m, LOG_P[1]), m, LOG_P[2]), m3, madd(madd(LOG_P[3], m, LOG_P[4]), m, LOG_P[5]))
    q = madd(madd(madd(LOG_Q[0], m, LOG_Q[1]), m, LOG_Q[2]), m3, madd(madd(LOG_Q[3], m, LOG_Q[4]), m, LOG_Q[5]))
    y = madd(-0.5, m2, (p * m3) / q)
    return madd(e, LN2, m + y)


def pexp(x: Array) -> Array:
    """pexp_double: e^x = 2^n·e^g, n = ⌊x·log₂e + ½⌋, g = x − n·ln 2 in two parts, e^g = 1 + 2·P/(Q − P) (Cephes);
    0 below −745.519, x capped at 709.784 (∞ beyond 2^1024), results below the normal range flushed."""
    with np.errstate(all="ignore"):
        c = np.minimum(x, 709.784)
        n = np.floor(madd(1.4426950408889634073599, c, 0.5))
        g = (c - n * 0.693145751953125) - n * 1.42860682030941723212e-6
        g2 = g * g
        px = madd(madd(EXP_P[0], g2, EXP_P[1]), g2, EXP_P[2]) * g
        qx = madd(madd(madd(EXP_Q[0], g2, EXP_Q[1]), g2, EXP_Q[2]), g2, EXP_Q[3])
        y = madd(2.0, px / (qx - px), 1.0)
        out = ftz(np.ldexp(y, np.clip(n, -1100, 1100).astype(np.int64)))
        return np.where(x < -745.519, 0.0, np.maximum(out, x))


def split(x: Array) -> Pair:
    """Veltkamp's splitting: x = hi + lo exactly, each with half of x's significand (27 bits)."""
    g = (2.0 ** 27 + 1.0) * x
    hi = (x - g) + g
    return hi, x - hi


def two_prod(x: Array | float, y: Array | float) -> Pair:
    """Dekker's product without FMA: x·y = p + q exactly."""
    (xh, xl), (yh, yl) = split(np.asarray(x, F64)), split(np.asarray(y, F64))
    p = np.multiply(x, y)
    q = madd(xl, yl, madd(xl, yh, madd(xh, yl, madd(xh, yh, -p))))
    return p, q


def fast_two_sum(x: Array | float, y: Array) -> Pair:
    s = np.add(x, y)
    return s, y - (s - x)


def dw_times(x: Pair, y: Array | float) -> Pair:
    """A double word times a double (Muller's Algorithm 7)."""
    ch, cl1 = two_prod(x[0], y)
    th, tl1 = fast_two_sum(ch, np.multiply(x[1], y))
    return fast_two_sum(th, tl1 + cl1)


def dw_dw_times(x: Pair, y: Pair) -> Pair:
    return dw_sum(dw_times(x, y[0]), dw_times(x, y[1]))


def dw_sum(x: Pair, y: Pair) -> Pair:
    """Two double words added, |x| ≥ |y|."""
    rh, rl = fast_two_sum(x[0], y[0])
    return fast_two_sum(rh, (y[1] + rl) + x[1])


def dw_plus(x: float, y: Pair) -> Pair:
    """A double plus a double word, |x| ≥ |y|."""
    rh, rl = fast_two_sum(x, y[0])
    return fast_two_sum(rh, y[1] + rl)


def dw_over(x: Pair, y: Array) -> Pair:
    """A double word over a double (Joldes, Muller and Popescu's Algorithm 15)."""
    th = x[0] / y
    ph, pl = two_prod(th, y)
    return fast_two_sum(th, (((x[0] - ph) - pl) + x[1]) / y)


def log2_dw(m: Array) -> Pair:
    """accurate_log2<double> of m in [√½, √2): r = c·(m − 1)/(m + 1), c = 2·log₂e, and log2 m as
    ((Q(r²)·r² + C)·r² + 1)·r, Q in doubles, the rest in double words."""
    r = dw_over(dw_times(TWO_LOG2E, m - 1.0), m + 1.0)
    r2 = dw_dw_times(r, r)
    r4 = dw_dw_times(r2, r2)[0]
    q12, q10, q8, q6, q4, q2, q0 = LOG2_Q
    even = madd(madd(madd(q12, r4, q8), r4, q4), r4, q0)
    odd = madd(madd(q10, r4, q6), r4, q2)
    q = madd(odd, r2[0], even)
    p1 = dw_sum(LOG2_C, dw_times(r2, q))
    return dw_dw_times(dw_plus(1.0, dw_dw_times(r2, p1)), r)


def pround(x: Array) -> Array:
    """Eigen's AVX pround: x plus ±0.49999999999999994, truncated."""
    return np.trunc(np.copysign(0.49999999999999994, x) + x)


def exp2(r: Array) -> Array:
    """generic_exp2: e^hi·(1 + lo), hi + lo = r·ln 2 (r clamped to [−1076, 1025])."""
    hi, lo = two_prod(LN2, np.clip(r, -1076.0, 1025.0))
    return pexp(hi) * (1.0 + lo)


def ppow_positive(x: Array, y: float) -> Array:
    """generic_pow_impl for positive finite x: y·log2 x = n + r in double words, 2^r·2^n."""
    frac, ex = np.frexp(x)
    low = frac < SQRT_HALF
    m, e = np.where(low, 2.0 * frac, frac), np.where(low, ex - 1.0, ex.astype(F64))
    fh, fl = dw_sum(two_prod(e, y), dw_times(log2_dw(m), y))
    n = pround(fh)
    r = (fh - n) + fl
    nr = pround(r)
    with np.errstate(over="ignore"):
        return ftz(np.ldexp(exp2(r - nr), np.clip(n + nr, -2099, 2099).astype(np.int64)))


def ppow(x: Array, y: float) -> Array:
    """generic_pow of x by a double y, with C's special values as Eigen selects them, a subnormal x read as 0
    (denormals-are-zero): x^1 is x as it is; x^0 and 1^y are 1; ±0^y is 0, or ∞ for y < 0 (−0 for an odd y > 0);
    a negative x gives −|x|^y for an odd y, |x|^y for an even one, NaN otherwise; ∞^y is ∞, or 0 for y < 0."""
    if y == 1:
        return np.array(x, dtype=F64, copy=True)
    y = 0.0 * y if abs(y) < TINY else y  # (a subnormal exponent reads as 0 too: x^y is 1)
    with np.errstate(all="ignore"):
        xd = np.where(np.abs(x) < TINY, np.copysign(0.0, x), x)
        ax = np.abs(xd)
        out = ppow_positive(np.where((ax > 0) & np.isfinite(ax), ax, 1.0), y)
        whole = bool(np.isfinite(y) and np.floor(y) == y)
        odd = whole and pround(np.float64(y * 0.5)) != y * 0.5
        out = np.where((xd < 0) & (not whole), np.nan, out)
        out = np.where(xd == 0, np.inf if y < 0 else 0.0, out)
        out = np.where(np.signbit(xd) & odd, -out, out)
        if abs(y) >= 1024 * LN2 / np.finfo(F64).eps:  # (a huge y: 0 or ∞ by |x| against 1)
            out = np.where(((y < 0) & (xd == 0)) | ((y < 0) != (ax > 1)), np.inf, 0.0)
            out = np.where(xd == -1, 1.0, out)
        inf = 0.0 if y < 0 else np.inf
        out = np.where(np.isinf(xd), np.where((xd < 0) & odd, -inf, inf), out)
        out = np.where(np.isnan(xd) | np.isnan(y), np.nan, out)
        return np.where((xd == 1) | (y == 0), 1.0, out)


def elementwise(x: Array, packet: object, scalar: object) -> Array:
    """A unary kernel over a whole tensor: packets of 4 through the flattened array, the last n mod 4 elements
    one at a time. (The packets are taken CHUNK at a time, each element being its own: numpy's temporaries then
    stay in the cache, about 3 times as fast as the whole array at once for pow of 2,000,000 doubles.)"""
    flat = np.asarray(x, dtype=F64).reshape(-1)
    cut = flat.size - flat.size % LANES
    out = np.empty_like(flat)
    for start in range(0, cut, CHUNK):
        out[start:min(start + CHUNK, cut)] = packet(flat[start:min(start + CHUNK, cut)])  # type: ignore[operator]
    if cut < flat.size:
        out[cut:] = scalar(flat[cut:])  # type: ignore[operator]
    return out.reshape(np.shape(x))


def exp(x: Array) -> Array:
    """The C library's exp, as Eigen's scalar path calls it, its results below the normal range flushed."""
    return ftz(libm.exp(x))


def plog_selected(x: Array) -> Array:
    """plog with plog_impl_double's selects: −∞ at 0 (a subnormal read as 0), NaN below 0 and at NaN, ∞ at ∞."""
    with np.errstate(all="ignore"):
        zero = np.abs(x) < TINY
        out = plog(np.where((x > 0) & ~zero & np.isfinite(x), x, 1.0))
        out = np.where(x == np.inf, np.inf, np.where((x < 0) | np.isnan(x), np.nan, out))
        return np.where(zero, -np.inf, out)


def log(x: Array) -> Array:
    """tf.math.log of doubles: plog over whole packets, the C library's log for the rest."""
    return elementwise(x, plog_selected, libm.log)


def power(x: Array, y: float) -> Array:
    """tf.pow of doubles by a scalar y: generic_pow over whole packets, the C library's pow for the rest (its
    results flushed to zero below the normal range, x^1 being x)."""
    return elementwise(x, lambda a: ppow(a, y), lambda a: a.copy() if y == 1 else ftz(libm.pow(a, y)))
