"""Focal losses (Lin et al.): the sigmoid one, binary cross entropy down-weighted by (1 − p_t)^γ, optionally times
α_t; and the softmax one (categorical-focal, Keras' CategoricalFocalCrossentropy), each class's cross entropy term
−y_k log q_k down-weighted by (1 − q_k)^γ and weighted by α_k.

The cross entropy underneath is each convention's own bce (Keras' clipped one on probabilities, the stable logits
forms of TF, PyTorch and optax). The exact form never subtracts 1 − p_t from 1: it is (1 − y)·p + y·(1 − p), two
non-negative terms, from σ(z) and σ(−z); it runs in long double where there is one, and the gradient cells where
the product rule's two terms cancel (soft labels near the minimum) are recomputed in decimal. The softmax one's
exact form takes 1 − q_k as the other classes' share and −log q_k from the log-sum-exp, so nothing is subtracted
from 1 either; Keras divides each row by its sum, clips it to [ε, 1 − ε] and subtracts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import precise
from ..errors import OptionError, counted
from ._ops import Array, clip_grad, dec_sigmoid_pair, sigmoid_pair, softmax, softplus, xlogy
from .base import Loss, Param, Parts, Reason, first_bad, register
from .classification import ZERO_HINT, bce_check, bce_from_logits, bce_on_probs

if TYPE_CHECKING:  # (decimal and fractions are imported where an element needs them: start-up time)
    from decimal import Decimal

if TYPE_CHECKING:
    from ..conventions import Convention

GAMMA = Param("gamma", 2.0, "The focusing exponent γ of (1 − p_t)^γ (0 gives plain bce).", positive=False)
ALPHA = Param("alpha", None, "Class balance α in [0, 1]: positives weigh α, negatives 1 − α (Keras' "
              "apply_class_balancing; torchvision's alpha, which defaults to 0.25 there) [default: none].",
              positive=False, fraction=True)


def _alpha_t(y: Array, alpha: float | None) -> Array | None:
    if alpha is None:
        return None
    a = y.dtype.type(alpha)
    at: Array = a * y + (1 - a) * (1 - y)
    return at


def _power_parts(m: Array, gamma: float, dtype: np.dtype[Any], literal: bool = False) -> tuple[Array, Array]:
    """(m^γ, γ·m^(γ−1)) with the limits at m = 0: 0^γ (1 for γ = 0) and a derivative 0 for γ > 1, γ at γ = 1.
    `literal`: γ = 0 differentiated as TensorFlow does, 0·m^(−1), which is NaN where m^(−1) is infinite."""
    g = dtype.type(gamma)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        f = m ** g
        if gamma == 0:
            df = g * m ** (g - 1) if literal else np.zeros_like(m)
        else:
            df = np.where(m == 0, g if gamma == 1 else (0 if gamma > 1 else np.inf), g * m ** (g - 1))
    return f, df


def _exact_power(m: Array, pt: Array, gamma: float) -> Array:
    """m^γ (1 for γ = 0) as exp(γ log m), log m = log1p(−p_t) where m is near 1: m rounded first and raised to a
    large γ would carry γ times its rounding error."""
    if gamma == 0:
        return np.ones_like(m)
    with np.errstate(divide="ignore"):
        logm = np.where(pt < 0.5, np.log1p(-pt), np.log(m))
    f: Array = np.exp(m.dtype.type(gamma) * logm)
    return f


def _exact(y: Array, x: Array, from_logits: bool, gamma: float,
           alpha: float | None) -> tuple[Array, Array, Array, Array]:
    """Loss, gradient, the size of the gradient's two terms, and (on probabilities) the gradient for the logits,
    in the dtype of y and x."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if from_logits:
            s, sn, e = sigmoid_pair(x)  # sigma(z), sigma(-z), in x's dtype
            bce = y * softplus(-x, e) + (1 - y) * softplus(x, e)
            m, pt = (1 - y) * s + y * sn, y * s + (1 - y) * sn  # 1 - p_t and p_t, neither from the other
            dm = (1 - 2 * y) * (s * sn)  # d(1 - p_t)/dz
            a, b = (1 - y) * s, y * sn  # sigma(z) - y = a - b
        else:
            bce = -(xlogy(y, np.log(x)) + xlogy(1 - y, np.log1p(-x))) + 0
            m, pt = (1 - y) * x + y * (1 - x), y * x + (1 - y) * (1 - x)
            dm = 1 - 2 * y
            # d bce/dp = (1 - y)/(1 - p) - y/p
            a, b = np.where(y == 1, 0, (1 - y) / (1 - x)), np.where(y == 0, 0, y / x)
        f = _exact_power(m, pt, gamma)
        # p = 0 or 1 against a target that is not: bce is infinite, and so is the loss, however small the factor
        # (m > 0; e^−40000 is 0 even in long double); its gradient is bce's, whose 1/p (or 1/(1 − p)) outgrows
        # the factor's log p
        infinite = np.isinf(bce) & (m > 0)
        losses = np.where(infinite, bce, f * bce)
        # γ m^(γ−1)·dm·bce as γ·f·bce·(dm/m): m^(γ−1) alone overflows (or meets a 0 from dm: NaN) where m is tiny;
        # at m = 0 the term is 0 (p = y, bce 0) or below the smallest float (|z| beyond long double's range)
        t1 = np.where((m == 0) | (gamma == 0) | infinite, 0, gamma * f * bce * (dm / m))
        t2 = np.where(f == 0, 0, f * (a - b))
        grad = np.where(infinite, a - b, t1 + t2)
        scale = np.abs(t1) + np.where(f == 0, 0, f * np.maximum(np.abs(a), np.abs(b)))
        # with respect to the logits behind p: p(1 - p) times the above, with its limits at p = 0 and 1
        ds = x * (1 - x)
        gl = np.where(ds == 0, 0, t1 * ds) + np.where(f == 0, 0, f * (x - y))
    at = _alpha_t(y, alpha)
    if at is not None:
        # a class weighed 0 has a loss of 0 for every p, infinite bce or not
        with np.errstate(invalid="ignore"):
            losses, grad, scale, gl = (np.where(at == 0, 0, at * v) for v in (losses, grad, scale, gl))
    return losses, grad, scale, gl


