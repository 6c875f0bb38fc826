"""JAX's CPU results (XLA) for optax's losses in float32, float16 and bfloat16, bit for bit, with and without jit.

XLA's CPU backend does not call the C library for e^x, log x and log(1 + x): it emits its own polynomials (Cephes'
expf and logf, and a rational function for log1p of small arguments) into the kernel, and LLVM contracts their
multiply-adds into FMA instructions; every XLA computation runs with subnormals flushed to zero. A row sum is one
of two kernels: below 4096 elements XLA's own loop, which splits a row of more than 32 into windows of 32 (the
padding split between the ends) and sums the windows' sums the same way; from 4096 elements YNNPACK, which adds
16 lanes in a tree of accumulators (groups of 4 vectors, 16, and Kahan's compensated step every 1024 elements),
splits the long rows of a batch of fewer than 4 rows into runs of 32768, and halves the lanes pairwise at the
end (ynnpack/kernels/reduce/sum.h, measured). All of it is
reproduced here in numpy on float32 arrays. Without jit each operation is compiled on its own (jax.nn's
log_sigmoid and log_softmax are jitted inside JAX all the same). Under jit float32 fuses without changing a
rounding except where a fused kernel contracts a product into a sum (bce); bfloat16 keeps in float32 what only a
float32 sum reads (e^(z − max) on its way into logsumexp's sum, the losses on theirs into jnp.mean), where op by
op each result is stored in bfloat16; float16 is stored after every operation either way. Half values are carried
in float32 arrays; jnp.sum and jnp.mean add them in float32.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from . import cpu, libm
from .errors import NotReproduced
from .flush import at_tiny
from .losses import Parts
from .losses._ops import Array
from .losses.base import Joined
from .lowp import fma, one_hot
from .lowp_ynn import ynn_log

F32 = np.float32
TINY = F32(np.finfo(np.float32).tiny)
# the losses whose JAX results are reproduced, as optax computes them
SUPPORTED = ("ce (from logits; class indexes: softmax_cross_entropy_with_integer_labels, with sample weights, or "
             "probability rows: softmax_cross_entropy; either with label smoothing: optax.smooth_labels)",
             "bce (from logits: sigmoid_binary_cross_entropy, with sample weights)",
             "mse (squared_error, with sample weights)",
             "kl (kl_divergence, kl_divergence_with_log_targets; with sample weights but under jit in float32)")
DTYPES = ("float32", "float16", "bfloat16")
# below this many elements XLA sums with its own loop; from it on YNNPACK does (jaxlib 0.10 on x86-64)
YNN_FROM = 4096
# YNNPACK's row sum (sum_float_k1): 16 lanes; groups of 4 vectors added in order into a level-0 accumulator, which
# joins level 1 every 16 vectors (or every group, past the whole 16s); level 1 joins level 2 by Kahan's compensated
# addition every 1024 elements, and once more at the end
LANES = 16
KAHAN_EVERY = 1024
# its bfloat16 kernel (sum_k1_bf16_fp32: VDPBF16PS with AVX512-BF16, shifts and masks with AVX-512 alike) reads 32
# elements a vector into the same 16 lanes, lane i adding element 2i + 1 and then 2i (the vector's odd element of
# each pair first; subnormals read as 0), and joins level 2 every 2048 elements
PAIRED = 2
# with fewer than SPLIT_BELOW rows, YNNPACK splits a row of more than SLAB elements into runs of SLAB, each summed on
# its own, and sums the runs' results as a row (measured on a 2-core x86-64 machine: with more rows it runs rows
# in parallel instead); a reduction over a non-contiguous axis takes SLAB elements at a time too (lowp_xla_partner)
SLAB = 32768
SPLIT_BELOW = 4
# XLA splits a fused kernel into tasks, one per thread of its pool at most (ParallelTaskAssignment's cost model,
# xla/service/cpu/parallel_task_assignment.cc): a kernel with more flops than bytes costs flops + 10 × bytes, a task
# per 100,000 of it; one with no more flops than bytes a task per 256 KiB it reads and writes. The threads are the
# cores: the 2 of the machine the golden files record (another machine may split a kernel otherwise)
XLA_THREADS = 2


def _f(bits: int) -> F32:
    return np.uint32(bits).view(F32)


def ftz(a: Any) -> Array:
    """Subnormal results flushed to zero (keeping the sign), as XLA's CPU computations run (FTZ and DAZ)."""
    out: Array = np.array(a, dtype=F32)
    small = np.abs(out) < TINY
    if small.any():  # (rare: only those elements, each a zero of its sign)
        out[small] = np.copysign(F32(0), out[small])
    return out


Rounder = Callable[[Any], Array]


def mul(a: Any, b: Any, r: Rounder = ftz) -> Array:
    """a·b as XLA's CPU code stores it: rounded once and flushed as the processor flushes it (lossgrad.flush),
    then r's (float32's flush, a half dtype's store, or float64's flush)."""
    out = np.multiply(a, b)
    return _normal(out) if r is ftz and _all_normal(out) else r(at_tiny(out, operator.mul, a, b))


def div(a: Any, b: Any, r: Rounder = ftz) -> Array:
    """a/b as XLA's CPU code stores it: rounded once and flushed as the processor flushes it (lossgrad.flush),
    then r's."""
    out = np.divide(a, b)
    return _normal(out) if r is ftz and _all_normal(out) else r(at_tiny(out, operator.truediv, a, b))


def _all_normal(out: Any) -> bool:
    """Whether a float32 result has nothing at or below the smallest normal number to flush or to redo (the common
    case: one pass, where the flush and its rule take several)."""
    return bool(getattr(out, "dtype", None) == F32 and not (np.abs(out) <= TINY).any())


def _normal(out: Any) -> Array:
    kept: Array = np.asarray(out)
    return kept


def _fma(a: Any, b: Any, c: Any) -> Array:
    """An FMA as XLA's code runs it: a result below the normal range flushed to zero (lossgrad.flush)."""
    return ftz(fma(a, b, c, flush=True))


EXP_POLY = tuple(_f(b) for b in (0x39506967, 0x3AB743CE, 0x3C088908, 0x3D2AA9C1, 0x3E2AAAAA, 0x3F000000))


