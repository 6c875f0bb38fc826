"""JAX's CPU results (XLA) in float64 (JAX with jax_enable_x64): the ground (its sums, whole-array sums, jax.grad's
partner sums, e^x; lowp_xla64_ntxent builds on them) and optax's triplet_margin_loss, bit for bit, op by op and under
jit.

In float64 XLA computes every operation in double, each rounded once: the differences, the powers (lax.integer_pow's
products for an integral norm_degree, the C library's pow for any other), the roots (pow again) and jax.grad's
products. What sets the bits apart from lossgrad's formulas is the order of each row's sum and, under jit, XLA's
rewrites:

- A row sum of fewer than 4,096 elements is XLA's loop: windows of 32, each in order. From 4,096, YNNPACK's
  sum_float_k1 with 8 double lanes (64 bytes), a row in blocks of 1,024, each in tiles of 128 (a last tile of 65
  to 127 in two, of 64 and the rest), whose lanes are added before they are halved (rows of 2,048 or more go
  otherwise, not pinned down: refused). The mean's sum
  over the losses is the same sum of one row, and jnp.mean multiplies it by 1/n.
- Under jit XLA's algebraic simplifier writes a root h^(1/q) of ½ as √h, of 1 as h, of 2 and 3 as products, and
  takes each gradient's factor q·d^(q−1) times the cotangent c as d^(q−1)·(c·q); LLVM contracts the negative's
  product into the anchor's sum as a fused multiply-add (measured with AVX2). From 4,096 elements YNNPACK takes the
  powers in with its sum, d^½ by pow. A row of 32 features or fewer is fused into its sum's loop, which LLVM
  vectorises in an order not pinned down: refused.

- A whole array's sum (sum2d) is XLA's loop, whose rows LLVM splits into lanes (measured with AVX2), in windows of
  32 × 32 beyond; jax.grad's sums over a broadcast's rows (partner_sum) are XLA's windows, and from 4,096 elements
  YNNPACK's sum_float_kn, as in float32 (lowp_xla_partner) with slices of 128 KiB.

scripts/measure_xla64.py measures the ground (XLA's double e^x, log, pow and sums) against JAX.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from . import cpu, libm
from .errors import NotReproduced
from .flush import flushed_below, product, quotient
from .losses import Parts
from .losses._ops import Array
from .losses.base import Joined
from .lowp_xla import window_sums2d
from .lowp_xla_partner import _kn as kn, column_sums
from .lowp_xla_pow import int_pow, integral
from .sleef64 import fma

F64 = np.float64
EPS = 1e-6  # (optax's eps, a float64 here)
YNN_FROM = 4096  # elements from which XLA hands a sum to YNNPACK
YNN_LANES = 8  # doubles in YNNPACK's accumulator (64 bytes, whatever the processor)
# YNNPACK's pieces of a row (in a batch of 4,096 elements or more): blocks of YNN_BLOCK, each in tiles of YNN_PIECE,
# a last tile of more than YNN_TILE in two, the first of YNN_TILE; rows of YNN_LONGEST or more go otherwise
YNN_TILE = 64
YNN_PIECE = 128
YNN_BLOCK = 1024
YNN_LONGEST = 2048
FUSED_UP_TO = 32  # under jit, rows of this many features or fewer are fused into their sum's loop
TINY = np.finfo(F64).tiny


def ftz(x: Array | float) -> Array:
    """XLA's CPU code runs with subnormals flushed (FTZ and DAZ), in float64 too: a subnormal operand reads as, and a
    subnormal result is stored as, a zero of its sign. (A sum or difference below the normal range is exact, so its
    numpy result decides; a product or quotient is not: mul, div.)"""
    a = np.asarray(x, dtype=F64)
    out: Array = np.where(np.abs(a) < TINY, np.copysign(0.0, a), a)
    return out


# the least exact result the processor keeps (lossgrad.flush): TINY − 2⁻¹⁰⁷⁶
FLUSHED_BELOW = flushed_below(F64)


def _rounded(exact: Fraction) -> float:
    """An exact nonzero result rounded once as the processor rounds it with FTZ (FLUSHED_BELOW)."""
    if abs(exact) < FLUSHED_BELOW:
        return -0.0 if exact < 0 else 0.0
    try:
        return float(exact)  # (a quotient of integers, correctly rounded)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


def mul(a: Any, b: Any) -> Array:
    """a·b rounded once and flushed as XLA's CPU code gives it (lossgrad.flush)."""
    with np.errstate(all="ignore"):
        return ftz(product(np.asarray(a, dtype=F64), np.asarray(b, dtype=F64)))