def _dec_grad(yf: float, xf: float, from_logits: bool, gamma: float,
              alpha: float | None) -> tuple[Decimal, Decimal]:
    """The exact form's gradient and the size of its terms for one cell, in decimal (for precise._adaptive)."""
    from decimal import Decimal
    y, x, g = Decimal(yf), Decimal(xf), Decimal(gamma)
    zero = Decimal(0)
    if from_logits:
        s, sn = dec_sigmoid_pair(x)
        l1p = (1 + (-abs(x)).exp()).ln()
        bce = y * (max(-x, zero) + l1p) + (1 - y) * (max(x, zero) + l1p)
        m = (1 - y) * s + y * sn
        dm = (1 - 2 * y) * s * sn
        a, b = (1 - y) * s, y * sn
    else:
        bce = -((y * x.ln() if y else zero) + ((1 - y) * (1 - x).ln() if y != 1 else zero))
        m = (1 - y) * x + y * (1 - x)
        dm = 1 - 2 * y
        a = zero if y == 1 else (1 - y) / (1 - x)
        b = zero if y == 0 else y / x
    f = m ** g if m else Decimal(0 if gamma else 1)
    t1 = g * m ** (g - 1) * dm * bce if (gamma and m) else Decimal(0)
    t2 = f * (a - b)
    at = Decimal(1) if alpha is None else Decimal(alpha) * y + (1 - Decimal(alpha)) * (1 - y)
    return at * (t1 + t2), at * (abs(t1) + f * max(abs(a), abs(b)))


