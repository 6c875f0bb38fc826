"""YNNPACK's own float32 elementwise functions, as XLA's CPU backend runs them where it hands an elementwise
operation to YNNPACK fused with a reduction (jaxlib 0.10 on x86-64; read from YNNPACK's
`ynnpack/base/simd/target_independent.inc`). They are not XLA's: log x here differs from lowp_xla.xla_log in the
last bit of about a fifth of the values in (0, 1).
"""

from __future__ import annotations

import numpy as np

from .losses._ops import Array
from .lowp import fma

F32 = np.float32

LN2 = F32(0.693147180559945309)
SQRT2 = F32(1.41421356237309504880)
# log(1 + r) ≈ r + r²·P(r)/Q(r) for r in [√½ − 1, √2 − 1], the coefficients highest first
LOG_P = (F32(-5.2293352783e-03), F32(-3.3127889037e-01), F32(-4.9999964237e-01))
LOG_Q = (F32(3.9658042789e-01), F32(1.3292170763e+00), F32(1))


def _poly3(c: tuple[F32, F32, F32], r: Array, r2: Array) -> Array:
    """c₀r² + c₁r + c₂ as YNNPACK evaluates a polynomial of three terms: (c₀·r² + c₂) and then c₁·r added, both
    multiply-adds."""
    return fma(r, c[1], fma(r2, c[0], c[2]))


def _flushed(x: Array) -> Array:
    """x with subnormals read as 0, keeping the sign (YNNPACK runs with XLA's FTZ and DAZ: lowp_xla.ftz)."""
    return np.where(np.abs(x) < np.finfo(F32).tiny, x * F32(0), x).astype(F32)


def _exponent(x: Array) -> Array:
    """⌊log₂ x⌋ as a float (AVX-512's getexp): −∞ at 0, +∞ at +∞, NaN for a negative x or NaN."""
    e = (((x.view(np.uint32) >> 23) & 0xFF).astype(np.int32) - 127).astype(F32)
    e = np.where(x == 0, F32(-np.inf), np.where(np.isinf(x), x, e))
    return np.where((x < 0) | np.isnan(x), F32(np.nan), e).astype(F32)


def ynn_log(x: Array) -> Array:
    """YNNPACK's log x in float32: x = 2^e·m (subnormals read as 0), m in [1, 2) halved (and e raised) above √2,
    r = m − 1, log m = r + r²·P(r)/Q(r) (one division, multiply-adds), then e·ln 2 added in one more."""
    x = _flushed(np.asarray(x, dtype=F32))
    with np.errstate(all="ignore"):
        e = _exponent(x)
        m = ((x.view(np.uint32) & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(F32)
        large = m > SQRT2
        e = np.where(large, e + F32(1), e)
        r = np.where(large, m * F32(0.5), m) - F32(1)
        r2 = r * r
        log_m = fma(r2, _poly3(LOG_P, r, r2) / _poly3(LOG_Q, r, r2), r)
        out: Array = fma(e, LN2, log_m)
    return out
