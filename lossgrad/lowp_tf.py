"""TensorFlow's CPU kernels in float32, as Keras 3 and tf-keras call them, reproduced bit for bit.

TensorFlow's element-wise kernels are Eigen tensor expressions. The wheel is built for AVX without FMA, so Eigen
works in packets of 8 floats and its multiply-adds round twice; e^x and log x of a packet are Eigen's own
polynomials (`pexp`, `plog`), while the elements left over after the last whole packet go through the C library
(glibc's expf and logf). A sum along a row is Eigen's InnerMostDimReducer: four packet accumulators over blocks of
32, one more for the whole packets after them, the rest added one by one, then the packet's lanes added in halves
(and rows longer than 8192 split in two, recursively, at a packet boundary). TensorFlow flushes subnormal results
to zero. All of this is done here in numpy on float32 arrays; the kernels that run in double too (`WIDE`: packets
of 4 doubles, Keras' dice and tversky) take float64 arrays through the same reducer.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import lowp
from .errors import DomainError
from .flush import at_tiny, daz, product, quotient
from .losses import Parts
from .losses._ops import Array
from .losses.base import Place, joined
from .lowp import Rounder, libm_logf, one_hot, rounder

F32 = np.float32
PACKET = 8  # floats in an AVX register
LEAF = 1024  # packets in a leaf of the reducer's tree
TINY = F32(2.0 ** -126)
WIDE_PACKET = 4  # doubles in an AVX register
SUPPORTED = ("ce (from logits; class indexes, with ignore_index, or probability rows with label smoothing; class "
             "weights)", "mse")


def ftz(a: Any) -> Array:
    """Subnormal results flushed to zero (TensorFlow sets the processor's flush-to-zero mode), in a new array."""
    out: Array = np.array(a, dtype=F32)
    small = np.abs(out) < TINY
    if small.any():  # (rare: only those elements, each a zero of its sign)
        out[small] *= F32(0)
    return out


def mul(a: Any, b: Any) -> Array:
    """a·b, flushed as the processor flushes it (lossgrad.flush)."""
    return ftz(product(np.asarray(a, dtype=F32), np.asarray(b, dtype=F32)))


def add(a: Any, b: Any) -> Array:
    return ftz(np.add(a, b, dtype=F32))


def sub(a: Any, b: Any) -> Array:
    return ftz(np.subtract(a, b, dtype=F32))


def div(a: Any, b: Any) -> Array:
    """a/b, flushed as the processor flushes it (lossgrad.flush)."""
    return ftz(quotient(np.asarray(a, dtype=F32), np.asarray(b, dtype=F32)))


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
    """Eigen's plog_float: x = m·2^e, m moved into [√½, √2) and less 1, log(1 + m) by a rational function, plus
    e·ln 2 (NaN, 0, ∞ and negative x: lowp.log_specials)."""
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
    return lowp.log_specials(x0, out.astype(F32))


def libm_expf(x: Array) -> Array:
    """The C library's expf, as Eigen's scalar path calls it (glibc's: lowp.libm_expf), subnormals flushed."""
    return ftz(lowp.libm_expf(x))


Unary = Callable[[Array], Array]


def elementwise(a: Array, packet: Unary, scalar: Unary, tail: int | None = None) -> Array:
    """A unary kernel over a whole tensor: packets of 8 through the flattened array, the last elements (fewer
    than a packet) one at a time (`tail`: how many of these elements are the whole tensor's last, where they are
    a piece of it)."""
    flat = a.reshape(-1)
    cut = flat.size - (flat.size % PACKET if tail is None else tail)
    out = np.empty_like(flat)
    out[:cut] = packet(flat[:cut])
    if cut < flat.size:
        out[cut:] = scalar(flat[cut:])
    return out.reshape(a.shape)


def tiled(a: Array, packet: Unary, scalar: Unary, target: int, place: Place | None = None,
          lanes: int = PACKET) -> Array:
    """A unary kernel inside an expression Eigen evaluates in blocks (one with a broadcast): blocks of about
    `target` coefficients, whole rows (or row pieces of `target` when a row is longer), each evaluated as
    `elementwise` does, so each block ends in its own scalar remainder. The blocks are the whole batch's: counted
    from its first row and ended at its last, which `place` says these rows lie in (None: they are the batch)."""
    out = packet(a)  # (each value's e^x is its own: the packets' lanes do not meet)
    at = remainders(a.shape, target, place, lanes)
    if at.size:
        out.flat[at] = scalar(a.reshape(-1)[at])
    return out


def remainders(shape: tuple[int, int], target: int, place: Place | None, lanes: int = PACKET) -> Array:
    """The flat indexes, in these rows, of the elements `tiled`'s blocks leave to the scalar path: the last
    (size mod `lanes`, 8 floats or 4 doubles) of each block of the whole batch. A batch of `target` coefficients or
    fewer is one block; rows longer than `target` are split in blocks of `target`, every row alike; shorter rows
    are taken ⌈target / n⌉ to a block, from the batch's first row, the last block ending at its last (a batch of
    unknown length: beyond these rows)."""
    rows, n = shape
    first, total = place or (0, rows)
    if n > target:
        pieces = [(start, min(start + target, n)) for start in range(0, n, target)]
        cols = np.concatenate([np.arange(end - (end - start) % lanes, end) for start, end in pieces])
        return (np.arange(rows)[:, None] * n + cols).reshape(-1)
    if total is not None and total * n <= target:
        flat = np.arange(total * n - total * n % lanes, total * n)
    else:
        height = -(-target // n)
        blocks = np.arange(first // height, (first + rows - 1) // height + 1)
        ends = (blocks + 1) * height if total is None else np.minimum((blocks + 1) * height, total)
        tails = (ends - blocks * height) * n % lanes
        lane = np.arange(lanes)
        flat = ((ends * n - tails)[:, None] + lane)[lane < tails[:, None]]
    flat = flat - first * n
    return flat[(flat >= 0) & (flat < rows * n)]


# the block size Eigen's cost model gives SoftmaxCrossEntropyWithLogits' float32 backprop expression (e^s / Σ − y,
# with a broadcast): found by planting values whose packet and scalar e^x differ, and read back from TensorFlow
XENT_BLOCK = 4507


@dataclass(frozen=True)
class Kind:
    """The dtype a kernel stores, carried in float32 (float64 for double, `WIDE`): its rounding, the leaf of Eigen's
    summation tree (in packets: 1024 for float32 and double, 200 for float16, 128 for bfloat16) and the values in
    a packet."""

    rnd: Rounder
    leaf: int = LEAF
    half: Any = None  # (None: float32, whose rounding is the identity, or double)
    lanes: int = PACKET
    dtype: Any = F32  # (the arrays' type)

    def ftz(self, a: Any) -> Array:
        """Subnormal results flushed to zero, in the arrays' type."""
        if self.dtype is F32:
            return ftz(a)
        a = np.asarray(a, dtype=self.dtype)
        out: Array = np.where(np.abs(a) < np.finfo(self.dtype).tiny, np.copysign(0, a), a)
        return out

    def op(self, f: Callable[..., Any], a: Any, b: Any) -> Array:
        """One Eigen operation of two operands: computed in the arrays' type, flushed (a product or quotient as the
        processor flushes it: lossgrad.flush) and stored in the dtype."""
        exact = operator.mul if f is np.multiply else operator.truediv if f is np.divide else None
        a, b = np.asarray(a, dtype=self.dtype), np.asarray(b, dtype=self.dtype)
        out = f(a, b) if exact is None else at_tiny(f(a, b), exact, a, b)
        return self.rnd(self.ftz(out))

    def add(self, a: Any, b: Any) -> Array:
        return self.op(np.add, a, b)

    def sub(self, a: Any, b: Any) -> Array:
        return self.op(np.subtract, a, b)

    def mul(self, a: Any, b: Any) -> Array:
        return self.op(np.multiply, a, b)

    def div(self, a: Any, b: Any) -> Array:
        return self.op(np.divide, a, b)

    def number(self, v: float) -> Any:
        """A Python number converted to the dtype: a double kept, rounded to float32 (and from there to a half
        dtype); as an operand reads it, 0 where it is subnormal there (denormals-are-zero)."""
        with np.errstate(all="ignore"):
            return self.dtype(daz(self.rnd(np.asarray(v, dtype=np.float64).astype(self.dtype))))

    def running(self, first: Array, terms: Array) -> Array:
        """first + terms[:, 0] + terms[:, 1] + ..., one addition after another, each as `add` forms it."""
        if self.half is None:  # float32 or double: numpy's accumulate adds one after another in the type; its
            # sums are the same unless one is subnormal, which `add` would have flushed to zero
            sums = np.add.accumulate(np.concatenate([first[:, None], terms], axis=1), axis=1, dtype=self.dtype)
            if not ((np.abs(sums) < np.finfo(self.dtype).tiny) & (sums != 0)).any():
                return sums[:, -1]
        for j in range(terms.shape[1]):
            first = self.add(first, terms[:, j])
        return first

    def of(self, f: Unary) -> Unary:
        """`f` computed in float32 and stored in the dtype (Eigen's half and bfloat16 packets and scalars)."""
        return lambda a: self.rnd(f(a))


FLOAT32 = Kind(rounder(None))
WIDE = Kind(rounder(lowp.WIDE), lanes=WIDE_PACKET, dtype=np.float64)  # double's kernels


def kind_of(half: Any, p: Array | None = None) -> Kind:
    """The Kind of a half dtype (None: float32; or double, WIDE, where the predictions `p` given are doubles: the
    float64 kernels, conventions' kernels_float64)."""
    if half is None and p is not None and p.dtype == np.float64:
        return WIDE
    if half is None:
        return FLOAT32
    if half is lowp.WIDE:
        return WIDE
    return Kind(rounder(half), 200 if half is np.float16 else 128, half)


def predux(acc: Array, kind: Kind) -> Array:
    """A packet's lanes added as AVX adds them (in float32 for the half dtypes, stored once in the dtype): the
    upper half onto the lower, and again, to the last two."""
    while acc.shape[1] > 1:
        half = acc.shape[1] // 2
        acc = acc[:, :half] + acc[:, half:]
    return kind.rnd(kind.ftz(acc[:, 0]))


def row_sums(x: Array, packet: Unary | None = None, scalar: Unary | None = None, kind: Kind = FLOAT32) -> Array:
    """Each row's sum as Eigen's InnerMostDimReducer forms it in `kind`, each value read through `packet` (whole
    packets) or `scalar` (the rest) first. A long row's split point is aligned in the flattened tensor, so rows
    are taken in groups of the same offset modulo a packet."""
    rows, n = x.shape
    read = (packet or kind.ftz, scalar or kind.ftz)
    if n <= kind.lanes * kind.leaf or n % kind.lanes == 0:
        return _reduce(x, (0, 0, n), read, kind)
    out = np.empty(rows, dtype=kind.dtype)
    offset = (np.arange(rows) * n) % kind.lanes
    for base in np.unique(offset):
        out[offset == base] = _reduce(x[offset == base], (int(base), 0, n), read, kind)
    return out


def _reduce(x: Array, span: tuple[int, int, int], read: tuple[Unary, Unary], kind: Kind) -> Array:
    """x[:, first:first + num] summed (span: the rows' offset in packets, first, num): halves (split at a packet
    boundary of the flattened tensor) when longer than a leaf, else four packet accumulators over blocks of four
    packets, one accumulator for the whole packets after them, the remainder added one by one, and that sum plus
    the packet's lanes."""
    base, first, num = span
    lanes = kind.lanes
    if num > lanes * kind.leaf:
        split = lanes * -(-(base + first - (-num // 2)) // lanes) - base
        left = min(split - first, num)
        total = _reduce(x, (base, first, left), read, kind)
        if left < num:
            total = kind.add(total, _reduce(x, (base, split, num - left), read, kind))
        return kind.add(kind.dtype(0), total)
    packet, scalar = read
    rows, whole = x.shape[0], num // lanes * lanes
    packets = packet(x[:, first:first + whole]).reshape(rows, whole // lanes, lanes)  # (each value read once)
    acc = np.zeros((rows, lanes), dtype=kind.dtype)
    start = 0
    if num >= 4 * lanes:  # accumulators 0-3 take packets 0-3, 4-7, ... in turn
        start = num // (4 * lanes) * 4 * lanes
        turns = packets[:, :start // lanes].reshape(rows, -1, 4, lanes)
        accs = [kind.running(acc, turns[:, :, q]) for q in range(4)]
        acc = kind.add(kind.add(kind.add(accs[0], accs[1]), accs[2]), accs[3])
    acc = kind.running(acc, packets[:, start // lanes:])
    rest = np.zeros(rows, dtype=kind.dtype)
    for j in range(max(start, whole), num):
        rest = kind.add(rest, scalar(x[:, first + j]))
    return kind.add(rest, predux(acc, kind))


def full_sum(x: Array, kind: Kind = FLOAT32) -> Any:
    """tf.reduce_sum over a whole 1-D tensor: the same reducer over all its values (bfloat16 summed in float32,
    TensorFlow's cast specialisation, and the sum stored once); one value is copied (−0 kept)."""
    if x.size == 1:
        return kind.dtype(x.reshape(-1)[0])
    if kind.leaf == 128:
        return F32(kind.rnd(row_sums(x.reshape(1, -1))))[0]
    return kind.dtype(row_sums(x.reshape(1, -1), kind=kind)[0])


def softmax_xent(z: Array, y: Array, labels: Array | None, kind: Kind = FLOAT32,
                 place: Place | None = None, tail: int | None = None) -> tuple[Array, Array, Array]:
    """SoftmaxCrossEntropyWithLogits (probability rows) or its sparse twin (class indexes), every Eigen operation
    stored in `kind`: per-row losses, the kernel's backprop softmax − y and its softmax. Both take s = z − max and
    Σe^s by rows (packet e^x over whole packets of the row, glibc's for the rest) and e^s over the flattened
    tensor; the sparse loss is log Σ − s at the label (glibc's logf, one element at a time), the dense one
    Σ y·(log Σ − s) by rows, log Σ in packets of rows; the dense backprop's e^s in Eigen's blocks of the whole
    batch (`tiled`: `place`, where these rows lie in it; the sparse one's `elementwise`: `tail`)."""
    r = kind.rnd
    s = r(sub(z, z.max(axis=1, keepdims=True)))
    total = row_sums(s, kind.of(pexp), kind.of(libm_expf), kind)
    if labels is None:
        log_total = elementwise(total, kind.of(plog), kind.of(libm_logf))
        losses = row_sums(r(mul(y, r(sub(log_total[:, None], s)))), kind=kind)
    else:
        losses = r(sub(r(libm_logf(total)), s[np.arange(z.shape[0]), labels]))
    e = (elementwise(s, kind.of(pexp), kind.of(libm_expf), tail) if labels is not None
         else tiled(s, kind.of(pexp), kind.of(libm_expf), XENT_BLOCK, place))
    prob = r(div(e, total[:, None]))
    return losses, r(sub(prob, y)), prob


def upstream(n: float, kind: Kind = FLOAT32) -> Any:
    """The gradient reaching the per-sample losses: 1 for a sum, 1/N for the mean (divide_no_nan's gradient, N
    cast to the dtype: a bfloat16 has no 301)."""
    return kind.dtype(1) if n == 1 else kind.dtype(kind.div(kind.dtype(1), kind.number(n)))


def held_weights(weights: Array, kind: Kind, keras2: bool) -> Array:
    """The sample weights as the loss's dtype holds them: Keras 3 converts the float64 numbers to it (rounded once),
    tf-keras makes a float64 tensor of them and casts it (Eigen's cast goes through float32: rounded twice); double
    holds them as they are. A subnormal is read as 0 by the multiplications (TensorFlow's denormals-are-zero), but
    in float16."""
    w = np.asarray(weights, dtype=np.float64)
    if kind is WIDE:
        return kind.ftz(w)
    if kind.half is None or keras2:
        w = w.astype(F32)
    held = np.asarray(w.astype(kind.half or F32), dtype=F32)
    return ftz(held) if kind.leaf != 200 else held


def upstreams(n: float, kind: Kind, rows: int, w: Array | None = None) -> Array:
    """The gradient reaching each sample's loss: the reduction's (1, or 1/N), and under sample weights Mul's
    gradient of `losses * sample_weight`, that times the sample's weight, in the dtype."""
    u = upstream(n, kind)
    return np.full(rows, u, dtype=kind.dtype) if w is None else kind.mul(u, w)


def weighed(losses: Array, back: Callable[[Array], Array], kind: Kind, w: Array | None, **more: Any) -> Parts:
    """The Parts of per-sample losses and their backward (each sample's upstream -> the predictions' gradient):
    under sample weights w (held_weights) Keras' `losses * sample_weight` in the dtype, reduced as unweighted
    losses are, and the gradient of their sum or mean the backward of each sample's upstream (`upstreams`)."""
    if w is not None:
        losses = kind.mul(losses, w.reshape((-1,) + (1,) * (losses.ndim - 1)))

    def grad(n: float) -> Array:
        with np.errstate(all="ignore"):
            return back(upstreams(n, kind, losses.shape[0], w))
    return Parts(losses=losses, grad=grad(1), mean_grad=grad, **reduced(losses, kind), **more)


def ce(y: Array, z: Array, labels: Array | None, half: Any, place: Place | None = None,
       tail: int | None = None) -> tuple[Array, Callable[[Array], Array], Array]:
    """Keras' cross entropy from logits: tf.nn's wrappers take half logits to float32 before the fused kernel
    (probability rows: float16 and bfloat16; class indexes: float16 only, bfloat16 runs the kernel in bfloat16),
    its loss and gradient rounded once on the way back. The gradient is each sample's upstream times its row of
    the backprop (`place`: where these rows lie in the whole batch)."""
    kind = kind_of(half)
    inner = FLOAT32 if half is np.float16 or labels is None else kind
    losses, backprop, prob = softmax_xent(z, y, labels, inner, place, tail)
    return kind.rnd(losses), lambda c: kind.rnd(mul(c[:, None], backprop)), kind.rnd(prob)


def mse(y: Array, p: Array, half: Any, keras2: bool) -> tuple[Array, Callable[[Array], Array]]:
    """mean_squared_error: the mean over each sample's outputs of (y − p)², each difference and square stored in
    the dtype; Keras 3 takes the mean in float32 (keras.ops.mean), tf-keras in the dtype (reduce_mean: float16
    sums in float16 and divides by k in float16, bfloat16 in float32). The gradient −G·2(y − p), G the upstream
    c over k as that mean's gradient divides it (c: each sample's upstream); tf-keras's squared_difference(p, y)
    has it as 2G·(p − y), +0 where p = y (or where both are subnormal)."""
    kind = kind_of(half)
    y, p = ftz(y), ftz(p)  # (subnormal inputs read as zero: TensorFlow's denormals-are-zero, which signs the zeros)
    d = kind.rnd(sub(y, p))
    sq = kind.rnd(mul(d, d))
    k = F32(p.shape[1])
    in_dtype = keras2 and half is np.float16
    sums = row_sums(sq, kind=kind) if in_dtype else row_sums(sq)
    losses = kind.rnd(div(sums, kind.rnd(k) if in_dtype else k))
    divisor = kind.rnd(k) if keras2 else k

    def grad(c: Array) -> Array:
        g = kind.rnd(div(c[:, None], divisor))
        if keras2:
            return kind.rnd(mul(mul(g, F32(2)), kind.rnd(sub(p, y))))
        return -kind.rnd(mul(g, kind.rnd(mul(d, F32(2)))))  # (Square's gradient: x·2 in the dtype, ∞ beyond it)
    return losses, grad


def placed(loss: str, from_logits: bool, probability_rows: bool, dtype: str = "float32") -> bool:
    """Whether a row's results depend on where it lies in the whole batch: ce from logits of probability rows, whose
    backprop's blocks (`tiled`) are the batch's."""
    return loss == "ce" and from_logits and probability_rows


# losses TensorFlow computes in every dtype whose kernels lossgrad does not reproduce, and what they are
NOT_YET: dict[str, str] = {}


WEIGHABLE = ("ce", "mse")  # the losses whose kernels are reproduced under sample weights too


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why TensorFlow's kernels for this loss and these options are not reproduced (None: they are)."""
    extra = [k for k, v in params.items()  # (ce from logits and mse clip nothing: eps changes neither)
             if not (v is None or v is False or (np.ndim(v) == 0 and v == 0) or k == "eps"
                     or (k, loss) == ("label_smoothing", "ce")
                     or ((k, loss) == ("ignore_index", "ce") and not sample_weight  # (ignore_index: unweighed)
                         and params.get("class_weights") is None)
                     or ((k, loss) == ("class_weights", "ce") and params.get("ignore_index") is None))]
    if sample_weight and loss not in WEIGHABLE:
        extra.append("sample_weight")
    if loss in ("bce", "kl") or (loss == "ce" and not from_logits):
        return (f"{loss}{'' if from_logits else ' on probabilities'} (TensorFlow's gradient of log and log1p "
                "multiplies by Eigen's reciprocal, the processor's rcpps estimate refined by a Newton step, whose "
                "bits differ between processors)")
    if loss not in ("ce", "mse"):
        return NOT_YET.get(loss, loss)
    return f"{loss} with {', '.join('{' + k + '}' for k in extra)}" if extra else None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, keras2: bool = False,
            from_logits: bool = True, weights: Array | None = None) -> Parts:
    """The loss's parts as TensorFlow's CPU kernels give them (half None: float32; half dtypes carried in
    float32): per-sample losses (Keras' mean over a sample's outputs as it takes it; under sample weights times
    them, `weighed`), the gradient of the sum or of the mean over N, the kernel's softmax (ce), and the reduced
    value (reduce_sum of the losses, divided by N in the dtype). `from_logits` is taken as every backend takes
    it: `unsupported` has refused probabilities before. `params`' place is where these rows lie in the whole
    batch (a slice of it, or a file's block: ce's blocks are the batch's)."""
    kind = kind_of(half)
    y, p = y.astype(F32), p.astype(F32)
    w = None if weights is None else held_weights(weights, kind, keras2)
    with np.errstate(all="ignore"):
        if loss == "ce":
            notes: list[str] = []
            keep = kept(y, labels, params or {})
            if labels is not None:
                labels, notes = (labels, []) if keras2 else cast_labels(labels, kind, p.shape[1])
                y = one_hot(labels, p.shape[1])
            if labels is not None and keep is not None:
                return ignoring(y, p, labels, keep, half, keras2, switches.get("mean", True), params or {}, notes)
            losses, back, prob = ce(y, p, labels, half, (params or {}).get("place"))
            return weighed(losses, back, kind, w, prob=prob, warnings=notes)
        losses, back = mse(y, p, half, keras2)
        if p.shape[1] == 1:  # (one output: its losses are the elements, as the formulas give them)
            losses = losses[:, None]
        return weighed(losses, back, kind, w)


def kept(y: Array, labels: Array | None, params: dict[str, Any]) -> Array | None:
    """The samples ignore_index keeps (None: it is not set): those whose one-hot row is not all zeros."""
    if labels is None or params.get("ignore_index") is None:
        return None
    out: Array = y[np.arange(y.shape[0]), labels] != 0
    return out


def ignoring(y: Array, z: Array, labels: Array, keep: Array, half: Any, keras2: bool, mean: bool,
             params: dict[str, Any], notes: list[str]) -> Parts:
    """Sparse cross entropy with ignore_class, as Keras 3 and tf-keras leave samples out: the mask of the kept
    ones becomes the sample weights, and the mean stays over every sample N. Keras 3 zeroes the left-out rows'
    logits (ops.where) and runs the kernel on every row; tf-keras takes the kept rows (boolean_mask), runs the
    kernel on them alone and scatters the losses back (scatter_nd). Under the mean each kept sample weighs
    N/K in the dtype (K the kept samples of the batch, the mean's N as lossgrad counts it, summed by reduce_sum;
    Keras 3's divide_no_nan weighs nothing when K is 0, tf-keras' N/0 is ∞, and 0·∞ NaN), so the value is
    reduce_sum(loss · N/K) / N and the gradient reaching a sample's loss (1/N)·(N/K); under the sum the mask
    itself (1 or 0)."""
    kind = kind_of(half)
    r, m = kind.rnd, keep.astype(F32)
    place = params.get("place")
    rows = place[1] if place is not None and place[1] is not None else z.shape[0]
    whole = params.get("kept")  # (the batch's kept samples, where these rows are a slice of it)
    if keras2:
        tail = None if whole is None or place is None else _kept_tail(whole, place[0], keep, z.shape[1])
        losses, back_kept, kept_prob = ce(y[keep], z[keep], labels[keep], half, tail=tail)
        losses, prob = _scattered(losses, keep), _scattered(kept_prob, keep)

        def back(c: Array) -> Array:
            return _scattered(back_kept(c[keep]), keep)
    else:
        losses, back_all, prob = ce(y, np.where(keep[:, None], z, F32(0)), labels, half, place)
        losses = np.where(keep, losses, F32(0))

        def back(c: Array) -> Array:
            return np.where(keep[:, None], back_all(c), F32(0))
    total = r(F32(rows))

    def weights(mask: Array, n: float) -> Array:
        """Each sample's weight in a mean whose N counts n kept samples (these rows: reduce_sum's own count)."""
        if not mean:
            return mask
        count = full_sum(whole.astype(F32) if whole is not None else mask, kind) if whole is not None or \
            n == mask.sum() else r(F32(n))
        if keras2:
            return r(mul(mask, r(div(total, count))))
        return np.where(mask != 0, F32(0) if count == 0 else r(div(total, count)), F32(0)).astype(F32)

    def value(parts: dict[str, Array], n: float) -> float:
        with np.errstate(all="ignore"):
            total_sum = full_sum(r(mul(parts["losses"], weights(parts["kept"], n))), kind)
            return float(r(div(total_sum, total)) if mean else total_sum)

    def grad(n: float) -> Array:
        with np.errstate(all="ignore"):
            return back(r(mul(upstream(rows, kind), weights(m, n))) if mean else m)
    return Parts(losses=losses, grad=back(m), mean_grad=grad, prob=prob, warnings=notes,
                 **joined({"losses": losses, "kept": m}, value))


def batch_totals(loss: str, labels: Array, ignored: Array | None, half: Any, params: dict[str, Any]) -> dict[str, Any]:
    """What a slice of a batch needs of the whole: the samples ignore_index keeps ({}: none are left out)."""
    return {} if ignored is None or loss != "ce" else {"kept": ~ignored}


def _kept_tail(whole: Array, first: int, keep: Array, classes: int) -> int:
    """How many of these rows' kept elements are the last (size mod 8) of the batch's kept rows, boolean_mask's
    tensor, which the sparse kernel's e^x takes one at a time."""
    before, size = int(whole[:first].sum()) * classes, int(whole.sum()) * classes
    end = before + int(keep.sum()) * classes
    return max(0, end - max(size - size % PACKET, before))


def _scattered(kept_rows: Array, keep: Array) -> Array:
    """scatter_nd of the kept rows' results into zeros of every row."""
    out = np.zeros((keep.size, *kept_rows.shape[1:]), dtype=F32)
    out[keep] = kept_rows
    return out


def smoothed(y: Array, s: float, classes: int | None, kind: Kind, keras2: bool) -> Array:
    """Keras' label smoothing of the targets, in the loss's dtype: y·(1 − s) + s/C over C classes (ce), or
    + ½·s (bce, `classes` None). Keras 3 takes 1 − s and ½·s as Python floats, each converted to the dtype, and s/C
    as s converted to it over C cast to it; tf-keras converts s to the dtype first and forms 1 − s, s/C and ½·s
    there."""
    def held(x: float) -> Array:
        return np.asarray(np.asarray(x, dtype=np.float64).astype(kind.half or F32), dtype=F32)

    r = kind.rnd
    c = None if classes is None else r(F32(classes))
    if keras2:
        ls = held(s)
        a, b = r(sub(F32(1), ls)), r(mul(F32(0.5), ls)) if c is None else r(div(ls, c))
    else:
        a, b = held(1.0 - s), held(0.5 * s) if c is None else r(div(held(s), c))
    return r(add(r(mul(y, a)), b))


def reduced(losses: Array, kind: Any) -> dict[str, Any]:
    """Parts' mean_value, value_parts and value_fold of reduced_value: over these losses alone, and over a batch's
    slices' losses joined (reduce_sum over the whole batch: its tree of halves depends on every loss's place)."""
    return joined({"losses": losses}, lambda parts, n: reduced_value(parts["losses"], kind)(n))


def reduced_value(losses: Array, kind: Any) -> Callable[[float], float]:
    """The reduced value as Keras forms it from the per-sample losses: their reduce_sum (n = 1), or that sum
    divided by N held in the dtype."""
    def value(n: float) -> float:
        with np.errstate(all="ignore"):
            total = full_sum(losses.reshape(-1), kind)
            return float(total if n == 1 else kind.div(total, kind.number(n)))
    return value


def cast_labels(labels: Array, kind: Kind, classes: int) -> tuple[Array, list[str]]:
    """Class indexes as Keras 3 has them: cast to the loss's dtype with the predictions (and back to int64), so a
    half dtype rounds a large index to a neighbouring class (tf-keras passes them on as they are); a warning names
    the first."""
    held = kind.rnd(labels.astype(F32))  # (float16 holds no index from 65,520: they become ∞)
    name = "bfloat16" if kind.leaf == 128 else "float16"
    beyond = np.flatnonzero(held >= classes)
    if beyond.size:
        j = int(beyond[0])
        became = (f"class {int(held[j])}", f"beyond the last of the {classes} classes") if np.isfinite(held[j]) \
            else ("∞", "no class (as an int64, −9223372036854775808)")
        raise DomainError("target", j, 0, float(labels[j]), f"becomes {became[0]} in {name} (Keras 3 casts the "
                          f"targets to the loss's dtype), {became[1]}: TensorFlow refuses it (InvalidArgumentError)")
    cast = held.astype(np.int64)
    moved = np.flatnonzero(cast != labels)
    if not moved.size:
        return labels, []
    i = int(moved[0])
    return cast, [f"{moved.size} class index{'es' if moved.size > 1 else ''} (first {labels[i]} at row {i}) "
                  f"rounded to another class by Keras' cast of the targets to {name}: {labels[i]} became "
                  f"{cast[i]}, as the framework computes it"]
