"""TensorFlow's CPU kernels for the Keras losses whose gradients go through log and log1p (bce on probabilities and
from logits, kl, ce on probabilities, poisson, focal, categorical-focal), in float32, float16 and bfloat16, as
Keras 3 and tf-keras call them (tf-keras' with `keras2`: its mean over a sample's outputs in the loss's dtype); the
main module of the `tf` and `tf-keras` backends, every other loss passed on to lossgrad.lowp_tf.

TensorFlow differentiates log x as g·(1/x) and log(1 + x) as g·(1/(1 + x)), with Eigen's reciprocal: in float32
the processor's `rcpps` estimate refined by one Newton step (x + x·(1 − a·x), each operation rounded), whose last
bits are the processor's own (lossgrad.lowp_tf_rcp carries this one's). Half and bfloat16 packets widen to float32,
take that reciprocal and round it to the dtype (the elements after the last whole packet divide 1 by x in float32):
within Eigen's 2 float32 ulps, a reciprocal of a bfloat16 value never lies so near a midpoint of bfloat16 that the
rounding could tell the estimate from 1/x, and of a float16 value only for the 28 magnitudes 2^e·(2 − 2^−10),
which the reciprocal measured here rounds as 1/x does. So in the half dtypes 1/x in float32, rounded, is the
kernel's, except that a bfloat16 subnormal reads as 0 (the reciprocal's flush of denormal inputs): 1/x = ±∞, and
beyond 2^100 the Newton step's correction is flushed (refused). Every other operation is Eigen's, each rounded to
the dtype (lossgrad.lowp_tf's packet log and exp, glibc's for the scalar remainder, its row sums and Keras' means);
in the half dtypes pow is glibc's powf element by element, Eigen having no half packet pow. float32's pow and
sigmoid are Eigen's float kernels, and the float32 and bfloat16 softmax oneDNN's (lossgrad.lowp_tf_focal32).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import eigen64, flush, lowp_tf, lowp_tf_focal32, lowp_tf_rcp
from .errors import NotReproduced
from .losses import Parts
from .losses._ops import Array
from .losses.base import Place
from .lowp import libm_log1pf
from .lowp_tf import (
    F32,
    PACKET,
    TINY,
    WIDE,
    Kind,
    add,
    div,
    elementwise,
    ftz,
    held_weights,
    kind_of,
    libm_expf,
    mul,
    pexp,
    plog,
    row_sums,
    sub,
)
from .lowp_tf_elem import rsum

EPS = 1e-7  # keras.backend.epsilon()
HUGE = F32(2.0 ** 100)
# the options each loss's kernels take
TAKES = {"focal": ("gamma", "alpha"), "categorical-focal": ("gamma", "class_alpha"), "bce": ("label_smoothing",),
         "ce": ("label_smoothing", "class_weights")}  # (class weights: fit's sample weights)
WEIGHABLE = ("bce", "kl", "poisson", "focal", "categorical-focal", "ce")  # (reproduced under sample weights too)
SUPPORTED = (*lowp_tf.SUPPORTED, "bce (on probabilities and from logits, with label smoothing)", "kl",
             "ce on probabilities (rows, with label smoothing, or class indexes)", "poisson",
             "focal (probabilities and logits, gamma, alpha)",
             "categorical-focal (probabilities and logits; gamma, class_alpha: one, or one per class in float32 and "
             "float64)")


DTYPES = ("float32", "float16", "bfloat16", "float64")  # (float64: unsupported_dtype)
batch_totals = lowp_tf.batch_totals  # (ce from logits with ignore_index: the samples kept)


def covers(loss: str, from_logits: bool) -> bool:
    """The losses this module reproduces: their gradients go through log or log1p."""
    return loss in ("bce", "kl", "poisson", "focal", "categorical-focal") or (loss == "ce" and not from_logits)


def placed(loss: str, from_logits: bool, probability_rows: bool, dtype: str = "float32") -> bool:
    """Whether a row's results depend on where it lies in the whole batch (lowp_tf.placed; this module's losses
    compute each row alone, but for categorical-focal's Eigen softmax, whose blocks and reciprocals are the
    batch's: eigen_softmax, wherever oneDNN does not take the softmax, which it does in float32 and bfloat16 only)."""
    if loss == "categorical-focal":
        return from_logits and not (lowp_tf_focal32.onednn() and dtype in ("float32", "bfloat16"))
    return not covers(loss, from_logits) and lowp_tf.placed(loss, from_logits, probability_rows)


