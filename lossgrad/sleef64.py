"""SLEEF's double-precision e^x, as PyTorch's Vectorized<double>::exp computes it (Sleef_expd4_u10 with AVX2,
Sleef_expd8_u10 with AVX-512: the same operations), for the float64 kernels that take it: torch.sigmoid of doubles
(lowp.sigmoid under WIDE). torch.exp itself is MKL's vmdExp (lossgrad.mkl), not this.

e^d = 2^q·e^s, q = rint(d/ln 2), s = d − q·ln 2 in two fused steps, e^s by a degree-10 polynomial (Estrin's scheme)
and three fused steps, scaled by two multiplications by powers of two. Each fused multiply-add rounds once, as the
processor's FMA does: numpy has none, so fma() forms it exactly (Dekker's product and Knuth's sum, the last
addition rounded to odd; Boldo and Melquiond, IEEE Trans. Computers 57(4), 2008).
"""

from __future__ import annotations

import numpy as np

from .losses._ops import Array

SPLIT = 2.0**27 + 1  # (Veltkamp's splitter for 53-bit doubles)
R_LN2 = 1.442695040888963407359924681001892137426645954152985934135449406931
L2U, L2L = 0.69314718055966295651160180568695068359375, 0.28235290563031577122588448175013436025525412068e-12
EXP_POLY = (0.2081276378237164457e-8, 0.2511210703042288022e-7, 0.2755762628169491192e-6,
            0.2755723402025388239e-5, 0.2480158687479686264e-4, 0.1984126989855865850e-3,
            0.1388888888914497797e-2, 0.8333333333314938210e-2, 0.4166666666666602598e-1,
            0.1666666666666669072e+0)
OVER = float.fromhex("0x1.62e42fefa39efp+9")  # (above it e^d is ∞; below −1000, 0)
BLOCK = 1 << 15


def _halves(a: Array) -> tuple[Array, Array]:
    """a = hi + lo with each half of at most 26 significant bits (Veltkamp)."""
    t = SPLIT * a
    hi = t - (t - a)
    return hi, a - hi


