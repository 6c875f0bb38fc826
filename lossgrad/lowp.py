"""PyTorch's CPU kernels in float32, float16 and bfloat16, reproduced bit for bit.

A float32 result differs from the float64 truth by rounding; to tell a user's number apart from a wrong formula
lossgrad must round exactly where the framework rounds. PyTorch's vectorised CPU kernels take e^x, log x and
log(1 + x) from SLEEF (the 1-ulp `u10` functions, with fused multiply-adds), not from the C library, and sum a
row in lanes of a SIMD register (16 floats with AVX-512, 8 with AVX2) that are then added pairwise: both are
reproduced here, in numpy, on float32 arrays. Half-precision values are carried in float32 arrays (every float16
and bfloat16 is a float32) and rounded to the half dtype where the kernel stores one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import numpy as np

from . import cpu, mkl
from .flush import flushed_below
from .losses import Parts
from .losses._ops import Array
from .losses.base import Joined, Place

F32 = np.float32
# the float32 lanes of a vector register, Vectorized<float>::size(), under each capability PyTorch dispatches its
# kernels to (cpu.selected(); a float16 or bfloat16 register holds twice as many): log_softmax's row sums run in
# them, and cpu_kernel_vec's loops take two registers at a time before their scalar remainder. Only the kernels
# registered with ALSO_REGISTER_AVX512_DISPATCH have an AVX-512 build (softmax's, sigmoid's, pow's); DispatchStub
# gives a processor with AVX-512 the AVX2 build of the others (REGISTER_DISPATCH alone): torch.sum's (SUM_LANES),
# the norm's, huber's and smooth_l1's backward (scalar_tail) run in AVX2's registers on either
LANES = {"avx512": 16, "avx2": 8}
# TensorIterator splits an operation over more than GRAIN elements among the intra-op threads (at::parallel_for):
# THREADS, the cores of the machine the golden files record
GRAIN = 32768
THREADS = 2
SUM_LANES = 8
WIDE_LANES = 4  # (torch.sum of float64: the same 256-bit registers, of 4 doubles)
# the `half` of the kernels that also reproduce PyTorch's float64 (lowp_seg, lowp_pairs): no rounding beyond each
# double operation's own, torch.sum's cascade and the norm's lanes over WIDE_LANES doubles
WIDE = np.float64
# torch.sum of float16 or bfloat16 loads a register of HALF_LOAD of them (256 bits: the AVX2 kernel again)
HALF_LOAD = 16
# the losses (and modes) whose PyTorch kernels are reproduced, by dtype family
SUPPORTED = ("ce (from logits; class indexes with ignore_index, class weights and label smoothing, or probability "
             "rows with class weights and label smoothing)", "nll (with ignore_index and class weights)",
             "bce (from logits, with pos_weight; or on probabilities; either with sample weights)", "mse", "mae",
             "huber", "poisson (float16 and bfloat16; log rates or rates, with full)",
             "kl (with log-probability predictions)",
             "gaussian-nll (float16 and bfloat16; a variance per prediction or per sample, with full and var_eps)",
             "margin-ranking (with margin)",
             "sample weights as (loss(reduction='none') * w).mean() or .sum() on ce and nll without options, mse, "
             "mae, huber, smooth-l1, kl, poisson, focal, gaussian-nll and margin-ranking")


# elements an emulated elementwise kernel takes at a time: its dozens of float64 temporaries (512 KiB each) stay in
# the core's cache, where over whole arrays each is a trip to memory (expf, logf, log1pf over 4 million floats: about
# half the time of whole arrays, benchmarks/kernels.py)
CACHE_BLOCK = 1 << 16
FLUSHED_BELOW_32 = float(flushed_below(F32))  # (fma's flush)


def log_specials(x: Array, out: Array) -> Array:
    """out, a log emulated for positive finite x, with the C library's answers elsewhere: NaN for NaN and below 0,
    −∞ at ±0, +∞ at +∞ (glibc's logf, Eigen's plog and SLEEF's alike)."""
    out = np.where(x == 0, -np.inf, np.where(x == np.inf, np.inf, out))
    special: Array = np.where(np.isnan(x) | (x < 0), np.nan, out).astype(out.dtype)
    return special


def log1p_specials(x: Array, out: Array) -> Array:
    """out, a log(1 + x) emulated for finite x > −1, with the C library's answers elsewhere: NaN for NaN and below
    −1, −∞ at −1, +∞ at +∞."""
    out = np.where(x == -1, -np.inf, np.where(x == np.inf, np.inf, out))
    special: Array = np.where(np.isnan(x) | (x < -1), np.nan, out).astype(out.dtype)
    return special


def lanes() -> int:
    """The float32 lanes of a register of the capability whose kernels are reproduced: a kernel reads it once, as
    it starts on a batch (a gradient formed later uses the value read then)."""
    return LANES[cpu.selected()]


def register(half: Any, capability: str | None = None) -> int:
    """The elements of a vector register of `capability` (None: the one reproduced, as `lanes`): its float32 lanes,
    or twice as many of a `half` dtype (None: float32)."""
    return (lanes() if capability is None else LANES[capability]) * (1 if half is None else 2)


def in_blocks(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """The elementwise function f, applied to CACHE_BLOCK elements at a time (the same results: each element's
    depends on it alone)."""
    @functools.wraps(f)
    def blocked(x: Array) -> Array:
        a = np.asarray(x)
        if a.size <= CACHE_BLOCK:
            return f(x)
        flat = a.reshape(-1)
        pieces = [f(flat[i:i + CACHE_BLOCK]) for i in range(0, flat.size, CACHE_BLOCK)]
        return np.concatenate(pieces).reshape(a.shape)
    return blocked


def one_hot(labels: Array, classes: int) -> Array:
    """The float32 one-hot rows of class indexes: a sparse loss's dense form (Keras'), or the rows a user smooths
    (optax's jax.nn.one_hot)."""
    rows = np.zeros((labels.size, classes), dtype=F32)
    rows[np.arange(labels.size), np.asarray(labels).reshape(-1).astype(np.intp)] = 1
    return rows


def fma(a: Any, b: Any, c: Any, flush: bool = False) -> Array:
    """a·b + c rounded once to float32, as an FMA instruction gives it (fma_block's), over about CACHE_BLOCK
    elements at a time, leading rows of the broadcast shape: over whole arrays its float64 temporaries are trips
    to memory (16 million elements: 0.167 s, against 0.051 s in blocks; benchmarks/kernels.py). flush: an exact
    result that the processor's flush to zero takes to 0 just below the normal range is 0 (lossgrad.flush)."""
    both = np.broadcast(a, b, c)
    shape, size = both.shape, both.size
    if size <= CACHE_BLOCK:
        return fma_block(a, b, c, flush)
    a, b, c = np.broadcast_arrays(np.asarray(a), np.asarray(b), np.asarray(c))
    step = max(1, CACHE_BLOCK // (size // shape[0]))
    out = np.empty(shape, dtype=F32)
    for i in range(0, shape[0], step):
        out[i:i + step] = fma_block(a[i:i + step], b[i:i + step], c[i:i + step], flush)
    return out


def fma_block(a: Any, b: Any, c: Any, flush: bool = False) -> Array:
    """a·b + c rounded once to float32, as an FMA instruction gives it. a·b is exact in float64, and the float64 sum
    rounds to the same float32 as the exact one unless it landed on a midpoint between two float32s (or among the
    subnormals; a zero is exact): there the sum is redone rounding to odd (an inexact float64 sum takes the
    neighbour with an odd last bit), which a second rounding to float32 turns into the correctly rounded result."""
    p = np.multiply(a, b, dtype=np.float64)
    c64 = np.asarray(c, dtype=np.float64)
    s = np.asarray(p + c64)
    suspect = ((s.view(np.int64) & 0x1FFFFFFF) == 0x10000000) | ((np.abs(s) < 2.0 ** -125) & (s != 0))
    if suspect.any():  # (rare: redone for those elements alone)
        s[suspect] = _sum_to_odd(np.broadcast_to(p, s.shape)[suspect], np.broadcast_to(c64, s.shape)[suspect])
        if flush:  # (rounded to odd, or exact, s is below the bound just where the exact sum is)
            s[suspect] = np.where(np.abs(s[suspect]) < FLUSHED_BELOW_32, 0.0 * s[suspect], s[suspect])
    out: Array = s.astype(F32)[()]  # (a scalar for scalars)
    return out


def _sum_to_odd(p: Array, c: Array) -> Array:
    """p + c in float64 rounded to odd: the float64 sum when exact, else its neighbour towards the exact sum
    whichever of the two has an odd last bit."""
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    even = (s.view(np.int64) & 1) == 0
    with np.errstate(invalid="ignore"):
        odd: Array = np.where((err != 0) & even & np.isfinite(s), np.nextafter(s, np.where(err > 0, np.inf, -np.inf)),
                              s)
    return odd


def _ldexp2(u: Array, q: Array) -> Array:
    """u·2^q as SLEEF's vldexp2 forms it: two multiplications by powers of two, each rounded to float32. Neither
    rounds where the exact u·2^q is a normal float32 or overflows (the first product, u·2^⌊q/2⌋, lies between u and
    the result), so there it is one exact product; the two steps are redone only where the result is below 2^−126
    (a third of expf's time over the whole product; benchmarks/kernels.py)."""
    qi = np.clip(q, -300, 300).astype(np.int32)
    normal = np.clip(qi, -126, 127)  # (the exponents of normal float32 powers of two, built from their bits)
    out: Array = np.asarray(u, dtype=F32) * ((normal + 127) << 23).view(F32)
    low = (np.abs(out) < F32(2.0 ** -126)) | (qi != normal)
    if low.any():
        ul, ql = np.broadcast_to(u, out.shape)[low].astype(np.float64), qi[low]
        half = ql >> 1
        ul = (ul * np.ldexp(1.0, half)).astype(F32)
        out[low] = (ul.astype(np.float64) * np.ldexp(1.0, ql - half)).astype(F32)
    return out


EXP_POLY = tuple(F32(c) for c in (0.000198527617612853646278381, 0.00139304355252534151077271,
                                   0.00833336077630519866943359, 0.0416664853692054748535156,
                                   0.166666671633720397949219, 0.5))


@in_blocks
def expf(d: Array) -> Array:
    """SLEEF's expf_u10 (PyTorch's Vectorized<float>::exp): e^d = 2^q·e^s, s = d − q·ln 2 in two parts, e^s by
    a degree-7 polynomial in fused multiply-adds."""
    d = np.asarray(d, dtype=F32)
    with np.errstate(all="ignore"):
        q = np.rint(d * F32(1.442695040888963407359924681001892137426645954152985934135449406931))
        s = fma(q, F32(-0.693145751953125), d)
        s = fma(q, F32(-1.428606765330187045e-06), s)
        u = np.full_like(d, EXP_POLY[0])
        for c in EXP_POLY[1:]:
            u = fma(u, s, c)
        u = F32(1) + fma(s * s, u, s)
        u = _ldexp2(u, np.nan_to_num(q))
    u = np.where(d < -104, F32(0), u)
    out: Array = np.where(d > 100, F32(np.inf), u).astype(F32)
    return out


LN2_DF = (F32(0.69314718246459960938), F32(-1.904654323148236017e-09))
LOG_POLY = (F32(0.3027294874), F32(0.3996108174), F32(0.6666694880))


def _df_div(nx: Array, ny: Array, dx: Array, dy: Array) -> tuple[Array, Array]:
    """SLEEF's double-float division (nx + ny)/(dx + dy), with fused multiply-adds."""
    t = F32(1) / dx
    s = nx * t
    u = fma(t, nx, -s)
    v = fma(-dy, t, fma(-dx, t, F32(1)))
    return s, fma(s, v, fma(ny, t, u))


def _log_tail(e: Array, xx: Array, xy: Array) -> Array:
    """e·ln 2 + 2·atanh(x) in double-float arithmetic, x = xx + xy: the common end of SLEEF's logf and log1pf."""
    sx = LN2_DF[0] * e
    sy = fma(LN2_DF[1], e, fma(LN2_DF[0], e, -sx))
    x2 = xx * xx
    t = np.full_like(xx, LOG_POLY[0])
    t = fma(t, x2, LOG_POLY[1])
    t = fma(t, x2, LOG_POLY[2])
    ax, ay = xx * F32(2), xy * F32(2)
    s2 = sx + ax
    s2y = (((sx - s2) + ax) + sy) + ay
    w = (x2 * xx) * t
    s3 = s2 + w
    s3y = ((s2 - s3) + w) + s2y
    out: Array = (s3 + s3y).astype(F32)
    return out


def _split(d: Array) -> tuple[Array, Array]:
    """AVX-512's getexp(d·4/3) and getmant(d) in [0.75, 1.5): d = m·2^e (d positive and normal; AVX2's SLEEF forms
    the same e and m with its integer ilogb and ldexp)."""
    e = np.floor(np.log2((d * F32(1 / 0.75)).astype(np.float64)))
    e = np.where(np.isinf(e), 128.0, e)  # (d·4/3 beyond the float32 range: getexp's infinity taken as 128)
    m = np.ldexp(d.astype(np.float64), -np.floor(np.log2(d.astype(np.float64) / 0.75)).astype(np.int32))
    return e.astype(F32), m.astype(F32)


@in_blocks
def logf(d: Array) -> Array:
    """SLEEF's logf_u1 on AVX-512 (PyTorch's Vectorized<float>::log): log m + e·ln 2, log m = 2·atanh((m − 1)/(m +
    1)) in double-float arithmetic; as SLEEF's special cases, ∞ at ∞, NaN below 0 and at NaN, −∞ at 0."""
    d = np.asarray(d, dtype=F32)
    with np.errstate(all="ignore"):
        e, m = _split(d)
        one = np.ones_like(m)
        nx = -one + m
        ny = (-one - (nx - (nx - (-one)))) + (m - (nx - (-one)))
        dx = one + m
        dy = (one - (dx - (dx - one))) + (m - (dx - one))
        xx, xy = _df_div(nx, ny, dx, dy)
        out = _log_tail(e, xx, xy)
    out = np.where(d == np.inf, F32(np.inf), np.where((d < 0) | np.isnan(d), F32(np.nan), out))
    return np.where(d == 0, F32(-np.inf), out).astype(F32)


@in_blocks
def log1pf(d: Array) -> Array:
    """SLEEF's log1pf_u10 on AVX-512 (PyTorch's Vectorized<float>::log1p), for d in [0, 1]."""
    d = np.asarray(d, dtype=F32)
    with np.errstate(all="ignore"):
        e = np.floor(np.log2(((d + F32(1)) * F32(1 / 0.75)).astype(np.float64))).astype(F32)
        t = np.ldexp(np.ones_like(d), -np.rint(e).astype(np.int32)).astype(F32)
        m = fma(d, t, t - F32(1))
        two = np.full_like(m, F32(2))
        dx = two + m
        dy = (two - dx) + m
        xx, xy = _df_div(m, np.zeros_like(m), dx, dy)
        out = _log_tail(e, xx, xy)
    return log1p_specials(d, np.where(d == 0, d, out).astype(F32))


# glibc's expf (2.27 and later), which TensorIterator's scalar loop calls: 2^(k/32) from a table of doubles and a
# cubic for the rest, in double arithmetic rounded once to float
EXP2F_TAB = np.array([int(h, 16) for h in (
    "3ff0000000000000", "3fefd9b0d3158574", "3fefb5586cf9890f", "3fef9301d0125b51", "3fef72b83c7d517b",
    "3fef54873168b9aa", "3fef387a6e756238", "3fef1e9df51fdee1", "3fef06fe0a31b715", "3feef1a7373aa9cb",
    "3feedea64c123422", "3feece086061892d", "3feebfdad5362a27", "3feeb42b569d4f82", "3feeab07dd485429",
    "3feea47eb03a5585", "3feea09e667f3bcd", "3fee9f75e8ec5f74", "3feea11473eb0187", "3feea589994cce13",
    "3feeace5422aa0db", "3feeb737b0cdc5e5", "3feec49182a3f090", "3feed503b23e255d", "3feee89f995ad3ad",
    "3feeff76f2fb5e47", "3fef199bdd85529c", "3fef3720dcef9069", "3fef5818dcfba487", "3fef7c97337b9b5f",
    "3fefa4afa2a490da", "3fefd0765b6e4540")], dtype=np.uint64)
EXPF_POLY = tuple(float.fromhex(h) / 32 ** k for h, k in (("0x1.c6af84b912394p-5", 3), ("0x1.ebfce50fac4f3p-3", 2),
                                                         ("0x1.62e42ff0c52d6p-1", 1)))
EXPF_SHIFT = float.fromhex("0x1.8p52")
INV_LN2_32 = float.fromhex("0x1.71547652b82fep+0") * 32
EXPF_OVER, EXPF_UNDER = float.fromhex("0x1.62e42ep6"), -float.fromhex("0x1.9fe368p6")  # (∞ above, 0 below)


@in_blocks
def libm_expf(x: Array) -> Array:
    """The C library's expf: e^x = 2^(k/32)·2^(r/32), x·32/ln 2 = k + r, for x within the float range (beyond
    it: 0 and infinity)."""
    xd = np.asarray(x, dtype=F32).astype(np.float64)
    with np.errstate(all="ignore"):
        z = INV_LN2_32 * np.clip(xd, -150.0, 150.0)
        kd = z + EXPF_SHIFT
        ki = kd.view(np.uint64)
        r = z - (kd - EXPF_SHIFT)
        s = (EXP2F_TAB[ki % np.uint64(32)] + (ki << np.uint64(47))).view(np.float64)
        c = EXPF_POLY
        y = ((c[0] * r + c[1]) * (r * r) + (c[2] * r + 1)) * s
        out = np.where(xd > EXPF_OVER, np.inf, np.where(xd < EXPF_UNDER, 0.0, y)).astype(F32)
    result: Array = out
    return result


# glibc's logf (2.28 and later): log c and 1/c at 16 points c near 1, a cubic for log1p(z/c − 1), in float64
LOGF_TAB = tuple(tuple(float.fromhex(h) for h in pair) for pair in (
    ("0x1.661ec79f8f3bep+0", "-0x1.57bf7808caadep-2"), ("0x1.571ed4aaf883dp+0", "-0x1.2bef0a7c06ddbp-2"),
    ("0x1.49539f0f010bp+0", "-0x1.01eae7f513a67p-2"), ("0x1.3c995b0b80385p+0", "-0x1.b31d8a68224e9p-3"),
    ("0x1.30d190c8864a5p+0", "-0x1.6574f0ac07758p-3"), ("0x1.25e227b0b8eap+0", "-0x1.1aa2bc79c81p-3"),
    ("0x1.1bb4a4a1a343fp+0", "-0x1.a4e76ce8c0e5ep-4"), ("0x1.12358f08ae5bap+0", "-0x1.1973c5a611cccp-4"),
    ("0x1.0953f419900a7p+0", "-0x1.252f438e10c1ep-5"), ("0x1p+0", "0x0p+0"),
    ("0x1.e608cfd9a47acp-1", "0x1.aa5aa5df25984p-5"), ("0x1.ca4b31f026aap-1", "0x1.c5e53aa362eb4p-4"),
    ("0x1.b2036576afce6p-1", "0x1.526e57720db08p-3"), ("0x1.9c2d163a1aa2dp-1", "0x1.bc2860d22477p-3"),
    ("0x1.886e6037841edp-1", "0x1.1058bc8a07ee1p-2"), ("0x1.767dcf5534862p-1", "0x1.4043057b6ee09p-2")))
LOGF_POLY = tuple(float.fromhex(h) for h in ("-0x1.00ea348b88334p-2", "0x1.5575b0be00b6ap-2", "-0x1.ffffef20a4123p-2"))


@in_blocks
def libm_logf(x: Array) -> Array:
    """The C library's logf, as PyTorch's scalar kernels (xlogy) call it: glibc's, log x = log1p(z/c − 1) + log c
    + k·ln 2 with x = z·2^k and c the table point nearest z (NaN, 0, ∞ and negative x: log_specials)."""
    x = np.asarray(x, dtype=F32)
    sub = x < F32(2.0 ** -126)  # (subnormals scaled up by 2^23 first)
    with np.errstate(over="ignore"):
        scaled = x * F32(2.0 ** 23)
    ix = np.where(sub, scaled.view(np.uint32).astype(np.int64) - (23 << 23),
                  x.view(np.uint32).astype(np.int64))
    tmp = ix - 0x3F330000
    i = (tmp >> 19) % 16
    k = tmp >> 23
    z = (ix - (tmp & (0x1FF << 23))).astype(np.uint32).view(F32).astype(np.float64)
    tab = np.array(LOGF_TAB)
    r = z * tab[i, 0] - 1
    a = LOGF_POLY
    y = (a[0] * (r * r) + (a[1] * r + a[2])) * (r * r) + ((tab[i, 1] + k * float.fromhex("0x1.62e42fefa39efp-1")) + r)
    return log_specials(x, y.astype(F32))


# glibc's log1pf (fdlibm's, in float arithmetic): ln 2's two parts and the series in s = f/(2 + f)
LOG1PF_LN2 = (np.uint32(0x3F317180).view(F32), np.uint32(0x3717F7D1).view(F32))
LOG1PF_POLY = tuple(np.uint32(h).view(F32) for h in (0x3F2AAAAB, 0x3ECCCCCD, 0x3E924925, 0x3E638E29, 0x3E3A3325,
                                                     0x3E1CD04F, 0x3E178897))


def _log1pf_reduce(x: Array, hx: Array) -> tuple[Array, Array, Array, Array]:
    """log1pf's argument reduction: 1 + x = 2^k·(1 + f) with f in [√2/2 − 1, √2 − 1), the correction c for
    the rounding of 1 + x, and hu (0 when f is below 2^−20); k = 0, f = x for x in (−0.2929, 0.41422)."""
    u = F32(1) + x
    hu = u.view(np.int32).astype(np.int64)
    k = (hu >> 23) - 127
    c = (np.where(k > 0, F32(1) - (u - x), x - (u - F32(1))) / u).astype(F32)
    big = hx >= 0x5A000000
    hu, k, c = np.where(big, hx, hu), np.where(big, (hx >> 23) - 127, k), np.where(big, F32(0), c).astype(F32)
    hu = hu & 0x007FFFFF
    low = hu < 0x3504F7
    m = np.where(low, hu | 0x3F800000, hu | 0x3F000000).astype(np.uint32).view(F32)
    k, hu = np.where(low, k, k + 1), np.where(low, hu, (0x00800000 - hu) >> 2)
    near = (hx < 0x3ED413D7) & ((hx > 0) | (hx <= -1097468385))  # (0xbe95f61f as a signed word)
    f = np.where(near, x, m - F32(1)).astype(F32)
    return f, np.where(near, 0, k), np.where(near, F32(0), c).astype(F32), np.where(near, 1, hu)


@in_blocks
def libm_log1pf(x: Array) -> Array:
    """The C library's log1pf, as PyTorch's scalar kernels (binary_cross_entropy) call it: glibc's (before
    2.40), fdlibm's float code: log1p(x) = k·ln 2 + log(1 + f), log(1 + f) = f − (f²/2 − s·(f²/2 + R(s²)))."""
    x = np.asarray(x, dtype=F32)
    hx = x.view(np.int32).astype(np.int64)
    ax = hx & 0x7FFFFFFF
    with np.errstate(all="ignore"):
        f, k, c, hu = _log1pf_reduce(x, hx)
        kf = k.astype(F32)
        hfsq = F32(0.5) * f * f
        r0 = hfsq * (F32(1) - F32(0.66666666666666666) * f)
        tiny = np.where(k == 0, f - r0, kf * LOG1PF_LN2[0] - ((r0 - (kf * LOG1PF_LN2[1] + c)) - f))
        zero = np.where(k == 0, F32(0), kf * LOG1PF_LN2[0] + (c + kf * LOG1PF_LN2[1]))
        s = f / (F32(2) + f)
        z = s * s
        r = LOG1PF_POLY[6]
        for coef in LOG1PF_POLY[5::-1]:
            r = coef + z * r
        r = z * r
        main = np.where(k == 0, f - (hfsq - s * (hfsq + r)),
                        kf * LOG1PF_LN2[0] - ((hfsq - (s * (hfsq + r) + (kf * LOG1PF_LN2[1] + c))) - f))
        out = np.where(hu == 0, np.where(f == 0, zero, tiny), main)
        out = np.where(ax < 0x31000000, np.where(ax < 0x24800000, x, x - x * x * F32(0.5)), out)
    return log1p_specials(x, out.astype(F32))


def row_sum(e: Array, lanes: int) -> Array:
    """Each row's sum as vec::map_reduce_all forms it: rows shorter than a register added left to right; longer
    ones in `lanes` running sums (the tail's lanes added to the first of them), then halved pairwise (lane i with
    lane i + lanes/2, and so on down)."""
    rows, cols = e.shape
    if cols < lanes:
        first: Array = e[:, 0].copy()
        for i in range(1, cols):
            first = first + e[:, i]
        return first
    acc = e[:, :lanes].copy()
    d = lanes
    while d + lanes <= cols:
        acc = acc + e[:, d:d + lanes]
        d += lanes
    if d < cols:
        acc[:, :cols - d] += e[:, d:]
    step = lanes // 2
    while step:
        acc = acc + acc[:, np.arange(lanes) ^ step]
        step //= 2
    out: Array = acc[:, 0]
    return out


def reduced_row_sum(x: Array, lanes: int) -> Array:
    """Each row's sum as vec::reduce_all forms it for float16 and bfloat16 data: a register of 2·`lanes` halves
    widened to two float32 registers, each with its own running sums (the tail's lanes added to the first of
    them), the two added lane by lane and then halved pairwise; rows shorter than the two registers lane by lane,
    left to right (after folding a second register's worth onto the first)."""
    rows, cols = x.shape
    if cols <= lanes:
        return row_sum(x, cols + 1)
    if cols < 2 * lanes:
        first = x[:, :lanes].copy()
        first[:, :cols - lanes] += x[:, lanes:]
        return row_sum(first, lanes + 1)
    acc0, acc1 = x[:, :lanes].copy(), x[:, lanes:2 * lanes].copy()
    d = 2 * lanes
    while d + 2 * lanes <= cols:
        acc0 += x[:, d:d + lanes]
        acc1 += x[:, d + lanes:d + 2 * lanes]
        d += 2 * lanes
    rest = cols - d
    if rest > lanes:
        acc0 += x[:, d:d + lanes]
        acc1[:, :rest - lanes] += x[:, d + lanes:]
    elif rest:
        acc0[:, :rest] += x[:, d:]
    return row_sum(acc0 + acc1, lanes)


def _ceil_log2(x: int) -> int:
    return 1 if x <= 2 else (x - 1).bit_length()


class Cascade:
    """multi_row_sum: the sums over `size` groups (each rows × 4 × lanes) that come in order, in pieces of any
    length, in a cascade of 4 levels of running sums: each level passes its sum up after 2^p additions,
    p = max(4, ⌈log₂ size⌉ // 4)."""

    def __init__(self, size: int, shape: tuple[int, ...], dtype: Any) -> None:
        self.power = max(4, _ceil_log2(size) // 4)
        self.acc = np.zeros((4, *shape), dtype=dtype)
        self.done = 0  # groups passed up
        self.pending = np.zeros((shape[0], 0, *shape[1:]), dtype=dtype)

    def add(self, v: Array) -> None:
        """The next groups (rows × k × 4 × lanes): each whole 2^p of them summed from 0 and passed up."""
        v = np.concatenate([self.pending, v], axis=1) if self.pending.shape[1] else v
        step = 1 << self.power
        blocks = v.shape[1] // step
        runs = v[:, :blocks * step].reshape(v.shape[0], blocks, step, *v.shape[2:])
        first = np.zeros_like(runs[:, :, 0])
        for k in range(step):
            first = first + runs[:, :, k]
        for b in range(blocks):
            self._pass_up(first[:, b])
        self.pending = v[:, blocks * step:].copy()  # (a copy: a view would keep the whole piece alive)

    def _pass_up(self, first: Array) -> None:
        self.done += 1 << self.power
        mask, acc = (1 << self.power) - 1, self.acc
        acc[1] += first
        for j in (1, 2):
            if self.done & (mask << (j * self.power)):
                return
            acc[j + 1] += acc[j]
            acc[j] = 0

    def close(self) -> Array:
        """The sum: the groups after the last whole 2^p summed from 0, then the levels' sums added to it."""
        total: Array = np.zeros_like(self.acc[0])
        for k in range(self.pending.shape[1]):
            total += self.pending[:, k]
        for j in range(1, 4):
            total += self.acc[j]
        return total


class RowSum:
    """SumKernel's cascade_sum of rows of n elements that come in order, in pieces of any width: vectors of `lanes`
    (with `loads`, float16 or bfloat16 data loaded HALF_LOAD at a time, the first and second halves of a load added
    into SUM_LANES float32 lanes: InnerSumCastLoadPolicy), 4 interleaved cascades over them, the vectors after the
    last 4 added to the first cascade, the 4 added in order; then, from 0, the elements after the last whole vector
    and the lanes in order. A row shorter than a vector is summed element by element so, with no final sum."""

    def __init__(self, rows: int, n: int, loads: bool = False, lanes: int = SUM_LANES, dtype: Any = F32) -> None:
        self.unit, self.lanes = (HALF_LOAD, SUM_LANES) if loads else (lanes, lanes)
        self.bare = n < self.unit
        if self.bare:
            self.unit = self.lanes = 1
        self.vectors = n // self.unit
        groups = self.vectors // 4
        self.cascade = Cascade(groups, (rows, 4, self.lanes), dtype)
        self.grouped = groups * 4 * self.unit  # the elements the cascade takes
        self.seen = 0
        self.pending = np.zeros((rows, 0), dtype=dtype)
        self.tail: list[Array] = []

    def add(self, x: Array) -> None:
        """The next columns of the rows (rows × k)."""
        into = max(0, min(x.shape[1], self.grouped - self.seen))
        self.seen += x.shape[1]
        if into:
            v = np.concatenate([self.pending, x[:, :into]], axis=1) if self.pending.shape[1] else x[:, :into]
            whole = v.shape[1] // (4 * self.unit) * 4 * self.unit
            self.cascade.add(self._vectors(v[:, :whole]).reshape(v.shape[0], -1, 4, self.lanes))
            self.pending = v[:, whole:].copy()
        if into < x.shape[1]:  # (copies: views, even empty ones, would keep every piece alive)
            self.tail.append(x[:, into:].copy())

    def _vectors(self, x: Array) -> Array:
        """rows × m × lanes: the vectors of x, a load's two halves added."""
        rows = x.shape[0]
        if self.unit == self.lanes:
            return x.reshape(rows, -1, self.lanes)
        loaded = x.reshape(rows, -1, 2, self.lanes)
        out: Array = loaded[:, :, 0] + loaded[:, :, 1]
        return out

    def close(self) -> Array:
        """Each row's sum."""
        part = self.cascade.close()
        tail = np.concatenate(self.tail, axis=1) if self.tail else self.pending[:, :0]
        left = self.vectors * self.unit - self.grouped
        for v in self._vectors(tail[:, :left]).transpose(1, 0, 2):
            part[:, 0] += v
        for k in range(1, 4):
            part[:, 0] += part[:, k]
        total: Array = part[:, 0, 0] if self.bare else _lanes_total(tail[:, left:], part[:, 0])
        return total


def torch_sum(x: Array, lanes: int = SUM_LANES) -> Array:
    """torch.sum over the last axis of a contiguous float32 (or float64) array (SumKernel's cascade_sum, RowSum).
    (One thread: PyTorch splits a reduction of more than 32768 elements among its threads.)"""
    rows, n = x.shape
    return _summed(RowSum(rows, n, lanes=lanes, dtype=x.dtype), x)


def half_sum(x: Array) -> Array:
    """torch.sum over the last axis of a contiguous float16 or bfloat16 tensor (x its values in float32), in
    float32 before the store rounds it (RowSum's loads)."""
    rows, n = x.shape
    return _summed(RowSum(rows, n, loads=True), x)


def _summed(s: RowSum, x: Array) -> Array:
    s.add(x)
    return s.close()


def _lanes_total(rest: Array, lanes: Array) -> Array:
    """vectorized_inner_sum's final sum, from 0: the elements after the last whole register, then the lanes."""
    total = np.zeros(rest.shape[0], dtype=lanes.dtype)
    for k in range(rest.shape[1]):
        total += rest[:, k]
    for k in range(lanes.shape[1]):
        total += lanes[:, k]
    return total


def summer(half: Any) -> Callable[[int, int], RowSum]:
    """The row sum torch.sum runs over rows × n of the `half` dtype (None: float32)."""
    return lambda rows, n: RowSum(rows, n, loads=half is not None)


def kernel_sum(x: Array, half: Any = None) -> Array:
    """torch.sum over the last axis of x, a tensor of the `half` dtype (None: float32), before the store."""
    return _summed(summer(half)(*x.shape), x)


def row_sums(x: Array, half: Any) -> Array:
    """torch.sum(x, dim=-1) stored in the dtype: each row by SumKernel's cascade, a single row of more than GRAIN
    elements in the threads' two passes (total_sum)."""
    rnd = rounder(half)
    return rnd(kernel_sum(x, half)) if x.shape[0] > 1 else rnd(np.array([total_sum(x, half)], dtype=F32))


def nll_sum(losses: Array, half: Any) -> Any:
    """nll_loss's sum of per-sample losses, in the dtype itself: 8 levels of partial sums, each passing its sum
    up after 2^p samples (p = max(4, ⌈log₂ N⌉ // 8)), the first sample's straight to the top; then the levels
    added from the lowest."""
    return nll_cascade(losses, half)


def nll_cascade(losses: Array, half: Any, keep: Array | None = None) -> Any:
    """nll_sum over the samples `keep` marks (ignore_index: a left-out sample skips its turn, and the levels
    pass nothing up at it), the levels' 2^p still counted over all N samples."""
    kind = half or F32
    n = losses.shape[0]
    power = max(4, _ceil_log2(n) // 8)
    mask = (1 << power) - 1
    part = [kind(0)] * 8
    kept = np.ones(n, dtype=bool) if keep is None else keep
    for b, v in enumerate(losses.astype(kind)):
        if not kept[b]:
            continue
        part[0] = part[0] + v
        for j in range(7):
            if b & (mask << (j * power)):
                break
            part[j + 1], part[j] = part[j + 1] + part[j], kind(0)
    total = kind(0)
    for p in part:
        total = total + p
    return total


Rounder = Callable[[Array], Array]
Grad = Callable[[float], Array]


class Backward(Protocol):
    """A kernel's backward under reduction="none" times an upstream gradient `up` given per sample (the product
    with sample weights hands it down: MulBackward's c·w), or (up None) its backward for the mean over n (1: the
    sum)."""

    def __call__(self, n: float, up: Array | None = None) -> Array: ...


def rounder(half: Any) -> Rounder:
    """Rounding to the stored dtype, carried in float32: the identity for float32 (and for WIDE, in float64)."""
    if half is None:
        return lambda a: np.asarray(a, dtype=F32)
    if half is WIDE:
        return lambda a: np.asarray(a, dtype=np.float64)
    return lambda a: np.asarray(a, dtype=F32).astype(half).astype(F32)


def upstream_c(n: float, rnd: Rounder, stored: bool = False) -> Array:
    """The upstream gradient of a mean over n, 1/n in the dtype (1 for a sum): autograd divides by n itself,
    nll_loss by its total weight, n `stored` in the dtype (a bfloat16 has no 257)."""
    return rnd(F32(1) / (rnd(np.asarray(n, dtype=F32)) if stored else F32(n)))


def log_softmax(z: Array, rnd: Rounder, half: bool, lanes: int) -> Array:
    """PyTorch's log_softmax over the last axis (_vec_log_softmax_lastdim): s = z − max, the sum of e^s in float32
    by `lanes`, its log; for a `half` dtype the sum (by its widened lanes) and its log are stored in that dtype
    before s − log Σ is formed (in float32, then rounded)."""
    s = z - z.max(axis=1, keepdims=True)
    e = expf(s)
    lse = rnd(logf(rnd(reduced_row_sum(e, lanes) if half else row_sum(e, lanes))))
    return rnd(s - lse[:, None])


def log_softmax_backward(g: Array, e: Array, rnd: Rounder, half: bool, lanes: int) -> Array:
    """_log_softmax_backward_data: g − e^out·Σg (e: e^out, in float32, of the forward's output), the product and
    difference fused (the compiler contracts the kernel's multiply and subtract into one FMA); Σg by `lanes`, as a
    `half` dtype's kernel widens its registers."""
    total = reduced_row_sum(g, lanes) if half else row_sum(g, lanes)
    return rnd(fma(-e, total[:, None], g))


def ce(y: Array, z: Array, labels: Array | None, rnd: Rounder,
       half: Any = None) -> tuple[Array, Backward, Array, Array]:
    """F.cross_entropy of logit rows: per-sample losses, the gradient for the mean over n samples (n = 1: the
    sum, and each sample's own), softmax(z), and the terms torch.sum adds for the reduced value (probability
    rows; for class indexes nll_loss sums the losses themselves).

    Class indexes go through nll_loss: −log p at the label, gradient −c there. Probability rows are
    −(log_softmax · y).sum(1), whose autograd gradient is −c·y before log_softmax's backward."""
    width = lanes()
    logp = log_softmax(z, rnd, half is not None, width)
    rows = np.arange(z.shape[0])
    if labels is not None:
        losses = -logp[rows, labels]
        terms = losses

        def upstream(n: float, up: Array | None) -> Array:
            return at_labels(logp.shape, labels, upstream_c(n, rnd, stored=True) if up is None else up)
    else:
        terms = rnd(logp * y)
        losses = -row_sums(terms, half)

        def upstream(n: float, up: Array | None) -> Array:
            return rnd(-(upstream_c(n, rnd) if up is None else up[:, None]) * y)

    e = expf(logp)  # (softmax, and the backward's e^out)
    def grad(n: float, up: Array | None = None) -> Array:
        return log_softmax_backward(upstream(n, up), e, rnd, half is not None, width)
    return losses, grad, rnd(e), terms


class WeightTotals:
    """The class weights of the samples a mean counts (a batch's: all its slices', when it is evaluated in slices)
    and the sums PyTorch's kernels divide that mean by, each formed once, when first asked for."""

    def __init__(self, weights: Array, labels: Array, keep: Array | None, half: Any) -> None:
        picked = np.asarray(weights, dtype=np.float64)[labels]  # (each sample's, as given)
        self.stored = rounder(half)(np.asarray(weights, dtype=np.float64))[labels]  # (in the dtype)
        self.keep, self.half = keep, half
        # the mean's N as lossgrad forms it: the float32 weights of the samples kept, added in float64 (formed once:
        # every slice of a long batch asks, through of)
        self.n = float(np.sum((picked if keep is None else np.where(keep, picked, 0)).astype(F32), dtype=np.float64))
        self._nll: Any = None
        self._summed: Any = None

    def nll(self) -> Any:
        """nll_loss's total weight: the cascade sum of the weights in the dtype."""
        if self._nll is None:
            self._nll = nll_cascade(self.stored, self.half, self.keep)
        return self._nll

    def summed(self) -> Any:
        """cross_entropy's smoothing divisor: torch.sum of the weights of the samples kept, in the dtype."""
        if self._summed is None:
            picked = self.stored if self.keep is None else self.stored[self.keep]
            self._summed = rounder(self.half)(np.asarray(total_sum(picked, self.half)))[()] if picked.size \
                else F32(0)
        return self._summed

    def of(self, n: float) -> bool:
        """Whether a mean over n is over these samples (n their N, as it reaches the kernels through float64)."""
        return math.isclose(n, self.n, rel_tol=1e-12)


def batch_totals(loss: str, labels: Array, ignored: Array | None, half: Any,
                 params: dict[str, Any]) -> dict[str, Any]:
    """What the kernels sum over a whole batch that lossgrad evaluates in slices, as a parameter each slice takes:
    the class-weighted mean of nll_loss and cross_entropy divides by its samples' weights ({}: nothing)."""
    if loss not in ("ce", "nll") or params.get("class_weights") is None:
        return {}
    keep = None if ignored is None else ~ignored
    return {"weight_totals": WeightTotals(params["class_weights"], labels, keep, half)}


@dataclass(frozen=True)
class Rows:
    """The options of a loss over class rows as nll_loss and cross_entropy take them: the samples counted
    (ignore_index leaves the others out), the class weights in the dtype, label smoothing, and the weights of the
    samples the mean counts (a mean over another N divides by that N as the dtype holds it)."""

    rnd: Rounder
    half: Any
    keep: Array | None = None
    weights: Array | None = None
    smoothing: float = 0.0
    totals: WeightTotals | None = None

    def kept(self, a: Array) -> Array:
        out: Array = a if self.keep is None else np.where(self.keep, a, F32(0))
        return out

    def total_weight(self, n: float) -> Any:
        """nll_loss's total weight: the count of samples kept, or their weights' cascade sum, in the dtype."""
        kind = self.half or F32
        if self.totals is None or not self.totals.of(n):
            return kind(n)
        return self.totals.nll()

    def weight_sum(self, n: float) -> Any:
        """cross_entropy's smoothing mean divides by the count of samples kept (an integer tensor, taken whole
        in float32) or by their weights as torch.sum adds them."""
        if self.weights is None:
            return F32(n)
        if self.totals is None or not self.totals.of(n):
            return self.rnd(np.asarray(n, dtype=F32))
        return self.totals.summed()


def nll_losses(logp: Array, labels: Array, o: Rows) -> Array:
    """nll_loss's per-sample −w·log p at the label (0 for a sample left out)."""
    picked = logp[np.arange(logp.shape[0]), labels]
    return o.kept(-picked if o.weights is None else o.rnd(-picked * o.weights[labels]))


def nll_backward(shape: tuple[int, ...], labels: Array, u: Any, n: float, o: Rows) -> Array:
    """nll_loss's backward for the upstream gradient u (in the dtype): −u, or −u/total weight for the mean over
    n (stored), times the label's weight, at the label of each sample kept."""
    kind = o.half or F32
    g = -(kind(u) if n == 1 else kind(kind(u) / o.total_weight(n)))
    out = np.zeros(shape, dtype=F32)
    col = np.full(shape[0], F32(g)) if o.weights is None else o.rnd(o.weights[labels] * F32(g))
    out[np.arange(shape[0]), labels] = o.kept(col)
    return out


def nll_value(losses: Array, n: float, o: Rows) -> Any:
    """nll_loss's reduced value: its cascade sum, over the total weight for the mean over n."""
    kind = o.half or F32
    total = nll_cascade(losses, o.half, o.keep)
    return total if n == 1 else kind(total / o.total_weight(n))


def index_value(pieces: dict[str, Array], n: float, o: Rows, classes: int) -> float:
    """The reduced value of nll_loss, or of cross_entropy over class indexes, from its samples' pieces (a batch's,
    joined): their losses −w·log p ("nll", 0 for a sample left out, "keep" marking the others) and, with label
    smoothing s, their smoothing terms ("smooth"): (1 − s)·nll_loss's value + s/C·(the terms' torch.sum, over
    their count or weights for the mean), each product and the sum rounded."""
    if "keep" in pieces:
        o = replace(o, keep=pieces["keep"].astype(bool))
    nll = nll_value(pieces["nll"], n, o)
    if "smooth" not in pieces:
        return float(nll)
    rnd, kind, smooth = o.rnd, o.half or F32, pieces["smooth"]
    a, b = F32(1 - o.smoothing), F32(o.smoothing / classes)
    total = rnd(np.asarray(total_sum(smooth, o.half)))[()] if smooth.size else F32(0)
    ret = total if n == 1 else rnd(total / o.weight_sum(n))
    return float(kind(rnd(rnd(a * F32(nll)) + rnd(ret * b))))


def _smooth_terms(logp: Array, o: Rows) -> Array:
    """cross_entropy's −Σₖ wₖ·log pₖ of each sample (torch.sum over the row), 0 for a sample left out."""
    terms = logp if o.weights is None else o.rnd(logp * o.weights)
    return o.kept(-row_sums(terms, o.half))


def smoothed_index(logp: Array, labels: Array, o: Rows) -> tuple[Array, Grad, dict[str, Array]]:
    """cross_entropy with label smoothing s over class indexes: (1 − s)·nll_loss + s/C·(the smoothing term, its
    sum over the samples kept divided by their count or weights for the mean), each product and the sum rounded;
    the gradient at log p, autograd's: the two parts' gradients added in the dtype; the value's pieces."""
    rnd = o.rnd
    a, b = F32(1 - o.smoothing), F32(o.smoothing / logp.shape[1])
    nll = nll_losses(logp, labels, o)
    smooth = _smooth_terms(logp, o)
    losses = rnd(rnd(a * nll) + rnd(smooth * b))

    def upstream(n: float) -> Array:
        g_nll = nll_backward(logp.shape, labels, rnd(a), n, o)
        gs = rnd(b) if n == 1 else rnd(rnd(b) / o.weight_sum(n))
        col = o.kept(np.full(logp.shape[0], -gs, dtype=F32))[:, None]
        g_smooth = col if o.weights is None else rnd(col * o.weights)
        return rnd(g_nll + g_smooth)
    return losses, upstream, {"nll": nll, "smooth": smooth}


def at_labels(shape: tuple[int, ...], labels: Array, up: Array) -> Array:
    """nll_loss's backward under reduction="none" (no class weights, no sample left out) for an upstream gradient
    per sample: −up at each sample's label."""
    out = np.zeros(shape, dtype=F32)
    out[np.arange(shape[0]), labels] = -up
    return out


def ce_index(z: Array, labels: Array, o: Rows) -> tuple[Array, Backward, Array, dict[str, Array]]:
    """F.cross_entropy of logit rows over class indexes with ignore_index, class weights or label smoothing:
    per-sample losses, the gradient for the mean over n (1: the sum) or (none of the options) for an upstream
    gradient per sample, softmax(z), the value's pieces."""
    width = lanes()
    logp = log_softmax(z, o.rnd, o.half is not None, width)
    if o.smoothing:
        losses, upstream, pieces = smoothed_index(logp, labels, o)
    else:
        losses = nll_losses(logp, labels, o)
        pieces = {"nll": losses}

        def upstream(n: float) -> Array:
            return nll_backward(logp.shape, labels, F32(1), n, o)

    e = expf(logp)  # (softmax, and the backward's e^out)

    def grad(n: float, up: Array | None = None) -> Array:
        g = upstream(n) if up is None else at_labels(logp.shape, labels, up)
        return log_softmax_backward(g, e, o.rnd, o.half is not None, width)
    return losses, grad, o.rnd(e), pieces


def ce_probs(y: Array, z: Array, o: Rows) -> tuple[Array, Grad, Array, dict[str, Any]]:
    """F.cross_entropy of logit rows against probability rows, smoothed (y·(1 − s) + s/C, each step rounded)
    or class-weighted: −(log p · y · w).sum(1), the mean torch.sum's total over N; the gradient autograd's."""
    rnd, kind = o.rnd, o.half or F32
    width = lanes()
    logp = log_softmax(z, rnd, o.half is not None, width)
    # (mul takes its scalar in float32, add rounds it to the dtype first)
    t = rnd(rnd(y * F32(1 - o.smoothing)) + rnd(F32(o.smoothing / z.shape[1]))) if o.smoothing else y
    terms = rnd(logp * t)
    if o.weights is not None:
        terms = rnd(terms * o.weights)
    losses = -row_sums(terms, o.half)
    e = expf(logp)  # (softmax, and the backward's e^out)

    def grad(n: float) -> Array:
        g = np.full(z.shape, -upstream_c(n, rnd), dtype=F32)
        if o.weights is not None:
            g = rnd(g * o.weights)
        return log_softmax_backward(rnd(g * t), e, rnd, o.half is not None, width)

    def value(n: float, total: Callable[[Any], Any]) -> float:
        stored = -rnd(np.asarray(total(o.half)))[()]
        return float(stored if n == 1 else kind(F32(stored) / F32(n)))
    return losses, grad, rnd(e), summed(terms, o.half, value)


def row_options(y: Array, labels: Array | None, half: Any, params: dict[str, Any]) -> Rows:
    """The Rows of these parameters: the samples ignore_index leaves out are those whose one-hot row is all
    zeros; the mean's N under class weights is their sum in float64 over the samples kept, as lossgrad forms it."""
    rnd = rounder(half)
    keep = None
    if labels is not None and params.get("ignore_index") is not None:
        keep = y[np.arange(y.shape[0]), labels] != 0
    cw, totals = params.get("class_weights"), params.get("weight_totals")
    weights = None if cw is None else rnd(np.asarray(cw, dtype=np.float64))
    if totals is None and cw is not None and labels is not None:
        totals = WeightTotals(cw, labels, keep, half)
    return Rows(rnd, half, keep, weights, float(params.get("label_smoothing") or 0.0), totals)


def rows_compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, params: dict[str, Any]) -> Parts:
    """ce from logits or nll (log-probabilities) as cross_entropy and nll_loss give them, with their options."""
    o = row_options(y, labels, half, params)
    prob: Array | None
    with np.errstate(all="ignore"):
        if labels is None:
            losses, grad, prob, fields = ce_probs(y, p, o)
            return Parts(losses=losses, grad=quiet(grad)(1), prob=prob, mean_grad=quiet(grad), **fields)
        losses, grad, prob, pieces = (nll_loss if loss == "nll" else ce_index)(p, labels, o)
    if o.keep is not None:
        pieces["keep"] = o.keep.astype(F32)

    def joined(parts: dict[str, Array], n: float) -> float:
        with np.errstate(all="ignore"):
            return index_value(parts, n, o, p.shape[1])
    return Parts(losses=losses, grad=quiet(grad)(1), prob=prob, mean_grad=quiet(grad),
                 mean_value=quiet(lambda n: joined(pieces, n)), value_parts=pieces,
                 value_fold=lambda rows: Joined(joined))


def nll_loss(logp: Array, labels: Array, o: Rows) -> tuple[Array, Backward, None, dict[str, Array]]:
    """F.nll_loss of log-probability rows: per-sample losses, the gradient for the mean over n (1: the sum) or
    (no option) for an upstream gradient per sample, no softmax, the value's pieces."""
    losses = nll_losses(logp, labels, o)

    def grad(n: float, up: Array | None = None) -> Array:
        return nll_backward(logp.shape, labels, F32(1), n, o) if up is None else at_labels(logp.shape, labels, up)
    return losses, grad, None, {"nll": losses}


def quiet(f: Callable[[float], Any]) -> Callable[[float], Any]:
    """f without numpy's warnings: an overflow to infinity or a NaN is a result, which lossgrad reports."""
    def run(n: float) -> Any:
        with np.errstate(all="ignore"):
            return f(n)
    return run


def log_sigmoid(z: Array, rnd: Rounder) -> Array:
    """log σ(z) as PyTorch's CPU kernel forms it: min(z, 0) − log1p(e^−|z|)."""
    return rnd(np.minimum(z, F32(0)) - log1pf(expf(-np.abs(z))))


def sigmoid(z: Array, rnd: Rounder, half: Any = None, place: Place | None = None) -> Array:
    """σ(z) as PyTorch's CPU kernel forms it: 1/(1 + e^−z) in float32, SLEEF's e^x in the registers (two at a time:
    32 floats or 64 halves with AVX-512, 16 or 32 with AVX2), the C library's (glibc's expf, not always correctly
    rounded) in the scalar loop after them at the end of each thread's part (of the whole batch: `place`, as tails
    takes it); rounded to the dtype."""
    if half is WIDE:
        return sigmoid64(z, place)
    flat, tail = z.reshape(-1), tails(z.shape, 2 * register(half), place).reshape(-1)
    with np.errstate(over="ignore"):
        e = expf(-flat)
        e[tail] = libm_expf(-flat[tail])
        return rnd(F32(1) / (F32(1) + e)).reshape(z.shape)


def sigmoid64(z: Array, place: Place | None = None) -> Array:
    """σ(z) of doubles as PyTorch's CPU kernel forms it: 1/(1 + e^−z), SLEEF's e^x in the registers (two at a time:
    16 doubles with AVX-512, 8 with AVX2; lossgrad.sleef64), the C library's exp in the scalar loop after them at
    the end of each thread's part (of the whole batch: `place`, as tails takes it)."""
    from . import libm, sleef64

    flat, tail = z.reshape(-1), tails(z.shape, register(None), place).reshape(-1)
    with np.errstate(over="ignore"):
        e = sleef64.exp(-flat)
        e[tail] = libm.exp(-flat[tail])
        out: Array = (1.0 / (1.0 + e)).reshape(z.shape)
    return out


def bce_logits(y: Array, z: Array, rnd: Rounder, half: Any,
               place: Place | None = None) -> tuple[Array, Callable[[float], Array], Array]:
    """binary_cross_entropy_with_logits: (1 − y)·z − log σ(z); its backward (σ(z) − y)·g, divided by N for the
    mean (after the product, so the divisor is passed as 1/c)."""
    losses = rnd(rnd(rnd(F32(1) - y) * z) - log_sigmoid(z, rnd))
    sz = sigmoid(z, rnd, half, place)
    diff = rnd(sz - y)
    return losses, lambda n: diff if n == 1 else rnd(diff / F32(n)), sz


def bce_weighted(y: Array, z: Array, rnd: Rounder, half: Any, pos_weight: Array | None,
                 weight: Array | None, place: Place | None = None) -> tuple[Array, Grad, Array]:
    """binary_cross_entropy_with_logits with pos_weight w⁺ (log σ(z) times 1 + (w⁺ − 1)·y) and weight=
    (the loss times it); its backward ((w⁺y + 1 − y)·σ(z) − w⁺y)·g, times the weight, over N for the mean."""
    ls = log_sigmoid(z, rnd)
    if pos_weight is not None:
        ls = rnd(ls * rnd(rnd(rnd(pos_weight - F32(1)) * y) + F32(1)))
    losses = rnd(rnd(rnd(F32(1) - y) * z) - ls)
    sz = sigmoid(z, rnd, half, place)
    if pos_weight is None:
        gi = rnd(sz - y)
    else:
        t = rnd(pos_weight * y)
        gi = rnd(rnd(rnd(rnd(t + F32(1)) - y) * sz) - t)
    if weight is not None:
        losses, gi = rnd(losses * weight), rnd(gi * weight)
    return losses, lambda n: gi if n == 1 else rnd(gi / F32(n)), sz


def bce_probs(y: Array, p: Array, rnd: Rounder, half: Any, weight: Array | None) -> tuple[Array, Grad, Grad]:
    """binary_cross_entropy (one element at a time, in the dtype): (y − 1)·max(log1p(−p), −100) −
    y·max(log p, −100), the C library's logs; its backward g·(p − y)/max((1 − p)·p, ε), ε = 10⁻¹² in the
    dtype (0 in float16), times the weight, over N for the mean; and sigmoid_backward's g·(1 − p)·p for the
    logits behind p (of the sum: the mean's is that over N, divided afterwards)."""
    clamp = F32(-100)
    with np.errstate(divide="ignore"):
        logp = np.where(p == 0, F32(-np.inf), libm_logf(np.where(p == 0, F32(1), p)))
    a = np.maximum(rnd(libm_log1pf(-p)), clamp)
    b = np.maximum(rnd(logp), clamp)
    losses = rnd(rnd(rnd(y - F32(1)) * a) - rnd(y * b))
    eps = rnd(np.asarray(1e-12, dtype=F32))
    gi = rnd(rnd(p - y) / np.maximum(rnd(rnd(F32(1) - p) * p), eps))
    if weight is not None:
        losses, gi = rnd(losses * weight), rnd(gi * weight)

    def grad(n: float) -> Array:
        return gi if n == 1 else rnd(gi / F32(n))

    def logit_grad(n: float) -> Array:
        if half is np.float16:  # (float16's sigmoid_backward rounds each step; bfloat16's widens to float32)
            return rnd(rnd(grad(n) * rnd(F32(1) - p)) * p)
        return rnd(grad(n) * (F32(1) - p) * p)
    return losses, grad, logit_grad


def mse(y: Array, p: Array, rnd: Rounder) -> tuple[Array, Backward]:
    """mse_loss: (p − y)²; its backward norm·(p − y)·g, norm = 2 or 2/N stored in the dtype, g = 1 or `up`."""
    d = rnd(p - y)

    def grad(n: float, up: Array | None = None) -> Array:
        scaled = rnd(rnd(np.asarray(2 / n, dtype=F32)) * d)
        return scaled if up is None else rnd(scaled * up)
    return rnd(d * d), grad


def mae(y: Array, p: Array, rnd: Rounder) -> tuple[Array, Backward]:
    """l1_loss, (p − y).abs() under autograd: its gradient sgn(p − y)·g, g = 1 or 1/N as stored in the dtype, or
    `up`."""
    d = rnd(p - y)
    return np.abs(d), lambda n, up=None: rnd(np.sign(d) * (upstream_c(n, rnd) if up is None else up))


def chunks(n: int) -> list[slice]:
    """at::parallel_for's chunks of n elements: as many as threads take part (at most one per GRAIN), each
    ⌈n/chunks⌉ long but the last."""
    parts = min(THREADS, -(-n // GRAIN))
    size = -(-n // parts)
    return [slice(i * size, min(n, (i + 1) * size)) for i in range(parts)]


def tails(shape: tuple[int, ...], width: int, place: Place | None = None) -> Array:
    """The elements a vectorized loop leaves to its scalar loop, whole vectors being `width` elements: those after
    the last whole vector of each of parallel_for's chunks (TensorIterator splits more than GRAIN elements among the
    threads, each running the loop on its own part). The chunks are the whole batch's: `place`, where these
    shape[0] rows lie in it (its first row, and its rows; None: they are the batch)."""
    size = int(np.prod(shape))
    per_row = size // max(shape[0], 1) if shape else 1
    first, rows = (0, shape[0] if shape else 1) if place is None or place[1] is None else (place[0], place[1])
    at, out = np.arange(first * per_row, first * per_row + size), np.zeros(size, dtype=bool)
    for part in chunks(rows * per_row):
        end = part.stop - (part.stop - part.start) % width
        out |= (at >= end) & (at < part.stop)
    result: Array = out.reshape(shape)
    return result


def scalar_tail(shape: tuple[int, ...], half: Any, place: Place | None = None) -> Array:
    """The elements huber's and smooth_l1's backward (cpu_kernel_vec, the AVX2 build on any processor) leave to
    their scalar loop: those after the last pair of whole AVX2 registers (16 floats or 32 halves) of each thread's
    part (of the whole batch: `place`, as tails takes it)."""
    return tails(shape, 2 * register(half, "avx2"), place)


def huber(y: Array, p: Array, delta: float, rnd: Rounder, half: Any,
          place: Place | None = None) -> tuple[Array, Backward]:
    """huber_loss: z = |p − y|, z²/2 below δ, δ·(z − δ/2) from δ on, each step rounded (float16: in float32,
    rounded once); its backward norm·(x or ±δ)·g in registers, the scalar loop's norm·g·δ (δ a double) or
    norm·x·g, norm = 1 or 1/N stored in the dtype, g = 1 or `up`."""
    d, h = rnd(np.asarray(delta, dtype=F32)), F32(0.5)
    if half is np.float16:
        z, df = np.abs(p - y), F32(delta)
        losses = rnd(np.where(z < df, h * z * z, df * (z - h * df)))
    else:
        z = np.abs(rnd(p - y))
        losses = np.where(z < d, rnd(rnd(h * z) * z), rnd(d * rnd(z - rnd(h * d))))
    x = rnd(p - y)
    tail = scalar_tail(x.shape, half, place)

    def grad(n: float, up: Array | None = None) -> Array:
        norm = rnd(np.asarray(1 / n, dtype=F32))
        g = F32(1) if up is None else up
        vec = rnd(rnd(norm * np.where(np.abs(x) >= d, rnd(np.where(x > 0, d, -d)), x)) * g)
        x64, nd = x.astype(np.float64), rnd(norm * g).astype(np.float64) * delta
        scalar = np.where(x64 <= -delta, rnd(-nd), np.where(x64 >= delta, rnd(nd), rnd(rnd(norm * x) * g)))
        return np.where(tail, scalar, vec)
    return losses, grad


def smooth_l1(y: Array, p: Array, beta: float, rnd: Rounder, half: Any,
              place: Place | None = None) -> tuple[Array, Backward]:
    """smooth_l1_loss in float32: z = |p − y|, z²/(2β) below β, z − β/2 from β on, each step rounded; its
    backward norm·(x/β or ±1)·g in registers, norm·x·g/β (β a double) in the scalar loop, g = 1 or `up`."""
    h, b = F32(0.5), F32(beta)
    z = np.abs(p - y)
    losses = np.where(z < b, rnd(rnd(rnd(h * z) * z) / b), rnd(z - rnd(h * b)))
    tail = scalar_tail(p.shape, half, place)

    def grad(n: float, up: Array | None = None) -> Array:
        x, norm = p - y, F32(1 / n)
        g = F32(1) if up is None else up
        vec = (norm * np.where(np.abs(x) >= b, np.where(x > 0, F32(1), F32(-1)), x / b)) * g
        inner = rnd(((norm * x) * g).astype(np.float64) / beta)
        x64, ng = x.astype(np.float64), norm * g
        return np.where(tail, np.where(x64 <= -beta, -ng, np.where(x64 >= beta, ng, inner)), vec)
    return losses, grad


def torch_exp(x: Array, half: Any) -> Array:
    """torch.exp of a tensor: MKL's vmsExp in float32 (lossgrad.mkl; vmdExp in float64, WIDE), SLEEF's expf for a
    half dtype's float32."""
    if half is WIDE:
        return mkl.exp64(x)
    return mkl.exp(x) if half is None else expf(x)


def torch_log(x: Array, half: Any) -> Array:
    """torch.log of a tensor of positive normal numbers: MKL's vmsLn in float32 (vmdLn in float64, WIDE), SLEEF's
    logf for a half dtype's float32."""
    if half is WIDE:
        return mkl.log64(x)
    return mkl.log(x) if half is None else logf(x)


def torch_sqrt(x: Array, half: Any) -> Array:
    """torch.sqrt (and x ** 0.5) of a tensor: MKL's vmsSqrt in float32, correctly rounded for a half dtype's
    float32."""
    return mkl.sqrt(x) if half is None else np.sqrt(x)


def poisson(y: Array, p: Array, log_input: bool, full: bool, rnd: Rounder, half: Any) -> tuple[Array, Backward]:
    """poisson_nll_loss under autograd, each op rounded: e^z − y·z (log rates), or p − y·log(p + ε) with ε =
    10⁻⁸ as the dtype holds it (0 in float16); full: + y·log y − y + ½·log(2πy) where y > 1 (2π a double, as the
    dtype holds it). The gradient the two terms' added: g·e^z − g·y, or g − g·y/(p + ε), g = 1 or 1/N in the dtype,
    or `up`. (e^x and log x of float32 and float64 (WIDE) are MKL's; of float16 and bfloat16 SLEEF's in float32,
    rounded.)"""
    kind = np.float64 if half is WIDE else F32  # (the arrays' type: float32 carries the half dtypes)
    one = kind(1)
    with np.errstate(divide="ignore"):
        if log_input:
            e = rnd(torch_exp(p, half))
            losses = rnd(e - rnd(y * p))
        else:
            q = rnd(p + rnd(np.asarray(1e-8, dtype=kind)))
            losses = rnd(p - rnd(y * rnd(np.where(q > 0, torch_log(np.where(q > 0, q, one), half), kind(-np.inf)))))
        if full:
            counts = np.where(y > 1, y, one)
            logy = rnd(torch_log(counts, half))
            two_pi_y = rnd(torch_log(rnd(kind(2 * np.pi) * counts), half))
            stirling = rnd(rnd(rnd(y * logy) - y) + rnd(kind(0.5) * two_pi_y))
            losses = rnd(losses + np.where(y > 1, stirling, kind(0)))

    def grad(n: float, up: Array | None = None) -> Array:
        g = (wide_upstream(n) if half is WIDE else upstream_c(n, rnd)) if up is None else up
        if log_input:
            return rnd(rnd(g * e) + rnd(-g * y))
        return rnd(g + rnd(rnd(-g * y) / q))
    return losses, grad


def poisson_parts64(y: Array, p: Array, log_input: bool, options: dict[str, Any],
                    weights: Array | None = None) -> Parts:
    """poisson's Parts from PyTorch's double kernels (WIDE): the mean's gradient with the 1/n brought in first, its
    value torch.mean's; weighed by sample as PyTorch users weigh it (weighed_parts)."""
    with np.errstate(all="ignore"):
        losses, grad = poisson(y, p, log_input, bool(options.get("full")), rounder(WIDE), WIDE)
    if weights is not None:
        return weighed_parts(losses, grad, None, weights, WIDE)
    return Parts(losses=losses, grad=quiet(grad)(1), prob=None, mean_grad=quiet(grad), **wide_summed(losses))


def placed(loss: str, from_logits: bool, probability_rows: bool, dtype: str = "float32") -> bool:
    """Whether a row's results depend on where it lies in the whole batch: the scalar loops at the end of each
    thread's part of the batch (tails: bce from logits' σ, huber's and smooth-l1's backward)."""
    return (loss == "bce" and from_logits) or loss in ("huber", "smooth-l1")


# the dtypes these kernels run in (float64 only for the losses conventions.TORCH.kernels_float64 names here,
# FLOAT64's, with what they take from MKL in double, if anything; unsupported_mode)
DTYPES = ("float32", "float16", "bfloat16", "float64")
FLOAT64 = {"gaussian-nll": "log v", "poisson": "e^x and log x", "margin-ranking": None}


def unsupported_mode(dtype: str, loss: str, from_logits: bool, sample_weight: bool) -> str | None:
    """float64: margin-ranking, and gaussian-nll and poisson with the `mkl` extra (log v, e^x and log x in double
    are MKL's vmdLn and vmdExp); lossgrad's float64 formulas take the rest."""
    if dtype != "float64":
        return None
    if loss not in FLOAT64:
        return f"{loss} in float64"
    needs = FLOAT64[loss]
    if needs is None or mkl.available():
        return None
    return f"{loss} in float64 (its {needs} in double {'are' if ' and ' in needs else 'is'} MKL's: {mkl.INSTALL})"


def unsupported_dtype(loss: str, dtype: str) -> str | None:
    """A loss reproduced in some dtypes only: poisson's e^x and log x, and gaussian-nll's log v, of float32
    tensors come from MKL's vector library in PyTorch's builds, reproduced where MKL is installed."""
    if loss in ("poisson", "gaussian-nll") and dtype == "float32" and not mkl.available():
        what = "e^x and log x are" if loss == "poisson" else "log v is"
        return f"{loss} in float32 (its {what} MKL's: {mkl.INSTALL}; float16 and bfloat16 are reproduced)"
    return refused(loss, dtype)


def refused(loss: str, dtype: str) -> str | None:
    """Why PyTorch itself refuses this loss in this dtype, in its words (None: it computes it)."""
    if loss == "ctc" and dtype != "float32":
        kind = "Half" if dtype == "float16" else "BFloat16"
        return (f"PyTorch refuses ctc in {dtype}: torch.nn.functional.ctc_loss on the CPU raises NotImplementedError "
                f"(\"ctc_loss_cpu\" not implemented for '{kind}')")
    return None


def kl_log_input(y: Array, logq: Array, log_target: bool, rnd: Rounder,
                 half: Any) -> tuple[Array, Backward]:
    """kl_div of log-probabilities: xlogy(y, y) − y·logq, or with log targets e^y·(y − logq); the gradient for the
    input −y·g (−e^y·g), g = 1 or 1/N as stored in the dtype, or `up`. e^y of float32 is MKL's where it is installed
    (correctly rounded where not: an ulp away now and then); of a half dtype correctly rounded, then rounded."""
    if log_target:
        exact = half is not None or not mkl.available()
        ey = rnd(np.exp(y.astype(np.float64)).astype(F32) if exact else mkl.exp(y))
        losses = rnd(ey * rnd(y - logq))
        w = ey
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            logy = libm_logf(np.where(y == 0, F32(1), y))  # (xlogy: x·std::log(y), one element at a time)
            xly = np.where(y == 0, F32(0), rnd(y * rnd(logy)))
        losses = rnd(xly - rnd(y * logq))
        w = y
    return losses, lambda n, up=None: rnd(-(upstream_c(n, rnd) if up is None else up) * w)


def half_dtype(name: str) -> Any:
    """The numpy type of a half dtype's name (bfloat16 from ml_dtypes, imported only when asked for)."""
    if name == "bfloat16":
        import ml_dtypes
        return ml_dtypes.bfloat16
    return np.float16


# the parameters each loss's reproduced kernels take (beyond these, the loss is refused in half dtypes)
TAKES = {"ce": ("ignore_index", "class_weights", "label_smoothing"), "nll": ("ignore_index", "class_weights"),
         "kl": ("log_input", "log_target"), "bce": ("pos_weight",), "mse": (), "mae": (), "huber": ("delta",),
         "poisson": ("full",), "gaussian-nll": ("full", "var_eps"),
         "margin-ranking": ("margin",)}
WEIGHED = ("bce",)  # the losses whose kernels take a weight per sample (weight=)
# the losses weighed by sample as PyTorch users weigh them, (loss(reduction="none") * w).mean() (with ignore_index
# .sum() over the samples counted), without class weights (they change the mean's N) or label smoothing (its
# backward is not one upstream per sample)
WEIGHABLE = ("ce", "nll", "mse", "mae", "huber", "smooth-l1", "poisson", "kl", "focal", "gaussian-nll",
             "margin-ranking")


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why PyTorch's kernels for this loss and these options are not reproduced (None: they are)."""
    extra = [k for k, v in params.items() if not (v is None or v is False or (np.ndim(v) == 0 and v == 0))
             and k not in TAKES.get(loss, ())]
    if sample_weight and loss not in WEIGHED:
        hinder = [k for k in ("class_weights", "label_smoothing") if k not in extra
                  and _row_options_set({k: params.get(k)})]
        if loss not in WEIGHABLE or hinder:
            extra += [*hinder, "sample_weight"]
    if loss == "ce" and not from_logits:
        return f"{loss} on probabilities"
    if loss == "kl" and not switches.get("log_input"):
        return "kl on probabilities (PyTorch's kl_div takes log-probabilities: {log_input})"
    if loss not in TAKES:
        return loss
    return f"{loss} with {', '.join('{' + k + '}' for k in extra)}" if extra else None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """The loss's parts as PyTorch's CPU kernels give them in float32 (half None) or the half dtype (carried in
    float32), with the gradient and the value of the mean over N formed as the kernels form them; `weights`:
    one per sample, the loss's weight= (bce); `extra`: the loss's further inputs (gaussian-nll's var). float64
    inputs (half None) of gaussian-nll and poisson are PyTorch's double kernels (WIDE)."""
    options = params or {}
    if loss == "gaussian-nll" and half is None and p.dtype == np.float64:
        var64 = np.asarray((extra or {})["var"], dtype=np.float64)
        return gaussian_nll_parts(y, p, var64, WIDE, options, weights)
    if loss == "poisson" and half is None and p.dtype == np.float64:
        return poisson_parts64(y.astype(np.float64), p, from_logits, options, weights)
    if loss == "margin-ranking" and half is None and p.dtype == np.float64:
        other64 = np.asarray((extra or {})["other"], dtype=np.float64)
        return margin_ranking_parts(y.astype(np.float64), p, other64, WIDE, options, weights)
    rnd = rounder(half)
    y, p = y.astype(F32), p.astype(F32)
    if loss == "gaussian-nll":
        return gaussian_nll_parts(y, p, np.asarray((extra or {})["var"], dtype=F32), half, options, weights)
    if loss == "margin-ranking":
        return margin_ranking_parts(y, p, np.asarray((extra or {})["other"], dtype=F32), half, options, weights)
    if weights is not None and loss not in WEIGHED:
        return weighed(loss, y, p, labels, half, switches, batchmean, options, from_logits, weights)
    if loss == "nll" or (loss == "ce" and (labels is not None or _row_options_set(options))):
        return rows_compute(loss, y, p, labels, half, options)
    if loss == "ce":
        with np.errstate(all="ignore"):
            losses, grad, prob, terms = ce(y, p, labels, rnd, half=half)
        # (probability rows: −(log p · y).sum() over N, the stored sum divided)
        return Parts(losses=losses, grad=grad(1), prob=prob, mean_grad=grad,
                     **summed_losses(terms, rnd, half, False, negated=True))
    return elementwise_parts(loss, y, p, half, switches, batchmean, options, from_logits, weights)


def weighed(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool, options: dict[str, Any], from_logits: bool, weights: Array) -> Parts:
    """(loss(reduction="none") · w).mean(), .sum() (or kl's batchmean, and over class indexes with ignore_index,
    .sum() / N, N the samples counted), as PyTorch users weigh a loss by sample: each loss times its sample's
    weight in the dtype, the product rounded; the gradient the loss's backward under reduction="none" of
    MulBackward's upstream c·w, c = 1/n as MeanBackward (or DivBackward) divides (1 for the sum), the product
    rounded; the value torch.mean's (the stored sum's, over n) of the weighted losses."""
    rnd = rounder(half)
    backward: Backward
    with np.errstate(all="ignore"):
        if labels is not None:
            o = row_options(y, labels, half, options)
            losses, backward, prob, _ = (nll_loss if loss == "nll" else ce_index)(p, labels, o)
            if o.keep is not None:  # (a sample left out: no gradient, and the mean divides by those counted)
                backward, batchmean = left_out(backward, o.keep), True
        elif loss == "ce":
            losses, backward, prob, _ = ce(y, p, None, rnd, half)
        else:
            losses, grad, prob, _ = elementwise(loss, y, p, rnd, half, switches, options, from_logits, None)
            backward = cast(Backward, grad)  # (every WEIGHABLE elementwise kernel's backward takes `up`)
    return weighed_parts(losses, backward, prob, weights, half, not batchmean)


def weighed_pair(losses: Array, grads: Callable[..., tuple[Array, ...]], name: str | tuple[str, ...],
                 weights: Array, half: Any) -> Parts:
    """weighed_parts for a loss with a further input `name` (or several), whose `grads(n, up)` give the predictions'
    gradient and then each such input's: each loss times its weight, (losses · w).mean() or .sum()."""
    names = (name,) if isinstance(name, str) else name
    parts = weighed_parts(losses, lambda n, up=None: grads(n, up)[0], None, weights, half)
    rnd = rounder(half)
    w = rnd(np.asarray(weights, dtype=np.float64)).reshape(-1, *(1,) * (losses.ndim - 1))
    parts.extra_grads = dict(zip(names, quiet(lambda _: grads(1, w)[1:])(1), strict=True))
    parts.mean_extra_grads = quiet(lambda n: dict(zip(names, grads(1, rnd(mean_upstream(n, half) * w))[1:],
                                                          strict=True)))
    return parts


def left_out(backward: Backward, keep: Array) -> Backward:
    """`backward` with the rows of the samples ignore_index leaves out 0 (nll_loss writes nothing there)."""
    def kept(n: float, up: Array | None = None) -> Array:
        return np.where(keep[:, None], backward(n, up), F32(0))
    return kept


def weighed_parts(losses: Array, backward: Backward, prob: Array | None, weights: Array, half: Any,
                  float_sum: bool = True) -> Parts:
    """The Parts of `losses` (reduction="none") times the weights w in the dtype, (losses · w).mean() or .sum():
    each product rounded, the gradient `backward` of the upstream c·w (MulBackward's, rounded), c = 1/n as
    MeanBackward divides (1 for the sum), the value torch.mean's of the products (float_sum; else the stored
    sum over n)."""
    rnd = rounder(half)
    with np.errstate(all="ignore"):
        w = rnd(np.asarray(weights, dtype=np.float64)).reshape(-1, *(1,) * (losses.ndim - 1))
        weighted = rnd(losses * w)
    return Parts(losses=weighted, grad=quiet(lambda _: backward(1, w))(1), prob=prob,
                 mean_grad=quiet(lambda n: backward(1, rnd(mean_upstream(n, half) * w))),
                 **(wide_summed(weighted) if half is WIDE else summed_losses(weighted, rnd, half, float_sum)))


def mean_upstream(n: float, half: Any) -> Any:
    """MeanBackward's 1/n (1 for the sum) in the dtype: upstream_c, or in float64 (WIDE) wide_upstream."""
    return wide_upstream(n) if half is WIDE else upstream_c(n, rounder(half))


def elementwise_parts(loss: str, y: Array, p: Array, half: Any, switches: dict[str, bool], batchmean: bool,
                      options: dict[str, Any], from_logits: bool, weights: Array | None) -> Parts:
    """An elementwise loss's Parts, the mean over N torch.mean's (kl_div's batchmean: the stored sum over N)."""
    rnd = rounder(half)
    w = None if weights is None else rnd(np.asarray(weights, dtype=np.float64))[:, None]
    with np.errstate(all="ignore"):
        losses, grad, probs, logit_grad = elementwise(loss, y, p, rnd, half, switches, options, from_logits, w)
    # torch.mean divides the float sum (one rounding); kl_div's batchmean, `sum() / N`, the stored sum
    return Parts(losses=losses, grad=quiet(grad)(1), prob=probs, mean_grad=quiet(grad),
                 **summed_losses(losses, rnd, half, not batchmean),
                 grad_logits=None if logit_grad is None else quiet(logit_grad)(1))


def elementwise(loss: str, y: Array, p: Array, rnd: Rounder, half: Any, switches: dict[str, bool],
                params: dict[str, Any], from_logits: bool,
                w: Array | None) -> tuple[Array, Grad, Array | None, Grad | None]:
    """An elementwise loss's kernels: the losses, the gradient for the mean over n (1: the sum), σ(z) for
    logits, the gradient for the logits behind probabilities."""
    if loss == "bce" and not from_logits:
        losses, grad, logit_grad = bce_probs(y, p, rnd, half, w)
        return losses, grad, None, logit_grad
    place = params.get("place")  # (where these rows lie in the batch: the threads' parts are the batch's)
    if loss == "bce":
        pw = params.get("pos_weight")
        if pw is None and w is None:
            return (*bce_logits(y, p, rnd, half, place), None)
        return (*bce_weighted(y, p, rnd, half, None if pw is None else rnd(np.asarray(pw, dtype=np.float64)), w,
                              place), None)
    if loss == "mse":
        return (*mse(y, p, rnd), None, None)
    if loss == "mae" or (loss == "smooth-l1" and not params.get("beta")):
        return (*mae(y, p, rnd), None, None)
    if loss == "huber":
        return (*huber(y, p, float(params.get("delta", 1.0)), rnd, half, place), None, None)
    if loss == "smooth-l1":
        return (*smooth_l1(y, p, float(params["beta"]), rnd, half, place), None, None)
    if loss == "poisson":
        return (*poisson(y, p, from_logits, bool(params.get("full")), rnd, half), None, None)
    return (*kl_log_input(y, p, switches.get("log_target", False), rnd, half), None, None)


HALF_LOG_2PI = F32(0.5 * np.log(2 * np.pi))  # (gaussian_nll_loss's full term, a double rounded as it is added)
HALF_LOG_2PI_DOUBLE = 0.5 * math.log(2 * math.pi)  # (the same, as float64 adds it)


def gaussian_nll(y: Array, p: Array, var: Array, full: bool, eps: float,
                 half: Any) -> tuple[Array, Callable[..., tuple[Array, Array]]]:
    """gaussian_nll_loss, ½·(log v + (p − y)²/v) with v = max(var, ε) (ε in the dtype; the clamp outside autograd),
    each op rounded, full's ½·log 2π rounded to the dtype first; its autograd for the mean over n (1: the sum):
    g = ½ of 1/n in the dtype (or of an upstream gradient `up`), grad = (g/v)·2e, grad_var = g/v + (−g)·((e²/v)/v),
    a variance per sample summed over its outputs (torch.sum) in each path before the two are added."""
    rnd, kind = rounder(half), half or F32
    carried = np.float64 if half is WIDE else F32  # (the arrays' type: float32 carries the half dtypes)
    v = np.maximum(var, np.asarray(np.float64(eps).astype(kind), dtype=carried))
    e = rnd(p - y)
    q = rnd(rnd(e * e) / v)
    losses = rnd(F32(0.5) * rnd(rnd(torch_log(v, half)) + q))
    if full:
        losses = rnd(losses + (HALF_LOG_2PI_DOUBLE if half is WIDE else rnd(HALF_LOG_2PI)))
    sums = wide_row_sums if half is WIDE else (lambda x: row_sums(x, half))

    def grads(n: float, up: Array | None = None) -> tuple[Array, Array]:
        c = (wide_upstream(n) if half is WIDE else upstream_c(n, rnd)) if up is None else up
        g = rnd(c * F32(0.5))
        grad = rnd(rnd(g / v) * rnd(F32(2) * e))
        div = rnd(rnd(-g) * rnd(q / v))
        if v.shape == p.shape:
            return grad, rnd(rnd(g / v) + div)
        per_row = sums(np.broadcast_to(g, p.shape).astype(carried))[:, None]
        return grad, rnd(rnd(per_row / v) + sums(div)[:, None])
    return losses, grads


def gaussian_nll_parts(y: Array, p: Array, var: Array, half: Any, options: dict[str, Any],
                       weights: Array | None = None) -> Parts:
    """gaussian-nll's Parts: the mean's gradients with the 1/n brought in first, its value torch.mean's; weighed
    by sample as PyTorch users weigh it (weighed_pair)."""
    eps = options.get("var_eps")
    with np.errstate(all="ignore"):
        losses, grads = gaussian_nll(y, p, var, bool(options.get("full")), 1e-6 if eps is None else float(eps), half)
    if weights is not None:
        return weighed_pair(losses, grads, "var", weights, half)
    value = wide_summed(losses) if half is WIDE else summed_losses(losses, rounder(half), half)
    return Parts(losses=losses, grad=quiet(lambda n: grads(n)[0])(1), extra_grads={"var": quiet(grads)(1)[1]},
                 mean_grad=quiet(lambda n: grads(n)[0]), **value,
                 mean_extra_grads=quiet(lambda n: {"var": grads(n)[1]}))


def given_margin(options: dict[str, Any]) -> float:
    """The margin given (0 where none is: −0 stays −0, as PyTorch adds it)."""
    margin = options.get("margin")
    return 0.0 if margin is None else float(margin)


def margin_ranking_parts(y: Array, x1: Array, x2: Array, half: Any, options: dict[str, Any],
                         weights: Array | None = None) -> Parts:
    """margin_ranking_loss, (−y·(x1 − x2) + margin).clamp_min(0), each op rounded (margin rounded to the dtype as
    it is added); clamp_min passes the gradient where the unclamped value is at least 0: −y·g for x1 and its
    negation for x2, g = 1 or 1/N in the dtype, or an upstream `up` (y = ±1: exact); weighed by sample as PyTorch
    users weigh it (weighed_pair)."""
    rnd = rounder(half)
    carried = np.float64 if half is WIDE else F32  # (the arrays' type: float32 carries the half dtypes)
    margin = np.asarray(np.float64(given_margin(options)).astype(half or F32), dtype=carried)
    with np.errstate(all="ignore"):
        x = rnd(rnd(-y * rnd(x1 - x2)) + margin)
    on = x >= 0

    def grads(n: float, up: Array | None = None) -> tuple[Array, Array]:
        g = mean_upstream(n, half) if up is None else up
        g1 = rnd(np.where(on, g, carried(0)) * -y)  # (a signed zero where clamped, as autograd's)
        return g1, -g1
    losses = np.where(x < 0, carried(0), x)  # (clamp_min keeps x where it is not below 0: −0 stays −0)
    if weights is not None:
        return weighed_pair(losses, grads, "other", weights, half)
    value = wide_summed(losses) if half is WIDE else summed_losses(losses, rnd, half)
    return Parts(losses=losses, grad=grads(1)[0], extra_grads={"other": grads(1)[1]},
                 mean_grad=quiet(lambda n: grads(n)[0]), **value,
                 mean_extra_grads=quiet(lambda n: {"other": grads(n)[1]}))


def _row_options_set(params: dict[str, Any]) -> bool:
    return bool(params.get("label_smoothing")) or params.get("class_weights") is not None


def mean_value(summed: Callable[[], Any], rnd: Rounder, half: Any, nll: bool,
               float_sum: bool) -> Callable[[float], float]:
    """The reduced value from the kernel's sum (formed when asked for: batch mode never asks): the sum as stored
    (n = 1), or over n as the kernel divides it: nll_loss its stored sum by its total weight stored in the dtype,
    torch.mean the float sum by n, `sum() / N` the stored sum by n."""
    kind = half or F32

    def value(n: float) -> float:
        with np.errstate(all="ignore"):
            raw = summed()
            total = raw if nll else rnd(np.asarray(raw))[()]
            if n == 1:
                return float(total)
            if nll:
                return float(kind(total) / kind(n))
            return float(kind(F32(raw if float_sum else total) / F32(n)))
    return value


class TotalSum:
    """torch.sum of all `size` elements of a tensor of the `half` dtype (None: float32, as torch.mean's sum of a half
    tensor also is; or of float64, `wide`), the elements coming in order, in pieces of any shape: SumKernel over
    one row, more than GRAIN elements in TensorIterator's two passes, each thread's part summed and stored in the
    dtype, and the THREADS parts' sums (0 for a thread without a part) then summed."""

    def __init__(self, size: int, half: Any = None, wide: bool = False) -> None:
        self.half, self.seen, self.dtype = half, 0, np.float64 if wide else F32
        self.row = (lambda rows, n: RowSum(rows, n, lanes=WIDE_LANES, dtype=np.float64)) if wide else summer(half)
        self.parts = [(part, self.row(1, part.stop - part.start))
                      for part in (chunks(size) if size > GRAIN else [slice(0, size)])]

    def add(self, x: Array) -> None:
        flat = np.asarray(x, dtype=self.dtype).reshape(1, -1)
        for part, s in self.parts:
            lo, hi = max(part.start, self.seen), min(part.stop, self.seen + flat.shape[1])
            if lo < hi:
                s.add(flat[:, lo - self.seen:hi - self.seen])
        self.seen += flat.shape[1]

    def total(self) -> Any:
        if len(self.parts) == 1 and self.parts[0][0].stop <= GRAIN:
            return self.parts[0][1].close()[0]
        store = rounder(self.half) if self.dtype is F32 else np.asarray
        sums = [store(s.close())[0] for _, s in self.parts]
        return _summed(self.row(1, THREADS), np.array([sums + [0] * (THREADS - len(sums))], dtype=self.dtype))[0]


def total_sum(x: Array, half: Any = None, wide: bool = False) -> Any:
    """torch.sum of all the elements of x (TotalSum)."""
    s = TotalSum(x.size, half, wide)
    s.add(x)
    return s.total()


def wide_row_sums(x: Array) -> Array:
    """torch.sum(x, dim=-1) of float64 rows: the cascade over WIDE_LANES, a single row of more than GRAIN elements
    in the threads' two passes."""
    if x.shape[0] > 1 or x.shape[1] <= GRAIN:
        return torch_sum(x, WIDE_LANES)
    return np.array([total_sum(x, wide=True)])


def wide_norm_squares(x: Array) -> Array:
    """Σx² of each row of doubles as the 2-norm kernel sums it (vector_norm, at::norm): WIDE_LANES lanes of unfused
    products and sums (a 256-bit register, as the float32 kernel's 8), the lanes added in order, then the last
    n mod 4 fused (x·x + acc, exactly as the C library's fma: in rationals, for at most 3 columns)."""
    from fractions import Fraction

    rows, n = x.shape
    whole = n - n % WIDE_LANES
    acc = np.zeros((rows, WIDE_LANES))
    for d in range(0, whole, WIDE_LANES):
        v = x[:, d:d + WIDE_LANES]
        acc = acc + v * v
    total: Array = acc[:, 0].copy()
    for j in range(1, WIDE_LANES):
        total = total + acc[:, j]
    for d in range(whole, n):
        total = np.array([_rounded(Fraction(float(a)) ** 2 + Fraction(float(t))) if np.isfinite(a) and np.isfinite(t)
                          else float(a * a + t) for a, t in zip(x[:, d], total, strict=True)])
    return total


def _rounded(q: Any) -> float:
    """A rational rounded to the nearest double, ±∞ beyond the largest (as an fma's result overflows)."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def wide_upstream(n: float) -> Any:
    """The upstream gradient of a float64 mean over n, 1/n (MeanBackward's), or 1 for a sum."""
    return np.float64(1) / np.float64(n)


def wide_summed(losses: Array) -> dict[str, Any]:
    """summed_losses for float64 losses: torch's float64 sum of them, over n for the mean."""
    def value(n: float, total: Callable[[Any], Any]) -> float:
        return float(total(None) if n == 1 else total(None) / np.float64(n))
    return summed(losses, None, value, wide=True)


def terms_value(rnd: Rounder, half: Any, float_sum: bool = True,
                negated: bool = False) -> Callable[[float, Callable[[Any], Any]], float]:
    """The value over n (1: the sum) of torch's sum over all the terms (negated: of −terms), total(h) being that
    sum in dtype h (TotalSum's): reduction sum, and `sum() / N`, sum the tensor in its dtype; torch.mean
    (`float_sum`) sums it cast to float32."""
    sign = F32(-1) if negated else F32(1)

    def value(n: float, total: Callable[[Any], Any]) -> float:
        stored = n == 1 or not float_sum
        return mean_value(lambda: sign * total(half if stored else None), rnd, half, False, float_sum)(n)
    return value


def summed(terms: Array, half: Any, of: Callable[[float, Callable[[Any], Any]], float],
           wide: bool = False) -> dict[str, Any]:
    """Parts' mean_value, value_parts and value_fold for a value `of(n, total)` formed from torch's sum of all the
    terms (rows of them, one per sample; total(h): the sum in dtype h, or in float64 for `wide` terms): over these
    terms alone, and over a batch's slices' terms as they come (Summed; it needs the batch's rows beforehand, for
    the threads' halves)."""
    per_row = int(np.prod(terms.shape[1:]))
    return {"mean_value": quiet(lambda n: of(n, lambda h: total_sum(terms, h, wide))), "value_parts": {"terms": terms},
            "value_fold": lambda rows: None if rows is None else Summed(rows * per_row, half, of, wide)}


def summed_losses(terms: Array, rnd: Rounder, half: Any, float_sum: bool = True,
                  negated: bool = False) -> dict[str, Any]:
    """summed's Parts fields for terms_value: the value torch's sum of the losses (or of −terms) gives."""
    return summed(terms, half, terms_value(rnd, half, float_sum, negated))


class Summed:
    """A batch's value from torch's sum of all its terms (the slices' value_parts["terms"], `size` of them), summed
    as they come, in the dtype and in float32 (TotalSum): constant memory over a tensor file of any length."""

    holds = False

    def __init__(self, size: int, half: Any, of: Callable[[float, Callable[[Any], Any]], float],
                 wide: bool = False) -> None:
        self.sums = {h: TotalSum(size, h, wide) for h in (half, None)}
        self.of = of

    def add(self, parts: dict[str, Array]) -> None:
        for s in self.sums.values():
            s.add(parts["terms"])

    def value(self, n: float) -> float:
        return float(quiet(lambda m: self.of(m, lambda h: self.sums[h].total()))(n))


# significand bits (with the implicit one) and the smallest normal exponent of each dtype
FORMATS = {"float16": (11, -14), "bfloat16": (8, -126), "float32": (24, -126)}


def ulp(x: Array, dtype: str) -> Array:
    """The spacing of `dtype`'s numbers at |x| (the subnormals' spacing below the normal range)."""
    bits, emin = FORMATS[dtype]
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.abs(np.asarray(x, dtype=np.float64))))
    out: Array = np.ldexp(1.0, (np.maximum(np.nan_to_num(e, neginf=emin), emin) - (bits - 1)).astype(np.int32))
    return out


def ulps(a: Array, truth: Array, dtype: str) -> Array:
    """|a − truth| in units of `dtype`'s spacing at the truth: 0.5 at most for a correctly rounded result."""
    with np.errstate(invalid="ignore"):
        d: Array = np.abs(np.asarray(a, dtype=np.float64) - truth) / ulp(truth, dtype)
    return np.where(np.asarray(a) == truth, 0.0, d)
