"""TensorFlow's CPU kernels for Keras 3's ctc (keras.losses.CTC, keras.ops.ctc_loss) in float32, float16 and
bfloat16, and tf-keras' ctc_batch_cost (the C++ CTCLoss op) in those and in float64 (below).

Keras casts the logits to float32 (float16 and bfloat16 too) and calls tf.nn.ctc_loss with dense labels, TensorFlow's
`ctc_loss_dense`: op by op in float32, time-major. LogSoftmax's kernel (s = z − max; s − log Σe^s, Σe^s by rows with
Eigen's packet e^x over each row's whole packets and glibc's for the rest, its log in packets of rows); the states
(a start state, the L label states, the L + 1 blank states) observe the log-probabilities of their classes; a
forward and a backward pass over every frame, each step a reduce_logsumexp over the states a state comes from (or
goes to), the observations added, and the states normalised by their own reduce_logsumexp (the backward pass adds
up these normalisers within each sequence's frames: the log-likelihood); the posteriors normalised the same way
and summed into classes (a reduce_logsumexp over the label states, along a middle axis, and one over the blank
states); the gradient e^(log softmax) − e^(class posteriors), 0 past a sequence's frames. A reduce_logsumexp is
max, x − max, Exp over the whole tensor (lowp_tf's packets of 8 and glibc's scalar tail), a row sum (lowp_tf's
reducer along the last axis, one element after another along a middle one), Log over the whole tensor, + max.
Keras' loss wrapper then casts the losses to the dtype and reduces them there (lowp_tf's sum, divided by N in the
dtype); the gradient is the upstream times the float32 gradient, cast to the dtype. Under sample weights (what
model.fit(sample_weight=...) passes to the loss) both Kerases weigh each sequence's loss as any other loss's:
`losses * sample_weight` in the dtype, reduced as without weights, each sequence's upstream Mul's c·w in the dtype
(lowp_tf.weighed, lowp_tf.held_weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import eigen64, libm, lowp_tf, lowp_tf_log
from .errors import InputError
from .losses import Parts
from .losses._ops import Array
from .losses.ctc import check_blank, one_hot_nan, unpack
from .lowp import libm_log1pf, libm_logf
from .lowp_tf import (
    F32,
    PACKET,
    Kind,
    Unary,
    add,
    elementwise,
    kind_of,
    libm_expf,
    mul,
    pexp,
    plog,
    row_sums,
    sub,
)

# the loss whose kernels this module reproduces (kernels.MORE hands it here before lowp_tf_log) and the options it
# takes
TAKES = {"ctc": ("blank", "eps")}  # (eps: tf-keras' ε inside log(y + ε); Keras 3's ctc has none)
WEIGHABLE = ("ctc",)  # (kernels._beyond: reproduced under sample weights too)
SUPPORTED = ("ctc (Keras 3: from logits, --blank; tf-keras' ctc_batch_cost: --blank, --eps, in float64 too; sample "
             "weights)",)
DTYPES = ("float32", "float16", "bfloat16", "float64")  # (float64: tf-keras' alone, conventions' kernels_float64)
EPS = 1e-7  # tf_keras.backend.epsilon()
# TensorFlow's stand-in for log 0 at the lattice's ends: log(1e−307) in float64, cast to float32
LOG_0 = F32(np.log(np.float64(1e-307)))
NEG_INF = F32(-np.inf)


def exp(x: Array) -> Array:
    """The Exp op over a whole tensor: packets of 8 through the flattened values, glibc's expf for the rest."""
    return elementwise(np.ascontiguousarray(x, dtype=F32), pexp, libm_expf)


def log(x: Array) -> Array:
    """The Log op over a whole tensor (log 0 = −∞)."""
    out = elementwise(np.ascontiguousarray(x, dtype=F32), plog, libm_logf)
    return np.where(x == 0, NEG_INF, np.where(x == np.inf, x, out)).astype(F32)