def _focal_exact(y: Array, p: Array, from_logits: bool, gamma: float, alpha: float | None) -> Parts:
    """In long double where there is one; the gradient cells whose two terms cancel, in decimal."""
    LONG = precise._long()
    work = LONG if LONG is not None else p.dtype
    losses, grad, scale, gl = _exact(y.astype(work), p.astype(work), from_logits, gamma, alpha)
    finite = np.isfinite(grad)
    grad64 = grad.astype(p.dtype)
    with np.errstate(invalid="ignore"):
        risky = finite & (np.abs(grad) < (precise.LONG_ENOUGH if LONG is not None else precise.RISKY) * scale)
    for i, j in zip(*np.nonzero(risky), strict=True):
        grad64[i, j] = float(precise._adaptive(_dec_grad, float(y[i, j]), float(p[i, j]), from_logits, gamma,
                                               alpha))
    if from_logits:
        # 1/(1 + e^-z) in long double, rounded once: not sigmoid_pair's form, whose long double bits can round to
        # a different float64
        with np.errstate(over="ignore"):
            prob = (1 / (1 + np.exp(-p.astype(work)))).astype(p.dtype)
        # a gradient below the smallest float keeps its sign: that of σ(z) − y's limit, 1 − 2y
        grad64 = np.where(grad64 == 0, np.copysign(0, 1 - 2 * y), grad64)
        return Parts(losses=losses.astype(p.dtype), grad=grad64, prob=prob)
    return Parts(losses=losses.astype(p.dtype), grad=grad64, grad_logits=gl.astype(p.dtype))


def _focal_framework(y: Array, p: Array, from_logits: bool, conv: Convention, gamma: float,
                     alpha: float | None) -> Parts:
    """The convention's own bce, and autodiff through its 1 - p_t and the power."""
    if from_logits:
        bce, dbce, s = bce_from_logits(y, p, conv.bce_logits)
        dsig = s * (1 - s)
    else:
        bce, dbce, _ = bce_on_probs(y, p, conv)
        s = p
        dsig = np.ones_like(p)
    with np.errstate(invalid="ignore", over="ignore"):
        if conv.focal_factor == "subtract":
            # Keras and torchvision: (1 - p_t)^γ, p_t = y p + (1 - y)(1 - p); d(1 - p_t)/dx = (1 - 2y) dp/dx
            m = 1 - (y * s + (1 - y) * (1 - s))
            f, df = _power_parts(m, gamma, p.dtype, conv.pow0_grad_literal)
            # an infinite or NaN d(m^γ)/dm meets a 0 in autodiff's product rule for p_t: NaN
            dfdx = np.where(df == 0, 0, np.where(np.isfinite(df), df * (1 - 2 * y) * dsig, np.nan))
        else:
            f, dfdx = _log_space_factor(y, p, gamma)
        losses = f * bce
        grad = np.where(dfdx == 0, 0, dfdx * bce) + f * dbce
    at = _alpha_t(y, alpha)
    if at is not None:
        losses, grad = at * losses, at * grad
    if from_logits:
        return Parts(losses=losses, grad=grad, prob=s)
    with np.errstate(invalid="ignore"):
        return Parts(losses=losses, grad=grad, grad_logits=grad * p * (1 - p))


def _log_space_factor(y: Array, z: Array, gamma: float) -> tuple[Array, Array]:
    """optax: (1 - p_t)^γ = exp(γ L), L = logsumexp(log σ(z), log σ(−z); weights 1 − y, y), and its derivative
    γ e^(γL) dL/dz: never a 0 to a negative power, so finite wherever the logits are."""
    s, sn, e = sigmoid_pair(z)
    log_p, log_q = -softplus(-z, e), -softplus(z, e)
    b_p, b_q = 1 - y, y
    # jax's logsumexp leaves out the terms whose weight is 0 (their exponent is -inf), then shifts by the max
    a_p, a_q = np.where(b_p != 0, log_p, -np.inf), np.where(b_q != 0, log_q, -np.inf)
    top = np.maximum(a_p, a_q)
    ep, eq = b_p * np.exp(a_p - top), b_q * np.exp(a_q - top)
    total = ep + eq
    g = z.dtype.type(gamma)
    f = np.exp(g * (np.log(total) + top))
    dL = (ep * sn - eq * s) / total  # d log σ(z)/dz = σ(−z), d log σ(−z)/dz = −σ(z)
    return f, g * f * dL