def xla_exp(x: Array) -> Array:
    """XLA's e^x for float32: x clamped to [-87.8, 88.8], n = ⌊x·log₂e + ½⌋ (clamped to ±127), r = x − n·ln 2 in
    two FMAs, e^r by a degree-7 polynomial in FMAs, times 2^n built from n's bits (2^−127 is 0)."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        c = np.where(np.isnan(x), x, np.clip(x, F32(-87.8), F32(88.8)))
        n = np.clip(np.floor(fma(c, _f(0x3FB8AA3B), F32(0.5))), -127, 127)
        r = fma(-n, _f(0x3F318000), c)
        r = fma(-n, _f(0xB95E8083), r)
        p = np.full_like(r, EXP_POLY[0])
        for k in EXP_POLY[1:]:
            p = fma(p, r, k)
        y = fma(p, r * r, r) + F32(1)
        scale = ((np.nan_to_num(n).astype(np.int32) + 127) << 23).astype(np.uint32).view(F32)
        return mul(y, scale)


LOG_POLY = tuple(_f(b) for b in (0x3D9021BB, 0xBDEBD1B8, 0x3DEF251A, 0xBDFE5D4F, 0x3E11E9BF, 0xBE2AAE50,
                                 0x3E4CCEAC, 0xBE7FFFFC, 0x3EAAAAAA))


def xla_log(v: Array) -> Array:
    """XLA's log x for float32 (Cephes' logf): x = m·2^e, m in [√½, √2), log m by a polynomial in three FMA
    chains joined through x³, e·ln 2 added in two parts; 0 (and subnormals) give −∞, negatives NaN."""
    v = np.asarray(v, dtype=F32)
    with np.errstate(all="ignore"):
        bits = np.where(v > TINY, v, TINY).view(np.uint32)
        e = ((bits >> 23).astype(np.int32) - 127).astype(F32) + F32(1)
        m = ((bits & np.uint32(0x807FFFFF)) | np.uint32(0x3F000000)).view(F32)
        small = m < _f(0x3F3504F3)
        x = (m - F32(1)) + np.where(small, m, F32(0))
        e = e - np.where(small, F32(1), F32(0))
        x2 = x * x
        x3 = x2 * x
        a = LOG_POLY
        y = fma(fma(fma(fma(x, a[0], a[1]), x, a[2]), x3, fma(fma(x, a[3], a[4]), x, a[5])), x3,
                fma(fma(x, a[6], a[7]), x, a[8]))
        w = fma(y, x3, e * _f(0xB95E8083))
        out = fma(e, _f(0x3F318000), fma(F32(-0.5), x2, x) + w)
        out = np.where(v < TINY, F32(-np.inf), out)
        out = np.where(v == np.inf, F32(np.inf), out)
        out = np.where((v < 0) | np.isnan(v), F32(np.nan), out)
    return ftz(out)


def folded_exp(x: Array, half: Any = None) -> Array:
    """e^x as XLA folds it when it compiles a constant (its HLO evaluator): the value in float64 rounded once to
    the dtype, carried in float32, subnormals kept (measured on every float16 and bfloat16 below 11 and 100,000
    float32s, with and without elements that overflow; glibc's expf differs from it in about 0.1% of those
    float32s)."""
    with np.errstate(all="ignore"):
        out: Array = np.exp(np.asarray(x, dtype=np.float64)).astype(half or F32).astype(F32)
    return out


def folded_log(x: Array, half: Any = None) -> Array:
    """log x as XLA folds it when it compiles a constant array x: where every element is positive, the value in
    float64 rounded once to the dtype; where one is 0 or negative, glibc's logf of each element (a subnormal read
    as 0, −∞), rounded to the dtype (measured on every positive float16 and bfloat16 and 100,000 float32s, with
    and without a 0 or a negative element beside them: glibc's logf differs from the first in about 0.3% of those
    float32s, and float16's log of 0.00534 rounded through float32 an ulp)."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        if np.all(x > 0):
            out: Array = np.log(x.astype(np.float64)).astype(half or F32).astype(F32)
            return out
        return libm.logf(ftz(x).reshape(-1)).reshape(x.shape).astype(half or F32).astype(F32)


def own_op(x: Array, poly: Callable[[Array], Array], libm_fn: Callable[[Array], Array]) -> Array:
    """e^x or log x of a 1-D array as an operation XLA compiles on its own (op by op, or left unfused under jit) over
    N elements: XLA's polynomial (`poly`), except that below 16 elements LLVM splits the vector into one of 8 and
    the rest, and turns a rest of 3, 5, 6 or 7 elements, which it cannot widen, into calls of the C library's expf
    or logf (`libm_fn`), one per element. Measured element by element on jaxlib 0.10.2 for N = 1 to 20 (and from
    the kernels' object code up to 69); a 2-D array's kernel is a loop over its rows, all polynomial."""
    x = np.asarray(x, dtype=F32)
    out = poly(x)
    n = x.size
    rest = n % 8 if n >= 8 else n
    if x.ndim == 1 and n < 16 and rest in (3, 5, 6, 7):
        out[n - rest:] = ftz(libm_fn(x[n - rest:]))
    return out


LOG1P_DEN = tuple(_f(b) for b in (0x417101AD, 0x42A6185B, 0x435DC32D, 0x439A8CA3, 0x43586D8A, 0x42707982))
LOG1P_NUM = tuple(_f(b) for b in (0x3EFF40C5, 0x40D284FA, 0x41EF4B9C, 0x4273CC76, 0x426473AD, 0x41A05101))


def xla_log1p(x: Array) -> Array:
    """XLA's log(1 + x) for float32: for |x| < √2 − 1, x − x²/2 + x³·P(x)/Q(x) (degree-6 polynomials in FMAs),
    else log(1 + x) as xla_log gives it."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        den = np.ones_like(x)
        for k in LOG1P_DEN:
            den = fma(den, x, k)
        num = np.full_like(x, F32(4.527e-05))
        for k in LOG1P_NUM:
            num = fma(num, x, k)
        x2 = mul(x, x)
        near = x + fma(F32(-0.5), x2, mul(mul(x, x2), div(num, den)))
        out = np.where(np.abs(x) < _f(0x3ED413CD), near, xla_log(x + F32(1)))
    return ftz(out)


def _in_order(x: Array, r: Callable[[Any], Array] = ftz) -> Array:
    """Each row's sum along the last axis, left to right (each addition stored by `r`)."""
    acc: Array = x[..., 0].copy()
    for i in range(1, x.shape[-1]):
        acc = r(acc + x[..., i])
    return acc


def _window_sums(x: Array, r: Callable[[Any], Array] = ftz) -> Array:
    """The rows split into XLA's windows of 32 (the padding split between the ends, the smaller half first), each
    window summed in order (each addition stored by `r`): one column per window."""
    n = x.shape[1]
    pad = -n % 32
    padded = np.zeros((x.shape[0], n + pad), dtype=F32)
    padded[:, pad // 2:pad // 2 + n] = x
    return _in_order(padded.reshape(x.shape[0], -1, 32), r)  # (every window at once)


def _windows(x: Array) -> Array:
    """XLA's loop: a row of more than 32 in windows of 32, each summed in order, then their sums the same way."""
    return _in_order(x) if x.shape[1] <= 32 else _windows(_window_sums(x))


def _rows_in_dtype(x: Array, r: Callable[[Any], Array]) -> Array:
    """A row sum that jax.grad's backward pass forms (the transpose of a broadcast): reduce_sum in the dtype itself,
    every addition rounded to it, in XLA's windows of 32 (_windows' order, whatever the size: no YNNPACK here),
    from +0 (a row of −0s sums to +0; XLA drops a reduce over one element, where −0 stays −0)."""
    if x.shape[1] == 1:
        return x[:, 0].copy()
    return (_in_order(x, r) if x.shape[1] <= 32 else _rows_in_dtype(_window_sums(x, r), r)) + F32(0)


def folded_sum(x: Array, store: Callable[[Any], Array] | None = None) -> Array:
    """A row sum of constants as XLA folds it at compile time with its HLO evaluator (no flushing of subnormals): a
    row of more than 32 is split once into XLA's windows of 32 (the padding split between the ends), each window
    added in order with every addition stored in the half dtype (`store`; None: float32); then the row (or its
    windows' sums) in float64, rounded once. In float32 a batch of 4096 elements or more is folded whole (XLA leaves
    that reduce to YNNPACK and does not split it). (XLA's tree rewriter splits a reduce once before the folding runs:
    a row of more than 1024 leaves more than 32 windows' sums to one reduce.)"""
    rows, n = x.shape
    stored = (lambda a: np.asarray(a, dtype=F32)) if store is None else store
    if n > 32 and not (store is None and rows * n >= YNN_FROM):
        x = _window_sums(x, stored)
    return stored(x.astype(np.float64).sum(axis=1).astype(F32))


def folded_sum_stored(x: Array, r: Callable[[Any], Array]) -> Array:
    """A row sum of bfloat16 constants as XLA folds it: its reducer stores each addition in bfloat16 (no float64 fast
    path), so the windows of 32 (as folded_sum splits them) and then their sums are each added in order from +0."""
    return _in_order(_window_sums(x, r) if x.shape[1] > 32 else x, r) + F32(0)


def _kahan(a: Array, acc: Array, error: Array, flush: Rounder = ftz) -> tuple[Array, Array]:
    """acc + a by Kahan's compensated addition, as YNNPACK's kahan_sum: y = a − error, t = acc + y, the new error
    (t − acc) − y (0 where it is not finite); returns t and the error. `flush`: the dtype's (float32's ftz)."""
    y = flush(a - error)
    t = flush(acc + y)
    e = flush(flush(t - acc) - y)
    return t, np.where(np.isfinite(e), e, 0).astype(e.dtype)


class _Tree:
    """YNNPACK's three levels of accumulators, each of `shape` (a row's 16 lanes, or the columns of a reduction
    over a non-contiguous axis), fed groups of up to 4 vectors."""

    def __init__(self, shape: tuple[int, ...], dtype: Any = F32, flush: Rounder = ftz) -> None:
        zero = np.zeros(shape, dtype=dtype)
        self.levels = [zero, zero, zero]
        self.error = zero
        self.r = flush  # (float32's ftz; float64's: lowp_xla64's)

    def add(self, vectors: Array) -> None:
        """A group of vectors [rows, k ≤ 4, ...], added in order from 0, onto level 0."""
        local = np.zeros_like(self.levels[0])
        for k in range(vectors.shape[1]):
            local = self.r(local + vectors[:, k])
        self.levels[0] = self.r(self.levels[0] + local)

    def flush(self, kahan: bool) -> None:
        """Level 0 onto level 1; `kahan`: level 1 onto level 2, compensated."""
        zero = np.zeros_like(self.levels[0])
        self.levels[1], self.levels[0] = self.r(self.levels[1] + self.levels[0]), zero
        if kahan:
            self.levels[2], self.error = _kahan(self.levels[1], self.levels[2], self.error, self.r)
            self.levels[1] = zero


def _row_lanes(x: Array, bf16: bool = False) -> Array:
    """One run of YNNPACK's sum_float_k1 over each row: the 16 lanes (element i in lane i mod 16) of level 2;
    `bf16`: its bfloat16 kernel, each vector of 32 elements fed as its odd elements and then its even ones (PAIRED)."""
    rows, n = x.shape
    per = PAIRED if bf16 else 1  # (elements a lane takes from each vector)
    width = LANES * per
    vectors = np.zeros((rows, -(-n // width) * width), dtype=F32)
    vectors[:, :n] = ftz(x) if bf16 else x
    if bf16:  # (the halves as vectors of 16 of their own: odd elements, then even, in the order the lanes add them)
        vectors = vectors.reshape(rows, -1, LANES, PAIRED)[..., ::-1].transpose(0, 1, 3, 2)
    vectors = vectors.reshape(rows, -1, LANES)
    tree, done = _Tree((rows, LANES)), 0
    group = 4 * per  # (vectors of 16 to a group of 4 of the kernel's)
    while n - done >= 4 * group * LANES:  # four groups, then level 0 joins level 1
        for g in range(4):
            tree.add(vectors[:, done // LANES + group * g:done // LANES + group * (g + 1)])
        done += 4 * group * LANES
        tree.flush(done % (KAHAN_EVERY * per) == 0)
    while n - done >= group * LANES:  # then a group at a time
        tree.add(vectors[:, done // LANES:done // LANES + group])
        done += group * LANES
        tree.flush(done % (KAHAN_EVERY * per) == 0)
    if done < n:  # the rest: a group of fewer vectors, the last maybe part-filled
        tree.add(vectors[:, done // LANES:])
    tree.flush(True)
    return tree.levels[2]


def _lanes(x: Array, bf16: bool = False) -> Array:
    """YNNPACK's row sum: _row_lanes, then the lanes halved pairwise (8, 4, 2, 1)."""
    acc = _row_lanes(x, bf16)
    step = LANES // 2
    while step:
        acc = ftz(acc[:, :step] + acc[:, step:2 * step])
        step //= 2
    out: Array = acc[:, 0]
    return out


def _ynn_sum(x: Array, split: bool = False, bf16: bool = False) -> Array:
    """jnp.sum of each row by YNNPACK: one run per row, or, in a batch of fewer than SPLIT_BELOW rows (`split`: in
    any batch), runs of SLAB elements whose sums are then summed as a row (float32s: the runs' sums are)."""
    rows, n = x.shape
    if (rows >= SPLIT_BELOW and not split) or n <= SLAB:
        return _lanes(x, bf16)
    runs = np.stack([_lanes(x[:, lo:lo + SLAB], bf16) for lo in range(0, n, SLAB)], axis=1)
    return _lanes(runs)


def product_sum(a: Array, b: Array) -> Array:
    """Σ a·b along each row where XLA hands the products and their sum to YNNPACK (4096 elements or more): a
    single row is its dot (dot_row); rows of more than SLAB are split into runs of SLAB in a batch of any size
    (a product of two factors, measured for cosine; a plain sum splits them in fewer than SPLIT_BELOW rows only)."""
    if a.shape[0] == 1:
        return np.array([dot_row(a, b)], dtype=F32)
    return _ynn_sum(mul(a, b), split=True) + F32(0)


def xla_sum(x: Array, bf16: bool = False) -> Array:
    """jnp.sum over the last axis of a contiguous float32 array, as XLA's CPU backend adds it up; `bf16`: the sum
    reads the values stored in bfloat16 (jnp.sum of a bfloat16 array), which YNNPACK adds in pairs (PAIRED)."""
    rows, n = x.shape
    if n == 1:  # (XLA drops a reduce over one element: −0 stays −0)
        return x[:, 0].copy()
    if rows * n < YNN_FROM:
        return _windows(x) + F32(0) if n else np.zeros(rows, dtype=F32)  # (+ 0: the sum starts from +0)
    return _ynn_sum(x, bf16=bf16) + F32(0)


def row_lanes(n: int, k: int) -> int:
    """How many lanes LLVM's loop vectorizer splits the rows of an [n, k] block (n, k ≤ 32) of XLA's reduce loop
    into (0: none, the loop runs in order), as its cost model picks them: measured for every n and k up to 32
    (scripts/golden_lowp_xla_sum2d.py --lanes). Only 2, 4, 8 or 16 and more rows are split; with AVX-512 only rows
    of 2 to 8, with AVX2 rows of any length but 1 (avx2_lanes)."""
    if cpu.selected() == "avx2":
        return avx2_lanes(n, k)
    if not 2 <= k <= 8 or not (n in (2, 4, 8) or n >= 16):
        return 0
    if n in (2, 4):
        return n
    if k >= 7:
        return 4
    if k == 2:
        return 4 if 20 <= n <= 23 else 8
    return 4 if n % 8 >= 4 else 8


def avx2_lanes(n: int, k: int) -> int:
    """row_lanes (and fused_lanes) with AVX2, measured for every n and k up to 32 on an AMD EPYC with jax 0.10.2:
    2 and 4 rows in as many lanes, 8 and from 16 in 8, but 4 where n mod 8 is 4 or more, save rows of 8."""
    if k == 1 or not (n in (2, 4, 8) or n >= 16):
        return 0
    if n in (2, 4):
        return n
    return 4 if n % 8 >= 4 and k != 8 else 8


def avx2_stored_rows(rows: int, n: int, four_below: dict[int, int]) -> int:
    """How many leading rows of a fused row loop LLVM's loop vectorizer takes with AVX2 with their products stored
    and added in order: rows of the lengths `four_below` holds (whose lanes load whole rows, interleaved), as
    _vector_rows takes them (a batch of 4 or 8; from 16 rows 8 at a time, or 4 where 4 to 7 rows are over the
    groups of 8 and there are fewer groups than `four_below` says), but 4 rows of 8 (a vector per column,
    contracted as the scalar loop contracts them)."""
    return 0 if (rows, n) == (4, 8) else _vector_rows(rows, n, four_below)


def _from(start: F32, x: Array) -> F32:
    """start + x₀ + x₁ + … left to right in float32, each sum flushed to zero when subnormal."""
    partial = np.add.accumulate(np.concatenate([[start], x.reshape(-1)]).astype(F32), dtype=F32)
    if np.any((partial != 0) & (np.abs(partial) < TINY)):  # (rare: take the flushes step by step)
        acc = F32(start)
        for v in x.reshape(-1):
            acc = F32(ftz(acc + v))
        return acc
    return F32(partial[-1])


def _block(x: Array) -> F32:
    """XLA's sum of an [n, k] block (n, k ≤ 32): w lanes (row_lanes) each add their rows (row i in lane i mod w),
    lane 0 starting from the reduction's +0 and the others from −0; the lanes halved; then the last n mod w rows
    in order. No lanes: the whole block in order from +0."""
    n, k = x.shape
    w = row_lanes(n, k)
    if not w:
        return _from(F32(0), x)
    lanes = np.full(w, F32(-0.0), dtype=F32)
    lanes[0] = F32(0)
    whole = n // w * w
    for i in range(0, whole, w):
        for c in range(k):
            lanes = ftz(lanes + x[i:i + w, c])
    return _from(F32(halve(lanes)), x[whole:])


def _window(win: Array, inside: Array, pad: tuple[int, int]) -> F32:
    """One window of 32 of XLA's reduce-window: a block when no window is padded; where the padding is a single
    row (or column) LLVM splits the loop at the 32nd, which it checks apart: 31 rows as a block, then the 32nd
    (31 columns of every row, then each row's 32nd); elsewhere the window's elements in order."""
    if pad == (0, 0):
        return _block(win)
    if pad == (1, 0):
        return _from(_block(win[:31]), win[31:][inside[31:]])
    if pad[1] == 1:
        return _from(_from(F32(0), win[:, :31][inside[:, :31]]), win[:, 31:][inside[:, 31:]])
    return _from(F32(0), win[inside])


def _wide_runs(x: Array, bf16: bool = False) -> F32:
    """jnp.sum of a whole [R, K] array, K > SLAB, as YNNPACK adds it in fewer than SPLIT_BELOW rows: each row in runs
    of SLAB, each run summed as a row (_lanes), all the runs' sums, row after row, then summed as one row (its tiles
    of SLAB elements, ynnpack/subgraph/slinky.cc's make_split_factors, reduced in part and then whole; measured on
    120 arrays of 2 or 3 rows of 32,769 to 200,000 columns, a third of them bfloat16s). From SPLIT_BELOW rows the
    order depends on the size: whole rows' sums summed as a row fit 4 to 17 rows of 40,000, not 4 of 60 larger
    arrays, nor all from 18 rows."""
    rows, n = x.shape
    runs = np.array([[_lanes(x[i:i + 1, lo:lo + SLAB], bf16)[0] for i in range(rows) for lo in range(0, n, SLAB)]],
                    dtype=F32)
    return F32(_lanes(runs)[0] + F32(0))


def _slab_rows(x: Array, bf16: bool = False) -> F32:
    """jnp.sum of a whole [R, K] array of 4096 elements or more, K ≤ SLAB, as YNNPACK adds it: runs of SLAB // K
    whole rows, each summed as one contiguous row (_lanes; `bf16`, in its pairs), the runs' sums then summed as a
    row."""
    rows, n = x.shape
    step = SLAB // n
    runs = np.array([[_lanes(x[lo:lo + step].reshape(1, -1), bf16)[0] for lo in range(0, rows, step)]], dtype=F32)
    return F32((runs[:, 0] if runs.shape[1] == 1 else _lanes(runs))[0] + F32(0))


def xla_sum2d(x: Array, bf16: bool = False) -> F32:
    """jnp.sum of a whole [N, K] float32 array of fewer than 4096 elements as XLA's CPU backend adds it. XLA
    splits an axis of more than 32 into windows of 32 (the padding split, the smaller half first) and sums the
    windows' sums the same way; each window, or the whole array where both axes are 32 or less, is a loop whose
    additions XLA marks reassociable, and LLVM's loop vectorizer splits its rows into lanes (_block, _window).
    From 4096 elements YNNPACK's (`bf16`: it reads bfloat16s, xla_sum's); rows of more than SLAB in fewer than
    SPLIT_BELOW rows in runs (_wide_runs)."""
    rows, n = x.shape
    if rows * n >= YNN_FROM:
        if rows == 1 or n == 1:
            return F32(xla_sum(x.reshape(1, -1), bf16)[0])
        if n > SLAB:
            if not wide_known(rows, n):
                raise _not_reproduced(f"sum of a {rows}×{n} array (from {SPLIT_BELOW} rows of more than {SLAB}, "
                                      "YNNPACK's order depends on the size and is not pinned down)")
            return _wide_runs(x, bf16)
        return _slab_rows(x, bf16)
    if rows <= 32 and n <= 32:
        return _block(x)
    return xla_sum2d(window_sums2d(x, _window))


def window_sums2d(x: Array, window: Callable[[Array, Array, tuple[int, int]], Any]) -> Array:
    """XLA's reduce-window of a whole 2-D array: an axis of more than 32 split into windows of 32 (the padding split
    between the ends, the smaller half first), each window summed by `window`(its elements, which are inside the
    array, the padding): the windows' sums in x's dtype, as an array of their own."""
    rows, n = x.shape
    pad = (-rows % 32 if rows > 32 else 0, -n % 32 if n > 32 else 0)
    size = (32 if rows > 32 else rows, 32 if n > 32 else n)
    padded = np.zeros((rows + pad[0], n + pad[1]), dtype=x.dtype)
    inside = np.zeros(padded.shape, dtype=bool)
    at = (slice(pad[0] // 2, pad[0] // 2 + rows), slice(pad[1] // 2, pad[1] // 2 + n))
    padded[at], inside[at] = x, True
    return np.array([[window(padded[a:a + size[0], b:b + size[1]], inside[a:a + size[0], b:b + size[1]], pad)
                      for b in range(0, padded.shape[1], size[1])] for a in range(0, padded.shape[0], size[0])],
                    dtype=x.dtype)


def fused_squares_sum(d: Array) -> F32:
    """The sum of d² that jit fuses into a loop of at most 32 × 32: in order, each square contracted into the
    running sum as a multiply-add."""
    acc = np.zeros(1, dtype=F32)
    for v in d.reshape(-1, 1):
        acc = _fma(v, v, acc)
    return F32(acc[0] + F32(0))


def fused_lanes(n: int, k: int) -> int:
    """How many lanes LLVM splits the rows of squared_error's fused sum over [n, k] (n, k ≤ 32) into under jit
    (0: none), measured as row_lanes: every row length but 1, for 2, 4, 8 or 16 and more rows. There the squares and
    their sum are vector multiplies and adds that the code generator contracts in an order not pinned down, so
    float32 takes lossgrad's own sum (rounding to float16 or bfloat16 hid the order in every batch measured)."""
    if cpu.selected() == "avx2":
        return avx2_lanes(n, k)
    if k == 1 or not (n in (2, 4, 8) or n >= 16):
        return 0
    return n if n in (2, 4) else 4 if k <= 8 and (20 <= n <= 23 or (28 <= n <= 31 and k >= 3)) else 8


def fused_mse_value(d: Array, r: Callable[[Any], Array]) -> Callable[[float], float] | None:
    """jnp.mean (or jnp.sum, n = 1) of squared_error over [N, K] under jit, where it is reproduced."""
    rows, n = d.shape
    if rows == 1 and n <= 32:
        why = "squared_error's sum over a single row of up to 32 under jit (fused, in an order not pinned down)"
        if r is ftz:
            return None
        raise _not_reproduced(why)
    fused = rows <= 32 and n <= 32  # (larger arrays: the squares stored, then XLA's windows)
    if not sums_2d(d) or (fused and r is ftz and fused_lanes(rows, n)):
        return None if r is ftz else mean_value(d, r, True)  # (the refusal with its reason)
    total = fused_squares_sum(d) if fused else xla_sum2d(mul(d, d))
    return lambda m: float(r(total) if m == 1 else mul(total, F32(1) / F32(m), r))


Grad = Callable[[float], Array]


def halve(lanes: Array, r: Rounder = ftz) -> Array:
    """The lanes of the last axis (a power of two) added pairwise, as x86 reduces a vector: the upper half to the
    lower, each sum rounded by r (float32's by default), until one is left."""
    while lanes.shape[-1] > 1:
        h = lanes.shape[-1] // 2
        lanes = r(lanes[..., :h] + lanes[..., h:])
    return lanes[..., 0]


# LLVM's vectorized sums: (lanes, the blocks' order, the epilogue's lanes); (lanes, each accumulator's blocks in
# order, the epilogue's lanes)
LanePlan = tuple[int, tuple[int, ...], int]
AccumulatorPlan = tuple[int, tuple[tuple[int, ...], ...], int]


# the lanes and order of XLA's fused row sums that LLVM vectorizes along rows of 16 to 32 (triplet's powers,
# lowp_xla_pow.along_row_sum; kl's and probability rows' products in bfloat16, ALONG_ROW_CLASSES), from this many
# features (the epilogue's vectors repeated as many times as they fit: 22 and 23 features take three of 2 lanes)
ROW_PLANS: dict[int, LanePlan] = {16: (8, (0, 1), 0), 18: (8, (0, 1), 2), 20: (4, (0, 1, 2, 3), 4),
                                  22: (4, (0, 1, 2, 3), 2), 24: (8, (0, 1, 2), 0), 25: (8, (0, 1, 2), 0),
                                  28: (4, (0, 2, 4, 3, 1, 5), 0), 32: (8, (0, 1, 2, 3), 0)}


def vector_fma_sum(x: Array, y: Array, plan: LanePlan) -> Array:
    """Σₖ xₖ·yₖ over the last axis as LLVM's vectorized loop adds it, each product contracted: blocks of `lanes`
    elements multiply-added lane by lane in the plan's order (the first block's products rounded, its first lane plus
    +0), the lanes halved, then the epilogue loop's vectors of `epilogue` lanes as many as fit (the first one's first
    lane starting from the sum so far, each further one multiply-added lane by lane), halved, then the rest chained
    on in order."""
    lanes, order, epilogue = plan

    def block(i: int) -> tuple[Array, Array]:
        return x[..., i * lanes:(i + 1) * lanes], y[..., i * lanes:(i + 1) * lanes]
    acc = mul(block(order[0])[0], block(order[0])[1])
    acc[..., 0] = ftz(acc[..., 0] + F32(0))
    for i in order[1:]:
        acc = _fma(*block(i), acc)
    total, done = halve(acc), len(order) * lanes
    if epilogue and done + epilogue <= x.shape[-1]:
        last = mul(x[..., done:done + epilogue], y[..., done:done + epilogue])
        last[..., 0] = _fma(x[..., done], y[..., done], total)
        done += epilogue
        while done + epilogue <= x.shape[-1]:
            last = _fma(x[..., done:done + epilogue], y[..., done:done + epilogue], last)
            done += epilogue
        total = halve(last)
    for k in range(done, x.shape[-1]):
        total = _fma(x[..., k], y[..., k], total)
    return total


def vector_add_sum(rows: Array, plan: AccumulatorPlan, r: Rounder) -> Array:
    """Σ over the last axis of stored terms as LLVM's vectorized loop adds them, each sum rounded by r: blocks of
    `lanes` that each accumulator adds in order (the first block's first lane plus +0), the accumulators added, the
    last first, the lanes halved, the epilogue loop's vectors as vector_fma_sum's, then the rest in order."""
    lanes, accumulators, epilogue = plan

    def block(i: int) -> Array:
        return rows[..., i * lanes:(i + 1) * lanes]
    first = block(0).copy()
    first[..., 0] = r(first[..., 0] + F32(0))
    sums = []
    for blocks in accumulators:
        acc = first if blocks[0] == 0 else block(blocks[0])
        for i in blocks[1:]:
            acc = r(acc + block(i))
        sums.append(acc)
    acc = sums[-1]
    for other in reversed(sums[:-1]):
        acc = r(acc + other)
    total, done = halve(acc, r), lanes * sum(map(len, accumulators))
    if epilogue and done + epilogue <= rows.shape[-1]:
        last = rows[..., done:done + epilogue].copy()
        last[..., 0] = r(total + last[..., 0])
        done += epilogue
        while done + epilogue <= rows.shape[-1]:
            last = r(last + rows[..., done:done + epilogue])
            done += epilogue
        total = halve(last, r)
    for k in range(done, rows.shape[-1]):
        total = r(total + rows[..., k])
    return total


def paired(half: Any) -> bool:
    """Whether a sum of values stored in this dtype reads bfloat16s (xla_sum's `bf16`)."""
    return half is not None and half is not np.float16


class Stored:
    """A result as XLA stores it in a half dtype: subnormals flushed, rounded to the dtype (carried in float32)."""

    def __init__(self, half: Any) -> None:
        self.half = half

    def __call__(self, a: Any) -> Array:
        out: Array = ftz(a).astype(self.half).astype(F32)
        return out


def rounder(half: Any) -> Rounder:
    """A result as XLA stores it: subnormals flushed (float32), or Stored in the half dtype."""
    return ftz if half is None else Stored(half)


def reads_bf16(k: Rounder) -> bool:
    """Whether values kept as `k` keeps them are bfloat16s in memory (a sum of them: xla_sum's `bf16`)."""
    return isinstance(k, Stored) and paired(k.half)


def upstream(n: float) -> F32:
    """The gradient of jnp.mean over n (1/n in float32, as JAX divides 1 by n) or of jnp.sum (1)."""
    return F32(1) if n == 1 else F32(1) / F32(n)


def cotangent(n: float, w: Array | None, r: Rounder) -> Array:
    """What jax.grad of jnp.mean(loss · w) over n (jnp.sum: n = 1) sends back to each loss: c = 1/n stored in the
    dtype, times the loss's weight w (None: unweighted, c), stored."""
    c = r(upstream(n))
    return c if w is None else mul(c, w, r)


def weighed(raw: Array, w: Array | None, r: Rounder, k: Rounder) -> tuple[Array, Array]:
    """The losses as stored (`r`) and as the mean reads them (kept as `k` keeps them), each times its weight w: loss · w
    (None: unweighted). The loss is stored in the dtype before the product either way: under jit in bfloat16 XLA
    keeps the product (exact in float32) on its way into the mean and stores it for the losses (measured)."""
    if w is None:
        return r(raw), k(raw)
    return mul(r(raw), w, r), mul(r(raw), w, k)


def held_weights(weights: Array | None, half: Any, columns: bool) -> Array | None:
    """The sample weights as JAX holds them: in the dtype (float32, or the half dtype carried in float32), read with
    subnormals as 0; `columns`: one column, broadcast over a sample's outputs (w[:, None])."""
    if weights is None:
        return None
    with np.errstate(over="ignore"):  # (a weight beyond the dtype's range is infinite there, as JAX holds it)
        w = ftz(np.asarray(weights, dtype=np.float64).astype(half or F32).astype(F32))
    return w[:, None] if columns else w


def _max_shift(z: Array, finite: bool, r: Rounder) -> tuple[Array, Array]:
    """The row maxima and z less them (logsumexp takes a non-finite maximum as 0; log_softmax does not)."""
    top = z.max(axis=1)
    if finite:
        top = np.where(np.isfinite(top), top, F32(0))
    return top, r(z - top[:, None])


def ce_index(z: Array, labels: Array, r: Rounder, k: Rounder, jit: bool,
             w: Array | None = None) -> tuple[Array, Array, Grad, Array]:
    """softmax_cross_entropy_with_integer_labels: logsumexp(z) − z at the label, logsumexp = log Σe^(z − max) +
    max (the sum in float32 whatever the dtype, as jnp.sum upcasts); jax.grad: (c/Σ)·e^(z − max) everywhere, −c
    added at the label (c = 1/n), and softmax. `r` rounds a stored result, `k` one XLA keeps in float32 (under
    jit in bfloat16: e^(z − max) on its way into the sum, and the losses on theirs into the mean). Op by op the
    log of the row sums is an operation of its own (own_op). Returns the losses, the terms the mean adds, the
    gradient and softmax. `w`: the samples' weights, each loss times its own (weighed)."""
    top, shifted = _max_shift(z, True, r)
    exp = xla_exp(shifted)
    e, total = r(exp), r(xla_sum(k(exp)))
    rows = np.arange(z.shape[0])
    log = xla_log(np.abs(total)) if jit else own_op(np.abs(total), xla_log, libm.logf)
    raw = ftz(r(r(log) + top) - z[rows, labels])

    def grad(n: float) -> Array:
        c = cotangent(n, w, r)
        g = mul(div(c, np.abs(total), r)[:, None], e, r)
        g[rows, labels] = r(g[rows, labels] - c)
        return g
    return (*weighed(raw, w, r, k), grad, div(e, total[:, None], r))


def xla_tasks(flops: int, bytes_: int, threads: int = XLA_THREADS) -> int:
    """The tasks among which XLA splits a fused kernel of these flops and bytes read and written, on a machine of
    this many threads. The outermost dimension of the kernel's shape with at least that many indexes is split
    evenly, the last task taking the rest (ShapePartitionAssigner); where the parts differ in size, each task's
    loop is guarded and LLVM leaves it scalar."""
    if flops <= bytes_:
        return min(threads, math.ceil(math.sqrt(threads)), max(1, bytes_ // (256 << 10)))
    return min(threads, max(1, (flops + 10 * bytes_) // 100_000))


def _vector_rows(rows: int, n: int, four_below: dict[int, int]) -> int:
    """How many leading rows (of 2 to 8 features) LLVM's loop vectorizer takes 4 or 8 at a time; the rest run the
    scalar loop. Below 16 rows only a batch of 4 or 8 is vectorized (no scalar rest for so short a loop)."""
    if n not in four_below:
        return 0
    if rows < 16:
        return rows if rows in (4, 8) else 0
    groups, over = divmod(rows, 8)
    return rows // 4 * 4 if over >= 4 and groups < four_below[n] else groups * 8


# rows of 3 classes in float32: the gradient's loop takes the rows as _vector_rows does, a batch with 4 to 7 rows
# over its groups of 8 4 at a time below this many groups (measured); the vector lanes form the last class's d·e + v
# from the stored product, the scalar loop as one FMA (with AVX2 every row as one FMA: measured up to 88 rows, op by
# op and under jit)
THREE_CLASS_ROWS = {3: 9}


# a reduced value from arrays of rows, one per sample, and the function that forms it from them (over a slice, or
# over a batch's slices joined: losses.base.joined)
Spec = tuple[dict[str, Array], Callable[[dict[str, Array], float], float]]


def ce_rows(y: Array, z: Array, r: Rounder, half: Any, jit: bool, weights: Array | None = None,
            traced: bool = False) -> tuple[Array, Grad, Array, Spec | None]:
    """softmax_cross_entropy: −Σ y·log_softmax(z), the products added in float32 whatever the dtype. log_softmax:
    s − log Σe^s, s = z − max, the sum in float32 of e^s (float16 stores e^s first; bfloat16 sums XLA's float32
    exponentials), the sum and its log each stored. jax.grad through log_softmax's backward: v + (Σ−v / Σe^s)·e^s,
    v = −c·y; in float32 the product and sum fused into one FMA (but for the last of 3 classes). In a half dtype
    each product and sum is stored, and Σ−v is a reduce_sum in the dtype itself: op by op at run time; under jit
    (the targets closed over as constants) XLA folds v and Σ−v at compile time (float16: folded_sum; bfloat16's
    additions each stored in bfloat16 still), and bfloat16 keeps the products y·log_softmax in float32 on their
    way into the sum. Under jit in float32 the log of the row sums is an operation of its own (own_op) and the
    products are fused into the row sums and the value (_fma_rows, _fma_value). From YNN_FROM rows YNNPACK takes
    over: under jit in bfloat16 its fusions (_ce_rows_ynn), op by op in float32 the gradient's product and sum
    (ynn_gradient_rows), op by op in bfloat16 z − max (ynn_shift_rows), and the row sums of bfloat16 products
    YNNPACK's pairs (xla_sum's `bf16`). `weights`: each row's cotangent (1/n)·w (the losses are weighed by the
    caller). `traced`: the targets computed inside the jitted function (one-hot rows of class indexes, smoothed),
    which XLA cannot fold: Σ−v is then summed at run time, as op by op."""
    f32_jit = jit and half is None  # (the log of the row sums an operation of its own, the products fused)
    fused = jit and half is not None and half is not np.float16
    if ynn_probability_rows(z.shape, fused):
        return _ce_rows_ynn(y, z, r)
    # (op by op in bfloat16 from YNN_FROM rows, log_softmax's jit hands z − max to YNNPACK, which keeps it in float32)
    _, shifted = _max_shift(z, False, ftz if ynn_shift_rows(z.shape, half, jit) else r)
    exp = xla_exp(shifted)
    e = r(exp)
    total = r(xla_sum(e if half is np.float16 else exp))
    # (bfloat16 under jit from 4096 elements: the loop that feeds YNNPACK's row sums keeps log_softmax in float32)
    keep = ftz if fused and y.size >= YNN_FROM else r
    logp = keep(shifted - r(own_op(total, xla_log, libm.logf) if f32_jit else xla_log(total))[:, None])
    if f32_jit:
        losses = -_fma_rows(logp, y, weights is not None)
    else:
        losses = -r(_products_rows(y, logp, r, fused, ALONG_ROW_CLASSES["ce"], paired(half)))

    # Σ−v as XLA forms it, by a row sum from +0: the sum of −v in bfloat16, and under jit over 1 or 2 rows; −Σv
    # elsewhere (measured on rows of −0s, the cotangent of a weight of 0: +0 and −0)
    fold = jit and not traced  # (XLA folds constant targets' v and Σ−v at compile time)
    negated_first = paired(half) or (fold and z.shape[0] < 3)

    def minus_sum(v: Array, summed: Callable[[Array], Array]) -> Array:
        return summed(-v) if negated_first else -summed(v)

    def grad(n: float) -> Array:
        c = cotangent(n, weights, r)
        v = mul(y, -(c if weights is None else c[:, None]), r)
        if half is None:
            d = div(minus_sum(v, lambda a: folded_sum(a) + F32(0) if fold else xla_sum(a)), total)[:, None]
            if ynn_gradient_rows(z.shape, jit):
                return ftz(mul(d, e) + v)
            g = _fma(d, e, v)
            if z.shape[1] == 3 and cpu.selected() != "avx2":  # (the rows LLVM vectorizes store the last class's
                w = _vector_rows(z.shape[0], 3, THREE_CLASS_ROWS)  # product first; with AVX2 they contract it too)
                g[:w, 2] = ftz(mul(d[:w, 0], e[:w, 2]) + v[:w, 2])
            return g
        if half is np.float16:
            s = minus_sum(v, lambda a: folded_sum(a, r) + F32(0) if fold else _rows_in_dtype(a, r))
        else:
            s = minus_sum(v, lambda a: folded_sum_stored(a, r) if fold else _rows_in_dtype(a, r))
        return r(v + mul(div(s, total, r)[:, None], e, r))
    return losses, grad, div(e, total[:, None], r), ({"a": logp, "b": y}, _fma_of) if f32_jit else None


def ynn_shift_rows(shape: tuple[int, ...], half: Any, jit: bool) -> bool:
    """Whether log_softmax, jitted on its own inside an op-by-op step in bfloat16, keeps z − max in float32: from
    YNN_FROM rows of two classes or more XLA hands the max and the difference to YNNPACK, which drops their rounding
    (the exponentials, their sum, its log and the rest are XLA's kernels and stored as before; measured: 4,096 to
    5,000 rows of 2 to 40 classes, 4,095 rows stored)."""
    rows, classes = shape
    return not jit and paired(half) and rows >= YNN_FROM and classes > 1


def ynn_probability_rows(shape: tuple[int, ...], fused: bool) -> bool:
    """Whether XLA hands probability rows' ce to YNNPACK's fusions over the rows (_ce_rows_ynn): under jit in
    bfloat16 (`fused`), from YNN_FROM rows of two classes or more (measured: 4,095 rows are XLA's loops)."""
    rows, classes = shape
    return fused and rows >= YNN_FROM and classes > 1


def ynn_gradient_rows(shape: tuple[int, ...], jit: bool) -> bool:
    """Whether float32 probability rows' gradient d·e^s + v is YNNPACK's product and sum rather than XLA's FMA: op
    by op, from YNN_FROM rows (measured: 4,096 to 5,000 rows of 2 to 10 classes; 4,095 rows the FMA)."""
    return not jit and shape[0] >= YNN_FROM


def _ce_rows_ynn(y: Array, z: Array, r: Rounder) -> tuple[Array, Grad, Array, Spec]:
    """ce_rows under jit in bfloat16 over YNN_FROM rows or more of two classes or more: XLA hands z − max, the row
    sums of e^s, their log and the products' row sums to YNNPACK's fusions, which drop bfloat16's roundings between
    their steps: s, Σe^s (XLA's float32 exponentials), log Σ (YNNPACK's own log) and the rows' sums all float32, the
    losses stored in bfloat16 and the mean summing the float32 rows. The gradient is ce_rows' with Σe^s unrounded."""
    shifted = ftz(z - z.max(axis=1)[:, None])
    exp = xla_exp(shifted)
    e = r(exp)
    total = xla_sum(exp)
    rows = xla_sum(mul(ftz(shifted - ynn_log(total)[:, None]), y))

    def grad(n: float) -> Array:
        v = mul(y, -r(upstream(n)), r)
        return r(v + mul(div(folded_sum_stored(-v, r), total, r)[:, None], e, r))

    def value(parts: dict[str, Array], n: float) -> float:
        total_ = xla_sum(parts["rows"].reshape(1, -1))[0]
        return float(r(-total_) if n == 1 else mul(-total_, F32(1) / F32(n), r))
    return r(-rows), grad, div(e, total[:, None], r), ({"rows": rows}, value)


def _fma_rows(a: Array, b: Array, chained: bool = False) -> Array:
    """Σ a·b along each row as XLA fuses it under jit in float32: up to 32 rows of up to 32, each product contracted
    into the running sum from +0 in order (whether or not LLVM vectorizes the rows); larger, the products stored
    and added as jnp.sum adds them; a single row of 4096 or more YNNPACK's dot (dot_row). `chained` (the losses
    weighed, fused with their weights): rows of up to 32 contracted in order beyond 32 rows too, below 4096
    elements (measured)."""
    rows, n = a.shape
    if rows == 1 and n >= YNN_FROM:
        return product_sum(a, b)
    if (rows > 32 or n > 32) and not (chained and n <= 32 and rows * n < YNN_FROM):
        return xla_sum(mul(a, b))
    acc = np.zeros(rows, dtype=F32)
    for i in range(n):
        acc = _fma(a[:, i], b[:, i], acc)
    return acc


def _fma_of(parts: dict[str, Array], n: float) -> float:
    """_fma_value of the parts a and b (refused where it is not reproduced)."""
    value = _fma_value(parts["a"], parts["b"])
    if value is None:
        raise _not_reproduced("sum of the products y·log_softmax over rows of more than 16,384 in 18 or more")
    return value(n)


def _fma_value(a: Array, b: Array, traced: bool = False) -> Callable[[float], float] | None:
    """jnp.mean (n; jnp.sum: 1) of −Σ a·b over the whole array as XLA fuses it under jit in float32: up to 32 × 32
    one loop (lane_products over ce_value_lanes' lanes), negated and times 1/n; larger, the products stored and
    added as jnp.sum adds an array (from 4096 elements YNNPACK's slices of whole rows; None, lossgrad's own sum,
    for rows of more than SLAB there in SPLIT_BELOW rows or more: xla_sum2d). `traced` (b computed in the loop,
    ce_rows'): LLVM's lanes over up to 32 × 32 are not pinned down (None)."""
    rows, n = a.shape
    if traced and rows > 1 and rows <= 32 and n <= 32:
        return None
    if rows == 1:
        return lambda m: float(_fma_rows(a, b)[0] * -1)
    if rows > 32 or n > 32:
        if rows * n >= YNN_FROM and not wide_known(rows, n):
            return None
        acc = xla_sum2d(mul(a, b))
    else:
        acc = lane_products(a, b, ce_value_lanes(rows, n), True)
    return lambda m: float(ftz(-acc) if m == 1 else mul(-acc, F32(1) / F32(m)))


def ce_value_lanes(rows: int, n: int) -> int:
    """How many lanes LLVM's loop vectorizer splits the rows of softmax_cross_entropy's fused value loop into (0:
    none): for 2 to 8 classes as row_lanes (but not 2 rows), 4 rows of up to 12 classes, 8 rows of up to 27 and
    16 to 32 rows of up to 25 (8 lanes). Measured against JAX for every shape of 4, 8 and 16 to 32 rows of 2 to 27
    classes (and read from the kernels' LLVM IR up to 32 × 32). With AVX2, avx2_lanes' for any length (read from
    the LLVM IR up to 32 × 32, and measured against JAX: each product contracted, as with AVX-512)."""
    if rows == 2 or n < 2:
        return 0
    if cpu.selected() == "avx2":
        return avx2_lanes(rows, n)
    if n <= 8:
        return row_lanes(rows, n)
    if rows == 4:
        return 4 if n <= 12 else 0
    return 8 if (rows == 8 and n <= 27) or (16 <= rows <= 32 and n <= 25) else 0


def lane_products(a: Array, b: Array, w: int, contract: bool) -> F32:
    """Σ a·b over a whole block (up to 32 × 32) as a fused loop LLVM splits into w lanes: row i in lane i mod w,
    lane 0 from +0 and the others from −0, each product contracted into its lane (`contract`) or stored and added;
    the lanes halved; then the rows left over, each product contracted into the total in order. w = 0: the whole
    block one chain of multiply-adds in row-major order."""
    rows, n = a.shape
    whole = rows // w * w if w else 0
    acc = F32(0)
    if whole:
        lanes = np.full(w, F32(-0.0), dtype=F32)
        lanes[0] = F32(0)
        for i in range(0, whole, w):
            for j in range(n):
                x, y = a[i:i + w, j], b[i:i + w, j]
                lanes = _fma(x, y, lanes) if contract else ftz(lanes + mul(x, y))
        acc = F32(halve(lanes))
    for x, y in zip(a[whole:].reshape(-1), b[whole:].reshape(-1), strict=True):
        acc = F32(_fma(x, y, acc))
    return acc


# YNNPACK's dot kernel for a product summed along a row, as XLA hands it over from 4096 elements: with AVX-512 one
# that takes 4 elements of a row at a time into 4 lanes, in blocks of 8192; with AVX2 one that takes them one at a
# time, a single chain along each block of 32768 (measured on an AMD EPYC with AVX2: rows of 4,096 to 200,000)
DOT_LANES = {"avx512": 4, "avx2": 1}
DOT_BLOCK = {"avx512": 8192, "avx2": SLAB}


def dot_lanes(a: Array, b: Array, lanes: int | None = None) -> Array:
    """Σ a·b over the last axis as XLA's YNNPACK fusion of a product with a broadcast factor computes it from 4096
    elements: the first w⌊K/w⌋ elements k in lane k mod w (w: DOT_LANES of the processor reproduced, or `lanes`),
    each lane a chain of multiply-adds from +0, the lanes then added in adjacent pairs, (L₀ + L₁) + (L₂ + L₃); the
    last K mod w products rounded and added in order from +0, their sum added last (measured with AVX-512 for rows
    of 5 to 5000 elements: rows of 2 or 3 differ)."""
    w = DOT_LANES[cpu.selected()] if lanes is None else lanes
    k = a.shape[-1]
    whole = k // w * w
    acc = np.zeros((*a.shape[:-1], w), dtype=F32)
    for j in range(0, whole, w):  # (element j + i in lane i)
        acc = _fma(a[..., j:j + w], b[..., j:j + w], acc)
    tail = np.zeros(a.shape[:-1], dtype=F32)
    for j in range(whole, k):
        tail = ftz(tail + mul(a[..., j], b[..., j]))
    while acc.shape[-1] > 1:
        acc = ftz(acc[..., 0::2] + acc[..., 1::2])
    out: Array = ftz(acc[..., 0] + tail)
    return out


def dot_rows(a: Array, b: Array) -> Array:
    """Σ a·b along each row [R, K] as YNNPACK's fusion of the products with their sum adds it: the first w⌊K/w⌋ in
    blocks (DOT_BLOCK), each as dot_lanes adds it, the blocks' sums added in order from +0, then the
    last K mod w products' own sum (AVX-512: a single row measured for 4,097 to 70,001 elements; rows, for ntxent's
    partner sums of one feature, up to 8,200)."""
    capability = cpu.selected()
    w = DOT_LANES[capability]
    rows, k = a.shape
    whole = k // w * w
    block = DOT_BLOCK[capability]
    full = whole // block  # (the whole blocks, taken together; then the last, shorter one)
    parts = [dot_lanes(a[:, :full * block].reshape(rows, full, block), b[:, :full * block].reshape(rows, full, block),
                       w)] if full else []
    if whole > full * block:
        parts.append(dot_lanes(a[:, full * block:whole], b[:, full * block:whole], w)[:, None])
    acc = np.zeros(rows, dtype=F32)
    for part in np.concatenate(parts, axis=1).T if parts else ():
        acc = ftz(acc + part)
    out: Array = ftz(acc + dot_lanes(a[:, whole:], b[:, whole:], w))
    return out


def dot_row(a: Array, b: Array) -> F32:
    """Σ a·b over a single row [1, K] of 4096 elements or more, as YNNPACK's fusion of the products with their sum
    adds it (dot_rows)."""
    return F32(dot_rows(a, b)[0])


def softplus(m: Array, r: Rounder) -> Array:
    """jax.nn.softplus, logaddexp(m, 0): max(m, 0) + log1p(e^−|m|) (m + 0 where m − 0 is NaN)."""
    out = r(np.maximum(m, F32(0)) + r(xla_log1p(r(xla_exp(-np.abs(m))))))
    return np.where(np.isnan(m), m, out)


def _sigmoid_via_softplus(m: Array, sp: Array, r: Rounder) -> Array:
    """The derivative softplus saves for its backward: e^(m − softplus(m)) (infinities taken as 0 first)."""
    return r(xla_exp(r(np.where(m == np.inf, F32(0), m) - np.where(sp == np.inf, F32(0), sp))))


def bce_logits(y: Array, z: Array, r: Rounder, k: Rounder, fused: bool,
               w: Array | None = None) -> tuple[Array, Array, Grad, Array]:
    """sigmoid_binary_cross_entropy: −y·log σ(z) − (1 − y)·log σ(−z), log σ(x) = −softplus(−x); jax.grad:
    (1 − y)·c·σ(z) − y·c·σ(−z), each σ as softplus's backward forms it. `fused` (float32 under jit): each
    difference of two products is an FMA and a product (the first product is the one fused); in a half dtype
    each product is stored first; `w`, the weights' column (weighed). Returns the losses, the terms the mean adds,
    the gradient and σ(z)."""
    sp_neg, sp_pos = softplus(-z, r), softplus(z, r)
    one_y = r(F32(1) - y)
    if fused:
        raw = fma(-y, -sp_neg, -mul(one_y, -sp_pos, r), flush=True)
    else:
        raw = ftz(mul(-y, -sp_neg, r) - mul(one_y, -sp_pos, r))
    s_pos, s_neg = _sigmoid_via_softplus(z, sp_pos, r), _sigmoid_via_softplus(-z, sp_neg, r)

    def grad(n: float) -> Array:
        c = cotangent(n, w, r)
        pos, neg = mul(one_y, c, r), mul(y, c, r)
        if not fused:
            return r(mul(pos, s_pos, r) - mul(neg, s_neg, r))
        g = r(fma(pos, s_pos, -mul(neg, s_neg, r), flush=True))
        if z.shape[1] == 9 and z.shape[0] > 1:  # (the 9th output, past LLVM's vector of 8, fuses the other product)
            g[:, 8] = r(fma(-neg[:, 8], s_neg[:, 8], mul(pos[:, 8], s_pos[:, 8], r), flush=True))
        return g
    return (*weighed(raw, w, r, k), grad, s_pos)


def mse(y: Array, p: Array, r: Rounder, k: Rounder, folded: bool,
        w: Array | None = None) -> tuple[Array, Array, Grad]:
    """squared_error: (p − y)², squared as x·x; jax.grad: (1/n)·(2·(p − y)), 1/n stored in the dtype. `w`, the
    weights' column: (p − y)²·w (weighed), and (1/n)·w in the gradient (cotangent). `folded` (under jit in float32
    and float16): XLA's algebraic simplifier folds the constants 2 and 1/n into one, 2·(1/n) stored in the dtype,
    and multiplies p − y by it, so that where 2·(p − y) would overflow the gradient is finite (measured: float16's
    p − y = 60000 over 160 elements gives 750, not ∞; a sum, 1/n = 1, still doubles p − y); over more than one
    output per sample, where w is broadcast along the rows, the constants' product 2·(1/n)·w (each product stored)
    (measured: float16 apart where (1/n)·w is subnormal, and 2·w overflowing against p − y = 0 gives NaN; bfloat16
    keeps w·(2·(p − y)) in float32, 0 there). Returns the losses, the terms the mean adds and the gradient."""
    d = r(p - y)

    def grad(n: float) -> Array:
        if folded and (w is None or d.shape[1] > 1):
            twice = mul(F32(2), r(upstream(n)), r)
            return mul(twice if w is None else mul(twice, w, r), d, r)
        return mul(cotangent(n, w, r), mul(F32(2), d, r), r)
    losses, terms = weighed(d * d, w, r, k)
    return losses, losses if w is None else terms, grad


def kl(y: Array, p: Array, log_input: bool, log_target: bool, r: Rounder, half: Any, jit: bool,
       w: Array | None = None) -> tuple[Array, Grad]:
    """kl_divergence(log q, y): Σ y·(log y − log q), log y taken as 0 where y = 0 (log q = p with log probabilities,
    else log p); kl_divergence_with_log_targets: Σ e^y·(y − log q); jax.grad: −t·c, divided by p through log p
    (t = y or e^y, c = 1/n); the row sums in float32, as jnp.sum adds a half dtype (float16 under jit along the
    rows HALF_ALONG_ROW names, bfloat16 under jit in its fused row sums: _products_rows); `w`, the weights' column,
    (1/n)·w for c (cotangent): the losses are weighed by the caller."""
    t, d = kl_products(y, p, log_input, log_target, r, half, jit)
    if jit and half is np.float16 and not log_input and _half_along_row(t.shape):
        losses = r(vector_add_sum(mul(t, d, r), HALF_ALONG_ROW[t.shape[1]], ftz) + F32(0))
    else:
        losses = r(_products_rows(t, d, r, jit and half is not np.float16,
                                  ALONG_ROW_CLASSES["kl-log-input" if log_input else "kl"], paired(half)))

    def grad(n: float) -> Array:
        q = mul(t, cotangent(n, w, r), r)
        return -q if log_input else div(-q, p, r)
    return losses, grad


def kl_products(y: Array, p: Array, log_input: bool, log_target: bool, r: Rounder, half: Any,
                jit: bool) -> tuple[Array, Array]:
    """kl's t and d = log y − log q (y − log q with log targets), whose products the rows sum. Under jit (a half
    dtype; the targets closed over as constants) XLA folds log y or e^y at compile time (folded_log, folded_exp),
    and bfloat16 keeps the products in float32 into its fused row sums."""
    # (bfloat16 under jit from 4096 elements: XLA hands log q, the difference and the row sums to YNNPACK, which
    # keeps them in float32 and takes log q with its own log)
    ynn = jit and half is not np.float16 and y.size >= YNN_FROM
    keep = ftz if ynn else r
    lq = p if log_input else keep((ynn_log if ynn else xla_log)(p))
    if log_target:
        return r(folded_exp(y, half) if jit else xla_exp(y)), keep(y - lq)
    log_y = folded_log(y, half) if jit else xla_log(np.where(y == 0, F32(1), y))
    return y, keep(np.where(y == 0, F32(0), r(log_y)) - lq)


# under jit in bfloat16, XLA's fused loop of kl's products LLVM vectorizes along the row from this many classes
# (up to 32, below 4096 elements), in a batch of two rows or more and alone, of probabilities and of
# log-probabilities (read from XLA's dump of the LLVM IR, the lanes of each vector reduction; their order
# ROW_PLANS', checked on rows whose sums in class order and in those lanes round apart: the products are exact,
# so contracted or not alike), and probability rows' ce from 20 classes in a batch and 22 alone (the lanes and
# their order read from the machine code XLA compiles, where LLVM's x86 back end has reassociated the IR's).
ALONG_ROW_CLASSES = {"kl": (16, 16), "kl-log-input": (19, 20), "ce": (20, 22)}


# float16 under jit, kl against probabilities (log q in the fused loop; both target forms), a batch of two rows or
# more below 4096 elements: LLVM vectorizes the row sums of the products, each stored in float16 and widened, along
# rows of these many classes: 30 and 31 in 8 lanes (classes 0-7, 8-15, 16-23 added, the lanes halved, then the rest
# in order), 32 in 16 lanes (two blocks). Every other count, a single row and log-probabilities keep class order
# (XLA's scalar loop, or rows vectorized across the batch). Read from the object code XLA compiles.
HALF_ALONG_ROW: dict[int, AccumulatorPlan] = {30: (8, ((0, 1, 2),), 0), 31: (8, ((0, 1, 2),), 0),
                                              32: (16, ((0, 1),), 0)}


def _half_along_row(shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and shape[0] >= 2 and shape[1] in HALF_ALONG_ROW and shape[0] * shape[1] < YNN_FROM


def _products_rows(a: Array, b: Array, r: Rounder, fused: bool, along: tuple[int, int] = (33, 33),
                   bf16: bool = False) -> Array:
    """Σ a·b along each row as XLA adds it: each product stored in the dtype, then jnp.sum's float32 sum (of
    bfloat16s, `bf16`, from 4096 elements YNNPACK's pairs); `fused`
    (bfloat16 under jit): the products kept in float32 and added in XLA's fused loop, in order in windows of 32
    (along each row in ROW_PLANS' lanes from `along`'s classes, in a batch and alone), and from 4096 elements by
    YNNPACK, as jnp.sum adds float32s (kl's and probability rows' ce, measured)."""
    if not fused:
        return xla_sum(mul(a, b, r), bf16)
    if a.size >= YNN_FROM:
        return xla_sum(mul(a, b)) + F32(0)
    rows, n = a.shape
    if n <= 32 and n >= (along[1] if rows == 1 else along[0]):
        return vector_fma_sum(a, b, ROW_PLANS[max(k for k in ROW_PLANS if k <= n)]) + F32(0)
    return _windows(mul(a, b)) + F32(0)


# the losses whose JAX results are reproduced under per-sample weights, jnp.mean(loss · w)
WEIGHABLE = ("ce", "mse", "bce", "kl")


def weighed_rows(shape: tuple[int, ...]) -> bool:
    """Whether probability rows' ce under sample weights is reproduced for this shape: below YNN_FROM elements (from
    there YNNPACK's fusions under weights are not pinned down)."""
    return shape[0] * shape[1] < YNN_FROM


# probability rows under jit in float32 and float16: the sign of a zero gradient (a sample of weight 0) follows
# XLA's folding of the constant targets and weights, measured +0 in some batches and −0 in others
ZERO_SIGN = ("the gradient of a sample of weight 0 is ±0: under jit XLA folds the targets and the weights in a way "
             "that decides its sign, which lossgrad does not pin down (its sign may differ from JAX's)")


# losses optax computes in every dtype whose XLA kernels lossgrad does not reproduce, and what they are
NOT_YET: dict[str, str] = {}


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why JAX's results for this loss and these options are not reproduced (None: they are)."""
    extra = [k for k, v in params.items() if not (v is None or v is False or (np.ndim(v) == 0 and v == 0))
             and k not in ("log_input", "log_target") and (k, loss) != ("label_smoothing", "ce")]
    if sample_weight and loss not in WEIGHABLE:
        extra.append("sample_weight")
    if loss in ("ce", "bce") and not from_logits:
        return f"{loss} on probabilities"
    if loss not in ("ce", "bce", "mse", "kl"):
        return NOT_YET.get(loss, loss)
    return f"{loss} with {', '.join('{' + k + '}' for k in extra)}" if extra else None


def smoothed_targets(loss: str, y: Array, labels: Array | None, shape: tuple[int, ...], half: Any,
                     params: dict[str, Any], weighed_jit: bool) -> tuple[Array, Array | None, bool]:
    """ce's targets under `label_smoothing` s as an optax user forms them, optax.smooth_labels(rows, s), rows
    jax.nn.one_hot(labels, C) for class indexes, so probability rows' ce; and whether they are traced (ce_rows):
    one-hot rows under jit, made in the function from its labels. (Other losses, or s = 0: as given.)"""
    s = float(params.get("label_smoothing") or 0.0)
    if loss != "ce" or not s:
        return y, labels, False
    if labels is not None and weighed_jit and half is None:
        raise _not_reproduced("softmax_cross_entropy of smoothed one-hot rows under sample weights under jit")
    rows = y if labels is None else one_hot(labels, shape[1])
    return smooth_labels(rounder(half)(rows), s, half), None, labels is not None


def smooth_labels(y: Array, s: float, half: Any) -> Array:
    """optax.smooth_labels(y, s) = (1 − s)·y + s/C: 1 − s and s/C are Python floats, which JAX rounds once to the
    dtype; the product and the sum each stored in it. So under jit too, where XLA folds constant targets an
    operation at a time, or (one-hot rows made in the function) computes them in the loop: y·(1 − s) is then a
    select of 1 − s or 0, the same values."""
    r = rounder(half)
    keep, spread = (F32(np.asarray(c, dtype=half or F32)) for c in (1.0 - s, s / y.shape[1]))
    return r(mul(keep, y, r) + spread)


def _not_reproduced(what: str, instead: str = "use {dtype} float64, or {convention} exact") -> NotReproduced:
    return NotReproduced("dtype", f"JAX's {what} is not reproduced; {instead}")


AVX2_SINGLE_ROW = ("with AVX2 (no AVX-512) XLA's fusion of a single row of 4096 or more under jit in float32 (ce's "
                   "probability rows, kl) is not reproduced: its losses and value can differ in the last bits")


def avx2_single_row(loss: str, labels: Array | None, half: Any, jit: bool, shape: tuple[int, ...]) -> bool:
    """Whether XLA fuses this loss on an AVX2 processor in a way not pinned down: ce's probability rows or kl, a
    single row of YNN_FROM classes or more under jit in float32, where the fusion takes the log inside YNNPACK's
    dot (measured: rows of 4,096 to 40,000 classes, ce's losses apart from the one-lane dot of log_softmax and the
    targets, as from every other order tried; kl's and kl with log targets' too)."""
    return (cpu.selected() == "avx2" and loss in ("ce", "kl") and labels is None and half is None and jit
            and shape[0] == 1 and shape[1] >= YNN_FROM)


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            weights: Array | None = None) -> Parts:
    """The loss's parts as JAX computes them on CPU in float32 (half None) or the half dtype (carried in
    float32), with jit (switches["jit"], the default) or without, the gradient and the mean over N formed as
    jax.grad and jnp.mean form them. `from_logits` is taken as every backend takes it (`unsupported` has refused
    probabilities before); `weights`, one per sample, weigh each sample's losses as jnp.mean(loss · w) does;
    ce's `label_smoothing`: the targets optax.smooth_labels gives (smoothed_targets)."""
    jit = switches.get("jit", True)
    y, labels, traced = smoothed_targets(loss, y, labels, p.shape, half, params or {}, jit and weights is not None)
    if weights is not None and (loss not in WEIGHABLE or (loss == "ce" and labels is None
                                                         and not weighed_rows(p.shape))):
        raise _not_reproduced(f"{'softmax_cross_entropy of this shape' if loss == 'ce' else loss} under sample "
                              "weights")
    r = rounder(half)
    # under jit XLA computes bfloat16 arithmetic in float32 and drops the roundings between fused steps
    k = ftz if jit and half is not None and half is not np.float16 else r
    y, p = r(y), r(p)
    w = held_weights(weights, half, loss != "ce")
    with np.errstate(all="ignore"):
        losses, terms, grad, prob, negated, fused = _forward(loss, y, p, labels, half, switches, w, traced)
    known = loss in ("mse", "bce")  # (float32 elsewhere: lossgrad's sum of the terms, as for long sums)
    several = terms.ndim > 1 and terms.shape[1] > 1
    own_sum = half is None and several and not (known and sums_2d(terms))
    # (float32 under jit: XLA fuses the weighted losses of a block of up to 32 × 32 into its sum, the products
    # contracted in an order not pinned down; a column of them it stores first)
    own_sum = own_sum or (w is not None and jit and half is None and several and terms.shape[0] <= 32
                          and terms.shape[1] <= 32)
    value = None if own_sum else mean_value(terms, r, known, negated, stored(r, k, terms, losses))
    # (None: only in float32, for more than one output per sample)
    # (under jit in bfloat16 the mean reads the squares in float32, one output per sample too)
    fused_mse = loss == "mse" and jit and half is not np.float16 and (several or half is not None) and w is None
    if fused_mse and (several or terms.size > 1):
        value = fused_mse_value(r(p - y), r)
    if loss == "mse" and jit and half is None and not several and 1 < terms.size <= 32 and w is None:
        value = None  # (a column of up to 32 squares, fused as a single row's: in an order not pinned down)
    whole = {} if value is None else batch_terms(terms, r, known, negated, stored(r, k, terms, losses),
                                                 r(p - y) if fused_mse else None)
    if loss == "ce" and labels is None and jit and (half is None or fused is not None):
        value, whole = None, {}
        if fused is not None:  # (float32: the products fused into the sum; bfloat16: YNNPACK's float32 row sums)
            parts, of = fused
            value = _fma_value(parts["a"], parts["b"], traced) if half is None else lambda n: of(parts, n)
            whole = {"value_parts": parts, "value_fold": lambda rows: Joined(of)}
    own = ["the reduced value is lossgrad's float32 sum: XLA's order for this shape (YNNPACK's from 4096 "
           "elements; a vectorized fused sum under jit) is not reproduced"] if value is None else []
    if loss == "ce" and labels is None and w is not None and jit and not paired(half) and bool(np.any(w == 0)):
        own.append(ZERO_SIGN)
    if avx2_single_row(loss, labels, half, jit, p.shape):
        own.append(AVX2_SINGLE_ROW)
    return Parts(losses=losses, grad=grad(1), prob=prob, mean_grad=grad, mean_value=value, warnings=own, **whole)


def _forward(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
             w: Array | None, traced: bool = False) -> tuple[Array, Array, Grad, Array | None, bool, Spec | None]:
    """compute's losses (weighed by w), the terms the mean adds, the gradient, softmax or σ, whether the mean
    adds the terms negated, and probability rows' fused sums."""
    jit = switches.get("jit", True)
    r = rounder(half)
    k = ftz if jit and half is not None and half is not np.float16 else r
    if loss == "ce" and labels is not None:
        return (*ce_index(p, labels, r, k, jit, w), False, None)
    if loss == "ce":
        losses, grad, prob, fused = ce_rows(y, p, r, half, jit, w, traced)
        if w is not None:
            return (*weighed(losses, w, r, k), grad, prob, False, None)
        return losses, losses, grad, prob, jit and half is not np.float16, fused  # (bfloat16 under jit: −Σ rows)
    if loss == "bce":
        return (*bce_logits(y, p, r, k, jit and half is None, w), False, None)
    if loss == "kl":
        assert not (jit and half is None), "lowp_xla_kl's (lowp_xla_more.compute hands it there)"
        losses, grad = kl(y, p, switches.get("log_input", False), switches.get("log_target", False), r, half, jit, w)
        return (*((losses, losses) if w is None else weighed(losses, w[:, 0], r, k)), grad, None, False, None)
    return (*mse(y, p, r, k, jit and k is r, w), None, False, None)


def batch_terms(terms: Array, r: Rounder, known: bool, negated: bool, bf16: bool,
                fused: Array | None = None) -> dict[str, Any]:
    """Parts' value_parts and value_fold for a batch evaluated in slices: jnp.sum's order depends on the whole
    array's shape, so the slices' terms are joined and summed as one (mean_value; under jit mse's squares from the
    differences p − y, `fused`, as fused_mse_value sums them)."""
    def value(parts: dict[str, Array], n: float) -> float:
        if "fused" in parts:
            fold = fused_mse_value(parts["fused"], r)
            if fold is None:
                raise _not_reproduced("sum of squared errors over this shape under jit")
            return fold(n)
        whole = parts["terms"]
        return mean_value(whole, r, known and sums_2d(whole), negated, bf16)(n)
    return {"value_parts": {"terms": terms} if fused is None else {"fused": fused},
            "value_fold": lambda rows: Joined(value)}


def stored(r: Rounder, k: Rounder, terms: Array, losses: Array) -> bool:
    """Whether the mean reads bfloat16s (mean_value's `bf16`): the losses as stored, or terms stored as they are op by
    op (under jit XLA keeps the terms it does not store in float32)."""
    return reads_bf16(r) and (terms is losses or k is r)


def mean_value(terms: Array, r: Rounder, sum2d: bool = False, negated: bool = False,
               bf16: bool = False) -> Callable[[float], float]:
    """jnp.sum of the losses (n = 1), or jnp.mean over n: the sum in float32 (jnp upcasts a half dtype) times
    1/n (XLA turns a division by a constant into a product with its reciprocal), stored in the dtype. `negated`:
    the losses are −x, and XLA sums the x and negates the total (−0 where every loss is 0); `bf16`: the sum reads
    them stored in bfloat16 (xla_sum's)."""
    def value(n: float) -> float:
        several = terms.ndim > 1 and terms.shape[1] > 1
        if several and not sum2d:  # (measured for mse and bce only)
            raise _not_reproduced("sum over more than one output per sample (an order of its own)")
        with np.errstate(all="ignore"):
            sign = -1 if negated else 1
            x = sign * terms
            total = sign * (xla_sum2d(x, bf16) if several else xla_sum(x.reshape(1, -1), bf16)[0])
            return float(r(total) if n == 1 else mul(total, F32(1) / F32(n), r))
    return value


def sums_2d(terms: Array) -> bool:
    """Whether XLA's sum of these losses is reproduced (float32 otherwise takes lossgrad's own sum of them)."""
    rows, n = terms.reshape(terms.shape[0], -1).shape
    return rows == 1 or n == 1 or rows * n < YNN_FROM or wide_known(rows, n)


def wide_known(rows: int, n: int) -> bool:
    """Whether YNNPACK's order for jnp.sum of a whole [rows, n] array is reproduced: rows of up to SLAB, or fewer
    than SPLIT_BELOW of them (_wide_runs)."""
    return n <= SLAB or rows < SPLIT_BELOW


def _tie(x: Array, z: Array, other: Any) -> Array:
    """JAX's share of a max or min's gradient for the operand x of result z: 1 where x is the result alone, ½
    where both operands are, 0 elsewhere."""
    return np.where(x == z, np.where(F32(other) == z, F32(0.5), F32(1)), F32(0)).astype(F32)


def margin_hinge(root_p: Array, root_n: Array, slope_p: Array, slope_n: Array, margin: float,
                 r: Rounder, diff: Array | None = None,
                 kept: Rounder | None = None) -> tuple[Array, Callable[[float], tuple[Array, Array]]]:
    """triplet's max(0, ‖a − y‖ − ‖a − n‖ + m), and for the mean over n what jax.grad sends back through it to
    each row of differences: −c·w times the negative's slope of its norm, c·w the positive's (w the max's share,
    ½ at 0, from comparing the operand with the maximum stored in the dtype), as columns. `diff`: ‖a − y‖ − ‖a − n‖
    where the caller forms it otherwise; `kept`: how that difference and the sum with m are kept (ynn_kept), else
    as `r`."""
    m = (kept or r)((kept or r)(root_p - root_n if diff is None else diff) + r(F32(margin)))
    raw = np.maximum(m, F32(0))
    w = _tie(m, r(raw), 0)

    def back(n: float) -> tuple[Array, Array]:
        bl = mul(r(upstream(n)), w, r)
        return mul(-bl, slope_n, r)[:, None], mul(bl, slope_p, r)[:, None]
    return raw, back


def _rows(x: Array, r: Rounder, k: Rounder) -> Array:
    """jnp.sum along each row: in float32 whatever the dtype (what the sum reads kept as `k` keeps it), XLA's order,
    stored in the dtype."""
    return r(xla_sum(k(x), reads_bf16(k)))


def ynn_kept(shape: tuple[int, ...], r: Rounder, k: Rounder) -> Rounder:
    """How a half dtype's row sum of distances under jit, and the ε then added to each row's (triplet), are kept:
    from YNN_FROM rows of two features or more XLA fuses that addition over the rows into YNNPACK's sum, and YNNPACK
    drops the roundings to bfloat16 between them (XLA's converts are in its fusion), as `k` keeps them (float32 in
    bfloat16; float16, whose `k` is its own rounding, keeps them); else rounded by `r`."""
    rows, n = shape
    return k if rows >= YNN_FROM and n > 1 else r
