"""Connectionist temporal classification (ctc): −log of the probability of a label sequence, summed over every
alignment of it with the T frames of the predictions.

A sequence's labels l₁..l_L are interleaved with blanks, l' = (blank, l₁, blank, l₂, ..., l_L, blank), S = 2L + 1
states. The forward variable α_t(s) is the probability of the alignments of l'₁..l'_s with frames 1..t, the
backward β_t(s) that of l'_s..l'_S with frames t..T; both include frame t's own probability. They are computed in
log space (long double for the exact convention), so no alignment's probability underflows. Where p(l|x) is within
1e−16 of 1, exact takes the loss from what stands apart from 1 (`_log_lost`: the paths that are no alignment;
`_log_p_relative`: the alignments other than the most probable path) rather than rounding log p to 0.

The rest of lossgrad sees a batch of sequences as 2-D arrays, one row per sequence (`pack`): the predictions'
frames flattened (T·C values, frames past a sequence's length padding), and the target row
(C, input length, target length, labels...). Predictions are log-probabilities (PyTorch's log_softmax outputs), or
logits with --from-logits (softmax taken inside, as Keras and optax do); tf-keras' ctc_batch_cost reads them as the
probabilities e^x it takes (`_batch_cost`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NOT_FINITE, OptionError
from ..precise import DIGITS
from ._ops import Array
from .base import Loss, Param, Parts, Reason, _g, first_bad, register

if TYPE_CHECKING:
    from decimal import Decimal

    from ..conventions import Convention

BLANK = Param("blank", 0, "The blank's class index (PyTorch's blank, optax's blank_id, Keras' mask_index).",
              positive=False, integer=True)
ZERO_INFINITY = Param("zero_infinity", False, "A sequence with no alignment (its labels need more frames) counts "
                      "0, its gradient 0 (PyTorch's zero_infinity=True).", flag=True)
HEAD = 3  # a packed target row: the number of classes, the input length, the target length, then the labels
EXACT_DTYPE = np.longdouble


# ---------------------------------------------------------------- the layout


def pack(labels: Array, pred: Array, input_lengths: Array, target_lengths: Array) -> tuple[Array, Array]:
    """Padded labels [B, L] and predictions [B, T, C] as the 2-D target and prediction rows lossgrad evaluates."""
    b, t, c = pred.shape
    head = np.column_stack([np.full(b, c), input_lengths, target_lengths]).astype(np.float64)
    return np.hstack([head, labels.reshape(b, -1).astype(np.float64)]), pred.reshape(b, t * c)


def unpack(y: Array, p: Array) -> tuple[Array, Array, Array, Array]:
    """The packed rows as predictions [B, T, C], input lengths, target lengths and labels [B, L] (integers)."""
    c = int(y[0, 0]) if y.size else 1
    lengths = y[:, 1:HEAD].astype(np.intp)
    return p.reshape(p.shape[0], -1, c), lengths[:, 0], lengths[:, 1], y[:, HEAD:].astype(np.intp)


def needed_frames(labels: Array) -> int:
    """The fewest frames that hold `labels`: one per label, and a blank between each two equal neighbours."""
    return int(labels.size + np.count_nonzero(labels[1:] == labels[:-1]))


def ctc_check(y: Array, p: Array, from_logits: bool, **_: object) -> None:
    """Lengths within the frames and the labels' row, labels that are class indexes."""
    c, t = int(y[0, 0]), p.shape[1] // max(int(y[0, 0]), 1)
    first_bad("pred", ~np.isfinite(p), p, NOT_FINITE)
    first_bad("target", _at(y, 1, (y[:, 1:2] < 0) | (y[:, 1:2] > t)), y, f"is not an input length: 0 to the {t} frames")
    first_bad("target", _at(y, 2, (y[:, 2:3] < 0) | (y[:, 2:3] > y.shape[1] - HEAD)), y,
              "is not a target length: 0 to the labels given")
    labels = y[:, HEAD:]
    bad = _used(y) & ((labels != np.floor(labels)) | (labels < 0) | (labels >= c))
    first_bad("target", _at(y, HEAD, bad), y, f"is not a label: a class index in [0, {c})")


