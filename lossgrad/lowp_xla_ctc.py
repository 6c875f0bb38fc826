"""JAX's CPU results (XLA) for optax's ctc_loss on logits in float32, float16, bfloat16 and float64 (JAX with
jax_enable_x64), bit for bit, with and without jit.

optax.ctc_loss takes log_softmax of the logits in their dtype, picks each label's and the blank's log-probability
(an einsum with a float32 one_hot, so the labels' come out in float32), and runs a lax.scan over the frames of
log-sum-exp updates of two float32 arrays of log α (the blank states φ and the label states, initialised with
jnp.ones, so float32 whatever the logits' dtype), with −1e5 standing in for log 0. The losses are float32 in every
dtype. jax.grad runs the scan backwards: logaddexp's custom_jvp gives each operand its share e^(x − out), the
shares are added as JAX's transpose accumulates them, and the cotangent of the logits goes back through the einsum
(float32, then stored in the dtype) and log_softmax's backward in the dtype. The scan's body is one compiled XLA
loop whether or not the whole is under jit; here it runs once over all sequences and states at a time, with
lowp_xla's e^x and log(1 + x). With jax_enable_x64 jnp.ones is float64, and every step runs in double: the same
operations on lowp_xla64's ground (FLOAT64, float64_parts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from . import cpu, lowp_xla64, ynn_dot
from .errors import NotReproduced
from .losses import Parts
from .losses._ops import Array
from .losses.base import Joined
from .losses.ctc import one_hot_nan, unpack
from .lowp import fma
from .lowp_xla import (
    F32,
    YNN_FROM,
    Rounder,
    _rows_in_dtype,
    batch_terms,
    cotangent,
    div,
    dot_lanes,
    ftz,
    held_weights,
    mean_value,
    mul,
    paired,
    rounder,
    upstream,
    xla_exp,
    xla_log,
    xla_log1p,
    xla_sum,
)
from .lowp_ynn import ynn_log

EPS = -1e5  # optax's log_epsilon


@dataclass(frozen=True)
class Ground:
    """The arithmetic XLA runs optax's ctc in on the CPU: float32 (for the half dtypes too, whose scan is float32) or
    float64 (JAX with jax_enable_x64); each operation rounded once, subnormals flushed, e^x, log(1 + x) and log
    XLA's own, `sum` its row sums."""
    kind: type
    flush: Rounder
    fused: Callable[[Any, Any, Any], Array]
    exp: Callable[[Array], Array]
    log1p: Callable[[Array], Array]
    log: Callable[[Array], Array]
    sum: Callable[[Array], Array]
    product: Callable[[Array, Array], Array]  # (rounded and flushed)
    quotient: Callable[[Array, Array], Array]

    def add(self, a: Any, b: Any) -> Array:
        return self.flush(np.asarray(a, dtype=self.kind) + np.asarray(b, dtype=self.kind))

    def mul(self, a: Any, b: Any) -> Array:
        return self.product(np.asarray(a, dtype=self.kind), np.asarray(b, dtype=self.kind))

    def div(self, a: Any, b: Any) -> Array:
        return self.quotient(np.asarray(a, dtype=self.kind), np.asarray(b, dtype=self.kind))

    def fma(self, a: Any, b: Any, c: Any) -> Array:
        return self.flush(self.fused(a, b, c))

    def zeros(self, shape: tuple[int, ...]) -> Array:
        return np.zeros(shape, dtype=self.kind)


FLOAT32 = Ground(F32, ftz, partial(fma, flush=True), xla_exp, xla_log1p, xla_log, xla_sum, mul, div)
FLOAT64 = Ground(np.float64, lowp_xla64.ftz, lowp_xla64.fused, lowp_xla64.exp, lowp_xla64.log1p, lowp_xla64.log,
                 lowp_xla64.row_sum, lowp_xla64.mul, lowp_xla64.div)


def _finite(x: Array) -> Array:
    """logaddexp's jvp takes +∞ as 0."""
    return np.where(x == np.inf, x.dtype.type(0), x)