def focal_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                  gamma: float = 2.0, alpha: float | None = None) -> Parts:
    if conv.focal_factor == "exact":
        return _focal_exact(y, p, from_logits, gamma, alpha)
    return _focal_framework(y, p, from_logits, conv, gamma, alpha)


def focal_formulas(from_logits: bool, conv: Convention, gamma: float = 2.0, alpha: float | None = None) -> list[str]:
    p = "σ(zᵢ)" if from_logits else "pᵢ"
    lines = [f"1 − p_t = yᵢ·(1 − {p}) + (1 − yᵢ)·{p}, γ = {gamma:g}"]
    if conv.focal_factor == "subtract":
        lines[0] = f"1 − p_t = 1 − (yᵢ·{p} + (1 − yᵢ)·(1 − {p})), γ = {gamma:g}  (as {conv.title} computes it)"
    bce = ("bceᵢ = max(zᵢ, 0) − zᵢ·yᵢ + log(1 + e^−|zᵢ|)" if from_logits
           else "bceᵢ = −(yᵢ·log pᵢ + (1 − yᵢ)·log(1 − pᵢ))")
    if not from_logits and conv.eps is not None:
        bce += f", pᵢ clipped to [ε, 1 − ε] inside it (ε = {conv.eps:g}" + (", and + ε in the logs)" if conv.log_eps
                                                                          else ")")
    lines.append(bce)
    a = "" if alpha is None else "α_t·"
    balance = "" if alpha is None else f", α_t = α·yᵢ + (1 − α)(1 − yᵢ), α = {alpha:g}"
    lines.append(f"ℓᵢ = {a}(1 − p_t)^γ·bceᵢ" + balance)
    d = "σ(zᵢ)σ(−zᵢ)" if from_logits else "1"
    dbce = "σ(zᵢ) − yᵢ" if from_logits else "(pᵢ − yᵢ)/(pᵢ(1 − pᵢ))"
    x = "zᵢ" if from_logits else "pᵢ"
    lines.append(f"∂ℓᵢ/∂{x} = {a}[γ(1 − p_t)^(γ−1)·(1 − 2yᵢ)·{d}·bceᵢ + (1 − p_t)^γ·({dbce})]")
    return lines


def focal_check(y: Array, p: Array, from_logits: bool) -> None:
    bce_check(y, p, from_logits)


def focal_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                  labels: Array | None, **opts: Any) -> list[Reason]:
    if conv.focal_factor != "subtract":
        return []
    return [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} forms 1 − p_t as 1 − (y·p + (1 − y)(1 − p)), "
                                                     "a subtraction that loses the small value when p is close to y")]


FOCAL = register(
    Loss(
        name="focal",
        summary="sigmoid focal loss (1 − p_t)^γ·bce, --gamma and --alpha, on probabilities or (--from-logits) logits",
        kind="elementwise",
        compute=focal_compute,
        check=focal_check,
        formulas=focal_formulas,
        has_logits=True,
        link="sigmoid",
        reference="keras.losses.binary_focal_crossentropy, torchvision.ops.sigmoid_focal_loss, "
        "optax.losses.sigmoid_focal_loss",
        params=(GAMMA, ALPHA),
        zero_hint=ZERO_HINT,
        reasons=focal_reasons,
    )
)


# ---------------------------------------------------------------- categorical (softmax) focal

CLASS_ALPHA = Param("class_alpha", None, "categorical-focal: the class weights α_k, one per class or one for all, "
                    "comma separated (Keras' alpha, whose own default is 0.25) [default: 1 for every class].",
                    vector=True)


def _class_alpha(alpha: Array | None, classes: int, dtype: Any) -> Array:
    if alpha is None:
        return np.ones((1, classes), dtype=dtype)
    if alpha.size not in (1, classes):
        raise OptionError("class_alpha", f"has {counted(alpha.size, 'weight')} but the predictions have "
                                          f"{counted(classes, 'class', 'classes')}")
    return np.broadcast_to(alpha.astype(dtype), (classes,))[None, :]


