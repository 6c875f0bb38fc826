"""TensorFlow's float32 CPU kernels behind Keras' focal losses: pow, sigmoid and softmax, as the x86 build (AVX
without FMA, flush to zero) computes them, in numpy on float32 arrays.

`tf.pow` is Eigen's scalar_pow_op: over whole packets of 8 its generic_pow (x = m·2^e, log2 m by a polynomial
finished in double-word arithmetic, y·log2 x as a double word split into an integer n and a fraction r, 2^r as
e^(r·ln 2) by Eigen's packet exp corrected by the product's low word, then 2^n by ldexp), the C library's powf for
the elements after the last whole packet. `tf.sigmoid` is Eigen's float logistic: over whole packets its own e^(x/2)
squared (no denormal in between) and e/(1 + e), 0 below −104; for the rest expf of x (at most 16.6355324), then
e/(1 + e). Every operation rounds once (Eigen's multiply-adds twice: no FMA in the build); subnormal results are
flushed to zero.
"""

from __future__ import annotations

import numpy as np

from . import cpu
from .losses._ops import Array
from .lowp import fma
from .lowp_pairs import powf
from .lowp_tf import F32, PACKET, add, div, elementwise, ftz, libm_expf, madd, mul, pexp, sub

SPLIT = F32(4097)  # Veltkamp's splitter for float: 2^12 + 1
LN2 = F32(0.693147180559945309417232121458176568)
SQRT_HALF = F32(0.70710678118654752440)
LOG2_C0 = 1.442695041742110273474963832995854318141937255859375
LOG2_C1 = -7.2134751588268664068692714863573201000690460205078125e-01
LOG2_POLY = tuple(F32(c) for c in (
    9.7010828554630279541015625e-02, -1.6896486282348632812500000e-01, 1.7200836539268493652343750e-01,
    -1.7892272770404815673828125e-01, 2.0505344867706298828125000e-01, -2.4046677350997924804687500e-01,
    2.8857553005218505859375000e-01, -3.6067414283752441406250000e-01, 4.8089790344238281250000000e-01))
Pair = tuple[Array, Array]


def _pair(c: float) -> Pair:
    """A double constant as a float double word (its float, and the float of what is left)."""
    hi = np.asarray(c, dtype=F32)
    return hi, np.asarray(c - float(hi), dtype=F32)


def split(x: Array) -> Pair:
    """Veltkamp's splitting: x = hi + lo exactly, each with half of x's significand."""
    g = mul(SPLIT, x)
    hi = add(sub(x, g), g)
    return hi, sub(x, hi)


def two_sum(x: Array, y: Array) -> Pair:
    """fast_twosum: x + y = s + t exactly when |x| ≥ |y|."""
    s = add(x, y)
    return s, sub(y, sub(s, x))


def two_prod(x: Array, y: Array) -> Pair:
    """Dekker's product without FMA: x·y = p + q exactly."""
    (xh, xl), (yh, yl) = split(x), split(y)
    p = mul(x, y)
    q = madd(xh, yh, -p)
    q = madd(xh, yl, q)
    q = madd(xl, yh, q)
    return p, madd(xl, yl, q)


def dw_prod(x: Pair, y: Array) -> Pair:
    """A double word times a float (Muller's Algorithm 7)."""
    ch, cl1 = two_prod(x[0], y)
    th, tl1 = two_sum(ch, mul(x[1], y))
    return two_sum(th, add(tl1, cl1))


def dw_sum(x: Pair, y: Pair) -> Pair:
    """Two double words added, |x| ≥ |y|."""
    rh, rl = two_sum(x[0], y[0])
    return two_sum(rh, add(add(y[1], rl), x[1]))


def log2_dw(z: Array) -> Pair:
    """Eigen's accurate_log2<float> of z in [√½, √2): log2(1 + x)/x by a polynomial whose last two steps of Horner's
    rule run in double words, times x."""
    x = sub(z, F32(1))
    p = np.full_like(x, LOG2_POLY[0])
    for c in LOG2_POLY[1:]:
        p = madd(p, x, c)
    hi, lo = two_prod(x, p)
    hi, lo = dw_sum(_pair(LOG2_C1), (hi, lo))
    hi, lo = dw_sum(_pair(LOG2_C0), dw_prod((hi, lo), x))
    return dw_prod((hi, lo), x)


def pround(x: Array) -> Array:
    """Eigen's AVX pround: x plus ±0.49999997, truncated."""
    return np.trunc(add(np.copysign(F32(0.49999997), x), x)).astype(F32)


def exp2(r: Array) -> Array:
    """Eigen's generic_exp2: e^(hi)·(1 + lo), hi + lo = r·ln 2 (r clamped to [−151, 129])."""
    hi, lo = two_prod(np.full_like(r, LN2), np.clip(r, F32(-151), F32(129)))
    return mul(pexp(hi), add(F32(1), lo))


