"""JAX's CPU results (XLA) for more of optax's losses: huber_loss, hinge_loss, log_cosh, sigmoid_focal_loss,
cosine_distance and triplet_margin_loss, in float32, float16 and bfloat16, with and without jit.

Each follows the operations JAX traces for the loss and for jax.grad of its mean, in their order, rounding each
result as lowp_xla's rounders do (a half dtype carried in float32; `k` keeps in float32 what XLA keeps under jit),
with lowp_xla's e^x, log x, log(1 + x) and sums.

This module is the "xla" backend: the losses of lowp_xla are passed on to it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from . import lowp_xla, lowp_xla64, lowp_xla_pow
from .losses import Parts
from .losses._ops import Array
from .losses.base import Joined
from .lowp_xla import (
    F32,
    YNN_FROM,
    Grad,
    Rounder,
    _fma,
    _rows,
    _rows_in_dtype,
    _sigmoid_via_softplus,
    _tie,
    batch_terms,
    div,
    ftz,
    margin_hinge,
    mean_value,
    mul,
    paired,
    rounder,
    softplus,
    stored,
    sums_2d,
    upstream,
    xla_exp,
    xla_log,
    xla_log1p,
    xla_sum,
    xla_tasks,
    ynn_kept,
)
from .lowp_xla_kl import kl_parts
from .lowp_xla_pow import powf
from .lowp_xla_rows import fused_squares

# the losses reproduced here beside lowp_xla's, and the options each takes
TAKES: dict[str, tuple[str, ...]] = {"huber": ("delta",), "hinge": (), "logcosh": (), "focal": ("gamma", "alpha"),
                                     "cosine": (), "triplet": ("margin", "norm_degree")}
SUPPORTED = (*lowp_xla.SUPPORTED, "huber (huber_loss)", "hinge (hinge_loss)", "logcosh (log_cosh)",
             "focal (from logits: sigmoid_focal_loss)",
             "cosine op by op, and under jit (cosine_distance; float16 and bfloat16 from 2 features)",
             "triplet op by op and under jit (triplet_margin_loss; other norm_degrees: under jit in float32 only; "
             "float64: lowp_xla64)")
DTYPES = (*lowp_xla.DTYPES, "float64")  # (float64: triplet alone, conventions.OPTAX.kernels_float64)
unsupported_dtype = lowp_xla64.unsupported_dtype


def huber(y: Array, p: Array, delta: float, r: Rounder, k: Rounder, fused: bool) -> tuple[Array, Array, Grad]:
    """huber_loss: e = p − y, q = min(|e|, δ), ½·q² + δ·(|e| − q); jax.grad: (c·½·2q − δc)·w + δc, w the min's
    share of |e| (½ at |e| = δ), the sign of e (+ at 0) last. `fused` (float32 under jit): XLA contracts
    ½c·2q − δc into a fused multiply-add."""
    d = r(F32(delta))
    e = r(p - y)
    a = np.abs(e)
    q = np.minimum(a, d)
    lin = r(a - q)
    sq = mul(q, q, r)
    half = mul(F32(0.5), sq, r)
    raw = ftz(half + mul(d, lin, r))
    w = _tie(a, q, d)

    def grad(n: float) -> Array:
        c = r(upstream(n))
        dc, hc = mul(d, c, r), mul(F32(0.5), c, r)
        inner = _fma(hc, mul(F32(2), q, r), -dc) if fused else r(mul(hc, mul(F32(2), q, r), r) - dc)
        g = r(dc + mul(inner, w, r))
        pos = e >= 0  # (the sign's two selections added: where e < 0 a zero gradient is +0)
        return ftz(np.where(pos, g, F32(0)) + -np.where(pos, F32(0), g))
    return r(raw), k(raw), grad


def hinge(y: Array, p: Array, r: Rounder, k: Rounder) -> tuple[Array, Array, Grad]:
    """hinge_loss: max(0, 1 − p·y); jax.grad: −(c·w)·y, w the maximum's share of 1 − p·y (½ at 0)."""
    m = r(F32(1) - mul(p, y, r))
    raw = np.maximum(F32(0), m)
    w = _tie(m, raw, 0)

    def grad(n: float) -> Array:
        return mul(-mul(r(upstream(n)), w, r), y, r)
    return r(raw), k(raw), grad


