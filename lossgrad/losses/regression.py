"""Regression losses: elementwise functions of the prediction error e = p - y."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._ops import Array, scaled_quotient, sigmoid, softplus
from .base import Loss, Param, Parts, Reason, register

if TYPE_CHECKING:
    from ..conventions import Convention


def _no_check(y: Array, p: Array, from_logits: bool) -> None:
    return None


# ---------------------------------------------------------------- mse


def mse_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None) -> Parts:
    """Squared error (p - y)^2; every framework computes the same thing (Keras averages the last axis first,
    which for rectangular input is the same mean)."""
    d = p - y
    # keep the factor 2 that some texts drop: d/dp (p - y)^2 = 2 (p - y); Keras 3 differentiates (y − p)², its
    # gradient −2 (y − p) is −0 where p = y
    return Parts(losses=d * d, grad=-2 * (y - p) if conv.name == "keras" else 2 * d)


def mse_formulas(from_logits: bool, conv: Convention) -> list[str]:
    return ["ℓᵢ = (pᵢ − yᵢ)²", "∂ℓᵢ/∂pᵢ = 2 (pᵢ − yᵢ)"]


MSE = register(
    Loss(
        name="mse",
        summary="mean squared error, (p − y)²",
        kind="elementwise",
        compute=mse_compute,
        check=_no_check,
        formulas=mse_formulas,
        has_logits=False,
        reference="keras.losses.mean_squared_error, torch.nn.functional.mse_loss, optax.losses.squared_error",
    )
)


# ---------------------------------------------------------------- mae


def mae_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None) -> Parts:
    """|p - y|; its derivative sign(p - y) is taken as 0 at p = y, as TensorFlow's abs, PyTorch's l1_loss and
    JAX all do (any value in [-1, 1] is a subgradient there)."""
    d = p - y
    return Parts(losses=np.abs(d), grad=np.sign(d))


def mae_formulas(from_logits: bool, conv: Convention) -> list[str]:
    return ["ℓᵢ = |pᵢ − yᵢ|", "∂ℓᵢ/∂pᵢ = sign(pᵢ − yᵢ), taken as 0 at pᵢ = yᵢ"]


MAE = register(
    Loss(
        name="mae",
        summary="mean absolute error, |p − y| (gradient sign(p − y), 0 at p = y)",
        kind="elementwise",
        compute=mae_compute,
        check=_no_check,
        formulas=mae_formulas,
        has_logits=False,
        reference="keras.losses.mean_absolute_error, torch.nn.functional.l1_loss",
    )
)


# ---------------------------------------------------------------- huber


def _halved_error(y: Array, p: Array, d: Array) -> Array | None:
    """(p − y)/2 where p − y overflows (the truth of a loss linear in it may still be in range), else None."""
    over = np.isinf(d)
    if not over.any():
        return None
    return np.where(over, p / 2 - y / 2, np.nan)


def huber_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                  delta: float = 1.0) -> Parts:
    with np.errstate(over="ignore"):
        d = p - y
    dl = p.dtype.type(delta)
    losses = _huber_losses(d, dl, conv.huber)
    h = _halved_error(y, p, d) if conv.huber == "exact" else None
    if h is not None:
        # δ(|e| − δ/2) = 2δ(|e|/2 − δ/4): in range for δ < 1 although e = p − y is not
        with np.errstate(over="ignore"):
            losses = np.where(np.isinf(d), 2 * (dl * (np.abs(h) - dl / 4)), losses)
    return Parts(losses=losses, grad=np.where(np.abs(d) <= dl, d, dl * np.sign(d)))


def _huber_losses(d: Array, delta: Any, form: str) -> Array:
    a = np.abs(d)
    half = d.dtype.type(0.5)
    losses: Array
    if form == "optax":
        # optax: 0.5 q^2 + delta (|e| - q), q = min(|e|, delta)
        q = np.minimum(a, delta)
        losses = half * q * q + delta * (a - q)
    elif form == "torch":
        # torch huber_loss: |e| < delta ? 0.5 e^2 : delta (|e| - 0.5 delta)
        losses = np.where(a < delta, half * d * d, delta * (a - half * delta))
    elif form == "keras":
        # keras: |e| <= delta ? 0.5 e^2 : delta |e| - 0.5 delta^2
        losses = np.where(a <= delta, half * d * d, delta * a - half * (delta * delta))
    else:
        # exact: the linear branch as delta (|e| - delta/2): |e| > delta, so nothing cancels; the quadratic one
        # as (e/2)·e, one rounding (and no overflow of e² where ½e² is in range)
        with np.errstate(over="ignore"):
            losses = np.where(a <= delta, (half * d) * d, delta * (a - half * delta))
    return losses


def huber_formulas(from_logits: bool, conv: Convention, delta: float = 1.0) -> list[str]:
    return [f"eᵢ = pᵢ − yᵢ, δ = {delta:g}",
            "ℓᵢ = ½eᵢ² if |eᵢ| ≤ δ, else δ(|eᵢ| − ½δ)",
            "∂ℓᵢ/∂pᵢ = eᵢ if |eᵢ| ≤ δ, else δ·sign(eᵢ)"]


HUBER = register(
    Loss(
        name="huber",
        summary="Huber loss: quadratic within --delta of the target, linear beyond",
        kind="elementwise",
        compute=huber_compute,
        check=_no_check,
        formulas=huber_formulas,
        has_logits=False,
        reference="keras.losses.huber, torch.nn.functional.huber_loss, optax.losses.huber_loss",
        params=(Param("delta", 1.0, "Where the loss turns from quadratic to linear."),),
    )
)


# ---------------------------------------------------------------- smooth-l1


def smooth_l1_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                      beta: float = 1.0) -> Parts:
    """PyTorch's smooth_l1_loss: |e| < beta ? 0.5 e^2 / beta : |e| - 0.5 beta (= huber / beta; beta = 0 is l1).
    It follows huber's arrangement: the frameworks' 0.5 e² / β as written, the exact one with no intermediate
    overflow or underflow."""
    with np.errstate(over="ignore"):
        d = p - y
    a = np.abs(d)
    if beta == 0:
        return Parts(losses=a, grad=np.sign(d))
    b = p.dtype.type(beta)
    half = p.dtype.type(0.5)
    grad = np.where(a < b, d / b, np.sign(d))
    if conv.huber != "exact":
        return Parts(losses=np.where(a < b, half * d * d / b, a - half * b), grad=grad)
    # ½e²/β as 2^−1·e·e/β with the exponents apart: e² alone overflows at β = 1e300, e = 1e200 (the truth is
    # 5e99) and underflows at β = 1e−300, e = 1e−301 (5e−303)
    with np.errstate(over="ignore"):
        losses = np.where(a < b, scaled_quotient((d, d), (np.broadcast_to(b, d.shape),), -1), a - half * b)
    h = _halved_error(y, p, d)
    if h is not None:
        # |e| − β/2 = 2(|e|/2 − β/4), in range although e = p − y is not
        losses = np.where(np.isinf(d), 2 * (np.abs(h) - b / 4), losses)
    return Parts(losses=losses, grad=grad)


def smooth_l1_formulas(from_logits: bool, conv: Convention, beta: float = 1.0) -> list[str]:
    return [f"eᵢ = pᵢ − yᵢ, β = {beta:g}",
            "ℓᵢ = ½eᵢ²/β if |eᵢ| < β, else |eᵢ| − ½β",
            "∂ℓᵢ/∂pᵢ = eᵢ/β if |eᵢ| < β, else sign(eᵢ)"]


SMOOTH_L1 = register(
    Loss(
        name="smooth-l1",
        summary="PyTorch's smooth L1: Huber divided by --beta (beta 0 is the absolute error)",
        kind="elementwise",
        compute=smooth_l1_compute,
        check=_no_check,
        formulas=smooth_l1_formulas,
        has_logits=False,
        reference="torch.nn.functional.smooth_l1_loss",
        params=(Param("beta", 1.0, "Where the loss turns from quadratic to linear (0: absolute error).",
                      positive=False),),
    )
)


# ---------------------------------------------------------------- logcosh

_LOG2 = np.log(2.0)


def logcosh_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None) -> Parts:
    d = p - y
    form = conv.logcosh
    log2 = p.dtype.type(conv.logcosh_log2 if conv.logcosh_log2 is not None else _LOG2)
    if form == "keras":
        # keras: x + softplus(-2x) - log 2; autodiff: 1 - 2 sigma(-2x)
        losses = d + softplus(-2 * d) - log2
        grad = 1 - 2 * sigmoid(-2 * d)
    elif form == "optax":
        # optax: logaddexp(x, -x) - log 2; jax's logaddexp gradient weighs the two terms by their share
        a = np.abs(d)
        losses = a + np.log1p(np.exp(-2 * a)) - log2
        w = np.exp(-2 * a)
        grad = np.sign(d) * (1 - w) / (1 + w)
    else:
        # exact: log cosh x = log1p(2 sinh(x/2)^2) where the other form would cancel (|x| < 2), else
        # |x| + log1p(e^-2|x|) - log 2; the gradient tanh x
        a = np.abs(d)
        sh = np.sinh(np.minimum(a, 2) / 2)
        small = np.log1p(2 * sh * sh)
        large = (a - log2) + np.log1p(np.exp(-2 * a))
        losses = np.where(a < 2, small, large)
        grad = np.tanh(d)
    return Parts(losses=losses, grad=grad)


def logcosh_formulas(from_logits: bool, conv: Convention) -> list[str]:
    return ["ℓᵢ = log cosh(pᵢ − yᵢ)", "∂ℓᵢ/∂pᵢ = tanh(pᵢ − yᵢ)"]


def logcosh_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool, labels: Array | None,
                    **opts: Any) -> list[Reason]:
    """Keras' log 2 rounded to float32 (the loss terms only), and the frameworks' forms, which cancel near 0."""
    rules: list[Reason] = []
    all_ = np.ones_like(p2, dtype=bool)
    if conv.logcosh_log2 is not None:
        shift = conv.logcosh_log2 - _LOG2
        with np.errstate(divide="ignore"):
            reach = 4 * abs(shift) / np.abs(np.log(np.cosh(p2 - y2)))
        rules.append((all_, lambda i: f"{conv.name} subtracts log 2 rounded to float32, {conv.logcosh_log2:.10g}, "
                                      f"{shift:.2g} above log 2", {"loss": reach}))
    if conv.logcosh == "keras":
        rules.append((all_, lambda i: f"{conv.name} forms x + softplus(−2x) − log 2 and its derivative "
                                      "1 − 2σ(−2x), which cancel for small |x|: rounding"))
    elif conv.logcosh == "optax":
        rules.append((all_, lambda i: f"{conv.name} forms |x| + log1p(e^−2|x|) − log 2 and its derivative "
                                      "(1 − e^−2|x|)/(1 + e^−2|x|), which cancel for small |x|: rounding"))
    return rules


LOGCOSH = register(
    Loss(
        name="logcosh",
        summary="log-cosh: quadratic near the target, linear far from it, smooth everywhere",
        kind="elementwise",
        compute=logcosh_compute,
        check=_no_check,
        formulas=logcosh_formulas,
        has_logits=False,
        reference="keras.losses.log_cosh, optax.losses.log_cosh",
        reasons=logcosh_reasons,
    )
)
