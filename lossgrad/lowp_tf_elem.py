"""TensorFlow's CPU kernels for Keras' element-wise losses — mae, huber, logcosh, hinge, squared-hinge — and its
cosine similarity, as Keras 3 and tf-keras call them, in float32, float16 and bfloat16.

Each TensorFlow op is one Eigen expression, its result stored in the dtype (half and bfloat16 operations run in
float and round once); softplus and its gradient take e^x and log(1 + x) from Eigen's packet functions over whole
packets of 8 and from glibc's expf and log1pf for the elements left over, its gradient g·sigmoid(x) from Eigen's
logistic; rsqrt is Eigen's packet `prsqrt` (the processor's `rsqrtps` estimate, from a table recorded on this
machine, and one Newton step) over whole packets and 1/sqrt(x) for the rest. Gradients are
GradientTape's: each op's registered gradient, in the op's dtype. The mean over a sample's outputs and the
reduction over the batch are lowp_tf's.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from . import lowp_tf
from .losses import Parts
from .losses._ops import Array
from .lowp import libm_log1pf
from .lowp_tf import F32, FLOAT32, Kind, add, div, elementwise, ftz, held_weights, kind_of, mul, row_sums, sub

# the losses whose kernels this module reproduces (kernels.MORE hands them here before lowp_tf_log) and the options
# each takes (eps: Keras 3's 1/ε cap of cosine)
TAKES: dict[str, tuple[str, ...]] = {"mae": (), "huber": ("delta",), "logcosh": (), "hinge": (), "squared-hinge": (),
                                     "cosine": ("eps",)}
WEIGHABLE = tuple(TAKES)  # (reproduced under sample weights too)
SUPPORTED = ("mae", "huber (with --delta)", "logcosh", "hinge", "squared-hinge", "cosine")
Grad = Callable[[Array], Array]  # the upstream gradient of each element (before the mean) -> the predictions'


def sign(a: Array) -> Array:
    return np.sign(a).astype(F32)


def mae(y: Array, p: Array, kind: Kind, keras2: bool) -> tuple[Array, Grad]:
    """|y − p| (Keras 3) or |p − y| (tf-keras), the difference stored; Abs's gradient g·sign(x), Sub's negation."""
    r = kind.rnd
    x = r(sub(p, y) if keras2 else sub(y, p))
    return np.abs(x), (lambda g: r(mul(g, sign(x)))) if keras2 else (lambda g: -r(mul(g, sign(x))))


def huber(y: Array, p: Array, kind: Kind, delta: float) -> tuple[Array, Grad]:
    """where(|e| ≤ δ, ½·e², δ·|e| − ½·δ²), e = p − y, each product and difference stored (δ and ½·δ² in the
    dtype); the gradient where's two halves: (g·½)·(e·2) through Square, (g·δ)·sign(e) through Abs."""
    r = kind.rnd
    d, half = ftz(r(F32(delta))), F32(0.5)  # (δ as an operand reads it: 0 where subnormal, denormals-are-zero)
    e = r(sub(p, y))
    a = np.abs(e)
    inside = a <= d
    losses = np.where(inside, r(mul(half, r(mul(e, e)))), r(sub(r(mul(d, a)), r(mul(half, r(mul(d, d)))))))

    def grad(g: Array) -> Array:
        quad = r(mul(r(mul(np.where(inside, g, F32(0)), half)), r(mul(e, F32(2)))))
        lin = r(mul(r(mul(np.where(inside, F32(0), g), d)), sign(e)))
        return r(add(quad, lin))
    return losses, grad


def softplus_threshold(kind: Kind) -> F32:
    """Softplus's cut-offs ±(log ε + 2), ε Eigen's NumTraits epsilon of the dtype, in the dtype (float32: −13.94)."""
    eps = {FLOAT32.leaf: 2.0 ** -23, 200: 2.0 ** -13, 128: 2.0 ** -7}[kind.leaf]  # (NumTraits<half>: 2^−13)
    log_eps = kind.rnd(lowp_tf.libm_logf(np.array([eps], F32)))
    return F32(kind.rnd(add(log_eps, F32(2)))[0])