def recip(x: Array, kind: Kind) -> Array:
    """Eigen's reciprocal in the dtype: in float32 `rcpps` refined by a Newton step (lossgrad.lowp_tf_rcp); in the
    half dtypes 1/x in float32, rounded (a bfloat16 subnormal read as 0 gives ±∞). Beyond 2^100 (bfloat16 only)
    the Newton step's correction is subnormal and flushed, leaving `rcpps` itself."""
    if kind is lowp_tf.FLOAT32:
        return lowp_tf_rcp.reciprocal(x)
    if kind is WIDE:  # (double: Eigen's pdiv, 1/x correctly rounded)
        return kind.div(1.0, x)
    out = kind.rnd(div(F32(1), x))
    if kind.leaf == 128:
        out = np.where((np.abs(x) < TINY) & (x != 0), np.copysign(F32(np.inf), x), out).astype(F32)
        huge = np.flatnonzero(np.isfinite(x) & (np.abs(x) >= HUGE))
        if huge.size:
            raise NotReproduced("dtype", f"TensorFlow's bfloat16 reciprocal of {float(x.flat[huge[0]]):g} (beyond "
                                "2^100 its Newton step is flushed to zero, leaving the processor's own rcpps "
                                "estimate) is not reproduced; use {dtype} float32 or float64")
    return out


def log(x: Array, kind: Kind) -> Array:
    """tf.math.log: Eigen's packet log over whole packets, glibc's logf for the rest, stored in the dtype (log 0
    = −∞, log ∞ = ∞, log NaN = NaN, either way); double's is lossgrad.eigen64's."""
    if kind is WIDE:
        return eigen64.log(x)
    out = elementwise(x, kind.of(plog), kind.of(lowp_tf.libm_logf))
    return np.where(x == 0, F32(-np.inf), np.where((x == np.inf) | np.isnan(x), x, out)).astype(F32)


def plog1p(x: Array) -> Array:
    """Eigen's generic_log1p: u = 1 + x; x where u is 1 (or log u is u: ∞), else x·(log u / (u − 1))."""
    u = add(x, F32(1))
    lu = plog(u)
    return np.where((u == F32(1)) | (lu == u), x, mul(x, div(lu, sub(u, F32(1))))).astype(F32)


def const(v: float, kind: Kind) -> F32:
    """A Python number converted to the dtype (Keras' ε and 1 − ε, focal's γ and α), as it is stored: a packet
    operation reads a subnormal one as 0 (focal32.ppow), the C library's powf as it is."""
    return F32(kind.rnd(np.asarray(v, dtype=np.float64).astype(F32)))


def sample_mean(x: Array, kind: Kind, half: Any, keras2: bool) -> tuple[Array, Callable[[Array], Array]]:
    """Keras' mean over a sample's outputs (as lowp_tf.mse takes it: Keras 3 in float32, tf-keras by reduce_mean
    in the dtype) and its gradient: the upstream c over k as that mean divides it."""
    k = F32(x.shape[1])
    in_dtype = keras2 and half is np.float16
    sums = row_sums(x, kind=kind) if in_dtype else row_sums(x)
    if x.shape[1] == 1:  # (TensorFlow's reduction over an axis of one is a copy: −0 stays −0)
        sums = x[:, 0]
    losses = kind.rnd(div(sums, kind.rnd(k) if in_dtype else k))
    divisor = kind.rnd(k) if keras2 else k
    return losses, lambda c: kind.rnd(div(c, divisor))


def clip(p: Array, lo: Any, hi: Any) -> tuple[Array, Array]:
    """tf.clip_by_value (minimum, then maximum) and where its gradient passes (ties pass)."""
    low = np.minimum(p, hi)
    return np.maximum(low, lo), (p <= hi) & (low >= lo)