def _used(y: Array) -> Array:
    """Which of the packed label columns are within each sequence's target length."""
    return np.asarray(np.arange(y.shape[1] - HEAD)[None, :] < y[:, 2:3])


def _at(y: Array, col: int, mask: Array) -> Array:
    """A mask over some columns of the packed rows, as one over all of them."""
    out = np.zeros(y.shape, dtype=bool)
    out[:, col:col + mask.shape[1]] = mask
    return out


def check_blank(y: Array, blank: int) -> None:
    """The blank is a class, and no label is the blank."""
    c = int(y[0, 0])
    if not 0 <= blank < c:
        raise OptionError("blank", f"must be a class index in [0, {c}), got {blank}")
    first_bad("target", _at(y, HEAD, _used(y) & (y[:, HEAD:] == blank)), y,
              f"is the blank ({blank}): labels are the other classes (or choose the blank with {{blank}})")


# ---------------------------------------------------------------- the forward-backward recursions


def _extended(labels: Array, blank: int) -> tuple[Array, Array]:
    """l' (labels with blanks around and between them) and where a state may be entered from two states back
    (a label that differs from the label before it)."""
    ext = np.full(2 * labels.size + 1, blank, dtype=np.intp)
    ext[1::2] = labels
    skip = np.zeros(ext.size, dtype=bool)
    skip[3::2] = labels[1:] != labels[:-1]
    return ext, skip


def _step(prev: Array, skipw: Array) -> Array:
    """One frame's transitions in log space: stay, move one state on, or skip a blank (log weight skipw)."""
    x: Array = prev.copy()
    x[1:] = np.logaddexp(x[1:], prev[:-1])
    x[2:] = np.logaddexp(x[2:], prev[:-2] + skipw[2:])
    return x


def _recursion(em: Array, skipw: Array, first: Array) -> Array:
    """log α_t(s) for every frame (rows) and state: α_1(s) = first(s)·y_1(l'_s), α_t(s) = (α_{t−1}(s) +
    α_{t−1}(s−1) + w_s·α_{t−1}(s−2))·y_t(l'_s)."""
    a = np.empty_like(em)
    a[0] = first + em[0]
    for t in range(1, em.shape[0]):
        a[t] = _step(a[t - 1], skipw) + em[t]
    return a


def lattice(lp: Array, labels: Array, blank: int, rule: str, length: int) -> tuple[Array, Array, Array, Array, Array]:
    """The states' emissions [T, S] (log), their classes (−1: none), the log weight of each skip, and the log
    weights of the first and last states: the exact lattice (exact, torch), or the framework's own, whose
    impossible moves cost a large finite amount (optax: −1e5 to start past the first state or to repeat a label
    without a blank; TensorFlow: log 1e−307 to start past it or end before the last two states)."""
    ext, skip = _extended(labels, blank)
    cls = ext.copy()
    if rule == "tf":  # TF moves the blank to the end: a padding label equal to the blank emits nothing
        cls[1::2] = np.where((labels == blank) & (blank == 0), -1, np.where(labels == blank, blank - 1, labels))
        cls[1::2] = np.where((labels < 0) | (labels >= lp.shape[1]), -1, cls[1::2])
    em = np.where(cls >= 0, lp[:, np.maximum(cls, 0)], 0).astype(lp.dtype)
    big = lp.dtype.type(-1e5 if rule == "optax" else float(np.float32(np.log(1e-307))))
    skipw = np.where(skip, 0, -np.inf).astype(lp.dtype)
    first = np.full(ext.size, -np.inf, dtype=lp.dtype)
    end = np.full(ext.size, -np.inf, dtype=lp.dtype)
    first[:2], end[-2:] = 0, 0
    if rule == "optax":
        skipw[3::2] = np.where(skip[3::2], 0, big)
        first = _step(np.r_[lp.dtype.type(0), np.full(ext.size - 1, big, dtype=lp.dtype)], skipw)
    elif rule == "tf":
        first = _step(np.r_[lp.dtype.type(0), np.full(ext.size - 1, big, dtype=lp.dtype)], skipw)
        end[:] = big
        end[max(2 * length - 1, 0):2 * length + 1] = 0
    return em, cls, skipw, first, end