def logsumexp(x: Array, axis: int = -1) -> Array:
    """tf.reduce_logsumexp along `axis` (the last, or a middle one), the axis kept: max (0 where it is not
    finite), Exp of x − max over the whole tensor, the sum along the axis, Log over the sums, + max."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, F32(0)).astype(F32)
    e = exp(sub(x, top))
    r, k = x.shape[axis], int(np.prod(x.shape[axis:])) // x.shape[axis]
    if k == 1:  # (TensorFlow drops axes of one element: the last axis, or one followed by a single class)
        total = row_sums(e.reshape(-1, r)).reshape(top.shape)
    else:
        total = middle_sums(e.reshape(-1, r, k)).reshape(top.shape)
    return add(log(total), top)


def middle_sums(x: Array) -> Array:
    """x [A, R, K] summed along R as Eigen reduces a middle axis: the outputs [A, K] in packets of 8 through the
    flattened outputs, a packet that lies within one row of K summed with four accumulators taking every fourth
    term (R ≥ 16: added together, then the terms after the last four), every other output term after term."""
    a, r, k = x.shape
    plain = np.zeros((a, k), dtype=F32)
    for j in range(r):
        plain = add(plain, x[:, j])
    if r < 16:
        return plain
    four = [np.zeros((a, k), dtype=F32) for _ in range(4)]
    whole = r // 4 * 4
    for j in range(whole):
        four[j % 4] = add(four[j % 4], x[:, j])
    acc = add(add(add(four[0], four[1]), four[2]), four[3])
    for j in range(whole, r):
        acc = add(acc, x[:, j])
    flat = np.arange(a * k)
    start = flat - flat % PACKET
    packed = (start + PACKET <= a * k) & (start % k + PACKET - 1 < k)
    return np.where(packed.reshape(a, k), acc, plain)


def log_softmax(z: Array) -> Array:
    """The LogSoftmax kernel along the last axis: s = z − max, then s − log Σe^s (Σ by rows, packet e^x over a
    row's whole packets and glibc's for the rest; the logs in packets of rows)."""
    rows = z.reshape(-1, z.shape[-1])
    s = sub(rows, rows.max(axis=1, keepdims=True))
    total = row_sums(s, pexp, libm_expf)
    return sub(s, elementwise(total, plog, libm_logf)[:, None]).reshape(z.shape)


def transitions(labels: Array) -> Array:
    """log of _ctc_state_trans [B, to, from]: 0 where a state may follow another (itself; the start to the first
    label and the first blank; a blank to the next label; a label to its blank; a label to the next unless they
    are equal), −∞ elsewhere. States: the start, labels 1..L, blanks 0..L."""
    b, n = labels.shape
    s = 2 * (n + 1)
    trans = np.zeros((b, s, s), dtype=F32)
    lab, blank = np.arange(n + 1), np.arange(n + 1) + n + 1
    to = np.r_[1, lab[1:], blank, np.arange(s)]
    frm = np.r_[0, blank[:-1], lab, np.arange(s)]
    for i, j in zip(to, frm, strict=True):  # (scatter_nd adds a repeated index: L = 0)
        trans[:, i, j] += 1
    if n > 1:
        trans[:, lab[2:], lab[1:-1]] = (labels[:, :-1] != labels[:, 1:])
    with np.errstate(divide="ignore"):
        return np.log(trans).astype(F32)


def observed(lp: Array, labels: Array) -> Array:
    """_ilabel_to_state [T, B, S]: the start −∞, each label state its class's log-probability (Σ lp·one_hot: 0 for
    a label beyond the classes), each blank state the blank's."""
    t, b, c = lp.shape
    n = labels.shape[1]
    inside = (labels >= 0) & (labels < c)
    picked = np.take_along_axis(lp, np.broadcast_to(np.where(inside, labels, 0)[None], (t, b, n)), axis=2)
    picked = one_hot_nan(lp, np.where(inside[None], picked, F32(0)), np.broadcast_to(inside[None], picked.shape))
    return np.concatenate([np.full((t, b, 1), NEG_INF), picked, np.repeat(lp[:, :, :1], n + 1, axis=2)],
                          axis=2).astype(F32)