def div(a: Any, b: Any) -> Array:
    """a/b rounded once and flushed as XLA's CPU code gives it (lossgrad.flush)."""
    with np.errstate(all="ignore"):
        return ftz(quotient(np.asarray(a, dtype=F64), np.asarray(b, dtype=F64)))


def _in_order(x: Array) -> Array:
    """Each row's sum along the last axis, left to right."""
    acc: Array = x[..., 0].copy()
    for i in range(1, x.shape[-1]):
        acc = ftz(acc + x[..., i])
    return acc


def windows(x: Array) -> Array:
    """XLA's loop: a row of more than 32 in windows of 32 (the padding split, the smaller half first), each summed in
    order, then their sums the same way."""
    rows, n = x.shape
    if n <= 32:
        return _in_order(x)
    pad = -n % 32
    padded = np.zeros((rows, n + pad), dtype=F64)
    padded[:, pad // 2:pad // 2 + n] = x
    return windows(_in_order(padded.reshape(rows, -1, 32)))


def ynn_lanes(x: Array) -> Array:
    """The 8 lanes of YNNPACK's sum of one tile of each row (element i in lane i mod 8): groups of 4
    vectors, each group added in order and then onto the lanes."""
    rows, n = x.shape
    vectors = np.zeros((rows, -(-n // YNN_LANES) * YNN_LANES), dtype=F64)
    vectors[:, :n] = x
    vectors = vectors.reshape(rows, -1, YNN_LANES)
    acc = np.zeros((rows, YNN_LANES), dtype=F64)
    for lo in range(0, vectors.shape[1], 4):
        acc = ftz(acc + _in_order(np.moveaxis(vectors[:, lo:lo + 4], 1, 2)))
    return acc


def halved(lanes: Array) -> Array:
    """The lanes added pairwise, the upper half onto the lower (4, 2, 1)."""
    step = lanes.shape[1] // 2
    while step:
        lanes = ftz(lanes[:, :step] + lanes[:, step:2 * step])
        step //= 2
    out: Array = lanes[:, 0]
    return out


def row_sum(x: Array) -> Array:
    """jnp.sum along each row of a float64 [rows, n] array, as XLA's CPU backend adds it (from +0; a reduce over one
    element XLA drops, where −0 stays −0): below YNN_FROM elements XLA's windows of 32; from YNN_FROM YNNPACK's 8
    lanes, a row in blocks of YNN_BLOCK, each in tiles (tiles()), the tiles' lanes and then the blocks' added before
    the lanes are halved (measured up to rows of 2,047: scripts/measure_xla64.py)."""
    rows, n = x.shape
    if n == 1:
        return x[:, 0].copy()
    x = ftz(x)  # (a subnormal operand reads as zero: DAZ)
    if x.size < YNN_FROM:
        return windows(x) + 0.0
    if n >= YNN_LONGEST:
        raise _tiles(rows, n)
    blocks = [_tiled_lanes(x[:, lo:lo + YNN_BLOCK]) for lo in range(0, n, YNN_BLOCK)]
    return halved(blocks[0] if len(blocks) == 1 else ftz(blocks[0] + blocks[1])) + 0.0


def tiles(n: int) -> list[int]:
    """The lengths of the tiles YNNPACK sums a block of n ≤ YNN_BLOCK elements of a row in: tiles of YNN_PIECE, and
    a last tile of more than YNN_TILE in two, the first of YNN_TILE (65 → 64 + 1)."""
    whole, rest = divmod(n, YNN_PIECE)
    return [YNN_PIECE] * whole + ([YNN_TILE, rest - YNN_TILE] if rest > YNN_TILE else [rest] if rest else [])


def _tiled_lanes(x: Array) -> Array:
    """The lanes of a block of each row: each tile's lanes (ynn_lanes), added tile after tile."""
    lanes, lo = None, 0
    for length in tiles(x.shape[1]):
        tile = ynn_lanes(x[:, lo:lo + length])
        lanes, lo = tile if lanes is None else ftz(lanes + tile), lo + length
    assert lanes is not None
    return lanes


def _tiles(rows: int, n: int) -> NotReproduced:
    return NotReproduced("dtype", f"JAX's float64 sums of a {rows}×{n} array (from {YNN_FROM} elements, rows of "
                         f"{YNN_LONGEST} or more: YNNPACK splits them in an order not pinned down)")


EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1, 2.00000000000000000009e0)
EXP_HI, EXP_LO = 709.782712893384, -708.3964185322641


def exp(x: Array) -> Array:
    """e^x as XLA's float64 intrinsic computes it (xla/codegen/intrinsic/exp.cc, Cephes' rational function, every
    multiply-add contracted): x clamped to [EXP_LO, EXP_HI] (0 below, ∞ above), n = ⌊x·log₂e + ½⌋, g = x − n·C₁ −
    n·C₂, e^g = 1 + 2·P(g²)·g/(Q(g²) − P(g²)·g), times 2^n; flushed (scripts/measure_xla64.py: 0 of 600,010
    values apart)."""
    x = np.asarray(x, dtype=F64)
    with np.errstate(all="ignore"):
        c = np.maximum(np.minimum(x, EXP_HI), EXP_LO)
        n = np.floor(fused(c, 1.4426950408889634073599, 0.5))
        g = fused(-n, 1.42860682030941723212e-6, fused(-n, 0.693145751953125, c))
        g2 = g * g
        p = fused(fused(EXP_P[0], g2, EXP_P[1]), g2, EXP_P[2]) * g
        q = fused(fused(fused(EXP_Q[0], g2, EXP_Q[1]), g2, EXP_Q[2]), g2, EXP_Q[3])
        out = np.ldexp(fused(p / (q - p), 2.0, 1.0), np.nan_to_num(n).astype(np.int64))
        out = np.where(x < EXP_LO, 0.0, np.where(x > EXP_HI, np.inf, out))
    return ftz(np.where(np.isnan(x), x, out))


# log(1 + x)'s rational function below √2 − 1 (Cephes' log1p, as xla/codegen/math/log1p.cc takes it)
LOG1P_P = (4.5270000862445199635215e-5, 4.9854102823193375972212e-1, 6.5787325942061044846969e0,
           2.9911919328553073277375e1, 6.0949667980987787057556e1, 5.7112963590585538103336e1,
           2.0039553499201281259648e1)
LOG1P_Q = (1.0, 1.5062909083469192043167e1, 8.3047565967967209469434e1, 2.2176239823732856465394e2,
           3.0909872225312059774938e2, 2.1642788614495947685003e2, 6.0118660497603843919306e1)
LOG1P_SMALL = 0.41421356237309504880  # √2 − 1


def _horner(x: Array, coefficients: tuple[float, ...]) -> Array:
    """The polynomial with these coefficients (highest first) at x, each step one multiply-add."""
    p = np.zeros_like(x)
    for c in coefficients:
        p = fused(p, x, c)
    return p


def log1p(x: Array) -> Array:
    """log(1 + x) as XLA's float64 intrinsic computes it: x + (−½x² + x³·P(x)/Q(x)) where |x| < √2 − 1 (the
    polynomials' steps and −½x² + … contracted), else the C library's log(x + 1); flushed
    (scripts/measure_xla64.py: 0 of 15,002 values apart, where the C library's log1p is 2,750 apart)."""
    x = ftz(x)
    with np.errstate(all="ignore"):
        x2 = x * x
        out = x + fused(-0.5, x2, (x * x2) * (_horner(x, LOG1P_P) / _horner(x, LOG1P_Q)))
        large = ~(np.abs(x) < LOG1P_SMALL)
        if large.any():
            out[large] = libm.log(x[large] + 1.0)
    return ftz(out)


def log(x: Array) -> Array:
    """log x as XLA computes it in float64: the C library's (scripts/measure_xla64.py), flushed."""
    return ftz(libm.log(ftz(x)))


# beyond these magnitudes SLEEF's error-free steps (sleef64.fma) are not exact: the split of an operand or of the
# product overflows, or the product's error term falls below the normal range
FMA_LARGE, FMA_SMALL = 2.0 ** 990, 2.0 ** -960


def fused(a: Any, b: Any, c: Any) -> Array:
    """a·b + c rounded once (an FMA), on arrays and scalars broadcast together: SLEEF's error-free steps, and where
    they are not exact (FMA_LARGE, FMA_SMALL) the exact sum of the rationals, rounded once (_exact_fma); a result
    below the normal range is flushed as the processor flushes it (_rounded)."""
    shape = np.broadcast(a, b, c).shape
    a, b, c = (np.broadcast_to(np.asarray(v, dtype=F64), shape).copy() for v in (a, b, c))
    with np.errstate(all="ignore"):
        out: Array = fma(a, b, c)
        p = np.abs(a * b)
        edge = np.isfinite(a) & np.isfinite(b) & np.isfinite(c) & (
            (np.maximum(np.maximum(np.abs(a), np.abs(b)), np.maximum(np.abs(c), p)) >= FMA_LARGE)
            | ((a != 0) & (b != 0) & (p < FMA_SMALL)) | ((out != 0) & (np.abs(out) < FMA_SMALL)))
    if edge.any():
        out[edge] = [_exact_fma(*v) for v in zip(a[edge].tolist(), b[edge].tolist(), c[edge].tolist(), strict=True)]
    return out


def _exact_fma(a: float, b: float, c: float) -> float:
    """a·b + c of finite doubles, exactly, rounded once to the nearest double and flushed (_rounded; an exact zero
    signed as the processor signs it: −0 only where a·b and c are zeros of that sign)."""
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        return a * b + c if a * b == 0 and c == 0 else 0.0
    return _rounded(exact)


def _from(start: float, x: Array) -> float:
    """start + x₀ + x₁ + … over x's elements in order, each sum flushed."""
    acc = F64(start)
    for v in x.reshape(-1):
        acc = F64(ftz(acc + v))
    return float(acc)


def block_lanes(n: int, k: int) -> int:
    """How many lanes LLVM's loop vectorizer splits the rows of an [n, k] block (n, k ≤ 32) of XLA's float64 reduce
    loop into (0: none, in order), measured with AVX2 for every n and k up to 32 (jax 0.10.2 on an AMD EPYC): rows
    of one element never; 2 and 4 rows in as many lanes; rows of 8, 12 and from 16 in 4."""
    if k == 1:
        return 0
    if n in (2, 4):
        return n
    return 4 if n % 4 == 0 or n >= 16 else 0


def _block(x: Array) -> float:
    """XLA's sum of an [n, k] block (n, k ≤ 32): w lanes each add their rows (row i in lane i mod w), lane 0 from
    the reduction's +0, the others from −0; the lanes halved; then the last n mod w rows in order."""
    n, k = x.shape
    w = block_lanes(n, k)
    if not w:
        return _from(0.0, x)
    lanes = np.full((1, w), -0.0)
    lanes[0, 0] = 0.0
    whole = n // w * w
    for i in range(0, whole, w):
        for c in range(k):
            lanes = ftz(lanes + x[i:i + w, c])
    return _from(float(halved(lanes)[0]), x[whole:])


def _window(win: Array, inside: Array, pad: tuple[int, int]) -> float:
    """One window of 32 of XLA's reduce-window: a block where none is padded; where the padding is one row or one
    column (and no row), LLVM peels the 32nd: 31 rows (columns) as a block, then the rest; elsewhere in order."""
    if pad == (0, 0):
        return _block(win)
    if pad == (1, 0):
        return _from(_block(win[:31]), win[31:][inside[31:]])
    if pad[1] == 1:
        head = _block(win[:, :31]) if pad[0] == 0 else _from(0.0, win[:, :31][inside[:, :31]])
        return _from(head, win[:, 31:][inside[:, 31:]])
    return _from(0.0, win[inside])


def sum2d(x: Array) -> float:
    """jnp.sum of a whole float64 [rows, k] array as XLA's CPU backend adds it, below YNN_FROM elements: an axis of
    more than 32 in windows of 32 (the padding split, the smaller half first), each window a block (_window), the
    windows' sums summed the same way. Measured with AVX2 on every shape up to 32 × 32 and 700 random shapes up to
    128 × 128 (scripts/measure_xla64.py --sum2d 700); on AVX-512 LLVM's lanes are not measured, and only an array of
    at most two non-zero elements, whose sum no order changes, is reproduced."""
    rows, n = x.shape
    x = ftz(x)  # (a subnormal operand reads as zero: DAZ)
    if x.size >= YNN_FROM:
        raise NotReproduced("dtype", f"JAX's float64 sum of a whole {rows}×{n} array (YNNPACK's, from {YNN_FROM} "
                            "elements: its order is not pinned down)")
    if cpu.selected() != "avx2" and np.count_nonzero(x) > 2:
        raise NotReproduced("dtype", f"JAX's float64 sum of a whole {rows}×{n} array on an AVX-512 processor "
                            "(LLVM's lanes are measured with AVX2 only; --cpu avx2 gives an AVX2 machine's)")
    if rows <= 32 and n <= 32:
        return _block(x)
    return sum2d(window_sums2d(x, _window))


def partner_sum(x: Array, axis: int) -> Array:
    """jax.grad's sum of x [N, N, D] over axis 0 or 1 (the transpose of a broadcast), [N, D]: below YNN_FROM
    elements XLA's windows; from YNN_FROM YNNPACK's sum_float_kn in double (lowp_xla_partner's tree), the sum over
    the rows i in slices of 16384 // (N·D) rows. A contiguous row sum (axis 1, one feature) is row_sum's."""
    n, _, d = x.shape
    rows = np.moveaxis(ftz(x), axis, 2).reshape(n * d, n)  # (a subnormal operand reads as zero: DAZ)
    if axis == 1 and d == 1:
        return row_sum(rows).reshape(n, d)
    if x.size < YNN_FROM:
        return (windows(rows) + 0.0).reshape(n, d)
    if axis == 1:
        return kn(rows, ftz).reshape(n, d)
    return column_sums(x.reshape(n, n * d), ftz).reshape(n, d)


def jit_pow(x: Array, e: float) -> Array:
    """x^e for a constant e under jit: XLA folds x^0 to 1, x^1 to x, x^2 to x·x and x^3 to x·(x·x), and LLVM turns
    pow(x, ½) into |√x| (−∞ giving +∞); any other e is the C library's pow."""
    if e == 0:
        return np.ones_like(x)
    if e == 1:
        return x
    if e in (2, 3):
        return mul(x, x if e == 2 else mul(x, x))
    if e == 0.5:
        with np.errstate(invalid="ignore"):
            return np.where(x == -np.inf, np.inf, np.abs(np.sqrt(x)))
    return ftz(libm.pow(x, e))


def _pow(x: Array, e: float, jit: bool) -> Array:
    return jit_pow(x, e) if jit else ftz(libm.pow(x, e))


def power(d: Array, q: float, jit: bool) -> Array:
    """jnp.power(d, q): lax.integer_pow for an integral q (binary exponentiation), else lax.pow; under jit from
    YNN_FROM elements in rows of two or more YNNPACK takes the powers in with its sum, and computes ½ as any other
    exponent, with pow, not as LLVM's √ (measured: a loss apart in one of 200 random batches)."""
    if integral(q):
        return int_pow(d, int(q), ftz, times=mul)
    ynn = d.size >= YNN_FROM and d.shape[1] > 1
    return _pow(d, q, jit and not ynn)


def check(shape: tuple[int, ...], jit: bool) -> None:
    """Raise NotReproduced where the order of XLA's float64 work is not pinned down."""
    rows, n = shape
    if jit and n <= FUSED_UP_TO:
        raise NotReproduced("dtype", f"JAX's float64 triplet_margin_loss under jit with rows of {FUSED_UP_TO} features "
                            "or fewer (XLA fuses the powers into their sum's loop, in an order not pinned down); ask "
                            "for JAX op by op (--no-jit; jit=False in Python)")
    if rows * n >= YNN_FROM and n >= YNN_LONGEST:
        raise _tiles(rows, n)


def _hinge(diff: Array, margin: float) -> tuple[Array, Array]:
    """max(d(a, pos) − d(a, neg) + margin, 0) and jax.grad's share of the max (½ where the operand is 0)."""
    m = ftz(diff + margin)
    raw = np.maximum(m, 0.0)
    return raw, np.where(m == raw, np.where(raw == 0.0, 0.5, 1.0), 0.0)


def _difference(h_p: Array, root_p: Array, root_n: Array, e: float, contracted: bool) -> Array:
    """d(a, pos) − d(a, neg); `contracted` (under jit): where XLA writes the root h^e as products (e = 2: h·h, e = 3:
    h·(h·h)), LLVM contracts the positive's last product into the subtraction."""
    if contracted and e in (2, 3):
        return ftz(fused(h_p, h_p if e == 2 else mul(h_p, h_p), -root_n))
    return ftz(root_p - root_n)


def triplet(a: Array, pos: Array, neg: Array, q: float, margin: float,
            jit: bool) -> tuple[Array, Callable[[float], list[Array]]]:
    """triplet_margin_loss with norm_degree q: d(u, v) = (Σ (u − v)^q + ε)^(1/q), max(d(a, pos) − d(a, neg) +
    margin, 0); jax.grad through the root's slope (1/q)·h^(1/q − 1) and the power's q·d^(q−1). Returns the losses and
    the gradients (anchor, positive, negative) for the mean over n (n = 1: the sum). Under jit, from YNN_FROM rows,
    XLA hands the losses' own steps (the roots, their difference) to a YNNPACK fusion, which takes h^½ with pow and
    contracts nothing; jax.grad's program keeps LLVM's (measured: the losses alone apart)."""
    check(a.shape, jit)
    a, pos, neg, margin = ftz(a), ftz(pos), ftz(neg), float(ftz(margin))
    e = 1 / q

    def dist(v: Array) -> tuple[Array, Array, Array, Array]:
        d = ftz(a - v)
        h = ftz(row_sum(power(d, q, jit)) + EPS)
        return d, h, _pow(h, e, jit), mul(e, _pow(h, e - 1, jit))
    dp, hp, root_p, slope_p = dist(pos)
    dn, hn, root_n, slope_n = dist(neg)
    raw, share = _hinge(_difference(hp, root_p, root_n, e, jit), margin)
    if jit and a.shape[0] >= YNN_FROM:
        ynn = e != 0.5
        raw, _ = _hinge(_difference(hp, _pow(hp, e, ynn), _pow(hn, e, ynn), e, False), margin)

    def grads(n: float) -> list[Array]:
        c = mul(1.0 if n == 1 else 1.0 / n, share)
        cn, cp = mul(-c, slope_n)[:, None], mul(c, slope_p)[:, None]
        if q == 1:
            bp, bt = np.broadcast_to(cn, dn.shape), np.broadcast_to(cp, dp.shape)
            return [ftz(bp + bt), -bt, -bp]
        if jit:
            (un, kn), (up, kp) = _factors(cn, dn, q), _factors(cp, dp, q)
            bt = mul(up, kp)
            return [ftz(fused(un, kn, bt)), -bt, -mul(un, kn)]
        bp, bt = mul(cn, _slope(dn, q)), mul(cp, _slope(dp, q))
        return [ftz(bp + bt), -bt, -bp]
    return raw, grads


def _slope(d: Array, q: float) -> Array:
    """jax.grad's factor q·d^(q−1) of jnp.power(d, q) op by op (integer_pow's y·x^(y−1), pow's y·x^(y−1))."""
    if integral(q):
        return mul(2.0, d) if q == 2 else mul(float(q), int_pow(d, int(q) - 1, ftz, times=mul))
    return mul(q, ftz(libm.pow(d, q - 1)))


def _factors(c: Array, d: Array, q: float) -> tuple[Array, Array]:
    """The two factors of the gradient with respect to d under jit: d^(q−1) and c·q (XLA's reassociation)."""
    part = int_pow(d, int(q) - 1, ftz, times=mul) if integral(q) else jit_pow(d, q - 1)
    return np.broadcast_to(part, d.shape), np.broadcast_to(mul(c, q), d.shape)


def mean_value(losses: Array, jit: bool) -> Callable[[float], float]:
    """jnp.sum of the losses (n = 1), or jnp.mean over n: their row sum times 1/n."""
    def value(n: float) -> float:
        if jit and 2 <= losses.size <= FUSED_UP_TO:
            raise NotReproduced("dtype", f"JAX's float64 sum of {losses.size} losses under jit (XLA fuses up to "
                                f"{FUSED_UP_TO} into its sum's loop, which LLVM may split into lanes: not pinned down)")
        if losses.size >= YNN_FROM:
            raise NotReproduced("dtype", f"JAX's float64 sum of {losses.size} losses (YNNPACK's order over a single "
                                f"row of {YNN_FROM} or more is not pinned down)")
        total = row_sum(losses.reshape(1, -1))[0]
        return float(total if n == 1 else mul(total, 1.0 / n))
    return value


def triplet_parts(pos: Array, a: Array, neg: Array, jit: bool, margin: float, norm_degree: float) -> Parts:
    """triplet's parts in float64: the anchor's gradient, the positives' (the targets) and the negatives'."""
    with np.errstate(all="ignore"):
        losses, grads = triplet(a, pos, neg, norm_degree, margin, jit)
        g = grads(1)

    @functools.cache  # (the mean's gradients and the further inputs' come from one computation)
    def quiet(n: float) -> list[Array]:
        with np.errstate(all="ignore"):
            return grads(n)
    return Parts(losses=losses, grad=g[0], extra_grads={"target": g[1], "negative": g[2]},
                 mean_grad=lambda n: quiet(n)[0], mean_value=mean_value(losses, jit),
                 value_parts={"terms": losses},
                 value_fold=lambda rows: Joined(lambda parts, n: mean_value(parts["terms"], jit)(n)),
                 mean_extra_grads=lambda n: dict(zip(("target", "negative"), quiet(n)[1:], strict=True)))


def unsupported_dtype(loss: str, dtype: str) -> str | None:
    """float64: triplet alone (conventions.OPTAX.kernels_float64)."""
    return "float64" if dtype == "float64" and loss != "triplet" else None