def sequence(lp: Array, labels: Array, blank: int, rule: str = "exact", length: int | None = None,
             normalized: bool = False) -> tuple[Array, Array]:
    """One sequence's −log p(l | x) and γ_t(k) = Σ_{s: l'_s = k} α_t(s) β_t(s) / (y_t(k) p): the probability that an
    alignment emits class k at frame t (0 everywhere when no alignment exists). `normalized`: each frame's
    probabilities sum to 1 (log-softmax of logits), so the exact p may be taken as 1 − Q (`_log_p_exact`)."""
    t_max, c = lp.shape
    if rule in ("exact", "torch", "tf-keras") and (t_max < needed_frames(labels) or t_max == 0):
        # (no frames and no labels: the one empty alignment, p = 1)
        return np.asarray(np.inf if labels.size else 0, dtype=lp.dtype), np.zeros_like(lp)
    em, cls, skipw, first, end = lattice(lp, labels, blank, rule, labels.size if length is None else length)
    alpha = _recursion(em, skipw, first)
    # β is α of the reversed sequence, entered from the last states: the skips of the reversed l' are the
    # original's, shifted by two
    rskipw = np.full_like(skipw, -np.inf)
    rskipw[2:] = skipw[::-1][:-2]
    beta = _recursion(em[::-1, ::-1], rskipw, end[::-1])[::-1, ::-1]
    post = alpha + beta - em
    if rule == "tf":
        # TensorFlow's likelihood counts the paths from the first state only (its forward pass starts every other
        # state at log 1e−307), and it divides each frame's posteriors by their own sum
        start = np.full(em.shape[1], -np.inf, dtype=lp.dtype)
        start[:2] = 0
        log_p = _logsumexp(start + beta[0])
        norm = _logsumexp(post, axis=1)[:, None]
    elif rule == "exact":
        log_p = norm = _log_p_exact(lp, alpha, em, cls, skipw, first, end, normalized)
    else:
        log_p = norm = _logsumexp(alpha[-1] + end)
    g = np.full((c, t_max), -np.inf, dtype=lp.dtype)
    on = cls >= 0
    np.logaddexp.at(g, cls[on], (post - norm)[:, on].T)
    return -log_p, np.exp(g.T)


def _log_p_exact(lp: Array, alpha: Array, em: Array, ext: Array, skipw: Array, first: Array, end: Array,
                 normalized: bool) -> Array:
    """log p(l|x) without rounding p near 1 to 1: log1p(−Q) from probabilities whose frames sum to 1 (Q = 1 − p, the
    paths that are no alignment, `_log_lost`), e^(Σ_t m_t)·(U + V) from others (`_log_p_relative`)."""
    if not normalized:
        return _log_p_relative(lp.max(axis=1), em - lp.max(axis=1)[:, None], skipw, first, end)
    log_q = _log_lost(lp, alpha, ext, skipw)
    if log_q < -np.log(lp.dtype.type(2)):
        return np.asarray(np.log1p(-np.exp(log_q)))
    return _logsumexp(alpha[-1] + end)


def _log_lost(lp: Array, alpha: Array, ext: Array, skipw: Array) -> Array:
    """log Q, Q = 1 − p(l|x) when each frame's probabilities y_t sum to 1: the probability of the paths that are no
    alignment of l. Such a path leaves the lattice at a frame t, from a state s it held at t − 1 (or from the start)
    by a class it cannot move on with, or it ends in a state before the last two:

        Q = Σ_t Σ_s α_{t−1}(s)·Σ_{k ∉ next(s)} y_t(k) + Σ_{s < S−1} α_T(s),  α_0 = 1 before the first state,

    where next(s) = {l'_s, l'_{s+1}, l'_{s+2} if it may be skipped to}. Every term is a probability: nothing cancels,
    so −log1p(−Q) keeps a loss of 1e−60 where −log p rounds to 0."""
    t_max, c = lp.shape
    ok = _next_classes(ext, skipw == 0, c)
    with np.errstate(divide="ignore"):
        off = _logsumexp(np.where(ok[None], -np.inf, lp[:, None, :]), axis=2)  # [T, S + 1]
    before = np.full((t_max, alpha.shape[1] + 1), -np.inf, dtype=lp.dtype)
    before[0, 0] = 0
    before[1:, 1:] = alpha[:-1]
    unfinished = alpha[-1, :max(alpha.shape[1] - 2, 0)]
    return _logsumexp(np.r_[(before + off).ravel(), unfinished])