def logaddexp(x1: Array, x2: Array, g: Ground) -> tuple[Array, Array, Array]:
    """jnp.logaddexp: max + log1p(e^−|x1 − x2|) (x1 + x2 where the difference is NaN); and each operand's share of
    its derivative, e^(x − out)."""
    delta = g.add(x1, -x2)
    out = np.where(np.isnan(delta), g.add(x1, x2),
                   g.add(np.maximum(x1, x2), g.log1p(g.exp(-np.abs(delta)))))
    o = _finite(out)
    return out, g.exp(g.add(_finite(x1), -o)), g.exp(g.add(_finite(x2), -o))


def ynn_frames(shape: tuple[int, ...], half: Any, jit: bool) -> str | None:
    """Where YNNPACK takes log_softmax's work over the frames' rows (log_softmax's `ynn`): in bfloat16 from 4096
    rows of frames (B·T), under jit or op by op; None where XLA's own loops do (measured: 700 × 6 to 300 × 14, both
    modes, hundreds of losses apart before)."""
    b, t = shape[0], shape[1]
    return ("jit" if jit else "ops") if paired(half) and b * t >= YNN_FROM else None


def log_softmax(x: Array, r: Rounder, k: Rounder, ynn: str | None = None, g: Ground = FLOAT32
                ) -> tuple[Array, Array, Array]:
    """jax.nn.log_softmax over the last axis in the dtype: s = x − max, log Σe^s (the sum in float32, then stored),
    s − log Σ; returns it, e^s and Σe^s (both kept for the backward). `ynn` (bfloat16 from 4096 rows of frames,
    lowp_xla.ynn_shift_rows' measure): YNNPACK keeps s in float32, and under jit ("jit") Σe^s too, whose log is then
    its own (as probability rows' ce under jit: lowp_xla._ce_rows_ynn); op by op ("ops") Σe^s is stored."""
    b, t, c = x.shape
    shifted = g.flush(x - x.max(axis=2, keepdims=True))
    s = r(shifted) if ynn is None else shifted
    e = r(g.exp(s))
    total = g.sum(k(g.exp(s)).reshape(b * t, c)).reshape(b, t, 1)
    if ynn == "jit":
        return r(s - r(ynn_log(total))), e, total
    total = r(total)
    return r(s - r(g.log(total))), e, total


def _log_softmax_grad(ct: Array, e: Array, total: Array, r: Rounder, half: bool, g: Ground = FLOAT32) -> Array:
    """log_softmax's backward: ct + (Σ−ct / Σe^s)·e^s (float32: the product and sum in one FMA, but for the last
    of 3 classes in the frames LLVM vectorizes with AVX-512, which store the product first, and from YNN_FROM rows
    of frames, where XLA hands the labels' dot and this backward to one YNNPACK fusion, whose product and sum are
    two steps; a half dtype: Σ−ct a reduce_sum in the dtype, in XLA's windows of 32 classes beyond 32)."""
    b, t, c = ct.shape
    if not half:
        q = g.div(r(g.sum((-ct).reshape(b * t, c))).reshape(b, t, 1), total)
        if b * t >= YNN_FROM:
            return g.add(ct, g.mul(q, e))
        out = g.fma(q, e, ct)
        if c == 3 and (t in (4, 8) or t >= 16) and cpu.selected() != "avx2" and g is FLOAT32:
            v = t // 4 * 4  # (AVX2: one FMA, as ce's rows)
            out[:, :v, 2] = g.add(ct[:, :v, 2], g.mul(q[:, :v, 0], e[:, :v, 2]))
        return out
    acc = _rows_in_dtype(-ct.reshape(b * t, c), r).reshape(b, t, 1)
    q = div(acc, total, r)
    return r(ct + mul(q, e, r))


