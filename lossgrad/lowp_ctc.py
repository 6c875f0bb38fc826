"""PyTorch's ctc_loss on the CPU (F.ctc_loss on log-probabilities), reproduced bit for bit in float32 and float64.

ATen's LossCTC.cpp runs scalar C++ loops, one sequence after another: log α frame by frame as
log(e^(a₁−m) + e^(a₂−m) + e^(a₃−m)) + m + log y (m the largest of the three, 0 when all are −∞), the loss from the
last two states the same way, then log β backwards, and at each frame the log-sum of α·β collected per class state
by state from the last (log(e^(c−m) + e^(ab−m)) + m), and the gradient (e^x − e^(c + nll − x))·g with g the
upstream gradient of the sequence's loss. Each of these steps rounds once in the dtype, and e^x and log x are the C
library's: glibc's expf and logf in float32 (double arithmetic rounded once, `libm_expf`, `libm_logf`), its exp and
log in float64 (Python's math.exp and math.log call exactly those). No state depends on another of its own frame,
so the steps run here on all sequences and states at once, frame by frame, in the C++ order of each sum.

The reductions are ctc_loss_impl's: sum, torch.sum of the losses; mean, each loss divided by its target length
(at least 1) in the dtype, then torch.mean (the sum, then divided by B); autograd's g for the mean is (1/B)/length,
each quotient rounded. Weighed by sequence, as PyTorch users weigh them, (ctc_loss(reduction="none") * w).mean() or
.sum(): each loss times its weight in the dtype, torch.mean or torch.sum of the products, and g = (1/B)·w (or w),
each product rounded (`weighed`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .losses import Parts
from .losses._ops import Array
from .losses.ctc import check_blank, unpack
from .lowp import F32, libm_expf, libm_logf, summed

TAKES = {"ctc": ("blank", "zero_infinity")}
WEIGHABLE = ("ctc",)  # (kernels._beyond: reproduced under sample weights too)
SUPPORTED = ("ctc (log-probabilities, with blank, zero_infinity and sample weights; float32 and float64)",)
DTYPES = ("float32", "float64")  # (the half dtypes PyTorch itself refuses: lowp.refused)
Elementwise = Callable[[Array], Array]


def _logf(x: Array) -> Array:
    """glibc's logf, also at 0 (−∞) and beyond the positive finite numbers."""
    with np.errstate(all="ignore"):
        ok = (x > 0) & np.isfinite(x)
        out: Array = np.where(ok, libm_logf(np.where(ok, x, F32(1))), np.log(x.astype(F32)))
    return out


