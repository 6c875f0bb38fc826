"""Poisson negative log-likelihood: p − y·log p on rates, e^z − y·z on log rates, and with --full the log y!
term that makes it the whole negative log-likelihood.

Both forms subtract two terms that can nearly agree; the exact convention recomputes those elements in long
double, and in decimal where even that is not enough. Keras adds ε inside the log; PyTorch's poisson_nll_loss
adds 1e−8 on rates, and on log rates (its default, log_input=True) computes e^z − y·z. With --full the exact
convention adds log Γ(y + 1) itself; PyTorch's full=True adds Stirling's approximation of it, and only for y > 1.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import precise
from ._ops import Array, xlogy
from .base import Loss, Param, Parts, Reason, first_bad, register

if TYPE_CHECKING:  # (decimal and fractions are imported where an element needs them: start-up time)
    from decimal import Decimal
    from fractions import Fraction

if TYPE_CHECKING:
    from ..conventions import Convention

TORCH_EPS = 1e-8  # poisson_nll_loss's eps (log_input=False)


# ---------------------------------------------------------------- the log y! term (--full)

FULL = Param("full", False, "Add the log yᵢ! term: the full Poisson negative log-likelihood (PyTorch's full=True, "
             "which adds Stirling's approximation of it, and only for yᵢ > 1).", flag=True)
LN_2PI = "1.8378770664093454835606594728112352797227949472755668"
EULER = "0.57721566490153286060651209008240243104215933593992"
STIRLING_FROM = 10.0  # from here Stirling's series (10 terms) is right to far below a long double's ulp
TINY = 1e-20  # below, log Γ(1 + y) = −γy to within y²: y(1 − γ − log y) is the excess


@lru_cache(maxsize=1)
def _stirling_coefficients(n: int = 40) -> tuple[Fraction, ...]:
    """B₂ₖ/(2k(2k − 1)) for k = 1..n, from the Bernoulli numbers' recurrence."""
    from fractions import Fraction
    from math import comb

    b = [Fraction(1)]
    for m in range(1, 2 * n + 1):
        b.append(-sum((comb(m + 1, k) * b[k] for k in range(m)), Fraction(0)) / (m + 1))
    return tuple(b[2 * k] / (2 * k * (2 * k - 1)) for k in range(1, n + 1))


def _stirling_series(x: Array, terms: int = 10) -> Array:
    """Σ B₂ₖ/(2k(2k − 1)x^(2k−1)), k = 1..terms: log Γ(x + 1) − (x log x − x + ½ log 2πx)."""
    inv2 = 1 / (x * x)
    acc = np.zeros_like(x)
    for c in reversed(_stirling_coefficients()[:terms]):
        acc = acc * inv2 + x.dtype.type(c.numerator) / x.dtype.type(c.denominator)
    out: Array = acc / x
    return out


@lru_cache(maxsize=4096)
def _dec_excess(y: float) -> str:
    """log Γ(1 + y) + y − y log y in decimal, as a string (80 digits; counts repeat, so cached): Γ shifted up to
    1 + y + n ≥ 60, where Stirling's series (40 terms) is right to 1e−54, and the shift's logs taken off."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 80
        x = Decimal(y) + 1
        n = max(0, 60 - int(x))
        big = x + n
        shift = sum(((x + k).ln() for k in range(n)), Decimal(0))
        series = sum(Decimal(c.numerator) / Decimal(c.denominator) / big ** (2 * k + 1)
                     for k, c in enumerate(_stirling_coefficients()))
        lgamma = (big - Decimal("0.5")) * big.ln() - big + Decimal(LN_2PI) / 2 + series - shift
        dy = Decimal(y)
        return str(+(lgamma + dy - dy * dy.ln()))


def log_factorial_excess(y: Array) -> Array:
    """S(y) = log Γ(y + 1) + y − y·log y ≥ 0 (0 at y = 0), in y's dtype: the log y! term less what the
    likelihood's y·log y cancels, so that the full loss is the sum of two non-negative parts."""
    t = y.dtype.type
    out = np.zeros_like(y)
    big = y >= STIRLING_FROM
    yb = y[big]
    out[big] = (np.log(yb) + t(LN_2PI)) / 2 + _stirling_series(yb)
    tiny = (y > 0) & (y < TINY)
    yt = y[tiny]
    out[tiny] = yt * ((1 - t(EULER)) - np.log(yt))
    mid = (y >= TINY) & (y < STIRLING_FROM)
    if mid.any():
        values, where = np.unique(y[mid].astype(np.float64), return_inverse=True)
        out[mid] = np.array([t(_dec_excess(float(v))) for v in values], dtype=y.dtype)[where]
    return out