def _softmax_pieces(z: Array) -> tuple[Array, Array, Array, Array, Array]:
    """For rows of logits: q = softmax(z), 1 − q, log(1 − q) and −log q, none of them by subtracting from 1
    (the max's 1 − q is the others' share, summed), and the max's column mask."""
    k = np.argmax(z, axis=1)
    top = np.zeros(z.shape, dtype=bool)
    top[np.arange(z.shape[0]), k] = True
    s = z - z[np.arange(z.shape[0]), k][:, None]
    e = np.exp(s)
    rest = np.where(top, 0, e).sum(axis=1, keepdims=True)  # Σ of the others' e^s: the max's is exactly 1
    total = 1 + rest
    log_total = np.log1p(rest)
    q = e / total
    with np.errstate(divide="ignore"):
        m = np.where(top, rest / total, (total - e) / total)  # (others: q ≤ 1/2, so total − e loses nothing)
        log_m = np.where(top, np.log(rest) - log_total, np.log1p(-q))
    return q, m, log_m, log_total - s, top


def _focal_terms(w: Array, m: Array, log_m: Array, nll: Array, gamma: float) -> tuple[Array, Array]:
    """w·(1 − q)^γ and −log q over 1 − q (→ 1 as 1 − q → 0), with the limits where 1 − q is 0."""
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        f = np.exp(m.dtype.type(gamma) * log_m) if gamma else np.ones_like(m)
        ratio = np.where(m == 0, 1, nll / m)
    return np.where(w == 0, 0, w * f), ratio


def _cfocal_exact_logits(y: Array, z: Array, gamma: float, a: Array) -> tuple[Array, Array, Array, Array]:
    """Loss, gradient, the size of the gradient's two terms, and softmax: ℓ = Σ_k w_k (1 − q_k)^γ (−log q_k),
    w = α·y; ∂ℓ/∂z_j = q_j·Σ_(k≠j) c_k − c_j·(1 − q_j), c_k = w_k (1 − q_k)^γ (1 + γ q_k (−log q_k)/(1 − q_k))."""
    q, m, log_m, nll, _ = _softmax_pieces(z)
    wf, ratio = _focal_terms(a * y, m, log_m, nll, gamma)
    with np.errstate(invalid="ignore", over="ignore"):
        losses = np.where(wf == 0, 0, wf * nll).sum(axis=1)
        c = wf * (1 + z.dtype.type(gamma) * q * ratio)
        others = _sum_of_others(c)
        t1, t2 = q * others, c * m
    return losses, t1 - t2, t1 + t2, q


def _sum_of_others(c: Array) -> Array:
    """Σ_(k≠j) c_k for every j of non-negative rows: Σc − c_j, but for the largest c_j the others summed (Σc − c_j
    would leave nothing of a 1e−300 beside a 1e−163)."""
    k = np.argmax(c, axis=1)
    rows = np.arange(c.shape[0])
    rest = c.copy()
    rest[rows, k] = 0
    others: Array = c.sum(axis=1, keepdims=True) - c  # (the rest: each c_j at most half of the sum)
    others[rows, k] = rest.sum(axis=1)
    return others