def _exp1(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _log1(v: float) -> float:
    return -math.inf if v == 0 else math.log(v) if v > 0 else math.nan if v < 0 else v


_EXP, _LOG = np.frompyfunc(_exp1, 1, 1), np.frompyfunc(_log1, 1, 1)


def _exp64(x: Array) -> Array:
    """glibc's exp, element by element (math.exp calls it; ∞ where it overflows)."""
    out: Array = np.asarray(_EXP(np.asarray(x, dtype=np.float64)), dtype=np.float64)
    return out


def _log64(x: Array) -> Array:
    """glibc's log, element by element (math.log calls it; log 0 = −∞)."""
    out: Array = np.asarray(_LOG(np.asarray(x, dtype=np.float64)), dtype=np.float64)
    return out


def libm(dtype: Any) -> tuple[Elementwise, Elementwise]:
    """The C library's e^x and log x in the dtype."""
    return (libm_expf, _logf) if dtype == np.float32 else (_exp64, _log64)


class Lattice:
    """A batch's sequences as the kernel walks them: l' of each (the labels with blanks around and between them,
    padded with blanks to the longest), its states' log-probabilities [B, T, S], the lengths, and where a state
    may be entered from two states back."""

    def __init__(self, lp: Array, labels: Array, t_len: Array, l_len: Array, blank: int) -> None:
        b, _, _ = lp.shape
        s = 2 * labels.shape[1] + 1
        self.ext = np.full((b, s), blank, dtype=np.intp)
        self.ext[:, 1::2] = np.where(np.arange(labels.shape[1])[None, :] < l_len[:, None], labels, blank)
        self.em = np.take_along_axis(lp, np.broadcast_to(self.ext[:, None, :], (b, lp.shape[1], s)), axis=2)
        self.skip = np.zeros((b, s), dtype=bool)
        self.skip[:, 2:] = self.ext[:, 2:] != self.ext[:, :-2]
        self.t_len, self.l_len, self.last = t_len, l_len, 2 * l_len
        self.lp, self.kind = lp, lp.dtype.type

    def logsumexp3(self, a1: Array, a2: Array, a3: Array, em: Array, lib: tuple[Elementwise, Elementwise]) -> Array:
        """log(e^(a₁−m) + e^(a₂−m) + e^(a₃−m)) + m + em, m the largest (0 when all are −∞), as the kernel adds."""
        exp, log = lib
        m = np.where(a2 > a1, a2, a1)
        m = np.where(a3 > m, a3, m)
        m = np.where(m == -np.inf, self.kind(0), m)
        total = (exp(a1 - m) + exp(a2 - m)) + exp(a3 - m)
        out: Array = (log(total) + m) + em
        return out


def log_alpha(lat: Lattice, lib: tuple[Elementwise, Elementwise]) -> Array:
    """log α [B, T, S]: frame 0 the first two states' log-probabilities, then each frame from the one before."""
    b, t_max, s = lat.em.shape
    ninf = lat.kind(-np.inf)
    alpha = np.full((b, t_max, s), ninf, dtype=lat.kind)
    if t_max == 0:
        return alpha
    alpha[:, 0, 0] = lat.em[:, 0, 0]
    if s > 1:
        alpha[:, 0, 1] = np.where(lat.l_len > 0, lat.em[:, 0, 1], ninf)
    pad = np.full((b, 2), ninf, dtype=lat.kind)
    for t in range(1, t_max):
        prev = alpha[:, t - 1]
        shifted = np.concatenate([pad, prev], axis=1)
        a3 = np.where(lat.skip, shifted[:, :s], ninf)
        alpha[:, t] = lat.logsumexp3(prev, shifted[:, 1:s + 1], a3, lat.em[:, t], lib)
    return alpha


def nll(lat: Lattice, alpha: Array, lib: tuple[Elementwise, Elementwise]) -> Array:
    """−log p from the last frame's last two states (a sequence without labels: its one state; without frames:
    −0 without labels, else ∞)."""
    exp, log = lib
    rows = np.arange(alpha.shape[0])
    last = alpha[rows, np.maximum(lat.t_len - 1, 0)]
    l1 = last[rows, lat.last]
    l2 = np.where(lat.l_len > 0, last[rows, np.maximum(lat.last - 1, 0)], lat.kind(-np.inf))
    m = np.where(l1 < l2, l2, l1)
    m = np.where(m == -np.inf, lat.kind(0), m)
    two = log(exp(l1 - m) + exp(l2 - m)) + m
    ll = np.where(lat.l_len > 0, two, l1)
    ll = np.where(lat.t_len > 0, ll, np.where(lat.l_len > 0, lat.kind(-np.inf), lat.kind(0)))
    out: Array = -ll
    return out


def log_beta(lat: Lattice, lib: tuple[Elementwise, Elementwise]) -> Array:
    """log β [B, T, S]: each sequence's last frame its last two states' log-probabilities, then each frame from
    the one after (a state's second and third terms only within the sequence's own states)."""
    b, t_max, s = lat.em.shape
    ninf = lat.kind(-np.inf)
    beta = np.full((b, t_max, s), ninf, dtype=lat.kind)
    states = np.arange(s)[None, :]
    rows = np.arange(b)
    pad = np.full((b, 2), ninf, dtype=lat.kind)
    # the third term: from two states on, within the sequence's states, where those two states' classes differ
    skip_on = np.concatenate([lat.skip[:, 2:], np.zeros((b, 2), dtype=bool)], axis=1) & (states < lat.last[:, None] - 1)
    for t in range(t_max - 1, -1, -1):
        first = np.full((b, s), ninf, dtype=lat.kind)
        first[rows, lat.last] = lat.em[rows, t, lat.last]
        on = np.flatnonzero(lat.l_len > 0)
        first[on, lat.last[on] - 1] = lat.em[on, t, lat.last[on] - 1]
        if t + 1 < t_max:
            nxt = np.concatenate([beta[:, t + 1], pad], axis=1)
            b2 = np.where(states < lat.last[:, None], nxt[:, 1:s + 1], ninf)
            b3 = np.where(skip_on, nxt[:, 2:], ninf)
            step = lat.logsumexp3(beta[:, t + 1], b2, b3, lat.em[:, t], lib)
        else:
            step = first
        end = np.asarray(lat.t_len - 1)[:, None]
        beta[:, t] = np.where(t == end, first, np.where(t < end, step, ninf))
    return beta


def collected(lat: Lattice, alpha: Array, beta: Array, lib: tuple[Elementwise, Elementwise]) -> Array:
    """log Σ α·β per frame and class [B, T, C], added state by state from the last, as the kernel collects
    them: the first a class meets stored, each further one log(e^(c−m) + e^(ab−m)) + m."""
    exp, log = lib
    b, t_max, c = lat.lp.shape
    ninf = lat.kind(-np.inf)
    out = np.full((b, t_max, c), ninf, dtype=lat.kind)
    frames = np.arange(t_max)[None, :] < lat.t_len[:, None]
    for s in range(alpha.shape[2] - 1, -1, -1):
        idx = np.broadcast_to(lat.ext[:, s][:, None, None], (b, t_max, 1))
        cur = np.take_along_axis(out, idx, axis=2)[:, :, 0]
        ab = alpha[:, :, s] + beta[:, :, s]
        m = np.where(cur < ab, ab, cur)
        new = np.where(cur == ninf, ab, log(exp(cur - m) + exp(ab - m)) + m)
        new = np.where(frames & (s <= lat.last)[:, None], new, cur)
        np.put_along_axis(out, idx, new[:, :, None], axis=2)
    return out


def gradient(lat: Lattice, res: Array, loss: Array, g: Array, zero_infinity: bool,
             lib: tuple[Elementwise, Elementwise]) -> Array:
    """(e^x − e^(c + nll − x))·g in each sequence's frames, 0 past them; 0 throughout a sequence without an
    alignment under zero_infinity."""
    exp, _ = lib
    lp = lat.lp
    frames = (np.arange(lp.shape[1])[None, :] < lat.t_len[:, None])[:, :, None]
    x = np.where(frames, lp, lat.kind(0))
    arg = np.where(frames, (res + loss[:, None, None]) - x, lat.kind(0))
    out = np.where(frames, (exp(x) - exp(arg)) * g[:, None, None], lat.kind(0))
    if zero_infinity:
        out = np.where((loss == np.inf)[:, None, None], lat.kind(0), out)
    result: Array = out
    return result


def ctc(lp: Array, labels: Array, t_len: Array, l_len: Array, blank: int,
        zero_infinity: bool) -> tuple[Array, Callable[[Array], Array]]:
    """The losses as ctc_loss returns them (zero_infinity: ∞ as 0) and the gradient for upstream gradients g
    (one per sequence, in the dtype)."""
    lib = libm(lp.dtype.type)
    lat = Lattice(lp, labels, t_len, l_len, blank)
    with np.errstate(all="ignore"):
        alpha = log_alpha(lat, lib)
        loss = nll(lat, alpha, lib)
        res = collected(lat, alpha, log_beta(lat, lib), lib)

    def grad(g: Array) -> Array:
        with np.errstate(all="ignore"):
            return gradient(lat, res, loss, g, zero_infinity, lib)
    shown = np.where(loss == np.inf, lat.kind(0), loss) if zero_infinity else loss
    return shown, grad


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = False,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """ctc's parts as ctc_loss gives them in float32 or float64 (the dtype of p): the losses, the gradient of
    their sum, and through `Parts.divided` those of the mean (each loss over its target length)."""
    blank = int((params or {}).get("blank") or 0)
    check_blank(y, blank)
    pred, t_len, l_len, lab = unpack(y, p)
    kind = p.dtype.type
    losses, grad = ctc(pred, lab, t_len, l_len, blank, bool(switches.get("zero_infinity")))
    if weights is not None:
        return weighed(losses, grad, weights, p.shape)

    def parts(shown: Array, d: Array) -> Parts:
        """The parts when each sequence's loss is shown divided by d (autograd's upstream gradient: 1/d, and for
        the mean over n (1/n)/d, each quotient rounded)."""
        def value(n: float, total: Callable[[Any], Any]) -> float:  # (torch.sum of the batch's shown losses)
            return float(total(None) if n == 1 else total(None) / kind(n))

        def mean_grad(n: float) -> Array:
            with np.errstate(all="ignore"):
                return grad((kind(1) / kind(n)) / d).reshape(p.shape)
        return Parts(losses=shown, grad=grad(kind(1) / d).reshape(p.shape), mean_grad=mean_grad,
                     **summed(shown, None, value, wide=kind is np.float64))

    out = parts(losses, np.ones(losses.shape, dtype=kind))

    def divided(d: Array) -> Parts:
        dd = d.astype(kind)
        with np.errstate(all="ignore"):
            return parts(losses / dd, dd)
    out.divided = divided
    return out


def weighed(losses: Array, grad: Callable[[Array], Array], weights: Array, shape: tuple[int, ...]) -> Parts:
    """(ctc_loss(reduction="none") * w).mean() or .sum(), as PyTorch users weigh sequences (reduction="mean"'s
    division by the target lengths takes no weights): each loss times its weight w in the dtype, the product
    rounded; the value torch.mean's (torch.sum's) of the products; the gradient ctc_loss's backward of MulBackward's
    upstream c·w, c = 1/n as MeanBackward divides (1 for the sum), the product rounded."""
    kind = losses.dtype.type
    w = np.asarray(weights, dtype=np.float64).astype(kind)
    with np.errstate(all="ignore"):
        products = losses * w

    def value(n: float, total: Callable[[Any], Any]) -> float:
        return float(total(None) if n == 1 else total(None) / kind(n))

    def mean_grad(n: float) -> Array:
        with np.errstate(all="ignore"):
            return grad((kind(1) / kind(n)) * w).reshape(shape)
    return Parts(losses=products, grad=mean_grad(1), mean_grad=mean_grad,
                 **summed(products, None, value, wide=kind is np.float64))