def forward_backward(obs: Array, trans: Array, init: Array, final: Array,
                     frames: Array) -> tuple[Array, Array]:
    """_forward_backward_log: the normalised posteriors of the states [T, B, S] (−∞ past a sequence's frames) and
    each sequence's log-likelihood."""
    t_max, b, s = obs.shape
    back_trans = np.ascontiguousarray(np.swapaxes(trans, 1, 2))
    state = init
    fwd = np.empty((t_max, b, s), dtype=F32)
    for t in range(t_max):
        a = logsumexp(np.add(state[:, None, :], trans, dtype=F32))[..., 0]
        a = add(a, obs[t])
        fwd[t] = state = sub(a, logsumexp(a))
    mask = (np.arange(t_max)[:, None] < frames[None, :]).astype(F32)  # [T, B]
    bwd = np.empty((t_max + 1, b, s), dtype=F32)
    bwd[t_max] = state = final
    cum = np.zeros(b, dtype=F32)
    for t in range(t_max - 1, -1, -1):
        a = add(state, obs[t])
        a = logsumexp(np.add(a[:, None, :], back_trans, dtype=F32))[..., 0]
        norm = logsumexp(a)
        a = sub(a, norm)
        cum = add(cum, mul(norm[:, 0], mask[t]))
        m = mask[t][:, None]
        bwd[t] = state = add(mul(a, m), mul(final, sub(F32(1), m)))
    post = add(fwd, bwd[1:])
    post = sub(post, logsumexp(post))
    post = add(post, log(mask)[..., None])
    return post, add(bwd[0, :, 0], cum)


def to_classes(post: Array, labels: Array, c: int) -> Array:
    """_state_to_olabel [T, B, C]: the blank's posterior the reduce_logsumexp of the blank states', each other
    class's that of the label states holding it (along the label axis, a middle one); −∞ for a class none hold."""
    n = labels.shape[1]
    hot = np.where(labels[:, :, None] - 1 == np.arange(c - 1)[None, None, :], F32(0), NEG_INF).astype(F32)
    states = np.add(post[:, :, 1:n + 1, None], hot[None], dtype=F32)  # [T, B, L, C − 1]
    classes = logsumexp(states, axis=2)[:, :, 0, :]
    return np.concatenate([logsumexp(post[:, :, n + 1:]), classes], axis=2)


def ctc(z: Array, labels: Array, label_len: Array, frames: Array, blank: int) -> tuple[Array, Array, Array]:
    """ctc_loss_dense on float32 logits [B, T, C]: the per-sequence losses, the gradient [B, T, C] of their sum
    and the softmax e^(log softmax) [B, T, C]."""
    b, t_max, c = z.shape
    order = np.r_[blank, np.arange(blank), np.arange(blank + 1, c)]
    x = np.ascontiguousarray(np.transpose(z[:, :, order], (1, 0, 2)))  # [T, B, C], the blank first
    labels = np.where(labels < blank, labels + 1, labels) if blank else labels
    lp = log_softmax(x)
    n = labels.shape[1]
    init = np.full((b, 2 * (n + 1)), LOG_0, dtype=F32)
    init[:, 0] = 0
    hit = (np.arange(n + 1)[None, :] == label_len[:, None])
    final = mul(sub(F32(1), np.tile(hit, 2).astype(F32)), LOG_0)
    post, ll = forward_backward(observed(lp, labels), transitions(labels), init, final, frames)
    soft = exp(lp)
    grad = sub(soft, exp(to_classes(post, labels, c)))
    grad = mul(grad, (np.arange(t_max)[:, None] < frames[None, :]).astype(F32)[..., None])
    back = np.argsort(order)
    return -ll, np.transpose(grad, (1, 0, 2))[:, :, back], np.transpose(soft, (1, 0, 2))[:, :, back]


def keras_labels(lab: Array, used: Array, kind: Kind) -> tuple[Array, list[str]]:
    """The padded labels as Keras' loss wrapper hands them on: converted to the loss's dtype with the predictions
    (a bfloat16 has no 257) and cast to int32; a warning names the first label moved to another class."""
    cast = kind.rnd(lab.astype(F32)).astype(np.int64)
    moved = np.argwhere((cast != lab) & used)
    if not moved.size:
        return cast, []
    i, j = (int(v) for v in moved[0])
    return cast, [f"{moved.shape[0]} label{'s' if moved.shape[0] > 1 else ''} (first {lab[i, j]} of sequence {i}) "
                  f"rounded to another class by Keras' conversion of the targets to the loss's dtype: {lab[i, j]} "
                  f"became {cast[i, j]}, as the framework computes it"]


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            keras2: bool = False, weights: Array | None = None) -> Parts:
    """The per-sequence losses (float32, stored in the dtype as Keras' wrapper converts them; under sample weights
    times them), the gradient of their sum and of their mean over N (each sequence's upstream, 1/N in the dtype or
    under weights Mul's c·w, times the float32 gradient, cast to the dtype), the softmax, and the reduced value
    (lowp_tf's). `labels`, `switches`, `batchmean` and `from_logits` are taken as every backend takes them: ctc's
    labels and lengths are in the packed target rows, and Keras' ctc takes logits."""
    kind = kind_of(half, p if keras2 else None)  # (tf-keras' in double; Keras 3's in float32, as it casts)
    blank = int((params or {}).get("blank") or 0)
    check_blank(y, blank)
    w = None if weights is None else lowp_tf.held_weights(weights, kind, keras2)
    if keras2:
        return batch_cost_parts(y, p, kind, blank, float((params or {}).get("eps") or EPS), w)
    pred, frames, lengths, lab = unpack(y, p)
    labels, notes = keras_labels(lab, np.arange(lab.shape[1])[None, :] < lengths[:, None], kind)
    with np.errstate(all="ignore"):
        losses, grad, soft = ctc(pred.astype(F32), labels, lengths, frames, blank)

    def back(c: Array) -> Array:
        g = mul(c[:, None, None], grad)
        # (a blank other than 0: tf.nn.ctc_loss moves it first by concatenating slices of the logits, whose
        # gradients AddN adds to the other slices' zeros, so a −0, as a weight of 0 gives, comes back +0)
        return kind.rnd(add(g, F32(0)) if blank else g).reshape(p.shape)
    return lowp_tf.weighed(kind.rnd(losses), back, kind, w, prob=kind.rnd(soft).reshape(p.shape), warnings=notes)