def ldexp(e: Array, n: Array) -> Array:
    """e·2^n as Eigen's pldexp forms it: a packet with some |n| > 126 scales exactly (then flushes or overflows),
    the others by the float 2^n built from a biased exponent clamped to [0, 255] (0 and ∞ at the ends)."""
    wide = np.repeat(np.any(np.abs(n).reshape(-1, PACKET) > 126, axis=1), PACKET).reshape(n.shape)
    with np.errstate(over="ignore"):
        exact = ftz((e.astype(np.float64) * np.exp2(n.astype(np.float64))).astype(F32))
        biased = np.clip(n + 127, 0, 255).astype(np.int64)
        fast = mul(e, (biased << 23).astype(np.uint32).view(F32))
    return np.where(wide, exact, fast).astype(F32)


def ppow_positive(x: Array, y: F32) -> Array:
    """Eigen's generic_pow_impl for x > 0: y·log2 x = n + r in double words, 2^r·2^n."""
    frac, ex = np.frexp(x)
    m, e = frac.astype(F32), ex.astype(F32)
    low = m < SQRT_HALF
    m, e = np.where(low, mul(F32(2), m), m), np.where(low, sub(e, F32(1)), e)
    yy = np.full_like(x, y)
    fh, fl = dw_sum(two_prod(e, yy), dw_prod(log2_dw(m), yy))
    n = pround(fh)
    r = add(sub(fh, n), fl)
    nr = pround(r)
    return ldexp(exp2(sub(r, nr)), add(n, nr))


# generic_pow's huge_exponent, the least |y| for which (1 + ε)^y overflows: max_exponent·ln 2/ε in float
HUGE_EXPONENT = F32(128) * F32(np.log(2)) / np.finfo(F32).eps


def ppow(x: Array, y: F32) -> Array:
    """Eigen's packet pow of x ≥ 0 by a float y, with C's special values (0^y: 0, or ∞ for y < 0; x^0 and 1^y: 1;
    x^1: x; ∞^y: ∞, or 0 for y < 0; a huge |y|: 0 or ∞); a subnormal x or y reads as 0 (denormals-are-zero; the
    C library's powf, for the elements beyond the last whole packet, reads y as it is)."""
    raw, x = x, ftz(x)  # (a subnormal reads as 0, but x^1 passes x on as it is)
    y = F32(0) * y if abs(y) < np.finfo(F32).tiny else y  # (so does a subnormal exponent: x^y is 1)
    with np.errstate(all="ignore"):
        out = ppow_positive(np.where((x > 0) & np.isfinite(x), x, F32(1)), y)
        out = np.where(x == 0, F32(np.inf) if y < 0 else F32(0), out)
        if abs(y) >= HUGE_EXPONENT:  # (a huge y: 0 or ∞ by x against 1, where the double words would overflow)
            out = np.where(((y < 0) & (x == 0)) | ((y < 0) != (x > 1)), F32(np.inf), F32(0))
        out = np.where(np.isinf(x), F32(0) if y < 0 else F32(np.inf), out)
        out = np.where(np.isnan(x), x, out)
        return (raw if y == 1 else np.where((x == 1) | (y == 0), F32(1), out)).astype(F32)


def libm_powf(x: Array, y: F32) -> Array:
    """The C library's powf of x ≥ 0 (glibc's), flushed: 0^y is 0 (∞ for y < 0), x^0 is 1."""
    with np.errstate(all="ignore"):
        out = ftz(powf(x, y))
    out = np.where(x == 0, F32(np.inf) if y < 0 else F32(0), out)
    return np.where(np.isnan(x), x, np.where((y == 0) | (x == 1), F32(1), out)).astype(F32)


def power(x: Array, y: F32) -> Array:
    """tf.pow(x, y) in float32 for a scalar y: Eigen's packet pow over whole packets, powf for the rest (a
    subnormal x read as 0)."""
    return elementwise(x, lambda a: ppow(a, y), lambda a: libm_powf(ftz(a), y))


LOGISTIC_POLY = tuple(F32(c) for c in (0.49999141693115234375, 0.16666877269744873046875,
                                       4.1898667812347412109375e-2, 8.33471305668354034423828125e-3))
LOGISTIC_HI = F32(16.6355324)


