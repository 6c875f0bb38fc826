"""Losses between two vectors per sample: KL divergence (kl) and the cosine loss (cosine).

kl sums its per-element terms over each sample's outputs (PyTorch's kl_div keeps the elements, and its mean
divides by all of them). The exact forms keep the accuracy target where the float64 formulas cancel: a KL row sum
whose terms nearly cancel (p close to q), and 1 − cos for nearly parallel vectors, are recomputed in long double,
and where even that is not enough, in decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import precise
from ..errors import DomainError
from ._ops import Array, clip_grad, exp_times, xlogy
from .base import Loss, Param, Parts, Reason, _g, first_bad, register

if TYPE_CHECKING:  # (decimal and fractions are imported where an element needs them: start-up time)
    from decimal import Decimal
    from fractions import Fraction

if TYPE_CHECKING:
    from ..conventions import Convention

LOG_INPUT = Param("log_input", False, "Predictions are log-probabilities (PyTorch's kl_div input, optax's "
                  "log_predictions); the gradient is then with respect to them.", flag=True)
LOG_TARGET = Param("log_target", False, "Targets are log-probabilities (PyTorch's log_target=True, optax's "
                   "kl_divergence_with_log_targets).", flag=True)


# ---------------------------------------------------------------- kl


def _log_ratio(p: Array, q: Array) -> Array:
    """log(p / q) without cancellation: log1p((p - q) / q) near 1 (p - q is exact there), log of the correctly
    rounded ratio elsewhere, and log p - log q where the ratio leaves the float range."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        near = (p >= q / 2) & (p <= 2 * q)
        r = p / q
        ok = np.isfinite(r) & (r >= np.finfo(p.dtype).tiny)
        return np.where(near, np.log1p((p - q) / q), np.where(ok, np.log(r), np.log(p) - np.log(q)))