# ---------------------------------------------------------------- tf-keras' ctc_batch_cost: the C++ CTCLoss op


@dataclass(frozen=True)
class OpMath:
    """The C++ op's arithmetic in its type: the kernels' Kind (each operation rounded, subnormals flushed), the C
    library's log of y, and the expf and log1pf of LogSumExp and of the gradient's negative term (float functions
    in double too: the double is converted to a float, and the float result back), and Eigen's packet e^x."""

    kind: Kind
    exp: Unary
    log: Unary
    log1p: Unary
    pexp: Unary


FLOAT = OpMath(lowp_tf.FLOAT32, libm_expf, libm_logf, libm_log1pf, pexp)
DOUBLE = OpMath(lowp_tf.WIDE, lambda x: libm_expf(np.asarray(x).astype(F32)), libm.log, libm_log1pf, eigen64.pexp)


def lse(a: Array, b: Array, m: OpMath = FLOAT) -> Array:
    """ctc::LogSumExp: the other where one is −∞, else the larger + log1p(exp(smaller − larger))."""
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    with np.errstate(all="ignore"):
        out = m.kind.add(hi, m.log1p(m.exp(m.kind.sub(lo, hi))))
    return np.where(a == NEG_INF, b, np.where(b == NEG_INF, a, out)).astype(m.kind.dtype)


def redux_sum(e: Array, kind: Kind = lowp_tf.FLOAT32) -> Array:
    """Eigen's dense redux of each row (an aligned vector): two packet accumulators over pairs of packets, the
    odd last packet, the lanes added (lowp_tf's predux), then the elements after the last packet one by one."""
    n, lanes = e.shape[1], kind.lanes
    whole = n // lanes * lanes
    if not whole:
        total = e[:, 0]
        for j in range(1, n):
            total = kind.add(total, e[:, j])
        return total
    acc0 = e[:, :lanes]
    if whole > lanes:
        acc1 = e[:, lanes:2 * lanes]
        pairs = whole // (2 * lanes) * 2 * lanes
        for j in range(2 * lanes, pairs, 2 * lanes):
            acc0, acc1 = kind.add(acc0, e[:, j:j + lanes]), kind.add(acc1, e[:, j + lanes:j + 2 * lanes])
        acc0 = kind.add(acc0, acc1)
        if whole > pairs:
            acc0 = kind.add(acc0, e[:, pairs:pairs + lanes])
    total = lowp_tf.predux(acc0, kind)
    for j in range(whole, n):
        total = kind.add(total, e[:, j])
    return total


def op_softmax(a: Array, m: OpMath = FLOAT) -> Array:
    """The op's softmax of each (frame, sequence) row of its inputs [T, B, C]: e^(a − max) by Eigen's packet
    polynomial for every element (the elements after the last whole packet too, as read back from TensorFlow),
    divided by the row's redux sum."""
    rows = a.reshape(-1, a.shape[-1])
    e = m.pexp(m.kind.sub(rows, rows.max(axis=1, keepdims=True)))
    return m.kind.div(e, redux_sum(e, m.kind)[:, None]).reshape(a.shape)


