"""TensorFlow's CPU kernels in float32, as Keras 3 and tf-keras call them, reproduced bit for bit.

TensorFlow's element-wise kernels are Eigen tensor expressions. The wheel is built for AVX without FMA, so Eigen
works in packets of 8 floats and its multiply-adds round twice; e^x and log x of a packet are Eigen's own
polynomials (`pexp`, `plog`), while the elements left over after the last whole packet go through the C library
(glibc's expf and logf). A sum along a row is Eigen's InnerMostDimReducer: four packet accumulators over blocks of
32, one more for the whole packets after them, the rest added one by one, then the packet's lanes added in halves
(and rows longer than 8192 split in two, recursively, at a packet boundary). TensorFlow flushes subnormal results
to zero. All of this is done here in numpy on float32 arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .losses import Parts
from .losses._ops import Array
from .lowp import libm_logf

F32 = np.float32
PACKET = 8  # floats in an AVX register
LEAF = 1024  # packets in a leaf of the reducer's tree
TINY = F32(2.0 ** -126)
DTYPES = ("float32",)
# why the half dtypes are refused: their kernels round in other places (float16's fused softmax in float32,
# bfloat16's through Eigen's bfloat16 packets, sums accumulated in float16 or float32), not reproduced here
DTYPES_WHY = (" (TensorFlow's float16 and bfloat16 kernels are not reproduced: they round in other places than "
              "float32's)")
SUPPORTED = ("ce (from logits; class indexes or probability rows)", "mse")


def ftz(a: Any) -> Array:
    """Subnormal results flushed to zero (TensorFlow sets the processor's flush-to-zero mode)."""
    a = np.asarray(a, dtype=F32)
    out: Array = np.where(np.abs(a) < TINY, F32(0) * a, a).astype(F32)
    return out


def mul(a: Any, b: Any) -> Array:
    return ftz(np.multiply(a, b, dtype=F32))


def add(a: Any, b: Any) -> Array:
    return ftz(np.add(a, b, dtype=F32))


def sub(a: Any, b: Any) -> Array:
    return ftz(np.subtract(a, b, dtype=F32))


def div(a: Any, b: Any) -> Array:
    return ftz(np.divide(a, b, dtype=F32))


def madd(a: Any, b: Any, c: Any) -> Array:
    """Eigen's pmadd without FMA: the product rounded, then the sum."""
    return add(mul(a, b), c)


EXP_POLY = tuple(F32(c) for c in (1.37449637986719608306884765625e-3, 4.166965186595916748046875e-2,
                                   8.36894474923610687255859375e-3, 0.16666518151760101318359375,
                                   0.49999988079071044921875))


def pexp(x: Array) -> Array:
    """Eigen's pexp_float: e^x = 2^m·e^r, m = ⌊x·log₂e + ½⌋, r = x − m·ln 2 in two parts (Cephes' constants),
    e^r by a degree-6 polynomial split in even and odd parts; 0 below −104, x clamped at 88.723 above."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        m = np.floor(madd(np.minimum(x, F32(88.723)), F32(1.44269504088896341), F32(0.5)))
        r = madd(m, F32(-0.693359375), np.minimum(x, F32(88.723)))
        r = madd(m, F32(2.12194440e-4), r)
        r2 = mul(r, r)
        p6, p4, p5, p3, p2 = EXP_POLY
        even = madd(r2, madd(r2, p6, p4), p2)
        odd = madd(r2, p5, p3)
        y = madd(r2, madd(r, odd, even), add(r, F32(1)))
        out = (y.astype(np.float64) * np.exp2(m.astype(np.float64))).astype(F32)
    return ftz(np.where(x < F32(-104), F32(0), np.maximum(out, x)))


LOG_P = tuple(F32(c) for c in (0.18256296349849254, 1.0000000190281063, 1.0000000190281136))
LOG_Q = tuple(F32(c) for c in (0.049616247954120038, 0.59923249590823520, 1.4999999999999927, 1.0))


def plog(x: Array) -> Array:
    """Eigen's plog_float (positive finite x): x = m·2^e, m moved into [√½, √2) and less 1, log(1 + m) by a
    rational function, plus e·ln 2."""
    x0 = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        frac, ex = np.frexp(x0)
        frac, e = frac.astype(F32), ex.astype(F32)
        low = frac < F32(0.707106781186547524)
        m = add(sub(frac, F32(1)), np.where(low, frac, F32(0)))
        e = sub(e, np.where(low, F32(1), F32(0)))
        p = np.full_like(m, LOG_P[0])
        for c in LOG_P[1:]:
            p = madd(p, m, c)
        q = np.full_like(m, LOG_Q[0])
        for c in LOG_Q[1:]:
            q = madd(q, m, c)
        out = madd(e, F32(0.693147180559945309417), div(mul(m, p), q))
    return np.where(x0 == 0, F32(-np.inf), np.where(x0 == np.inf, x0, out)).astype(F32)


# glibc's expf (2.28 and later): 2^(k/32) from a table of 32 doubles, a cubic in r = x·32/ln 2 − k, in float64
EXPF_N = 32
EXPF_SHIFT = float.fromhex("0x1.8p+52")
EXPF_POLY = (float.fromhex("0x1.c6af84b912394p-5") / EXPF_N ** 3, float.fromhex("0x1.ebfce50fac4f3p-3") / EXPF_N ** 2,
             float.fromhex("0x1.62e42ff0c52d6p-1") / EXPF_N)
EXPF_TAB = np.array([(np.array(2.0 ** (i / EXPF_N)).view(np.uint64).item() - (i << 52) // EXPF_N) % 2 ** 64
                     for i in range(EXPF_N)], dtype=np.uint64)


def libm_expf(x: Array) -> Array:
    """The C library's expf, as Eigen's scalar path calls it: glibc's, e^x = 2^(k/32)·2^(r/32)."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        z = float.fromhex("0x1.71547652b82fep+0") * EXPF_N * x.astype(np.float64)
        kd = z + EXPF_SHIFT
        ki = kd.view(np.uint64)
        r = z - (kd - EXPF_SHIFT)
        s = (EXPF_TAB[(ki % EXPF_N).astype(np.int64)] + (ki << np.uint64(47))).view(np.float64)
        c0, c1, c2 = EXPF_POLY
        y = ((c0 * r + c1) * (r * r) + (c2 * r + 1)) * s
        out = np.where(x > float.fromhex("0x1.62e42ep6"), np.inf, np.where(x < float.fromhex("-0x1.9fe368p6"), 0, y))
    return ftz(out.astype(F32))


def elementwise(a: Array, packet: Callable[[Array], Array], scalar: Callable[[Array], Array]) -> Array:
    """A unary kernel over a whole tensor: packets of 8 through the flattened array, the last elements (fewer
    than a packet) one at a time."""
    flat = a.reshape(-1)
    cut = flat.size - flat.size % PACKET
    out = np.empty_like(flat)
    out[:cut] = packet(flat[:cut])
    if cut < flat.size:
        out[cut:] = scalar(flat[cut:])
    return out.reshape(a.shape)


def predux(acc: Array) -> Array:
    """A packet's lanes added as AVX adds them: the upper half onto the lower, then pairs, then the last two."""
    a = acc[:, :4] + acc[:, 4:]
    b = a[:, :2] + a[:, 2:]
    out: Array = ftz(b[:, 0] + b[:, 1])
    return out


def row_sums(x: Array, packet: Callable[[Array], Array] | None = None,
             scalar: Callable[[Array], Array] | None = None) -> Array:
    """Each row's sum as Eigen's InnerMostDimReducer forms it, each value read through `packet` (whole packets)
    or `scalar` (the rest) first. A long row's split point is aligned in the flattened tensor, so rows are taken
    in groups of the same offset modulo a packet."""
    rows, n = x.shape
    if n <= PACKET * LEAF or n % PACKET == 0:
        return _reduce(x, 0, 0, n, packet or ftz, scalar or ftz)
    out = np.empty(rows, dtype=F32)
    offset = (np.arange(rows) * n) % PACKET
    for base in np.unique(offset):
        out[offset == base] = _reduce(x[offset == base], int(base), 0, n, packet or ftz, scalar or ftz)
    return out


def _reduce(x: Array, base: int, first: int, num: int, packet: Callable[[Array], Array],
            scalar: Callable[[Array], Array]) -> Array:
    """x[:, first:first + num] summed: halves (split at a packet boundary of the flattened tensor) when longer
    than a leaf of 1024 packets, else four packet accumulators over blocks of 32 values, one accumulator for the
    whole packets after them, the remainder added one by one, and that sum plus the packet's lanes."""
    if num > PACKET * LEAF:
        split = PACKET * -(-(base + first - (-num // 2)) // PACKET) - base
        left = min(split - first, num)
        total = _reduce(x, base, first, left, packet, scalar)
        if left < num:
            total = add(total, _reduce(x, base, split, num - left, packet, scalar))
        return add(F32(0), total)
    rows = x.shape[0]
    acc = np.zeros((rows, PACKET), dtype=F32)
    start = 0
    if num >= 4 * PACKET:
        four = num // (4 * PACKET) * 4 * PACKET
        accs = [np.zeros((rows, PACKET), dtype=F32) for _ in range(4)]
        for j in range(0, four, 4 * PACKET):
            for q in range(4):
                at = first + j + q * PACKET
                accs[q] = add(accs[q], packet(x[:, at:at + PACKET]))
        acc = add(add(add(accs[0], accs[1]), accs[2]), accs[3])
        start = four
    whole = num // PACKET * PACKET
    for j in range(start, whole, PACKET):
        acc = add(acc, packet(x[:, first + j:first + j + PACKET]))
    rest = np.zeros(rows, dtype=F32)
    for j in range(max(start, whole), num):
        rest = add(rest, scalar(x[:, first + j]))
    return add(rest, predux(acc))


def full_sum(x: Array) -> F32:
    """tf.reduce_sum over a whole 1-D tensor: the same reducer over all its values."""
    return F32(row_sums(x.reshape(1, -1))[0])


def softmax_xent(z: Array, y: Array, labels: Array | None) -> tuple[Array, Array]:
    """SoftmaxCrossEntropyWithLogits (probability rows) or its sparse twin (class indexes): per-row losses and
    the kernel's backprop softmax − y. Both take s = z − max and Σe^s by rows (packet e^x over whole packets of
    the row, glibc's for the rest) and e^s over the flattened tensor; the sparse loss is log Σ − s at the label
    (glibc's logf, one element at a time), the dense one Σ y·(log Σ − s) by rows, log Σ in packets of rows."""
    s = sub(z, z.max(axis=1, keepdims=True))
    total = row_sums(s, pexp, libm_expf)
    if labels is None:
        log_total = elementwise(total, plog, libm_logf)
        losses = row_sums(mul(y, sub(log_total[:, None], s)))
    else:
        losses = sub(libm_logf(total), s[np.arange(z.shape[0]), labels])
    backprop = sub(div(elementwise(s, pexp, libm_expf), total[:, None]), y)
    return losses, backprop


def upstream(n: float) -> F32:
    """The gradient reaching the per-sample losses: 1 for a sum, 1/N (divide_no_nan's gradient) for the mean."""
    return F32(1) if n == 1 else F32(div(F32(1), F32(n)))


def mse(y: Array, p: Array) -> tuple[Array, Callable[[float], Array]]:
    """mean_squared_error: the mean over each sample's outputs of (y − p)² (reduce_mean: the row's sum over k);
    the gradient −(c/k)·2(y − p) (Mean's gradient divides c by k, Square's multiplies by 2x)."""
    d = sub(y, p)
    k = F32(p.shape[1])
    losses = div(row_sums(mul(d, d)), k)
    return losses, lambda n: -mul(div(upstream(n), k), mul(d, F32(2)))


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why TensorFlow's kernels for this loss and these options are not reproduced (None: they are)."""
    extra = [k for k, v in params.items() if not (v is None or v is False or (np.ndim(v) == 0 and v == 0))]
    if sample_weight:
        extra.append("sample_weight")
    if loss == "bce":
        return ("bce (the gradient of TensorFlow's log1p takes Eigen's reciprocal: the processor's rcpps estimate "
                "and a Newton step, which differ between processors)")
    if loss == "ce" and not from_logits:
        return "ce on probabilities"
    if loss not in ("ce", "mse"):
        return loss
    return f"{loss} with {', '.join('{' + k + '}' for k in extra)}" if extra else None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None) -> Parts:
    """The loss's parts as TensorFlow's CPU kernels give them in float32: per-sample losses (Keras' mean over a
    sample's outputs taken as reduce_mean takes it), the gradient of the sum or of the mean over N, and the
    reduced value (reduce_sum of the losses, divided by N in float32)."""
    y, p = y.astype(F32), p.astype(F32)
    grad: Callable[[float], Array]
    with np.errstate(all="ignore"):
        if loss == "ce":
            losses, backprop = softmax_xent(p, y, labels)
            grad = lambda n: mul(upstream(n), backprop)  # noqa: E731 (_BroadcastMul of the upstream gradient)
        else:
            losses, grad = mse(y, p)
            if p.shape[1] == 1:  # (one output: its losses are the elements, as the formulas give them)
                losses = losses[:, None]

    def value(n: float) -> float:
        with np.errstate(all="ignore"):
            total = full_sum(losses.reshape(-1))
            return float(total if n == 1 else div(total, F32(n)))
    return Parts(losses=losses, grad=grad(1), mean_grad=grad, mean_value=value)