def bce_probs(y: Array, p: Array, kind: Kind, keras2: bool) -> tuple[Array, Callable[[Array], Array]]:
    """Keras' binary_crossentropy on probabilities: −(y·log o + (1 − y)·log(1 − o)), o = p clipped to [ε, 1 − ε]
    (tf-keras: 1 − ε formed in the dtype, and ε added again inside both logs); the gradient through each log is
    its upstream times Eigen's reciprocal, the two added, masked by the clip."""
    r = kind.rnd
    lo = const(EPS, kind)
    hi = F32(r(sub(F32(1), lo))[()]) if keras2 else const(1 - EPS, kind)
    o, passes = clip(p, lo, hi)
    a, b = (r(add(o, lo)), r(add(r(sub(F32(1), o)), lo))) if keras2 else (o, r(sub(F32(1), o)))
    w = r(sub(F32(1), y))
    e = -r(add(r(mul(y, log(a, kind))), r(mul(w, log(b, kind)))))

    def grad(c: Array) -> Array:
        da = r(mul(r(mul(-c, y)), recip(a, kind)))
        db = r(mul(r(mul(-c, w)), recip(b, kind)))
        return np.where(passes, r(sub(da, db)), F32(0)).astype(F32)
    return e, grad


def bce_logits(y: Array, z: Array, kind: Kind) -> tuple[Array, Callable[[Array], Array]]:
    """tf.nn.sigmoid_cross_entropy_with_logits: relu(z) − z·y + log1p(e^−|z|), the selects on z ≥ 0; its
    gradient is autograd's four paths into z (the relu's select, −g·y, and e^−|z|'s two selects), added in the
    order the tape collects them."""
    r = kind.rnd
    pos = z >= 0
    na = np.where(pos, -z, z).astype(F32)
    ex = elementwise(na, kind.of(pexp), kind.of(libm_expf))
    lp = elementwise(ex, kind.of(plog1p), kind.of(libm_log1pf))
    e = r(add(r(sub(np.where(pos, z, F32(0)), r(mul(z, y)))), lp))

    def grad(c: Array) -> Array:
        dna = r(mul(r(mul(c, recip(r(add(F32(1), ex)), kind))), ex))
        zy = r(mul(-c, y))
        return np.where(pos, r(sub(r(add(c, zy)), dna)), r(add(zy, dna))).astype(F32)
    return e, grad


def kl(y: Array, p: Array, kind: Kind) -> tuple[Array, Callable[[Array], Array]]:
    """Keras' kl_divergence: Σ y·log(y/p) by rows, y and p clipped to [ε, 1]; the gradient through the log's
    reciprocal, then RealDiv's −y/p/p, masked by the clip."""
    r = kind.rnd
    lo = const(EPS, kind)
    yt, _ = clip(y, lo, F32(1))
    yp, passes = clip(p, lo, F32(1))
    q = r(div(yt, yp))
    losses = rsum(r(mul(yt, log(q, kind))), kind)

    def grad(c: Array) -> Array:
        dq = r(mul(r(mul(c, yt)), recip(q, kind)))
        return np.where(passes, r(mul(dq, r(div(r(div(-yt, yp)), yp)))), F32(0)).astype(F32)
    return losses, grad


def ce_probs(y: Array, p: Array, kind: Kind, keras2: bool) -> tuple[Array, Callable[[Array], Array]]:
    """Keras' categorical_crossentropy on probabilities: each row divided by its reduce_sum, clipped to [ε, 1 − ε],
    −Σ y·log o by rows; the gradient through the log's reciprocal and the clip, then RealDiv's two paths (g/s, and
    the row's reduce_sum of g·(−p/s)/s for the sum), added."""
    r = kind.rnd
    lo = const(EPS, kind)
    hi = F32(r(sub(F32(1), lo))[()]) if keras2 else const(1 - EPS, kind)
    s = rsum(p, kind)[:, None]
    o, passes = clip(r(div(p, s)), lo, hi)
    losses = -rsum(r(mul(y, log(o, kind))), kind)

    def grad(c: Array) -> Array:
        do = np.where(passes, r(mul(r(mul(-c, y)), recip(o, kind))), F32(0)).astype(F32)
        ds = rsum(r(mul(do, r(div(r(div(-p, s)), s)))), kind)
        return r(add(r(div(do, s)), ds[:, None]))
    return losses, grad