def log_cosh(y: Array, p: Array, r: Rounder, k: Rounder, fused: bool) -> tuple[Array, Array, Grad]:
    """log_cosh: logaddexp(e, −e) − log 2 (log 2 in float32, then in the dtype), e = p − y, logaddexp(a, b) =
    max(a, b) + log1p(e^−|a − b|); jax.grad: c·e^(e − L) − c·e^(−e − L), L = logaddexp (infinities taken as 0)."""
    e = r(p - y)
    big = np.maximum(e, -e)
    lae = r(big + r(xla_log1p(r(xla_exp(-np.abs(r(e - -e)))))))
    raw = ftz(lae - r(xla_log(np.array([2], dtype=F32))))

    def share(x: Array) -> Array:
        return r(xla_exp(r(np.where(x == np.inf, F32(0), x) - np.where(lae == np.inf, F32(0), lae))))

    def grad(n: float) -> Array:
        c = r(upstream(n))
        if fused:
            return _fma(c, share(e), -mul(c, share(-e), r))
        return r(mul(c, share(e), r) - mul(c, share(-e), r))
    return r(raw), k(raw), grad


def _signed_sum(t: Array, x: Array) -> Array:
    """The gradient through |t| (as jax differentiates abs by t's sign, the two selections added)."""
    pos = t >= 0
    return ftz(np.where(pos, x, F32(0)) + -np.where(pos, F32(0), x))


def ynn_weighted_sum(shape: tuple[int, ...]) -> bool:
    """Whether XLA hands the weighted sum of logsumexp's two terms in sigmoid_focal_loss, (1 − y)·e₀ + y·e₁, to
    YNNPACK, which rounds both products before it adds them (no multiply-add): from YNN_FROM elements of the
    stacked [..., 2] operand, in an array with no axis of length 1 (measured under jit in float32: 1,023 × 2 and
    any N × 1 are XLA's multiply-add, 1,024 × 2 and 683 × 3 YNNPACK's; the threshold alike for 3 to 300 columns)."""
    return 2 * int(np.prod(shape)) >= YNN_FROM and 1 not in shape


def focal(y: Array, z: Array, gamma: float, alpha: float | None, r: Rounder, k: Rounder, fold: bool,
          fused: bool) -> tuple[Array, Array, Grad, Array]:
    """sigmoid_focal_loss: bce·e^(γ·L), L = log((1 − y)·σ(z) + y·σ(−z)) as logsumexp of the log-sigmoids with
    weights 1 − y and y (a term of weight 0 left out, the shift by the larger), times α·y + (1 − α)(1 − y);
    jax.grad back through the exponential, the logsumexp and each log-sigmoid in JAX's order. `fold` (jit in
    float32 and float16, with α): XLA folds the constants −y·α_t·c into one before the product with e^(γL)."""
    sp_neg, sp_pos = softplus(-z, r), softplus(z, r)
    log_p, log_q = -sp_neg, -sp_pos
    v_neg, v_pos = _sigmoid_via_softplus(-z, sp_neg, r), _sigmoid_via_softplus(z, sp_pos, r)
    one_y = r(F32(1) - y)
    bce = _fma(-y, log_p, -mul(one_y, log_q, r)) if fused else ftz(mul(-y, log_p, r) - mul(one_y, log_q, r))
    bce = r(bce)
    a0, a1 = np.where(one_y != 0, log_p, -np.inf), np.where(y != 0, log_q, -np.inf)
    top = np.maximum(a0, a1)
    top = np.where(np.isfinite(top), top, F32(0))
    e0, e1 = r(xla_exp(r(a0 - top))), r(xla_exp(r(a1 - top)))
    fma_sum = fused and not ynn_weighted_sum(y.shape)
    t = _fma(e1, y, e0 * one_y) if fma_sum else r(ftz(mul(e0, one_y, k) + mul(e1, y, k)))
    lse = r(r(xla_log(np.abs(t))) + top)
    g = r(F32(gamma))
    weight = r(xla_exp(mul(g, lse, r)))
    raw = mul(bce, weight)
    at = None if alpha is None else r(mul(r(F32(alpha)), y, r) + mul(r(F32(1 - alpha)), one_y, r))
    if at is not None:
        raw = mul(at, r(raw))

    def grad(n: float) -> Array:
        c = r(upstream(n))
        if at is not None:
            c = mul(at, c, r)
        es = mul(c, weight, r)
        ex = _signed_sum(t, div(mul(g, mul(mul(bce, c, r), weight, r), r), np.abs(t), r))
        fi = np.where(one_y != 0, mul(mul(ex, one_y, r), e0, r), F32(0))
        fj = np.where(y != 0, mul(mul(ex, y, r), e1, r), F32(0))
        fp, fq = mul(one_y, -es, r), mul(-y, es, r)
        if fold and at is not None:
            fq = mul(weight, mul(-y, c, r), r)
        if fused:  # (the products on the log-sigmoids' way back contracted into the sums)
            return _fma(fq, v_neg, _fma(-fp, v_pos, _fma(fi, v_neg, -mul(fj, v_pos))))
        fn = r(-mul(fj, v_pos, r) + mul(fi, v_neg, r))
        return r(r(fn - mul(fp, v_pos, r)) + mul(fq, v_neg, r))
    return r(raw), k(raw), grad, v_pos