def plog1p(x: Array) -> Array:
    """Eigen's generic_log1p on packets: x·(log(1 + x)/((1 + x) − 1)), x itself where 1 + x is 1 or infinite."""
    with np.errstate(all="ignore"):
        xp1 = add(x, F32(1))
        log1 = lowp_tf.plog(xp1)
        large = mul(x, div(log1, sub(xp1, F32(1))))
    return np.where((xp1 == 1) | (xp1 == log1), x, large).astype(F32)


def softplus(t: Array, kind: Kind) -> Array:
    """TensorFlow's Softplus: t above −threshold, e^t below threshold, else log1p(e^t); e^t and its log1p in
    packets of the flattened tensor, glibc's for the rest."""
    thr = softplus_threshold(kind)

    def ops(exp: Callable[[Array], Array], log1p: Callable[[Array], Array]) -> Callable[[Array], Array]:
        def f(v: Array) -> Array:
            ev = kind.of(exp)(v)
            return np.where(v > -thr, v, np.where(v < thr, ev, kind.of(log1p)(ev)))
        return f
    return elementwise(t, ops(lowp_tf.pexp, plog1p), ops(lowp_tf.libm_expf, libm_log1pf))


LOGISTIC_POLY = tuple(F32(c) for c in (0.49999141693115234375, 0.16666877269744873046875,
                                        4.1898667812347412109375e-2, 8.33471305668354034423828125e-3))


def plogistic(x: Array) -> Array:
    """Eigen's float logistic on packets: e^(x/2) by Cephes' reduction and a degree-5 polynomial (no FMA), squared,
    then e/(1 + e); x capped at 16.6355324, 0 below −104."""
    with np.errstate(all="ignore"):
        h = mul(np.minimum(x, F32(16.6355324)), F32(0.5))
        m = np.floor(lowp_tf.madd(h, F32(1.44269504088896341), F32(0.5)))
        r = lowp_tf.madd(m, F32(-0.693359375), h)
        r = lowp_tf.madd(m, F32(2.12194440e-4), r)
        r2 = mul(r, r)
        p2, p3, p4, p5 = LOGISTIC_POLY
        p = lowp_tf.madd(r, lowp_tf.madd(r2, p5, p3), lowp_tf.madd(r2, p4, p2))
        p = lowp_tf.madd(r2, p, add(r, F32(1)))
        e = (p.astype(np.float64) * np.exp2(m.astype(np.float64))).astype(F32)
        e = mul(e, e)
        return np.where(x < F32(-104), F32(0), div(e, add(F32(1), e))).astype(F32)


def logistic(x: Array, kind: Kind) -> Array:
    """tf.math.sigmoid: float32 by Eigen's own packet logistic (glibc's expf and e/(1 + e) for the scalar rest);
    half and bfloat16 by the generic e/(1 + e), each step stored in the dtype, 1 where e is infinite."""
    r = kind.rnd

    def generic(exp: Callable[[Array], Array]) -> Callable[[Array], Array]:
        def f(v: Array) -> Array:
            e = r(exp(v))
            return np.where(np.isinf(e), F32(1), r(div(e, r(add(F32(1), e))))).astype(F32)
        return f

    def scalar(v: Array) -> Array:
        e = lowp_tf.libm_expf(np.minimum(v, F32(16.6355324)))
        return div(e, add(F32(1), e))
    if kind is FLOAT32:
        return elementwise(x, plogistic, scalar)
    return elementwise(x, generic(lowp_tf.pexp), generic(lowp_tf.libm_expf))


def logcosh(y: Array, p: Array, kind: Kind) -> tuple[Array, Grad]:
    """x + softplus(−2x) − log 2, x = p − y (log 2 float32's logf(2) in the dtype); the gradient g (through x)
    plus (g·σ(−2x))·−2 (Softplus' registered gradient is g·sigmoid(x))."""
    r = kind.rnd
    x = r(sub(p, y))
    t = r(mul(x, F32(-2)))
    log2 = r(lowp_tf.libm_logf(np.array([2], F32)))[0]
    losses = r(sub(r(add(x, softplus(t, kind))), log2))
    return losses, lambda g: r(add(g, r(mul(r(mul(g, logistic(t, kind))), F32(-2)))))