def sparse_probs(y: Array, p: Array, labels: Array, kind: Kind, half: Any, keras2: bool,
                 weights: Array | None = None) -> Parts:
    """Keras' sparse_categorical_crossentropy on probabilities: log of p clipped to [ε, 1 − ε] (tf-keras: 1 − ε
    in the dtype) as the logits of the sparse kernel (lowp_tf's, class indexes cast as Keras casts them, weighed
    there), whose gradient comes back through the log's reciprocal and the clip."""
    r = kind.rnd
    lo = const(EPS, kind)
    hi = F32(r(sub(F32(1), lo))[()]) if keras2 else const(1 - EPS, kind)
    with np.errstate(all="ignore"):
        o, passes = clip(p.astype(F32), lo, hi)
        parts = lowp_tf.compute("ce", y, log(o, kind), labels, half, {}, keras2=keras2, weights=weights)
    inner = parts.mean_grad or (lambda n: parts.grad)

    def mean_grad(n: float) -> Array:
        with np.errstate(all="ignore"):
            return np.where(passes, r(mul(inner(n), recip(o, kind))), F32(0)).astype(F32)
    parts.mean_grad, parts.grad = mean_grad, mean_grad(1)
    return parts


def poisson(y: Array, p: Array, kind: Kind) -> tuple[Array, Callable[[Array], Array]]:
    """Keras' poisson: p − y·log(p + ε); the gradient c + (−c·y)·(1/(p + ε))."""
    r = kind.rnd
    a = r(add(p, const(EPS, kind)))
    e = r(sub(p, r(mul(y, log(a, kind)))))
    return e, lambda c: r(add(c, r(mul(r(mul(-c, y)), recip(a, kind)))))


def sigmoid(z: Array, kind: Kind) -> Array:
    """tf.sigmoid in a half dtype: Eigen's logistic e/(1 + e), e = e^z (packet exp, glibc's for the rest), each
    step rounded; 1 where e is ∞ (float32: Eigen's float logistic, lossgrad.lowp_tf_focal32)."""
    if kind is lowp_tf.FLOAT32:
        return lowp_tf_focal32.sigmoid(z)
    r = kind.rnd
    e = elementwise(z, kind.of(pexp), kind.of(libm_expf))
    return np.where(e == np.inf, F32(1), r(div(e, r(add(F32(1), e))))).astype(F32)


def sigmoid_grad(s: Array, d: Array, kind: Kind) -> Array:
    """SigmoidGrad: d·(s·(1 − s)) over whole packets, (d·s)·(1 − s) for the rest, each product rounded."""
    r = kind.rnd
    q = r(sub(F32(1), s))
    tail = np.arange(s.size).reshape(s.shape) >= s.size - s.size % PACKET
    return np.where(tail, r(mul(r(mul(d, s)), q)), r(mul(d, r(mul(s, q))))).astype(F32)


def power(x: Array, g: Any, kind: Kind) -> Array:
    """tf.pow in a half dtype: glibc's powf element by element (Eigen has no half packet pow), rounded; powf is
    taken as x^g rounded to float32 (a subnormal flushed to zero). float32: Eigen's packet pow, then powf
    (lossgrad.lowp_tf_focal32)."""
    if kind is lowp_tf.FLOAT32:
        return lowp_tf_focal32.power(x, g)
    if kind is WIDE:  # (double: Eigen's packet pow, then the C library's pow: lossgrad.eigen64)
        return eigen64.power(x, float(g))
    return kind.rnd(ftz(np.power(x.astype(np.float64), np.float64(g)).astype(F32)))