def _step(phi: Array, emit: Array, lpe: Array, lpb: Array, pad: Array, rep: Array, g: Ground
          ) -> tuple[Array, Array, tuple[Array, ...]]:
    """One frame of optax's loop body: the label states' ε-transition into the blank states, the moves into each
    label state and the blank states' self-loops, then the padded frames keep the previous α; with the shares of
    each logaddexp's operands (kept for the backward)."""
    moved, e11, e12 = logaddexp(phi[:, 1:], g.add(emit, g.mul(EPS, rep)), g)
    phi1 = np.concatenate([phi[:, :1], moved], axis=1)
    nxt, eu, ev = logaddexp(g.add(phi1[:, :-1], lpe), g.add(emit, lpe), g)
    stay = g.add(phi1, lpb)
    skip, ep, ew = logaddexp(stay[:, 1:], g.add(g.add(emit, lpb), g.mul(EPS, g.add(1, -rep))), g)
    nphi = np.concatenate([stay[:, :1], skip], axis=1)
    keep = g.add(1, -pad)
    new_emit = g.add(g.mul(pad, emit), g.mul(keep, nxt))
    new_phi = g.add(g.mul(pad, phi), g.mul(keep, nphi))
    return new_phi, new_emit, (e11, e12, eu, ev, ep, ew)


# the least number of whole eights of sequences from which LLVM's cost model vectorises a loop of 3 to 6 label
# columns 8 sequences at a time when 4 to 7 sequences would be left over (below it: 4 at a time)
EIGHTS_FROM = {3: 8, 4: 6, 5: 4, 6: 13}
# (sequences at a time, label columns): how many leading label states the vector code keeps apart
KEPT_APART = {(8, 3): 2, (8, 4): 4, (4, 5): 4, (4, 6): 4, (4, 7): 4, (4, 8): 8}


# With AVX2 the vector code fuses as the scalar code 8 sequences at a time; 4 at a time it keeps the first
# AVX2_KEPT_APART states apart: a batch of 4, or 4 to 7 sequences over the eights of a batch with as many eights as
# AVX2_FOUR lists (LLVM's cost model for 8 floats a vector), the last whole four left to the scalar code
AVX2_FOUR = {3: range(2, 5), 4: range(2, 6), 5: range(2, 5), 6: range(2, 7)}
AVX2_KEPT_APART = {3: 2, 4: 4, 5: 4, 6: 4, 7: 6, 8: 8}