def hinge(y: Array, p: Array, kind: Kind, squared: bool) -> tuple[Array, Grad]:
    """max(1 − y·p, 0) (squared: its square), labels 0/1 made −1/1 by 2y − 1; Maximum passes the gradient where
    1 − y·p ≥ 0 (the tie included), Square's is g·(m·2)."""
    r = kind.rnd
    s = np.where(y == 0, F32(-1), y).astype(F32)
    m = r(sub(F32(1), r(mul(s, p))))
    h = np.maximum(m, F32(0))
    if not squared:
        return h, lambda g: r(mul(-np.where(m >= 0, g, F32(0)), s))
    return r(mul(h, h)), lambda g: r(mul(-np.where(m >= 0, r(mul(g, r(mul(h, F32(2))))), F32(0)), s))


def scalar_tail(shape: tuple[int, ...]) -> Array:
    """Where a unary or binary Eigen kernel over a tensor of `shape` works one element at a time: the last
    elements after its whole packets of 8 (True), the rest in packets (False)."""
    size = int(np.prod(shape))
    return (np.arange(size) >= size - size % lowp_tf.PACKET).reshape(shape)


# this processor's `rsqrtps` (AMD EPYC, as recorded by scripts/golden_lowp_tf_elem.py): per exponent parity and
# top 12 mantissa bits, the estimate in steps of 2^−12 from 1/√x rounded to 12 bits (zlib, base64; each byte 8 + step)
RSQRTPS = ("eNq1WVu24yAM+xTe/4bvnBkIlvyAdG7Tpgm1LRtiQJCBf8eYBw7l9eeNPtwx+MjtE/1g35dR43k9H8++t2ky3JV11/8PFvkSfb2+"
           "PcSe/bD/GQ+SeoleIt8+nNTm74J3NV9G7nZAoO7Lgif+sEIxbha2Z31uQa8k8i2ijHQtYNSyy9W+X66HO9+XFW/eu3jNtQBi/Zx9"
           "qj99Tbl5OR5PeKC2kR5W6Ls7chr7+0hR+3LeNxJ/Pp75XbUt7bemBD0N+f9antkPxQ9+kLaGEX5i73AS/1dXisOmNwtRrBgpm0AF"
           "UBTm8aSOou/7Y8Rv8II82Af8J5KNR4NrloDmGmfFsMHdZfiLltnNdbnEczezKfcN8DdMaZN94wY58Fi3PtwS9njSTHX6iBlc4aVy"
           "VKOCsX/Uo4jgXdnshrhQ++Sw4vOFw9XCms/FGBxaw+R59/oI+XGB18vzp8NS7hxB0eFRvLlxiRHAnvxF6KkjwcNxArTO3/+VR17m"
           "gcANazrIuBaaVedxRvPLsoHG4yd4RWZr077X9/F5EgrPLveEqzSQ5OMg9zW8kFdz/72+nfSLePfzV1YhfCFjxl3I5uP6c7X1swlT"
           "Slm4PLIq/EJZ/VFz3C7GhFP52HddzbhBJI3IX4Vb43T2HE9C72gN1DJ3edLPenp9qTA7lP/6tCiYeMnsocYNk0fC94hzqhwxIQo6"
           "7r0zB4dwcUnstqz2WPyN2a6y2yzvxL7UB2TIgD4Bw1onI3LPjCI77pnMHjXFLrh2wb3LctNnddo9cefhdhvImWQNTuyS5ZalI9mj"
           "4gLOf+0v4CPi9+U71mrf4bM4fHr8e/3Aj6slEWlYzB5iHiYPtGSPVugj9d/a77yFpvRQaptmv/q74olFb+x6XlzKDl04g8mc5cCg"
           "wWzbC38bxPAq/YDPYxaTmWQUDfKTPTPecn650i/w4X6UYWklLHlWyQbR/a7dt693O+ToSJmbYiMZUyIL2WIVQsJ0JFnz6Aaf7DDW"
           "+hl+eAgtnm4XfiBP/YMW9pX8Ld5rfTBbvbM/+ffsNWCXvnD1WseK5V2I9VW5xTt3Fo6f647tNOfwR+ys7QJ+j/eBPeKuvtTnlX54"
           "4eRfiZzx3BucarlS+nsvj/jRv5sRTeMPL8DoFZK8nRqd7uxfiW6tX+MXc6U7jf2d7RMMfftWY+H8Ktcuztrfpf/fPX8Arjf8Ow==")