def alphas(ly: Array, primes: Array, ends: tuple[Array, Array], m: OpMath = FLOAT) -> Array:
    """log α [B, U, T] as CalculateForwardVariables forms it: from a state, the one before, and two before (to a
    label other than the one two before), each added by LogSumExp, + log y; −∞ outside the states the frames
    left can still finish from (U − 2(T − t) ≤ u < 2(t + 1))."""
    b, u_max, t_max = ly.shape
    u_len, t_len = ends
    alpha = np.full((b, u_max, t_max), NEG_INF, dtype=m.kind.dtype)
    alpha[:, :2, 0] = ly[:, :2, 0]
    u = np.arange(u_max)[None, :]
    blank = primes[:, :1]
    skip = np.zeros_like(primes, dtype=bool)
    skip[:, 2:] = (primes[:, 2:] != blank) & (primes[:, 2:] != primes[:, :-2])
    for t in range(1, t_max):
        prev = alpha[:, :, t - 1]
        acc = lse(prev, np.pad(prev[:, :-1], ((0, 0), (1, 0)), constant_values=NEG_INF), m)
        acc = np.where(skip, lse(acc, np.pad(prev[:, :-2], ((0, 0), (2, 0)), constant_values=NEG_INF), m), acc)
        live = (u >= u_len[:, None] - 2 * (t_len[:, None] - t)) & (u < np.minimum(u_len[:, None], 2 * (t + 1)))
        alpha[:, :, t] = np.where(live & (t < t_len[:, None]), m.kind.add(ly[:, :, t], acc), NEG_INF)
    return alpha


def betas(ly: Array, primes: Array, ends: tuple[Array, Array], m: OpMath = FLOAT) -> Array:
    """log β [B, U, T] as CalculateBackwardVariables forms it: 0 in the last two states at the last frame, then
    LogSumExp of β + log y of the next frame over the same state, the next and the one after that (from a label
    other than it)."""
    b, u_max, t_max = ly.shape
    u_len, t_len = ends
    beta = np.full((b, u_max, t_max), NEG_INF, dtype=m.kind.dtype)
    rows = np.arange(b)
    beta[rows, u_len - 2, t_len - 1] = 0
    beta[rows, u_len - 1, t_len - 1] = 0
    u = np.arange(u_max)[None, :]
    blank = primes[:, :1]
    skip = np.zeros_like(primes, dtype=bool)
    skip[:, :-2] = (primes[:, :-2] != blank) & (primes[:, :-2] != primes[:, 2:])
    for t in range(t_max - 2, -1, -1):
        nxt = m.kind.add(beta[:, :, t + 1], ly[:, :, t + 1])
        acc = lse(np.full_like(nxt, NEG_INF), nxt, m)
        acc = np.where(u + 1 < u_len[:, None], lse(acc, np.pad(nxt[:, 1:], ((0, 0), (0, 1)),
                                                               constant_values=NEG_INF), m), acc)
        acc = np.where(skip & (u + 2 < u_len[:, None]),
                       lse(acc, np.pad(nxt[:, 2:], ((0, 0), (0, 2)), constant_values=NEG_INF), m), acc)
        live = (u >= u_len[:, None] - 2 * (t_len[:, None] - t)) & (u < np.minimum(u_len[:, None], 2 * (t + 1)))
        beta[:, :, t] = np.where(live & (t < t_len[:, None] - 1), acc, beta[:, :, t])
    return beta