def vectorised_block(b: int, n: int) -> tuple[int, int]:
    """The leading sequences and label states of a batch of b sequences and n label columns whose cotangent's last
    product XLA's backward loop rounds apart: LLVM vectorises that loop across the sequences, and the vector code
    keeps the product and the sum apart in some states, where the scalar code fuses them.

    From 16 sequences LLVM's loop vectorizer takes 4 or 8 sequences at a time (w), the cheaper for b: 8 unless 4
    to 7 would be left over and the batch has fewer than EIGHTS_FROM[n] eights. With 3 to 7 columns its loop must
    end in scalar code, so it covers w·⌊(b − 1)/w⌋ sequences, with 8 columns w·⌊b/w⌋. What it keeps apart: 8 at a
    time, the first 2 states of 3 and the 4 of 4; 4 at a time, the first 4 states of 5 to 7 and the 8 of 8. Below
    16 sequences the loop is unrolled and vectorised as a whole only for 4 (5 to 8 columns) and 8 (7 or 8).
    With AVX2 LLVM picks otherwise (_avx2_block). Measured against JAX 0.10.2 on AVX-512 on 487 shapes, all as this
    says: 1 to 72 sequences with 3 to 8 columns, 76 to 260
    with some, and 1, 2 and 9 to 48 columns, where nothing is apart (scripts/measure_ctc_block.py)."""
    if not 3 <= n <= 8:
        return 0, 0
    if cpu.selected() == "avx2":
        return _avx2_block(b, n)
    if b < 16:
        return {(4, 5): (4, 4), (4, 6): (4, 4), (4, 7): (4, 4), (4, 8): (4, 8), (8, 7): (8, 4), (8, 8): (8, 8)
                }.get((b, n), (0, 0))
    w = 4 if n >= 7 or (b % 8 >= 4 and b // 8 < EIGHTS_FROM[n]) else 8
    states = KEPT_APART.get((w, n), 0)
    return (w * (b // w if n == 8 else (b - 1) // w), states) if states else (0, 0)


def _avx2_block(b: int, n: int) -> tuple[int, int]:
    """vectorised_block with AVX2 (3 to 8 label columns): measured against JAX 0.10.2 on an AMD EPYC, 477 shapes
    of 1 to 48 sequences and 1 to 10 columns none apart (scripts/measure_ctc_block.py with 5 classes more), and
    probes of every block on 44 to 72 sequences and some to 204."""
    if b == 4:
        return 4, AVX2_KEPT_APART[n]
    if b % 8 >= 4 and b // 8 in AVX2_FOUR.get(n, ()):
        return 4 * ((b - 1) // 4), AVX2_KEPT_APART[n]
    return 0, 0


def _dot_rows(a: Array, b: Array, g: Ground) -> Array:
    """Σ a·b along each row, in order, each product fused into the running sum (XLA's fused reduction)."""
    acc = g.zeros(a.shape[:1])
    for i in range(a.shape[1]):
        acc = g.fma(a[:, i], b[:, i], acc)
    return acc


# the most label states whose products XLA's backward loop fuses into the blank's sum
FUSED_STATES = 32


def stored_products(states: int, size: int, ynn: bool) -> bool:
    """Whether XLA's backward loop stores the products of the blank's first sum before it sums them, where it
    otherwise fuses each into the running sum (_dot_rows): beyond FUSED_STATES label states (a reduce-window of 32
    over them), and from YNN_FROM products (YNNPACK's sum), in every dtype, as in bfloat16 from YNN_FROM sequences
    (`ynn`). Measured against JAX 0.10.2 with AVX2 (tests/golden/xla_ctc_more.json), gradients of 33 to 70 label
    columns or of 4,200 products apart before."""
    return ynn or states > FUSED_STATES or size >= YNN_FROM


def _step_back(g_phi: Array, g_emit: Array, res: tuple[Array, ...], pad: Array, r: Rounder, apart: tuple[int, int],
               ynn: bool = False, g: Ground = FLOAT32) -> tuple[Array, Array, Array, Array]:
    """The transpose of one frame, as JAX's backward pass of the loop body accumulates the cotangents: those of the
    previous α (blank and label states), of the labels' log-probabilities and of the blank's. The label states'
    cotangent ends in one multiply-add but in the block `apart` (leading sequences, leading states) that LLVM
    vectorises across the sequences, whose product rounds before its sum. `ynn` (bfloat16, YNN_FROM sequences or
    more): YNNPACK takes the blank's two sums and their sum in one fusion, which drops the roundings between them
    (the products stored first, by XLA's loop)."""
    e11, e12, eu, ev, ep, ew = res
    keep = g.add(1, -pad)
    es, et, eu_, ev_ = g.mul(keep, g_phi), g.mul(pad, g_phi), g.mul(keep, g_emit), g.mul(pad, g_emit)
    ex = es[:, 1:]
    ey = g.mul(ex, ew)
    fc = np.concatenate([g.add(0, es[:, :1]), g.add(g.mul(ex, ep), 0)], axis=1)
    ff = g.add(ev_, ey)
    # the blank's cotangent: its two sums, each stored in the dtype (the first with its products fused in or not)
    products = g.sum(g.mul(ex, ew)) if stored_products(ex.shape[1], ex.size, ynn) else _dot_rows(ex, ew, g)
    fi = r(g.add(products, g.sum(fc))) if ynn else r(g.add(r(products), r(g.sum(fc))))
    fk = g.mul(eu_, eu)
    fl = g.fma(eu_, ev, ff)
    fm = g.fma(eu_, ev, fk)
    fo = fc.copy()
    fo[:, :-1] = g.add(fc[:, :-1], fk)
    fo[:, -1:] = g.add(fc[:, -1:], 0)
    fq = fo[:, 1:]
    fs = g.fma(fq, e12, fl)
    rows, cols = apart
    fs[:rows, :cols] = g.add(g.mul(fq[:rows, :cols], e12[:rows, :cols]), fl[:rows, :cols])
    fv = np.concatenate([g.add(et[:, :1], 0), g.add(et[:, 1:], g.mul(fq, e11))], axis=1)
    fx = fv.copy()
    fx[:, :1] = g.add(fv[:, :1], fo[:, :1])
    fx[:, 1:] = g.add(fv[:, 1:], 0)
    return fx, fs, fm, fi


def scan(lp: Array, labels: Array, frames: Array, lengths: Array, blank: int, r: Rounder, ynn: bool = False,
         g: Ground = FLOAT32) -> tuple[Array, Any]:
    """optax's ctc_loss_with_forward_probs on log-probabilities lp [B, T, C] (in the dtype): the per-sequence losses
    (float32), and a function of the cotangent c of each loss (jax.grad: 1/n or 1) giving the cotangents of lp, in
    float32 for the labels' (`dot`) and in the dtype for the blank's (`ynn`: _step_back's)."""
    b, t_max, _ = lp.shape
    n = labels.shape[1]
    valid = (labels >= 0) & (labels < lp.shape[2])  # (one_hot of a padding value outside the classes: 0)
    picked = np.broadcast_to(np.where(valid, labels, 0)[:, None, :], (b, t_max, n))
    lpe = np.where(valid[:, None, :], np.take_along_axis(lp, picked, axis=2), g.kind(0))
    lpe = one_hot_nan(lp, lpe, np.broadcast_to(valid[:, None, :], lpe.shape))
    lpb = lp[:, :, blank:blank + 1]
    pads: Array = (np.arange(t_max)[None, :] >= frames[:, None]).astype(g.kind)
    rep = g.zeros((b, n))
    rep[:, :-1] = labels[:, :-1] == labels[:, 1:]
    phi = np.full((b, n + 1), EPS, dtype=g.kind)
    phi[:, 0] = 0
    emit: Array = np.full((b, n), EPS, dtype=g.kind)
    saved: list[tuple[Array, ...]] = []
    apart = vectorised_block(b, n) if g is FLOAT32 else (0, 0)  # (float64: measured with AVX2, none kept apart)
    for t in range(t_max):
        phi, emit, res = _step(phi, emit, lpe[:, t], lpb[:, t], pads[:, t:t + 1], rep, g)
        saved.append(res)
    moved, e_phi, e_emit = logaddexp(phi[:, 1:], emit, g)
    last = np.concatenate([phi[:, :1], moved], axis=1)
    rows = np.arange(b)
    losses = -last[rows, lengths]

    def grad(c: Any) -> tuple[Array, Array]:
        ct = np.full((b, n + 1), -0.0, dtype=g.kind)
        ct[rows, lengths] = -c
        g_emit0 = g.mul(ct[:, 1:], e_emit)
        g_phi = np.concatenate([g.add(0, ct[:, :1]), g.add(g.mul(ct[:, 1:], e_phi), 0)], axis=1)
        g_emit = g.add(0, g_emit0)
        g_phi = g.add(0, g_phi)
        ct_e = g.zeros((b, t_max, n))
        ct_b = g.zeros((b, t_max))
        for t in range(t_max - 1, -1, -1):
            if t < t_max - 1:
                g_phi, g_emit = g.add(g_phi, 0), g.add(g_emit, 0)
            g_phi, g_emit, ct_e[:, t], ct_b[:, t] = _step_back(g_phi, g_emit, saved[t], pads[:, t:t + 1], r, apart,
                                                               ynn, g)
        return ct_e, ct_b
    return losses, grad


def _in_order(terms: list[Array], shape: tuple[int, ...], g: Ground = FLOAT32) -> Array:
    """The terms added one after another from +0."""
    acc = g.zeros(shape)
    for x in terms:
        acc = g.add(acc, x)
    return acc


def _label_dot(ct_e: Array, onehot: Array, g: Ground = FLOAT32) -> Array:
    """The einsum's transpose, Σ over the label states of ct_e times one_hot (each product exact), as YNNPACK's dot
    adds it (_label_lanes): in order from +0 with one lane, else as lowp_xla.dot_lanes adds (state i in lane i mod w
    over the whole w's, the lanes added pairwise, then the remaining states' sum added to that)."""
    b, t, k = ct_e.shape
    c = onehot.shape[2]
    w = _label_lanes(t, c, k) if g is FLOAT32 else 1  # (float64: Eigen's dot, in order)
    if w == 1:
        terms = [np.where(onehot[:, None, i, :], ct_e[:, :, i:i + 1], 0 * ct_e[:, :, i:i + 1]) for i in range(k)]
        return _in_order(terms, (b, t, c), g)
    states = np.broadcast_to(ct_e[:, :, None, :], (b, t, c, k))
    picks = np.broadcast_to(onehot.transpose(0, 2, 1)[:, None].astype(F32), (b, t, c, k))
    return dot_lanes(states, picks, w)


def _label_lanes(t: int, c: int, k: int) -> int:
    """The lanes of YNNPACK's kernel for the labels' dot, [B, t frames, k states] × [B, k, c classes], as its kernel
    choice gives them (lossgrad.ynn_dot: with AVX2, 2 lanes for 17 to 24 classes from 61 frames; with AVX-512, 4
    lanes for up to 8 or 16 classes, say), where XLA hands the dot over (a dot of one row or one column, or under 8
    each way, is XLA's own, in order)."""
    return ynn_dot.lanes(cpu.selected(), t, c, k) if min(t, c) > 1 and max(t, c, k) >= 8 else 1


def ctc_parts(x: Array, labels: Array, frames: Array, lengths: Array, blank: int, half: Any, jit: bool,
              g: Ground = FLOAT32) -> tuple[Array, Any]:
    """The losses (float32; float64 in FLOAT64) and a function of the cotangent c giving the gradient with respect
    to the logits x [B, T, C] (values of the dtype, carried in float32)."""
    r = rounder(half) if g is FLOAT32 else g.flush
    # log_softmax runs jitted inside JAX either way: in bfloat16 e^s reaches its float32 sum unrounded
    k = ftz if half is not None and half is not np.float16 else r
    lp, e, total = log_softmax(x, r, k, ynn_frames(x.shape, half, jit), g)
    # (bfloat16 from YNN_FROM sequences: the backward's sums of the blank YNNPACK's fusion, measured from 4,096)
    losses, back = scan(lp, labels, frames, lengths, blank, r, paired(half) and x.shape[0] >= YNN_FROM, g)
    onehot = labels[:, :, None] == np.arange(x.shape[2])[None, None, :]

    def grad(c: Any) -> Array:
        ct_e, ct_b = back(c)
        dot = _label_dot(ct_e, onehot, g)
        blank_ct = g.zeros(x.shape)
        blank_ct[:, :, blank] = ct_b
        ct = r(g.add(r(dot), blank_ct))
        return _log_softmax_grad(ct, e, total, r, half is not None, g)
    return losses, grad


# the loss reproduced here, and the options it takes
TAKES: dict[str, tuple[str, ...]] = {"ctc": ("blank",)}
DTYPES = ("float32", "float16", "bfloat16", "float64")  # (float64: conventions.OPTAX.kernels_float64)
SUPPORTED = ("ctc (from logits: ctc_loss; sample weights)",)
# float32's gradient with AVX-512: the labels' dot, whose kernel choice (_label_lanes) was measured live with AVX2
# only (with AVX-512 on the records, every element of which it gives)
F32_GRADIENT = ("optax's ctc gradient in float32 may differ from JAX's in the last bits of some elements with AVX-512 "
                "(the kernel YNNPACK picks for the labels' dot, adding in order or in 2 or 4 lanes, follows YNNPACK's "
                "source and was measured live with AVX2 only; with AVX-512, within an ulp of the gradient's largest "
                "element where it was not); the losses are JAX's")

# bfloat16 from YNN_FROM sequences: YNNPACK's fusions, reproduced but for a few elements of some batches
BF16_BATCH = ("optax's ctc in bfloat16 over 4,096 sequences or more (YNNPACK's fusions) may differ from JAX's in the "
              "last bits of a few losses or gradient elements of some batches (measured: 4 of 40 random batches, 1 "
              "to 9 elements each)")


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why JAX's results for ctc with these options are not reproduced (None: they are)."""
    if not from_logits:
        return "ctc on log-probabilities"
    extra = [k for k, v in params.items() if not (v is None or v is False or (np.ndim(v) == 0 and v == 0))
             and k not in TAKES["ctc"]]
    return f"ctc with {', '.join('{' + k + '}' for k in extra)}" if extra else None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """ctc's parts as JAX computes optax.ctc_loss on CPU: the float32 losses, the gradient with respect to the
    logits (in the dtype) of their sum, or of jnp.mean over n (1/n as JAX forms it), and jnp.mean and jnp.sum of
    the float32 losses. Under sample weights (`weights`, held in the dtype) as JAX users weigh them,
    jnp.mean(loss · w): each float32 loss times its weight (JAX promotes the weight to float32), the product
    stored, and each loss's cotangent (1/n)·w in float32."""
    pred, frames, lengths, lab = unpack(y, p)
    if lab.shape[1] == 0:
        raise NotReproduced("dtype", "optax's ctc_loss of label rows with no columns is not reproduced; give at "
                            "least one label column (padding), or use --convention exact")
    if pred.dtype == np.float64:
        return float64_parts(pred, lab, frames, lengths, int((params or {}).get("blank", 0)),
                             switches.get("jit", True), weights)
    x = rounder(half)(np.ascontiguousarray(pred, dtype=F32))
    with np.errstate(all="ignore"):
        losses, grad = ctc_parts(x, lab, frames, lengths, int((params or {}).get("blank", 0)), half,
                                 switches.get("jit", True))

    w = held_weights(weights, half, False)
    finite = np.isfinite(losses)
    if w is not None:
        losses = mul(losses, w)

    def mean_grad(n: float) -> Array:
        with np.errstate(all="ignore"):
            return grad(upstream(n) if w is None else cotangent(n, w, ftz)).reshape(p.shape)
    float32 = [F32_GRADIENT] if cpu.selected() == "avx512" else []
    warnings = float32 if half is None else [BF16_BATCH] if paired(half) and pred.shape[0] >= YNN_FROM else []
    if pred.shape[1] == 1:  # (the scan over one frame)
        warnings.append(SINGLE_FRAME)
    jit = switches.get("jit", True)
    terms = final_states(losses, lengths, lab.shape[1]) if jit else losses
    value = mean_value(terms, ftz, jit, negated=jit)
    if jit and w is not None:  # (the weights keep XLA from fusing the pick into the sum)
        value = in_order(losses) if losses.shape[0] <= WEIGHED_IN_ORDER else value
        warnings += [WEIGHED_VALUE] if losses.shape[0] > WEIGHED_IN_ORDER else []
    elif jit and losses.shape[0] <= 32 and lab.shape[1] + 1 >= FUSED_COLUMNS:
        warnings.append(FUSED_VALUE)
    return Parts(losses=losses, grad=mean_grad(1), mean_grad=mean_grad, mean_value=value, warnings=warnings,
                 finite_unweighted=None if w is None else finite, **batch_terms(terms, ftz, jit, jit, False))


def float64_parts(pred: Array, labels: Array, frames: Array, lengths: Array, blank: int, jit: bool,
                  weights: Array | None) -> Parts:
    """ctc's parts as JAX computes optax.ctc_loss in float64 (jax_enable_x64): the float32 model's operations in
    double (FLOAT64), measured with AVX2 none apart in any shape but those whose row sums lowp_xla64.row_sum refuses
    (classes of 2,048 or more from 4,096 elements: NotReproduced, lossgrad's formulas); the value: the
    losses' row sum op by op, under jit the sum of the final states' matrix (final_states) as XLA sums a whole
    array (lowp_xla64.sum2d). Sample weights: each loss times its weight, and the cotangent (1/n)·w."""
    x = lowp_xla64.ftz(np.ascontiguousarray(pred, dtype=np.float64))
    with np.errstate(all="ignore"):
        losses, grad = ctc_parts(x, labels, frames, lengths, blank, None, jit, FLOAT64)
    w = None if weights is None else lowp_xla64.ftz(np.asarray(weights, dtype=np.float64))
    finite = np.isfinite(losses)
    if w is not None:
        losses = lowp_xla64.mul(losses, w)

    def mean_grad(n: float) -> Array:
        c = 1.0 if n == 1 else 1.0 / n
        with np.errstate(all="ignore"):  # (under jit XLA folds the constants' product on the host: numpy's rounding)
            cw = None if w is None else mul(c, w, lowp_xla64.ftz) if jit else lowp_xla64.mul(c, w)
            return grad(c if cw is None else cw).reshape(pred.shape[0], -1)
    terms = final_states(losses, lengths, labels.shape[1]) if jit and w is None else losses
    warnings = ([] if cpu.selected() == "avx2" else [F64_AVX512]) + ([SINGLE_FRAME] if pred.shape[1] == 1 else [])
    return Parts(losses=losses, grad=mean_grad(1), mean_grad=mean_grad, mean_value=value64(terms, jit),
                 warnings=warnings, finite_unweighted=None if w is None else finite, value_parts={"terms": terms},
                 value_fold=lambda rows: Joined(lambda parts, n: value64(parts["terms"], jit)(n)))


SINGLE_FRAME = ("XLA compiles optax's scan over a single frame without its loop, fused otherwise, which is not "
                "reproduced: the numbers may differ from JAX's in their last bits")
F64_AVX512 = ("optax's ctc in float64 may differ from JAX's in the last bits of some gradient elements on an AVX-512 "
              "processor: the float64 model was measured with AVX2 only (where LLVM vectorises XLA's loops "
              "otherwise); --cpu avx2 gives an AVX2 machine's")


def value64(terms: Array, jit: bool) -> Any:
    """jnp.sum (n = 1) or jnp.mean over n of the float64 losses: op by op their row sum (lowp_xla64.mean_value),
    under jit the sum of the [B, L + 1] final states' matrix (lowp_xla64.sum2d), times 1/n."""
    if terms.ndim == 1:
        return lowp_xla64.mean_value(terms, False)

    def value(n: float) -> float:
        total = -lowp_xla64.sum2d(-terms)  # (optax's −log α, negated back: −0 where every loss is 0)
        return float(total if n == 1 else lowp_xla64.mul(total, 1.0 / n))
    return value


# under jit, a batch of up to 32 sequences whose final states' matrix [B, L + 1] has this many columns or more is
# summed in an order of the fused loop's own (measured: 14 of 28 values of 17 to 32 sequences, 1 of 39 of 2 to 16,
# an ulp of float32 apart in xla_sum2d's order; fewer columns, and more sequences, none of 233)
FUSED_COLUMNS = 7
FUSED_VALUE = ("under jit the reduced value of up to 32 sequences of 6 label columns or more may differ from JAX's in "
               "its last bit (float32): XLA's order for that fused sum is not pinned down; the losses are JAX's")


# under jit, weighted losses of up to this many sequences are summed one after another (measured: every one of 140
# random batches of 1 to 32 sequences); beyond, the order is not pinned down (most batches as final_states, some not)
WEIGHED_IN_ORDER = 32
WEIGHED_VALUE = ("under jit the reduced value of more than 32 weighted sequences may differ from JAX's in its last "
                 "bits (float32): XLA's order for that sum is not pinned down; the losses and the gradient are JAX's")


def in_order(losses: Array) -> Any:
    """jnp.sum (n = 1) or jnp.mean over n of the float32 losses added one after another from +0 (the sum times 1/n,
    as XLA divides by a constant)."""
    def value(n: float) -> float:
        with np.errstate(all="ignore"):
            total = _in_order(list(losses), ())
            return float(ftz(total) if n == 1 else mul(total, F32(1) / F32(n)))
    return value


def final_states(losses: Array, lengths: Array, columns: int) -> Array:
    """The losses as jnp.mean (or jnp.sum) reads them under jit: XLA fuses the reduce with optax's pick of each
    sequence's last state, one-hot at its target length, into a sum over the [B, L + 1] matrix that holds each
    loss there and 0 elsewhere (xla_sum2d's order), each negated (optax's −log α) and the total negated back: −0
    where every loss is 0 (the sum from +0; measured). Measured: 2 to 700 sequences in the three dtypes
    but where FUSED_VALUE says (before, their sum in order, and the values of 4 to 64 sequences an ulp apart now and
    then)."""
    m = np.zeros((losses.shape[0], columns + 1), dtype=losses.dtype)
    m[np.arange(losses.shape[0]), lengths] = losses
    return m