def _product(a: Array, b: Array) -> tuple[Array, Array]:
    """a·b = p + e exactly (Dekker), p the rounded product."""
    p = a * b
    ah, al = _halves(a)
    bh, bl = _halves(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _sum(a: Array, b: Array) -> tuple[Array, Array]:
    """a + b = s + e exactly (Knuth), s the rounded sum."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _sum_to_odd(a: Array, b: Array) -> Array:
    """a + b rounded to odd: the sum when exact, else whichever neighbour of the exact sum has an odd last bit."""
    s, e = _sum(a, b)
    even = (s.view(np.int64) & 1) == 0
    return np.where((e != 0) & even, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)


def fma(a: Array, b: Array, c: Array | float) -> Array:
    """a·b + c rounded once: a·b = p + e and c + p = h + l exactly, then h + (l + e rounded to odd), rounded (a zero
    signed as the processor signs it). Exact while a·b neither overflows nor has an error term below the normal range
    (true of every step of exp below)."""
    p, e = _product(a, b)
    h, low = _sum(np.broadcast_to(np.asarray(c, dtype=np.float64), p.shape), p)
    out: Array = h + _sum_to_odd(low, e)
    # an exact 0 takes the processor's sign: −0 where a·b and c are both −0 (or ±0 of the same sign), else +0
    return np.where(out == 0, p + c, out)


def _ldexp2(u: Array, q: Array) -> Array:
    """u·2^q as vldexp2 forms it: u·2^(q>>1), then times 2^(q − (q>>1)), each product rounded."""
    half = q >> 1
    return (u * np.ldexp(1.0, half)) * np.ldexp(1.0, q - half)


def _exp_block(d: Array) -> Array:
    with np.errstate(all="ignore"):
        u = np.rint(d * R_LN2)
        q = np.clip(np.nan_to_num(u), -2000, 2000).astype(np.int64)
        s = fma(u, np.full_like(d, -L2U), d)
        s = fma(u, np.full_like(d, -L2L), s)
        s2 = s * s
        s4 = s2 * s2
        s8 = s4 * s4
        c = EXP_POLY
        poly = fma(s8, fma(s, np.full_like(d, c[0]), c[1]),
                   fma(s4, fma(s2, fma(s, np.full_like(d, c[2]), c[3]), fma(s, np.full_like(d, c[4]), c[5])),
                       fma(s2, fma(s, np.full_like(d, c[6]), c[7]), fma(s, np.full_like(d, c[8]), c[9]))))
        u = fma(fma(fma(poly, s, 0.5), s, 1.0), s, 1.0)
        u = _ldexp2(u, q)
    u = np.where(d > OVER, np.inf, u)
    out: Array = np.where(d < -1000, 0.0, u)
    return out


def exp(x: Array) -> Array:
    """SLEEF's expd_u10 of each double of x, in x's shape (BLOCK elements at a time, each its own)."""
    a = np.asarray(x, dtype=np.float64)
    flat = a.reshape(-1)
    out = np.empty_like(flat)
    for i in range(0, flat.size, BLOCK):
        out[i:i + BLOCK] = _exp_block(flat[i:i + BLOCK])
    return out.reshape(a.shape)


# SLEEF's powd_u10 (Sleef_powd4_u10 with AVX2, Sleef_powd8_u10 with AVX-512), as PyTorch's Vectorized<double>::pow
# takes it: x^y = e^(y·log x), log x and the product in double-double (logk), e^ of a double-double (expk)
LN2_DD = (0.693147180559945286226764, 2.319046813846299558417771e-17)
LOGK_THIRD_DD = (0.666666666666666629659233, 3.80554962542412056336616e-17)  # (2/3 in double-double)
LOGK_POLY = (0.116255524079935043668677, 0.103239680901072952701192, 0.117754809412463995466069,
             0.13332981086846273921509, 0.153846227114512262845736, 0.181818180850050775676507,
             0.222222222230083560345903, 0.285714285714249172087875, 0.400000000000000077715612)
EXPK_POLY = (2.51069683420950419527139e-08, 2.76286166770270649116855e-07, 2.75572496725023574143864e-06,
             2.48014973989819794114153e-05, 0.000198412698809069797676111, 0.0013888888939977128960529,
             0.00833333333332371417601081, 0.0416666666665409524128449, 0.166666666666666740681535,
             0.500000000000000999200722)
POW_OVER = 709.78271114955742909217217426  # (past it, in the double-double's high part, x^y is ∞)
DD = tuple[Array, Array]  # a double-double: an unevaluated sum of two doubles, the second the smaller


def _mla(a: Array, b: Array | float, c: Array | float) -> Array:
    return fma(a, np.broadcast_to(np.asarray(b, dtype=np.float64), np.shape(a)), c)


def _poly4(x: Array, x2: Array, c: tuple[float, ...]) -> Array:
    """Estrin's c[0]·x³ + c[1]·x² + c[2]·x + c[3] (SLEEF's POLY4, each step an FMA)."""
    return _mla(x2, _mla(x, c[0], c[1]), _mla(x, c[2], c[3]))


def _poly8(x: Array, x2: Array, x4: Array, c: tuple[float, ...]) -> Array:
    return _mla(x4, _poly4(x, x2, c[:4]), _poly4(x, x2, c[4:]))


def _dd_add(x: DD, y: DD) -> DD:
    """ddadd_vd2_vd2_vd2 (|x| ≥ |y|)."""
    s = x[0] + y[0]
    return s, (((x[0] - s) + y[0]) + x[1]) + y[1]


def _dd_add2(x: DD, y: Array) -> DD:
    """ddadd2_vd2_vd2_vd: x + y for any magnitudes (Knuth's sum of the high parts)."""
    s = x[0] + y
    v = s - x[0]
    return s, ((x[0] - (s - v)) + (y - v)) + x[1]


def _dd_mul(x: DD, y: DD) -> DD:
    """ddmul_vd2_vd2_vd2 with FMA."""
    s = x[0] * y[0]
    return s, fma(x[0], y[1], fma(x[1], y[0], fma(x[0], y[0], -s)))


def _dd_scale(x: DD, y: Array | float) -> DD:
    """ddmul_vd2_vd2_vd with FMA: x times a double."""
    y_ = np.broadcast_to(np.asarray(y, dtype=np.float64), np.shape(x[0]))
    s = x[0] * y_
    return s, fma(x[1], y_, fma(x[0], y_, -s))


def _dd_square(x: DD) -> DD:
    """ddsqu_vd2_vd2 with FMA."""
    s = x[0] * x[0]
    return s, fma(x[0] + x[0], x[1], fma(x[0], x[0], -s))


def _dd_div(n: DD, d: DD) -> DD:
    """dddiv_vd2_vd2_vd2 with FMA."""
    t = 1.0 / d[0]
    s = n[0] * t
    u = fma(t, n[0], -s)
    v = fma(-d[1], t, fma(-d[0], t, 1.0))
    return s, fma(s, v, fma(n[1], t, u))


def _logk(d: Array) -> DD:
    """log d in double-double for d > 0 (SLEEF's logk): d = m·2^e, m in [0.75, 1.5) (a subnormal d scaled by 2^64
    first), x = (m − 1)/(m + 1), log d = e·ln 2 + 2x + (2/3)·x³ + x⁵·P(x²)."""
    tiny = d < np.finfo(np.float64).tiny
    d = np.where(tiny, d * 2.0**64, d)
    e = ((d * (1.0 / 0.75)).view(np.int64) >> 52 & 0x7FF) - 0x3FF
    m = (d.view(np.int64) - (e << 52)).view(np.float64)
    e = np.where(tiny, e - 64, e)
    one = np.ones_like(d)
    below, above = _sum(-one, m), _sum(one, m)
    x = _dd_div(below, above)
    x2 = _dd_square(x)
    x4 = x2[0] * x2[0]
    x8 = x4 * x4
    x16 = x8 * x8
    t = _mla(x16, LOGK_POLY[0], _poly8(x2[0], x4, x8, LOGK_POLY[1:]))
    s = _dd_scale((np.full_like(d, LN2_DD[0]), np.full_like(d, LN2_DD[1])), e.astype(np.float64))
    s = _dd_add(s, (x[0] * 2, x[1] * 2))
    x = _dd_mul(x2, x)
    s = _dd_add(s, _dd_mul(x, (np.full_like(d, LOGK_THIRD_DD[0]), np.full_like(d, LOGK_THIRD_DD[1]))))
    x = _dd_mul(x2, x)
    return _dd_add(s, _dd_scale(x, t))


def _expk(d: DD) -> Array:
    """e^d of a double-double (SLEEF's expk): d = q·ln 2 + s, e^s by a degree-10 polynomial in double-double steps,
    times 2^q; 0 below −1000."""
    u = np.rint((d[0] + d[1]) * R_LN2)
    q = np.clip(np.nan_to_num(u), -2000, 2000).astype(np.int64)
    s = _dd_add2(d, u * -L2U)
    s = _dd_add2(s, u * -L2L)
    hi = s[0] + s[1]
    s = (hi, (s[0] - hi) + s[1])
    s2 = s[0] * s[0]
    s4 = s2 * s2
    s8 = s4 * s4
    c = EXPK_POLY
    poly = _mla(s8, _mla(s[0], c[0], c[1]), _poly8(s[0], s2, s4, c[2:]))
    one = np.ones_like(hi)
    t0 = one + s[0]
    t = (t0, ((one - t0) + s[0]) + s[1])
    t = _dd_add(t, _dd_scale(_dd_square(s), poly))
    out: Array = np.where(d[0] < -1000, 0.0, _ldexp2(t[0] + t[1], q))
    return out


def _pow_block(x: Array, y: float) -> Array:
    with np.errstate(all="ignore"):
        d = _dd_scale(_logk(np.abs(x)), y)
        out = np.where(d[0] > POW_OVER, np.inf, _expk(d))
        whole = float(np.rint(y)) == y
        sign = -1.0 if whole and float(np.rint(y * 0.5)) != y * 0.5 else 1.0
        out = out * np.where(x > 0, 1.0, sign if whole else np.nan)
        edge = np.isinf(x) | (x == 0)
        at_edge = np.where((y < 0) != (x == 0), 0.0, np.inf)
        at_edge = np.copysign(at_edge, x) if sign < 0 else at_edge
        out = np.where(edge, at_edge, out)
        out = np.where(np.isnan(x), np.nan, out)
        result: Array = np.where((y == 0) | (x == 1), 1.0, out)
    return result


def pow(x: Array, y: float) -> Array:
    """SLEEF's powd_u10 of each double of x to a finite power y, in x's shape (BLOCK elements at a time)."""
    a = np.asarray(x, dtype=np.float64)
    flat = a.reshape(-1)
    out = np.empty_like(flat)
    for i in range(0, flat.size, BLOCK):
        out[i:i + BLOCK] = _pow_block(flat[i:i + BLOCK], float(y))
    return out.reshape(a.shape)