def _over(a: Array, b: Array, r: Rounder, exact: bool) -> Array:
    """a / b for a column b spread along a's rows: XLA multiplies by the reciprocal 1/b, rounded to the dtype, instead
    (`exact`, bfloat16: the quotient rounded once; one column: the division itself)."""
    return div(a, b, r) if a.shape[1] == 1 or exact else mul(a, div(F32(1), b, r), r)


def cosine(y: Array, p: Array, r: Rounder, bf16: bool) -> tuple[Array, Array, Grad]:
    """cosine_distance (epsilon 0) op by op: 1 − Σ (p/‖p‖)(y/‖y‖), ‖x‖ = sqrt(max(0, Σx²)), the sums in float32;
    jax.grad: −c·ŷ/‖p‖ + 2p·(½/‖p‖)·w·(−Σ −c·ŷ·‖p‖^−2·p), w the clip's share (½ where Σp² = 0), ŷ = y/‖y‖, its
    row sum in the dtype."""
    sp = _rows(mul(p, p, r), r, r)[:, None]
    norm_p = r(np.sqrt(np.maximum(F32(0), sp)))
    norm_y = r(np.sqrt(np.maximum(F32(0), _rows(mul(y, y, r), r, r)[:, None])))
    yu = _over(y, norm_y, r, bf16)
    raw = ftz(F32(1) - _rows(mul(_over(p, norm_p, r, bf16), yu, r), r, r))
    w = _tie(sp, np.maximum(F32(0), sp), 0)

    def grad(n: float) -> Array:
        bq = mul(-r(upstream(n)), yu, r)
        inv2 = div(F32(1), mul(norm_p, norm_p, r), r)
        terms = mul(mul(bq, inv2, r), p, r)  # (float32: XLA's sum, YNNPACK's from 4096 elements)
        s = -(xla_sum(terms) if r is ftz else _rows_in_dtype(terms, r))[:, None]
        by = mul(mul(s, div(F32(0.5), norm_p, r), r), w, r)
        return r(_over(bq, norm_p, r, bf16) + mul(by, mul(F32(2), p, r), r))
    return r(raw), r(raw), grad  # (op by op the mean adds the losses as stored)



def triplet(a: Array, pos: Array, neg: Array, margin: float, r: Rounder, k: Rounder, jit: bool,
            fused: bool = False, paired: bool = False) -> tuple[Array, Array, Callable[[float], list[Array]]]:
    """triplet_margin_loss (norm_degree 2, eps 1e-6): d(u, v) = (Σ(u − v)² + ε)^½, max(d(a, pos) − d(a, neg) +
    margin, 0); jax.grad through ½·(Σ + ε)^−½·2(u − v), the maximum's share (½ at 0) first. x^½ is powf op by op
    and a square root under jit (XLA's rewrite); x^−½ is powf either way; the squares kept as `k` keeps them on
    their way into the float32 sum. `fused` (float32 under jit): the squares fused into XLA's row sum (one
    feature: d·d + ε in one FMA; `paired` as fused_squares takes it), and the gradients as _fused_grads forms
    them. Returns the losses, the terms the mean adds, and the gradients (anchor, positive, negative)."""
    eps = r(F32(1e-6))

    def dist(v: Array) -> tuple[Array, Array, Array]:
        d = r(a - v)
        if not fused:
            kept = ynn_kept(d.shape, r, k)
            h = kept(_rows(d * d, kept, k) + eps)
        else:
            h = _fma(d[:, 0], d[:, 0], eps) if d.shape[1] == 1 else ftz(fused_squares(d, paired) + eps)
        root = r(np.sqrt(h)) if jit else r(powf(h, 0.5))
        return d, root, mul(F32(0.5), r(powf(h, -0.5)), r)
    dp, root_p, half_p = dist(pos)
    dn, root_n, half_n = dist(neg)
    raw, back = margin_hinge(root_p, root_n, half_p, half_n, margin, r)

    def grads(n: float) -> list[Array]:
        cn, cp = back(n)
        if fused:
            return _fused_grads(cn, cp, dn, dp)
        bp, bt = mul(cn, mul(F32(2), dn, r), r), mul(cp, mul(F32(2), dp, r), r)
        return [r(bp + bt), -bt, -bp]
    return r(raw), raw, grads