def _next_classes(ext: Array, skip: Array, c: int) -> Array:
    """[S + 1, C]: the classes with which a path in each state (row 0: before the first frame) stays on the
    lattice: its own (stay), the next state's, and the one after if it may be skipped to; from the start, l'_1, l'_2."""
    s = np.arange(ext.size)
    ok = np.zeros((ext.size + 1, c), dtype=bool)
    ok[0, ext[:2]] = True
    ok[s + 1, ext] = True
    ok[s[:-1] + 1, ext[1:]] = True
    two = s[:-2][skip[2:]]
    ok[two + 1, ext[two + 2]] = True
    return ok


def _log_p_relative(m: Array, r: Array, skipw: Array, first: Array, end: Array) -> Array:
    """log p(l|x) = Σ_t m_t + log(U + V), m_t = max_k x_tk: relative to a path of each frame's most probable classes
    (log weight r = x − m = 0 there), U counts the alignments that take such a class at every frame, and V sums the
    other alignments' Π_t e^(r_t), each below 1. log(U + V) = log U + log1p(V/U) keeps a p within 1e−16 of e^(Σm)
    (U = 1, V tiny), which the log of the whole sum would round away."""
    top = r == 0
    u = np.where(top[0], first, -np.inf)
    v = np.where(top[0], -np.inf, first + r[0])
    for t in range(1, r.shape[0]):
        su, sv = _step(u, skipw), _step(v, skipw)
        u, v = np.where(top[t], su, -np.inf), np.logaddexp(sv + r[t], np.where(top[t], -np.inf, su + r[t]))
    with np.errstate(divide="ignore"):
        log_u, log_v = _logsumexp(u + end), _logsumexp(v + end)
    rel = log_v if np.isneginf(log_u) else log_u + np.log1p(np.exp(log_v - log_u))
    return np.asarray(np.sum(m) + rel)


def one_hot_nan(lp: Array, picked: Array, inside: Array) -> Array:
    """Each label's log-probability as a framework's product with a one-hot row gives it, Σ_c lp_c·one_hot_c
    (optax's einsum, TensorFlow's ctc_loss_dense): picked, but NaN where the frame has a non-finite
    log-probability at another class (−∞ where the logits' gap overflows the dtype), whose product with 0 is NaN.
    lp [..., C]; picked and inside (the labels within the classes, else 0 picked) [..., L]."""
    nonfinite = ~np.isfinite(lp)
    others = nonfinite.sum(axis=-1)[..., None] - (inside & ~np.isfinite(picked))
    out: Array = np.where(others > 0, lp.dtype.type(np.nan), picked)
    return out


def _logsumexp(x: Array, axis: int | None = None) -> Array:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    out: Array = np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(x - top), axis=axis))
    return out


def _log_softmax(z: Array) -> tuple[Array, Array]:
    """log softmax and softmax along the last axis."""
    s = z - z.max(axis=-1, keepdims=True)
    e = np.exp(s)
    total = e.sum(axis=-1, keepdims=True)
    return s - np.log(total), e / total


def _others(a: Array) -> Array:
    """Σ_{j≠k} a_j for each k along the last axis, summed from both ends (no 1 − (1 − ε) cancellation)."""
    zero = np.zeros_like(a[..., :1])
    left = np.concatenate([zero, np.cumsum(a, axis=-1)[..., :-1]], axis=-1)
    right = np.concatenate([np.cumsum(a[..., ::-1], axis=-1)[..., ::-1][..., 1:], zero], axis=-1)
    return np.asarray(left + right)


def _minus(soft: Array, gamma: Array) -> Array:
    """softmax − γ without cancelling two numbers near 1: where softmax > 1/2, (1 − γ) − (1 − softmax), each
    complement summed from the other classes' small terms."""
    return np.where(soft > 0.5, _others(gamma) - _others(soft), soft - gamma)