def _kl_terms_exact(y: Array, q: Array, log_input: bool, log_target: bool) -> tuple[Array, Array]:
    """Per-element terms t log t - t log q (t: the target probability), and the size of what they combine; in the
    arrays' dtype (long double when recomputing)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if not log_input and not log_target:
            terms = xlogy(y, _log_ratio(y, q))
            return terms, np.abs(terms)
        qlog = q if log_input else np.log(q)
        if log_target:
            # e^y·(y − log q) with e^y's exponent kept apart: e^−800 underflows, e^−800·(−800 + 1e300) does not
            terms = exp_times(y, y - qlog)  # (with log_input, the difference of two inputs is rounded once)
            return terms, exp_times(y, np.abs(y) + np.abs(qlog)) if not log_input else np.abs(terms)
        terms = np.where(y == 0, 0, y * (np.log(y) - qlog))
        return terms, np.where(y == 0, 0, y * (np.abs(np.log(y)) + np.abs(qlog)))


def _kl_term_dec(yf: float, qf: float, log_input: bool, log_target: bool) -> tuple[Decimal, Decimal]:
    from decimal import Decimal
    y, q = Decimal(yf), Decimal(qf)
    t = y.exp() if log_target else y
    if t == 0:
        return Decimal(0), Decimal(0)
    tlog = y if log_target else y.ln()
    if not log_input and q == 0:
        return Decimal("Infinity"), Decimal(0)
    qlog = q if log_input else q.ln()
    return t * (tlog - qlog), t * (abs(tlog) + abs(qlog))


def _kl_row_dec(y_row: Sequence[float], q_row: Sequence[float], log_input: bool,
                log_target: bool) -> tuple[Decimal, Decimal]:
    from decimal import Decimal
    total, scale = Decimal(0), Decimal(0)
    for y, q in zip(y_row, q_row, strict=True):
        r, s = _kl_term_dec(y, q, log_input, log_target)
        total += r
        scale += s
    return total, scale


def _kl_exact(y: Array, q: Array, log_input: bool, log_target: bool, per_sample: bool) -> tuple[Array, Array]:
    terms, scale = _kl_terms_exact(y, q, log_input, log_target)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if log_target:
            # −e^y/q as one scaled quotient: e^−800/1e−300 is 3.7e−48, and e^−745/5e−324 is 0.57, where e^y alone
            # would round to 0 or to a subnormal with a bit or two first
            grad = -np.exp(y) if log_input else -exp_times(y, np.ones_like(q), (q,))
        else:
            grad = -y if log_input else np.where(y == 0, 0, -y / q)
    if not per_sample:
        losses = precise.refine(terms, scale, lambda a, b: _kl_terms_exact(a, b, log_input, log_target),
                                lambda a, b: _kl_term_dec(a, b, log_input, log_target), y, q)
        return losses, grad
    with np.errstate(invalid="ignore"):
        # a row of terms that nearly cancel (p close to q): the sum keeps only what survives their rounding
        losses = terms.sum(axis=1)
        total_scale = scale.sum(axis=1)

    def long_rows(a: Array, b: Array) -> tuple[Array, Array]:
        t_, s_ = _kl_terms_exact(a, b, log_input, log_target)
        return t_.sum(axis=1), s_.sum(axis=1)

    return precise.refine_rows(losses, total_scale, long_rows,
                               lambda a, b: _kl_row_dec(a, b, log_input, log_target), y, q), grad


def _kl_keras(y: Array, p: Array, conv: Convention) -> tuple[Array, Array]:
    # keras kl_divergence: y and p clipped to [eps, 1], sum y log(y / p); the clip's gradient is 0 outside
    eps = p.dtype.type(conv.eps)
    one = p.dtype.type(1)
    yc, pc = np.clip(y, eps, one), np.clip(p, eps, one)
    return yc * np.log(yc / pc), -yc / pc * clip_grad(p, eps, one, conv.clip_tie_grad) + 0


def _kl_autodiff(y: Array, p: Array, form: str, log_input: bool, log_target: bool) -> tuple[Array, Array]:
    # torch's kl_div and optax's kl_divergence, each in its own arrangement of the terms
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.exp(y) if log_target else y
        lq = p if log_input else np.log(p)
        if log_target:
            terms = t * (y - lq)  # both: exp(t) (t - input)
        elif form == "torch":
            terms = xlogy(y, np.log(y)) - y * lq  # xlogy(t, t) - t input
        else:
            terms = y * (np.where(y == 0, 0, np.log(y)) - lq)  # optax: t (where(t == 0, 0, log t) - lq)
        # autodiff: -t with respect to the log-probabilities, -t / q through log q
        return terms, -t if log_input else -t / p


def kl_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
               log_input: bool = False, log_target: bool = False) -> Parts:
    per_sample = "kl" not in conv.elementwise_mean
    if conv.kl == "exact":
        losses, grad = _kl_exact(y, p, log_input, log_target, per_sample)
        return Parts(losses=losses, grad=grad + 0)
    if conv.kl == "keras":
        terms, grad = _kl_keras(y, p, conv)
    else:
        terms, grad = _kl_autodiff(y, p, conv.kl, log_input, log_target)
    return Parts(losses=terms.sum(axis=1) if per_sample else terms, grad=grad)


def kl_check(y: Array, p: Array, from_logits: bool, log_input: bool = False, log_target: bool = False) -> None:
    if log_target:
        first_bad("target", y > 0, y, "is positive; with {log_target} the targets are log-probabilities, at most 0")
    else:
        first_bad("target", (y < 0) | (y > 1), y, "is outside [0, 1]; kl targets are probabilities "
                                                    "({log_target} for log-probabilities)")
    if log_input:
        first_bad("pred", p > 0, p, "is positive; with {log_input} the predictions are log-probabilities, at most 0")
    else:
        first_bad("pred", (p < 0) | (p > 1), p, "is outside [0, 1]; kl predictions are probabilities "
                                                  "({log_input} for log-probabilities)")


def kl_formulas(from_logits: bool, conv: Convention, log_input: bool = False, log_target: bool = False) -> list[str]:
    t = "e^yᵢₖ" if log_target else "yᵢₖ"
    logt = "yᵢₖ" if log_target else "log yᵢₖ"
    logq = "qᵢₖ" if log_input else "log qᵢₖ"
    lines = []
    if log_target:
        lines.append("the targets are log-probabilities yᵢₖ = log tᵢₖ")
    if log_input:
        lines.append("the predictions are log-probabilities qᵢₖ = log (predicted probability)")
    if conv.kl == "keras":
        lines.append(f"yᵢₖ ← clip(yᵢₖ, ε, 1), qᵢₖ ← clip(qᵢₖ, ε, 1), ε = {conv.eps:g}  (zero targets still count)")
    summed = "kl" not in conv.elementwise_mean
    lines.append(("ℓᵢ = Σₖ " if summed else "ℓᵢₖ = ") + f"{t}·({logt} − {logq})  (0 where the target is 0)")
    lines.append(f"∂ℓ/∂qᵢₖ = −{t}" + ("" if log_input else " / qᵢₖ"))
    if not summed:
        lines.append(f"{conv.title}'s kl_div keeps one term per element: its mean divides by every element (N·C; "
                     "reduction='batchmean' is the sum over N, as --convention exact computes)")
    return lines


def kl_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
               labels: Array | None, **opts: Any) -> list[Reason]:
    """Keras' clips of both arguments; PyTorch's kl_div mean over elements rather than samples."""
    rules: list[Reason] = []
    if conv.kl == "keras":
        eps = conv.eps
        rules.append((np.broadcast_to(y2 < eps, p2.shape),
                      lambda i: f"target {_g(y2[i])} is below ε = {eps:g}: {conv.name} clips it to ε, so it still "
                                "counts ε·log(ε/q)"))
        rules.append((p2 < eps, lambda i: f"q = {_g(p2[i])} is below ε = {eps:g}: {conv.name} clips it, so its "
                                          "gradient is 0"))
    if "kl" in conv.elementwise_mean:
        k = p2.shape[1]
        rules.append((np.ones_like(p2, dtype=bool),
                      lambda i: f"{conv.name}'s kl_div keeps one term per element: its mean divides by all N·{k} "
                                "elements, not by the N samples (reduction='batchmean' does)"))
    return rules


KL = register(
    Loss(
        name="kl",
        summary="Kullback-Leibler divergence Σ y·log(y/q), summed over each sample's outputs",
        kind="elementwise",
        compute=kl_compute,
        check=kl_check,
        formulas=kl_formulas,
        has_logits=False,
        reference="keras.losses.kl_divergence, torch.nn.functional.kl_div, optax.losses.kl_divergence",
        params=(LOG_INPUT, LOG_TARGET),
        last_axis="sum",
        zero_hint="a predicted probability of exactly 0 where the target is not 0; {convention} keras clips it to ε",
        reasons=kl_reasons,
    )
)


# ---------------------------------------------------------------- cosine


def _zero_rows(which: str, a: Array, what: str) -> None:
    zero = ~(a != 0).any(axis=1)
    if zero.any():
        row = int(np.argmax(zero))
        raise DomainError(which, row, 0, 0.0, what)


def _cosine_exact(y: Array, p: Array) -> tuple[Array, Array]:
    """1 - cos and its gradient -(A y - C p) / (A sqrt(A B)), A = Σp², B = Σy², C = Σpy: sums in long double
    where there is one, the nearly parallel rows (1 - cos cancels) and cancelling gradient cells in decimal."""
    from fractions import Fraction
    _zero_rows("target", y, "starts a row of zeros: the cosine of a zero target vector is undefined")
    _zero_rows("pred", p, "starts a row of zeros: the cosine of a zero prediction vector is undefined")
    # powers of 2 scale each row to a largest element of about 1: exact, and no overflow in the sums
    ey = np.frexp(np.abs(y).max(axis=1, keepdims=True))[1]
    ep = np.frexp(np.abs(p).max(axis=1, keepdims=True))[1]
    ys, ps = np.ldexp(y, -ey), np.ldexp(p, -ep)
    LONG = precise._long() or np.float64
    yl, pl = ys.astype(LONG), ps.astype(LONG)
    A, B, C = (pl * pl).sum(axis=1), (yl * yl).sum(axis=1), (pl * yl).sum(axis=1)
    root = np.sqrt(A * B)
    k = p.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):  # (the branch not taken may divide by zero)
        # C > 0: 1 - C/root = (AB - C²) / (root (root + C)); C <= 0: 1 + |C|/root, nothing cancels
        loss_l = np.where(C > 0, (A * B - C * C) / (root * (root + C)), 1 - C / root)
        # the rounding of AB - C² is about k ulp of AB: rows where it keeps fewer than 8 extra bits go to decimal
        margin = np.where(C > 0, max(k, 4) / 4 * (A * B) / (root * (root + C)), 0)
    losses = loss_l.astype(np.float64)
    extreme = np.nonzero(np.abs(loss_l) < precise.LONG_ENOUGH * margin if LONG is not np.float64
                         else np.abs(loss_l) < margin)[0]
    for i in extreme:
        losses[i] = _cosine_loss_dec(list(ys[i]), list(ps[i]))
    num = A[:, None] * yl - C[:, None] * pl
    nscale = np.maximum(np.abs(A[:, None] * yl), np.abs(C[:, None] * pl))
    factor = 1 / (A * root)
    grad = (-(num * factor[:, None])).astype(np.float64)
    bad = np.abs(num) < (precise.LONG_ENOUGH if LONG is not np.float64 else precise.RISKY) * k * nscale
    grad = np.ldexp(grad, -ep)
    for i in np.nonzero(bad.any(axis=1))[0]:
        # the exact numerator times the factor and the row's power of 2, rounded once (even to a subnormal)
        f = Fraction(float(factor[i])) / Fraction(2) ** int(ep[i, 0])
        grad[i] = [float(-n * f) for n in _cosine_num_row_dec(list(ys[i]), list(ps[i]))]
    return losses, grad + 0  # (+ 0: no -0)


def _cosine_num_row_dec(y_row: Sequence[float], p_row: Sequence[float]) -> list[Fraction]:
    """A y_j - C p_j for every cell of one row, exactly (rationals)."""
    y, p, A, B, C = _cosine_sums(y_row, p_row)
    return [A * b - C * a for a, b in zip(p, y, strict=True)]


def _cosine_sums(y_row: Sequence[float],
                 p_row: Sequence[float]) -> tuple[list[Fraction], list[Fraction], Fraction, Fraction, Fraction]:
    from fractions import Fraction
    y = [Fraction(v) for v in y_row]
    p = [Fraction(v) for v in p_row]
    zero = Fraction(0)
    C = sum((a * b for a, b in zip(p, y, strict=True)), zero)
    return y, p, sum((a * a for a in p), zero), sum((b * b for b in y), zero), C


def _cosine_loss_dec(y_row: Sequence[float], p_row: Sequence[float]) -> float:
    """1 - cos from exact sums: AB - C² exactly (rationals), the rest in 60-digit decimal (nothing cancels)."""
    from decimal import Decimal, localcontext

    y, p, A, B, C = _cosine_sums(y_row, p_row)
    with localcontext() as ctx:
        ctx.prec = 60

        def dec(f: Fraction) -> Decimal:
            return Decimal(f.numerator) / Decimal(f.denominator)

        root = (dec(A) * dec(B)).sqrt()
        if C <= 0:
            return float(1 - dec(C) / root)
        return float(dec(A * B - C * C) / (root * (root + dec(C))))


TORCH_EPS = float.fromhex("0x1.197998p-40")  # cosine_embedding_loss's EPSILON: float32(1e-12) = 9.99999996e-13


def _cosine_framework(y: Array, p: Array, conv: Convention) -> tuple[Array, Array]:
    """Each framework's arithmetic, in its order, and its autodiff."""
    form = conv.cosine
    A, B, C = (p * p).sum(axis=1), (y * y).sum(axis=1), (p * y).sum(axis=1)
    if form == "torch":
        # cosine_embedding_loss(pred, target, 1): 1 - C / sqrt((A + 1e-12)(B + 1e-12))
        e = p.dtype.type(TORCH_EPS)
        m1, m2 = A + e, B + e
        denom = np.sqrt(m1 * m2)
        cos = C / denom
        grad = -(y / denom[:, None] - (C * m2 / denom ** 3)[:, None] * p)
        return 1 - cos, grad
    if form == "optax":
        # cosine_distance (epsilon 0): 1 - sum (p / sqrt(A)) (y / sqrt(B)); a zero vector divides 0 by 0: NaN,
        # loss and gradient, as optax computes it
        an, bn = np.sqrt(A), np.sqrt(B)
        with np.errstate(divide="ignore", invalid="ignore"):
            yu = y / bn[:, None]
            pu = p / an[:, None]
            grad = -(yu / an[:, None] - ((yu * p).sum(axis=1) / (an * an * an))[:, None] * p)
        return 1 - (pu * yu).sum(axis=1), grad
    with np.errstate(divide="ignore"):
        if form == "keras":
            # ops.nn.normalize: x * min(rsqrt(sum x²), 1/eps); the minimum's gradient goes to rsqrt at a tie
            cap = p.dtype.type(1) / p.dtype.type(conv.eps)
            rp, ry = np.minimum(1 / np.sqrt(A), cap), np.minimum(1 / np.sqrt(B), cap)
            through = 1 / np.sqrt(A) <= cap
        else:
            # tf.linalg.l2_normalize: x * rsqrt(max(sum x², 1e-12)); the maximum's gradient goes to the sum at a tie
            floor = p.dtype.type(1e-12)
            rp, ry = 1 / np.sqrt(np.maximum(A, floor)), 1 / np.sqrt(np.maximum(B, floor))
            through = A >= floor
    yh = y * ry[:, None]
    ph = p * rp[:, None]
    losses = -(yh * ph).sum(axis=1)
    s = (yh * p).sum(axis=1)
    grad = -yh * rp[:, None] + np.where(through, s * rp ** 3, 0)[:, None] * p
    return losses, grad