def _fused_grads(cn: Array, cp: Array, dn: Array, dp: Array) -> list[Array]:
    """triplet's gradients (anchor, positive, negative) under jit in float32 from each row's factors c and the
    differences d: XLA doubles c before its product with d (one feature: d, the row being a bitcast away), and
    contracts the anchor's sum of the two products into an FMA, the negative's product fused (one feature, and a
    single row that XLA splits into unequal tasks, split_row: the positive's)."""
    one = dn.shape[1] == 1
    sn, sp = (cn, cp) if one else (mul(F32(2), cn), mul(F32(2), cp))
    un, up = (mul(F32(2), dn), mul(F32(2), dp)) if one else (dn, dp)
    bp, bt = mul(sn, un), mul(sp, up)
    return [_fma(sp, up, bp) if one or split_row(dn.shape) else _fma(sn, un, bt), -bt, -bp]


def split_row(shape: tuple[int, ...]) -> bool:
    """Whether XLA splits a single row's anchor-gradient kernel into tasks of unequal size (lowp_xla.xla_tasks:
    3 flops and 12 bytes an element, its two factors 8 bytes more), where each task's loop is guarded and left to
    scalar code, which contracts the positive's product instead (measured: single rows of an odd count of features
    from 43,691, none below)."""
    rows, n = shape
    return rows == 1 and n % xla_tasks(3 * n, 12 * n + 8) != 0


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why JAX's results for this loss and these options are not reproduced (None: they are)."""
    if loss not in TAKES:
        return lowp_xla.unsupported(loss, from_logits, params, switches, sample_weight)
    extra = [k for k, v in params.items() if not (v is None or v is False or (np.ndim(v) == 0 and v == 0))
             and k not in TAKES[loss]]
    if sample_weight:
        extra.append("sample_weight")
    if loss == "focal" and not from_logits:
        return "focal on probabilities"
    if loss == "triplet" and float(params.get("norm_degree", 2.0)) <= 0:
        return "triplet with {norm_degree} of 0 or less"
    return f"{loss} with {', '.join('{' + k + '}' for k in extra)}" if extra else None


# under jit XLA folds a target that holds one value throughout (a splat constant) into the kernels of these
# losses, and orders their work otherwise (measured apart, by 1 to hundreds of ulp: probability rows of 1/K,
# focal's labels all 0, cosine's and kl's targets of one value, in float32 and float16; cosine in bfloat16 too);
# focal's target of a single element is one too (measured apart in float32 and float16)
SPLAT_LOSSES = ("ce", "kl", "focal", "cosine")
SPLAT = ("under jit XLA folds targets that hold one value throughout into its kernels, in an order lossgrad does "
         "not reproduce: the numbers may differ from JAX's in their last bits")