def ctc_op(a: Array, labels: Array, lengths: Array, frames: Array, m: OpMath = FLOAT) -> tuple[Array, Array]:
    """The CTCLoss op on its inputs a [T, B, C] (the blank last) and each sequence's labels: the losses −log p and
    the op's gradient [T, B, C] (y − e^(log Σ αβ over a class's states − log p); y itself where p = 0; 0 past a
    sequence's frames)."""
    t_max, b, c = a.shape
    k = m.kind
    y = op_softmax(a, m)
    u_len = 2 * lengths + 1
    primes = np.full((b, int(u_len.max())), c - 1, dtype=np.int64)
    for i in range(b):
        primes[i, 1:u_len[i]:2] = labels[i, :lengths[i]]
    yb = np.transpose(y, (1, 2, 0))  # [B, C, T]
    with np.errstate(divide="ignore"):  # (the op's log y, the C library's one element at a time; log 0 = −∞)
        ly = np.where(yb == 0, NEG_INF, m.log(np.where(yb == 0, 1, yb))).astype(k.dtype)
    ly = np.take_along_axis(ly, np.broadcast_to(primes[:, :, None], (b, primes.shape[1], t_max)), axis=1)
    ends = (u_len, frames)
    both = k.add(alphas(ly, primes, ends, m), betas(ly, primes, ends, m))
    log_p = np.full(b, NEG_INF, dtype=k.dtype)
    for u in range(primes.shape[1]):
        log_p = np.where(u < u_len, lse(log_p, both[:, u, 0], m), log_p)
    sums = np.full((b, c, t_max), NEG_INF, dtype=k.dtype)
    rows = np.arange(b)
    for u in range(primes.shape[1]):
        here = (u < u_len)[:, None]
        sums[rows, primes[:, u]] = np.where(here, lse(sums[rows, primes[:, u]], both[:, u], m),
                                            sums[rows, primes[:, u]])
    with np.errstate(all="ignore"):
        dy = k.sub(yb, m.exp(k.sub(sums, log_p[:, None, None])))
    dy = np.where(np.isneginf(log_p)[:, None, None], yb, dy)
    dy = np.where(np.arange(t_max)[None, None, :] < frames[:, None, None], dy, 0)
    return -log_p, np.transpose(dy, (2, 0, 1)).astype(k.dtype)


def batch_cost(x: Array, labels: Array, lengths: Array, frames: Array, blank: int, eps: float,
               kind: Kind = lowp_tf.FLOAT32) -> tuple[Array, Callable[[Array], Array]]:
    """tf-keras' ctc_batch_cost of the probabilities y = e^x ([B, T, C], TensorFlow's Exp in the dtype): the
    classes put in order with the blank last, a = log(y transposed + ε) (Add and Log over [T, B, C], in the dtype),
    the CTCLoss op's losses (in float32: tf.nn.ctc_loss casts float16 and bfloat16 inputs to float32, and its
    losses back; in double for double), and for each sequence's upstream c [B] (in the dtype: 1 or 1/N, under
    weights times the weight) the gradient with respect to y: the upstream times the op's gradient, cast to the
    dtype, times Eigen's reciprocal of y + ε in the dtype (Log's gradient), back in the classes' order."""
    b, t_max, c = x.shape
    for i in range(b):  # (the op refuses these, as TensorFlow raises them)
        if lengths[i] == 0:
            raise InputError("{target}", f"TensorFlow's CTCLoss op refuses it: Labels length is zero in batch {i}")
        if lengths[i] > frames[i]:
            raise InputError("{target}", "TensorFlow's CTCLoss op refuses it: Not enough time for target transition "
                             f"sequence (required: {lengths[i]}, available: {frames[i]}){i}")
    order = np.r_[np.arange(blank), np.arange(blank + 1, c), blank]
    where = np.argsort(order)
    m = DOUBLE if kind is lowp_tf.WIDE else FLOAT
    y = (eigen64.elementwise(x, eigen64.pexp, eigen64.exp) if m is DOUBLE else
         elementwise(np.ascontiguousarray(x, dtype=F32), kind.of(pexp), kind.of(libm_expf)))[:, :, order]
    shifted = kind.add(np.ascontiguousarray(np.transpose(y, (1, 0, 2))), kind.number(eps))
    losses, dy = ctc_op(lowp_tf_log.log(shifted, kind), where[labels], lengths, frames, m)
    recip = lowp_tf_log.recip(shifted, kind)

    def grad(c: Array) -> Array:
        g = kind.mul(kind.mul(c[None, :, None], dy), recip)
        return np.transpose(g, (1, 0, 2))[:, :, where]
    return kind.rnd(losses), grad


def batch_cost_parts(y: Array, p: Array, kind: Kind, blank: int, eps: float, w: Array | None = None) -> Parts:
    """tf-keras' ctc_batch_cost on the probabilities e^x of the log-probabilities x given: the losses it returns
    (in the dtype; under sample weights w, held as tf-keras holds them, times them), the gradient with respect to
    those probabilities of their sum and of their mean (Keras' fit: compute_weighted_loss, its gradient 1/N in the
    dtype, times each weight), and the reduced value (lowp_tf's sum, divided by N)."""
    pred, frames, lengths, lab = unpack(y, p)
    with np.errstate(all="ignore"):
        losses, grad = batch_cost(pred.astype(kind.dtype), lab, lengths, frames, blank, eps, kind)
    return lowp_tf.weighed(losses, lambda c: grad(c).reshape(p.shape), kind, w)