def cosine_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None) -> Parts:
    if conv.cosine == "exact":
        losses, grad = _cosine_exact(y, p)
    else:
        losses, grad = _cosine_framework(y, p, conv)
    return Parts(losses=losses, grad=grad)


def cosine_check(y: Array, p: Array, from_logits: bool) -> None:
    return None


def cosine_formulas(from_logits: bool, conv: Convention) -> list[str]:
    if conv.cosine in ("keras", "tf-keras"):
        clamp = (f"x̂ = x·min(1/‖x‖, 1/ε), ε = {conv.eps:g}" if conv.cosine == "keras"
                 else "x̂ = x / sqrt(max(‖x‖², 1e−12))")
        return [clamp, "ℓᵢ = −Σₖ ŷᵢₖ·p̂ᵢₖ = −cos(yᵢ, pᵢ)  (Keras reports −cos: 1 less than 1 − cos)",
                "∂ℓᵢ/∂pᵢ = −(ŷᵢ − cos·p̂ᵢ) / ‖pᵢ‖"]
    lines = ["cos(yᵢ, pᵢ) = Σₖ yᵢₖpᵢₖ / (‖yᵢ‖·‖pᵢ‖)", "ℓᵢ = 1 − cos(yᵢ, pᵢ)",
             "∂ℓᵢ/∂pᵢ = −(yᵢ/‖yᵢ‖ − cos·pᵢ/‖pᵢ‖) / ‖pᵢ‖"]
    if conv.cosine == "torch":
        lines[0] = "cos(yᵢ, pᵢ) = Σₖ yᵢₖpᵢₖ / sqrt((‖pᵢ‖² + 1e−12)(‖yᵢ‖² + 1e−12))  (cosine_embedding_loss, target 1)"
    return lines