def splat(loss: str, y: Array, labels: Array | None, half: Any, switches: dict[str, bool]) -> bool:
    """Whether JAX's kernels here take targets of one value as a splat constant (under jit, more than one; focal's
    single element too)."""
    return (switches.get("jit", True) and loss in SPLAT_LOSSES and labels is None and (y.size > 1 or loss == "focal")
            and (loss == "cosine" or not paired(half)) and bool(np.all(y == y.flat[0])))


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """The loss's parts as JAX computes them on CPU (lowp_xla.compute, whose conventions these follow: jit by
    default, the gradient and the mean over N as jax.grad and jnp.mean form them), with a warning where the
    targets are a splat constant."""
    parts = _compute(loss, y, p, labels, half, switches, batchmean, params, from_logits, weights, extra)
    if splat(loss, y, labels, half, switches):
        parts.warnings.append(SPLAT)
    jit = switches.get("jit", True)
    if loss == "kl" and lowp_xla.avx2_single_row(loss, labels, half, jit, p.shape):  # (ce's: lowp_xla.compute's)
        parts.warnings.append(lowp_xla.AVX2_SINGLE_ROW)
    return parts


def _compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
             batchmean: bool, params: dict[str, Any] | None, from_logits: bool, weights: Array | None,
             extra: dict[str, Array] | None) -> Parts:
    """compute's parts, before its warning."""
    if loss == "kl" and switches.get("jit", True) and half is None:
        if weights is not None:  # (the weighted losses' loop differs with the reduction, which a kernel is not told)
            raise lowp_xla._not_reproduced("kl_divergence under jit in float32 under sample weights")
        return kl_parts(y, p, switches.get("log_input", False), switches.get("log_target", False))
    if loss not in TAKES:
        more = {"extra": extra} if extra else {}
        return lowp_xla.compute(loss, y, p, labels, half, switches, batchmean, params, from_logits, weights, **more)
    params = params or {}
    if loss == "triplet" and p.dtype == np.float64:
        return lowp_xla64.triplet_parts(y, p, np.asarray((extra or {})["negative"], dtype=np.float64),
                                        switches.get("jit", True), float(params.get("margin", 1.0)),
                                        float(params.get("norm_degree", 2.0)))
    if loss == "triplet":
        return triplet_parts(y, p, np.asarray((extra or {})["negative"], dtype=F32), half, switches.get("jit", True),
                             float(params.get("margin", 1.0)), switches.get("mean", True),
                             float(params.get("norm_degree", 2.0)))
    jit = switches.get("jit", True)
    r = rounder(half)
    k = ftz if jit and half is not None and half is not np.float16 else r  # (as lowp_xla.compute)
    fused = jit and half is None
    y, p = r(y), r(p)
    prob = None
    with np.errstate(all="ignore"):
        if loss == "huber":
            losses, terms, grad = huber(y, p, float(params.get("delta", 1.0)), r, k, fused)
        elif loss == "hinge":
            losses, terms, grad = hinge(np.where(y == 0, F32(-1), y), p, r, k)  # (0/1 labels read as −1/1)
        elif loss == "logcosh":
            losses, terms, grad = log_cosh(y, p, r, k, fused)
        elif loss == "cosine" and fused:
            return cosine_jit(y, p)
        elif loss == "cosine" and jit and k is ftz:  # (bfloat16)
            from .lowp_xla_cos import cosine_bf16

            losses, terms, grad = cosine_bf16(y, p)
        elif loss == "cosine" and jit:  # (float16)
            from .lowp_xla_cos import cosine_f16

            losses, terms, grad = cosine_f16(y, p)
        elif loss == "cosine":
            losses, terms, grad = cosine(y, p, r, half is not None and half is not np.float16)
        else:
            alpha = params.get("alpha")
            losses, terms, grad, prob = focal(y, p, float(params.get("gamma", 2.0)), None if alpha is None
                                              else float(alpha), r, k, jit and k is r, fused)
    value, warnings = _reduced(loss, terms, r, half, fused, stored(r, k, terms, losses))
    if loss == "focal" and fused and y.size == 9:  # (measured: 9 elements only, of 1 to 40)
        warnings.append("the 9th gradient element may be up to 4 ulp from JAX's: under jit in float32 XLA computes "
                        "a batch of 9 as a vector of 8 and a scalar rest, whose focal gradient rounds otherwise "
                        "(not pinned down)")
    whole = {} if value is None else batch_terms(terms, r, True, False, stored(r, k, terms, losses))
    return Parts(losses=losses, grad=grad(1), prob=prob, mean_grad=grad, mean_value=value, warnings=warnings,
                 **whole)