def plogistic(x0: Array) -> Array:
    """Eigen's scalar_logistic_op<float> over packets: e^(x/2) by Cephes' reduction and a degree-5 polynomial,
    2^m applied by the fast ldexp, squared, then e/(1 + e); 0 below −104, x capped at 16.6355324."""
    with np.errstate(all="ignore"):
        x = mul(np.minimum(x0, LOGISTIC_HI), F32(0.5))
        m = np.floor(madd(x, F32(1.44269504088896341), F32(0.5))).astype(F32)
        r = madd(m, F32(-0.693359375), x)
        r = madd(m, F32(2.12194440e-4), r)
        r2 = mul(r, r)
        p2, p3, p4, p5 = LOGISTIC_POLY
        p = madd(r, madd(r2, p5, p3), madd(r2, p4, p2))
        p = madd(r2, p, add(r, F32(1)))
        biased = np.clip(m + 127, 0, 255).astype(np.int64)
        e = mul(p, (biased << 23).astype(np.uint32).view(F32))
        e = mul(e, e)
        out = div(e, add(F32(1), e))
    return np.where(x0 < F32(-104), F32(0), ftz(out)).astype(F32)


def libm_logistic(x: Array) -> Array:
    """The logistic's scalar path: e = expf(min(x, 16.6355324)) (glibc's), e/(1 + e)."""
    e = libm_expf(np.minimum(x, LOGISTIC_HI))
    with np.errstate(all="ignore"):
        return div(e, add(F32(1), e))


def sigmoid(z: Array) -> Array:
    """tf.sigmoid in float32: the packet logistic over whole packets, the scalar one for the rest."""
    return elementwise(ftz(z), plogistic, libm_logistic)


# oneDNN's exp (its eltwise injector, 3.7): bounds, log2 e, ln 2 and the degree-5 polynomial, as float bits
DNNL_EXP = {k: np.array(v, dtype=np.uint32).view(F32) for k, v in {
    "lo": 0xC2AEAC50, "hi": 0x42B17218, "log2e": 0x3FB8AA3B, "ln2": 0x3F317218,
    "poly": (0x3C07CFCE, 0x3D2B9D0D, 0x3E2AAD40, 0x3EFFFEE3, 0x3F7FFFFB)}.items()}
LANES = 16  # floats in an AVX-512 register


def onednn() -> bool:
    """Whether TensorFlow hands tf.nn.softmax to oneDNN on the processor reproduced (cpu.selected()). Its x86 build
    turns oneDNN on by default only on a processor with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX
    (DefaultOneDnnPolicy, tensorflow/core/util/util.cc): the AVX-512 machine of the golden files has them, the AVX2
    machine reproduced (an AMD EPYC without AVX-VNNI) none, so there TensorFlow runs Eigen's softmax
    (lowp_tf_log.eigen_softmax)."""
    return cpu.selected() == "avx512"


def dnnl_exp(x0: Array) -> Array:
    """oneDNN's jit e^x: x clamped to [ln FLT_MIN, ln FLT_MAX], n = ⌊x·log2 e + ½⌋, r = x − n·ln 2 (fused),
    e^r by a degree-5 polynomial in fused multiply-adds, times 2^(n−1) (0 below ln FLT_MIN), times 2."""
    c = DNNL_EXP
    with np.errstate(all="ignore"):
        x = np.maximum(np.minimum(x0, c["hi"]), c["lo"])
        n = np.floor(add(mul(x, c["log2e"]), F32(0.5))).astype(F32)
        r = fma(-n, c["ln2"], x)
        p = np.full_like(r, c["poly"][0])
        for k in (*c["poly"][1:], F32(1)):
            p = fma(p, r, k)
        scale = ((sub(n, F32(1)).astype(np.int64) + 127) << 23).astype(np.uint32).view(F32)
        scale = np.where(x0 < c["lo"], F32(0), scale)
        return mul(mul(p, scale), F32(2))


def dnnl_softmax(z: Array) -> Array:
    """oneDNN's jit softmax along the rows (`softmax_accurate`, AVX-512; TensorFlow's x86 build hands tf.nn.softmax
    to it): e = e^(z − max); the row's sum in registers of 16 lanes, four accumulators over the groups of four
    registers, then the rest of the whole registers one to an accumulator, the last partial register onto the
    first, the accumulators added pairwise and the lanes halved; its reciprocal 1/Σ; e times it."""
    with np.errstate(all="ignore"):
        e = dnnl_exp(sub(z, z.max(axis=1, keepdims=True)))
    rows, n = e.shape
    full = n // LANES
    acc = np.zeros((4, rows, LANES), dtype=F32)
    for j in range(full):
        k = j % 4 if j < full // 4 * 4 else j - full // 4 * 4
        acc[k] = add(acc[k], e[:, j * LANES:(j + 1) * LANES])
    if n % LANES:
        acc[0, :, :n % LANES] = add(acc[0, :, :n % LANES], e[:, full * LANES:])
    used = 4 if full >= 4 else max(full % 4, 1)
    total = acc[0] if used == 1 else add(acc[0], acc[1])
    if used >= 3:
        total = add(total, acc[2] if used == 3 else add(acc[2], acc[3]))
    for half in (8, 4, 2, 1):
        lane = np.arange(LANES) ^ half
        total = add(total, total[:, lane])
    with np.errstate(all="ignore"):
        return mul(e, div(F32(1), total[:, :1]))