def _decimal_sequence(x: Array, labels: Array, blank: int, from_logits: bool) -> tuple[float, Array, Array]:
    """One sequence's loss, gradient (−γ, or softmax − γ from logits) and softmax − γ, recomputed with the α/β
    recursions in probability space in decimal, at the first precision where every gradient element stands clear
    of the rounding of the terms it came from (for the few sequences where the long double ones cancel)."""
    from decimal import MAX_EMAX, MIN_EMIN, Decimal, localcontext

    ext, skip = _extended(labels, blank)
    t_max, c = x.shape
    for prec in DIGITS:
        with localcontext() as ctx:
            ctx.prec, ctx.Emin, ctx.Emax = prec, MIN_EMIN, MAX_EMAX  # (e^x of a logit gap of 10⁷ is 10^−4342945)
            soft, y = _decimal_softmax([[Decimal(float(v)) for v in row] for row in x], from_logits)
            a, b = _decimal_alpha_beta(y, ext, skip)
            p = a[-1][-1] + (a[-1][-2] if ext.size > 1 else 0)
            gamma = [[share / (y[t][k] * p) for k, share in enumerate(_by_class(a[t], b[t], ext, c))]
                     for t in range(t_max)]
            diff = [[soft[t][k] - gamma[t][k] for k in range(c)] for t in range(t_max)]
            near = Decimal(10) ** (25 - prec)  # (a difference this close to its terms' rounding is not yet known)
            clear = abs(p.ln()) > near and all(abs(d) > max(soft[t][k], gamma[t][k]) * near
                                               for t in range(t_max) for k, d in enumerate(diff[t]))
            if clear or prec == DIGITS[-1]:
                grad = diff if from_logits else [[-g for g in row] for row in gamma]
                return float(-p.ln()), np.array(grad, dtype=np.float64), np.array(diff, dtype=np.float64)
    raise AssertionError("unreachable")


def _decimal_softmax(rows: list[list[Decimal]], from_logits: bool) -> tuple[list[list[Decimal]], ...]:
    """Each frame's softmax and the probabilities y: the softmax itself from logits, e^x from log-probabilities
    (whose softmax is then e^x over its sum, one exponential an element, but for a frame whose e^x all underflow:
    e^(x − max) over its sum)."""
    def normalised(e: list[Decimal]) -> list[Decimal]:
        total = sum(e)
        return [v / total for v in e]

    def shifted(row: list[Decimal]) -> list[Decimal]:
        top = max(row)
        return normalised([(v - top).exp() for v in row])
    if from_logits:
        soft = [shifted(row) for row in rows]
        return soft, soft
    y = [[v.exp() for v in row] for row in rows]
    return [normalised(e) if any(e) else shifted(row) for e, row in zip(y, rows, strict=True)], y


def _by_class(a: list[Decimal], b: list[Decimal], ext: Array, classes: int) -> list[Decimal]:
    """Σ α(s)·β(s) over each class's states at one frame, in the states' order."""
    from decimal import Decimal

    sums = [Decimal(0)] * classes
    for s, k in enumerate(ext):
        sums[k] += a[s] * b[s]
    return sums


def _decimal_alpha_beta(y: list[list[Decimal]], ext: Array, skip: Array) -> tuple[list[list[Decimal]], ...]:
    """α and β in probability space (decimal's exponent range has room for any product of probabilities)."""
    from decimal import Decimal

    n, t_max, zero = ext.size, len(y), Decimal(0)
    a = [[zero] * n for _ in range(t_max)]
    b = [[zero] * n for _ in range(t_max)]
    for s in range(min(2, n)):
        a[0][s] = y[0][ext[s]]
        b[-1][n - 1 - s] = y[-1][ext[n - 1 - s]]
    for t in range(1, t_max):
        for s in range(n):
            v = a[t - 1][s] + (a[t - 1][s - 1] if s else zero) + (a[t - 1][s - 2] if skip[s] else zero)
            a[t][s] = v * y[t][ext[s]]
    for t in range(t_max - 2, -1, -1):
        for s in range(n):
            v = b[t + 1][s] + (b[t + 1][s + 1] if s + 1 < n else zero) + (
                b[t + 1][s + 2] if s + 2 < n and skip[s + 2] else zero)
            b[t][s] = v * y[t][ext[s]]
    return a, b