def _cfocal_exact_probs(y: Array, p: Array, gamma: float, a: Array) -> tuple[Array, Array]:
    """ℓ = Σ_k w_k (1 − p_k)^γ (−log p_k); ∂ℓ/∂p_k = −w_k (1 − p_k)^γ (γ (−log p_k)/(1 − p_k) + 1/p_k): two
    terms of one sign."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m = 1 - p  # (exact for p ≥ 1/2)
        nll = -np.where(p < 0.5, np.log(p), np.log1p(-m))
        log_m = np.where(p < 0.5, np.log1p(-p), np.log(m))
        wf, ratio = _focal_terms(a * y, m, log_m, nll, gamma)
        losses = np.where(wf == 0, 0, wf * nll).sum(axis=1)
        grad = np.where(wf == 0, 0, -wf * (p.dtype.type(gamma) * ratio + 1 / p))
    return losses, grad


def _dec_cfocal_grad(y_row: list[float], z_row: list[float], j: int, a_row: list[float],
                     gamma: float) -> tuple[Decimal, Decimal]:
    """One gradient cell of the exact form, in decimal, and the size of its two terms (for precise._adaptive)."""
    from decimal import Decimal
    z = [Decimal(v) for v in z_row]
    top = max(z)
    e = [(v - top).exp() for v in z]
    total = sum(e, Decimal(0))
    c = []
    for k, ek in enumerate(e):
        m = sum((v for i, v in enumerate(e) if i != k), Decimal(0)) / total
        q, w = ek / total, Decimal(a_row[k]) * Decimal(y_row[k])
        if not (w and q):  # (a class with no weight, or one whose e^s is below decimal's range: q·(−log q) → 0)
            c.append(w * m ** Decimal(gamma))
            continue
        if q < Decimal("0.5"):
            nll = -q.ln()
        else:  # −log(1 − m), by its series where 1 − m would round m away
            nll = m + m * m / 2 + m ** 3 / 3 + m ** 4 / 4 if m < Decimal("1e-12") else -(1 - m).ln()
        f = m ** Decimal(gamma) if m else Decimal(0 if gamma else 1)
        ratio = nll / m if m else Decimal(1)
        c.append(w * f * (1 + Decimal(gamma) * q * ratio))
    mj = sum((v for i, v in enumerate(e) if i != j), Decimal(0)) / total
    t1 = e[j] / total * sum((v for k, v in enumerate(c) if k != j), Decimal(0))
    return t1 - c[j] * mj, t1 + c[j] * mj


def _cfocal_exact(y: Array, p: Array, from_logits: bool, gamma: float, alpha: Array | None) -> Parts:
    """In long double where there is one; the gradient cells whose two terms cancel (soft targets near the
    model's own probabilities), in decimal."""
    LONG = precise._long()
    work = LONG if LONG is not None else p.dtype
    a = _class_alpha(alpha, p.shape[1], work)
    yl, pl = y.astype(work), p.astype(work)
    if not from_logits:
        losses, grad = _cfocal_exact_probs(yl, pl, gamma, a)
        return Parts(losses=losses.astype(p.dtype), grad=grad.astype(p.dtype))
    losses, grad, scale, q = _cfocal_exact_logits(yl, pl, gamma, a)
    out = grad.astype(p.dtype)
    with np.errstate(invalid="ignore"):
        risky = np.isfinite(grad) & (np.abs(grad) < (precise.LONG_ENOUGH if LONG is not None else precise.RISKY)
                                     * scale)
    for i, j in zip(*np.nonzero(risky), strict=True):
        out[i, j] = float(precise._adaptive(_dec_cfocal_grad, y[i].tolist(), p[i].tolist(), int(j),
                                            a[0].astype(np.float64).tolist(), gamma))
    return Parts(losses=losses.astype(p.dtype), grad=out, prob=q.astype(p.dtype))


def _cfocal_keras(y: Array, p: Array, from_logits: bool, conv: Convention, gamma: float,
                  alpha: Array | None) -> Parts:
    """Keras' categorical_focal_crossentropy (Keras 3 and tf-keras alike): softmax, each row divided by its sum,
    clipped to [ε, 1 − ε]; Σ_k α_k (1 − o_k)^γ·(−y_k log o_k); differentiated as TensorFlow's autodiff does."""
    t = p.dtype.type
    if alpha is not None and alpha.size > 1 and conv.alpha_list_float32:
        alpha = alpha.astype(np.float32)
    a = _class_alpha(alpha, p.shape[1], p.dtype)
    q = softmax(p) if from_logits else p
    total = q.sum(axis=1, keepdims=True)
    n = q / total
    eps = t(conv.eps)
    o = np.clip(n, eps, 1 - eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        cce = -y * np.log(o)
        m = 1 - o
        f, df = _power_parts(m, gamma, p.dtype, conv.pow0_grad_literal)
        losses = (f * a * cce).sum(axis=1)
        g_o = a * (-df * cce + f * (-y / o))
        g_n = g_o * clip_grad(n, eps, 1 - eps, conv.clip_tie_grad)
        # n = q / Σq: TensorFlow's RealDiv gradient, g/Σq for q and −g·q/Σq/Σq summed for Σq
        g_q = g_n / total + (g_n * (-q / total / total)).sum(axis=1, keepdims=True)
    if not from_logits:
        return Parts(losses=losses, grad=g_q)
    grad = (g_q - (g_q * q).sum(axis=1, keepdims=True)) * q  # TensorFlow's SoftmaxGrad
    return Parts(losses=losses, grad=grad, prob=q)


def categorical_focal_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                              gamma: float = 2.0, class_alpha: Array | None = None) -> Parts:
    if conv.categorical_focal == "exact":
        return _cfocal_exact(y, p, from_logits, gamma, class_alpha)
    return _cfocal_keras(y, p, from_logits, conv, gamma, class_alpha)


def categorical_focal_check(y: Array, p: Array, from_logits: bool) -> None:
    first_bad("target", y < 0, y, "is negative; categorical-focal targets are class indexes or probability rows")
    if not from_logits:
        first_bad("pred", (p < 0) | (p > 1), p, "is outside [0, 1]; categorical-focal predictions are probability "
                  "rows: pass logits with {from_logits}")


def categorical_focal_formulas(from_logits: bool, conv: Convention, gamma: float = 2.0,
                               class_alpha: Array | None = None) -> list[str]:
    q = "qᵢₖ = softmax(zᵢ)ₖ" if from_logits else "qᵢₖ = pᵢₖ"
    a = "α_k = 1" if class_alpha is None else "α_k = " + ", ".join(f"{v:g}" for v in class_alpha)
    lines = [f"{q}, γ = {gamma:g}, {a}"]
    if conv.categorical_focal == "keras":
        lines.append(f"qᵢₖ divided by Σₖ qᵢₖ, then clipped to [ε, 1 − ε], ε = {conv.eps:g}  (as {conv.title} "
                     "computes it)")
    lines.append("ℓᵢ = Σₖ α_k·(1 − qᵢₖ)^γ·(−yᵢₖ·log qᵢₖ)")
    c = "cᵢₖ = α_k·yᵢₖ·(1 − qᵢₖ)^γ·(1 + γ·qᵢₖ·(−log qᵢₖ)/(1 − qᵢₖ))"
    if from_logits:
        lines += [c, "∂ℓᵢ/∂zᵢⱼ = qᵢⱼ·Σₖ cᵢₖ − cᵢⱼ"]
    else:
        lines.append("∂ℓᵢ/∂pᵢₖ = −α_k·yᵢₖ·(1 − pᵢₖ)^γ·(γ·(−log pᵢₖ)/(1 − pᵢₖ) + 1/pᵢₖ)")
    return lines


def categorical_focal_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                              labels: Array | None, **opts: Any) -> list[Reason]:
    if conv.categorical_focal != "keras":
        return []
    eps = conv.eps or 0.0
    q = p2 if not from_logits else softmax(p2)
    clipped = (q < eps) | (q > 1 - eps)
    return [(clipped, lambda i: f"{conv.name} clips the probability {q[i]:.3g} to [{eps:g}, 1 − {eps:g}], where its "
                                "gradient is 0"),
            (np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} divides each row by its sum and forms 1 − q by "
                                                     "subtraction, which loses digits when q is close to 1")]


CATEGORICAL_FOCAL = register(
    Loss(
        name="categorical-focal",
        summary="softmax focal loss Σₖ α_k(1 − q_k)^γ·(−y_k log q_k), --gamma and --class-alpha, on probability rows "
        "or (--from-logits) logits",
        kind="rows",
        compute=categorical_focal_compute,
        check=categorical_focal_check,
        formulas=categorical_focal_formulas,
        has_logits=True,
        link="softmax",
        reference="keras.losses.CategoricalFocalCrossentropy (Keras 3 and tf-keras)",
        params=(GAMMA, CLASS_ALPHA),
        zero_hint=ZERO_HINT,
        reasons=categorical_focal_reasons,
    )
)