def _reduced(loss: str, terms: Array, r: Rounder, half: Any, fused: bool,
             bf16: bool) -> tuple[Callable[[float], float] | None, list[str]]:
    """The reduced value (None: lossgrad's float32 sum) and the warnings that say where it is lossgrad's. More than
    one output per sample: the losses' sum over the array as jnp.sum adds it (xla_sum2d, as mse's), but for float32
    under jit over up to 32 × 32, where XLA fuses the losses into its loop; under jit in float32 XLA adds log_cosh's
    22 to 32 losses in 8 lanes of its own (measured), not reproduced."""
    several = terms.ndim > 1 and terms.shape[1] > 1
    block = fused and terms.shape[0] <= 32 and terms.shape[-1] <= 32
    summed = not several or (sums_2d(terms) and not block)
    lanes = loss == "logcosh" and fused and 22 <= terms.size <= 32
    value = None if (not summed or lanes) and half is None else mean_value(terms, r, sum2d=summed, bf16=bf16)
    warnings = ["the reduced value is lossgrad's float32 sum: XLA adds 22 to 32 log_cosh losses under jit in "
                "lanes of its own, not reproduced"] if lanes else []
    if not summed and half is None:
        warnings.append("the reduced value is lossgrad's float32 sum: XLA's order over more than one output per "
                        "sample is not reproduced " + ("under jit in float32 up to 32 × 32, where XLA fuses the "
                                                       "losses into its own loop" if block else "for this shape"))
    return value, warnings


def cosine_jit(y: Array, p: Array) -> Parts:
    """cosine_distance under jit in float32 (lowp_xla_cos)."""
    from . import lowp_xla_cos

    losses, grad = lowp_xla_cos.cosine(y, p)
    return Parts(losses=losses, grad=grad(1), mean_grad=grad, mean_value=mean_value(losses, ftz),
                 **batch_terms(losses, ftz, True, False, False))


def triplet_parts(pos: Array, a: Array, neg: Array, half: Any, jit: bool, margin: float, mean: bool = True,
                  norm_degree: float = 2.0) -> Parts:
    """triplet's parts: the anchor's gradient, the positives' (the targets) and the negatives' (a norm_degree
    other than 2: lowp_xla_pow's)."""
    r = rounder(half)
    k = ftz if jit and half is not np.float16 else r  # (as lowp_xla.compute)
    with np.errstate(all="ignore"):
        if norm_degree != 2:
            lowp_xla_pow.check(norm_degree, jit)
            losses, terms, grads = lowp_xla_pow.triplet(r(a), r(pos), r(neg), norm_degree, margin, r, k, jit,
                                                        jit and half is None, jit and half is np.float16)
        else:
            losses, terms, grads = triplet(r(a), r(pos), r(neg), margin, r, k, jit, jit and half is None,
                                           mean and a.shape[0] > 1)

    @functools.cache  # (the mean's gradients and the further inputs' come from one computation)
    def quiet(n: float) -> list[Array]:
        with np.errstate(all="ignore"):
            return grads(n)
    g = quiet(1)
    # under jit in float32 XLA fuses the losses into their sum where the root is h or products (q = 1, ½, ⅓), and
    # LLVM adds some batches in vector lanes (lowp_xla_pow.fused_value)
    fused = jit and half is None and norm_degree > 0 and float(np.float32(1 / norm_degree)) in (1.0, 2.0, 3.0)
    bf16 = stored(r, k, terms, losses)
    value = (lowp_xla_pow.fused_value(terms, a.shape[1], norm_degree) if fused else mean_value(terms, r, bf16=bf16))
    whole = batch_terms(terms, r, False, False, bf16) if not fused else {  # (a batch's terms joined)
        "value_parts": {"terms": terms}, "value_fold": lambda rows: Joined(
            lambda parts, n: lowp_xla_pow.fused_value(parts["terms"], a.shape[1], norm_degree)(n))}
    note = lowp_xla_pow.more_threads(norm_degree, a.shape) if jit and half is None else None
    lone = lowp_xla_pow.lone_program_note(losses, a.shape, norm_degree, r) if jit and half is not np.float16 else None
    return Parts(losses=losses, grad=g[0], extra_grads={"target": g[1], "negative": g[2]},
                 warnings=[w for w in (note, lone) if w],
                 mean_grad=lambda n: quiet(n)[0], mean_value=value, **whole,
                 mean_extra_grads=lambda n: dict(zip(("target", "negative"), quiet(n)[1:], strict=True)))