def _estimates() -> Array:
    """The estimate of each bucket, for x in [1, 4)."""
    steps = np.frombuffer(zlib.decompress(base64.b64decode(RSQRTPS)), np.uint8).astype(np.int64) - 8
    near = np.stack([rsqrt_rounded(0), rsqrt_rounded(1)])
    return ((near + steps.reshape(2, 4096)) << 11).astype(np.uint32).view(F32)


def rsqrt_rounded(parity: int) -> Array:
    """1/√x at the bottom of each bucket of x in [2^parity, 2^(parity + 1)), rounded to 12 bits: its float bits
    over 2^11."""
    x = (1 + np.arange(4096) / 4096) * 2.0 ** parity
    return (((1 / np.sqrt(x)).astype(F32).view(np.uint32).astype(np.int64) + 1024) >> 11)


def rsqrt_estimate(x: Array) -> Array:
    """The processor's `rsqrtps` estimate of 1/√x: a table over the exponent's parity and the top 12 bits of the
    mantissa, scaled by the rest of the exponent; ∞ for 0 and subnormals, 0 for ∞."""
    bits = x.view(np.uint32).astype(np.int64)
    e = ((bits >> 23) & 255) - 127
    table = ESTIMATES[e & 1, (bits >> 11) & 4095]
    with np.errstate(all="ignore"):
        out = np.ldexp(table, -((e - (e & 1)) // 2)).astype(F32)
    return np.where(x < lowp_tf.TINY, F32(np.inf), np.where(np.isinf(x), F32(0), out)).astype(F32)


def newton(x: Array, est: Array) -> Array:
    """Eigen's one Newton step for 1/√x without FMA, i + (−½·i)·((x·i)·i − 1); the estimate where that is NaN."""
    with np.errstate(all="ignore"):
        h = add(mul(mul(x, est), est), F32(-1))
        out = add(mul(mul(est, F32(-0.5)), h), est)
    return np.where(np.isnan(out), est, out).astype(F32)


def rsqrt(x: Array, kind: Kind) -> Array:
    """tf.math.rsqrt: 1/sqrt(x) element by element for the scalar remainder (in the dtype: its square root
    stored before the division); over whole packets Eigen's float prsqrt, the estimate refined by one Newton step
    without FMA, i + (−½·i)·((x·i)·i − 1), the estimate itself where that is NaN (x 0 or infinite), stored once."""
    with np.errstate(all="ignore"):
        scalar = div(F32(1), kind.rnd(np.sqrt(x, dtype=F32)))
        packet = newton(x, rsqrt_estimate(x))
    return kind.rnd(np.where(scalar_tail(x.shape), scalar, packet))


def rsum(v: Array, kind: Kind) -> Array:
    """reduce_sum over a sample's outputs in the dtype: float16 accumulates in float16, bfloat16 in float32 and
    stores once; a row of one output is copied (TensorFlow drops an axis of one: −0 stays −0, where Eigen's sum
    would start from +0; a float16 cosine of one output whose p² overflows is ±0 by the signs of y and p)."""
    if v.shape[1] == 1:
        return v[:, 0].copy()
    return kind.rnd(row_sums(v)) if kind.leaf == 128 else row_sums(v, kind=kind)


def normalize(x: Array, kind: Kind, keras2: bool, cap: F32) -> tuple[Array, Array, Array]:
    """x·rsqrt(Σx²) capped at `cap`, 1/ε in the dtype (Keras 3's normalize, ε its backend epsilon), or
    x·rsqrt(max(Σx², 1e−12)) (tf.linalg's l2_normalize; 1e−12 is 0 in float16): x̂, the norm's inverse i and where
    the cap or the floor passes the gradient on (Minimum's x ≤ c, Maximum's x ≥ c)."""
    r = kind.rnd
    ss = rsum(r(mul(x, x)), kind)[:, None]
    if keras2:
        floor = r(F32(1e-12))
        inv, through = rsqrt(np.maximum(ss, floor), kind), ss >= floor
    else:
        raw = rsqrt(ss, kind)
        inv, through = np.minimum(raw, cap), raw <= cap
    return r(mul(x, inv)), inv, through


def rsqrt_grad(i: Array, g: Array, kind: Kind) -> Array:
    """RsqrtGrad(i, g) = −½·g·i³: one at a time (−½·(g·i))·(i·i), +0 where g is 0; in packets (−½·(i·i))·(i·g),
    each product by mul_no_nan (+0 where its second factor is ±0: where g is, and where i·g underflows)."""
    r = kind.rnd
    half = F32(-0.5)
    scalar = np.where(g == 0, F32(0), r(mul(r(mul(half, r(mul(g, i)))), r(mul(i, i)))))
    t = np.where(g == 0, F32(0), r(mul(i, g)))
    packet = np.where(t == 0, F32(0), r(mul(r(mul(half, r(mul(i, i)))), t)))
    return np.where(scalar_tail(i.shape), scalar, packet)


def cosine(y: Array, p: Array, kind: Kind, keras2: bool, cap: F32) -> tuple[Array, Callable[[Array], Array]]:
    """−Σ ŷ·p̂ over each sample's outputs (a loss per sample, no mean); the gradient of −G·Σ ŷ·p̂: through p̂ = p·i,
    (−G·ŷ)·i directly and, through i, RsqrtGrad of Σ(−G·ŷ)·p into Square's (·)(p·2), the two added."""
    r = kind.rnd
    yh = normalize(y, kind, keras2, cap)[0]
    ph, inv, through = normalize(p, kind, keras2, cap)
    losses = -rsum(r(mul(yh, ph)), kind)

    def grad(g: Array) -> Array:
        gph = r(mul(-g[:, None], yh))
        direct = r(mul(gph, inv))
        ginv = np.where(through, rsum(r(mul(p, gph)), kind)[:, None], F32(0))
        dss = rsqrt_grad(inv, ginv, kind)
        return r(add(direct, r(mul(dss, r(mul(p, F32(2)))))))
    return losses, grad


def in_dtype_of(value: float, half: Any) -> F32:
    """A Python number as the dtype holds it (rounded once, as a tensor made of it), carried in float32."""
    with np.errstate(over="ignore"):
        return F32(np.float64(value).astype(half or F32))


def delta_of(params: dict[str, Any]) -> float:
    delta = params.get("delta")
    return 1.0 if delta is None else float(delta)


def elementwise_loss(loss: str, y: Array, p: Array, kind: Kind, keras2: bool, delta: float) -> tuple[Array, Grad]:
    if loss == "mae":
        return mae(y, p, kind, keras2)
    if loss == "huber":
        return huber(y, p, kind, delta)
    if loss == "logcosh":
        return logcosh(y, p, kind)
    return hinge(y, p, kind, loss == "squared-hinge")


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = False,
            keras2: bool = False, weights: Array | None = None) -> Parts:
    """The loss's parts as TensorFlow's kernels give them: per-sample losses (Keras' mean over a sample's outputs:
    in float32 under Keras 3, in the dtype under tf-keras; cosine sums; times the sample weights, lowp_tf.weighed),
    the gradient of the sum and of the mean over N, and the reduced value (lowp_tf's reduce_sum, divided by N in
    the dtype). tf-keras' huber casts to float32 first: its losses, weights and value are float32's, its gradient
    rounded once to the dtype on the way back."""
    kind, out, params = kind_of(half), kind_of(half).rnd, params or {}
    if keras2 and loss == "huber":
        kind = FLOAT32
    y, p = y.astype(F32), p.astype(F32)
    k = F32(p.shape[1])
    with np.errstate(all="ignore"):
        if loss == "cosine":
            losses, back = cosine(y, p, kind, keras2, in_dtype_of(1 / (params.get("eps") or 1e-7), half))
            grad = lambda c: out(back(c))  # noqa: E731
        else:
            delta = delta_of(params) if keras2 else in_dtype_of(delta_of(params), half)  # (tf-keras: float32's)
            elems, back = elementwise_loss(loss, y, p, kind, keras2, float(delta))
            in_dtype = keras2 and kind.leaf == 200
            sums = row_sums(elems, kind=kind) if in_dtype else row_sums(elems)
            losses = kind.rnd(div(sums, kind.rnd(k) if in_dtype else k))
            divisor = kind.rnd(k) if keras2 else k
            grad = lambda c: out(back(np.ascontiguousarray(  # noqa: E731
                np.broadcast_to(kind.rnd(div(c[:, None], divisor)), p.shape), dtype=F32)))
            if p.shape[1] == 1:  # (one output: its losses are the elements, as the formulas give them)
                losses = losses[:, None]
    return lowp_tf.weighed(losses, grad, kind, None if weights is None else held_weights(weights, kind, keras2))


ESTIMATES = _estimates()