def _log1p_gap(u: Array) -> Array:
    """u − log1p(u) for |u| ≤ 1/2, with no cancellation: log1p(u) = 2 atanh(w), w = u/(2 + u), so
    u − log1p(u) = u·w − 2w³(1/3 + w²/5 + w⁴/7 + ...), |w| ≤ 1/3 (21 terms: below 1e−20)."""
    w = u / (2 + u)
    w2 = w * w
    acc = np.zeros_like(u)
    for k in range(20, -1, -1):
        acc = acc * w2 + 1 / u.dtype.type(2 * k + 3)
    out: Array = u * w - 2 * w * w2 * acc
    return out


def _expm1_gap(v: Array) -> Array:
    """e^v − 1 − v = Σ vᵏ/k! (k ≥ 2) for |v| ≤ 1/2, summed from the small end (24 terms: below 1e−28)."""
    acc = np.zeros_like(v)
    for k in range(25, 1, -1):
        acc = (acc + 1) * v / v.dtype.type(k)
    out: Array = acc * v
    return out


def _gap_rates(y: Array, p: Array) -> Array:
    """p − y − y·log(p/y) ≥ 0 (p at y = 0): y·(u − log1p u), u = (p − y)/y, near p = y."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = (p - y) / y
        near = np.abs(u) <= 0.5
        ratio = p / y
        log_ratio = np.where((ratio > 0) & np.isfinite(ratio), np.log(ratio), np.log(p) - np.log(y))
        far = (p - y) - y * log_ratio
        gap = np.where(near, y * _log1p_gap(np.where(near, u, 0)), far)
    out: Array = np.where(y == 0, p, gap)
    return out


def _gap_log_rates(y: Array, z: Array, rest: Array) -> Array:
    """e^z − y − y·(z − log y) ≥ 0 (e^z at y = 0): y·(e^v − 1 − v), v = z − log y. v carries log y's rounding,
    which moves the result by y·|e^v − 1|·δv; where that would exceed 1/32 of a double's ulp of the result plus
    `rest` (what it is added to), v is z − log y in decimal, rounded once."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ly = np.log(y)
        v = z - ly
        gap = _expm1_gap_any(v)
        amplified = np.abs(np.expm1(v)) * np.abs(ly) * np.finfo(y.dtype).eps
        risky = (y > 0) & np.isfinite(v) & (y * amplified > (y * gap + rest) * 2.0**-58)
    if risky.any():
        v_risky = [y.dtype.type(_dec_log_gap(float(a), float(b))) for a, b in zip(y[risky], z[risky], strict=True)]
        gap[risky] = _expm1_gap_any(np.array(v_risky, dtype=y.dtype))
    with np.errstate(over="ignore", invalid="ignore"):
        out: Array = np.where(y == 0, np.exp(z), y * gap)
    return out


def _expm1_gap_any(v: Array) -> Array:
    """e^v − 1 − v for any v: the series near 0, expm1 elsewhere."""
    near = np.abs(v) <= 0.5
    with np.errstate(over="ignore", invalid="ignore"):
        out: Array = np.where(near, _expm1_gap(np.where(near, v, 0)), np.expm1(v) - v)
    return out


@lru_cache(maxsize=4096)
def _dec_log(y: float) -> Decimal:
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(y).ln()


def _dec_log_gap(y: float, z: float) -> str:
    """z − log y to 60 digits (z and log y agree to at most about 35 of them), as a string."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        return str(Decimal(z) - _dec_log(y))


def full_exact(y: Array, p: Array, from_logits: bool) -> Array:
    """The full negative log-likelihood, p − y·log p + log Γ(y + 1) (or from log rates), as the sum of two
    non-negative parts that are each right to an ulp: the gap to the minimum over p, and S(y) at the minimum."""
    work = precise._long() or p.dtype
    yl, pl = y.astype(work), p.astype(work)
    excess = log_factorial_excess(yl)
    gap = _gap_log_rates(yl, pl, excess) if from_logits else _gap_rates(yl, pl)
    with np.errstate(over="ignore"):
        return (gap + excess).astype(p.dtype)


def full_stirling(y: Array) -> Array:
    """PyTorch's full=True term: y·log y − y + ½·log(2π·y) where y > 1, else 0 (2π rounded to the dtype)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        term = y * np.log(y) - y + y.dtype.type(0.5) * np.log(y.dtype.type(2 * np.pi) * y)
    out: Array = np.where(y > 1, term, 0)
    return out


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


def poisson_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                    full: bool = False) -> Parts:
    parts = _poisson_parts(y, p, from_logits, conv)
    if full and conv.poisson_full == "exact":
        # (the log y! term is p's constant: the gradient is the same)
        parts.losses = full_exact(y, p, from_logits)
    elif full:
        parts.losses = parts.losses + full_stirling(y)
    return parts


def _poisson_parts(y: Array, p: Array, from_logits: bool, conv: Convention) -> Parts:
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


def poisson_check(y: Array, p: Array, from_logits: bool, full: bool = False) -> None:
    first_bad("target", y < 0, y, "is negative; poisson targets are counts or rates, at least 0")
    if not from_logits:
        first_bad("pred", p < 0, p, "is negative; poisson predictions are rates: pass log rates with {from_logits}")


