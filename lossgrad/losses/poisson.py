"""Poisson negative log-likelihood (without the log y! term): p − y·log p on rates, e^z − y·z on log rates.

Both forms subtract two terms that can nearly agree; the exact convention recomputes those elements in long
double, and in decimal where even that is not enough. Keras adds ε inside the log; PyTorch's poisson_nll_loss
adds 1e−8 on rates, and on log rates (its default, log_input=True) computes e^z − y·z.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import precise
from ._ops import Array, xlogy
from .base import Loss, Parts, Reason, first_bad, register

if TYPE_CHECKING:  # (decimal and fractions are imported where an element needs them: start-up time)
    from decimal import Decimal

if TYPE_CHECKING:
    from ..conventions import Convention

TORCH_EPS = 1e-8  # poisson_nll_loss's eps (log_input=False)


def _exact_rates(y: Array, p: Array) -> tuple[Array, Array]:
    from decimal import Decimal
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(p)
        ylogp = xlogy(y, logp)
        losses = p - ylogp
        # (p - y) / p: one subtraction of two inputs (rounded once), one division
        grad = np.where((p == 0) & (y == 0), 1, (p - y) / p)
        scale = np.abs(p) + np.abs(ylogp)

    def long_fn(a: Array, b: Array) -> tuple[Array, Array]:
        t = xlogy(a, np.log(b))
        return b - t, np.abs(b) + np.abs(t)

    def dec_fn(af: float, bf: float) -> tuple[Decimal, Decimal]:
        a, b = Decimal(af), Decimal(bf)
        t = Decimal(0) if a == 0 else a * b.ln()
        return b - t, abs(b) + abs(t)

    finite = np.isfinite(losses)
    losses = precise.refine(losses, np.where(finite, scale, 0), long_fn, dec_fn, y, p)
    return losses, grad


def _exact_log_rates(y: Array, z: Array) -> tuple[Array, Array]:
    from decimal import Decimal
    with np.errstate(over="ignore", invalid="ignore"):
        ez = np.exp(z)
        losses = ez - y * z
        grad = ez - y
        lscale = ez + np.abs(y * z)
        gscale = np.maximum(ez, np.abs(y))

    def dec_loss(af: float, bf: float) -> tuple[Decimal, Decimal]:
        a, b = Decimal(af), Decimal(bf)
        e = b.exp()
        return e - a * b, e + abs(a * b)

    def dec_grad(af: float, bf: float) -> tuple[Decimal, Decimal]:
        a, b = Decimal(af), Decimal(bf)
        e = b.exp()
        return e - a, max(e, abs(a))

    finite = np.isfinite(losses) & np.isfinite(grad)
    losses = precise.refine(losses, np.where(finite, lscale, 0),
                            lambda a, b: (np.exp(b) - a * b, np.exp(b) + np.abs(a * b)), dec_loss, y, z)
    grad = precise.refine(grad, np.where(finite, gscale, 0),
                          lambda a, b: (np.exp(b) - a, np.maximum(np.exp(b), np.abs(a))), dec_grad, y, z)
    return losses, grad


def poisson_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None) -> Parts:
    form = conv.poisson
    if from_logits:
        if form == "exact":
            losses, grad = _exact_log_rates(y, p)
        else:
            # torch poisson_nll_loss(log_input=True): exp(z) - y z, gradient exp(z) - y
            with np.errstate(over="ignore"):
                ez = np.exp(p)
            losses, grad = ez - y * p, ez - y
        return Parts(losses=losses, grad=grad)
    if form == "exact":
        losses, grad = _exact_rates(y, p)
        return Parts(losses=losses, grad=grad)
    eps = p.dtype.type(conv.eps if form == "keras" else TORCH_EPS)
    # keras: p - y log(p + eps); torch (log_input=False): p - y log(p + 1e-8); gradient 1 - y / (p + eps)
    return Parts(losses=p - y * np.log(p + eps), grad=1 - y / (p + eps))


def poisson_check(y: Array, p: Array, from_logits: bool) -> None:
    first_bad("target", y < 0, y, "is negative; poisson targets are counts or rates, at least 0")
    if not from_logits:
        first_bad("pred", p < 0, p, "is negative; poisson predictions are rates: pass log rates with {from_logits}")


def poisson_formulas(from_logits: bool, conv: Convention) -> list[str]:
    if from_logits:
        return ["zᵢ = log λᵢ  (log rates: PyTorch's log_input=True)", "ℓᵢ = e^zᵢ − yᵢ·zᵢ", "∂ℓᵢ/∂zᵢ = e^zᵢ − yᵢ"]
    if conv.poisson == "exact":
        return ["ℓᵢ = pᵢ − yᵢ·log pᵢ  (the Poisson negative log-likelihood without log yᵢ!)",
                "∂ℓᵢ/∂pᵢ = 1 − yᵢ/pᵢ = (pᵢ − yᵢ)/pᵢ"]
    eps = conv.eps if conv.poisson == "keras" else TORCH_EPS
    return [f"ℓᵢ = pᵢ − yᵢ·log(pᵢ + ε), ε = {eps:g}", "∂ℓᵢ/∂pᵢ = 1 − yᵢ/(pᵢ + ε)"]


def poisson_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool, labels: Array | None) -> list[Reason]:
    if from_logits or conv.poisson not in ("keras", "torch"):
        return []
    eps = conv.eps if conv.poisson == "keras" else 1e-8
    return [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} adds ε = {eps:g} inside log(p + ε), which moves "
                                                     "the gradient by about ε·y/p²")]


POISSON = register(
    Loss(
        name="poisson",
        summary="Poisson loss p − y·log p on rates, or (--from-logits) e^z − y·z on log rates",
        kind="elementwise",
        compute=poisson_compute,
        check=poisson_check,
        formulas=poisson_formulas,
        has_logits=True,
        link="exp",
        reference="keras.losses.poisson, torch.nn.functional.poisson_nll_loss",
        zero_hint="a rate of exactly 0 for a nonzero count; {convention} keras adds ε inside the log",
        reasons=poisson_reasons,
    )
)