def focal(y: Array, p: Array, kind: Kind, keras2: bool, from_logits: bool, gamma: float,
          alpha: float | None) -> tuple[Array, Callable[[Array], Array]]:
    """binary_focal_crossentropy: (1 − p_t)^γ·bce (times α_t with class balancing), p_t = y·s + (1 − y)·(1 − s),
    s = σ(z) from logits, whose bce is sigmoid_cross_entropy_with_logits of z (Keras 3 finds the logits behind s).
    The gradient: pow's (g·γ)·x^(γ−1); on probabilities the bce's and p_t's two paths into p added, from logits
    the bce's gradient for z plus σ's gradient of p_t's paths."""
    r = kind.rnd
    s = sigmoid(p, kind) if from_logits else p
    w = r(sub(F32(1), y))
    b, bgrad = bce_logits(y, p, kind) if from_logits else bce_probs(y, s, kind, keras2)
    m = r(sub(F32(1), r(add(r(mul(y, s)), r(mul(w, r(sub(F32(1), s))))))))
    g = const(gamma, kind)
    ff = power(m, g, kind)
    wt = None if alpha is None else r(add(r(mul(y, const(alpha, kind))), r(mul(w, const(1 - alpha, kind)))))
    fb = r(mul(ff, b)) if wt is None else r(mul(wt, r(mul(ff, b))))

    def grad(c: Array) -> Array:
        c = c if wt is None else r(mul(c, wt))
        dm = r(mul(r(mul(r(mul(c, b)), g)), power(m, F32(r(sub(g, F32(1)))), kind)))
        d1, d2 = r(mul(-dm, y)), r(mul(-dm, w))
        db = r(mul(c, ff))
        if from_logits:  # (the logits' bce gradient, then σ's for the paths through s)
            return r(add(bgrad(db), sigmoid_grad(s, r(sub(d1, d2)), kind)))
        return r(add(bgrad(db), r(sub(d1, d2))))
    return fb, grad


# the block size Eigen's cost model gives the float32 softmax's e^(z − max) (an expression with a broadcast, evaluated
# in blocks: lowp_tf.tiled), read back from TensorFlow 2.21 where the blocks' scalar remainders fall in rows of 7 to
# 40,000 (scripts/golden_avx2_tf_xla.py)
SOFTMAX_BLOCK = 6956
WHOLE = np.iinfo(np.int64).max  # (one block: the batch's last elements are the scalar ones)
# the double softmax's blocks (Eigen's cost model for an expression of doubles), read back from TensorFlow 2.21 as
# SOFTMAX_BLOCK was (tests/test_tf_focal64.py)
SOFTMAX_BLOCK64 = 2539


def softmax(z: Array, kind: Kind, place: Place | None = None) -> Array:
    """tf.nn.softmax along the rows: oneDNN's where TensorFlow runs it (lowp_tf_focal32.onednn) in float32 and
    bfloat16, in float32 (lowp_tf_focal32.dnnl_softmax), rounded to the dtype; elsewhere Eigen's (eigen_softmax;
    float16 always)."""
    if lowp_tf_focal32.onednn() and (kind is lowp_tf.FLOAT32 or kind.leaf == 128):
        return kind.rnd(lowp_tf_focal32.dnnl_softmax(z))
    return eigen_softmax(z, kind, place)


def eigen_softmax(z: Array, kind: Kind, place: Place | None = None) -> Array:
    """Eigen's SoftmaxEigenImpl (TensorFlow without oneDNN) in the dtype: e = e^(z − max), Eigen's packet
    polynomial and the C library's expf for each block's last elements (float32: blocks of SOFTMAX_BLOCK; the half
    dtypes: the whole batch), stored in the dtype; each row's sum by Eigen's reducer in the dtype; its reciprocal
    (float32: `rcpps` and a Newton step over whole packets of the batch's rows, 1/x for the rows after them); and
    e times it. The blocks, the packets of rows and the reducer's split points are the whole batch's: `place`
    says where these rows lie in it (None: they are the batch)."""
    if kind is WIDE:
        return wide_softmax(z, place)
    r = kind.rnd
    rows, n = z.shape
    first, total = place or (0, rows)
    s = r(sub(z, z.max(axis=1, keepdims=True)))
    e = lowp_tf.tiled(s, kind.of(pexp), kind.of(libm_expf), SOFTMAX_BLOCK if kind is lowp_tf.FLOAT32 else WHOLE,
                      place)
    ahead = first % PACKET  # (rows before these, as the flattened tensor's packets see them)
    sums = row_sums(np.concatenate([np.zeros((ahead, n), dtype=F32), e]), kind=kind)[ahead:]
    if kind is lowp_tf.FLOAT32:
        tail = np.arange(first, first + rows) >= (total if total is not None else first + rows) // PACKET * PACKET
        with np.errstate(all="ignore"):
            x = ftz(sums)
            inv = np.where(tail, div(F32(1), x), lowp_tf_rcp.newton(x, lowp_tf_rcp.rcp_estimate(x))).astype(F32)
    else:
        inv = recip(sums, kind)
    return r(mul(e, inv[:, None]))