def cosine_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                   labels: Array | None, **opts: Any) -> list[Reason]:
    if conv.cosine == "exact":
        return []
    how = {"keras": f"normalises with min(1/‖x‖, 1/ε), ε = {conv.eps or 0:g}",
           "tf-keras": "normalises with 1/sqrt(max(‖x‖², 1e−12))",
           "torch": "adds 1e−12 to each squared norm",
           "optax": "forms 1 − cos by a subtraction"}[conv.cosine]
    rules: list[Reason] = []
    if conv.cosine in ("keras", "tf-keras"):
        rules.append((np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} reports −cos, 1 less than 1 − cos (the "
                                                              "same gradient)", {"loss": np.inf, "value": np.inf}))
    return rules + [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} {how}; for nearly parallel vectors its "
                     "gradient, a difference of nearly equal terms, keeps only a few digits")]


COSINE = register(
    Loss(
        name="cosine",
        summary="cosine loss 1 − cos(y, p) along each sample's outputs (Keras reports −cos)",
        kind="elementwise",
        compute=cosine_compute,
        check=cosine_check,
        formulas=cosine_formulas,
        has_logits=False,
        reference="keras.losses.cosine_similarity, torch.nn.functional.cosine_embedding_loss, "
        "optax.losses.cosine_distance",
        last_axis="vector",
        reasons=cosine_reasons,
    )
)