def _risky(lp: Array, soft: Array, gamma: Array, loss: float, from_logits: bool) -> bool:
    """Whether the long double recursions may leave a gradient element (or the loss) off by more than half an ulp
    of a double: their log-probabilities' rounding, at most the size of the sums of them, grows by the ratio of
    softmax and γ to their difference where the two nearly agree, and, from log-probabilities, by the ratio of
    the loss's two terms Σ_t m_t and log(U + V) to their sum (`_log_p_relative`)."""
    size = float(np.abs(lp).max(axis=-1).sum() + lp.shape[0])
    err = size * 2.0 ** -63
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(soft, gamma) / np.abs(soft - gamma)
        m = 0.0 if from_logits else float(lp.max(axis=-1).sum())
        terms = np.float64(abs(m) + abs(m + loss)) / abs(loss) if m else 1.0
    ratio = np.append(ratio.ravel(), terms)
    return bool(err * np.nanmax(np.where(np.isfinite(ratio), ratio, 2.0 ** 60), initial=1.0) > 2.0 ** -54)


def ctc_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                blank: int = 0, zero_infinity: bool = False) -> Parts:
    """Per sequence: −log p(l | x), and its gradient with respect to the predictions as given (frames past a
    sequence's length: 0)."""
    check_blank(y, blank)
    pred, t_len, l_len, lab = unpack(y, p)
    if conv.ctc == "tf-keras":
        return _batch_cost(pred, t_len, l_len, lab, blank, float(conv.eps or 0))
    work = EXACT_DTYPE if conv.ctc == "exact" else p.dtype
    x = pred.astype(work)
    lp, soft = _log_softmax(x) if from_logits else (x, _log_softmax(x)[1])
    losses = np.zeros(pred.shape[0], dtype=work)
    gamma = np.zeros_like(lp)
    for i in range(pred.shape[0]):
        n = t_len[i]
        labels_i = lab[i] if conv.ctc == "tf" else lab[i, :l_len[i]]  # (TensorFlow's lattice runs to the padding)
        losses[i], gamma[i, :n] = sequence(lp[i, :n], labels_i, blank, conv.ctc, l_len[i], from_logits)
    if conv.ctc == "torch":
        grad, logits_grad = np.exp(x) - gamma, None
    else:
        logits_grad = _minus(soft, gamma) if conv.ctc == "exact" else soft - gamma
        grad = logits_grad if from_logits else 0 - gamma
        if conv.ctc == "exact":
            _refine(x, lab, t_len, l_len, blank, from_logits, (losses, grad, logits_grad, soft, gamma))
    dead = np.isinf(losses)
    frames = (np.arange(pred.shape[1])[None, :] < t_len[:, None])[:, :, None]
    # no alignment: p is 0 for every input near this one, so the exact derivative is 0; PyTorch's backward divides
    # by that 0 in the sequence's frames
    undefined = dead[:, None, None] & frames
    grad = np.where(frames & ~undefined, grad, np.nan if conv.ctc == "torch" and not zero_infinity else 0)
    grad = np.where(frames | undefined, grad, 0)
    if zero_infinity:
        losses = np.where(dead, 0, losses)
    if from_logits:
        logits_grad = None
    elif logits_grad is not None:
        logits_grad = np.where(frames & ~undefined, logits_grad, 0)
    out = p.dtype.type
    return Parts(losses.astype(out), grad.reshape(p.shape).astype(out),
                 None if logits_grad is None else logits_grad.reshape(p.shape).astype(out),
                 soft.reshape(p.shape).astype(out) if from_logits else None)


def _batch_cost(x: Array, t_len: Array, l_len: Array, lab: Array, blank: int, eps: float) -> Parts:
    """tf-keras' ctc_batch_cost, given the probabilities y = e^x: TensorFlow's CTC op (the exact lattice, in the
    dtype) on the logits a = log(y + ε), whose softmax is (y + ε)/Σ(y + ε), and the gradient with respect to the
    probabilities themselves: ∂ℓ/∂y = (softmax(a) − γ)·1/(y + ε), with γ = 0 where no alignment exists (the loss
    ∞)."""
    u = np.exp(x) + x.dtype.type(eps)
    lp, soft = _log_softmax(np.log(u))
    losses = np.zeros(x.shape[0], dtype=x.dtype)
    gamma = np.zeros_like(lp)
    for i in range(x.shape[0]):
        n = t_len[i]
        losses[i], gamma[i, :n] = sequence(lp[i, :n], lab[i, :l_len[i]], blank, "tf-keras")
    frames = (np.arange(x.shape[1])[None, :] < t_len[:, None])[:, :, None]
    grad = np.where(frames, (soft - gamma) * (1 / u), 0).astype(x.dtype)
    return Parts(losses, grad.reshape(x.shape[0], -1))


