"""TensorFlow's CPU kernels for Keras 3's ctc (keras.losses.CTC, keras.ops.ctc_loss) in float32, float16 and
bfloat16.

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
dtype); the gradient is the upstream times the float32 gradient, cast to the dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import lowp_tf
from .losses import Parts
from .losses._ops import Array
from .losses.ctc import check_blank, unpack
from .lowp import libm_logf
from .lowp_tf import F32, PACKET, Kind, add, elementwise, kind_of, libm_expf, mul, pexp, plog, row_sums, sub, upstream

# the loss whose kernels this module reproduces (kernels.MORE hands it here before lowp_tf_log) and the options it
# takes
TAKES = {"ctc": ("blank",)}
SUPPORTED = ("ctc (from logits; --blank)",)
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
    picked = np.where(inside[None], picked, F32(0))
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
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True) -> Parts:
    """The per-sequence losses (float32, stored in the dtype as Keras' wrapper converts them), the gradient of
    their sum and of their mean over N (the upstream 1/N in the dtype, times the float32 gradient, cast to the
    dtype), the softmax, and the reduced value (lowp_tf's). `labels`, `switches`, `batchmean` and `from_logits` are
    taken as every backend takes them: ctc's labels and lengths are in the packed target rows, and Keras' ctc takes
    logits."""
    kind = kind_of(half)
    blank = int((params or {}).get("blank") or 0)
    check_blank(y, blank)
    pred, frames, lengths, lab = unpack(y, p)
    labels, notes = keras_labels(lab, np.arange(lab.shape[1])[None, :] < lengths[:, None], kind)
    with np.errstate(all="ignore"):
        losses, grad, soft = ctc(pred.astype(F32), labels, lengths, frames, blank)
    stored = kind.rnd(losses)

    def mean_grad(n: float) -> Array:
        with np.errstate(all="ignore"):
            return kind.rnd(mul(upstream(n, kind), grad)).reshape(p.shape)
    return Parts(losses=stored, grad=mean_grad(1), prob=kind.rnd(soft).reshape(p.shape), mean_grad=mean_grad,
                 mean_value=lowp_tf.reduced_value(stored, kind), warnings=notes)

