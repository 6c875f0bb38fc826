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
    """a·b + c rounded once: a·b = p + e and c + p = h + l exactly, then h + (l + e rounded to odd), rounded. Exact
    while a·b neither overflows nor has an error term below the normal range (true of every step of exp below)."""
    p, e = _product(a, b)
    h, low = _sum(np.broadcast_to(np.asarray(c, dtype=np.float64), p.shape), p)
    out: Array = h + _sum_to_odd(low, e)
    return out


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