def _refine(x: Array, lab: Array, t_len: Array, l_len: Array, blank: int, from_logits: bool,
            arrays: tuple[Array, ...]) -> None:
    """The sequences whose long double numbers may be off by more than half an ulp, recomputed in decimal (in
    place)."""
    from decimal import DecimalException

    losses, grad, logits_grad, soft, gamma = arrays
    lp = _log_softmax(x)[0] if from_logits else x
    for i in range(x.shape[0]):
        n, labels_i = t_len[i], lab[i, :l_len[i]]
        possible = n > 0 and n >= needed_frames(labels_i)
        if not possible or not _risky(lp[i, :n], soft[i, :n], gamma[i, :n], float(losses[i]), from_logits):
            continue
        try:
            losses[i], grad[i, :n], logits_grad[i, :n] = _decimal_sequence(x[i, :n], labels_i, blank, from_logits)
        except DecimalException:  # (beyond even decimal's range, e^x of a gap beyond 10¹⁸: the long double numbers)
            continue


def mean_divisors(conv: Convention, y: Array) -> Array | None:
    """What a convention's mean divides each sequence's loss by before averaging them: PyTorch's target length
    (at least 1); None: nothing."""
    if conv.ctc_mean != "target-length":
        return None
    return np.maximum(y[:, 2], 1)


# ---------------------------------------------------------------- --explain and diagnose


def ctc_formulas(from_logits: bool, conv: Convention, blank: int = 0, zero_infinity: bool = False) -> list[str]:
    y = "softmax(z_t)ₖ" if from_logits else "e^(x_tk)"
    lines = [f"l' = (b, l₁, b, l₂, …, l_L, b), blank b = {blank}, S = 2L + 1 states; y_t(k) = {y}",
             "α₁(1) = y₁(b), α₁(2) = y₁(l₁);  α_t(s) = (α_{t−1}(s) + α_{t−1}(s−1) + [l'_s ≠ b, l'_s ≠ l'_{s−2}]·"
             "α_{t−1}(s−2))·y_t(l'_s)",
             "β_T(S) = y_T(b), β_T(S−1) = y_T(l_L);  β_t(s) = (β_{t+1}(s) + β_{t+1}(s+1) + [l'_s ≠ b, l'_s ≠ l'_{s+2}]·"
             "β_{t+1}(s+2))·y_t(l'_s)",
             "p(l|x) = α_T(S) + α_T(S−1),  ℓ = −log p(l|x)  (in log space: log α by logsumexp)",
             "γ_t(k) = Σ_{s: l'_s = k} α_t(s)·β_t(s) / (y_t(k)·p(l|x))  (the share of alignments emitting k at t)"]
    if conv.ctc == "exact":
        lines.append("near p = 1: ℓ = −log1p(−Q), Q = Σ_t Σ_s α_{t−1}(s)·Σ_{k ∉ next(s)} y_t(k) + Σ_{s < S−1} α_T(s) "
                     "(the paths that are no alignment)" if from_logits else
                     "near p = 1: ℓ = −Σ_t m_t − log(U + V), m_t = max_k x_tk, U the alignments through those "
                     "classes, V = Σ of the others' Π_t e^(x_t − m_t)")
    if from_logits:
        lines.append("∂ℓ/∂z_tk = softmax(z_t)ₖ − γ_t(k)")
    elif conv.ctc == "tf-keras":
        lines[0] = f"l' = (b, l₁, b, l₂, …, l_L, b), blank b = {blank}, S = 2L + 1 states; y_t(k) = " \
            f"(e^(x_tk) + ε)/Σ_j (e^(x_tj) + ε), ε = {_g(conv.eps or 0)}  (ctc_batch_cost: log(probabilities + ε) " \
            "as the CTC op's logits)"
        lines.append("∂ℓ/∂(e^x_tk) as tf-keras returns it, with respect to the probabilities: (y_t(k) − γ_t(k))/"
                     "(e^(x_tk) + ε); no alignment: ℓ = ∞, γ = 0")
    elif conv.ctc == "torch":
        lines.append("∂ℓ/∂x_tk as PyTorch returns it: e^(x_tk) − γ_t(k) (the gradient with respect to the logits "
                     "behind log_softmax; with respect to x itself it is −γ_t(k))")
    else:
        lines.append("∂ℓ/∂x_tk = −γ_t(k)  (x: log-probabilities; the logits behind log_softmax get e^(x_tk) − γ_t(k))")
    lines.append("no alignment (T < L + repeated neighbours): p = 0, ℓ = ∞" +
                 (", counted as 0 with gradient 0 (zero_infinity)" if zero_infinity else ""))
    if conv.ctc in ("tf", "optax"):
        zero = "−1e5" if conv.ctc == "optax" else "log 1e−307 ≈ −706.9 (for every state but the first, and at the end "\
            "for every state but the last two)"
        lines.append(f"{conv.title} stands in {zero} for log 0, so a sequence with no alignment gets a large finite "
                     "loss and gradient")
    return lines  # (the reduction, PyTorch's mean over the target lengths among them: reduction.formulas)