def categorical_focal(y: Array, p: Array, kind: Kind, keras2: bool, from_logits: bool, gamma: float,
                      alpha: float | Array, place: Place | None = None) -> tuple[Array, Callable[[Array], Array]]:
    """categorical_focal_crossentropy: Σ α(1 − o)^γ·(−y·log o) by rows (α one number, or in float32 one per class,
    Keras' float32 tensor broadcast along the rows), o the rows (softmax of the logits)
    divided by their reduce_sum and clipped to [ε, 1 − ε] (tf-keras: 1 − ε in the dtype). The gradient: pow's
    and the log's paths into o added, the clip, RealDiv's two paths (as ce_probs), then SoftmaxGrad
    (d − Σ d·q)·q."""
    k = kind
    lo = k.number(EPS)
    hi = k.sub(k.number(1), lo)[()] if keras2 else k.number(1 - EPS)
    q = softmax(p, kind, place) if from_logits else p
    s = rsum(q, kind)[:, None]
    o, passes = clip(k.div(q, s), lo, hi)
    cce = k.mul(-y, log(o, kind))
    m, g = k.sub(k.number(1), o), k.number(gamma)
    a = k.number(float(alpha)) if np.ndim(alpha) == 0 else class_alphas(np.asarray(alpha), kind, keras2)
    wf = k.mul(power(m, g, kind), a)
    losses = rsum(k.mul(wf, cce), kind)
    slope = power(m, k.dtype(k.sub(g, k.number(1))), kind)  # (pow's gradient's m^(γ − 1), for every upstream)

    def grad(c: Array) -> Array:
        dm = k.mul(k.mul(k.mul(k.mul(c, cce), a), g), slope)
        do = k.sub(k.mul(k.mul(k.mul(c, wf), -y), recip(o, kind)), dm)
        do = np.where(passes, do, 0).astype(k.dtype)
        dq = k.add(k.div(do, s), rsum(k.mul(do, k.div(k.div(-q, s), s)), kind)[:, None])
        return k.mul(k.sub(dq, rsum(k.mul(dq, q), kind)[:, None]), q) if from_logits else dq
    return losses, grad


def class_alphas(alpha: Array, kind: Kind, keras2: bool) -> Array:
    """A class_alpha per class as the loss multiplies by it: Keras 3's float32 tensor (promoted with a double
    loss), tf-keras' tensor of the loss's dtype (double: the numbers as they are)."""
    return alpha.astype(np.float64) if kind is WIDE and keras2 else flush.daz(alpha.astype(F32)).astype(kind.dtype)


def wide_softmax(z: Array, place: Place | None = None) -> Array:
    """eigen_softmax in double: e^(z − max) by Eigen's packet exp (lossgrad.eigen64) and the C library's exp for
    each block's last elements (blocks of SOFTMAX_BLOCK64), each row's sum by the reducer in packets of 4, and
    e times 1/Σ (Eigen's inverse of a double, correctly rounded)."""
    first = (place or (0, z.shape[0]))[0]
    s = WIDE.sub(z, z.max(axis=1, keepdims=True))
    e = lowp_tf.tiled(s, eigen64.pexp, eigen64.exp, SOFTMAX_BLOCK64, place, WIDE.lanes)
    ahead = first % WIDE.lanes  # (rows before these, as the flattened tensor's packets see them)
    sums = row_sums(np.concatenate([np.zeros((ahead, z.shape[1])), e]), kind=WIDE)[ahead:]
    return WIDE.mul(e, WIDE.div(1.0, sums)[:, None])


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why TensorFlow's kernels for this loss and these options are not reproduced (None: they are)."""
    if not covers(loss, from_logits):
        return lowp_tf.unsupported(loss, from_logits, params, switches, sample_weight)
    extra = [k for k, v in params.items() if not (v is None or v is False or (np.ndim(v) == 0 and v == 0))
             and k not in TAKES.get(loss, ())]
    if sample_weight and loss not in WEIGHABLE:
        extra.append("sample_weight")
    return f"{loss} with {', '.join('{' + k + '}' for k in extra)}" if extra else None