def poisson_formulas(from_logits: bool, conv: Convention, full: bool = False) -> list[str]:
    lines = _poisson_formulas(from_logits, conv)
    if not full:
        return lines
    if conv.poisson_full == "exact":
        term = ("ℓᵢ += log yᵢ! = log Γ(yᵢ + 1)  (--full: the whole negative log-likelihood, summed as the gap to "
                "the minimum over the rate plus log Γ(yᵢ + 1) + yᵢ − yᵢ·log yᵢ, both ≥ 0)")
    else:
        term = ("ℓᵢ += yᵢ·log yᵢ − yᵢ + ½·log(2π·yᵢ) where yᵢ > 1, else 0  (--full as PyTorch computes it: "
                "Stirling's approximation of log yᵢ!)")
    # (a constant in the prediction: the gradient's line stays as it is)
    return lines[:-1] + [term, lines[-1]]


def _poisson_formulas(from_logits: bool, conv: Convention) -> list[str]:
    if from_logits:
        return ["zᵢ = log λᵢ  (log rates: PyTorch's log_input=True)", "ℓᵢ = e^zᵢ − yᵢ·zᵢ", "∂ℓᵢ/∂zᵢ = e^zᵢ − yᵢ"]
    if conv.poisson == "exact":
        return ["ℓᵢ = pᵢ − yᵢ·log pᵢ  (the Poisson negative log-likelihood without log yᵢ!)",
                "∂ℓᵢ/∂pᵢ = 1 − yᵢ/pᵢ = (pᵢ − yᵢ)/pᵢ"]
    eps = conv.eps if conv.poisson == "keras" else TORCH_EPS
    return [f"ℓᵢ = pᵢ − yᵢ·log(pᵢ + ε), ε = {eps:g}", "∂ℓᵢ/∂pᵢ = 1 − yᵢ/(pᵢ + ε)"]


def poisson_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                    labels: Array | None, **opts: Any) -> list[Reason]:
    """Where `conv`'s poisson departs from the exact one, each reason bounded by the size of what it does: PyTorch's
    e^z − y as it stands (the gradient's rounding), its Stirling term for log y! (the loss's, with --full), and
    the ε inside log(p + ε) (about ε·y/p in the loss term, ε·y/p² in the gradient)."""
    out: list[Reason] = []
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ez = np.exp(p2) if from_logits else p2
        exact = ez - (y2 * p2 if from_logits else xlogy(y2, np.log(p2)))
        if opts.get("full"):
            exact = exact + np.vectorize(math.lgamma)(y2 + 1)
    if from_logits and conv.poisson != "exact":
        out.append((np.abs(ez - y2) < 0.5 * np.maximum(ez, y2), lambda i: f"{conv.name} computes e^z − y as it "
                    "stands, rounding where e^z is close to y", {"grad": np.inf}))
    if conv.poisson_full == "stirling" and opts.get("full"):
        # (only the losses differ: the term is p's constant)
        out.append((y2 > 1, lambda i: f"{conv.name}'s full=True adds Stirling's y·log y − y + ½·log(2πy) "
                    f"for log y!, short of it by about 1/(12y) = {1 / (12 * y2[i]):.3g}", {"loss": np.inf}))
        out.append(((y2 < 1) & (y2 > 0), lambda i: f"{conv.name}'s full=True adds nothing for y ≤ 1, where "
                    f"log y! = log Γ(y + 1) is {math.lgamma(1 + y2[i]):.3g}", {"loss": np.inf}))
    if from_logits or conv.poisson not in ("keras", "torch"):
        return out
    eps = (conv.eps or 0.0) if conv.poisson == "keras" else TORCH_EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        # what ε moves, relative to the exact term and derivative (4×: the estimates are first order)
        term = 4 * y2 * np.log1p(eps / p2) / np.abs(exact)
        slope = 4 * eps * y2 / (p2 * (p2 + eps)) / np.abs((p2 - y2) / p2)
    reach = {"loss": np.where(np.isnan(term), np.inf, term), "grad": np.where(np.isnan(slope), np.inf, slope)}
    return [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} adds ε = {eps:g} inside log(p + ε), which moves "
                                                     "the loss term by about ε·y/p and the gradient by about ε·y/p²",
             reach)] + out


POISSON = register(
    Loss(
        name="poisson",
        summary="Poisson loss p − y·log p on rates, or (--from-logits) e^z − y·z on log rates; --full adds "
        "log y!",
        kind="elementwise",
        compute=poisson_compute,
        check=poisson_check,
        formulas=poisson_formulas,
        has_logits=True,
        link="exp",
        reference="keras.losses.poisson, torch.nn.functional.poisson_nll_loss",
        zero_hint="a rate of exactly 0 for a nonzero count; {convention} keras adds ε inside the log",
        reasons=poisson_reasons,
        params=(FULL,),
    )
)