def ctc_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                labels: Array | None, **opts: Any) -> list[Reason]:
    """PyTorch's mean over target lengths, and its gradient with respect to the logits behind log_softmax."""
    why: list[Callable[[tuple[int, ...]], str]] = []
    if conv.ctc_mean == "target-length":
        lengths = np.maximum(y2[:, 2], 1)
        why.append(lambda i: f"{conv.name}'s mean divides sequence {i[0]}'s loss by its target length "
                             f"{_g(lengths[i[0]])} before averaging over the batch")
    if conv.ctc == "torch" and not from_logits:
        why.append(lambda i: f"{conv.name}'s ctc_loss backward returns e^x − γ (the gradient with respect to the "
                             "logits behind log_softmax), not −γ, the gradient with respect to the log-probability")
    rules: list[Reason] = []
    if conv.ctc == "tf-keras":
        why.append(lambda i: f"{conv.name}'s ctc_batch_cost takes the probabilities e^x, adds ε = "
                             f"{_g(conv.eps or 0)} and takes their log as the CTC op's logits, and returns the "
                             "gradient with respect to the probabilities, (softmax − γ)/(e^x + ε), where −γ is the "
                             "gradient with respect to x; it returns each sequence's loss ([B, 1]), which Keras' fit "
                             "then averages over the batch")
    if conv.ctc in ("tf", "optax") and y2.ndim == 2 and y2.shape[1] >= HEAD:
        dead = np.array([y2[i, 1] < needed_frames(y2[i, HEAD:HEAD + int(y2[i, 2])]) for i in range(y2.shape[0])])
        zero = "−1e5" if conv.ctc == "optax" else "log 1e−307"
        rules.append((np.broadcast_to(dead[:, None], p2.shape),
                      lambda i: f"sequence {i[0]} has no alignment (too few frames for its labels): {conv.name} "
                                f"stands in {zero} for log 0, so its loss and gradient are finite"))
    if why:
        rules.append((np.ones_like(p2, dtype=bool), lambda i: "; ".join(w(i) for w in why)))
    return rules


CTC = register(
    Loss(
        name="ctc",
        summary="connectionist temporal classification, −log of the sum over a label sequence's alignments with the "
                "frames",
        kind="sequence",
        compute=ctc_compute,
        check=ctc_check,
        formulas=ctc_formulas,
        has_logits=True,
        reference="torch.nn.functional.ctc_loss, keras.losses.CTC / keras.ops.ctc_loss, optax.ctc_loss",
        params=(BLANK, ZERO_INFINITY),
        last_axis="vector",
        zero_hint="the labels need more frames than the sequence has (one per label and a blank between equal "
                  "neighbours), so no alignment exists; {zero_infinity} counts such sequences as 0, as PyTorch's "
                  "zero_infinity=True",
        link="softmax",
        reasons=ctc_reasons,
    )
)