def unsupported_dtype(loss: str, dtype: str) -> str | None:
    """float64: categorical-focal alone (TensorFlow's double kernels, conventions' kernels_float64)."""
    return f"{loss} in float64" if dtype == "float64" and loss != "categorical-focal" else None


def unsupported_options(loss: str, dtype: str, params: dict[str, Any]) -> str | None:
    """Options reproduced in float32 and float64 only: a class_alpha per class, which Keras 3 takes as a float32
    tensor (the half dtypes' loss then promoted with it)."""
    if loss == "categorical-focal" and dtype in ("float16", "bfloat16") and np.size(params.get("class_alpha", 0)) > 1:
        return f"{loss} with {{class_alpha}} per class in {dtype}"
    return None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, keras2: bool = False,
            from_logits: bool = True, weights: Array | None = None) -> Parts:
    """The loss's parts as TensorFlow's CPU kernels give them (the losses here; the others as lowp_tf computes
    them): per-sample losses, the gradient of the sum or of the mean over N, and the reduced value."""
    kind = kind_of(half, p)  # (double: categorical-focal)
    if (params or {}).get("label_smoothing") and loss in ("ce", "bce"):  # (ce: probability rows)
        y = lowp_tf.smoothed(y.astype(F32), float((params or {})["label_smoothing"]),
                             p.shape[1] if loss == "ce" else None, kind, keras2)
    if not covers(loss, from_logits):
        return lowp_tf.compute(loss, y, p, labels, half, switches, batchmean, params, keras2, from_logits, weights)
    if labels is not None and loss == "ce":
        return sparse_probs(y, p, labels, kind, half, keras2, weights)
    if labels is not None:  # (categorical-focal's class indexes: the one-hot rows Keras takes)
        y = lowp_tf.one_hot(labels, p.shape[1])
    y, p = y.astype(kind.dtype), p.astype(kind.dtype)
    with np.errstate(all="ignore"):
        losses, inner, down = _forward(loss, y, p, kind, half, keras2, from_logits, params or {})

    def back(c: Array) -> Array:  # (each sample's upstream, down to each of its elements)
        return inner(np.ascontiguousarray(np.broadcast_to(down(c[:, None]), p.shape), dtype=kind.dtype))
    return lowp_tf.weighed(losses, back, kind, None if weights is None else held_weights(weights, kind, keras2))


def _forward(loss: str, y: Array, p: Array, kind: Kind, half: Any, keras2: bool, from_logits: bool,
             params: dict[str, Any]) -> tuple[Array, Callable[[Array], Array], Callable[[Any], Array]]:
    """The per-sample losses, the gradient given each element's upstream, and that upstream given the losses'
    (Keras' mean over a sample's outputs divides it; a sum over the row passes it on)."""
    gamma, alpha = params.get("gamma", 2.0), params.get("alpha")
    if loss in ("kl", "ce", "categorical-focal"):
        a = params.get("class_alpha")
        losses, inner = (kl(y, p, kind) if loss == "kl" else ce_probs(y, p, kind, keras2) if loss == "ce" else
                         categorical_focal(y, p, kind, keras2, from_logits, gamma,
                                           1.0 if a is None else float(np.ravel(a)[0]) if np.size(a) == 1 else
                                           np.ravel(a), params.get("place")))
        return losses, inner, lambda c: np.asarray(c, dtype=kind.dtype)
    e, inner = (poisson(y, p, kind) if loss == "poisson" else
                focal(y, p, kind, keras2, from_logits, gamma, alpha) if loss == "focal" else
                bce_logits(y, p, kind) if from_logits else bce_probs(y, p, kind, keras2))
    losses, down = sample_mean(e, kind, half, keras2)
    if p.shape[1] == 1:  # (one output: its losses are the elements, as the formulas give them)
        losses = losses[:, None]
    return losses, inner, down


